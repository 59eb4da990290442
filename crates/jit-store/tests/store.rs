//! One store test suite, run against SQLite and against PostgreSQL.
//!
//! Each behaviour is an async fn taking a fresh [`TestStore`]; the
//! `suite!` macro instantiates every one of them once per backend
//! (`sqlite::<name>` and `postgres::<name>`).

use crate::common;

use common::*;
use jit_org::{Admin, ChangeKind, Member, MemberStatus, ObjectKind, Provider, SyncPlan};
use jit_store::{
    AdminRow, DriverError, Origin, RoleMemberRow, RunOutcome, StoreError, StoreErrorKind, SyncRun,
};
use std::time::{Duration, Instant};

use crate::common::suite;

suite!(
    migrations_are_idempotent,
    newer_schema_is_refused_and_nothing_is_touched,
    applied_snapshot_loads_back_identically,
    empty_plan_writes_no_org_rows,
    failure_late_in_apply_rolls_everything_back,
    offlined_member_keeps_its_binding,
    reactivated_member_gets_the_same_local_user,
    dingtalk_union_id_across_two_orgs_is_one_user_with_two_memberships,
    dingtalk_member_without_union_id_falls_back_to_corp_and_member,
    identity_conflicts_are_reported_not_merged,
    wecom_identity_is_corp_and_member,
    unknown_fields_never_wipe_known_values,
    signatures_are_saved_per_member,
    admins_are_replaced_and_read_in_order,
    set_member_roles_replaces_and_returns_rows,
    subtree_query_follows_department_moves,
    runs_are_recorded_with_their_changes,
    local_corp_data_has_the_documented_shape,
    offline_members_changes_only_that_org,
    bulk_register_binds_without_member_rows,
    removed_department_takes_its_memberships,
    moved_member_has_only_its_new_memberships,
    unknown_org_is_reported,
    begun_run_is_stored_as_running,
    a_runs_kind_and_its_missed_count_are_kept,
    a_runs_calls_and_throttling_waits_are_kept_when_it_is_finished,
    applying_a_begun_run_finishes_it_instead_of_adding_one,
    recording_a_begun_run_finishes_it_with_its_change_lines,
    finishing_a_run_that_is_not_stored_is_invalid,
    get_run_of_an_unknown_id_is_none,
    second_sync_lock_of_a_corp_is_busy_naming_the_running_run,
    busy_sync_lock_without_a_running_run_names_only_the_corp,
    sync_lock_of_another_corp_is_not_blocked,
    dropping_the_sync_lock_frees_it,
    waiting_sync_lock_gets_it_when_the_holder_drops_it,
    taking_the_sync_lock_fails_runs_left_running,
    local_corp_data_lists_members_who_are_not_active_yet,
    local_corp_data_lists_members_who_left_only_when_asked,
    upstream_role_holdings_cannot_be_removed_locally,
    local_role_holding_and_admin_survive_a_sync,
    a_sync_plan_never_removes_local_rows,
    a_sync_never_sees_local_rows,
    a_role_removed_upstream_takes_its_local_holdings,
    a_member_in_an_unknown_department_is_an_invalid_plan,
    a_duplicate_key_is_a_unique_violation_that_keeps_the_driver_error,
    a_foreign_key_violation_is_classified,
    a_busy_sync_lock_is_of_kind_busy,
    the_first_login_key_is_stored_once_and_rotation_keeps_older_keys,
    a_revoked_session_is_known_as_revoked,
    a_login_state_is_taken_once_and_not_after_it_expired,
);

async fn migrations_are_idempotent(t: &TestStore) {
    let (_, snap) = seeded(t).await;
    let before = t.fingerprint().await;
    for _ in 0..2 {
        let again = t.reopen().await.unwrap();
        assert_eq!(again.load_snapshot("corps.Acme").await.unwrap(), snap);
    }
    assert_eq!(t.fingerprint().await, before);
    assert_eq!(
        t.scalar("SELECT COUNT(*) FROM jit_schema_version").await,
        jit_store::schema_version()
    );
}

