//! What a batch of events names: the one place event payloads are read.

use super::{ApplyError, InboxEvent};
use jit_org::Platform;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The objects a batch of events names, deduplicated: what has to be read
/// from the platform to apply the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// Members to read (`user/get`).
    pub members: BTreeSet<String>,
    /// Departments a member event said the member is in (WeCom's
    /// `Department`), used to group reads of one department's members.
    pub member_depts: BTreeMap<String, Vec<i64>>,
    /// Departments to read (`department/get`).
    pub depts: BTreeSet<i64>,
    /// Roles (WeCom tags) whose holders to read.
    pub roles: BTreeSet<String>,
    /// The role list itself changed (DingTalk `label_conf_*`): read it.
    pub role_list: bool,
    /// The admin list changed: read it.
    pub admins: bool,
}

impl Targets {
    /// Whether nothing is to be read.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
            && self.depts.is_empty()
            && self.roles.is_empty()
            && !self.role_list
            && !self.admins
    }

    /// Adds what `event` names; `Ok(false)` for an event that names
    /// nothing this runtime syncs (it is passed over).
    pub fn add(&mut self, event: &InboxEvent) -> Result<bool, ApplyError> {
        let bad = |reason: String| ApplyError::Malformed {
            corp: event.corp.clone(),
            event_id: event.id,
            event_type: event.event_type.clone(),
            reason,
        };
        if !event.payload.is_object() {
            return Err(bad("the payload is not an object".into()));
        }
        match event.platform {
            Platform::Wecom => self.add_wecom(event, &bad),
            Platform::DingTalk => self.add_dingtalk(event, &bad),
        }
    }

    fn add_wecom(
        &mut self,
        e: &InboxEvent,
        bad: &dyn Fn(String) -> ApplyError,
    ) -> Result<bool, ApplyError> {
        let p = &e.payload;
        let field = |k: &str| p.get(k).and_then(Value::as_str).map(str::trim);
        let required = |k: &str| match field(k) {
            Some(v) if !v.is_empty() => Ok(v.to_string()),
            _ => Err(bad(format!("no {k}"))),
        };
        let id = |k: &str| -> Result<i64, ApplyError> {
            let v = required(k)?;
            v.parse::<i64>()
                .map_err(|_| bad(format!("{k} is not a number")))
        };
        match e.event_type.as_str() {
            "create_user" | "update_user" | "delete_user" => {
                let user = required("UserID")?;
                // A userid change (NewUserID): the old id is gone and the
                // new one is read, as a full sync would see it.
                if let Some(new) = field("NewUserID").filter(|v| !v.is_empty()) {
                    self.members.insert(new.to_string());
                    self.hint(new, field("Department"), bad)?;
                }
                self.hint(&user, field("Department"), bad)?;
                self.members.insert(user);
            }
            "create_party" | "update_party" | "delete_party" => {
                self.depts.insert(id("Id")?);
            }
            "update_tag" => {
                self.roles.insert(id("TagId")?.to_string());
            }
            "change_app_admin" => self.admins = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Records WeCom's `Department` list ("1,2") of a member event.
    fn hint(
        &mut self,
        user: &str,
        depts: Option<&str>,
        bad: &dyn Fn(String) -> ApplyError,
    ) -> Result<(), ApplyError> {
        let Some(list) = depts.filter(|d| !d.is_empty()) else {
            return Ok(());
        };
        let ids = list
            .split(',')
            .map(|d| d.trim().parse::<i64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("Department is not a list of numbers".into()))?;
        self.member_depts.insert(user.to_string(), ids);
        Ok(())
    }

    fn add_dingtalk(
        &mut self,
        e: &InboxEvent,
        bad: &dyn Fn(String) -> ApplyError,
    ) -> Result<bool, ApplyError> {
        let p = &e.payload;
        // Ids come as a list (HTTP push) or, in some Stream frames, as one
        // value; numbers may be strings.
        let list = |keys: &[&str]| -> Result<Vec<String>, ApplyError> {
            let Some(v) = keys.iter().find_map(|k| p.get(*k)) else {
                return Err(bad(format!("no {}", keys[0])));
            };
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            items
                .into_iter()
                .map(|i| match i {
                    Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(bad(format!(
                        "{} holds something that is not an id",
                        keys[0]
                    ))),
                })
                .collect()
        };
        let numbers = |keys: &[&str]| -> Result<Vec<i64>, ApplyError> {
            list(keys)?
                .iter()
                .map(|s| {
                    s.parse::<i64>()
                        .map_err(|_| bad(format!("{} holds a non-numeric id", keys[0])))
                })
                .collect()
        };
        match e.event_type.as_str() {
            "user_add_org" | "user_modify_org" | "user_leave_org" | "user_active_org" => {
                self.members.extend(list(&["userId", "UserId", "userid"])?);
            }
            "org_dept_create" | "org_dept_modify" | "org_dept_remove" => {
                self.depts.extend(numbers(&["deptId", "DeptId"])?);
            }
            "label_user_change" => {
                self.roles.extend(list(&["labelIdList", "LabelIdList"])?);
                // The holders' own records do not change: roles are read
                // from the role's side, as a full sync reads them.
            }
            "label_conf_add" | "label_conf_modify" | "label_conf_del" => {
                list(&["labelIdList", "LabelIdList"])?;
                self.role_list = true;
            }
            "org_admin_add" | "org_admin_remove" => self.admins = true,
            _ => return Ok(false),
        }
        Ok(true)
    }
}
