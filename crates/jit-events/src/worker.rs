//! The worker: claims one org's due inbox events at a time (a lease in the
//! store, so with several replicas on one database exactly one applies
//! them, in arrival order), applies them through [`crate::apply`], and
//! records the outcome: applied with the run id, retried with exponential
//! back-off, or given up after [`MAX_ATTEMPTS`]. Different orgs run in
//! parallel. It wakes when this process stores an event and polls the
//! store as the fallback for events another replica stored.

use crate::apply::{apply_events, ApplyContext, InboxEvent};
use crate::metrics::Counters;
use jit_core::App;
use jit_corps::CorpElement;
use jit_org::Platform;
use jit_store::{CorpStore, InboxClaim, InboxEnd, InboxOutcome, InboxRow};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Attempts after which an event is given up (the next full sync is the
/// backstop): with the back-off below that is about an hour of retrying.
pub const MAX_ATTEMPTS: i64 = 12;

/// Tuning of the worker.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// How often the store is polled for events another replica stored.
    pub poll: Duration,
    /// How long after waking the worker waits before claiming, so that a
    /// burst is claimed (and read) as one batch.
    pub batch_window: Duration,
    /// How long an org's lease lasts; renewed every third of it while a
    /// batch applies.
    pub lease: Duration,
    /// At most this many events per batch.
    pub batch_limit: usize,
    /// First retry delay; doubles per attempt, at most [`WorkerOptions::max_backoff`].
    pub backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Applied events are kept this long (listed, and recognised if the
    /// platform delivers them again), then pruned.
    pub retention: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            poll: Duration::from_secs(1),
            batch_window: Duration::from_millis(50),
            lease: Duration::from_secs(60),
            batch_limit: 2000,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The delay before attempt `attempts + 1`.
pub fn backoff(opts: &WorkerOptions, attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 30) as u32 - 1;
    opts.backoff
        .saturating_mul(2u32.saturating_pow(exp))
        .min(opts.max_backoff)
}

/// What the worker shares with the receivers and the host.
pub(crate) struct Worker {
    pub app: App,
    pub store: Arc<dyn CorpStore>,
    pub holder: String,
    pub opts: WorkerOptions,
    pub wake: Notify,
    pub counters: Arc<Counters>,
    /// Orgs this process serves events for.
    pub orgs: HashSet<String>,
    /// Orgs a task of this process is draining now.
    busy: Mutex<HashSet<String>>,
    /// Those tasks, awaited on shutdown so a batch being applied finishes
    /// (and records its outcome) within the host's grace.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Worker {
    pub fn new(
        app: App,
        store: Arc<dyn CorpStore>,
        holder: String,
        opts: WorkerOptions,
        counters: Arc<Counters>,
        orgs: HashSet<String>,
    ) -> Worker {
        Worker {
            app,
            store,
            holder,
            opts,
            wake: Notify::new(),
            counters,
            orgs,
            busy: Mutex::new(HashSet::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        // Pruning is cheap and idempotent: every replica does it hourly.
        let mut next_prune = std::time::Instant::now();
        loop {
            if std::time::Instant::now() >= next_prune {
                next_prune += Duration::from_secs(3600);
                let before = now_ms() - self.opts.retention.as_millis() as i64;
                match self.store.inbox_prune(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(events = n, "pruned applied events"),
                    Err(e) => tracing::warn!(error = %e, "pruning applied events failed"),
                }
            }
            if *shutdown.borrow() {
                let tasks =
                    std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
                for t in tasks {
                    let _ = t.await;
                }
                return;
            }
            match self.store.inbox_due(now_ms()).await {
                Ok(corps) => {
                    for corp in corps.into_iter().filter(|c| self.orgs.contains(c)) {
                        self.clone().start(corp);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the inbox failed; retrying"),
            }
            tokio::select! {
                _ = self.wake.notified() => {
                    tokio::time::sleep(self.opts.batch_window).await;
                }
                _ = tokio::time::sleep(self.opts.poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Starts draining `corp` unless a task of this process already does.
    fn start(self: Arc<Self>, corp: String) {
        {
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            if !busy.insert(corp.clone()) {
                return;
            }
        }
        let me = self.clone();
        let task = tokio::spawn(async move {
            me.drain(&corp).await;
            me.busy
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&corp);
        });
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Applies `corp`'s due events batch after batch until none is due or
    /// another replica holds the org.
    async fn drain(&self, corp: &str) {
        loop {
            let claim = InboxClaim {
                corp: corp.to_string(),
                holder: self.holder.clone(),
                now: now_ms(),
                lease_ms: self.opts.lease.as_millis() as i64,
                limit: self.opts.batch_limit,
            };
            let rows = match self.store.inbox_claim(&claim).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(org = corp, error = %e, "claiming events failed");
                    return;
                }
            };
            if rows.is_empty() {
                return;
            }
            let ends = self.apply_batch(corp, &rows).await;
            for end in ends {
                if let Err(e) = self.store.inbox_finish(&end).await {
                    tracing::warn!(org = corp, error = %e, "recording applied events failed; they will be claimed again");
                    return;
                }
            }
        }
    }

    /// Applies one claimed batch (renewing the org's lease meanwhile) and
    /// says how each event ended.
    async fn apply_batch(&self, corp: &str, rows: &[InboxRow]) -> Vec<InboxEnd> {
        let end = |ids: Vec<i64>, outcome: InboxOutcome| InboxEnd {
            event_ids: ids,
            holder: self.holder.clone(),
            now: now_ms(),
            outcome,
        };
        let all: Vec<i64> = rows.iter().map(|r| r.event_id).collect();
        let attempts = rows.iter().map(|r| r.attempts).max().unwrap_or(1);
        let events: Vec<InboxEvent> = match rows.iter().map(to_event).collect() {
            Ok(ev) => ev,
            Err((id, why)) => {
                // A stored row this binary cannot read: set it aside, the
                // rest goes again at once.
                self.counters.failed(corp, 1);
                let rest: Vec<i64> = all.iter().copied().filter(|i| *i != id).collect();
                return vec![
                    end(vec![id], InboxOutcome::Failed { error: why }),
                    end(
                        rest,
                        InboxOutcome::Retry {
                            error: "an event of the batch was unreadable".into(),
                            next_attempt_at: now_ms(),
                        },
                    ),
                ];
            }
        };
        let result = {
            let handle = self.app.get_element(corp);
            let element = handle
                .as_ref()
                .ok()
                .and_then(|h| h.downcast_ref::<CorpElement>());
            let Some(element) = element else {
                let error =
                    format!("{corp} is not an org element of a built-in org Type in this app");
                self.counters.failed(corp, all.len() as u64);
                return vec![end(all, InboxOutcome::Failed { error })];
            };
            let ctx = match ApplyContext::for_element(element, self.store.as_ref()) {
                Ok(ctx) => ctx,
                Err(e) => {
                    self.counters.failed(corp, all.len() as u64);
                    return vec![end(
                        all,
                        InboxOutcome::Failed {
                            error: e.to_string(),
                        },
                    )];
                }
            };
            let apply = apply_events(&ctx, &events);
            tokio::pin!(apply);
            let renew_every = self.opts.lease / 3;
            loop {
                tokio::select! {
                    r = &mut apply => break r,
                    _ = tokio::time::sleep(renew_every) => {
                        let lease = format!("inbox:{corp}");
                        let ms = self.opts.lease.as_millis() as i64;
                        if let Err(e) = self.store.take_lease(&lease, &self.holder, now_ms(), ms).await {
                            tracing::warn!(org = corp, error = %e, "renewing the inbox lease failed");
                        }
                    }
                }
            }
        };
        match result {
            Ok(outcome) => {
                let run_id = outcome.report.as_ref().map(|r| r.run_id);
                self.counters.applied(corp, all.len() as u64);
                tracing::info!(org = corp, events = all.len(), run = ?run_id, "events applied");
                vec![end(all, InboxOutcome::Applied { run_id })]
            }
            Err(e) => {
                let error = e.to_string();
                if let Some(id) = e.event_id() {
                    // One bad event: set it aside and apply the rest at once.
                    tracing::warn!(org = corp, event = id, error = %error, "event set aside");
                    self.counters.failed(corp, 1);
                    let rest: Vec<i64> = all.iter().copied().filter(|i| *i != id).collect();
                    let now = now_ms();
                    return vec![
                        end(
                            vec![id],
                            InboxOutcome::Failed {
                                error: error.clone(),
                            },
                        ),
                        end(
                            rest,
                            InboxOutcome::Retry {
                                error,
                                next_attempt_at: now,
                            },
                        ),
                    ];
                }
                if e.is_retryable() && attempts < MAX_ATTEMPTS {
                    let delay = backoff(&self.opts, attempts);
                    tracing::warn!(org = corp, events = all.len(), attempts, retry_in_ms = delay.as_millis() as u64, error = %error, "applying events failed; retrying");
                    self.counters.retried(corp, all.len() as u64);
                    let next_attempt_at = now_ms() + delay.as_millis() as i64;
                    vec![end(
                        all,
                        InboxOutcome::Retry {
                            error,
                            next_attempt_at,
                        },
                    )]
                } else {
                    tracing::warn!(org = corp, events = all.len(), attempts, error = %error, "applying events failed for good; the next full sync is the backstop");
                    self.counters.failed(corp, all.len() as u64);
                    vec![end(all, InboxOutcome::Failed { error })]
                }
            }
        }
    }
}

/// The apply step's view of a stored row.
fn to_event(r: &InboxRow) -> Result<InboxEvent, (i64, String)> {
    let platform = match r.platform.as_str() {
        "wecom" => Platform::Wecom,
        "dingtalk" => Platform::DingTalk,
        other => return Err((r.event_id, format!("unknown platform {other:?}"))),
    };
    let payload = serde_json::from_str(&r.payload)
        .map_err(|e| (r.event_id, format!("stored payload is not JSON: {e}")))?;
    Ok(InboxEvent {
        id: r.event_id,
        corp: r.corp.clone(),
        platform,
        event_type: r.event_type.clone(),
        payload,
        received_at_ms: r.received_at,
        // Attempts before this one.
        attempts: (r.attempts - 1).max(0) as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_limit() {
        let o = WorkerOptions::default();
        assert_eq!(backoff(&o, 1), Duration::from_secs(1));
        assert_eq!(backoff(&o, 3), Duration::from_secs(4));
        assert_eq!(backoff(&o, 30), o.max_backoff);
    }
}
