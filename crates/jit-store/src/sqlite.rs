//! The SQLite backend: one connection behind a mutex, used from
//! `spawn_blocking`. Bulk writes are cached prepared statements executed
//! row by row inside one `BEGIN IMMEDIATE` transaction, which is what SQLite
//! is fastest at (no network round trips to batch away).

use crate::api::*;
use crate::lock::{self, SyncLock};
use crate::logic::{self, sql, Ctx, ExistingBindings, MembershipRow, OrgRows};
use crate::schema::{self, Dialect};
use jit_org::{
    Admin, Change, CorpRecord, CorpSnapshot, DeptMembership, Member, MemberStatus, Provider,
    RoleGroup, SyncPlan,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A store in one SQLite file.
pub(crate) struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    location: String,
    /// The database file; `None` for an in-memory database.
    file: Option<PathBuf>,
    /// Tells in-memory stores apart in the process-wide sync-lock table.
    instance: u64,
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
            })??;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            location,
            file,
            instance: INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
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
        .map_err(|e| StoreError::Database {
            operation: operation.to_string(),
            message: format!("worker task failed: {e}"),
        })?
    }
}

/// Page size of new database files.
const PAGE_SIZE: i64 = 16384;

fn open_blocking(path: &std::path::Path, location: &str) -> StoreResult<Connection> {
    let err = |message: String| StoreError::Open {
        location: location.to_string(),
        message,
    };
    let mut conn = Connection::open(path).map_err(|e| err(e.to_string()))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| err(e.to_string()))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| err(e.to_string()))?;
    // Read the version before writing anything, not even the journal mode.
    let found = read_version(&conn).map_err(|e| err(e.to_string()))?;
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
        .map_err(|e| err(e.to_string()))?;
    switch_to_wal(&conn).map_err(|e| err(format!("cannot switch to WAL: {e}")))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| err(e.to_string()))?;
    // 16 MiB page cache. Measured on a 100,000-member apply: larger caches
    // (64 and 256 MiB) were slower (1.9 s vs 1.4 s) and kept ~100 MB more
    // resident; in WAL mode a spill mid-transaction only appends to the WAL.
    conn.pragma_update(None, "cache_size", -16384)
        .map_err(|e| err(e.to_string()))?;
    // Statement journals (upserts, foreign keys) stay in memory instead of
    // temporary files.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(|e| err(e.to_string()))?;
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
    let full = sql_for(ROWS_PER_INSERT);
    let mut total = 0u64;
    for chunk in values.chunks(ncols * ROWS_PER_INSERT) {
        let n = chunk.len() / ncols;
        let sql = if n == ROWS_PER_INSERT {
            full.clone()
        } else {
            sql_for(n)
        };
        total += tx
            .prepare_cached(&sql)
            .ctx(op)?
            .execute(rusqlite::params_from_iter(chunk.iter()))
            .ctx(op)? as u64;
    }
    Ok(total)
}

fn count(conn: &Connection, sql: &str, p: impl rusqlite::Params, op: &str) -> StoreResult<i64> {
    conn.query_row(sql, p, |r| r.get(0)).ctx(op)
}

fn require_corp(conn: &Connection, full_name: &str, op: &str) -> StoreResult<()> {
    if count(conn, sql::CORP_EXISTS, [full_name], op)? == 0 {
        return Err(StoreError::UnknownCorp(full_name.to_string()));
    }
    Ok(())
}

