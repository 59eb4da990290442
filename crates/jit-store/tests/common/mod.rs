//! Test harness: a fresh store per test on either backend, plus raw access to
//! the underlying database for assertions the trait does not expose.
//!
//! PostgreSQL: `JIT_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! every test gets its own schema `jit_test_<pid>_<nanos>_<n>`, dropped
//! afterwards. An unreachable server fails the test, unless `JIT_SKIP_PG=1`
//! is set outside CI (`CI` not `true`), in which case the test says it skipped.

#![allow(dead_code)]

use jit_org::{
    Admin, Change, ChangeKind, CorpRecord, CorpSnapshot, Dept, DeptMembership, Member,
    MemberStatus, ObjectKind, Provider, Role, RoleGroup, SyncPlan,
};
use jit_store::{CorpStore, RunOutcome, StoreResult, SyncRun};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The PostgreSQL URL tests use.
pub fn pg_url() -> String {
    std::env::var("JIT_TEST_PG_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// Whether an unreachable PostgreSQL may be skipped (never in CI).
fn pg_skip_allowed() -> bool {
    std::env::var("JIT_SKIP_PG").as_deref() == Ok("1")
        && std::env::var("CI").as_deref() != Ok("true")
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A schema name no other test (or test run) uses.
pub fn fresh_schema() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "jit_test_{}_{}_{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Connects to PostgreSQL, or returns `None` when skipping is allowed.
/// Panics with the URL when it is unreachable and skipping is not allowed.
pub async fn pg_available() -> Option<String> {
    let url = pg_url();
    match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            drop(client);
            let _ = conn.await;
            Some(url)
        }
        Err(e) if pg_skip_allowed() => {
            eprintln!("SKIPPED: PostgreSQL at {url} is unreachable ({e:?}) and JIT_SKIP_PG=1");
            None
        }
        Err(e) => panic!(
            "PostgreSQL at {url} is unreachable: {e:?}. Start it, or point JIT_TEST_PG_URL at one \
             (JIT_SKIP_PG=1 skips these tests, but never when CI=true)"
        ),
    }
}

/// Where a test store lives.
pub enum Place {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        url: String,
        schema: String,
    },
}

/// A fresh store for one test.
pub struct TestStore {
    pub store: Arc<dyn CorpStore>,
    pub place: Place,
}

/// How a worker process (a child started by the crash and lock tests)
/// opens the same store as its parent test: `sqlite\t<path>` or
/// `postgres\t<url>\t<schema>`, passed through an environment variable.
pub async fn open_worker_spec(spec: &str) -> std::sync::Arc<dyn jit_store::CorpStore> {
    let parts: Vec<&str> = spec.split('\t').collect();
    match parts.as_slice() {
        ["sqlite", path] => jit_store::open(path).await.unwrap(),
        ["postgres", url, schema] => jit_store::open_postgres_in_schema(url, schema)
            .await
            .unwrap(),
        _ => panic!("bad worker spec {spec:?}"),
    }
}

impl TestStore {
    /// The spec a worker process opens this store with ([`open_worker_spec`]).
    pub fn worker_spec(&self) -> String {
        match &self.place {
            Place::Sqlite { path, .. } => format!("sqlite\t{}", path.display()),
            Place::Postgres { url, schema } => format!("postgres\t{url}\t{schema}"),
        }
    }

