//! The page-sized reads of `jit_store::reads` (what the console shows), on
//! both backends, over the sample org of `common::sample_snapshot`:
//! tree 1 ─ 2 ─ 3, 1 ─ 4; alice leads 2, bob is in 3 and 4, carol leads 1,
//! dave (offline) is in 4.

use crate::common;

use common::*;
use jit_org::{ChangeKind, DeptMembership, Member, ObjectKind, SyncPlan};
use jit_store::reads::ChangeFilter;

use crate::common::suite;

suite!(
    org_counts_are_members_by_status_and_departments,
    a_tree_level_has_sub_department_and_member_counts_and_leaders,
    a_department_page_lists_leaders_first_then_in_platform_order,
    search_finds_names_case_insensitively_and_exact_ids_and_mobiles,
    a_person_has_every_membership_with_departments_roles_and_admin_rows,
    the_changes_that_touched_a_member_are_listed_newest_run_first,
    a_runs_changes_are_filtered_by_kind_and_text_and_paged,
);

/// erin joins R&D (dept 2) before alice in the platform's order, not as
/// a leader; her name is Chinese.
async fn with_erin(t: &TestStore) -> jit_store::ApplyReport {
    let (corp, _) = seeded(t).await;
    let mut erin = Member::new("erin", "李娜 Erin");
    erin.depts = vec![DeptMembership {
        dept_id: 2,
        order: -1,
        is_leader: false,
    }];
    let mut plan = members_plan(vec![erin]);
    plan.changes.push(change(
        ObjectKind::Member,
        "erin",
        ChangeKind::Created,
        "new member",
    ));
    apply(t, &corp, &plan).await
}

async fn org_counts_are_members_by_status_and_departments(t: &TestStore) {
    seeded(t).await;
    let c = t.store.org_counts("corps.Acme").await.unwrap();
    assert_eq!(c.depts, 4);
    let get = |s: &str| c.members.get(s).copied().unwrap_or(0);
    assert_eq!(
        (get("active"), get("not_activated"), get("offline")),
        (2, 1, 1)
    );
    assert_eq!(t.store.org_counts("corps.None").await.unwrap().depts, 0);
}

async fn a_tree_level_has_sub_department_and_member_counts_and_leaders(t: &TestStore) {
    seeded(t).await;
    let tops = t.store.dept_children("corps.Acme", None).await.unwrap();
    assert_eq!(tops.len(), 1);
    let root = &tops[0];
    assert_eq!((root.dept_id, root.name.as_str()), (1, "Acme"));
    assert_eq!((root.children, root.members), (2, 1));
    assert_eq!(
        root.leaders,
        vec![("carol".to_string(), "Carol".to_string())]
    );

    let kids = t.store.dept_children("corps.Acme", Some(1)).await.unwrap();
    let ids: Vec<i64> = kids.iter().map(|d| d.dept_id).collect();
    assert_eq!(ids, vec![2, 4], "in the platform's order");
    let (rd, sales) = (&kids[0], &kids[1]);
    assert_eq!((rd.children, rd.members), (1, 1));
    assert_eq!(rd.leaders, vec![("alice".to_string(), "Alice".to_string())]);
    // bob; dave is offline.
    assert_eq!((sales.children, sales.members), (0, 1));
    assert!(sales.leaders.is_empty());
    assert!(t
        .store
        .dept_children("corps.Acme", Some(3))
        .await
        .unwrap()
        .is_empty());
    let one = t.store.dept("corps.Acme", 2).await.unwrap().unwrap();
    assert_eq!(&one, rd);
    assert_eq!(t.store.dept("corps.Acme", 99).await.unwrap(), None);
}

async fn a_department_page_lists_leaders_first_then_in_platform_order(t: &TestStore) {
    with_erin(t).await;
    let first = t.store.dept_members("corps.Acme", 2, 0, 1).await.unwrap();
    assert_eq!(first.total, 2);
    assert_eq!(first.members.len(), 1);
    assert_eq!(first.members[0].member_id, "alice");
    assert!(first.members[0].leader);
    let second = t.store.dept_members("corps.Acme", 2, 1, 1).await.unwrap();
    assert_eq!(second.members[0].member_id, "erin");
    assert_eq!(second.members[0].name, "李娜 Erin");
    assert!(!second.members[0].leader);
    assert!(t
        .store
        .dept_members("corps.Acme", 2, 2, 1)
        .await
        .unwrap()
        .members
        .is_empty());
}

