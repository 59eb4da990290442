//! `jit serve` as an operator runs it: the real binary on a free port, an
//! app in a temp folder whose orgs point at the WeCom / DingTalk simulator
//! running in this test process, and plain HTTP/1.1 requests.

use crate::support;

use jit_org::MemberStatus;
use jit_sim::{Mutation, OrgRef, SimConfig, SimHandle, Simulator};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use support::{Fixture, Resp};

// ------------------------------------------------------------------ fixtures

/// The simulator on its own runtime, serving while the test runs `jit`.
pub(crate) struct Sim {
    pub(crate) handle: SimHandle,
    pub(crate) _rt: tokio::runtime::Runtime,
}

pub(crate) fn start_sim() -> Sim {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt
        .block_on(Simulator::start(SimConfig {
            seed: 7,
            depts: 6,
            users: 30,
            dingtalk_depts: Some(4),
            dingtalk_users: Some(12),
            ..SimConfig::default()
        }))
        .expect("simulator starts");
    Sim { handle, _rt: rt }
}

/// The tokens of [`token_app`], by scope; their values reach the app only
/// through `{{NAME}}` placeholders and the environment.
const READ_TOKEN: &str = "read-token-5a1f93";
const CALL_TOKEN: &str = "call-token-77e02c";
const ADMIN_TOKEN: &str = "admin-token-c3d8e1";

/// An app with `corps.Acme` (WeCom) pointing at the simulator.
fn org_app(sim: &Sim) -> Fixture {
    let info = sim.handle.info();
    let f = Fixture::new();
    f.json("app.json", json!({"appId": "t.serve", "title": "Serve"}));
    f.json(
        "corps/Acme/e.json",
        json!({"title": "Acme", "type": "corps.QywxInnerType"}),
    );
    f.json(
        "corps/Acme/Acme.json",
        json!({"corpId": info.wecom.corp_id, "agentId": info.wecom.agent_id.to_string(),
               "secret": info.wecom.secret, "apiBase": info.wecom.api_base_url}),
    );
    f
}

/// [`org_app`] with one token per scope.
fn token_app(sim: &Sim) -> Fixture {
    let f = org_app(sim);
    f.json(
        "app.json",
        json!({"appId": "t.serve", "title": "Serve", "settings": {"apiTokens": [
            {"name": "dashboard", "token": "{{T_READ}}", "scope": "read"},
            {"name": "worker", "token": "{{T_CALL}}", "scope": "call"},
            {"name": "ops", "token": "{{T_ADMIN}}", "scope": "admin"}
        ]}}),
    );
    f
}

const TOKEN_ENV: &[(&str, &str)] = &[
    ("T_READ", READ_TOKEN),
    ("T_CALL", CALL_TOKEN),
    ("T_ADMIN", ADMIN_TOKEN),
];

// ------------------------------------------------------------------ the server

/// A running `jit serve`.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) ready: Value,
    pub(crate) base: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// The threads reading stdout and stderr; they end when the process does.
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

