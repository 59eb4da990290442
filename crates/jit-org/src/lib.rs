//! The organization domain model shared by every part of the corps family.
//!
//! Platform clients (WeCom, DingTalk, plugins) fetch an organization into a
//! [`CorpSnapshot`]; the sync engine diffs it against the [`CorpSnapshot`] the
//! store holds and produces a [`SyncPlan`]; the store applies that plan in one
//! transaction. Everything here is plain data: no I/O, no platform knowledge.
//!
//! Conventions every producer and consumer keeps:
//! - A field that the platform withheld or that was not fetched is `None`
//!   ("unknown"); an empty string is a real, empty value. Unknown never
//!   overwrites a stored value.
//! - Department ids are 64-bit (DingTalk ids exceed 2^31). Member ids are
//!   strings and are never parsed as numbers (`"0154..."` keeps its zeros).
//! - Everything is keyed by organization: the same member id in two orgs is
//!   two different members.
//!
//! ```
//! use jit_org::{CorpSnapshot, Dept, Member, MemberStatus, DeptMembership};
//! let mut snap = CorpSnapshot::new("ww123");
//! snap.depts.insert(1, Dept::new(1, None, "Acme"));
//! let mut m = Member::new("zhangsan", "Zhang San");
//! m.depts.push(DeptMembership { dept_id: 1, order: 0, is_leader: true });
//! snap.members.insert(m.member_id.clone(), m);
//! assert_eq!(snap.members["zhangsan"].status, MemberStatus::Active);
//! ```

mod coverage;
mod fetch;

pub use coverage::{Coverage, ReadPart, Verdict};
pub use fetch::{
    CountingProgress, EndpointStats, FetchOptions, FetchStats, NoProgress, Progress, ProgressEvent,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// One of the two enterprise platforms the runtime speaks: the one name for
/// them across crates (the built-in Types, the simulator, the benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// WeCom (企业微信).
    Wecom,
    /// DingTalk (钉钉).
    DingTalk,
}

impl Platform {
    /// Both platforms.
    pub const ALL: [Platform; 2] = [Platform::Wecom, Platform::DingTalk];

    /// `wecom` or `dingtalk`, as in configs, reports and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Wecom => "wecom",
            Platform::DingTalk => "dingtalk",
        }
    }

    /// Parses [`Platform::as_str`]'s form.
    pub fn parse(s: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whose identities its members are.
    pub fn provider(self) -> Provider {
        match self {
            Platform::Wecom => Provider::Wecom,
            Platform::DingTalk => Provider::DingTalk,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which platform an organization (and its identities) comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// WeCom (企业微信); identity is (corpId, userid).
    Wecom,
    /// DingTalk (钉钉); identity is the unionId.
    DingTalk,
    /// A provider implemented by a plugin type; identity is (corpId, member id).
    #[serde(untagged)]
    Other(String),
}

impl Provider {
    /// The stable string stored in the database and shown in reports.
    pub fn as_str(&self) -> &str {
        match self {
            Provider::Wecom => "wecom",
            Provider::DingTalk => "dingtalk",
            Provider::Other(s) => s,
        }
    }

    /// Parses the stored form back; unknown strings become [`Provider::Other`].
    pub fn parse(s: &str) -> Provider {
        match s {
            "wecom" => Provider::Wecom,
            "dingtalk" => Provider::DingTalk,
            other => Provider::Other(other.to_string()),
        }
    }

    /// Whether a person is identified across organizations by unionId.
    pub fn identity_by_union_id(&self) -> bool {
        matches!(self, Provider::DingTalk)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member's state in one organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Working and able to log in.
    #[default]
    Active,
    /// Left the organization (or removed upstream); kept, never deleted.
    Offline,
    /// Disabled by an administrator upstream.
    Disabled,
    /// Invited but has not activated the platform account yet.
    NotActivated,
}

impl MemberStatus {
    /// The stable string stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Active => "active",
            MemberStatus::Offline => "offline",
            MemberStatus::Disabled => "disabled",
            MemberStatus::NotActivated => "not_activated",
        }
    }

    /// Parses the stored form; `None` for an unknown string.
    pub fn parse(s: &str) -> Option<MemberStatus> {
        Some(match s {
            "active" => MemberStatus::Active,
            "offline" => MemberStatus::Offline,
            "disabled" => MemberStatus::Disabled,
            "not_activated" => MemberStatus::NotActivated,
            _ => return None,
        })
    }
}

/// A department of one organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dept {
    /// Platform department id (root is 1 on WeCom and DingTalk).
    pub dept_id: i64,
    /// Parent department; `None` for the root (or a root of a sync scope).
    pub parent_id: Option<i64>,
    /// Display name.
    pub name: String,
    /// Sort order among siblings as the platform gives it.
    pub order: i64,
    /// Member ids of the department's leaders, in platform order.
    #[serde(default)]
    pub leaders: Vec<String>,
}

