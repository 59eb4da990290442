//! The login operations, written once over [`LoginTx`] primitives (like
//! `ops.rs` for org writes): a backend opens a transaction (SQLite `BEGIN
//! IMMEDIATE`, PostgreSQL's default), calls one of these and commits on `Ok`.
//! Races between replicas are decided by primary keys: the first key and each
//! rotation insert a fixed generation (`ON CONFLICT DO NOTHING`, one wins), a
//! state is taken with `DELETE ... RETURNING` (one taker gets it).

use crate::api::StoreResult;
use crate::logins::{LoginKey, LoginState};

/// Statements (the same text on both backends).
pub(crate) mod sql {
    pub const KEYS: &str =
        "SELECT generation, secret, created_at FROM login_keys ORDER BY generation";
    pub const INSERT_KEY: &str = "INSERT INTO login_keys (generation, secret, created_at) \
        VALUES ($1, $2, $3) ON CONFLICT (generation) DO NOTHING";
    pub const REVOKE: &str = "INSERT INTO login_revocations (session_id, expires_at) \
        VALUES ($1, $2) ON CONFLICT (session_id) DO NOTHING";
    pub const PRUNE_REVOKED: &str = "DELETE FROM login_revocations WHERE expires_at < $1";
    pub const REVOKED: &str = "SELECT COUNT(*) FROM login_revocations WHERE session_id = $1";
    pub const PUT_STATE: &str = "INSERT INTO login_states \
        (state_id, login, browser_hash, redirect, expires_at) VALUES ($1, $2, $3, $4, $5)";
    pub const PRUNE_STATES: &str = "DELETE FROM login_states WHERE expires_at < $1";
    pub const TAKE_STATE: &str = "DELETE FROM login_states WHERE state_id = $1 \
        RETURNING state_id, login, browser_hash, redirect, expires_at";
}

/// A statement parameter: each backend binds it natively.
pub(crate) enum LoginParam<'a> {
    /// BIGINT.
    Int(i64),
    /// TEXT.
    Text(&'a str),
}

/// What a backend provides for the login tables inside one transaction.
pub(crate) trait LoginTx {
    /// Runs a statement; the rows changed.
    async fn login_exec(&mut self, sql: &str, params: &[LoginParam<'_>]) -> StoreResult<u64>;
    /// Every key, by generation ([`sql::KEYS`]).
    async fn login_key_rows(&mut self) -> StoreResult<Vec<LoginKey>>;
    /// Runs [`sql::TAKE_STATE`].
    async fn take_state_rows(&mut self, state_id: &str) -> StoreResult<Vec<LoginState>>;
    /// Runs a `SELECT COUNT(*)`.
    async fn login_count(&mut self, sql: &str, params: &[LoginParam<'_>]) -> StoreResult<i64>;
}

/// See [`crate::CorpStore::login_keys`].
pub(crate) async fn keys(tx: &mut impl LoginTx, first: &LoginKey) -> StoreResult<Vec<LoginKey>> {
    let keys = tx.login_key_rows().await?;
    if !keys.is_empty() {
        return Ok(keys);
    }
    use LoginParam::*;
    tx.login_exec(
        sql::INSERT_KEY,
        &[Int(1), Text(&first.secret), Int(first.created_at)],
    )
    .await?;
    // Another replica may have won the insert: read what is stored.
    tx.login_key_rows().await
}

/// See [`crate::CorpStore::rotate_login_key`].
pub(crate) async fn rotate(tx: &mut impl LoginTx, next: &LoginKey) -> StoreResult<Vec<LoginKey>> {
    let keys = tx.login_key_rows().await?;
    let generation = keys.last().map_or(1, |k| k.generation + 1);
    use LoginParam::*;
    tx.login_exec(
        sql::INSERT_KEY,
        &[Int(generation), Text(&next.secret), Int(next.created_at)],
    )
    .await?;
    tx.login_key_rows().await
}

/// See [`crate::CorpStore::revoke_session`].
pub(crate) async fn revoke(
    tx: &mut impl LoginTx,
    session_id: &str,
    expires_at: i64,
    now: i64,
) -> StoreResult<()> {
    use LoginParam::*;
    // Rows of sessions that have expired anyway are no longer needed.
    tx.login_exec(sql::PRUNE_REVOKED, &[Int(now)]).await?;
    tx.login_exec(sql::REVOKE, &[Text(session_id), Int(expires_at)])
        .await?;
    Ok(())
}

/// See [`crate::CorpStore::session_revoked`].
pub(crate) async fn revoked(tx: &mut impl LoginTx, session_id: &str) -> StoreResult<bool> {
    Ok(tx
        .login_count(sql::REVOKED, &[LoginParam::Text(session_id)])
        .await?
        > 0)
}

/// See [`crate::CorpStore::put_login_state`].
pub(crate) async fn put_state(
    tx: &mut impl LoginTx,
    state: &LoginState,
    now: i64,
) -> StoreResult<()> {
    use LoginParam::*;
    tx.login_exec(sql::PRUNE_STATES, &[Int(now)]).await?;
    tx.login_exec(
        sql::PUT_STATE,
        &[
            Text(&state.state_id),
            Text(&state.login),
            Text(&state.browser_hash),
            Text(&state.redirect),
            Int(state.expires_at),
        ],
    )
    .await?;
    Ok(())
}

/// See [`crate::CorpStore::take_login_state`].
pub(crate) async fn take_state(
    tx: &mut impl LoginTx,
    state_id: &str,
    now: i64,
) -> StoreResult<Option<LoginState>> {
    // Taken whatever its age, so an expired state is gone too; then judged.
    let taken = tx.take_state_rows(state_id).await?.into_iter().next();
    Ok(taken.filter(|s| s.expires_at >= now))
}
