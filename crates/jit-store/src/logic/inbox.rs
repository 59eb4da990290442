//! The inbox and lease operations, written once over [`InboxTx`] primitives
//! (like `firings.rs`): a backend opens a transaction (SQLite `BEGIN
//! IMMEDIATE`, PostgreSQL's default), calls one of these and commits on
//! `Ok`. Races between replicas are decided by keys and conditional
//! updates: the unique `(corp, dedupe_key)` stores a retried event once, and
//! a lease changes hands only through an `UPDATE` whose condition (holder is
//! the asker, or the lease expired) PostgreSQL re-checks under the row lock.

use crate::api::{StoreError, StoreResult};
use crate::inbox::{
    InboxClaim, InboxEnd, InboxOutcome, InboxPut, InboxRow, InboxState, InboxSummary, NewInboxEvent,
};
use crate::reads::Cell;

/// Columns of an inbox row, in the order [`row`] reads them.
macro_rules! inbox_columns {
    () => {
        "event_id, corp, platform, event_type, dedupe_key, payload, received_at, state, \
         attempts, next_attempt_at, claimed_by, lease_until, last_error, applied_at, run_id"
    };
}

/// Statements (the same text on both backends).
pub(crate) mod sql {
    pub const PUT: &str = "INSERT INTO event_inbox (corp, platform, event_type, dedupe_key, \
        payload, received_at, state, attempts, next_attempt_at) \
        VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $6) \
        ON CONFLICT (corp, dedupe_key) DO NOTHING RETURNING event_id";
    pub const BY_KEY: &str = "SELECT event_id FROM event_inbox WHERE corp = $1 AND dedupe_key = $2";
    pub const PENDING: &str = concat!(
        "SELECT ",
        inbox_columns!(),
        " FROM event_inbox WHERE corp = $1 AND state = 'pending' ORDER BY event_id LIMIT $2"
    );
    pub const LIST: &str = concat!(
        "SELECT ",
        inbox_columns!(),
        " FROM event_inbox WHERE corp = $1 AND event_id < $2 ORDER BY event_id DESC LIMIT $3"
    );
    /// Orgs whose oldest pending event is due (later ones wait behind it).
    pub const DUE: &str = "SELECT e.corp FROM event_inbox e \
        WHERE e.state = 'pending' AND e.next_attempt_at <= $1 AND e.event_id = \
        (SELECT MIN(o.event_id) FROM event_inbox o WHERE o.corp = e.corp AND o.state = 'pending')";
    pub const PRUNE: &str = "DELETE FROM event_inbox WHERE state = 'applied' AND applied_at < $1";
    pub const SUMMARY: &str = "SELECT state, COUNT(*), MIN(received_at), MAX(applied_at) \
        FROM event_inbox WHERE corp = $1 GROUP BY state";
    pub const LEASE_INSERT: &str = "INSERT INTO event_leases (name, holder, lease_until) \
        VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING";
    /// Parameters are numbered in order of appearance: SQLite numbers
    /// `$N` by first appearance, not by `N`.
    pub const LEASE_TAKE: &str = "UPDATE event_leases SET holder = $1, lease_until = $2 \
        WHERE name = $3 AND (holder = $4 OR lease_until < $5)";
    pub const LEASE_RELEASE: &str =
        "UPDATE event_leases SET lease_until = 0 WHERE name = $1 AND holder = $2";
}

