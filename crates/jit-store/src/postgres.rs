//! The PostgreSQL backend: one `tokio-postgres` connection (its I/O driven
//! by a spawned task) behind an async mutex. Bulk writes send whole columns
//! as array parameters (`INSERT ... SELECT FROM UNNEST(...)`) in batches, so
//! a 100,000-member plan is a few dozen statements, all in one transaction.

use crate::api::*;
use crate::lock::{self, SyncLock};
use crate::logic::{self, pg_message, sql, Ctx, ExistingBindings, MembershipRow, OrgRows};
use crate::schema::{self, Dialect};
use jit_org::{
    Admin, Change, CorpRecord, CorpSnapshot, DeptMembership, Member, MemberStatus, Provider,
    RoleGroup, SyncPlan,
};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::pin::pin;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, GenericClient, NoTls, Transaction};

/// Rows per bulk statement: large enough to amortise the round trip, small
/// enough to keep each array parameter a few MiB.
const BATCH: usize = 10_000;

/// A store in a PostgreSQL database (optionally in its own schema).
pub(crate) struct PgStore {
    client: tokio::sync::Mutex<Client>,
    location: String,
    /// The connection URL, for the sync lock's own sessions. May hold a
    /// password: never put it in a message.
    url: String,
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

async fn connect(url: &str, location: &str) -> StoreResult<Client> {
    let (client, connection) =
        tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| StoreError::Open {
                location: location.to_string(),
                message: pg_message(&e),
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
    let client = connect(url, &location).await?;
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
        };
        if let Some(s) = schema {
            check_schema_name(s).map_err(open_err)?;
        }
        let mut client = connect(url, &location).await?;
        let schema = migrate(&mut client, schema, &location).await?;
        Ok(PgStore {
            client: tokio::sync::Mutex::new(client),
            location,
            url: url.to_string(),
            schema,
        })
    }
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
        message: pg_message(&e),
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

async fn count(
    c: &impl GenericClient,
    q: &str,
    p: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    op: &str,
) -> StoreResult<i64> {
    Ok(c.query_one(q, p).await.ctx(op)?.get(0))
}

async fn require_corp(c: &impl GenericClient, full_name: &str, op: &str) -> StoreResult<()> {
    if count(c, sql::CORP_EXISTS, &[&full_name], op).await? == 0 {
        return Err(StoreError::UnknownCorp(full_name.to_string()));
    }
    Ok(())
}

async fn require_member(
    c: &impl GenericClient,
    full_name: &str,
    member_id: &str,
    op: &str,
) -> StoreResult<()> {
    require_corp(c, full_name, op).await?;
    if count(c, sql::MEMBER_EXISTS, &[&full_name, &member_id], op).await? == 0 {
        return Err(StoreError::UnknownMember {
            corp: full_name.to_string(),
            member_id: member_id.to_string(),
        });
    }
    Ok(())
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

async fn bind_members(
    tx: &Transaction<'_>,
    corp: &CorpRecord,
    members: &[&Member],
    rows: &mut u64,
    op: &str,
) -> StoreResult<(HashMap<String, i64>, Vec<IdentityConflict>)> {
    let provider = corp.provider.as_str();
    let by_member = tx
        .query(sql::SELECT_CORP_BINDINGS, &[&provider, &corp.corp_id])
        .await
        .ctx(op)?
        .iter()
        .map(|r| (r.get::<_, String>(0), (r.get(1), r.get(2))))
        .collect();
    let by_union = if corp.provider.identity_by_union_id() {
        tx.query(sql::SELECT_UNION_USERS, &[&provider])
            .await
            .ctx(op)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
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
    let mut new_ids: Vec<i64> = Vec::with_capacity(d.new_users.len());
    if !d.new_users.is_empty() {
        let n = d.new_users.len() as i64;
        // Reserve n consecutive ids in one step (one nextval per user costs
        // ~4 µs each). nextval+setval is not atomic, so every allocation takes
        // this transaction-scoped lock first; sequence moves survive a
        // rollback, which only leaves a harmless gap.
        tx.batch_execute("SELECT pg_advisory_xact_lock(72617)")
            .await
            .ctx(op)?;
        let last: i64 = tx
            .query_one(
                "SELECT setval(pg_get_serial_sequence('users', 'user_id'), \
                 nextval(pg_get_serial_sequence('users', 'user_id')) + $1::int8 - 1)",
                &[&n],
            )
            .await
            .ctx(op)?
            .get(0);
        new_ids = (last - n + 1..=last).collect();
        let sink = tx
            .copy_in("COPY users (user_id, name, created_at) FROM STDIN BINARY")
            .await
            .ctx(op)?;
        let mut w = pin!(BinaryCopyInWriter::new(
            sink,
            &[Type::INT8, Type::TEXT, Type::INT8]
        ));
        for (id, name) in new_ids.iter().zip(&d.new_users) {
            w.as_mut().write(&[id, name, &now]).await.ctx(op)?;
        }
        *rows += w.as_mut().finish().await.ctx(op)?;
    }
    let q = format!(
        "INSERT INTO auth_bindings ({}) SELECT $1::text, $2::text, u.m, u.un, u.uid, $6::int8, $6::int8 \
         FROM UNNEST($3::text[], $4::text[], $5::int8[]) AS u(m, un, uid) {}",
        sql::BINDING_COLUMNS,
        sql::BINDING_CONFLICT
    );
    let (new, changed): (Vec<&logic::BindingWrite>, Vec<&logic::BindingWrite>) =
        d.writes.iter().partition(|w| w.new);
    if !new.is_empty() {
        let sink = tx
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
            let user = logic::resolve(b.user, &new_ids);
            w.as_mut()
                .write(&[
                    &provider,
                    &corp.corp_id,
                    &b.member_id,
                    &b.union_id,
                    &user,
                    &now,
                    &now,
                ])
                .await
                .ctx(op)?;
        }
        *rows += w.as_mut().finish().await.ctx(op)?;
    }
    for chunk in changed.chunks(BATCH) {
        let m: Vec<&str> = chunk.iter().map(|w| w.member_id.as_str()).collect();
        let un: Vec<Option<&str>> = chunk.iter().map(|w| w.union_id.as_deref()).collect();
        let uid: Vec<i64> = chunk
            .iter()
            .map(|w| logic::resolve(w.user, &new_ids))
            .collect();
        *rows += tx
            .execute(&q, &[&provider, &corp.corp_id, &m, &un, &uid, &now])
            .await
            .ctx(op)?;
    }
    let member_user = d
        .member_user
        .iter()
        .map(|(m, u)| (m.clone(), logic::resolve(*u, &new_ids)))
        .collect();
    Ok((member_user, d.conflicts))
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

/// Replaces the admin rows of one origin.
async fn write_admins(
    tx: &impl GenericClient,
    fname: &str,
    admins: &[Admin],
    origin: Origin,
    op: &str,
) -> StoreResult<u64> {
    let mut rows = tx
        .execute(sql::ADMINS_CLEAR, &[&fname, &origin.as_str()])
        .await
        .ctx(op)?;
    let admins = logic::dedup_admins(admins);
    if !admins.is_empty() {
        let m: Vec<&str> = admins.iter().map(|a| a.member_id.as_str()).collect();
        let level: Vec<i32> = admins.iter().map(|a| a.level).collect();
        let seq: Vec<i64> = (0..admins.len() as i64).collect();
        rows += tx
            .execute(
                "INSERT INTO admins (corp, member_id, level, seq, origin) \
                 SELECT $1::text, u.*, $5::text FROM UNNEST($2::text[], $3::int4[], $4::int8[]) AS u",
                &[&fname, &m, &level, &seq, &origin.as_str()],
            )
            .await
            .ctx(op)?;
    }
    Ok(rows)
}

async fn apply(
    client: &mut Client,
    corp: &CorpRecord,
    plan: &SyncPlan,
    run: &SyncRun,
) -> StoreResult<ApplyReport> {
    let op = format!("apply plan for {}", corp.full_name);
    let op = op.as_str();
    let tx = client.transaction().await.ctx(op)?;
    let fname = corp.full_name.as_str();
    upsert_corp(&tx, corp, op).await?;
    let n = logic::Normalized::new(plan);
    let mut rows: u64 = 0;

    if !n.depts.is_empty() || !plan.remove_depts.is_empty() {
        let existing: Vec<(i64, Option<i64>, String)> = tx
            .query(sql::SELECT_DEPT_TREE, &[&fname])
            .await
            .ctx(op)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let paths = logic::compute_paths(&existing, &n.depts, &plan.remove_depts);
        let q = format!(
            "INSERT INTO depts ({}) SELECT $1::text, * FROM UNNEST($2::int8[], $3::int8[], $4::text[], $5::int8[], $6::text[], $7::text[]) {}",
            sql::DEPT_COLUMNS,
            sql::DEPT_CONFLICT
        );
        for chunk in n.depts.chunks(BATCH) {
            let id: Vec<i64> = chunk.iter().map(|d| d.dept_id).collect();
            let parent: Vec<Option<i64>> = chunk.iter().map(|d| d.parent_id).collect();
            let name: Vec<&str> = chunk.iter().map(|d| d.name.as_str()).collect();
            let order: Vec<i64> = chunk.iter().map(|d| d.order).collect();
            let path: Vec<&str> = chunk
                .iter()
                .map(|d| paths.upserted[&d.dept_id].as_str())
                .collect();
            let leaders: Vec<String> = chunk
                .iter()
                .map(|d| serde_json::to_string(&d.leaders).unwrap_or_else(|_| "[]".into()))
                .collect();
            rows += tx
                .execute(&q, &[&fname, &id, &parent, &name, &order, &path, &leaders])
                .await
                .ctx(op)?;
        }
        if !plan.remove_depts.is_empty() {
            rows += tx
                .execute(
                    "DELETE FROM dept_members WHERE corp = $1 AND dept_id = ANY($2::int8[])",
                    &[&fname, &plan.remove_depts],
                )
                .await
                .ctx(op)?;
            rows += tx
                .execute(
                    "DELETE FROM depts WHERE corp = $1 AND dept_id = ANY($2::int8[])",
                    &[&fname, &plan.remove_depts],
                )
                .await
                .ctx(op)?;
        }
        for chunk in paths.changed.chunks(BATCH) {
            let id: Vec<i64> = chunk.iter().map(|c| c.0).collect();
            let path: Vec<&str> = chunk.iter().map(|c| c.1.as_str()).collect();
            rows += tx
                .execute(
                    "UPDATE depts d SET path = u.path FROM UNNEST($2::int8[], $3::text[]) AS u(id, path) \
                     WHERE d.corp = $1 AND d.dept_id = u.id",
                    &[&fname, &id, &path],
                )
                .await
                .ctx(op)?;
        }
    }

    let mut conflicts = Vec::new();
    if !n.members.is_empty() {
        let (member_user, c) = bind_members(&tx, corp, &n.members, &mut rows, op).await?;
        conflicts = c;
        let upsert = format!(
            "INSERT INTO members ({}) SELECT $1::text, * FROM UNNEST($2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::int8[], $10::int8[], $11::text[], $12::text[], $13::text[], $14::text[]) {}",
            sql::MEMBER_COLUMNS,
            sql::MEMBER_CONFLICT
        );
        // Only members already stored can have memberships to replace.
        let stored: HashSet<String> = tx
            .query(sql::MEMBER_IDS, &[&fname])
            .await
            .ctx(op)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let (fresh, known): (Vec<&Member>, Vec<&Member>) = n
            .members
            .iter()
            .partition(|m| !stored.contains(&m.member_id));
        if !fresh.is_empty() {
            let sink = tx
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
            for m in &fresh {
                let user = member_user.get(&m.member_id).copied();
                let extra = logic::extra_to_text(&m.extra);
                w.as_mut()
                    .write(&[
                        &fname,
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
        for chunk in known.chunks(BATCH) {
            let id: Vec<&str> = chunk.iter().map(|m| m.member_id.as_str()).collect();
            let user: Vec<Option<i64>> = chunk
                .iter()
                .map(|m| member_user.get(&m.member_id).copied())
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
            rows += tx
                .execute(
                    &upsert,
                    &[
                        &fname, &id, &user, &union, &name, &status, &position, &job, &main, &hired,
                        &avatar, &mobile, &email, &extra,
                    ],
                )
                .await
                .ctx(op)?;
            rows += tx
                .execute(
                    "DELETE FROM dept_members WHERE corp = $1 AND member_id = ANY($2::text[])",
                    &[&fname, &id],
                )
                .await
                .ctx(op)?;
        }
        // Old memberships are gone, so the new ones are plain rows: COPY.
        let sink = tx
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
        for m in &n.members {
            for (seq, d) in logic::memberships(m) {
                w.as_mut()
                    .write(&[
                        &fname,
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
        rows += w.as_mut().finish().await.ctx(op)?;
    }
    if !n.members.is_empty() {
        let depts: HashSet<i64> = tx
            .query(sql::DEPT_IDS, &[&fname])
            .await
            .ctx(op)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        logic::check_memberships(op, &n.members, &depts)?;
    }

    if !plan.offline_members.is_empty() {
        rows += tx
            .execute(
                "UPDATE members SET status = 'offline' WHERE corp = $1 AND member_id = ANY($2::text[]) AND status <> 'offline'",
                &[&fname, &plan.offline_members],
            )
            .await
            .ctx(op)?;
    }

    for g in &n.role_groups {
        rows += tx
            .execute(sql::GROUP_UPSERT, &[&fname, &g.group_id, &g.name])
            .await
            .ctx(op)?;
    }
    for r in &n.roles {
        rows += tx
            .execute(
                sql::ROLE_UPSERT,
                &[&fname, &r.role_id, &r.group_id, &r.name],
            )
            .await
            .ctx(op)?;
        rows += tx
            .execute(sql::ROLE_MEMBERS_CLEAR, &[&fname, &r.role_id])
            .await
            .ctx(op)?;
        let ids = logic::role_member_ids(r);
        if !ids.is_empty() {
            rows += tx
                .execute(
                    "INSERT INTO role_members (corp, role_id, member_id, origin) SELECT $1::text, $2::text, u.m, 'upstream' FROM UNNEST($3::text[]) AS u(m)",
                    &[&fname, &r.role_id, &ids],
                )
                .await
                .ctx(op)?;
        }
    }
    for id in &plan.remove_roles {
        rows += tx.execute(sql::ROLE_DELETE, &[&fname, id]).await.ctx(op)?;
    }
    for id in &plan.remove_role_groups {
        rows += tx.execute(sql::GROUP_DELETE, &[&fname, id]).await.ctx(op)?;
    }
    if let Some(admins) = &n.admins {
        rows += write_admins(&tx, fname, admins, Origin::Upstream, op).await?;
    }
    tx.execute(sql::STAMP_SYNC, &[&logic::sync_stamp(run), &fname])
        .await
        .ctx(op)?;
    let run_id = write_run(&tx, run, &plan.changes, rows, op).await?;
    tx.commit().await.ctx(op)?;
    Ok(ApplyReport {
        run_id,
        rows_written: rows,
        conflicts,
    })
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
    })
}

#[async_trait::async_trait]
impl OrgStore for PgStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn upsert_corp(&self, corp: &CorpRecord) -> StoreResult<()> {
        let c = self.client.lock().await;
        upsert_corp(&*c, corp, &format!("upsert corp {}", corp.full_name)).await
    }

    async fn corp(&self, full_name: &str) -> StoreResult<Option<CorpRecord>> {
        let c = self.client.lock().await;
        Ok(read_corp(&*c, full_name, &format!("read corp {full_name}"))
            .await?
            .map(|(r, _)| r))
    }

    async fn load_snapshot(&self, full_name: &str) -> StoreResult<CorpSnapshot> {
        let mut c = self.client.lock().await;
        // One snapshot-consistent read of all tables.
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .ctx(&format!("load snapshot of {full_name}"))?;
        let rows = load_rows(&tx, full_name).await?;
        tx.commit().await.ctx("end read")?;
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
        let mut c = self.client.lock().await;
        apply(&mut c, corp, plan, run).await
    }

    async fn record_run(&self, run: &SyncRun, changes: &[Change]) -> StoreResult<i64> {
        let mut c = self.client.lock().await;
        let op = format!("record run for {}", run.corp);
        let tx = c.transaction().await.ctx(&op)?;
        let id = write_run(&tx, run, changes, 0, &op).await?;
        tx.commit().await.ctx(&op)?;
        Ok(id)
    }

    async fn bulk_register(
        &self,
        corp: &CorpRecord,
        members: &[Member],
    ) -> StoreResult<Vec<IdentityConflict>> {
        let mut c = self.client.lock().await;
        let op = format!("bulk register members of {}", corp.full_name);
        let tx = c.transaction().await.ctx(&op)?;
        let refs: Vec<&Member> = members.iter().collect();
        let mut rows = 0;
        let (member_user, conflicts) = bind_members(&tx, corp, &refs, &mut rows, &op).await?;
        let (m, u): (Vec<&str>, Vec<i64>) =
            member_user.iter().map(|(m, u)| (m.as_str(), *u)).unzip();
        tx.execute(
            "UPDATE members x SET user_id = u.uid FROM UNNEST($2::text[], $3::int8[]) AS u(m, uid) \
             WHERE x.corp = $1 AND x.member_id = u.m",
            &[&corp.full_name, &m, &u],
        )
        .await
        .ctx(&op)?;
        tx.commit().await.ctx(&op)?;
        Ok(conflicts)
    }

    async fn local_corp_data(&self, full_name: &str, include_offline: bool) -> StoreResult<Value> {
        let mut c = self.client.lock().await;
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .ctx(&format!("read local corp data of {full_name}"))?;
        let rows = load_rows(&tx, full_name).await?;
        tx.commit().await.ctx("end read")?;
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
        let mut c = self.client.lock().await;
        let op = format!("set roles of member {member_id} in {full_name}");
        let tx = c.transaction().await.ctx(&op)?;
        require_member(&tx, full_name, member_id, &op).await?;
        for r in role_ids {
            if count(&tx, sql::ROLE_EXISTS, &[&full_name, r], &op).await? == 0 {
                return Err(StoreError::Invalid(format!(
                    "role {r} is not in organization {full_name}"
                )));
            }
        }
        tx.execute(sql::MEMBER_ROLES_CLEAR, &[&full_name, &member_id])
            .await
            .ctx(&op)?;
        let mut sorted = role_ids.to_vec();
        sorted.sort();
        sorted.dedup();
        for r in &sorted {
            tx.execute(
                sql::ROLE_MEMBER_INSERT,
                &[&full_name, r, &member_id, &Origin::Local.as_str()],
            )
            .await
            .ctx(&op)?;
        }
        let mut out = tx
            .query(sql::MEMBER_ROLES, &[&full_name, &member_id])
            .await
            .ctx(&op)?
            .iter()
            .map(|r| {
                Ok(RoleMemberRow {
                    member_id: member_id.to_string(),
                    role_id: r.get(0),
                    origin: logic::origin_parse(r.get::<_, &str>(1))?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        logic::sort_role_rows(&mut out);
        tx.commit().await.ctx(&op)?;
        Ok(out)
    }

    async fn offline_members(&self, full_name: &str, member_ids: &[String]) -> StoreResult<usize> {
        let mut c = self.client.lock().await;
        let op = format!("offline members of {full_name}");
        let tx = c.transaction().await.ctx(&op)?;
        let mut changed = 0;
        for id in member_ids {
            require_member(&tx, full_name, id, &op).await?;
            changed += tx
                .execute(sql::OFFLINE_MEMBER, &[&full_name, id])
                .await
                .ctx(&op)? as usize;
        }
        tx.commit().await.ctx(&op)?;
        Ok(changed)
    }

    async fn get_signature(&self, full_name: &str, member_id: &str) -> StoreResult<Option<String>> {
        let c = self.client.lock().await;
        let op = format!("read signature of {member_id} in {full_name}");
        require_member(&*c, full_name, member_id, &op).await?;
        Ok(c.query_opt(sql::SIGNATURE_GET, &[&full_name, &member_id])
            .await
            .ctx(&op)?
            .map(|r| r.get(0)))
    }

    async fn save_signature(
        &self,
        full_name: &str,
        member_id: &str,
        signature: &str,
    ) -> StoreResult<()> {
        let c = self.client.lock().await;
        let op = format!("save signature of {member_id} in {full_name}");
        require_member(&*c, full_name, member_id, &op).await?;
        c.execute(
            sql::SIGNATURE_SAVE,
            &[&full_name, &member_id, &signature, &logic::now_ms()],
        )
        .await
        .ctx(&op)?;
        Ok(())
    }

    async fn set_admins(&self, full_name: &str, admins: &[Admin]) -> StoreResult<()> {
        let mut c = self.client.lock().await;
        let op = format!("set admins of {full_name}");
        let tx = c.transaction().await.ctx(&op)?;
        for a in admins {
            require_member(&tx, full_name, &a.member_id, &op).await?;
        }
        write_admins(&tx, full_name, admins, Origin::Local, &op).await?;
        tx.commit().await.ctx(&op)
    }

    async fn get_admins(&self, full_name: &str) -> StoreResult<Vec<AdminRow>> {
        let c = self.client.lock().await;
        let op = format!("read admins of {full_name}");
        require_corp(&*c, full_name, &op).await?;
        read_admins(&*c, full_name, &op).await
    }

    async fn list_runs(&self, full_name: &str, limit: usize) -> StoreResult<Vec<SyncRun>> {
        let c = self.client.lock().await;
        let op = format!("list runs of {full_name}");
        let limit = limit.min(i64::MAX as usize) as i64;
        c.query(sql::SELECT_RUNS, &[&full_name, &limit])
            .await
            .ctx(&op)?
            .iter()
            .map(run_from_row)
            .collect()
    }

    async fn begin_run(&self, run: &SyncRun) -> StoreResult<i64> {
        let run = logic::running(run);
        let mut c = self.client.lock().await;
        let op = format!("begin run for {}", run.corp);
        let tx = c.transaction().await.ctx(&op)?;
        let id = write_run(&tx, &run, &[], 0, &op).await?;
        tx.commit().await.ctx(&op)?;
        Ok(id)
    }

    async fn lock_sync(&self, full_name: &str, wait: std::time::Duration) -> StoreResult<SyncLock> {
        let op = format!("lock sync of {full_name}");
        let key = logic::lock_key(&["sync", &self.schema, full_name]);
        // A session of its own: advisory locks are re-entrant within one
        // session, so on the shared connection a second lock_sync of this
        // store would succeed; and the lock must live exactly as long as
        // the guard, not as long as the store.
        let session = connect(&self.url, &self.location).await?;
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
            let newest = self
                .client
                .lock()
                .await
                .query_opt(sql::NEWEST_RUNNING_RUN, &[&full_name])
                .await
                .ctx(&format!("read the running run of {full_name}"))?
                .map(|r| (r.get(0), r.get(1)));
            return Err(lock::busy(full_name, newest));
        }
        let guard = SyncLock::new(
            full_name,
            lock::Held::Postgres {
                _client: session,
                key,
            },
        );
        self.client
            .lock()
            .await
            .execute(sql::FAIL_RUNNING_RUNS, &[&lock::INTERRUPTED, &full_name])
            .await
            .ctx(&format!("fail interrupted runs of {full_name}"))?;
        Ok(guard)
    }

    async fn get_run(&self, run_id: i64) -> StoreResult<Option<SyncRun>> {
        let c = self.client.lock().await;
        c.query_opt(sql::SELECT_RUN, &[&run_id])
            .await
            .ctx(&format!("read run {run_id}"))?
            .as_ref()
            .map(run_from_row)
            .transpose()
    }

    async fn run_changes(&self, run_id: i64) -> StoreResult<Vec<RunChange>> {
        let c = self.client.lock().await;
        let op = format!("read changes of run {run_id}");
        c.query(sql::SELECT_RUN_CHANGES, &[&run_id])
            .await
            .ctx(&op)?
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
        let c = self.client.lock().await;
        let op = format!("look up local user of {provider} {corp_id}/{member_id}");
        let p = provider.as_str();
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
    }

    async fn memberships_of_user(
        &self,
        user_id: i64,
    ) -> StoreResult<Vec<(String, String, MemberStatus)>> {
        let c = self.client.lock().await;
        let op = format!("read memberships of local user {user_id}");
        let mut out = c
            .query(sql::MEMBERSHIPS_OF_USER, &[&user_id])
            .await
            .ctx(&op)?
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
        let c = self.client.lock().await;
        Ok(count(&*c, sql::USER_COUNT, &[], "count users").await? as u64)
    }

    async fn last_successful_sync(&self, full_name: &str) -> StoreResult<Option<i64>> {
        let c = self.client.lock().await;
        Ok(c.query_opt(sql::LAST_SYNC, &[&full_name])
            .await
            .ctx(&format!("read last sync of {full_name}"))?
            .and_then(|r| r.get(0)))
    }

    async fn subtree_members(&self, full_name: &str, dept_id: i64) -> StoreResult<Vec<String>> {
        let c = self.client.lock().await;
        let op = format!("read members under department {dept_id} of {full_name}");
        require_corp(&*c, full_name, &op).await?;
        let mut ids: Vec<String> = c
            .query(sql::SUBTREE_MEMBERS, &[&full_name, &dept_id])
            .await
            .ctx(&op)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        ids.sort();
        Ok(ids)
    }
}