    /// A store in a new SQLite file in a temporary folder.
    pub async fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("org.db");
        let store = jit_store::open(path.to_str().unwrap()).await.unwrap();
        TestStore {
            store,
            place: Place::Sqlite { _dir: dir, path },
        }
    }

    /// A store in a new PostgreSQL schema (`None` only when skipping is allowed).
    pub async fn postgres() -> Option<TestStore> {
        let url = pg_available().await?;
        let schema = fresh_schema();
        let store = jit_store::open_postgres_in_schema(&url, &schema)
            .await
            .unwrap();
        Some(TestStore {
            store,
            place: Place::Postgres { url, schema },
        })
    }

    /// Opens the same database again (a new connection, migrations re-run).
    pub async fn reopen(&self) -> StoreResult<Arc<dyn CorpStore>> {
        match &self.place {
            Place::Sqlite { path, .. } => jit_store::open(path.to_str().unwrap()).await,
            Place::Postgres { url, schema } => {
                jit_store::open_postgres_in_schema(url, schema).await
            }
        }
    }

    /// Runs one statement directly on the database.
    pub async fn exec(&self, sql: &str) {
        match &self.place {
            Place::Sqlite { path, .. } => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.execute_batch(sql).unwrap();
            }
            Place::Postgres { .. } => {
                let c = self.raw_pg().await;
                c.batch_execute(sql).await.unwrap();
            }
        }
    }

    /// Runs one statement directly on the database and returns how the
    /// driver failed it (the statement must fail).
    pub async fn exec_err(&self, sql: &str) -> jit_store::DriverError {
        match &self.place {
            Place::Sqlite { path, .. } => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.execute_batch("PRAGMA foreign_keys = ON").unwrap();
                c.execute_batch(sql)
                    .expect_err("the statement must fail")
                    .into()
            }
            Place::Postgres { .. } => {
                let c = self.raw_pg().await;
                c.batch_execute(sql)
                    .await
                    .expect_err("the statement must fail")
                    .into()
            }
        }
    }

    /// Runs a query returning one integer.
    pub async fn scalar(&self, sql: &str) -> i64 {
        match &self.place {
            Place::Sqlite { path, .. } => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.query_row(sql, [], |r| r.get(0)).unwrap()
            }
            Place::Postgres { .. } => {
                let c = self.raw_pg().await;
                c.query_one(sql, &[]).await.unwrap().get(0)
            }
        }
    }

    /// Names of the tables, sorted.
    pub async fn tables(&self) -> Vec<String> {
        let mut out: Vec<String> = match &self.place {
            Place::Sqlite { path, .. } => {
                let c = rusqlite::Connection::open(path).unwrap();
                let mut st = c
                    .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .unwrap();
                st.query_map([], |r| r.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            }
            Place::Postgres { schema, .. } => {
                let c = self.raw_pg().await;
                c.query(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
                    &[schema],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect()
            }
        };
        out.sort();
        out
    }

    /// Row count of every table, as `table=count` lines.
    pub async fn fingerprint(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in self.tables().await {
            let n = self.scalar(&format!("SELECT COUNT(*) FROM {t}")).await;
            out.push(format!("{t}={n}"));
        }
        out
    }

    /// Rows in the org tables (everything but runs, users pool and versions).
    pub async fn org_rows(&self) -> i64 {
        let mut total = 0;
        for t in [
            "corps",
            "depts",
            "members",
            "dept_members",
            "role_groups",
            "roles",
            "role_members",
            "admins",
            "signatures",
            "users",
            "auth_bindings",
        ] {
            total += self.scalar(&format!("SELECT COUNT(*) FROM {t}")).await;
        }
        total
    }

    async fn raw_pg(&self) -> tokio_postgres::Client {
        let Place::Postgres { url, schema } = &self.place else {
            unreachable!()
        };
        let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.batch_execute(&format!("SET search_path TO \"{schema}\""))
            .await
            .unwrap();
        c
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Place::Postgres { url, schema } = &self.place {
            let (url, schema) = (url.clone(), schema.clone());
            // Drop runs inside the test's runtime: use a runtime of our own
            // on another thread to wait for the schema to go.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(jit_store::drop_postgres_schema(&url, &schema))
            })
            .join();
        }
    }
}

/// A WeCom org record.
pub fn wecom_corp(full_name: &str) -> CorpRecord {
    CorpRecord {
        full_name: full_name.to_string(),
        title: "Acme".to_string(),
        corp_type: "corps.QywxInnerType".to_string(),
        provider: Provider::Wecom,
        corp_id: format!("ww-{full_name}"),
    }
}

/// A DingTalk org record with the given platform corp id.
pub fn dingtalk_corp(full_name: &str, corp_id: &str) -> CorpRecord {
    CorpRecord {
        full_name: full_name.to_string(),
        title: format!("Ding {full_name}"),
        corp_type: "corps.DDInnerType".to_string(),
        provider: Provider::DingTalk,
        corp_id: corp_id.to_string(),
    }
}

/// A run record for an applied plan.
pub fn run_for(corp: &CorpRecord) -> SyncRun {
    SyncRun {
        run_id: 0,
        corp: corp.full_name.clone(),
        started_at: 1_700_000_000_000,
        finished_at: 1_700_000_001_000,
        outcome: RunOutcome::Applied,
        counts: Default::default(),
        error: None,
        notes: vec!["mobile withheld by WeCom".to_string()],
        kind: jit_store::RunKind::Sync,
        missed_by_events: None,
        calls: None,
    }
}

fn membership(dept_id: i64, order: i64, is_leader: bool) -> DeptMembership {
    DeptMembership {
        dept_id,
        order,
        is_leader,
    }
}