async fn newer_schema_is_refused_and_nothing_is_touched(t: &TestStore) {
    seeded(t).await;
    let newer = jit_store::schema_version() + 1;
    t.exec(&format!(
        "INSERT INTO jit_schema_version (version, applied_at) VALUES ({newer}, 0)"
    ))
    .await;
    let before = t.fingerprint().await;
    match t.reopen().await {
        Err(StoreError::SchemaTooNew {
            found,
            known,
            location,
        }) => {
            assert_eq!(found, newer);
            assert_eq!(known, jit_store::schema_version());
            assert!(!location.is_empty());
        }
        Err(e) => panic!("expected SchemaTooNew, got {e}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
    assert_eq!(t.fingerprint().await, before);
    assert_eq!(
        t.scalar("SELECT MAX(version) FROM jit_schema_version")
            .await,
        newer
    );
}

async fn applied_snapshot_loads_back_identically(t: &TestStore) {
    let (_, snap) = seeded(t).await;
    let loaded = t.store.load_snapshot("corps.Acme").await.unwrap();
    assert_eq!(loaded, snap);
    let carol = &loaded.members["carol"];
    assert_eq!(carol.mobile, None, "never-known stays unknown");
    assert_eq!(carol.email.as_deref(), Some(""), "known-empty stays empty");
    // Extension attributes keep their key order.
    assert_eq!(
        loaded.members["alice"].extra.to_string(),
        snap.members["alice"].extra.to_string()
    );
}

async fn empty_plan_writes_no_org_rows(t: &TestStore) {
    let (corp, _) = seeded(t).await;
    let before = t.org_rows().await;
    let runs = t.scalar("SELECT COUNT(*) FROM sync_runs").await;
    let report = apply(t, &corp, &SyncPlan::default()).await;
    assert_eq!(report.rows_written, 0);
    assert_eq!(t.org_rows().await, before);
    assert_eq!(t.scalar("SELECT COUNT(*) FROM sync_runs").await, runs + 1);
}

async fn failure_late_in_apply_rolls_everything_back(t: &TestStore) {
    let (corp, snap) = seeded(t).await;
    let users = t.store.user_count().await.unwrap();
    let runs = t.store.list_runs("corps.Acme", 100).await.unwrap();
    let before = t.fingerprint().await;
    let mut plan = SyncPlan::default();
    plan.upsert_depts
        .push(jit_org::Dept::new(5, Some(1), "New"));
    for i in 0..500 {
        let mut m = Member::new(format!("new{i:03}"), format!("New {i}"));
        m.depts.push(jit_org::DeptMembership {
            dept_id: 5,
            order: i,
            is_leader: false,
        });
        plan.upsert_members.push(m);
    }
    let mut renamed = snap.members["alice"].clone();
    renamed.name = "Alice Renamed".into();
    plan.upsert_members.push(renamed);
    // The very last membership points at a department that does not exist.
    let mut bad = Member::new("zz-last", "Late Failure");
    bad.depts.push(jit_org::DeptMembership {
        dept_id: 999,
        order: 0,
        is_leader: false,
    });
    plan.upsert_members.push(bad);
    plan.offline_members.push("bob".into());
    let err = t
        .store
        .apply_plan(&corp, &plan, &run_for(&corp))
        .await
        .expect_err("a membership in a missing department must fail");
    let msg = err.to_string();
    assert!(msg.contains("apply plan for corps.Acme"), "{msg}");
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(t.store.load_snapshot("corps.Acme").await.unwrap(), snap);
    assert_eq!(t.store.user_count().await.unwrap(), users);
    assert_eq!(t.store.list_runs("corps.Acme", 100).await.unwrap(), runs);
    assert_eq!(t.fingerprint().await, before);
    // The store is still usable after the rollback.
    apply(t, &corp, &SyncPlan::default()).await;
}

async fn offlined_member_keeps_its_binding(t: &TestStore) {
    let (corp, _) = seeded(t).await;
    let user = t
        .store
        .local_user_for(&Provider::Wecom, &corp.corp_id, "alice", None)
        .await
        .unwrap()
        .expect("alice is bound");
    let plan = SyncPlan {
        offline_members: vec!["alice".into()],
        ..SyncPlan::default()
    };
    let report = apply(t, &corp, &plan).await;
    assert_eq!(report.rows_written, 1);
    let snap = t.store.load_snapshot("corps.Acme").await.unwrap();
    assert_eq!(snap.members["alice"].status, MemberStatus::Offline);
    assert_eq!(
        snap.members["alice"].depts.len(),
        1,
        "memberships kept as history"
    );
    assert_eq!(
        t.store
            .local_user_for(&Provider::Wecom, &corp.corp_id, "alice", None)
            .await
            .unwrap(),
        Some(user)
    );
    assert_eq!(
        t.store.memberships_of_user(user).await.unwrap(),
        vec![(
            "corps.Acme".to_string(),
            "alice".to_string(),
            MemberStatus::Offline
        )]
    );
}

async fn reactivated_member_gets_the_same_local_user(t: &TestStore) {
    let (corp, snap) = seeded(t).await;
    let dave = t
        .store
        .local_user_for(&Provider::Wecom, &corp.corp_id, "dave", None)
        .await
        .unwrap()
        .expect("offline dave was bound when first seen");
    let users = t.store.user_count().await.unwrap();
    let mut back = snap.members["dave"].clone();
    back.status = MemberStatus::Active;
    apply(t, &corp, &members_plan(vec![back])).await;
    assert_eq!(t.store.user_count().await.unwrap(), users);
    assert_eq!(
        t.store.memberships_of_user(dave).await.unwrap(),
        vec![(
            "corps.Acme".to_string(),
            "dave".to_string(),
            MemberStatus::Active
        )]
    );
}

async fn dingtalk_union_id_across_two_orgs_is_one_user_with_two_memberships(t: &TestStore) {
    let a = dingtalk_corp("corps.DingA", "dingA");
    let b = dingtalk_corp("corps.DingB", "dingB");
    let mut in_a = Member::new("a-01", "Wang Wei");
    in_a.union_id = Some("U-wangwei".into());
    let mut in_b = Member::new("b-77", "Wang Wei");
    in_b.union_id = Some("U-wangwei".into());
    let ra = apply(t, &a, &members_plan(vec![in_a])).await;
    let rb = apply(t, &b, &members_plan(vec![in_b])).await;
    assert!(ra.conflicts.is_empty() && rb.conflicts.is_empty());
    assert_eq!(t.store.user_count().await.unwrap(), 1);
    let user = t
        .store
        .local_user_for(&Provider::DingTalk, "dingB", "b-77", Some("U-wangwei"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        t.store.memberships_of_user(user).await.unwrap(),
        vec![
            (
                "corps.DingA".to_string(),
                "a-01".to_string(),
                MemberStatus::Active
            ),
            (
                "corps.DingB".to_string(),
                "b-77".to_string(),
                MemberStatus::Active
            ),
        ]
    );
}

async fn dingtalk_member_without_union_id_falls_back_to_corp_and_member(t: &TestStore) {
    let a = dingtalk_corp("corps.DingA", "dingA");
    let m = Member::new("nounion", "No Union");
    apply(t, &a, &members_plan(vec![m.clone()])).await;
    let user = t
        .store
        .local_user_for(&Provider::DingTalk, "dingA", "nounion", None)
        .await
        .unwrap()
        .expect("bound by (corp, member)");
    // When the unionId shows up later it lands on the same binding.
    let mut known = m;
    known.union_id = Some("U-late".into());
    let report = apply(t, &a, &members_plan(vec![known])).await;
    assert!(report.conflicts.is_empty());
    assert_eq!(
        t.store
            .local_user_for(&Provider::DingTalk, "other-corp", "x", Some("U-late"))
            .await
            .unwrap(),
        Some(user)
    );
    assert_eq!(t.store.user_count().await.unwrap(), 1);
}

async fn identity_conflicts_are_reported_not_merged(t: &TestStore) {
    let a = dingtalk_corp("corps.DingA", "dingA");
    let mut x = Member::new("x", "X");
    x.union_id = Some("U1".into());
    let mut y = Member::new("y", "Y");
    y.union_id = Some("U2".into());
    apply(t, &a, &members_plan(vec![x.clone(), y])).await;
    let ux = t
        .store
        .local_user_for(&Provider::DingTalk, "dingA", "x", None)
        .await
        .unwrap()
        .unwrap();
    // The platform now claims x is the person U2 (already user of y).
    x.union_id = Some("U2".into());
    let report = apply(t, &a, &members_plan(vec![x])).await;
    assert_eq!(report.conflicts.len(), 1);
    assert_eq!(report.conflicts[0].member_id, "x");
    assert!(report.conflicts[0].message.contains("U1"));
    assert_eq!(
        t.store
            .local_user_for(&Provider::DingTalk, "dingA", "x", None)
            .await
            .unwrap(),
        Some(ux),
        "x keeps its binding"
    );
    // Two member ids of one org claiming the same person: the second is not merged.
    let b = dingtalk_corp("corps.DingB", "dingB");
    let mut p = Member::new("p", "P");
    p.union_id = Some("U3".into());
    let mut q = Member::new("q", "Q");
    q.union_id = Some("U3".into());
    let report = apply(t, &b, &members_plan(vec![p, q])).await;
    assert_eq!(report.conflicts.len(), 1);
    assert_eq!(report.conflicts[0].member_id, "q");
    assert_eq!(
        t.store
            .local_user_for(&Provider::DingTalk, "dingB", "q", None)
            .await
            .unwrap(),
        None
    );
    let view = t.store.local_corp_data("corps.DingB", false).await.unwrap();
    let q_row = view["userList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["memberId"] == "q")
        .unwrap();
    assert!(q_row["userId"].is_null());
    assert_eq!(t.store.user_count().await.unwrap(), 3);
}

async fn wecom_identity_is_corp_and_member(t: &TestStore) {
    let a = wecom_corp("corps.A");
    let b = wecom_corp("corps.B");
    let same_id = Member::new("zhangsan", "Zhang San");
    apply(t, &a, &members_plan(vec![same_id.clone()])).await;
    apply(t, &b, &members_plan(vec![same_id])).await;
    let ua = t
        .store
        .local_user_for(&Provider::Wecom, &a.corp_id, "zhangsan", None)
        .await
        .unwrap();
    let ub = t
        .store
        .local_user_for(&Provider::Wecom, &b.corp_id, "zhangsan", None)
        .await
        .unwrap();
    assert!(ua.is_some() && ub.is_some());
    assert_ne!(ua, ub, "the same userid in two WeCom corps is two people");
}

async fn unknown_fields_never_wipe_known_values(t: &TestStore) {
    let (corp, snap) = seeded(t).await;
    let mut alice = Member::new("alice", "Alice");
    alice.position = Some("Director".into());
    alice.depts = snap.members["alice"].depts.clone();
    let mut carol = Member::new("carol", "Carol");
    carol.mobile = Some("13900000000".into());
    carol.depts = snap.members["carol"].depts.clone();
    apply(t, &corp, &members_plan(vec![alice, carol])).await;
    let loaded = t.store.load_snapshot("corps.Acme").await.unwrap();
    let a = &loaded.members["alice"];
    let was = &snap.members["alice"];
    assert_eq!(a.position.as_deref(), Some("Director"));
    assert_eq!(a.mobile, was.mobile);
    assert_eq!(a.email, was.email);
    assert_eq!(a.avatar, was.avatar);
    assert_eq!(a.job_number, was.job_number);
    assert_eq!(a.hired_date, was.hired_date);
    assert_eq!(a.main_dept_id, was.main_dept_id);
    assert_eq!(a.extra, was.extra);
    let c = &loaded.members["carol"];
    assert_eq!(c.mobile.as_deref(), Some("13900000000"));
    assert_eq!(c.email.as_deref(), Some(""));
    assert_eq!(c.avatar, None);
}

async fn signatures_are_saved_per_member(t: &TestStore) {
    seeded(t).await;
    assert_eq!(
        t.store.get_signature("corps.Acme", "alice").await.unwrap(),
        None
    );
    t.store
        .save_signature("corps.Acme", "alice", "https://s/alice.png")
        .await
        .unwrap();
    t.store
        .save_signature("corps.Acme", "alice", "https://s/alice-2.png")
        .await
        .unwrap();
    assert_eq!(
        t.store
            .get_signature("corps.Acme", "alice")
            .await
            .unwrap()
            .as_deref(),
        Some("https://s/alice-2.png")
    );
    assert_eq!(
        t.store.get_signature("corps.Acme", "bob").await.unwrap(),
        None
    );
    assert!(matches!(
        t.store.save_signature("corps.Acme", "nobody", "x").await,
        Err(StoreError::UnknownMember { .. })
    ));
}

/// An admin row as `get_admins` returns it.
fn admin_row(member_id: &str, level: i32, origin: Origin) -> AdminRow {
    AdminRow {
        member_id: member_id.into(),
        level,
        origin,
    }
}

/// A role row as `set_member_roles` returns it.
fn role_row(member_id: &str, role_id: &str, origin: Origin) -> RoleMemberRow {
    RoleMemberRow {
        member_id: member_id.into(),
        role_id: role_id.into(),
        origin,
    }
}

/// Admins without levels, as `setAdmin` passes them.
fn local_admins(ids: &[&str]) -> Vec<Admin> {
    ids.iter()
        .map(|m| Admin {
            member_id: m.to_string(),
            level: 0,
        })
        .collect()
}

async fn admins_are_replaced_and_read_in_order(t: &TestStore) {
    let (corp, _) = seeded(t).await;
    let upstream = vec![
        admin_row("carol", 1, Origin::Upstream),
        admin_row("alice", 2, Origin::Upstream),
    ];
    assert_eq!(t.store.get_admins("corps.Acme").await.unwrap(), upstream);
    // A plan without an admin list keeps the stored one.
    apply(t, &corp, &members_plan(vec![Member::new("bob", "Bob")])).await;
    assert_eq!(t.store.get_admins("corps.Acme").await.unwrap(), upstream);
    t.store
        .set_admins("corps.Acme", &local_admins(&["bob", "alice"]))
        .await
        .unwrap();
    let both = [
        upstream.clone(),
        vec![
            admin_row("bob", 0, Origin::Local),
            admin_row("alice", 0, Origin::Local),
        ],
    ]
    .concat();
    assert_eq!(t.store.get_admins("corps.Acme").await.unwrap(), both);
    assert!(matches!(
        t.store
            .set_admins("corps.Acme", &local_admins(&["ghost"]))
            .await,
        Err(StoreError::UnknownMember { .. })
    ));
    assert_eq!(t.store.get_admins("corps.Acme").await.unwrap(), both);
    t.store.set_admins("corps.Acme", &[]).await.unwrap();
    assert_eq!(
        t.store.get_admins("corps.Acme").await.unwrap(),
        upstream,
        "clearing the local list leaves the upstream one"
    );
}

async fn set_member_roles_replaces_and_returns_rows(t: &TestStore) {
    seeded(t).await;
    let rows = t
        .store
        .set_member_roles("corps.Acme", "carol", &["r2".into(), "r1".into()])
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            role_row("carol", "r1", Origin::Local),
            role_row("carol", "r2", Origin::Local)
        ]
    );
    let err = t
        .store
        .set_member_roles("corps.Acme", "carol", &["r404".into()])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(ref m) if m.contains("r404")));
    let set = t.store.local_corp_data("corps.Acme", false).await.unwrap()["roleMemberSet"].clone();
    assert!(
        set.as_array()
            .unwrap()
            .contains(&serde_json::json!({"memberId": "carol", "roleId": "r2", "origin": "local"})),
        "failed call changed nothing: {set}"
    );
    assert!(t
        .store
        .set_member_roles("corps.Acme", "carol", &[])
        .await
        .unwrap()
        .is_empty());
    let snap = t.store.load_snapshot("corps.Acme").await.unwrap();
    assert_eq!(
        snap.roles["r1"].members,
        vec!["alice".to_string(), "bob".to_string()]
    );
}

