//! The WeCom client and the sync engine against the simulator and a real
//! SQLite store.

use jit_apiclient::{CountingProgress, FetchOptions, NoProgress, RetryPolicy};
use jit_org::{CorpRecord, MemberStatus, Provider};
use jit_sim::truth::{active_members, as_synced, assert_same_org, first_active};
use jit_sim::{FaultKind, MembershipSpec, Mutation, OrgRef, SimConfig, SimHandle, Simulator};
use jit_store::{CorpStore, RunOutcome};
use jit_sync::{run_sync, SyncError, SyncOptions};
use jit_wecom::{WecomClient, WecomConfig};
use std::sync::Arc;
use std::time::Duration;

async fn sim(cfg: SimConfig) -> SimHandle {
    Simulator::start(cfg).await.expect("simulator starts")
}

fn small() -> SimConfig {
    SimConfig {
        seed: 11,
        depts: 25,
        users: 200,
        dingtalk_orgs: 1,
        ..SimConfig::default()
    }
}

fn client(sim: &SimHandle) -> WecomClient {
    client_with(sim, |_| {})
}

fn client_with(sim: &SimHandle, tweak: impl FnOnce(&mut WecomConfig)) -> WecomClient {
    let info = sim.info();
    let mut cfg = WecomConfig::new(
        info.wecom.corp_id.clone(),
        info.wecom.agent_id.to_string(),
        info.wecom.secret.clone(),
    );
    cfg.api_base = info.wecom.api_base_url.clone();
    cfg.tuning.retry = RetryPolicy {
        base_delay: Duration::from_millis(20),
        throttle_delay: Duration::from_millis(50),
        ..RetryPolicy::default()
    };
    tweak(&mut cfg);
    WecomClient::new(cfg).expect("valid config")
}

fn corp(sim: &SimHandle) -> CorpRecord {
    CorpRecord {
        full_name: "corps.TestWecom".into(),
        title: "Test WeCom".into(),
        corp_type: "corps.QywxInnerType".into(),
        provider: Provider::Wecom,
        corp_id: sim.info().wecom.corp_id,
    }
}

async fn store(dir: &tempfile::TempDir) -> Arc<dyn CorpStore> {
    jit_store::open(dir.path().join("org.db").to_str().unwrap())
        .await
        .expect("store opens")
}

#[tokio::test]
async fn fetch_reads_exactly_the_simulated_org() {
    let sim = sim(small()).await;
    let c = client(&sim);
    let progress = CountingProgress::default();
    let snap = c
        .fetch_corp(&FetchOptions::default(), &progress)
        .await
        .unwrap();
    let truth = sim.wecom_truth();
    assert!(snap.is_complete(), "{:?}", snap.failures);
    assert_eq!(snap.depts, truth.depts);
    assert_eq!(snap.members, truth.members);
    assert_eq!(snap.roles, truth.roles);
    assert_eq!(
        snap.admins,
        truth.admins.map(|mut a| {
            a.sort();
            a
        })
    );
    let (found, done) = progress.tallies()["departments"];
    assert_eq!(found, truth.depts.len() as u64);
    assert_eq!(done, found);
    // One department/list, one user/list per department.
    let stats = c.stats();
    assert_eq!(stats.endpoints["/cgi-bin/department/list"].calls, 1);
    assert_eq!(
        stats.endpoints["/cgi-bin/user/list"].calls,
        truth.depts.len() as u64
    );
    assert_eq!(stats.token_refreshes, 1);
}

#[tokio::test]
async fn first_sync_stores_the_truth_and_second_sync_writes_nothing() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let c = client(&sim);
    let corp = corp(&sim);
    let opts = SyncOptions::default();
    let r1 = run_sync(&c, store.as_ref(), &corp, &opts, &NoProgress)
        .await
        .unwrap();
    assert_eq!(r1.outcome, RunOutcome::Applied);
    assert!(r1.rows_written > 0);
    assert!(r1.counts[&jit_org::ChangeKind::Created] > 0);
    let stored = store.load_snapshot(&corp.full_name).await.unwrap();
    assert_same_org(&stored, &as_synced(sim.wecom_truth()));

    let r2 = run_sync(&c, store.as_ref(), &corp, &opts, &NoProgress)
        .await
        .unwrap();
    assert!(r2.plan.is_empty(), "{:?}", r2.changes);
    assert_eq!(r2.rows_written, 0);
}

