//! The pure diff: local snapshot + remote snapshot → [`SyncPlan`].

use crate::SyncOptions;
use jit_org::{
    Admin, Change, ChangeKind, CorpSnapshot, Dept, Member, MemberStatus, ObjectKind, Role, SyncPlan,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Which local objects a (possibly scoped) remote read speaks for.
pub(crate) struct Scope {
    scoped: bool,
    /// Departments inside the synced subtrees (local and remote).
    depts: HashSet<i64>,
    /// Scope roots (their local parent is kept: the read cannot see above them).
    roots: HashSet<i64>,
}

impl Scope {
    pub(crate) fn new(local: &CorpSnapshot, remote: &CorpSnapshot) -> Scope {
        if remote.scope.is_empty() {
            let depts = local
                .depts
                .keys()
                .chain(remote.depts.keys())
                .copied()
                .collect();
            return Scope {
                scoped: false,
                depts,
                roots: HashSet::new(),
            };
        }
        let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
        for d in local.depts.values() {
            if let Some(p) = d.parent_id {
                children.entry(p).or_default().push(d.dept_id);
            }
        }
        let mut depts: HashSet<i64> = remote.depts.keys().copied().collect();
        let mut seen = HashSet::new();
        let mut stack: Vec<i64> = remote.scope.clone();
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            depts.insert(id);
            if let Some(kids) = children.get(&id) {
                stack.extend(kids.iter().copied());
            }
        }
        Scope {
            scoped: true,
            depts,
            roots: remote.scope.iter().copied().collect(),
        }
    }

    /// Whether a local member is one the remote read speaks for.
    pub(crate) fn covers_member(&self, m: &Member) -> bool {
        !self.scoped || m.depts.iter().any(|d| self.depts.contains(&d.dept_id))
    }
}

/// Whether a member counts as present upstream. WeCom status 5 ("left the
/// company") arrives as [`MemberStatus::Offline`] and means the same as absent.
fn present(m: &Member) -> bool {
    m.status != MemberStatus::Offline
}

