//! Unit tests of the pure planner and the safety checks.

use crate::{plan, plan_owned, safety, SyncOptions};
use jit_org::*;

fn dept(id: i64, parent: Option<i64>, name: &str) -> Dept {
    Dept::new(id, parent, name)
}

fn member(id: &str, depts: &[i64]) -> Member {
    let mut m = Member::new(id, id.to_uppercase());
    m.position = Some("engineer".into());
    m.mobile = Some(format!("138{id}"));
    m.depts = depts
        .iter()
        .map(|&d| DeptMembership {
            dept_id: d,
            order: 0,
            is_leader: false,
        })
        .collect();
    m
}

/// Root 1 with children 2 and 3, 3 has child 4; ten members spread over them.
fn org() -> CorpSnapshot {
    let mut s = CorpSnapshot::new("ww1");
    for d in [
        dept(1, None, "Acme"),
        dept(2, Some(1), "R&D"),
        dept(3, Some(1), "Sales"),
        dept(4, Some(3), "Sales North"),
    ] {
        s.depts.insert(d.dept_id, d);
    }
    for (i, d) in [1, 2, 2, 2, 3, 3, 4, 4, 4, 2].iter().enumerate() {
        let m = member(&format!("u{i}"), &[*d]);
        s.members.insert(m.member_id.clone(), m);
    }
    s.role_groups.insert(
        "tags".into(),
        RoleGroup {
            group_id: "tags".into(),
            name: "Tags".into(),
        },
    );
    s.roles.insert(
        "10".into(),
        Role {
            role_id: "10".into(),
            group_id: Some("tags".into()),
            name: "oncall".into(),
            members: vec!["u1".into(), "u2".into()],
        },
    );
    s.admins = Some(vec![Admin {
        member_id: "u0".into(),
        level: 1,
    }]);
    s
}

fn opts() -> SyncOptions {
    SyncOptions::default()
}

/// The planner's options and the safety checks together, as a sync runs them.
fn check(local: &CorpSnapshot, remote: &CorpSnapshot, o: &SyncOptions) -> safety::SafetyVerdict {
    let p = plan(local, remote, o);
    safety::check(local, remote, &p, o)
}

/// Options with no limit on offlining, so only read coverage keeps members.
fn no_offline_limit() -> SyncOptions {
    SyncOptions {
        max_offline_ratio: 1.0,
        ..opts()
    }
}

/// Options of a read that does not fetch roles.
fn without_roles() -> SyncOptions {
    let mut o = opts();
    o.fetch.include_roles = false;
    o
}

/// Narrows `remote` to what a read scoped to Sales (3, with 4 below it)
/// returns: those departments and their members.
fn scope_to_sales(remote: &mut CorpSnapshot) {
    remote.scope = vec![3];
    remote.depts.retain(|id, _| *id == 3 || *id == 4);
    remote
        .members
        .retain(|_, m| m.depts.iter().any(|d| d.dept_id == 3 || d.dept_id == 4));
}

/// The plan of the org against itself with member `id` changed upstream by
/// `change`.
fn plan_member_change(id: &str, change: impl FnOnce(&mut Member)) -> SyncPlan {
    let mut remote = org();
    change(remote.members.get_mut(id).unwrap());
    plan(&org(), &remote, &opts())
}

/// The members `ids` are not in the upstream read.
fn unlist(remote: &mut CorpSnapshot, ids: &[&str]) {
    remote.members.retain(|id, _| !ids.contains(&id.as_str()));
}

/// The changes the plan makes to member `id`.
fn member_kinds(p: &SyncPlan, id: &str) -> Vec<ChangeKind> {
    kinds(p, ObjectKind::Member, id)
}

fn kinds(p: &SyncPlan, object: ObjectKind, id: &str) -> Vec<ChangeKind> {
    p.changes
        .iter()
        .filter(|c| c.object == object && c.id == id)
        .map(|c| c.kind)
        .collect()
}

#[test]
fn unchanged_org_gives_an_empty_plan() {
    let p = plan(&org(), &org(), &opts());
    assert!(p.is_empty(), "{:?}", p.changes);
    assert!(p.changes.is_empty());
}

