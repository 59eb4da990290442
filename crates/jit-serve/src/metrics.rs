//! Prometheus text exposition, written by hand: a few counters and one
//! histogram, owned by the host's state (no global registry, so tests that
//! run many hosts in one process never see each other's numbers).

use jit_sync::FetchStats;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the call-latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The host's counters. Cheap to update from any task.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    calls: Mutex<BTreeMap<(String, String), Histogram>>,
    syncs: Mutex<BTreeMap<(String, String), u64>>,
    rows: Mutex<BTreeMap<String, u64>>,
    missed: Mutex<BTreeMap<String, u64>>,
}

/// What the host reads at scrape time rather than counting itself.
#[derive(Default)]
pub struct Snapshot {
    /// Cumulative upstream statistics per org (from each org's client).
    pub upstream: Vec<(String, FetchStats)>,
    /// Last successful sync per org, milliseconds since the epoch.
    pub last_sync: Vec<(String, Option<i64>)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    /// One answered request: its route template (not the raw path, so the
    /// label set stays small), method and status.
    pub fn request(&self, route: &str, method: &str, status: u16) {
        *lock(&self.requests)
            .entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
    }

    /// One method call that ran, and how long it took.
    pub fn call(&self, element: &str, method: &str, took: Duration) {
        let secs = took.as_secs_f64();
        let mut calls = lock(&self.calls);
        let h = calls
            .entry((element.to_string(), method.to_string()))
            .or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// One sync run that ended, by outcome (`applied`, `dry_run`,
    /// `refused`, `failed`, `busy`), and the rows it wrote.
    pub fn sync(&self, org: &str, outcome: &str, rows_written: u64) {
        *lock(&self.syncs)
            .entry((org.to_string(), outcome.to_string()))
            .or_default() += 1;
        *lock(&self.rows).entry(org.to_string()).or_default() += rows_written;
    }

    /// Reconciliation: differences a full sync of an org with events found
    /// that the events had missed (0 is the goal).
    pub fn missed_by_events(&self, org: &str, n: u64) {
        *lock(&self.missed).entry(org.to_string()).or_default() += n;
    }

    /// The exposition text (format 0.0.4).
    pub fn render(&self, snap: &Snapshot) -> String {
        let mut out = String::new();
        header(
            &mut out,
            "jit_http_requests_total",
            "counter",
            "HTTP requests answered, by route template, method and status.",
        );
        for ((route, method, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "jit_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                esc(route),
                esc(method)
            );
        }
        header(
            &mut out,
            "jit_call_duration_seconds",
            "histogram",
            "Element method calls that ran, by element and method.",
        );
        for ((element, method), h) in lock(&self.calls).iter() {
            let labels = format!("element=\"{}\",method=\"{}\"", esc(element), esc(method));
            for (le, n) in BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(
                    out,
                    "jit_call_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "jit_call_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "jit_call_duration_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(
                out,
                "jit_call_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        header(
            &mut out,
            "jit_sync_runs_total",
            "counter",
            "Sync runs started by this host that ended, by org and outcome.",
        );
        for ((org, outcome), n) in lock(&self.syncs).iter() {
            let _ = writeln!(
                out,
                "jit_sync_runs_total{{org=\"{}\",outcome=\"{}\"}} {n}",
                esc(org),
                esc(outcome)
            );
        }
        header(
            &mut out,
            "jit_sync_missed_by_events_total",
            "counter",
            "Differences full syncs of orgs with events found that the events had missed, by org.",
        );
        for (org, n) in lock(&self.missed).iter() {
            let _ = writeln!(
                out,
                "jit_sync_missed_by_events_total{{org=\"{}\"}} {n}",
                esc(org)
            );
        }
        header(
            &mut out,
            "jit_sync_rows_written_total",
            "counter",
            "Org-table rows written by this host's sync runs, by org.",
        );
        for (org, n) in lock(&self.rows).iter() {
            let _ = writeln!(
                out,
                "jit_sync_rows_written_total{{org=\"{}\"}} {n}",
                esc(org)
            );
        }
        for (name, help, pick) in [
            (
                "jit_upstream_calls_total",
                "Platform API requests sent, by org and API path.",
                (|e: &jit_sync::EndpointStats| e.calls) as fn(&jit_sync::EndpointStats) -> u64,
            ),
            (
                "jit_upstream_retries_total",
                "Platform API requests retried, by org and API path.",
                |e| e.retries,
            ),
            (
                "jit_upstream_throttled_total",
                "Platform API answers that said the rate limit was hit, by org and API path.",
                |e| e.throttled,
            ),
        ] {
            header(&mut out, name, "counter", help);
            for (org, stats) in &snap.upstream {
                for (api, e) in &stats.endpoints {
                    let _ = writeln!(
                        out,
                        "{name}{{org=\"{}\",api=\"{}\"}} {}",
                        esc(org),
                        esc(api),
                        pick(e)
                    );
                }
            }
        }
        header(
            &mut out,
            "jit_last_successful_sync_timestamp_seconds",
            "gauge",
            "When each org's last successful sync finished (0: never), Unix seconds.",
        );
        for (org, at) in &snap.last_sync {
            let secs = at.map_or(0.0, |ms| ms as f64 / 1000.0);
            let _ = writeln!(
                out,
                "jit_last_successful_sync_timestamp_seconds{{org=\"{}\"}} {secs}",
                esc(org)
            );
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, double quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_lands_in_every_bucket_at_or_above_its_latency() {
        let m = Metrics::default();
        m.call("corps.X", "getAdmin", Duration::from_millis(30));
        let text = m.render(&Snapshot::default());
        assert!(text.contains(
            "jit_call_duration_seconds_bucket{element=\"corps.X\",method=\"getAdmin\",le=\"0.025\"} 0"
        ));
        assert!(text.contains(
            "jit_call_duration_seconds_bucket{element=\"corps.X\",method=\"getAdmin\",le=\"0.05\"} 1"
        ));
        assert!(text.contains(
            "jit_call_duration_seconds_count{element=\"corps.X\",method=\"getAdmin\"} 1"
        ));
    }

    #[test]
    fn differences_events_missed_add_up_per_org() {
        let m = Metrics::default();
        m.missed_by_events("corps.X", 2);
        m.missed_by_events("corps.X", 0);
        m.missed_by_events("corps.X", 1);
        assert!(m
            .render(&Snapshot::default())
            .contains("jit_sync_missed_by_events_total{org=\"corps.X\"} 3"));
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.request("/a\"b\\c\n", "GET", 200);
        assert!(m
            .render(&Snapshot::default())
            .contains("route=\"/a\\\"b\\\\c\\n\""));
    }
}
