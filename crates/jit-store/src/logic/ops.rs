//! Every write operation of the store, written once.
//!
//! The split follows sqlx's Any driver: a backend supplies primitives (the
//! [`Tx`] trait: one open transaction, statements in its own dialect and bulk
//! technique: `COPY` and `UNNEST` arrays on PostgreSQL, cached prepared
//! multi-row inserts on SQLite), and the functions here compose them: the
//! order of the steps, every check, what counts as a row written. A backend
//! opens the transaction, calls one of these, and commits on `Ok` (dropping
//! the transaction on `Err` rolls everything back).
//!
//! The primitives are `async` because PostgreSQL's are; SQLite's never wait
//! (see `sqlite::run_ready`).

use super::{
    check_memberships, compute_paths, decide_bindings, resolve, role_member_ids, sync_stamp,
    BindingWrite, ExistingBindings, Normalized,
};
use crate::api::{
    ApplyReport, IdentityConflict, Origin, RoleMemberRow, StoreError, StoreResult, SyncRun,
};
use jit_org::{Admin, Change, CorpRecord, Dept, Member, Role, RoleGroup, SyncPlan};
use std::collections::{HashMap, HashSet};

/// A binding row to write, its user resolved.
pub(crate) struct BindingRow<'a> {
    /// The member.
    pub member_id: &'a str,
    /// DingTalk unionId, when known.
    pub union_id: Option<&'a str>,
    /// The local user.
    pub user_id: i64,
    /// No row exists yet (a plain insert; otherwise an upsert).
    pub new: bool,
}

/// What a backend provides inside one open transaction. Every method names
/// the failing operation in its errors (the `Tx` value knows it). Writes
/// return the rows they changed.
pub(crate) trait Tx {
    /// The operation this transaction serves, for error messages.
    fn operation(&self) -> &str;

    /// Whether the corp is stored.
    async fn corp_exists(&mut self, corp: &str) -> StoreResult<bool>;
    /// Whether the member is stored in the corp.
    async fn member_exists(&mut self, corp: &str, member_id: &str) -> StoreResult<bool>;
    /// Whether the role is stored in the corp.
    async fn role_exists(&mut self, corp: &str, role_id: &str) -> StoreResult<bool>;
    /// (dept id, parent, path) of every stored department.
    async fn dept_tree(&mut self, corp: &str) -> StoreResult<Vec<(i64, Option<i64>, String)>>;
    /// Ids of the stored departments.
    async fn dept_ids(&mut self, corp: &str) -> StoreResult<HashSet<i64>>;
    /// Ids of the stored members.
    async fn member_ids(&mut self, corp: &str) -> StoreResult<HashSet<String>>;
    /// The corp's bindings: member id -> (user, unionId).
    async fn corp_bindings(
        &mut self,
        provider: &str,
        corp_id: &str,
    ) -> StoreResult<HashMap<String, (i64, Option<String>)>>;
    /// unionId -> user over every org of the provider.
    async fn union_users(&mut self, provider: &str) -> StoreResult<HashMap<String, i64>>;
    /// (role id, origin) of every role row of a member.
    async fn member_roles(
        &mut self,
        corp: &str,
        member_id: &str,
    ) -> StoreResult<Vec<(String, Origin)>>;

