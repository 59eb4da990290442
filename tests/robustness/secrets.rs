//! No secret anywhere: the CLI, a sync and `jit serve` run with known
//! sentinel secrets and tokens, then every byte they wrote is scanned —
//! stdout, stderr, logs, the store (run records, reports), and the `Debug`
//! output of every config type — for any sentinel, or any 8-character
//! substring of one.
//!
//! The sentinels: the app secrets the simulator checks (filled into the
//! configs from the environment), a wrong secret of a third org (its sync
//! fails with the platform's error), the bearer tokens of `jit serve`, and
//! every access token the platforms handed out (read off the wire by a
//! recording proxy between `jit` and the simulator).

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use jit_sim::{SimConfig, Simulator};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A proxy that forwards to the simulator and records every token it hands out.
struct Recorder {
    sim_base: String,
    http: reqwest::Client,
    tokens: Mutex<Vec<String>>,
}

async fn record(State(r): State<Arc<Recorder>>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let url = format!(
        "{}{}",
        r.sim_base,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut fwd = r.http.request(method, url).body(body);
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            fwd = fwd.header(k, v);
        }
    }
    let Ok(resp) = fwd.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = resp.status();
    let bytes: Bytes = resp.bytes().await.unwrap_or_default();
    if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
        for key in ["access_token", "accessToken"] {
            if let Some(t) = v[key].as_str() {
                r.tokens.lock().unwrap().push(t.to_string());
            }
        }
    }
    (status, bytes).into_response()
}

/// Everything written, by where it was read from.
#[derive(Default)]
struct Written(Vec<(String, Vec<u8>)>);

impl Written {
    fn add(&mut self, source: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.0.push((source.into(), bytes.into()));
    }
}

fn jit(app: &Path, args: &[&str], env: &[(&str, &str)], out: &mut Written) -> Option<i32> {
    let o = Command::new(env!("CARGO_BIN_EXE_jit"))
        .args(
            args.iter()
                .map(|a| a.replace("{app}", &app.to_string_lossy())),
        )
        .envs(env.iter().copied())
        .env_remove("DATABASE_URL")
        .output()
        .expect("run jit");
    let name = format!("jit {}", args.join(" "));
    out.add(format!("{name}: stdout"), o.stdout);
    out.add(format!("{name}: stderr"), o.stderr);
    o.status.code()
}

fn write(dir: &Path, rel: &str, v: &Value) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

/// Every file under `dir` (the store, its journal, lock files, logs).
fn files(dir: &Path, out: &mut Written) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.add(p.display().to_string(), bytes);
        }
    }
}

/// Sentinels found in the written bytes: (sentinel, 8-byte piece, source).
fn leaks(sentinels: &[String], written: &Written) -> Vec<String> {
    let mut found = Vec::new();
    for s in sentinels {
        let pieces: Vec<&[u8]> = if s.len() <= 8 {
            vec![s.as_bytes()]
        } else {
            s.as_bytes().windows(8).collect()
        };
        for (source, bytes) in &written.0 {
            if let Some(p) = pieces
                .iter()
                .find(|p| bytes.windows(p.len()).any(|w| w == **p))
            {
                found.push(format!(
                    "{:?} (piece {:?}) in {source}",
                    s,
                    String::from_utf8_lossy(p)
                ));
            }
        }
    }
    found
}

