//! WeCom endpoints: field names and JSON types of the reference (Part A),
//! pagination, tokens, limits, and the read-back-equals-truth check.

use crate::common;
use common::*;
use jit_sim::{MembershipSpec, Mutation, OrgRef};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Asserts the exact key set of an object and each value's JSON type.
fn shape(v: &Value, fields: &[(&str, &str)]) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    let want: BTreeSet<&str> = fields.iter().map(|f| f.0).collect();
    let got: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(got, want, "keys of {v}");
    for (k, ty) in fields {
        let x = &obj[*k];
        let ok = match *ty {
            "int" => x.is_i64(),
            "str" => x.is_string(),
            "bool" => x.is_boolean(),
            "obj" => x.is_object(),
            "int[]" => x.as_array().is_some_and(|a| a.iter().all(Value::is_i64)),
            "str[]" => x.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            "arr" => x.is_array(),
            other => panic!("unknown type {other}"),
        };
        assert!(ok, "{k} should be {ty}: {x}");
    }
}

const USER_FIELDS: &[(&str, &str)] = &[
    ("userid", "str"),
    ("name", "str"),
    ("department", "int[]"),
    ("order", "int[]"),
    ("position", "str"),
    ("mobile", "str"),
    ("gender", "str"),
    ("email", "str"),
    ("biz_mail", "str"),
    ("is_leader_in_dept", "int[]"),
    ("direct_leader", "str[]"),
    ("avatar", "str"),
    ("thumb_avatar", "str"),
    ("telephone", "str"),
    ("alias", "str"),
    ("address", "str"),
    ("open_userid", "str"),
    ("main_department", "int"),
    ("status", "int"),
    ("qr_code", "str"),
    ("external_position", "str"),
];

#[tokio::test]
async fn gettoken_answers_token_and_lifetime_with_errcode_zero() {
    let sim = start(small()).await;
    let c = client();
    let i = sim.info().wecom;
    let v = ok(get(
        &c,
        &format!(
            "{}gettoken?corpid={}&corpsecret={}",
            i.api_base_url, i.corp_id, i.secret
        ),
    )
    .await);
    shape(
        &v,
        &[
            ("errcode", "int"),
            ("errmsg", "str"),
            ("access_token", "str"),
            ("expires_in", "int"),
        ],
    );
    assert_eq!(v["expires_in"], 7200);
    let bad = get(
        &c,
        &format!(
            "{}gettoken?corpid={}&corpsecret=wrong",
            i.api_base_url, i.corp_id
        ),
    )
    .await;
    assert_eq!(bad["errcode"], 40001);
    let bad_corp = get(
        &c,
        &format!(
            "{}gettoken?corpid=wwnope&corpsecret={}",
            i.api_base_url, i.secret
        ),
    )
    .await;
    assert_eq!(bad_corp["errcode"], 40013);
}

#[tokio::test]
async fn department_endpoints_have_the_documented_fields() {
    let sim = start(small()).await;
    let c = client();
    let base = sim.info().wecom.api_base_url;
    let t = wecom_token(&sim, &c, false).await;
    let list = ok(get(&c, &format!("{base}department/list?access_token={t}")).await);
    let depts = list["department"].as_array().unwrap();
    assert_eq!(depts.len(), 40);
    let dept_fields = [
        ("id", "int"),
        ("name", "str"),
        ("name_en", "str"),
        ("department_leader", "str[]"),
        ("parentid", "int"),
        ("order", "int"),
    ];
    for d in depts {
        shape(d, &dept_fields);
    }
    assert_eq!(depts[0]["id"], 1);
    assert_eq!(depts[0]["parentid"], 0, "root's parent is 0");
    let simple = ok(get(&c, &format!("{base}department/simplelist?access_token={t}")).await);
    for d in simple["department_id"].as_array().unwrap() {
        shape(d, &[("id", "int"), ("parentid", "int"), ("order", "int")]);
    }
    let one = ok(get(&c, &format!("{base}department/get?access_token={t}&id=2")).await);
    shape(&one["department"], &dept_fields);
    let missing = get(
        &c,
        &format!("{base}department/get?access_token={t}&id=999999"),
    )
    .await;
    assert_eq!(missing["errcode"], 60003);
}