impl Dept {
    /// A department with order 0 and no leaders.
    pub fn new(dept_id: i64, parent_id: Option<i64>, name: impl Into<String>) -> Dept {
        Dept {
            dept_id,
            parent_id,
            name: name.into(),
            order: 0,
            leaders: Vec::new(),
        }
    }
}

/// A member's place in one department.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeptMembership {
    /// The department.
    pub dept_id: i64,
    /// The member's order inside that department.
    pub order: i64,
    /// Whether the member leads that department.
    pub is_leader: bool,
}

/// A member of one organization, as fetched or as stored.
///
/// `Option<String>` fields are "unknown" when `None` (withheld or not
/// fetched) and must not overwrite a stored value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// Platform member id (WeCom userid, DingTalk userid).
    pub member_id: String,
    /// Cross-organization identity (DingTalk unionid).
    pub union_id: Option<String>,
    /// Display name.
    pub name: String,
    /// State in this organization.
    pub status: MemberStatus,
    /// Job title.
    pub position: Option<String>,
    /// Employee number.
    pub job_number: Option<String>,
    /// Main department (WeCom `main_department`; DingTalk has none).
    pub main_dept_id: Option<i64>,
    /// Hire date, milliseconds since the epoch.
    pub hired_date: Option<i64>,
    /// Avatar URL.
    pub avatar: Option<String>,
    /// Mobile number.
    pub mobile: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Departments with order and leader flag, in platform order.
    #[serde(default)]
    pub depts: Vec<DeptMembership>,
    /// Raw platform extension attributes (`extattr`, `extension`), kept verbatim.
    #[serde(default)]
    pub extra: Value,
}

impl Member {
    /// An active member with every optional field unknown.
    pub fn new(member_id: impl Into<String>, name: impl Into<String>) -> Member {
        Member {
            member_id: member_id.into(),
            union_id: None,
            name: name.into(),
            status: MemberStatus::Active,
            position: None,
            job_number: None,
            main_dept_id: None,
            hired_date: None,
            avatar: None,
            mobile: None,
            email: None,
            depts: Vec::new(),
            extra: Value::Null,
        }
    }
}

/// A group of roles (DingTalk role group; WeCom tags live in one group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleGroup {
    /// Platform id, as a string.
    pub group_id: String,
    /// Display name.
    pub name: String,
}

/// A role (DingTalk role, WeCom tag) and its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    /// Platform id, as a string (WeCom tagid, DingTalk role id).
    pub role_id: String,
    /// The group it belongs to, if any.
    pub group_id: Option<String>,
    /// Display name.
    pub name: String,
    /// Member ids holding the role, sorted.
    #[serde(default)]
    pub members: Vec<String>,
}

/// An administrator of the organization or of the app.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Admin {
    /// The member.
    pub member_id: String,
    /// Platform level: DingTalk `sys_level` (1 primary, 2 sub-admin);
    /// WeCom `auth_type` (1 manage, 0 send messages); 0 when set locally.
    pub level: i32,
}

