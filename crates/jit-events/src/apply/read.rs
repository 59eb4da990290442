//! Targeted reads: the objects a batch names, read from the platform now and
//! laid over the stored org ([`jit_sync::ChangeSource`]).

use super::{Targets, COALESCE_MIN};
use futures_util::stream::{self, StreamExt};
use jit_apiclient::ApiError;
use jit_corps::CorpClient;
use jit_dingtalk::DingTalkClient;
use jit_org::{
    Admin, CorpSnapshot, Dept, FetchOptions, FetchStats, Member, Platform, Provider, Role,
    RoleGroup,
};
use jit_sync::{ChangeSource, SourceError};
use jit_wecom::WecomClient;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How many reads of one batch run at once.
const CONCURRENCY: usize = 8;

/// WeCom: userid not found.
const WECOM_NO_USER: i64 = 60111;
/// WeCom: department not found (60003) / invalid department (60123).
const WECOM_NO_DEPT: [i64; 2] = [60003, 60123];
/// WeCom: invalid tagid (the tag was deleted).
const WECOM_NO_TAG: i64 = 40068;
/// DingTalk: user not found.
const DING_NO_USER: i64 = 60121;
/// DingTalk: department not found.
const DING_NO_DEPT: i64 = 60003;
/// DingTalk: role not found.
const DING_NO_ROLE: i64 = 33011;
/// Both: outside the app's visible range — a full sync would not see the
/// object either.
const OUT_OF_RANGE: [i64; 2] = [60011, 50004];
/// Admin-list answers that mean the app may not read admins at all (a
/// standing refusal the full sync records as a note, not a failed read).
const ADMINS_REFUSED: [i64; 3] = [48002, 60011, 43007];
/// DingTalk's built-in admin roles, whose holders follow the admin list
/// without an event of their own.
const DING_ADMIN_ROLES: [&str; 2] = ["主管理员", "子管理员"];

/// Reads the objects events name, with the org's own platform client (its
/// token cache, rate budget and statistics).
#[derive(Debug, Clone)]
pub struct EventReader {
    client: CorpClient,
}

impl EventReader {
    /// A reader over the org's client.
    pub fn new(client: CorpClient) -> EventReader {
        EventReader { client }
    }

    /// The platform it reads.
    pub fn platform(&self) -> Platform {
        match self.client {
            CorpClient::Wecom(_) => Platform::Wecom,
            CorpClient::DingTalk(_) => Platform::DingTalk,
        }
    }

    /// Cumulative call statistics of the client.
    pub fn stats(&self) -> FetchStats {
        self.client.stats()
    }

    /// The engine's source for one batch's targets.
    pub(super) fn changes(&self, targets: Targets) -> ChangeRead {
        ChangeRead {
            client: self.client.clone(),
            targets,
        }
    }
}

/// One batch's reads, as the engine's [`ChangeSource`].
pub(super) struct ChangeRead {
    client: CorpClient,
    targets: Targets,
}

/// What reading one object answered.
enum Found<T> {
    Is(T),
    Gone,
}

fn found<T>(r: Result<T, ApiError>, gone: &[i64]) -> Result<Found<T>, SourceError> {
    match r {
        Ok(v) => Ok(Found::Is(v)),
        Err(e)
            if e.errcode()
                .is_some_and(|c| gone.contains(&c) || OUT_OF_RANGE.contains(&c)) =>
        {
            Ok(Found::Gone)
        }
        Err(e) => Err(SourceError::platform(e)),
    }
}

impl ChangeRead {
    async fn user(&self, id: &str) -> Result<Found<Member>, SourceError> {
        match &self.client {
            CorpClient::Wecom(c) => found(c.user_get(id).await, &[WECOM_NO_USER]),
            CorpClient::DingTalk(c) => found(c.user_get(id).await, &[DING_NO_USER]),
        }
    }

    async fn dept(&self, id: i64) -> Result<Found<Dept>, SourceError> {
        match &self.client {
            CorpClient::Wecom(c) => found(c.department_get(id).await, &WECOM_NO_DEPT),
            CorpClient::DingTalk(c) => found(c.department_get(id).await, &[DING_NO_DEPT]),
        }
    }

