//! The store contract. Every backend implements [`CorpStore`]; the sync engine,
//! the org types and plugins only ever see this trait.

use jit_org::{Admin, ChangeKind, CorpRecord, CorpSnapshot, Member, ObjectKind, SyncPlan};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Errors from a store. Messages name the database (URL without password) and
/// the operation; they never contain secrets.
///
/// A failure of the database driver keeps the driver's typed error
/// ([`StoreError::driver_error`]) and its [`StoreErrorKind`]
/// ([`StoreError::kind`]), so callers can tell a unique-key violation from a
/// dropped connection. Every message already embeds its cause's text, so
/// `source()` is `None`: printing the chain never repeats it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Could not open / connect.
    #[error("cannot open store {location}: {message}{}", cause_suffix(cause.as_ref()))]
    Open {
        /// Path or URL with the password removed.
        location: String,
        /// What failed (e.g. `connect`, `cannot switch to WAL`).
        message: String,
        /// The driver's (or the file system's) error, when it was one.
        cause: Option<DriverError>,
    },
    /// The database was written by a newer binary; nothing was touched.
    #[error("store {location} has schema version {found}, newer than this binary knows ({known}); upgrade jit")]
    SchemaTooNew {
        /// Path or URL with the password removed.
        location: String,
        /// Version found in the database.
        found: i64,
        /// Highest version this binary knows.
        known: i64,
    },
    /// The corp is not known to the store.
    #[error("organization {0} is not in the store (run syncCorp first)")]
    UnknownCorp(String),
    /// A member is not known in that corp.
    #[error("member {member_id} is not in organization {corp}")]
    UnknownMember {
        /// Corp fullName.
        corp: String,
        /// Member id.
        member_id: String,
    },
    /// Bad input (e.g. an unknown role id, a plan placing a member in a
    /// department that is neither stored nor in the plan); nothing changed.
    #[error("{0}")]
    Invalid(String),
    /// Another holder (this or another process, on this or another host)
    /// has the org's sync lock; see [`CorpStore::lock_sync`].
    #[error("a sync of {corp} is already running{}", crate::lock::busy_detail(*run_id, *started_at))]
    SyncBusy {
        /// Corp fullName.
        corp: String,
        /// The newest `running` run of the corp, if one is recorded.
        run_id: Option<i64>,
        /// When that run started, milliseconds since the epoch.
        started_at: Option<i64>,
    },
    /// A database operation failed; the transaction was rolled back.
    #[error("store {operation} failed: {cause}")]
    Database {
        /// What was being done (e.g. `apply plan for corps.X`).
        operation: String,
        /// The driver's error, as it was.
        cause: DriverError,
    },
    /// The store found something it cannot handle that is not the driver's
    /// doing (a stored value this binary does not know, a worker task that
    /// died); the transaction was rolled back.
    #[error("store {operation} failed: {message}")]
    Internal {
        /// What was being done.
        operation: String,
        /// What went wrong.
        message: String,
    },
}

/// `": <cause>"`, or nothing.
fn cause_suffix(cause: Option<&DriverError>) -> String {
    cause.map(|c| format!(": {c}")).unwrap_or_default()
}

impl StoreError {
    /// What kind of failure this is, for callers that react differently
    /// (retry on [`StoreErrorKind::Busy`] or [`StoreErrorKind::ConnectionLost`],
    /// report a [`StoreErrorKind::UniqueViolation`] as a conflict, ...).
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            StoreError::Database { cause, .. } => cause.kind(),
            StoreError::Open {
                cause: Some(cause), ..
            } => cause.kind(),
            StoreError::SyncBusy { .. } => StoreErrorKind::Busy,
            _ => StoreErrorKind::Other,
        }
    }

    /// The driver's own error, when the driver failed.
    pub fn driver_error(&self) -> Option<&DriverError> {
        match self {
            StoreError::Database { cause, .. } => Some(cause),
            StoreError::Open { cause, .. } => cause.as_ref(),
            _ => None,
        }
    }
}

