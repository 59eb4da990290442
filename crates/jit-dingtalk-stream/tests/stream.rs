//! The Stream client against the simulator's gateway: delivery, acks,
//! pings, reconnects, redelivery and refusals.

use crate::common::{config, hire, sim, tune, userids, wait_for, Client, Recorder, ORG};
use jit_dingtalk_stream::{run, StreamError};
use jit_sim::StreamCommand;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn events_arrive_in_order_and_are_acked() {
    let sim = sim().await;
    let sink = Arc::new(Recorder::default());
    let client = Client::connected(config(&sim), sink.clone()).await;

    let hired = hire(&sim, "order", 20);
    wait_for("20 acks", || sim.stream_stats(ORG).unwrap().acked == 20).await;

    let got = sink.events();
    assert_eq!(
        userids(&got),
        hired,
        "one event per hire, in mutation order"
    );
    let corp = sim.info().dingtalk[0].corp_id.clone();
    assert!(got
        .iter()
        .all(|e| e.event_type == "user_add_org" && e.corp_id == corp && e.born_at_ms > 0));
    let stats = sim.stream_stats(ORG).unwrap();
    assert_eq!(
        (stats.frames_sent, stats.pending, stats.redelivered),
        (20, 0, 0)
    );
    let st = client.status.snapshot();
    assert_eq!((st.events_accepted, st.events_later), (20, 0));
    assert!(st.frames_acked >= 20);
    client.stop().await.unwrap();
}

#[tokio::test]
async fn a_system_ping_is_answered_with_its_own_data() {
    let sim = sim().await;
    let client = Client::connected(config(&sim), Arc::new(Recorder::default())).await;

    sim.stream_command(ORG, StreamCommand::Ping).unwrap();
    // The simulator counts a pong only with code 200, the ping's messageId and its data echoed.
    wait_for("the pong", || sim.stream_stats(ORG).unwrap().pongs == 1).await;
    assert_eq!(client.status.snapshot().pings_answered, 1);
    client.stop().await.unwrap();
}

#[tokio::test]
async fn a_socket_dropped_mid_burst_loses_no_event() {
    let sim = sim().await;
    let sink = Arc::new(Recorder::default());
    let client = Client::connected(config(&sim), sink.clone()).await;
    tune(&sim, |s| s.drop_after_frames = Some(7));

    let hired = hire(&sim, "burst", 30);
    wait_for("every event acked", || {
        let s = sim.stream_stats(ORG).unwrap();
        s.connected && s.pending == 0 && s.acked >= 30
    })
    .await;

    let stats = sim.stream_stats(ORG).unwrap();
    assert_eq!(stats.drops, 1, "the socket was dropped once, mid-burst");
    assert_eq!(stats.connections, 2, "the client came back");
    let distinct = sink.distinct();
    assert_eq!(distinct.len(), 30, "after dedupe, exactly the events sent");
    assert_eq!(
        userids(&distinct).into_iter().collect::<BTreeSet<_>>(),
        hired.into_iter().collect::<BTreeSet<_>>()
    );
    let st = client.status.snapshot();
    assert_eq!(st.reconnects, 1);
    assert!(st.last_error.is_some(), "the drop is reported");
    client.stop().await.unwrap();
}

#[tokio::test]
async fn a_disconnect_from_the_server_is_acked_and_followed_by_a_new_connection() {
    let sim = sim().await;
    let sink = Arc::new(Recorder::default());
    let client = Client::connected(config(&sim), sink.clone()).await;

    sim.stream_command(ORG, StreamCommand::Disconnect).unwrap();
    wait_for("the second connection", || {
        let s = sim.stream_stats(ORG).unwrap();
        s.connections == 2 && s.connected
    })
    .await;
    let st = client.status.snapshot();
    assert_eq!(st.reconnects, 1);
    assert_eq!(st.last_error, None, "a requested reconnect is no failure");

    let hired = hire(&sim, "after", 2);
    wait_for("both events", || sink.events().len() == 2).await;
    assert_eq!(userids(&sink.events()), hired);
    client.stop().await.unwrap();
}

#[tokio::test]
async fn an_event_the_sink_fails_is_acked_later_and_delivered_again() {
    let sim = sim().await;
    tune(&sim, |s| s.later_delay_ms = 50);
    let sink = Arc::new(Recorder::failing_first(2));
    let client = Client::connected(config(&sim), sink.clone()).await;

    hire(&sim, "retry", 1);
    wait_for("the ack", || sim.stream_stats(ORG).unwrap().acked == 1).await;

    let stats = sim.stream_stats(ORG).unwrap();
    assert_eq!((stats.later, stats.redelivered, stats.pending), (2, 2, 0));
    let events = sink.events();
    assert_eq!(events.len(), 3, "two failed attempts, then the one taken");
    assert!(events.iter().all(|e| e.event_id == events[0].event_id));
    let st = client.status.snapshot();
    assert_eq!((st.events_later, st.events_accepted), (2, 1));
    client.stop().await.unwrap();
}