fn jit_serve(app: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jit"));
    cmd.arg("serve")
        .arg(app)
        .args(args)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs a `jit serve` that is expected to refuse to start; a start that
/// does not end within seconds fails the test instead of hanging it.
trait Exits {
    fn exits(&mut self) -> std::process::Output;
}

impl Exits for Command {
    fn exits(&mut self) -> std::process::Output {
        let mut child = self.spawn().expect("start jit serve");
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("jit serve did not exit: it should have refused to start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }
}

impl Server {
    fn start(app: &Path) -> Server {
        Server::start_with(app, &[], &[])
    }

    /// Starts `jit serve APP --listen 127.0.0.1:0 ARGS` and waits for its
    /// ready line.
    pub(crate) fn start_with(app: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut all = args.to_vec();
        if !args.contains(&"--listen") {
            all.extend(["--listen", "127.0.0.1:0"]);
        }
        let mut child = jit_serve(app, &all, env).spawn().expect("start jit serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let err_reader = drain(child.stderr.take().unwrap(), stderr.clone());
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            let _ = child.kill();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "no ready line ({e}): {line:?}\nstderr:\n{}",
                stderr.lock().unwrap()
            )
        });
        let stdout = Arc::new(Mutex::new(line.clone()));
        let out_reader = drain(out, stdout.clone());
        let base = ready["listen"].as_str().unwrap().to_string();
        Server {
            child,
            ready,
            base,
            stdout,
            stderr,
            readers: vec![err_reader, out_reader],
        }
    }

    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> Resp {
        http(&self.base, method, path, body, token)
    }

    pub(crate) fn get(&self, path: &str) -> Resp {
        self.request("GET", path, None, None)
    }

    pub(crate) fn post(&self, path: &str, body: &str) -> Resp {
        self.request("POST", path, Some(body), None)
    }

    /// Waits until the org's newest run has ended; returns it.
    pub(crate) fn wait_for_run(&self, org: &str, token: Option<&str>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.request("GET", &format!("/api/v1/corps/{org}/runs"), None, token);
            let run = r.json()["runs"][0].clone();
            if !run.is_null() && run["outcome"] != "running" {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "no finished run of {org}: {}",
                r.body
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the exit; returns it with all output.
    pub(crate) fn stop(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success());
        let status = self.child.wait().unwrap();
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        let out = format!(
            "{}{}",
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        );
        (status, out)
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) for a log line that `matches`; returns it.
    fn wait_for_log(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self.stderr().lines().find(|l| matches(l)) {
                return l.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no log line {what}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request with an optional bearer token.
fn http(base: &str, method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    support::http(base, method, path, body.unwrap_or(""), &headers)
}

/// The events of an SSE body: (event name, data).
fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for l in block.lines() {
                if let Some(v) = l
                    .strip_prefix("event: ")
                    .or_else(|| l.strip_prefix("event:"))
                {
                    name = Some(v.trim().to_string());
                }
                if let Some(v) = l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")) {
                    data = serde_json::from_str(v.trim()).ok();
                }
            }
            Some((name?, data.unwrap_or(Value::Null)))
        })
        .collect()
}

fn assert_no_secret(sim: &Sim, out: &str) {
    let info = sim.handle.info();
    for s in [
        info.wecom.secret.as_str(),
        info.dingtalk[0].app_secret.as_str(),
        READ_TOKEN,
        CALL_TOKEN,
        ADMIN_TOKEN,
    ] {
        assert!(!out.contains(s), "a secret was printed:\n{out}");
    }
}

fn present_members(sim: &Sim) -> Vec<String> {
    sim.handle
        .wecom_truth()
        .members
        .values()
        .filter(|m| m.status != MemberStatus::Offline)
        .map(|m| m.member_id.clone())
        .collect()
}

// ------------------------------------------------------------------ start, stop, probes

#[test]
fn the_ready_line_names_the_url_app_and_orgs_and_the_probes_answer() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    assert!(s.base.starts_with("http://127.0.0.1:"), "{}", s.ready);
    assert_eq!(s.ready["app"], "t.serve");
    assert_eq!(s.ready["orgs"], json!(["corps.Acme"]));
    assert_eq!(s.get("/healthz").json(), json!({"status": "ok"}));
    let ready = s.get("/readyz");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ready");
}

#[test]
fn sigterm_stops_it_with_exit_0_and_no_secret_in_its_output() {
    let sim = start_sim();
    let f = token_app(&sim);
    // Every level, so nothing logged at debug or trace leaks either.
    let mut env = TOKEN_ENV.to_vec();
    env.push(("RUST_LOG", "trace"));
    let s = Server::start_with(f.path(), &[], &env);
    s.wait_for_run("corps.Acme", Some(READ_TOKEN));
    for token in [READ_TOKEN, CALL_TOKEN, ADMIN_TOKEN, "wrong"] {
        s.request("GET", "/api/v1/elements/corps.Acme", None, Some(token));
    }
    assert_eq!(
        s.request("GET", "/api/v1/elements/corps.Acme", None, Some(READ_TOKEN))
            .status,
        200
    );
    let (status, out) = s.stop();
    assert!(status.success(), "{status:?}\n{out}");
    assert!(out.contains("stopped"), "{out}");
    assert_no_secret(&sim, &out);
}

