//! The shared, platform-agnostic organization sync engine.
//!
//! A sync is: fetch the organization from an [`CorpSource`] (WeCom, DingTalk,
//! a plugin), load what the store holds, compute a [`SyncPlan`] with the pure
//! [`plan`] function, run the [`safety`] checks, and apply the plan in one
//! store transaction. Every run — applied, dry, refused or failed — is
//! recorded in the store with its per-object change lines, and the caller
//! gets a [`SyncReport`] or a [`SyncError`] that says exactly why and how to
//! override.
//!
//! The safety rules are what the existing syncers lack:
//! - an incomplete upstream read offlines nobody and removes nothing (those
//!   changes are reported as skipped);
//! - a plan that would offline more than `max_offline_ratio` of the active
//!   members is refused unless forced;
//! - an upstream read with no members while the store has members is refused
//!   unless forced;
//! - members are never deleted, only offlined; they come back with the same
//!   identity.
//!
//! ```no_run
//! use jit_sync::{run_sync, SyncOptions, CorpSource, NoProgress};
//! # async fn demo(source: &dyn CorpSource, store: &dyn jit_store::CorpStore, corp: &jit_org::CorpRecord)
//! # -> Result<(), jit_sync::SyncError> {
//! let opts = SyncOptions { dry_run: true, ..SyncOptions::default() };
//! let report = run_sync(source, store, corp, &opts, &NoProgress).await?;
//! for c in &report.changes {
//!     println!("{:?} {} {:?}: {}", c.object, c.id, c.kind, c.reason);
//! }
//! # Ok(()) }
//! ```

mod file_source;
mod plan;
pub mod safety;

pub use file_source::JsonFileSource;

pub use jit_org::{
    CountingProgress, EndpointStats, FetchOptions, FetchStats, NoProgress, Progress, ProgressEvent,
};
pub use plan::{plan, plan_owned};

use jit_org::{Change, ChangeCounts, CorpRecord, CorpSnapshot, FetchFailure, Provider, SyncPlan};
use jit_store::{CorpStore, IdentityConflict, RunKind, RunOutcome, StoreError, SyncRun};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Why a source could not read its organization.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The platform client failed. The client's own typed error is inside
    /// (for the built-in clients a `jit_apiclient::ApiError`, with the API
    /// path and errcode): [`SourceError::downcast_ref`] reaches it, so the
    /// engine needs no HTTP client of its own.
    #[error(transparent)]
    Platform(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// Anything else (bad plugin data file, ...).
    #[error("{0}")]
    Other(String),
}

impl SourceError {
    /// Wraps a platform client's error.
    pub fn platform(e: impl std::error::Error + Send + Sync + 'static) -> SourceError {
        SourceError::Platform(Box::new(e))
    }

    /// The platform client's error, if it is a `T`.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        match self {
            SourceError::Platform(e) => e.downcast_ref::<T>(),
            SourceError::Other(_) => None,
        }
    }
}

/// Something that can read a whole organization: the WeCom and DingTalk
/// clients, and plugin org types.
#[async_trait::async_trait]
pub trait CorpSource: Send + Sync {
    /// The platform the identities come from.
    fn provider(&self) -> Provider;

    /// The platform corp id.
    fn corp_id(&self) -> String;

    /// Reads the organization. Parts that fail to load go into
    /// `CorpSnapshot::failures` (the engine then offlines nobody); an error
    /// means nothing usable was read.
    async fn fetch(
        &self,
        opts: &FetchOptions,
        progress: &dyn Progress,
    ) -> Result<CorpSnapshot, SourceError>;

    /// Cumulative call statistics of the source (empty if it has none).
    fn stats(&self) -> FetchStats {
        FetchStats::default()
    }
}

