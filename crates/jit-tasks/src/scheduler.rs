//! The scheduler a host runs: claims every due slot of every task in the
//! store, runs the slots it won, renews their leases, records how they
//! ended, and re-runs slots whose holder died (expired leases).

use crate::{now_ms, TaskElement, TaskSpec, TASK_TYPE};
use jit_core::{App, ElementKind};
use jit_store::{Claim, CorpStore, Firing, FiringClaim, FiringEnd, FiringState};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A task element of the app, its config checked.
#[derive(Debug, Clone)]
pub struct Task {
    /// The element's fullName.
    pub full_name: String,
    /// Its title.
    pub title: String,
    /// Its config.
    pub spec: TaskSpec,
}

/// The app's task elements (instances whose chain reaches
/// `tasks.NormalType`), by fullName, and the problems of those that could
/// not be built (fullName, reason).
pub fn task_elements(app: &App) -> (Vec<Task>, Vec<(String, String)>) {
    let mut tasks = Vec::new();
    let mut problems = Vec::new();
    for (name, def) in app.elements() {
        if def.kind != ElementKind::Instance || !reaches_task_type(app, name) {
            continue;
        }
        match app.get_element(name) {
            Ok(handle) => match handle.downcast_ref::<TaskElement>() {
                Some(t) => tasks.push(Task {
                    full_name: name.clone(),
                    title: t.title().to_string(),
                    spec: t.spec().clone(),
                }),
                None => problems.push((
                    name.clone(),
                    format!(
                        "implemented by {}, not the built-in task Type",
                        handle.type_name()
                    ),
                )),
            },
            Err(e) => problems.push((name.clone(), e.to_string())),
        }
    }
    (tasks, problems)
}

fn reaches_task_type(app: &App, name: &str) -> bool {
    let mut cur = app.get_element_define(name);
    // Chains are short; the bound only guards against a cycle the loader
    // already reported.
    for _ in 0..32 {
        let Some(def) = cur else { return false };
        match &def.type_name {
            Some(t) if t == TASK_TYPE => return true,
            Some(t) => cur = app.get_element_define(t),
            None => return false,
        }
    }
    false
}

/// How a scheduler behaves.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// This process's name in the firing table: unique per process (host
    /// name, pid and a random part), so a restarted replica is a new holder.
    pub holder: String,
    /// The longest sleep between two looks at the clock.
    pub tick: Duration,
    /// How often the store is asked for firings whose lease expired.
    pub recovery_every: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".into());
        SchedulerOptions {
            holder: format!(
                "{host}/{}/{:06x}",
                std::process::id(),
                rand::random::<u32>() & 0xff_ffff
            ),
            tick: Duration::from_millis(250),
            recovery_every: Duration::from_millis(500),
        }
    }
}

/// Runs the tasks of one app against one store.
pub struct Scheduler {
    app: App,
    store: Arc<dyn CorpStore>,
    tasks: Vec<Arc<Task>>,
    opts: SchedulerOptions,
}

impl Scheduler {
    /// A scheduler for the app's enabled tasks. `store` should be a
    /// connection of its own (not the one syncs write through): lease
    /// renewals must not queue behind a long apply.
    pub fn new(app: App, store: Arc<dyn CorpStore>, opts: SchedulerOptions) -> Scheduler {
        let (tasks, problems) = task_elements(&app);
        for (task, reason) in problems {
            tracing::warn!(task, reason, "task element not scheduled");
        }
        Scheduler {
            app,
            store,
            tasks: tasks
                .into_iter()
                .filter(|t| t.spec.enabled)
                .map(Arc::new)
                .collect(),
            opts,
        }
    }

    /// The tasks it runs.
    pub fn tasks(&self) -> &[Arc<Task>] {
        &self.tasks
    }

    /// This process's holder name.
    pub fn holder(&self) -> &str {
        &self.opts.holder
    }