#[test]
fn sigterm_lets_a_running_sync_finish_before_exiting() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    s.wait_for_run("corps.Acme", None);
    sim.handle.set_latency_ms(150);
    let started = s.post("/api/v1/corps/corps.Acme/sync", "{}");
    assert_eq!(started.status, 202, "{}", started.body);
    let id = started.json()["runId"].as_i64().unwrap();
    let (status, out) = s.stop();
    assert!(status.success(), "{out}");
    let finished = out
        .lines()
        .find(|l| l.contains("sync run finished") && l.contains(&format!("run_id={id}")));
    assert!(
        finished.is_some(),
        "the sync finished before the exit:\n{out}"
    );
}

#[test]
fn a_plain_request_id_from_a_proxy_is_kept_and_anything_else_replaced() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    let host = s.base.trim_start_matches("http://").to_string();
    let ask = |id: &str| {
        let mut conn = TcpStream::connect(&host).unwrap();
        write!(
            conn,
            "GET /healthz HTTP/1.1\r\nhost: x\r\nx-request-id: {id}\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .unwrap()
            .to_string()
    };
    assert_eq!(ask("edge-42.a_b"), "edge-42.a_b");
    let replaced = ask("two words");
    assert_ne!(replaced, "two words");
    assert_eq!(replaced.len(), 16);
}

#[test]
fn a_missing_app_folder_stops_the_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = jit_serve(&dir.path().join("nope"), &["--listen", "127.0.0.1:0"], &[]).exits();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn json_logs_carry_the_request_id_that_the_answer_returns() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start_with(f.path(), &["--log-format", "json"], &[]);
    let r = s.get("/api/v1/elements");
    let id = r.headers["x-request-id"].clone();
    assert!(!id.is_empty());
    s.wait_for_log("of the request, as JSON with its id", |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| {
            v["fields"]["message"] == "request" && v["span"]["request_id"] == id.as_str()
        })
    });
}

// ------------------------------------------------------------------ authentication

#[test]
fn without_tokens_loopback_requests_need_none_and_the_start_says_so() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    assert_eq!(s.ready["auth"], "none");
    assert_eq!(s.get("/api/v1/elements").status, 200);
    s.wait_for_log("saying loopback only", |l| l.contains("loopback only"));
}

#[test]
fn without_tokens_a_public_listen_address_is_refused() {
    let sim = start_sim();
    let f = org_app(&sim);
    let out = jit_serve(f.path(), &["--listen", "0.0.0.0:0"], &[]).exits();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("settings.apiTokens") && err.contains("loopback"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no ready line");
}

#[test]
fn with_tokens_a_public_listen_address_is_allowed() {
    let sim = start_sim();
    let f = token_app(&sim);
    let s = Server::start_with(f.path(), &["--listen", "0.0.0.0:0"], TOKEN_ENV);
    assert_eq!(s.ready["auth"], "bearer");
    let port = s.base.rsplit(':').next().unwrap().to_string();
    let r = http(
        &format!("http://127.0.0.1:{port}"),
        "GET",
        "/healthz",
        None,
        None,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn a_missing_or_unknown_token_is_401_without_naming_any_token() {
    let sim = start_sim();
    let f = token_app(&sim);
    let s = Server::start_with(f.path(), &[], TOKEN_ENV);
    for token in [
        None,
        Some("guess"),
        Some(&READ_TOKEN[..READ_TOKEN.len() - 1]),
    ] {
        let r = s.request("GET", "/api/v1/elements", None, token);
        assert_eq!(r.status, 401, "{token:?}");
        assert_eq!(r.code(), "unauthenticated");
        assert_eq!(r.headers["www-authenticate"], "Bearer");
        for name in ["dashboard", "worker", "ops"] {
            assert!(!r.body.contains(name), "{}", r.body);
        }
    }
    assert_eq!(s.get("/healthz").status, 200, "probes need no token");
}

#[test]
fn a_read_token_cannot_call_and_a_call_token_cannot_sync() {
    let sim = start_sim();
    let f = token_app(&sim);
    let s = Server::start_with(f.path(), &[], TOKEN_ENV);
    let get_info = "/api/v1/elements/corps.Acme/call/getCorpInfo";
    let r = s.request("POST", get_info, Some("{}"), Some(READ_TOKEN));
    assert_eq!((r.status, r.code()), (403, "forbidden".to_string()));
    assert!(r.body.contains("`call` scope"), "{}", r.body);
    assert_eq!(
        s.request("POST", get_info, Some("{}"), Some(CALL_TOKEN))
            .status,
        200
    );
    for (path, body) in [
        ("/api/v1/corps/corps.Acme/sync", "{}"),
        ("/api/v1/elements/corps.Acme/call/syncCorp", "{}"),
    ] {
        let r = s.request("POST", path, Some(body), Some(CALL_TOKEN));
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }
    s.wait_for_run("corps.Acme", Some(READ_TOKEN));
    let r = s.request(
        "POST",
        "/api/v1/corps/corps.Acme/sync",
        Some("{}"),
        Some(ADMIN_TOKEN),
    );
    assert_eq!(r.status, 202, "{}", r.body);
}

#[test]
fn an_unset_token_placeholder_stops_the_start_naming_the_variable() {
    let sim = start_sim();
    let f = token_app(&sim);
    let out = jit_serve(f.path(), &["--listen", "127.0.0.1:0"], &TOKEN_ENV[..2]).exits();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("T_ADMIN") && err.contains("(ops)"), "{err}");
}

// ------------------------------------------------------------------ elements and calls

#[test]
fn elements_are_listed_with_kind_type_and_implementation() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    let list = s.get("/api/v1/elements").json();
    let acme = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["fullName"] == "corps.Acme")
        .unwrap()
        .clone();
    assert_eq!(acme["kind"], "Instance");
    assert_eq!(acme["type"], "corps.QywxInnerType");
    assert_eq!(acme["title"], "Acme");
    assert_eq!(acme["implementation"], "corps.QywxInnerType (built-in)");
}

