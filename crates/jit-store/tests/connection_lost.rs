//! A PostgreSQL session that the server ends (restart, failover, an
//! administrator) surfaces as `StoreErrorKind::ConnectionLost`, so callers
//! can tell it from a bad statement and reconnect. (SQLite has no
//! connection to lose.)

use crate::common;

use common::*;
use jit_store::StoreErrorKind;

#[tokio::test]
async fn postgres_session_ended_by_the_server_is_connection_lost() {
    let Some(url) = pg_available().await else {
        return;
    };
    let schema = fresh_schema();
    // A name no other session has, to end exactly the store's session.
    let app = format!("jit_{schema}");
    let sep = if url.contains('?') { '&' } else { '?' };
    let store =
        jit_store::open_postgres_in_schema(&format!("{url}{sep}application_name={app}"), &schema)
            .await
            .unwrap();
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let ended: i64 = admin
        .query_one(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ended, 1);
    let err = store.user_count().await.unwrap_err();
    jit_store::drop_postgres_schema(&url, &schema)
        .await
        .unwrap();
    assert_eq!(err.kind(), StoreErrorKind::ConnectionLost, "{err}");
    assert!(!err.to_string().contains("password"));
}
