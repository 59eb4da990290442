//! Event-driven sync through the real `jit serve`: the simulator pushes
//! encrypted WeCom callbacks and DingTalk HTTP pushes to the host's
//! callback URLs; forged, replayed, tampered, truncated and foreign
//! requests are refused with nothing stored; duplicates are applied once;
//! an event stored before a SIGKILL is applied after the restart.

use crate::serve::{start_sim, Server, Sim};
use crate::support::{self, Fixture, Resp};

use jit_crypto::{DingTalkCrypto, WecomCrypto};
use jit_sim::{CallbackConfig, Mutation, OrgRef};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TOKEN: &str = "evtoken42";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const WECOM: &str = "corps.Acme";
const DING: &str = "corps.Ding";

/// An app with a WeCom and a DingTalk org pointing at the simulator, both
/// with HTTP events on; `settings` goes into app.json.
fn events_app(sim: &Sim, settings: Value) -> Fixture {
    let info = sim.handle.info();
    let d = &info.dingtalk[0];
    let f = Fixture::new();
    f.json(
        "app.json",
        json!({"appId": "t.events", "title": "Events", "settings": settings}),
    );
    f.json(
        "corps/Acme/e.json",
        json!({"title": "Acme", "type": "corps.QywxInnerType"}),
    );
    f.json(
        "corps/Acme/Acme.json",
        json!({"corpId": info.wecom.corp_id, "agentId": info.wecom.agent_id.to_string(),
               "secret": info.wecom.secret, "apiBase": info.wecom.api_base_url,
               "events": {"token": "{{EV_TOKEN}}", "aesKey": "{{EV_AES_KEY}}"}}),
    );
    f.json(
        "corps/Ding/e.json",
        json!({"title": "Ding", "type": "corps.DDInnerType"}),
    );
    f.json(
        "corps/Ding/Ding.json",
        json!({"corpId": d.corp_id, "agentId": d.agent_id.to_string(), "appKey": d.app_key,
               "appSecret": d.app_secret, "apiBase": d.api_base_url, "oapiBase": d.oapi_base_url,
               "events": {"mode": "http", "token": "{{EV_TOKEN}}", "aesKey": "{{EV_AES_KEY}}"}}),
    );
    f
}

const ENV: &[(&str, &str)] = &[("EV_TOKEN", TOKEN), ("EV_AES_KEY", AES_KEY)];

fn serve(f: &Fixture) -> Server {
    let s = Server::start_with(f.path(), &[], ENV);
    // Both orgs sync once at start (initCorp); events apply onto that.
    s.wait_for_run(WECOM, None);
    s.wait_for_run(DING, None);
    s
}

/// Points the simulator's callbacks of both orgs at the server.
fn subscribe(sim: &Sim, s: &Server) {
    let _rt = sim._rt.enter();
    for (org, path) in [
        (OrgRef::Wecom, format!("/callbacks/wecom/{WECOM}")),
        (OrgRef::Dingtalk(0), format!("/callbacks/dingtalk/{DING}")),
    ] {
        sim.handle
            .set_callback(
                org,
                Some(CallbackConfig {
                    url: format!("{}{path}", s.base),
                    token: TOKEN.into(),
                    aes_key: AES_KEY.into(),
                }),
            )
            .unwrap();
    }
}