#[tokio::test]
async fn department_list_with_id_returns_the_subtree_only() {
    let sim = start(small()).await;
    let c = client();
    let base = sim.info().wecom.api_base_url;
    let t = wecom_token(&sim, &c, false).await;
    let truth = sim.wecom_truth();
    let sub = ok(get(
        &c,
        &format!("{base}department/simplelist?access_token={t}&id=2"),
    )
    .await);
    let got: BTreeSet<i64> = sub["department_id"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    // Expected: 2 and everything whose ancestor chain reaches 2.
    let mut want = BTreeSet::from([2]);
    loop {
        let more: Vec<i64> = truth
            .depts
            .values()
            .filter(|d| {
                d.parent_id.is_some_and(|p| want.contains(&p)) && !want.contains(&d.dept_id)
            })
            .map(|d| d.dept_id)
            .collect();
        if more.is_empty() {
            break;
        }
        want.extend(more);
    }
    assert_eq!(got, want);
}

#[tokio::test]
async fn user_endpoints_have_the_documented_fields_and_types() {
    let sim = start(small()).await;
    let c = client();
    let base = sim.info().wecom.api_base_url;
    let t = wecom_token(&sim, &c, false).await;
    let truth = sim.wecom_truth();
    let uid = truth.members.keys().next().unwrap();
    let u = ok(get(&c, &format!("{base}user/get?access_token={t}&userid={uid}")).await);
    let mut with_envelope = USER_FIELDS.to_vec();
    with_envelope.extend([("errcode", "int"), ("errmsg", "str")]);
    shape(&u, &with_envelope);
    let upper = ok(get(
        &c,
        &format!(
            "{base}user/get?access_token={t}&userid={}",
            uid.to_uppercase()
        ),
    )
    .await);
    assert_eq!(upper["userid"], u["userid"], "userids are case-insensitive");
    let list = ok(get(
        &c,
        &format!("{base}user/list?access_token={t}&department_id=1"),
    )
    .await);
    for u in list["userlist"].as_array().unwrap() {
        shape(u, USER_FIELDS);
    }
    let simple = ok(get(
        &c,
        &format!("{base}user/simplelist?access_token={t}&department_id=1"),
    )
    .await);
    for u in simple["userlist"].as_array().unwrap() {
        shape(
            u,
            &[("userid", "str"), ("name", "str"), ("department", "int[]")],
        );
    }
    let missing = get(
        &c,
        &format!("{base}user/get?access_token={t}&userid=nobody"),
    )
    .await;
    assert_eq!(missing["errcode"], 60111);
}

#[tokio::test]
async fn user_list_returns_direct_members_only() {
    let sim = start(small()).await;
    let c = client();
    let base = sim.info().wecom.api_base_url;
    let t = wecom_token(&sim, &c, false).await;
    let truth = sim.wecom_truth();
    let list = ok(get(
        &c,
        &format!("{base}user/list?access_token={t}&department_id=1&fetch_child=1"),
    )
    .await);
    let got: BTreeSet<String> = list["userlist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userid"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = truth
        .members
        .values()
        .filter(|m| m.depts.iter().any(|d| d.dept_id == 1))
        .map(|m| m.member_id.clone())
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn user_list_gives_each_member_the_same_direct_leader_as_user_get() {
    let sim = start(small()).await;
    let c = client();
    let base = sim.info().wecom.api_base_url;
    let t = wecom_token(&sim, &c, false).await;
    let truth = sim.wecom_truth();
    let mut with_leader = 0;
    for d in truth.depts.keys() {
        let list = ok(get(
            &c,
            &format!("{base}user/list?access_token={t}&department_id={d}"),
        )
        .await);
        for u in list["userlist"].as_array().unwrap() {
            let uid = u["userid"].as_str().unwrap();
            let one = ok(get(&c, &format!("{base}user/get?access_token={t}&userid={uid}")).await);
            assert_eq!(u["direct_leader"], one["direct_leader"], "{uid} in {d}");
            assert_ne!(u["direct_leader"], json!([uid]), "{uid} leads itself");
            with_leader += usize::from(!u["direct_leader"].as_array().unwrap().is_empty());
        }
    }
    assert!(with_leader > 0, "no member has a direct leader");
}

#[tokio::test]
async fn withheld_private_fields_are_absent_for_apps_created_after_2022_06_20() {
    let sim = start(small_with(|c| c.wecom_withhold_private_fields = true)).await;
    let c = client();
    let base = sim.info().wecom.api_base_url;
    let t = wecom_token(&sim, &c, false).await;
    let list = ok(get(
        &c,
        &format!("{base}user/list?access_token={t}&department_id=1"),
    )
    .await);
    let u = &list["userlist"][0];
    for k in [
        "avatar",
        "thumb_avatar",
        "gender",
        "mobile",
        "email",
        "biz_mail",
        "qr_code",
        "address",
    ] {
        assert!(u.get(k).is_none(), "{k} must be withheld: {u}");
    }
    assert!(u["name"].is_string() && u["position"].is_string() && u["status"].is_i64());
    let truth = sim.wecom_truth();
    assert!(truth
        .members
        .values()
        .all(|m| m.mobile.is_none() && m.email.is_none() && m.avatar.is_none()));
}

#[tokio::test]
async fn list_id_needs_the_contact_sync_token() {
    let sim = start(small()).await;
    let c = client();
    let base = sim.info().wecom.api_base_url;
    let t = wecom_token(&sim, &c, false).await;
    let v = post(
        &c,
        &format!("{base}user/list_id?access_token={t}"),
        json!({"limit": 100}),
    )
    .await;
    assert_eq!(v["errcode"], 48002);
}

#[tokio::test]
async fn list_id_cursor_walk_visits_every_membership_exactly_once() {
    let sim = start(small()).await;
    let c = client();
    let base = sim.info().wecom.api_base_url;
    let t = wecom_token(&sim, &c, true).await;
    let mut seen: Vec<(String, i64)> = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let mut body = json!({"limit": 37});
        if !cursor.is_empty() {
            body["cursor"] = json!(cursor);
        }
        let v = ok(post(&c, &format!("{base}user/list_id?access_token={t}"), body).await);
        pages += 1;
        for row in v["dept_user"].as_array().unwrap() {
            shape(row, &[("userid", "str"), ("department", "int")]);
            seen.push((
                row["userid"].as_str().unwrap().into(),
                row["department"].as_i64().unwrap(),
            ));
        }
        cursor = v["next_cursor"].as_str().unwrap().to_string();
        if cursor.is_empty() {
            break;
        }
    }
    let truth = sim.wecom_truth();
    let want: Vec<(String, i64)> = truth
        .members
        .values()
        .flat_map(|m| {
            m.depts
                .iter()
                .map(move |d| (m.member_id.clone(), d.dept_id))
        })
        .collect();
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no row twice");
    assert_eq!(unique, want.into_iter().collect::<BTreeSet<_>>());
    assert!(pages > 1);
    let bad = post(
        &c,
        &format!("{base}user/list_id?access_token={t}"),
        json!({"limit": 10001}),
    )
    .await;
    assert_ne!(bad["errcode"], 0);
}

#[tokio::test]
async fn tags_admins_and_agent_have_the_documented_fields() {
    let sim = start(small()).await;
    let c = client();
    let info = sim.info().wecom;
    let base = info.api_base_url.clone();
    let t = wecom_token(&sim, &c, false).await;
    let tags = ok(get(&c, &format!("{base}tag/list?access_token={t}")).await);
    for tag in tags["taglist"].as_array().unwrap() {
        shape(tag, &[("tagid", "int"), ("tagname", "str")]);
    }
    let one = ok(get(&c, &format!("{base}tag/get?access_token={t}&tagid=1")).await);
    shape(
        &one,
        &[
            ("errcode", "int"),
            ("errmsg", "str"),
            ("tagname", "str"),
            ("userlist", "arr"),
            ("partylist", "int[]"),
        ],
    );
    for u in one["userlist"].as_array().unwrap() {
        shape(u, &[("userid", "str"), ("name", "str")]);
    }
    let admins = ok(post(
        &c,
        &format!("{base}agent/get_admin_list?access_token={t}"),
        json!({}),
    )
    .await);
    for a in admins["admin"].as_array().unwrap() {
        shape(a, &[("userid", "str"), ("auth_type", "int")]);
    }
    let agent = ok(get(
        &c,
        &format!("{base}agent/get?access_token={t}&agentid={}", info.agent_id),
    )
    .await);
    assert_eq!(agent["agentid"], info.agent_id);
    assert!(agent["allow_partys"]["partyid"].is_array());
    assert!(agent["allow_userinfos"]["user"].is_array());
    assert!(agent["allow_tags"]["tagid"].is_array());
}

#[tokio::test]
async fn login_codes_are_single_use_and_old_endpoint_uses_capitalised_keys() {
    let sim = start(small()).await;
    let c = client();
    let base = sim.info().wecom.api_base_url;
    let t = wecom_token(&sim, &c, false).await;
    let uid = sim.wecom_truth().members.keys().next().unwrap().clone();
    let code = sim.issue_login_code(OrgRef::Wecom, &uid).unwrap();
    let v = ok(get(
        &c,
        &format!("{base}auth/getuserinfo?access_token={t}&code={code}"),
    )
    .await);
    assert_eq!(v["userid"], uid.as_str());
    let again = get(
        &c,
        &format!("{base}auth/getuserinfo?access_token={t}&code={code}"),
    )
    .await;
    assert_eq!(again["errcode"], 40029);
    let code2 = sim.issue_login_code(OrgRef::Wecom, &uid).unwrap();
    let old = ok(get(
        &c,
        &format!("{base}user/getuserinfo?access_token={t}&code={code2}"),
    )
    .await);
    assert_eq!(old["UserId"], uid.as_str());
    assert!(old.get("userid").is_none());
}

#[tokio::test]
async fn the_login_page_offers_the_admins_and_keeps_the_request_when_submitted() {
    let sim = start(small()).await;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let info = sim.info();
    let page_url = format!(
        "{}/connect/oauth2/authorize?appid={}&redirect_uri=http%3A%2F%2Fapp.test%2Fback&state=s%3C1&response_type=code",
        info.base_url, info.wecom.corp_id
    );
    let page = c.get(&page_url).send().await.unwrap().text().await.unwrap();
    let admin = sim.wecom_truth().admins.expect("the sim has admins")[0]
        .member_id
        .clone();
    // The admin is a button; the request's parameters ride along, escaped.
    assert!(
        page.contains(&format!("name=sim_userid value=\"{admin}\"")),
        "{page}"
    );
    assert!(page.contains("name=\"state\" value=\"s&lt;1\""), "{page}");
    // Submitting the form: the button's userid, the empty typed field, and
    // the kept parameters, as a browser sends them.
    let submit = format!(
        "{}/connect/oauth2/authorize?appid={}&redirect_uri=http%3A%2F%2Fapp.test%2Fback&response_type=code&state=s%3C1&sim_userid={admin}&sim_typed=",
        info.base_url, info.wecom.corp_id
    );
    let back = c.get(&submit).send().await.unwrap();
    assert_eq!(back.status(), 302);
    let location = back.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("http://app.test/back?code=") && location.ends_with("&state=s%3C1"),
        "{location}"
    );
}

#[tokio::test]
async fn token_errors_use_the_real_codes() {
    let sim = start(small_with(|c| c.token_lifetime_secs = 1)).await;
    let c = client();
    let base = sim.info().wecom.api_base_url;
    assert_eq!(
        get(&c, &format!("{base}department/list")).await["errcode"],
        41001
    );
    assert_eq!(
        get(&c, &format!("{base}department/list?access_token=garbage")).await["errcode"],
        40014
    );
    let t = wecom_token(&sim, &c, false).await;
    ok(get(&c, &format!("{base}department/list?access_token={t}")).await);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        get(&c, &format!("{base}department/list?access_token={t}")).await["errcode"],
        42001
    );
    let t2 = wecom_token(&sim, &c, false).await;
    sim.invalidate_tokens();
    assert_eq!(
        get(&c, &format!("{base}department/list?access_token={t2}")).await["errcode"],
        40014
    );
}