/// One part of an upstream read that did not load.
///
/// The part it names is outside the read's [`Coverage`]: whatever the store
/// holds of it is kept exactly as stored. A failure that is not a refusal as
/// out of range also makes the snapshot incomplete, and an incomplete
/// snapshot offlines nobody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchFailure {
    /// What was being read, e.g. `user/list department_id=12`.
    pub what: String,
    /// Why it failed (API path, errcode, errmsg; never a secret).
    pub error: String,
    /// The part of the organization left unread; `None` when unknown, which
    /// leaves everything the read did not return as stored.
    #[serde(default)]
    pub part: Option<ReadPart>,
    /// The platform refused the part as outside the app's visible range: it
    /// is kept as stored, but the read still counts as complete.
    #[serde(default)]
    pub out_of_range: bool,
}

/// An organization at one moment: what a platform returned, or what the store holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CorpSnapshot {
    /// Platform corp id.
    pub corp_id: String,
    /// Departments by id.
    pub depts: BTreeMap<i64, Dept>,
    /// Members by member id.
    pub members: BTreeMap<String, Member>,
    /// Role groups by id.
    pub role_groups: BTreeMap<String, RoleGroup>,
    /// Roles by id.
    pub roles: BTreeMap<String, Role>,
    /// Administrators; `None` when they could not be read (keep the local ones).
    pub admins: Option<Vec<Admin>>,
    /// Parts that failed to load. Non-empty means incomplete.
    #[serde(default)]
    pub failures: Vec<FetchFailure>,
    /// Notes for the run report (e.g. "admin list refused by WeCom: 48002").
    #[serde(default)]
    pub notes: Vec<String>,
    /// Department subtrees the read was limited to (`syncScope`); empty = whole org.
    #[serde(default)]
    pub scope: Vec<i64>,
    /// Departments the platform answered are outside the app's visible
    /// range (DingTalk 50004 for a department its walk listed): not the
    /// app's to sync, whatever else failed — as if never listed.
    #[serde(default)]
    pub outside_range: Vec<i64>,
}

impl CorpSnapshot {
    /// An empty snapshot of the given corp.
    pub fn new(corp_id: impl Into<String>) -> CorpSnapshot {
        CorpSnapshot {
            corp_id: corp_id.into(),
            ..CorpSnapshot::default()
        }
    }

    /// The empty snapshot a read with `opts` fills: the corp and the
    /// department subtrees the read covers.
    pub fn for_read(corp_id: impl Into<String>, opts: &FetchOptions) -> CorpSnapshot {
        CorpSnapshot {
            scope: opts.scope.clone(),
            ..CorpSnapshot::new(corp_id)
        }
    }

    /// True when every department and page loaded (parts refused as out of
    /// the app's visible range aside).
    pub fn is_complete(&self) -> bool {
        self.failures.iter().all(|f| f.out_of_range)
    }

    /// Records that the admin list could not be read (`admins` stays `None`,
    /// so the stored list is kept): a note for the report, and a failure of
    /// [`ReadPart::Admins`] — a refusal as out of range when the platform
    /// answered that the app may not read admins at all (a standing
    /// refusal, not a failed read).
    pub fn admins_not_read(&mut self, what: &str, error: String, refused: bool) {
        self.notes.push(format!(
            "admin list not read ({error}); the stored admin list is kept"
        ));
        self.failures.push(if refused {
            FetchFailure::out_of_range(ReadPart::Admins, what, error)
        } else {
            FetchFailure::new(ReadPart::Admins, what, error)
        });
    }