    /// A department's members, complete records only: a DingTalk listing
    /// states order and leader flag for the listed department alone, so a
    /// member of several departments is left to `user/get`.
    async fn dept_members(&self, id: i64) -> Result<Vec<Member>, SourceError> {
        match &self.client {
            CorpClient::Wecom(c) => c.user_list(id).await.map_err(SourceError::platform),
            CorpClient::DingTalk(c) => Ok(c
                .user_list(id)
                .await
                .map_err(SourceError::platform)?
                .into_iter()
                .map(|l| l.member)
                .filter(|m| m.depts.len() == 1)
                .collect()),
        }
    }

    /// Members named by the batch, coalesced: a department where
    /// [`COALESCE_MIN`] of them are known to sit (WeCom's `Department`, or
    /// the stored memberships) is read by its member list first; the rest
    /// are read with `user/get`, [`CONCURRENCY`] at a time, and as soon as
    /// [`COALESCE_MIN`] of those answers name one department (a department
    /// moved at once, a burst of hires) that department's list is read for
    /// all that remain.
    async fn read_members(
        &self,
        local: &CorpSnapshot,
    ) -> Result<BTreeMap<String, Found<Member>>, SourceError> {
        let t = &self.targets;
        let mut hinted: BTreeMap<i64, usize> = BTreeMap::new();
        for id in &t.members {
            let depts: Vec<i64> = match t.member_depts.get(id) {
                Some(d) => d.clone(),
                None => local
                    .members
                    .get(id)
                    .map(|m| m.depts.iter().map(|d| d.dept_id).collect())
                    .unwrap_or_default(),
            };
            for d in depts {
                *hinted.entry(d).or_default() += 1;
            }
        }
        let mut listed: BTreeSet<i64> = BTreeSet::new();
        let mut to_list: Vec<i64> = hinted
            .into_iter()
            .filter(|(_, n)| *n >= COALESCE_MIN)
            .map(|(d, _)| d)
            .collect();
        let mut out: BTreeMap<String, Found<Member>> = BTreeMap::new();
        let mut seen_in: BTreeMap<i64, usize> = BTreeMap::new();
        loop {
            listed.extend(to_list.iter().copied());
            let lists: Vec<_> = stream::iter(std::mem::take(&mut to_list))
                .map(|d| self.dept_members(d))
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            for list in lists {
                for m in list? {
                    if t.members.contains(&m.member_id) {
                        out.insert(m.member_id.clone(), Found::Is(m));
                    }
                }
            }
            let next: Vec<String> = t
                .members
                .iter()
                .filter(|id| !out.contains_key(*id))
                .take(CONCURRENCY)
                .cloned()
                .collect();
            if next.is_empty() {
                return Ok(out);
            }
            let reads: Vec<_> = stream::iter(next)
                .map(|id| async move {
                    let r = self.user(&id).await;
                    (id, r)
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            for (id, r) in reads {
                let r = r?;
                if let Found::Is(m) = &r {
                    for d in &m.depts {
                        let n = seen_in.entry(d.dept_id).or_default();
                        *n += 1;
                        if *n >= COALESCE_MIN && !listed.contains(&d.dept_id) {
                            to_list.push(d.dept_id);
                            listed.insert(d.dept_id);
                        }
                    }
                }
                out.insert(id, r);
            }
            // Listing is worth it only while enough members remain unread.
            let remaining = t.members.len() - out.len();
            if remaining < COALESCE_MIN {
                to_list.clear();
            }
        }
    }

    /// Reads `ids` and every department they lead to that the org does not
    /// hold yet (a new member's new department, a moved department's new
    /// parent), into `org`.
    async fn read_depts(
        &self,
        org: &mut CorpSnapshot,
        ids: BTreeSet<i64>,
    ) -> Result<(), SourceError> {
        let mut todo: BTreeSet<i64> = ids;
        let mut done: BTreeSet<i64> = BTreeSet::new();
        while !todo.is_empty() {
            let batch: Vec<i64> = std::mem::take(&mut todo).into_iter().collect();
            done.extend(batch.iter().copied());
            let reads: Vec<_> = stream::iter(batch)
                .map(|id| async move { (id, self.dept(id).await) })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            for (id, r) in reads {
                match r? {
                    Found::Is(d) => {
                        if let Some(p) = d.parent_id {
                            if !org.depts.contains_key(&p) && !done.contains(&p) && p > 0 {
                                todo.insert(p);
                            }
                        }
                        org.depts.insert(id, d);
                    }
                    Found::Gone => {
                        org.depts.remove(&id);
                    }
                }
            }
        }
        Ok(())
    }

    /// The holders of `role_id` now; `None` when the role is gone.
    async fn role_holders(
        &self,
        role_id: &str,
    ) -> Result<Option<(Option<String>, Vec<String>)>, SourceError> {
        match &self.client {
            CorpClient::Wecom(c) => {
                let Ok(tag) = role_id.parse::<i64>() else {
                    return Ok(None);
                };
                match found(c.tag_get(tag).await, &[WECOM_NO_TAG])? {
                    Found::Is(t) => {
                        let mut m = t.user_ids;
                        m.sort();
                        m.dedup();
                        Ok(Some((t.name, m)))
                    }
                    Found::Gone => Ok(None),
                }
            }
            CorpClient::DingTalk(c) => match found(c.role_members(role_id).await, &[DING_NO_ROLE])?
            {
                Found::Is(m) => Ok(Some((None, m))),
                Found::Gone => Ok(None),
            },
        }
    }

    async fn read_roles(&self, org: &mut CorpSnapshot) -> Result<(), SourceError> {
        let mut holders: BTreeSet<String> = self.targets.roles.clone();
        if self.targets.role_list {
            if let CorpClient::DingTalk(c) = &self.client {
                let (groups, roles) = c.role_list().await.map_err(SourceError::platform)?;
                org.role_groups = groups
                    .into_iter()
                    .map(|g| (g.group_id.clone(), g))
                    .collect();
                let mut next: BTreeMap<String, Role> = BTreeMap::new();
                for mut r in roles {
                    match org.roles.get(&r.role_id) {
                        Some(old) => r.members = old.members.clone(),
                        None => {
                            holders.insert(r.role_id.clone());
                        }
                    }
                    next.insert(r.role_id.clone(), r);
                }
                org.roles = next;
            }
        }
        if self.targets.admins && matches!(self.client, CorpClient::DingTalk(_)) {
            holders.extend(
                org.roles
                    .values()
                    .filter(|r| DING_ADMIN_ROLES.contains(&r.name.as_str()))
                    .map(|r| r.role_id.clone()),
            );
        }
        let reads: Vec<_> = stream::iter(holders)
            .map(|id| async move {
                let r = self.role_holders(&id).await;
                (id, r)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (id, r) in reads {
            match r? {
                Some((name, members)) => {
                    let wecom = matches!(self.client, CorpClient::Wecom(_));
                    let old = org.roles.get(&id).cloned();
                    if wecom && !org.role_groups.contains_key("tags") {
                        org.role_groups.insert(
                            "tags".into(),
                            RoleGroup {
                                group_id: "tags".into(),
                                name: "Tags".into(),
                            },
                        );
                    }
                    let role = Role {
                        role_id: id.clone(),
                        group_id: old
                            .as_ref()
                            .and_then(|o| o.group_id.clone())
                            .or_else(|| wecom.then(|| "tags".to_string())),
                        name: name
                            .or_else(|| old.as_ref().map(|o| o.name.clone()))
                            .unwrap_or_default(),
                        members,
                    };
                    org.roles.insert(id, role);
                }
                None => {
                    org.roles.remove(&id);
                }
            }
        }
        Ok(())
    }

    async fn read_admins(&self, org: &mut CorpSnapshot) -> Result<(), SourceError> {
        let r: Result<Vec<Admin>, ApiError> = match &self.client {
            CorpClient::Wecom(c) => c.get_admin_list().await,
            CorpClient::DingTalk(c) => c.list_admin().await,
        };
        match r {
            Ok(a) => org.admins = Some(a),
            Err(e) if e.errcode().is_some_and(|c| ADMINS_REFUSED.contains(&c)) => {
                org.notes.push(format!(
                    "admin list not read ({e}); the stored admin list is kept"
                ));
            }
            Err(e) => return Err(SourceError::platform(e)),
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ChangeSource for ChangeRead {
    fn provider(&self) -> Provider {
        match self.client {
            CorpClient::Wecom(_) => Provider::Wecom,
            CorpClient::DingTalk(_) => Provider::DingTalk,
        }
    }

    fn stats(&self) -> FetchStats {
        self.client.stats()
    }

    async fn read_changes(
        &self,
        local: &CorpSnapshot,
        opts: &FetchOptions,
    ) -> Result<CorpSnapshot, SourceError> {
        let mut org = local.clone();
        org.failures.clear();
        org.notes.clear();
        org.outside_range.clear();
        let members = self.read_members(local).await?;
        // Departments named, and those a read member belongs to that the
        // store does not hold yet.
        let mut depts = self.targets.depts.clone();
        for (id, m) in &members {
            let led_before = |d: i64| {
                local
                    .members
                    .get(id)
                    .is_some_and(|o| o.depts.iter().any(|x| x.dept_id == d && x.is_leader))
            };
            if let Found::Is(m) = m {
                depts.extend(
                    m.depts
                        .iter()
                        .map(|d| d.dept_id)
                        .filter(|d| !org.depts.contains_key(d)),
                );
                // A department's leaders are part of its own record: a
                // member who became or stopped being a leader changes it.
                depts.extend(
                    m.depts
                        .iter()
                        .filter(|d| d.is_leader != led_before(d.dept_id))
                        .map(|d| d.dept_id),
                );
            }
            if let Some(old) = local.members.get(id) {
                let still = |d: i64| matches!(m, Found::Is(m) if m.depts.iter().any(|x| x.dept_id == d && x.is_leader));
                depts.extend(
                    old.depts
                        .iter()
                        .filter(|d| d.is_leader && !still(d.dept_id))
                        .map(|d| d.dept_id),
                );
            }
        }
        self.read_depts(&mut org, depts).await?;
        let mut gone = BTreeSet::new();
        for (id, m) in members {
            match m {
                Found::Is(m) => {
                    org.members.insert(id, m);
                }
                Found::Gone => {
                    org.members.remove(&id);
                    gone.insert(id);
                }
            }
        }
        if opts.include_roles
            && (!self.targets.roles.is_empty() || self.targets.role_list || self.targets.admins)
        {
            self.read_roles(&mut org).await?;
        }
        if opts.include_admins && self.targets.admins {
            self.read_admins(&mut org).await?;
        }
        // The platforms take a member who left out of every role and the
        // admin list without an event of their own; a full sync would read
        // them so.
        if !gone.is_empty() {
            for r in org.roles.values_mut() {
                r.members.retain(|m| !gone.contains(m));
            }
            if let Some(a) = org.admins.as_mut() {
                a.retain(|a| !gone.contains(&a.member_id));
            }
        }
        if !opts.scope.is_empty() {
            limit_to_scope(&mut org, &opts.scope);
        }
        Ok(org)
    }
}

/// A syncScope keeps what a full sync would: members with a department
/// inside the synced subtrees.
fn limit_to_scope(org: &mut CorpSnapshot, scope: &[i64]) {
    let mut inside: BTreeSet<i64> = scope.iter().copied().collect();
    loop {
        let more: Vec<i64> = org
            .depts
            .values()
            .filter(|d| {
                !inside.contains(&d.dept_id) && d.parent_id.is_some_and(|p| inside.contains(&p))
            })
            .map(|d| d.dept_id)
            .collect();
        if more.is_empty() {
            break;
        }
        inside.extend(more);
    }
    org.members
        .retain(|_, m| m.depts.iter().any(|d| inside.contains(&d.dept_id)));
}

/// The typed clients, for hosts that hold one directly.
impl From<Arc<WecomClient>> for EventReader {
    fn from(c: Arc<WecomClient>) -> EventReader {
        EventReader::new(CorpClient::Wecom(c))
    }
}

impl From<Arc<DingTalkClient>> for EventReader {
    fn from(c: Arc<DingTalkClient>) -> EventReader {
        EventReader::new(CorpClient::DingTalk(c))
    }
}
