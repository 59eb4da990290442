//! The SQLite side of [`crate::reads`]: runs one of the store's read
//! statements on the connection (no write lock taken) and hands back its
//! rows as [`Cell`]s.

use super::SqliteStore;
use crate::api::StoreResult;
use crate::logic::Ctx;
use crate::reads::{Cell, ReadParam, ReadSql};
use crate::schema::Dialect;
use rusqlite::types::{Value as V, ValueRef};

/// The first `n` values of a row as [`Cell`]s (integers and text; other
/// types are not read by the store's generic statements).
pub(super) fn cells(r: &rusqlite::Row<'_>, n: usize) -> rusqlite::Result<Vec<Cell>> {
    (0..n)
        .map(|i| {
            Ok(match r.get_ref(i)? {
                ValueRef::Integer(v) => Cell::Int(v),
                ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                _ => Cell::Null,
            })
        })
        .collect()
}

impl SqliteStore {
    pub(super) async fn sqlite_read_rows(
        &self,
        q: ReadSql,
        params: &[ReadParam],
    ) -> StoreResult<Vec<Vec<Cell>>> {
        let params = params.to_vec();
        self.with(q.op, move |c| {
            let sql = q.text(Dialect::Sqlite);
            let mut st = c.prepare_cached(&sql).ctx(q.op)?;
            // `$n` are named parameters to SQLite, numbered by first
            // appearance: bind each by its name so the text's order of
            // appearance does not matter.
            for (i, p) in params.iter().enumerate() {
                let Some(at) = st.parameter_index(&format!("${}", i + 1)).ctx(q.op)? else {
                    continue;
                };
                let v = match p {
                    ReadParam::Int(n) => V::Integer(*n),
                    ReadParam::Text(t) => V::Text(t.clone()),
                };
                st.raw_bind_parameter(at, v).ctx(q.op)?;
            }
            let n = st.column_count();
            let mut rows = st.raw_query();
            let mut out = Vec::new();
            while let Some(r) = rows.next().ctx(q.op)? {
                out.push(cells(r, n).ctx(q.op)?);
            }
            Ok(out)
        })
        .await
    }
}
