//! Backend-independent parts of the store: plan normalisation, department
//! paths, identity binding decisions, and assembling what reads return.
//! The backends only move rows in and out of their database.

pub(crate) mod firings;
pub(crate) mod inbox;
pub(crate) mod logins;
pub(crate) mod ops;

use crate::api::{AdminRow, IdentityConflict, Origin, StoreError, StoreResult};
use jit_org::{
    Admin, CorpRecord, CorpSnapshot, Dept, DeptMembership, Member, MemberStatus, Provider, Role,
    RoleGroup, SyncPlan,
};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A 64-bit advisory-lock key for `parts`, the same on every replica.
///
/// FNV-1a written out rather than std's `DefaultHasher`, whose algorithm may
/// change between Rust releases: replicas built by different compilers must
/// agree on the key or they would not exclude each other. Parts are joined
/// with a NUL byte so that `["ab", "c"]` and `["a", "bc"]` differ.
pub(crate) fn lock_key(parts: &[&str]) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for (i, part) in ["jit-store"].iter().chain(parts).enumerate() {
        if i > 0 {
            h ^= 0;
            h = h.wrapping_mul(PRIME);
        }
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    h as i64
}

/// Maps a driver error to [`StoreError::Database`] naming the operation.
pub(crate) trait Ctx<T> {
    fn ctx(self, operation: &str) -> StoreResult<T>;
}

impl<T, E: Into<crate::api::DriverError>> Ctx<T> for Result<T, E> {
    fn ctx(self, operation: &str) -> StoreResult<T> {
        self.map_err(|e| StoreError::Database {
            operation: operation.to_string(),
            cause: e.into(),
        })
    }
}

/// The server's own words when there are some (the driver's `Display` only
/// says "db error").
pub(crate) fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                m.push_str(&format!(" ({d})"));
            }
            m
        }
        None => {
            // "error connecting to server" alone hides the reason (refused,
            // unknown host, ...), which is in the source chain.
            let mut m = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                m.push_str(&format!(": {s}"));
                source = s.source();
            }
            m
        }
    }
}

/// A firing row read by a backend, its state and result still as stored.
pub(crate) fn firing_from_parts(
    (mut f, state, result): (crate::Firing, String, Option<String>),
    op: &str,
) -> StoreResult<crate::Firing> {
    f.state = crate::FiringState::parse(&state).ok_or_else(|| StoreError::Internal {
        operation: op.to_string(),
        message: format!("unknown firing state `{state}` in the store"),
    })?;
    f.result = result.and_then(|t| serde_json::from_str(&t).ok());
    Ok(f)
}

/// JSON text for the `extra` column; `Null` (unknown) is stored as NULL.
pub(crate) fn extra_to_text(v: &Value) -> Option<String> {
    if v.is_null() {
        None
    } else {
        Some(v.to_string())
    }
}

/// Reads the `extra` column back.
pub(crate) fn extra_from_text(s: Option<String>) -> Value {
    s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null)
}

/// A plan with duplicates removed (the last upsert of an id wins, as it
/// would if applied one after the other), so that set-based statements
/// never touch a row twice.
pub(crate) struct Normalized<'a> {
    pub depts: Vec<&'a Dept>,
    pub members: Vec<&'a Member>,
    pub role_groups: Vec<&'a RoleGroup>,
    pub roles: Vec<&'a Role>,
    pub admins: Option<Vec<Admin>>,
}

/// One item per key, the last occurrence winning, in key order: the
/// tables are keyed the same way, so rows go in as B-tree appends whatever
/// order a source planned them in (the engine's plans already come in key
/// order, from the snapshot's maps; a plugin's need not), and duplicates
/// are found by one sort instead of a map of cloned keys.
fn last_wins<T, K: Ord + ?Sized>(items: &[T], key: impl Fn(&T) -> &K) -> Vec<&T> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    // Stable: equal keys keep their plan order, so the last one is last.
    order.sort_by(|a, b| key(&items[*a]).cmp(key(&items[*b])));
    let mut out: Vec<&T> = Vec::with_capacity(order.len());
    for i in order {
        match out.last_mut() {
            Some(prev) if key(prev) == key(&items[i]) => *prev = &items[i],
            _ => out.push(&items[i]),
        }
    }
    out
}