#[tokio::test]
async fn rate_limit_answers_45009_and_counts_throttled_calls() {
    let sim = start(small_with(|c| c.wecom_rate_per_minute = 5)).await;
    let c = client();
    let base = sim.info().wecom.api_base_url;
    let t = wecom_token(&sim, &c, false).await;
    let url = format!("{base}department/get?access_token={t}&id=1");
    for _ in 0..5 {
        ok(get(&c, &url).await);
    }
    let v = get(&c, &url).await;
    assert_eq!(v["errcode"], 45009);
    // Another API has its own window.
    ok(get(&c, &format!("{base}tag/list?access_token={t}")).await);
    let st = sim.stats().api("wecom", "/cgi-bin/department/get");
    assert_eq!((st.calls, st.throttled), (6, 1));
    sim.reset_stats();
    assert_eq!(sim.stats().total_calls("wecom"), 0);
}

#[tokio::test]
async fn unknown_api_answers_a_nonzero_errcode() {
    let sim = start(small()).await;
    let c = client();
    let v = get(
        &c,
        &format!("{}nope/nothing", sim.info().wecom.api_base_url),
    )
    .await;
    assert_ne!(v["errcode"], 0);
}

#[tokio::test]
async fn reading_through_the_api_gives_exactly_the_truth() {
    let sim = start(small()).await;
    let c = client();
    assert_eq!(read_wecom(&sim, &c).await, sim.wecom_truth());
}

