//! Change events pushed to callback URLs: WeCom change_contact XML sealed
//! with WXBizMsgCrypt, DingTalk HTTP push expecting the encrypted "success".

use crate::common;
use axum::extract::{Query, State};
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use jit_crypto::{xml_field, DingTalkCrypto, WecomCrypto};
use jit_sim::{CallbackConfig, MembershipSpec, Mutation, OrgRef, SimHandle};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "simtoken42";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

#[derive(Clone)]
struct Rx {
    wecom: Option<WecomCrypto>,
    ding: Option<DingTalkCrypto>,
    got: Arc<Mutex<Vec<String>>>,
    honest: bool,
}

async fn wecom_post(
    State(rx): State<Rx>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> String {
    let c = rx.wecom.as_ref().unwrap();
    let xml = c
        .open_event(&body, &q["msg_signature"], &q["timestamp"], &q["nonce"])
        .expect("valid event");
    rx.got.lock().unwrap().push(xml);
    String::new()
}

async fn wecom_get(State(rx): State<Rx>, Query(q): Query<HashMap<String, String>>) -> String {
    let c = rx.wecom.as_ref().unwrap();
    c.verify_url(
        &q["msg_signature"],
        &q["timestamp"],
        &q["nonce"],
        &q["echostr"],
    )
    .expect("valid echostr")
}

async fn ding_post(
    State(rx): State<Rx>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Json<Value> {
    let c = rx.ding.as_ref().unwrap();
    let json = c
        .open_request(&q["signature"], &q["timestamp"], &q["nonce"], &body)
        .expect("valid push");
    rx.got.lock().unwrap().push(json);
    if rx.honest {
        Json(serde_json::to_value(c.success_reply(&q["timestamp"], "abc")).unwrap())
    } else {
        Json(serde_json::json!({"ok": true}))
    }
}

async fn receiver(rx: Rx) -> String {
    let app = Router::new()
        .route("/wecom", post(wecom_post).get(wecom_get))
        .route("/ding", post(ding_post))
        .with_state(rx);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

/// Starts a receiver that opens `org`'s pushes with the org's own crypto
/// (and, when not `honest`, answers DingTalk without the encrypted
/// "success"), and points the org's callback at it. Returns what arrives.
async fn listen(sim: &SimHandle, org: OrgRef, honest: bool) -> Arc<Mutex<Vec<String>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let (wecom, ding, path) = match org {
        OrgRef::Wecom => {
            let corp_id = sim.info().wecom.corp_id;
            (
                Some(WecomCrypto::new(TOKEN, KEY, &corp_id).unwrap()),
                None,
                "wecom",
            )
        }
        OrgRef::Dingtalk(i) => {
            let app_key = sim.info().dingtalk[i].app_key.clone();
            (
                None,
                Some(DingTalkCrypto::new(TOKEN, KEY, &app_key).unwrap()),
                "ding",
            )
        }
    };
    let rx = Rx {
        wecom,
        ding,
        got: got.clone(),
        honest,
    };
    let cfg = CallbackConfig {
        url: format!("{}/{path}", receiver(rx).await),
        token: TOKEN.into(),
        aes_key: KEY.into(),
    };
    sim.set_callback(org, Some(cfg)).unwrap();
    got
}

async fn wait_for(sim: &SimHandle, org: &str, n: u64, failed: bool) {
    for _ in 0..100 {
        let s = sim.stats().events.get(org).cloned().unwrap_or_default();
        if (if failed { s.failed } else { s.delivered }) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "events of {org} not delivered: {:?}",
        sim.stats().events.get(org)
    );
}

#[tokio::test]
async fn wecom_events_arrive_sealed_for_the_corp_in_mutation_order() {
    let sim = start(small()).await;
    let info = sim.info().wecom;
    let got = listen(&sim, OrgRef::Wecom, true).await;
    sim.verify_callback(OrgRef::Wecom).await.unwrap();
    let d = sim
        .mutate(OrgRef::Wecom, Mutation::add_dept(1, "事件部"))
        .unwrap()
        .dept_id
        .unwrap();
    let out = sim
        .mutate(
            OrgRef::Wecom,
            Mutation::add_member("evt_user", "事件", vec![MembershipSpec::of(d)]),
        )
        .unwrap();
    assert_eq!(out.events, vec!["create_user".to_string()]);
    sim.mutate(
        OrgRef::Wecom,
        Mutation::RemoveMember {
            userid: "evt_user".into(),
        },
    )
    .unwrap();
    wait_for(&sim, "wecom", 3, false).await;
    let got = got.lock().unwrap().clone();
    let kinds: Vec<String> = got
        .iter()
        .map(|x| xml_field(x, "ChangeType").unwrap())
        .collect();
    assert_eq!(kinds, ["create_party", "create_user", "delete_user"]);
    assert_eq!(xml_field(&got[1], "UserID").unwrap(), "evt_user");
    assert_eq!(xml_field(&got[1], "Department").unwrap(), d.to_string());
    assert_eq!(xml_field(&got[0], "Event").unwrap(), "change_contact");
    assert_eq!(xml_field(&got[0], "ToUserName").unwrap(), info.corp_id);
}

#[tokio::test]
async fn dingtalk_push_needs_the_encrypted_success_reply() {
    let sim = start(small()).await;
    let got = listen(&sim, OrgRef::Dingtalk(0), true).await;
    sim.verify_callback(OrgRef::Dingtalk(0)).await.unwrap();
    let uid = sim.dingtalk_truth(0).members.keys().next().unwrap().clone();
    sim.mutate(
        OrgRef::Dingtalk(0),
        Mutation::DisableMember {
            userid: uid.clone(),
        },
    )
    .unwrap();
    wait_for(&sim, "dingtalk-0", 1, false).await;
    let got = got.lock().unwrap().clone();
    let check: Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(check["EventType"], "check_url");
    let ev: Value = serde_json::from_str(&got[1]).unwrap();
    assert_eq!(ev["EventType"], "user_modify_org");
    assert_eq!(ev["userId"][0], uid.as_str());
}

#[tokio::test]
async fn a_push_not_answered_with_encrypted_success_counts_as_failed() {
    let sim = start(small()).await;
    sim.set_callback_retry_interval(Duration::from_millis(10));
    listen(&sim, OrgRef::Dingtalk(0), false).await;
    assert!(sim.verify_callback(OrgRef::Dingtalk(0)).await.is_err());
    sim.mutate(OrgRef::Dingtalk(0), Mutation::add_dept(1, "x"))
        .unwrap();
    wait_for(&sim, "dingtalk-0", 1, true).await;
    let e = sim.stats().events["dingtalk-0"].clone();
    assert_eq!(e.delivered, 0);
    assert_eq!(e.retried, 3, "re-pushed 3 times before giving up");
    assert!(e.last_error.unwrap().contains("reply"));
}
