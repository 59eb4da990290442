//! The admin API under `/_sim` and the mutations it (and [`crate::SimHandle`])
//! applies. Nothing here is metered or rate-limited.

use crate::config::{CallbackConfig, OrgRef};
use crate::org::{MemberRec, MembershipRec, Org, Platform, RoleRec, SimStatus};
use crate::server::Shared;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jit_crypto::cdata;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A department membership in a mutation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipSpec {
    /// The department.
    pub dept_id: i64,
    /// Order inside it (WeCom: larger first).
    #[serde(default)]
    pub order: i64,
    /// Leader of that department.
    #[serde(default)]
    pub leader: bool,
}

impl MembershipSpec {
    /// An ordinary membership of `dept_id`: order 0, not its leader.
    pub fn of(dept_id: i64) -> MembershipSpec {
        MembershipSpec {
            dept_id,
            order: 0,
            leader: false,
        }
    }
}

/// An administrator entry: WeCom `auth_type`, DingTalk `sys_level`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminSpec {
    /// The member.
    pub userid: String,
    /// WeCom auth_type (1 manage, 0 send) / DingTalk sys_level (1 primary, 2 sub).
    pub level: i64,
}

/// One change to a simulated org. JSON form: `{"op": "addMember", ...}`
/// with camelCase fields. On WeCom, "roles" are tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Mutation {
    /// Adds a member (active unless `status` says otherwise).
    #[serde(rename_all = "camelCase")]
    AddMember {
        /// New userid.
        userid: String,
        /// Display name.
        name: String,
        /// Departments in platform order; the first is the main department.
        depts: Vec<MembershipSpec>,
        /// Job title.
        #[serde(default)]
        position: Option<String>,
        /// Mobile.
        #[serde(default)]
        mobile: Option<String>,
        /// E-mail ("" = none).
        #[serde(default)]
        email: Option<String>,
        /// DingTalk job number.
        #[serde(default)]
        job_number: Option<String>,
        /// DingTalk unionId (reuse one to add the same person to a second org).
        #[serde(default)]
        union_id: Option<String>,
        /// Initial state.
        #[serde(default)]
        status: Option<SimStatus>,
    },
    /// Changes profile fields; `None` keeps the value.
    #[serde(rename_all = "camelCase")]
    UpdateMember {
        /// The member.
        userid: String,
        /// New name.
        #[serde(default)]
        name: Option<String>,
        /// New title.
        #[serde(default)]
        position: Option<String>,
        /// New mobile.
        #[serde(default)]
        mobile: Option<String>,
        /// New e-mail.
        #[serde(default)]
        email: Option<String>,
        /// New job number.
        #[serde(default)]
        job_number: Option<String>,
        /// New state.
        #[serde(default)]
        status: Option<SimStatus>,
    },
    /// Replaces the member's departments (order and leader flags included).
    #[serde(rename_all = "camelCase")]
    MoveMember {
        /// The member.
        userid: String,
        /// New departments in platform order.
        depts: Vec<MembershipSpec>,
        /// New main department (default: the first of `depts`).
        #[serde(default)]
        main_dept: Option<i64>,
    },
    /// Disables a member (WeCom status 2; DingTalk shows `active: false`).
    #[serde(rename_all = "camelCase")]
    DisableMember {
        /// The member.
        userid: String,
    },
    /// Re-enables a member (active).
    #[serde(rename_all = "camelCase")]
    EnableMember {
        /// The member.
        userid: String,
    },
    /// Removes a member: gone from every API and from the truth.
    #[serde(rename_all = "camelCase")]
    RemoveMember {
        /// The member.
        userid: String,
    },
    /// Adds a department (id chosen by the simulator unless given).
    #[serde(rename_all = "camelCase")]
    AddDept {
        /// Wanted id.
        #[serde(default)]
        dept_id: Option<i64>,
        /// Parent.
        parent_id: i64,
        /// Name.
        name: String,
        /// Sort order.
        #[serde(default)]
        order: Option<i64>,
    },
    /// Renames a department.
    #[serde(rename_all = "camelCase")]
    RenameDept {
        /// The department.
        dept_id: i64,
        /// New name.
        name: String,
    },
    /// Moves a department under another parent.
    #[serde(rename_all = "camelCase")]
    MoveDept {
        /// The department.
        dept_id: i64,
        /// New parent (not inside its own subtree).
        parent_id: i64,
    },
    /// Removes an empty department without children (as the platforms require).
    #[serde(rename_all = "camelCase")]
    RemoveDept {
        /// The department.
        dept_id: i64,
    },
    /// Adds a role (DingTalk, in `group_id`) or a tag (WeCom).
    #[serde(rename_all = "camelCase")]
    AddRole {
        /// Wanted id.
        #[serde(default)]
        role_id: Option<i64>,
        /// DingTalk role group (required there).
        #[serde(default)]
        group_id: Option<i64>,
        /// Name.
        name: String,
    },
    /// Renames a role / tag.
    #[serde(rename_all = "camelCase")]
    RenameRole {
        /// The role.
        role_id: i64,
        /// New name.
        name: String,
    },
    /// Removes a role / tag.
    #[serde(rename_all = "camelCase")]
    RemoveRole {
        /// The role.
        role_id: i64,
    },
    /// Gives members a role / tag.
    #[serde(rename_all = "camelCase")]
    AddRoleMembers {
        /// The role.
        role_id: i64,
        /// Members.
        userids: Vec<String>,
    },
    /// Takes a role / tag from members.
    #[serde(rename_all = "camelCase")]
    RemoveRoleMembers {
        /// The role.
        role_id: i64,
        /// Members.
        userids: Vec<String>,
    },
    /// Replaces the admin list.
    #[serde(rename_all = "camelCase")]
    SetAdmins {
        /// New admins in platform order.
        admins: Vec<AdminSpec>,
    },
    /// Changes the app's visible range (WeCom) / contact scope (DingTalk):
    /// the roots of the department subtrees it may see; `None` = the whole
    /// org. No event is pushed (the platforms push none to the app).
    #[serde(rename_all = "camelCase")]
    SetVisibleRange {
        /// Subtree roots; each must exist.
        #[serde(default)]
        depts: Option<Vec<i64>>,
    },
}

