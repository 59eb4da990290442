//! Logging in through `jit serve`: the real binary, an app whose WeCom and
//! DingTalk orgs and login elements point at the simulator running in this
//! test process, and a browser played by hand (cookies kept per "browser",
//! redirects followed one by one).
//!
//! Every server's output, and every refusal, is scanned for the codes,
//! states, tokens, cookies and secrets the test saw
//! (`Server::stop_and_scan`): no test ends without the scan.

use crate::support::{self, PgDatabase};

use jit_org::MemberStatus;
use jit_sim::{Mutation, OrgRef, SimConfig, SimHandle, Simulator};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Fixture, Resp};

// ------------------------------------------------------------------ fixtures

struct Sim {
    handle: SimHandle,
    _rt: tokio::runtime::Runtime,
}

fn start_sim(code_lifetime_secs: u64) -> Sim {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt
        .block_on(Simulator::start(SimConfig {
            seed: 11,
            depts: 5,
            users: 20,
            dingtalk_depts: Some(3),
            dingtalk_users: Some(8),
            login_code_lifetime_secs: code_lifetime_secs,
            ..SimConfig::default()
        }))
        .expect("simulator starts");
    Sim { handle, _rt: rt }
}

const ADMIN_TOKEN: &str = "admin-token-0f1e2d3c";
const SESSION_SECRET: &str = "configured-session-secret-6b1d0c9e8f7a";

/// Everything a test must never find in a log line or an error.
#[derive(Default, Clone)]
struct Secrets(Arc<Mutex<Vec<String>>>);

impl Secrets {
    fn add(&self, s: &str) -> String {
        if s.len() >= 8 {
            self.0.lock().unwrap().push(s.to_string());
        }
        s.to_string()
    }

    /// Asserts that `text` holds none of them (nor a token's signature).
    fn assert_absent(&self, what: &str, text: &str) {
        for s in self.0.lock().unwrap().iter() {
            let sig = s.rsplit('.').next().unwrap_or(s);
            assert!(
                !text.contains(s.as_str()) && (sig.len() < 16 || !text.contains(sig)),
                "{what} shows a code, token or secret:\n{text}"
            );
        }
    }
}