#[tokio::test]
async fn an_idle_connection_is_kept_alive_with_websocket_pings() {
    let sim = sim().await;
    tune(&sim, |s| s.ping_interval_ms = 0);
    let mut cfg = config(&sim);
    cfg.keepalive = Duration::from_millis(100);
    let client = Client::connected(cfg, Arc::new(Recorder::default())).await;

    wait_for("three keepalive pings", || {
        sim.stream_stats(ORG).unwrap().keepalive_pings >= 3
    })
    .await;
    let stats = sim.stream_stats(ORG).unwrap();
    assert_eq!(stats.connections, 1, "answered pings keep the connection");
    assert!(client.status.snapshot().connected);
    client.stop().await.unwrap();
}

#[tokio::test]
async fn a_wrong_secret_is_a_clear_error_retried_with_back_off() {
    let sim = sim().await;
    let mut cfg = config(&sim);
    let secret = "wrong-secret-7f3a9c";
    cfg.client_secret = secret.into();
    let client = Client::start(cfg, Arc::new(Recorder::default()));

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let st = client.status.snapshot();
    let err = st.last_error.clone().expect("the refusal is reported");
    assert!(
        err.contains("/v1.0/gateway/connections/open")
            && err.contains("HTTP 400")
            && err.contains("InvalidAuthentication"),
        "{err}"
    );
    assert!(!err.contains(secret));
    // 50, 100, 200, 400, 400 ms (+ up to 20%): about five attempts in 1.2 s, not hundreds.
    let tries = sim.stream_stats(ORG).unwrap().opens_refused;
    assert!((3..=7).contains(&tries), "{tries} open calls in 1.2 s");
    assert_eq!(st.connections, 0);
    client.stop().await.unwrap();
}

#[tokio::test]
async fn settings_that_cannot_work_fail_at_once_without_a_request() {
    let sim = sim().await;
    let mut cfg = config(&sim);
    cfg.client_id.clear();
    let err = run(cfg, Arc::new(Recorder::default()), std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, StreamError::Config { .. }), "{err}");
    assert!(err.to_string().contains("corps.dingtalk"), "{err}");
    assert_eq!(sim.stream_stats(ORG).unwrap().opens_refused, 0);
}

#[tokio::test]
async fn the_secret_never_appears_in_debug_output_or_errors() {
    let sim = sim().await;
    let good = config(&sim);
    let secret = good.client_secret.clone();
    assert!(!format!("{good:?}").contains(&secret));

    // A secret that is a valid one's prefix, so a refusal quoting it would show.
    let mut bad = good.clone();
    bad.client_secret = format!("{secret}x");
    let client = Client::start(bad.clone(), Arc::new(Recorder::default()));
    wait_for("the refusal", || {
        client.status.snapshot().last_error.is_some()
    })
    .await;
    let st = client.status.snapshot();
    client.stop().await.unwrap();
    let shown = format!("{st:?} {}", st.last_error.clone().unwrap());
    assert!(!shown.contains(&secret), "{shown}");
    assert!(!format!("{bad:?}").contains(&secret));
}

/// Every log line the test binary writes from the first call on.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A process-wide subscriber: a thread-local one misses call sites that
/// tests on other threads met first (tracing caches their interest).
fn capture_logs() -> Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        logs
    })
    .clone()
}

#[tokio::test]
async fn no_secret_or_ticket_reaches_a_log_line() {
    let logs = capture_logs();

    let sim = sim().await;
    let good = config(&sim);
    let client = Client::connected(good.clone(), Arc::new(Recorder::failing_first(1))).await;
    hire(&sim, "logged", 1);
    wait_for("the ack", || sim.stream_stats(ORG).unwrap().acked == 1).await;
    sim.stream_command(ORG, StreamCommand::Drop).unwrap();
    wait_for("the reconnect", || {
        client.status.snapshot().connections == 2
    })
    .await;
    client.stop().await.unwrap();
    let mut bad = good.clone();
    bad.client_secret = format!("{}-wrong", good.client_secret);
    let client = Client::start(bad.clone(), Arc::new(Recorder::default()));
    wait_for("the refusal", || {
        client.status.snapshot().last_error.is_some()
    })
    .await;
    client.stop().await.unwrap();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("DingTalk stream connected"), "{text}");
    assert!(text.contains("acked LATER"), "{text}");
    assert!(text.contains("connection failed or dropped"), "{text}");
    assert!(text.contains("InvalidAuthentication"), "{text}");
    assert!(!text.contains(&good.client_secret), "{text}");
    assert!(!text.contains("ticket="), "{text}");
}