/// A small org with every kind of object and field.
///
/// Tree: 1 ─ 2 ─ 3, 1 ─ 4. Members: alice (dept 2, leader), bob (3 then 4),
/// carol (dept 1; mobile unknown, email known to be empty), dave (offline, dept 4).
pub fn sample_snapshot(corp_id: &str) -> CorpSnapshot {
    let mut s = CorpSnapshot::new(corp_id);
    let mut root = Dept::new(1, None, "Acme");
    root.leaders = vec!["carol".into()];
    s.depts.insert(1, root);
    let mut d2 = Dept::new(2, Some(1), "R&D");
    d2.order = 20;
    d2.leaders = vec!["alice".into()];
    s.depts.insert(2, d2);
    s.depts.insert(3, Dept::new(3, Some(2), "Platform"));
    let mut d4 = Dept::new(4, Some(1), "Sales");
    d4.order = 40;
    s.depts.insert(4, d4);

    let mut alice = Member::new("alice", "Alice");
    alice.position = Some("Lead".into());
    alice.job_number = Some("0007".into());
    alice.main_dept_id = Some(2);
    alice.hired_date = Some(1_500_000_000_000);
    alice.avatar = Some("https://a/alice.png".into());
    alice.mobile = Some("13800000001".into());
    alice.email = Some("alice@acme.test".into());
    alice.depts = vec![membership(2, 1, true)];
    alice.extra = json!({"attrs": [{"name": "Floor", "value": "3"}], "z": 1, "a": 2});
    let mut bob = Member::new("bob", "Bob");
    bob.depts = vec![membership(3, 5, false), membership(4, 2, false)];
    bob.status = MemberStatus::NotActivated;
    let mut carol = Member::new("carol", "Carol");
    carol.email = Some(String::new());
    carol.depts = vec![membership(1, 0, true)];
    let mut dave = Member::new("dave", "Dave");
    dave.status = MemberStatus::Offline;
    dave.depts = vec![membership(4, 9, false)];
    for m in [alice, bob, carol, dave] {
        s.members.insert(m.member_id.clone(), m);
    }

    s.role_groups.insert(
        "g1".into(),
        RoleGroup {
            group_id: "g1".into(),
            name: "Duties".into(),
        },
    );
    s.roles.insert(
        "r1".into(),
        Role {
            role_id: "r1".into(),
            group_id: Some("g1".into()),
            name: "Approver".into(),
            members: vec!["alice".into(), "bob".into()],
        },
    );
    s.roles.insert(
        "r2".into(),
        Role {
            role_id: "r2".into(),
            group_id: None,
            name: "Auditor".into(),
            members: vec![],
        },
    );
    s.admins = Some(vec![
        Admin {
            member_id: "carol".into(),
            level: 1,
        },
        Admin {
            member_id: "alice".into(),
            level: 2,
        },
    ]);
    s
}

/// The plan that turns an empty store into `s`.
pub fn plan_from(s: &CorpSnapshot) -> SyncPlan {
    let mut p = SyncPlan {
        upsert_depts: s.depts.values().cloned().collect(),
        upsert_members: s.members.values().cloned().collect(),
        upsert_role_groups: s.role_groups.values().cloned().collect(),
        upsert_roles: s.roles.values().cloned().collect(),
        set_admins: s.admins.clone(),
        ..SyncPlan::default()
    };
    for d in s.depts.values() {
        p.changes.push(change(
            ObjectKind::Dept,
            &d.dept_id.to_string(),
            ChangeKind::Created,
            "new department",
        ));
    }
    for m in s.members.values() {
        p.changes.push(change(
            ObjectKind::Member,
            &m.member_id,
            ChangeKind::Created,
            "new member",
        ));
    }
    p
}

/// A change line.
pub fn change(object: ObjectKind, id: &str, kind: ChangeKind, reason: &str) -> Change {
    Change {
        object,
        id: id.to_string(),
        kind,
        reason: reason.to_string(),
    }
}

/// A plan that only upserts the given members.
pub fn members_plan(members: Vec<Member>) -> SyncPlan {
    SyncPlan {
        upsert_members: members,
        ..SyncPlan::default()
    }
}

/// Applies `plan` and unwraps.
pub async fn apply(t: &TestStore, corp: &CorpRecord, plan: &SyncPlan) -> jit_store::ApplyReport {
    t.store
        .apply_plan(corp, plan, &run_for(corp))
        .await
        .unwrap_or_else(|e| panic!("apply failed: {e}"))
}

/// Applies the sample org to a WeCom corp and returns the corp and snapshot.
pub async fn seeded(t: &TestStore) -> (CorpRecord, CorpSnapshot) {
    let corp = wecom_corp("corps.Acme");
    let snap = sample_snapshot(&corp.corp_id);
    apply(t, &corp, &plan_from(&snap)).await;
    (corp, snap)
}

/// Instantiates each named behaviour (an async fn taking a fresh
/// [`TestStore`], in the invoking module) once per backend: tests
/// `sqlite::<name>` and `postgres::<name>` (skipped without a server only
/// where `JIT_SKIP_PG` allows it).
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = crate::common::TestStore::sqlite().await;
                    super::$name(&t).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(t) = crate::common::TestStore::postgres().await else { return };
                    super::$name(&t).await;
                }
            )*
        }
    };
}
pub(crate) use suite;
