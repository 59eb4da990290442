//! DingTalk endpoints of both families: field names and JSON types of the
//! reference (Part B), pagination, tokens, limits, and read-back == truth.

use crate::common;
use common::*;
use jit_sim::{AdminSpec, Mutation, OrgRef, SimConfig};
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn has(v: &Value, fields: &[(&str, &str)]) {
    for (k, ty) in fields {
        let x = v.get(*k).unwrap_or_else(|| panic!("{k} missing in {v}"));
        let ok = match *ty {
            "int" => x.is_i64(),
            "str" => x.is_string(),
            "bool" => x.is_boolean(),
            "int[]" => x.as_array().is_some_and(|a| a.iter().all(Value::is_i64)),
            "str[]" => x.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            "arr" => x.is_array(),
            "obj" => x.is_object(),
            other => panic!("unknown type {other}"),
        };
        assert!(ok, "{k} should be {ty}: {x}");
    }
}

struct Ctx {
    sim: jit_sim::SimHandle,
    c: reqwest::Client,
    base: String,
    t: String,
}

impl Ctx {
    async fn new(cfg: SimConfig) -> Ctx {
        let sim = start(cfg).await;
        let c = client();
        let t = ding_token(&sim, &c, 0).await;
        let base = sim.info().dingtalk[0].oapi_base_url.clone();
        Ctx { sim, c, base, t }
    }
    async fn call(&self, path: &str, body: Value) -> Value {
        post(
            &self.c,
            &format!("{}{path}?access_token={}", self.base, self.t),
            body,
        )
        .await
    }
    /// A call that must succeed (`errcode` 0): its `result`.
    async fn result(&self, path: &str, body: Value) -> Value {
        ok(self.call(path, body).await)["result"].clone()
    }
}