#[test]
fn no_sentinel_secret_or_token_appears_in_anything_jit_writes() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = rt
        .block_on(Simulator::start(SimConfig {
            seed: 3,
            depts: 6,
            users: 25,
            dingtalk_depts: Some(4),
            dingtalk_users: Some(15),
            ..SimConfig::default()
        }))
        .expect("simulator starts");
    let recorder = Arc::new(Recorder {
        sim_base: sim.base_url(),
        http: reqwest::Client::new(),
        tokens: Mutex::new(Vec::new()),
    });
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let router = Router::new().fallback(record).with_state(recorder.clone());
    rt.spawn(async move { axum::serve(listener, router).await.unwrap() });

    let info = sim.info();
    let d = &info.dingtalk[0];
    let wrong_secret = "SENTINEL-wrong-secret-4b2e91c7d0".to_string();
    let read_token = "SENTINEL-read-token-8f13a6e2c9b4".to_string();
    let admin_token = "SENTINEL-admin-token-27d5e0b8a1f6".to_string();
    // The event callback's Token and EncodingAESKey (43 characters).
    let events_token = "SENTINELeventsToken5c8e1a".to_string();
    let events_aes_key = "SENTINELeventsAesKey0d4b9f27c3e6a18b5f2d7c0".to_string();
    let env = [
        ("S_WECOM_SECRET", info.wecom.secret.as_str()),
        ("S_DING_SECRET", d.app_secret.as_str()),
        ("S_WRONG_SECRET", wrong_secret.as_str()),
        ("S_READ_TOKEN", read_token.as_str()),
        ("S_ADMIN_TOKEN", admin_token.as_str()),
        ("S_EVENTS_TOKEN", events_token.as_str()),
        ("S_EVENTS_AES_KEY", events_aes_key.as_str()),
    ];
    let via = |url: &str| url.replace(&sim.base_url(), &proxy);
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path();
    write(
        app,
        "app.json",
        &json!({"appId": "t.secrets", "title": "secrets", "settings": {"apiTokens": [
            {"name": "dash", "token": "{{S_READ_TOKEN}}", "scope": "read"},
            {"name": "ops", "token": "{{S_ADMIN_TOKEN}}", "scope": "admin"}]}}),
    );
    write(
        app,
        "corps/Acme/e.json",
        &json!({"title": "Acme", "type": "corps.QywxInnerType"}),
    );
    write(
        app,
        "corps/Acme/Acme.json",
        &json!({"corpId": info.wecom.corp_id, "agentId": info.wecom.agent_id.to_string(),
                "secret": "{{S_WECOM_SECRET}}", "apiBase": via(&info.wecom.api_base_url),
                "events": {"token": "{{S_EVENTS_TOKEN}}", "aesKey": "{{S_EVENTS_AES_KEY}}"}}),
    );
    write(
        app,
        "corps/Nail/e.json",
        &json!({"title": "Nail", "type": "corps.DDInnerType"}),
    );
    write(
        app,
        "corps/Nail/Nail.json",
        &json!({"authConfig": {"corpId": d.corp_id, "agentId": d.agent_id.to_string(),
                "appKey": d.app_key, "appSecret": "{{S_DING_SECRET}}",
                "apiBase": via(&d.api_base_url), "oapiBase": via(&d.oapi_base_url)}}),
    );
    // A wrong secret: its sync fails with the platform's error.
    write(
        app,
        "corps/Wrong/e.json",
        &json!({"title": "Wrong", "type": "corps.QywxInnerType"}),
    );
    write(
        app,
        "corps/Wrong/Wrong.json",
        &json!({"corpId": info.wecom.corp_id, "agentId": "1", "secret": "{{S_WRONG_SECRET}}",
                "apiBase": via(&info.wecom.api_base_url), "sync": {"retries": 0}}),
    );

    let mut out = Written::default();
    // The CLI suite, as a user would run it.
    let mut commands = 0;
    let mut run = |args: &[&str], out: &mut Written| {
        commands += 1;
        jit(app, args, &env, out)
    };
    for args in [
        &["check", "{app}"][..],
        &["check", "{app}", "--format", "json"],
        &["ls", "{app}"],
        &["ls", "{app}", "--format", "json"],
    ] {
        assert_eq!(run(args, &mut out), Some(0), "{args:?}");
    }
    for org in ["corps.Acme", "corps.Nail", "corps.Wrong"] {
        run(&["show", org, "--app", "{app}"], &mut out);
        run(
            &["show", org, "--app", "{app}", "--format", "json"],
            &mut out,
        );
        run(&["call", org, "authConfig", "--app", "{app}"], &mut out);
        run(&["call", org, "getCorpInfo", "--app", "{app}"], &mut out);
    }
    // The sync suite: dry run, sync, sync again, JSON reports, the failing org.
    for org in ["corps.Acme", "corps.Nail"] {
        assert_eq!(
            run(&["sync", org, "--app", "{app}", "--dry-run"], &mut out),
            Some(0)
        );
        assert_eq!(run(&["sync", org, "--app", "{app}"], &mut out), Some(0));
        assert_eq!(
            run(
                &["sync", org, "--app", "{app}", "--format", "json"],
                &mut out
            ),
            Some(0)
        );
        run(
            &["call", org, "getLocalCorpData", "--app", "{app}"],
            &mut out,
        );
        run(
            &["call", org, "getThirdCorpData", "--app", "{app}"],
            &mut out,
        );
    }
    assert_ne!(
        run(&["sync", "corps.Wrong", "--app", "{app}"], &mut out),
        Some(0)
    );
    run(
        &["sync", "corps.Wrong", "--app", "{app}", "--format", "json"],
        &mut out,
    );
    run(
        &["call", "corps.Wrong", "syncCorp", "--app", "{app}"],
        &mut out,
    );

    // Change callbacks for jit serve: one sealed with the org's Token and
    // key (stored and applied), one with a forged signature (refused).
    let member = sim.wecom_truth().members.keys().next().unwrap().clone();
    let crypto =
        jit_crypto::WecomCrypto::new(&events_token, &events_aes_key, &info.wecom.corp_id).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let xml = format!(
        "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[update_user]]></ChangeType>\
         <UserID><![CDATA[{member}]]></UserID></xml>",
        info.wecom.corp_id
    );
    let env_ok = crypto.seal_event(&xml, "1", &now, "n1");
    let callbacks = vec![
        (
            format!(
                "/callbacks/wecom/corps.Acme?msg_signature={}&timestamp={now}&nonce=n1",
                env_ok.msg_signature
            ),
            env_ok.body.clone(),
        ),
        (
            format!(
                "/callbacks/wecom/corps.Acme?msg_signature={}&timestamp={now}&nonce=n2",
                "0".repeat(40)
            ),
            env_ok.body.clone(),
        ),
    ];
    out.add("Debug EventsConfig", {
        let loaded = jit_corps::EventsConfig {
            mode: jit_corps::EventMode::Http,
            token: Some(events_token.clone()),
            aes_key: Some(events_aes_key.clone()),
        };
        format!("{loaded:?} {loaded:#?}")
    });
    out.add("Debug WecomCrypto (events)", format!("{crypto:?}"));

    // jit serve: requests with both tokens and a wrong one, a sync with its
    // events, change callbacks, the run history, then SIGTERM.
    let serve_requests = serve(
        app,
        &env,
        &read_token,
        &admin_token,
        &callbacks,
        &rt,
        &mut out,
    );
    commands += 1;

    // What the runs left in the store, read through the store API too.
    rt.block_on(async {
        let store = jit_store::open(app.join(".jit/org.db").to_str().unwrap())
            .await
            .unwrap();
        for org in ["corps.Acme", "corps.Nail", "corps.Wrong"] {
            let runs = store.list_runs(org, 50).await.unwrap();
            out.add(format!("{org}: runs (Debug)"), format!("{runs:?}"));
            out.add(
                format!("{org}: runs (JSON)"),
                serde_json::to_string(&runs).unwrap_or_default(),
            );
        }
    });
    files(app, &mut out);

    // The Debug output of every type that holds a secret.
    let all_secrets = [
        info.wecom.secret.clone(),
        d.app_secret.clone(),
        wrong_secret.clone(),
    ];
    for s in &all_secrets {
        let wecom = jit_wecom::WecomConfig::new("ww1", "1", s.clone());
        out.add("Debug WecomConfig", format!("{wecom:?} {wecom:#?}"));
        let ding = jit_dingtalk::DingTalkConfig::new("ding1", "1", "key", s.clone());
        out.add("Debug DingTalkConfig", format!("{ding:?} {ding:#?}"));
        let auth = jit_corps::AuthConfig::Wecom {
            corp_id: "ww1".into(),
            agent_id: "1".into(),
            secret: s.clone(),
            api_base: None,
        };
        out.add("Debug AuthConfig", format!("{auth:?} {auth:#?}"));
        let auth = jit_corps::AuthConfig::DingTalk {
            corp_id: "d".into(),
            agent_id: "1".into(),
            app_key: "k".into(),
            app_secret: s.clone(),
            api_base: None,
            oapi_base: None,
            token_endpoint: None,
        };
        out.add("Debug AuthConfig", format!("{auth:?} {auth:#?}"));
        let token = jit_apiclient::Token::new(s.clone(), 7200);
        out.add("Debug Token", format!("{token:?} {token:#?}"));
        if let Ok(c) = jit_wecom::WecomClient::new(wecom) {
            out.add("Debug WecomClient", format!("{c:?}"));
        }
        if let Ok(c) = jit_dingtalk::DingTalkClient::new(ding) {
            out.add("Debug DingTalkClient", format!("{c:?}"));
        }
    }
    let key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    let wc = jit_crypto::WecomCrypto::new(&wrong_secret[..32], key, "ww1").unwrap();
    out.add("Debug WecomCrypto", format!("{wc:?}"));
    let dc = jit_crypto::DingTalkCrypto::new(&wrong_secret[..32], key, "owner").unwrap();
    out.add("Debug DingTalkCrypto", format!("{dc:?}"));
    let tokens = jit_serve::Tokens::from_manifest(&json!({"settings": {"apiTokens": [
        {"name": "dash", "token": read_token, "scope": "read"}]}}))
    .unwrap();
    out.add("Debug Tokens", format!("{tokens:?}"));
    let loaded = jit_core::App::load(
        app,
        jit_core::LoadOptions {
            registry: {
                let mut r = jit_core::TypeRegistry::new();
                jit_corps::register_builtins(&mut r);
                r
            },
            env: Some(
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            skip_startup: true,
        },
    )
    .unwrap();
    for org in ["corps.Acme", "corps.Nail", "corps.Wrong"] {
        if let Ok(h) = loaded.get_element(org) {
            out.add(format!("Debug {org} handle"), format!("{h:?} {h:#?}"));
        }
    }
    out.add("Debug diagnostics", format!("{:?}", loaded.diagnostics()));

    let platform_tokens = recorder.tokens.lock().unwrap().clone();
    assert!(
        platform_tokens.len() >= 2,
        "the proxy saw the platforms' tokens: {}",
        platform_tokens.len()
    );
    let mut sentinels: Vec<String> = vec![
        info.wecom.secret.clone(),
        d.app_secret.clone(),
        wrong_secret,
        read_token,
        admin_token,
        events_token,
        events_aes_key,
    ];
    sentinels.extend(platform_tokens);
    sentinels.sort();
    sentinels.dedup();
    // The scan itself must see a piece of a sentinel where one is.
    let probe = Written(vec![(
        "probe".into(),
        format!("x{}y", &sentinels[0][2..10]).into_bytes(),
    )]);
    assert_eq!(
        leaks(&sentinels[..1], &probe).len(),
        1,
        "the scan finds pieces"
    );
    let found = leaks(&sentinels, &out);
    let bytes: usize = out.0.iter().map(|(_, b)| b.len()).sum();
    // Straight to stderr, past the harness's capture, so CI shows the counts.
    let line = format!(
        "secrets scan: {} sentinels (app secrets, serve tokens, event callback keys, platform tokens) and every 8-character piece of each, \
         over {} sources ({bytes} bytes) from {commands} jit runs and {serve_requests} serve requests: {} found",
        sentinels.len(),
        out.0.len(),
        found.len()
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{line}\n").as_bytes());
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
}

/// Runs `jit serve` through a sync and back down; returns the requests made.
fn serve(
    app: &Path,
    env: &[(&str, &str)],
    read_token: &str,
    admin_token: &str,
    callbacks: &[(String, String)],
    rt: &tokio::runtime::Runtime,
    out: &mut Written,
) -> usize {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jit"))
        .arg("serve")
        .arg(app)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--grace",
            "5",
        ])
        .envs(env.iter().copied())
        .env("RUST_LOG", "debug")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start jit serve");
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        stderr.read_to_end(&mut s).ok();
        s
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    stdout.read_line(&mut ready).unwrap();
    let base = serde_json::from_str::<Value>(&ready)
        .ok()
        .and_then(|v| v["listen"].as_str().map(String::from))
        .unwrap_or_else(|| {
            let _ = child.kill();
            panic!("jit serve gave no ready line: {ready:?}")
        });
    let http = reqwest::Client::new();
    let mut bodies = Vec::new();
    let mut requests = 0;
    // Requests made outside `send` (which holds `requests`).
    let mut extra = 0;
    rt.block_on(async {
        let mut send =
            |method: reqwest::Method, path: String, token: Option<&str>, body: Option<Value>| {
                requests += 1;
                let mut r = http.request(method, format!("{base}{path}"));
                if let Some(t) = token {
                    r = r.bearer_auth(t);
                }
                if let Some(b) = body {
                    r = r.json(&b);
                }
                r.timeout(Duration::from_secs(30)).send()
            };
        use reqwest::Method;
        let mut replies = Vec::new();
        for (m, p, t, b) in [
            (
                Method::GET,
                "/api/v1/elements".to_string(),
                Some(read_token),
                None,
            ),
            (
                Method::GET,
                "/api/v1/elements/corps.Acme".into(),
                Some(read_token),
                None,
            ),
            (
                Method::GET,
                "/api/v1/elements/corps.Nail".into(),
                Some("SENTINEL-not-a-token"),
                None,
            ),
            (
                Method::POST,
                "/api/v1/elements/corps.Wrong/call/syncCorp".into(),
                Some(admin_token),
                Some(json!({})),
            ),
            (
                Method::POST,
                "/api/v1/elements/corps.Acme/call/authConfig".into(),
                Some(admin_token),
                Some(json!({})),
            ),
            (Method::GET, "/metrics".into(), None, None),
            (Method::GET, "/api/v1/openapi.json".into(), None, None),
        ] {
            replies.push(send(m, p, t, b).await);
        }
        let sync = send(
            Method::POST,
            "/api/v1/corps/corps.Acme/sync".into(),
            Some(admin_token),
            Some(json!({"dryRun": false, "force": false})),
        )
        .await;
        let run_id = match sync {
            Ok(r) => {
                let text = r.text().await.unwrap_or_default();
                bodies.push(text.clone());
                serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["runId"].as_i64())
            }
            Err(_) => None,
        };
        if let Some(id) = run_id {
            replies.push(
                send(
                    Method::GET,
                    format!("/api/v1/corps/corps.Acme/runs/{id}/events"),
                    Some(read_token),
                    None,
                )
                .await,
            );
            replies.push(
                send(
                    Method::GET,
                    format!("/api/v1/corps/corps.Acme/runs/{id}"),
                    Some(read_token),
                    None,
                )
                .await,
            );
        }
        for (path, body) in callbacks {
            extra += 1;
            replies.push(
                http.post(format!("{base}{path}"))
                    .header("content-type", "text/xml")
                    .body(body.clone())
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await,
            );
        }
        // The stored event is applied (its read goes through the proxy).
        let applied = Instant::now() + Duration::from_secs(20);
        loop {
            extra += 1;
            let r = http
                .get(format!("{base}/api/v1/corps/corps.Acme/events"))
                .bearer_auth(read_token)
                .send()
                .await;
            let text = match r {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            bodies.push(text.clone());
            let v: Value = serde_json::from_str(&text).unwrap_or_default();
            if v["applied"] == 1 && v["pending"] == 0 {
                break;
            }
            assert!(
                Instant::now() < applied,
                "the sealed callback was not applied: {text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        replies.push(
            send(
                Method::GET,
                "/api/v1/corps/corps.Wrong/runs".into(),
                Some(read_token),
                None,
            )
            .await,
        );
        for r in replies.into_iter().flatten() {
            let headers = format!("{:?}", r.headers());
            bodies.push(headers);
            bodies.push(r.text().await.unwrap_or_default());
        }
    });
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut rest = String::new();
    let _ = stdout.read_to_string(&mut rest);
    out.add("jit serve: stdout", format!("{ready}{rest}"));
    out.add(
        "jit serve: stderr (logs)",
        err_reader.join().unwrap_or_default(),
    );
    out.add("jit serve: answers", bodies.join("\n"));
    requests + extra
}