#[test]
fn first_sync_creates_everything_parents_first() {
    let local = CorpSnapshot::new("ww1");
    let p = plan(&local, &org(), &opts());
    assert_eq!(p.upsert_depts.len(), 4);
    let pos = |id| p.upsert_depts.iter().position(|d| d.dept_id == id).unwrap();
    assert!(pos(1) < pos(3) && pos(3) < pos(4));
    assert_eq!(p.upsert_members.len(), 10);
    assert_eq!(p.upsert_roles.len(), 1);
    assert_eq!(p.upsert_role_groups.len(), 1);
    assert!(p.set_admins.is_some());
    assert_eq!(p.counts()[&jit_org::ChangeKind::Created], 4 + 10 + 1 + 1);
}

#[test]
fn applying_the_plan_to_local_makes_the_next_plan_empty() {
    // Idempotency at the planner level: local := remote, then plan again.
    let mut remote = org();
    remote.members.get_mut("u3").unwrap().name = "Renamed".into();
    remote.depts.get_mut(&4).unwrap().parent_id = Some(2);
    let p1 = plan(&org(), &remote, &opts());
    assert!(!p1.is_empty());
    let p2 = plan(&remote, &remote, &opts());
    assert!(p2.is_empty());
}

#[test]
fn member_moved_to_another_department_is_a_move_with_both_sets_in_the_reason() {
    let p = plan_member_change("u1", |m| m.depts[0].dept_id = 3);
    assert_eq!(member_kinds(&p, "u1"), vec![ChangeKind::Moved]);
    let c = &p.changes[0];
    assert!(c.reason.contains("[2] -> [3]"), "{}", c.reason);
    assert_eq!(p.upsert_members[0].depts[0].dept_id, 3);
}

#[test]
fn renamed_member_is_updated_with_old_and_new_name() {
    let p = plan_member_change("u2", |m| m.name = "Li Si".into());
    assert_eq!(member_kinds(&p, "u2"), vec![ChangeKind::Updated]);
    assert!(p.changes[0].reason.contains("\"U2\" -> \"Li Si\""));
}

#[test]
fn leader_flag_change_is_an_update_not_a_move() {
    let p = plan_member_change("u2", |m| m.depts[0].is_leader = true);
    assert_eq!(member_kinds(&p, "u2"), vec![ChangeKind::Updated]);
}

#[test]
fn renamed_department_is_updated_and_moved_department_is_moved() {
    let mut remote = org();
    remote.depts.get_mut(&2).unwrap().name = "Engineering".into();
    remote.depts.get_mut(&4).unwrap().parent_id = Some(2);
    let p = plan(&org(), &remote, &opts());
    assert_eq!(kinds(&p, ObjectKind::Dept, "2"), vec![ChangeKind::Updated]);
    assert_eq!(kinds(&p, ObjectKind::Dept, "4"), vec![ChangeKind::Moved]);
    assert!(p.changes.iter().any(|c| c.reason.contains("parent 3 -> 2")));
}

#[test]
fn department_leaders_in_another_order_are_not_a_change() {
    let mut local = org();
    local.depts.get_mut(&2).unwrap().leaders = vec!["u1".into(), "u2".into()];
    let mut remote = org();
    remote.depts.get_mut(&2).unwrap().leaders = vec!["u2".into(), "u1".into()];
    assert!(plan(&local, &remote, &opts()).is_empty());
}

#[test]
fn resigned_member_is_offlined_not_deleted() {
    let mut remote = org();
    remote.members.remove("u5");
    let p = plan(&org(), &remote, &opts());
    assert_eq!(p.offline_members, vec!["u5".to_string()]);
    assert_eq!(member_kinds(&p, "u5"), vec![ChangeKind::Offlined]);
    assert!(p.upsert_members.is_empty());
}

#[test]
fn upstream_status_offline_counts_as_absent() {
    let p = plan_member_change("u5", |m| m.status = MemberStatus::Offline);
    assert_eq!(p.offline_members, vec!["u5".to_string()]);
    assert!(p.changes[0].reason.contains("left"));
}