    /// Limits an organization read as a whole (an export, a plugin's answer)
    /// to the department subtrees under `scope`, as a platform reader does
    /// when it reads only those subtrees: departments outside go, and so do
    /// members with no department inside. Memberships and role holders are
    /// left as read; the planner's [`Coverage`] decides what they change.
    /// An empty `scope` keeps everything.
    pub fn restrict_to_scope(&mut self, scope: &[i64]) {
        if scope.is_empty() {
            return;
        }
        let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
        for d in self.depts.values() {
            if let Some(p) = d.parent_id {
                children.entry(p).or_default().push(d.dept_id);
            }
        }
        let mut keep: HashSet<i64> = HashSet::new();
        let mut stack: Vec<i64> = scope.to_vec();
        while let Some(id) = stack.pop() {
            if self.depts.contains_key(&id) && keep.insert(id) {
                stack.extend(children.get(&id).into_iter().flatten().copied());
            }
        }
        self.depts.retain(|id, _| keep.contains(id));
        self.members
            .retain(|_, m| m.depts.iter().any(|d| keep.contains(&d.dept_id)));
        self.scope = scope.to_vec();
    }

    /// Number of members whose status is active.
    pub fn active_count(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.status == MemberStatus::Active)
            .count()
    }

    /// The seed's `CorpData` shape: `corpId`, `userDict`, `deptDict`, plus
    /// `roleDict`, `roleGroupDict`, `admins`, `failures` and `notes`.
    pub fn to_corp_data(&self) -> Value {
        let user_dict: serde_json::Map<String, Value> = self
            .members
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null)))
            .collect();
        let dept_dict: serde_json::Map<String, Value> = self
            .depts
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    serde_json::to_value(v).unwrap_or(Value::Null),
                )
            })
            .collect();
        serde_json::json!({
            "corpId": self.corp_id,
            "userDict": user_dict,
            "deptDict": dept_dict,
            "roleGroupDict": self.role_groups,
            "roleDict": self.roles,
            "admins": self.admins,
            "failures": self.failures,
            "notes": self.notes,
            "scope": self.scope,
            "outsideRange": self.outside_range,
        })
    }

    /// Reads the `CorpData` shape produced by [`CorpSnapshot::to_corp_data`]
    /// (what a caller of `bulkRegister(corpData)` passes back in).
    pub fn from_corp_data(v: &Value) -> Result<CorpSnapshot, String> {
        let obj = v
            .as_object()
            .ok_or_else(|| "corpData must be an object".to_string())?;
        let corp_id = obj
            .get("corpId")
            .and_then(Value::as_str)
            .ok_or_else(|| "corpData/corpId is missing or not a string".to_string())?;
        let mut snap = CorpSnapshot::new(corp_id);
        if let Some(users) = obj.get("userDict") {
            let users: BTreeMap<String, Member> = serde_json::from_value(users.clone())
                .map_err(|e| format!("corpData/userDict: {e}"))?;
            snap.members = users;
        }
        if let Some(depts) = obj.get("deptDict") {
            let depts: BTreeMap<String, Dept> = serde_json::from_value(depts.clone())
                .map_err(|e| format!("corpData/deptDict: {e}"))?;
            snap.depts = depts.into_values().map(|d| (d.dept_id, d)).collect();
        }
        if let Some(g) = obj.get("roleGroupDict").filter(|v| !v.is_null()) {
            snap.role_groups = serde_json::from_value(g.clone())
                .map_err(|e| format!("corpData/roleGroupDict: {e}"))?;
        }
        if let Some(r) = obj.get("roleDict").filter(|v| !v.is_null()) {
            snap.roles =
                serde_json::from_value(r.clone()).map_err(|e| format!("corpData/roleDict: {e}"))?;
        }
        if let Some(a) = obj.get("admins").filter(|v| !v.is_null()) {
            snap.admins = Some(
                serde_json::from_value(a.clone()).map_err(|e| format!("corpData/admins: {e}"))?,
            );
        }
        if let Some(f) = obj.get("failures").filter(|v| !v.is_null()) {
            snap.failures =
                serde_json::from_value(f.clone()).map_err(|e| format!("corpData/failures: {e}"))?;
        }
        if let Some(n) = obj.get("notes").filter(|v| !v.is_null()) {
            snap.notes =
                serde_json::from_value(n.clone()).map_err(|e| format!("corpData/notes: {e}"))?;
        }
        // A scoped export re-imported must stay scoped: read as the whole
        // org, everything outside its subtrees would look removed.
        if let Some(s) = obj.get("scope").filter(|v| !v.is_null()) {
            snap.scope =
                serde_json::from_value(s.clone()).map_err(|e| format!("corpData/scope: {e}"))?;
        }
        if let Some(o) = obj.get("outsideRange").filter(|v| !v.is_null()) {
            snap.outside_range = serde_json::from_value(o.clone())
                .map_err(|e| format!("corpData/outsideRange: {e}"))?;
        }
        Ok(snap)
    }
}