/// An app with one WeCom org, two DingTalk orgs, an unreachable WeCom org,
/// and a login element for each.
fn login_app(sim: &Sim, secrets: &Secrets) -> Fixture {
    let info = sim.handle.info();
    let base = sim.handle.base_url();
    secrets.add(&info.wecom.secret);
    let f = Fixture::new();
    f.json(
        "app.json",
        json!({"appId": "t.login", "title": "Login", "settings": {"apiTokens": [
            {"name": "ops", "token": "{{T_ADMIN}}", "scope": "admin"}]}}),
    );
    f.json(
        "corps/Acme/e.json",
        json!({"title": "Acme", "type": "corps.QywxInnerType"}),
    );
    f.json(
        "corps/Acme/Acme.json",
        json!({"corpId": info.wecom.corp_id, "agentId": info.wecom.agent_id.to_string(),
               "secret": info.wecom.secret, "apiBase": info.wecom.api_base_url}),
    );
    f.json(
        "corps/Down/e.json",
        json!({"title": "Down", "type": "corps.QywxInnerType"}),
    );
    f.json(
        "corps/Down/Down.json",
        json!({"corpId": "wwdown", "agentId": "1", "secret": "down-secret-value",
               "apiBase": "http://127.0.0.1:9/cgi-bin/",
               "sync": {"retries": 1, "retryBaseMs": 10, "timeoutSecs": 2}}),
    );
    for (i, name) in ["DingA", "DingB"].iter().enumerate() {
        let d = &info.dingtalk[i];
        secrets.add(&d.app_secret);
        f.json(
            &format!("corps/{name}/e.json"),
            json!({"title": name, "type": "corps.DDInnerType"}),
        );
        f.json(
            &format!("corps/{name}/{name}.json"),
            json!({"authConfig": {"corpId": d.corp_id, "agentId": d.agent_id.to_string(),
                   "appKey": d.app_key, "appSecret": d.app_secret, "apiBase": d.api_base_url}}),
        );
        f.json(
            &format!("auths/{name}Login/e.json"),
            json!({"title": format!("{name} login"), "type": "auths.loginTypes.DDInnerType"}),
        );
        f.json(
            &format!("auths/{name}Login/{name}Login.json"),
            json!({"corp": format!("corps.{name}"), "loginBase": base}),
        );
    }
    f.json(
        "auths/DingAnyLogin/e.json",
        json!({"title": "DingA login, DingB accepted", "type": "auths.loginTypes.DDInnerType"}),
    );
    f.json(
        "auths/DingAnyLogin/DingAnyLogin.json",
        json!({"corp": "corps.DingA", "acceptCorps": ["corps.DingB"], "loginBase": base}),
    );
    f.json(
        "auths/AcmeLogin/e.json",
        json!({"title": "Acme login", "type": "auths.loginTypes.QywxInnerType"}),
    );
    f.json(
        "auths/AcmeLogin/AcmeLogin.json",
        json!({"corp": "corps.Acme", "oauthBase": base, "ssoBase": base,
               "redirectOrigins": ["https://portal.example.com"]}),
    );
    f.json(
        "auths/AcmeKeyed/e.json",
        json!({"title": "Acme login, configured key", "type": "auths.loginTypes.QywxInnerType"}),
    );
    f.json(
        "auths/AcmeKeyed/AcmeKeyed.json",
        json!({"corp": "corps.Acme", "oauthBase": base, "sessionSecret": "{{JIT_SESSION_SECRET}}"}),
    );
    f.json(
        "auths/DownLogin/e.json",
        json!({"title": "Down login", "type": "auths.loginTypes.QywxInnerType"}),
    );
    f.json(
        "auths/DownLogin/DownLogin.json",
        json!({"corp": "corps.Down"}),
    );
    secrets.add("down-secret-value");
    secrets.add(ADMIN_TOKEN);
    secrets.add(SESSION_SECRET);
    f
}

// ------------------------------------------------------------------ the server

struct Server {
    child: Child,
    base: String,
    /// The ready line.
    ready: Value,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn drain(
    stream: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    })
}

impl Server {
    /// `jit serve APP` on a free port, logging at `log` level, with the
    /// app's `{{NAME}}`s in the environment and the store in `db` (shared
    /// by replicas).
    fn start(app: &Path, db: &Path, log: &str) -> Server {
        Server::start_on(app, db.to_str().unwrap(), log)
    }

    /// [`Server::start`] on a store URL (a PostgreSQL database).
    fn start_on(app: &Path, db: &str, log: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jit"))
            .arg("serve")
            .arg(app)
            .args(["--listen", "127.0.0.1:0"])
            .env("DATABASE_URL", db)
            .env("RUST_LOG", log)
            .env("T_ADMIN", ADMIN_TOKEN)
            .env("JIT_SESSION_SECRET", SESSION_SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start jit serve");
        let output = Arc::new(Mutex::new(String::new()));
        let err_reader = drain(child.stderr.take().unwrap(), output.clone());
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            let _ = child.kill();
            panic!("no ready line ({e}): {line:?}\n{}", output.lock().unwrap())
        });
        output.lock().unwrap().push_str(&line);
        let out_reader = drain(out, output.clone());
        Server {
            child,
            base: ready["listen"].as_str().unwrap().to_string(),
            ready,
            output,
            readers: vec![err_reader, out_reader],
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        http(&self.base, method, path, body, headers)
    }

    /// An admin call of an element method.
    fn call(&self, element: &str, method: &str, args: Value) -> Resp {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        self.request(
            "POST",
            &format!("/api/v1/elements/{element}/call/{method}"),
            Some(&args),
            &[("authorization", &auth)],
        )
    }

