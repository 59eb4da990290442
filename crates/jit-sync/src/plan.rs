//! The pure diff: local snapshot + remote snapshot → [`SyncPlan`].
//!
//! What the read covered is decided in one place, [`jit_org::Coverage`]; this
//! module only asks it. Nothing outside coverage is changed.

use crate::SyncOptions;
use jit_org::{
    Admin, Change, ChangeKind, CorpSnapshot, Coverage, Dept, DeptMembership, Member, MemberStatus,
    ObjectKind, Role, SyncPlan, Verdict,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Whether a member counts as present upstream. WeCom status 5 ("left the
/// company") arrives as [`MemberStatus::Offline`] and means the same as absent.
fn present(m: &Member) -> bool {
    m.status != MemberStatus::Offline
}

/// Computes what a sync would change. Pure: no I/O, deterministic output.
///
/// Rules:
/// - Only what the read covered changes ([`Coverage`]): a department, a
///   member list or a role that the read asked for and did not get (a failed
///   or refused part) stays exactly as stored, and so do the memberships in
///   such a department and the holders of such a role. Would-be removals and
///   offlines outside coverage are reported as [`ChangeKind::Skipped`].
/// - Unknown (`None`) upstream fields never count as changes and never wipe
///   stored values; the planned member carries the stored value instead.
/// - A member absent upstream (or upstream `Offline`) that is not offline
///   locally is offlined, never deleted, when the read covered that member;
///   an offline local member present upstream is reactivated with the same
///   identity.
/// - A department whose parent the read does not see becomes a top-level
///   department when the parent is outside the app's visible range; its
///   stored parent is kept when the parent could not be read or lies outside
///   the syncScope; a new department whose parent could not be read (and is
///   not stored) is skipped, with the memberships in it.
/// - Memberships in departments the read does not see at all are dropped
///   (the department is gone or out of range); those in departments it could
///   not read, or outside the syncScope, are kept as stored.
/// - Roles are left alone when `opts.fetch.include_roles` is false, admins
///   when `remote.admins` is `None`.
///
/// This borrows the read and so works on a copy of it; the engine uses
/// [`plan_owned`], which consumes it.
pub fn plan(local: &CorpSnapshot, remote: &CorpSnapshot, opts: &SyncOptions) -> SyncPlan {
    plan_owned(local, remote.clone(), opts)
}

/// [`plan`], consuming the read: the planned members are the read's own,
/// moved rather than copied, and each read member is freed once planned. A
/// first sync of a large org therefore holds one copy of its members instead
/// of two, and a repeat frees the read as it goes.
pub fn plan_owned(local: &CorpSnapshot, mut remote: CorpSnapshot, opts: &SyncOptions) -> SyncPlan {
    let cov = Coverage::new(local, &remote);
    let mut out = SyncPlan::default();
    let after = plan_depts(local, &remote, &cov, &mut out);
    // Roles ask which holders the read returned, so they are planned before
    // the members are consumed; their lines still follow the members'.
    let mut roles = SyncPlan::default();
    if opts.fetch.include_roles {
        plan_roles(local, &remote, &cov, &mut roles);
    }
    let members = std::mem::take(&mut remote.members);
    plan_members(local, members, &remote, &cov, &after, &mut out);
    out.changes.append(&mut roles.changes);
    out.upsert_role_groups = roles.upsert_role_groups;
    out.upsert_roles = roles.upsert_roles;
    out.remove_roles = roles.remove_roles;
    out.remove_role_groups = roles.remove_role_groups;
    plan_admins(local, &remote, &mut out);
    out
}

fn change(object: ObjectKind, id: impl ToString, kind: ChangeKind, reason: String) -> Change {
    Change {
        object,
        id: id.to_string(),
        kind,
        reason,
    }
}

/// The removal of `what` (e.g. `role "Sales"`), which upstream no longer has.
fn gone(object: ObjectKind, id: impl ToString, what: &str) -> Change {
    let reason = format!("{what} no longer exists upstream");
    change(object, id, ChangeKind::Removed, reason)
}

/// `what` (e.g. `department "Sales"`) is kept as stored, for the reason `why`.
fn kept(object: ObjectKind, id: impl ToString, what: &str, why: &str) -> Change {
    change(object, id, ChangeKind::Skipped, format!("{what} {why}"))
}

/// Keeps the stored department `d` (for the reason `why`) under its stored
/// parent, so the departments below it keep theirs.
fn keep_dept(
    out: &mut SyncPlan,
    parent_after: &mut HashMap<i64, Option<i64>>,
    d: &Dept,
    why: &str,
) {
    parent_after.insert(d.dept_id, d.parent_id);
    let what = format!("department \"{}\"", d.name);
    out.changes
        .push(kept(ObjectKind::Dept, d.dept_id, &what, why));
}

fn parent_str(p: Option<i64>) -> String {
    p.map_or_else(|| "none".to_string(), |p| p.to_string())
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

/// Depth of each department along parent links inside `depts` (roots 0).
fn depths(depts: &BTreeMap<i64, Dept>) -> HashMap<i64, usize> {
    let mut out: HashMap<i64, usize> = HashMap::new();
    for &id in depts.keys() {
        let mut chain = Vec::new();
        let mut cur = Some(id);
        let mut base = 0;
        while let Some(c) = cur {
            if let Some(&d) = out.get(&c) {
                base = d + 1;
                break;
            }
            if chain.contains(&c) || !depts.contains_key(&c) {
                // A cycle or a parent outside the snapshot ends the chain.
                break;
            }
            chain.push(c);
            cur = depts.get(&c).and_then(|d| d.parent_id);
        }
        for (i, c) in chain.iter().rev().enumerate() {
            out.insert(*c, base + i);
        }
    }
    out
}

/// Where a read department goes: its parent as the store will hold it, or
/// why it cannot be placed. `Ok((parent, note))`; the note explains a parent
/// that differs from the one upstream gave.
fn place(
    d: &Dept,
    local: &CorpSnapshot,
    remote: &CorpSnapshot,
    cov: &Coverage,
    skipped: &HashSet<i64>,
) -> Result<(Option<i64>, Option<String>), String> {
    let old = local.depts.get(&d.dept_id);
    if cov.is_scope_root(d.dept_id) {
        // A scoped read cannot see above its roots.
        return Ok((old.and_then(|o| o.parent_id), None));
    }
    let Some(p) = d.parent_id else {
        return Ok((None, None));
    };
    if remote.depts.contains_key(&p) {
        return if skipped.contains(&p) {
            Err(format!("its parent department {p} was skipped"))
        } else {
            Ok((Some(p), None))
        };
    }
    if cov.record_failed(p) || cov.dept_record(p) == Verdict::OutsideScope {
        // The parent exists upstream but was not read (or lies outside the
        // syncScope): keep the stored link; a new department goes under the
        // parent if the store holds it, and cannot be placed otherwise.
        return match old {
            Some(o) => Ok((o.parent_id, None)),
            None if local.depts.contains_key(&p) => Ok((Some(p), None)),
            None if cov.dept_record(p) == Verdict::OutsideScope => Ok((None, None)),
            None => Err(format!(
                "its parent department {p} could not be read and is not stored"
            )),
        };
    }
    // The read found this department under `p` but did not read `p`
    // itself: `p` is outside the app's visible range.
    Ok((
        None,
        Some(format!(
            "parent {p} is outside the app's visible range; stored as a top-level department"
        )),
    ))
}

/// Plans departments; returns the ids that exist once the plan is applied.
fn plan_depts(
    local: &CorpSnapshot,
    remote: &CorpSnapshot,
    cov: &Coverage,
    out: &mut SyncPlan,
) -> HashSet<i64> {
    let depth = depths(&remote.depts);
    let mut ids: Vec<i64> = remote.depts.keys().copied().collect();
    // Parents before children, so stores with parent foreign keys can insert
    // in order, and a skipped parent is known before its children.
    ids.sort_by_key(|id| (depth.get(id).copied().unwrap_or(0), *id));
    let mut skipped: HashSet<i64> = HashSet::new();
    // Parent of every department that exists after the plan.
    let mut parent_after: HashMap<i64, Option<i64>> = HashMap::new();
    for id in ids {
        let mut target = remote.depts[&id].clone();
        let old = local.depts.get(&id);
        let note = match place(&target, local, remote, cov, &skipped) {
            Ok((parent, note)) => {
                target.parent_id = parent;
                note
            }
            Err(why) => {
                // Only a department the store does not hold gets here.
                skipped.insert(id);
                out.changes.push(change(
                    ObjectKind::Dept,
                    id,
                    ChangeKind::Skipped,
                    format!("new department \"{}\" not created: {why}", target.name),
                ));
                continue;
            }
        };
        parent_after.insert(id, target.parent_id);
        let Some(old) = old else {
            let mut reason = format!(
                "new department \"{}\" under {}",
                target.name,
                parent_str(target.parent_id)
            );
            if let Some(n) = note {
                reason.push_str(&format!(" ({n})"));
            }
            out.changes
                .push(change(ObjectKind::Dept, id, ChangeKind::Created, reason));
            out.upsert_depts.push(target);
            continue;
        };
        let mut diffs = Vec::new();
        if old.parent_id != target.parent_id {
            let mut d = format!(
                "parent {} -> {}",
                parent_str(old.parent_id),
                parent_str(target.parent_id)
            );
            if let Some(n) = note {
                d.push_str(&format!(" ({n})"));
            }
            diffs.push(d);
        }
        if old.name != target.name {
            diffs.push(format!("name \"{}\" -> \"{}\"", old.name, target.name));
        }
        if old.order != target.order {
            diffs.push(format!("order {} -> {}", old.order, target.order));
        }
        if sorted(&old.leaders) != sorted(&target.leaders) {
            diffs.push(format!("leaders {:?} -> {:?}", old.leaders, target.leaders));
        }
        if diffs.is_empty() {
            continue;
        }
        let kind = if old.parent_id != target.parent_id {
            ChangeKind::Moved
        } else {
            ChangeKind::Updated
        };
        out.changes
            .push(change(ObjectKind::Dept, id, kind, diffs.join("; ")));
        out.upsert_depts.push(target);
    }

    // Stored departments the read did not return.
    let mut candidates: Vec<&Dept> = Vec::new();
    for d in local.depts.values() {
        if remote.depts.contains_key(&d.dept_id) {
            continue;
        }
        match cov.dept_record(d.dept_id) {
            Verdict::Covered => candidates.push(d),
            Verdict::OutsideScope => {
                parent_after.insert(d.dept_id, d.parent_id);
            }
            Verdict::Unread => {
                let why = "could not be read upstream; kept as stored";
                keep_dept(out, &mut parent_after, d, why);
            }
        }
    }
    // Children before parents; a department that keeps a child (one the read
    // could not cover) is kept too, so no stored department loses its parent.
    let local_depth = depths(&local.depts);
    candidates.sort_by_key(|d| {
        (
            std::cmp::Reverse(local_depth.get(&d.dept_id).copied().unwrap_or(0)),
            d.dept_id,
        )
    });
    let mut kept_children: HashMap<i64, usize> = HashMap::new();
    for p in parent_after.values().flatten() {
        *kept_children.entry(*p).or_default() += 1;
    }
    for d in candidates {
        if kept_children.get(&d.dept_id).copied().unwrap_or(0) > 0 {
            if let Some(p) = d.parent_id {
                *kept_children.entry(p).or_default() += 1;
            }
            let why = "was not returned upstream, but departments below it could not be read; kept";
            keep_dept(out, &mut parent_after, d, why);
            continue;
        }
        let what = format!("department \"{}\"", d.name);
        out.changes.push(gone(ObjectKind::Dept, d.dept_id, &what));
        out.remove_depts.push(d.dept_id);
    }
    parent_after.into_keys().collect()
}

/// The memberships a read member gets: what the read says for departments
/// whose members it covered, what the store holds for the departments it
/// did not (failed, refused, outside the syncScope), nothing for departments
/// that will not exist.
///
/// The read's list is filtered where it lies (no copy per member: a plan
/// of 300,000 members made one allocation each).
fn memberships(
    mut out: Vec<DeptMembership>,
    old: Option<&Member>,
    remote: &CorpSnapshot,
    cov: &Coverage,
    after: &HashSet<i64>,
) -> Vec<DeptMembership> {
    out.retain(|d| {
        remote.depts.contains_key(&d.dept_id)
            && after.contains(&d.dept_id)
            && cov.dept_members(d.dept_id).is_covered()
    });
    if let Some(old) = old {
        for d in &old.depts {
            if !cov.dept_members(d.dept_id).is_covered()
                && after.contains(&d.dept_id)
                && !out.iter().any(|x| x.dept_id == d.dept_id)
            {
                out.push(d.clone());
            }
        }
    }
    out
}

/// Fills the fields upstream withheld from the stored member and lists what
/// changed; `t.depts` must already be the planned memberships.
fn merge_member(mut t: Member, old: Option<&Member>) -> (Member, Vec<String>, bool) {
    let mut diffs = Vec::new();
    let Some(old) = old else {
        return (t, diffs, false);
    };
    macro_rules! opt_field {
        ($f:ident) => {
            match (&t.$f, &old.$f) {
                (None, _) => t.$f = old.$f.clone(),
                (Some(new), Some(prev)) if new == prev => {}
                (Some(new), prev) => diffs.push(format!(
                    "{} {} -> {}",
                    stringify!($f),
                    prev.as_ref()
                        .map_or("unset".to_string(), |p| format!("{p:?}")),
                    format!("{new:?}")
                )),
            }
        };
    }
    if t.name != old.name {
        diffs.push(format!("name \"{}\" -> \"{}\"", old.name, t.name));
    }
    if t.status != old.status && old.status != MemberStatus::Offline {
        diffs.push(format!(
            "status {} -> {}",
            old.status.as_str(),
            t.status.as_str()
        ));
    }
    opt_field!(union_id);
    opt_field!(position);
    opt_field!(job_number);
    opt_field!(main_dept_id);
    opt_field!(hired_date);
    opt_field!(avatar);
    opt_field!(mobile);
    opt_field!(email);
    if t.extra.is_null() {
        t.extra = old.extra.clone();
    } else if t.extra != old.extra {
        diffs.push("extension attributes changed".to_string());
    }
    // The usual case, memberships as stored and in the same order, needs
    // no sets (two maps per member are most of a repeat plan's allocations).
    if t.depts == old.depts {
        return (t, diffs, false);
    }
    let old_set: BTreeMap<i64, (i64, bool)> = old
        .depts
        .iter()
        .map(|d| (d.dept_id, (d.order, d.is_leader)))
        .collect();
    let new_set: BTreeMap<i64, (i64, bool)> = t
        .depts
        .iter()
        .map(|d| (d.dept_id, (d.order, d.is_leader)))
        .collect();
    let moved = old_set.keys().ne(new_set.keys());
    if moved {
        diffs.push(format!(
            "departments {:?} -> {:?}",
            old_set.keys().collect::<Vec<_>>(),
            new_set.keys().collect::<Vec<_>>()
        ));
    } else if old_set != new_set {
        diffs.push("department order or leader flag changed".to_string());
    }
    (t, diffs, moved)
}

/// Plans the members; `members` is the read's, taken out of `remote`.
fn plan_members(
    local: &CorpSnapshot,
    members: BTreeMap<String, Member>,
    remote: &CorpSnapshot,
    cov: &Coverage,
    after: &HashSet<i64>,
    out: &mut SyncPlan,
) {
    // Offlines consult the read's members, which the upserts consume, so
    // they are planned first; their lines still follow the upserts'.
    let mut later = SyncPlan::default();
    plan_offlines(local, &members, remote, cov, &mut later);
    // Both maps are in id order: the stored one is walked alongside rather
    // than searched once per member (for 300,000 members, ~0.3 s of
    // B-tree descents).
    let mut stored = local.members.iter().peekable();
    for (id, mut rm) in members {
        if !present(&rm) {
            continue;
        }
        let old = stored_member(&mut stored, &id);
        rm.depts = memberships(std::mem::take(&mut rm.depts), old, remote, cov, after);
        let (target, diffs, moved) = merge_member(rm, old);
        let (kind, reason) = match old {
            None => (
                ChangeKind::Created,
                format!(
                    "new member \"{}\" in departments {:?}",
                    target.name,
                    target.depts.iter().map(|d| d.dept_id).collect::<Vec<_>>()
                ),
            ),
            Some(old) if old.status == MemberStatus::Offline => {
                let mut reason = format!("back upstream as {}", target.status.as_str());
                if !diffs.is_empty() {
                    reason.push_str("; ");
                    reason.push_str(&diffs.join("; "));
                }
                (ChangeKind::Reactivated, reason)
            }
            Some(_) if diffs.is_empty() => continue,
            Some(_) if moved => (ChangeKind::Moved, diffs.join("; ")),
            Some(_) => (ChangeKind::Updated, diffs.join("; ")),
        };
        out.changes.push(Change {
            object: ObjectKind::Member,
            id,
            kind,
            reason,
        });
        out.upsert_members.push(target);
    }
    out.changes.append(&mut later.changes);
    out.offline_members.append(&mut later.offline_members);
}

/// The member with `id` from `members`, an iterator over a map in id
/// order that was advanced only by earlier, smaller ids: the entries before
/// `id` are passed over for good.
fn stored_member<'a>(
    members: &mut std::iter::Peekable<std::collections::btree_map::Iter<'a, String, Member>>,
    id: &str,
) -> Option<&'a Member> {
    while members.next_if(|(k, _)| k.as_str() < id).is_some() {}
    members.next_if(|(k, _)| k.as_str() == id).map(|(_, m)| m)
}

/// Plans the stored members the read did not return as present: offlined,
/// or kept (skipped) when the read did not cover them.
fn plan_offlines(
    local: &CorpSnapshot,
    members: &BTreeMap<String, Member>,
    remote: &CorpSnapshot,
    cov: &Coverage,
    out: &mut SyncPlan,
) {
    let mut read = members.iter().peekable();
    for (id, lm) in &local.members {
        if lm.status == MemberStatus::Offline {
            continue;
        }
        let why = match stored_member(&mut read, id) {
            Some(rm) if present(rm) => continue,
            // The read returned the member's own record saying so: proof
            // whatever else failed.
            Some(_) => {
                out.changes.push(change(
                    ObjectKind::Member,
                    id,
                    ChangeKind::Offlined,
                    "left the organization upstream".to_string(),
                ));
                out.offline_members.push(id.clone());
                continue;
            }
            // A scoped read cannot tell a departure from a move out of the
            // scope: the scoped org is the subtree, so both leave it.
            None if cov.is_scoped() => {
                "no longer in the synced departments (left the organization or moved outside syncScope)"
            }
            None => "no longer returned upstream",
        };
        match cov.member(lm) {
            Verdict::OutsideScope => {}
            Verdict::Covered => {
                out.changes.push(change(
                    ObjectKind::Member,
                    id,
                    ChangeKind::Offlined,
                    why.to_string(),
                ));
                out.offline_members.push(id.clone());
            }
            Verdict::Unread => {
                let failed = remote.failures.iter().filter(|f| !f.out_of_range).count();
                let reason = if cov.members_complete() {
                    format!("{why}, but a department of theirs could not be read; not offlined")
                } else {
                    format!(
                        "{why}, but the upstream read was incomplete ({failed} part(s) failed); not offlined"
                    )
                };
                out.changes
                    .push(change(ObjectKind::Member, id, ChangeKind::Skipped, reason));
            }
        }
    }
}

fn plan_roles(local: &CorpSnapshot, remote: &CorpSnapshot, cov: &Coverage, out: &mut SyncPlan) {
    for (id, g) in &remote.role_groups {
        match local.role_groups.get(id) {
            Some(old) if old == g => {}
            Some(old) => {
                out.changes.push(change(
                    ObjectKind::RoleGroup,
                    id,
                    ChangeKind::Updated,
                    format!("name \"{}\" -> \"{}\"", old.name, g.name),
                ));
                out.upsert_role_groups.push(g.clone());
            }
            None => {
                out.changes.push(change(
                    ObjectKind::RoleGroup,
                    id,
                    ChangeKind::Created,
                    format!("new role group \"{}\"", g.name),
                ));
                out.upsert_role_groups.push(g.clone());
            }
        }
    }
    for (id, r) in &remote.roles {
        // The holder list was read whole, so it is the truth; holders who
        // never became local members (e.g. WeCom status 5 on the first
        // sync) would be dangling references.
        let members: BTreeSet<String> = r
            .members
            .iter()
            .filter(|m| {
                remote.members.get(*m).is_some_and(present) || local.members.contains_key(*m)
            })
            .cloned()
            .collect();
        let target = Role {
            members: members.into_iter().collect(),
            ..r.clone()
        };
        let Some(old) = local.roles.get(id) else {
            out.changes.push(change(
                ObjectKind::Role,
                id,
                ChangeKind::Created,
                format!(
                    "new role \"{}\" with {} member(s)",
                    target.name,
                    target.members.len()
                ),
            ));
            out.upsert_roles.push(target);
            continue;
        };
        let mut diffs = Vec::new();
        if old.name != target.name {
            diffs.push(format!("name \"{}\" -> \"{}\"", old.name, target.name));
        }
        if old.group_id != target.group_id {
            diffs.push(format!("group {:?} -> {:?}", old.group_id, target.group_id));
        }
        // The usual case, the holders as stored (both lists sorted), needs
        // no sets: a tag of a large org has tens of thousands of holders.
        if old.members != target.members {
            let before: BTreeSet<&String> = old.members.iter().collect();
            let after: BTreeSet<&String> = target.members.iter().collect();
            let added: Vec<&&String> = after.difference(&before).collect();
            let removed: Vec<&&String> = before.difference(&after).collect();
            if !added.is_empty() {
                diffs.push(format!("members added {added:?}"));
            }
            if !removed.is_empty() {
                diffs.push(format!("members removed {removed:?}"));
            }
        }
        if diffs.is_empty() {
            continue;
        }
        out.changes.push(change(
            ObjectKind::Role,
            id,
            ChangeKind::Updated,
            diffs.join("; "),
        ));
        out.upsert_roles.push(target);
    }
    for (id, r) in &local.roles {
        if remote.roles.contains_key(id) {
            continue;
        }
        let what = format!("role \"{}\"", r.name);
        if cov.role(id).is_covered() {
            out.changes.push(gone(ObjectKind::Role, id, &what));
            out.remove_roles.push(id.clone());
        } else {
            let why = "could not be read upstream (or not all its holders); kept as stored";
            out.changes.push(kept(ObjectKind::Role, id, &what, why));
        }
    }
    for (id, g) in &local.role_groups {
        if remote.role_groups.contains_key(id) {
            continue;
        }
        // A group still holding a kept role stays with it.
        let holds_kept_role = local.roles.values().any(|r| {
            r.group_id.as_deref() == Some(id.as_str())
                && !remote.roles.contains_key(&r.role_id)
                && !cov.role(&r.role_id).is_covered()
        });
        let what = format!("role group \"{}\"", g.name);
        if cov.roles_listed() && !holds_kept_role {
            out.changes.push(gone(ObjectKind::RoleGroup, id, &what));
            out.remove_role_groups.push(id.clone());
        } else {
            let why = "was not returned, but the role list was not read whole; kept";
            out.changes
                .push(kept(ObjectKind::RoleGroup, id, &what, why));
        }
    }
}

fn plan_admins(local: &CorpSnapshot, remote: &CorpSnapshot, out: &mut SyncPlan) {
    let Some(remote_admins) = &remote.admins else {
        return;
    };
    let norm = |v: &[Admin]| -> Vec<Admin> {
        let mut v = v.to_vec();
        v.sort();
        v.dedup();
        v
    };
    let new = norm(remote_admins);
    let old = norm(local.admins.as_deref().unwrap_or(&[]));
    if new == old {
        return;
    }
    let added: Vec<String> = new
        .iter()
        .filter(|a| !old.contains(a))
        .map(|a| format!("{} (level {})", a.member_id, a.level))
        .collect();
    let removed: Vec<String> = old
        .iter()
        .filter(|a| !new.contains(a))
        .map(|a| format!("{} (level {})", a.member_id, a.level))
        .collect();
    let mut reason = Vec::new();
    if !added.is_empty() {
        reason.push(format!("added {}", added.join(", ")));
    }
    if !removed.is_empty() {
        reason.push(format!("removed {}", removed.join(", ")));
    }
    out.changes.push(change(
        ObjectKind::Admin,
        "admins",
        ChangeKind::Updated,
        reason.join("; "),
    ));
    out.set_admins = Some(new);
}