fn inbox(s: &Server, org: &str) -> Value {
    let r = s.get(&format!("/api/v1/corps/{org}/events"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// Waits until `org` has `n` applied events and none pending.
fn wait_applied(s: &Server, org: &str, n: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = inbox(s, org);
        if v["applied"] == n && v["pending"] == 0 {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{org} did not apply {n} events: {v:#}\n{}",
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn local_data(s: &Server, org: &str) -> String {
    let r = s.post(
        &format!("/api/v1/elements/{org}/call/getLocalCorpData"),
        "{}",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn first_member(sim: &Sim, org: OrgRef) -> String {
    let truth = match org {
        OrgRef::Wecom => sim.handle.wecom_truth(),
        OrgRef::Dingtalk(n) => sim.handle.dingtalk_truth(n),
    };
    truth
        .members
        .values()
        .next()
        .expect("the simulated org has members")
        .member_id
        .clone()
}

fn wecom_crypto(sim: &Sim) -> WecomCrypto {
    WecomCrypto::new(TOKEN, AES_KEY, &sim.handle.info().wecom.corp_id).unwrap()
}

/// A WeCom `update_user` event XML for `userid`, created at `create_time`.
fn wecom_xml(sim: &Sim, userid: &str, create_time: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[update_user]]></ChangeType>\
         <UserID><![CDATA[{userid}]]></UserID></xml>",
        sim.handle.info().wecom.corp_id
    )
}

/// POSTs a sealed WeCom envelope with its query (timestamp in seconds).
fn post_wecom(s: &Server, body: &str, sig: &str, ts: &str, nonce: &str) -> Resp {
    let path = format!("/callbacks/wecom/{WECOM}?msg_signature={sig}&timestamp={ts}&nonce={nonce}");
    support::http(&s.base, "POST", &path, body, &[])
}

/// POSTs a sealed WeCom envelope as the platform sends it.
fn post_envelope(s: &Server, env: &jit_crypto::WecomEnvelope) -> Resp {
    post_wecom(s, &env.body, &env.msg_signature, &env.timestamp, &env.nonce)
}

/// Each `(what, answer, code)` is a 4xx with that error code, and its body
/// names neither the Token nor the key.
fn assert_refused(cases: Vec<(&str, Resp, &str)>) {
    for (what, r, code) in cases {
        assert!(
            (400..500).contains(&r.status),
            "{what}: {} {}",
            r.status,
            r.body
        );
        assert_eq!(r.code(), code, "{what}: {}", r.body);
        assert!(
            !r.body.contains(AES_KEY) && !r.body.contains(TOKEN),
            "{what}: {}",
            r.body
        );
    }
}

fn post_ding(s: &Server, crypto: &DingTalkCrypto, plain: &str, ts_ms: u64) -> Resp {
    let sealed = crypto.seal(plain, &ts_ms.to_string(), "n0nce");
    let path = format!(
        "/callbacks/dingtalk/{DING}?signature={}&timestamp={ts_ms}&nonce=n0nce",
        sealed.msg_signature
    );
    let body = json!({"encrypt": sealed.encrypt}).to_string();
    support::http(&s.base, "POST", &path, &body, &[])
}

#[test]
fn a_wecom_change_reaches_the_store_through_a_verified_callback() {
    let sim = start_sim();
    let f = events_app(&sim, json!({}));
    let s = serve(&f);
    subscribe(&sim, &s);
    sim._rt
        .block_on(sim.handle.verify_callback(OrgRef::Wecom))
        .expect("the URL check answers the decrypted echostr");
    let user = first_member(&sim, OrgRef::Wecom);
    rename(&sim, OrgRef::Wecom, &user, "Renamed By Event");
    let v = wait_applied(&s, WECOM, 1);
    let ev = &v["events"][0];
    assert_eq!(ev["eventType"], "update_user");
    assert!(ev["runId"].is_i64(), "applied by a recorded run: {ev}");
    assert!(local_data(&s, WECOM).contains("Renamed By Event"));
    // The run history tells the event's run from the full sync before it.
    let runs = s.get(&format!("/api/v1/corps/{WECOM}/runs")).json();
    let kinds: Vec<(&Value, &Value)> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (&r["runId"], &r["kind"]))
        .collect();
    assert_eq!(kinds[0], (&ev["runId"], &json!("event")), "{runs:#}");
    assert_eq!(kinds.last().unwrap().1, "sync", "{runs:#}");
}

#[test]
fn a_dingtalk_change_reaches_the_store_and_check_url_is_answered() {
    let sim = start_sim();
    let f = events_app(&sim, json!({}));
    let s = serve(&f);
    subscribe(&sim, &s);
    sim._rt
        .block_on(sim.handle.verify_callback(OrgRef::Dingtalk(0)))
        .expect("check_url gets the encrypted success");
    assert_eq!(inbox(&s, DING)["applied"], 0, "check_url stores nothing");
    let user = first_member(&sim, OrgRef::Dingtalk(0));
    rename(&sim, OrgRef::Dingtalk(0), &user, "Ding Renamed");
    wait_applied(&s, DING, 1);
    assert!(local_data(&s, DING).contains("Ding Renamed"));
    let stats = sim.handle.stats();
    assert_eq!(stats.events["dingtalk-0"].failed, 0, "{stats:?}");
}

#[test]
fn forged_replayed_tampered_truncated_and_foreign_wecom_callbacks_are_refused() {
    let sim = start_sim();
    let f = events_app(&sim, json!({}));
    let s = serve(&f);
    let c = wecom_crypto(&sim);
    let user = first_member(&sim, OrgRef::Wecom);
    let now = now_secs().to_string();
    let good = c.seal_event(&wecom_xml(&sim, &user, now_secs()), "1", &now, "abc");
    let stale_ts = (now_secs() - 600).to_string();
    let stale = c.seal_event(&wecom_xml(&sim, &user, now_secs()), "1", &stale_ts, "abc");
    let other_key =
        WecomCrypto::new(TOKEN, "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210abcdefg", "ww-x").unwrap();
    let foreign = other_key.seal_event(&wecom_xml(&sim, &user, now_secs()), "1", &now, "abc");
    let wrong_corp = WecomCrypto::new(TOKEN, AES_KEY, "ww-someone-else").unwrap();
    let misaddressed = wrong_corp.seal_event(&wecom_xml(&sim, &user, now_secs()), "1", &now, "abc");
    let enc = jit_crypto::xml_field(&good.body, "Encrypt").unwrap();
    let truncated_enc = &enc[..enc.len() - 8];
    let truncated = good.body.replace(&enc, truncated_enc);
    let truncated_sig = c.signature(&now, "abc", truncated_enc);
    let mut tampered_enc = enc.clone().into_bytes();
    tampered_enc[10] = if tampered_enc[10] == b'A' { b'B' } else { b'A' };
    let tampered_enc = String::from_utf8(tampered_enc).unwrap();
    let tampered = good.body.replace(&enc, &tampered_enc);
    let echostr = c
        .encrypt("hello")
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let forged_check = support::http(
        &s.base,
        "GET",
        &format!(
            "/callbacks/wecom/{WECOM}?msg_signature=00&timestamp={now}&nonce=abc&echostr={echostr}"
        ),
        "",
        &[],
    );
    let cases: Vec<(&str, Resp, &str)> = vec![
        (
            "URL check with a forged signature",
            forged_check,
            "not_verified",
        ),
        (
            "forged signature",
            post_wecom(&s, &good.body, "0000", &now, "abc"),
            "not_verified",
        ),
        (
            "stale timestamp",
            post_wecom(&s, &stale.body, &stale.msg_signature, &stale_ts, "abc"),
            "stale_timestamp",
        ),
        (
            "tampered ciphertext",
            post_wecom(&s, &tampered, &good.msg_signature, &now, "abc"),
            "not_verified",
        ),
        (
            "truncated ciphertext, re-signed",
            post_wecom(&s, &truncated, &truncated_sig, &now, "abc"),
            "not_verified",
        ),
        (
            "another app's key",
            post_wecom(&s, &foreign.body, &foreign.msg_signature, &now, "abc"),
            "not_verified",
        ),
        (
            "another corp's receiveid",
            post_wecom(
                &s,
                &misaddressed.body,
                &misaddressed.msg_signature,
                &now,
                "abc",
            ),
            "not_verified",
        ),
        (
            "no signature",
            support::http(
                &s.base,
                "POST",
                &format!("/callbacks/wecom/{WECOM}?timestamp={now}&nonce=abc"),
                &good.body,
                &[],
            ),
            "bad_request",
        ),
        (
            "unknown org",
            support::http(
                &s.base,
                "POST",
                "/callbacks/wecom/corps.Nope?msg_signature=x&timestamp=1&nonce=n",
                &good.body,
                &[],
            ),
            "not_receiving",
        ),
    ];
    assert_refused(cases);
    let v = inbox(&s, WECOM);
    assert_eq!(
        (v["pending"].as_u64(), v["applied"].as_u64()),
        (Some(0), Some(0)),
        "nothing stored: {v}"
    );
    let log = s.stderr();
    assert!(log.contains("callback refused"), "the log says why");
    assert!(
        !log.contains(AES_KEY) && !log.contains(TOKEN),
        "no secret in the log"
    );
}

#[test]
fn a_repeated_wecom_callback_is_stored_and_applied_once() {
    let sim = start_sim();
    let f = events_app(&sim, json!({}));
    let s = serve(&f);
    let c = wecom_crypto(&sim);
    let user = first_member(&sim, OrgRef::Wecom);
    let xml = wecom_xml(&sim, &user, now_secs());
    let now = now_secs().to_string();
    // WeCom's retry of one event, and a replay with a fresh nonce: the same
    // decrypted event either way.
    let first = c.seal_event(&xml, "1", &now, "nonce1");
    let again = c.seal_event(&xml, "1", &now, "nonce2");
    for env in [&first, &first, &again] {
        let r = post_envelope(&s, env);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let v = wait_applied(&s, WECOM, 1);
    assert_eq!(v["events"].as_array().unwrap().len(), 1, "{v}");
    let metrics = s.get("/metrics").body;
    assert!(
        metrics.contains("jit_events_received_total{org=\"corps.Acme\",outcome=\"duplicate\"} 2"),
        "{metrics}"
    );
}

#[test]
fn forged_and_foreign_dingtalk_pushes_are_refused_and_a_repeated_event_id_is_applied_once() {
    let sim = start_sim();
    let f = events_app(&sim, json!({}));
    let s = serve(&f);
    let info = sim.handle.info();
    let d = &info.dingtalk[0];
    let good = DingTalkCrypto::new(TOKEN, AES_KEY, &d.app_key).unwrap();
    let other_app = DingTalkCrypto::new(TOKEN, AES_KEY, "another-app-key").unwrap();
    let user = first_member(&sim, OrgRef::Dingtalk(0));
    let now_ms = now_secs() * 1000;
    let event = json!({"EventType": "user_modify_org", "CorpId": d.corp_id, "userId": [user],
                       "eventId": "ev-1", "TimeStamp": now_ms.to_string()})
    .to_string();
    let foreign_corp = json!({"EventType": "user_modify_org", "CorpId": "ding-other",
                              "userId": ["x"], "eventId": "ev-2"})
    .to_string();
    let forged = {
        let sealed = good.seal(&event, &now_ms.to_string(), "n0nce");
        let path =
            format!("/callbacks/dingtalk/{DING}?signature=bad&timestamp={now_ms}&nonce=n0nce");
        support::http(
            &s.base,
            "POST",
            &path,
            &json!({"encrypt": sealed.encrypt}).to_string(),
            &[],
        )
    };
    let cases: Vec<(&str, Resp, &str)> = vec![
        ("forged signature", forged, "not_verified"),
        (
            "stale timestamp",
            post_ding(&s, &good, &event, now_ms - 600_000),
            "stale_timestamp",
        ),
        (
            "another app's ownerKey",
            post_ding(&s, &other_app, &event, now_ms),
            "not_verified",
        ),
        (
            "another corp's event",
            post_ding(&s, &good, &foreign_corp, now_ms),
            "foreign_corp",
        ),
        (
            "not JSON",
            support::http(
                &s.base,
                "POST",
                &format!("/callbacks/dingtalk/{DING}?signature=a&timestamp={now_ms}&nonce=n"),
                "{",
                &[],
            ),
            "not_verified",
        ),
    ];
    assert_refused(cases);
    assert_eq!(inbox(&s, DING)["events"].as_array().unwrap().len(), 0);
    for _ in 0..2 {
        let r = post_ding(&s, &good, &event, now_ms);
        assert_eq!(r.status, 200, "{}", r.body);
        let reply: jit_crypto::DingTalkEncrypted = serde_json::from_str(&r.body).unwrap();
        good.verify_success_reply(&reply)
            .expect("the encrypted success");
    }
    let v = wait_applied(&s, DING, 1);
    assert_eq!(v["events"].as_array().unwrap().len(), 1, "{v}");
}

#[test]
fn an_event_stored_before_a_sigkill_is_applied_after_the_restart() {
    let sim = start_sim();
    // A long batch window holds the stored event before its apply.
    let f = events_app(
        &sim,
        json!({"events": {"batchWindowMs": 60000, "pollMs": 60000}}),
    );
    let s = serve(&f);
    let c = wecom_crypto(&sim);
    let user = first_member(&sim, OrgRef::Wecom);
    rename(&sim, OrgRef::Wecom, &user, "Survived A Kill");
    let env = c.seal_event(
        &wecom_xml(&sim, &user, now_secs()),
        "1",
        &now_secs().to_string(),
        "k1",
    );
    let r = post_envelope(&s, &env);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(inbox(&s, WECOM)["pending"], 1);
    let pid = s.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap()
        .success());
    drop(s);
    f.json("app.json", json!({"appId": "t.events", "title": "Events"}));
    let s = Server::start_with(f.path(), &[], ENV);
    wait_applied(&s, WECOM, 1);
    assert!(local_data(&s, WECOM).contains("Survived A Kill"));
}

/// Runs `crates/jit-sim/tests/py/seal_callbacks.py` (wechatpy and
/// dingtalk-sdk, pinned in its requirements.txt) with `input`.
fn python(input: &Value) -> Value {
    use std::io::Write;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../jit-sim/tests/py/seal_callbacks.py");
    let mut child = std::process::Command::new("python3")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 starts (pip install -r crates/jit-sim/tests/py/requirements.txt)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "seal_callbacks.py failed (pip install -r crates/jit-sim/tests/py/requirements.txt):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

#[test]
fn callbacks_sealed_by_wechatpy_and_dingtalk_sdk_are_accepted_and_dingtalk_sdk_opens_the_answer() {
    let sim = start_sim();
    let f = events_app(&sim, json!({}));
    let s = serve(&f);
    let info = sim.handle.info();
    let d = &info.dingtalk[0];
    let ts_s = now_secs().to_string();
    let ts_ms = (now_secs() * 1000).to_string();
    let ding_event = json!({"EventType": "user_modify_org", "CorpId": d.corp_id,
                            "userId": [first_member(&sim, OrgRef::Dingtalk(0))], "eventId": "py-1"})
    .to_string();
    let sealed = python(&json!({
        "mode": "seal", "token": TOKEN, "key": AES_KEY, "corp_id": info.wecom.corp_id,
        "app_key": d.app_key, "ts_s": ts_s, "ts_ms": ts_ms, "ding_event": ding_event,
        "wecom_xml": wecom_xml(&sim, &first_member(&sim, OrgRef::Wecom), now_secs()),
    }));
    let wx = sealed["wecom"].as_str().unwrap();
    let sig = jit_crypto::xml_field(wx, "MsgSignature").unwrap();
    let nonce = jit_crypto::xml_field(wx, "Nonce").unwrap();
    let r = post_wecom(&s, wx, &sig, &ts_s, &nonce);
    assert_eq!(r.status, 200, "wechatpy's callback: {}", r.body);

    let dg = &sealed["ding"];
    let path = format!(
        "/callbacks/dingtalk/{DING}?signature={}&timestamp={}&nonce={}",
        dg["msg_signature"].as_str().unwrap(),
        dg["timeStamp"].as_str().unwrap(),
        dg["nonce"].as_str().unwrap()
    );
    let body = json!({"encrypt": dg["encrypt"]}).to_string();
    let r = support::http(&s.base, "POST", &path, &body, &[]);
    assert_eq!(r.status, 200, "dingtalk-sdk's push: {}", r.body);
    let opened = python(&json!({"mode": "open", "token": TOKEN, "key": AES_KEY,
                                "app_key": d.app_key, "reply": r.json()}));
    assert_eq!(opened["plaintext"], "success");
    wait_applied(&s, WECOM, 1);
    wait_applied(&s, DING, 1);
}

/// The value of one `jit_events_processed_total` series on a server.
fn processed(s: &Server, org: &str, outcome: &str) -> u64 {
    let series = format!("jit_events_processed_total{{org=\"{org}\",outcome=\"{outcome}\"}} ");
    s.get("/metrics")
        .body
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[test]
fn two_replicas_on_one_postgresql_receive_every_event_and_apply_each_once() {
    let db = support::PgDatabase::create("events_replicas");
    let sim = start_sim();
    let f = events_app(&sim, json!({"databaseUrl": db.url()}));
    let a = serve(&f);
    let b = Server::start_with(f.path(), &[], ENV);
    let c = wecom_crypto(&sim);
    let members: Vec<String> = sim
        .handle
        .wecom_truth()
        .members
        .keys()
        .take(10)
        .cloned()
        .collect();
    let now = now_secs();
    for (i, user) in members.iter().enumerate() {
        let env = c.seal_event(
            &wecom_xml(&sim, user, now - i as u64),
            "1",
            &now.to_string(),
            &format!("n{i}"),
        );
        // Each event reaches both replicas (a platform retry landing on the
        // other one behind a load balancer).
        for s in [&a, &b] {
            let r = post_envelope(s, &env);
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }
    let v = wait_applied(&a, WECOM, members.len() as u64);
    for ev in v["events"].as_array().unwrap() {
        assert_eq!(ev["attempts"], 1, "claimed once: {ev}");
    }
    let applied = processed(&a, WECOM, "applied") + processed(&b, WECOM, "applied");
    assert_eq!(
        applied,
        members.len() as u64,
        "each event applied by one replica"
    );
}

/// An app with the DingTalk org only, its events in Stream mode.
fn stream_app(sim: &Sim, settings: Value) -> Fixture {
    let d = sim.handle.info().dingtalk[0].clone();
    let f = Fixture::new();
    f.json(
        "app.json",
        json!({"appId": "t.stream", "title": "Stream", "settings": settings}),
    );
    f.json(
        "corps/Ding/e.json",
        json!({"title": "Ding", "type": "corps.DDInnerType"}),
    );
    f.json(
        "corps/Ding/Ding.json",
        json!({"corpId": d.corp_id, "agentId": d.agent_id.to_string(), "appKey": d.app_key,
               "appSecret": d.app_secret, "apiBase": d.api_base_url, "oapiBase": d.oapi_base_url,
               "events": {"mode": "stream"}}),
    );
    f
}

fn rename_first_ding_member(sim: &Sim, name: &str) {
    let user = first_member(sim, OrgRef::Dingtalk(0));
    rename(sim, OrgRef::Dingtalk(0), &user, name);
}

/// Renames a member upstream (the simulator pushes the event if a callback is set).
fn rename(sim: &Sim, org: OrgRef, userid: &str, name: &str) {
    sim.handle
        .mutate(org, Mutation::rename_member(userid, name))
        .unwrap();
}

fn wait_stream(sim: &Sim, what: &str, ok: impl Fn(&jit_sim::StreamStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = sim.handle.stream_stats(OrgRef::Dingtalk(0)).unwrap();
        if ok(&st) {
            return;
        }
        assert!(Instant::now() < deadline, "stream never {what}: {st:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_dingtalk_change_reaches_the_store_over_the_stream() {
    let sim = start_sim();
    let f = stream_app(&sim, json!({}));
    let s = Server::start_with(f.path(), &[], &[]);
    s.wait_for_run(DING, None);
    wait_stream(&sim, "connected", |st| st.connected);
    rename_first_ding_member(&sim, "Streamed Name");
    wait_applied(&s, DING, 1);
    assert!(local_data(&s, DING).contains("Streamed Name"));
    let st = sim.handle.stream_stats(OrgRef::Dingtalk(0)).unwrap();
    assert_eq!(
        (st.acked, st.pending),
        (1, 0),
        "acked once it was stored: {st:?}"
    );
}

#[test]
fn one_of_two_replicas_holds_the_stream_and_the_other_takes_it_over_when_it_is_killed() {
    let db = support::PgDatabase::create("events_stream");
    let sim = start_sim();
    let f = stream_app(
        &sim,
        json!({"databaseUrl": db.url(), "events": {"leaseSecs": 2}}),
    );
    let a = Server::start_with(f.path(), &[], &[]);
    a.wait_for_run(DING, None);
    let b = Server::start_with(f.path(), &[], &[]);
    wait_stream(&sim, "connected", |st| st.connected);
    // Several lease periods: the second replica never connects too.
    std::thread::sleep(Duration::from_secs(3));
    let st = sim.handle.stream_stats(OrgRef::Dingtalk(0)).unwrap();
    assert_eq!(st.connections, 1, "one connection for the org: {st:?}");
    let holds = |s: &Server| {
        s.stderr()
            .contains("this replica holds the DingTalk stream")
    };
    let (holder, other) = if holds(&a) { (a, b) } else { (b, a) };
    assert!(!holds(&other));
    let pid = holder.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap()
        .success());
    drop(holder);
    wait_stream(&sim, "taken over", |st| st.connections == 2 && st.connected);
    rename_first_ding_member(&sim, "After Takeover");
    wait_applied(&other, DING, 1);
    assert!(local_data(&other, DING).contains("After Takeover"));
}

#[test]
fn an_event_whose_read_fails_is_retried_with_its_error_shown_and_applied_once_the_platform_answers()
{
    let sim = start_sim();
    let f = events_app(&sim, json!({}));
    // No client retries: each apply attempt fails at once while the faults last.
    let info = sim.handle.info();
    f.json(
        "corps/Acme/Acme.json",
        json!({"corpId": info.wecom.corp_id, "agentId": info.wecom.agent_id.to_string(),
               "secret": info.wecom.secret, "apiBase": info.wecom.api_base_url,
               "sync": {"retries": 0},
               "events": {"token": "{{EV_TOKEN}}", "aesKey": "{{EV_AES_KEY}}"}}),
    );
    let s = serve(&f);
    let user = first_member(&sim, OrgRef::Wecom);
    sim.handle
        .set_faults(1.0, vec![jit_sim::FaultKind::Busy])
        .unwrap();
    rename(&sim, OrgRef::Wecom, &user, "Applied After Retry");
    let c = wecom_crypto(&sim);
    let env = c.seal_event(
        &wecom_xml(&sim, &user, now_secs()),
        "1",
        &now_secs().to_string(),
        "r1",
    );
    let r = post_envelope(&s, &env);
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(20);
    let failed = loop {
        let v = inbox(&s, WECOM);
        if !v["events"][0]["lastError"].is_null() {
            break v;
        }
        assert!(Instant::now() < deadline, "no failed attempt: {v:#}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(failed["pending"], 1, "kept for a retry: {failed:#}");
    assert!(processed(&s, WECOM, "retried") >= 1);
    sim.handle.set_faults(0.0, vec![]).unwrap();
    let v = wait_applied(&s, WECOM, 1);
    assert!(v["events"][0]["attempts"].as_i64().unwrap() >= 2, "{v:#}");
    assert!(local_data(&s, WECOM).contains("Applied After Retry"));
}
