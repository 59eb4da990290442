//! The hostile-input corpus: every case under `tests/hostile/<category>/<case>/`
//! is a folder with the input files (`app/`) and `expect.json`, run through
//! the real `jit` binary as a user would. Each case must end with a clear
//! error (exit code not 0, naming the file and JSON pointer, or the request),
//! no panic, no secret in the output, and an unchanged store. The categories
//! and how to add a case are in `tests/hostile/README.md`.
//!
//! Large inputs (100 MB files, deep nesting, huge pages) are generated here
//! from a recipe in `expect.json`, never committed. Platform answers are
//! served by a small proxy in this process: it forwards every request to
//! the simulator, except the one the case replaces or patches, so the real
//! WeCom and DingTalk clients and the real engine read the hostile answer
//! and sync into a real SQLite store seeded by a clean sync.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use jit_sim::{SimConfig, SimHandle, Simulator};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What a case's `expect.json` says.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Expect {
    /// One line: what is hostile about this input.
    about: String,
    /// `jit` arguments; `{app}` is the case's app folder. Default:
    /// `check {app} --format json`, or `sync <org> --app {app}` for platform cases.
    args: Option<Vec<String>>,
    /// Extra environment of the `jit` process.
    env: BTreeMap<String, String>,
    /// The exit code; default: any but 0 (and never 101, a panic).
    exit: Option<i32>,
    /// A diagnostic `jit check --format json` must report.
    diagnostic: Option<ExpectDiag>,
    /// Text that stdout + stderr must contain (the request, the cause).
    output_contains: Vec<String>,
    /// Text that must appear nowhere in stdout + stderr (secrets).
    never: Vec<String>,
    /// Files generated at run time (large inputs are never committed).
    generate: Vec<Generate>,
    /// Example plugin libraries to build and copy into the app.
    plugins: Vec<PluginCopy>,
    /// A platform answer to serve instead of the simulator's.
    platform: Option<Platform>,
    /// Start from the valid two-org app (`base/` of this runner) before
    /// copying the case's own files over it.
    base_app: bool,
    /// `created`: the command is one that opens the store (a sync), so a
    /// store may appear; default: no store may appear (or, for platform
    /// cases, the seeded one must hold exactly what it held).
    store: Option<String>,
    /// A known gap, with its reason: the case still must not panic, hang
    /// or show a secret, but its exit code, output and store are not yet
    /// what they should be. Gaps are counted and listed on every run.
    gap: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ExpectDiag {
    code: String,
    /// Path relative to the app folder.
    file: Option<String>,
    pointer: Option<String>,
    contains: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Generate {
    /// Path relative to the app folder.
    file: String,
    /// `deep-nesting`, `huge-string`, `random-bytes`.
    recipe: String,
    /// Depth or size in bytes.
    size: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginCopy {
    /// Example plugin package, e.g. `plugin-test-garbage`.
    package: String,
    /// Where in the app (`plugins/libx.so`); the platform's suffix is added
    /// when the name has none.
    to: String,
}

/// The hostile answer of one platform request.
#[derive(Deserialize, Default, Clone)]
#[serde(default, deny_unknown_fields)]
struct Platform {
    /// `wecom` (corps.Acme) or `dingtalk` (corps.Nail).
    org: String,
    /// The API path whose answer is replaced (`a|b`: either).
    path: String,
    /// Only requests whose query or body contains this.
    matching: Option<String>,
    /// HTTP status of the answer (default 200).
    status: Option<u16>,
    /// The answer, verbatim.
    body: Option<String>,
    /// The answer as bytes, in hex (not UTF-8, ...).
    body_hex: Option<String>,
    /// Changes to the simulator's own answer: JSON pointer → new value
    /// (`null` removes the member).
    patch: BTreeMap<String, Value>,
    /// `slowloris` (one byte per second), `huge` (a body of `size` bytes).
    recipe: Option<String>,
    size: usize,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corpus_dir() -> PathBuf {
    root().join("tests/hostile")
}

/// Every case folder, sorted: (category, name, folder).
fn cases() -> Vec<(String, String, PathBuf)> {
    let mut out = Vec::new();
    let mut cats: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/hostile exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "base"))
        .collect();
    cats.sort();
    for cat in cats {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&cat)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("expect.json").is_file())
            .collect();
        names.sort();
        for case in names {
            out.push((
                cat.file_name().unwrap().to_string_lossy().into_owned(),
                case.file_name().unwrap().to_string_lossy().into_owned(),
                case,
            ));
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    if !from.exists() {
        return;
    }
    for entry in walkdir(from) {
        let rel = entry.strip_prefix(from).unwrap();
        let dst = to.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &dst).unwrap();
    }
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Writes a generated input: the recipes keep 100 MB files out of git.
fn generate(app: &Path, g: &Generate) {
    let path = app.join(&g.file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes: Vec<u8> = match g.recipe.as_str() {
        "deep-nesting" => {
            let mut s = String::from(r#"{"title": "deep", "x": "#);
            s.push_str(&"[".repeat(g.size));
            s.push_str(&"]".repeat(g.size));
            s.push('}');
            s.into_bytes()
        }
        "huge-string" => {
            let mut v = br#"{"title": ""#.to_vec();
            v.resize(g.size, b'a');
            v.extend_from_slice(br#""}"#);
            v
        }
        "random-bytes" => {
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
            (0..g.size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        }
        other => panic!("unknown recipe {other}"),
    };
    std::fs::write(path, bytes).unwrap();
}

/// Builds the example plugin packages once; package → library file.
fn plugin_library(package: &str) -> PathBuf {
    static BUILT: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    const PACKAGES: [&str; 3] = [
        "plugin-test-garbage",
        "plugin-test-abi-v2",
        "plugin-test-no-entry",
    ];
    let built = BUILT.get_or_init(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(root())
            .args(["build", "--message-format=json"]);
        for p in PACKAGES {
            cmd.args(["-p", p]);
        }
        let out = cmd.output().expect("cargo build runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut libs = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let target = msg["target"]["name"].as_str().unwrap_or_default();
            if let Some(pkg) = PACKAGES.iter().find(|p| p.replace('-', "_") == target) {
                for f in msg["filenames"].as_array().into_iter().flatten() {
                    let f = f.as_str().unwrap_or_default();
                    if f.ends_with(std::env::consts::DLL_SUFFIX) {
                        libs.insert(pkg.to_string(), PathBuf::from(f));
                    }
                }
            }
        }
        libs
    });
    built
        .get(package)
        .unwrap_or_else(|| panic!("no library for {package}"))
        .clone()
}

// ---------------------------------------------------------------- platform

/// The simulator, the proxy in front of it and a store seeded by a clean
/// sync of both orgs, shared by every platform case.
struct Upstream {
    sim: SimHandle,
    proxy_base: String,
    /// The answer the proxy replaces right now (cases run one at a time).
    rule: Arc<Mutex<Option<Platform>>>,
    /// The app folder of a clean sync (`.jit/org.db` inside).
    seeded: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

struct ProxyState {
    sim_base: String,
    http: reqwest::Client,
    rule: Arc<Mutex<Option<Platform>>>,
}

fn upstream() -> &'static Upstream {
    static UP: OnceLock<Upstream> = OnceLock::new();
    UP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sim = rt
            .block_on(Simulator::start(SimConfig {
                seed: 11,
                depts: 6,
                users: 30,
                dingtalk_depts: Some(5),
                dingtalk_users: Some(20),
                // Every case syncs again; the budget is not what is tested.
                wecom_rate_per_minute: 0,
                wecom_rate_per_hour: 0,
                dingtalk_rate_per_second: 0,
                ..SimConfig::default()
            }))
            .expect("simulator starts");
        let rule = Arc::new(Mutex::new(None));
        let state = Arc::new(ProxyState {
            sim_base: sim.base_url(),
            http: reqwest::Client::new(),
            rule: rule.clone(),
        });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let proxy_base = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(proxy).with_state(state);
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        let seeded = tempfile::tempdir().unwrap();
        let up = Upstream {
            sim,
            proxy_base,
            rule,
            seeded,
            rt,
        };
        write_platform_app(&up, up.seeded.path());
        for org in ["corps.Acme", "corps.Nail"] {
            let out = run_jit(
                &[
                    "sync".into(),
                    org.into(),
                    "--app".into(),
                    path_str(up.seeded.path()),
                ],
                &BTreeMap::new(),
            );
            assert_eq!(out.code, Some(0), "seeding {org}: {}", out.all);
        }
        up
    })
}

/// The sim's base URL for the family a path belongs to, as the proxy sees it.
fn rewrite_base(up: &Upstream, url: &str) -> String {
    url.replace(&up.sim.base_url(), &up.proxy_base)
}

/// An app with `corps.Acme` (WeCom) and `corps.Nail` (DingTalk) whose API
/// bases point at the proxy; no retries and short timeouts, so a failure
/// is reported at once.
fn write_platform_app(up: &Upstream, dir: &Path) {
    let info = up.sim.info();
    let sync = json!({"retries": 0, "timeoutSecs": 3, "retryBaseMs": 1});
    let d = &info.dingtalk[0];
    let files = [
        (
            "app.json",
            json!({"appId": "t.hostile", "title": "hostile"}),
        ),
        (
            "corps/Acme/e.json",
            json!({"title": "Acme", "type": "corps.QywxInnerType"}),
        ),
        (
            "corps/Acme/Acme.json",
            json!({"corpId": info.wecom.corp_id, "agentId": info.wecom.agent_id.to_string(),
                   "secret": info.wecom.secret, "apiBase": rewrite_base(up, &info.wecom.api_base_url),
                   "sync": sync}),
        ),
        (
            "corps/Nail/e.json",
            json!({"title": "Nail", "type": "corps.DDInnerType"}),
        ),
        (
            "corps/Nail/Nail.json",
            json!({"authConfig": {"corpId": d.corp_id, "agentId": d.agent_id.to_string(),
                   "appKey": d.app_key, "appSecret": d.app_secret,
                   "apiBase": rewrite_base(up, &d.api_base_url),
                   "oapiBase": rewrite_base(up, &d.oapi_base_url)},
                   "sync": sync}),
        ),
    ];
    for (rel, v) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

async fn proxy(State(st): State<Arc<ProxyState>>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let headers: HeaderMap = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let rule = st.rule.lock().unwrap().clone();
    let matched = rule.filter(|r| {
        r.path.split('|').any(|p| p == uri.path())
            && r.matching.as_ref().is_none_or(|m| {
                uri.query().unwrap_or("").contains(m.as_str())
                    || String::from_utf8_lossy(&body).contains(m.as_str())
            })
    });
    if let Some(r) = &matched {
        let status = StatusCode::from_u16(r.status.unwrap_or(200)).unwrap();
        match r.recipe.as_deref() {
            Some("slowloris") => {
                // Headers at once, then one byte a second: never a whole answer.
                let stream = futures_stream_slow();
                return (status, Body::from_stream(stream)).into_response();
            }
            Some("huge") => {
                let mut v = br#"{"errcode":0,"errmsg":"ok","userlist":[""#.to_vec();
                v.resize(r.size, b'x');
                return (status, v).into_response();
            }
            Some(other) => panic!("unknown platform recipe {other}"),
            None => {}
        }
        if let Some(b) = &r.body {
            return (status, b.clone()).into_response();
        }
        if let Some(h) = &r.body_hex {
            return (status, hex(h)).into_response();
        }
    }
    let url = format!(
        "{}{}",
        st.sim_base,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut fwd = st.http.request(method, url).body(body);
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            fwd = fwd.header(k, v);
        }
    }
    let resp = match fwd.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status();
    let bytes: Bytes = resp.bytes().await.unwrap_or_default();
    let Some(r) = matched else {
        return (status, bytes).into_response();
    };
    let mut v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    for (pointer, value) in &r.patch {
        patch(&mut v, pointer, value.clone());
    }
    (
        StatusCode::from_u16(r.status.unwrap_or(status.as_u16())).unwrap(),
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// Sets (or, for `null`, removes) the value at `pointer`; `/-` appends.
fn patch(v: &mut Value, pointer: &str, value: Value) {
    let (parent, last) = pointer.rsplit_once('/').expect("a JSON pointer");
    let Some(target) = v.pointer_mut(parent) else {
        return;
    };
    match target {
        Value::Object(map) if value.is_null() => {
            map.shift_remove(last);
        }
        Value::Object(map) => {
            map.insert(last.to_string(), value);
        }
        Value::Array(items) if last == "-" => items.push(value),
        Value::Array(items) => {
            if let Ok(i) = last.parse::<usize>() {
                if i < items.len() {
                    items[i] = value;
                }
            }
        }
        _ => {}
    }
}

fn futures_stream_slow(
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(0u32, |n| async move {
        if n > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Some((Ok(Bytes::from_static(b" ")), n + 1))
    })
}

// ---------------------------------------------------------------- running

struct Outcome {
    code: Option<i32>,
    all: String,
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Runs `jit`, killed after a minute: a hang is a failure, not a stuck suite.
fn run_jit(args: &[String], env: &BTreeMap<String, String>) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jit"))
        .args(args)
        .envs(env)
        .env_remove("DATABASE_URL")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run jit");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        out.read_to_end(&mut s).ok();
        s
    });
    let reader_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        err.read_to_end(&mut s).ok();
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().ok();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = reader.join().unwrap();
    let stderr = reader_err.join().unwrap();
    Outcome {
        code: status.code(),
        all: format!(
            "{}\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// Both orgs as the store holds them, for "unchanged".
fn snapshots(app: &Path) -> Vec<jit_org::CorpSnapshot> {
    let up = upstream();
    let db = app.join(".jit/org.db");
    up.rt.block_on(async {
        let store = jit_store::open(&path_str(&db)).await.expect("store opens");
        let mut out = Vec::new();
        for org in ["corps.Acme", "corps.Nail"] {
            out.push(store.load_snapshot(org).await.expect("snapshot"));
        }
        out
    })
}

/// Runs one case.
fn run_case(case: &Path) -> CaseResult {
    let mut problems = Vec::new();
    let expect: Expect = match std::fs::read_to_string(case.join("expect.json"))
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(e) => e,
        Err(e) => {
            return CaseResult {
                problems: vec![format!("expect.json: {e}")],
                gap: None,
            }
        }
    };
    if expect.about.is_empty() {
        problems.push("expect.json has no `about`".into());
    }
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let mut never = expect.never.clone();
    let mut args = expect.args.clone().unwrap_or_else(|| {
        vec![
            "check".into(),
            "{app}".into(),
            "--format".into(),
            "json".into(),
        ]
    });
    if let Some(p) = &expect.platform {
        let up = upstream();
        copy_tree(up.seeded.path(), &app);
        let info = up.sim.info();
        never.push(info.wecom.secret.clone());
        never.push(info.dingtalk[0].app_secret.clone());
        if expect.args.is_none() {
            let org = if p.org == "wecom" {
                "corps.Acme"
            } else {
                "corps.Nail"
            };
            args = vec!["sync".into(), org.into(), "--app".into(), "{app}".into()];
        }
    } else if expect.base_app {
        copy_tree(&corpus_dir().join("base/app"), &app);
    }
    copy_tree(&case.join("app"), &app);
    for g in &expect.generate {
        generate(&app, g);
    }
    for p in &expect.plugins {
        let mut to = p.to.clone();
        if Path::new(&to).extension().is_none() {
            to.push_str(std::env::consts::DLL_SUFFIX);
        }
        let dst = app.join(to);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(plugin_library(&p.package), dst).unwrap();
    }
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{app}", &path_str(&app)))
        .collect();
    let before = expect.platform.as_ref().map(|_| snapshots(&app));
    if let Some(p) = &expect.platform {
        *upstream().rule.lock().unwrap() = Some(p.clone());
    }
    let out = run_jit(&args, &expect.env);
    if expect.platform.is_some() {
        *upstream().rule.lock().unwrap() = None;
    }
    let all = &out.all;
    // What must hold even for a known gap.
    let mut hard = Vec::new();
    match out.code {
        None => hard.push("killed: a signal or the one-minute limit".to_string()),
        Some(101) => hard.push("exit 101: a panic".into()),
        _ => {}
    }
    if all.contains("panicked") {
        hard.push("the output mentions a panic".into());
    }
    for secret in &never {
        if all.contains(secret.as_str()) {
            hard.push(format!("output shows {secret:?}"));
        }
    }
    match (expect.exit, out.code) {
        (_, None) | (_, Some(101)) => {}
        (Some(want), Some(got)) if want != got => {
            problems.push(format!("exit {got}, expected {want}"))
        }
        (None, Some(0)) => problems.push("exit 0: the hostile input was accepted".into()),
        _ => {}
    }
    for want in &expect.output_contains {
        if !all.contains(want.as_str()) {
            problems.push(format!("output lacks {want:?}"));
        }
    }
    if let Some(want) = &expect.diagnostic {
        let diags: Vec<Value> = first_json(all)
            .and_then(|v| v["diagnostics"].as_array().cloned())
            .unwrap_or_default();
        let app_prefix = format!("{}/", path_str(&app));
        let found = diags.iter().any(|d| {
            d["code"] == want.code.as_str()
                && want.file.as_ref().is_none_or(|f| {
                    d["file"]
                        .as_str()
                        .unwrap_or_default()
                        .replace(&app_prefix, "")
                        == *f
                })
                && want
                    .pointer
                    .as_ref()
                    .is_none_or(|p| d["pointer"].as_str() == Some(p.as_str()))
                && want.contains.as_ref().is_none_or(|c| {
                    d["message"]
                        .as_str()
                        .unwrap_or_default()
                        .contains(c.as_str())
                })
        });
        if !found {
            problems.push(format!(
                "no diagnostic {} at {:?}#{:?} containing {:?}; got {}",
                want.code,
                want.file,
                want.pointer,
                want.contains,
                serde_json::to_string(&diags).unwrap_or_default()
            ));
        }
    }
    match before {
        Some(before) => {
            if snapshots(&app) != before {
                problems.push("the store changed".into());
            }
        }
        None => {
            if app.join(".jit").exists() && expect.store.as_deref() != Some("created") {
                problems.push("a store was created".into());
            }
        }
    }
    let gap = match &expect.gap {
        Some(reason) if hard.is_empty() => {
            if problems.is_empty() {
                hard.push(format!(
                    "listed as a gap ({reason}) but passes: remove `gap`"
                ));
            }
            Some(reason.clone())
        }
        _ => {
            hard.extend(problems);
            None
        }
    };
    if !hard.is_empty() {
        let shown: String = all.chars().take(3000).collect();
        hard.push(format!("jit {}\n{shown}", args.join(" ")));
    }
    CaseResult {
        problems: hard,
        gap,
    }
}

/// How a case went.
struct CaseResult {
    /// What is wrong; empty when the case passed (or is a known gap).
    problems: Vec<String>,
    /// The reason, for a known gap that still behaves as listed.
    gap: Option<String>,
}

/// The first JSON document printed on stdout (before stderr's text).
fn first_json(all: &str) -> Option<Value> {
    let start = all.find('{')?;
    let mut de = serde_json::Deserializer::from_str(&all[start..]).into_iter::<Value>();
    de.next()?.ok()
}

#[test]
fn every_hostile_input_is_a_clear_error_without_panic_secret_or_store_change() {
    let cases = cases();
    let only = std::env::var("HOSTILE_CASE").ok();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut gaps = Vec::new();
    let start = Instant::now();
    for (cat, name, dir) in &cases {
        if only
            .as_ref()
            .is_some_and(|o| !format!("{cat}/{name}").contains(o.as_str()))
        {
            continue;
        }
        *counts.entry(cat.clone()).or_default() += 1;
        let result = run_case(dir);
        if !result.problems.is_empty() {
            failures.push(format!("{cat}/{name}:\n  {}", result.problems.join("\n  ")));
        }
        if let Some(reason) = result.gap {
            gaps.push(format!("{cat}/{name}: {reason}"));
        }
    }
    let total: usize = counts.values().sum();
    // Straight to stderr, past the harness's capture, so CI shows the counts.
    let mut summary = String::new();
    for g in &gaps {
        summary.push_str(&format!("known gap: {g}\n"));
    }
    summary.push_str(&format!(
        "hostile corpus: {total} cases ({}) in {:.1}s, {} failed, {} known gaps\n",
        counts
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        start.elapsed().as_secs_f64(),
        failures.len(),
        gaps.len()
    ));
    let _ = std::io::Write::write_all(&mut std::io::stderr(), summary.as_bytes());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    if only.is_none() {
        assert!(
            total >= 100,
            "the corpus must keep at least 100 cases, has {total}"
        );
    }
}