#[test]
fn an_element_shows_its_chain_methods_and_config_with_secrets_masked() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    let r = s.get("/api/v1/elements/corps.Acme");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        v["element"]["chain"],
        json!(["corps.Acme", "corps.QywxInnerType", "corps.Meta"])
    );
    assert_eq!(v["config"]["secret"], "******");
    assert!(v["functions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "syncCorp"));
    assert_no_secret(&sim, &r.body);
}

#[test]
fn a_call_answers_its_result() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    let r = s.post("/api/v1/elements/corps.Acme/call/getCorpInfo", "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["result"]["fullName"], "corps.Acme");
    let prop = s.post("/api/v1/elements/corps.Acme/call/title", "{}");
    assert_eq!(prop.json()["result"], "Acme", "properties read like calls");
}

#[test]
fn a_bad_argument_is_400_naming_the_argument() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    let r = s.post(
        "/api/v1/elements/corps.Acme/call/getUserSignature",
        r#"{"memberId": 42}"#,
    );
    assert_eq!((r.status, r.code()), (400, "invalid_argument".to_string()));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("memberId"),
        "{}",
        r.body
    );
    let r = s.post("/api/v1/elements/corps.Acme/call/getUserSignature", "{");
    assert_eq!((r.status, r.code()), (400, "invalid_body".to_string()));
}

#[test]
fn unknown_elements_methods_and_routes_are_404() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    let r = s.post("/api/v1/elements/corps.Nope/call/getCorpInfo", "{}");
    assert_eq!((r.status, r.code()), (404, "element_not_found".to_string()));
    let r = s.post("/api/v1/elements/corps.Acme/call/fly", "{}");
    assert_eq!((r.status, r.code()), (404, "method_not_found".to_string()));
    let r = s.get("/api/v1/elements/corps.Nope");
    assert_eq!((r.status, r.code()), (404, "element_not_found".to_string()));
    let r = s.get("/api/v1/corps/corps.Nope/runs");
    assert_eq!((r.status, r.code()), (404, "org_not_found".to_string()));
    let r = s.get("/api/v1/nothing");
    assert_eq!((r.status, r.code()), (404, "route_not_found".to_string()));
}

#[test]
fn a_wrong_http_method_is_405_with_a_json_error() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    let r = s.post("/api/v1/elements", "{}");
    assert_eq!(
        (r.status, r.code()),
        (405, "method_not_allowed".to_string())
    );
}

