//! The PostgreSQL backend: a pool of up to [`pool::SIZE`] `tokio-postgres`
//! sessions (each one's I/O driven by a spawned task), opened when needed
//! and replaced when the server ended them, over TLS as `sslmode` asks
//! ([`tls`]). Bulk writes send whole columns
//! as array parameters (`INSERT ... SELECT FROM UNNEST(...)`) in batches, so
//! a 100,000-member plan is a few dozen statements, all in one transaction.

use crate::api::*;
use crate::firings::{Claim, Firing, FiringClaim, FiringEnd, FiringState};
use crate::lock::{self, SyncLock};
use crate::logic::firings::{self, FiringParam, FiringTx};
use crate::logic::logins::{self, LoginParam, LoginTx};
use crate::logic::ops::{self, BindingRow, Tx};
use crate::logic::{self, sql, Ctx, MembershipRow, OrgRows};
use crate::logins::{LoginKey, LoginState};
use crate::schema::{self, Dialect};
use jit_org::{
    Admin, Change, CorpRecord, CorpSnapshot, Dept, DeptMembership, Member, MemberStatus, Provider,
    Role, RoleGroup, SyncPlan,
};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::pin::pin;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, GenericClient, Transaction};

mod pool;
mod tls;

use pool::Pool;
use tls::{SslMode, Target};

/// Rows per bulk statement: large enough to amortise the round trip, small
/// enough to keep each array parameter a few MiB.
const BATCH: usize = 10_000;

/// The PostgreSQL backend: `postgres://` and `postgresql://` URLs (the
/// default search path; [`crate::open_postgres_in_schema`] picks a schema).
pub(crate) const DRIVER: crate::Driver = crate::Driver {
    url_schemes: &["postgres", "postgresql"],
    open: |url, _base| {
        Box::pin(async move {
            let store: std::sync::Arc<dyn CorpStore> =
                std::sync::Arc::new(PgStore::open(&url, None).await?);
            Ok(store)
        })
    },
};

/// A store in a PostgreSQL database (optionally in its own schema).
pub(crate) struct PgStore {
    /// Up to [`pool::SIZE`] sessions; also knows where and how to connect,
    /// for the sync lock's own sessions.
    pool: Pool,
    location: String,
    /// The schema the tables live in, part of every lock key.
    schema: String,
}

fn check_schema_name(schema: &str) -> Result<(), String> {
    let mut chars = schema.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && schema.len() <= 63;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "schema name {schema:?} must match [A-Za-z_][A-Za-z0-9_]* (at most 63 characters)"
        ))
    }
}

/// Opens one session to `target`, with TLS as its `sslmode` asks.
async fn connect(target: &Target, location: &str) -> StoreResult<Client> {
    use tokio_postgres::config::SslMode as Driver;
    let attempt = |mode: Driver| {
        let mut config = target.config.clone();
        config.ssl_mode(mode);
        let tls = target.tls.clone();
        async move { config.connect(tls).await }
    };
    let connected = match target.mode {
        SslMode::Disable => attempt(Driver::Disable).await,
        // libpq's `allow`: plain first, TLS only if the server wants it.
        SslMode::Allow => match attempt(Driver::Disable).await {
            Ok(c) => Ok(c),
            Err(_) => attempt(Driver::Require).await,
        },
        SslMode::Prefer => attempt(Driver::Prefer).await,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            attempt(Driver::Require).await
        }
    };
    let (client, connection) = connected.map_err(|e| StoreError::Open {
        location: location.to_string(),
        message: format!("connect (sslmode={})", target.mode.as_str()),
        cause: Some(e.into()),
    })?;
    tokio::spawn(async move {
        // The error surfaces on the next query as "connection closed".
        let _ = connection.await;
    });
    Ok(client)
}

/// Drops `schema` with everything in it.
pub(crate) async fn drop_schema(url: &str, schema: &str) -> StoreResult<()> {
    let location = crate::redact_location(url);
    check_schema_name(schema).map_err(StoreError::Invalid)?;
    let client = connect(&Target::parse(url, &location)?, &location).await?;
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .ctx(&format!("drop schema {schema} in {location}"))
}

impl PgStore {
    /// Connects, selects `schema` (creating it) when given, and migrates.
    pub(crate) async fn open(url: &str, schema: Option<&str>) -> StoreResult<PgStore> {
        let mut location = crate::redact_location(url);
        if let Some(s) = schema {
            location = format!("{location} (schema {s})");
        }
        let open_err = |message: String| StoreError::Open {
            location: location.clone(),
            message,
            cause: None,
        };
        if let Some(s) = schema {
            check_schema_name(s).map_err(open_err)?;
        }
        let target = Target::parse(url, &location)?;
        let mut client = connect(&target, &location).await?;
        let name = migrate(&mut client, schema, &location).await?;
        // Every later session of the pool looks in the same schema (the
        // migration's `SET` only holds for the session that ran it).
        let setup = schema.map(|s| format!("SET search_path TO \"{s}\""));
        Ok(PgStore {
            pool: Pool::new(target, location.clone(), setup, client),
            location,
            schema: name,
        })
    }
}

/// Runs one of the shared operations (`logic::ops`) in a transaction on
/// a session of the store's pool, committed when it succeeds and rolled back
/// when it fails: `in_tx!(self, op, |tx| ops::apply(tx, ...))`.
///
/// A session found lost at `BEGIN` is replaced and the transaction begun
/// there: nothing had been sent. Lost later, the operation fails with
/// `ConnectionLost` (the server rolls back what it had) and the session
/// is not given back.
macro_rules! in_tx {
    ($store:expr, $op:expr, |$tx:ident| $body:expr) => {{
        let op: &str = $op;
        let mut lost_at_begin = false;
        loop {
            let mut c = if lost_at_begin {
                $store.pool.fresh().await?
            } else {
                $store.pool.get().await?
            };
            let t = {
                let begun = c.transaction().await;
                match begun {
                    Ok(t) => t,
                    Err(e) => {
                        if lost_at_begin || postgres_kind(&e) != StoreErrorKind::ConnectionLost {
                            return Err(e).ctx(op);
                        }
                        lost_at_begin = true;
                        continue;
                    }
                }
            };
            let out: StoreResult<_> = {
                let $tx = &mut PgTx { tx: &t, op };
                $body.await
            };
            break match out {
                Ok(out) => {
                    t.commit().await.ctx(op)?;
                    Ok::<_, StoreError>(out)
                }
                Err(e) => {
                    // Roll back now rather than on drop: a dropped transaction
                    // only queues its ROLLBACK, which waits (holding its locks)
                    // until the connection is next used.
                    let _ = t.rollback().await;
                    if e.kind() == StoreErrorKind::ConnectionLost {
                        c.discard();
                    }
                    Err(e)
                }
            };
        }
    }};
}