async fn upstream_role_holdings_cannot_be_removed_locally(t: &TestStore) {
    seeded(t).await;
    // alice holds r1 upstream.
    let rows = t
        .store
        .set_member_roles("corps.Acme", "alice", &["r2".into()])
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            role_row("alice", "r1", Origin::Upstream),
            role_row("alice", "r2", Origin::Local)
        ]
    );
    let rows = t
        .store
        .set_member_roles("corps.Acme", "alice", &["r1".into()])
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            role_row("alice", "r1", Origin::Upstream),
            role_row("alice", "r1", Origin::Local)
        ],
        "a role may be held both ways"
    );
}

async fn local_role_holding_and_admin_survive_a_sync(t: &TestStore) {
    let (corp, snap) = seeded(t).await;
    t.store
        .set_member_roles("corps.Acme", "carol", &["r1".into()])
        .await
        .unwrap();
    t.store
        .set_admins("corps.Acme", &local_admins(&["bob"]))
        .await
        .unwrap();
    // The platform now says r1 is held by bob alone and alice is the only admin.
    let mut r1 = snap.roles["r1"].clone();
    r1.members = vec!["bob".into()];
    let plan = SyncPlan {
        upsert_roles: vec![r1],
        set_admins: Some(vec![Admin {
            member_id: "alice".into(),
            level: 1,
        }]),
        ..SyncPlan::default()
    };
    apply(t, &corp, &plan).await;
    let v = t.store.local_corp_data("corps.Acme", false).await.unwrap();
    assert_eq!(
        v["roleMemberSet"],
        serde_json::json!([
            {"memberId": "bob", "roleId": "r1", "origin": "upstream"},
            {"memberId": "carol", "roleId": "r1", "origin": "local"},
        ])
    );
    assert_eq!(
        v["adminList"],
        serde_json::json!([
            {"memberId": "alice", "level": 1, "origin": "upstream"},
            {"memberId": "bob", "level": 0, "origin": "local"},
        ])
    );
}