#[test]
fn a_platform_failure_is_502_with_the_platform_errcode() {
    let sim = start_sim();
    let f = org_app(&sim);
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(f.sub("corps/Acme/Acme.json")).unwrap())
            .unwrap();
    cfg["secret"] = json!("not-the-right-secret-4711");
    f.json("corps/Acme/Acme.json", cfg);
    let s = Server::start(f.path());
    let r = s.post("/api/v1/elements/corps.Acme/call/getThirdCorpData", "{}");
    assert_eq!(
        (r.status, r.code()),
        (502, "upstream_error".to_string()),
        "{}",
        r.body
    );
    assert_eq!(r.json()["error"]["errcode"], "40001");
    let (_, out) = s.stop();
    assert!(!out.contains("not-the-right-secret-4711"), "{out}");
}

/// Builds an example plugin package once; returns its library, as cargo
/// reports it.
fn plugin(package: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(p) = built.get(package) {
        return p.clone();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["build", "--message-format=json", "-p", package])
        .output()
        .expect("run cargo build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = package.replace('-', "_");
    let lib = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == target.as_str())
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .map(|f| PathBuf::from(f.as_str().unwrap_or_default()))
        .find(|f| f.to_string_lossy().ends_with(std::env::consts::DLL_SUFFIX))
        .expect("cargo reports the plugin library");
    built.insert(package.to_string(), lib.clone());
    lib
}

/// Copies a built plugin into the app's `plugins/`.
fn install(f: &Fixture, package: &str) {
    let lib = plugin(package);
    std::fs::create_dir_all(f.sub("plugins")).unwrap();
    std::fs::copy(&lib, f.sub("plugins").join(lib.file_name().unwrap())).unwrap();
}

#[test]
fn a_plugin_failure_is_500() {
    let f = Fixture::new();
    f.json("app.json", json!({"appId": "t.garbage"}));
    let m = |n: &str| json!({"name": n});
    f.json("testing/Meta/e.json", json!({"title": "Testing"}));
    f.json(
        "testing/GarbageType/e.json",
        json!({"title": "Garbage", "kind": "Type", "type": "testing.Meta",
               "functionList": [m("notJson"), m("ok")]}),
    );
    f.json(
        "testing/G/e.json",
        json!({"title": "G", "type": "testing.GarbageType"}),
    );
    install(&f, "plugin-test-garbage");
    let s = Server::start(f.path());
    let r = s.post("/api/v1/elements/testing.G/call/notJson", "");
    assert_eq!(
        (r.status, r.code()),
        (500, "call_failed".to_string()),
        "{}",
        r.body
    );
    assert!(r.body.contains("invalid JSON"), "{}", r.body);
    let ok = s.post("/api/v1/elements/testing.G/call/ok", "");
    assert_eq!(
        ok.json()["result"],
        json!({"fine": true}),
        "the host keeps serving"
    );
}

// ------------------------------------------------------------------ syncs and runs

#[test]
fn a_never_synced_org_is_initialised_at_start_and_a_failing_org_does_not_stop_it() {
    let sim = start_sim();
    let f = org_app(&sim);
    // A second org whose secret is wrong: its initCorp fails.
    let info = sim.handle.info();
    f.json(
        "corps/Broken/e.json",
        json!({"title": "Broken", "type": "corps.QywxInnerType"}),
    );
    f.json(
        "corps/Broken/Broken.json",
        json!({"corpId": info.wecom.corp_id, "agentId": info.wecom.agent_id.to_string(),
               "secret": "wrong-secret-0815", "apiBase": info.wecom.api_base_url}),
    );
    let s = Server::start(f.path());
    let run = s.wait_for_run("corps.Acme", None);
    assert_eq!(run["outcome"], "applied", "{run}");
    let users = s.post("/api/v1/elements/corps.Acme/call/getLocalCorpData", "{}");
    assert_eq!(
        users.json()["result"]["userList"].as_array().unwrap().len(),
        present_members(&sim).len()
    );
    s.wait_for_log("of the broken org's failure", |l| {
        l.contains("corps.Broken") && l.contains("did not apply")
    });
    assert!(!s.stderr().contains("wrong-secret-0815"), "{}", s.stderr());
}