#[test]
fn already_offline_member_absent_upstream_is_left_alone() {
    let mut local = org();
    local.members.get_mut("u5").unwrap().status = MemberStatus::Offline;
    let mut remote = org();
    remote.members.remove("u5");
    assert!(plan(&local, &remote, &opts()).is_empty());
}

#[test]
fn rehired_member_is_reactivated_with_the_same_id() {
    let mut local = org();
    local.members.get_mut("u5").unwrap().status = MemberStatus::Offline;
    let p = plan(&local, &org(), &opts());
    assert_eq!(member_kinds(&p, "u5"), vec![ChangeKind::Reactivated]);
    assert_eq!(p.upsert_members[0].member_id, "u5");
    assert_eq!(p.upsert_members[0].status, MemberStatus::Active);
}

#[test]
fn disabled_upstream_is_a_status_update() {
    let p = plan_member_change("u4", |m| m.status = MemberStatus::Disabled);
    assert_eq!(member_kinds(&p, "u4"), vec![ChangeKind::Updated]);
    assert!(p.changes[0].reason.contains("active -> disabled"));
    assert!(p.offline_members.is_empty());
}

#[test]
fn withheld_fields_are_not_changes_and_keep_stored_values() {
    let mut remote = org();
    for m in remote.members.values_mut() {
        m.mobile = None;
        m.email = None;
        m.avatar = None;
    }
    let p = plan(&org(), &remote, &opts());
    assert!(p.is_empty(), "{:?}", p.changes);

    // When something else changes, the stored mobile rides along unchanged.
    remote.members.get_mut("u1").unwrap().name = "New".into();
    let p = plan(&org(), &remote, &opts());
    assert_eq!(p.upsert_members[0].mobile.as_deref(), Some("138u1"));
}

#[test]
fn an_empty_string_upstream_is_a_real_change() {
    let p = plan_member_change("u1", |m| m.mobile = Some(String::new()));
    assert_eq!(member_kinds(&p, "u1"), vec![ChangeKind::Updated]);
    assert!(p.changes[0].reason.contains("mobile"));
}

#[test]
fn removed_department_is_removed_children_first() {
    let mut remote = org();
    remote.depts.remove(&3);
    remote.depts.remove(&4);
    for m in remote.members.values_mut() {
        for d in m.depts.iter_mut() {
            if d.dept_id == 3 || d.dept_id == 4 {
                d.dept_id = 2;
            }
        }
    }
    let p = plan(&org(), &remote, &opts());
    assert_eq!(p.remove_depts, vec![4, 3]);
    assert!(p.offline_members.is_empty());
}

#[test]
fn incomplete_read_offlines_nobody_and_removes_nothing() {
    let mut remote = org();
    remote.members.retain(|id, _| id == "u0" || id == "u1");
    remote.depts.remove(&4);
    remote.roles.clear();
    // A failure of unknown extent (`part: None`, as an older export or a
    // plugin gives it) covers nothing that was not read.
    remote.failures.push(FetchFailure {
        what: "user/list department_id=3".into(),
        error: "-1 system busy".into(),
        part: None,
        out_of_range: false,
    });
    let p = plan(&org(), &remote, &opts());
    assert!(p.offline_members.is_empty());
    assert!(p.remove_depts.is_empty());
    assert!(p.remove_roles.is_empty());
    let skipped = p
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Skipped)
        .count();
    assert_eq!(skipped, 8 + 1 + 1, "8 members, 1 dept, 1 role");
    assert!(p.changes.iter().all(|c| c.kind != ChangeKind::Offlined));
    assert!(p
        .changes
        .iter()
        .any(|c| c.reason.contains("incomplete") && c.id == "u9"));
}

#[test]
fn scoped_read_leaves_members_outside_the_scope_untouched() {
    let mut remote = org();
    scope_to_sales(&mut remote);
    remote.roles.clear();
    remote.role_groups.clear();
    let opts = without_roles();
    let p = plan(&org(), &remote, &opts);
    assert!(p.is_empty(), "{:?}", p.changes);
}