impl Mutation {
    /// Adds an active member with a name and departments, every other field
    /// left unset as a plain hire has them.
    pub fn add_member(
        userid: impl Into<String>,
        name: impl Into<String>,
        depts: Vec<MembershipSpec>,
    ) -> Mutation {
        Mutation::AddMember {
            userid: userid.into(),
            name: name.into(),
            depts,
            position: None,
            mobile: None,
            email: None,
            job_number: None,
            union_id: None,
            status: None,
        }
    }

    /// Adds a department under `parent_id`, its id and sort order chosen by
    /// the simulator.
    pub fn add_dept(parent_id: i64, name: impl Into<String>) -> Mutation {
        Mutation::AddDept {
            dept_id: None,
            parent_id,
            name: name.into(),
            order: None,
        }
    }

    /// Changes the member's name and nothing else.
    pub fn rename_member(userid: impl Into<String>, name: impl Into<String>) -> Mutation {
        Mutation::update_member(userid.into(), Some(name.into()), None)
    }

    /// Changes the member's state and nothing else (e.g. WeCom's leaver,
    /// still listed with status 5: [`SimStatus::Left`]).
    pub fn set_member_status(userid: impl Into<String>, status: SimStatus) -> Mutation {
        Mutation::update_member(userid.into(), None, Some(status))
    }

    /// An update of the name and/or state that keeps every other field.
    fn update_member(userid: String, name: Option<String>, status: Option<SimStatus>) -> Mutation {
        Mutation::UpdateMember {
            userid,
            name,
            position: None,
            mobile: None,
            email: None,
            job_number: None,
            status,
        }
    }
}

/// What a mutation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MutationOutcome {
    /// Id of a created department.
    pub dept_id: Option<i64>,
    /// Id of a created role / tag.
    pub role_id: Option<i64>,
    /// Event types queued for the org's callback (empty when none is set).
    pub events: Vec<String>,
}