#[tokio::test]
async fn moves_renames_resignations_and_rehires_between_syncs_are_applied() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let c = client(&sim);
    let corp = corp(&sim);
    let opts = SyncOptions::default();
    run_sync(&c, store.as_ref(), &corp, &opts, &NoProgress)
        .await
        .unwrap();

    let truth = sim.wecom_truth();
    let mut active = truth
        .members
        .values()
        .filter(|m| m.status == MemberStatus::Active);
    let mover = active.next().unwrap().clone();
    let renamed = active.next().unwrap().clone();
    let leaver = active.next().unwrap().clone();
    let target_dept = *truth
        .depts
        .keys()
        .find(|d| !mover.depts.iter().any(|m| m.dept_id == **d))
        .unwrap();
    sim.mutate(
        OrgRef::Wecom,
        Mutation::MoveMember {
            userid: mover.member_id.clone(),
            depts: vec![MembershipSpec {
                dept_id: target_dept,
                order: 3,
                leader: false,
            }],
            main_dept: None,
        },
    )
    .unwrap();
    sim.mutate(
        OrgRef::Wecom,
        Mutation::rename_member(renamed.member_id.clone(), "Renamed Person"),
    )
    .unwrap();
    sim.mutate(
        OrgRef::Wecom,
        Mutation::RemoveMember {
            userid: leaver.member_id.clone(),
        },
    )
    .unwrap();
    let leaf = *truth
        .depts
        .keys()
        .rev()
        .find(|d| {
            !truth.depts.values().any(|x| x.parent_id == Some(**d))
                && !truth
                    .members
                    .values()
                    .any(|m| m.depts.iter().any(|x| x.dept_id == **d))
        })
        .or_else(|| truth.depts.keys().next_back())
        .unwrap();
    sim.mutate(
        OrgRef::Wecom,
        Mutation::RenameDept {
            dept_id: leaf,
            name: "Renamed Dept".into(),
        },
    )
    .unwrap();

    let r = run_sync(&c, store.as_ref(), &corp, &opts, &NoProgress)
        .await
        .unwrap();
    let kind_of = |id: &str| {
        r.changes
            .iter()
            .find(|c| c.id == id && c.object == jit_org::ObjectKind::Member)
            .map(|c| c.kind)
    };
    assert_eq!(kind_of(&mover.member_id), Some(jit_org::ChangeKind::Moved));
    assert_eq!(
        kind_of(&renamed.member_id),
        Some(jit_org::ChangeKind::Updated)
    );
    assert_eq!(
        kind_of(&leaver.member_id),
        Some(jit_org::ChangeKind::Offlined)
    );
    let stored = store.load_snapshot(&corp.full_name).await.unwrap();
    assert_eq!(
        stored.members[&leaver.member_id].status,
        MemberStatus::Offline
    );
    assert_eq!(stored.depts[&leaf].name, "Renamed Dept");
    let user_before = store
        .local_user_for(&Provider::Wecom, &corp.corp_id, &leaver.member_id, None)
        .await
        .unwrap();
    assert!(user_before.is_some());

    // Re-hire: the same userid comes back and gets the same local user.
    sim.mutate(
        OrgRef::Wecom,
        Mutation::add_member(
            leaver.member_id.clone(),
            leaver.name.clone(),
            vec![MembershipSpec::of(1)],
        ),
    )
    .unwrap();
    let r = run_sync(&c, store.as_ref(), &corp, &opts, &NoProgress)
        .await
        .unwrap();
    assert!(r
        .changes
        .iter()
        .any(|c| c.id == leaver.member_id && c.kind == jit_org::ChangeKind::Reactivated));
    let user_after = store
        .local_user_for(&Provider::Wecom, &corp.corp_id, &leaver.member_id, None)
        .await
        .unwrap();
    assert_eq!(user_before, user_after);
    let stored = store.load_snapshot(&corp.full_name).await.unwrap();
    assert_same_org(&stored, &as_synced(sim.wecom_truth()));
}