#[tokio::test]
async fn frames_it_cannot_use_are_answered_or_skipped_and_the_stream_goes_on() {
    let sim = sim().await;
    let sink = Arc::new(Recorder::default());
    let client = Client::connected(config(&sim), sink.clone()).await;
    let frame = |kind: &str, headers: serde_json::Value, data: &str| {
        serde_json::json!({"specVersion": "1.0", "type": kind, "time": 1, "headers": headers, "data": data})
            .to_string()
    };

    // Not JSON: nothing to answer, skipped.
    sim.stream_send_raw(ORG, "{not a frame").unwrap();
    // An EVENT whose data is not a JSON object: refused with 400.
    let headers = serde_json::json!({"topic": "*", "messageId": "bad-1", "eventId": "e-bad",
        "eventType": "user_add_org", "eventCorpId": "ding", "eventBornTime": "1"});
    sim.stream_send_raw(ORG, &frame("EVENT", headers, "[1, 2]"))
        .unwrap();
    // A CALLBACK nobody subscribed: 404.
    let headers = serde_json::json!({"topic": "/v1.0/im/bot/messages/get", "messageId": "cb-1"});
    sim.stream_send_raw(ORG, &frame("CALLBACK", headers, "{}"))
        .unwrap();
    wait_for("the two answers", || {
        client.status.snapshot().frames_acked == 2
    })
    .await;

    let hired = hire(&sim, "after-bad", 1);
    wait_for("the next event", || sink.events().len() == 1).await;
    assert_eq!(userids(&sink.events()), hired);
    let st = client.status.snapshot();
    assert_eq!((st.frames_refused, st.connections), (1, 1));
    client.stop().await.unwrap();
}

#[tokio::test]
async fn a_server_that_drops_every_connection_at_once_gets_growing_delays() {
    let sim = sim().await;
    // Back-off 50 ms … 400 ms: connections that last less than 400 ms do not reset it.
    let client = Client::connected(config(&sim), Arc::new(Recorder::default())).await;
    let mut gaps = Vec::new();
    for n in 1..=4u64 {
        sim.stream_command(ORG, StreamCommand::Drop).unwrap();
        let dropped = std::time::Instant::now();
        wait_for("the next connection", || {
            client.status.snapshot().connected
                && sim.stream_stats(ORG).unwrap().connections == n + 1
        })
        .await;
        gaps.push(dropped.elapsed());
    }
    // 50, 100, 200, 400 ms plus up to 20% jitter and the time to connect.
    assert!(gaps[0] < Duration::from_millis(200), "{gaps:?}");
    assert!(gaps[3] >= Duration::from_millis(400), "{gaps:?}");
    assert!(gaps.windows(2).all(|w| w[1] > w[0]), "{gaps:?}");
    client.stop().await.unwrap();
}

/// Takes 300 ms over its first event, then records every event at once.
#[derive(Default)]
struct SlowFirst(std::sync::Mutex<Vec<String>>);

impl jit_dingtalk_stream::EventSink for SlowFirst {
    fn accept(
        &self,
        event: jit_dingtalk_stream::StreamEvent,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            let first = self.0.lock().unwrap().is_empty();
            if first {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            self.0.lock().unwrap().push(event.event_id);
            Ok(())
        })
    }
}

#[tokio::test]
async fn an_event_acked_too_late_comes_again_and_is_taken_again_harmlessly() {
    let sim = sim().await;
    tune(&sim, |s| s.ack_timeout_ms = 100);
    let sink = Arc::new(SlowFirst::default());
    let client = Client::connected(config(&sim), sink.clone()).await;

    hire(&sim, "slow", 1);
    wait_for("the ack and the redelivery's ack", || {
        let s = sim.stream_stats(ORG).unwrap();
        s.pending == 0 && client.status.snapshot().events_accepted >= 2
    })
    .await;

    let stats = sim.stream_stats(ORG).unwrap();
    assert!(stats.redelivered >= 1, "{stats:?}");
    assert_eq!(stats.acked, 1, "the late second ack finds nothing to ack");
    let seen = sink.0.lock().unwrap().clone();
    assert!(
        seen.len() >= 2 && seen.iter().all(|id| *id == seen[0]),
        "{seen:?}"
    );
    assert_eq!(client.status.snapshot().connections, 1);
    client.stop().await.unwrap();
}

/// Panics on its first event, then records every event.
#[derive(Default)]
struct PanicsOnce(std::sync::Mutex<Vec<String>>, std::sync::atomic::AtomicBool);

impl jit_dingtalk_stream::EventSink for PanicsOnce {
    fn accept(
        &self,
        event: jit_dingtalk_stream::StreamEvent,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            if !self.1.swap(true, std::sync::atomic::Ordering::SeqCst) {
                panic!("a bug in the sink");
            }
            self.0.lock().unwrap().push(event.event_id);
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_panicking_sink_fails_that_event_only() {
    let sim = sim().await;
    tune(&sim, |s| s.later_delay_ms = 50);
    let sink = Arc::new(PanicsOnce::default());
    let client = Client::connected(config(&sim), sink.clone()).await;

    hire(&sim, "panic", 2);
    wait_for("both events acked", || {
        sim.stream_stats(ORG).unwrap().acked == 2
    })
    .await;

    assert_eq!(
        sim.stream_stats(ORG).unwrap().later,
        1,
        "the panic became LATER"
    );
    assert_eq!(sink.0.lock().unwrap().len(), 2);
    let st = client.status.snapshot();
    assert_eq!((st.connections, st.events_later), (1, 1));
    client.stop().await.unwrap();
}
