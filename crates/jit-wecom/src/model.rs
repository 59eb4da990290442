//! WeCom JSON → domain types. Absent fields become `None`, never errors.

use jit_apiclient::json;
use jit_apiclient::json::{check_id, check_ids, check_text, shown};
use jit_apiclient::{head_of, Scalar, TypedAnswer};
use jit_org::{Dept, DeptMembership, Member, MemberStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A row of `department/simplelist`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeptRef {
    /// Department id.
    pub id: i64,
    /// Parent id (`None` for the root, whose `parentid` is 0).
    pub parent_id: Option<i64>,
    /// Order among siblings.
    pub order: i64,
}

/// A row of `user/simplelist`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimpleUser {
    /// userid.
    pub userid: String,
    /// Name.
    pub name: String,
    /// Departments.
    pub departments: Vec<i64>,
}

/// One page of `user/list_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListIdPage {
    /// (userid, department) rows.
    pub rows: Vec<(String, i64)>,
    /// Cursor of the next page; `None` when this was the last.
    pub next_cursor: Option<String>,
}

/// A row of `tag/list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// tagid.
    pub tag_id: i64,
    /// tagname.
    pub name: String,
}

/// A `tag/get` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagDetail {
    /// tagid.
    pub tag_id: i64,
    /// tagname (`None` if absent).
    pub name: Option<String>,
    /// Member userids (only those in the app's visible range).
    pub user_ids: Vec<String>,
    /// Department ids tagged as a whole.
    pub party_ids: Vec<i64>,
}

/// An `agent/get` answer: the app and its visible range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// agentid.
    pub agent_id: Option<i64>,
    /// App name.
    pub name: Option<String>,
    /// Members in the visible range.
    pub allow_user_ids: Vec<String>,
    /// Departments in the visible range.
    pub allow_party_ids: Vec<i64>,
    /// Tags in the visible range.
    pub allow_tag_ids: Vec<i64>,
}

/// An `auth/getuserinfo` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginIdentity {
    /// The member's userid (members only; `UserId` on the old endpoint).
    pub user_id: Option<String>,
    /// The openid of a non-member.
    pub open_id: Option<String>,
    /// Present only for `snsapi_privateinfo` logins (valid 1800 s).
    pub user_ticket: Option<String>,
}

/// Checks a `department/list` row before it is read: a row whose id,
/// parent or name cannot be read fails the read of the list, rather than
/// becoming department 0 or a nameless department.
pub(crate) fn check_dept(v: &Value, pointer: &str) -> Result<(), String> {
    if !v.is_object() {
        return Err(format!("{pointer} is {}, not a department", shown(Some(v))));
    }
    check_id(v, "id", pointer, true)?;
    if let Some(p) = v.get("parentid").filter(|p| !p.is_null()) {
        if json::int(Some(p)) != Some(0) {
            check_id(v, "parentid", pointer, true)?;
        }
    }
    check_text(v, "name", pointer, false)
}

/// Checks a `user/list` row: its userid, departments and status must be readable.
pub(crate) fn check_member(v: &Value, pointer: &str) -> Result<(), String> {
    if !v.is_object() {
        return Err(format!("{pointer} is {}, not a member", shown(Some(v))));
    }
    check_text(v, "userid", pointer, true)?;
    check_text(v, "name", pointer, false)?;
    check_ids(v, "department", pointer)?;
    match v.get("status") {
        None | Some(Value::Null) => Ok(()),
        x if json::int(x).is_some() => Ok(()),
        x => Err(format!(
            "{pointer}/status is {}, not a status code",
            shown(x)
        )),
    }
}

/// Checks that a department listing is a forest: no id twice, no cycle in
/// the parent links among the listed departments (a parent outside the
/// listing is the top of what the app may see, and is fine).
pub(crate) fn check_tree(depts: &[Dept]) -> Result<(), String> {
    let mut parent = std::collections::HashMap::new();
    for (i, d) in depts.iter().enumerate() {
        if parent.insert(d.dept_id, d.parent_id).is_some() {
            return Err(format!(
                "department {} is listed twice (again at /department/{i})",
                d.dept_id
            ));
        }
    }
    for d in depts {
        let mut at = d.parent_id;
        let mut steps = 0;
        while let Some(p) = at {
            if p == d.dept_id || steps > depts.len() {
                return Err(format!(
                    "department {} is its own ancestor: the parent links form a cycle",
                    d.dept_id
                ));
            }
            at = parent.get(&p).copied().flatten();
            steps += 1;
        }
    }
    Ok(())
}