async fn a_sync_plan_never_removes_local_rows(t: &TestStore) {
    let (corp, snap) = seeded(t).await;
    t.store
        .set_member_roles("corps.Acme", "alice", &["r1".into(), "r2".into()])
        .await
        .unwrap();
    t.store
        .set_admins("corps.Acme", &local_admins(&["carol"]))
        .await
        .unwrap();
    // Every upstream holder and admin goes away.
    let mut r1 = snap.roles["r1"].clone();
    r1.members.clear();
    let mut r2 = snap.roles["r2"].clone();
    r2.members.clear();
    let plan = SyncPlan {
        upsert_roles: vec![r1, r2],
        set_admins: Some(Vec::new()),
        ..SyncPlan::default()
    };
    apply(t, &corp, &plan).await;
    let rows = t
        .store
        .set_member_roles("corps.Acme", "alice", &["r1".into(), "r2".into()])
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            role_row("alice", "r1", Origin::Local),
            role_row("alice", "r2", Origin::Local)
        ]
    );
    assert_eq!(
        t.store.get_admins("corps.Acme").await.unwrap(),
        vec![admin_row("carol", 0, Origin::Local)]
    );
}

async fn a_sync_never_sees_local_rows(t: &TestStore) {
    let (_, snap) = seeded(t).await;
    t.store
        .set_member_roles("corps.Acme", "carol", &["r2".into()])
        .await
        .unwrap();
    t.store
        .set_admins("corps.Acme", &local_admins(&["bob"]))
        .await
        .unwrap();
    let loaded = t.store.load_snapshot("corps.Acme").await.unwrap();
    assert_eq!(loaded, snap, "the snapshot is the upstream state only");
}

async fn a_role_removed_upstream_takes_its_local_holdings(t: &TestStore) {
    let (corp, _) = seeded(t).await;
    t.store
        .set_member_roles("corps.Acme", "carol", &["r2".into()])
        .await
        .unwrap();
    let plan = SyncPlan {
        remove_roles: vec!["r2".into()],
        ..SyncPlan::default()
    };
    apply(t, &corp, &plan).await;
    let v = t.store.local_corp_data("corps.Acme", false).await.unwrap();
    assert!(!v["roleMemberSet"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["roleId"] == "r2"));
}

async fn subtree_query_follows_department_moves(t: &TestStore) {
    let (corp, snap) = seeded(t).await;
    // dave is offline: history only, not in the subtree.
    assert_eq!(
        t.store.subtree_members("corps.Acme", 1).await.unwrap(),
        ["alice", "bob", "carol"]
    );
    assert_eq!(
        t.store.subtree_members("corps.Acme", 2).await.unwrap(),
        ["alice", "bob"]
    );
    assert_eq!(
        t.store.subtree_members("corps.Acme", 4).await.unwrap(),
        ["bob"]
    );
    // Move 2 (with 3 under it) below 4.
    let mut moved = snap.depts[&2].clone();
    moved.parent_id = Some(4);
    let plan = SyncPlan {
        upsert_depts: vec![moved],
        ..SyncPlan::default()
    };
    let report = apply(t, &corp, &plan).await;
    assert_eq!(
        report.rows_written, 2,
        "dept 2 updated, dept 3's path rewritten"
    );
    let view = t.store.local_corp_data("corps.Acme", false).await.unwrap();
    let path = |id: i64| {
        view["deptList"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["deptId"] == id)
            .unwrap()["path"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(path(3), "/1/4/2/3/");
    assert_eq!(
        t.store.subtree_members("corps.Acme", 4).await.unwrap(),
        ["alice", "bob"]
    );
    assert!(t
        .store
        .subtree_members("corps.Acme", 404)
        .await
        .unwrap()
        .is_empty());
}

async fn runs_are_recorded_with_their_changes(t: &TestStore) {
    let (corp, snap) = seeded(t).await;
    let mut plan = SyncPlan {
        offline_members: vec!["bob".into()],
        ..SyncPlan::default()
    };
    plan.changes.push(change(
        ObjectKind::Member,
        "bob",
        ChangeKind::Offlined,
        "left the org",
    ));
    plan.changes.push(change(
        ObjectKind::Member,
        "eve",
        ChangeKind::Skipped,
        "outside syncScope",
    ));
    let report = apply(t, &corp, &plan).await;
    let failed = SyncRun {
        outcome: RunOutcome::Failed,
        error: Some("department/list errcode 60011: no privilege".into()),
        ..run_for(&corp)
    };
    let failed_id = t.store.record_run(&failed, &[]).await.unwrap();
    let runs = t.store.list_runs("corps.Acme", 10).await.unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0].run_id, failed_id);
    assert_eq!(runs[0].outcome, RunOutcome::Failed);
    assert_eq!(runs[0].error, failed.error);
    assert_eq!(runs[1].run_id, report.run_id);
    assert_eq!(runs[1].counts.get(&jit_org::ChangeKind::Offlined), Some(&1));
    assert_eq!(runs[1].counts.get(&jit_org::ChangeKind::Skipped), Some(&1));
    assert_eq!(runs[1].notes, vec!["mobile withheld by WeCom".to_string()]);
    assert_eq!(
        runs[2].counts.get(&jit_org::ChangeKind::Created),
        Some(&(snap.depts.len() + snap.members.len()))
    );
    let changes = t.store.run_changes(report.run_id).await.unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0].id, "bob");
    assert_eq!(changes[0].kind, ChangeKind::Offlined);
    assert_eq!(changes[1].kind, ChangeKind::Skipped);
    assert_eq!(changes[1].reason, "outside syncScope");
    assert_eq!(t.store.list_runs("corps.Acme", 1).await.unwrap().len(), 1);
    assert_eq!(
        t.store.last_successful_sync("corps.Acme").await.unwrap(),
        Some(run_for(&corp).finished_at)
    );
    // A failed first sync of an org not in the store is still recorded.
    let ghost = SyncRun {
        corp: "corps.NeverSynced".into(),
        ..failed
    };
    t.store.record_run(&ghost, &[]).await.unwrap();
    assert_eq!(
        t.store
            .list_runs("corps.NeverSynced", 5)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        t.store
            .last_successful_sync("corps.NeverSynced")
            .await
            .unwrap(),
        None
    );
}

