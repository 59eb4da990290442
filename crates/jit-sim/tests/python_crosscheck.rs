//! Checks against implementations nobody here wrote: jit-crypto against
//! wechatpy's WeCom crypto and dingtalk-sdk's DingTalk crypto (both ways),
//! and the simulator against wechatpy's unmodified WeCom client.
//!
//! Needs `pip install -r crates/jit-sim/tests/py/requirements.txt`.

use crate::common;
use common::*;
use jit_crypto::{DingTalkCrypto, DingTalkEncrypted, WecomCrypto};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};

const INSTALL: &str = "pip install -r crates/jit-sim/tests/py/requirements.txt";

fn py_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py")
}

fn require_python_packages() {
    let out = Command::new("python3")
        .args(["-c", "import wechatpy, dingtalk.crypto, cryptography"])
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is needed for the cross-checks ({e}); then run: {INSTALL}")
        });
    assert!(
        out.status.success(),
        "wechatpy / dingtalk-sdk / cryptography are missing: {INSTALL}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_py(script: &str, input: &Value) -> Value {
    require_python_packages();
    let mut child = Command::new("python3")
        .arg(py_dir().join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("script prints JSON")
}

const TOKEN: &str = "QDG6eK";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

#[test]
fn jit_crypto_and_the_python_implementations_open_each_others_messages() {
    let corp = "wx5823bf96d3bd56c7";
    let app_key = "dingzdkpzcphf7vzoyu2";
    let wecom = WecomCrypto::new(TOKEN, KEY, corp).unwrap();
    let ding = DingTalkCrypto::new(TOKEN, KEY, app_key).unwrap();
    let event = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[create_user]]></ChangeType><UserID><![CDATA[张三]]></UserID></xml>";
    let env = wecom.seal_event(event, "1000002", "1409659813", "1372623149");
    let echo_plain = "1616140317555161061";
    let echostr = wecom.encrypt(echo_plain);
    let ding_plain = r#"{"EventType":"check_url"}"#;
    let sealed = ding.seal(ding_plain, "1700000000000", "nonce9");
    let input = json!({
        "token": TOKEN, "key": KEY, "corp_id": corp, "app_key": app_key,
        "wecom_event": {"body": env.body, "msg_signature": env.msg_signature, "timestamp": env.timestamp,
                        "nonce": env.nonce, "plaintext": event},
        "wecom_echo": {"msg_signature": wecom.signature("1409659813", "263014780", &echostr),
                       "timestamp": "1409659813", "nonce": "263014780", "echostr": echostr, "plaintext": echo_plain},
        "ding": {"msg_signature": sealed.msg_signature, "timeStamp": sealed.time_stamp, "nonce": sealed.nonce,
                 "encrypt": sealed.encrypt, "plaintext": ding_plain},
    });
    let out = run_py("crypto_crosscheck.py", &input);
    // And the other way: what Python sealed, Rust opens.
    let reply = out["wecom_reply"].as_str().unwrap();
    assert_eq!(
        wecom.open_reply(reply).unwrap(),
        out["wecom_reply_plaintext"].as_str().unwrap()
    );
    let success: DingTalkEncrypted = serde_json::from_value(out["ding_success"].clone()).unwrap();
    ding.verify_success_reply(&success).unwrap();
    let ev: DingTalkEncrypted = serde_json::from_value(out["ding_event"].clone()).unwrap();
    assert_eq!(
        ding.open(&ev).unwrap(),
        out["ding_event_plaintext"].as_str().unwrap()
    );
    // A frame sealed by Python for one corp is refused for another.
    let other = WecomCrypto::new(TOKEN, KEY, "wwother").unwrap();
    assert!(other.open_reply(reply).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechatpy_client_lists_departments_and_users_of_the_simulator() {
    let sim = start(small()).await;
    let i = sim.info().wecom;
    let input = json!({"api_base_url": i.api_base_url, "corp_id": i.corp_id, "secret": i.secret});
    let out = tokio::task::spawn_blocking(move || run_py("wecom_client.py", &input))
        .await
        .unwrap();
    let truth = sim.wecom_truth();
    let depts: BTreeSet<i64> = out["departments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_i64().unwrap())
        .collect();
    assert_eq!(depts, truth.depts.keys().copied().collect());
    let users: BTreeMap<String, Vec<i64>> = serde_json::from_value(out["users"].clone()).unwrap();
    let want: BTreeMap<String, Vec<i64>> = truth
        .members
        .values()
        .map(|m| {
            (
                m.member_id.clone(),
                m.depts.iter().map(|d| d.dept_id).collect(),
            )
        })
        .collect();
    assert_eq!(users, want);
    assert!(
        sim.stats().api("wecom", "/cgi-bin/gettoken").calls >= 1,
        "the token came from the simulator"
    );
}