/// An event ready for the org's transport: WeCom plaintext XML or DingTalk JSON.
pub(crate) struct EventDraft {
    pub kind: String,
    pub payload: String,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Numbers the DingTalk events this process builds (see `eventId`).
fn next_event_seq() -> u64 {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

struct EventBuilder<'a> {
    org: &'a Org,
    out: Vec<EventDraft>,
}

impl EventBuilder<'_> {
    /// A WeCom `change_contact` (or other) event; `fields` are (tag, text).
    fn wecom(&mut self, event: &str, change: Option<&str>, fields: &[(&str, String)]) {
        let mut x = format!(
            "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{}</CreateTime><MsgType>{}</MsgType><Event>{}</Event>",
            cdata(&self.org.corp_id),
            cdata("sys"),
            now_ms() / 1000,
            cdata("event"),
            cdata(event)
        );
        if let Some(c) = change {
            x.push_str(&format!("<ChangeType>{}</ChangeType>", cdata(c)));
        }
        for (k, v) in fields {
            x.push_str(&format!("<{k}>{}</{k}>", cdata(v)));
        }
        x.push_str("</xml>");
        self.out.push(EventDraft {
            kind: change.unwrap_or(event).to_string(),
            payload: x,
        });
    }

    /// A DingTalk HTTP-push event (decrypted form of reference B.8).
    fn ding(&mut self, event_type: &str, data: Value) {
        let t = now_ms();
        let mut v = json!({
            "EventType": event_type,
            "EventTime": t,
            "CorpId": self.org.corp_id,
            // Unique per event, also for two mutations in the same millisecond
            // (receivers deduplicate redeliveries by it).
            "eventId": format!("{:016x}", crate::org::mix(t as u64, next_event_seq())),
            "timeStamp": t.to_string(),
        });
        if let (Some(o), Some(d)) = (v.as_object_mut(), data.as_object()) {
            for (k, val) in d {
                o.insert(k.clone(), val.clone());
            }
        }
        self.out.push(EventDraft {
            kind: event_type.to_string(),
            payload: v.to_string(),
        });
    }