/// Something that reads only what changed (the objects platform events
/// named) rather than the whole organization.
///
/// A read of changes is never the full truth of the org, so it does not
/// return a smaller org: it returns the stored org (`local`) with every
/// object it read replaced by what the platform answered now, and every
/// object the platform answered is gone (WeCom 60111, DingTalk 60121 for a
/// member) removed. Everything it did not read stays exactly as stored, so
/// [`plan`] changes what was read and nothing else, with the same rules as
/// a full sync (absent members are offlined, never deleted).
#[async_trait::async_trait]
pub trait ChangeSource: Send + Sync {
    /// The platform the identities come from.
    fn provider(&self) -> Provider;

    /// Reads the changed objects and returns `local` with them replaced.
    async fn read_changes(
        &self,
        local: &CorpSnapshot,
        opts: &FetchOptions,
    ) -> Result<CorpSnapshot, SourceError>;

    /// Cumulative call statistics of the source (empty if it has none).
    fn stats(&self) -> FetchStats {
        FetchStats::default()
    }
}

/// How a sync runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncOptions {
    /// What to read (scope, roles, admins).
    #[serde(default)]
    pub fetch: FetchOptions,
    /// Compute and record the plan, write nothing else.
    #[serde(default)]
    pub dry_run: bool,
    /// Apply even if the safety checks refuse.
    #[serde(default)]
    pub force: bool,
    /// Largest share of the current local members one run may offline
    /// (0.10 = 10 %); config `sync.maxOfflineRatio`.
    #[serde(default = "default_ratio")]
    pub max_offline_ratio: f64,
    /// How long to wait for another sync of the same org to finish before
    /// giving up with [`SyncError::Busy`], in seconds (0: refuse at once);
    /// config `sync.lockWaitSecs`.
    #[serde(default)]
    pub lock_wait_secs: f64,
    /// Offlining up to this many members is always allowed, whatever the
    /// ratio; config `sync.maxOfflineCount`. The default, 1, lets a small
    /// org (where 10 % rounds down to 0) lose one member per run.
    #[serde(default = "default_count")]
    pub max_offline_count: usize,
    /// The org receives platform events (config `events`): a full sync's
    /// changes are differences the events missed, counted in
    /// [`SyncReport::missed_by_events`] and the run record (reconciliation).
    #[serde(default)]
    pub reconcile_events: bool,
}

fn default_ratio() -> f64 {
    0.10
}

fn default_count() -> usize {
    1
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            fetch: FetchOptions::default(),
            dry_run: false,
            force: false,
            max_offline_ratio: default_ratio(),
            max_offline_count: default_count(),
            lock_wait_secs: 0.0,
            reconcile_events: false,
        }
    }
}

/// Wall-clock time of each phase, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Durations {
    /// Reading upstream.
    pub fetch_ms: u64,
    /// Loading the local snapshot.
    pub load_ms: u64,
    /// Planning and safety checks.
    pub plan_ms: u64,
    /// Applying (0 for a dry run).
    pub apply_ms: u64,
    /// Everything.
    pub total_ms: u64,
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// The recorded run.
    pub run_id: i64,
    /// Applied or DryRun (refusals and failures are errors).
    pub outcome: RunOutcome,
    /// Change lines per kind (`created`, `updated`, `moved`, `offlined`, ...).
    pub counts: ChangeCounts,
    /// Per-object change lines, skipped ones included.
    pub changes: Vec<Change>,
    /// The plan (what was applied, or would be for a dry run).
    pub plan: SyncPlan,
    /// Rows written to org tables (0 for a dry run or an empty plan).
    pub rows_written: u64,
    /// Notes from the read (withheld fields, refused admin list, ...).
    pub notes: Vec<String>,
    /// Parts of the read that failed (non-empty = partial sync: nothing was offlined).
    pub failures: Vec<FetchFailure>,
    /// Identity conflicts found while binding members (reported, never merged).
    pub conflicts: Vec<IdentityConflict>,
    /// API calls of this run, per endpoint.
    pub fetch_stats: FetchStats,
    /// Time per phase.
    pub durations: Durations,
    /// Members in the upstream read.
    pub upstream_members: usize,
    /// Departments in the upstream read.
    pub upstream_depts: usize,
    /// Whether the run was a full sync or a batch of events.
    pub kind: RunKind,
    /// Reconciliation: for a full sync with [`SyncOptions::reconcile_events`],
    /// how many of its changes the org's events had missed.
    pub missed_by_events: Option<u64>,
}

