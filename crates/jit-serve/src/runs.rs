//! Sync runs started by this host: in the background, tracked for live
//! progress (Server-Sent Events), logged with their run ids and counted in
//! the metrics. Everything that outlives a run — its outcome, counts and
//! change lines — is in the store; what is kept here is only the live feed
//! of runs this process is running, so another replica loses nothing.

use crate::error::{from_failure, ApiError};
use crate::state::HostState;
use axum::response::sse::Event;
use futures_util::StreamExt;
use jit_core::{CallError, ElementHandle};
use jit_corps::{CorpClient, CorpElement, CorpError};
use jit_store::{RunOutcome, SyncRun};
use jit_sync::{FetchStats, Progress, ProgressEvent, SyncError, SyncOptions, SyncReport};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch, Notify};

/// Most events one live run keeps (progress is coalesced, so a run seldom
/// comes near; past it only the final event is still added).
const MAX_EVENTS: usize = 10_000;
/// Coalescing interval of `progress` events.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// How often a run that another process is running is looked up again.
const POLL_EVERY: Duration = Duration::from_millis(500);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Background work the host waits for on shutdown (calls and syncs).
#[derive(Clone, Default)]
pub struct Jobs(Arc<(AtomicUsize, Notify)>);

struct JobGuard(Jobs);

impl Drop for JobGuard {
    fn drop(&mut self) {
        (self.0).0 .0.fetch_sub(1, Ordering::SeqCst);
        (self.0).0 .1.notify_waiters();
    }
}