/// Checks a `tag/list` row.
pub(crate) fn check_tag(v: &Value, pointer: &str) -> Result<(), String> {
    if !v.is_object() {
        return Err(format!("{pointer} is {}, not a tag", shown(Some(v))));
    }
    check_id(v, "tagid", pointer, true)
}

pub(crate) fn parent(v: Option<&Value>) -> Option<i64> {
    json::int(v).filter(|p| *p != 0)
}

pub(crate) fn dept_from_json(v: &Value) -> Dept {
    let mut d = Dept::new(
        json::int(v.get("id")).unwrap_or(0),
        parent(v.get("parentid")),
        json::string(v.get("name")).unwrap_or_default(),
    );
    d.order = json::int(v.get("order")).unwrap_or(0);
    d.leaders = json::strings(v.get("department_leader"));
    d
}

pub(crate) fn dept_ref_from_json(v: &Value) -> DeptRef {
    DeptRef {
        id: json::int(v.get("id")).unwrap_or(0),
        parent_id: parent(v.get("parentid")),
        order: json::int(v.get("order")).unwrap_or(0),
    }
}

/// WeCom `status`: 1 activated, 2 disabled, 4 not activated, 5 left.
pub(crate) fn status(code: Option<i64>) -> MemberStatus {
    match code {
        Some(2) => MemberStatus::Disabled,
        Some(4) => MemberStatus::NotActivated,
        Some(5) => MemberStatus::Offline,
        _ => MemberStatus::Active,
    }
}

pub(crate) fn member_from_json(v: &Value) -> Member {
    let mut m = Member::new(
        json::string(v.get("userid")).unwrap_or_default(),
        json::string(v.get("name")).unwrap_or_default(),
    );
    m.status = status(json::int(v.get("status")));
    m.position = json::string(v.get("position"));
    m.main_dept_id = json::int(v.get("main_department"));
    // Withheld since 2022-06-20 for new self-built apps: absent means unknown.
    m.mobile = json::string(v.get("mobile"));
    m.email = json::string(v.get("email"));
    m.avatar = json::string(v.get("avatar"));
    let depts = json::ints(v.get("department"));
    let orders = json::ints(v.get("order"));
    let leaders = json::ints(v.get("is_leader_in_dept"));
    m.depts = memberships(&depts, &orders, &leaders);
    if let Some(ext) = v.get("extattr").filter(|e| !e.is_null()) {
        m.extra = serde_json::json!({ "extattr": ext });
    }
    m
}

pub(crate) fn simple_user_from_json(v: &Value) -> SimpleUser {
    SimpleUser {
        userid: json::string(v.get("userid")).unwrap_or_default(),
        name: json::string(v.get("name")).unwrap_or_default(),
        departments: json::ints(v.get("department")),
    }
}

pub(crate) fn list_id_page_from_json(v: &Value) -> ListIdPage {
    ListIdPage {
        rows: json::array(v.get("dept_user"))
            .iter()
            .filter_map(|r| {
                Some((
                    json::string(r.get("userid"))?,
                    json::int(r.get("department"))?,
                ))
            })
            .collect(),
        next_cursor: json::string(v.get("next_cursor")).filter(|c| !c.is_empty()),
    }
}

pub(crate) fn tag_from_json(v: &Value) -> Option<Tag> {
    Some(Tag {
        tag_id: json::int(v.get("tagid"))?,
        name: json::string(v.get("tagname")).unwrap_or_default(),
    })
}

pub(crate) fn tag_detail_from_json(tag_id: i64, v: &Value) -> TagDetail {
    TagDetail {
        tag_id,
        name: json::string(v.get("tagname")),
        user_ids: json::array(v.get("userlist"))
            .iter()
            .filter_map(|u| json::string(u.get("userid")))
            .collect(),
        party_ids: json::ints(v.get("partylist")),
    }
}

pub(crate) fn agent_from_json(v: &Value) -> AgentInfo {
    AgentInfo {
        agent_id: json::int(v.get("agentid")),
        name: json::string(v.get("name")),
        allow_user_ids: json::array(v.pointer("/allow_userinfos/user"))
            .iter()
            .filter_map(|u| json::string(u.get("userid")))
            .collect(),
        allow_party_ids: json::ints(v.pointer("/allow_partys/partyid")),
        allow_tag_ids: json::ints(v.pointer("/allow_tags/tagid")),
    }
}

