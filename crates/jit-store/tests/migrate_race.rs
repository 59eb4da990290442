//! Replicas starting together on a fresh database: every one of them opens
//! it, and the schema is migrated exactly once.

use crate::common;

use common::*;

/// How many processes' worth of opens race each other.
const REPLICAS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_of_a_fresh_sqlite_file_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("org.db").display().to_string();
    let opens: Vec<_> = (0..REPLICAS)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move { jit_store::open(&path).await.map(|_| ()) })
        })
        .collect();
    for open in opens {
        open.await.unwrap().expect("every replica opens the store");
    }
    let c = rusqlite::Connection::open(&path).unwrap();
    let versions: i64 = c
        .query_row("SELECT COUNT(*) FROM jit_schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        versions,
        jit_store::schema_version(),
        "each migration ran once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_of_a_fresh_postgres_schema_all_succeed() {
    let Some(url) = pg_available().await else {
        return;
    };
    let schema = fresh_schema();
    let opens: Vec<_> = (0..REPLICAS)
        .map(|_| {
            let (url, schema) = (url.clone(), schema.clone());
            tokio::spawn(async move {
                jit_store::open_postgres_in_schema(&url, &schema)
                    .await
                    .map(|_| ())
            })
        })
        .collect();
    let mut results = Vec::new();
    for open in opens {
        results.push(open.await.unwrap());
    }
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let versions: Option<i64> = client
        .query_one(
            &format!("SELECT COUNT(*) FROM \"{schema}\".jit_schema_version"),
            &[],
        )
        .await
        .ok()
        .map(|r| r.get(0));
    jit_store::drop_postgres_schema(&url, &schema)
        .await
        .unwrap();
    for r in results {
        r.expect("every replica opens the store");
    }
    assert_eq!(
        versions,
        Some(jit_store::schema_version()),
        "each migration ran once"
    );
}
