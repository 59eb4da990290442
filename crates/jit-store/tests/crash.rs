//! Killing the process in the middle of a big apply leaves a store that
//! opens cleanly and holds exactly the old or exactly the new state.
//!
//! The parent test seeds a store, then re-runs this test binary as a child
//! (selecting the ignored `crash_worker` test through an environment
//! variable) which applies a 100,000-member plan; the parent SIGKILLs it
//! mid-apply and inspects the store.

use crate::common;

use common::*;
use jit_org::{CorpSnapshot, Provider, SyncPlan};
use jit_store::synthetic::{creation_plan, SyntheticOrg};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const WORKER_ENV: &str = "JIT_STORE_CRASH_WORKER";
const CORP: &str = "corps.Big";
const OLD_MEMBERS: usize = 1_000;
const NEW_MEMBERS: usize = 100_000;

/// The org before the crash.
fn old_org() -> SyntheticOrg {
    creation_plan(CORP, Provider::Wecom, OLD_MEMBERS)
}

/// The plan the worker is killed in the middle of: 100,000 members (the
/// first 1,000 are the old ones, updated), for the same org record.
fn new_org() -> SyntheticOrg {
    let mut org = creation_plan(CORP, Provider::Wecom, NEW_MEMBERS);
    org.corp = old_org().corp;
    org
}

/// What the store must hold after applying `plan` to an empty store.
fn expected_snapshot(org: &SyntheticOrg) -> CorpSnapshot {
    let mut s = CorpSnapshot::new(org.corp.corp_id.clone());
    s.depts = org
        .plan
        .upsert_depts
        .iter()
        .map(|d| (d.dept_id, d.clone()))
        .collect();
    s.members = org
        .plan
        .upsert_members
        .iter()
        .map(|m| (m.member_id.clone(), m.clone()))
        .collect();
    s.admins = Some(Vec::new());
    s
}

#[tokio::test]
#[ignore = "worker process of the crash tests; they start it themselves"]
async fn crash_worker() {
    let spec = std::env::var(WORKER_ENV)
        .expect("crash_worker is started by the crash tests, which set JIT_STORE_CRASH_WORKER");
    let store = open_worker_spec(&spec).await;
    let org = new_org();
    println!("applying");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    store
        .apply_plan(&org.corp, &org.plan, &run_for(&org.corp))
        .await
        .unwrap();
    println!("applied");
}

/// How one worker run ended.
enum Ending {
    Killed,
    Finished,
}

/// Starts a worker, waits until it starts applying, lets it run for
/// `delay`, then SIGKILLs it (unless it already finished).
fn run_worker(spec: &str, delay: Duration) -> Ending {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash::crash_worker",
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
            // libtest prints "test crash::crash_worker ... " before the output.
            Some(Ok(l)) if l.trim_end().ends_with("applying") => break,
            Some(Ok(_)) => continue,
            other => {
                let _ = child.kill();
                panic!("worker ended before applying: {other:?}");
            }
        }
    }
    std::thread::sleep(delay);
    if let Some(status) = child.try_wait().unwrap() {
        assert!(status.success(), "worker failed on its own: {status}");
        return Ending::Finished;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    Ending::Killed
}

/// Seeds the old state, then kills workers at growing delays (so that some
/// die while building rows and some while committing) until one finishes.
/// After every kill the store must open and hold exactly the state before
/// that worker started, or exactly the new one.
async fn kill_mid_apply_leaves_old_or_new(t: &TestStore, spec: String) {
    let old = old_org();
    apply(t, &old.corp, &old.plan).await;
    let old_snap = expected_snapshot(&old);
    let new_snap = expected_snapshot(&new_org());
    let mut committed = 0;
    let mut kills = Vec::new();
    for delay_ms in [
        100u64, 400, 800, 1200, 1600, 2000, 2500, 3000, 4000, 6000, 10_000,
    ] {
        let spec2 = spec.clone();
        let ending = tokio::task::spawn_blocking(move || {
            run_worker(&spec2, Duration::from_millis(delay_ms))
        })
        .await
        .unwrap();
        let store = t
            .reopen()
            .await
            .expect("store opens cleanly after the crash");
        let snap = store.load_snapshot(CORP).await.unwrap();
        let runs = store.list_runs(CORP, 100).await.unwrap().len();
        let users = store.user_count().await.unwrap();
        if snap.members.len() == OLD_MEMBERS {
            assert_eq!(
                snap, old_snap,
                "exactly the old state (killed at {delay_ms} ms)"
            );
            assert_eq!(users, OLD_MEMBERS as u64);
            assert_eq!(runs, 1);
        } else {
            assert!(
                snap == new_snap,
                "exactly the new state (killed at {delay_ms} ms)"
            );
            assert_eq!(users, NEW_MEMBERS as u64);
            if runs == committed + 2 {
                committed += 1;
            }
            assert_eq!(runs, committed + 1);
        }
        match ending {
            Ending::Killed => kills.push((delay_ms, snap.members.len())),
            Ending::Finished => {
                assert_eq!(snap.members.len(), NEW_MEMBERS, "a finished apply is there");
                break;
            }
        }
    }
    eprintln!("killed at (ms, members found): {kills:?}");
    assert!(!kills.is_empty(), "no worker was killed mid-apply");
    // And the store is writable again.
    let store = t.reopen().await.unwrap();
    store
        .apply_plan(&old.corp, &SyncPlan::default(), &run_for(&old.corp))
        .await
        .unwrap();
}

#[tokio::test]
async fn sqlite_killed_mid_apply_holds_old_or_new_state() {
    let t = TestStore::sqlite().await;
    let spec = t.worker_spec();
    kill_mid_apply_leaves_old_or_new(&t, spec).await;
}

#[tokio::test]
async fn postgres_killed_mid_apply_holds_old_or_new_state() {
    let Some(t) = TestStore::postgres().await else {
        return;
    };
    let spec = t.worker_spec();
    kill_mid_apply_leaves_old_or_new(&t, spec).await;
}