pub(crate) fn login_from_json(v: &Value) -> LoginIdentity {
    LoginIdentity {
        user_id: json::string(json::field(v, &["userid", "UserId"])),
        open_id: json::string(json::field(v, &["openid", "OpenId"])),
        user_ticket: json::string(v.get("user_ticket")),
    }
}

/// A `user/list` answer read straight into rows, without a JSON tree: the
/// fast path for the largest answers of a sync. It accepts only the plain
/// shape (texts as strings, ids and codes as integers); anything else fails
/// to read and the answer goes through [`check_member`] and
/// [`member_from_json`], which name what is wrong or read it leniently, so
/// both paths give the same members.
#[derive(Deserialize)]
pub(crate) struct UserListAnswer {
    /// Kept for the WeCom dialect's judgement ([`jit_apiclient::TypedAnswer`]).
    #[serde(default)]
    errcode: Scalar,
    #[serde(default)]
    errmsg: Scalar,
    userlist: Vec<UserRow>,
}

impl TypedAnswer for UserListAnswer {
    fn head(&self) -> Value {
        // Every field `WecomDialect::classify` reads.
        head_of([("errcode", &self.errcode), ("errmsg", &self.errmsg)])
    }
}

/// One plain `user/list` row (see [`UserListAnswer`]).
#[derive(Deserialize)]
struct UserRow {
    userid: String,
    name: Option<String>,
    status: Option<i64>,
    position: Option<String>,
    main_department: Option<i64>,
    mobile: Option<String>,
    email: Option<String>,
    avatar: Option<String>,
    department: Option<Vec<i64>>,
    order: Option<Vec<i64>>,
    is_leader_in_dept: Option<Vec<i64>>,
    extattr: Option<Value>,
}

impl UserListAnswer {
    /// The members; a row holding what [`check_member`] refuses (an empty
    /// userid, a department id out of range) gives its message, naming the
    /// same JSON pointer as the checked way.
    pub(crate) fn into_members(self) -> Result<Vec<Member>, String> {
        let id_ok = |d: &i64| (1..=json::MAX_ID).contains(d);
        self.userlist
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let depts = r.department.unwrap_or_default();
                if r.userid.is_empty() || !depts.iter().all(id_ok) {
                    let row = serde_json::json!({ "userid": r.userid, "department": depts });
                    check_member(&row, &format!("/userlist/{i}"))?;
                }
                let orders = r.order.unwrap_or_default();
                let leaders = r.is_leader_in_dept.unwrap_or_default();
                let mut m = Member::new(r.userid, r.name.unwrap_or_default());
                m.status = status(r.status);
                m.position = r.position;
                m.main_dept_id = r.main_department;
                m.mobile = r.mobile;
                m.email = r.email;
                m.avatar = r.avatar;
                m.depts = memberships(&depts, &orders, &leaders);
                if let Some(ext) = r.extattr.filter(|e| !e.is_null()) {
                    m.extra = serde_json::json!({ "extattr": ext });
                }
                Ok(m)
            })
            .collect()
    }
}