    fn member_changed(&mut self, m: &MemberRec, wecom_change: &str, ding_type: &str) {
        match self.org.platform {
            // Callbacks configured after 2022-08-15 carry only UserID and
            // Department for member events (reference A.9).
            Platform::Wecom => {
                let mut f = vec![("UserID", m.userid.clone())];
                if wecom_change != "delete_user" {
                    f.push((
                        "Department",
                        m.depts
                            .iter()
                            .map(|d| d.dept_id.to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                    ));
                }
                self.wecom("change_contact", Some(wecom_change), &f);
            }
            Platform::DingTalk => self.ding(ding_type, json!({"userId": [m.userid]})),
        }
    }
}

fn err(msg: impl Into<String>) -> String {
    msg.into()
}

fn memberships(org: &Org, specs: &[MembershipSpec]) -> Result<Vec<MembershipRec>, String> {
    if specs.is_empty() {
        return Err(err("a member needs at least one department"));
    }
    let mut seen = BTreeSet::new();
    specs
        .iter()
        .map(|s| {
            if !org.depts.contains_key(&s.dept_id) {
                return Err(format!("department {} does not exist", s.dept_id));
            }
            if !seen.insert(s.dept_id) {
                return Err(format!("department {} listed twice", s.dept_id));
            }
            Ok(MembershipRec {
                dept_id: s.dept_id,
                order: s.order,
                leader: s.leader,
            })
        })
        .collect()
}

/// Applies one mutation to an org; returns the outcome and the events.
pub(crate) fn apply(
    org: &mut Org,
    m: &Mutation,
) -> Result<(MutationOutcome, Vec<EventDraft>), String> {
    let out = apply_to(org, m);
    // After, not before: building the events reads the org mid-change.
    org.changed();
    out
}

fn apply_to(org: &mut Org, m: &Mutation) -> Result<(MutationOutcome, Vec<EventDraft>), String> {
    let mut outcome = MutationOutcome::default();
    let mut events: Vec<EventDraft> = Vec::new();
    macro_rules! ev {
        () => {
            EventBuilder {
                org: &*org,
                out: std::mem::take(&mut events),
            }
        };
    }
    let need = |org: &Org, u: &str| -> Result<(), String> {
        if org.members.contains_key(u) {
            Ok(())
        } else {
            Err(format!("member {u:?} does not exist"))
        }
    };
    match m {
        Mutation::AddMember {
            userid,
            name,
            depts,
            position,
            mobile,
            email,
            job_number,
            union_id,
            status,
        } => {
            if userid.is_empty() || org.members.contains_key(userid) {
                return Err(format!("member {userid:?} already exists or is empty"));
            }
            let depts = memberships(org, depts)?;
            let union = match org.platform {
                Platform::DingTalk => Some(union_id.clone().unwrap_or_else(|| {
                    format!(
                        "{:016x}{:08x}iE",
                        crate::org::mix(org.next_seq, 77),
                        org.next_seq as u32
                    )
                })),
                Platform::Wecom => None,
            };
            if let Some(u) = &union {
                if org.by_union.contains_key(u) {
                    return Err(format!("unionId {u:?} is already in this org"));
                }
            }
            let rec = MemberRec {
                userid: userid.clone(),
                name: name.clone(),
                union_id: union,
                status: status.unwrap_or(SimStatus::Active),
                position: position.clone().unwrap_or_default(),
                job_number: job_number.clone().unwrap_or_default(),
                hired_date: None,
                mobile: mobile.clone().unwrap_or_default(),
                email: email.clone().unwrap_or_default(),
                avatar: None,
                gender: 0,
                main_dept: depts[0].dept_id,
                depts,
                seq: org.next_seq,
            };
            org.next_seq += 1;
            org.insert_member_indexes(&rec);
            let ds: Vec<i64> = rec.depts.iter().map(|d| d.dept_id).collect();
            org.members.insert(userid.clone(), rec);
            for d in ds {
                org.sort_dept_members(d);
            }
            let mut b = ev!();
            b.member_changed(&org.members[userid], "create_user", "user_add_org");
            events = b.out;
        }
        Mutation::UpdateMember {
            userid,
            name,
            position,
            mobile,
            email,
            job_number,
            status,
        } => {
            need(org, userid)?;
            let rec = org.members.get_mut(userid).expect("checked");
            let was_left = rec.status == SimStatus::Left;
            if let Some(v) = name {
                rec.name = v.clone();
            }
            if let Some(v) = position {
                rec.position = v.clone();
            }
            if let Some(v) = mobile {
                rec.mobile = v.clone();
            }
            if let Some(v) = email {
                rec.email = v.clone();
            }
            if let Some(v) = job_number {
                rec.job_number = v.clone();
            }
            if let Some(s) = status {
                rec.status = *s;
            }
            let rec = org.members[userid].clone();
            let mut b = ev!();
            match (org.platform, was_left, rec.status == SimStatus::Left) {
                (Platform::DingTalk, false, true) => b.member_changed(&rec, "", "user_leave_org"),
                (Platform::DingTalk, true, false) => b.member_changed(&rec, "", "user_add_org"),
                _ => b.member_changed(&rec, "update_user", "user_modify_org"),
            }
            events = b.out;
        }
        Mutation::MoveMember {
            userid,
            depts,
            main_dept,
        } => {
            need(org, userid)?;
            let new = memberships(org, depts)?;
            let main = main_dept.unwrap_or(new[0].dept_id);
            if !new.iter().any(|d| d.dept_id == main) {
                return Err(format!(
                    "main department {main} is not among the member's departments"
                ));
            }
            org.remove_member_indexes(userid);
            let rec = org.members.get_mut(userid).expect("checked");
            rec.depts = new;
            rec.main_dept = main;
            let rec = rec.clone();
            org.insert_member_indexes(&rec);
            for d in &rec.depts {
                org.sort_dept_members(d.dept_id);
            }
            let mut b = ev!();
            b.member_changed(&rec, "update_user", "user_modify_org");
            events = b.out;
        }
        Mutation::DisableMember { userid } | Mutation::EnableMember { userid } => {
            need(org, userid)?;
            let rec = org.members.get_mut(userid).expect("checked");
            rec.status = if matches!(m, Mutation::DisableMember { .. }) {
                SimStatus::Disabled
            } else {
                SimStatus::Active
            };
            let rec = rec.clone();
            let mut b = ev!();
            b.member_changed(&rec, "update_user", "user_modify_org");
            events = b.out;
        }
        Mutation::RemoveMember { userid } => {
            need(org, userid)?;
            org.remove_member_indexes(userid);
            let rec = org.members.remove(userid).expect("checked");
            for r in org.roles.values_mut() {
                r.members.remove(userid);
            }
            let admins_before = org.admins.len();
            org.admins.retain(|a| a.0 != *userid);
            let mut b = ev!();
            b.member_changed(&rec, "delete_user", "user_leave_org");
            if admins_before != org.admins.len() && org.platform == Platform::DingTalk {
                b.ding("org_admin_remove", json!({"userId": [userid]}));
            }
            events = b.out;
        }
        Mutation::AddDept {
            dept_id,
            parent_id,
            name,
            order,
        } => {
            if !org.depts.contains_key(parent_id) {
                return Err(format!("parent department {parent_id} does not exist"));
            }
            let id = match dept_id {
                Some(id) if org.depts.contains_key(id) || *id <= 1 => {
                    return Err(format!("department id {id} is taken or reserved"))
                }
                Some(id) => *id,
                None => {
                    while org.depts.contains_key(&org.next_dept_id) {
                        org.next_dept_id += 7;
                    }
                    org.next_dept_id
                }
            };
            org.next_dept_id = org.next_dept_id.max(id + 1);
            let order = order.unwrap_or(0);
            org.depts.insert(
                id,
                crate::org::DeptRec {
                    id,
                    parent: Some(*parent_id),
                    name: name.clone(),
                    name_en: String::new(),
                    order,
                    children: Vec::new(),
                    members: Vec::new(),
                },
            );
            org.attach_child(*parent_id, id);
            outcome.dept_id = Some(id);
            let mut b = ev!();
            match org.platform {
                Platform::Wecom => b.wecom(
                    "change_contact",
                    Some("create_party"),
                    &[
                        ("Id", id.to_string()),
                        ("Name", name.clone()),
                        ("ParentId", parent_id.to_string()),
                        ("Order", order.to_string()),
                    ],
                ),
                Platform::DingTalk => b.ding("org_dept_create", json!({"deptId": [id]})),
            }
            events = b.out;
        }
        Mutation::RenameDept { dept_id, name } => {
            let d = org
                .depts
                .get_mut(dept_id)
                .ok_or_else(|| format!("department {dept_id} does not exist"))?;
            d.name = name.clone();
            let mut b = ev!();
            match org.platform {
                Platform::Wecom => b.wecom(
                    "change_contact",
                    Some("update_party"),
                    &[("Id", dept_id.to_string()), ("Name", name.clone())],
                ),
                Platform::DingTalk => b.ding("org_dept_modify", json!({"deptId": [dept_id]})),
            }
            events = b.out;
        }
        Mutation::MoveDept { dept_id, parent_id } => {
            if *dept_id == 1
                || !org.depts.contains_key(dept_id)
                || !org.depts.contains_key(parent_id)
            {
                return Err(format!(
                    "cannot move department {dept_id} under {parent_id}"
                ));
            }
            if org.subtree(*dept_id).contains(parent_id) {
                return Err(format!(
                    "department {parent_id} is inside {dept_id}'s subtree"
                ));
            }
            let old = org.depts[dept_id].parent.expect("non-root has a parent");
            org.depts
                .get_mut(&old)
                .expect("parent")
                .children
                .retain(|c| c != dept_id);
            org.attach_child(*parent_id, *dept_id);
            org.depts.get_mut(dept_id).expect("checked").parent = Some(*parent_id);
            let mut b = ev!();
            match org.platform {
                Platform::Wecom => b.wecom(
                    "change_contact",
                    Some("update_party"),
                    &[
                        ("Id", dept_id.to_string()),
                        ("ParentId", parent_id.to_string()),
                    ],
                ),
                Platform::DingTalk => b.ding("org_dept_modify", json!({"deptId": [dept_id]})),
            }
            events = b.out;
        }
        Mutation::RemoveDept { dept_id } => {
            let d = org
                .depts
                .get(dept_id)
                .ok_or_else(|| format!("department {dept_id} does not exist"))?;
            // Both platforms refuse to delete a department that still has
            // sub-departments or members (WeCom 60005/60006).
            if *dept_id == 1 || !d.children.is_empty() || !d.members.is_empty() {
                return Err(format!(
                    "department {dept_id} is the root or still has sub-departments or members"
                ));
            }
            let parent = d.parent.expect("non-root");
            org.depts.remove(dept_id);
            org.depts
                .get_mut(&parent)
                .expect("parent")
                .children
                .retain(|c| c != dept_id);
            for r in org.roles.values_mut() {
                r.parties.retain(|p| p != dept_id);
            }
            let mut b = ev!();
            match org.platform {
                Platform::Wecom => b.wecom(
                    "change_contact",
                    Some("delete_party"),
                    &[("Id", dept_id.to_string())],
                ),
                Platform::DingTalk => b.ding("org_dept_remove", json!({"deptId": [dept_id]})),
            }
            events = b.out;
        }
        Mutation::AddRole {
            role_id,
            group_id,
            name,
        } => {
            let gid = match org.platform {
                Platform::Wecom => 0,
                Platform::DingTalk => {
                    let g = group_id.ok_or_else(|| err("a DingTalk role needs groupId"))?;
                    if !org.groups.contains_key(&g) {
                        return Err(format!("role group {g} does not exist"));
                    }
                    g
                }
            };
            let id = role_id.unwrap_or(org.next_role_id);
            if org.roles.contains_key(&id) {
                return Err(format!("role {id} already exists"));
            }
            org.next_role_id = org.next_role_id.max(id + 1);
            org.roles.insert(
                id,
                RoleRec {
                    id,
                    group_id: gid,
                    name: name.clone(),
                    members: BTreeSet::new(),
                    parties: Vec::new(),
                },
            );
            if let Some(g) = org.groups.get_mut(&gid) {
                g.roles.push(id);
            }
            outcome.role_id = Some(id);
            let mut b = ev!();
            // WeCom documents no event for tag creation (reference A.9).
            if org.platform == Platform::DingTalk {
                b.ding("label_conf_add", json!({"scope": 1, "labelIdList": [id]}));
            }
            events = b.out;
        }
        Mutation::RenameRole { role_id, name } => {
            let r = org
                .roles
                .get_mut(role_id)
                .ok_or_else(|| format!("role {role_id} does not exist"))?;
            r.name = name.clone();
            let mut b = ev!();
            if org.platform == Platform::DingTalk {
                b.ding(
                    "label_conf_modify",
                    json!({"scope": 1, "labelIdList": [role_id]}),
                );
            }
            events = b.out;
        }
        Mutation::RemoveRole { role_id } => {
            let r = org
                .roles
                .remove(role_id)
                .ok_or_else(|| format!("role {role_id} does not exist"))?;
            if let Some(g) = org.groups.get_mut(&r.group_id) {
                g.roles.retain(|x| x != role_id);
            }
            let mut b = ev!();
            match org.platform {
                Platform::Wecom if !r.members.is_empty() => b.wecom(
                    "change_contact",
                    Some("update_tag"),
                    &[
                        ("TagId", role_id.to_string()),
                        (
                            "DelUserItems",
                            r.members.iter().cloned().collect::<Vec<_>>().join(","),
                        ),
                    ],
                ),
                Platform::Wecom => {}
                Platform::DingTalk => b.ding(
                    "label_conf_del",
                    json!({"scope": 1, "labelIdList": [role_id]}),
                ),
            }
            events = b.out;
        }
        Mutation::AddRoleMembers { role_id, userids }
        | Mutation::RemoveRoleMembers { role_id, userids } => {
            let add = matches!(m, Mutation::AddRoleMembers { .. });
            for u in userids {
                need(org, u)?;
            }
            let r = org
                .roles
                .get_mut(role_id)
                .ok_or_else(|| format!("role {role_id} does not exist"))?;
            for u in userids {
                if add {
                    r.members.insert(u.clone());
                } else {
                    r.members.remove(u);
                }
            }
            let mut b = ev!();
            match org.platform {
                Platform::Wecom => b.wecom(
                    "change_contact",
                    Some("update_tag"),
                    &[
                        ("TagId", role_id.to_string()),
                        (if add { "AddUserItems" } else { "DelUserItems" }, userids.join(",")),
                    ],
                ),
                Platform::DingTalk => b.ding(
                    "label_user_change",
                    json!({"userIdList": userids, "action": if add {"add"} else {"remove"}, "labelIdList": [role_id]}),
                ),
            }
            events = b.out;
        }
        Mutation::SetVisibleRange { depts } => {
            if let Some(missing) = depts.iter().flatten().find(|d| !org.depts.contains_key(d)) {
                return Err(format!("department {missing} does not exist"));
            }
            org.visible_roots = depts.clone();
        }
        Mutation::SetAdmins { admins } => {
            for a in admins {
                need(org, &a.userid)?;
            }
            let before: BTreeSet<String> = org.admins.iter().map(|a| a.0.clone()).collect();
            org.admins = admins.iter().map(|a| (a.userid.clone(), a.level)).collect();
            org.sync_admin_roles();
            let after: BTreeSet<String> = org.admins.iter().map(|a| a.0.clone()).collect();
            let mut b = ev!();
            match org.platform {
                Platform::Wecom => b.wecom(
                    "change_app_admin",
                    None,
                    &[("AgentID", org.agent_id.to_string())],
                ),
                Platform::DingTalk => {
                    let added: Vec<&String> = after.difference(&before).collect();
                    let removed: Vec<&String> = before.difference(&after).collect();
                    if !added.is_empty() {
                        b.ding("org_admin_add", json!({"userId": added}));
                    }
                    if !removed.is_empty() {
                        b.ding("org_admin_remove", json!({"userId": removed}));
                    }
                }
            }
            events = b.out;
        }
    }
    Ok((outcome, events))
}

/// Routes of the admin API (`/_sim/...`).
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/info", get(info))
        .route("/_sim/stats", get(stats))
        .route("/_sim/stats/reset", post(reset_stats))
        .route("/_sim/tokens/invalidate", post(invalidate))
        .route("/_sim/faults", get(faults).post(set_faults))
        .route("/_sim/orgs/{org}/visible-range", post(visible_range))
        .route("/_sim/orgs/{org}/refusals", post(refusals))
        .route("/_sim/orgs/{org}/truth", get(truth))
        .route("/_sim/orgs/{org}/mutate", post(mutate))
        .route("/_sim/orgs/{org}/login-code", post(login_code))
        .route("/_sim/orgs/{org}/callback", post(set_callback))
        .route("/_sim/orgs/{org}/callback/verify", post(verify_callback))
}