async fn search_finds_names_case_insensitively_and_exact_ids_and_mobiles(t: &TestStore) {
    with_erin(t).await;
    let ids = |h: &jit_store::reads::SearchHits| -> Vec<String> {
        h.members.iter().map(|m| m.member_id.clone()).collect()
    };
    let s = |q: &'static str| async move { t.store.search_org("corps.Acme", q, 20).await.unwrap() };
    assert_eq!(ids(&s("ALI").await), vec!["alice"]);
    assert_eq!(ids(&s("李娜").await), vec!["erin"]);
    assert_eq!(ids(&s("13800000001").await), vec!["alice"], "by mobile");
    assert_eq!(
        ids(&s("dave").await),
        vec!["dave"],
        "offline members are found too"
    );
    assert!(s("1380").await.members.is_empty(), "a mobile matches whole");
    assert!(
        s("%").await.members.is_empty(),
        "wildcards match themselves"
    );
    assert!(s("  ").await.members.is_empty());
    assert_eq!(s("sal").await.depts, vec![(4, "Sales".to_string())]);
}

async fn a_person_has_every_membership_with_departments_roles_and_admin_rows(t: &TestStore) {
    seeded(t).await;
    let hit = t.store.search_org("corps.Acme", "alice", 1).await.unwrap();
    let user = hit.members[0]
        .user_id
        .expect("alice is bound to a local user");
    let p = t.store.person(user).await.unwrap().unwrap();
    assert_eq!(p.user_id, user);
    assert_eq!(p.bindings.len(), 1);
    assert_eq!(
        (
            p.bindings[0].provider.as_str(),
            p.bindings[0].member_id.as_str()
        ),
        ("wecom", "alice")
    );
    assert_eq!(p.memberships.len(), 1);
    let m = &p.memberships[0];
    assert_eq!(
        (m.corp.as_str(), m.status.as_str()),
        ("corps.Acme", "active")
    );
    assert_eq!(m.mobile.as_deref(), Some("13800000001"));
    assert_eq!(m.depts, vec![(2, "R&D".to_string(), true)]);
    assert_eq!(
        m.roles,
        vec![(
            "r1".to_string(),
            "Approver".to_string(),
            "upstream".to_string()
        )]
    );
    assert_eq!(m.admin, vec![(2, "upstream".to_string())]);
    assert_eq!(t.store.person(user + 1000).await.unwrap(), None);
}

async fn the_changes_that_touched_a_member_are_listed_newest_run_first(t: &TestStore) {
    let (corp, _) = seeded(t).await;
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
    let second = apply(t, &corp, &plan).await;
    let lines = t
        .store
        .member_changes("corps.Acme", "bob", 10)
        .await
        .unwrap();
    let kinds: Vec<&str> = lines.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(kinds, vec!["offlined", "created"]);
    assert_eq!(lines[0].run_id, second.run_id);
    assert_eq!(lines[0].reason, "left the org");
    assert_eq!(lines[0].outcome, "applied");
    assert!(t
        .store
        .member_changes("corps.Other", "bob", 10)
        .await
        .unwrap()
        .is_empty());
}

async fn a_runs_changes_are_filtered_by_kind_and_text_and_paged(t: &TestStore) {
    let erin_run = with_erin(t).await.run_id;
    let runs = t.store.list_runs("corps.Acme", 10).await.unwrap();
    let first = runs.last().unwrap().run_id;
    let page = |kind: &str, text: &str, offset: u64, limit: u64| ChangeFilter {
        kind: kind.into(),
        text: text.into(),
        offset,
        limit,
    };
    let all = t
        .store
        .run_change_page(first, "corps.Acme", &page("", "", 0, 100))
        .await
        .unwrap();
    assert_eq!(all.total, 8, "4 departments and 4 members created");
    let created = t
        .store
        .run_change_page(first, "corps.Acme", &page("created", "", 2, 3))
        .await
        .unwrap();
    assert_eq!(created.total, 8);
    let seqs: Vec<i64> = created.lines.iter().map(|l| l.seq).collect();
    assert_eq!(
        seqs,
        all.lines[2..5].iter().map(|l| l.seq).collect::<Vec<_>>()
    );
    let none = t
        .store
        .run_change_page(first, "corps.Acme", &page("offlined", "", 0, 10))
        .await
        .unwrap();
    assert_eq!((none.total, none.lines.len()), (0, 0));
    let alice = t
        .store
        .run_change_page(first, "corps.Acme", &page("", "ALIC", 0, 10))
        .await
        .unwrap();
    assert_eq!(alice.total, 1);
    assert_eq!(alice.lines[0].object_id, "alice");
    assert_eq!(alice.lines[0].name.as_deref(), Some("Alice"));
    // By the member's name only (her id is erin).
    let by_name = t
        .store
        .run_change_page(erin_run, "corps.Acme", &page("", "李娜", 0, 10))
        .await
        .unwrap();
    assert_eq!(by_name.total, 1);
    assert_eq!(by_name.lines[0].object_id, "erin");
}