/// What kind of failure a [`StoreError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// A unique or primary key was violated (e.g. two concurrent applies
    /// creating the same members).
    UniqueViolation,
    /// A foreign key was violated.
    ForeignKey,
    /// The connection to the server dropped (server restart, network,
    /// terminated session); retrying on a new connection may succeed.
    ConnectionLost,
    /// Another holder has a lock: a locked SQLite database, a PostgreSQL lock
    /// timeout, deadlock or serialization failure, a held sync lock.
    Busy,
    /// Anything else.
    Other,
}

/// A database driver's (or the file system's) error, kept as it was.
///
/// `Display` gives the driver's own words (for PostgreSQL the server's
/// severity, message and detail, or the connection error's whole chain),
/// so `source()` is `None`.
#[derive(Debug)]
#[non_exhaustive]
pub enum DriverError {
    /// From SQLite.
    Sqlite(rusqlite::Error),
    /// From PostgreSQL.
    Postgres(tokio_postgres::Error),
    /// From the file system (lock files, the store folder).
    Io(std::io::Error),
}

impl DriverError {
    /// Classifies the error.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            DriverError::Sqlite(e) => sqlite_kind(e),
            DriverError::Postgres(e) => postgres_kind(e),
            DriverError::Io(_) => StoreErrorKind::Other,
        }
    }
}

fn sqlite_kind(e: &rusqlite::Error) -> StoreErrorKind {
    use rusqlite::ffi;
    let rusqlite::Error::SqliteFailure(f, _) = e else {
        return StoreErrorKind::Other;
    };
    match f.extended_code {
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
            return StoreErrorKind::UniqueViolation
        }
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return StoreErrorKind::ForeignKey,
        _ => {}
    }
    match f.code {
        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
            StoreErrorKind::Busy
        }
        _ => StoreErrorKind::Other,
    }
}

pub(crate) fn postgres_kind(e: &tokio_postgres::Error) -> StoreErrorKind {
    use tokio_postgres::error::SqlState;
    if let Some(code) = e.code() {
        return match code {
            c if *c == SqlState::UNIQUE_VIOLATION => StoreErrorKind::UniqueViolation,
            c if *c == SqlState::FOREIGN_KEY_VIOLATION => StoreErrorKind::ForeignKey,
            c if *c == SqlState::LOCK_NOT_AVAILABLE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE =>
            {
                StoreErrorKind::Busy
            }
            // Class 08 (connection exception) and the server shutting the
            // session down (57P01..57P03).
            c if c.code().starts_with("08")
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW =>
            {
                StoreErrorKind::ConnectionLost
            }
            _ => StoreErrorKind::Other,
        };
    }
    // No server error: the client side lost the connection (closed, I/O).
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        StoreErrorKind::ConnectionLost
    } else {
        StoreErrorKind::Other
    }
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DriverError::Sqlite(e) => write!(f, "{e}"),
            DriverError::Postgres(e) => f.write_str(&crate::logic::pg_message(e)),
            DriverError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Its `Display` already holds the cause's text: no `source()`.
impl std::error::Error for DriverError {}

impl From<rusqlite::Error> for DriverError {
    fn from(e: rusqlite::Error) -> DriverError {
        DriverError::Sqlite(e)
    }
}

impl From<tokio_postgres::Error> for DriverError {
    fn from(e: tokio_postgres::Error) -> DriverError {
        DriverError::Postgres(e)
    }
}

impl From<std::io::Error> for DriverError {
    fn from(e: std::io::Error) -> DriverError {
        DriverError::Io(e)
    }
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// How a sync run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Begun ([`CorpStore::begin_run`]) and not finished yet. A `running` run
    /// whose process died stays so until the next holder of the org's sync
    /// lock marks it failed.
    Running,
    /// The plan was applied (possibly empty).
    Applied,
    /// Dry run: the plan was computed and not applied.
    DryRun,
    /// Safety checks stopped the run; nothing was written but the run record.
    Refused,
    /// Fetching or applying failed; nothing was written but the run record.
    Failed,
}

/// Identity conflict found while binding platform identities to local users.
/// Reported, never silently merged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityConflict {
    /// Member concerned.
    pub member_id: String,
    /// What clashes with what.
    pub message: String,
}