#[tokio::test]
async fn mutations_show_in_the_api_and_in_the_truth() {
    let sim = start(small()).await;
    let c = client();
    let victim = sim.wecom_truth().members.keys().next().unwrap().clone();
    let out = sim
        .mutate(
            OrgRef::Wecom,
            Mutation::AddDept {
                dept_id: None,
                parent_id: 1,
                name: "新部门".into(),
                order: Some(5),
            },
        )
        .unwrap();
    let d = out.dept_id.unwrap();
    sim.mutate(
        OrgRef::Wecom,
        Mutation::AddMember {
            userid: "NewPerson".into(),
            name: "新人".into(),
            depts: vec![MembershipSpec {
                dept_id: d,
                order: 3,
                leader: true,
            }],
            position: Some("实习生".into()),
            mobile: None,
            email: None,
            job_number: None,
            union_id: None,
            status: None,
        },
    )
    .unwrap();
    sim.mutate(
        OrgRef::Wecom,
        Mutation::RemoveMember {
            userid: victim.clone(),
        },
    )
    .unwrap();
    assert!(
        sim.mutate(OrgRef::Wecom, Mutation::RemoveDept { dept_id: d })
            .is_err(),
        "department has a member"
    );
    let truth = sim.wecom_truth();
    assert!(!truth.members.contains_key(&victim));
    assert_eq!(truth.depts[&d].leaders, vec!["NewPerson".to_string()]);
    assert_eq!(read_wecom(&sim, &c).await, truth);
    let t = wecom_token(&sim, &c, false).await;
    let gone = get(
        &c,
        &format!(
            "{}user/get?access_token={t}&userid={victim}",
            sim.info().wecom.api_base_url
        ),
    )
    .await;
    assert_eq!(gone["errcode"], 60111);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_walks_logins_and_mutations_all_complete() {
    let sim = std::sync::Arc::new(start(small()).await);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let sim = sim.clone();
        tasks.push(tokio::spawn(async move {
            let c = client();
            read_wecom(&sim, &c).await.members.len()
        }));
    }
    let writer = {
        let sim = sim.clone();
        tokio::spawn(async move {
            let c = client();
            let base = sim.info().wecom.api_base_url;
            for i in 0..30 {
                let uid = sim.wecom_truth().members.keys().nth(i).unwrap().clone();
                let code = sim.issue_login_code(OrgRef::Wecom, &uid).unwrap();
                let t = wecom_token(&sim, &c, false).await;
                ok(get(
                    &c,
                    &format!("{base}auth/getuserinfo?access_token={t}&code={code}"),
                )
                .await);
                sim.mutate(OrgRef::Wecom, Mutation::DisableMember { userid: uid })
                    .unwrap();
            }
        })
    };
    let all = async {
        writer.await.unwrap();
        for t in tasks {
            assert!(t.await.unwrap() > 0);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), all)
        .await
        .expect("no deadlock");
    let c = client();
    assert_eq!(read_wecom(&sim, &c).await, sim.wecom_truth());
}

#[tokio::test]
async fn a_restricted_contact_sync_token_must_use_simplelist_and_list_id() {
    let sim = start(small_with(|c| c.wecom_contact_token_restricted = true)).await;
    let c = client();
    let base = sim.info().wecom.api_base_url;
    let t = wecom_token(&sim, &c, true).await;
    assert_eq!(
        get(&c, &format!("{base}department/list?access_token={t}")).await["errcode"],
        48002
    );
    assert_eq!(
        get(
            &c,
            &format!("{base}user/list?access_token={t}&department_id=1")
        )
        .await["errcode"],
        48002
    );
    ok(get(&c, &format!("{base}department/simplelist?access_token={t}")).await);
    ok(post(
        &c,
        &format!("{base}user/list_id?access_token={t}"),
        json!({}),
    )
    .await);
}