impl<'a> Normalized<'a> {
    pub(crate) fn new(plan: &'a SyncPlan) -> Normalized<'a> {
        Normalized {
            depts: last_wins(&plan.upsert_depts, |d| &d.dept_id),
            members: last_wins(&plan.upsert_members, |m| m.member_id.as_str()),
            role_groups: last_wins(&plan.upsert_role_groups, |g| g.group_id.as_str()),
            roles: last_wins(&plan.upsert_roles, |r| r.role_id.as_str()),
            admins: plan.set_admins.as_ref().map(|a| dedup_admins(a)),
        }
    }
}

/// One admin row per member, first occurrence wins (platform order kept).
pub(crate) fn dedup_admins(admins: &[Admin]) -> Vec<Admin> {
    let mut seen = HashSet::new();
    admins
        .iter()
        .filter(|a| seen.insert(a.member_id.clone()))
        .cloned()
        .collect()
}

/// A member's memberships to store: one per department (first wins), with
/// their position in the member's list.
pub(crate) fn memberships(m: &Member) -> impl Iterator<Item = (i64, &DeptMembership)> {
    let mut seen = HashSet::new();
    m.depts
        .iter()
        .filter(move |d| seen.insert(d.dept_id))
        .enumerate()
        .map(|(i, d)| (i as i64, d))
}

/// Role member ids, sorted and unique.
pub(crate) fn role_member_ids(r: &Role) -> Vec<&str> {
    let mut ids: Vec<&str> = r.members.iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Department paths after a plan.
pub(crate) struct Paths {
    /// Path of every upserted department.
    pub upserted: HashMap<i64, String>,
    /// Departments not in the plan whose path changed (an ancestor moved).
    pub changed: Vec<(i64, String)>,
}

/// Computes materialized paths (`/root/.../self/`) for the tree that results
/// from applying `upserts` and `removed` to `existing` (id, parent, path).
/// A department whose parent is not in the store (the root, or the top of a
/// sync scope) starts a path; a cycle is cut where it closes.
pub(crate) fn compute_paths(
    existing: &[(i64, Option<i64>, String)],
    upserts: &[&Dept],
    removed: &[i64],
) -> Paths {
    let mut parent: HashMap<i64, Option<i64>> =
        existing.iter().map(|(id, p, _)| (*id, *p)).collect();
    for d in upserts {
        parent.insert(d.dept_id, d.parent_id);
    }
    for id in removed {
        parent.remove(id);
    }
    let mut memo: HashMap<i64, String> = HashMap::with_capacity(parent.len());
    let ids: Vec<i64> = parent.keys().copied().collect();
    for id in ids {
        if memo.contains_key(&id) {
            continue;
        }
        // Walk up to a known path or the top, then fill downwards.
        let mut chain = vec![id];
        let mut on_chain: HashSet<i64> = HashSet::from([id]);
        let mut base = String::from("/");
        let mut cur = id;
        while let Some(Some(p)) = parent.get(&cur) {
            if let Some(known) = memo.get(p) {
                base = known.clone();
                break;
            }
            if !parent.contains_key(p) || !on_chain.insert(*p) {
                break;
            }
            chain.push(*p);
            cur = *p;
        }
        for dept in chain.iter().rev() {
            base.push_str(&dept.to_string());
            base.push('/');
            memo.insert(*dept, base.clone());
        }
    }
    let upserted_ids: HashSet<i64> = upserts.iter().map(|d| d.dept_id).collect();
    let changed = existing
        .iter()
        .filter(|(id, _, _)| !upserted_ids.contains(id))
        .filter_map(|(id, _, old)| match memo.get(id) {
            Some(new) if new != old => Some((*id, new.clone())),
            _ => None,
        })
        .collect();
    let upserted = upserts
        .iter()
        .map(|d| (d.dept_id, memo[&d.dept_id].clone()))
        .collect();
    Paths { upserted, changed }
}

/// The local user a member ends up bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum UserRef {
    /// An existing user.
    Existing(i64),
    /// The n-th user created by this decision.
    New(usize),
}

/// A binding row to insert or update.
pub(crate) struct BindingWrite<'a> {
    pub member_id: &'a str,
    pub union_id: Option<&'a str>,
    pub user: UserRef,
    /// No binding row exists yet for this member (a plain insert).
    pub new: bool,
}

/// What binding a batch of members requires.
#[derive(Default)]
///
/// It borrows the members' ids and names rather than copying them: for a
/// first sync of 300,000 members that was four strings per member.
pub(crate) struct BindingDecision<'a> {
    /// Display names of users to create, in `UserRef::New` order.
    pub new_users: Vec<&'a str>,
    /// Binding rows to write.
    pub writes: Vec<BindingWrite<'a>>,
    /// Every member that is (or stays) bound, with its user.
    pub member_user: HashMap<&'a str, UserRef>,
    /// Identities that clash; those members keep what they had.
    pub conflicts: Vec<IdentityConflict>,
}

/// Existing bindings needed to decide.
pub(crate) struct ExistingBindings {
    /// The corp's bindings: member id -> (user, unionId).
    pub by_member: HashMap<String, (i64, Option<String>)>,
    /// For unionId providers: unionId -> user, over all orgs.
    pub by_union: HashMap<String, i64>,
}

