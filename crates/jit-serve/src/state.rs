//! What every handler shares: the loaded app, its store, the tokens, the
//! counters, and the live feeds of this process's runs.

use crate::auth::Tokens;
use crate::metrics::Metrics;
use crate::runs::{Jobs, RunHub};
use jit_core::{App, ElementKind};
use jit_store::CorpStore;
use std::sync::Arc;
use tokio::sync::watch;

/// The state of one host. Durable state (runs, orgs) lives in the store;
/// what is here is either read from the app or only describes this
/// process (live run feeds, counters), so replicas need not share it.
pub struct HostState {
    pub(crate) app: App,
    pub(crate) app_id: String,
    pub(crate) store: Arc<dyn CorpStore>,
    pub(crate) tokens: Tokens,
    pub(crate) metrics: Metrics,
    pub(crate) runs: RunHub,
    pub(crate) jobs: Jobs,
    /// Org elements (instances with `syncCorp`), by fullName.
    pub(crate) orgs: Vec<String>,
    pub(crate) shutdown: watch::Receiver<bool>,
    shutdown_tx: watch::Sender<bool>,
    /// The event receivers and worker, once `serve` has built them.
    pub(crate) events: std::sync::OnceLock<Arc<jit_events::Events>>,
}

impl HostState {
    /// The state of a host serving `app` with `store` and `tokens`.
    pub fn new(app: App, store: Arc<dyn CorpStore>, tokens: Tokens) -> Arc<HostState> {
        let app_id = app
            .manifest()
            .get("appId")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string();
        let orgs = app
            .elements()
            .values()
            .filter(|d| d.kind == ElementKind::Instance)
            .filter(|d| {
                app.element_functions(&d.full_name)
                    .is_some_and(|fs| fs.iter().any(|f| f.name == "syncCorp"))
            })
            .map(|d| d.full_name.clone())
            .collect();
        let (shutdown_tx, shutdown) = watch::channel(false);
        Arc::new(HostState {
            app,
            app_id,
            store,
            tokens,
            metrics: Metrics::default(),
            runs: RunHub::default(),
            jobs: Jobs::default(),
            orgs,
            shutdown,
            shutdown_tx,
            events: std::sync::OnceLock::new(),
        })
    }

    /// The loaded app.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The org store.
    pub fn store(&self) -> &Arc<dyn CorpStore> {
        &self.store
    }

    /// The host's counters (served at `/metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Background work (calls, syncs) the host waits for on shutdown.
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// The org elements of the app (instances that answer `syncCorp`).
    pub fn orgs(&self) -> &[String] {
        &self.orgs
    }

    /// Tells long-lived answers (event streams) that the host is stopping.
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown_tx.send(true);
    }
}