/// What kind of change a plan entry makes; recorded per object in the sync run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new object.
    Created,
    /// Attributes changed.
    Updated,
    /// A department got a new parent, or a member new departments.
    Moved,
    /// A member left and was marked offline (never deleted).
    Offlined,
    /// A member came back and is active again with the same local user.
    Reactivated,
    /// A department disappeared upstream and was removed locally.
    Removed,
    /// Deliberately not applied; the reason says why.
    Skipped,
}

impl ChangeKind {
    /// The stable string stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Moved => "moved",
            ChangeKind::Offlined => "offlined",
            ChangeKind::Reactivated => "reactivated",
            ChangeKind::Removed => "removed",
            ChangeKind::Skipped => "skipped",
        }
    }
}

/// How many report lines of each kind a run has (kinds with none are left
/// out). Serialized as an object keyed by [`ChangeKind::as_str`]:
/// `{"created": 3, "offlined": 1}`.
pub type ChangeCounts = BTreeMap<ChangeKind, usize>;

/// The counts of `changes` by kind.
pub fn count_changes(changes: &[Change]) -> ChangeCounts {
    let mut out = ChangeCounts::new();
    for c in changes {
        *out.entry(c.kind).or_insert(0) += 1;
    }
    out
}

/// Which kind of object a change touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// A department.
    Dept,
    /// A member.
    Member,
    /// A role group.
    RoleGroup,
    /// A role and its members.
    Role,
    /// The admin list.
    Admin,
}

/// One line of a sync report: what happened to which object and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// Object kind.
    pub object: ObjectKind,
    /// Object id (member id, dept id, role id).
    pub id: String,
    /// What happened.
    pub kind: ChangeKind,
    /// Why, in words a person can act on (e.g. `name "A" -> "B"`).
    pub reason: String,
}

/// Everything one sync writes, computed before anything is written.
///
/// Applying a plan is all-or-nothing. An empty plan (see [`SyncPlan::is_empty`])
/// writes nothing at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncPlan {
    /// Departments to insert or update (full new state).
    pub upsert_depts: Vec<Dept>,
    /// Department ids to remove locally.
    pub remove_depts: Vec<i64>,
    /// Members to insert or update (full new state; `None` fields keep the stored value).
    /// Their department memberships are replaced by `Member::depts`.
    pub upsert_members: Vec<Member>,
    /// Member ids to mark offline (their memberships and roles are kept for history).
    pub offline_members: Vec<String>,
    /// Role groups to insert or update.
    pub upsert_role_groups: Vec<RoleGroup>,
    /// Role group ids to remove.
    pub remove_role_groups: Vec<String>,
    /// Roles to insert or update; their member sets are replaced by `Role::members`.
    pub upsert_roles: Vec<Role>,
    /// Role ids to remove.
    pub remove_roles: Vec<String>,
    /// New admin list, or `None` to keep the stored one.
    pub set_admins: Option<Vec<Admin>>,
    /// Per-object report lines, including skipped objects.
    pub changes: Vec<Change>,
}

impl SyncPlan {
    /// True when applying the plan would write nothing.
    pub fn is_empty(&self) -> bool {
        self.upsert_depts.is_empty()
            && self.remove_depts.is_empty()
            && self.upsert_members.is_empty()
            && self.offline_members.is_empty()
            && self.upsert_role_groups.is_empty()
            && self.remove_role_groups.is_empty()
            && self.upsert_roles.is_empty()
            && self.remove_roles.is_empty()
            && self.set_admins.is_none()
    }