#[test]
fn scoped_read_offlines_only_inside_the_scope_and_keeps_the_root_parent() {
    let mut remote = org();
    scope_to_sales(&mut remote);
    remote.depts.get_mut(&3).unwrap().parent_id = None;
    remote.members.remove("u7");
    let opts = without_roles();
    let p = plan(&org(), &remote, &opts);
    assert_eq!(p.offline_members, vec!["u7".to_string()]);
    assert!(
        p.upsert_depts.is_empty(),
        "scope root keeps its local parent"
    );
    assert!(p.remove_depts.is_empty());
}

#[test]
fn scoped_read_keeps_memberships_outside_the_scope() {
    let mut local = org();
    local
        .members
        .get_mut("u6")
        .unwrap()
        .depts
        .push(DeptMembership {
            dept_id: 2,
            order: 0,
            is_leader: false,
        });
    let mut remote = org();
    scope_to_sales(&mut remote);
    remote.members.get_mut("u6").unwrap().name = "Renamed".into();
    let opts = without_roles();
    let p = plan(&local, &remote, &opts);
    assert_eq!(member_kinds(&p, "u6"), vec![ChangeKind::Updated]);
    let depts: Vec<i64> = p.upsert_members[0]
        .depts
        .iter()
        .map(|d| d.dept_id)
        .collect();
    assert!(depts.contains(&2) && depts.contains(&4), "{depts:?}");
}

#[test]
fn role_membership_changes_list_added_and_removed_members() {
    let mut remote = org();
    remote.roles.get_mut("10").unwrap().members = vec!["u2".into(), "u3".into()];
    let p = plan(&org(), &remote, &opts());
    assert_eq!(kinds(&p, ObjectKind::Role, "10"), vec![ChangeKind::Updated]);
    let r = &p.changes[0].reason;
    assert!(
        r.contains("added [\"u3\"]") && r.contains("removed [\"u1\"]"),
        "{r}"
    );
}

#[test]
fn role_member_order_does_not_matter() {
    let mut remote = org();
    remote.roles.get_mut("10").unwrap().members = vec!["u2".into(), "u1".into()];
    assert!(plan(&org(), &remote, &opts()).is_empty());
}

#[test]
fn stored_holders_out_of_order_equal_to_the_read_are_no_change() {
    let mut local = org();
    local.roles.get_mut("10").unwrap().members = vec!["u2".into(), "u1".into()];
    assert!(plan(&local, &org(), &opts()).is_empty());
}

#[test]
fn vanished_roles_and_groups_are_removed() {
    let mut remote = org();
    remote.roles.clear();
    remote.role_groups.clear();
    let p = plan(&org(), &remote, &opts());
    assert_eq!(p.remove_roles, vec!["10".to_string()]);
    assert_eq!(p.remove_role_groups, vec!["tags".to_string()]);
}

#[test]
fn roles_are_left_alone_when_not_fetched() {
    let mut remote = org();
    remote.roles.clear();
    remote.role_groups.clear();
    let o = without_roles();
    assert!(plan(&org(), &remote, &o).is_empty());
}

#[test]
fn unknown_admins_keep_the_local_list() {
    let mut remote = org();
    remote.admins = None;
    assert!(plan(&org(), &remote, &opts()).is_empty());
}

#[test]
fn changed_admins_replace_the_list() {
    let mut remote = org();
    remote.admins = Some(vec![Admin {
        member_id: "u1".into(),
        level: 2,
    }]);
    let p = plan(&org(), &remote, &opts());
    assert_eq!(p.set_admins.as_ref().unwrap()[0].member_id, "u1");
    assert!(p.changes[0].reason.contains("added u1 (level 2)"));
    assert!(p.changes[0].reason.contains("removed u0 (level 1)"));
}

#[test]
fn offlining_more_than_the_ratio_is_refused() {
    let mut remote = org();
    remote.members.remove("u5");
    remote.members.remove("u6");
    let v = check(&org(), &remote, &opts());
    let r = v.refusal.expect("2 of 10 is over 10%");
    assert!(r.reason.contains("offline 2 of 10"), "{}", r.reason);
    assert!(r.hint.contains("--force"));
}