#[tokio::test]
async fn both_token_endpoints_answer_in_their_family_format() {
    let sim = start(small()).await;
    let c = client();
    let i = sim.info().dingtalk[0].clone();
    let old = ok(get(
        &c,
        &format!(
            "{}/gettoken?appkey={}&appsecret={}",
            i.oapi_base_url, i.app_key, i.app_secret
        ),
    )
    .await);
    has(&old, &[("access_token", "str"), ("expires_in", "int")]);
    let r = c
        .post(format!("{}/v1.0/oauth2/accessToken", i.api_base_url))
        .json(&json!({"appKey": i.app_key, "appSecret": i.app_secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let new: Value = r.json().await.unwrap();
    has(&new, &[("accessToken", "str"), ("expireIn", "int")]);
    assert!(new.get("errcode").is_none());
    assert_eq!(
        new["accessToken"], old["access_token"],
        "refetch within validity returns the same token"
    );
    let bad = c
        .post(format!("{}/v1.0/oauth2/accessToken", i.api_base_url))
        .json(&json!({"appKey": i.app_key, "appSecret": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    has(
        &body,
        &[("code", "str"), ("message", "str"), ("requestid", "str")],
    );
    let bad_old = get(
        &c,
        &format!(
            "{}/gettoken?appkey={}&appsecret=x",
            i.oapi_base_url, i.app_key
        ),
    )
    .await;
    assert_ne!(bad_old["errcode"], 0);
}

#[tokio::test]
async fn department_endpoints_have_the_documented_fields() {
    let x = Ctx::new(small()).await;
    let sub = ok(x
        .call("/topapi/v2/department/listsub", json!({"dept_id": 1}))
        .await);
    has(&sub, &[("result", "arr"), ("request_id", "str")]);
    let first = &sub["result"][0];
    has(
        first,
        &[
            ("dept_id", "int"),
            ("name", "str"),
            ("parent_id", "int"),
            ("create_dept_group", "bool"),
            ("auto_add_user", "bool"),
        ],
    );
    assert!(
        first["dept_id"].as_i64().unwrap() > i64::from(u32::MAX),
        "DingTalk ids exceed 32 bits"
    );
    let ids = ok(x
        .call("/topapi/v2/department/listsubid", json!({"dept_id": 1}))
        .await);
    has(&ids["result"], &[("dept_id_list", "int[]")]);
    let root = ok(x
        .call("/topapi/v2/department/get", json!({"dept_id": 1}))
        .await);
    has(
        &root["result"],
        &[
            ("dept_id", "int"),
            ("name", "str"),
            ("order", "int"),
            ("member_count", "int"),
        ],
    );
    assert!(
        root["result"].get("parent_id").is_none(),
        "the root has no parent_id"
    );
    let missing = x
        .call("/topapi/v2/department/get", json!({"dept_id": 12345}))
        .await;
    assert_eq!(missing["errcode"], 60003);
}

#[tokio::test]
async fn user_endpoints_have_the_documented_fields() {
    let x = Ctx::new(small()).await;
    let truth = x.sim.dingtalk_truth(0);
    let (uid, m) = truth.members.iter().next().unwrap();
    let u = x
        .result("/topapi/v2/user/get", json!({"userid": uid}))
        .await;
    has(
        &u,
        &[
            ("userid", "str"),
            ("unionid", "str"),
            ("name", "str"),
            ("mobile", "str"),
            ("title", "str"),
            ("job_number", "str"),
            ("dept_id_list", "int[]"),
            ("dept_order_list", "arr"),
            ("leader_in_dept", "arr"),
            ("role_list", "arr"),
            ("active", "bool"),
            ("admin", "bool"),
            ("boss", "bool"),
        ],
    );
    has(
        &u["leader_in_dept"][0],
        &[("dept_id", "int"), ("leader", "bool")],
    );
    has(
        &u["dept_order_list"][0],
        &[("dept_id", "int"), ("order", "int")],
    );
    let d = m.depts[0].dept_id;
    let list = x
        .result(
            "/topapi/v2/user/list",
            json!({"dept_id": d, "cursor": 0, "size": 100}),
        )
        .await;
    has(&list, &[("has_more", "bool"), ("list", "arr")]);
    has(
        &list["list"][0],
        &[
            ("userid", "str"),
            ("dept_order", "int"),
            ("leader", "bool"),
            ("active", "bool"),
        ],
    );
    let simple = x
        .result(
            "/topapi/user/listsimple",
            json!({"dept_id": d, "cursor": 0, "size": 10}),
        )
        .await;
    has(&simple["list"][0], &[("userid", "str"), ("name", "str")]);
    let ids = ok(x.call("/topapi/user/listid", json!({"dept_id": d})).await);
    has(&ids["result"], &[("userid_list", "str[]")]);
    let by_union = ok(x
        .call("/topapi/user/getbyunionid", json!({"unionid": m.union_id}))
        .await);
    assert_eq!(by_union["result"]["userid"], uid.as_str());
    assert_eq!(by_union["result"]["contact_type"], 0);
    assert_eq!(
        x.call("/topapi/v2/user/get", json!({"userid": "nobody"}))
            .await["errcode"],
        60121
    );
    assert_eq!(
        x.call("/topapi/user/getbyunionid", json!({"unionid": "nobody"}))
            .await["errcode"],
        60121
    );
}

#[tokio::test]
async fn user_list_rejects_pages_over_100() {
    let x = Ctx::new(small()).await;
    let v = x
        .call(
            "/topapi/v2/user/list",
            json!({"dept_id": 1, "cursor": 0, "size": 101}),
        )
        .await;
    assert_ne!(v["errcode"], 0);
}

#[tokio::test]
async fn user_list_cursor_walk_visits_every_member_of_a_department_once() {
    let x = Ctx::new(small_with(|c| {
        c.depts = 3;
        c.users = 250;
        c.dingtalk_rate_per_second = 0;
    }))
    .await;
    let truth = x.sim.dingtalk_truth(0);
    for d in truth.depts.keys() {
        let mut seen = Vec::new();
        let mut cursor = 0;
        loop {
            let r = x
                .result(
                    "/topapi/user/listsimple",
                    json!({"dept_id": d, "cursor": cursor, "size": 9}),
                )
                .await;
            seen.extend(
                r["list"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|u| u["userid"].as_str().unwrap().to_string()),
            );
            if !r["has_more"].as_bool().unwrap() {
                break;
            }
            cursor = r["next_cursor"].as_i64().unwrap();
        }
        let want: BTreeSet<String> = truth
            .members
            .values()
            .filter(|m| m.depts.iter().any(|x| x.dept_id == *d))
            .map(|m| m.member_id.clone())
            .collect();
        assert_eq!(seen.len(), want.len(), "dept {d}: no member twice");
        assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), want);
    }
}

#[tokio::test]
async fn roles_use_camel_case_keys_and_page_by_offset() {
    let x = Ctx::new(small()).await;
    let all = x.result("/topapi/role/list", json!({})).await;
    has(&all, &[("hasMore", "bool"), ("list", "arr")]);
    let g = &all["list"][0];
    has(g, &[("groupId", "int"), ("name", "str"), ("roles", "arr")]);
    has(&g["roles"][0], &[("id", "int"), ("name", "str")]);
    let too_big = x
        .call("/topapi/role/list", json!({"offset": 0, "size": 201}))
        .await;
    assert_ne!(too_big["errcode"], 0);
    let page = x
        .result("/topapi/role/list", json!({"offset": 0, "size": 2}))
        .await;
    assert_eq!(page["hasMore"], true);
    let rid = g["roles"][0]["id"].as_i64().unwrap();
    let members = x
        .result(
            "/topapi/role/simplelist",
            json!({"role_id": rid, "size": 100, "offset": 0}),
        )
        .await;
    has(&members, &[("hasMore", "bool"), ("list", "arr")]);
    let group = ok(x
        .call(
            "/topapi/role/getrolegroup",
            json!({"group_id": g["groupId"]}),
        )
        .await);
    has(
        &group["role_group"],
        &[("group_name", "str"), ("roles", "arr")],
    );
    has(
        &group["role_group"]["roles"][0],
        &[("role_id", "int"), ("role_name", "str")],
    );
    let admins = ok(x.call("/topapi/user/listadmin", json!({})).await);
    has(
        &admins["result"][0],
        &[("userid", "str"), ("sys_level", "int")],
    );
}

#[tokio::test]
async fn login_flows_of_both_families_identify_the_member() {
    let x = Ctx::new(small()).await;
    let truth = x.sim.dingtalk_truth(0);
    let (uid, m) = truth.members.iter().next().unwrap();
    let code = x.sim.issue_login_code(OrgRef::Dingtalk(0), uid).unwrap();
    let r = x
        .result("/topapi/v2/user/getuserinfo", json!({"code": code}))
        .await;
    has(
        &r,
        &[
            ("userid", "str"),
            ("sys", "bool"),
            ("sys_level", "int"),
            ("unionid", "str"),
            ("name", "str"),
        ],
    );
    assert_eq!(r["userid"], uid.as_str());
    assert_eq!(
        x.call("/topapi/v2/user/getuserinfo", json!({"code": code}))
            .await["errcode"],
        40078
    );
    let i = x.sim.info().dingtalk[0].clone();
    let code = x.sim.issue_login_code(OrgRef::Dingtalk(0), uid).unwrap();
    let tok = post(
        &x.c,
        &format!("{}/v1.0/oauth2/userAccessToken", i.api_base_url),
        json!({"clientId": i.app_key, "clientSecret": i.app_secret, "code": code, "grantType": "authorization_code"}),
    )
    .await;
    has(
        &tok,
        &[
            ("accessToken", "str"),
            ("refreshToken", "str"),
            ("expireIn", "int"),
            ("corpId", "str"),
        ],
    );
    let me = get_with_token(
        &x.c,
        &format!("{}/v1.0/contact/users/me", i.api_base_url),
        tok["accessToken"].as_str().unwrap(),
    )
    .await;
    assert_eq!(me["unionId"].as_str(), m.union_id.as_deref());
    has(
        &me,
        &[("nick", "str"), ("unionId", "str"), ("openId", "str")],
    );
}

#[tokio::test]
async fn stale_tokens_get_the_real_codes_in_both_families() {
    let x = Ctx::new(small_with(|c| c.token_lifetime_secs = 1)).await;
    let base = &x.base;
    let garbage = post(
        &x.c,
        &format!("{base}/topapi/user/listadmin?access_token=garbage"),
        json!({}),
    )
    .await;
    assert_eq!(garbage["errcode"], 88);
    assert_eq!(garbage["sub_code"], "40014");
    let missing = post(&x.c, &format!("{base}/topapi/user/listadmin"), json!({})).await;
    assert_eq!(missing["errcode"], 41001);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        x.call("/topapi/user/listadmin", json!({})).await["errcode"],
        42001
    );
    let t2 = ding_token(&x.sim, &x.c, 0).await;
    x.sim.invalidate_tokens();
    let revoked = post(
        &x.c,
        &format!("{base}/topapi/user/listadmin?access_token={t2}"),
        json!({}),
    )
    .await;
    assert_eq!(revoked["errcode"], 40014);
    let r =
        x.c.get(format!("{base}/v1.0/contact/users/me"))
            .header("x-acs-dingtalk-access-token", "garbage")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "InvalidAuthentication"
    );
}

#[tokio::test]
async fn calls_beyond_20_per_second_are_throttled_with_90018_and_counted() {
    let x = Ctx::new(small()).await;
    let mut codes = Vec::new();
    for _ in 0..45 {
        codes.push(
            x.call("/topapi/user/listadmin", json!({})).await["errcode"]
                .as_i64()
                .unwrap(),
        );
    }
    let passed = codes.iter().filter(|c| **c == 0).count();
    let throttled = codes.iter().filter(|c| **c == 90018).count();
    // 45 quick calls touch at most two 1-second windows: at most 40 pass.
    assert_eq!(passed + throttled, 45, "{codes:?}");
    assert!(passed <= 40 && throttled >= 5, "{codes:?}");
    let st = x.sim.stats().api("dingtalk-0", "/topapi/user/listadmin");
    assert_eq!((st.calls, st.throttled as usize), (45, throttled));
}

#[tokio::test]
async fn the_new_family_throttles_with_http_403_and_its_code() {
    let sim = start(small_with(|c| c.dingtalk_rate_per_second = 1)).await;
    let c = client();
    let i = sim.info().dingtalk[0].clone();
    let url = format!("{}/v1.0/oauth2/accessToken", i.api_base_url);
    let body = json!({"appKey": i.app_key, "appSecret": i.app_secret});
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = c.post(&url).json(&body).send().await.unwrap();
        let s = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        if s == 403 {
            assert_eq!(v["code"], "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi");
        }
        statuses.push(s);
    }
    assert!(statuses.contains(&403), "{statuses:?}");
}

#[tokio::test]
async fn two_orgs_share_people_by_union_id_under_different_userids() {
    let sim = start(small()).await;
    let a = sim.dingtalk_truth(0);
    let b = sim.dingtalk_truth(1);
    let ua: BTreeSet<_> = a
        .members
        .values()
        .filter_map(|m| m.union_id.clone())
        .collect();
    let shared: Vec<_> = b
        .members
        .values()
        .filter(|m| ua.contains(m.union_id.as_ref().unwrap()))
        .collect();
    assert!(!shared.is_empty());
    for m in shared {
        assert!(!a.members.contains_key(&m.member_id), "userids are per org");
    }
    assert_ne!(a.corp_id, b.corp_id);
}

#[tokio::test]
async fn reading_through_the_api_gives_exactly_the_truth() {
    let sim = start(small_with(|c| c.dingtalk_rate_per_second = 0)).await;
    let c = client();
    assert_eq!(read_dingtalk(&sim, &c, 0, 7).await, sim.dingtalk_truth(0));
    assert_eq!(read_dingtalk(&sim, &c, 1, 100).await, sim.dingtalk_truth(1));
}

#[tokio::test]
async fn mutations_show_in_the_api_and_in_the_truth() {
    let sim = start(small_with(|c| c.dingtalk_rate_per_second = 0)).await;
    let c = client();
    let org = OrgRef::Dingtalk(0);
    let truth = sim.dingtalk_truth(0);
    let mut ids = truth.members.keys();
    let (a, b) = (ids.next().unwrap().clone(), ids.next().unwrap().clone());
    let d = sim
        .mutate(org, Mutation::add_dept(1, "新部门"))
        .unwrap()
        .dept_id
        .unwrap();
    sim.mutate(
        org,
        Mutation::RenameDept {
            dept_id: d,
            name: "改名".into(),
        },
    )
    .unwrap();
    sim.mutate(org, Mutation::DisableMember { userid: a.clone() })
        .unwrap();
    sim.mutate(org, Mutation::RemoveMember { userid: b.clone() })
        .unwrap();
    sim.mutate(
        org,
        Mutation::SetAdmins {
            admins: vec![AdminSpec {
                userid: a.clone(),
                level: 1,
            }],
        },
    )
    .unwrap();
    let after = sim.dingtalk_truth(0);
    assert!(!after.members.contains_key(&b));
    assert_eq!(
        after.members[&a].status,
        jit_org::MemberStatus::NotActivated
    );
    assert_eq!(after.depts[&d].name, "改名");
    assert_eq!(read_dingtalk(&sim, &c, 0, 50).await, after);
}
