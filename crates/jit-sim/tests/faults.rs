//! Injected faults: each kind looks to a client like the real failure.

mod common;
use common::*;
use jit_sim::{FaultKind, SimConfig};
use serde_json::Value;
use std::time::Duration;

async fn faulty(kind: FaultKind) -> (jit_sim::SimHandle, String) {
    let sim = start(SimConfig {
        fault_rate: 1.0,
        fault_kinds: vec![kind],
        stall_ms: 2_000,
        ..small()
    })
    .await;
    let i = sim.info().wecom;
    let url = format!(
        "{}gettoken?corpid={}&corpsecret={}",
        i.api_base_url, i.corp_id, i.secret
    );
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
        let sim = start(SimConfig {
            fault_rate: 0.3,
            fault_kinds: vec![FaultKind::Busy],
            ..small()
        })
        .await;
        let i = sim.info().wecom;
        let url = format!(
            "{}gettoken?corpid={}&corpsecret={}",
            i.api_base_url, i.corp_id, i.secret
        );
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
    let sim = start(SimConfig {
        latency_ms: 150,
        ..small()
    })
    .await;
    let i = sim.info().wecom;
    let url = format!(
        "{}gettoken?corpid={}&corpsecret={}",
        i.api_base_url, i.corp_id, i.secret
    );
    let t0 = std::time::Instant::now();
    ok(get(&client(), &url).await);
    assert!(t0.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn faults_can_be_switched_on_and_off_while_serving() {
    let sim = start(small()).await;
    let i = sim.info().wecom;
    let url = format!(
        "{}gettoken?corpid={}&corpsecret={}",
        i.api_base_url, i.corp_id, i.secret
    );
    let c = client();
    ok(get(&c, &url).await);
    sim.set_faults(1.0, vec![FaultKind::Busy]).unwrap();
    assert_eq!(get(&c, &url).await["errcode"], -1);
    sim.set_faults(0.0, vec![]).unwrap();
    ok(get(&c, &url).await);
    assert!(sim.set_faults(1.5, vec![]).is_err());
}