#[test]
fn offlining_within_the_ratio_is_allowed() {
    let mut remote = org();
    remote.members.remove("u5");
    assert!(check(&org(), &remote, &opts()).refusal.is_none());
}

#[test]
fn force_turns_a_refusal_into_a_note() {
    let mut remote = org();
    remote.members.retain(|id, _| id == "u0");
    let mut o = opts();
    o.force = true;
    let v = check(&org(), &remote, &o);
    assert!(v.refusal.is_none());
    assert!(v.notes[0].contains("forced"));
}

#[test]
fn max_offline_count_permits_small_absolute_numbers() {
    let mut remote = org();
    remote.members.remove("u5");
    remote.members.remove("u6");
    let mut o = opts();
    o.max_offline_count = 2;
    assert!(check(&org(), &remote, &o).refusal.is_none());
}

#[test]
fn an_upstream_read_with_no_members_is_refused() {
    let mut remote = org();
    remote.members.clear();
    let r = check(&org(), &remote, &opts()).refusal.unwrap();
    assert!(r.reason.contains("no members"), "{}", r.reason);
}

#[test]
fn first_sync_of_an_empty_org_is_not_refused() {
    let local = CorpSnapshot::new("ww1");
    let remote = CorpSnapshot::new("ww1");
    assert!(check(&local, &remote, &opts()).refusal.is_none());
}

#[test]
fn role_holders_who_never_became_members_are_dropped() {
    let mut remote = org();
    let mut gone = member("left", &[2]);
    gone.status = MemberStatus::Offline;
    remote.members.insert("left".into(), gone);
    remote
        .roles
        .get_mut("10")
        .unwrap()
        .members
        .push("left".into());
    remote
        .roles
        .get_mut("10")
        .unwrap()
        .members
        .push("stranger".into());
    let p = plan(&CorpSnapshot::new("ww1"), &remote, &opts());
    let role = p.upsert_roles.iter().find(|r| r.role_id == "10").unwrap();
    assert_eq!(role.members, vec!["u1".to_string(), "u2".to_string()]);
    assert!(p.upsert_members.iter().all(|m| m.member_id != "left"));
}

// --- Read coverage: a sync changes only what its read covered. ---

fn failed(part: ReadPart) -> FetchFailure {
    FetchFailure::new(part, "a call", "errcode 60011: no permission")
}

/// Department `id`'s record failed to read (e.g. DingTalk's 60011).
fn unread_dept(remote: &mut CorpSnapshot, id: i64) {
    remote.depts.remove(&id);
    remote.failures.push(failed(ReadPart::Dept { dept_id: id }));
}

fn holders(p: &SyncPlan, role: &str) -> Option<Vec<String>> {
    p.upsert_roles
        .iter()
        .find(|r| r.role_id == role)
        .map(|r| r.members.clone())
}

#[test]
fn a_failed_member_list_keeps_its_members_their_roles_and_memberships() {
    let mut local = org();
    local.roles.get_mut("10").unwrap().members = vec!["u1".into(), "u7".into()];
    // Department 4's user/list failed: u6, u7, u8 were not read. The tag's
    // own holder list was read whole and still names u7.
    let mut remote = local.clone();
    unlist(&mut remote, &["u6", "u7", "u8"]);
    remote
        .failures
        .push(failed(ReadPart::DeptMembers { dept_id: 4 }));
    let p = plan(&local, &remote, &no_offline_limit());
    assert!(p.offline_members.is_empty(), "{:?}", p.changes);
    assert_eq!(holders(&p, "10"), None, "the role is unchanged");
    assert!(p.remove_depts.is_empty());
    assert!(p.upsert_members.is_empty(), "{:?}", p.upsert_members);
    assert_eq!(member_kinds(&p, "u7"), vec![ChangeKind::Skipped]);
}