/// Decides bindings for `members` of an org of `provider` (see the crate
/// docs for the rules).
pub(crate) fn decide_bindings<'a>(
    provider: &Provider,
    members: &[&'a Member],
    existing: ExistingBindings,
) -> BindingDecision<'a> {
    let ExistingBindings {
        by_member,
        by_union,
    } = existing;
    let mut d = BindingDecision::default();
    // Which member of this corp holds each user, to catch two member ids
    // claiming one person.
    let mut user_member: HashMap<UserRef, &str> = by_member
        .iter()
        .map(|(m, (u, _))| (UserRef::Existing(*u), m.as_str()))
        .collect();
    let mut union_ref: HashMap<&str, UserRef> = by_union
        .iter()
        .map(|(k, v)| (k.as_str(), UserRef::Existing(*v)))
        .collect();
    let by_union_id = provider.identity_by_union_id();
    for m in members {
        let bound = by_member.get(&m.member_id);
        let union = if by_union_id {
            m.union_id.as_deref().filter(|u| !u.is_empty())
        } else {
            None
        };
        let Some(union) = union else {
            match bound {
                Some((u, _)) => {
                    d.member_user.insert(&m.member_id, UserRef::Existing(*u));
                }
                None => {
                    let user = UserRef::New(d.new_users.len());
                    d.new_users.push(&m.name);
                    d.writes.push(BindingWrite {
                        member_id: &m.member_id,
                        union_id: None,
                        user,
                        new: true,
                    });
                    user_member.insert(user, &m.member_id);
                    d.member_user.insert(&m.member_id, user);
                }
            }
            continue;
        };
        let union_user = union_ref.get(union).copied();
        match bound {
            Some((u, old_union)) => {
                let mine = UserRef::Existing(*u);
                if let Some(old) = old_union.as_deref().filter(|o| *o != union) {
                    d.conflicts.push(IdentityConflict {
                        member_id: m.member_id.clone(),
                        message: format!(
                            "member {} is bound to local user {u} with unionId {old}, but the platform now reports unionId {union}; binding left unchanged",
                            m.member_id
                        ),
                    });
                    d.member_user.insert(&m.member_id, mine);
                    continue;
                }
                if let Some(other) = union_user.filter(|o| *o != mine) {
                    d.conflicts.push(IdentityConflict {
                        member_id: m.member_id.clone(),
                        message: format!(
                            "unionId {union} belongs to local user {}, but member {} is bound to local user {u}; not merged",
                            describe(other),
                            m.member_id
                        ),
                    });
                    d.member_user.insert(&m.member_id, mine);
                    continue;
                }
                if old_union.is_none() {
                    d.writes.push(BindingWrite {
                        member_id: &m.member_id,
                        union_id: Some(union),
                        user: mine,
                        new: false,
                    });
                    union_ref.insert(union, mine);
                }
                d.member_user.insert(&m.member_id, mine);
            }
            None => {
                let user = match union_user {
                    Some(existing) => {
                        if let Some(other) = user_member.get(&existing) {
                            if *other != m.member_id.as_str() {
                                d.conflicts.push(IdentityConflict {
                                    member_id: m.member_id.clone(),
                                    message: format!(
                                        "unionId {union} is already bound to member {other} of this organization (local user {}); member {} left unbound",
                                        describe(existing),
                                        m.member_id
                                    ),
                                });
                                continue;
                            }
                        }
                        existing
                    }
                    None => {
                        let user = UserRef::New(d.new_users.len());
                        d.new_users.push(&m.name);
                        union_ref.insert(union, user);
                        user
                    }
                };
                d.writes.push(BindingWrite {
                    member_id: &m.member_id,
                    union_id: Some(union),
                    user,
                    new: true,
                });
                user_member.insert(user, &m.member_id);
                d.member_user.insert(&m.member_id, user);
            }
        }
    }
    d
}

fn describe(u: UserRef) -> String {
    match u {
        UserRef::Existing(id) => id.to_string(),
        UserRef::New(_) => "(created in this run)".to_string(),
    }
}

/// Resolves a [`UserRef`] once new users have ids.
pub(crate) fn resolve(u: UserRef, new_ids: &[i64]) -> i64 {
    match u {
        UserRef::Existing(id) => id,
        UserRef::New(i) => new_ids[i],
    }
}

/// A stored department as read back.
pub(crate) struct DeptRow {
    pub dept: Dept,
    pub path: String,
}

/// A stored member as read back (without departments).
pub(crate) struct MemberRow {
    pub member: Member,
    pub user_id: Option<i64>,
}

/// A stored membership: member, seq, department membership.
pub(crate) struct MembershipRow {
    pub member_id: String,
    pub seq: i64,
    pub membership: DeptMembership,
}

