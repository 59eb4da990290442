//! Injected faults: each kind looks to a client like the real failure.

use crate::common;
use common::*;
use jit_sim::{DeptRefusal, FaultKind, FaultSettings, OrgRef, SimConfig};
use serde_json::json;
use serde_json::Value;
use std::time::Duration;

async fn faulty(kind: FaultKind) -> (jit_sim::SimHandle, String) {
    let sim = start(SimConfig {
        stall_ms: 2_000,
        ..always_faulty(kind)
    })
    .await;
    let url = wecom_token_url(&sim);
    (sim, url)
}

#[tokio::test]
async fn busy_fault_answers_errcode_minus_one() {
    let (sim, url) = faulty(FaultKind::Busy).await;
    let v = get(&client(), &url).await;
    assert_eq!(v["errcode"], -1);
    assert_eq!(sim.stats().api("wecom", "/cgi-bin/gettoken").faults, 1);
}

#[tokio::test]
async fn http5xx_fault_answers_a_gateway_error_page() {
    let (_sim, url) = faulty(FaultKind::Http5xx).await;
    let r = client().get(&url).send().await.unwrap();
    assert!(r.status().is_server_error(), "{}", r.status());
    assert!(r.json::<Value>().await.is_err(), "not JSON");
}

#[tokio::test]
async fn drop_fault_closes_the_connection_without_an_answer() {
    let (_sim, url) = faulty(FaultKind::Drop).await;
    let err = client().get(&url).send().await.unwrap_err();
    assert!(!err.is_timeout(), "{err}");
}