#[test]
fn a_department_whose_record_failed_keeps_its_place_children_and_memberships() {
    // DingTalk: department/get of 3 answered 60011; its children and members
    // were still listed. The read says 4's parent is 3, as the platform does.
    let local = org();
    let mut remote = org();
    unread_dept(&mut remote, 3);
    let p = plan(&local, &remote, &opts());
    assert!(p.remove_depts.is_empty(), "{:?}", p.changes);
    assert!(
        p.upsert_depts.is_empty(),
        "4 keeps parent 3: {:?}",
        p.changes
    );
    assert!(p.upsert_members.is_empty(), "u4, u5 stay in 3");
    assert_eq!(kinds(&p, ObjectKind::Dept, "3"), vec![ChangeKind::Skipped]);
}

#[test]
fn permission_refused_on_every_department_record_changes_no_department_or_membership() {
    let local = org();
    let mut remote = org();
    for id in [1, 2, 3, 4] {
        unread_dept(&mut remote, id);
    }
    let p = plan(&local, &remote, &no_offline_limit());
    assert!(p.remove_depts.is_empty());
    assert!(p.upsert_depts.is_empty());
    assert!(p.upsert_members.is_empty(), "{:?}", p.upsert_members);
    assert!(p.offline_members.is_empty());
}

#[test]
fn a_failed_children_listing_keeps_the_stored_subtree_and_its_people() {
    let local = org();
    let mut remote = org();
    remote.depts.remove(&4);
    unlist(&mut remote, &["u6", "u7", "u8"]);
    remote
        .failures
        .push(failed(ReadPart::DeptChildren { dept_id: 3 }));
    let p = plan(&local, &remote, &no_offline_limit());
    assert!(p.remove_depts.is_empty());
    assert!(p.offline_members.is_empty());
    assert!(p.upsert_members.is_empty());
}

#[test]
fn a_new_department_under_an_unread_parent_is_skipped_with_its_memberships() {
    let local = org();
    let mut remote = org();
    remote.depts.insert(9, dept(9, Some(8), "New team"));
    remote.failures.push(failed(ReadPart::Dept { dept_id: 8 }));
    let mut hire = member("new", &[9, 2]);
    hire.name = "New".into();
    remote.members.insert("new".into(), hire);
    let p = plan(&local, &remote, &opts());
    assert_eq!(kinds(&p, ObjectKind::Dept, "9"), vec![ChangeKind::Skipped]);
    assert!(p.upsert_depts.is_empty());
    let created = p
        .upsert_members
        .iter()
        .find(|m| m.member_id == "new")
        .unwrap();
    assert_eq!(
        created.depts.iter().map(|d| d.dept_id).collect::<Vec<_>>(),
        vec![2],
        "no membership in a department that will not exist"
    );
}

#[test]
fn a_new_department_under_a_stored_unread_parent_is_placed_under_it() {
    let local = org();
    let mut remote = org();
    unread_dept(&mut remote, 3);
    remote.depts.insert(9, dept(9, Some(3), "New team"));
    let p = plan(&local, &remote, &opts());
    assert_eq!(p.upsert_depts.len(), 1);
    assert_eq!(p.upsert_depts[0].parent_id, Some(3));
}

#[test]
fn a_parent_outside_the_visible_range_makes_a_top_level_department() {
    let mut remote = org();
    remote.depts.remove(&1);
    remote.members.retain(|id, _| id != "u0");
    let p = plan(&CorpSnapshot::new("ww1"), &remote, &opts());
    let two = p.upsert_depts.iter().find(|d| d.dept_id == 2).unwrap();
    assert_eq!(two.parent_id, None);
    let line = p
        .changes
        .iter()
        .find(|c| c.object == ObjectKind::Dept && c.id == "2")
        .unwrap();
    assert!(
        line.reason.contains("outside the app's visible range"),
        "{}",
        line.reason
    );
}

#[test]
fn memberships_in_a_department_that_is_gone_are_dropped() {
    let local = org();
    let mut remote = org();
    remote.depts.remove(&4);
    // u6 is still listed in 4 by its own record, but 4 is gone upstream.
    for id in ["u6", "u7", "u8"] {
        remote
            .members
            .get_mut(id)
            .unwrap()
            .depts
            .push(DeptMembership {
                dept_id: 3,
                order: 0,
                is_leader: false,
            });
    }
    let p = plan(&local, &remote, &opts());
    assert_eq!(p.remove_depts, vec![4]);
    for m in &p.upsert_members {
        assert!(m.depts.iter().all(|d| d.dept_id != 4), "{m:?}");
    }
}