fn require_member(
    conn: &Connection,
    full_name: &str,
    member_id: &str,
    op: &str,
) -> StoreResult<()> {
    require_corp(conn, full_name, op)?;
    if count(conn, sql::MEMBER_EXISTS, [full_name, member_id], op)? == 0 {
        return Err(StoreError::UnknownMember {
            corp: full_name.to_string(),
            member_id: member_id.to_string(),
        });
    }
    Ok(())
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

/// Binds `members` to local users; returns member -> user and the conflicts,
/// and adds the rows written to `rows`.
fn bind_members(
    tx: &Transaction<'_>,
    corp: &CorpRecord,
    members: &[&Member],
    rows: &mut u64,
    op: &str,
) -> StoreResult<(HashMap<String, i64>, Vec<IdentityConflict>)> {
    let provider = corp.provider.as_str();
    let mut st = tx.prepare_cached(sql::SELECT_CORP_BINDINGS).ctx(op)?;
    let by_member = st
        .query_map([provider, corp.corp_id.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?)))
        })
        .ctx(op)?
        .collect::<Result<HashMap<_, _>, _>>()
        .ctx(op)?;
    let by_union = if corp.provider.identity_by_union_id() {
        let mut st = tx.prepare_cached(sql::SELECT_UNION_USERS).ctx(op)?;
        let rows = st
            .query_map([provider], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx(op)?
            .collect::<Result<HashMap<_, _>, _>>()
            .ctx(op)?;
        rows
    } else {
        HashMap::new()
    };
    let d = logic::decide_bindings(
        &corp.provider,
        members,
        ExistingBindings {
            by_member,
            by_union,
        },
    );
    let now = logic::now_ms();
    let mut new_ids = Vec::with_capacity(d.new_users.len());
    if !d.new_users.is_empty() {
        // One writer holds the transaction, so MAX()+1 cannot race.
        let first: i64 = count(
            tx,
            "SELECT COALESCE(MAX(user_id), 0) + 1 FROM users",
            [],
            op,
        )?;
        new_ids.extend((0..d.new_users.len() as i64).map(|i| first + i));
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(new_ids.len() * 3);
        for (id, name) in new_ids.iter().zip(&d.new_users) {
            values.extend([id as &dyn rusqlite::ToSql, name, &now]);
        }
        *rows += insert_many(
            tx,
            "INSERT INTO users (user_id, name, created_at)",
            "",
            3,
            &values,
            op,
        )?;
    }
    let users: Vec<i64> = d
        .writes
        .iter()
        .map(|w| logic::resolve(w.user, &new_ids))
        .collect();
    let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(d.writes.len() * 7);
    for (w, user) in d.writes.iter().zip(&users) {
        values.extend([
            &provider as &dyn rusqlite::ToSql,
            &corp.corp_id,
            &w.member_id,
            &w.union_id,
            user,
            &now,
            &now,
        ]);
    }
    *rows += insert_many(
        tx,
        &format!("INSERT INTO auth_bindings ({})", sql::BINDING_COLUMNS),
        sql::BINDING_CONFLICT,
        7,
        &values,
        op,
    )?;
    let member_user = d
        .member_user
        .iter()
        .map(|(m, u)| (m.clone(), logic::resolve(*u, &new_ids)))
        .collect();
    Ok((member_user, d.conflicts))
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
                    rows_written as i64
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

fn apply(
    conn: &mut Connection,
    corp: &CorpRecord,
    plan: &SyncPlan,
    run: &SyncRun,
) -> StoreResult<ApplyReport> {
    let op = format!("apply plan for {}", corp.full_name);
    let op = op.as_str();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx(op)?;
    let fname = corp.full_name.as_str();
    upsert_corp(&tx, corp, op)?;
    let n = logic::Normalized::new(plan);
    let mut rows: u64 = 0;

    let existing: Vec<(i64, Option<i64>, String)> = tx
        .prepare_cached(sql::SELECT_DEPT_TREE)
        .ctx(op)?
        .query_map([fname], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .ctx(op)?
        .collect::<Result<_, _>>()
        .ctx(op)?;
    if !n.depts.is_empty() || !plan.remove_depts.is_empty() {
        let paths = logic::compute_paths(&existing, &n.depts, &plan.remove_depts);
        let mut st = tx
            .prepare_cached(&format!(
                "INSERT INTO depts ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) {}",
                sql::DEPT_COLUMNS,
                sql::DEPT_CONFLICT
            ))
            .ctx(op)?;
        for d in &n.depts {
            rows += st
                .execute(params![
                    fname,
                    d.dept_id,
                    d.parent_id,
                    d.name,
                    d.order,
                    paths.upserted[&d.dept_id],
                    serde_json::to_string(&d.leaders).unwrap_or_else(|_| "[]".into())
                ])
                .ctx(op)? as u64;
        }
        let mut clear = tx.prepare_cached(sql::DEPT_MEMBERS_CLEAR).ctx(op)?;
        let mut st = tx
            .prepare_cached("DELETE FROM depts WHERE corp = ?1 AND dept_id = ?2")
            .ctx(op)?;
        for id in &plan.remove_depts {
            rows += clear.execute(params![fname, id]).ctx(op)? as u64;
            rows += st.execute(params![fname, id]).ctx(op)? as u64;
        }
        let mut st = tx
            .prepare_cached("UPDATE depts SET path = ?1 WHERE corp = ?2 AND dept_id = ?3")
            .ctx(op)?;
        for (id, path) in &paths.changed {
            rows += st.execute(params![path, fname, id]).ctx(op)? as u64;
        }
    }

    let mut conflicts = Vec::new();
    if !n.members.is_empty() {
        let (member_user, c) = bind_members(&tx, corp, &n.members, &mut rows, op)?;
        conflicts = c;
        // Only members already stored can have memberships to replace.
        let stored: HashSet<String> = tx
            .prepare_cached(sql::MEMBER_IDS)
            .ctx(op)?
            .query_map([fname], |r| r.get(0))
            .ctx(op)?
            .collect::<Result<_, _>>()
            .ctx(op)?;
        let mut clear = tx
            .prepare_cached("DELETE FROM dept_members WHERE corp = ?1 AND member_id = ?2")
            .ctx(op)?;
        for m in n.members.iter().filter(|m| stored.contains(&m.member_id)) {
            rows += clear.execute(params![fname, m.member_id]).ctx(op)? as u64;
        }
        let users: Vec<Option<i64>> = n
            .members
            .iter()
            .map(|m| member_user.get(&m.member_id).copied())
            .collect();
        let extras: Vec<Option<String>> = n
            .members
            .iter()
            .map(|m| logic::extra_to_text(&m.extra))
            .collect();
        let statuses: Vec<&str> = n.members.iter().map(|m| m.status.as_str()).collect();
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(n.members.len() * 14);
        for (i, m) in n.members.iter().enumerate() {
            values.extend([
                &fname as &dyn rusqlite::ToSql,
                &m.member_id,
                &users[i],
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
        rows += insert_many(
            &tx,
            &format!("INSERT INTO members ({})", sql::MEMBER_COLUMNS),
            sql::MEMBER_CONFLICT,
            14,
            &values,
            op,
        )?;
        let ms: Vec<(&Member, i64, &DeptMembership)> = n
            .members
            .iter()
            .flat_map(|m| logic::memberships(m).map(move |(seq, d)| (*m, seq, d)))
            .collect();
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(ms.len() * 6);
        for (m, seq, d) in &ms {
            values.extend([
                &fname as &dyn rusqlite::ToSql,
                &m.member_id,
                &d.dept_id,
                seq,
                &d.order,
                &d.is_leader,
            ]);
        }
        rows += insert_many(
            &tx,
            &format!("INSERT INTO dept_members ({})", sql::MEMBERSHIP_COLUMNS),
            "",
            6,
            &values,
            op,
        )?;
    }
    if !n.members.is_empty() {
        let depts: HashSet<i64> = tx
            .prepare_cached(sql::DEPT_IDS)
            .ctx(op)?
            .query_map([fname], |r| r.get(0))
            .ctx(op)?
            .collect::<Result<_, _>>()
            .ctx(op)?;
        logic::check_memberships(op, &n.members, &depts)?;
    }

    if !plan.offline_members.is_empty() {
        let mut st = tx.prepare_cached(sql::OFFLINE_MEMBER).ctx(op)?;
        for id in &plan.offline_members {
            rows += st.execute(params![fname, id]).ctx(op)? as u64;
        }
    }

    for g in &n.role_groups {
        rows += tx
            .prepare_cached(sql::GROUP_UPSERT)
            .ctx(op)?
            .execute(params![fname, g.group_id, g.name])
            .ctx(op)? as u64;
    }
    for r in &n.roles {
        rows += tx
            .prepare_cached(sql::ROLE_UPSERT)
            .ctx(op)?
            .execute(params![fname, r.role_id, r.group_id, r.name])
            .ctx(op)? as u64;
        rows += tx
            .prepare_cached(sql::ROLE_MEMBERS_CLEAR)
            .ctx(op)?
            .execute(params![fname, r.role_id])
            .ctx(op)? as u64;
        let mut st = tx.prepare_cached(sql::ROLE_MEMBER_INSERT).ctx(op)?;
        for m in logic::role_member_ids(r) {
            rows += st
                .execute(params![fname, r.role_id, m, Origin::Upstream.as_str()])
                .ctx(op)? as u64;
        }
    }
    for id in &plan.remove_roles {
        rows += tx
            .prepare_cached(sql::ROLE_DELETE)
            .ctx(op)?
            .execute(params![fname, id])
            .ctx(op)? as u64;
    }
    for id in &plan.remove_role_groups {
        rows += tx
            .prepare_cached(sql::GROUP_DELETE)
            .ctx(op)?
            .execute(params![fname, id])
            .ctx(op)? as u64;
    }
    if let Some(admins) = &n.admins {
        rows += write_admins(&tx, fname, admins, Origin::Upstream, op)?;
    }
    tx.prepare_cached(sql::STAMP_SYNC)
        .ctx(op)?
        .execute(params![logic::sync_stamp(run), fname])
        .ctx(op)?;
    let run_id = write_run(&tx, run, &plan.changes, rows, op)?;
    tx.commit().ctx(op)?;
    // The large cache is for the transaction; once it is committed, hand the
    // memory back rather than keep ~100 MB of pages for the process's life.
    // Failing to shrink is harmless.
    let _ = conn.execute_batch("PRAGMA shrink_memory");
    Ok(ApplyReport {
        run_id,
        rows_written: rows,
        conflicts,
    })
}

/// Replaces the admin rows of one origin.
fn write_admins(
    tx: &Connection,
    fname: &str,
    admins: &[Admin],
    origin: Origin,
    op: &str,
) -> StoreResult<u64> {
    let mut rows = tx
        .prepare_cached(sql::ADMINS_CLEAR)
        .ctx(op)?
        .execute([fname, origin.as_str()])
        .ctx(op)? as u64;
    let mut st = tx.prepare_cached(sql::ADMIN_INSERT).ctx(op)?;
    for (i, a) in logic::dedup_admins(admins).iter().enumerate() {
        rows += st
            .execute(params![
                fname,
                a.member_id,
                a.level,
                i as i64,
                origin.as_str()
            ])
            .ctx(op)? as u64;
    }
    Ok(rows)
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
    ))
}

fn run_from_columns(
    (run_id, corp, started_at, finished_at, outcome, counts, error, notes): RunColumns,
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
    })
}

#[async_trait::async_trait]
impl OrgStore for SqliteStore {
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
        let (corp, plan, run) = (corp.clone(), plan.clone(), run.clone());
        self.with("apply plan", move |c| apply(c, &corp, &plan, &run))
            .await
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
                            operation: op,
                            message: format!("cannot lock {}: {e}", path.display()),
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
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .ctx(&op)?;
            let refs: Vec<&Member> = members.iter().collect();
            let mut rows = 0;
            let (member_user, conflicts) = bind_members(&tx, &corp, &refs, &mut rows, &op)?;
            {
                let mut st = tx.prepare_cached(sql::MEMBER_SET_USER).ctx(&op)?;
                for (m, u) in &member_user {
                    st.execute(params![u, corp.full_name, m]).ctx(&op)?;
                }
            }
            tx.commit().ctx(&op)?;
            Ok(conflicts)
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
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .ctx(&op)?;
            require_member(&tx, &f, &m, &op)?;
            for r in &roles {
                if count(&tx, sql::ROLE_EXISTS, [&f, r], &op)? == 0 {
                    return Err(StoreError::Invalid(format!(
                        "role {r} is not in organization {f}"
                    )));
                }
            }
            tx.execute(sql::MEMBER_ROLES_CLEAR, [&f, &m]).ctx(&op)?;
            let mut sorted = roles.clone();
            sorted.sort();
            sorted.dedup();
            for r in &sorted {
                tx.execute(sql::ROLE_MEMBER_INSERT, [&f, r, &m, Origin::Local.as_str()])
                    .ctx(&op)?;
            }
            let raw: Vec<(String, String)> = tx
                .prepare(sql::MEMBER_ROLES)
                .ctx(&op)?
                .query_map([&f, &m], |r| Ok((r.get(0)?, r.get(1)?)))
                .ctx(&op)?
                .collect::<Result<_, _>>()
                .ctx(&op)?;
            let mut out = raw
                .into_iter()
                .map(|(role_id, origin)| {
                    Ok(RoleMemberRow {
                        member_id: m.clone(),
                        role_id,
                        origin: logic::origin_parse(&origin)?,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            logic::sort_role_rows(&mut out);
            tx.commit().ctx(&op)?;
            Ok(out)
        })
        .await
    }

    async fn offline_members(&self, full_name: &str, member_ids: &[String]) -> StoreResult<usize> {
        let (f, ids) = (full_name.to_string(), member_ids.to_vec());
        self.with("offline members", move |c| {
            let op = format!("offline members of {f}");
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .ctx(&op)?;
            let mut changed = 0;
            for id in &ids {
                require_member(&tx, &f, id, &op)?;
                changed += tx.execute(sql::OFFLINE_MEMBER, [&f, id]).ctx(&op)?;
            }
            tx.commit().ctx(&op)?;
            Ok(changed)
        })
        .await
    }

    async fn get_signature(&self, full_name: &str, member_id: &str) -> StoreResult<Option<String>> {
        let (f, m) = (full_name.to_string(), member_id.to_string());
        self.with("get signature", move |c| {
            let op = format!("read signature of {m} in {f}");
            require_member(c, &f, &m, &op)?;
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
            require_member(c, &f, &m, &op)?;
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
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .ctx(&op)?;
            for a in &admins {
                require_member(&tx, &f, &a.member_id, &op)?;
            }
            write_admins(&tx, &f, &admins, Origin::Local, &op)?;
            tx.commit().ctx(&op)
        })
        .await
    }

    async fn get_admins(&self, full_name: &str) -> StoreResult<Vec<AdminRow>> {
        let f = full_name.to_string();
        self.with("get admins", move |c| {
            let op = format!("read admins of {f}");
            require_corp(c, &f, &op)?;
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
            require_corp(c, &f, &op)?;
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
}