#[tokio::test]
async fn stall_fault_outlasts_the_client_timeout() {
    let (_sim, url) = faulty(FaultKind::Stall).await;
    let c = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = c.get(&url).send().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

#[tokio::test]
async fn malformed_fault_answers_unparsable_json() {
    let (_sim, url) = faulty(FaultKind::Malformed).await;
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
}

#[tokio::test]
async fn fault_draws_repeat_for_the_same_seed() {
    async fn pattern() -> Vec<i64> {
        let sim = start(small_with(|c| {
            c.fault_rate = 0.3;
            c.fault_kinds = vec![FaultKind::Busy];
        }))
        .await;
        let url = wecom_token_url(&sim);
        let c = client();
        let mut out = Vec::new();
        for _ in 0..40 {
            out.push(get(&c, &url).await["errcode"].as_i64().unwrap());
        }
        out
    }
    let a = pattern().await;
    assert!(a.contains(&-1) && a.contains(&0), "{a:?}");
    assert_eq!(a, pattern().await);
}

#[tokio::test]
async fn latency_is_added_to_every_answer() {
    let sim = start(small_with(|c| c.latency_ms = 150)).await;
    let url = wecom_token_url(&sim);
    let t0 = std::time::Instant::now();
    ok(get(&client(), &url).await);
    assert!(t0.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn faults_can_be_switched_on_and_off_while_serving() {
    let sim = start(small()).await;
    let url = wecom_token_url(&sim);
    let c = client();
    ok(get(&c, &url).await);
    sim.set_faults(1.0, vec![FaultKind::Busy]).unwrap();
    assert_eq!(get(&c, &url).await["errcode"], -1);
    sim.set_faults(0.0, vec![]).unwrap();
    ok(get(&c, &url).await);
    assert!(sim.set_faults(1.5, vec![]).is_err());
}

/// A WeCom `user/list` URL of one department with a fresh token.
async fn wecom_user_list(sim: &jit_sim::SimHandle, c: &reqwest::Client, dept: i64) -> String {
    let t = wecom_token(sim, c, false).await;
    format!(
        "{}user/list?access_token={t}&department_id={dept}",
        sim.info().wecom.api_base_url
    )
}

#[tokio::test]
async fn permission_faults_refuse_wecom_department_reads_with_60011_or_60020() {
    let sim = start(always_faulty(FaultKind::Permission)).await;
    let c = client();
    // Token calls and calls that name no department are never refused.
    let t = wecom_token(&sim, &c, false).await;
    let base = sim.info().wecom.api_base_url;
    ok(get(&c, &format!("{base}department/list?access_token={t}")).await);
    let mut codes = std::collections::BTreeSet::new();
    for dept in sim.wecom_truth().depts.keys() {
        let v = get(
            &c,
            &format!("{base}user/list?access_token={t}&department_id={dept}"),
        )
        .await;
        codes.insert(v["errcode"].as_i64().unwrap());
    }
    assert_eq!(
        codes,
        [60011, 60020].into(),
        "both documented refusals occur"
    );
    let st = sim.stats();
    assert_eq!(
        st.faults_by_kind("wecom"),
        [(FaultKind::Permission, sim.wecom_truth().depts.len() as u64)].into()
    );
}

#[tokio::test]
async fn permission_faults_refuse_the_three_dingtalk_department_reads_with_60011() {
    let sim = start(always_faulty(FaultKind::Permission)).await;
    let c = client();
    let t = ding_token(&sim, &c, 0).await;
    let base = sim.info().dingtalk[0].oapi_base_url.clone();
    for (path, body) in [
        ("/topapi/v2/department/get", json!({"dept_id": 1})),
        ("/topapi/v2/department/listsubid", json!({"dept_id": 1})),
        (
            "/topapi/v2/user/list",
            json!({"dept_id": 1, "cursor": 0, "size": 10}),
        ),
    ] {
        let v = post(&c, &format!("{base}{path}?access_token={t}"), body).await;
        assert_eq!(v["errcode"], 60011, "{path}: {v}");
    }
    let v = post(
        &c,
        &format!("{base}/topapi/user/listadmin?access_token={t}"),
        json!({}),
    )
    .await;
    ok(v);
}

#[tokio::test]
async fn refused_departments_stay_refused_until_the_refusal_is_lifted() {
    let sim = start(small()).await;
    let c = client();
    let depts: Vec<i64> = sim.wecom_truth().depts.keys().copied().take(3).collect();
    sim.set_refused_depts(
        OrgRef::Wecom,
        vec![DeptRefusal {
            dept_id: depts[1],
            errcode: 60020,
        }],
    )
    .unwrap();
    for _ in 0..3 {
        let url = wecom_user_list(&sim, &c, depts[1]).await;
        assert_eq!(get(&c, &url).await["errcode"], 60020, "sticky");
    }
    ok(get(&c, &wecom_user_list(&sim, &c, depts[2]).await).await);
    assert_eq!(
        sim.stats().api("wecom", "/cgi-bin/user/list").fault_kinds,
        [(FaultKind::Permission, 3)].into()
    );
    // Over the admin API, for a DingTalk org: the default errcode is 60011.
    let admin = sim.info().admin_url;
    let ding = sim.dingtalk_truth(0);
    let d = *ding.depts.keys().last().unwrap();
    post(
        &c,
        &format!("{admin}/orgs/dingtalk-0/refusals"),
        json!([{"deptId": d}]),
    )
    .await;
    let t = ding_token(&sim, &c, 0).await;
    let base = sim.info().dingtalk[0].oapi_base_url.clone();
    let v = post(
        &c,
        &format!("{base}/topapi/v2/department/get?access_token={t}"),
        json!({"dept_id": d}),
    )
    .await;
    assert_eq!(v["errcode"], 60011, "{v}");
    // Lifted: an empty list.
    sim.set_refused_depts(OrgRef::Wecom, vec![]).unwrap();
    ok(get(&c, &wecom_user_list(&sim, &c, depts[1]).await).await);
}

#[tokio::test]
async fn a_token_revocation_fault_revokes_every_token_once_per_round() {
    let sim = start(always_faulty(FaultKind::RevokeToken)).await;
    let c = client();
    // Not injected on the token call itself.
    let t = wecom_token(&sim, &c, false).await;
    let base = sim.info().wecom.api_base_url;
    let list = format!("{base}department/list?access_token={t}");
    assert_eq!(get(&c, &list).await["errcode"], 40014);
    assert_eq!(
        get(&c, &list).await["errcode"],
        40014,
        "the token stays revoked"
    );
    // The round's revocation has happened: a fresh token works.
    let fresh = format!(
        "{base}department/list?access_token={}",
        wecom_token(&sim, &c, false).await
    );
    ok(get(&c, &fresh).await);
    // A new round revokes again.
    sim.set_round(1);
    assert_eq!(get(&c, &fresh).await["errcode"], 40014);
    assert_eq!(
        sim.stats().faults_by_kind("wecom"),
        [(FaultKind::RevokeToken, 2)].into()
    );
}

#[tokio::test]
async fn an_outage_fails_every_attempt_of_a_request_for_the_whole_round() {
    let sim = start(small()).await;
    sim.set_fault_settings(FaultSettings {
        outage_rate: 1.0,
        kinds: vec![FaultKind::Busy],
        ..FaultSettings::default()
    })
    .unwrap();
    let c = client();
    let url = wecom_token_url(&sim);
    for _ in 0..10 {
        assert_eq!(get(&c, &url).await["errcode"], -1);
    }
}

/// (department → errcode) of one `user/list` per department, sent in the
/// given order, on a fresh simulator with 40% busy faults.
async fn draws_in_order(order: &[i64], round: u64) -> Vec<(i64, i64)> {
    let sim = start(small()).await;
    sim.set_fault_settings(FaultSettings {
        rate: 0.4,
        kinds: vec![FaultKind::Busy],
        round,
        ..FaultSettings::default()
    })
    .unwrap();
    let c = client();
    // The token call may be faulted too: retry it until it succeeds.
    let token_url = wecom_token_url(&sim);
    let t = loop {
        let v = get(&c, &token_url).await;
        if v["errcode"] == 0 {
            break v["access_token"].as_str().unwrap().to_string();
        }
    };
    let base = sim.info().wecom.api_base_url;
    let mut out = Vec::new();
    for d in order {
        let url = format!("{base}user/list?access_token={t}&department_id={d}");
        out.push((*d, get(&c, &url).await["errcode"].as_i64().unwrap()));
    }
    out.sort();
    out
}

#[tokio::test]
async fn fault_draws_depend_on_the_request_and_round_not_on_the_arrival_order() {
    let depts: Vec<i64> = (1..=40).collect();
    let reversed: Vec<i64> = depts.iter().rev().copied().collect();
    let a = draws_in_order(&depts, 1).await;
    assert!(
        a.iter().any(|x| x.1 == -1) && a.iter().any(|x| x.1 == 0),
        "{a:?}"
    );
    assert_eq!(
        a,
        draws_in_order(&reversed, 1).await,
        "same faults in any order"
    );
    assert_ne!(
        a,
        draws_in_order(&depts, 2).await,
        "another round, other faults"
    );
}

#[tokio::test]
async fn the_same_request_draws_anew_on_each_attempt_and_a_new_round_starts_over() {
    let sim = start(small()).await;
    sim.set_fault_settings(FaultSettings {
        rate: 0.5,
        kinds: vec![FaultKind::Busy],
        round: 3,
        ..FaultSettings::default()
    })
    .unwrap();
    let c = client();
    let url = wecom_token_url(&sim);
    let mut first = Vec::new();
    for _ in 0..20 {
        first.push(get(&c, &url).await["errcode"].as_i64().unwrap());
    }
    assert!(first.contains(&-1) && first.contains(&0), "{first:?}");
    sim.set_round(4);
    sim.set_round(3);
    let mut again = Vec::new();
    for _ in 0..20 {
        again.push(get(&c, &url).await["errcode"].as_i64().unwrap());
    }
    assert_eq!(first, again, "re-entering a round replays its attempts");
}

#[tokio::test]
async fn fault_settings_are_read_and_patched_over_the_admin_api() {
    let sim = start(small()).await;
    let c = client();
    let admin = sim.info().admin_url;
    let v = post(
        &c,
        &format!("{admin}/faults"),
        json!({"rate": 0.25, "kinds": ["busy", "revoke_token", "permission"], "stallMs": 40, "round": 9}),
    )
    .await;
    assert_eq!(v["rate"], 0.25);
    let now = get(&c, &format!("{admin}/faults")).await;
    assert_eq!(now, v);
    assert_eq!(
        sim.fault_settings(),
        FaultSettings {
            rate: 0.25,
            kinds: vec![
                FaultKind::Busy,
                FaultKind::RevokeToken,
                FaultKind::Permission
            ],
            outage_rate: 0.0,
            stall_ms: 40,
            round: 9,
        }
    );
    let faults = format!("{admin}/faults");
    assert_eq!(
        post_status(&c, &faults, json!({"outageRate": 2.0})).await,
        400
    );
}

#[tokio::test]
async fn a_short_stall_delays_the_answer_by_stall_ms_then_answers() {
    let sim = start(small()).await;
    sim.set_fault_settings(FaultSettings {
        rate: 1.0,
        kinds: vec![FaultKind::Stall],
        stall_ms: 120,
        ..FaultSettings::default()
    })
    .unwrap();
    let url = wecom_token_url(&sim);
    let t0 = std::time::Instant::now();
    ok(get(&client(), &url).await);
    assert!(t0.elapsed() >= Duration::from_millis(120));
    assert_eq!(
        sim.stats().faults_by_kind("wecom"),
        [(FaultKind::Stall, 1)].into()
    );
}