    /// Inserts or updates the corp record.
    async fn upsert_corp(&mut self, corp: &CorpRecord) -> StoreResult<()>;
    /// Upserts departments with their computed paths.
    async fn upsert_depts(
        &mut self,
        corp: &str,
        depts: &[&Dept],
        paths: &HashMap<i64, String>,
    ) -> StoreResult<u64>;
    /// Deletes departments and their memberships.
    async fn remove_depts(&mut self, corp: &str, ids: &[i64]) -> StoreResult<u64>;
    /// Rewrites the paths of departments not in the plan.
    async fn set_dept_paths(&mut self, corp: &str, changed: &[(i64, String)]) -> StoreResult<u64>;
    /// Creates users named `names` (in order); returns their ids and the rows written.
    async fn insert_users(&mut self, names: &[&str], now: i64) -> StoreResult<(Vec<i64>, u64)>;
    /// Writes binding rows (inserts new ones, upserts the others).
    async fn write_bindings(
        &mut self,
        provider: &str,
        corp_id: &str,
        rows: &[BindingRow<'_>],
        now: i64,
    ) -> StoreResult<u64>;
    /// Sets the local user of stored members.
    async fn set_member_users(&mut self, corp: &str, users: &[(&str, i64)]) -> StoreResult<u64>;
    /// Deletes every membership of the given members.
    async fn clear_memberships(&mut self, corp: &str, member_ids: &[&str]) -> StoreResult<u64>;
    /// Writes members: `fresh` are not stored yet (plain inserts), `known`
    /// are (upserts where unknown fields keep the stored value).
    async fn write_members(
        &mut self,
        corp: &str,
        fresh: &[&Member],
        known: &[&Member],
        users: &HashMap<&str, i64>,
    ) -> StoreResult<u64>;
    /// Inserts the memberships of `members` (whose old ones are gone).
    async fn insert_memberships(&mut self, corp: &str, members: &[&Member]) -> StoreResult<u64>;
    /// Marks members offline (already-offline ones do not count).
    async fn offline_members(&mut self, corp: &str, member_ids: &[String]) -> StoreResult<u64>;
    /// Upserts a role group.
    async fn upsert_role_group(&mut self, corp: &str, group: &RoleGroup) -> StoreResult<u64>;
    /// Deletes a role group.
    async fn remove_role_group(&mut self, corp: &str, group_id: &str) -> StoreResult<u64>;
    /// Upserts a role (not its holders).
    async fn upsert_role(&mut self, corp: &str, role: &Role) -> StoreResult<u64>;
    /// Deletes a role (its holdings of every origin go with it).
    async fn remove_role(&mut self, corp: &str, role_id: &str) -> StoreResult<u64>;
    /// Replaces the upstream holders of a role with `member_ids`.
    async fn replace_upstream_holders(
        &mut self,
        corp: &str,
        role_id: &str,
        member_ids: &[&str],
    ) -> StoreResult<u64>;
    /// Replaces the local holdings of a member with `role_ids`.
    async fn replace_local_roles(
        &mut self,
        corp: &str,
        member_id: &str,
        role_ids: &[&str],
    ) -> StoreResult<u64>;
    /// Replaces the admin rows of one origin (order kept).
    async fn write_admins(
        &mut self,
        corp: &str,
        admins: &[Admin],
        origin: Origin,
    ) -> StoreResult<u64>;
    /// Stamps the corp's last successful sync.
    async fn stamp_sync(&mut self, corp: &str, at: i64) -> StoreResult<()>;
    /// Inserts the run (`run_id` 0) or finishes the begun run, with its
    /// change lines; returns its id ([`super::unknown_run`] if not stored).
    async fn write_run(
        &mut self,
        run: &SyncRun,
        changes: &[Change],
        rows_written: u64,
    ) -> StoreResult<i64>;
}

/// [`StoreError::UnknownCorp`] unless the corp is stored.
pub(crate) async fn require_corp(tx: &mut impl Tx, corp: &str) -> StoreResult<()> {
    if tx.corp_exists(corp).await? {
        Ok(())
    } else {
        Err(StoreError::UnknownCorp(corp.to_string()))
    }
}

/// [`StoreError::UnknownCorp`] / [`StoreError::UnknownMember`] unless both
/// are stored.
pub(crate) async fn require_member(
    tx: &mut impl Tx,
    corp: &str,
    member_id: &str,
) -> StoreResult<()> {
    require_corp(tx, corp).await?;
    if tx.member_exists(corp, member_id).await? {
        Ok(())
    } else {
        Err(StoreError::UnknownMember {
            corp: corp.to_string(),
            member_id: member_id.to_string(),
        })
    }
}

/// Applies a plan (see [`crate::CorpStore::apply_plan`]): corp, departments
/// and paths, bindings, members and memberships, the membership check,
/// offlined members, role groups, roles and their upstream holders,
/// removals, the upstream admin list, the sync stamp, the run record.
pub(crate) async fn apply(
    tx: &mut impl Tx,
    corp: &CorpRecord,
    plan: &SyncPlan,
    run: &SyncRun,
) -> StoreResult<ApplyReport> {
    let fname = corp.full_name.as_str();
    tx.upsert_corp(corp).await?;
    let n = Normalized::new(plan);
    let mut rows: u64 = 0;

    if !n.depts.is_empty() || !plan.remove_depts.is_empty() {
        let existing = tx.dept_tree(fname).await?;
        let paths = compute_paths(&existing, &n.depts, &plan.remove_depts);
        if !n.depts.is_empty() {
            rows += tx.upsert_depts(fname, &n.depts, &paths.upserted).await?;
        }
        if !plan.remove_depts.is_empty() {
            rows += tx.remove_depts(fname, &plan.remove_depts).await?;
        }
        if !paths.changed.is_empty() {
            rows += tx.set_dept_paths(fname, &paths.changed).await?;
        }
    }

    let mut conflicts = Vec::new();
    if !n.members.is_empty() {
        let (member_user, c) = bind_members(tx, corp, &n.members, &mut rows).await?;
        conflicts = c;
        // Only members already stored can have memberships to replace.
        let stored = tx.member_ids(fname).await?;
        let (fresh, known): (Vec<&Member>, Vec<&Member>) = n
            .members
            .iter()
            .partition(|m| !stored.contains(&m.member_id));
        if !known.is_empty() {
            let ids: Vec<&str> = known.iter().map(|m| m.member_id.as_str()).collect();
            rows += tx.clear_memberships(fname, &ids).await?;
        }
        rows += tx
            .write_members(fname, &fresh, &known, &member_user)
            .await?;
        rows += tx.insert_memberships(fname, &n.members).await?;
        // After the writes, against what the org now has (one read instead
        // of a per-row foreign key).
        let depts = tx.dept_ids(fname).await?;
        check_memberships(tx.operation(), &n.members, &depts)?;
    }

    if !plan.offline_members.is_empty() {
        rows += tx.offline_members(fname, &plan.offline_members).await?;
    }
    for g in &n.role_groups {
        rows += tx.upsert_role_group(fname, g).await?;
    }
    for r in &n.roles {
        rows += tx.upsert_role(fname, r).await?;
        rows += tx
            .replace_upstream_holders(fname, &r.role_id, &role_member_ids(r))
            .await?;
    }
    for id in &plan.remove_roles {
        rows += tx.remove_role(fname, id).await?;
    }
    for id in &plan.remove_role_groups {
        rows += tx.remove_role_group(fname, id).await?;
    }
    if let Some(admins) = &n.admins {
        rows += tx.write_admins(fname, admins, Origin::Upstream).await?;
    }
    tx.stamp_sync(fname, sync_stamp(run)).await?;
    let run_id = tx.write_run(run, &plan.changes, rows).await?;
    Ok(ApplyReport {
        run_id,
        rows_written: rows,
        conflicts,
    })
}

/// Binds `members` to local users (creating users as needed); returns
/// member -> user and the conflicts, and adds the rows written to `rows`.
async fn bind_members<'a>(
    tx: &mut impl Tx,
    corp: &CorpRecord,
    members: &[&'a Member],
    rows: &mut u64,
) -> StoreResult<(HashMap<&'a str, i64>, Vec<IdentityConflict>)> {
    let provider = corp.provider.as_str();
    let by_member = tx.corp_bindings(provider, &corp.corp_id).await?;
    let by_union = if corp.provider.identity_by_union_id() {
        tx.union_users(provider).await?
    } else {
        HashMap::new()
    };
    let d = decide_bindings(
        &corp.provider,
        members,
        ExistingBindings {
            by_member,
            by_union,
        },
    );
    let now = super::now_ms();
    let mut new_ids = Vec::new();
    if !d.new_users.is_empty() {
        let (ids, n) = tx.insert_users(&d.new_users, now).await?;
        new_ids = ids;
        *rows += n;
    }
    let writes: Vec<BindingRow<'_>> = d
        .writes
        .iter()
        .map(|w: &BindingWrite| BindingRow {
            member_id: w.member_id,
            union_id: w.union_id,
            user_id: resolve(w.user, &new_ids),
            new: w.new,
        })
        .collect();
    if !writes.is_empty() {
        *rows += tx
            .write_bindings(provider, &corp.corp_id, &writes, now)
            .await?;
    }
    let member_user = d
        .member_user
        .iter()
        .map(|(m, u)| (*m, resolve(*u, &new_ids)))
        .collect();
    Ok((member_user, d.conflicts))
}

/// `bulkRegister`: binds members without writing member rows (stored
/// members get their user id).
pub(crate) async fn bulk_register(
    tx: &mut impl Tx,
    corp: &CorpRecord,
    members: &[Member],
) -> StoreResult<Vec<IdentityConflict>> {
    let refs: Vec<&Member> = members.iter().collect();
    let mut rows = 0;
    let (member_user, conflicts) = bind_members(tx, corp, &refs, &mut rows).await?;
    let pairs: Vec<(&str, i64)> = member_user.iter().map(|(m, u)| (*m, *u)).collect();
    if !pairs.is_empty() {
        tx.set_member_users(&corp.full_name, &pairs).await?;
    }
    Ok(conflicts)
}

/// `setUserRole`: replaces the member's local holdings; returns every role
/// row of the member.
pub(crate) async fn set_member_roles(
    tx: &mut impl Tx,
    corp: &str,
    member_id: &str,
    role_ids: &[String],
) -> StoreResult<Vec<RoleMemberRow>> {
    require_member(tx, corp, member_id).await?;
    for r in role_ids {
        if !tx.role_exists(corp, r).await? {
            return Err(StoreError::Invalid(format!(
                "role {r} is not in organization {corp}"
            )));
        }
    }
    let mut sorted: Vec<&str> = role_ids.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    tx.replace_local_roles(corp, member_id, &sorted).await?;
    let mut out: Vec<RoleMemberRow> = tx
        .member_roles(corp, member_id)
        .await?
        .into_iter()
        .map(|(role_id, origin)| RoleMemberRow {
            member_id: member_id.to_string(),
            role_id,
            origin,
        })
        .collect();
    super::sort_role_rows(&mut out);
    Ok(out)
}

/// `offlineMember`: every id must be a member; returns how many changed.
pub(crate) async fn offline_members(
    tx: &mut impl Tx,
    corp: &str,
    member_ids: &[String],
) -> StoreResult<usize> {
    for id in member_ids {
        require_member(tx, corp, id).await?;
    }
    if member_ids.is_empty() {
        return Ok(0);
    }
    Ok(tx.offline_members(corp, member_ids).await? as usize)
}

/// `setAdmin`: replaces the local admin list; every admin must be a member.
pub(crate) async fn set_admins(tx: &mut impl Tx, corp: &str, admins: &[Admin]) -> StoreResult<()> {
    for a in admins {
        require_member(tx, corp, &a.member_id).await?;
    }
    tx.write_admins(corp, admins, Origin::Local).await?;
    Ok(())
}
