//! The PostgreSQL side of the inbox: the [`InboxTx`] primitives and the
//! [`crate::CorpStore`] inbox methods, each one transaction around the
//! shared operation in `logic/inbox.rs` (the unique dedupe key and the
//! conditional lease `UPDATE` decide races between replicas).

use super::{postgres_kind, PgParam, PgStore, PgTx};
use crate::api::{StoreError, StoreErrorKind, StoreResult};
use crate::inbox::{InboxClaim, InboxEnd, InboxPut, InboxRow, InboxSummary, NewInboxEvent};
use crate::logic::inbox::{self, InboxParam, InboxTx};
use crate::logic::Ctx;
use crate::reads::Cell;

fn params(p: &[InboxParam<'_>]) -> Vec<PgParam> {
    p.iter()
        .map(|p| -> PgParam {
            match p {
                InboxParam::Int(i) => Box::new(*i),
                InboxParam::OptInt(i) => Box::new(*i),
                InboxParam::Text(t) => Box::new(t.to_string()),
                InboxParam::OptText(t) => Box::new(t.map(str::to_string)),
            }
        })
        .collect()
}

impl InboxTx for PgTx<'_, '_> {
    async fn inbox_exec(&mut self, sql: &str, p: &[InboxParam<'_>]) -> StoreResult<u64> {
        let owned = params(p);
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            owned.iter().map(|p| p.as_ref() as _).collect();
        self.exec(sql, &refs).await
    }

    async fn inbox_select(
        &mut self,
        sql: &str,
        p: &[InboxParam<'_>],
    ) -> StoreResult<Vec<Vec<Cell>>> {
        let owned = params(p);
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            owned.iter().map(|p| p.as_ref() as _).collect();
        let rows = self.rows(sql, &refs).await?;
        rows.iter()
            .map(|r| super::reads::cells(r, self.op))
            .collect()
    }
}

impl PgStore {
    pub(super) async fn pg_inbox_put(&self, e: &NewInboxEvent) -> StoreResult<InboxPut> {
        let op = format!("store event {} of {}", e.event_type, e.corp);
        in_tx!(self, &op, |tx| inbox::put(tx, e, &op))
    }

    pub(super) async fn pg_inbox_claim(&self, c: &InboxClaim) -> StoreResult<Vec<InboxRow>> {
        let op = format!("claim events of {}", c.corp);
        in_tx!(self, &op, |tx| inbox::claim(tx, c, &op))
    }

    pub(super) async fn pg_inbox_finish(&self, end: &InboxEnd) -> StoreResult<u64> {
        let op = format!("finish events {:?}", end.event_ids);
        in_tx!(self, &op, |tx| inbox::finish(tx, end))
    }

    pub(super) async fn pg_inbox_due(&self, now: i64) -> StoreResult<Vec<String>> {
        in_tx!(self, "read orgs with due events", |tx| inbox::due(tx, now))
    }

    pub(super) async fn pg_inbox_prune(&self, applied_before: i64) -> StoreResult<u64> {
        in_tx!(self, "prune applied events", |tx| inbox::prune(
            tx,
            applied_before
        ))
    }

    pub(super) async fn pg_inbox_list(
        &self,
        corp: &str,
        limit: usize,
        before: Option<i64>,
    ) -> StoreResult<Vec<InboxRow>> {
        let op = format!("list events of {corp}");
        in_tx!(self, &op, |tx| inbox::list(tx, corp, limit, before, &op))
    }

    pub(super) async fn pg_inbox_summary(&self, corp: &str) -> StoreResult<InboxSummary> {
        let op = format!("summarise events of {corp}");
        in_tx!(self, &op, |tx| inbox::summary(tx, corp))
    }

    pub(super) async fn pg_take_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        lease_ms: i64,
    ) -> StoreResult<bool> {
        let op = format!("take lease {name}");
        in_tx!(self, &op, |tx| inbox::take_lease(
            tx, name, holder, now, lease_ms
        ))
    }

    pub(super) async fn pg_release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        let op = format!("release lease {name}");
        in_tx!(self, &op, |tx| inbox::release_lease(tx, name, holder))
    }
}