/// The sync-run record stored for every run (applied, dry, refused or failed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRun {
    /// Store-assigned id: 0 for a run not recorded yet; the id from
    /// [`CorpStore::begin_run`] to finish that run.
    pub run_id: i64,
    /// Corp fullName.
    pub corp: String,
    /// Start, milliseconds since the epoch.
    pub started_at: i64,
    /// End, milliseconds since the epoch.
    pub finished_at: i64,
    /// Outcome.
    pub outcome: RunOutcome,
    /// Counts per change kind (`created`, `updated`, ...).
    pub counts: jit_org::ChangeCounts,
    /// Error or refusal reason.
    pub error: Option<String>,
    /// Notes (withheld fields, admin list refused, ...).
    pub notes: Vec<String>,
    /// What started it: a full sync or a batch of platform events.
    #[serde(default)]
    pub kind: RunKind,
    /// Reconciliation: for a full sync of an org that receives events, the
    /// differences it found that the events had missed (0 is the goal);
    /// `None` for event runs and orgs without events.
    #[serde(default)]
    pub missed_by_events: Option<u64>,
    /// The platform API calls the run made; `None` for runs recorded before
    /// the store kept them (store version 7) and runs that read nothing.
    #[serde(default)]
    pub calls: Option<RunCalls>,
}

/// The platform API calls of one run, summed over every API path: what the
/// run history shows besides the changes (a run slowed by throttling shows
/// it here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunCalls {
    /// Requests sent (retries included).
    pub calls: u64,
    /// Requests that retried an earlier attempt.
    pub retries: u64,
    /// Answers that were the platform's throttling codes.
    pub throttled: u64,
    /// Calls that finally failed.
    pub failures: u64,
    /// Time spent waiting for the rate budget (throttling waits), in
    /// milliseconds.
    pub wait_ms: u64,
}

impl RunCalls {
    /// The totals of a client's statistics over one run (take them with
    /// [`jit_org::FetchStats::since`] when the client outlives the run).
    pub fn from_stats(stats: &jit_org::FetchStats) -> RunCalls {
        stats
            .endpoints
            .values()
            .fold(RunCalls::default(), |t, e| RunCalls {
                calls: t.calls + e.calls,
                retries: t.retries + e.retries,
                throttled: t.throttled + e.throttled,
                failures: t.failures + e.failures,
                wait_ms: t.wait_ms + e.budget_wait_ms,
            })
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// A full sync: the whole org read.
    #[default]
    Sync,
    /// A batch of platform events: only the objects they named read.
    Event,
}

impl RunKind {
    /// `sync` or `event`, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Sync => "sync",
            RunKind::Event => "event",
        }
    }

    /// Parses [`RunKind::as_str`]'s form.
    pub fn parse(s: &str) -> Option<RunKind> {
        [RunKind::Sync, RunKind::Event]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One stored per-object change line of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunChange {
    /// Object kind.
    pub object: ObjectKind,
    /// Object id.
    pub id: String,
    /// What happened.
    pub kind: ChangeKind,
    /// Why.
    pub reason: String,
}

/// What applying a plan did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    /// The run id recorded.
    pub run_id: i64,
    /// Rows inserted, updated or deleted in org tables (0 for an empty plan).
    pub rows_written: u64,
    /// Identity conflicts found. Those members keep the binding they had
    /// (a member seen for the first time stays unbound); nothing is merged.
    pub conflicts: Vec<IdentityConflict>,
}

/// Where a role holding or an admin row comes from. A sync replaces only
/// upstream rows and never sees local ones, so local assignments survive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Written by a sync's plan (the platform's own data).
    Upstream,
    /// Written locally (`setUserRole`, `setAdmin`).
    Local,
}

impl Origin {
    /// The stored form (`upstream`, `local`).
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Upstream => "upstream",
            Origin::Local => "local",
        }
    }
}

/// A row of the role-member table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleMemberRow {
    /// Member id.
    pub member_id: String,
    /// Role id.
    pub role_id: String,
    /// Who assigned it.
    pub origin: Origin,
}

/// A row of the admin table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminRow {
    /// Member id.
    pub member_id: String,
    /// Platform level (see [`Admin::level`]); 0 when set locally.
    pub level: i32,
    /// Who made the member an admin.
    pub origin: Origin,
}