/// Computes what a sync would change. Pure: no I/O, deterministic output.
///
/// Rules:
/// - Unknown (`None`) upstream fields never count as changes and never wipe
///   stored values; the planned member carries the stored value instead.
/// - A member absent upstream (or upstream `Offline`) that is not offline
///   locally is offlined, never deleted; an offline local member present
///   upstream is reactivated with the same identity.
/// - With `remote.scope` set, only departments in the synced subtrees and
///   members with a department there are considered; memberships and role
///   holdings outside the subtrees are kept.
/// - With an incomplete remote read nothing is offlined or removed: those
///   would-be changes are reported as [`ChangeKind::Skipped`].
/// - Roles are left alone when `opts.fetch.include_roles` is false, admins
///   when `remote.admins` is `None`.
pub fn plan(local: &CorpSnapshot, remote: &CorpSnapshot, opts: &SyncOptions) -> SyncPlan {
    let scope = Scope::new(local, remote);
    let complete = remote.is_complete();
    let mut out = SyncPlan::default();
    plan_depts(local, remote, &scope, complete, &mut out);
    plan_members(local, remote, &scope, complete, &mut out);
    if opts.fetch.include_roles {
        plan_roles(local, remote, &scope, complete, &mut out);
    }
    plan_admins(local, remote, &mut out);
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

fn plan_depts(
    local: &CorpSnapshot,
    remote: &CorpSnapshot,
    scope: &Scope,
    complete: bool,
    out: &mut SyncPlan,
) {
    let depth = depths(&remote.depts);
    let mut ids: Vec<i64> = remote.depts.keys().copied().collect();
    // Parents before children, so stores with parent foreign keys can insert in order.
    ids.sort_by_key(|id| (depth.get(id).copied().unwrap_or(0), *id));
    for id in ids {
        let mut target = remote.depts[&id].clone();
        let old = local.depts.get(&id);
        if scope.roots.contains(&id) {
            if let Some(old) = old {
                target.parent_id = old.parent_id;
            }
        }
        let Some(old) = old else {
            let reason = format!(
                "new department \"{}\" under {}",
                target.name,
                parent_str(target.parent_id)
            );
            out.changes
                .push(change(ObjectKind::Dept, id, ChangeKind::Created, reason));
            out.upsert_depts.push(target);
            continue;
        };
        let mut diffs = Vec::new();
        if old.parent_id != target.parent_id {
            diffs.push(format!(
                "parent {} -> {}",
                parent_str(old.parent_id),
                parent_str(target.parent_id)
            ));
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
    let local_depth = depths(&local.depts);
    let mut gone: Vec<&Dept> = local
        .depts
        .values()
        .filter(|d| scope.depts.contains(&d.dept_id) && !remote.depts.contains_key(&d.dept_id))
        .collect();
    // Children before parents.
    gone.sort_by_key(|d| {
        (
            std::cmp::Reverse(local_depth.get(&d.dept_id).copied().unwrap_or(0)),
            d.dept_id,
        )
    });
    for d in gone {
        if complete {
            out.changes.push(change(
                ObjectKind::Dept,
                d.dept_id,
                ChangeKind::Removed,
                format!("department \"{}\" no longer exists upstream", d.name),
            ));
            out.remove_depts.push(d.dept_id);
        } else {
            out.changes.push(change(
                ObjectKind::Dept,
                d.dept_id,
                ChangeKind::Skipped,
                format!(
                    "department \"{}\" was not returned upstream, but the read was incomplete; kept",
                    d.name
                ),
            ));
        }
    }
}

/// Fills the fields upstream withheld from the stored member, keeps
/// memberships outside the scope, and lists what changed.
fn merge_member(
    remote: &Member,
    old: Option<&Member>,
    scope: &Scope,
) -> (Member, Vec<String>, bool) {
    let mut t = remote.clone();
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
    if scope.scoped {
        for d in &old.depts {
            if !scope.depts.contains(&d.dept_id) && !t.depts.iter().any(|x| x.dept_id == d.dept_id)
            {
                t.depts.push(d.clone());
            }
        }
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

fn plan_members(
    local: &CorpSnapshot,
    remote: &CorpSnapshot,
    scope: &Scope,
    complete: bool,
    out: &mut SyncPlan,
) {
    for (id, rm) in &remote.members {
        if !present(rm) {
            continue;
        }
        let old = local.members.get(id);
        let (target, diffs, moved) = merge_member(rm, old, scope);
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
        out.changes
            .push(change(ObjectKind::Member, id, kind, reason));
        out.upsert_members.push(target);
    }
    for (id, lm) in &local.members {
        if lm.status == MemberStatus::Offline || !scope.covers_member(lm) {
            continue;
        }
        let why = match remote.members.get(id) {
            Some(rm) if present(rm) => continue,
            Some(_) => "left the organization upstream",
            // A scoped read cannot tell a departure from a move out of the
            // scope: the scoped org is the subtree, so both leave it.
            None if !remote.scope.is_empty() => {
                "no longer in the synced departments (left the organization or moved outside syncScope)"
            }
            None => "no longer returned upstream",
        };
        if complete {
            out.changes.push(change(
                ObjectKind::Member,
                id,
                ChangeKind::Offlined,
                why.to_string(),
            ));
            out.offline_members.push(id.clone());
        } else {
            out.changes.push(change(
                ObjectKind::Member,
                id,
                ChangeKind::Skipped,
                format!(
                    "{why}, but the upstream read was incomplete ({} part(s) failed); not offlined",
                    remote.failures.len()
                ),
            ));
        }
    }
}

fn plan_roles(
    local: &CorpSnapshot,
    remote: &CorpSnapshot,
    scope: &Scope,
    complete: bool,
    out: &mut SyncPlan,
) {
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
    // Members the remote read speaks for; role holdings of anyone else are kept.
    let covered: HashSet<&str> = remote
        .members
        .keys()
        .map(String::as_str)
        .chain(
            local
                .members
                .values()
                .filter(|m| scope.covers_member(m))
                .map(|m| m.member_id.as_str()),
        )
        .collect();
    for (id, r) in &remote.roles {
        // Holders who never became local members (e.g. WeCom status 5 on the
        // first sync) would be dangling references.
        let mut members: BTreeSet<String> = r
            .members
            .iter()
            .filter(|m| {
                remote.members.get(*m).is_some_and(present) || local.members.contains_key(*m)
            })
            .cloned()
            .collect();
        let old = local.roles.get(id);
        if scope.scoped {
            if let Some(old) = old {
                members.extend(
                    old.members
                        .iter()
                        .filter(|m| !covered.contains(m.as_str()))
                        .cloned(),
                );
            }
        }
        let target = Role {
            members: members.into_iter().collect(),
            ..r.clone()
        };
        let Some(old) = old else {
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
        if complete {
            out.changes.push(change(
                ObjectKind::Role,
                id,
                ChangeKind::Removed,
                format!("role \"{}\" no longer exists upstream", r.name),
            ));
            out.remove_roles.push(id.clone());
        } else {
            out.changes.push(change(
                ObjectKind::Role,
                id,
                ChangeKind::Skipped,
                format!(
                    "role \"{}\" was not returned, but the read was incomplete; kept",
                    r.name
                ),
            ));
        }
    }
    for (id, g) in &local.role_groups {
        if remote.role_groups.contains_key(id) {
            continue;
        }
        if complete {
            out.changes.push(change(
                ObjectKind::RoleGroup,
                id,
                ChangeKind::Removed,
                format!("role group \"{}\" no longer exists upstream", g.name),
            ));
            out.remove_role_groups.push(id.clone());
        } else {
            out.changes.push(change(
                ObjectKind::RoleGroup,
                id,
                ChangeKind::Skipped,
                format!(
                    "role group \"{}\" was not returned, but the read was incomplete; kept",
                    g.name
                ),
            ));
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