impl Jobs {
    /// Runs `fut` as a task the host waits for on shutdown. A call keeps
    /// running when its client goes away: a sync cut short would leave its
    /// run `running` until the next sync of the org.
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0 .0.fetch_add(1, Ordering::SeqCst);
        let guard = JobGuard(self.clone());
        tokio::spawn(async move {
            let _guard = guard;
            fut.await
        })
    }

    /// How many jobs are running.
    pub fn running(&self) -> usize {
        self.0 .0.load(Ordering::SeqCst)
    }

    /// Resolves when no job is running.
    pub async fn idle(&self) {
        loop {
            // Created before the check: it receives every later notification.
            let notified = self.0 .1.notified();
            if self.running() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One event of a run's live feed.
#[derive(Clone, Debug)]
struct RunEvent {
    name: &'static str,
    data: Value,
}

/// The live feed of one run this process is running.
pub(crate) struct LiveRun {
    org: String,
    run_id: OnceLock<i64>,
    events: Mutex<Vec<RunEvent>>,
    version: watch::Sender<usize>,
}

impl LiveRun {
    fn new(org: &str) -> Arc<LiveRun> {
        Arc::new(LiveRun {
            org: org.to_string(),
            run_id: OnceLock::new(),
            events: Mutex::new(Vec::new()),
            version: watch::channel(0).0,
        })
    }

    fn push(&self, name: &'static str, data: Value) {
        {
            let mut events = lock(&self.events);
            if events.len() >= MAX_EVENTS && name != "done" {
                return;
            }
            events.push(RunEvent { name, data });
        }
        self.version.send_modify(|v| *v += 1);
    }

    fn get(&self, i: usize) -> Option<RunEvent> {
        lock(&self.events).get(i).cloned()
    }
}

/// Live runs of this process by run id.
#[derive(Default)]
pub struct RunHub(Mutex<HashMap<i64, Arc<LiveRun>>>);

impl RunHub {
    fn insert(&self, id: i64, run: Arc<LiveRun>) {
        lock(&self.0).insert(id, run);
    }
    fn remove(&self, id: i64) {
        lock(&self.0).remove(&id);
    }
    fn get(&self, id: i64) -> Option<Arc<LiveRun>> {
        lock(&self.0).get(&id).cloned()
    }
}

/// Units found and done per kind, and when a `progress` event was last sent.
type Tallies = (BTreeMap<String, (u64, u64)>, Instant);

/// Feeds a run's live feed and log from the engine's progress.
struct RunProgress {
    state: Arc<HostState>,
    live: Arc<LiveRun>,
    client: Option<CorpClient>,
    /// The client's cumulative statistics when the run began: events show
    /// this run's calls only.
    baseline: FetchStats,
    started: Mutex<Option<oneshot::Sender<Result<i64, ApiError>>>>,
    tallies: Mutex<Tallies>,
}

impl RunProgress {
    fn calls(&self) -> Value {
        let Some(c) = &self.client else {
            return Value::Null;
        };
        let s = c.stats().since(&self.baseline);
        let e = s.endpoints.values();
        json!({
            "total": s.total_calls(),
            "retries": e.clone().map(|e| e.retries).sum::<u64>(),
            "throttled": e.clone().map(|e| e.throttled).sum::<u64>(),
            "budgetWaitMs": e.map(|e| e.budget_wait_ms).sum::<u64>(),
        })
    }

    fn push_progress(&self, tallies: &BTreeMap<String, (u64, u64)>) {
        let units: serde_json::Map<String, Value> = tallies
            .iter()
            .map(|(u, (found, done))| (u.clone(), json!({"found": found, "done": done})))
            .collect();
        self.live
            .push("progress", json!({"units": units, "calls": self.calls()}));
    }
}

impl Progress for RunProgress {
    fn on_event(&self, event: &ProgressEvent) {
        match event {
            ProgressEvent::Phase(p) => {
                let tallies = lock(&self.tallies).0.clone();
                self.push_progress(&tallies);
                tracing::debug!(run_id = self.live.run_id.get(), org = %self.live.org, phase = %p, "sync phase");
                self.live
                    .push("phase", json!({"phase": p, "calls": self.calls()}));
            }
            ProgressEvent::Discovered { unit, count } | ProgressEvent::Done { unit, count } => {
                let mut t = lock(&self.tallies);
                let entry = t.0.entry(unit.clone()).or_default();
                if matches!(event, ProgressEvent::Discovered { .. }) {
                    entry.0 += count;
                } else {
                    entry.1 += count;
                }
                if t.1.elapsed() >= PROGRESS_EVERY {
                    t.1 = Instant::now();
                    let snapshot = t.0.clone();
                    drop(t);
                    self.push_progress(&snapshot);
                }
            }
            ProgressEvent::Note(n) => self.live.push("note", json!({"message": n})),
        }
    }

    fn on_run_started(&self, run_id: i64) {
        let _ = self.live.run_id.set(run_id);
        self.state.runs.insert(run_id, self.live.clone());
        tracing::info!(run_id, org = %self.live.org, "sync run started");
        self.live
            .push("run", json!({"runId": run_id, "org": self.live.org}));
        if let Some(tx) = lock(&self.started).take() {
            let _ = tx.send(Ok(run_id));
        }
    }
}

/// Which org method a tracked run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunKind {
    /// `syncCorp`.
    Sync,
    /// `initCorp` (sync, then register the members as local users).
    Init,
}

fn outcome_str(o: RunOutcome) -> &'static str {
    match o {
        RunOutcome::Running => "running",
        RunOutcome::Applied => "applied",
        RunOutcome::DryRun => "dry_run",
        RunOutcome::Refused => "refused",
        RunOutcome::Failed => "failed",
    }
}

/// Starts a sync of a built-in org element in the background. The
/// receiver gets the run id as soon as the run is recorded, or the error
/// if the sync ended before recording one (busy, no client, store).
pub(crate) fn spawn_tracked(
    state: &Arc<HostState>,
    handle: ElementHandle,
    opts: SyncOptions,
    kind: RunKind,
) -> oneshot::Receiver<Result<i64, ApiError>> {
    let (tx, rx) = oneshot::channel();
    let st = state.clone();
    state.jobs.spawn(async move {
        let Some(corp) = handle.downcast_ref::<CorpElement>() else {
            let _ = tx.send(Err(ApiError::internal("not a built-in org element")));
            return;
        };
        let org = corp.full_name().to_string();
        let client = corp.client().ok();
        let progress = RunProgress {
            state: st.clone(),
            live: LiveRun::new(&org),
            baseline: client.as_ref().map(CorpClient::stats).unwrap_or_default(),
            client,
            started: Mutex::new(Some(tx)),
            tallies: Mutex::new((BTreeMap::new(), Instant::now())),
        };
        let result: Result<SyncReport, CorpError> = match kind {
            RunKind::Sync => corp.sync_corp(&opts, &progress).await,
            RunKind::Init => corp.init_corp(&opts, &progress).await.map(|(r, _)| r),
        };
        finish(&st, &progress, &org, kind, result).await;
    });
    rx
}

