//! Task firings: the record of every scheduled slot of a task element, and
//! the claim/lease protocol that makes each slot run once across every host
//! sharing the store (see [`crate::CorpStore::claim_firing`]).

use serde_json::Value;

/// What happened to a firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FiringState {
    /// Claimed and not finished: its holder is calling (or died; then its
    /// lease expires and another host takes it over).
    Running,
    /// The call returned a result.
    Succeeded,
    /// The call failed (its error is recorded).
    Failed,
    /// Not run: the task's previous firing was still running.
    Skipped,
}

impl FiringState {
    /// The stored form (`running`, `succeeded`, `failed`, `skipped`).
    pub fn as_str(self) -> &'static str {
        match self {
            FiringState::Running => "running",
            FiringState::Succeeded => "succeeded",
            FiringState::Failed => "failed",
            FiringState::Skipped => "skipped",
        }
    }

    /// Reads the stored form back.
    pub fn parse(s: &str) -> Option<FiringState> {
        Some(match s {
            "running" => FiringState::Running,
            "succeeded" => FiringState::Succeeded,
            "failed" => FiringState::Failed,
            "skipped" => FiringState::Skipped,
            _ => return None,
        })
    }
}

/// One firing of a task: one scheduled slot. Times are milliseconds since
/// the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// Store-assigned id.
    pub firing_id: i64,
    /// The task element's fullName.
    pub task: String,
    /// The slot the schedule gave (the same on every host).
    pub scheduled_at: i64,
    /// 1 for the first run of the slot; each take-over after an expired
    /// lease adds one, so `attempt > 1` is a re-run.
    pub attempt: i64,
    /// What happened.
    pub state: FiringState,
    /// The host (replica id) that runs or ran the current attempt.
    pub holder: String,
    /// When the current attempt started.
    pub started_at: i64,
    /// Until when the holder owns a running firing.
    pub lease_until: i64,
    /// When it ended (`None` while running).
    pub finished_at: Option<i64>,
    /// The call's result, when it succeeded.
    pub result: Option<Value>,
    /// The call's error, when it failed.
    pub error: Option<String>,
    /// Why it was skipped, or whose lease expired before a re-run.
    pub note: Option<String>,
}

/// A host asking to run one slot of a task.
#[derive(Debug, Clone)]
pub struct FiringClaim {
    /// The task element's fullName.
    pub task: String,
    /// The slot.
    pub scheduled_at: i64,
    /// Who asks (a replica id, unique per process).
    pub holder: String,
    /// The claimer's clock, milliseconds since the epoch.
    pub now: i64,
    /// How long the lease lasts before it must be renewed.
    pub lease_ms: i64,
}

/// The answer to a [`FiringClaim`].
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The claimer owns the slot now and must run it: a new firing, or one
    /// taken over from a holder whose lease expired (`attempt > 1`).
    Run(Firing),
    /// The slot was recorded as skipped by this claimer: the task's previous
    /// firing still runs under a live lease.
    Skipped(Firing),
    /// Someone else has the slot (running under a live lease, or finished).
    Taken,
}

/// How a holder ends its firing.
#[derive(Debug, Clone)]
pub struct FiringEnd {
    /// The firing.
    pub firing_id: i64,
    /// Its holder (must still be the holder of this attempt).
    pub holder: String,
    /// The attempt being finished.
    pub attempt: i64,
    /// `Succeeded` or `Failed`.
    pub state: FiringState,
    /// When the call ended.
    pub finished_at: i64,
    /// The call's result.
    pub result: Option<Value>,
    /// The call's error.
    pub error: Option<String>,
}
