//! Event-driven sync: WeCom `change_contact` callbacks and DingTalk org
//! events (HTTP push and Stream mode) keep the store current between full
//! syncs.
//!
//! A received event is verified, persisted in the store's inbox and
//! answered; it is applied later, through the same plan, safety and
//! transaction path as a full sync, by whichever replica claims it.
//!
//! - [`receive`]: verifying a pushed request ([`receive::Receiver`]);
//! - [`http`]: the callback routes (`/callbacks/wecom/{fullName}`,
//!   `/callbacks/dingtalk/{fullName}`) and `GET /api/v1/corps/{fullName}/events`;
//! - [`worker`]: claiming and applying inbox events, retries with back-off;
//! - [`apply`]: applying a batch through the engine.
//!
//! A host builds one [`Events`] for its app and runs it:
//!
//! ```no_run
//! # async fn host(app: jit_core::App, store: std::sync::Arc<dyn jit_store::CorpStore>) {
//! let orgs = vec!["corps.Acme".to_string()];
//! let events = jit_events::Events::new(&app, store, &orgs, Default::default()).unwrap();
//! let (_stop, shutdown) = tokio::sync::watch::channel(false);
//! tokio::spawn(events.clone().run(shutdown));
//! let open: axum::Router = jit_events::http::callback_routes(events.clone());
//! # }
//! ```

#![warn(missing_docs)]

pub mod apply;
pub mod http;
pub mod metrics;
pub mod receive;
mod stream;
pub mod worker;

use jit_core::App;
use jit_corps::CorpElement;
use jit_store::CorpStore;
use metrics::Counters;
use receive::Receiver;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use worker::{Worker, WorkerOptions};

/// An org's events config cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("events of {org}: {message}")]
pub struct EventsError {
    /// The org element.
    pub org: String,
    /// What is wrong (no secret).
    pub message: String,
}

/// The event machinery of one host: the receivers of the orgs with HTTP
/// events, the worker applying every org with events, the counters.
pub struct Events {
    pub(crate) store: Arc<dyn CorpStore>,
    pub(crate) receivers: HashMap<String, Receiver>,
    pub(crate) worker: Arc<Worker>,
    pub(crate) counters: Arc<Counters>,
    /// DingTalk orgs in Stream mode, taken by [`Events::run`].
    streams: std::sync::Mutex<Vec<stream::OrgStream>>,
}

impl Events {
    /// The events of `orgs` (org element fullNames) that have `events` in
    /// their config; the others are left out.
    pub fn new(
        app: &App,
        store: Arc<dyn CorpStore>,
        orgs: &[String],
        opts: WorkerOptions,
    ) -> Result<Arc<Events>, EventsError> {
        let mut receivers = HashMap::new();
        let mut with_events = HashSet::new();
        let mut streams = Vec::new();
        for org in orgs {
            let Ok(handle) = app.get_element(org) else {
                continue;
            };
            let Some(element) = handle.downcast_ref::<CorpElement>() else {
                continue;
            };
            if element.settings().events.is_none() {
                continue;
            }
            with_events.insert(org.clone());
            streams.extend(stream::OrgStream::for_element(element));
            if let Some(rx) = Receiver::for_element(element).map_err(|message| EventsError {
                org: org.clone(),
                message,
            })? {
                receivers.insert(org.clone(), rx);
            }
        }
        let counters = Arc::new(Counters::default());
        let holder = format!(
            "{}-{}",
            std::process::id(),
            worker::now_ms().rem_euclid(1 << 40)
        );
        let worker = Arc::new(Worker::new(
            app.clone(),
            store.clone(),
            holder,
            opts,
            counters.clone(),
            with_events,
        ));
        Ok(Arc::new(Events {
            store,
            receivers,
            worker,
            counters,
            streams: std::sync::Mutex::new(streams),
        }))
    }

    /// The orgs this host receives and applies events for, sorted.
    pub fn orgs(&self) -> Vec<String> {
        let mut v: Vec<String> = self.worker.orgs.iter().cloned().collect();
        v.sort();
        v
    }

    /// Runs the worker, and the DingTalk Stream connections of the orgs in
    /// Stream mode while this replica holds their leases, until `shutdown`
    /// turns true.
    pub async fn run(self: Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        if self.worker.orgs.is_empty() {
            return;
        }
        let streams = std::mem::take(&mut *self.streams.lock().unwrap_or_else(|p| p.into_inner()));
        for s in streams {
            tokio::spawn(stream::own(
                s,
                self.store.clone(),
                self.worker.clone(),
                self.counters.clone(),
                shutdown.clone(),
            ));
        }
        self.worker.clone().run(shutdown).await
    }

    /// The counters (also in [`Events::render_metrics`]).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The counters as Prometheus text.
    pub fn render_metrics(&self) -> String {
        self.counters.render()
    }
}

/// The worker options an app sets in `app.json` `settings.events`
/// (`batchWindowMs`, `pollMs`, `leaseSecs`); defaults otherwise.
pub fn options_from_manifest(manifest: &Value) -> WorkerOptions {
    let mut o = WorkerOptions::default();
    let get = |k: &str| {
        manifest
            .pointer(&format!("/settings/events/{k}"))
            .and_then(Value::as_u64)
    };
    if let Some(ms) = get("batchWindowMs") {
        o.batch_window = Duration::from_millis(ms);
    }
    if let Some(ms) = get("pollMs") {
        o.poll = Duration::from_millis(ms.max(10));
    }
    if let Some(s) = get("leaseSecs") {
        o.lease = Duration::from_secs(s.max(1));
    }
    o
}