#[test]
fn a_role_whose_holders_could_not_be_read_is_kept() {
    let local = org();
    let mut remote = org();
    remote.roles.clear();
    remote.failures.push(failed(ReadPart::RoleMembers {
        role_id: "10".into(),
    }));
    let p = plan(&local, &remote, &opts());
    assert!(p.remove_roles.is_empty());
    assert!(p.remove_role_groups.is_empty());
    assert_eq!(kinds(&p, ObjectKind::Role, "10"), vec![ChangeKind::Skipped]);
}

#[test]
fn a_failed_role_read_does_not_stop_a_leaver_from_being_offlined() {
    let local = org();
    let mut remote = org();
    remote.members.remove("u9");
    remote.roles.clear();
    remote.failures.push(failed(ReadPart::Roles));
    let p = plan(&local, &remote, &opts());
    assert_eq!(p.offline_members, vec!["u9".to_string()]);
    assert!(p.remove_roles.is_empty());
}

#[test]
fn a_refusal_as_out_of_range_keeps_its_department_but_offlines_other_leavers() {
    let local = org();
    let mut remote = org();
    unlist(&mut remote, &["u6", "u7", "u8", "u9"]);
    remote.failures.push(FetchFailure::out_of_range(
        ReadPart::DeptMembers { dept_id: 4 },
        "tag/get",
        "60011",
    ));
    assert!(remote.is_complete());
    let p = plan(&local, &remote, &opts());
    assert_eq!(p.offline_members, vec!["u9".to_string()]);
}

#[test]
fn a_member_who_left_is_offlined_even_while_a_department_record_failed() {
    let local = org();
    let mut remote = org();
    remote.members.remove("u1");
    unread_dept(&mut remote, 3);
    let p = plan(&local, &remote, &opts());
    assert_eq!(p.offline_members, vec!["u1".to_string()]);
}

// --- The offline guard. ---

fn small_org(n: usize) -> CorpSnapshot {
    let mut s = CorpSnapshot::new("ww1");
    s.depts.insert(1, dept(1, None, "Tiny"));
    for i in 0..n {
        let m = member(&format!("p{i}"), &[1]);
        s.members.insert(m.member_id.clone(), m);
    }
    s
}

#[test]
fn a_five_person_org_can_lose_one_member_by_default() {
    let local = small_org(5);
    let mut remote = small_org(5);
    remote.members.remove("p3");
    remote.members.insert("hire".into(), member("hire", &[1]));
    let p = plan(&local, &remote, &opts());
    let v = check(&local, &remote, &opts());
    assert!(v.refusal.is_none(), "{:?}", v.refusal);
    assert_eq!(p.offline_members, vec!["p3".to_string()]);
}

#[test]
fn a_five_person_org_losing_two_is_refused_by_default() {
    let local = small_org(5);
    let mut remote = small_org(5);
    remote.members.remove("p3");
    remote.members.remove("p4");
    let r = check(&local, &remote, &opts()).refusal.unwrap();
    assert!(r.reason.contains("offline 2 of 5"), "{}", r.reason);
    assert!(r.reason.contains("sync.maxOfflineCount 1"), "{}", r.reason);
}

#[test]
fn not_activated_members_count_on_both_sides_of_the_ratio() {
    // 20 members, half of them not yet activated: the limit is 10 % of all
    // 20 current members (2), and offlining a not-activated member counts.
    let mut local = small_org(20);
    for i in 0..10 {
        local.members.get_mut(&format!("p{i}")).unwrap().status = MemberStatus::NotActivated;
    }
    let mut remote = local.clone();
    remote.members.remove("p0");
    remote.members.remove("p1");
    assert!(check(&local, &remote, &opts()).refusal.is_none());
    remote.members.remove("p2");
    let r = check(&local, &remote, &opts()).refusal.unwrap();
    assert!(r.reason.contains("offline 3 of 20"), "{}", r.reason);
}