#[tokio::test]
async fn removed_department_is_removed_locally() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let c = client(&sim);
    let corp = corp(&sim);
    run_sync(
        &c,
        store.as_ref(),
        &corp,
        &SyncOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    let out = sim
        .mutate(OrgRef::Wecom, Mutation::add_dept(1, "Short-lived"))
        .unwrap();
    let id = out.dept_id.unwrap();
    run_sync(
        &c,
        store.as_ref(),
        &corp,
        &SyncOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(store
        .load_snapshot(&corp.full_name)
        .await
        .unwrap()
        .depts
        .contains_key(&id));
    sim.mutate(OrgRef::Wecom, Mutation::RemoveDept { dept_id: id })
        .unwrap();
    let r = run_sync(
        &c,
        store.as_ref(),
        &corp,
        &SyncOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(r.plan.remove_depts, vec![id]);
    assert!(!store
        .load_snapshot(&corp.full_name)
        .await
        .unwrap()
        .depts
        .contains_key(&id));
}

#[tokio::test]
async fn token_invalidated_mid_sync_is_refetched_once() {
    let sim = sim(SimConfig {
        latency_ms: 5,
        ..small()
    })
    .await;
    let c = client(&sim);
    // Warm the token, then revoke it mid-walk: when the members phase starts,
    // the department tree has been read with the old token and every
    // concurrent user/list, tag and admin call is still to be sent with it.
    // (A timer would race the walk on a fast machine.)
    c.check_credentials().await.unwrap();
    struct RevokeAtMembers<'a> {
        sim: &'a SimHandle,
        revoked: std::sync::atomic::AtomicBool,
    }
    impl jit_sync::Progress for RevokeAtMembers<'_> {
        fn on_event(&self, event: &jit_sync::ProgressEvent) {
            if matches!(event, jit_sync::ProgressEvent::Phase(p) if p == "members")
                && !self.revoked.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                self.sim.invalidate_tokens();
            }
        }
    }
    let progress = RevokeAtMembers {
        sim: &sim,
        revoked: false.into(),
    };
    let snap = c
        .fetch_corp(&FetchOptions::default(), &progress)
        .await
        .unwrap();
    assert!(
        progress.revoked.into_inner(),
        "the walk reached the members phase"
    );
    assert!(snap.is_complete(), "{:?}", snap.failures);
    assert_eq!(snap.members, sim.wecom_truth().members);
    assert_eq!(
        c.stats().token_refreshes,
        2,
        "one refresh for all failing calls"
    );
}

