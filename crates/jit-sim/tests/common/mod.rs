//! Helpers shared by the integration tests: a plain HTTP client and readers
//! that rebuild an org from the documented APIs only, the way a sync would.
#![allow(dead_code)]

use jit_org::{Admin, CorpSnapshot, Dept, DeptMembership, Member, MemberStatus, Role, RoleGroup};
use jit_sim::{FaultKind, SimConfig, SimHandle, Simulator};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};

pub async fn start(cfg: SimConfig) -> SimHandle {
    Simulator::start(cfg).await.expect("simulator starts")
}

pub fn small() -> SimConfig {
    SimConfig {
        seed: 7,
        depts: 40,
        users: 300,
        ..SimConfig::default()
    }
}

/// [`small`] with `tweak` applied: the one setting a test is about.
pub fn small_with(tweak: impl FnOnce(&mut SimConfig)) -> SimConfig {
    let mut cfg = small();
    tweak(&mut cfg);
    cfg
}

/// [`small`] where every call draws the fault `kind`.
pub fn always_faulty(kind: FaultKind) -> SimConfig {
    small_with(|c| {
        c.fault_rate = 1.0;
        c.fault_kinds = vec![kind];
    })
}

/// The WeCom `gettoken` URL with the app's own credentials.
pub fn wecom_token_url(sim: &SimHandle) -> String {
    let i = sim.info().wecom;
    format!(
        "{}gettoken?corpid={}&corpsecret={}",
        i.api_base_url, i.corp_id, i.secret
    )
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

pub async fn get(c: &reqwest::Client, url: &str) -> Value {
    let r = c.get(url).send().await.expect("request sent");
    assert_eq!(r.status(), 200, "GET {url}");
    r.json().await.expect("JSON body")
}

pub async fn post(c: &reqwest::Client, url: &str, body: Value) -> Value {
    let r = c.post(url).json(&body).send().await.expect("request sent");
    assert_eq!(r.status(), 200, "POST {url}");
    r.json().await.expect("JSON body")
}

/// The status of a GET expected to be refused (the body does not matter).
pub async fn get_status(c: &reqwest::Client, url: &str) -> u16 {
    let r = c.get(url).send().await.expect("request sent");
    r.status().as_u16()
}

/// The status of a POST expected to be refused (the body does not matter).
pub async fn post_status(c: &reqwest::Client, url: &str, body: Value) -> u16 {
    let r = c.post(url).json(&body).send().await.expect("request sent");
    r.status().as_u16()
}

/// [`get`] in DingTalk's new family, which takes the token as a header.
pub async fn get_with_token(c: &reqwest::Client, url: &str, token: &str) -> Value {
    let r = c.get(url).header("x-acs-dingtalk-access-token", token);
    let r = r.send().await.expect("request sent");
    assert_eq!(r.status(), 200, "GET {url}");
    r.json().await.expect("JSON body")
}

/// Asserts `errcode == 0` and returns the body.
pub fn ok(v: Value) -> Value {
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(v["errmsg"], "ok", "{v}");
    v
}

pub async fn wecom_token(sim: &SimHandle, c: &reqwest::Client, contact: bool) -> String {
    let i = sim.info().wecom;
    let secret = if contact {
        &i.contact_secret
    } else {
        &i.secret
    };
    let v = ok(get(
        c,
        &format!(
            "{}gettoken?corpid={}&corpsecret={}",
            i.api_base_url, i.corp_id, secret
        ),
    )
    .await);
    v["access_token"].as_str().unwrap().to_string()
}

pub async fn ding_token(sim: &SimHandle, c: &reqwest::Client, org: usize) -> String {
    let i = &sim.info().dingtalk[org];
    let v = ok(get(
        c,
        &format!(
            "{}/gettoken?appkey={}&appsecret={}",
            i.oapi_base_url, i.app_key, i.app_secret
        ),
    )
    .await);
    v["access_token"].as_str().unwrap().to_string()
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

fn opt_s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// Reads the WeCom corp through department/list, user/list, tag/*, and
/// agent/get_admin_list, and maps it to the jit-org model. Like a sync, it
/// keeps only what the app's visible range shows: a department whose parent
/// was not listed is a top level, memberships outside the listed
/// departments are dropped.
pub async fn read_wecom(sim: &SimHandle, c: &reqwest::Client) -> CorpSnapshot {
    let info = sim.info().wecom;
    let base = info.api_base_url.clone();
    let t = wecom_token(sim, c, false).await;
    let mut snap = CorpSnapshot::new(info.corp_id.clone());
    let depts = ok(get(c, &format!("{base}department/list?access_token={t}")).await);
    for d in depts["department"].as_array().unwrap() {
        let id = d["id"].as_i64().unwrap();
        let parent = d["parentid"].as_i64().unwrap();
        let mut dept = Dept::new(id, (parent != 0).then_some(parent), s(&d["name"]));
        dept.order = d["order"].as_i64().unwrap();
        dept.leaders = d["department_leader"]
            .as_array()
            .unwrap()
            .iter()
            .map(s)
            .collect();
        snap.depts.insert(id, dept);
    }
    let ids: Vec<i64> = snap.depts.keys().copied().collect();
    for d in snap.depts.values_mut() {
        if d.parent_id.is_some_and(|p| !ids.contains(&p)) {
            d.parent_id = None;
        }
    }
    for &id in &ids {
        let users = ok(get(
            c,
            &format!("{base}user/list?access_token={t}&department_id={id}"),
        )
        .await);
        for u in users["userlist"].as_array().unwrap() {
            let uid = s(&u["userid"]);
            if snap.members.contains_key(&uid) {
                continue;
            }
            let mut m = Member::new(uid.clone(), s(&u["name"]));
            m.status = match u["status"].as_i64().unwrap() {
                1 => MemberStatus::Active,
                2 => MemberStatus::Disabled,
                4 => MemberStatus::NotActivated,
                5 => MemberStatus::Offline,
                other => panic!("status {other}"),
            };
            m.position = opt_s(&u["position"]);
            m.main_dept_id = u["main_department"].as_i64();
            m.avatar = opt_s(&u["avatar"]);
            m.mobile = opt_s(&u["mobile"]);
            m.email = opt_s(&u["email"]);
            let dep = u["department"].as_array().unwrap();
            let ord = u["order"].as_array().unwrap();
            let lead = u["is_leader_in_dept"].as_array().unwrap();
            assert_eq!(dep.len(), ord.len());
            assert_eq!(dep.len(), lead.len());
            for i in 0..dep.len() {
                if !ids.contains(&dep[i].as_i64().unwrap()) {
                    continue;
                }
                m.depts.push(DeptMembership {
                    dept_id: dep[i].as_i64().unwrap(),
                    order: ord[i].as_i64().unwrap(),
                    is_leader: lead[i].as_i64().unwrap() == 1,
                });
            }
            snap.members.insert(uid, m);
        }
    }
    snap.role_groups.insert(
        "tags".into(),
        RoleGroup {
            group_id: "tags".into(),
            name: "Tags".into(),
        },
    );
    let tags = ok(get(c, &format!("{base}tag/list?access_token={t}")).await);
    for tag in tags["taglist"].as_array().unwrap() {
        let id = tag["tagid"].as_i64().unwrap();
        let detail = ok(get(c, &format!("{base}tag/get?access_token={t}&tagid={id}")).await);
        let mut members: Vec<String> = detail["userlist"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| s(&u["userid"]))
            .collect();
        members.sort();
        snap.roles.insert(
            id.to_string(),
            Role {
                role_id: id.to_string(),
                group_id: Some("tags".into()),
                name: s(&tag["tagname"]),
                members,
            },
        );
    }
    let admins = ok(post(
        c,
        &format!("{base}agent/get_admin_list?access_token={t}"),
        json!({"agentid": info.agent_id}),
    )
    .await);
    snap.admins = Some(admin_list(&admins["admin"], "auth_type"));
    snap
}

/// An admin list as both platforms answer it: `userid` and a level, which
/// WeCom calls `auth_type` and DingTalk `sys_level`.
fn admin_list(list: &Value, level_key: &str) -> Vec<Admin> {
    let list = list.as_array().unwrap().iter();
    list.map(|a| Admin {
        member_id: s(&a["userid"]),
        level: a[level_key].as_i64().unwrap() as i32,
    })
    .collect()
}

/// Reads a DingTalk org through listsubid, department/get, v2/user/list
/// (cursor walk), role/list, role/simplelist and listadmin. Departments
/// outside the contact scope (department/get answers 50004) are walked
/// through (listsubid is not limited) but not read; as in a sync, a
/// department whose parent was not read is a top level and memberships
/// outside the read departments are dropped.
pub async fn read_dingtalk(
    sim: &SimHandle,
    c: &reqwest::Client,
    org: usize,
    page: usize,
) -> CorpSnapshot {
    let info = sim.info().dingtalk[org].clone();
    let base = info.oapi_base_url.clone();
    let t = ding_token(sim, c, org).await;
    let api = |p: &str| format!("{base}{p}?access_token={t}");
    let mut snap = CorpSnapshot::new(info.corp_id.clone());
    let mut queue = VecDeque::from([1i64]);
    while let Some(id) = queue.pop_front() {
        let d = post(c, &api("/topapi/v2/department/get"), json!({"dept_id": id})).await;
        if d["errcode"] != 50004 {
            let d = ok(d)["result"].clone();
            let mut dept = Dept::new(id, d["parent_id"].as_i64(), s(&d["name"]));
            dept.order = d["order"].as_i64().unwrap();
            dept.leaders = d["dept_manager_userid_list"]
                .as_array()
                .map(|a| a.iter().map(s).collect())
                .unwrap_or_default();
            snap.depts.insert(id, dept);
        }
        let subs = ok(post(
            c,
            &api("/topapi/v2/department/listsubid"),
            json!({"dept_id": id}),
        )
        .await);
        for sub in subs["result"]["dept_id_list"].as_array().unwrap() {
            queue.push_back(sub.as_i64().unwrap());
        }
    }
    // (userid) -> dept -> (order, leader), collected per department.
    let mut per_dept: BTreeMap<String, BTreeMap<i64, (i64, bool)>> = BTreeMap::new();
    let ids: Vec<i64> = snap.depts.keys().copied().collect();
    for d in snap.depts.values_mut() {
        if d.parent_id.is_some_and(|p| !ids.contains(&p)) {
            d.parent_id = None;
        }
    }
    for &id in &ids {
        let mut cursor = 0i64;
        loop {
            let r = ok(post(
                c,
                &api("/topapi/v2/user/list"),
                json!({"dept_id": id, "cursor": cursor, "size": page}),
            )
            .await)["result"]
                .clone();
            for u in r["list"].as_array().unwrap() {
                let uid = s(&u["userid"]);
                per_dept.entry(uid.clone()).or_default().insert(
                    id,
                    (
                        u["dept_order"].as_i64().unwrap(),
                        u["leader"].as_bool().unwrap(),
                    ),
                );
                if snap.members.contains_key(&uid) {
                    continue;
                }
                let mut m = Member::new(uid.clone(), s(&u["name"]));
                m.union_id = opt_s(&u["unionid"]);
                m.status = if u["active"].as_bool().unwrap() {
                    MemberStatus::Active
                } else {
                    MemberStatus::NotActivated
                };
                m.position = opt_s(&u["title"]);
                m.job_number = opt_s(&u["job_number"]);
                m.hired_date = u["hired_date"].as_i64();
                m.avatar = opt_s(&u["avatar"]);
                m.mobile = opt_s(&u["mobile"]);
                m.email = opt_s(&u["email"]);
                m.depts = u["dept_id_list"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|d| ids.contains(&d.as_i64().unwrap()))
                    .map(|d| DeptMembership {
                        dept_id: d.as_i64().unwrap(),
                        order: 0,
                        is_leader: false,
                    })
                    .collect();
                snap.members.insert(uid, m);
            }
            if !r["has_more"].as_bool().unwrap() {
                assert!(
                    r.get("next_cursor").is_none(),
                    "last page has no next_cursor"
                );
                break;
            }
            cursor = r["next_cursor"].as_i64().unwrap();
        }
    }
    for (uid, m) in snap.members.iter_mut() {
        for d in m.depts.iter_mut() {
            let (o, l) = per_dept[uid][&d.dept_id];
            d.order = o;
            d.is_leader = l;
        }
    }
    let mut offset = 0;
    loop {
        let r = ok(post(
            c,
            &api("/topapi/role/list"),
            json!({"offset": offset, "size": 5}),
        )
        .await)["result"]
            .clone();
        for g in r["list"].as_array().unwrap() {
            let gid = g["groupId"].as_i64().unwrap().to_string();
            snap.role_groups.insert(
                gid.clone(),
                RoleGroup {
                    group_id: gid.clone(),
                    name: s(&g["name"]),
                },
            );
            for role in g["roles"].as_array().unwrap() {
                let rid = role["id"].as_i64().unwrap();
                let mut members = Vec::new();
                let mut off = 0;
                loop {
                    let p = ok(post(
                        c,
                        &api("/topapi/role/simplelist"),
                        json!({"role_id": rid, "offset": off, "size": 100}),
                    )
                    .await)["result"]
                        .clone();
                    members.extend(
                        p["list"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|u| s(&u["userid"])),
                    );
                    if !p["hasMore"].as_bool().unwrap() {
                        break;
                    }
                    off += 100;
                }
                members.sort();
                snap.roles.insert(
                    rid.to_string(),
                    Role {
                        role_id: rid.to_string(),
                        group_id: Some(gid.clone()),
                        name: s(&role["name"]),
                        members,
                    },
                );
            }
        }
        if !r["hasMore"].as_bool().unwrap() {
            break;
        }
        offset += 5;
    }
    let admins = ok(post(c, &api("/topapi/user/listadmin"), json!({})).await);
    snap.admins = Some(admin_list(&admins["result"], "sys_level"));
    snap
}