/// Everything stored about one org, in deterministic order.
pub(crate) struct OrgRows {
    pub corp: CorpRecord,
    pub last_sync_at: Option<i64>,
    /// Ordered by dept id.
    pub depts: Vec<DeptRow>,
    /// Ordered by member id.
    pub members: Vec<MemberRow>,
    /// Ordered by member id, then position in the member's list.
    pub memberships: Vec<MembershipRow>,
    /// Ordered by group id.
    pub role_groups: Vec<RoleGroup>,
    /// Ordered by role id, members empty.
    pub roles: Vec<Role>,
    /// (role id, member id, origin) ordered by role, member, origin.
    pub role_members: Vec<(String, String, Origin)>,
    /// Upstream rows then local ones, each in stored order.
    pub admins: Vec<AdminRow>,
}

impl OrgRows {
    /// The stored state as a snapshot.
    pub(crate) fn into_snapshot(self) -> CorpSnapshot {
        let mut snap = CorpSnapshot::new(self.corp.corp_id);
        snap.depts = self
            .depts
            .into_iter()
            .map(|d| (d.dept.dept_id, d.dept))
            .collect();
        snap.members = self
            .members
            .into_iter()
            .map(|m| (m.member.member_id.clone(), m.member))
            .collect();
        for ms in self.memberships {
            if let Some(m) = snap.members.get_mut(&ms.member_id) {
                m.depts.push(ms.membership);
            }
        }
        snap.role_groups = self
            .role_groups
            .into_iter()
            .map(|g| (g.group_id.clone(), g))
            .collect();
        snap.roles = self
            .roles
            .into_iter()
            .map(|r| (r.role_id.clone(), r))
            .collect();
        // Only what syncs wrote: the planner must neither see nor remove
        // local rows.
        for (role, member, _) in self
            .role_members
            .into_iter()
            .filter(|r| r.2 == Origin::Upstream)
        {
            if let Some(r) = snap.roles.get_mut(&role) {
                r.members.push(member);
            }
        }
        snap.admins = Some(
            self.admins
                .into_iter()
                .filter(|a| a.origin == Origin::Upstream)
                .map(|a| Admin {
                    member_id: a.member_id,
                    level: a.level,
                })
                .collect(),
        );
        snap
    }

    /// The `getLocalCorpData` view (camelCase keys, deterministic order).
    /// Members listed: every current one (active, disabled, not activated),
    /// and those who left (offline) only with `include_offline`.
    pub(crate) fn into_local_corp_data(self, include_offline: bool) -> Value {
        let active: HashSet<&str> = self
            .members
            .iter()
            .filter(|m| include_offline || m.member.status != MemberStatus::Offline)
            .map(|m| m.member.member_id.as_str())
            .collect();
        let corp = json!({
            "fullName": self.corp.full_name,
            "title": self.corp.title,
            "corpType": self.corp.corp_type,
            "provider": self.corp.provider.as_str(),
            "corpId": self.corp.corp_id,
            "lastSyncAt": self.last_sync_at,
        });
        let user_list: Vec<Value> = self
            .members
            .iter()
            .filter(|m| active.contains(m.member.member_id.as_str()))
            .map(|m| {
                let x = &m.member;
                json!({
                    "userId": m.user_id,
                    "memberId": x.member_id,
                    "unionId": x.union_id,
                    "name": x.name,
                    "status": x.status.as_str(),
                    "position": x.position,
                    "jobNumber": x.job_number,
                    "mainDeptId": x.main_dept_id,
                    "hiredDate": x.hired_date,
                    "avatar": x.avatar,
                    "mobile": x.mobile,
                    "email": x.email,
                    "extra": x.extra,
                })
            })
            .collect();
        let dept_list: Vec<Value> = self
            .depts
            .iter()
            .map(|d| {
                json!({
                    "deptId": d.dept.dept_id,
                    "parentId": d.dept.parent_id,
                    "name": d.dept.name,
                    "order": d.dept.order,
                    "path": d.path,
                    "leaders": d.dept.leaders,
                })
            })
            .collect();
        let mut dm: Vec<&MembershipRow> = self
            .memberships
            .iter()
            .filter(|ms| active.contains(ms.member_id.as_str()))
            .collect();
        dm.sort_by(|a, b| {
            (a.membership.dept_id, &a.member_id).cmp(&(b.membership.dept_id, &b.member_id))
        });
        let dept_member_list: Vec<Value> = dm
            .iter()
            .map(|ms| {
                json!({
                    "deptId": ms.membership.dept_id,
                    "memberId": ms.member_id,
                    "order": ms.membership.order,
                    "isLeader": ms.membership.is_leader,
                })
            })
            .collect();
        let role_list: Vec<Value> = self
            .roles
            .iter()
            .map(|r| json!({"roleId": r.role_id, "groupId": r.group_id, "name": r.name}))
            .collect();
        let role_group_list: Vec<Value> = self
            .role_groups
            .iter()
            .map(|g| json!({"groupId": g.group_id, "name": g.name}))
            .collect();
        let role_member_set: Vec<Value> = self
            .role_members
            .iter()
            .map(|(r, m, o)| json!({"memberId": m, "roleId": r, "origin": o.as_str()}))
            .collect();
        let admin_list: Vec<Value> = self
            .admins
            .iter()
            .map(
                |a| json!({"memberId": a.member_id, "level": a.level, "origin": a.origin.as_str()}),
            )
            .collect();
        json!({
            "corp": corp,
            "userList": user_list,
            "deptList": dept_list,
            "deptMemberList": dept_member_list,
            "roleList": role_list,
            "roleGroupList": role_group_list,
            "roleMemberSet": role_member_set,
            "adminList": admin_list,
        })
    }
}