/// Runs a read on a session of the store's pool: `read!(self, |c| ...)`
/// with `c: &mut Client`. A read that lost its session runs once more on a
/// new one (reading twice changes nothing).
macro_rules! read {
    ($store:expr, |$c:ident| $body:expr) => {{
        let first: StoreResult<_> = {
            let mut conn = $store.pool.get().await?;
            let $c: &mut Client = &mut conn;
            $body.await
        };
        match first {
            Err(e) if e.kind() == StoreErrorKind::ConnectionLost => {
                let mut conn = $store.pool.fresh().await?;
                let $c: &mut Client = &mut conn;
                $body.await
            }
            other => other,
        }
    }};
}

/// The schema version, read with the statement's own snapshot.
///
/// `to_regclass` is not used on purpose: it answers from the catalog cache,
/// which is not refreshed by taking an advisory lock, so a process that lost
/// the migration race would still see "no version table" and migrate again.
async fn read_version(c: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
    let row = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relname = 'jit_schema_version')",
            &[],
        )
        .await?;
    if !row.get::<_, bool>(0) {
        return Ok(0);
    }
    let row = c
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::int8 FROM jit_schema_version",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Selects `schema` (creating it) and brings it to the latest version, in one
/// transaction that first takes an advisory lock keyed by the schema name:
/// replicas opening one fresh schema together queue on that lock, and each
/// one re-reads the version after getting it, so all but the first find
/// nothing left to do. A newer schema is refused before anything is written.
/// Returns the schema the tables live in.
async fn migrate(client: &mut Client, schema: Option<&str>, location: &str) -> StoreResult<String> {
    let op = format!("migrate {location}");
    let open_err = |e: tokio_postgres::Error| StoreError::Open {
        location: location.to_string(),
        message: "prepare the schema".to_string(),
        cause: Some(e.into()),
    };
    let tx = client.transaction().await.map_err(open_err)?;
    let name = match schema {
        Some(s) => s.to_string(),
        None => tx
            .query_one("SELECT current_schema()::text", &[])
            .await
            .map_err(open_err)?
            .get::<_, Option<String>>(0)
            .unwrap_or_else(|| "public".to_string()),
    };
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&logic::lock_key(&["migrate", &name])],
    )
    .await
    .map_err(open_err)?;
    if let Some(s) = schema {
        // Under the lock: two concurrent `CREATE SCHEMA IF NOT EXISTS` can
        // both miss the other's and one fails on the catalog's unique key.
        // A `SET` inside a committed transaction stays for the session.
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{s}\"; SET search_path TO \"{s}\""
        ))
        .await
        .map_err(open_err)?;
    }
    let found = read_version(&tx).await.map_err(open_err)?;
    let known = schema::latest_version();
    if found > known {
        return Err(StoreError::SchemaTooNew {
            location: location.to_string(),
            found,
            known,
        });
    }
    if found == known {
        // Nothing to migrate; commit keeps the search path.
        tx.commit().await.ctx(&op)?;
        return Ok(name);
    }
    tx.batch_execute(schema::VERSION_TABLE).await.ctx(&op)?;
    for m in schema::MIGRATIONS.iter().filter(|m| m.version > found) {
        for stmt in schema::statements(m, Dialect::Postgres) {
            tx.batch_execute(&stmt)
                .await
                .ctx(&format!("{op} to version {}", m.version))?;
        }
        tx.execute(
            "INSERT INTO jit_schema_version (version, applied_at) VALUES ($1, $2)",
            &[&m.version, &logic::now_ms()],
        )
        .await
        .ctx(&op)?;
    }
    tx.commit().await.ctx(&op)?;
    Ok(name)
}

/// Reads all of an org's tables in one snapshot (a read-only
/// `REPEATABLE READ` transaction), so they agree with each other.
async fn load_consistent(
    c: &mut Client,
    full_name: &str,
    op: &str,
) -> StoreResult<Option<OrgRows>> {
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .ctx(op)?;
    let rows = load_rows(&tx, full_name).await?;
    tx.commit().await.ctx("end read")?;
    Ok(rows)
}

async fn count(
    c: &impl GenericClient,
    q: &str,
    p: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    op: &str,
) -> StoreResult<i64> {
    Ok(c.query_one(q, p).await.ctx(op)?.get(0))
}

async fn read_corp(
    c: &impl GenericClient,
    full_name: &str,
    op: &str,
) -> StoreResult<Option<(CorpRecord, Option<i64>)>> {
    let row = c.query_opt(sql::SELECT_CORP, &[&full_name]).await.ctx(op)?;
    Ok(row.map(|r| {
        (
            CorpRecord {
                full_name: r.get(0),
                title: r.get(1),
                corp_type: r.get(2),
                provider: Provider::parse(r.get::<_, &str>(3)),
                corp_id: r.get(4),
            },
            r.get(5),
        )
    }))
}