async fn local_corp_data_has_the_documented_shape(t: &TestStore) {
    let (corp, _) = seeded(t).await;
    let v = t.store.local_corp_data("corps.Acme", false).await.unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "corp",
            "userList",
            "deptList",
            "deptMemberList",
            "roleList",
            "roleGroupList",
            "roleMemberSet",
            "adminList"
        ]
    );
    assert_eq!(v["corp"]["fullName"], "corps.Acme");
    assert_eq!(v["corp"]["corpId"], corp.corp_id.as_str());
    let users: Vec<&str> = v["userList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["memberId"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["alice", "bob", "carol"], "every current member");
    let alice = &v["userList"][0];
    assert!(alice["userId"].as_i64().unwrap() > 0);
    assert_eq!(alice["jobNumber"], "0007");
    assert_eq!(alice["mainDeptId"], 2);
    assert_eq!(alice["status"], "active");
    assert!(v["userList"][2]["mobile"].is_null());
    assert_eq!(v["deptList"][1]["path"], "/1/2/");
    assert_eq!(v["deptList"][1]["leaders"], serde_json::json!(["alice"]));
    assert_eq!(
        v["deptMemberList"],
        serde_json::json!([
            {"deptId": 1, "memberId": "carol", "order": 0, "isLeader": true},
            {"deptId": 2, "memberId": "alice", "order": 1, "isLeader": true},
            {"deptId": 3, "memberId": "bob", "order": 5, "isLeader": false},
            {"deptId": 4, "memberId": "bob", "order": 2, "isLeader": false},
        ])
    );
    assert_eq!(
        v["roleList"][0],
        serde_json::json!({"roleId": "r1", "groupId": "g1", "name": "Approver"})
    );
    assert_eq!(
        v["roleGroupList"],
        serde_json::json!([{"groupId": "g1", "name": "Duties"}])
    );
    assert_eq!(
        v["roleMemberSet"],
        serde_json::json!([
            {"memberId": "alice", "roleId": "r1", "origin": "upstream"},
            {"memberId": "bob", "roleId": "r1", "origin": "upstream"}
        ])
    );
    assert_eq!(
        v["adminList"],
        serde_json::json!([
            {"memberId": "carol", "level": 1, "origin": "upstream"},
            {"memberId": "alice", "level": 2, "origin": "upstream"}
        ])
    );
    assert_eq!(
        t.store.local_corp_data("corps.Acme", false).await.unwrap(),
        v,
        "deterministic"
    );
}

async fn offline_members_changes_only_that_org(t: &TestStore) {
    let (_, snap) = seeded(t).await;
    let other = wecom_corp("corps.Other");
    let mut carol = snap.members["carol"].clone();
    carol.depts.clear();
    apply(t, &other, &members_plan(vec![carol])).await;
    let n = t
        .store
        .offline_members("corps.Acme", &["carol".into(), "dave".into()])
        .await
        .unwrap();
    assert_eq!(n, 1, "dave was already offline");
    assert_eq!(
        t.store.load_snapshot("corps.Other").await.unwrap().members["carol"].status,
        MemberStatus::Active
    );
    assert!(matches!(
        t.store
            .offline_members("corps.Acme", &["alice".into(), "ghost".into()])
            .await,
        Err(StoreError::UnknownMember { .. })
    ));
    assert_eq!(
        t.store.load_snapshot("corps.Acme").await.unwrap().members["alice"].status,
        MemberStatus::Active,
        "nothing changed by the failed call"
    );
}

async fn bulk_register_binds_without_member_rows(t: &TestStore) {
    let a = dingtalk_corp("corps.DingA", "dingA");
    t.store.upsert_corp(&a).await.unwrap();
    assert_eq!(t.store.corp("corps.DingA").await.unwrap(), Some(a.clone()));
    let mut m1 = Member::new("m1", "One");
    m1.union_id = Some("U-one".into());
    let mut m2 = Member::new("m2", "Two");
    m2.union_id = Some("U-one".into());
    let conflicts = t.store.bulk_register(&a, &[m1.clone(), m2]).await.unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].member_id, "m2");
    assert_eq!(t.store.user_count().await.unwrap(), 1);
    // Registering again is a no-op.
    assert!(t.store.bulk_register(&a, &[m1]).await.unwrap().is_empty());
    assert_eq!(t.store.user_count().await.unwrap(), 1);
    assert!(t
        .store
        .local_user_for(&Provider::DingTalk, "dingA", "m1", Some("U-one"))
        .await
        .unwrap()
        .is_some());
}

async fn removed_department_takes_its_memberships(t: &TestStore) {
    let (corp, _) = seeded(t).await;
    let plan = SyncPlan {
        remove_depts: vec![3],
        ..SyncPlan::default()
    };
    apply(t, &corp, &plan).await;
    let snap = t.store.load_snapshot("corps.Acme").await.unwrap();
    assert!(!snap.depts.contains_key(&3));
    let bob: Vec<i64> = snap.members["bob"]
        .depts
        .iter()
        .map(|d| d.dept_id)
        .collect();
    assert_eq!(bob, [4]);
}