    /// Runs until `stop` turns true, then waits for the firings it started
    /// (the host bounds that wait by its grace period; a firing cut short
    /// keeps its row `running`, and another replica re-runs it once its
    /// lease expires).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        if self.tasks.is_empty() {
            // Nothing to claim or recover: a replica without tasks leaves
            // the firing table to those that have them.
            while !*stop.borrow_and_update() {
                if stop.changed().await.is_err() {
                    return;
                }
            }
            return;
        }
        let mut running = tokio::task::JoinSet::new();
        let now = now_ms();
        let mut next: Vec<Option<i64>> = Vec::with_capacity(self.tasks.len());
        for task in &self.tasks {
            if task.spec.catch_up {
                self.catch_up(task, now, &mut running).await;
            }
            next.push(task.spec.schedule.next_after(now));
        }
        let by_name: HashMap<&str, &Arc<Task>> = self
            .tasks
            .iter()
            .map(|t| (t.full_name.as_str(), t))
            .collect();
        tracing::info!(
            tasks = self.tasks.len(),
            holder = %self.opts.holder,
            "task scheduler started"
        );
        let mut last_recovery = tokio::time::Instant::now();
        while !*stop.borrow() {
            let now = now_ms();
            for (task, slot) in self.tasks.iter().zip(next.iter_mut()) {
                while let Some(at) = slot.filter(|at| *at <= now) {
                    self.claim_and_run(task, at, &mut running).await;
                    *slot = task.spec.schedule.next_after(at);
                }
            }
            if last_recovery.elapsed() >= self.opts.recovery_every {
                last_recovery = tokio::time::Instant::now();
                match self.store.expired_firings(now).await {
                    Ok(expired) => {
                        for f in expired {
                            if let Some(task) = by_name.get(f.task.as_str()) {
                                self.claim_and_run(task, f.scheduled_at, &mut running).await;
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read expired task firings"),
                }
            }
            // Reap finished firings so the set does not grow.
            while running.try_join_next().is_some() {}
            let now = now_ms();
            let soonest = next.iter().flatten().min().copied();
            let wait = soonest
                .map(|at| Duration::from_millis((at - now).clamp(1, i64::MAX) as u64))
                .unwrap_or(self.opts.tick)
                .min(self.opts.tick);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
        tracing::info!(running = running.len(), "task scheduler stopping");
        while running.join_next().await.is_some() {}
    }

    /// Runs the last slot due before start once if it has no record and an
    /// older slot has one (a host ran the task before, and none ran it then).
    async fn catch_up(&self, task: &Arc<Task>, now: i64, running: &mut tokio::task::JoinSet<()>) {
        let Some(last) = task.spec.schedule.last_at_or_before(now) else {
            return;
        };
        match self.store.list_firings(&task.full_name, 1, None).await {
            Ok(newest) => {
                if newest.first().is_some_and(|f| f.scheduled_at < last) {
                    tracing::info!(task = %task.full_name, slot = last, "catching up a missed firing");
                    self.claim_and_run(task, last, running).await;
                }
            }
            Err(e) => {
                tracing::warn!(task = %task.full_name, error = %e, "cannot read task firings")
            }
        }
    }

    async fn claim_and_run(
        &self,
        task: &Arc<Task>,
        scheduled_at: i64,
        running: &mut tokio::task::JoinSet<()>,
    ) {
        let claim = FiringClaim {
            task: task.full_name.clone(),
            scheduled_at,
            holder: self.opts.holder.clone(),
            now: now_ms(),
            lease_ms: task.spec.lease.as_millis().min(i64::MAX as u128) as i64,
        };
        match self.store.claim_firing(&claim).await {
            Ok(Claim::Run(firing)) => {
                tracing::info!(
                    task = %task.full_name,
                    slot = scheduled_at,
                    attempt = firing.attempt,
                    firing_id = firing.firing_id,
                    "task firing"
                );
                let (app, store, task) = (self.app.clone(), self.store.clone(), task.clone());
                running.spawn(run_firing(app, store, task, firing));
            }
            Ok(Claim::Skipped(f)) => tracing::info!(
                task = %task.full_name,
                slot = scheduled_at,
                note = f.note.as_deref().unwrap_or(""),
                "task firing skipped"
            ),
            Ok(Claim::Taken) => {}
            Err(e) => {
                tracing::warn!(task = %task.full_name, slot = scheduled_at, error = %e, "cannot claim task firing")
            }
        }
    }
}

/// Calls the task's method while renewing the lease; records the outcome.
/// If the lease is lost (another replica took the slot over), the call is
/// dropped: the slot's result is that replica's. Dropping is safe: every
/// store write is one transaction.
async fn run_firing(app: App, store: Arc<dyn CorpStore>, task: Arc<Task>, firing: Firing) {
    let call = &task.spec.call;
    let lease = task.spec.lease;
    let outcome = {
        let work = async {
            let handle = app.get_element(&call.element).map_err(|e| e.to_string())?;
            handle
                .call(&call.method, call.args.clone())
                .await
                .map_err(|e| e.to_string())
        };
        tokio::pin!(work);
        let mut renew = tokio::time::interval(lease / 3);
        renew.tick().await;
        loop {
            tokio::select! {
                r = &mut work => break Some(r),
                _ = renew.tick() => {
                    let until = now_ms() + lease.as_millis() as i64;
                    match store.renew_firing(firing.firing_id, &firing.holder, firing.attempt, until).await {
                        Ok(true) => {}
                        Ok(false) => break None,
                        Err(e) => tracing::warn!(task = %task.full_name, error = %e, "cannot renew task lease"),
                    }
                }
            }
        }
    };
    let Some(outcome) = outcome else {
        tracing::warn!(
            task = %task.full_name,
            slot = firing.scheduled_at,
            "task firing lost its lease to another host; its call was stopped"
        );
        return;
    };
    let (state, result, error) = match outcome {
        Ok(v) => (FiringState::Succeeded, Some(v), None),
        Err(e) => (FiringState::Failed, None, Some(e)),
    };
    let end = FiringEnd {
        firing_id: firing.firing_id,
        holder: firing.holder.clone(),
        attempt: firing.attempt,
        state,
        finished_at: now_ms(),
        result,
        error: error.clone(),
    };
    match store.finish_firing(&end).await {
        Ok(true) => match error {
            None => {
                tracing::info!(task = %task.full_name, slot = firing.scheduled_at, "task firing succeeded")
            }
            Some(e) => {
                tracing::warn!(task = %task.full_name, slot = firing.scheduled_at, error = %e, "task firing failed")
            }
        },
        Ok(false) => tracing::warn!(
            task = %task.full_name,
            slot = firing.scheduled_at,
            "task firing finished after another host took it over; its result is not recorded"
        ),
        Err(e) => {
            tracing::warn!(task = %task.full_name, error = %e, "cannot record the end of a task firing")
        }
    }
}
