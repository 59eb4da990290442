//! Checks a test makes after syncing a simulated org: the stored org against
//! the simulator's truth ([`crate::SimHandle::wecom_truth`],
//! [`crate::SimHandle::dingtalk_truth`]). Every crate that syncs from the
//! simulator compares the same way, so the comparison lives here.

use jit_org::{CorpSnapshot, MemberStatus};

/// The ids of the first `n` active members of `org`, in id order: the
/// members a test changes.
pub fn active_members(org: &CorpSnapshot, n: usize) -> Vec<String> {
    org.members
        .values()
        .filter(|m| m.status == MemberStatus::Active)
        .take(n)
        .map(|m| m.member_id.clone())
        .collect()
}

/// The id of the first active member of `org`.
pub fn first_active(org: &CorpSnapshot) -> String {
    let first = active_members(org, 1).pop();
    first.expect("the org has an active member")
}

/// The truth as a sync stores it: members who left upstream (WeCom lists
/// them with status 5) are never created, nor are they role holders.
pub fn as_synced(mut truth: CorpSnapshot) -> CorpSnapshot {
    truth
        .members
        .retain(|_, m| m.status != MemberStatus::Offline);
    for r in truth.roles.values_mut() {
        r.members.retain(|u| truth.members.contains_key(u));
    }
    truth
}

/// Panics, naming the first difference, unless `stored` holds the same org
/// as `truth`: departments, members (profile, state and memberships, in any
/// order), role groups, roles and admins (in any order).
pub fn assert_same_org(stored: &CorpSnapshot, truth: &CorpSnapshot) {
    assert_eq!(stored.depts, truth.depts, "departments differ");
    assert_eq!(
        stored.members.keys().collect::<Vec<_>>(),
        truth.members.keys().collect::<Vec<_>>(),
        "member ids differ"
    );
    for (id, t) in &truth.members {
        let s = &stored.members[id];
        assert_eq!(s.name, t.name, "{id} name");
        assert_eq!(s.status, t.status, "{id} status");
        assert_eq!(s.union_id, t.union_id, "{id} unionId");
        assert_eq!(s.position, t.position, "{id} position");
        assert_eq!(s.mobile, t.mobile, "{id} mobile");
        assert_eq!(s.email, t.email, "{id} email");
        assert_eq!(s.main_dept_id, t.main_dept_id, "{id} main dept");
        let mut sd = s.depts.clone();
        let mut td = t.depts.clone();
        sd.sort_by_key(|d| d.dept_id);
        td.sort_by_key(|d| d.dept_id);
        assert_eq!(sd, td, "{id} memberships (order and leader flags)");
    }
    assert_eq!(stored.role_groups, truth.role_groups, "role groups differ");
    assert_eq!(stored.roles, truth.roles, "roles differ");
    let mut sa = stored.admins.clone().unwrap_or_default();
    let mut ta = truth.admins.clone().unwrap_or_default();
    sa.sort();
    ta.sort();
    assert_eq!(sa, ta, "admins differ");
}