async fn read_admins(
    c: &impl GenericClient,
    full_name: &str,
    op: &str,
) -> StoreResult<Vec<AdminRow>> {
    let mut rows = c
        .query(sql::SELECT_ADMINS, &[&full_name])
        .await
        .ctx(op)?
        .iter()
        .map(|r| {
            Ok((
                AdminRow {
                    member_id: r.get(0),
                    level: r.get(1),
                    origin: logic::origin_parse(r.get::<_, &str>(2))?,
                },
                r.get::<_, i64>(3),
            ))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    logic::sort_admins(&mut rows);
    Ok(rows.into_iter().map(|(a, _)| a).collect())
}

async fn load_rows(c: &impl GenericClient, full_name: &str) -> StoreResult<Option<OrgRows>> {
    let op = format!("read organization {full_name}");
    let op = op.as_str();
    let Some((corp, last_sync_at)) = read_corp(c, full_name, op).await? else {
        return Ok(None);
    };
    let depts = c
        .query(sql::SELECT_DEPTS, &[&full_name])
        .await
        .ctx(op)?
        .iter()
        .map(|r| logic::DeptRow {
            dept: jit_org::Dept {
                dept_id: r.get(0),
                parent_id: r.get(1),
                name: r.get(2),
                order: r.get(3),
                leaders: serde_json::from_str(r.get::<_, &str>(4)).unwrap_or_default(),
            },
            path: r.get(5),
        })
        .collect();
    let mut members = Vec::new();
    for r in c.query(sql::SELECT_MEMBERS, &[&full_name]).await.ctx(op)? {
        members.push(logic::MemberRow {
            user_id: r.get(1),
            member: Member {
                member_id: r.get(0),
                union_id: r.get(2),
                name: r.get(3),
                status: logic::status_parse(r.get::<_, &str>(4))?,
                position: r.get(5),
                job_number: r.get(6),
                main_dept_id: r.get(7),
                hired_date: r.get(8),
                avatar: r.get(9),
                mobile: r.get(10),
                email: r.get(11),
                depts: Vec::new(),
                extra: logic::extra_from_text(r.get(12)),
            },
        });
    }
    let memberships = c
        .query(sql::SELECT_MEMBERSHIPS, &[&full_name])
        .await
        .ctx(op)?
        .iter()
        .map(|r| MembershipRow {
            member_id: r.get(0),
            seq: r.get(4),
            membership: DeptMembership {
                dept_id: r.get(1),
                order: r.get(2),
                is_leader: r.get(3),
            },
        })
        .collect();
    let role_groups = c
        .query(sql::SELECT_ROLE_GROUPS, &[&full_name])
        .await
        .ctx(op)?
        .iter()
        .map(|r| RoleGroup {
            group_id: r.get(0),
            name: r.get(1),
        })
        .collect();
    let roles = c
        .query(sql::SELECT_ROLES, &[&full_name])
        .await
        .ctx(op)?
        .iter()
        .map(|r| jit_org::Role {
            role_id: r.get(0),
            group_id: r.get(1),
            name: r.get(2),
            members: Vec::new(),
        })
        .collect();
    let role_members = c
        .query(sql::SELECT_ROLE_MEMBERS, &[&full_name])
        .await
        .ctx(op)?
        .iter()
        .map(|r| {
            Ok((
                r.get(0),
                r.get(1),
                logic::origin_parse(r.get::<_, &str>(2))?,
            ))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let admins = read_admins(c, full_name, op).await?;
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

async fn upsert_corp(c: &impl GenericClient, corp: &CorpRecord, op: &str) -> StoreResult<()> {
    c.execute(
        sql::UPSERT_CORP,
        &[
            &corp.full_name,
            &corp.title,
            &corp.corp_type,
            &corp.provider.as_str(),
            &corp.corp_id,
        ],
    )
    .await
    .ctx(op)?;
    Ok(())
}

/// Inserts the run (`run_id` 0) or finishes the begun run `run_id`, with its
/// change lines.
async fn write_run(
    tx: &Transaction<'_>,
    run: &SyncRun,
    changes: &[Change],
    rows_written: u64,
    op: &str,
) -> StoreResult<i64> {
    let counts = logic::counts_to_text(&logic::run_counts(&run.counts, changes));
    let notes = serde_json::to_string(&run.notes).unwrap_or_else(|_| "[]".into());
    let outcome = logic::enum_str(&run.outcome);
    let rows_written = rows_written as i64;
    let kind = run.kind.as_str();
    let missed = run.missed_by_events.map(|n| n as i64);
    let calls = logic::calls_to_text(&run.calls);
    let run_id: i64 = if run.run_id == 0 {
        tx.query_one(
            sql::INSERT_RUN,
            &[
                &run.corp,
                &run.started_at,
                &run.finished_at,
                &outcome,
                &counts,
                &run.error,
                &notes,
                &rows_written,
                &kind,
                &missed,
                &calls,
            ],
        )
        .await
        .ctx(op)?
        .get(0)
    } else {
        let n = tx
            .execute(
                sql::FINISH_RUN,
                &[
                    &run.finished_at,
                    &outcome,
                    &counts,
                    &run.error,
                    &notes,
                    &rows_written,
                    &missed,
                    &calls,
                    &run.run_id,
                    &run.corp,
                ],
            )
            .await
            .ctx(op)?;
        if n == 0 {
            return Err(logic::unknown_run(run));
        }
        tx.execute(sql::CLEAR_RUN_CHANGES, &[&run.run_id])
            .await
            .ctx(op)?;
        run.run_id
    };
    if !changes.is_empty() {
        let sink = tx
            .copy_in(
                "COPY run_changes (run_id, seq, object, object_id, kind, reason) FROM STDIN BINARY",
            )
            .await
            .ctx(op)?;
        let mut w = pin!(BinaryCopyInWriter::new(
            sink,
            &[
                Type::INT8,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT
            ],
        ));
        for (i, c) in changes.iter().enumerate() {
            let seq = i as i64;
            let object = logic::enum_str(&c.object);
            w.as_mut()
                .write(&[&run_id, &seq, &object, &c.id, &c.kind.as_str(), &c.reason])
                .await
                .ctx(op)?;
        }
        w.as_mut().finish().await.ctx(op)?;
    }
    Ok(run_id)
}

/// The PostgreSQL primitives over one open transaction: new rows go in with
/// binary `COPY`, updates as `INSERT ... SELECT FROM UNNEST(array params)
/// ON CONFLICT DO UPDATE` in batches of [`BATCH`].
// After the `in_tx!` macro, which it uses.
mod inbox;
// After the `read!` macro, which it uses.
mod reads;

struct PgTx<'a, 't> {
    tx: &'a Transaction<'t>,
    op: &'a str,
}

impl PgTx<'_, '_> {
    /// Executes one statement; returns the rows changed.
    async fn exec(
        &self,
        q: &str,
        p: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> StoreResult<u64> {
        self.tx.execute(q, p).await.ctx(self.op)
    }

    /// Runs a query.
    async fn rows(
        &self,
        q: &str,
        p: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> StoreResult<Vec<tokio_postgres::Row>> {
        self.tx.query(q, p).await.ctx(self.op)
    }

    /// Whether a `COUNT(*)` query finds anything.
    async fn any(
        &self,
        q: &str,
        p: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> StoreResult<bool> {
        Ok(count(self.tx, q, p, self.op).await? > 0)
    }
}

impl Tx for PgTx<'_, '_> {
    fn operation(&self) -> &str {
        self.op
    }

    async fn corp_exists(&mut self, corp: &str) -> StoreResult<bool> {
        self.any(sql::CORP_EXISTS, &[&corp]).await
    }

    async fn member_exists(&mut self, corp: &str, member_id: &str) -> StoreResult<bool> {
        self.any(sql::MEMBER_EXISTS, &[&corp, &member_id]).await
    }

    async fn role_exists(&mut self, corp: &str, role_id: &str) -> StoreResult<bool> {
        self.any(sql::ROLE_EXISTS, &[&corp, &role_id]).await
    }

    async fn dept_tree(&mut self, corp: &str) -> StoreResult<Vec<(i64, Option<i64>, String)>> {
        Ok(self
            .rows(sql::SELECT_DEPT_TREE, &[&corp])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    async fn dept_ids(&mut self, corp: &str) -> StoreResult<HashSet<i64>> {
        Ok(self
            .rows(sql::DEPT_IDS, &[&corp])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn member_ids(&mut self, corp: &str) -> StoreResult<HashSet<String>> {
        Ok(self
            .rows(sql::MEMBER_IDS, &[&corp])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn corp_bindings(
        &mut self,
        provider: &str,
        corp_id: &str,
    ) -> StoreResult<HashMap<String, (i64, Option<String>)>> {
        Ok(self
            .rows(sql::SELECT_CORP_BINDINGS, &[&provider, &corp_id])
            .await?
            .iter()
            .map(|r| (r.get::<_, String>(0), (r.get(1), r.get(2))))
            .collect())
    }

    async fn union_users(&mut self, provider: &str) -> StoreResult<HashMap<String, i64>> {
        Ok(self
            .rows(sql::SELECT_UNION_USERS, &[&provider])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn member_roles(
        &mut self,
        corp: &str,
        member_id: &str,
    ) -> StoreResult<Vec<(String, Origin)>> {
        self.rows(sql::MEMBER_ROLES, &[&corp, &member_id])
            .await?
            .iter()
            .map(|r| Ok((r.get(0), logic::origin_parse(r.get::<_, &str>(1))?)))
            .collect()
    }

    async fn upsert_corp(&mut self, corp: &CorpRecord) -> StoreResult<()> {
        upsert_corp(self.tx, corp, self.op).await
    }

    async fn upsert_depts(
        &mut self,
        corp: &str,
        depts: &[&Dept],
        paths: &HashMap<i64, String>,
    ) -> StoreResult<u64> {
        let q = format!(
            "INSERT INTO depts ({}) SELECT $1::text, * FROM UNNEST($2::int8[], $3::int8[], $4::text[], $5::int8[], $6::text[], $7::text[]) {}",
            sql::DEPT_COLUMNS,
            sql::DEPT_CONFLICT
        );
        let mut rows = 0;
        for chunk in depts.chunks(BATCH) {
            let id: Vec<i64> = chunk.iter().map(|d| d.dept_id).collect();
            let parent: Vec<Option<i64>> = chunk.iter().map(|d| d.parent_id).collect();
            let name: Vec<&str> = chunk.iter().map(|d| d.name.as_str()).collect();
            let order: Vec<i64> = chunk.iter().map(|d| d.order).collect();
            let path: Vec<&str> = chunk.iter().map(|d| paths[&d.dept_id].as_str()).collect();
            let leaders: Vec<String> = chunk
                .iter()
                .map(|d| serde_json::to_string(&d.leaders).unwrap_or_else(|_| "[]".into()))
                .collect();
            rows += self
                .exec(&q, &[&corp, &id, &parent, &name, &order, &path, &leaders])
                .await?;
        }
        Ok(rows)
    }

    async fn remove_depts(&mut self, corp: &str, ids: &[i64]) -> StoreResult<u64> {
        Ok(self
            .exec(
                "DELETE FROM dept_members WHERE corp = $1 AND dept_id = ANY($2::int8[])",
                &[&corp, &ids],
            )
            .await?
            + self
                .exec(
                    "DELETE FROM depts WHERE corp = $1 AND dept_id = ANY($2::int8[])",
                    &[&corp, &ids],
                )
                .await?)
    }

    async fn set_dept_paths(&mut self, corp: &str, changed: &[(i64, String)]) -> StoreResult<u64> {
        let mut rows = 0;
        for chunk in changed.chunks(BATCH) {
            let id: Vec<i64> = chunk.iter().map(|c| c.0).collect();
            let path: Vec<&str> = chunk.iter().map(|c| c.1.as_str()).collect();
            rows += self
                .exec(
                    "UPDATE depts d SET path = u.path FROM UNNEST($2::int8[], $3::text[]) AS u(id, path) \
                     WHERE d.corp = $1 AND d.dept_id = u.id",
                    &[&corp, &id, &path],
                )
                .await?;
        }
        Ok(rows)
    }

    async fn insert_users(&mut self, names: &[&str], now: i64) -> StoreResult<(Vec<i64>, u64)> {
        let op = self.op;
        let n = names.len() as i64;
        // Reserve n consecutive ids in one step (one nextval per user costs
        // ~4 µs each). nextval+setval is not atomic, so every allocation takes
        // this transaction-scoped lock first; sequence moves survive a
        // rollback, which only leaves a harmless gap.
        self.tx
            .batch_execute("SELECT pg_advisory_xact_lock(72617)")
            .await
            .ctx(op)?;
        let last: i64 = self
            .tx
            .query_one(
                "SELECT setval(pg_get_serial_sequence('users', 'user_id'), \
                 nextval(pg_get_serial_sequence('users', 'user_id')) + $1::int8 - 1)",
                &[&n],
            )
            .await
            .ctx(op)?
            .get(0);
        let ids: Vec<i64> = (last - n + 1..=last).collect();
        let sink = self
            .tx
            .copy_in("COPY users (user_id, name, created_at) FROM STDIN BINARY")
            .await
            .ctx(op)?;
        let mut w = pin!(BinaryCopyInWriter::new(
            sink,
            &[Type::INT8, Type::TEXT, Type::INT8]
        ));
        for (id, name) in ids.iter().zip(names) {
            w.as_mut().write(&[id, name, &now]).await.ctx(op)?;
        }
        let rows = w.as_mut().finish().await.ctx(op)?;
        Ok((ids, rows))
    }

    async fn write_bindings(
        &mut self,
        provider: &str,
        corp_id: &str,
        rows: &[BindingRow<'_>],
        now: i64,
    ) -> StoreResult<u64> {
        let op = self.op;
        let (new, changed): (Vec<&BindingRow>, Vec<&BindingRow>) = rows.iter().partition(|w| w.new);
        let mut written = 0;
        if !new.is_empty() {
            let sink = self
                .tx
                .copy_in(&format!(
                    "COPY auth_bindings ({}) FROM STDIN BINARY",
                    sql::BINDING_COLUMNS
                ))
                .await
                .ctx(op)?;
            let mut w = pin!(BinaryCopyInWriter::new(
                sink,
                &[
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8
                ],
            ));
            for b in &new {
                w.as_mut()
                    .write(&[
                        &provider,
                        &corp_id,
                        &b.member_id,
                        &b.union_id,
                        &b.user_id,
                        &now,
                        &now,
                    ])
                    .await
                    .ctx(op)?;
            }
            written += w.as_mut().finish().await.ctx(op)?;
        }
        let q = format!(
            "INSERT INTO auth_bindings ({}) SELECT $1::text, $2::text, u.m, u.un, u.uid, $6::int8, $6::int8 \
             FROM UNNEST($3::text[], $4::text[], $5::int8[]) AS u(m, un, uid) {}",
            sql::BINDING_COLUMNS,
            sql::BINDING_CONFLICT
        );
        for chunk in changed.chunks(BATCH) {
            let m: Vec<&str> = chunk.iter().map(|w| w.member_id).collect();
            let un: Vec<Option<&str>> = chunk.iter().map(|w| w.union_id).collect();
            let uid: Vec<i64> = chunk.iter().map(|w| w.user_id).collect();
            written += self
                .exec(&q, &[&provider, &corp_id, &m, &un, &uid, &now])
                .await?;
        }
        Ok(written)
    }

    async fn set_member_users(&mut self, corp: &str, users: &[(&str, i64)]) -> StoreResult<u64> {
        let (m, u): (Vec<&str>, Vec<i64>) = users.iter().copied().unzip();
        self.exec(
            "UPDATE members x SET user_id = u.uid FROM UNNEST($2::text[], $3::int8[]) AS u(m, uid) \
             WHERE x.corp = $1 AND x.member_id = u.m",
            &[&corp, &m, &u],
        )
        .await
    }

    async fn clear_memberships(&mut self, corp: &str, member_ids: &[&str]) -> StoreResult<u64> {
        let mut rows = 0;
        for chunk in member_ids.chunks(BATCH) {
            rows += self
                .exec(
                    "DELETE FROM dept_members WHERE corp = $1 AND member_id = ANY($2::text[])",
                    &[&corp, &chunk],
                )
                .await?;
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
        let op = self.op;
        let mut rows = 0;
        if !fresh.is_empty() {
            let sink = self
                .tx
                .copy_in(&format!(
                    "COPY members ({}) FROM STDIN BINARY",
                    sql::MEMBER_COLUMNS
                ))
                .await
                .ctx(op)?;
            let mut w = pin!(BinaryCopyInWriter::new(
                sink,
                &[
                    Type::TEXT,
                    Type::TEXT,
                    Type::INT8,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::INT8,
                    Type::INT8,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                ],
            ));
            for m in fresh {
                let user = users.get(m.member_id.as_str()).copied();
                let extra = logic::extra_to_text(&m.extra);
                w.as_mut()
                    .write(&[
                        &corp,
                        &m.member_id,
                        &user,
                        &m.union_id,
                        &m.name,
                        &m.status.as_str(),
                        &m.position,
                        &m.job_number,
                        &m.main_dept_id,
                        &m.hired_date,
                        &m.avatar,
                        &m.mobile,
                        &m.email,
                        &extra,
                    ])
                    .await
                    .ctx(op)?;
            }
            rows += w.as_mut().finish().await.ctx(op)?;
        }
        let upsert = format!(
            "INSERT INTO members ({}) SELECT $1::text, * FROM UNNEST($2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::int8[], $10::int8[], $11::text[], $12::text[], $13::text[], $14::text[]) {}",
            sql::MEMBER_COLUMNS,
            sql::MEMBER_CONFLICT
        );
        for chunk in known.chunks(BATCH) {
            let id: Vec<&str> = chunk.iter().map(|m| m.member_id.as_str()).collect();
            let user: Vec<Option<i64>> = chunk
                .iter()
                .map(|m| users.get(m.member_id.as_str()).copied())
                .collect();
            let union: Vec<Option<&str>> = chunk.iter().map(|m| m.union_id.as_deref()).collect();
            let name: Vec<&str> = chunk.iter().map(|m| m.name.as_str()).collect();
            let status: Vec<&str> = chunk.iter().map(|m| m.status.as_str()).collect();
            let position: Vec<Option<&str>> = chunk.iter().map(|m| m.position.as_deref()).collect();
            let job: Vec<Option<&str>> = chunk.iter().map(|m| m.job_number.as_deref()).collect();
            let main: Vec<Option<i64>> = chunk.iter().map(|m| m.main_dept_id).collect();
            let hired: Vec<Option<i64>> = chunk.iter().map(|m| m.hired_date).collect();
            let avatar: Vec<Option<&str>> = chunk.iter().map(|m| m.avatar.as_deref()).collect();
            let mobile: Vec<Option<&str>> = chunk.iter().map(|m| m.mobile.as_deref()).collect();
            let email: Vec<Option<&str>> = chunk.iter().map(|m| m.email.as_deref()).collect();
            let extra: Vec<Option<String>> = chunk
                .iter()
                .map(|m| logic::extra_to_text(&m.extra))
                .collect();
            rows += self
                .exec(
                    &upsert,
                    &[
                        &corp, &id, &user, &union, &name, &status, &position, &job, &main, &hired,
                        &avatar, &mobile, &email, &extra,
                    ],
                )
                .await?;
        }
        Ok(rows)
    }

    async fn insert_memberships(&mut self, corp: &str, members: &[&Member]) -> StoreResult<u64> {
        let op = self.op;
        // Old memberships are gone, so the new ones are plain rows: COPY.
        let sink = self
            .tx
            .copy_in(&format!(
                "COPY dept_members ({}) FROM STDIN BINARY",
                sql::MEMBERSHIP_COLUMNS
            ))
            .await
            .ctx(op)?;
        let mut w = pin!(BinaryCopyInWriter::new(
            sink,
            &[
                Type::TEXT,
                Type::TEXT,
                Type::INT8,
                Type::INT8,
                Type::INT8,
                Type::BOOL
            ],
        ));
        for m in members {
            for (seq, d) in logic::memberships(m) {
                w.as_mut()
                    .write(&[
                        &corp,
                        &m.member_id,
                        &d.dept_id,
                        &seq,
                        &d.order,
                        &d.is_leader,
                    ])
                    .await
                    .ctx(op)?;
            }
        }
        w.as_mut().finish().await.ctx(op)
    }

    async fn offline_members(&mut self, corp: &str, member_ids: &[String]) -> StoreResult<u64> {
        self.exec(
            "UPDATE members SET status = 'offline' WHERE corp = $1 AND member_id = ANY($2::text[]) AND status <> 'offline'",
            &[&corp, &member_ids],
        )
        .await
    }

    async fn upsert_role_group(&mut self, corp: &str, g: &RoleGroup) -> StoreResult<u64> {
        self.exec(sql::GROUP_UPSERT, &[&corp, &g.group_id, &g.name])
            .await
    }

    async fn remove_role_group(&mut self, corp: &str, group_id: &str) -> StoreResult<u64> {
        self.exec(sql::GROUP_DELETE, &[&corp, &group_id]).await
    }

    async fn upsert_role(&mut self, corp: &str, r: &Role) -> StoreResult<u64> {
        self.exec(sql::ROLE_UPSERT, &[&corp, &r.role_id, &r.group_id, &r.name])
            .await
    }

    async fn remove_role(&mut self, corp: &str, role_id: &str) -> StoreResult<u64> {
        self.exec(sql::ROLE_DELETE, &[&corp, &role_id]).await
    }

    async fn replace_upstream_holders(
        &mut self,
        corp: &str,
        role_id: &str,
        member_ids: &[&str],
    ) -> StoreResult<u64> {
        let mut rows = self
            .exec(sql::ROLE_MEMBERS_CLEAR, &[&corp, &role_id])
            .await?;
        if !member_ids.is_empty() {
            rows += self
                .exec(
                    &format!(
                        "INSERT INTO role_members ({}) \
                         SELECT $1::text, $2::text, u.m, 'upstream' FROM UNNEST($3::text[]) AS u(m)",
                        sql::ROLE_MEMBER_COLUMNS
                    ),
                    &[&corp, &role_id, &member_ids],
                )
                .await?;
        }
        Ok(rows)
    }

    async fn replace_local_roles(
        &mut self,
        corp: &str,
        member_id: &str,
        role_ids: &[&str],
    ) -> StoreResult<u64> {
        let mut rows = self
            .exec(sql::MEMBER_ROLES_CLEAR, &[&corp, &member_id])
            .await?;
        for r in role_ids {
            rows += self
                .exec(
                    sql::ROLE_MEMBER_INSERT,
                    &[&corp, r, &member_id, &Origin::Local.as_str()],
                )
                .await?;
        }
        Ok(rows)
    }

    async fn write_admins(
        &mut self,
        corp: &str,
        admins: &[Admin],
        origin: Origin,
    ) -> StoreResult<u64> {
        let mut rows = self
            .exec(sql::ADMINS_CLEAR, &[&corp, &origin.as_str()])
            .await?;
        let admins = logic::dedup_admins(admins);
        if !admins.is_empty() {
            let m: Vec<&str> = admins.iter().map(|a| a.member_id.as_str()).collect();
            let level: Vec<i32> = admins.iter().map(|a| a.level).collect();
            let seq: Vec<i64> = (0..admins.len() as i64).collect();
            rows += self
                .exec(
                    "INSERT INTO admins (corp, member_id, level, seq, origin) \
                     SELECT $1::text, u.*, $5::text FROM UNNEST($2::text[], $3::int4[], $4::int8[]) AS u",
                    &[&corp, &m, &level, &seq, &origin.as_str()],
                )
                .await?;
        }
        Ok(rows)
    }

    async fn stamp_sync(&mut self, corp: &str, at: i64) -> StoreResult<()> {
        self.exec(sql::STAMP_SYNC, &[&at, &corp]).await?;
        Ok(())
    }

    async fn write_run(
        &mut self,
        run: &SyncRun,
        changes: &[Change],
        rows_written: u64,
    ) -> StoreResult<i64> {
        write_run(self.tx, run, changes, rows_written, self.op).await
    }
}

/// A `sync_runs` row in `SELECT_RUN(S)` column order.
fn run_from_row(r: &tokio_postgres::Row) -> StoreResult<SyncRun> {
    Ok(SyncRun {
        run_id: r.get(0),
        corp: r.get(1),
        started_at: r.get(2),
        finished_at: r.get(3),
        outcome: logic::enum_parse(r.get::<_, &str>(4), "run outcome")?,
        counts: logic::counts_from_text(r.get(5)),
        error: r.get(6),
        notes: serde_json::from_str(r.get::<_, &str>(7)).unwrap_or_default(),
        kind: logic::run_kind(r.get::<_, &str>(8))?,
        missed_by_events: r.get::<_, Option<i64>>(9).map(|n| n.max(0) as u64),
        calls: logic::calls_from_text(r.get::<_, Option<&str>>(10)),
    })
}

#[async_trait::async_trait]
impl CorpStore for PgStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn upsert_corp(&self, corp: &CorpRecord) -> StoreResult<()> {
        let op = format!("upsert corp {}", corp.full_name);
        in_tx!(self, &op, |tx| upsert_corp(tx.tx, corp, tx.op))
    }

    async fn corp(&self, full_name: &str) -> StoreResult<Option<CorpRecord>> {
        let op = format!("read corp {full_name}");
        Ok(read!(self, |c| read_corp(&*c, full_name, &op))?.map(|(r, _)| r))
    }

    async fn load_snapshot(&self, full_name: &str) -> StoreResult<CorpSnapshot> {
        let op = format!("load snapshot of {full_name}");
        let rows = read!(self, |c| load_consistent(c, full_name, &op))?;
        Ok(match rows {
            Some(rows) => rows.into_snapshot(),
            None => CorpSnapshot {
                admins: Some(Vec::new()),
                ..CorpSnapshot::default()
            },
        })
    }

    async fn apply_plan(
        &self,
        corp: &CorpRecord,
        plan: &SyncPlan,
        run: &SyncRun,
    ) -> StoreResult<ApplyReport> {
        let op = format!("apply plan for {}", corp.full_name);
        in_tx!(self, &op, |tx| ops::apply(tx, corp, plan, run))
    }

    async fn record_run(&self, run: &SyncRun, changes: &[Change]) -> StoreResult<i64> {
        let op = format!("record run for {}", run.corp);
        in_tx!(self, &op, |tx| write_run(tx.tx, run, changes, 0, tx.op))
    }

    async fn bulk_register(
        &self,
        corp: &CorpRecord,
        members: &[Member],
    ) -> StoreResult<Vec<IdentityConflict>> {
        let op = format!("bulk register members of {}", corp.full_name);
        in_tx!(self, &op, |tx| ops::bulk_register(tx, corp, members))
    }

    async fn local_corp_data(&self, full_name: &str, include_offline: bool) -> StoreResult<Value> {
        let op = format!("read local corp data of {full_name}");
        let rows = read!(self, |c| load_consistent(c, full_name, &op))?;
        match rows {
            Some(rows) => Ok(rows.into_local_corp_data(include_offline)),
            None => Err(StoreError::UnknownCorp(full_name.to_string())),
        }
    }

    async fn set_member_roles(
        &self,
        full_name: &str,
        member_id: &str,
        role_ids: &[String],
    ) -> StoreResult<Vec<RoleMemberRow>> {
        let op = format!("set roles of member {member_id} in {full_name}");
        in_tx!(self, &op, |tx| ops::set_member_roles(
            tx, full_name, member_id, role_ids
        ))
    }

    async fn offline_members(&self, full_name: &str, member_ids: &[String]) -> StoreResult<usize> {
        let op = format!("offline members of {full_name}");
        in_tx!(self, &op, |tx| ops::offline_members(
            tx, full_name, member_ids
        ))
    }

    async fn get_signature(&self, full_name: &str, member_id: &str) -> StoreResult<Option<String>> {
        let op = format!("read signature of {member_id} in {full_name}");
        in_tx!(self, &op, |tx| async move {
            ops::require_member(tx, full_name, member_id).await?;
            Ok(tx
                .tx
                .query_opt(sql::SIGNATURE_GET, &[&full_name, &member_id])
                .await
                .ctx(tx.op)?
                .map(|r| r.get(0)))
        })
    }

    async fn save_signature(
        &self,
        full_name: &str,
        member_id: &str,
        signature: &str,
    ) -> StoreResult<()> {
        let op = format!("save signature of {member_id} in {full_name}");
        in_tx!(self, &op, |tx| async move {
            ops::require_member(tx, full_name, member_id).await?;
            tx.exec(
                sql::SIGNATURE_SAVE,
                &[&full_name, &member_id, &signature, &logic::now_ms()],
            )
            .await?;
            Ok(())
        })
    }

    async fn set_admins(&self, full_name: &str, admins: &[Admin]) -> StoreResult<()> {
        let op = format!("set admins of {full_name}");
        in_tx!(self, &op, |tx| ops::set_admins(tx, full_name, admins))
    }

    async fn get_admins(&self, full_name: &str) -> StoreResult<Vec<AdminRow>> {
        let op = format!("read admins of {full_name}");
        in_tx!(self, &op, |tx| async move {
            ops::require_corp(tx, full_name).await?;
            read_admins(tx.tx, full_name, tx.op).await
        })
    }

    async fn list_runs(&self, full_name: &str, limit: usize) -> StoreResult<Vec<SyncRun>> {
        let op = format!("list runs of {full_name}");
        let limit = limit.min(i64::MAX as usize) as i64;
        read!(self, |c| async {
            c.query(sql::SELECT_RUNS, &[&full_name, &limit])
                .await
                .ctx(&op)
        })?
        .iter()
        .map(run_from_row)
        .collect()
    }

    async fn begin_run(&self, run: &SyncRun) -> StoreResult<i64> {
        let run = logic::running(run);
        let op = format!("begin run for {}", run.corp);
        in_tx!(self, &op, |tx| write_run(tx.tx, &run, &[], 0, tx.op))
    }

    async fn lock_sync(&self, full_name: &str, wait: std::time::Duration) -> StoreResult<SyncLock> {
        let op = format!("lock sync of {full_name}");
        let key = logic::lock_key(&["sync", &self.schema, full_name]);
        // A session of its own: advisory locks are re-entrant within one
        // session, so on a pooled session a second lock_sync of this
        // store would succeed; and the lock must live exactly as long as
        // the guard, not as long as the store.
        let session = connect(&self.pool.target, &self.location).await?;
        let held = lock::poll(wait, || async {
            let got: bool = session
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .await
                .ctx(&op)?
                .get(0);
            Ok(got.then_some(()))
        })
        .await?;
        if held.is_none() {
            let op = format!("read the running run of {full_name}");
            let newest = read!(self, |c| async {
                c.query_opt(sql::NEWEST_RUNNING_RUN, &[&full_name])
                    .await
                    .ctx(&op)
            })?
            .map(|r| (r.get(0), r.get(1)));
            return Err(lock::busy(full_name, newest));
        }
        let guard = SyncLock::new(full_name, lock::Held::Postgres { session, key });
        let op = format!("fail interrupted runs of {full_name}");
        in_tx!(self, &op, |tx| tx.exec(
            sql::FAIL_RUNNING_RUNS,
            &[&lock::INTERRUPTED, &full_name]
        ))?;
        Ok(guard)
    }

    async fn get_run(&self, run_id: i64) -> StoreResult<Option<SyncRun>> {
        let op = format!("read run {run_id}");
        read!(self, |c| async {
            c.query_opt(sql::SELECT_RUN, &[&run_id]).await.ctx(&op)
        })?
        .as_ref()
        .map(run_from_row)
        .transpose()
    }

    async fn run_changes(&self, run_id: i64) -> StoreResult<Vec<RunChange>> {
        let op = format!("read changes of run {run_id}");
        read!(self, |c| async {
            c.query(sql::SELECT_RUN_CHANGES, &[&run_id]).await.ctx(&op)
        })?
        .iter()
        .map(|r| {
            Ok(RunChange {
                object: logic::enum_parse(r.get::<_, &str>(0), "change object")?,
                id: r.get(1),
                kind: logic::enum_parse(r.get::<_, &str>(2), "change kind")?,
                reason: r.get(3),
            })
        })
        .collect()
    }

    async fn local_user_for(
        &self,
        provider: &Provider,
        corp_id: &str,
        member_id: &str,
        union_id: Option<&str>,
    ) -> StoreResult<Option<i64>> {
        let op = format!("look up local user of {provider} {corp_id}/{member_id}");
        let p = provider.as_str();
        read!(self, |c| async {
            if let Some(u) = union_id.filter(|_| provider.identity_by_union_id()) {
                let found: Option<i64> = c
                    .query_one(sql::LOCAL_USER_BY_UNION, &[&p, &u])
                    .await
                    .ctx(&op)?
                    .get(0);
                if found.is_some() {
                    return Ok(found);
                }
            }
            Ok(
                c.query_opt(sql::LOCAL_USER_BY_MEMBER, &[&p, &corp_id, &member_id])
                    .await
                    .ctx(&op)?
                    .map(|r| r.get(0)),
            )
        })
    }

    async fn memberships_of_user(
        &self,
        user_id: i64,
    ) -> StoreResult<Vec<(String, String, MemberStatus)>> {
        let op = format!("read memberships of local user {user_id}");
        let mut out = read!(self, |c| async {
            c.query(sql::MEMBERSHIPS_OF_USER, &[&user_id])
                .await
                .ctx(&op)
        })?
        .iter()
        .map(|r| {
            Ok((
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                logic::status_parse(r.get::<_, &str>(2))?,
            ))
        })
        .collect::<StoreResult<Vec<_>>>()?;
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        Ok(out)
    }

    async fn user_count(&self) -> StoreResult<u64> {
        Ok(read!(self, |c| count(&*c, sql::USER_COUNT, &[], "count users"))? as u64)
    }

    async fn last_successful_sync(&self, full_name: &str) -> StoreResult<Option<i64>> {
        let op = format!("read last sync of {full_name}");
        Ok(read!(self, |c| async {
            c.query_opt(sql::LAST_SYNC, &[&full_name]).await.ctx(&op)
        })?
        .and_then(|r| r.get(0)))
    }

    async fn subtree_members(&self, full_name: &str, dept_id: i64) -> StoreResult<Vec<String>> {
        let op = format!("read members under department {dept_id} of {full_name}");
        let mut ids: Vec<String> = in_tx!(self, &op, |tx| async move {
            ops::require_corp(tx, full_name).await?;
            Ok(tx
                .rows(sql::SUBTREE_MEMBERS, &[&full_name, &dept_id])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })?;
        ids.sort();
        Ok(ids)
    }

    async fn root_dept(&self, full_name: &str) -> StoreResult<Option<(jit_org::Dept, String)>> {
        let op = format!("read root department of {full_name}");
        in_tx!(self, &op, |tx| async move {
            ops::require_corp(tx, full_name).await?;
            Ok(tx
                .rows(sql::SELECT_ROOT_DEPT, &[&full_name])
                .await?
                .first()
                .map(|r| {
                    let leaders: String = r.get(4);
                    (
                        jit_org::Dept {
                            dept_id: r.get(0),
                            parent_id: r.get(1),
                            name: r.get(2),
                            order: r.get(3),
                            leaders: serde_json::from_str(&leaders).unwrap_or_default(),
                        },
                        r.get(5),
                    )
                }))
        })
    }

    async fn claim_firing(&self, claim: &FiringClaim) -> StoreResult<Claim> {
        let op = format!("claim firing of {} at {}", claim.task, claim.scheduled_at);
        in_tx!(self, &op, |tx| firings::claim(tx, claim))
    }

    async fn renew_firing(
        &self,
        firing_id: i64,
        holder: &str,
        attempt: i64,
        lease_until: i64,
    ) -> StoreResult<bool> {
        let op = format!("renew lease of firing {firing_id}");
        in_tx!(self, &op, |tx| firings::renew(
            tx,
            firing_id,
            holder,
            attempt,
            lease_until
        ))
    }

    async fn finish_firing(&self, end: &FiringEnd) -> StoreResult<bool> {
        let op = format!("finish firing {}", end.firing_id);
        in_tx!(self, &op, |tx| firings::finish(tx, end))
    }

    async fn expired_firings(&self, now: i64) -> StoreResult<Vec<Firing>> {
        in_tx!(self, "read expired firings", |tx| firings::expired(tx, now))
    }

    async fn list_firings(
        &self,
        task: &str,
        limit: usize,
        before: Option<i64>,
    ) -> StoreResult<Vec<Firing>> {
        let op = format!("list firings of {task}");
        in_tx!(self, &op, |tx| firings::list(tx, task, limit, before))
    }

    async fn login_keys(&self, first: &LoginKey) -> StoreResult<Vec<LoginKey>> {
        in_tx!(self, "read login keys", |tx| logins::keys(tx, first))
    }

    async fn rotate_login_key(&self, next: &LoginKey) -> StoreResult<Vec<LoginKey>> {
        in_tx!(self, "rotate login key", |tx| logins::rotate(tx, next))
    }

    async fn revoke_session(&self, session_id: &str, expires_at: i64, now: i64) -> StoreResult<()> {
        in_tx!(self, "revoke session", |tx| logins::revoke(
            tx, session_id, expires_at, now
        ))
    }

    async fn session_revoked(&self, session_id: &str) -> StoreResult<bool> {
        in_tx!(self, "read session revocation", |tx| logins::revoked(
            tx, session_id
        ))
    }

    async fn put_login_state(&self, state: &LoginState, now: i64) -> StoreResult<()> {
        in_tx!(self, "store login state", |tx| logins::put_state(
            tx, state, now
        ))
    }

    async fn read_rows(
        &self,
        q: crate::reads::ReadSql,
        params: &[crate::reads::ReadParam],
    ) -> StoreResult<Vec<Vec<crate::reads::Cell>>> {
        self.pg_read_rows(q, params).await
    }

    async fn take_login_state(&self, state_id: &str, now: i64) -> StoreResult<Option<LoginState>> {
        in_tx!(self, "take login state", |tx| logins::take_state(
            tx, state_id, now
        ))
    }

    async fn inbox_put(&self, event: &crate::NewInboxEvent) -> StoreResult<crate::InboxPut> {
        self.pg_inbox_put(event).await
    }

    async fn inbox_claim(&self, claim: &crate::InboxClaim) -> StoreResult<Vec<crate::InboxRow>> {
        self.pg_inbox_claim(claim).await
    }

    async fn inbox_finish(&self, end: &crate::InboxEnd) -> StoreResult<u64> {
        self.pg_inbox_finish(end).await
    }

    async fn inbox_due(&self, now: i64) -> StoreResult<Vec<String>> {
        self.pg_inbox_due(now).await
    }

    async fn inbox_prune(&self, applied_before: i64) -> StoreResult<u64> {
        self.pg_inbox_prune(applied_before).await
    }

    async fn inbox_list(
        &self,
        corp: &str,
        limit: usize,
        before: Option<i64>,
    ) -> StoreResult<Vec<crate::InboxRow>> {
        self.pg_inbox_list(corp, limit, before).await
    }

    async fn inbox_summary(&self, corp: &str) -> StoreResult<crate::InboxSummary> {
        self.pg_inbox_summary(corp).await
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        lease_ms: i64,
    ) -> StoreResult<bool> {
        self.pg_take_lease(name, holder, now, lease_ms).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        self.pg_release_lease(name, holder).await
    }
}

fn pg_login_params(p: &[LoginParam<'_>]) -> Vec<PgParam> {
    p.iter()
        .map(|p| -> PgParam {
            match p {
                LoginParam::Int(i) => Box::new(*i),
                LoginParam::Text(t) => Box::new(t.to_string()),
            }
        })
        .collect()
}

impl LoginTx for PgTx<'_, '_> {
    async fn login_exec(&mut self, sql: &str, params: &[LoginParam<'_>]) -> StoreResult<u64> {
        let owned = pg_login_params(params);
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            owned.iter().map(|p| p.as_ref() as _).collect();
        self.exec(sql, &refs).await
    }

    async fn login_key_rows(&mut self) -> StoreResult<Vec<LoginKey>> {
        let rows = self.rows(logins::sql::KEYS, &[]).await?;
        Ok(rows
            .iter()
            .map(|r| LoginKey {
                generation: r.get(0),
                secret: r.get(1),
                created_at: r.get(2),
            })
            .collect())
    }

    async fn take_state_rows(&mut self, state_id: &str) -> StoreResult<Vec<LoginState>> {
        let rows = self.rows(logins::sql::TAKE_STATE, &[&state_id]).await?;
        Ok(rows
            .iter()
            .map(|r| LoginState {
                state_id: r.get(0),
                login: r.get(1),
                browser_hash: r.get(2),
                redirect: r.get(3),
                expires_at: r.get(4),
            })
            .collect())
    }

    async fn login_count(&mut self, sql: &str, params: &[LoginParam<'_>]) -> StoreResult<i64> {
        let owned = pg_login_params(params);
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            owned.iter().map(|p| p.as_ref() as _).collect();
        let rows = self.rows(sql, &refs).await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)))
    }
}

type PgParam = Box<dyn tokio_postgres::types::ToSql + Sync + Send>;

fn pg_firing_params(p: &[FiringParam<'_>]) -> Vec<PgParam> {
    p.iter()
        .map(|p| -> PgParam {
            match p {
                FiringParam::Int(i) => Box::new(*i),
                FiringParam::Text(t) => Box::new(t.to_string()),
                FiringParam::OptText(t) => Box::new(t.map(str::to_string)),
            }
        })
        .collect()
}

fn pg_firing(r: &tokio_postgres::Row, op: &str) -> StoreResult<Firing> {
    logic::firing_from_parts(
        (
            Firing {
                firing_id: r.get(0),
                task: r.get(1),
                scheduled_at: r.get(2),
                attempt: r.get(3),
                state: FiringState::Running,
                holder: r.get(5),
                started_at: r.get(6),
                lease_until: r.get(7),
                finished_at: r.get(8),
                result: None,
                error: r.get(10),
                note: r.get(11),
            },
            r.get(4),
            r.get(9),
        ),
        op,
    )
}

impl FiringTx for PgTx<'_, '_> {
    async fn firing_at(&mut self, task: &str, scheduled_at: i64) -> StoreResult<Option<Firing>> {
        let rows = self.rows(firings::sql::AT, &[&task, &scheduled_at]).await?;
        rows.first().map(|r| pg_firing(r, self.op)).transpose()
    }

    async fn live_firing(&mut self, task: &str, now: i64) -> StoreResult<Option<Firing>> {
        let rows = self.rows(firings::sql::LIVE, &[&task, &now]).await?;
        rows.first().map(|r| pg_firing(r, self.op)).transpose()
    }

    async fn insert_firing(&mut self, f: &Firing) -> StoreResult<Option<i64>> {
        let result = f.result.as_ref().map(|v| v.to_string());
        let rows = self
            .rows(
                firings::sql::INSERT,
                &[
                    &f.task,
                    &f.scheduled_at,
                    &f.attempt,
                    &f.state.as_str(),
                    &f.holder,
                    &f.started_at,
                    &f.lease_until,
                    &f.finished_at,
                    &result,
                    &f.error,
                    &f.note,
                ],
            )
            .await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    async fn update_firing(&mut self, sql: &str, params: &[FiringParam<'_>]) -> StoreResult<u64> {
        let owned = pg_firing_params(params);
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            owned.iter().map(|b| &**b as _).collect();
        self.exec(sql, &refs).await
    }

    async fn select_firings(
        &mut self,
        sql: &str,
        params: &[FiringParam<'_>],
    ) -> StoreResult<Vec<Firing>> {
        let owned = pg_firing_params(params);
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            owned.iter().map(|b| &**b as _).collect();
        self.rows(sql, &refs)
            .await?
            .iter()
            .map(|r| pg_firing(r, self.op))
            .collect()
    }
}
