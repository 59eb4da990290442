//! The task-firing operations, written once over [`FiringTx`] primitives
//! (like `ops.rs` for org writes): a backend opens a transaction, SQLite's
//! `BEGIN IMMEDIATE` (one writer at a time) or PostgreSQL's (where the
//! unique `(task, scheduled_at)` key and conditional `UPDATE`s decide races),
//! calls one of these and commits on `Ok`.

use crate::api::StoreResult;
use crate::firings::{Claim, Firing, FiringClaim, FiringEnd, FiringState};

/// Columns of a firing row, in the order the backends read them.
macro_rules! firing_columns {
    () => {
        "firing_id, task, scheduled_at, attempt, state, holder, \
         started_at, lease_until, finished_at, result, error, note"
    };
}

/// Statements on the firing table (the same text on both backends).
pub(crate) mod sql {
    pub const AT: &str = concat!(
        "SELECT ",
        firing_columns!(),
        " FROM task_firings WHERE task = $1 AND scheduled_at = $2"
    );
    /// The task's firing running under a live lease, if any (the newest).
    pub const LIVE: &str = concat!(
        "SELECT ",
        firing_columns!(),
        " FROM task_firings WHERE task = $1 AND state = 'running' AND lease_until >= $2 \
         ORDER BY scheduled_at DESC LIMIT 1"
    );
    /// Racing inserts of one slot: exactly one returns its id.
    pub const INSERT: &str =
        "INSERT INTO task_firings (task, scheduled_at, attempt, state, holder, \
        started_at, lease_until, finished_at, result, error, note) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
        ON CONFLICT (task, scheduled_at) DO NOTHING RETURNING firing_id";
    /// Takes over an expired attempt; the attempt and lease conditions make
    /// two racing take-overs change the row once.
    pub const TAKE_OVER: &str = "UPDATE task_firings SET attempt = attempt + 1, holder = $1, \
        started_at = $2, lease_until = $3, note = $4 \
        WHERE firing_id = $5 AND attempt = $6 AND state = 'running' AND lease_until < $7";
    pub const RENEW: &str = "UPDATE task_firings SET lease_until = $1 \
        WHERE firing_id = $2 AND holder = $3 AND attempt = $4 AND state = 'running'";
    pub const FINISH: &str = "UPDATE task_firings SET state = $1, finished_at = $2, result = $3, \
        error = $4 WHERE firing_id = $5 AND holder = $6 AND attempt = $7 AND state = 'running'";
    pub const EXPIRED: &str = concat!(
        "SELECT ",
        firing_columns!(),
        " FROM task_firings WHERE state = 'running' AND lease_until < $1 ORDER BY scheduled_at"
    );
    pub const LIST: &str = concat!(
        "SELECT ",
        firing_columns!(),
        " FROM task_firings WHERE task = $1 AND scheduled_at < $2 \
         ORDER BY scheduled_at DESC LIMIT $3"
    );
}