fn bad(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": msg.to_string()}))).into_response()
}

fn org_ref(sh: &Shared, s: &str) -> Result<OrgRef, String> {
    let r: OrgRef = s.parse()?;
    sh.org(r).map_err(|e| e.to_string())?;
    Ok(r)
}

async fn info(State(sh): State<Arc<Shared>>) -> Response {
    Json(sh.info.get().cloned()).into_response()
}

async fn stats(State(sh): State<Arc<Shared>>) -> Response {
    Json(crate::stats_of(&sh)).into_response()
}

async fn reset_stats(State(sh): State<Arc<Shared>>) -> Response {
    crate::reset_stats_of(&sh);
    Json(json!({"ok": true})).into_response()
}

async fn invalidate(State(sh): State<Arc<Shared>>) -> Response {
    sh.invalidate_tokens();
    Json(json!({"ok": true})).into_response()
}

async fn faults(State(sh): State<Arc<Shared>>) -> Response {
    Json(sh.chaos.read().expect("chaos lock").faults.clone()).into_response()
}

/// Body of `POST /_sim/faults`: fields left out keep their value.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FaultPatch {
    rate: Option<f64>,
    kinds: Option<Vec<crate::FaultKind>>,
    outage_rate: Option<f64>,
    stall_ms: Option<u64>,
    round: Option<u64>,
}