async fn unknown_org_is_reported(t: &TestStore) {
    assert!(matches!(
        t.store.local_corp_data("corps.Nope", false).await,
        Err(StoreError::UnknownCorp(ref c)) if c == "corps.Nope"
    ));
    assert!(matches!(
        t.store.get_admins("corps.Nope").await,
        Err(StoreError::UnknownCorp(_))
    ));
    let empty = t.store.load_snapshot("corps.Nope").await.unwrap();
    assert!(empty.members.is_empty() && empty.depts.is_empty());
    assert_eq!(t.store.corp("corps.Nope").await.unwrap(), None);
}

async fn moved_member_has_only_its_new_memberships(t: &TestStore) {
    let (corp, snap) = seeded(t).await;
    let mut bob = snap.members["bob"].clone();
    bob.depts = vec![jit_org::DeptMembership {
        dept_id: 1,
        order: 3,
        is_leader: true,
    }];
    let report = apply(t, &corp, &members_plan(vec![bob.clone()])).await;
    // One member updated, two memberships removed, one added.
    assert_eq!(report.rows_written, 4);
    let loaded = t.store.load_snapshot("corps.Acme").await.unwrap();
    assert_eq!(loaded.members["bob"], bob);
    assert_eq!(
        t.store.subtree_members("corps.Acme", 2).await.unwrap(),
        ["alice"]
    );
}

async fn begun_run_is_stored_as_running(t: &TestStore) {
    let corp = wecom_corp("corps.Acme");
    let run = SyncRun {
        finished_at: 0,
        ..run_for(&corp)
    };
    let id = t.store.begin_run(&run).await.unwrap();
    assert_ne!(id, 0);
    let stored = t
        .store
        .get_run(id)
        .await
        .unwrap()
        .expect("the run is stored");
    assert_eq!(stored.outcome, RunOutcome::Running);
    assert_eq!(stored.started_at, run.started_at);
    assert_eq!(stored.corp, "corps.Acme");
    let runs = t.store.list_runs("corps.Acme", 10).await.unwrap();
    assert_eq!(runs, vec![stored]);
    assert_eq!(
        serde_json::to_value(RunOutcome::Running).unwrap(),
        "running"
    );
}

async fn a_runs_kind_and_its_missed_count_are_kept(t: &TestStore) {
    let corp = wecom_corp("corps.Acme");
    let event = SyncRun {
        kind: jit_store::RunKind::Event,
        ..run_for(&corp)
    };
    let event_id = t.store.record_run(&event, &[]).await.unwrap();
    // A full sync is begun without a count and finished with one.
    let begun = t.store.begin_run(&run_for(&corp)).await.unwrap();
    let reconciled = SyncRun {
        run_id: begun,
        missed_by_events: Some(3),
        ..run_for(&corp)
    };
    t.store.record_run(&reconciled, &[]).await.unwrap();
    let runs = t.store.list_runs("corps.Acme", 10).await.unwrap();
    assert_eq!(runs[0].run_id, begun);
    assert_eq!(runs[0].kind, jit_store::RunKind::Sync);
    assert_eq!(runs[0].missed_by_events, Some(3));
    assert_eq!(runs[1].run_id, event_id);
    assert_eq!(runs[1].kind, jit_store::RunKind::Event);
    assert_eq!(runs[1].missed_by_events, None);
    let json = serde_json::to_value(&runs[1]).unwrap();
    assert_eq!(json["kind"], "event");
}

async fn a_runs_calls_and_throttling_waits_are_kept_when_it_is_finished(t: &TestStore) {
    let corp = wecom_corp("corps.Acme");
    // A run is begun before it has called anything: no calls yet.
    let begun = t.store.begin_run(&run_for(&corp)).await.unwrap();
    assert_eq!(t.store.get_run(begun).await.unwrap().unwrap().calls, None);
    let calls = jit_store::RunCalls {
        calls: 42,
        retries: 3,
        throttled: 2,
        failures: 1,
        wait_ms: 1_250,
    };
    let finished = SyncRun {
        run_id: begun,
        calls: Some(calls),
        ..run_for(&corp)
    };
    t.store.record_run(&finished, &[]).await.unwrap();
    // A run recorded in one go keeps them too.
    let whole = SyncRun {
        calls: Some(jit_store::RunCalls {
            calls: 7,
            ..Default::default()
        }),
        ..run_for(&corp)
    };
    let whole_id = t.store.record_run(&whole, &[]).await.unwrap();
    let runs = t.store.list_runs("corps.Acme", 10).await.unwrap();
    assert_eq!(runs[0].run_id, whole_id);
    assert_eq!(runs[0].calls.map(|c| c.calls), Some(7));
    assert_eq!(runs[1].run_id, begun);
    assert_eq!(runs[1].calls, Some(calls));
    assert_eq!(
        t.store.get_run(begun).await.unwrap().unwrap().calls,
        Some(calls)
    );
    let json = serde_json::to_value(&runs[1]).unwrap();
    assert_eq!(json["calls"]["throttled"], 2);
    assert_eq!(json["calls"]["waitMs"], 1_250);
}

async fn applying_a_begun_run_finishes_it_instead_of_adding_one(t: &TestStore) {
    let corp = wecom_corp("corps.Acme");
    let snap = sample_snapshot(&corp.corp_id);
    let begun = SyncRun {
        finished_at: 0,
        ..run_for(&corp)
    };
    let id = t.store.begin_run(&begun).await.unwrap();
    let run = SyncRun {
        run_id: id,
        ..run_for(&corp)
    };
    let report = t
        .store
        .apply_plan(&corp, &plan_from(&snap), &run)
        .await
        .unwrap();
    assert_eq!(report.run_id, id);
    let runs = t.store.list_runs("corps.Acme", 10).await.unwrap();
    assert_eq!(runs.len(), 1, "no second run row");
    assert_eq!(runs[0].outcome, RunOutcome::Applied);
    assert_eq!(runs[0].finished_at, run.finished_at);
    assert_eq!(runs[0].notes, run.notes);
    assert_eq!(
        runs[0].counts.get(&jit_org::ChangeKind::Created),
        Some(&(snap.depts.len() + snap.members.len()))
    );
    assert_eq!(
        t.store.run_changes(id).await.unwrap().len(),
        snap.depts.len() + snap.members.len()
    );
    assert_eq!(
        t.store.last_successful_sync("corps.Acme").await.unwrap(),
        Some(run.finished_at)
    );
}

