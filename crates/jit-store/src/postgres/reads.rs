//! The PostgreSQL side of [`crate::reads`]: runs one of the store's read
//! statements on a pooled session and hands back its rows as [`Cell`]s.

use super::{PgParam, PgStore};
use crate::api::{StoreErrorKind, StoreResult};
use crate::logic::Ctx;
use crate::reads::{Cell, ReadParam, ReadSql};
use crate::schema::Dialect;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row};

/// A row as [`Cell`]s (integers, booleans as 0/1, text).
pub(super) fn cells(r: &Row, op: &str) -> StoreResult<Vec<Cell>> {
    (0..r.len())
        .map(|i| {
            let t = r.columns()[i].type_();
            let cell = if *t == Type::INT8 {
                r.try_get::<_, Option<i64>>(i).map(|v| v.map(Cell::Int))
            } else if *t == Type::INT4 {
                r.try_get::<_, Option<i32>>(i)
                    .map(|v| v.map(|v| Cell::Int(v.into())))
            } else if *t == Type::BOOL {
                r.try_get::<_, Option<bool>>(i)
                    .map(|v| v.map(|v| Cell::Int(v.into())))
            } else {
                r.try_get::<_, Option<String>>(i).map(|v| v.map(Cell::Text))
            };
            cell.map(|c| c.unwrap_or(Cell::Null)).ctx(op)
        })
        .collect()
}

impl PgStore {
    pub(super) async fn pg_read_rows(
        &self,
        q: ReadSql,
        params: &[ReadParam],
    ) -> StoreResult<Vec<Vec<Cell>>> {
        let owned: Vec<PgParam> = params
            .iter()
            .map(|p| -> PgParam {
                match p {
                    ReadParam::Int(n) => Box::new(*n),
                    ReadParam::Text(t) => Box::new(t.clone()),
                }
            })
            .collect();
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            owned.iter().map(|p| p.as_ref() as _).collect();
        let sql = q.text(Dialect::Postgres);
        let rows = read!(self, |c| async {
            c.query(sql.as_ref(), &refs).await.ctx(q.op)
        })?;
        rows.iter().map(|r| cells(r, q.op)).collect()
    }
}