/// Admin rows in reading order: upstream then local, each by position.
pub(crate) fn sort_admins(rows: &mut [(AdminRow, i64)]) {
    rows.sort_by_key(|(a, seq)| (a.origin, *seq));
}

/// Parses a stored origin.
pub(crate) fn origin_parse(s: &str) -> StoreResult<Origin> {
    enum_parse(s, "origin")
}

/// A member's role rows in reading order: by role, upstream first.
pub(crate) fn sort_role_rows(rows: &mut [crate::api::RoleMemberRow]) {
    rows.sort_by(|a, b| (&a.role_id, a.origin).cmp(&(&b.role_id, b.origin)));
}

/// Counts per change kind as stored in a run (JSON object text).
pub(crate) fn counts_to_text(counts: &jit_org::ChangeCounts) -> String {
    serde_json::to_string(counts).unwrap_or_else(|_| "{}".into())
}

/// Parses stored counts.
pub(crate) fn counts_from_text(s: &str) -> jit_org::ChangeCounts {
    serde_json::from_str(s).unwrap_or_default()
}

/// A run's calls as stored (JSON object text; NULL when not known).
pub(crate) fn calls_to_text(calls: &Option<crate::api::RunCalls>) -> Option<String> {
    calls.as_ref().and_then(|c| serde_json::to_string(c).ok())
}

/// Parses a run's stored calls; unreadable text reads as not known rather
/// than failing the whole run history.
pub(crate) fn calls_from_text(s: Option<&str>) -> Option<crate::api::RunCalls> {
    s.and_then(|s| serde_json::from_str(s).ok())
}

/// Stored form of enums that serialize to a bare string.
pub(crate) fn enum_str<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Parses the stored form of a string enum.
pub(crate) fn enum_parse<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> StoreResult<T> {
    serde_json::from_value(Value::String(s.to_string())).map_err(|_| StoreError::Internal {
        operation: format!("read {what}"),
        message: format!("unknown stored value {s:?}"),
    })
}