/// A member's departments from WeCom's parallel arrays `department`,
/// `order` and `is_leader_in_dept` (a missing entry is order 0, not a leader).
fn memberships(depts: &[i64], orders: &[i64], leaders: &[i64]) -> Vec<DeptMembership> {
    depts
        .iter()
        .enumerate()
        .map(|(i, &d)| DeptMembership {
            dept_id: d,
            order: orders.get(i).copied().unwrap_or(0),
            is_leader: leaders.get(i).copied().unwrap_or(0) != 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unreadable_ids_fail_the_check_and_readable_ones_pass() {
        assert!(check_dept(
            &json!({"id": 2, "parentid": 1, "name": "A"}),
            "/department/0"
        )
        .is_ok());
        assert!(check_dept(&json!({"id": 1, "parentid": 0}), "/department/0").is_ok());
        for bad in [
            json!("two"),
            json!(-7),
            json!(0),
            json!(9223372036854775808u64),
            json!(1.5),
            json!(null),
            json!(true),
        ] {
            let e = check_dept(&json!({"id": bad, "name": "A"}), "/department/3").unwrap_err();
            assert!(e.starts_with("/department/3/id is"), "{e}");
        }
        assert!(check_member(
            &json!({"userid": "u", "department": [1, 2], "status": 1}),
            "/userlist/0"
        )
        .is_ok());
        assert!(check_member(&json!({"userid": {"a": 1}}), "/userlist/0").is_err());
        assert!(check_member(&json!({"userid": "u", "department": "2"}), "/userlist/0").is_err());
        assert!(check_member(&json!({"userid": "u", "status": "gone"}), "/userlist/0").is_err());
        assert!(json::records(&json!({"userlist": "x"}), "userlist").is_err());
    }

    #[test]
    fn a_department_listing_with_a_cycle_or_a_repeated_id_is_no_tree() {
        let d = |id, parent| Dept::new(id, parent, "d");
        assert!(check_tree(&[d(1, None), d(2, Some(1)), d(3, Some(2))]).is_ok());
        // The top of a limited visible range has a parent outside the listing.
        assert!(check_tree(&[d(5, Some(1)), d(6, Some(5))]).is_ok());
        let cycle = check_tree(&[d(1, None), d(2, Some(3)), d(3, Some(2))]).unwrap_err();
        assert!(cycle.contains("cycle"), "{cycle}");
        let twice = check_tree(&[d(1, None), d(2, Some(1)), d(2, Some(1))]).unwrap_err();
        assert!(twice.contains("listed twice"), "{twice}");
    }

    #[test]
    fn documented_user_sample_maps_every_membership() {
        let v = json!({"userid":"zhangsan","name":"李四","department":[1,2],"order":[1,2],
            "position":"后台工程师","mobile":"13800000000","gender":"1","email":"zhangsan@gzdev.com",
            "is_leader_in_dept":[1,0],"status":1,"main_department":1});
        let m = member_from_json(&v);
        assert_eq!(m.depts.len(), 2);
        assert!(m.depts[0].is_leader && !m.depts[1].is_leader);
        assert_eq!(m.depts[1].order, 2);
        assert_eq!(m.main_dept_id, Some(1));
        assert_eq!(m.mobile.as_deref(), Some("13800000000"));
    }

    #[test]
    fn withheld_fields_are_unknown_not_empty() {
        let v = json!({"userid":"a","name":"A","department":[1],"status":4});
        let m = member_from_json(&v);
        assert_eq!(m.mobile, None);
        assert_eq!(m.email, None);
        assert_eq!(m.avatar, None);
        assert_eq!(m.status, MemberStatus::NotActivated);
    }

    #[test]
    fn status_five_means_left() {
        assert_eq!(status(Some(5)), MemberStatus::Offline);
        assert_eq!(status(Some(2)), MemberStatus::Disabled);
    }

    #[test]
    fn root_parent_zero_is_none() {
        let d = dept_from_json(&json!({"id":1,"name":"Acme","parentid":0,"order":100000000}));
        assert_eq!(d.parent_id, None);
        assert_eq!(d.order, 100_000_000);
    }

    #[test]
    fn old_login_endpoint_capitalised_keys_are_read() {
        let l = login_from_json(&json!({"UserId":"u1","DeviceId":""}));
        assert_eq!(l.user_id.as_deref(), Some("u1"));
    }

    /// The fast read of a plain `user/list` answer gives the members the
    /// checked read gives.
    #[test]
    fn a_plain_user_list_reads_the_same_straight_into_members() {
        let answer = json!({"errcode": 0, "errmsg": "ok", "userlist": [
            {"userid": "u1", "name": "Ann", "status": 1, "department": [2, 3], "order": [5, 6],
             "is_leader_in_dept": [0, 1], "main_department": 2, "position": "PM",
             "mobile": "138", "email": "a@x", "avatar": "http://a", "extattr": {"attrs": []}},
            {"userid": "u2", "name": "Bo", "status": 5, "department": [3]},
            {"userid": "u3"}
        ]});
        let fast: UserListAnswer = serde_json::from_value(answer.clone()).unwrap();
        let rows = answer["userlist"].as_array().unwrap();
        let checked: Vec<Member> = rows.iter().map(member_from_json).collect();
        assert_eq!(fast.into_members().unwrap(), checked);
    }

    /// A row the check refuses is refused by the fast read with the same
    /// message, naming the same JSON pointer.
    #[test]
    fn the_fast_read_refuses_what_the_check_refuses_with_its_message() {
        for row in [
            json!({"userid": "", "department": [2]}),
            json!({"userid": "u9", "department": [2, 0]}),
        ] {
            let answer = json!({"userlist": [{"userid": "u1"}, row.clone()]});
            let fast: UserListAnswer = serde_json::from_value(answer).unwrap();
            let expected = check_member(&row, "/userlist/1").unwrap_err();
            assert_eq!(fast.into_members().unwrap_err(), expected);
        }
    }
}
