//! The SQLite side of the inbox: the [`InboxTx`] primitives and the
//! [`crate::CorpStore`] inbox methods, each one `BEGIN IMMEDIATE`
//! transaction (one writer at a time across processes) around the shared
//! operation in `logic/inbox.rs`.

use super::{in_write_tx, run_ready, SqliteStore, SqliteTx};
use crate::api::StoreResult;
use crate::inbox::{InboxClaim, InboxEnd, InboxPut, InboxRow, InboxSummary, NewInboxEvent};
use crate::logic::inbox::{self, InboxParam, InboxTx};
use crate::logic::Ctx;
use crate::reads::Cell;

fn params(p: &[InboxParam<'_>]) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value as V;
    p.iter()
        .map(|p| match p {
            InboxParam::Int(i) => V::Integer(*i),
            InboxParam::OptInt(i) => i.map_or(V::Null, V::Integer),
            InboxParam::Text(t) => V::Text(t.to_string()),
            InboxParam::OptText(t) => t.map_or(V::Null, |t| V::Text(t.to_string())),
        })
        .collect()
}

impl InboxTx for SqliteTx<'_> {
    async fn inbox_exec(&mut self, sql: &str, p: &[InboxParam<'_>]) -> StoreResult<u64> {
        self.exec(sql, rusqlite::params_from_iter(params(p)))
    }

    async fn inbox_select(
        &mut self,
        sql: &str,
        p: &[InboxParam<'_>],
    ) -> StoreResult<Vec<Vec<Cell>>> {
        // Not cached: an INSERT ... RETURNING statement must run to its end,
        // and claim statements differ by their id lists.
        let mut st = self.c.prepare(sql).ctx(self.op)?;
        let n = st.column_count();
        let rows = st
            .query_map(rusqlite::params_from_iter(params(p)), |r| {
                super::reads::cells(r, n)
            })
            .ctx(self.op)?
            .collect::<Result<Vec<_>, _>>()
            .ctx(self.op)?;
        Ok(rows)
    }
}

impl SqliteStore {
    /// Runs one inbox operation in a write transaction.
    async fn inbox_write<T: Send + 'static>(
        &self,
        op: String,
        f: impl FnOnce(&mut SqliteTx<'_>, &str) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.with(&op.clone(), move |c| in_write_tx(c, &op, |tx| f(tx, &op)))
            .await
    }

    /// Runs one inbox read on the connection (no write lock taken).
    async fn inbox_read<T: Send + 'static>(
        &self,
        op: String,
        f: impl FnOnce(&mut SqliteTx<'_>, &str) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.with(&op.clone(), move |c| f(&mut SqliteTx::new(c, &op), &op))
            .await
    }

    pub(super) async fn sqlite_inbox_put(&self, e: &NewInboxEvent) -> StoreResult<InboxPut> {
        let e = e.clone();
        let op = format!("store event {} of {}", e.event_type, e.corp);
        self.inbox_write(op, move |tx, op| run_ready(inbox::put(tx, &e, op)))
            .await
    }

    pub(super) async fn sqlite_inbox_claim(&self, c: &InboxClaim) -> StoreResult<Vec<InboxRow>> {
        let c = c.clone();
        let op = format!("claim events of {}", c.corp);
        self.inbox_write(op, move |tx, op| run_ready(inbox::claim(tx, &c, op)))
            .await
    }

    pub(super) async fn sqlite_inbox_finish(&self, end: &InboxEnd) -> StoreResult<u64> {
        let end = end.clone();
        let op = format!("finish events {:?}", end.event_ids);
        self.inbox_write(op, move |tx, _| run_ready(inbox::finish(tx, &end)))
            .await
    }

    pub(super) async fn sqlite_inbox_due(&self, now: i64) -> StoreResult<Vec<String>> {
        self.inbox_read("read orgs with due events".into(), move |tx, _| {
            run_ready(inbox::due(tx, now))
        })
        .await
    }

    pub(super) async fn sqlite_inbox_prune(&self, applied_before: i64) -> StoreResult<u64> {
        self.inbox_write("prune applied events".into(), move |tx, _| {
            run_ready(inbox::prune(tx, applied_before))
        })
        .await
    }

    pub(super) async fn sqlite_inbox_list(
        &self,
        corp: &str,
        limit: usize,
        before: Option<i64>,
    ) -> StoreResult<Vec<InboxRow>> {
        let corp = corp.to_string();
        let op = format!("list events of {corp}");
        self.inbox_read(op, move |tx, op| {
            run_ready(inbox::list(tx, &corp, limit, before, op))
        })
        .await
    }

    pub(super) async fn sqlite_inbox_summary(&self, corp: &str) -> StoreResult<InboxSummary> {
        let corp = corp.to_string();
        let op = format!("summarise events of {corp}");
        self.inbox_read(op, move |tx, _| run_ready(inbox::summary(tx, &corp)))
            .await
    }

    pub(super) async fn sqlite_take_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        lease_ms: i64,
    ) -> StoreResult<bool> {
        let (name, holder) = (name.to_string(), holder.to_string());
        let op = format!("take lease {name}");
        self.inbox_write(op, move |tx, _| {
            run_ready(inbox::take_lease(tx, &name, &holder, now, lease_ms))
        })
        .await
    }

    pub(super) async fn sqlite_release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        let (name, holder) = (name.to_string(), holder.to_string());
        let op = format!("release lease {name}");
        self.inbox_write(op, move |tx, _| {
            run_ready(inbox::release_lease(tx, &name, &holder))
        })
        .await
    }
}
