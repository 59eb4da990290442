//! DingTalk Stream wiring: for every DingTalk org in `"stream"` mode the
//! host runs one Stream connection (crate `jit-dingtalk-stream`), owned by
//! one replica at a time through the store's lease `stream:{fullName}`.
//! The holder renews the lease every third of its length; a replica that
//! stops renewing (it died) loses it when it expires and another takes the
//! connection over. Every event is stored in the inbox before the client
//! acks it ([`InboxSink`]), so an acked event is never lost, and a
//! redelivered one is stored once (dedupe key `eventId:…`, the same as an
//! HTTP push of the event).

use crate::metrics::Counters;
use crate::worker::{now_ms, Worker};
use jit_corps::{AuthConfig, CorpElement, EventMode};
use jit_dingtalk_stream::{EventSink, StreamConfig, StreamEvent, StreamStatus};
use jit_store::{CorpStore, InboxPut, NewInboxEvent};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// One org's Stream: its settings and where its events go.
pub(crate) struct OrgStream {
    pub corp: String,
    pub corp_id: String,
    pub config: StreamConfig,
    pub status: StreamStatus,
}

impl OrgStream {
    /// The Stream of an org element in `"stream"` mode, if it is one.
    pub fn for_element(element: &CorpElement) -> Option<OrgStream> {
        let ev = element.settings().events.as_ref()?;
        if ev.mode != EventMode::Stream {
            return None;
        }
        let AuthConfig::DingTalk {
            corp_id,
            app_key,
            app_secret,
            api_base,
            ..
        } = element.auth_config()
        else {
            return None;
        };
        let base = api_base.as_deref().unwrap_or("https://api.dingtalk.com");
        let mut config = StreamConfig::new(base, app_key, app_secret);
        config.label = element.full_name().to_string();
        Some(OrgStream {
            corp: element.full_name().to_string(),
            corp_id: corp_id.clone(),
            config,
            status: StreamStatus::default(),
        })
    }
}

/// Stores each Stream event in the inbox; `Ok` (and so the ack) only once
/// it is stored.
pub(crate) struct InboxSink {
    corp: String,
    corp_id: String,
    store: Arc<dyn CorpStore>,
    worker: Arc<Worker>,
    counters: Arc<Counters>,
}

impl EventSink for InboxSink {
    fn accept(
        &self,
        event: StreamEvent,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            if !event.corp_id.is_empty() && event.corp_id != self.corp_id {
                // Acked and dropped: redelivering it would not make it ours.
                self.counters.refused(&self.corp);
                tracing::warn!(org = %self.corp, event_corp = %event.corp_id, "stream event for another corp ignored");
                return Ok(());
            }
            let dedupe_key = if event.event_id.is_empty() {
                format!("stream:{}:{}", event.born_at_ms, event.data)
            } else {
                format!("eventId:{}", event.event_id)
            };
            let ev = NewInboxEvent {
                corp: self.corp.clone(),
                platform: "dingtalk".into(),
                event_type: event.event_type.clone(),
                dedupe_key,
                payload: event.data.to_string(),
                received_at: now_ms(),
            };
            match self.store.inbox_put(&ev).await {
                Ok(InboxPut::Stored(_)) => {
                    self.counters.stored(&self.corp);
                    self.worker.wake.notify_one();
                    Ok(())
                }
                Ok(InboxPut::Duplicate(_)) => {
                    self.counters.duplicate(&self.corp);
                    Ok(())
                }
                Err(e) => Err(format!("storing the event failed: {e}")),
            }
        })
    }
}

/// Runs `stream` whenever this replica holds its lease, until `shutdown`.
pub(crate) async fn own(
    stream: OrgStream,
    store: Arc<dyn CorpStore>,
    worker: Arc<Worker>,
    counters: Arc<Counters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let lease = format!("stream:{}", stream.corp);
    let lease_ms = worker.opts.lease.as_millis() as i64;
    let tick = (worker.opts.lease / 3).max(Duration::from_millis(100));
    let sink: Arc<dyn EventSink> = Arc::new(InboxSink {
        corp: stream.corp.clone(),
        corp_id: stream.corp_id.clone(),
        store: store.clone(),
        worker: worker.clone(),
        counters,
    });
    let mut running: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)> = None;
    loop {
        let held = match store
            .take_lease(&lease, &worker.holder, now_ms(), lease_ms)
            .await
        {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(org = %stream.corp, error = %e, "renewing the stream lease failed");
                false
            }
        };
        if let Some((_, task)) = &running {
            if task.is_finished() {
                running = None;
            }
        }
        match (held, running.is_some()) {
            (true, false) => {
                tracing::info!(org = %stream.corp, "this replica holds the DingTalk stream");
                let (stop_tx, stop_rx) = oneshot::channel::<()>();
                let cfg = stream.config.clone();
                let (sink, status, corp) =
                    (sink.clone(), stream.status.clone(), stream.corp.clone());
                let task = tokio::spawn(async move {
                    let stop = async move {
                        let _ = stop_rx.await;
                    };
                    if let Err(e) =
                        jit_dingtalk_stream::run_with_status(cfg, sink, status, stop).await
                    {
                        tracing::error!(org = %corp, error = %e, "the DingTalk stream cannot run");
                    }
                });
                running = Some((stop_tx, task));
            }
            (false, true) => {
                tracing::warn!(org = %stream.corp, "the stream lease went to another replica; closing this connection");
                if let Some((stop, task)) = running.take() {
                    let _ = stop.send(());
                    let _ = task.await;
                }
            }
            _ => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            if let Some((stop, task)) = running.take() {
                let _ = stop.send(());
                let _ = task.await;
                let _ = store.release_lease(&lease, &worker.holder).await;
            }
            return;
        }
    }
}
