//! The event counters a host serves with its Prometheus metrics: events
//! received (stored, duplicate, refused), applied, retried and given up,
//! per org. Owned by the host's [`crate::Events`] (no global registry).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Counters per (org, what).
#[derive(Default)]
pub struct Counters {
    counts: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl Counters {
    fn add(&self, corp: &str, what: &'static str, n: u64) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((corp.to_string(), what))
            .or_default() += n;
    }

    /// A pushed request that was stored as a new event.
    pub fn stored(&self, corp: &str) {
        self.add(corp, "stored", 1);
    }

    /// A pushed request that repeated a stored event.
    pub fn duplicate(&self, corp: &str) {
        self.add(corp, "duplicate", 1);
    }

    /// A pushed request refused (4xx).
    pub fn refused(&self, corp: &str) {
        self.add(corp, "refused", 1);
    }

    /// Events applied.
    pub fn applied(&self, corp: &str, n: u64) {
        self.add(corp, "applied", n);
    }

    /// Events whose apply failed and will be retried.
    pub fn retried(&self, corp: &str, n: u64) {
        self.add(corp, "retried", n);
    }

    /// Events given up.
    pub fn failed(&self, corp: &str, n: u64) {
        self.add(corp, "failed", n);
    }

    /// One counter's value.
    pub fn get(&self, corp: &str, what: &str) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|((c, w), _)| c == corp && *w == what)
            .map_or(0, |(_, n)| *n)
    }

    /// Prometheus text (format 0.0.4): `jit_events_received_total` by
    /// outcome and `jit_events_processed_total` by outcome, per org.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for (name, help, kinds) in [
            (
                "jit_events_received_total",
                "Pushed event requests by org and outcome (stored, duplicate, refused).",
                &["stored", "duplicate", "refused"][..],
            ),
            (
                "jit_events_processed_total",
                "Inbox events by org and outcome of an apply attempt (applied, retried, failed).",
                &["applied", "retried", "failed"][..],
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((corp, what), n) in counts.iter().filter(|((_, w), _)| kinds.contains(w)) {
                let corp = corp.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(out, "{name}{{org=\"{corp}\",outcome=\"{what}\"}} {n}");
            }
        }
        out
    }
}