async fn set_faults(State(sh): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let p: FaultPatch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("bad fault settings: {e}")),
    };
    let mut f = sh.chaos.read().expect("chaos lock").faults.clone();
    f.rate = p.rate.unwrap_or(f.rate);
    f.kinds = p.kinds.unwrap_or(f.kinds);
    f.outage_rate = p.outage_rate.unwrap_or(f.outage_rate);
    f.stall_ms = p.stall_ms.unwrap_or(f.stall_ms);
    f.round = p.round.unwrap_or(f.round);
    match sh.set_fault_settings(f.clone()) {
        Ok(()) => Json(f).into_response(),
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

#[derive(Deserialize)]
struct RangeReq {
    depts: Option<Vec<i64>>,
}

async fn visible_range(
    State(sh): State<Arc<Shared>>,
    Path(org): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let r = match org_ref(&sh, &org) {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::NOT_FOUND, e),
    };
    let req: RangeReq = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("bad visible range: {e}")),
    };
    match crate::mutate_shared(&sh, r, Mutation::SetVisibleRange { depts: req.depts }) {
        Ok(_) => Json(json!({"ok": true})).into_response(),
        Err(e) => bad(StatusCode::CONFLICT, e),
    }
}

async fn refusals(
    State(sh): State<Arc<Shared>>,
    Path(org): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let r = match org_ref(&sh, &org) {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::NOT_FOUND, e),
    };
    let list: Vec<crate::DeptRefusal> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("bad refusals: {e}")),
    };
    match sh.set_refusals(r, list) {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => bad(StatusCode::NOT_FOUND, e),
    }
}