/// The planner consumes the read's members after planning offlines and
/// roles (both consult them): the change lines must still come in the
/// order departments, member upserts, offlines, roles, admins.
#[test]
fn change_lines_keep_their_order_when_the_read_is_consumed() {
    let local = org();
    let mut remote = org();
    remote.depts.insert(5, dept(5, Some(1), "Support"));
    let new = member("u99", &[5]);
    remote.members.insert(new.member_id.clone(), new);
    remote.members.get_mut("u3").unwrap().name = "Renamed".into();
    unlist(&mut remote, &["u4"]);
    remote.roles.get_mut("10").unwrap().members = vec!["u1".into(), "u99".into()];
    remote.admins = Some(vec![Admin {
        member_id: "u1".into(),
        level: 1,
    }]);
    let p = plan(&local, &remote, &opts());
    let lines: Vec<(ObjectKind, &str, ChangeKind)> = p
        .changes
        .iter()
        .map(|c| (c.object, c.id.as_str(), c.kind))
        .collect();
    assert_eq!(
        lines,
        vec![
            (ObjectKind::Dept, "5", ChangeKind::Created),
            (ObjectKind::Member, "u3", ChangeKind::Updated),
            (ObjectKind::Member, "u99", ChangeKind::Created),
            (ObjectKind::Member, "u4", ChangeKind::Offlined),
            (ObjectKind::Role, "10", ChangeKind::Updated),
            (ObjectKind::Admin, "admins", ChangeKind::Updated),
        ]
    );
    assert_eq!(p.offline_members, vec!["u4".to_string()]);
    assert_eq!(
        p.upsert_members
            .iter()
            .map(|m| m.member_id.as_str())
            .collect::<Vec<_>>(),
        ["u3", "u99"]
    );
    // The consuming planner is the same planner.
    assert_eq!(plan_owned(&local, remote.clone(), &opts()), p);
    let counted = safety::Counts::new(&local, &remote).check(&p, &opts());
    assert_eq!(counted, safety::check(&local, &remote, &p, &opts()));
}

/// The planner walks the stored and the read members side by side in id
/// order: every mix of ids only stored, only read, in both, offline stored
/// and not present upstream is matched with its own counterpart.
#[test]
fn stored_and_read_members_interleaved_in_id_order_are_each_matched_with_their_own() {
    let mut local = org();
    let mut remote = org();
    // u0 .. u9 in both; stored only: u3 (resigned) and a0, z9; read only:
    // b5, u55, zz; u7 stored offline and back upstream; u8 upstream left.
    for id in ["a0", "z9"] {
        local.members.insert(id.into(), member(id, &[2]));
    }
    remote.members.remove("u3");
    for id in ["b5", "u55", "zz"] {
        remote.members.insert(id.into(), member(id, &[3]));
    }
    local.members.get_mut("u7").unwrap().status = MemberStatus::Offline;
    remote.members.get_mut("u8").unwrap().status = MemberStatus::Offline;
    remote.members.get_mut("u4").unwrap().name = "Renamed".into();
    let p = plan(&local, &remote, &no_offline_limit());
    for (id, want) in [
        ("a0", vec![ChangeKind::Offlined]),
        ("b5", vec![ChangeKind::Created]),
        ("u0", vec![]),
        ("u3", vec![ChangeKind::Offlined]),
        ("u4", vec![ChangeKind::Updated]),
        ("u55", vec![ChangeKind::Created]),
        ("u6", vec![]),
        ("u7", vec![ChangeKind::Reactivated]),
        ("u8", vec![ChangeKind::Offlined]),
        ("u9", vec![]),
        ("z9", vec![ChangeKind::Offlined]),
        ("zz", vec![ChangeKind::Created]),
    ] {
        assert_eq!(member_kinds(&p, id), want, "{id}");
    }
    let mut offlined = p.offline_members.clone();
    offlined.sort();
    assert_eq!(offlined, ["a0", "u3", "u8", "z9"]);
}