async fn finish(
    st: &Arc<HostState>,
    progress: &RunProgress,
    org: &str,
    kind: RunKind,
    result: Result<SyncReport, CorpError>,
) {
    let run_id = progress.live.run_id.get().copied();
    let what = match kind {
        RunKind::Sync => "sync",
        RunKind::Init => "initCorp",
    };
    let (outcome, rows, complete) = match &result {
        Ok(r) => (
            outcome_str(r.outcome),
            r.rows_written,
            Some(r.is_complete()),
        ),
        Err(CorpError::Sync(SyncError::Busy(_))) => ("busy", 0, None),
        Err(CorpError::Sync(SyncError::Refused { .. })) => ("refused", 0, None),
        Err(_) => ("failed", 0, None),
    };
    st.metrics.sync(org, outcome, rows);
    if let Ok(Some(n)) = result.as_ref().map(|r| r.missed_by_events) {
        st.metrics.missed_by_events(org, n);
    }
    match &result {
        Ok(r) => tracing::info!(
            run_id,
            org,
            what,
            outcome,
            rows_written = r.rows_written,
            complete = r.is_complete(),
            "sync run finished"
        ),
        Err(e) => tracing::warn!(run_id, org, what, outcome, error = %e, "sync run did not apply"),
    }
    if let Some(tx) = lock(&progress.started).take() {
        let e = match result {
            Err(e) => from_failure(e.failure_kind(), e.to_string()),
            Ok(_) => ApiError::internal("the sync recorded no run"),
        };
        let _ = tx.send(Err(e));
    }
    let Some(id) = run_id else { return };
    let mut done = match st.store.get_run(id).await {
        Ok(Some(run)) => done_event(&run),
        _ => json!({"runId": id, "org": org, "outcome": outcome}),
    };
    done["rowsWritten"] = json!(rows);
    if let Some(c) = complete {
        done["complete"] = json!(c);
    }
    progress.live.push("done", done);
    st.runs.remove(id);
}

/// The final event of a run, from its stored record.
fn done_event(run: &SyncRun) -> Value {
    json!({
        "runId": run.run_id,
        "org": run.corp,
        "outcome": run.outcome,
        "counts": run.counts,
        "error": run.error,
        "notes": run.notes,
        "startedAt": run.started_at,
        "finishedAt": run.finished_at,
    })
}

fn sse(i: usize, ev: &RunEvent) -> Event {
    Event::default()
        .id(i.to_string())
        .event(ev.name)
        .json_data(&ev.data)
        .unwrap_or_default()
}

enum Feed {
    Live {
        live: Arc<LiveRun>,
        next: usize,
        rx: watch::Receiver<usize>,
    },
    Poll {
        id: i64,
    },
    Finished,
}