    /// Counts of report lines per change kind, for summaries.
    pub fn counts(&self) -> ChangeCounts {
        count_changes(&self.changes)
    }
}

/// The organization an instance element stands for, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CorpRecord {
    /// Element fullName of the org instance (e.g. `corps.MyQywxCorp`); the key.
    pub full_name: String,
    /// Display title.
    pub title: String,
    /// The Type fullName (e.g. `corps.QywxInnerType`).
    pub corp_type: String,
    /// Platform the identities come from.
    pub provider: Provider,
    /// Platform corp id.
    pub corp_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corp_data_round_trips_through_the_seed_shape() {
        let mut snap = CorpSnapshot::new("ww1");
        snap.depts.insert(1, Dept::new(1, None, "Root"));
        let mut m = Member::new("007", "Bond");
        m.mobile = Some(String::new());
        snap.members.insert("007".into(), m);
        let v = snap.to_corp_data();
        assert_eq!(v["userDict"]["007"]["memberId"], "007");
        assert_eq!(v["deptDict"]["1"]["name"], "Root");
        let back = CorpSnapshot::from_corp_data(&v).unwrap();
        assert_eq!(back.members, snap.members);
        assert_eq!(back.depts, snap.depts);
    }

    #[test]
    fn a_scoped_partial_export_keeps_its_scope_notes_and_failed_parts() {
        let mut snap = CorpSnapshot::new("ww1");
        snap.depts.insert(3, Dept::new(3, Some(1), "Sales"));
        snap.scope = vec![3];
        snap.outside_range = vec![9];
        snap.notes.push("admin list refused".into());
        snap.failures.push(FetchFailure::new(
            ReadPart::DeptMembers { dept_id: 3 },
            "user/list department_id=3",
            "errcode -1",
        ));
        let back = CorpSnapshot::from_corp_data(&snap.to_corp_data()).unwrap();
        assert_eq!(back.scope, vec![3]);
        assert_eq!(back.outside_range, vec![9]);
        assert_eq!(back.notes, snap.notes);
        assert_eq!(back.failures, snap.failures);
        assert!(!back.is_complete());
    }

    #[test]
    fn failures_without_a_part_from_older_exports_still_read() {
        let v = serde_json::json!({"corpId": "c", "failures": [{"what": "x", "error": "y"}]});
        let back = CorpSnapshot::from_corp_data(&v).unwrap();
        assert_eq!(back.failures[0].part, None);
        assert!(!back.failures[0].out_of_range);
    }

    #[test]
    fn unknown_and_empty_fields_stay_distinct() {
        let mut m = Member::new("a", "A");
        m.email = Some(String::new());
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["email"], "");
        assert!(v["mobile"].is_null());
    }

    #[test]
    fn platform_strings_are_stable_and_name_the_provider() {
        for p in Platform::ALL {
            assert_eq!(Platform::parse(p.as_str()), Some(p));
            assert_eq!(p.provider().as_str(), p.as_str());
        }
        assert_eq!(
            serde_json::to_value(Platform::DingTalk).unwrap(),
            "dingtalk"
        );
    }

    #[test]
    fn change_counts_are_keyed_by_the_stored_kind_names() {
        let c = Change {
            object: ObjectKind::Member,
            id: "u".into(),
            kind: ChangeKind::Offlined,
            reason: String::new(),
        };
        let counts = count_changes(&[c.clone(), c]);
        let text = serde_json::to_string(&counts).unwrap();
        assert_eq!(text, r#"{"offlined":2}"#);
        let back: ChangeCounts = serde_json::from_str(&text).unwrap();
        assert_eq!(back, counts);
    }

    #[test]
    fn provider_strings_are_stable() {
        assert_eq!(Provider::parse("wecom"), Provider::Wecom);
        assert_eq!(Provider::parse("hr").as_str(), "hr");
        assert!(Provider::DingTalk.identity_by_union_id());
    }
}
