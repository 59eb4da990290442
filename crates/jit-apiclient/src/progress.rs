//! Collecting per-endpoint statistics while a client runs.

use jit_org::{EndpointStats, FetchStats};
use std::sync::Mutex;
use std::time::Duration;

/// Thread-safe accumulator behind [`FetchStats`].
#[derive(Debug, Default)]
pub struct StatsRegistry {
    inner: Mutex<FetchStats>,
}

impl StatsRegistry {
    fn with(&self, path: &str, f: impl FnOnce(&mut EndpointStats)) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(guard.endpoints.entry(path.to_string()).or_default());
    }

    /// Counts a sent request.
    pub fn call(&self, path: &str, retry: bool, waited: Duration) {
        self.with(path, |e| {
            e.calls += 1;
            e.retries += u64::from(retry);
            e.budget_wait_ms += waited.as_millis() as u64;
        });
    }

    /// Counts a throttling answer.
    pub fn throttled(&self, path: &str) {
        self.with(path, |e| e.throttled += 1);
    }

    /// Counts a call that finally failed.
    pub fn failure(&self, path: &str) {
        self.with(path, |e| e.failures += 1);
    }

    /// Counts a token fetch.
    pub fn token_refresh(&self) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.token_refreshes += 1;
    }

    /// A copy of the current figures.
    pub fn snapshot(&self) -> FetchStats {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
