//! The SQLite backend: one connection behind a mutex, used from
//! `spawn_blocking`. Bulk writes are cached prepared statements executed
//! row by row inside one `BEGIN IMMEDIATE` transaction, which is what SQLite
//! is fastest at (no network round trips to batch away).

use crate::api::*;
use crate::firings::{Claim, Firing, FiringClaim, FiringEnd, FiringState};
use crate::lock::{self, SyncLock};
use crate::logic::firings::{self, FiringParam, FiringTx};
use crate::logic::logins::{self, LoginParam, LoginTx};
use crate::logic::ops::{self, BindingRow, Tx};
use crate::logic::{self, sql, Ctx, MembershipRow, OrgRows};
use crate::logins::{LoginKey, LoginState};
use crate::schema::{self, Dialect};
use crate::sqlite_bind::StaticInsert;
use jit_org::{
    Admin, Change, CorpRecord, CorpSnapshot, Dept, DeptMembership, Member, MemberStatus, Provider,
    Role, RoleGroup, SyncPlan,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod inbox;
mod reads;

/// The SQLite backend: `sqlite://path`, `sqlite:path`, and (as the
/// default for locations with no known scheme) plain paths.
pub(crate) const DRIVER: crate::Driver = crate::Driver {
    url_schemes: &["sqlite"],
    open: |location, base| {
        Box::pin(async move {
            let store: std::sync::Arc<dyn CorpStore> =
                std::sync::Arc::new(SqliteStore::open(file_of(&location, base.as_deref())).await?);
            Ok(store)
        })
    },
};

/// The database file a location names: the scheme removed, a relative path
/// taken relative to `base` when given.
pub(crate) fn file_of(location: &str, base: Option<&std::path::Path>) -> PathBuf {
    let path = ["sqlite://", "sqlite:"]
        .iter()
        .find_map(|p| {
            location
                .get(..p.len())
                .filter(|head| head.eq_ignore_ascii_case(p))
                .map(|_| &location[p.len()..])
        })
        .unwrap_or(location);
    match base {
        Some(base) if !in_memory(std::path::Path::new(path)) => base.join(path),
        _ => PathBuf::from(path),
    }
}

/// A store in one SQLite file.
pub(crate) struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    location: String,
    /// The database file; `None` for an in-memory database.
    file: Option<PathBuf>,
    /// Tells in-memory stores apart in the process-wide sync-lock table.
    instance: u64,
    /// The checkpoint that folds the last large apply's WAL into the
    /// database file, running beside the store ([`SqliteStore::checkpoint_later`]).
    checkpoint: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // A process that closes its store (a `jit sync` run) waits for the
        // fold, so it leaves no WAL for the next open to replay.
        let slot = self.checkpoint.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = slot.take() {
            let _ = h.join();
        }
    }
}

/// Source of [`SqliteStore::instance`].
static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Whether `path` names an in-memory database rather than a file.
fn in_memory(path: &std::path::Path) -> bool {
    let s = path.to_string_lossy();
    s.is_empty() || s == ":memory:" || s.starts_with("file::memory:")
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the file.
    pub(crate) async fn open(path: PathBuf) -> StoreResult<SqliteStore> {
        let location = path.display().to_string();
        let loc = location.clone();
        let file = (!in_memory(&path)).then(|| path.clone());
        let conn = tokio::task::spawn_blocking(move || open_blocking(&path, &loc))
            .await
            .map_err(|e| StoreError::Open {
                location: location.clone(),
                message: format!("open task failed: {e}"),
                cause: None,
            })??;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            location,
            file,
            instance: INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            checkpoint: Mutex::new(None),
        })
    }

    /// Folds the WAL into the database file on a thread of its own, with a
    /// connection of its own, after a large apply committed.
    ///
    /// A large apply's transaction turns the connection's automatic
    /// checkpoint off ([`apply_on`], [`folds_later`]): otherwise the commit of a large plan copies the
    /// whole transaction from the WAL into the file and syncs it before the
    /// apply returns (for 1.35 million rows, ~600 MB of page I/O and a
    /// flush of ~300 MB to disk: 0.5 s or more of a sync's wall, and its
    /// most variable part). The commit is what makes the rows visible and
    /// atomic; the fold is maintenance, so it runs here, `PASSIVE` (it never
    /// blocks readers or writers), while the caller goes on. Durability is
    /// what `synchronous=NORMAL` in WAL mode gives either way: the WAL is
    /// synced at checkpoints, not at each commit. Nothing is lost if the
    /// process ends mid-fold; the next checkpoint finishes it.
    fn checkpoint_later(&self) {
        let Some(path) = self.file.clone() else {
            return;
        };
        let mut slot = self.checkpoint.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            // One fold at a time; the running one, or the connection's
            // automatic checkpoint at its next commit, takes the rest.
            return;
        }
        if let Some(done) = slot.take() {
            let _ = done.join();
        }
        *slot = std::thread::Builder::new()
            .name("jit-sqlite-checkpoint".into())
            .spawn(move || {
                let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
                if let Ok(c) = Connection::open_with_flags(&path, flags) {
                    let _ = c.busy_timeout(BUSY_TIMEOUT);
                    let _ = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .ok();
    }

    /// Runs `f` on the connection in the blocking pool.
    async fn with<T, F>(&self, operation: &str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock left no open transaction behind
            // (rusqlite rolls back on drop), so the connection is still usable.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Internal {
            operation: operation.to_string(),
            message: format!("worker task failed: {e}"),
        })?
    }
}

/// Applies a plan in one write transaction on `c`.
fn apply_on(
    c: &mut Connection,
    corp: &CorpRecord,
    plan: &SyncPlan,
    run: &SyncRun,
) -> StoreResult<ApplyReport> {
    let op = format!("apply plan for {}", corp.full_name);
    let apply =
        |c: &mut Connection| in_write_tx(c, &op, |tx| run_ready(ops::apply(tx, corp, plan, run)));
    let report = if folds_later(plan) {
        // No automatic checkpoint at this commit: the store folds the WAL
        // on its own thread afterwards (`SqliteStore::checkpoint_later`).
        // Every other write keeps SQLite's default.
        c.pragma_update(None, "wal_autocheckpoint", 0).ctx(&op)?;
        let report = apply(c);
        c.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)
            .ctx(&op)?;
        report?
    } else {
        apply(c)?
    };
    // The large cache is for the transaction; once it is committed, hand
    // the memory back rather than keep ~100 MB of pages for the process's
    // life. Failing to shrink is harmless.
    let _ = c.execute_batch("PRAGMA shrink_memory");
    Ok(report)
}

/// Page size of new database files.
const PAGE_SIZE: i64 = 16384;

/// SQLite's default automatic checkpoint (WAL pages), restored after an
/// apply.
const WAL_AUTOCHECKPOINT: i64 = 1000;

/// Change lines from which an apply leaves folding its WAL to
/// [`SqliteStore::checkpoint_later`].
const LARGE_APPLY_CHANGES: usize = 10_000;

/// Whether applying `plan` defers the WAL fold to a thread of its own.
/// Only large plans do: a small one (an event batch, a run of a few
/// changes) keeps SQLite's automatic checkpoint, which costs it nothing
/// until the WAL passes 1,000 pages, rather than start a thread and open a
/// connection per apply. Every changed object has a change line, so their
/// number measures what the transaction writes.
fn folds_later(plan: &SyncPlan) -> bool {
    plan.changes.len() >= LARGE_APPLY_CHANGES
}