/// [`org_app`]'s org as an instance of `corps.AuditedQywxType`, a plugin
/// Type extending `corps.QywxInnerType` (it overrides `syncCorp`; `initCorp`
/// is the built-in one).
fn audited_app(sim: &Sim) -> Fixture {
    let f = org_app(sim);
    install(&f, "plugin-qywx-audit");
    f.json(
        "corps/AuditedQywxType/e.json",
        json!({"title": "Audited WeCom org", "kind": "Type", "type": "corps.QywxInnerType",
               "plugin": "plugin-qywx-audit"}),
    );
    f.json(
        "corps/Acme/e.json",
        json!({"title": "Acme", "type": "corps.AuditedQywxType"}),
    );
    f
}

#[test]
fn a_plugin_org_type_is_initialised_at_start_through_its_init_corp() {
    let sim = start_sim();
    let f = audited_app(&sim);
    let s = Server::start(f.path());
    assert_eq!(s.ready["orgs"], json!(["corps.Acme"]));
    let run = s.wait_for_run("corps.Acme", None);
    assert_eq!(run["outcome"], "applied", "{run}");
    s.wait_for_log("of the plugin org's initCorp", |l| {
        l.contains("auto-init: initCorp done") && l.contains("corps.Acme")
    });
    let id = run["runId"].as_i64().unwrap();
    s.wait_for_log("of the plugin org's run with its id", |l| {
        l.contains("sync run finished") && l.contains(&format!("run_id={id} "))
    });
}

#[test]
fn the_sync_route_refuses_a_plugin_org_type_and_points_at_its_sync_corp() {
    let sim = start_sim();
    let f = audited_app(&sim);
    let s = Server::start(f.path());
    let r = s.post("/api/v1/corps/corps.Acme/sync", "{}");
    assert_eq!(
        (r.status, r.code()),
        (501, "sync_unsupported".to_string()),
        "{}",
        r.body
    );
    assert!(r.body.contains("call/syncCorp"), "{}", r.body);
}

#[test]
fn a_background_sync_answers_its_run_id_and_its_events_reach_done() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    s.wait_for_run("corps.Acme", None);
    // Slow enough that the stream is joined while the run is still going.
    sim.handle.set_latency_ms(50);
    let r = s.post("/api/v1/corps/corps.Acme/sync", r#"{"dryRun": true}"#);
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["runId"].as_i64().unwrap();
    let events = s.get(&format!("/api/v1/corps/corps.Acme/runs/{id}/events"));
    assert_eq!(events.status, 200);
    assert!(events.headers["content-type"].starts_with("text/event-stream"));
    let ev = sse_events(&events.body);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"run"), "{names:?}");
    assert!(
        ev.iter()
            .any(|(n, d)| n == "phase" && d["calls"]["total"].as_u64() > Some(0)),
        "phases carry the API calls so far: {ev:?}"
    );
    let (last, done) = ev.last().unwrap();
    assert_eq!(last, "done");
    assert_eq!(done["runId"], id);
    assert_eq!(done["outcome"], "dry_run");
    s.wait_for_log("of the run with its id", |l| {
        l.contains("sync run finished") && l.contains(&format!("run_id={id} "))
    });
}

#[test]
fn a_finished_runs_events_send_done_at_once() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    let run = s.wait_for_run("corps.Acme", None);
    let id = run["runId"].as_i64().unwrap();
    let t0 = Instant::now();
    let events = sse_events(
        &s.get(&format!("/api/v1/corps/corps.Acme/runs/{id}/events"))
            .body,
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "done");
    assert_eq!(events[0].1["outcome"], "applied");
    let r = s.get("/api/v1/corps/corps.Acme/runs/999999/events");
    assert_eq!((r.status, r.code()), (404, "run_not_found".to_string()));
}

#[test]
fn a_run_another_replica_is_running_is_refused_there_and_followed_through_the_store() {
    let sim = start_sim();
    let f = org_app(&sim);
    let a = Server::start(f.path());
    a.wait_for_run("corps.Acme", None);
    let b = Server::start(f.path());
    sim.handle.set_latency_ms(100);
    let started = a.post("/api/v1/corps/corps.Acme/sync", "{}");
    assert_eq!(started.status, 202, "{}", started.body);
    let id = started.json()["runId"].as_i64().unwrap();
    let busy = b.post("/api/v1/corps/corps.Acme/sync", "{}");
    assert_eq!(
        (busy.status, busy.code()),
        (409, "sync_busy".to_string()),
        "{}",
        busy.body
    );
    let events = sse_events(
        &b.get(&format!("/api/v1/corps/corps.Acme/runs/{id}/events"))
            .body,
    );
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "done");
    assert_eq!(events[0].1["outcome"], "applied");
}