impl SyncReport {
    /// True when the upstream read was complete (no failures).
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Why a sync did not apply.
///
/// Each message embeds its cause (so `to_string()` alone says everything);
/// the typed cause stays in a field for callers that match on it, and is not
/// also returned by `source()`, so chain-printing reporters show it once.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Another sync of the same org holds its lock (this or another
    /// process, this or another host); nothing was read or written.
    /// The message names the running run: "a sync of corps.X is already
    /// running (run N, started at T)".
    #[error(transparent)]
    Busy(StoreError),
    /// The upstream read failed; nothing was written but the run record.
    #[error("sync of {corp} failed reading {provider}: {error}; nothing was changed{}", run_note(*run_id))]
    Fetch {
        /// Corp fullName.
        corp: String,
        /// Provider name.
        provider: String,
        /// The recorded run, if recording worked.
        run_id: Option<i64>,
        /// What failed.
        error: SourceError,
    },
    /// The safety checks refused the plan; nothing was written but the run record.
    #[error("sync of {corp} refused: {reason}; nothing was changed{}. {hint}", run_note(*run_id))]
    Refused {
        /// Corp fullName.
        corp: String,
        /// The recorded run, if recording worked.
        run_id: Option<i64>,
        /// Why, with the counts.
        reason: String,
        /// How to override.
        hint: String,
        /// The refused plan (for inspection).
        plan: Box<SyncPlan>,
    },
    /// The store failed; its transaction was rolled back.
    #[error("sync of {corp} failed in the store while {operation}: {error}{}", run_note(*run_id))]
    Store {
        /// Corp fullName.
        corp: String,
        /// What was being done.
        operation: String,
        /// The recorded run, if recording worked.
        run_id: Option<i64>,
        /// The store's error.
        error: StoreError,
    },
}

