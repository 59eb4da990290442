//! The admin API under /_sim: truth, stats, mutations, login codes.

use crate::common;
use common::*;
use jit_org::CorpSnapshot;
use jit_sim::SimConfig;
use serde_json::{json, Value};

#[tokio::test]
async fn the_admin_truth_is_what_a_plain_client_reads_back() {
    let sim = start(small_with(|c| c.dingtalk_rate_per_second = 0)).await;
    let c = client();
    let admin = sim.info().admin_url;
    assert_eq!(
        read_wecom(&sim, &c).await,
        admin_truth(&c, &admin, "wecom").await
    );
    assert_eq!(
        read_dingtalk(&sim, &c, 1, 100).await,
        admin_truth(&c, &admin, "dingtalk-1").await
    );
}

/// The org `org` as the admin API's truth endpoint answers it.
async fn admin_truth(c: &reqwest::Client, admin: &str, org: &str) -> CorpSnapshot {
    let truth = get(c, &format!("{admin}/orgs/{org}/truth")).await;
    serde_json::from_value(truth).unwrap()
}

#[tokio::test]
async fn info_is_the_start_line_and_unknown_orgs_are_404() {
    let sim = start(small()).await;
    let c = client();
    let admin = sim.info().admin_url;
    let info = get(&c, &format!("{admin}/info")).await;
    assert_eq!(info, serde_json::to_value(sim.info()).unwrap());
    assert_eq!(info["dingtalk"].as_array().unwrap().len(), 2);
    for k in ["corpId", "agentId", "secret", "contactSecret", "apiBaseUrl"] {
        assert!(info["wecom"].get(k).is_some(), "{k}");
    }
    for k in [
        "corpId",
        "agentId",
        "appKey",
        "appSecret",
        "oapiBaseUrl",
        "apiBaseUrl",
    ] {
        assert!(info["dingtalk"][0].get(k).is_some(), "{k}");
    }
    let unknown = format!("{admin}/orgs/dingtalk-9/truth");
    assert_eq!(get_status(&c, &unknown).await, 404);
}

#[tokio::test]
async fn mutations_over_http_change_the_truth_and_refusals_say_why() {
    let sim = start(small()).await;
    let c = client();
    let admin = sim.info().admin_url;
    let uid = sim.wecom_truth().members.keys().next().unwrap().clone();
    let v = post(
        &c,
        &format!("{admin}/orgs/wecom/mutate"),
        json!([
            {"op": "addDept", "parentId": 1, "name": "HTTP部"},
            {"op": "updateMember", "userid": uid, "name": "改名了", "position": "CTO"},
            {"op": "addRoleMembers", "roleId": 1, "userids": [uid]},
            {"op": "setAdmins", "admins": [{"userid": uid, "level": 1}]}
        ]),
    )
    .await;
    assert_eq!(v["ok"], true);
    let d = v["outcomes"][0]["deptId"].as_i64().unwrap();
    let truth = sim.wecom_truth();
    assert_eq!(truth.depts[&d].name, "HTTP部");
    assert_eq!(truth.members[&uid].name, "改名了");
    assert!(truth.roles["1"].members.contains(&uid));
    assert_eq!(truth.admins.as_ref().unwrap()[0].member_id, uid);
    let r = c
        .post(format!("{admin}/orgs/wecom/mutate"))
        .json(&json!({"op": "removeDept", "deptId": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("root"));
}

#[tokio::test]
async fn stats_reset_token_invalidation_and_login_codes_over_http() {
    let sim = start(small()).await;
    let c = client();
    let admin = sim.info().admin_url;
    let t = wecom_token(&sim, &c, false).await;
    let stats = get(&c, &format!("{admin}/stats")).await;
    assert_eq!(stats["apps"]["wecom"]["/cgi-bin/gettoken"]["calls"], 1);
    post(&c, &format!("{admin}/stats/reset"), json!({})).await;
    assert_eq!(get(&c, &format!("{admin}/stats")).await["apps"], json!({}));
    post(&c, &format!("{admin}/tokens/invalidate"), json!({})).await;
    let base = sim.info().wecom.api_base_url;
    assert_eq!(
        get(&c, &format!("{base}tag/list?access_token={t}")).await["errcode"],
        40014
    );
    let uid = sim.wecom_truth().members.keys().next().unwrap().clone();
    let code = post(
        &c,
        &format!("{admin}/orgs/wecom/login-code"),
        json!({"userid": uid}),
    )
    .await;
    let t = wecom_token(&sim, &c, false).await;
    let who = ok(get(
        &c,
        &format!(
            "{base}auth/getuserinfo?access_token={t}&code={}",
            code["code"].as_str().unwrap()
        ),
    )
    .await);
    assert_eq!(who["userid"], uid.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_seed_7_with_200_departments_and_5000_members_the_read_back_equals_the_admin_truth() {
    let sim = start(SimConfig {
        seed: 7,
        depts: 200,
        users: 5000,
        dingtalk_rate_per_second: 0,
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let admin = sim.info().admin_url;
    let wecom: CorpSnapshot =
        serde_json::from_value(get(&c, &format!("{admin}/orgs/wecom/truth")).await).unwrap();
    assert_eq!(wecom.members.len(), 5000);
    assert_eq!(read_wecom(&sim, &c).await, wecom);
    let ding: CorpSnapshot =
        serde_json::from_value(get(&c, &format!("{admin}/orgs/dingtalk-0/truth")).await).unwrap();
    assert_eq!(read_dingtalk(&sim, &c, 0, 100).await, ding);
}
