//! The DingTalk Stream gateway's open call and tickets, as a client meets
//! them over plain HTTP (the WebSocket side is tested by
//! `crates/jit-dingtalk-stream/tests`, against a real client).

use crate::common::{client, start};
use jit_sim::{OrgRef, SimConfig, SimHandle, StreamCommand};
use serde_json::{json, Value};

const ORG: OrgRef = OrgRef::Dingtalk(0);

async fn sim() -> SimHandle {
    start(SimConfig {
        depts: 3,
        users: 10,
        ..SimConfig::default()
    })
    .await
}

/// The open call with these credentials and subscriptions: (status, body).
async fn open(sim: &SimHandle, key: &str, secret: &str, subs: Value) -> (u16, Value) {
    let url = format!("{}/v1.0/gateway/connections/open", sim.base_url());
    let body = json!({"clientId": key, "clientSecret": secret, "subscriptions": subs,
        "ua": "test", "localIp": "127.0.0.1"});
    let r = client().post(&url).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn all_events() -> Value {
    json!([{"type": "EVENT", "topic": "*"}, {"type": "SYSTEM", "topic": "ping"}])
}

/// The status of a WebSocket handshake to `endpoint?ticket=`.
async fn handshake(endpoint: &str, ticket: &str) -> u16 {
    let url = format!(
        "{}?ticket={ticket}",
        endpoint.replacen("ws://", "http://", 1)
    );
    client()
        .get(&url)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_open_call_gives_an_endpoint_and_a_ticket_for_one_connection() {
    let sim = sim().await;
    let app = sim.info().dingtalk[0].clone();
    let (status, body) = open(&sim, &app.app_key, &app.app_secret, all_events()).await;
    assert_eq!(status, 200, "{body}");
    let endpoint = body["endpoint"].as_str().unwrap();
    let ticket = body["ticket"].as_str().unwrap();
    assert!(endpoint.starts_with("ws://"), "{endpoint}");
    assert_eq!(handshake(endpoint, ticket).await, 101);
    assert_eq!(
        handshake(endpoint, ticket).await,
        401,
        "a ticket is used once"
    );
    assert_eq!(handshake(endpoint, "made-up").await, 401);
    assert_eq!(sim.stream_stats(ORG).unwrap().connections, 1);
}

#[tokio::test]
async fn a_wrong_secret_is_refused_as_invalid_authentication_without_echoing_it() {
    let sim = sim().await;
    let app = sim.info().dingtalk[0].clone();
    let wrong = format!("{}-not", app.app_secret);
    let (status, body) = open(&sim, &app.app_key, &wrong, all_events()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("InvalidAuthentication"))
    );
    assert!(!body.to_string().contains(&wrong));
    let (status, _) = open(&sim, "no-such-app", &app.app_secret, all_events()).await;
    assert_eq!(status, 400);
    assert_eq!(sim.stream_stats(ORG).unwrap().opens_refused, 1);
}

#[tokio::test]
async fn an_open_call_without_an_event_subscription_is_refused() {
    let sim = sim().await;
    let app = sim.info().dingtalk[0].clone();
    let subs = json!([{"type": "SYSTEM", "topic": "ping"}]);
    let (status, body) = open(&sim, &app.app_key, &app.app_secret, subs).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("InvalidParameter"))
    );
    let subs = json!([{"type": "BOGUS", "topic": "*"}]);
    assert_eq!(open(&sim, &app.app_key, &app.app_secret, subs).await.0, 400);
}

#[tokio::test]
async fn stream_controls_need_a_connected_dingtalk_org() {
    let sim = sim().await;
    assert!(
        sim.stream_stats(OrgRef::Wecom).is_err(),
        "Stream mode is DingTalk's"
    );
    let err = sim.stream_command(ORG, StreamCommand::Ping).unwrap_err();
    assert!(err.to_string().contains("no Stream connection"), "{err}");
    let url = format!("{}/_sim/orgs/dingtalk-0/stream/drop", sim.base_url());
    let r = client().post(&url).send().await.unwrap();
    assert_eq!(r.status(), 409);
}

/// The official Python Stream SDK, unmodified, as a client of the gateway:
/// it gets every event with the headers it reads and its acks and pongs
/// count (it acks 200 echoing the data, where the Go SDK writes a status).
#[tokio::test]
async fn the_official_python_stream_sdk_receives_and_acks_the_events() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let sim = sim().await;
    let app = sim.info().dingtalk[0].clone();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/stream_client.py");
    let input = json!({"api_base_url": app.api_base_url, "client_id": app.app_key,
        "client_secret": app.app_secret});
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(input.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs");
    let connected = async {
        while !sim.stream_stats(ORG).unwrap().connected {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(std::time::Duration::from_secs(20), connected)
        .await
        .is_err()
    {
        let _ = child.kill();
        panic!(
            "the Python SDK did not connect; is it installed? \
             pip install -r crates/jit-sim/tests/py/requirements.txt"
        );
    }
    for i in 0..3 {
        let m = jit_sim::Mutation::add_member(
            format!("py{i}"),
            format!("Py {i}"),
            vec![jit_sim::MembershipSpec::of(1)],
        );
        sim.mutate(ORG, m).unwrap();
    }
    sim.stream_command(ORG, StreamCommand::Ping).unwrap();
    let acked = async {
        loop {
            let s = sim.stream_stats(ORG).unwrap();
            if s.acked == 3 && s.pongs == 1 {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    let stats = tokio::time::timeout(std::time::Duration::from_secs(10), acked).await;
    let _ = child.kill();
    let stats = stats.expect("three acks and a pong from the Python SDK");
    assert_eq!((stats.pending, stats.redelivered), (0, 0));
    let lines: Vec<Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let _ = child.wait();
    let users: Vec<&str> = lines
        .iter()
        .map(|l| l["data"]["userId"][0].as_str().unwrap())
        .collect();
    assert_eq!(users, ["py0", "py1", "py2"]);
    assert!(lines.iter().all(|l| l["eventType"] == "user_add_org"
        && l["corpId"] == app.corp_id.as_str()
        && !l["eventId"].as_str().unwrap().is_empty()));
}