/// The organization store.
///
/// All writes are transactional: a failed call leaves the store as it was.
/// Every method is keyed by the corp's element fullName.
#[async_trait::async_trait]
pub trait CorpStore: Send + Sync + 'static {
    /// Where the store lives (path or URL without password), for messages.
    fn location(&self) -> String;

    /// Inserts or updates the corp record.
    async fn upsert_corp(&self, corp: &CorpRecord) -> StoreResult<()>;

    /// The corp record, if known.
    async fn corp(&self, full_name: &str) -> StoreResult<Option<CorpRecord>>;

    /// The stored state of the corp as a snapshot (all members, offline ones
    /// included; `admins` is `Some`). An unknown corp gives an empty snapshot.
    /// Only upstream role holdings and admins are in it: it is what a sync
    /// diffs against, and a sync must neither see nor remove local ones.
    async fn load_snapshot(&self, full_name: &str) -> StoreResult<CorpSnapshot>;

    /// Applies a plan in one transaction, binds every upserted member to a
    /// local user (creating users as needed; DingTalk by unionId, others by
    /// (corpId, memberId)), records the run with its per-object changes, and
    /// stamps the corp's last successful sync with `run.finished_at` (a run
    /// with a non-zero `run_id` finishes that begun run instead of inserting
    /// one, see [`CorpStore::record_run`]). The corp
    /// record itself is upserted first. An empty plan writes no org rows, only
    /// the run record (`rows_written` = 0) and the last-sync stamp.
    ///
    /// Every department membership must name a department that is stored or
    /// upserted by the same plan (a foreign key): otherwise the whole plan
    /// fails and nothing is written. Role member sets and the admin list of
    /// the plan replace only upstream rows; local ones stay (a role the plan
    /// removes takes its local holdings with it). Role holders and admins are not checked
    /// (they may lie outside a sync scope). Duplicate upserts of one id are
    /// applied as if in sequence (the last wins).
    ///
    /// One apply per org at a time (the sync engine's job): on PostgreSQL a
    /// second concurrent apply creating the same members fails on their keys
    /// and rolls back; it never merges half of each.
    async fn apply_plan(
        &self,
        corp: &CorpRecord,
        plan: &SyncPlan,
        run: &SyncRun,
    ) -> StoreResult<ApplyReport>;

    /// [`CorpStore::apply_plan`] of a plan the caller hands over, for the
    /// sync engine: a backend that applies on another thread (SQLite, on
    /// the blocking pool) takes the plan there as it is instead of copying
    /// it (the plan of a 300,000-member first sync is ~240 MB), and the
    /// calling task stays free meanwhile (the event worker and the task
    /// scheduler renew their leases beside a running sync).
    async fn apply_shared_plan(
        &self,
        corp: &CorpRecord,
        plan: std::sync::Arc<SyncPlan>,
        run: &SyncRun,
    ) -> StoreResult<ApplyReport> {
        self.apply_plan(corp, &plan, run).await
    }

    /// Records a run that wrote nothing (dry-run, refused, failed), with the
    /// plan's change lines when there is a plan. Returns the run id.
    ///
    /// `run.run_id == 0` inserts a new run. Otherwise that run (begun with
    /// [`CorpStore::begin_run`]) is finished: its outcome, `finished_at`,
    /// counts, error, notes and change lines are replaced (`started_at` and
    /// `corp` stay); a run id not in the store for `run.corp` is
    /// [`StoreError::Invalid`]. [`CorpStore::apply_plan`] finishes a begun run
    /// the same way.
    async fn record_run(&self, run: &SyncRun, changes: &[jit_org::Change]) -> StoreResult<i64>;

    /// Records the start of a run: inserts it with outcome
    /// [`RunOutcome::Running`] (whatever `run.outcome` says; `run.run_id` is
    /// ignored) and returns its id, to be passed back in `run_id` to
    /// [`CorpStore::apply_plan`] or [`CorpStore::record_run`] when it ends.
    async fn begin_run(&self, run: &SyncRun) -> StoreResult<i64>;

    /// One run by id (`None` if there is no such run).
    async fn get_run(&self, run_id: i64) -> StoreResult<Option<SyncRun>>;

    /// Takes the org's sync lock, which excludes every other holder of the
    /// same store: other processes and other hosts too (PostgreSQL: a
    /// session advisory lock on a connection of its own; SQLite: an OS file
    /// lock on `<db file>.sync-<corp>.lock`; in-memory SQLite: a
    /// process-wide table). The lock is held until the returned guard is
    /// dropped, or its process dies, or (PostgreSQL) the server ends its
    /// session: [`crate::SyncLock::is_lost`] says so.
    ///
    /// Busy: tries again every ~50 ms for up to `wait` (`Duration::ZERO`:
    /// one attempt), then fails with [`StoreError::SyncBusy`] naming the
    /// newest `running` run of the org. Once taken, every run of the org
    /// still `running` is marked [`RunOutcome::Failed`] with the error
    /// "interrupted: the process running this sync stopped before it
    /// finished" (whoever ran it no longer holds the lock), so take the lock
    /// before [`CorpStore::begin_run`].
    async fn lock_sync(
        &self,
        full_name: &str,
        wait: std::time::Duration,
    ) -> StoreResult<crate::SyncLock>;

    /// Creates or updates local users and auth bindings for the given members
    /// (`bulkRegister`); returns identity conflicts.
    async fn bulk_register(
        &self,
        corp: &CorpRecord,
        members: &[Member],
    ) -> StoreResult<Vec<IdentityConflict>>;

    /// The `getLocalCorpData` view: `corp`, `userList` (members with their
    /// local user id and `status`), `deptList` (with `path`),
    /// `deptMemberList`, `roleList`, `roleGroupList`, `roleMemberSet`,
    /// `adminList`; lists are in key order. `roleMemberSet` and `adminList`
    /// hold upstream and local rows, each with its `origin`.
    ///
    /// `userList` and `deptMemberList` hold every current member: whatever
    /// the status but `offline`, so disabled members and members who have not
    /// activated their account (DingTalk `active: false`, WeCom status 4),
    /// who are real employees, are listed. With `include_offline` those who
    /// left (`offline`) are listed too, with their kept memberships.
    /// [`StoreError::UnknownCorp`] for an org not in the store.
    async fn local_corp_data(&self, full_name: &str, include_offline: bool) -> StoreResult<Value>;

    /// Replaces the member's LOCAL role holdings with exactly `role_ids`
    /// (roles the member holds upstream stay: they cannot be removed
    /// locally); returns every role row of the member afterwards, upstream
    /// and local (sorted by role id, upstream first). Unknown org, member or
    /// role: an error, and nothing changes.
    async fn set_member_roles(
        &self,
        full_name: &str,
        member_id: &str,
        role_ids: &[String],
    ) -> StoreResult<Vec<RoleMemberRow>>;

    /// Marks members offline in this corp only; returns how many changed
    /// (already-offline members do not count). Bindings and memberships are
    /// kept. Any id not in the org: [`StoreError::UnknownMember`], nothing changes.
    async fn offline_members(&self, full_name: &str, member_ids: &[String]) -> StoreResult<usize>;

    /// A member's signature URL (`None` if unset; an error for an unknown member).
    async fn get_signature(&self, full_name: &str, member_id: &str) -> StoreResult<Option<String>>;

    /// Saves a member's signature URL.
    async fn save_signature(
        &self,
        full_name: &str,
        member_id: &str,
        signature: &str,
    ) -> StoreResult<()>;

    /// Replaces the LOCAL admin list (order kept; upstream admins stay).
    /// Every admin must be a member of the org, else
    /// [`StoreError::UnknownMember`] and nothing changes.
    async fn set_admins(&self, full_name: &str, admins: &[Admin]) -> StoreResult<()>;

    /// Every admin row: the upstream list, then the local one, each in
    /// stored order (a member may appear once per origin).
    /// [`StoreError::UnknownCorp`] if the org is unknown.
    async fn get_admins(&self, full_name: &str) -> StoreResult<Vec<AdminRow>>;

    /// Recent runs, newest first.
    async fn list_runs(&self, full_name: &str, limit: usize) -> StoreResult<Vec<SyncRun>>;

    /// The change lines of one run.
    async fn run_changes(&self, run_id: i64) -> StoreResult<Vec<RunChange>>;

    /// Local user id bound to a platform identity, if any. For unionId
    /// providers (DingTalk) a given `union_id` is looked up first, across all
    /// orgs; otherwise (or if not found) the (provider, corpId, memberId) binding.
    async fn local_user_for(
        &self,
        provider: &jit_org::Provider,
        corp_id: &str,
        member_id: &str,
        union_id: Option<&str>,
    ) -> StoreResult<Option<i64>>;

    /// Memberships of a local user across all corps: (corp fullName, member id, status).
    async fn memberships_of_user(
        &self,
        user_id: i64,
    ) -> StoreResult<Vec<(String, String, jit_org::MemberStatus)>>;

    /// Number of local users in the pool.
    async fn user_count(&self) -> StoreResult<u64>;

    /// When the corp's last successful sync (an applied plan) finished,
    /// milliseconds since the epoch; `None` if never, or the corp is unknown.
    async fn last_successful_sync(&self, full_name: &str) -> StoreResult<Option<i64>>;

    /// Member ids (sorted, unique) of the members of department `dept_id` and
    /// of every department below it, found with one path-prefix query.
    /// Offline members are left out (their memberships are kept only as
    /// history); disabled and not-activated members are included.
    async fn subtree_members(&self, full_name: &str, dept_id: i64) -> StoreResult<Vec<String>>;

    /// The org's root department (the one without a parent; the smallest id
    /// if several) with its path, read with one indexed query (what
    /// `getRootDept` answers, without reading the whole org); `None` if the
    /// org has no department yet. [`StoreError::UnknownCorp`] for an org not
    /// in the store.
    async fn root_dept(&self, full_name: &str) -> StoreResult<Option<(jit_org::Dept, String)>>;

    /// Claims one scheduled slot of a task, atomically across every process
    /// and host sharing the store (one transaction: SQLite `BEGIN IMMEDIATE`;
    /// PostgreSQL `INSERT … ON CONFLICT (task, scheduled_at) DO NOTHING
    /// RETURNING` and a conditional `UPDATE` for take-overs):
    /// - slot not recorded, and no firing of the task running under a live
    ///   lease: a `running` firing (attempt 1) held by `claim.holder` until
    ///   `now + lease_ms` → [`Claim::Run`];
    /// - slot not recorded, but the previous firing still runs: the slot is
    ///   recorded `skipped` with a note naming it → [`Claim::Skipped`];
    /// - slot recorded `running` and its lease expired before `now` (its
    ///   holder died): taken over, `attempt` + 1 and a note naming the
    ///   expired holder → [`Claim::Run`];
    /// - otherwise (finished, skipped, or running under a live lease), or
    ///   another claimer won the race → [`Claim::Taken`].
    async fn claim_firing(&self, claim: &crate::FiringClaim) -> StoreResult<crate::Claim>;

    /// Extends the lease of a running firing to `lease_until`; `false` (and
    /// nothing changed) when `holder` no longer holds `attempt` of it.
    async fn renew_firing(
        &self,
        firing_id: i64,
        holder: &str,
        attempt: i64,
        lease_until: i64,
    ) -> StoreResult<bool>;

    /// Records how a running firing ended; `false` (and nothing written) when
    /// `end.holder` no longer holds `end.attempt` of it (its lease expired and
    /// another host took it over: that host's result is the one kept).
    async fn finish_firing(&self, end: &crate::FiringEnd) -> StoreResult<bool>;

    /// Every firing still `running` whose lease expired before `now`, oldest
    /// slot first: what a dead holder left, to be claimed again.
    async fn expired_firings(&self, now: i64) -> StoreResult<Vec<crate::Firing>>;

    /// A task's firings, newest slot first, at most `limit`, only slots
    /// before `before` when given (paging).
    async fn list_firings(
        &self,
        task: &str,
        limit: usize,
        before: Option<i64>,
    ) -> StoreResult<Vec<crate::Firing>>;

    /// The session signing keys of login elements, oldest generation first;
    /// when there is none yet, `first` is stored as generation 1 (replicas
    /// racing to do so store one: the others get the winner's key).
    async fn login_keys(&self, first: &crate::LoginKey) -> StoreResult<Vec<crate::LoginKey>>;

    /// Adds `next` as the newest generation (its `generation` is ignored) and
    /// returns every key; older keys stay, so sessions they signed stay valid.
    async fn rotate_login_key(&self, next: &crate::LoginKey) -> StoreResult<Vec<crate::LoginKey>>;

    /// Records that a session was ended (logout) before `expires_at`; rows of
    /// sessions expired before `now` are dropped. Ids are opaque: login
    /// elements also record spent login codes here (`code:<sha256>`), so a
    /// replayed code is told apart from an unknown one on every replica.
    async fn revoke_session(&self, session_id: &str, expires_at: i64, now: i64) -> StoreResult<()>;

    /// Whether a session was ended by [`CorpStore::revoke_session`].
    async fn session_revoked(&self, session_id: &str) -> StoreResult<bool>;

    /// Stores a browser login flow's state (states expired before `now` are
    /// dropped). A state id already stored is an error.
    async fn put_login_state(&self, state: &crate::LoginState, now: i64) -> StoreResult<()>;

    /// Runs one of the store's own read statements (the page-sized reads
    /// of [`crate::reads`], which are methods of `dyn CorpStore`); the
    /// statements are made only inside this crate.
    async fn read_rows(
        &self,
        q: crate::reads::ReadSql,
        params: &[crate::reads::ReadParam],
    ) -> StoreResult<Vec<Vec<crate::reads::Cell>>>;

    /// Takes a state: it is deleted whatever happens, so it is used at most
    /// once even by racing replicas; `None` if unknown, already taken or
    /// expired at `now`.
    async fn take_login_state(
        &self,
        state_id: &str,
        now: i64,
    ) -> StoreResult<Option<crate::LoginState>>;

    /// Stores a received event in the inbox, unless an event with the same
    /// `(corp, dedupe_key)` is stored already (a platform's retry, or a
    /// replay): then nothing is written and its id is returned as
    /// [`crate::InboxPut::Duplicate`]. Racing replicas store it once.
    async fn inbox_put(&self, event: &crate::NewInboxEvent) -> StoreResult<crate::InboxPut>;

    /// Claims the next events of one org, oldest first, for `claim.holder`:
    /// takes (or renews) the org's inbox lease, then marks its first pending
    /// events that are due (up to `limit`, stopping at one still waiting for
    /// its retry, so events apply in arrival order) as claimed, adding one to
    /// their attempts. Empty when another replica holds the org's lease under
    /// a live lease, or nothing is due (then the lease is released).
    async fn inbox_claim(&self, claim: &crate::InboxClaim) -> StoreResult<Vec<crate::InboxRow>>;

    /// Records how claimed events ended; events no longer claimed by
    /// `end.holder` (taken over by another replica) are left alone. The
    /// number of events changed.
    async fn inbox_finish(&self, end: &crate::InboxEnd) -> StoreResult<u64>;

    /// The orgs whose oldest pending event is due at `now`, sorted.
    async fn inbox_due(&self, now: i64) -> StoreResult<Vec<String>>;

    /// Deletes the events applied before `applied_before` (pending and
    /// failed ones stay); the number deleted. A platform's redelivery of a
    /// pruned event would be stored again (and apply as a no-op).
    async fn inbox_prune(&self, applied_before: i64) -> StoreResult<u64>;

    /// An org's events, newest first, at most `limit`, only ids below
    /// `before` when given (paging).
    async fn inbox_list(
        &self,
        corp: &str,
        limit: usize,
        before: Option<i64>,
    ) -> StoreResult<Vec<crate::InboxRow>>;

    /// Counts of an org's events by state, and the lag.
    async fn inbox_summary(&self, corp: &str) -> StoreResult<crate::InboxSummary>;

    /// Takes or renews the named lease until `now + lease_ms`: `true` when
    /// `holder` has it now (it was free, expired before `now`, or already
    /// its own); `false` when another holder's lease is live.
    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        lease_ms: i64,
    ) -> StoreResult<bool>;

    /// Gives up the named lease if `holder` has it, so another replica may
    /// take it at once.
    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()>;
}
