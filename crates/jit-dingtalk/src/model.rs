//! DingTalk JSON → domain types. Absent fields become `None`, never errors.

use jit_apiclient::json;
use jit_apiclient::json::{check_id, check_ids, check_text, shown};
use jit_org::{Dept, DeptMembership, Member, MemberStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A member as one `topapi/v2/user/list` page shows it: the profile plus
/// what the page says about the listed department.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedMember {
    /// Profile; `depts` holds every department of `dept_id_list`, with order
    /// and leader flag where the answer gave them.
    pub member: Member,
    /// (department, order, leader) facts this answer stated explicitly.
    pub known: Vec<(i64, Option<i64>, Option<bool>)>,
}

/// One page of `topapi/v2/user/list`.
#[derive(Debug, Clone, PartialEq)]
pub struct UserPage {
    /// Members of the page.
    pub members: Vec<ListedMember>,
    /// Whether more pages follow.
    pub has_more: bool,
    /// Cursor of the next page.
    pub next_cursor: Option<i64>,
}

/// A `topapi/v2/user/getuserinfo` answer (in-app login).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginIdentity {
    /// The member's userid.
    pub user_id: Option<String>,
    /// The unionId.
    pub union_id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// 1 primary admin, 2 sub-admin, 100 boss, 0 other.
    pub sys_level: Option<i64>,
}

/// Checks a department object before it is read: an unreadable id or
/// parent fails the read instead of becoming department 0.
pub(crate) fn check_dept(v: &Value, pointer: &str) -> Result<(), String> {
    if !v.is_object() {
        return Err(format!("{pointer} is {}, not a department", shown(Some(v))));
    }
    check_id(v, "dept_id", pointer, true)?;
    if v.get("parent_id")
        .is_some_and(|p| json::int(Some(p)) != Some(0))
    {
        check_id(v, "parent_id", pointer, false)?;
    }
    check_text(v, "name", pointer, false)
}

/// Checks a user object of `topapi/v2/user/list`: userid and departments readable.
pub(crate) fn check_member(v: &Value, pointer: &str) -> Result<(), String> {
    if !v.is_object() {
        return Err(format!("{pointer} is {}, not a member", shown(Some(v))));
    }
    check_text(v, "userid", pointer, true)?;
    check_text(v, "name", pointer, false)?;
    check_text(v, "unionid", pointer, false)?;
    check_ids(v, "dept_id_list", pointer)
}

pub(crate) fn dept_from_json(v: &Value) -> Dept {
    let mut d = Dept::new(
        json::int(v.get("dept_id")).unwrap_or(0),
        json::int(v.get("parent_id")).filter(|p| *p != 0),
        json::string(v.get("name")).unwrap_or_default(),
    );
    d.order = json::int(v.get("order")).unwrap_or(0);
    d.leaders = json::strings(v.get("dept_manager_userid_list"));
    d
}

/// Per-department (order, leader) facts of a user object: the list API's
/// `dept_order`/`leader` for the listed department, and the detail API's
/// `dept_order_list`/`leader_in_dept` for all.
fn known_facts(v: &Value, listed: Option<i64>) -> Vec<(i64, Option<i64>, Option<bool>)> {
    let mut facts: BTreeMap<i64, (Option<i64>, Option<bool>)> = BTreeMap::new();
    for o in json::array(v.get("dept_order_list")) {
        if let Some(d) = json::int(o.get("dept_id")) {
            facts.entry(d).or_default().0 = json::int(o.get("order"));
        }
    }
    for l in json::array(v.get("leader_in_dept")) {
        if let Some(d) = json::int(l.get("dept_id")) {
            facts.entry(d).or_default().1 = json::boolean(l.get("leader"));
        }
    }
    if let Some(d) = listed {
        let e = facts.entry(d).or_default();
        if let Some(o) = json::int(v.get("dept_order")) {
            e.0 = Some(o);
        }
        if let Some(l) = json::boolean(v.get("leader")) {
            e.1 = Some(l);
        }
    }
    facts.into_iter().map(|(d, (o, l))| (d, o, l)).collect()
}