/// Parses a stored member status.
pub(crate) fn status_parse(s: &str) -> StoreResult<MemberStatus> {
    MemberStatus::parse(s).ok_or_else(|| StoreError::Internal {
        operation: "read member".into(),
        message: format!("unknown stored status {s:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_fnv1a_and_never_change() {
        // Pinned values: a change here means replicas of different versions
        // would stop excluding each other.
        assert_eq!(lock_key(&[]), 0x6ee8_15b9_1013_fb68_u64 as i64);
        assert_eq!(
            lock_key(&["migrate", "public"]),
            0x2573_b3b7_ac04_d9aa_u64 as i64
        );
        assert_ne!(lock_key(&["ab", "c"]), lock_key(&["a", "bc"]));
    }

    #[test]
    fn paths_follow_parents_and_cut_cycles() {
        let a = Dept::new(1, None, "root");
        let b = Dept::new(5, Some(1), "b");
        let c = Dept::new(12, Some(5), "c");
        let orphan = Dept::new(40, Some(999), "scope top");
        let p = compute_paths(&[], &[&c, &b, &a, &orphan], &[]);
        assert_eq!(p.upserted[&12], "/1/5/12/");
        assert_eq!(p.upserted[&40], "/40/");
        let x = Dept::new(7, Some(8), "x");
        let y = Dept::new(8, Some(7), "y");
        let p = compute_paths(&[], &[&x, &y], &[]);
        assert!(p.upserted[&7].ends_with("/7/"));
        assert!(p.upserted[&8].ends_with("/8/"));
    }

    #[test]
    fn moving_a_department_rewrites_its_subtree_paths() {
        let existing = vec![
            (1, None, "/1/".to_string()),
            (2, Some(1), "/1/2/".to_string()),
            (3, Some(2), "/1/2/3/".to_string()),
            (4, Some(1), "/1/4/".to_string()),
        ];
        let moved = Dept::new(2, Some(4), "b");
        let p = compute_paths(&existing, &[&moved], &[]);
        assert_eq!(p.upserted[&2], "/1/4/2/");
        assert_eq!(p.changed, vec![(3, "/1/4/2/3/".to_string())]);
    }
}

/// Statements whose text is the same on both backends. Parameters are
/// written `$n` and appear in increasing order, which SQLite binds by
/// position exactly like PostgreSQL.
pub(crate) mod sql {
    pub const SELECT_CORP: &str = "SELECT full_name, title, corp_type, provider, corp_id, last_sync_at FROM corps WHERE full_name = $1";
    pub const UPSERT_CORP: &str = "INSERT INTO corps (full_name, title, corp_type, provider, corp_id) VALUES ($1, $2, $3, $4, $5) \
        ON CONFLICT (full_name) DO UPDATE SET title = excluded.title, corp_type = excluded.corp_type, provider = excluded.provider, corp_id = excluded.corp_id";
    pub const STAMP_SYNC: &str = "UPDATE corps SET last_sync_at = $1 WHERE full_name = $2";
    pub const SELECT_DEPT_TREE: &str = "SELECT dept_id, parent_id, path FROM depts WHERE corp = $1";
    /// The root department: `parent_id IS NULL`, smallest id (the key's order).
    pub const SELECT_ROOT_DEPT: &str =
        "SELECT dept_id, parent_id, name, sort_order, leaders, path FROM depts \
        WHERE corp = $1 AND parent_id IS NULL ORDER BY dept_id LIMIT 1";
    pub const SELECT_DEPTS: &str =
        "SELECT dept_id, parent_id, name, sort_order, leaders, path FROM depts WHERE corp = $1";
    pub const SELECT_MEMBERS: &str = "SELECT member_id, user_id, union_id, name, status, position, job_number, main_dept_id, hired_date, avatar, mobile, email, extra FROM members WHERE corp = $1";
    pub const SELECT_MEMBERSHIPS: &str =
        "SELECT member_id, dept_id, sort_order, is_leader, seq FROM dept_members WHERE corp = $1";
    pub const SELECT_ROLE_GROUPS: &str = "SELECT group_id, name FROM role_groups WHERE corp = $1";
    pub const SELECT_ROLES: &str = "SELECT role_id, group_id, name FROM roles WHERE corp = $1";
    pub const SELECT_ROLE_MEMBERS: &str =
        "SELECT role_id, member_id, origin FROM role_members WHERE corp = $1";
    /// Ordered by [`super::sort_admins`].
    pub const SELECT_ADMINS: &str =
        "SELECT member_id, level, origin, seq FROM admins WHERE corp = $1";
    pub const SELECT_CORP_BINDINGS: &str =
        "SELECT member_id, user_id, union_id FROM auth_bindings WHERE provider = $1 AND corp_id = $2";
    pub const SELECT_UNION_USERS: &str = "SELECT union_id, MIN(user_id) FROM auth_bindings WHERE provider = $1 AND union_id IS NOT NULL GROUP BY union_id";
    pub const DEPT_COLUMNS: &str = "corp, dept_id, parent_id, name, sort_order, path, leaders";
    pub const DEPT_CONFLICT: &str = "ON CONFLICT (corp, dept_id) DO UPDATE SET parent_id = excluded.parent_id, name = excluded.name, \
        sort_order = excluded.sort_order, path = excluded.path, leaders = excluded.leaders";
    pub const MEMBER_COLUMNS: &str = "corp, member_id, user_id, union_id, name, status, position, job_number, main_dept_id, hired_date, avatar, mobile, email, extra";
    /// Unknown (NULL) never overwrites a stored value.
    pub const MEMBER_CONFLICT: &str = "ON CONFLICT (corp, member_id) DO UPDATE SET \
        user_id = COALESCE(excluded.user_id, members.user_id), \
        union_id = COALESCE(excluded.union_id, members.union_id), \
        name = excluded.name, status = excluded.status, \
        position = COALESCE(excluded.position, members.position), \
        job_number = COALESCE(excluded.job_number, members.job_number), \
        main_dept_id = COALESCE(excluded.main_dept_id, members.main_dept_id), \
        hired_date = COALESCE(excluded.hired_date, members.hired_date), \
        avatar = COALESCE(excluded.avatar, members.avatar), \
        mobile = COALESCE(excluded.mobile, members.mobile), \
        email = COALESCE(excluded.email, members.email), \
        extra = COALESCE(excluded.extra, members.extra)";
    pub const BINDING_COLUMNS: &str =
        "provider, corp_id, member_id, union_id, user_id, created_at, updated_at";
    pub const BINDING_CONFLICT: &str = "ON CONFLICT (provider, corp_id, member_id) DO UPDATE SET \
        union_id = COALESCE(excluded.union_id, auth_bindings.union_id), user_id = excluded.user_id, updated_at = excluded.updated_at";
    pub const MEMBERSHIP_COLUMNS: &str = "corp, member_id, dept_id, seq, sort_order, is_leader";
    pub const OFFLINE_MEMBER: &str = "UPDATE members SET status = 'offline' WHERE corp = $1 AND member_id = $2 AND status <> 'offline'";
    pub const GROUP_UPSERT: &str =
        "INSERT INTO role_groups (corp, group_id, name) VALUES ($1, $2, $3) \
        ON CONFLICT (corp, group_id) DO UPDATE SET name = excluded.name";
    pub const GROUP_DELETE: &str = "DELETE FROM role_groups WHERE corp = $1 AND group_id = $2";
    pub const ROLE_UPSERT: &str = "INSERT INTO roles (corp, role_id, group_id, name) VALUES ($1, $2, $3, $4) \
        ON CONFLICT (corp, role_id) DO UPDATE SET group_id = excluded.group_id, name = excluded.name";
    pub const ROLE_DELETE: &str = "DELETE FROM roles WHERE corp = $1 AND role_id = $2";
    /// A sync replaces only the upstream holders of a role.
    pub const ROLE_MEMBERS_CLEAR: &str =
        "DELETE FROM role_members WHERE corp = $1 AND role_id = $2 AND origin = 'upstream'";
    /// The columns of a role holder, for the backends' multi-row inserts.
    pub const ROLE_MEMBER_COLUMNS: &str = "corp, role_id, member_id, origin";
    pub const ROLE_MEMBER_INSERT: &str =
        "INSERT INTO role_members (corp, role_id, member_id, origin) VALUES ($1, $2, $3, $4)";
    pub const ADMINS_CLEAR: &str = "DELETE FROM admins WHERE corp = $1 AND origin = $2";
    pub const ADMIN_INSERT: &str =
        "INSERT INTO admins (corp, member_id, level, seq, origin) VALUES ($1, $2, $3, $4, $5)";
    pub const INSERT_RUN: &str = "INSERT INTO sync_runs (corp, started_at, finished_at, outcome, counts, error, notes, rows_written, \
        kind, missed_by_events, calls) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING run_id";
    /// Finishes a begun run; `started_at` and `corp` stay as recorded.
    pub const FINISH_RUN: &str = "UPDATE sync_runs SET finished_at = $1, outcome = $2, counts = $3, error = $4, notes = $5, \
        rows_written = $6, missed_by_events = $7, calls = $8 WHERE run_id = $9 AND corp = $10";
    pub const NEWEST_RUNNING_RUN: &str = "SELECT run_id, started_at FROM sync_runs \
        WHERE corp = $1 AND outcome = 'running' ORDER BY run_id DESC LIMIT 1";
    /// Runs left `running` by a process that no longer holds the sync lock.
    pub const FAIL_RUNNING_RUNS: &str =
        "UPDATE sync_runs SET outcome = 'failed', error = $1 WHERE corp = $2 AND outcome = 'running'";
    pub const CLEAR_RUN_CHANGES: &str = "DELETE FROM run_changes WHERE run_id = $1";
    pub const SELECT_RUN: &str = "SELECT run_id, corp, started_at, finished_at, outcome, counts, error, notes, kind, missed_by_events, calls FROM sync_runs \
        WHERE run_id = $1";
    pub const SELECT_RUNS: &str = "SELECT run_id, corp, started_at, finished_at, outcome, counts, error, notes, kind, missed_by_events, calls FROM sync_runs \
        WHERE corp = $1 ORDER BY run_id DESC LIMIT $2";
    pub const SELECT_RUN_CHANGES: &str =
        "SELECT object, object_id, kind, reason FROM run_changes WHERE run_id = $1 ORDER BY seq";
    pub const MEMBER_EXISTS: &str =
        "SELECT COUNT(*) FROM members WHERE corp = $1 AND member_id = $2";
    pub const CORP_EXISTS: &str = "SELECT COUNT(*) FROM corps WHERE full_name = $1";
    /// `setUserRole` replaces only the member's local holdings.
    pub const MEMBER_ROLES_CLEAR: &str =
        "DELETE FROM role_members WHERE corp = $1 AND member_id = $2 AND origin = 'local'";
    pub const ROLE_EXISTS: &str = "SELECT COUNT(*) FROM roles WHERE corp = $1 AND role_id = $2";
    pub const MEMBER_ROLES: &str =
        "SELECT role_id, origin FROM role_members WHERE corp = $1 AND member_id = $2";
    pub const SIGNATURE_GET: &str =
        "SELECT signature FROM signatures WHERE corp = $1 AND member_id = $2";
    pub const SIGNATURE_SAVE: &str = "INSERT INTO signatures (corp, member_id, signature, updated_at) VALUES ($1, $2, $3, $4) \
        ON CONFLICT (corp, member_id) DO UPDATE SET signature = excluded.signature, updated_at = excluded.updated_at";
    pub const LOCAL_USER_BY_UNION: &str =
        "SELECT MIN(user_id) FROM auth_bindings WHERE provider = $1 AND union_id = $2";
    pub const LOCAL_USER_BY_MEMBER: &str =
        "SELECT user_id FROM auth_bindings WHERE provider = $1 AND corp_id = $2 AND member_id = $3";
    pub const MEMBERSHIPS_OF_USER: &str =
        "SELECT corp, member_id, status FROM members WHERE user_id = $1";
    pub const USER_COUNT: &str = "SELECT COUNT(*) FROM users";
    pub const LAST_SYNC: &str = "SELECT last_sync_at FROM corps WHERE full_name = $1";
    /// One path-prefix query over the subtree.
    pub const SUBTREE_MEMBERS: &str = "SELECT DISTINCT dm.member_id FROM depts d \
        JOIN dept_members dm ON dm.corp = d.corp AND dm.dept_id = d.dept_id \
        JOIN members m ON m.corp = dm.corp AND m.member_id = dm.member_id \
        WHERE d.corp = $1 AND m.status <> 'offline' \
        AND d.path LIKE (SELECT p.path FROM depts p WHERE p.corp = $1 AND p.dept_id = $2) || '%'";
    pub const DEPT_IDS: &str = "SELECT dept_id FROM depts WHERE corp = $1";
    pub const DEPT_MEMBERS_CLEAR: &str =
        "DELETE FROM dept_members WHERE corp = $1 AND dept_id = $2";
    pub const MEMBER_IDS: &str = "SELECT member_id FROM members WHERE corp = $1";
    pub const MEMBER_SET_USER: &str =
        "UPDATE members SET user_id = $1 WHERE corp = $2 AND member_id = $3";
}

impl OrgRows {
    /// Puts every list in byte order of its keys, so both backends (whose
    /// text collations differ) return the same thing.
    pub(crate) fn sort(&mut self) {
        self.depts.sort_by_key(|d| d.dept.dept_id);
        self.members
            .sort_by(|a, b| a.member.member_id.cmp(&b.member.member_id));
        self.role_groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        self.roles.sort_by(|a, b| a.role_id.cmp(&b.role_id));
        self.role_members.sort();
        self.memberships
            .sort_by(|a, b| (&a.member_id, a.seq).cmp(&(&b.member_id, b.seq)));
    }
}

/// Counts to store for a run: the caller's, or derived from the change lines.
pub(crate) fn run_counts(
    given: &jit_org::ChangeCounts,
    changes: &[jit_org::Change],
) -> jit_org::ChangeCounts {
    if !given.is_empty() || changes.is_empty() {
        return given.clone();
    }
    jit_org::count_changes(changes)
}

/// Checks, after the writes, that every membership the plan wrote names a
/// department the org has (`stored`: read back inside the transaction).
/// Memberships of other members cannot dangle: removing a department
/// removes its memberships. A dangling one is a bad plan:
/// [`StoreError::Invalid`] naming the member and the department.
pub(crate) fn check_memberships(
    op: &str,
    members: &[&Member],
    stored: &HashSet<i64>,
) -> StoreResult<()> {
    for m in members {
        if let Some(d) = m.depts.iter().find(|d| !stored.contains(&d.dept_id)) {
            return Err(StoreError::Invalid(format!(
                "{op}: member {} is placed in department {}, which is neither stored nor in the plan; nothing was written",
                m.member_id, d.dept_id
            )));
        }
    }
    Ok(())
}

/// The error for finishing a run that is not in the store.
pub(crate) fn unknown_run(run: &crate::api::SyncRun) -> StoreError {
    StoreError::Invalid(format!(
        "run {} of {} is not in the store (begin_run returns the id to finish)",
        run.run_id, run.corp
    ))
}

/// A stored run kind; an unknown one is a store that a newer binary wrote.
pub(crate) fn run_kind(s: &str) -> StoreResult<crate::api::RunKind> {
    crate::api::RunKind::parse(s)
        .ok_or_else(|| StoreError::Invalid(format!("unknown run kind {s:?} in sync_runs")))
}

/// The run as [`crate::CorpStore::begin_run`] records it.
pub(crate) fn running(run: &crate::api::SyncRun) -> crate::api::SyncRun {
    crate::api::SyncRun {
        run_id: 0,
        outcome: crate::api::RunOutcome::Running,
        ..run.clone()
    }
}

/// When an applied run counts as the corp's last successful sync.
pub(crate) fn sync_stamp(run: &crate::api::SyncRun) -> i64 {
    if run.finished_at > 0 {
        run.finished_at
    } else {
        now_ms()
    }
}