fn run_note(run_id: Option<i64>) -> String {
    run_id.map_or_else(String::new, |id| format!(" (recorded as run {id})"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Runs `load` and `read` side by side and returns both; when the load
/// fails, the read is dropped there and then (its calls in flight
/// cancelled) rather than finished for nothing.
async fn load_beside<L, E, R>(
    load: impl std::future::Future<Output = Result<L, E>>,
    read: impl std::future::Future<Output = R>,
) -> Result<(L, R), E> {
    tokio::pin!(load, read);
    let mut done = None;
    let loaded = loop {
        tokio::select! {
            loaded = &mut load => break loaded?,
            r = &mut read, if done.is_none() => done = Some(r),
        }
    };
    let done = match done {
        Some(r) => r,
        None => read.await,
    };
    Ok((loaded, done))
}

/// A full read and its milliseconds.
async fn timed_fetch(
    source: &dyn CorpSource,
    opts: &FetchOptions,
    progress: &dyn Progress,
) -> (Result<CorpSnapshot, SourceError>, u64) {
    let t = Instant::now();
    let r = source.fetch(opts, progress).await;
    (r, ms(t.elapsed()))
}

/// Runs one sync of `corp` from `source` into `store`.
///
/// Order: take the org's sync lock (held across processes and hosts, so two
/// syncs of one org never interleave) → record the run as `running` →
/// load local snapshot → fetch → [`plan_owned`] → [`safety::check`] → dry-run
/// (record the plan, write nothing) or apply in one transaction, finishing
/// the same run record. Refusals and failures finish the run record too and
/// are returned as errors; a busy lock is [`SyncError::Busy`] and records
/// nothing.
pub async fn run_sync(
    source: &dyn CorpSource,
    store: &dyn CorpStore,
    corp: &CorpRecord,
    opts: &SyncOptions,
    progress: &dyn Progress,
) -> Result<SyncReport, SyncError> {
    run(Read::Full(source), store, corp, opts, progress).await
}

/// Applies what a [`ChangeSource`] read (the objects some platform events
/// named) through the same lock, plan, safety checks, transaction and run
/// record as [`run_sync`]. The stored org is loaded first and handed to the
/// source, which returns the org as it is after the read: the stored one
/// with the objects it read replaced (see [`ChangeSource`]), so the plan
/// changes those and nothing else.
pub async fn run_change_sync(
    source: &dyn ChangeSource,
    store: &dyn CorpStore,
    corp: &CorpRecord,
    opts: &SyncOptions,
    progress: &dyn Progress,
) -> Result<SyncReport, SyncError> {
    run(Read::Changes(source), store, corp, opts, progress).await
}

/// What a run reads: the whole org, or the changes a source knows of.
#[derive(Clone, Copy)]
enum Read<'a> {
    Full(&'a dyn CorpSource),
    Changes(&'a dyn ChangeSource),
}

impl Read<'_> {
    fn provider(&self) -> Provider {
        match self {
            Read::Full(s) => s.provider(),
            Read::Changes(s) => s.provider(),
        }
    }

    fn stats(&self) -> FetchStats {
        match self {
            Read::Full(s) => s.stats(),
            Read::Changes(s) => s.stats(),
        }
    }

    fn kind(&self) -> RunKind {
        match self {
            Read::Full(_) => RunKind::Sync,
            Read::Changes(_) => RunKind::Event,
        }
    }
}

/// Members (read or stored, and written by the apply) from which the engine
/// hands what the plan freed back to the system before the apply
/// ([`jit_alloc::release_free_memory`]).
const TRIM_AFTER_PLAN_FROM: usize = 50_000;

async fn run(
    read: Read<'_>,
    store: &dyn CorpStore,
    corp: &CorpRecord,
    opts: &SyncOptions,
    progress: &dyn Progress,
) -> Result<SyncReport, SyncError> {
    let t0 = Instant::now();
    let name = corp.full_name.clone();
    let store_err = |operation: &str, run_id: Option<i64>, error: StoreError| SyncError::Store {
        corp: name.clone(),
        operation: operation.to_string(),
        run_id,
        error,
    };
    store
        .upsert_corp(corp)
        .await
        .map_err(|e| store_err("recording the organization", None, e))?;
    let wait = Duration::try_from_secs_f64(opts.lock_wait_secs).unwrap_or(Duration::ZERO);
    let mut attempt = store.lock_sync(&corp.full_name, wait).await;
    if let Err(StoreError::SyncBusy { run_id: None, .. }) = attempt {
        // The holder took the lock but has not recorded its run yet (it
        // does so right after): look once more, so the refusal can name it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        attempt = store.lock_sync(&corp.full_name, Duration::ZERO).await;
    }
    let lock = match attempt {
        Ok(lock) => lock,
        Err(e @ StoreError::SyncBusy { .. }) => return Err(SyncError::Busy(e)),
        Err(e) => return Err(store_err("taking the org's sync lock", None, e)),
    };
    let started_at = now_ms();
    let base_run =
        |run_id: i64, outcome: RunOutcome, error: Option<String>, notes: Vec<String>| SyncRun {
            run_id,
            corp: name.clone(),
            started_at,
            finished_at: now_ms(),
            outcome,
            counts: ChangeCounts::new(),
            error,
            notes,
            kind: read.kind(),
            missed_by_events: None,
            calls: None,
        };
    let run_id = store
        .begin_run(&base_run(0, RunOutcome::Running, None, Vec::new()))
        .await
        .map_err(|e| store_err("recording the start of the run", None, e))?;
    progress.on_run_started(run_id);

    progress.on_event(&ProgressEvent::Phase("fetch".into()));
    let stats_before = read.stats();
    // A failed run keeps the calls it made before failing: a read that
    // failed under throttling shows it in the run history.
    let fail_run = |error: String, notes: Vec<String>| SyncRun {
        calls: Some(jit_store::RunCalls::from_stats(
            &read.stats().since(&stats_before),
        )),
        ..base_run(run_id, RunOutcome::Failed, Some(error), notes)
    };
    let fetch_failed = |run_id: Option<i64>, error: SourceError| SyncError::Fetch {
        corp: name.clone(),
        provider: read.provider().to_string(),
        run_id,
        error,
    };
    // A full read allocates, and frees, an org-sized read; a read of
    // changes (an event batch) does not, and trimming walks every free list
    // (milliseconds), which a serving host would pay per batch for nothing.
    let trim = matches!(read, Read::Full(_));
    let release = || {
        if trim {
            jit_alloc::release_free_memory();
        }
    };
    // What the previous run (or anything else the host did) freed goes back
    // to the system before this one allocates an org: with glibc, memory
    // freed on one thread's arena otherwise stays resident beside the new.
    release();
    // A read of changes needs the stored org to know what to read, so it
    // is loaded first. A full read does not: the store loads it on its own
    // thread (SQLite) or connection (PostgreSQL) while the platform is read,
    // which takes it off the sync's path (~1 s for 300,000 members). Its
    // transient rows then overlap the read's first seconds only; the peak
    // is later, when the stored org, the read and the plan coexist. Both
    // run under the org's lock, so the stored org cannot change meanwhile.
    // If the load fails, the read is dropped there and then.
    let timed = |t: Instant| ms(t.elapsed());
    let load = async {
        let t = Instant::now();
        let local = store.load_snapshot(&corp.full_name).await?;
        Ok((local, timed(t)))
    };
    let loaded = match read {
        Read::Full(source) => load_beside(load, timed_fetch(source, &opts.fetch, progress)).await,
        Read::Changes(source) => match load.await {
            Ok(local) => {
                let t = Instant::now();
                let r = source.read_changes(&local.0, &opts.fetch).await;
                Ok((local, (r, timed(t))))
            }
            Err(e) => Err(e),
        },
    };
    let ((local, load_ms), (read_result, fetch_ms)) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            let run = fail_run(format!("loading the stored organization: {e}"), Vec::new());
            let recorded = store.record_run(&run, &[]).await.ok();
            return Err(store_err("loading the stored organization", recorded, e));
        }
    };
    let remote = match read_result {
        Ok(r) => r,
        Err(e) => {
            let run = fail_run(e.to_string(), Vec::new());
            let recorded = store.record_run(&run, &[]).await.ok();
            return Err(fetch_failed(recorded, e));
        }
    };
    let fetch_stats = read.stats().since(&stats_before);
    let calls = Some(jit_store::RunCalls::from_stats(&fetch_stats));

    progress.on_event(&ProgressEvent::Phase("plan".into()));
    let t_plan = Instant::now();
    // What the report and the safety checks need from the read is taken
    // first: the plan consumes it, moving its members into the plan rather
    // than copying them (for a first sync of a large org, one copy of every
    // member instead of two).
    let upstream_members = remote.members.len();
    let upstream_depts = remote.depts.len();
    let failures = remote.failures.clone();
    let mut notes = remote.notes.clone();
    let counted = safety::Counts::new(&local, &remote);
    let mut the_plan = plan_owned(&local, remote, opts);
    // The stored org is done with too, and what the plan did not keep of
    // the read (and the stored org) goes back to the system before the
    // apply allocates its rows: for an org-sized read only, as below that
    // walking the free lists costs the sync more time (~7 ms at 20,000
    // members) than the few MB it returns are worth. An apply allocates in
    // proportion to what it writes, so before one that writes few members
    // (a repeat of a large org) there is no peak to keep down: the stored
    // org is then freed, and the memory trimmed, off the sync's path once
    // the apply is done (at 300,000 members ~0.25 s that a repeat no longer
    // waits for).
    let org_sized = local.members.len().max(upstream_members) >= TRIM_AFTER_PLAN_FROM;
    let apply_sized =
        the_plan.upsert_members.len() + the_plan.offline_members.len() >= TRIM_AFTER_PLAN_FROM;
    let mut freed_after_apply = None;
    if trim && org_sized && !apply_sized {
        freed_after_apply = Some(local);
    } else {
        drop(local);
        if org_sized {
            release();
        }
    }
    let verdict = counted.check(&the_plan, opts);
    let plan_ms = ms(t_plan.elapsed());
    notes.extend(verdict.notes.iter().cloned());
    let counts = the_plan.counts();
    // Reconciliation: with events keeping the store current, whatever a
    // full sync still changes is a difference the events missed.
    let missed_by_events = (opts.reconcile_events && matches!(read, Read::Full(_))).then(|| {
        the_plan
            .changes
            .iter()
            .filter(|c| c.kind != jit_org::ChangeKind::Skipped)
            .count() as u64
    });
    // Once there is a plan, every record of the run carries its counts.
    let planned_run = |outcome: RunOutcome, error: Option<String>, notes: Vec<String>| SyncRun {
        counts: counts.clone(),
        missed_by_events,
        calls,
        ..base_run(run_id, outcome, error, notes)
    };

    if let Some(refusal) = verdict.refusal {
        let run = planned_run(RunOutcome::Refused, Some(refusal.reason.clone()), notes);
        let recorded = store.record_run(&run, &the_plan.changes).await.ok();
        return Err(SyncError::Refused {
            corp: name.clone(),
            run_id: recorded,
            reason: refusal.reason,
            hint: refusal.hint,
            plan: Box::new(the_plan),
        });
    }

    let mut report = SyncReport {
        run_id,
        outcome: RunOutcome::DryRun,
        counts: counts.clone(),
        // Filled from the plan once it is applied: a copy held during the
        // apply would only add to the peak memory of a large sync.
        changes: Vec::new(),
        plan: SyncPlan::default(),
        rows_written: 0,
        notes: notes.clone(),
        failures,
        conflicts: Vec::new(),
        fetch_stats,
        durations: Durations {
            fetch_ms,
            load_ms,
            plan_ms,
            apply_ms: 0,
            total_ms: 0,
        },
        upstream_members,
        upstream_depts,
        kind: read.kind(),
        missed_by_events,
    };
    let failed_parts = report.failures.iter().filter(|f| !f.out_of_range).count();
    let failure_note = (failed_parts > 0).then(|| {
        format!(
            "upstream read incomplete ({failed_parts} part(s) failed): what those parts hold was kept as stored and nobody was offlined"
        )
    });
    if let Some(n) = &failure_note {
        report.notes.push(n.clone());
    }
    if opts.dry_run {
        let run = planned_run(RunOutcome::DryRun, failure_note, report.notes.clone());
        store
            .record_run(&run, &the_plan.changes)
            .await
            .map_err(|e| store_err("recording the dry run", Some(run_id), e))?;
        report.changes = the_plan.changes.clone();
        report.plan = the_plan;
        report.durations.total_ms = ms(t0.elapsed());
        return Ok(report);
    }

    progress.on_event(&ProgressEvent::Phase("apply".into()));
    let t_apply = Instant::now();
    let run = planned_run(RunOutcome::Applied, failure_note, report.notes.clone());
    // A PostgreSQL lock lives on a session of its own: if that session
    // ended (a database restart), another host may hold the lock by now,
    // so this run must not write.
    let result = if lock.is_lost() {
        Err(StoreError::Internal {
            operation: format!("apply plan for {name}"),
            message: "the org's sync lock was lost (its database session ended), so another sync may be running; \
                      nothing was applied: run the sync again"
                .to_string(),
        })
    } else {
        // Handed over, not lent: the store may apply on another thread
        // without copying the plan, and gives it back when done.
        let shared = std::sync::Arc::new(the_plan);
        // The report's copy of the change lines is made while the store
        // writes (on its own thread for SQLite) rather than after: for a
        // first sync of 300,000 members that copy is ~0.2 s of allocation.
        let (applied, changes) =
            tokio::join!(store.apply_shared_plan(corp, shared.clone(), &run), async {
                shared.changes.clone()
            });
        report.changes = changes;
        the_plan = std::sync::Arc::try_unwrap(shared).unwrap_or_else(|p| (*p).clone());
        applied
    };
    drop(lock);
    // The store's transaction buffers are freed (and the stored org, when
    // the apply was small): handed back, so the host holds only the report
    // after a large sync. Off the caller's path:
    // trimming walks every free list (about 0.1 s after a 300,000-member
    // apply), and nothing the caller does next needs it done first.
    if trim {
        let free = move || {
            drop(freed_after_apply);
            jit_alloc::release_free_memory();
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(free)),
            Err(_) => free(),
        }
    }
    let applied = match result {
        Ok(a) => a,
        Err(e) => {
            let mut failed = run.clone();
            failed.outcome = RunOutcome::Failed;
            failed.error = Some(format!("applying the plan: {e}"));
            failed.finished_at = now_ms();
            let recorded = store.record_run(&failed, &the_plan.changes).await.ok();
            return Err(store_err("applying the plan", recorded, e));
        }
    };
    report.outcome = RunOutcome::Applied;
    report.run_id = applied.run_id;
    report.rows_written = applied.rows_written;
    report.conflicts = applied.conflicts;
    report.plan = the_plan;
    report.durations.apply_ms = ms(t_apply.elapsed());
    report.durations.total_ms = ms(t0.elapsed());
    Ok(report)
}