/// A user object of `topapi/v2/user/list` (with `listed` = the department
/// listed) or `topapi/v2/user/get` (`listed` = `None`).
pub(crate) fn listed_member_from_json(v: &Value, listed: Option<i64>) -> ListedMember {
    let mut m = Member::new(
        json::string(v.get("userid")).unwrap_or_default(),
        json::string(v.get("name")).unwrap_or_default(),
    );
    m.union_id = json::string(v.get("unionid")).filter(|u| !u.is_empty());
    m.status = match json::boolean(v.get("active")) {
        Some(false) => MemberStatus::NotActivated,
        _ => MemberStatus::Active,
    };
    m.position = json::string(v.get("title"));
    m.job_number = json::string(v.get("job_number"));
    m.hired_date = json::int(v.get("hired_date"));
    // Omitted for a default avatar, and mobile/email without the permission:
    // unknown, not empty.
    m.avatar = json::string(v.get("avatar"));
    m.mobile = json::string(v.get("mobile"));
    m.email = json::string(v.get("email"));
    if let Some(ext) = v.get("extension").filter(|e| !e.is_null()) {
        // A JSON string per the docs; keep it parsed when it parses.
        let parsed = ext
            .as_str()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .unwrap_or_else(|| ext.clone());
        m.extra = serde_json::json!({ "extension": parsed });
    }
    let known = known_facts(v, listed);
    let mut ids = json::ints(v.get("dept_id_list"));
    if ids.is_empty() {
        ids = known.iter().map(|k| k.0).collect();
    }
    m.depts = ids
        .iter()
        .map(|&d| {
            let k = known.iter().find(|k| k.0 == d);
            DeptMembership {
                dept_id: d,
                order: k.and_then(|k| k.1).unwrap_or(0),
                is_leader: k.and_then(|k| k.2).unwrap_or(false),
            }
        })
        .collect();
    ListedMember { member: m, known }
}

pub(crate) fn user_page_from_json(result: &Value, dept: i64) -> UserPage {
    UserPage {
        members: json::array(result.get("list"))
            .iter()
            .map(|u| listed_member_from_json(u, Some(dept)))
            .collect(),
        has_more: json::boolean(json::field(result, &["has_more", "hasMore"])).unwrap_or(false),
        next_cursor: json::int(json::field(result, &["next_cursor", "nextCursor"])),
    }
}

pub(crate) fn login_from_json(r: &Value) -> LoginIdentity {
    LoginIdentity {
        user_id: json::string(r.get("userid")),
        union_id: json::string(r.get("unionid")).filter(|u| !u.is_empty()),
        name: json::string(r.get("name")),
        sys_level: json::int(r.get("sys_level")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_item_fills_order_and_leader_of_the_listed_department_only() {
        let v = json!({"userid":"0154","unionid":"u1","name":"N","dept_id_list":[5,7],
                       "dept_order":3,"leader":true,"active":true});
        let l = listed_member_from_json(&v, Some(7));
        assert_eq!(l.member.member_id, "0154");
        assert_eq!(l.member.depts[1].order, 3);
        assert!(l.member.depts[1].is_leader);
        assert_eq!(l.known, vec![(7, Some(3), Some(true))]);
    }

    #[test]
    fn detail_lists_give_every_department() {
        let v = json!({"userid":"a","name":"A","dept_id_list":[2,3],
            "dept_order_list":[{"dept_id":2,"order":9},{"dept_id":3,"order":"4"}],
            "leader_in_dept":[{"dept_id":3,"leader":"true"}]});
        let l = listed_member_from_json(&v, None);
        assert_eq!(l.member.depts[0].order, 9);
        assert_eq!(l.member.depts[1].order, 4);
        assert!(l.member.depts[1].is_leader);
    }

    #[test]
    fn inactive_is_not_activated_and_absent_fields_are_unknown() {
        let v = json!({"userid":"a","name":"A","active":false});
        let m = listed_member_from_json(&v, Some(1)).member;
        assert_eq!(m.status, MemberStatus::NotActivated);
        assert_eq!(m.mobile, None);
        assert_eq!(m.email, None);
        assert_eq!(m.avatar, None);
    }

    #[test]
    fn root_department_without_parent_is_top_level() {
        let d = dept_from_json(&json!({"dept_id":1,"name":"Org","order":0}));
        assert_eq!(d.parent_id, None);
        assert!(d.leaders.is_empty());
    }

    #[test]
    fn last_page_without_next_cursor_is_read() {
        let p = user_page_from_json(&json!({"has_more":false,"list":[]}), 1);
        assert!(!p.has_more);
        assert_eq!(p.next_cursor, None);
    }
}