async fn recording_a_begun_run_finishes_it_with_its_change_lines(t: &TestStore) {
    let corp = wecom_corp("corps.Acme");
    let id = t.store.begin_run(&run_for(&corp)).await.unwrap();
    let refused = SyncRun {
        run_id: id,
        outcome: RunOutcome::Refused,
        error: Some("would offline 80% of members".into()),
        finished_at: 1_700_000_009_000,
        ..run_for(&corp)
    };
    let lines = [change(
        ObjectKind::Member,
        "bob",
        ChangeKind::Offlined,
        "left the org",
    )];
    assert_eq!(t.store.record_run(&refused, &lines).await.unwrap(), id);
    // Finishing twice replaces the lines rather than adding to them.
    assert_eq!(t.store.record_run(&refused, &lines).await.unwrap(), id);
    let stored = t.store.get_run(id).await.unwrap().unwrap();
    assert_eq!(stored.outcome, RunOutcome::Refused);
    assert_eq!(stored.error, refused.error);
    assert_eq!(stored.finished_at, 1_700_000_009_000);
    assert_eq!(stored.counts.get(&jit_org::ChangeKind::Offlined), Some(&1));
    assert_eq!(t.store.run_changes(id).await.unwrap().len(), 1);
    assert_eq!(t.store.list_runs("corps.Acme", 10).await.unwrap().len(), 1);
}