/// A statement parameter: each backend binds it natively.
pub(crate) enum InboxParam<'a> {
    /// BIGINT.
    Int(i64),
    /// Nullable BIGINT.
    OptInt(Option<i64>),
    /// TEXT.
    Text(&'a str),
    /// Nullable TEXT.
    OptText(Option<&'a str>),
}

/// What a backend provides for the inbox tables inside one transaction.
pub(crate) trait InboxTx {
    /// Runs a statement; the rows changed.
    async fn inbox_exec(&mut self, sql: &str, params: &[InboxParam<'_>]) -> StoreResult<u64>;
    /// Runs a query; each row as its cells (integers and text only).
    async fn inbox_select(
        &mut self,
        sql: &str,
        params: &[InboxParam<'_>],
    ) -> StoreResult<Vec<Vec<Cell>>>;
}

fn int(c: Option<&Cell>) -> Option<i64> {
    match c {
        Some(Cell::Int(i)) => Some(*i),
        _ => None,
    }
}

fn text(c: Option<&Cell>) -> Option<String> {
    match c {
        Some(Cell::Text(t)) => Some(t.clone()),
        _ => None,
    }
}

fn bad(op: &str, what: &str) -> StoreError {
    StoreError::Internal {
        operation: op.to_string(),
        message: format!("unreadable inbox row: {what}"),
    }
}

/// Reads a row of [`inbox_columns`].
fn row(cells: &[Cell], op: &str) -> StoreResult<InboxRow> {
    let need_int = |i: usize, name: &str| int(cells.get(i)).ok_or_else(|| bad(op, name));
    let need_text = |i: usize, name: &str| text(cells.get(i)).ok_or_else(|| bad(op, name));
    let state = need_text(7, "state")?;
    Ok(InboxRow {
        event_id: need_int(0, "event_id")?,
        corp: need_text(1, "corp")?,
        platform: need_text(2, "platform")?,
        event_type: need_text(3, "event_type")?,
        dedupe_key: need_text(4, "dedupe_key")?,
        payload: need_text(5, "payload")?,
        received_at: need_int(6, "received_at")?,
        state: InboxState::parse(&state)
            .ok_or_else(|| bad(op, &format!("unknown state {state:?}")))?,
        attempts: need_int(8, "attempts")?,
        next_attempt_at: need_int(9, "next_attempt_at")?,
        claimed_by: text(cells.get(10)),
        lease_until: int(cells.get(11)),
        last_error: text(cells.get(12)),
        applied_at: int(cells.get(13)),
        run_id: int(cells.get(14)),
    })
}

fn rows(cells: Vec<Vec<Cell>>, op: &str) -> StoreResult<Vec<InboxRow>> {
    cells.iter().map(|c| row(c, op)).collect()
}

/// A list of ids for an `IN (...)`: integers read from the store, so
/// formatting them into the statement cannot inject anything.
fn id_list(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// See [`crate::CorpStore::inbox_put`].
pub(crate) async fn put(
    tx: &mut impl InboxTx,
    e: &NewInboxEvent,
    op: &str,
) -> StoreResult<InboxPut> {
    use InboxParam::*;
    let inserted = tx
        .inbox_select(
            sql::PUT,
            &[
                Text(&e.corp),
                Text(&e.platform),
                Text(&e.event_type),
                Text(&e.dedupe_key),
                Text(&e.payload),
                Int(e.received_at),
            ],
        )
        .await?;
    if let Some(id) = int(inserted.first().and_then(|r| r.first())) {
        return Ok(InboxPut::Stored(id));
    }
    let existing = tx
        .inbox_select(sql::BY_KEY, &[Text(&e.corp), Text(&e.dedupe_key)])
        .await?;
    int(existing.first().and_then(|r| r.first()))
        .map(InboxPut::Duplicate)
        .ok_or_else(|| bad(op, "a conflicting dedupe key that cannot be read back"))
}

/// See [`crate::CorpStore::take_lease`].
pub(crate) async fn take_lease(
    tx: &mut impl InboxTx,
    name: &str,
    holder: &str,
    now: i64,
    lease_ms: i64,
) -> StoreResult<bool> {
    use InboxParam::*;
    let until = now.saturating_add(lease_ms);
    if tx
        .inbox_exec(sql::LEASE_INSERT, &[Text(name), Text(holder), Int(until)])
        .await?
        > 0
    {
        return Ok(true);
    }
    let n = tx
        .inbox_exec(
            sql::LEASE_TAKE,
            &[Text(holder), Int(until), Text(name), Text(holder), Int(now)],
        )
        .await?;
    Ok(n > 0)
}

/// See [`crate::CorpStore::release_lease`].
pub(crate) async fn release_lease(
    tx: &mut impl InboxTx,
    name: &str,
    holder: &str,
) -> StoreResult<()> {
    use InboxParam::*;
    tx.inbox_exec(sql::LEASE_RELEASE, &[Text(name), Text(holder)])
        .await?;
    Ok(())
}

/// The lease name of an org's inbox.
pub(crate) fn inbox_lease(corp: &str) -> String {
    format!("inbox:{corp}")
}

/// See [`crate::CorpStore::inbox_claim`].
pub(crate) async fn claim(
    tx: &mut impl InboxTx,
    c: &InboxClaim,
    op: &str,
) -> StoreResult<Vec<InboxRow>> {
    use InboxParam::*;
    let lease = inbox_lease(&c.corp);
    if !take_lease(tx, &lease, &c.holder, c.now, c.lease_ms).await? {
        return Ok(Vec::new());
    }
    let limit = c.limit.clamp(1, i64::MAX as usize) as i64;
    let pending = rows(
        tx.inbox_select(sql::PENDING, &[Text(&c.corp), Int(limit)])
            .await?,
        op,
    )?;
    // Arrival order: events after one waiting for its retry wait with it.
    let due: Vec<InboxRow> = pending
        .into_iter()
        .take_while(|r| r.next_attempt_at <= c.now)
        .collect();
    if due.is_empty() {
        release_lease(tx, &lease, &c.holder).await?;
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = due.iter().map(|r| r.event_id).collect();
    let until = c.now.saturating_add(c.lease_ms);
    let update = format!(
        "UPDATE event_inbox SET claimed_by = $1, lease_until = $2, attempts = attempts + 1 \
         WHERE event_id IN ({}) AND state = 'pending'",
        id_list(&ids)
    );
    tx.inbox_exec(&update, &[Text(&c.holder), Int(until)])
        .await?;
    Ok(due
        .into_iter()
        .map(|r| InboxRow {
            claimed_by: Some(c.holder.clone()),
            lease_until: Some(until),
            attempts: r.attempts + 1,
            ..r
        })
        .collect())
}

/// See [`crate::CorpStore::inbox_finish`].
pub(crate) async fn finish(tx: &mut impl InboxTx, end: &InboxEnd) -> StoreResult<u64> {
    use InboxParam::*;
    if end.event_ids.is_empty() {
        return Ok(0);
    }
    let ids = id_list(&end.event_ids);
    // The holder is the last parameter: SQLite numbers `$N` by first
    // appearance.
    let only_held =
        |n: usize| format!("WHERE event_id IN ({ids}) AND claimed_by = ${n} AND state = 'pending'");
    match &end.outcome {
        InboxOutcome::Applied { run_id } => {
            tx.inbox_exec(
                &format!(
                    "UPDATE event_inbox SET state = 'applied', applied_at = $1, run_id = $2, \
                     lease_until = NULL, last_error = NULL {}",
                    only_held(3)
                ),
                &[Int(end.now), OptInt(*run_id), Text(&end.holder)],
            )
            .await
        }
        InboxOutcome::Retry {
            error,
            next_attempt_at,
        } => {
            tx.inbox_exec(
                &format!(
                    "UPDATE event_inbox SET next_attempt_at = $1, last_error = $2, \
                     lease_until = NULL {}",
                    only_held(3)
                ),
                &[
                    Int(*next_attempt_at),
                    OptText(Some(error)),
                    Text(&end.holder),
                ],
            )
            .await
        }
        InboxOutcome::Failed { error } => {
            tx.inbox_exec(
                &format!(
                    "UPDATE event_inbox SET state = 'failed', last_error = $1, \
                     lease_until = NULL {}",
                    only_held(2)
                ),
                &[Text(error), Text(&end.holder)],
            )
            .await
        }
    }
}

/// See [`crate::CorpStore::inbox_due`].
pub(crate) async fn due(tx: &mut impl InboxTx, now: i64) -> StoreResult<Vec<String>> {
    let mut corps: Vec<String> = tx
        .inbox_select(sql::DUE, &[InboxParam::Int(now)])
        .await?
        .iter()
        .filter_map(|r| text(r.first()))
        .collect();
    corps.sort();
    Ok(corps)
}

/// See [`crate::CorpStore::inbox_list`].
pub(crate) async fn list(
    tx: &mut impl InboxTx,
    corp: &str,
    limit: usize,
    before: Option<i64>,
    op: &str,
) -> StoreResult<Vec<InboxRow>> {
    use InboxParam::*;
    rows(
        tx.inbox_select(
            sql::LIST,
            &[
                Text(corp),
                Int(before.unwrap_or(i64::MAX)),
                Int(limit.min(i64::MAX as usize) as i64),
            ],
        )
        .await?,
        op,
    )
}

/// See [`crate::CorpStore::inbox_summary`].
pub(crate) async fn summary(tx: &mut impl InboxTx, corp: &str) -> StoreResult<InboxSummary> {
    let mut s = InboxSummary::default();
    for r in tx
        .inbox_select(sql::SUMMARY, &[InboxParam::Text(corp)])
        .await?
    {
        let n = int(r.get(1)).unwrap_or(0).max(0) as u64;
        match text(r.first()).as_deref().and_then(InboxState::parse) {
            Some(InboxState::Pending) => {
                s.pending = n;
                s.oldest_pending_at = int(r.get(2));
            }
            Some(InboxState::Applied) => {
                s.applied = n;
                s.last_applied_at = int(r.get(3));
            }
            Some(InboxState::Failed) => s.failed = n,
            None => {}
        }
    }
    Ok(s)
}

/// See [`crate::CorpStore::inbox_prune`].
pub(crate) async fn prune(tx: &mut impl InboxTx, applied_before: i64) -> StoreResult<u64> {
    tx.inbox_exec(sql::PRUNE, &[InboxParam::Int(applied_before)])
        .await
}