fn open_blocking(path: &std::path::Path, location: &str) -> StoreResult<Connection> {
    let err = |message: &str, e: rusqlite::Error| StoreError::Open {
        location: location.to_string(),
        message: message.to_string(),
        cause: Some(e.into()),
    };
    let mut conn = Connection::open(path).map_err(|e| err("open", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| err("configure the connection", e))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| err("configure the connection", e))?;
    // Read the version before writing anything, not even the journal mode.
    let found = read_version(&conn).map_err(|e| err("read the schema version", e))?;
    let known = schema::latest_version();
    if found > known {
        return Err(StoreError::SchemaTooNew {
            location: location.to_string(),
            found,
            known,
        });
    }
    // Larger pages for a new file: fewer pages to allocate, balance and
    // write on bulk applies. A no-op on an existing database.
    conn.pragma_update(None, "page_size", PAGE_SIZE)
        .map_err(|e| err("configure the connection", e))?;
    switch_to_wal(&conn).map_err(|e| err("cannot switch to WAL", e))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| err("configure the connection", e))?;
    // 16 MiB page cache. Measured on a 100,000-member apply: larger caches
    // (64 and 256 MiB) were slower (1.9 s vs 1.4 s) and kept ~100 MB more
    // resident; in WAL mode a spill mid-transaction only appends to the WAL.
    conn.pragma_update(None, "cache_size", -16384)
        .map_err(|e| err("configure the connection", e))?;
    // Statement journals (upserts, foreign keys) stay in memory instead of
    // temporary files.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(|e| err("configure the connection", e))?;
    // An apply uses ~25 distinct statements; the default cache holds 16.
    conn.set_prepared_statement_cache_capacity(64);
    migrate(&mut conn, location)?;
    Ok(conn)
}

/// How long opening waits for other connections (replicas starting
/// together, a running apply) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Switches the file to WAL. Switching needs the database to itself and
/// SQLite does not call the busy handler for it, so replicas opening one
/// fresh file together would fail with "database is locked": retry until
/// [`BUSY_TIMEOUT`]. A file already in WAL mode returns at once.
fn switch_to_wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)) {
            Ok(_) => return Ok(()),
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether SQLite refused because another connection holds a lock.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn read_version(conn: &Connection) -> rusqlite::Result<i64> {
    let has: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'jit_schema_version'",
        [],
        |r| r.get(0),
    )?;
    if has == 0 {
        return Ok(0);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM jit_schema_version",
        [],
        |r| r.get(0),
    )
}

fn migrate(conn: &mut Connection, location: &str) -> StoreResult<()> {
    let op = format!("migrate {location}");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx(&op)?;
    // Re-read under the write lock: another process may have migrated since.
    let found = read_version(&tx).ctx(&op)?;
    let known = schema::latest_version();
    if found > known {
        return Err(StoreError::SchemaTooNew {
            location: location.to_string(),
            found,
            known,
        });
    }
    if found == known {
        return Ok(());
    }
    tx.execute_batch(schema::VERSION_TABLE).ctx(&op)?;
    for m in schema::MIGRATIONS.iter().filter(|m| m.version > found) {
        for stmt in schema::statements(m, Dialect::Sqlite) {
            tx.execute_batch(&stmt)
                .ctx(&format!("{op} to version {}", m.version))?;
        }
        tx.execute(
            "INSERT INTO jit_schema_version (version, applied_at) VALUES (?1, ?2)",
            params![m.version, logic::now_ms()],
        )
        .ctx(&op)?;
    }
    tx.commit().ctx(&op)
}

/// Rows per multi-row `INSERT ... VALUES (...), (...)`: one statement
/// execution per chunk instead of per row (cursor setup and teardown
/// dominate single-row inserts). Kept under SQLite's 32766 variables.
const ROWS_PER_INSERT: usize = 128;

/// Inserts `values` (row-major, `ncols` per row) with `head VALUES ... tail`,
/// `head` being `INSERT INTO ...`. Returns the rows changed.
///
/// The statements are `INSERT OR ROLLBACK`: a failing row ends the whole
/// transaction (which the caller would roll back anyway), so SQLite needs no
/// statement journal to undo half a statement; that journal would copy every
/// touched page.
fn insert_many(
    tx: &Connection,
    head: &str,
    tail: &str,
    ncols: usize,
    values: &[&dyn rusqlite::ToSql],
    op: &str,
) -> StoreResult<u64> {
    let row = format!(
        "({})",
        (0..ncols).map(|_| "?").collect::<Vec<_>>().join(", ")
    );
    let head = head.replacen("INSERT INTO", "INSERT OR ROLLBACK INTO", 1);
    let sql_for = |n: usize| format!("{head} VALUES {} {tail}", vec![row.as_str(); n].join(", "));
    // Bound without SQLite copying each text (see `sqlite_bind`); the
    // full-size statement is prepared once per call, a shorter last chunk
    // gets its own.
    let mut full: Option<StaticInsert<'_>> = None;
    let mut total = 0u64;
    for chunk in values.chunks(ncols * ROWS_PER_INSERT) {
        let n = chunk.len() / ncols;
        let mut last;
        let stmt = if n == ROWS_PER_INSERT {
            match &mut full {
                Some(s) => s,
                None => full.insert(StaticInsert::prepare(tx, &sql_for(n)).ctx(op)?),
            }
        } else {
            last = StaticInsert::prepare(tx, &sql_for(n)).ctx(op)?;
            &mut last
        };
        total += stmt.execute(chunk).ctx(op)? as u64;
    }
    Ok(total)
}

fn count(conn: &Connection, sql: &str, p: impl rusqlite::Params, op: &str) -> StoreResult<i64> {
    conn.query_row(sql, p, |r| r.get(0)).ctx(op)
}

fn read_corp(
    conn: &Connection,
    full_name: &str,
    op: &str,
) -> StoreResult<Option<(CorpRecord, Option<i64>)>> {
    conn.query_row(sql::SELECT_CORP, [full_name], |r| {
        Ok((
            CorpRecord {
                full_name: r.get(0)?,
                title: r.get(1)?,
                corp_type: r.get(2)?,
                provider: Provider::parse(&r.get::<_, String>(3)?),
                corp_id: r.get(4)?,
            },
            r.get(5)?,
        ))
    })
    .optional()
    .ctx(op)
}

