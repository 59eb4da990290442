//! What a fetch reads and how it went: the options every reader takes,
//! per-endpoint call statistics, and the progress hook. Plain data shared by
//! the platform clients, the sync engine and the hosts (no I/O).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// What happened on one API path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStats {
    /// Requests sent (retries included).
    pub calls: u64,
    /// Requests that were retries of an earlier attempt.
    pub retries: u64,
    /// Answers that were the platform's throttling codes.
    pub throttled: u64,
    /// Calls that finally failed.
    pub failures: u64,
    /// Time spent waiting for the rate budget, in milliseconds.
    pub budget_wait_ms: u64,
}

/// Statistics of a client (cumulative since it was made).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchStats {
    /// Per API path.
    pub endpoints: BTreeMap<String, EndpointStats>,
    /// Access tokens fetched.
    pub token_refreshes: u64,
}

impl FetchStats {
    /// Total requests sent over all paths.
    pub fn total_calls(&self) -> u64 {
        self.endpoints.values().map(|e| e.calls).sum()
    }

    /// What happened between `earlier` and `self` (both from the same client).
    pub fn since(&self, earlier: &FetchStats) -> FetchStats {
        let endpoints = self
            .endpoints
            .iter()
            .filter_map(|(path, now)| {
                let before = earlier.endpoints.get(path).cloned().unwrap_or_default();
                let d = EndpointStats {
                    calls: now.calls.saturating_sub(before.calls),
                    retries: now.retries.saturating_sub(before.retries),
                    throttled: now.throttled.saturating_sub(before.throttled),
                    failures: now.failures.saturating_sub(before.failures),
                    budget_wait_ms: now.budget_wait_ms.saturating_sub(before.budget_wait_ms),
                };
                (d != EndpointStats::default()).then(|| (path.clone(), d))
            })
            .collect();
        FetchStats {
            endpoints,
            token_refreshes: self.token_refreshes.saturating_sub(earlier.token_refreshes),
        }
    }
}

/// One step of a fetch or sync, for progress bars and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressEvent {
    /// A phase started (`departments`, `members`, `roles`, `admins`, `plan`, `apply`).
    Phase(String),
    /// More work of a kind became known (e.g. 12 more departments to read).
    Discovered {
        /// The kind of unit (`departments`, `roles`, ...).
        unit: String,
        /// How many more.
        count: u64,
    },
    /// Units of a kind finished.
    Done {
        /// The kind of unit.
        unit: String,
        /// How many more finished.
        count: u64,
    },
    /// A note for the log (e.g. a department outside the app's visible range).
    Note(String),
}

/// Receives progress events. Implementations must be cheap: they are called
/// from the fetch loop.
pub trait Progress: Send + Sync {
    /// One event.
    fn on_event(&self, event: &ProgressEvent);

    /// The sync engine recorded its run (as `running`) under this id, before
    /// reading anything: a host that started the sync in the background can
    /// name the run while it is still going. Called at most once per sync;
    /// fetch-only callers never see it.
    fn on_run_started(&self, run_id: i64) {
        let _ = run_id;
    }
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn on_event(&self, _event: &ProgressEvent) {}
}

/// A [`Progress`] that tallies `Discovered`/`Done` per unit; useful for
/// tests and simple textual progress.
#[derive(Debug, Default)]
pub struct CountingProgress {
    tallies: Mutex<BTreeMap<String, (u64, u64)>>,
    phases: Mutex<Vec<String>>,
}

impl CountingProgress {
    /// (discovered, done) per unit.
    pub fn tallies(&self) -> BTreeMap<String, (u64, u64)> {
        self.tallies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Phases seen, in order.
    pub fn phases(&self) -> Vec<String> {
        self.phases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Progress for CountingProgress {
    fn on_event(&self, event: &ProgressEvent) {
        match event {
            ProgressEvent::Phase(p) => self
                .phases
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(p.clone()),
            ProgressEvent::Discovered { unit, count } => {
                let mut t = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
                t.entry(unit.clone()).or_default().0 += count;
            }
            ProgressEvent::Done { unit, count } => {
                let mut t = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
                t.entry(unit.clone()).or_default().1 += count;
            }
            ProgressEvent::Note(_) => {}
        }
    }
}

/// What to read from an organization; shared by every fetcher (WeCom,
/// DingTalk, plugins) through `jit_sync::CorpSource`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchOptions {
    /// Department subtrees to read (`syncScope`); empty = the whole org.
    #[serde(default)]
    pub scope: Vec<i64>,
    /// Read roles (WeCom tags, DingTalk roles) and role memberships.
    #[serde(default = "yes")]
    pub include_roles: bool,
    /// Read the administrator list.
    #[serde(default = "yes")]
    pub include_admins: bool,
}

fn yes() -> bool {
    true
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            scope: Vec::new(),
            include_roles: true,
            include_admins: true,
        }
    }
}