#[cfg(test)]
mod plan_tests;

/// A source that hands out a snapshot already read — by a plugin, or earlier
/// in the same operation (`initCorp` reads once for both the sync and the
/// registration) — so the engine can plan and apply it like any other read.
#[derive(Debug, Clone)]
pub struct SnapshotSource {
    /// The organization as read.
    pub snapshot: CorpSnapshot,
    /// Whose identities its members are.
    pub provider: Provider,
}

#[async_trait::async_trait]
impl CorpSource for SnapshotSource {
    fn provider(&self) -> Provider {
        self.provider.clone()
    }

    fn corp_id(&self) -> String {
        self.snapshot.corp_id.clone()
    }

    async fn fetch(
        &self,
        _opts: &FetchOptions,
        _progress: &dyn Progress,
    ) -> Result<CorpSnapshot, SourceError> {
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod load_beside_tests {
    use super::load_beside;
    use std::time::Duration;

    #[tokio::test]
    async fn a_failed_load_drops_the_read_beside_it_at_once() {
        let read = std::future::pending::<()>();
        let loaded = tokio::time::timeout(
            Duration::from_secs(5),
            load_beside(async { Err::<(), &str>("broken store") }, read),
        )
        .await
        .expect("the failed load did not wait for the read");
        assert_eq!(loaded, Err("broken store"));
    }

    #[tokio::test]
    async fn a_load_and_a_read_that_succeed_both_come_back_whichever_ends_first() {
        for (load_ms, read_ms) in [(1, 30), (30, 1)] {
            let load = async move {
                tokio::time::sleep(Duration::from_millis(load_ms)).await;
                Ok::<_, ()>(("stored", load_ms))
            };
            let read = async move {
                tokio::time::sleep(Duration::from_millis(read_ms)).await;
                "read"
            };
            let loaded = load_beside(load, read).await;
            assert_eq!(loaded, Ok((("stored", load_ms), "read")));
        }
    }
}