async fn truth(State(sh): State<Arc<Shared>>, Path(org): Path<String>) -> Response {
    match org_ref(&sh, &org) {
        Ok(r) => Json(
            sh.org(r)
                .expect("checked")
                .read()
                .expect("org lock")
                .truth(),
        )
        .into_response(),
        Err(e) => bad(StatusCode::NOT_FOUND, e),
    }
}

/// Body of `/mutate`: one mutation or a list applied in order.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Mutation>),
    One(Mutation),
}

async fn mutate(
    State(sh): State<Arc<Shared>>,
    Path(org): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let r = match org_ref(&sh, &org) {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::NOT_FOUND, e),
    };
    let list = match serde_json::from_slice::<OneOrMany>(&body) {
        Ok(OneOrMany::One(m)) => vec![m],
        Ok(OneOrMany::Many(v)) => v,
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("bad mutation JSON: {e}")),
    };
    let mut outcomes = Vec::new();
    for m in list {
        match crate::mutate_shared(&sh, r, m) {
            Ok(o) => outcomes.push(o),
            Err(e) => return bad(StatusCode::CONFLICT, e),
        }
    }
    Json(json!({"ok": true, "outcomes": outcomes})).into_response()
}

#[derive(Deserialize)]
struct CodeReq {
    #[serde(default)]
    userid: String,
    /// A code for someone who is not a member of the org.
    #[serde(default)]
    outsider: bool,
}

