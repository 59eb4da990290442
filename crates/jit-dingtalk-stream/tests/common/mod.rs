//! A simulator with one DingTalk org, a recording sink and a client the
//! test can stop.

use jit_dingtalk_stream::{
    run_with_status, Backoff, EventSink, StreamConfig, StreamError, StreamEvent, StreamStatus,
};
use jit_sim::{MembershipSpec, Mutation, OrgRef, SimConfig, SimHandle, Simulator, StreamSettings};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The org every test streams.
pub const ORG: OrgRef = OrgRef::Dingtalk(0);

/// A small simulated company.
pub async fn sim() -> SimHandle {
    Simulator::start(SimConfig {
        seed: 13,
        depts: 3,
        users: 10,
        dingtalk_orgs: 1,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts")
}

/// The org's Stream settings with test-sized delays.
pub fn config(sim: &SimHandle) -> StreamConfig {
    let app = sim.info().dingtalk[0].clone();
    let mut cfg = StreamConfig::new(&app.api_base_url, &app.app_key, &app.app_secret);
    cfg.backoff = Backoff {
        min: Duration::from_millis(50),
        max: Duration::from_millis(400),
    };
    cfg.label = "corps.dingtalk".into();
    cfg
}

/// Records every event it is handed; fails the first `fail_first` attempts
/// of each event (by eventId).
#[derive(Default)]
pub struct Recorder {
    pub seen: Mutex<Vec<StreamEvent>>,
    pub fail_first: usize,
    attempts: Mutex<HashMap<String, usize>>,
}

impl Recorder {
    /// A sink that fails each event's first `n` attempts.
    pub fn failing_first(n: usize) -> Recorder {
        Recorder {
            fail_first: n,
            ..Recorder::default()
        }
    }

    /// Everything handed over so far, failed attempts included.
    pub fn events(&self) -> Vec<StreamEvent> {
        self.seen.lock().unwrap().clone()
    }

    /// The distinct events handed over, in first-arrival order.
    pub fn distinct(&self) -> Vec<StreamEvent> {
        let mut out: Vec<StreamEvent> = Vec::new();
        for e in self.events() {
            if !out.iter().any(|o| o.event_id == e.event_id) {
                out.push(e);
            }
        }
        out
    }
}

impl EventSink for Recorder {
    fn accept(
        &self,
        event: StreamEvent,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            let n = {
                let mut a = self.attempts.lock().unwrap();
                let n = a.entry(event.event_id.clone()).or_default();
                *n += 1;
                *n
            };
            self.seen.lock().unwrap().push(event);
            if n <= self.fail_first {
                Err(format!("the inbox is unavailable (attempt {n})"))
            } else {
                Ok(())
            }
        })
    }
}

/// A running client.
pub struct Client {
    pub status: StreamStatus,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), StreamError>>,
}

impl Client {
    /// Starts `run_with_status` in the background.
    pub fn start(cfg: StreamConfig, sink: Arc<dyn EventSink>) -> Client {
        let status = StreamStatus::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run_with_status(cfg, sink, status.clone(), async move {
            let _ = rx.await;
        }));
        Client {
            status,
            stop: Some(tx),
            task,
        }
    }

    /// Starts a client and waits for its first connection.
    pub async fn connected(cfg: StreamConfig, sink: Arc<dyn EventSink>) -> Client {
        let c = Client::start(cfg, sink);
        wait_for("the first connection", || c.status.snapshot().connected).await;
        c
    }

    /// Stops it and returns what `run` returned.
    pub async fn stop(mut self) -> Result<(), StreamError> {
        let _ = self.stop.take().map(|s| s.send(()));
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the client stops within 5 s")
            .expect("the client task does not panic")
    }
}

/// Polls `cond` every 10 ms for up to 10 s.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Hires `n` people upstream (one `user_add_org` event each); returns their userids in order.
pub fn hire(sim: &SimHandle, prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let userid = format!("{prefix}{i:03}");
            sim.mutate(
                ORG,
                Mutation::add_member(&userid, format!("Hire {i}"), vec![MembershipSpec::of(1)]),
            )
            .expect("the hire is applied");
            userid
        })
        .collect()
}

/// The first userid of each event, in order.
pub fn userids(events: &[StreamEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.data["userId"][0].as_str().unwrap_or("").to_string())
        .collect()
}

/// Changes the one gateway setting a test is about.
pub fn tune(sim: &SimHandle, change: impl FnOnce(&mut StreamSettings)) {
    let mut s = sim.stream_settings(ORG).expect("a DingTalk org");
    change(&mut s);
    sim.set_stream_settings(ORG, s).expect("a DingTalk org");
}