#[test]
fn a_sync_longer_than_the_grace_period_is_cut_short_and_the_exit_is_still_0() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start_with(f.path(), &["--grace", "0.2"], &[]);
    s.wait_for_run("corps.Acme", None);
    sim.handle.set_latency_ms(400);
    assert_eq!(s.post("/api/v1/corps/corps.Acme/sync", "{}").status, 202);
    let t0 = Instant::now();
    let (status, out) = s.stop();
    assert!(status.success(), "{out}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(out.contains("end of the grace period"), "{out}");
}

#[test]
fn a_sync_while_another_runs_is_409_busy() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    s.wait_for_run("corps.Acme", None);
    sim.handle.set_latency_ms(200);
    let first = s.post("/api/v1/corps/corps.Acme/sync", "{}");
    assert_eq!(first.status, 202, "{}", first.body);
    let second = s.post("/api/v1/corps/corps.Acme/sync", "{}");
    assert_eq!(
        (second.status, second.code()),
        (409, "sync_busy".to_string()),
        "{}",
        second.body
    );
    let id = first.json()["runId"].as_i64().unwrap();
    assert!(
        second.body.contains(&format!("run {id}")),
        "names the running run: {}",
        second.body
    );
    let call = s.post("/api/v1/elements/corps.Acme/call/syncCorp", "{}");
    assert_eq!(
        (call.status, call.code()),
        (409, "sync_busy".to_string()),
        "{}",
        call.body
    );
}

#[test]
fn a_sync_the_safety_checks_refuse_is_422_and_force_applies_it() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    s.wait_for_run("corps.Acme", None);
    let present = present_members(&sim);
    for id in present.iter().take(present.len() / 2) {
        sim.handle
            .mutate(OrgRef::Wecom, Mutation::RemoveMember { userid: id.clone() })
            .unwrap();
    }
    let r = s.post("/api/v1/elements/corps.Acme/call/syncCorp", "{}");
    assert_eq!(
        (r.status, r.code()),
        (422, "sync_refused".to_string()),
        "{}",
        r.body
    );
    assert!(r.body.contains("refused"), "{}", r.body);
    let refused = s.get("/api/v1/corps/corps.Acme/runs?limit=1").json();
    let refused_id = refused["runs"][0]["runId"].as_i64().unwrap();
    assert_eq!(refused["runs"][0]["outcome"], "refused");
    s.wait_for_log("of the refused run with its id", |l| {
        l.contains(&format!("recorded as run {refused_id}"))
    });
    let forced = s.post("/api/v1/corps/corps.Acme/sync", r#"{"force": true}"#);
    assert_eq!(forced.status, 202, "{}", forced.body);
    let id = forced.json()["runId"].as_i64().unwrap();
    let events = sse_events(
        &s.get(&format!("/api/v1/corps/corps.Acme/runs/{id}/events"))
            .body,
    );
    assert_eq!(events.last().unwrap().1["outcome"], "applied", "{events:?}");
}

#[test]
fn a_sync_body_that_is_not_dry_run_and_force_is_400() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    let r = s.post("/api/v1/corps/corps.Acme/sync", r#"{"dryrun": true}"#);
    assert_eq!((r.status, r.code()), (400, "invalid_body".to_string()));
    assert!(r.body.contains("dryrun"), "names the field: {}", r.body);
}