async fn login_code(
    State(sh): State<Arc<Shared>>,
    Path(org): Path<String>,
    Json(body): Json<CodeReq>,
) -> Response {
    let r = match org_ref(&sh, &org) {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::NOT_FOUND, e),
    };
    if body.outsider != body.userid.is_empty() {
        let e = "give either a userid or \"outsider\": true";
        return bad(StatusCode::BAD_REQUEST, e);
    }
    let userid = if body.outsider { "" } else { &body.userid };
    match crate::login_code_shared(&sh, r, userid) {
        Ok(code) => Json(json!({"code": code})).into_response(),
        Err(e) => bad(StatusCode::NOT_FOUND, e),
    }
}

async fn set_callback(
    State(sh): State<Arc<Shared>>,
    Path(org): Path<String>,
    Json(body): Json<Option<CallbackConfig>>,
) -> Response {
    let r = match org_ref(&sh, &org) {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::NOT_FOUND, e),
    };
    match crate::events::set_callback(&sh, r.index(), body) {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

async fn verify_callback(State(sh): State<Arc<Shared>>, Path(org): Path<String>) -> Response {
    let r = match org_ref(&sh, &org) {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::NOT_FOUND, e),
    };
    match crate::events::verify(&sh, r.index()).await {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => bad(StatusCode::BAD_GATEWAY, e),
    }
}
