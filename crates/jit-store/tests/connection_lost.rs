//! PostgreSQL sessions that the server ends (restart, failover, an
//! administrator). A transaction caught midway fails as
//! `StoreErrorKind::ConnectionLost` and leaves nothing behind; the store
//! then opens new sessions, so the next operations work without restarting
//! the process. (SQLite has no connection to lose.)

use crate::common;

use common::*;
use jit_store::{CorpStore, StoreErrorKind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A store in a fresh schema whose sessions carry a name no other session
/// has (to end exactly them), and a session of the test's own.
struct Named {
    store: Arc<dyn CorpStore>,
    app: String,
    schema: String,
    url: String,
    admin: tokio_postgres::Client,
}

impl Named {
    async fn open() -> Option<Named> {
        let url = pg_available().await?;
        let schema = fresh_schema();
        let app = format!("jit_{schema}");
        let sep = if url.contains('?') { '&' } else { '?' };
        let store = jit_store::open_postgres_in_schema(
            &format!("{url}{sep}application_name={app}"),
            &schema,
        )
        .await
        .unwrap();
        let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        Some(Named {
            store,
            app,
            schema,
            url,
            admin,
        })
    }

    /// How many sessions of the store the server has (`extra` narrows it).
    async fn sessions(&self, extra: &str) -> i64 {
        self.admin
            .query_one(
                &format!(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1 {extra}"
                ),
                &[&self.app],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// Ends every session of the store, as a server restart would.
    async fn end_sessions(&self) -> i64 {
        self.admin
            .query_one(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&self.app],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// Waits until `extra` holds for `n` sessions of the store.
    async fn wait_for_sessions(&self, extra: &str, n: i64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.sessions(extra).await != n {
            assert!(Instant::now() < deadline, "no {n} sessions {extra}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn drop_schema(self) {
        jit_store::drop_postgres_schema(&self.url, &self.schema)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_transaction_whose_session_the_server_ends_fails_as_connection_lost_and_writes_nothing() {
    let Some(t) = Named::open().await else {
        return;
    };
    let corp = wecom_corp("corps.Lost");
    let plan = plan_from(&sample_snapshot(&corp.corp_id));
    // Hold the run table, so the apply waits inside its transaction after
    // writing the corp and its departments.
    t.admin
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE \"{}\".sync_runs IN ACCESS EXCLUSIVE MODE",
            t.schema
        ))
        .await
        .unwrap();
    let apply = tokio::spawn({
        let (store, corp, plan) = (t.store.clone(), corp.clone(), plan.clone());
        async move { store.apply_plan(&corp, &plan, &run_for(&corp)).await }
    });
    t.wait_for_sessions("AND wait_event_type = 'Lock'", 1).await;
    assert!(t.end_sessions().await >= 1);
    let err = apply.await.unwrap().unwrap_err();
    t.admin.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(err.kind(), StoreErrorKind::ConnectionLost, "{err}");
    assert!(!err.to_string().contains("password"));

    // The next operations work, and nothing of the cut apply was kept.
    assert_eq!(t.store.corp(&corp.full_name).await.unwrap(), None);
    let report = t
        .store
        .apply_plan(&corp, &plan, &run_for(&corp))
        .await
        .unwrap();
    assert!(report.rows_written > 0);
    t.drop_schema().await;
}

#[tokio::test]
async fn a_sync_lock_whose_session_the_server_ends_says_it_is_lost_and_is_free_again() {
    let Some(t) = Named::open().await else {
        return;
    };
    let held = t
        .store
        .lock_sync("corps.Locked", Duration::ZERO)
        .await
        .unwrap();
    assert!(!held.is_lost());
    t.end_sessions().await;
    // The server released the advisory lock with the session: the holder
    // can tell, and the lock can be taken again (here, by the same store).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !held.is_lost() {
        assert!(Instant::now() < deadline, "the lock never said it was lost");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = t
        .store
        .lock_sync("corps.Locked", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(!again.is_lost());
    drop((held, again));
    t.drop_schema().await;
}

#[tokio::test]
async fn after_the_server_ends_every_session_of_a_store_the_next_operations_reconnect() {
    let Some(t) = Named::open().await else {
        return;
    };
    let corp = wecom_corp("corps.Restarted");
    let plan = plan_from(&sample_snapshot(&corp.corp_id));
    t.store
        .apply_plan(&corp, &plan, &run_for(&corp))
        .await
        .unwrap();
    // Several sessions open at once, so several are idle when they end.
    let s = &t.store;
    let counts = tokio::join!(s.user_count(), s.user_count(), s.user_count());
    let users = counts.0.unwrap();
    assert!(t.sessions("").await >= 2);

    // Ended and gone before the store notices (a restart while idle).
    t.end_sessions().await;
    t.wait_for_sessions("", 0).await;
    assert_eq!(t.store.user_count().await.unwrap(), users);
    t.store.upsert_corp(&corp).await.unwrap();

    // Ended while the store may still see the sessions open: the first
    // statement finds them gone and a new session runs the operation, a
    // read or a write whose transaction had not begun.
    t.end_sessions().await;
    let data = t
        .store
        .local_corp_data(&corp.full_name, false)
        .await
        .unwrap();
    assert!(!data["deptList"].as_array().unwrap().is_empty());
    t.end_sessions().await;
    t.store.upsert_corp(&corp).await.unwrap();
    assert!(
        t.sessions("").await <= 4,
        "the pool holds at most 4 sessions"
    );
    t.drop_schema().await;
}