async fn finishing_a_run_that_is_not_stored_is_invalid(t: &TestStore) {
    let corp = wecom_corp("corps.Acme");
    let other = t
        .store
        .begin_run(&run_for(&wecom_corp("corps.Other")))
        .await
        .unwrap();
    for run_id in [other + 1000, other] {
        let run = SyncRun {
            run_id,
            outcome: RunOutcome::Failed,
            ..run_for(&corp)
        };
        match t.store.record_run(&run, &[]).await {
            Err(StoreError::Invalid(m)) => {
                assert!(m.contains(&format!("run {run_id} of corps.Acme")), "{m}")
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        let applied = t.store.apply_plan(&corp, &SyncPlan::default(), &run).await;
        assert!(
            matches!(applied, Err(StoreError::Invalid(_))),
            "{applied:?}"
        );
    }
    assert!(
        t.store.corp("corps.Acme").await.unwrap().is_none(),
        "nothing written"
    );
    assert_eq!(
        t.store.get_run(other).await.unwrap().unwrap().outcome,
        RunOutcome::Running,
        "another corp's run is not finished by mistake"
    );
}

async fn get_run_of_an_unknown_id_is_none(t: &TestStore) {
    assert_eq!(t.store.get_run(424242).await.unwrap(), None);
}

async fn second_sync_lock_of_a_corp_is_busy_naming_the_running_run(t: &TestStore) {
    let _held = t
        .store
        .lock_sync("corps.Acme", Duration::ZERO)
        .await
        .unwrap();
    let id = t
        .store
        .begin_run(&run_for(&wecom_corp("corps.Acme")))
        .await
        .unwrap();
    // The same store and a second one (another process, as far as the
    // database can tell) are both turned away.
    let other = t.reopen().await.unwrap();
    for store in [&t.store, &other] {
        match store
            .lock_sync("corps.Acme", Duration::from_millis(150))
            .await
        {
            Err(e @ StoreError::SyncBusy { .. }) => {
                let StoreError::SyncBusy {
                    corp,
                    run_id,
                    started_at,
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!(corp, "corps.Acme");
                assert_eq!(*run_id, Some(id));
                assert_eq!(*started_at, Some(run_for(&wecom_corp("x")).started_at));
                assert_eq!(
                    e.to_string(),
                    format!(
                        "a sync of corps.Acme is already running (run {id}, started at 2023-11-14T22:13:20Z)"
                    )
                );
            }
            other => panic!("expected SyncBusy, got {other:?}"),
        }
    }
    assert_eq!(
        t.store.get_run(id).await.unwrap().unwrap().outcome,
        RunOutcome::Running,
        "a refused lock does not touch the running run"
    );
}

async fn busy_sync_lock_without_a_running_run_names_only_the_corp(t: &TestStore) {
    let _held = t
        .store
        .lock_sync("corps.Acme", Duration::ZERO)
        .await
        .unwrap();
    let e = t
        .store
        .lock_sync("corps.Acme", Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "a sync of corps.Acme is already running");
}

async fn sync_lock_of_another_corp_is_not_blocked(t: &TestStore) {
    let _acme = t
        .store
        .lock_sync("corps.Acme", Duration::ZERO)
        .await
        .unwrap();
    let other = t
        .store
        .lock_sync("corps.Other", Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(other.corp(), "corps.Other");
}

async fn dropping_the_sync_lock_frees_it(t: &TestStore) {
    let held = t
        .store
        .lock_sync("corps.Acme", Duration::ZERO)
        .await
        .unwrap();
    assert!(format!("{held:?}").contains("corps.Acme"));
    drop(held);
    // A closed PostgreSQL session is released by the server a moment later.
    t.store
        .lock_sync("corps.Acme", Duration::from_secs(5))
        .await
        .expect("the lock is free again");
}

async fn waiting_sync_lock_gets_it_when_the_holder_drops_it(t: &TestStore) {
    let held = t
        .store
        .lock_sync("corps.Acme", Duration::ZERO)
        .await
        .unwrap();
    let start = Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(held);
    });
    t.store
        .lock_sync("corps.Acme", Duration::from_secs(10))
        .await
        .expect("the waiting lock gets it once the holder drops it");
    assert!(start.elapsed() >= Duration::from_millis(250));
}

async fn taking_the_sync_lock_fails_runs_left_running(t: &TestStore) {
    let corp = wecom_corp("corps.Acme");
    let orphan = t.store.begin_run(&run_for(&corp)).await.unwrap();
    let elsewhere = t
        .store
        .begin_run(&run_for(&wecom_corp("corps.Other")))
        .await
        .unwrap();
    let _held = t
        .store
        .lock_sync("corps.Acme", Duration::ZERO)
        .await
        .unwrap();
    let run = t.store.get_run(orphan).await.unwrap().unwrap();
    assert_eq!(run.outcome, RunOutcome::Failed);
    assert_eq!(
        run.error.as_deref(),
        Some("interrupted: the process running this sync stopped before it finished")
    );
    assert_eq!(
        t.store.get_run(elsewhere).await.unwrap().unwrap().outcome,
        RunOutcome::Running,
        "only the locked org's runs"
    );
}

async fn local_corp_data_lists_members_who_are_not_active_yet(t: &TestStore) {
    let (corp, _) = seeded(t).await;
    let mut erin = Member::new("erin", "Erin");
    erin.status = MemberStatus::Disabled;
    erin.depts = vec![jit_org::DeptMembership {
        dept_id: 3,
        order: 1,
        is_leader: false,
    }];
    apply(t, &corp, &members_plan(vec![erin])).await;
    let v = t.store.local_corp_data("corps.Acme", false).await.unwrap();
    let status = |id: &str| {
        v["userList"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["memberId"] == id)
            .map(|u| u["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status("bob").as_deref(), Some("not_activated"));
    assert_eq!(status("erin").as_deref(), Some("disabled"));
    assert_eq!(status("dave"), None, "offline members are left out");
    let in_dept_3: Vec<&str> = v["deptMemberList"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["deptId"] == 3)
        .map(|m| m["memberId"].as_str().unwrap())
        .collect();
    assert_eq!(in_dept_3, ["bob", "erin"]);
}

async fn local_corp_data_lists_members_who_left_only_when_asked(t: &TestStore) {
    seeded(t).await;
    let v = t.store.local_corp_data("corps.Acme", true).await.unwrap();
    let users: Vec<(&str, &str)> = v["userList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["memberId"].as_str().unwrap(),
                u["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        users,
        [
            ("alice", "active"),
            ("bob", "not_activated"),
            ("carol", "active"),
            ("dave", "offline")
        ]
    );
    assert!(v["deptMemberList"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["memberId"] == "dave" && m["deptId"] == 4));
}

async fn a_member_in_an_unknown_department_is_an_invalid_plan(t: &TestStore) {
    let (corp, snap) = seeded(t).await;
    let mut lost = Member::new("erin", "Erin");
    lost.depts.push(jit_org::DeptMembership {
        dept_id: 404,
        order: 0,
        is_leader: false,
    });
    let err = t
        .store
        .apply_plan(&corp, &members_plan(vec![lost]), &run_for(&corp))
        .await
        .unwrap_err();
    match &err {
        StoreError::Invalid(m) => {
            assert!(m.contains("member erin"), "{m}");
            assert!(m.contains("department 404"), "{m}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(err.kind(), StoreErrorKind::Other);
    assert_eq!(t.store.load_snapshot("corps.Acme").await.unwrap(), snap);
}

async fn a_duplicate_key_is_a_unique_violation_that_keeps_the_driver_error(t: &TestStore) {
    let (corp, _) = seeded(t).await;
    // A stray membership row of a member the store does not have yet: the
    // plan's plain insert of that member's memberships hits its key.
    t.exec(
        "INSERT INTO dept_members (corp, member_id, dept_id, seq, sort_order, is_leader) \
         VALUES ('corps.Acme', 'erin', 1, 0, 0, FALSE)",
    )
    .await;
    let mut erin = Member::new("erin", "Erin");
    erin.depts.push(jit_org::DeptMembership {
        dept_id: 1,
        order: 0,
        is_leader: false,
    });
    let err = t
        .store
        .apply_plan(&corp, &members_plan(vec![erin]), &run_for(&corp))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::UniqueViolation, "{err}");
    assert!(matches!(
        err.driver_error(),
        Some(DriverError::Sqlite(_) | DriverError::Postgres(_))
    ));
    let msg = err.to_string();
    assert!(
        msg.starts_with("store apply plan for corps.Acme failed: "),
        "{msg}"
    );
    assert!(
        msg.to_lowercase().contains("unique") || msg.contains("duplicate key"),
        "the message embeds the driver's words: {msg}"
    );
    assert!(
        std::error::Error::source(&err).is_none(),
        "the message holds the cause; source() does not repeat it"
    );
}

async fn a_foreign_key_violation_is_classified(t: &TestStore) {
    seeded(t).await;
    let e = t
        .exec_err(
            "INSERT INTO role_members (corp, role_id, member_id, origin) \
             VALUES ('corps.Acme', 'no-such-role', 'alice', 'local')",
        )
        .await;
    assert_eq!(e.kind(), StoreErrorKind::ForeignKey, "{e}");
    let e = t
        .exec_err("INSERT INTO corps (full_name, title, corp_type, provider, corp_id) VALUES ('corps.Acme', 'x', 'x', 'x', 'x')")
        .await;
    assert_eq!(e.kind(), StoreErrorKind::UniqueViolation, "{e}");
}

async fn a_busy_sync_lock_is_of_kind_busy(t: &TestStore) {
    let _held = t
        .store
        .lock_sync("corps.Acme", Duration::ZERO)
        .await
        .unwrap();
    let err = t
        .store
        .lock_sync("corps.Acme", Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Busy);
}

fn login_key(secret: &str, created_at: i64) -> jit_store::LoginKey {
    jit_store::LoginKey {
        generation: 0,
        secret: secret.into(),
        created_at,
    }
}

async fn the_first_login_key_is_stored_once_and_rotation_keeps_older_keys(t: &TestStore) {
    // Two replicas starting together each offer a key: the first one stored wins.
    let a = t.store.login_keys(&login_key("key-a", 10)).await.unwrap();
    let b = t.store.login_keys(&login_key("key-b", 11)).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].generation, a[0].secret.as_str()), (1, "key-a"));

    let rotated = t
        .store
        .rotate_login_key(&login_key("key-c", 20))
        .await
        .unwrap();
    let gens: Vec<(i64, &str)> = rotated
        .iter()
        .map(|k| (k.generation, k.secret.as_str()))
        .collect();
    assert_eq!(gens, [(1, "key-a"), (2, "key-c")]);
    assert!(
        !format!("{rotated:?}").contains("key-"),
        "Debug hides secrets"
    );
}

async fn a_revoked_session_is_known_as_revoked(t: &TestStore) {
    assert!(!t.store.session_revoked("s1").await.unwrap());
    t.store.revoke_session("s1", 1_000, 500).await.unwrap();
    t.store.revoke_session("s1", 1_000, 500).await.unwrap();
    assert!(t.store.session_revoked("s1").await.unwrap());
    // A revocation is forgotten once its session would have expired anyway.
    t.store.revoke_session("s2", 9_000, 2_000).await.unwrap();
    assert!(!t.store.session_revoked("s1").await.unwrap());
    assert!(t.store.session_revoked("s2").await.unwrap());
}

async fn a_login_state_is_taken_once_and_not_after_it_expired(t: &TestStore) {
    let state = |id: &str, expires_at| jit_store::LoginState {
        state_id: id.into(),
        login: "auths.loginTypes.Wecom".into(),
        browser_hash: "h".into(),
        redirect: "/home".into(),
        expires_at,
    };
    t.store
        .put_login_state(&state("st1", 1_000), 0)
        .await
        .unwrap();
    t.store
        .put_login_state(&state("st2", 1_000), 0)
        .await
        .unwrap();
    assert!(t
        .store
        .put_login_state(&state("st1", 1_000), 0)
        .await
        .is_err());
    assert_eq!(
        t.store.take_login_state("st1", 500).await.unwrap(),
        Some(state("st1", 1_000))
    );
    assert_eq!(t.store.take_login_state("st1", 500).await.unwrap(), None);
    assert_eq!(t.store.take_login_state("st2", 1_001).await.unwrap(), None);
    assert_eq!(t.store.take_login_state("unknown", 0).await.unwrap(), None);
    assert!(!format!("{:?}", state("secret-state", 1)).contains("secret-state"));
}
