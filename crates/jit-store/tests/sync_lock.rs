//! The sync lock outlives nothing but its holder: a process killed while
//! holding it (SIGKILL, no clean-up) frees it, on both backends. Also the
//! in-memory SQLite store's process-wide lock table.
//!
//! As in `crash.rs`, the test re-runs this binary as a child (the ignored
//! `lock_worker` test, selected through an environment variable) that takes
//! the lock, says so, and waits to be killed.

use crate::common;

use common::*;
use jit_store::StoreError;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const WORKER_ENV: &str = "JIT_STORE_LOCK_WORKER";
const CORP: &str = "corps.Locked";

#[tokio::test]
#[ignore = "worker process of the lock tests; they start it themselves"]
async fn lock_worker() {
    let spec = std::env::var(WORKER_ENV)
        .expect("lock_worker is started by the lock tests, which set JIT_STORE_LOCK_WORKER");
    let store = open_worker_spec(&spec).await;
    let _held = store.lock_sync(CORP, Duration::ZERO).await.unwrap();
    store.begin_run(&run_for(&wecom_corp(CORP))).await.unwrap();
    println!("locked");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
}

/// Starts a worker holding the lock, checks that it is held, SIGKILLs the
/// worker and takes the lock.
async fn lock_of_a_killed_process_is_released(t: &TestStore, spec: String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "sync_lock::lock_worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WORKER_ENV, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.trim_end().ends_with("locked") => break,
            Some(Ok(_)) => continue,
            other => {
                let _ = child.kill();
                panic!("worker ended before locking: {other:?}");
            }
        }
    }
    let busy = t.store.lock_sync(CORP, Duration::ZERO).await;
    assert!(
        matches!(
            busy,
            Err(StoreError::SyncBusy {
                run_id: Some(_),
                ..
            })
        ),
        "the worker holds the lock: {busy:?}"
    );
    child.kill().unwrap(); // SIGKILL: nothing of the worker runs after this.
    child.wait().unwrap();
    let held = t
        .store
        .lock_sync(CORP, Duration::from_secs(10))
        .await
        .expect("the killed worker's lock is released");
    let runs = t.store.list_runs(CORP, 5).await.unwrap();
    assert_eq!(runs[0].outcome, jit_store::RunOutcome::Failed);
    assert!(runs[0].error.as_deref().unwrap().starts_with("interrupted"));
    drop(held);
}

#[tokio::test]
async fn sqlite_sync_lock_of_a_killed_process_is_released() {
    let t = TestStore::sqlite().await;
    let spec = t.worker_spec();
    lock_of_a_killed_process_is_released(&t, spec).await;
}

#[tokio::test]
async fn postgres_sync_lock_of_a_killed_process_is_released() {
    let Some(t) = TestStore::postgres().await else {
        return;
    };
    let spec = t.worker_spec();
    lock_of_a_killed_process_is_released(&t, spec).await;
}

#[tokio::test]
async fn in_memory_sqlite_sync_locks_exclude_within_the_store_only() {
    let a = jit_store::open(":memory:").await.unwrap();
    let b = jit_store::open(":memory:").await.unwrap();
    let held = a.lock_sync(CORP, Duration::ZERO).await.unwrap();
    assert!(matches!(
        a.lock_sync(CORP, Duration::ZERO).await,
        Err(StoreError::SyncBusy { .. })
    ));
    // Another in-memory store is another database with its own syncs.
    b.lock_sync(CORP, Duration::ZERO).await.unwrap();
    drop(held);
    a.lock_sync(CORP, Duration::ZERO).await.unwrap();
}