#[test]
fn runs_are_listed_newest_first_a_page_at_a_time_and_a_run_shows_its_changes() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    let first = s.wait_for_run("corps.Acme", None);
    for _ in 0..2 {
        let r = s.post(
            "/api/v1/elements/corps.Acme/call/syncCorp",
            r#"{"dryRun": true}"#,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let id = r.json()["result"]["runId"].as_i64().unwrap();
        s.wait_for_log("of a sync through the call route, with its id", |l| {
            l.contains("sync run finished") && l.contains(&format!("run_id={id} "))
        });
    }
    let page = s.get("/api/v1/corps/corps.Acme/runs?limit=2").json();
    let ids: Vec<i64> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["runId"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] > ids[1], "newest first: {ids:?}");
    let before = page["nextBefore"].as_i64().unwrap();
    let next = s
        .get(&format!(
            "/api/v1/corps/corps.Acme/runs?limit=2&before={before}"
        ))
        .json();
    assert_eq!(next["runs"][0]["runId"], first["runId"]);
    assert!(next["nextBefore"].is_null(), "{next}");

    let id = first["runId"].as_i64().unwrap();
    let run = s
        .get(&format!("/api/v1/corps/corps.Acme/runs/{id}?limit=5"))
        .json();
    assert_eq!(run["run"]["outcome"], "applied");
    assert_eq!(run["changes"].as_array().unwrap().len(), 5);
    let total = run["changesTotal"].as_u64().unwrap();
    assert!(total > 5);
    let rest = s
        .get(&format!(
            "/api/v1/corps/corps.Acme/runs/{id}?limit=1000&offset=5"
        ))
        .json();
    assert_eq!(rest["changes"].as_array().unwrap().len() as u64, total - 5);
    assert!(rest["nextOffset"].is_null());
    let bad = s.get("/api/v1/corps/corps.Acme/runs?limit=lots");
    assert_eq!(
        (bad.status, bad.code()),
        (400, "invalid_argument".to_string())
    );
    assert!(bad.body.contains("limit"));
}

// ------------------------------------------------------------------ OpenAPI and metrics

#[test]
fn the_openapi_document_is_generated_and_lists_every_route() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    let doc = s.get("/api/v1/openapi.json").json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let paths = &doc["paths"];
    for (path, method) in [
        ("/api/v1/elements", "get"),
        ("/api/v1/elements/{fullName}", "get"),
        ("/api/v1/elements/{fullName}/call/{method}", "post"),
        ("/api/v1/corps/{fullName}/runs", "get"),
        ("/api/v1/corps/{fullName}/runs/{id}", "get"),
        ("/api/v1/corps/{fullName}/runs/{id}/events", "get"),
        ("/api/v1/corps/{fullName}/sync", "post"),
        ("/api/v1/openapi.json", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} missing");
    }
    let call = &paths["/api/v1/elements/{fullName}/call/{method}"]["post"]["responses"];
    for status in ["200", "400", "404", "409", "422", "500", "502"] {
        assert!(call[status].is_object(), "call answers {status}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[test]
fn metrics_are_prometheus_text_counting_requests_calls_syncs_and_upstream_calls() {
    let sim = start_sim();
    let f = org_app(&sim);
    let s = Server::start(f.path());
    s.wait_for_run("corps.Acme", None);
    s.post("/api/v1/elements/corps.Acme/call/getCorpInfo", "");
    s.get("/api/v1/elements");
    let r = s.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"].starts_with("text/plain"));
    // Every line is a comment or `name{labels} value` with a number.
    let mut samples: HashMap<String, f64> = HashMap::new();
    for line in r
        .body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        assert!(
            series.chars().next().unwrap().is_ascii_alphabetic(),
            "{line}"
        );
        samples.insert(series.to_string(), value);
    }
    let has = |prefix: &str| {
        samples
            .iter()
            .any(|(k, v)| k.starts_with(prefix) && *v > 0.0)
    };
    assert!(has(
        "jit_http_requests_total{route=\"/api/v1/elements\",method=\"GET\",status=\"200\"}"
    ));
    assert!(has(
        "jit_call_duration_seconds_count{element=\"corps.Acme\",method=\"getCorpInfo\"}"
    ));
    assert!(has(
        "jit_sync_runs_total{org=\"corps.Acme\",outcome=\"applied\"}"
    ));
    assert!(has("jit_sync_rows_written_total{org=\"corps.Acme\"}"));
    assert!(has(
        "jit_upstream_calls_total{org=\"corps.Acme\",api=\"/cgi-bin/"
    ));
    assert!(has(
        "jit_last_successful_sync_timestamp_seconds{org=\"corps.Acme\"}"
    ));
    assert_no_secret(&sim, &r.body);
}