/// The event stream of a stored run: the live feed of a run this process
/// runs (from its first event), the final event at once for a finished run,
/// and for a run another process is running, the final event when the
/// store shows it finished. Ends after `done`, or when the host shuts down.
pub(crate) fn event_stream(
    state: Arc<HostState>,
    run: SyncRun,
) -> impl futures_util::Stream<Item = Result<Event, Infallible>> {
    let start = match state.runs.get(run.run_id) {
        Some(live) => {
            let rx = live.version.subscribe();
            Feed::Live { live, next: 0, rx }
        }
        None if run.outcome == RunOutcome::Running => Feed::Poll { id: run.run_id },
        None => {
            let ev = RunEvent {
                name: "done",
                data: done_event(&run),
            };
            return futures_util::stream::once(async move { Ok(sse(0, &ev)) }).left_stream();
        }
    };
    futures_util::stream::unfold(start, move |feed| {
        let state = state.clone();
        let mut shutdown = state.shutdown.clone();
        async move {
            match feed {
                Feed::Finished => None,
                Feed::Live { live, next, mut rx } => loop {
                    rx.borrow_and_update();
                    if let Some(ev) = live.get(next) {
                        let out = sse(next, &ev);
                        let feed = if ev.name == "done" {
                            Feed::Finished
                        } else {
                            Feed::Live {
                                live,
                                next: next + 1,
                                rx,
                            }
                        };
                        return Some((Ok(out), feed));
                    }
                    tokio::select! {
                        r = rx.changed() => if r.is_err() { return None },
                        _ = shutdown.changed() => return None,
                    }
                },
                Feed::Poll { id } => loop {
                    tokio::select! {
                        _ = tokio::time::sleep(POLL_EVERY) => {}
                        _ = shutdown.changed() => return None,
                    }
                    match state.store.get_run(id).await {
                        Ok(Some(run)) if run.outcome != RunOutcome::Running => {
                            let ev = RunEvent {
                                name: "done",
                                data: done_event(&run),
                            };
                            return Some((Ok(sse(0, &ev)), Feed::Finished));
                        }
                        Ok(Some(_)) => continue,
                        _ => return None,
                    }
                },
            }
        }
    })
    .right_stream()
}

/// Logs and counts a sync run made through an element's own method
/// (`syncCorp`, `initCorp`: the call route, a plugin org's auto-init) by the
/// run id its report names, like the host's own runs.
pub(crate) fn log_called_sync(
    state: &HostState,
    org: &str,
    method: &str,
    result: &Result<Value, CallError>,
) {
    match result {
        Ok(v) => {
            // initCorp nests the sync report under `sync`.
            let report = v.get("sync").unwrap_or(v);
            let run_id = report.get("runId").and_then(Value::as_i64);
            let outcome = report
                .get("outcome")
                .and_then(Value::as_str)
                .unwrap_or("applied");
            let rows = report
                .get("rowsWritten")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            state.metrics.sync(org, outcome, rows);
            tracing::info!(
                run_id,
                org,
                what = method,
                outcome,
                rows_written = rows,
                "sync run finished"
            );
        }
        Err(CallError::Failed { kind, message, .. }) => {
            let outcome = match kind {
                jit_core::FailureKind::Busy => "busy",
                jit_core::FailureKind::Refused => "refused",
                _ => "failed",
            };
            state.metrics.sync(org, outcome, 0);
            // The message names the recorded run ("recorded as run N").
            tracing::warn!(org, what = method, outcome, error = %message, "sync run did not apply");
        }
        Err(_) => {}
    }
}

/// Starts `initCorp` in the background for every org element that has
/// never synced; each outcome is logged, and one failing org does not stop
/// the others.
pub(crate) async fn auto_init(state: Arc<HostState>) {
    for org in state.orgs.clone() {
        match state.store.last_successful_sync(&org).await {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(org = %org, error = %e, "auto-init: cannot read the last sync; skipped");
                continue;
            }
        }
        let handle = match state.app.get_element(&org) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(org = %org, error = %e, "auto-init: the org element cannot be loaded");
                continue;
            }
        };
        tracing::info!(org = %org, "auto-init: the org has never synced; running initCorp");
        if let Some(corp) = handle.downcast_ref::<CorpElement>() {
            let opts = corp.sync_options();
            // The outcome is logged and counted by the run itself.
            drop(spawn_tracked(&state, handle.clone(), opts, RunKind::Init));
        } else if handle.functions().iter().any(|f| f.name == "initCorp") {
            let st = state.clone();
            state.jobs.spawn(async move {
                let t0 = Instant::now();
                let result = handle.call("initCorp", Value::Null).await;
                st.metrics.call(&org, "initCorp", t0.elapsed());
                log_called_sync(&st, &org, "initCorp", &result);
                match result {
                    Ok(_) => tracing::info!(org = %org, "auto-init: initCorp done"),
                    Err(e) => {
                        tracing::warn!(org = %org, error = %e, "auto-init: initCorp failed")
                    }
                }
            });
        } else {
            tracing::info!(org = %org, type_name = handle.type_name(), "auto-init: its Type has no initCorp; sync it with syncCorp");
        }
    }
}