fn load_rows(conn: &Connection, full_name: &str) -> StoreResult<Option<OrgRows>> {
    let op = format!("read organization {full_name}");
    let op = op.as_str();
    let Some((corp, last_sync_at)) = read_corp(conn, full_name, op)? else {
        return Ok(None);
    };
    let mut st = conn.prepare_cached(sql::SELECT_DEPTS).ctx(op)?;
    let depts = st
        .query_map([full_name], |r| {
            let leaders: String = r.get(4)?;
            Ok(logic::DeptRow {
                dept: jit_org::Dept {
                    dept_id: r.get(0)?,
                    parent_id: r.get(1)?,
                    name: r.get(2)?,
                    order: r.get(3)?,
                    leaders: serde_json::from_str(&leaders).unwrap_or_default(),
                },
                path: r.get(5)?,
            })
        })
        .ctx(op)?
        .collect::<Result<Vec<_>, _>>()
        .ctx(op)?;
    let mut st = conn.prepare_cached(sql::SELECT_MEMBERS).ctx(op)?;
    let raw = st
        .query_map([full_name], |r| {
            Ok((
                r.get::<_, String>(4)?,
                r.get::<_, Option<i64>>(1)?,
                Member {
                    member_id: r.get(0)?,
                    union_id: r.get(2)?,
                    name: r.get(3)?,
                    status: MemberStatus::Active,
                    position: r.get(5)?,
                    job_number: r.get(6)?,
                    main_dept_id: r.get(7)?,
                    hired_date: r.get(8)?,
                    avatar: r.get(9)?,
                    mobile: r.get(10)?,
                    email: r.get(11)?,
                    depts: Vec::new(),
                    extra: logic::extra_from_text(r.get(12)?),
                },
            ))
        })
        .ctx(op)?
        .collect::<Result<Vec<_>, _>>()
        .ctx(op)?;
    let mut members = Vec::with_capacity(raw.len());
    for (status, user_id, mut member) in raw {
        member.status = logic::status_parse(&status)?;
        members.push(logic::MemberRow { member, user_id });
    }
    let mut st = conn.prepare_cached(sql::SELECT_MEMBERSHIPS).ctx(op)?;
    let memberships = st
        .query_map([full_name], |r| {
            Ok(MembershipRow {
                member_id: r.get(0)?,
                seq: r.get(4)?,
                membership: DeptMembership {
                    dept_id: r.get(1)?,
                    order: r.get(2)?,
                    is_leader: r.get(3)?,
                },
            })
        })
        .ctx(op)?
        .collect::<Result<Vec<_>, _>>()
        .ctx(op)?;
    let mut st = conn.prepare_cached(sql::SELECT_ROLE_GROUPS).ctx(op)?;
    let role_groups = st
        .query_map([full_name], |r| {
            Ok(RoleGroup {
                group_id: r.get(0)?,
                name: r.get(1)?,
            })
        })
        .ctx(op)?
        .collect::<Result<Vec<_>, _>>()
        .ctx(op)?;
    let mut st = conn.prepare_cached(sql::SELECT_ROLES).ctx(op)?;
    let roles = st
        .query_map([full_name], |r| {
            Ok(jit_org::Role {
                role_id: r.get(0)?,
                group_id: r.get(1)?,
                name: r.get(2)?,
                members: Vec::new(),
            })
        })
        .ctx(op)?
        .collect::<Result<Vec<_>, _>>()
        .ctx(op)?;
    let mut st = conn.prepare_cached(sql::SELECT_ROLE_MEMBERS).ctx(op)?;
    let raw: Vec<(String, String, String)> = st
        .query_map([full_name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .ctx(op)?
        .collect::<Result<Vec<_>, _>>()
        .ctx(op)?;
    let role_members = raw
        .into_iter()
        .map(|(r, m, o)| Ok((r, m, logic::origin_parse(&o)?)))
        .collect::<StoreResult<Vec<_>>>()?;
    let admins = read_admins(conn, full_name, op)?;
    let mut rows = OrgRows {
        corp,
        last_sync_at,
        depts,
        members,
        memberships,
        role_groups,
        roles,
        role_members,
        admins,
    };
    rows.sort();
    Ok(Some(rows))
}

fn read_admins(conn: &Connection, full_name: &str, op: &str) -> StoreResult<Vec<AdminRow>> {
    let mut st = conn.prepare_cached(sql::SELECT_ADMINS).ctx(op)?;
    let raw = st
        .query_map([full_name], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i32>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .ctx(op)?
        .collect::<Result<Vec<_>, _>>()
        .ctx(op)?;
    let mut rows = raw
        .into_iter()
        .map(|(member_id, level, origin, seq)| {
            let origin = logic::origin_parse(&origin)?;
            Ok((
                AdminRow {
                    member_id,
                    level,
                    origin,
                },
                seq,
            ))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    logic::sort_admins(&mut rows);
    Ok(rows.into_iter().map(|(a, _)| a).collect())
}

fn upsert_corp(tx: &Connection, corp: &CorpRecord, op: &str) -> StoreResult<()> {
    tx.prepare_cached(sql::UPSERT_CORP)
        .ctx(op)?
        .execute(params![
            corp.full_name,
            corp.title,
            corp.corp_type,
            corp.provider.as_str(),
            corp.corp_id
        ])
        .ctx(op)?;
    Ok(())
}

/// Inserts the run (`run_id` 0) or finishes the begun run `run_id`, with its
/// change lines.
fn write_run(
    tx: &Connection,
    run: &SyncRun,
    changes: &[Change],
    rows_written: u64,
    op: &str,
) -> StoreResult<i64> {
    let counts = logic::run_counts(&run.counts, changes);
    let counts = logic::counts_to_text(&counts);
    let outcome = logic::enum_str(&run.outcome);
    let notes = serde_json::to_string(&run.notes).unwrap_or_else(|_| "[]".into());
    let run_id: i64 = if run.run_id == 0 {
        tx.prepare_cached(sql::INSERT_RUN)
            .ctx(op)?
            .query_row(
                params![
                    run.corp,
                    run.started_at,
                    run.finished_at,
                    outcome,
                    counts,
                    run.error,
                    notes,
                    rows_written as i64,
                    run.kind.as_str(),
                    run.missed_by_events.map(|n| n as i64),
                    logic::calls_to_text(&run.calls)
                ],
                |r| r.get(0),
            )
            .ctx(op)?
    } else {
        let n = tx
            .prepare_cached(sql::FINISH_RUN)
            .ctx(op)?
            .execute(params![
                run.finished_at,
                outcome,
                counts,
                run.error,
                notes,
                rows_written as i64,
                run.missed_by_events.map(|n| n as i64),
                logic::calls_to_text(&run.calls),
                run.run_id,
                run.corp
            ])
            .ctx(op)?;
        if n == 0 {
            return Err(logic::unknown_run(run));
        }
        tx.prepare_cached(sql::CLEAR_RUN_CHANGES)
            .ctx(op)?
            .execute([run.run_id])
            .ctx(op)?;
        run.run_id
    };
    let seqs: Vec<i64> = (0..changes.len() as i64).collect();
    let objects: Vec<String> = changes.iter().map(|c| logic::enum_str(&c.object)).collect();
    let kinds: Vec<&str> = changes.iter().map(|c| c.kind.as_str()).collect();
    let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(changes.len() * 6);
    for (i, c) in changes.iter().enumerate() {
        values.extend([
            &run_id as &dyn rusqlite::ToSql,
            &seqs[i],
            &objects[i],
            &c.id,
            &kinds[i],
            &c.reason,
        ]);
    }
    insert_many(
        tx,
        "INSERT INTO run_changes (run_id, seq, object, object_id, kind, reason)",
        "",
        6,
        &values,
        op,
    )?;
    Ok(run_id)
}

fn read_runs(conn: &Connection, full_name: &str, limit: usize) -> StoreResult<Vec<SyncRun>> {
    let op = format!("list runs of {full_name}");
    let mut st = conn.prepare_cached(sql::SELECT_RUNS).ctx(&op)?;
    let raw = st
        .query_map(
            params![full_name, limit.min(i64::MAX as usize) as i64],
            run_columns,
        )
        .ctx(&op)?
        .collect::<Result<Vec<_>, _>>()
        .ctx(&op)?;
    raw.into_iter().map(run_from_columns).collect()
}

fn read_run(conn: &Connection, run_id: i64) -> StoreResult<Option<SyncRun>> {
    let op = format!("read run {run_id}");
    conn.prepare_cached(sql::SELECT_RUN)
        .ctx(&op)?
        .query_row([run_id], run_columns)
        .optional()
        .ctx(&op)?
        .map(run_from_columns)
        .transpose()
}

/// The columns of a `sync_runs` row, in `SELECT_RUN(S)` order.
type RunColumns = (
    i64,
    String,
    i64,
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<i64>,
    Option<String>,
);

fn run_columns(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunColumns> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

fn run_from_columns(
    (run_id, corp, started_at, finished_at, outcome, counts, error, notes, kind, missed, calls): RunColumns,
) -> StoreResult<SyncRun> {
    Ok(SyncRun {
        run_id,
        corp,
        started_at,
        finished_at,
        outcome: logic::enum_parse(&outcome, "run outcome")?,
        counts: logic::counts_from_text(&counts),
        error,
        notes: serde_json::from_str(&notes).unwrap_or_default(),
        kind: logic::run_kind(&kind)?,
        missed_by_events: missed.map(|n: i64| n.max(0) as u64),
        calls: logic::calls_from_text(calls.as_deref()),
    })
}

/// Runs a future whose every `.await` is ready at once to completion, on
/// this thread. The SQLite primitives are synchronous behind their `async`
/// signatures (the shared operations in `logic::ops` are written once for
/// both backends, and PostgreSQL's do wait), so one poll finishes them.
fn run_ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => unreachable!("a SQLite primitive never waits"),
    }
}

/// The SQLite primitives over one open transaction (or, for reads, the
/// connection): cached prepared statements, multi-row inserts for bulk rows.
struct SqliteTx<'c> {
    c: &'c Connection,
    op: &'c str,
}

impl<'c> SqliteTx<'c> {
    fn new(c: &'c Connection, op: &'c str) -> SqliteTx<'c> {
        SqliteTx { c, op }
    }

    /// Executes a cached statement; returns the rows changed.
    fn exec(&self, sql: &str, p: impl rusqlite::Params) -> StoreResult<u64> {
        Ok(self
            .c
            .prepare_cached(sql)
            .ctx(self.op)?
            .execute(p)
            .ctx(self.op)? as u64)
    }

    /// Collects a cached query.
    fn rows<T, C: FromIterator<T>>(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
        f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<C> {
        self.c
            .prepare_cached(sql)
            .ctx(self.op)?
            .query_map(p, f)
            .ctx(self.op)?
            .collect::<Result<C, _>>()
            .ctx(self.op)
    }
}

impl Tx for SqliteTx<'_> {
    fn operation(&self) -> &str {
        self.op
    }

    async fn corp_exists(&mut self, corp: &str) -> StoreResult<bool> {
        Ok(count(self.c, sql::CORP_EXISTS, [corp], self.op)? > 0)
    }

    async fn member_exists(&mut self, corp: &str, member_id: &str) -> StoreResult<bool> {
        Ok(count(self.c, sql::MEMBER_EXISTS, [corp, member_id], self.op)? > 0)
    }

    async fn role_exists(&mut self, corp: &str, role_id: &str) -> StoreResult<bool> {
        Ok(count(self.c, sql::ROLE_EXISTS, [corp, role_id], self.op)? > 0)
    }

    async fn dept_tree(&mut self, corp: &str) -> StoreResult<Vec<(i64, Option<i64>, String)>> {
        self.rows(sql::SELECT_DEPT_TREE, [corp], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
    }

    async fn dept_ids(&mut self, corp: &str) -> StoreResult<HashSet<i64>> {
        self.rows(sql::DEPT_IDS, [corp], |r| r.get(0))
    }

    async fn member_ids(&mut self, corp: &str) -> StoreResult<HashSet<String>> {
        self.rows(sql::MEMBER_IDS, [corp], |r| r.get(0))
    }

    async fn corp_bindings(
        &mut self,
        provider: &str,
        corp_id: &str,
    ) -> StoreResult<HashMap<String, (i64, Option<String>)>> {
        self.rows(sql::SELECT_CORP_BINDINGS, [provider, corp_id], |r| {
            Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?)))
        })
    }

    async fn union_users(&mut self, provider: &str) -> StoreResult<HashMap<String, i64>> {
        self.rows(sql::SELECT_UNION_USERS, [provider], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    }

    async fn member_roles(
        &mut self,
        corp: &str,
        member_id: &str,
    ) -> StoreResult<Vec<(String, Origin)>> {
        let raw: Vec<(String, String)> = self.rows(sql::MEMBER_ROLES, [corp, member_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        raw.into_iter()
            .map(|(role, origin)| Ok((role, logic::origin_parse(&origin)?)))
            .collect()
    }

    async fn upsert_corp(&mut self, corp: &CorpRecord) -> StoreResult<()> {
        upsert_corp(self.c, corp, self.op)
    }

    async fn upsert_depts(
        &mut self,
        corp: &str,
        depts: &[&Dept],
        paths: &HashMap<i64, String>,
    ) -> StoreResult<u64> {
        let mut st = self
            .c
            .prepare_cached(&format!(
                "INSERT INTO depts ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) {}",
                sql::DEPT_COLUMNS,
                sql::DEPT_CONFLICT
            ))
            .ctx(self.op)?;
        let mut rows = 0;
        for d in depts {
            rows += st
                .execute(params![
                    corp,
                    d.dept_id,
                    d.parent_id,
                    d.name,
                    d.order,
                    paths[&d.dept_id],
                    serde_json::to_string(&d.leaders).unwrap_or_else(|_| "[]".into())
                ])
                .ctx(self.op)? as u64;
        }
        Ok(rows)
    }

    async fn remove_depts(&mut self, corp: &str, ids: &[i64]) -> StoreResult<u64> {
        let mut rows = 0;
        for id in ids {
            rows += self.exec(sql::DEPT_MEMBERS_CLEAR, params![corp, id])?;
            rows += self.exec(
                "DELETE FROM depts WHERE corp = ?1 AND dept_id = ?2",
                params![corp, id],
            )?;
        }
        Ok(rows)
    }

    async fn set_dept_paths(&mut self, corp: &str, changed: &[(i64, String)]) -> StoreResult<u64> {
        let mut rows = 0;
        for (id, path) in changed {
            rows += self.exec(
                "UPDATE depts SET path = ?1 WHERE corp = ?2 AND dept_id = ?3",
                params![path, corp, id],
            )?;
        }
        Ok(rows)
    }

    async fn insert_users(&mut self, names: &[&str], now: i64) -> StoreResult<(Vec<i64>, u64)> {
        // One writer holds the transaction, so MAX()+1 cannot race.
        let first: i64 = count(
            self.c,
            "SELECT COALESCE(MAX(user_id), 0) + 1 FROM users",
            [],
            self.op,
        )?;
        let ids: Vec<i64> = (0..names.len() as i64).map(|i| first + i).collect();
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(ids.len() * 3);
        for (id, name) in ids.iter().zip(names) {
            values.extend([id as &dyn rusqlite::ToSql, name, &now]);
        }
        let rows = insert_many(
            self.c,
            "INSERT INTO users (user_id, name, created_at)",
            "",
            3,
            &values,
            self.op,
        )?;
        Ok((ids, rows))
    }

    async fn write_bindings(
        &mut self,
        provider: &str,
        corp_id: &str,
        rows: &[BindingRow<'_>],
        now: i64,
    ) -> StoreResult<u64> {
        // New and changed rows alike: one upsert (SQLite gains nothing from
        // telling them apart).
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(rows.len() * 7);
        let provider = &provider;
        let corp_id = &corp_id;
        for w in rows {
            values.extend([
                provider as &dyn rusqlite::ToSql,
                corp_id,
                &w.member_id,
                &w.union_id,
                &w.user_id,
                &now,
                &now,
            ]);
        }
        insert_many(
            self.c,
            &format!("INSERT INTO auth_bindings ({})", sql::BINDING_COLUMNS),
            sql::BINDING_CONFLICT,
            7,
            &values,
            self.op,
        )
    }

    async fn set_member_users(&mut self, corp: &str, users: &[(&str, i64)]) -> StoreResult<u64> {
        let mut rows = 0;
        for (m, u) in users {
            rows += self.exec(sql::MEMBER_SET_USER, params![u, corp, m])?;
        }
        Ok(rows)
    }

    async fn clear_memberships(&mut self, corp: &str, member_ids: &[&str]) -> StoreResult<u64> {
        let mut rows = 0;
        for m in member_ids {
            rows += self.exec(
                "DELETE FROM dept_members WHERE corp = ?1 AND member_id = ?2",
                params![corp, m],
            )?;
        }
        Ok(rows)
    }

    async fn write_members(
        &mut self,
        corp: &str,
        fresh: &[&Member],
        known: &[&Member],
        users: &HashMap<&str, i64>,
    ) -> StoreResult<u64> {
        let all: Vec<&Member> = fresh.iter().chain(known).copied().collect();
        let user_ids: Vec<Option<i64>> = all
            .iter()
            .map(|m| users.get(m.member_id.as_str()).copied())
            .collect();
        let extras: Vec<Option<String>> =
            all.iter().map(|m| logic::extra_to_text(&m.extra)).collect();
        let statuses: Vec<&str> = all.iter().map(|m| m.status.as_str()).collect();
        let corp = &corp;
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(all.len() * 14);
        for (i, m) in all.iter().enumerate() {
            values.extend([
                corp as &dyn rusqlite::ToSql,
                &m.member_id,
                &user_ids[i],
                &m.union_id,
                &m.name,
                &statuses[i],
                &m.position,
                &m.job_number,
                &m.main_dept_id,
                &m.hired_date,
                &m.avatar,
                &m.mobile,
                &m.email,
                &extras[i],
            ]);
        }
        insert_many(
            self.c,
            &format!("INSERT INTO members ({})", sql::MEMBER_COLUMNS),
            sql::MEMBER_CONFLICT,
            14,
            &values,
            self.op,
        )
    }

    async fn insert_memberships(&mut self, corp: &str, members: &[&Member]) -> StoreResult<u64> {
        let ms: Vec<(&Member, i64, &DeptMembership)> = members
            .iter()
            .flat_map(|m| logic::memberships(m).map(move |(seq, d)| (*m, seq, d)))
            .collect();
        let corp = &corp;
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(ms.len() * 6);
        for (m, seq, d) in &ms {
            values.extend([
                corp as &dyn rusqlite::ToSql,
                &m.member_id,
                &d.dept_id,
                seq,
                &d.order,
                &d.is_leader,
            ]);
        }
        insert_many(
            self.c,
            &format!("INSERT INTO dept_members ({})", sql::MEMBERSHIP_COLUMNS),
            "",
            6,
            &values,
            self.op,
        )
    }

    async fn offline_members(&mut self, corp: &str, member_ids: &[String]) -> StoreResult<u64> {
        let mut rows = 0;
        for id in member_ids {
            rows += self.exec(sql::OFFLINE_MEMBER, params![corp, id])?;
        }
        Ok(rows)
    }

    async fn upsert_role_group(&mut self, corp: &str, g: &RoleGroup) -> StoreResult<u64> {
        self.exec(sql::GROUP_UPSERT, params![corp, g.group_id, g.name])
    }

    async fn remove_role_group(&mut self, corp: &str, group_id: &str) -> StoreResult<u64> {
        self.exec(sql::GROUP_DELETE, params![corp, group_id])
    }

    async fn upsert_role(&mut self, corp: &str, r: &Role) -> StoreResult<u64> {
        self.exec(
            sql::ROLE_UPSERT,
            params![corp, r.role_id, r.group_id, r.name],
        )
    }

    async fn remove_role(&mut self, corp: &str, role_id: &str) -> StoreResult<u64> {
        self.exec(sql::ROLE_DELETE, params![corp, role_id])
    }

    async fn replace_upstream_holders(
        &mut self,
        corp: &str,
        role_id: &str,
        member_ids: &[&str],
    ) -> StoreResult<u64> {
        let rows = self.exec(sql::ROLE_MEMBERS_CLEAR, params![corp, role_id])?;
        // Multi-row inserts, as for members: a tag of thousands of holders
        // was one statement per holder (~1.3 µs each).
        let upstream = Origin::Upstream.as_str();
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(member_ids.len() * 4);
        for m in member_ids {
            values.extend([&corp as &dyn rusqlite::ToSql, &role_id, m, &upstream]);
        }
        Ok(rows
            + insert_many(
                self.c,
                &format!("INSERT INTO role_members ({})", sql::ROLE_MEMBER_COLUMNS),
                "",
                4,
                &values,
                self.op,
            )?)
    }

    async fn replace_local_roles(
        &mut self,
        corp: &str,
        member_id: &str,
        role_ids: &[&str],
    ) -> StoreResult<u64> {
        let mut rows = self.exec(sql::MEMBER_ROLES_CLEAR, params![corp, member_id])?;
        for r in role_ids {
            rows += self.exec(
                sql::ROLE_MEMBER_INSERT,
                params![corp, r, member_id, Origin::Local.as_str()],
            )?;
        }
        Ok(rows)
    }

    async fn write_admins(
        &mut self,
        corp: &str,
        admins: &[Admin],
        origin: Origin,
    ) -> StoreResult<u64> {
        let mut rows = self.exec(sql::ADMINS_CLEAR, params![corp, origin.as_str()])?;
        for (i, a) in logic::dedup_admins(admins).iter().enumerate() {
            rows += self.exec(
                sql::ADMIN_INSERT,
                params![corp, a.member_id, a.level, i as i64, origin.as_str()],
            )?;
        }
        Ok(rows)
    }

    async fn stamp_sync(&mut self, corp: &str, at: i64) -> StoreResult<()> {
        self.exec(sql::STAMP_SYNC, params![at, corp])?;
        Ok(())
    }

    async fn write_run(
        &mut self,
        run: &SyncRun,
        changes: &[Change],
        rows_written: u64,
    ) -> StoreResult<i64> {
        write_run(self.c, run, changes, rows_written, self.op)
    }
}

/// Runs one of the shared write operations in a `BEGIN IMMEDIATE`
/// transaction (the write lock up front: no deadlock-prone upgrade from a
/// read lock), committed when it succeeds.
fn in_write_tx<T>(
    conn: &mut Connection,
    op: &str,
    f: impl FnOnce(&mut SqliteTx<'_>) -> StoreResult<T>,
) -> StoreResult<T> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx(op)?;
    let out = f(&mut SqliteTx::new(&tx, op))?;
    tx.commit().ctx(op)?;
    Ok(out)
}

#[async_trait::async_trait]
impl CorpStore for SqliteStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn upsert_corp(&self, corp: &CorpRecord) -> StoreResult<()> {
        let corp = corp.clone();
        self.with("upsert corp", move |c| {
            upsert_corp(c, &corp, &format!("upsert corp {}", corp.full_name))
        })
        .await
    }

    async fn corp(&self, full_name: &str) -> StoreResult<Option<CorpRecord>> {
        let f = full_name.to_string();
        self.with("read corp", move |c| {
            Ok(read_corp(c, &f, &format!("read corp {f}"))?.map(|(r, _)| r))
        })
        .await
    }

    async fn load_snapshot(&self, full_name: &str) -> StoreResult<CorpSnapshot> {
        let f = full_name.to_string();
        self.with("load snapshot", move |c| {
            Ok(match load_rows(c, &f)? {
                Some(rows) => rows.into_snapshot(),
                None => CorpSnapshot {
                    admins: Some(Vec::new()),
                    ..CorpSnapshot::default()
                },
            })
        })
        .await
    }

    async fn apply_plan(
        &self,
        corp: &CorpRecord,
        plan: &SyncPlan,
        run: &SyncRun,
    ) -> StoreResult<ApplyReport> {
        self.apply_shared_plan(corp, std::sync::Arc::new(plan.clone()), run)
            .await
    }

    async fn apply_shared_plan(
        &self,
        corp: &CorpRecord,
        plan: std::sync::Arc<SyncPlan>,
        run: &SyncRun,
    ) -> StoreResult<ApplyReport> {
        let (corp, run) = (corp.clone(), run.clone());
        let fold = folds_later(&plan);
        let report = self
            .with("apply plan", move |c| apply_on(c, &corp, &plan, &run))
            .await?;
        if fold {
            self.checkpoint_later();
        }
        Ok(report)
    }

    async fn record_run(&self, run: &SyncRun, changes: &[Change]) -> StoreResult<i64> {
        let (run, changes) = (run.clone(), changes.to_vec());
        self.with("record run", move |c| {
            let op = format!("record run for {}", run.corp);
            let tx = c.transaction().ctx(&op)?;
            let id = write_run(&tx, &run, &changes, 0, &op)?;
            tx.commit().ctx(&op)?;
            Ok(id)
        })
        .await
    }

    async fn begin_run(&self, run: &SyncRun) -> StoreResult<i64> {
        let run = logic::running(run);
        self.with("begin run", move |c| {
            let op = format!("begin run for {}", run.corp);
            let tx = c.transaction().ctx(&op)?;
            let id = write_run(&tx, &run, &[], 0, &op)?;
            tx.commit().ctx(&op)?;
            Ok(id)
        })
        .await
    }

    async fn get_run(&self, run_id: i64) -> StoreResult<Option<SyncRun>> {
        self.with("read run", move |c| read_run(c, run_id)).await
    }

    async fn lock_sync(&self, full_name: &str, wait: Duration) -> StoreResult<SyncLock> {
        let corp = full_name.to_string();
        let op = format!("lock sync of {corp}");
        let held = match &self.file {
            Some(db) => {
                let path = lock::lock_file_path(db, &corp);
                lock::poll(wait, || {
                    let (path, op) = (path.clone(), op.clone());
                    async move {
                        lock::try_file_lock(&path).map_err(|e| StoreError::Database {
                            operation: format!("{op} ({})", path.display()),
                            cause: e.into(),
                        })
                    }
                })
                .await?
            }
            None => {
                lock::poll(wait, || async {
                    Ok(lock::try_memory_lock(self.instance, &corp))
                })
                .await?
            }
        };
        let c = corp.clone();
        let Some(held) = held else {
            let newest = self
                .with("read running run", move |conn| {
                    conn.query_row(sql::NEWEST_RUNNING_RUN, [&c], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()
                    .ctx(&format!("read the running run of {c}"))
                })
                .await?;
            return Err(lock::busy(&corp, newest));
        };
        // Dropped (released) if marking fails.
        let guard = SyncLock::new(&corp, held);
        self.with("fail interrupted runs", move |conn| {
            conn.execute(sql::FAIL_RUNNING_RUNS, [lock::INTERRUPTED, &c])
                .ctx(&format!("fail interrupted runs of {c}"))
        })
        .await?;
        Ok(guard)
    }

    async fn bulk_register(
        &self,
        corp: &CorpRecord,
        members: &[Member],
    ) -> StoreResult<Vec<IdentityConflict>> {
        let (corp, members) = (corp.clone(), members.to_vec());
        self.with("bulk register", move |c| {
            let op = format!("bulk register members of {}", corp.full_name);
            in_write_tx(c, &op, |tx| {
                run_ready(ops::bulk_register(tx, &corp, &members))
            })
        })
        .await
    }

    async fn local_corp_data(&self, full_name: &str, include_offline: bool) -> StoreResult<Value> {
        let f = full_name.to_string();
        self.with("read local corp data", move |c| match load_rows(c, &f)? {
            Some(rows) => Ok(rows.into_local_corp_data(include_offline)),
            None => Err(StoreError::UnknownCorp(f)),
        })
        .await
    }

    async fn set_member_roles(
        &self,
        full_name: &str,
        member_id: &str,
        role_ids: &[String],
    ) -> StoreResult<Vec<RoleMemberRow>> {
        let (f, m, roles) = (
            full_name.to_string(),
            member_id.to_string(),
            role_ids.to_vec(),
        );
        self.with("set member roles", move |c| {
            let op = format!("set roles of member {m} in {f}");
            in_write_tx(c, &op, |tx| {
                run_ready(ops::set_member_roles(tx, &f, &m, &roles))
            })
        })
        .await
    }

    async fn offline_members(&self, full_name: &str, member_ids: &[String]) -> StoreResult<usize> {
        let (f, ids) = (full_name.to_string(), member_ids.to_vec());
        self.with("offline members", move |c| {
            let op = format!("offline members of {f}");
            in_write_tx(c, &op, |tx| run_ready(ops::offline_members(tx, &f, &ids)))
        })
        .await
    }

    async fn get_signature(&self, full_name: &str, member_id: &str) -> StoreResult<Option<String>> {
        let (f, m) = (full_name.to_string(), member_id.to_string());
        self.with("get signature", move |c| {
            let op = format!("read signature of {m} in {f}");
            run_ready(ops::require_member(&mut SqliteTx::new(c, &op), &f, &m))?;
            c.query_row(sql::SIGNATURE_GET, [&f, &m], |r| r.get(0))
                .optional()
                .ctx(&op)
        })
        .await
    }

    async fn save_signature(
        &self,
        full_name: &str,
        member_id: &str,
        signature: &str,
    ) -> StoreResult<()> {
        let (f, m, s) = (
            full_name.to_string(),
            member_id.to_string(),
            signature.to_string(),
        );
        self.with("save signature", move |c| {
            let op = format!("save signature of {m} in {f}");
            run_ready(ops::require_member(&mut SqliteTx::new(c, &op), &f, &m))?;
            c.execute(sql::SIGNATURE_SAVE, params![f, m, s, logic::now_ms()])
                .ctx(&op)?;
            Ok(())
        })
        .await
    }

    async fn set_admins(&self, full_name: &str, admins: &[Admin]) -> StoreResult<()> {
        let (f, admins) = (full_name.to_string(), admins.to_vec());
        self.with("set admins", move |c| {
            let op = format!("set admins of {f}");
            in_write_tx(c, &op, |tx| run_ready(ops::set_admins(tx, &f, &admins)))
        })
        .await
    }

    async fn get_admins(&self, full_name: &str) -> StoreResult<Vec<AdminRow>> {
        let f = full_name.to_string();
        self.with("get admins", move |c| {
            let op = format!("read admins of {f}");
            run_ready(ops::require_corp(&mut SqliteTx::new(c, &op), &f))?;
            read_admins(c, &f, &op)
        })
        .await
    }

    async fn list_runs(&self, full_name: &str, limit: usize) -> StoreResult<Vec<SyncRun>> {
        let f = full_name.to_string();
        self.with("list runs", move |c| read_runs(c, &f, limit))
            .await
    }

    async fn run_changes(&self, run_id: i64) -> StoreResult<Vec<RunChange>> {
        self.with("read run changes", move |c| {
            let op = format!("read changes of run {run_id}");
            let raw: Vec<(String, String, String, String)> = c
                .prepare_cached(sql::SELECT_RUN_CHANGES)
                .ctx(&op)?
                .query_map([run_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .ctx(&op)?
                .collect::<Result<_, _>>()
                .ctx(&op)?;
            raw.into_iter()
                .map(|(object, id, kind, reason)| {
                    Ok(RunChange {
                        object: logic::enum_parse(&object, "change object")?,
                        id,
                        kind: logic::enum_parse(&kind, "change kind")?,
                        reason,
                    })
                })
                .collect()
        })
        .await
    }

    async fn local_user_for(
        &self,
        provider: &Provider,
        corp_id: &str,
        member_id: &str,
        union_id: Option<&str>,
    ) -> StoreResult<Option<i64>> {
        let (p, corp_id, m, u) = (
            provider.clone(),
            corp_id.to_string(),
            member_id.to_string(),
            union_id.map(str::to_string),
        );
        self.with("look up local user", move |c| {
            let op = format!("look up local user of {p} {corp_id}/{m}");
            if let Some(u) = u.filter(|_| p.identity_by_union_id()) {
                let found: Option<i64> = c
                    .query_row(sql::LOCAL_USER_BY_UNION, [p.as_str(), &u], |r| r.get(0))
                    .ctx(&op)?;
                if found.is_some() {
                    return Ok(found);
                }
            }
            c.query_row(sql::LOCAL_USER_BY_MEMBER, [p.as_str(), &corp_id, &m], |r| {
                r.get(0)
            })
            .optional()
            .ctx(&op)
        })
        .await
    }

    async fn memberships_of_user(
        &self,
        user_id: i64,
    ) -> StoreResult<Vec<(String, String, MemberStatus)>> {
        self.with("read memberships of user", move |c| {
            let op = format!("read memberships of local user {user_id}");
            let raw: Vec<(String, String, String)> = c
                .prepare_cached(sql::MEMBERSHIPS_OF_USER)
                .ctx(&op)?
                .query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .ctx(&op)?
                .collect::<Result<_, _>>()
                .ctx(&op)?;
            let mut out = raw
                .into_iter()
                .map(|(c, m, s)| Ok((c, m, logic::status_parse(&s)?)))
                .collect::<StoreResult<Vec<_>>>()?;
            out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
            Ok(out)
        })
        .await
    }

    async fn user_count(&self) -> StoreResult<u64> {
        self.with("count users", |c| {
            Ok(count(c, sql::USER_COUNT, [], "count users")? as u64)
        })
        .await
    }

    async fn last_successful_sync(&self, full_name: &str) -> StoreResult<Option<i64>> {
        let f = full_name.to_string();
        self.with("read last sync", move |c| {
            Ok(
                c.query_row(sql::LAST_SYNC, [&f], |r| r.get::<_, Option<i64>>(0))
                    .optional()
                    .ctx(&format!("read last sync of {f}"))?
                    .flatten(),
            )
        })
        .await
    }

    async fn subtree_members(&self, full_name: &str, dept_id: i64) -> StoreResult<Vec<String>> {
        let f = full_name.to_string();
        self.with("subtree members", move |c| {
            let op = format!("read members under department {dept_id} of {f}");
            run_ready(ops::require_corp(&mut SqliteTx::new(c, &op), &f))?;
            let mut ids: Vec<String> = c
                .prepare_cached(sql::SUBTREE_MEMBERS)
                .ctx(&op)?
                .query_map(params![f, dept_id], |r| r.get(0))
                .ctx(&op)?
                .collect::<Result<_, _>>()
                .ctx(&op)?;
            ids.sort();
            Ok(ids)
        })
        .await
    }

    async fn root_dept(&self, full_name: &str) -> StoreResult<Option<(jit_org::Dept, String)>> {
        let f = full_name.to_string();
        self.with("read root department", move |c| {
            let op = format!("read root department of {f}");
            run_ready(ops::require_corp(&mut SqliteTx::new(c, &op), &f))?;
            c.prepare_cached(sql::SELECT_ROOT_DEPT)
                .ctx(&op)?
                .query_row([&f], |r| {
                    let leaders: String = r.get(4)?;
                    Ok((
                        jit_org::Dept {
                            dept_id: r.get(0)?,
                            parent_id: r.get(1)?,
                            name: r.get(2)?,
                            order: r.get(3)?,
                            leaders: serde_json::from_str(&leaders).unwrap_or_default(),
                        },
                        r.get(5)?,
                    ))
                })
                .optional()
                .ctx(&op)
        })
        .await
    }

    async fn claim_firing(&self, claim: &FiringClaim) -> StoreResult<Claim> {
        let claim = claim.clone();
        self.with("claim task firing", move |c| {
            let op = format!("claim firing of {} at {}", claim.task, claim.scheduled_at);
            // BEGIN IMMEDIATE: one claimer at a time across processes.
            in_write_tx(c, &op, |tx| run_ready(firings::claim(tx, &claim)))
        })
        .await
    }

    async fn renew_firing(
        &self,
        firing_id: i64,
        holder: &str,
        attempt: i64,
        lease_until: i64,
    ) -> StoreResult<bool> {
        let holder = holder.to_string();
        self.with("renew firing lease", move |c| {
            let op = format!("renew lease of firing {firing_id}");
            in_write_tx(c, &op, |tx| {
                run_ready(firings::renew(tx, firing_id, &holder, attempt, lease_until))
            })
        })
        .await
    }

    async fn finish_firing(&self, end: &FiringEnd) -> StoreResult<bool> {
        let end = end.clone();
        self.with("finish firing", move |c| {
            let op = format!("finish firing {}", end.firing_id);
            in_write_tx(c, &op, |tx| run_ready(firings::finish(tx, &end)))
        })
        .await
    }

    async fn expired_firings(&self, now: i64) -> StoreResult<Vec<Firing>> {
        self.with("read expired firings", move |c| {
            run_ready(firings::expired(
                &mut SqliteTx::new(c, "read expired firings"),
                now,
            ))
        })
        .await
    }

    async fn list_firings(
        &self,
        task: &str,
        limit: usize,
        before: Option<i64>,
    ) -> StoreResult<Vec<Firing>> {
        let task = task.to_string();
        self.with("list firings", move |c| {
            let op = format!("list firings of {task}");
            run_ready(firings::list(
                &mut SqliteTx::new(c, &op),
                &task,
                limit,
                before,
            ))
        })
        .await
    }

    async fn login_keys(&self, first: &LoginKey) -> StoreResult<Vec<LoginKey>> {
        let first = first.clone();
        self.with("read login keys", move |c| {
            in_write_tx(c, "read login keys", |tx| {
                run_ready(logins::keys(tx, &first))
            })
        })
        .await
    }

    async fn rotate_login_key(&self, next: &LoginKey) -> StoreResult<Vec<LoginKey>> {
        let next = next.clone();
        self.with("rotate login key", move |c| {
            in_write_tx(c, "rotate login key", |tx| {
                run_ready(logins::rotate(tx, &next))
            })
        })
        .await
    }

    async fn revoke_session(&self, session_id: &str, expires_at: i64, now: i64) -> StoreResult<()> {
        let id = session_id.to_string();
        self.with("revoke session", move |c| {
            in_write_tx(c, "revoke session", |tx| {
                run_ready(logins::revoke(tx, &id, expires_at, now))
            })
        })
        .await
    }

    async fn session_revoked(&self, session_id: &str) -> StoreResult<bool> {
        let id = session_id.to_string();
        self.with("read session revocation", move |c| {
            run_ready(logins::revoked(
                &mut SqliteTx::new(c, "read session revocation"),
                &id,
            ))
        })
        .await
    }

    async fn put_login_state(&self, state: &LoginState, now: i64) -> StoreResult<()> {
        let state = state.clone();
        self.with("store login state", move |c| {
            in_write_tx(c, "store login state", |tx| {
                run_ready(logins::put_state(tx, &state, now))
            })
        })
        .await
    }

    async fn read_rows(
        &self,
        q: crate::reads::ReadSql,
        params: &[crate::reads::ReadParam],
    ) -> StoreResult<Vec<Vec<crate::reads::Cell>>> {
        self.sqlite_read_rows(q, params).await
    }

    async fn take_login_state(&self, state_id: &str, now: i64) -> StoreResult<Option<LoginState>> {
        let id = state_id.to_string();
        self.with("take login state", move |c| {
            in_write_tx(c, "take login state", |tx| {
                run_ready(logins::take_state(tx, &id, now))
            })
        })
        .await
    }

    async fn inbox_put(&self, event: &crate::NewInboxEvent) -> StoreResult<crate::InboxPut> {
        self.sqlite_inbox_put(event).await
    }

    async fn inbox_claim(&self, claim: &crate::InboxClaim) -> StoreResult<Vec<crate::InboxRow>> {
        self.sqlite_inbox_claim(claim).await
    }

    async fn inbox_finish(&self, end: &crate::InboxEnd) -> StoreResult<u64> {
        self.sqlite_inbox_finish(end).await
    }

    async fn inbox_due(&self, now: i64) -> StoreResult<Vec<String>> {
        self.sqlite_inbox_due(now).await
    }

    async fn inbox_prune(&self, applied_before: i64) -> StoreResult<u64> {
        self.sqlite_inbox_prune(applied_before).await
    }

    async fn inbox_list(
        &self,
        corp: &str,
        limit: usize,
        before: Option<i64>,
    ) -> StoreResult<Vec<crate::InboxRow>> {
        self.sqlite_inbox_list(corp, limit, before).await
    }

    async fn inbox_summary(&self, corp: &str) -> StoreResult<crate::InboxSummary> {
        self.sqlite_inbox_summary(corp).await
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        lease_ms: i64,
    ) -> StoreResult<bool> {
        self.sqlite_take_lease(name, holder, now, lease_ms).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        self.sqlite_release_lease(name, holder).await
    }
}

fn sqlite_login_params(p: &[LoginParam<'_>]) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value as V;
    p.iter()
        .map(|p| match p {
            LoginParam::Int(i) => V::Integer(*i),
            LoginParam::Text(t) => V::Text(t.to_string()),
        })
        .collect()
}

impl LoginTx for SqliteTx<'_> {
    async fn login_exec(&mut self, sql: &str, params: &[LoginParam<'_>]) -> StoreResult<u64> {
        self.exec(sql, rusqlite::params_from_iter(sqlite_login_params(params)))
    }

    async fn login_key_rows(&mut self) -> StoreResult<Vec<LoginKey>> {
        self.rows(logins::sql::KEYS, [], |r| {
            Ok(LoginKey {
                generation: r.get(0)?,
                secret: r.get(1)?,
                created_at: r.get(2)?,
            })
        })
    }

    async fn take_state_rows(&mut self, state_id: &str) -> StoreResult<Vec<LoginState>> {
        // Not cached: a DELETE ... RETURNING statement must run to its end.
        let mut st = self.c.prepare(logins::sql::TAKE_STATE).ctx(self.op)?;
        let rows = st
            .query_map([state_id], |r| {
                Ok(LoginState {
                    state_id: r.get(0)?,
                    login: r.get(1)?,
                    browser_hash: r.get(2)?,
                    redirect: r.get(3)?,
                    expires_at: r.get(4)?,
                })
            })
            .ctx(self.op)?
            .collect::<Result<Vec<_>, _>>()
            .ctx(self.op)?;
        Ok(rows)
    }

    async fn login_count(&mut self, sql: &str, params: &[LoginParam<'_>]) -> StoreResult<i64> {
        count(
            self.c,
            sql,
            rusqlite::params_from_iter(sqlite_login_params(params)),
            self.op,
        )
    }
}

fn sqlite_firing_params(p: &[FiringParam<'_>]) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value as V;
    p.iter()
        .map(|p| match p {
            FiringParam::Int(i) => V::Integer(*i),
            FiringParam::Text(t) => V::Text(t.to_string()),
            FiringParam::OptText(t) => t.map_or(V::Null, |t| V::Text(t.to_string())),
        })
        .collect()
}

fn sqlite_firing(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Firing, String, Option<String>)> {
    Ok((
        Firing {
            firing_id: r.get(0)?,
            task: r.get(1)?,
            scheduled_at: r.get(2)?,
            attempt: r.get(3)?,
            state: FiringState::Running,
            holder: r.get(5)?,
            started_at: r.get(6)?,
            lease_until: r.get(7)?,
            finished_at: r.get(8)?,
            result: None,
            error: r.get(10)?,
            note: r.get(11)?,
        },
        r.get(4)?,
        r.get(9)?,
    ))
}

impl FiringTx for SqliteTx<'_> {
    async fn firing_at(&mut self, task: &str, scheduled_at: i64) -> StoreResult<Option<Firing>> {
        let rows: Vec<_> =
            self.rows(firings::sql::AT, params![task, scheduled_at], sqlite_firing)?;
        rows.into_iter()
            .next()
            .map(|r| logic::firing_from_parts(r, self.op))
            .transpose()
    }

    async fn live_firing(&mut self, task: &str, now: i64) -> StoreResult<Option<Firing>> {
        let rows: Vec<_> = self.rows(firings::sql::LIVE, params![task, now], sqlite_firing)?;
        rows.into_iter()
            .next()
            .map(|r| logic::firing_from_parts(r, self.op))
            .transpose()
    }

    async fn insert_firing(&mut self, f: &Firing) -> StoreResult<Option<i64>> {
        let ids: Vec<i64> = self.rows(
            firings::sql::INSERT,
            params![
                f.task,
                f.scheduled_at,
                f.attempt,
                f.state.as_str(),
                f.holder,
                f.started_at,
                f.lease_until,
                f.finished_at,
                f.result.as_ref().map(|v| v.to_string()),
                f.error,
                f.note
            ],
            |r| r.get(0),
        )?;
        Ok(ids.into_iter().next())
    }

    async fn update_firing(&mut self, sql: &str, params: &[FiringParam<'_>]) -> StoreResult<u64> {
        self.exec(
            sql,
            rusqlite::params_from_iter(sqlite_firing_params(params)),
        )
    }

    async fn select_firings(
        &mut self,
        sql: &str,
        params: &[FiringParam<'_>],
    ) -> StoreResult<Vec<Firing>> {
        let rows: Vec<_> = self.rows(
            sql,
            rusqlite::params_from_iter(sqlite_firing_params(params)),
            sqlite_firing,
        )?;
        rows.into_iter()
            .map(|r| logic::firing_from_parts(r, self.op))
            .collect()
    }
}

#[cfg(test)]
mod checkpoint_tests {
    use super::*;

    fn run(corp: &CorpRecord) -> SyncRun {
        SyncRun {
            run_id: 0,
            corp: corp.full_name.clone(),
            started_at: 1,
            finished_at: 2,
            outcome: RunOutcome::Applied,
            counts: Default::default(),
            error: None,
            notes: Vec::new(),
            kind: RunKind::Sync,
            missed_by_events: None,
            calls: None,
        }
    }

    fn file_len(p: &std::path::Path) -> u64 {
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_apply_commits_without_folding_its_wal_and_the_store_folds_it_beside_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fold.db");
        let store = SqliteStore::open(path.clone()).await.unwrap();
        let org = crate::synthetic::creation_plan("corps.Fold", Provider::Wecom, 50_000);
        store.upsert_corp(&org.corp).await.unwrap();
        let before = file_len(&path);

        // The commit itself: the rows are in the WAL, the file is as it was,
        // and every later write checkpoints as SQLite does by default.
        let (corp, plan, r) = (org.corp.clone(), org.plan.clone(), run(&org.corp));
        let autocheckpoint = store
            .with("test", move |c| {
                apply_on(c, &corp, &plan, &r)?;
                Ok(
                    c.pragma_query_value(None, "wal_autocheckpoint", |v| v.get::<_, i64>(0))
                        .unwrap(),
                )
            })
            .await
            .unwrap();
        assert_eq!(autocheckpoint, WAL_AUTOCHECKPOINT);
        assert!(folds_later(&org.plan), "a 50,000-member plan is large");
        let wal = dir.path().join("fold.db-wal");
        // More than the automatic checkpoint's threshold, so a commit that
        // kept it would have folded the WAL.
        let threshold = WAL_AUTOCHECKPOINT as u64 * PAGE_SIZE as u64;
        assert!(
            file_len(&wal) > threshold,
            "the apply went to the WAL: {} bytes",
            file_len(&wal)
        );
        assert_eq!(file_len(&path), before, "the commit did not fold the WAL");

        // The fold runs on its own thread, with no further write.
        store.checkpoint_later();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while file_len(&path) < threshold && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            file_len(&path) >= threshold,
            "the WAL was folded into the file"
        );
        let snap = store.load_snapshot("corps.Fold").await.unwrap();
        assert_eq!(snap.members.len(), 50_000);
    }

    #[test]
    fn only_large_plans_defer_the_wal_fold() {
        let small = crate::synthetic::creation_plan("corps.Small", Provider::Wecom, 100);
        assert!(!folds_later(&small.plan));
        let large = crate::synthetic::creation_plan("corps.Large", Provider::Wecom, 20_000);
        assert!(folds_later(&large.plan));
    }
}