/// What a backend provides for firings inside one open transaction.
pub(crate) trait FiringTx {
    /// The firing of one slot, if recorded.
    async fn firing_at(&mut self, task: &str, scheduled_at: i64) -> StoreResult<Option<Firing>>;
    /// The task's newest firing running under a lease that has not expired at `now`.
    async fn live_firing(&mut self, task: &str, now: i64) -> StoreResult<Option<Firing>>;
    /// Inserts a firing unless its slot is recorded; its id, or `None` if
    /// another row holds the slot.
    async fn insert_firing(&mut self, f: &Firing) -> StoreResult<Option<i64>>;
    /// Runs an update on the firing table ([`sql::TAKE_OVER`], [`sql::RENEW`],
    /// [`sql::FINISH`]) with its parameters; the rows changed.
    async fn update_firing(&mut self, sql: &str, params: &[FiringParam<'_>]) -> StoreResult<u64>;
    /// Runs a query of firing rows with its parameters.
    async fn select_firings(
        &mut self,
        sql: &str,
        params: &[FiringParam<'_>],
    ) -> StoreResult<Vec<Firing>>;
}

/// A statement parameter of the firing table: each backend binds it natively.
pub(crate) enum FiringParam<'a> {
    /// BIGINT.
    Int(i64),
    /// TEXT.
    Text(&'a str),
    /// Nullable TEXT.
    OptText(Option<&'a str>),
}

/// Claims one slot: see [`crate::CorpStore::claim_firing`].
pub(crate) async fn claim(tx: &mut impl FiringTx, c: &FiringClaim) -> StoreResult<Claim> {
    let lease_until = c.now.saturating_add(c.lease_ms);
    if let Some(existing) = tx.firing_at(&c.task, c.scheduled_at).await? {
        // Recorded: runnable again only when its holder's lease ran out
        // without it finishing (the holder died or lost the store).
        if existing.state != FiringState::Running || existing.lease_until >= c.now {
            return Ok(Claim::Taken);
        }
        let note = format!(
            "re-run (attempt {}): the lease of {} on attempt {} expired at {} without a result",
            existing.attempt + 1,
            existing.holder,
            existing.attempt,
            existing.lease_until
        );
        use FiringParam::*;
        let changed = tx
            .update_firing(
                sql::TAKE_OVER,
                &[
                    Text(&c.holder),
                    Int(c.now),
                    Int(lease_until),
                    Text(&note),
                    Int(existing.firing_id),
                    Int(existing.attempt),
                    Int(c.now),
                ],
            )
            .await?;
        if changed == 0 {
            return Ok(Claim::Taken);
        }
        return Ok(Claim::Run(Firing {
            attempt: existing.attempt + 1,
            holder: c.holder.clone(),
            started_at: c.now,
            lease_until,
            note: Some(note),
            ..existing
        }));
    }
    let mut firing = Firing {
        firing_id: 0,
        task: c.task.clone(),
        scheduled_at: c.scheduled_at,
        attempt: 1,
        state: FiringState::Running,
        holder: c.holder.clone(),
        started_at: c.now,
        lease_until,
        finished_at: None,
        result: None,
        error: None,
        note: None,
    };
    let skip = tx.live_firing(&c.task, c.now).await?;
    if let Some(previous) = &skip {
        firing.state = FiringState::Skipped;
        firing.lease_until = c.now;
        firing.finished_at = Some(c.now);
        firing.note = Some(format!(
            "skipped: the firing scheduled at {} (attempt {} on {}) was still running",
            previous.scheduled_at, previous.attempt, previous.holder
        ));
    }
    match tx.insert_firing(&firing).await? {
        None => Ok(Claim::Taken),
        Some(id) => {
            firing.firing_id = id;
            Ok(if skip.is_some() {
                Claim::Skipped(firing)
            } else {
                Claim::Run(firing)
            })
        }
    }
}

/// Extends the lease of a running attempt; false if it is no longer the
/// holder's (taken over after an expiry, or finished).
pub(crate) async fn renew(
    tx: &mut impl FiringTx,
    firing_id: i64,
    holder: &str,
    attempt: i64,
    lease_until: i64,
) -> StoreResult<bool> {
    use FiringParam::*;
    let n = tx
        .update_firing(
            sql::RENEW,
            &[Int(lease_until), Int(firing_id), Text(holder), Int(attempt)],
        )
        .await?;
    Ok(n > 0)
}

/// Records the end of an attempt; false (and nothing written) if the
/// holder no longer owns it.
pub(crate) async fn finish(tx: &mut impl FiringTx, end: &FiringEnd) -> StoreResult<bool> {
    use FiringParam::*;
    let result = end.result.as_ref().map(|v| v.to_string());
    let n = tx
        .update_firing(
            sql::FINISH,
            &[
                Text(end.state.as_str()),
                Int(end.finished_at),
                OptText(result.as_deref()),
                OptText(end.error.as_deref()),
                Int(end.firing_id),
                Text(&end.holder),
                Int(end.attempt),
            ],
        )
        .await?;
    Ok(n > 0)
}

/// Firings still `running` whose lease expired before `now`.
pub(crate) async fn expired(tx: &mut impl FiringTx, now: i64) -> StoreResult<Vec<Firing>> {
    tx.select_firings(sql::EXPIRED, &[FiringParam::Int(now)])
        .await
}

/// A task's firings scheduled before `before`, newest first.
pub(crate) async fn list(
    tx: &mut impl FiringTx,
    task: &str,
    limit: usize,
    before: Option<i64>,
) -> StoreResult<Vec<Firing>> {
    use FiringParam::*;
    tx.select_firings(
        sql::LIST,
        &[
            Text(task),
            Int(before.unwrap_or(i64::MAX)),
            Int(limit.min(i64::MAX as usize) as i64),
        ],
    )
    .await
}