    /// Waits until each org's newest run has ended (the start's initCorp).
    fn wait_for_syncs(&self, orgs: &[&str]) {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        for org in orgs {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let r = self.request(
                    "GET",
                    &format!("/api/v1/corps/{org}/runs"),
                    None,
                    &[("authorization", &auth)],
                );
                let run = &r.json()["runs"][0];
                if !run.is_null() && run["outcome"] != "running" {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "no finished run of {org}: {}",
                    r.body
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `POST /api/v1/auth/{login}/login {code, flow?}`.
    fn api_login(&self, login: &str, code: &str, flow: Option<&str>) -> Resp {
        let mut body = json!({"code": code});
        if let Some(f) = flow {
            body["flow"] = json!(f);
        }
        self.request(
            "POST",
            &format!("/api/v1/auth/{login}/login"),
            Some(&body),
            &[],
        )
    }

    /// `GET /api/v1/me` with a bearer session token.
    fn me(&self, token: &str) -> Resp {
        let auth = format!("Bearer {token}");
        self.request("GET", "/api/v1/me", None, &[("authorization", &auth)])
    }

    /// Stops the server and scans everything it printed; returns it.
    fn stop_and_scan(mut self, secrets: &Secrets) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        let out = self.output.lock().unwrap().clone();
        assert!(
            out.contains("\"listen\""),
            "the output was captured:\n{out}"
        );
        secrets.assert_absent("the server's output", &out);
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http(
    base: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Resp {
    let body = body.map(Value::to_string).unwrap_or_default();
    support::http(base, method, path, &body, headers)
}

/// The value of a query parameter of a URL.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next()?;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A browser: its cookie jar (name → value), by host.
#[derive(Default)]
struct Browser {
    jar: HashMap<String, String>,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// GET an absolute URL, sending and keeping cookies (one host's jar is
    /// enough: the platform pages set none).
    fn get(&mut self, url: &str) -> Resp {
        let (base, path) = split_url(url);
        let cookies = self.cookie_header();
        let headers: Vec<(&str, &str)> = if cookies.is_empty() {
            vec![]
        } else {
            vec![("cookie", &cookies)]
        };
        let r = http(&base, "GET", &path, None, &headers);
        for c in &r.cookies {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.jar.remove(k);
            } else {
                self.jar.insert(k.to_string(), v.to_string());
            }
        }
        r
    }
}

/// (`http://host:port`, `/path?query`), the fragment dropped as browsers do.
fn split_url(url: &str) -> (String, String) {
    let url = url.split('#').next().unwrap();
    let rest = url.strip_prefix("http://").expect("an http URL");
    let i = rest.find('/').unwrap_or(rest.len());
    (format!("http://{}", &rest[..i]), rest[i..].to_string())
}

/// The browser flow up to the platform's page: `start`, then the page with
/// the chosen person (`sim_userid=` or `sim_outsider=1`). Returns the
/// callback URL the platform sent the browser back to.
fn to_platform_and_back(
    s: &Server,
    b: &mut Browser,
    login: &str,
    start_query: &str,
    who: &str,
    secrets: &Secrets,
) -> String {
    let start = b.get(&format!("{}/auth/{login}/start?{start_query}", s.base));
    assert_eq!(start.status, 302, "start: {}", start.body);
    let browser_cookie = start.cookie("jit_login_browser").expect("a browser cookie");
    assert!(browser_cookie.contains("HttpOnly") && browser_cookie.contains("SameSite=Lax"));
    for v in b.jar.values() {
        secrets.add(v);
    }
    let to_platform = start.location();
    secrets.add(&query_param(&to_platform, "state").expect("a state"));
    let page = b.get(&format!("{to_platform}&{who}").replace("#wechat_redirect&", "&"));
    assert_eq!(page.status, 302, "the platform page: {}", page.body);
    let back = page.location();
    for p in ["code", "authCode"] {
        if let Some(c) = query_param(&back, p) {
            secrets.add(&c);
        }
    }
    back
}

/// The local user id the org's sync bound to a member.
fn local_user(s: &Server, org: &str, member: &str) -> i64 {
    let data = s.call(org, "getLocalCorpData", json!({"includeOffline": true}));
    assert_eq!(data.status, 200, "{}", data.body);
    data.json()["result"]["userList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["memberId"] == member)
        .unwrap_or_else(|| panic!("{member} is not in {org}"))["userId"]
        .as_i64()
        .unwrap()
}

fn active_wecom_members(sim: &Sim) -> Vec<String> {
    let mut ids: Vec<String> = sim
        .handle
        .wecom_truth()
        .members
        .values()
        .filter(|m| m.status == MemberStatus::Active)
        .map(|m| m.member_id.clone())
        .collect();
    ids.sort();
    ids
}

fn mutate(sim: &Sim, org: OrgRef, m: Value) {
    let m: Mutation = serde_json::from_value(m).unwrap();
    sim.handle.mutate(org, m).unwrap();
}

fn code(sim: &Sim, org: OrgRef, userid: &str, secrets: &Secrets) -> String {
    secrets.add(&sim.handle.issue_login_code(org, userid).unwrap())
}

// ------------------------------------------------------------------ tests

#[test]
fn wecom_browser_flow_sets_a_session_cookie_for_the_synced_user() {
    let sim = start_sim(300);
    let secrets = Secrets::default();
    let app = login_app(&sim, &secrets);
    let db = app.sub("org.db");
    let s = Server::start(app.path(), &db, "info");
    s.wait_for_syncs(&["corps.Acme"]);
    let member = active_wecom_members(&sim)[0].clone();

    let mut b = Browser::default();
    let back = to_platform_and_back(
        &s,
        &mut b,
        "auths.AcmeLogin",
        "redirect=/home%3Ftab%3D2",
        &format!("sim_userid={member}"),
        &secrets,
    );
    assert!(
        back.starts_with(&format!("{}/auth/auths.AcmeLogin/callback?code=", s.base)),
        "{back}"
    );
    let done = b.get(&back);
    assert_eq!(done.status, 302, "callback: {}", done.body);
    assert_eq!(done.location(), "/home?tab=2");
    let cookie = done
        .cookie("jit_session")
        .expect("a session cookie")
        .clone();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/")
    );
    assert!(!cookie.contains("Secure"), "plain http: no Secure flag");
    let token = b.jar["jit_session"].clone();
    secrets.add(&token);
    assert!(
        !b.jar.contains_key("jit_login_browser"),
        "the flow's cookie is cleared"
    );

    let me = http(
        &s.base,
        "GET",
        "/api/v1/me",
        None,
        &[("cookie", &b.cookie_header())],
    );
    assert_eq!(me.status, 200, "{}", me.body);
    let me = me.json();
    assert_eq!(me["memberId"], json!(member));
    assert_eq!(me["corp"], "corps.Acme");
    assert_eq!(me["userId"], json!(local_user(&s, "corps.Acme", &member)));

    // The same state cannot be used twice, nor by another browser.
    let replay = b.get(&back);
    assert_eq!(
        (replay.status, replay.code()),
        (400, "state_invalid".into())
    );
    let mut other = Browser::default();
    let back2 = to_platform_and_back(
        &s,
        &mut b,
        "auths.AcmeLogin",
        "redirect=/",
        &format!("sim_userid={member}"),
        &secrets,
    );
    let stolen = other.get(&back2);
    assert_eq!(
        (stolen.status, stolen.code()),
        (400, "state_invalid".into())
    );
    secrets.assert_absent("a refusal", &stolen.body);

    // The QR-code page is the other way in; behind a TLS proxy the cookie is Secure.
    let qr = http(
        &s.base,
        "GET",
        "/auth/auths.AcmeLogin/start?mode=qr&redirect=https://portal.example.com/x",
        None,
        &[("x-forwarded-proto", "https")],
    );
    assert_eq!(qr.status, 302, "{}", qr.body);
    let loc = qr.location();
    assert!(
        loc.starts_with(&format!(
            "{}/wwlogin/sso/login?login_type=CorpApp&appid=",
            sim.handle.base_url()
        )),
        "{loc}"
    );
    assert!(
        loc.contains("redirect_uri=https%3A%2F%2F127.0.0.1"),
        "{loc}"
    );
    assert!(qr.cookie("jit_login_browser").unwrap().contains("Secure"));

    // No open redirect: only paths of this host and the configured origins.
    for bad in [
        "https://evil.example.com/",
        "//evil.example.com",
        "/%5Cevil.example.com",
        "javascript:alert(1)",
    ] {
        let r = http(
            &s.base,
            "GET",
            &format!("/auth/auths.AcmeLogin/start?redirect={bad}"),
            None,
            &[],
        );
        assert_eq!(
            (r.status, r.code()),
            (400, "redirect_not_allowed".into()),
            "{bad}"
        );
    }
    // The routes are in the OpenAPI document, as needing no API token.
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let doc = s
        .request(
            "GET",
            "/api/v1/openapi.json",
            None,
            &[("authorization", &auth)],
        )
        .json();
    for path in [
        "/auth/{fullName}/start",
        "/auth/{fullName}/callback",
        "/api/v1/auth/{fullName}/login",
        "/api/v1/me",
        "/api/v1/auth/logout",
    ] {
        let op = doc["paths"][path]
            .as_object()
            .unwrap_or_else(|| panic!("{path} is not documented"));
        let op = op.values().next().unwrap();
        assert_eq!(op["security"], json!([{}]), "{path}: {op}");
    }
    let r = http(&s.base, "GET", "/auth/auths.Nope/start", None, &[]);
    assert_eq!((r.status, r.code()), (404, "login_not_found".into()));
    s.stop_and_scan(&secrets);
}

#[test]
fn api_logins_refuse_with_a_code_that_says_why_and_never_issue_a_session() {
    let sim = start_sim(2);
    let secrets = Secrets::default();
    let app = login_app(&sim, &secrets);
    let db = app.sub("org.db");
    let s = Server::start(app.path(), &db, "info");
    s.wait_for_syncs(&["corps.Acme"]);
    let members = active_wecom_members(&sim);
    let (alice, bob, carol) = (&members[0], &members[1], &members[2]);
    let refused = |r: &Resp, status: u16, code: &str| {
        assert_eq!(
            (r.status, r.code()),
            (status, code.to_string()),
            "{}",
            r.body
        );
        assert!(r.json().get("token").is_none());
        secrets.assert_absent("a refusal", &r.body);
    };

    // A good code: a bearer session for the synced local user.
    let c = code(&sim, OrgRef::Wecom, alice, &secrets);
    let ok = s.api_login("auths.AcmeLogin", &c, None);
    assert_eq!(ok.status, 200, "{}", ok.body);
    let ok = ok.json();
    let token = secrets.add(ok["token"].as_str().unwrap());
    assert_eq!(ok["tokenType"], "Bearer");
    assert_eq!(ok["memberId"], json!(alice));
    assert_eq!(ok["userId"], json!(local_user(&s, "corps.Acme", alice)));
    assert_eq!(s.me(&token).json()["memberId"], json!(alice));

    // The same code again: already used (the platform would only say "invalid").
    refused(&s.api_login("auths.AcmeLogin", &c, None), 400, "code_used");
    // A code the platform never issued, and one that expired (2 s here, 5 min for real).
    refused(
        &s.api_login("auths.AcmeLogin", "never-issued-code", None),
        400,
        "invalid_code",
    );
    let late = code(&sim, OrgRef::Wecom, bob, &secrets);
    std::thread::sleep(Duration::from_millis(2_300));
    refused(
        &s.api_login("auths.AcmeLogin", &late, None),
        400,
        "invalid_code",
    );
    // Someone who is not a member: WeCom answers an openid.
    let outsider = code(&sim, OrgRef::Wecom, "", &secrets);
    refused(
        &s.api_login("auths.AcmeLogin", &outsider, None),
        403,
        "not_a_member",
    );
    // A member the platform has and the store does not yet: sync first.
    mutate(
        &sim,
        OrgRef::Wecom,
        json!({"op": "addMember", "userid": "newcomer", "name": "New", "depts": [{"deptId": 1}]}),
    );
    let r = s.api_login(
        "auths.AcmeLogin",
        &code(&sim, OrgRef::Wecom, "newcomer", &secrets),
        None,
    );
    refused(&r, 409, "not_synced");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sync"),
        "{}",
        r.body
    );
    // Offlined locally: refused, and alice's session with it, at once.
    assert_eq!(
        s.call(
            "corps.Acme",
            "offlineMember",
            json!({"memberIdList": [alice]})
        )
        .status,
        200
    );
    refused(
        &s.api_login(
            "auths.AcmeLogin",
            &code(&sim, OrgRef::Wecom, alice, &secrets),
            None,
        ),
        403,
        "member_offline",
    );
    refused(&s.me(&token), 403, "member_offline");
    // Disabled upstream and synced: refused.
    mutate(
        &sim,
        OrgRef::Wecom,
        json!({"op": "updateMember", "userid": carol, "status": "disabled"}),
    );
    let sync = s.call("corps.Acme", "syncCorp", json!({}));
    assert_eq!(sync.status, 200, "{}", sync.body);
    refused(
        &s.api_login(
            "auths.AcmeLogin",
            &code(&sim, OrgRef::Wecom, carol, &secrets),
            None,
        ),
        403,
        "member_disabled",
    );
    // The platform cannot be reached.
    refused(
        &s.api_login("auths.DownLogin", "some-code-123456", None),
        503,
        "platform_unreachable",
    );
    // Not JSON, unknown login element.
    let r = s.request(
        "POST",
        "/api/v1/auth/auths.AcmeLogin/login",
        Some(&json!([1])),
        &[],
    );
    refused(&r, 400, "invalid_body");
    refused(
        &s.api_login("auths.Nope", "x", None),
        404,
        "login_not_found",
    );
    s.stop_and_scan(&secrets);
}

#[test]
fn a_person_in_two_dingtalk_orgs_is_one_user_through_either_login_until_offlined_in_one() {
    let sim = start_sim(300);
    // One person in both orgs (one unionId), added before the first sync.
    for (org, userid) in [
        (OrgRef::Dingtalk(0), "twinA"),
        (OrgRef::Dingtalk(1), "twinB"),
    ] {
        mutate(
            &sim,
            org,
            json!({"op": "addMember", "userid": userid, "name": "Twin",
                                 "depts": [{"deptId": 1}], "unionId": "unionTwin0001"}),
        );
    }
    let secrets = Secrets::default();
    let app = login_app(&sim, &secrets);
    let db = app.sub("org.db");
    let s = Server::start(app.path(), &db, "info");
    s.wait_for_syncs(&["corps.DingA", "corps.DingB"]);
    let user = local_user(&s, "corps.DingA", "twinA");
    assert_eq!(
        local_user(&s, "corps.DingB", "twinB"),
        user,
        "one person, one local user"
    );

    // Through A: the in-app free-login code.
    let a = s.api_login(
        "auths.DingALogin",
        &code(&sim, OrgRef::Dingtalk(0), "twinA", &secrets),
        None,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let a_token = secrets.add(a.json()["token"].as_str().unwrap());
    assert_eq!(
        (a.json()["userId"].as_i64(), a.json()["corp"].clone()),
        (Some(user), json!("corps.DingA"))
    );

    // Through B: the browser and DingTalk's OAuth2 page (authCode → user token → unionId → userid).
    let mut b = Browser::default();
    let back = to_platform_and_back(
        &s,
        &mut b,
        "auths.DingBLogin",
        "redirect=/",
        "sim_userid=twinB",
        &secrets,
    );
    assert!(back.contains("authCode="), "{back}");
    let done = b.get(&back);
    assert_eq!(done.status, 302, "{}", done.body);
    secrets.add(&b.jar["jit_session"]);
    let me = http(
        &s.base,
        "GET",
        "/api/v1/me",
        None,
        &[("cookie", &b.cookie_header())],
    )
    .json();
    assert_eq!(
        (me["userId"].as_i64(), me["memberId"].clone()),
        (Some(user), json!("twinB"))
    );

    // Offlined in A: not through A (and A's session ends), still through B.
    assert_eq!(
        s.call(
            "corps.DingA",
            "offlineMember",
            json!({"memberIdList": ["twinA"]})
        )
        .status,
        200
    );
    let r = s.api_login(
        "auths.DingALogin",
        &code(&sim, OrgRef::Dingtalk(0), "twinA", &secrets),
        None,
    );
    assert_eq!(
        (r.status, r.code()),
        (403, "member_offline".into()),
        "{}",
        r.body
    );
    assert_eq!(s.me(&a_token).code(), "member_offline");
    let again = s.api_login(
        "auths.DingBLogin",
        &code(&sim, OrgRef::Dingtalk(1), "twinB", &secrets),
        None,
    );
    assert_eq!(again.status, 200, "{}", again.body);
    secrets.add(again.json()["token"].as_str().unwrap());
    assert_eq!(again.json()["userId"].as_i64(), Some(user));

    // A login element of A that accepts B's members lets them in through B.
    let any = s.api_login(
        "auths.DingAnyLogin",
        &code(&sim, OrgRef::Dingtalk(0), "twinA", &secrets),
        None,
    );
    assert_eq!(any.status, 200, "{}", any.body);
    secrets.add(any.json()["token"].as_str().unwrap());
    assert_eq!(
        (any.json()["corp"].clone(), any.json()["memberId"].clone()),
        (json!("corps.DingB"), json!("twinB"))
    );

    // A DingTalk person of neither org, through the OAuth2 page: not a member.
    let back = to_platform_and_back(
        &s,
        &mut b,
        "auths.DingALogin",
        "redirect=/",
        "sim_outsider=1",
        &secrets,
    );
    let r = b.get(&back);
    assert_eq!(
        (r.status, r.code()),
        (403, "not_a_member".into()),
        "{}",
        r.body
    );
    assert!(r.cookie("jit_session").is_none(), "no partial session");
    s.stop_and_scan(&secrets);
}

#[test]
fn sessions_survive_key_rotation_and_logout_ends_them_on_every_replica() {
    let sim = start_sim(300);
    let secrets = Secrets::default();
    let app = login_app(&sim, &secrets);
    let db = app.sub("org.db");
    replicas_share_sessions(&sim, &app, db.to_str().unwrap(), &secrets);
}

#[test]
fn replicas_on_one_postgresql_share_keys_sessions_and_logouts() {
    let sim = start_sim(300);
    let secrets = Secrets::default();
    let app = login_app(&sim, &secrets);
    let db = PgDatabase::create("login");
    replicas_share_sessions(&sim, &app, &db.url(), &secrets);
}

/// Two `jit serve` on one store: a key generated once, rotation, logout.
fn replicas_share_sessions(sim: &Sim, app: &Fixture, db: &str, secrets: &Secrets) {
    let one = Server::start_on(app.path(), db, "info");
    one.wait_for_syncs(&["corps.Acme"]);
    let two = Server::start_on(app.path(), db, "info");
    let store = two.ready["store"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        store.starts_with("postgres"),
        db.starts_with("postgres"),
        "{store}"
    );
    let member = active_wecom_members(sim)[0].clone();
    let login = |s: &Server, element: &str| -> String {
        let r = s.api_login(element, &code(sim, OrgRef::Wecom, &member, secrets), None);
        assert_eq!(r.status, 200, "{}", r.body);
        secrets.add(r.json()["token"].as_str().unwrap())
    };

    // A key generated once and stored: a session from one replica is good on the other.
    let first = login(&one, "auths.AcmeLogin");
    assert!(first.starts_with("jit1.s1."), "{first}");
    assert_eq!(two.me(&first).status, 200);

    // Rotation: new sessions use the new key, the old one still verifies, everywhere.
    let rotated = two.call("auths.AcmeLogin", "rotateSessionKey", json!({}));
    assert_eq!(rotated.json()["result"]["keyId"], "s2", "{}", rotated.body);
    let second = login(&two, "auths.AcmeLogin");
    assert!(second.starts_with("jit1.s2."), "{second}");
    assert_eq!(
        one.me(&second).status,
        200,
        "the other replica reads the new key"
    );
    assert_eq!(one.me(&first).status, 200, "rotation logs nobody out");

    // An altered token, or a signature from another key, is not a session.
    let (head, _) = first.rsplit_once('.').unwrap();
    assert_eq!(
        one.me(&format!(
            "{head}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        ))
        .code(),
        "session_invalid"
    );
    assert_eq!(one.me("not-a-token").code(), "session_invalid");
    assert_eq!(
        http(&one.base, "GET", "/api/v1/me", None, &[]).code(),
        "unauthenticated"
    );

    // A key from the environment ({{JIT_SESSION_SECRET}}).
    let keyed = login(&one, "auths.AcmeKeyed");
    assert!(keyed.starts_with("jit1.c"), "{keyed}");
    assert_eq!(two.me(&keyed).json()["login"], "auths.AcmeKeyed");

    // Logout on one replica ends the session on both.
    let auth = format!("Bearer {first}");
    let out = one.request(
        "POST",
        "/api/v1/auth/logout",
        None,
        &[("authorization", &auth)],
    );
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(out.cookie("jit_session").unwrap().contains("Max-Age=0"));
    for s in [&one, &two] {
        let r = s.me(&first);
        assert_eq!((r.status, r.code()), (401, "session_revoked".into()));
    }
    assert_eq!(two.me(&second).status, 200, "other sessions go on");
    one.stop_and_scan(secrets);
    two.stop_and_scan(secrets);
}

#[test]
fn no_code_token_key_or_secret_reaches_a_log_line_or_an_error() {
    // Every flow and refusal once more, logged at trace level.
    let sim = start_sim(300);
    let secrets = Secrets::default();
    let app = login_app(&sim, &secrets);
    let db = app.sub("org.db");
    let s = Server::start(app.path(), &db, "trace");
    s.wait_for_syncs(&["corps.Acme", "corps.DingA", "corps.DingB"]);
    let member = active_wecom_members(&sim)[0].clone();
    let mut b = Browser::default();
    let back = to_platform_and_back(
        &s,
        &mut b,
        "auths.AcmeLogin",
        "redirect=/",
        &format!("sim_userid={member}"),
        &secrets,
    );
    assert_eq!(b.get(&back).status, 302);
    secrets.add(&b.jar["jit_session"]);
    let mut scan = Vec::new();
    let c = code(&sim, OrgRef::Wecom, &member, &secrets);
    for r in [
        s.api_login("auths.AcmeLogin", &c, None),
        s.api_login("auths.AcmeLogin", &c, None),
        s.api_login("auths.AcmeLogin", "wrong-code-0123456789", None),
        s.api_login(
            "auths.AcmeKeyed",
            &code(&sim, OrgRef::Wecom, "", &secrets),
            None,
        ),
        s.api_login("auths.DownLogin", "down-code-0123456789", None),
        s.api_login("auths.DingALogin", "wrong-ding-code-0123", Some("oauth")),
        b.get(&back),
    ] {
        if let Some(t) = r.json().get("token").and_then(Value::as_str) {
            secrets.add(t);
        } else {
            scan.push(r.body.clone());
        }
    }
    let keyed = s.api_login(
        "auths.AcmeKeyed",
        &code(&sim, OrgRef::Wecom, &member, &secrets),
        None,
    );
    let token = secrets.add(keyed.json()["token"].as_str().unwrap());
    let auth = format!("Bearer {token}");
    s.request(
        "POST",
        "/api/v1/auth/logout",
        None,
        &[("authorization", &auth)],
    );
    scan.push(s.me(&token).body);
    // The element API (jit show) masks the configured key.
    let shown = s.request(
        "GET",
        "/api/v1/elements/auths.AcmeKeyed",
        None,
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
    );
    assert_eq!(shown.status, 200, "{}", shown.body);
    scan.push(shown.body);
    for body in &scan {
        secrets.assert_absent("an answer", body);
    }
    let logs = s.stop_and_scan(&secrets);
    // The scan read real log lines: the logins, refusals and requests are there.
    for line in [
        "refusal=\"code_used\"",
        "refusal=\"invalid_code\"",
        "refusal=\"not_a_member\"",
        "refusal=\"platform_unreachable\"",
        "/auth/auths.AcmeLogin/callback",
        "TRACE",
    ] {
        assert!(logs.contains(line), "no {line} in the logs:\n{logs}");
    }
}