#[tokio::test]
async fn injected_faults_are_retried_until_the_read_is_complete() {
    let sim = sim(SimConfig {
        fault_rate: 0.15,
        fault_kinds: vec![
            FaultKind::Busy,
            FaultKind::Http5xx,
            FaultKind::Drop,
            FaultKind::Malformed,
        ],
        ..small()
    })
    .await;
    let c = client_with(&sim, |cfg| {
        cfg.tuning.retry.max_retries = 8;
    });
    let snap = c
        .fetch_corp(&FetchOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert!(snap.is_complete(), "{:?}", snap.failures);
    assert_eq!(snap.members, sim.wecom_truth().members);
    let retries: u64 = c.stats().endpoints.values().map(|e| e.retries).sum();
    assert!(
        retries > 0,
        "faults were injected, so something was retried"
    );
}

#[tokio::test]
async fn stalled_answers_time_out_and_are_retried() {
    let sim = sim(SimConfig {
        fault_rate: 0.05,
        fault_kinds: vec![FaultKind::Stall],
        stall_ms: 5_000,
        ..small()
    })
    .await;
    let c = client_with(&sim, |cfg| {
        cfg.tuning.timeout = Duration::from_millis(300);
        cfg.tuning.retry.max_retries = 8;
    });
    let snap = c
        .fetch_corp(&FetchOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert!(snap.is_complete(), "{:?}", snap.failures);
    assert_eq!(snap.members, sim.wecom_truth().members);
}

#[tokio::test]
async fn a_failed_department_read_makes_the_sync_offline_nobody() {
    let sim = sim(SimConfig {
        fault_rate: 0.3,
        fault_kinds: vec![FaultKind::Busy],
        ..small()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let patient = client_with(&sim, |cfg| cfg.tuning.retry.max_retries = 12);
    let corp = corp(&sim);
    let first = run_sync(
        &patient,
        store.as_ref(),
        &corp,
        &SyncOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(first.is_complete(), "{:?}", first.failures);
    let leaver = first_active(&sim.wecom_truth());
    sim.mutate(
        OrgRef::Wecom,
        Mutation::RemoveMember {
            userid: leaver.clone(),
        },
    )
    .unwrap();
    // A client that gives up at the first "system busy".
    let impatient = client_with(&sim, |cfg| cfg.tuning.retry.max_retries = 0);
    match run_sync(
        &impatient,
        store.as_ref(),
        &corp,
        &SyncOptions::default(),
        &NoProgress,
    )
    .await
    {
        Ok(r) if !r.is_complete() => {
            assert!(r.plan.offline_members.is_empty());
            assert!(r
                .changes
                .iter()
                .any(|c| c.id == leaver && c.kind == jit_org::ChangeKind::Skipped));
            assert!(r.notes.iter().any(|n| n.contains("incomplete")));
            let stored = store.load_snapshot(&corp.full_name).await.unwrap();
            assert_eq!(stored.members[&leaver].status, MemberStatus::Active);
        }
        // By chance nothing failed: then the leaver is rightly offlined.
        Ok(r) => assert_eq!(r.plan.offline_members, vec![leaver.clone()]),
        // The department tree itself failed: nothing was written.
        Err(SyncError::Fetch { .. }) => {
            let stored = store.load_snapshot(&corp.full_name).await.unwrap();
            assert_eq!(stored.members[&leaver].status, MemberStatus::Active);
            let runs = store.list_runs(&corp.full_name, 1).await.unwrap();
            assert_eq!(runs[0].outcome, RunOutcome::Failed);
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test]
async fn mass_resignation_is_refused_unless_forced() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let c = client(&sim);
    let corp = corp(&sim);
    run_sync(
        &c,
        store.as_ref(),
        &corp,
        &SyncOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    let truth = sim.wecom_truth();
    let victims: Vec<String> = active_members(&truth, truth.members.len() / 4);
    for v in &victims {
        sim.mutate(OrgRef::Wecom, Mutation::RemoveMember { userid: v.clone() })
            .unwrap();
    }
    let err = run_sync(
        &c,
        store.as_ref(),
        &corp,
        &SyncOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SyncError::Refused { .. }), "{msg}");
    assert!(msg.contains(&format!("offline {}", victims.len())), "{msg}");
    assert!(msg.contains("--force"), "{msg}");
    let runs = store.list_runs(&corp.full_name, 1).await.unwrap();
    assert_eq!(runs[0].outcome, RunOutcome::Refused);
    let stored = store.load_snapshot(&corp.full_name).await.unwrap();
    assert_eq!(stored.members[&victims[0]].status, MemberStatus::Active);

    let forced = SyncOptions {
        force: true,
        ..SyncOptions::default()
    };
    let r = run_sync(&c, store.as_ref(), &corp, &forced, &NoProgress)
        .await
        .unwrap();
    assert_eq!(r.plan.offline_members.len(), victims.len());
    assert!(r.notes.iter().any(|n| n.contains("forced")));
}

#[tokio::test]
async fn dry_run_records_the_plan_and_writes_nothing() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let c = client(&sim);
    let corp = corp(&sim);
    let dry = SyncOptions {
        dry_run: true,
        ..SyncOptions::default()
    };
    let r = run_sync(&c, store.as_ref(), &corp, &dry, &NoProgress)
        .await
        .unwrap();
    assert_eq!(r.outcome, RunOutcome::DryRun);
    assert!(!r.plan.is_empty());
    assert_eq!(r.rows_written, 0);
    let stored = store.load_snapshot(&corp.full_name).await.unwrap();
    assert!(stored.members.is_empty());
    let runs = store.list_runs(&corp.full_name, 5).await.unwrap();
    assert_eq!(runs[0].outcome, RunOutcome::DryRun);
    assert_eq!(
        store.run_changes(runs[0].run_id).await.unwrap().len(),
        r.changes.len()
    );
}

#[tokio::test]
async fn sync_scope_reads_and_writes_only_the_chosen_subtree() {
    let sim = sim(small()).await;
    let truth = sim.wecom_truth();
    // A child of the root with the most descendants.
    let scope_root = *truth
        .depts
        .values()
        .filter(|d| d.parent_id == Some(1))
        .map(|d| &d.dept_id)
        .next()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let c = client(&sim);
    let corp = corp(&sim);
    let mut opts = SyncOptions::default();
    opts.fetch.scope = vec![scope_root];
    let r = run_sync(&c, store.as_ref(), &corp, &opts, &NoProgress)
        .await
        .unwrap();
    let stored = store.load_snapshot(&corp.full_name).await.unwrap();
    assert!(stored.depts.contains_key(&scope_root));
    assert!(
        !stored.depts.contains_key(&1),
        "the root is outside the scope"
    );
    assert!(r.upstream_depts < truth.depts.len());
    for m in stored.members.values() {
        assert!(!m.depts.is_empty());
        assert!(m
            .depts
            .iter()
            .all(|d| stored.depts.contains_key(&d.dept_id)));
    }
    // A second scoped sync is empty.
    let r2 = run_sync(&c, store.as_ref(), &corp, &opts, &NoProgress)
        .await
        .unwrap();
    assert!(r2.plan.is_empty(), "{:?}", r2.changes);
}

#[tokio::test]
async fn withheld_private_fields_are_unknown_and_never_wipe_stored_values() {
    let sim = sim(SimConfig {
        wecom_withhold_private_fields: true,
        ..small()
    })
    .await;
    let c = client(&sim);
    let snap = c
        .fetch_corp(&FetchOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert!(snap
        .members
        .values()
        .all(|m| m.mobile.is_none() && m.email.is_none()));
    assert_eq!(snap.members, sim.wecom_truth().members);
}

#[tokio::test]
async fn bad_secret_fails_with_the_errcode_and_without_the_secret() {
    let sim = sim(small()).await;
    let c = client_with(&sim, |cfg| cfg.secret = "WRONG-SECRET-VALUE".into());
    let err = c
        .fetch_corp(&FetchOptions::default(), &NoProgress)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("40001"), "{msg}");
    assert!(msg.contains("/cgi-bin/gettoken"), "{msg}");
    assert!(!msg.contains("WRONG-SECRET-VALUE"), "{msg}");
    assert!(!format!("{err:?}").contains("WRONG-SECRET-VALUE"));
}

#[tokio::test]
async fn sync_into_postgres_stores_the_truth_and_is_idempotent() {
    let url = std::env::var("JIT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let schema = format!(
        "jit_wecom_sync_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let store = jit_store::open_postgres_in_schema(&url, &schema)
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (set JIT_TEST_PG_URL to point elsewhere)");
    let sim = sim(small()).await;
    let c = client(&sim);
    let corp = corp(&sim);
    let st = store.clone();
    let result = async move {
        let store = st;
        let r1 = run_sync(
            &c,
            store.as_ref(),
            &corp,
            &SyncOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap();
        assert!(r1.rows_written > 0);
        let stored = store.load_snapshot(&corp.full_name).await.unwrap();
        assert_same_org(&stored, &as_synced(sim.wecom_truth()));
        let r2 = run_sync(
            &c,
            store.as_ref(),
            &corp,
            &SyncOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap();
        assert!(r2.plan.is_empty(), "{:?}", r2.changes);
        assert_eq!(r2.rows_written, 0);
    };
    // Drop the schema whatever happened, then report.
    let outcome = tokio::spawn(result).await;
    drop(store);
    jit_store::drop_postgres_schema(&url, &schema)
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

#[tokio::test]
async fn login_code_is_exchanged_for_the_userid_once() {
    let sim = sim(small()).await;
    let c = client(&sim);
    let who = sim.wecom_truth().members.keys().next().unwrap().clone();
    let code = sim.issue_login_code(OrgRef::Wecom, &who).unwrap();
    let id = c.get_user_info(&code).await.unwrap();
    assert_eq!(id.user_id.as_deref(), Some(who.as_str()));
    let reused = c.get_user_info(&code).await.unwrap_err();
    assert_eq!(reused.errcode(), Some(40029));
}

#[tokio::test]
#[ignore = "benchmark: 20 000 members, prints figures"]
async fn benchmark_full_sync_of_twenty_thousand_members() {
    let sim = sim(SimConfig {
        seed: 3,
        depts: 1000,
        users: 20_000,
        dingtalk_orgs: 1,
        dingtalk_depts: Some(2),
        dingtalk_users: Some(5),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let c = client(&sim);
    let corp = corp(&sim);
    let r = run_sync(
        &c,
        store.as_ref(),
        &corp,
        &SyncOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    println!(
        "first sync: {} members, {} depts, fetch {} ms, plan {} ms, apply {} ms, {} rows, {} calls",
        r.upstream_members,
        r.upstream_depts,
        r.durations.fetch_ms,
        r.durations.plan_ms,
        r.durations.apply_ms,
        r.rows_written,
        r.fetch_stats.total_calls()
    );
    let r = run_sync(
        &c,
        store.as_ref(),
        &corp,
        &SyncOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    println!(
        "second sync: fetch {} ms, load {} ms, plan {} ms, {} rows",
        r.durations.fetch_ms, r.durations.load_ms, r.durations.plan_ms, r.rows_written
    );
    assert_eq!(r.rows_written, 0);
}
