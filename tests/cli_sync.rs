//! `jit sync`, `jit call`, `jit sim` and `jit demo` against the WeCom /
//! DingTalk simulator, run as a user runs them: the simulator in this test
//! process, the `jit` binary as a child process, an app in a temp folder.

use crate::support::{self, PgDatabase};

use jit_org::MemberStatus;
use jit_sim::{Mutation, OrgRef, SimConfig, SimHandle, Simulator};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::Fixture;

/// The simulator on its own runtime, serving while the test runs `jit`.
struct Sim {
    handle: SimHandle,
    _rt: tokio::runtime::Runtime,
}

impl Sim {
    fn start() -> Sim {
        Sim::start_with(0)
    }

    /// A simulator answering every call after `latency_ms`.
    fn start_with(latency_ms: u64) -> Sim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let handle = rt
            .block_on(Simulator::start(SimConfig {
                seed: 5,
                depts: 8,
                users: 40,
                dingtalk_depts: Some(5),
                dingtalk_users: Some(25),
                latency_ms,
                ..SimConfig::default()
            }))
            .expect("simulator starts");
        Sim { handle, _rt: rt }
    }

    fn present_members(&self) -> Vec<String> {
        self.handle
            .wecom_truth()
            .members
            .values()
            .filter(|m| m.status != MemberStatus::Offline)
            .map(|m| m.member_id.clone())
            .collect()
    }
}

fn jit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jit"))
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run jit")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_out(o: &Output) -> Value {
    serde_json::from_str(&text(&o.stdout)).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            text(&o.stdout),
            text(&o.stderr)
        )
    })
}

/// An app with `corps.Acme` (WeCom, flat config) and `corps.Nail`
/// (DingTalk, nested config) pointing at the simulator.
fn org_app(sim: &Sim) -> Fixture {
    let info = sim.handle.info();
    let f = Fixture::new();
    f.json(
        "app.json",
        json!({"appId": "t.clisync", "title": "CLI sync"}),
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
    let d = &info.dingtalk[0];
    f.json(
        "corps/Nail/e.json",
        json!({"title": "Nail", "type": "corps.DDInnerType"}),
    );
    f.json(
        "corps/Nail/Nail.json",
        json!({"authConfig": {"corpId": d.corp_id, "agentId": d.agent_id.to_string(),
               "appKey": d.app_key, "appSecret": d.app_secret, "apiBase": d.api_base_url}}),
    );
    f
}

fn app_arg(f: &Fixture) -> &str {
    f.path().to_str().unwrap()
}

fn assert_no_secret(sim: &Sim, o: &Output) {
    let info = sim.handle.info();
    let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
    for s in [info.wecom.secret, info.dingtalk[0].app_secret.clone()] {
        assert!(!all.contains(&s), "a secret was printed");
    }
}

#[test]
fn sync_json_reports_counts_and_a_second_run_writes_nothing() {
    let sim = Sim::start();
    let f = org_app(&sim);
    for (org, upstream) in [
        ("corps.Acme", sim.present_members().len()),
        ("corps.Nail", sim.handle.dingtalk_truth(0).members.len()),
    ] {
        let first = jit(&["sync", org, "--app", app_arg(&f), "--format", "json"]);
        assert!(first.status.success(), "{}", text(&first.stderr));
        assert_no_secret(&sim, &first);
        let r = json_out(&first);
        assert_eq!(r["org"], org);
        assert_eq!(r["outcome"], "applied");
        assert_eq!(r["complete"], true);
        assert_eq!(r["upstreamMembers"], upstream, "{org}");
        assert!(r["counts"]["created"].as_u64().unwrap() >= upstream as u64);
        assert!(r["rowsWritten"].as_u64().unwrap() > 0);
        assert!(r["fetchStats"].is_object());

        let second = json_out(&jit(&[
            "sync",
            org,
            "--app",
            app_arg(&f),
            "--format",
            "json",
        ]));
        assert_eq!(second["rowsWritten"], 0, "{second}");
        assert_eq!(second["changes"], json!([]));
    }
}

#[test]
fn sync_text_output_summarises_the_run() {
    let sim = Sim::start();
    let f = org_app(&sim);
    let out = jit(&["sync", "corps.Acme", "--app", app_arg(&f)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(t.contains("corps.Acme (Acme): run"), "{t}");
    assert!(
        t.contains(&format!("{} members", sim.present_members().len())),
        "{t}"
    );
    assert!(t.contains("rows written"), "{t}");
    let again = text(&jit(&["sync", "corps.Acme", "--app", app_arg(&f)]).stdout);
    assert!(
        again.contains("none (the store already matches)"),
        "{again}"
    );
}

#[test]
fn dry_run_records_the_plan_and_writes_nothing() {
    let sim = Sim::start();
    let f = org_app(&sim);
    let dry = jit(&[
        "sync",
        "corps.Acme",
        "--app",
        app_arg(&f),
        "--dry-run",
        "--format",
        "json",
    ]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let r = json_out(&dry);
    assert_eq!(r["outcome"], "dry_run");
    assert_eq!(r["rowsWritten"], 0);
    let planned = r["counts"]["created"].as_u64().unwrap();
    assert!(planned > 0);

    let local = json_out(&jit(&[
        "call",
        "corps.Acme",
        "getLocalCorpData",
        "--app",
        app_arg(&f),
    ]));
    assert_eq!(local["userList"], json!([]), "nothing was written");
    assert_eq!(local["deptList"], json!([]));

    let real = json_out(&jit(&[
        "sync",
        "corps.Acme",
        "--app",
        app_arg(&f),
        "--format",
        "json",
    ]));
    assert_eq!(
        real["counts"]["created"], planned,
        "the dry run showed the real plan"
    );
}

#[test]
fn a_refused_sync_exits_non_zero_with_the_reason_and_force_applies_it() {
    let sim = Sim::start();
    let f = org_app(&sim);
    assert!(jit(&["sync", "corps.Acme", "--app", app_arg(&f)])
        .status
        .success());
    let leavers: Vec<String> = sim.present_members().into_iter().take(12).collect();
    for id in &leavers {
        sim.handle
            .mutate(OrgRef::Wecom, Mutation::RemoveMember { userid: id.clone() })
            .unwrap();
    }
    let refused = jit(&[
        "sync",
        "corps.Acme",
        "--app",
        app_arg(&f),
        "--format",
        "json",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let err = text(&refused.stderr);
    assert!(err.contains("refused"), "{err}");
    assert!(err.contains("would offline 12 of"), "{err}");
    assert!(err.contains("--force"), "{err}");
    let r = json_out(&refused);
    assert_eq!(r["outcome"], "refused");

    let local = json_out(&jit(&[
        "call",
        "corps.Acme",
        "getLocalCorpData",
        "--app",
        app_arg(&f),
    ]));
    let listed = local["userList"].as_array().unwrap();
    assert!(
        leavers
            .iter()
            .all(|l| listed.iter().any(|u| u["memberId"] == l.as_str())),
        "nothing was offlined"
    );

    let forced = jit(&[
        "sync",
        "corps.Acme",
        "--app",
        app_arg(&f),
        "--force",
        "--format",
        "json",
    ]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    let r = json_out(&forced);
    assert_eq!(r["counts"]["offlined"], 12);
    assert!(
        r["notes"]
            .to_string()
            .contains("forced past a safety check"),
        "{r}"
    );
}

#[test]
fn call_get_local_corp_data_prints_the_synced_org() {
    let sim = Sim::start();
    let f = org_app(&sim);
    assert!(jit(&["sync", "corps.Nail", "--app", app_arg(&f)])
        .status
        .success());
    let out = jit(&[
        "call",
        "corps.Nail",
        "getLocalCorpData",
        "--app",
        app_arg(&f),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_no_secret(&sim, &out);
    let v = json_out(&out);
    let truth = sim.handle.dingtalk_truth(0);
    // Every current member is listed, not only the active ones: DingTalk
    // members not yet activated (`active: false`) are employees too.
    let users = v["userList"].as_array().unwrap();
    let current = truth
        .members
        .values()
        .filter(|m| m.status != MemberStatus::Offline);
    assert_eq!(users.len(), current.clone().count());
    for m in current {
        let listed = users
            .iter()
            .find(|u| u["memberId"] == m.member_id.as_str())
            .unwrap_or_else(|| panic!("{} is listed", m.member_id));
        assert_eq!(listed["status"], m.status.as_str(), "{listed}");
    }
    assert!(
        truth.active_count() < users.len(),
        "the simulated org has members who are not active, so this test means something"
    );
    assert_eq!(v["deptList"].as_array().unwrap().len(), truth.depts.len());
    assert_eq!(v["corp"]["fullName"], "corps.Nail");
    let auth = json_out(&jit(&[
        "call",
        "corps.Nail",
        "authConfig",
        "--app",
        app_arg(&f),
    ]));
    assert_eq!(auth["appSecret"], "******");
}

#[test]
fn sim_prints_one_json_line_with_urls_and_credentials() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jit"))
        .args(["sim", "--port", "0", "--users", "50", "--depts", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start jit sim");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Result<Value, _> = serde_json::from_str(&line);
    // Stop it before asserting, so a failure leaves no process behind.
    child.kill().unwrap();
    child.wait().unwrap();
    let v = v.unwrap_or_else(|e| panic!("first line is not JSON ({e}): {line}"));
    let base = v["baseUrl"].as_str().unwrap();
    assert!(base.starts_with("http://127.0.0.1:"), "{v}");
    assert!(!base.ends_with(":0"), "a real port was picked: {v}");
    assert!(v["wecom"]["apiBaseUrl"].as_str().unwrap().starts_with(base));
    assert!(!v["wecom"]["corpId"].as_str().unwrap().is_empty());
    assert!(!v["wecom"]["secret"].as_str().unwrap().is_empty());
    assert_eq!(v["dingtalk"].as_array().unwrap().len(), 2);
    assert!(!v["dingtalk"][0]["appKey"].as_str().unwrap().is_empty());
    assert!(!v["dingtalk"][0]["appSecret"].as_str().unwrap().is_empty());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        // A store left by an earlier demo run is not part of the example.
        if name == ".jit" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `jit demo --exit` on `app` with a small generated company.
fn small_demo(app: &str) -> std::process::Output {
    jit(&[
        "demo",
        "--exit",
        "--app",
        app,
        "--users",
        "300",
        "--depts",
        "20",
        "--dingtalk-users",
        "100",
        "--dingtalk-depts",
        "8",
    ])
}

#[test]
fn demo_syncs_the_example_app_and_its_store_then_answers_calls() {
    let f = Fixture::new();
    let app = f.sub("demo-app");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo-app");
    copy_dir(&example, &app);
    let app_s = app.to_str().unwrap();
    let out = small_demo(app_s);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let t = text(&out.stdout);
    assert!(t.contains("Syncing corps.AcmeWecom"), "{t}");
    assert!(t.contains("Syncing corps.AcmeDingTalk"), "{t}");
    assert!(t.contains("0 changes, 0 rows written"), "{t}");
    assert!(
        t.contains("Logged in through auths.AcmeWecomLogin: member "),
        "{t}"
    );
    assert!(
        t.contains("Logged in through auths.AcmeDingTalkLogin: member "),
        "{t}"
    );
    assert!(app.join(".jit/org.db").is_file());

    let root = jit(&["call", "corps.AcmeWecom", "getRootDept", "--app", app_s]);
    assert!(root.status.success(), "{}", text(&root.stderr));
    let v = json_out(&root);
    assert!(v["deptId"].is_i64(), "{v}");
    assert!(!v["name"].as_str().unwrap().is_empty());
    assert_eq!(v["corpFullName"], "corps.AcmeWecom");
    let users = json_out(&jit(&[
        "call",
        "corps.AcmeWecom",
        "getLocalCorpData",
        "--app",
        app_s,
    ]));
    let n = users["userList"].as_array().unwrap().len();
    assert!(n > 250 && n <= 300, "{n} active members of 300");

    // A newcomer runs the demo again: the kept store is synced again, and
    // the logins (whose spent codes the store remembers) still work.
    let again = small_demo(app_s);
    assert!(
        again.status.success(),
        "{}\n{}",
        text(&again.stdout),
        text(&again.stderr)
    );
    let t = text(&again.stdout);
    assert!(
        t.contains("Logged in through auths.AcmeWecomLogin: member "),
        "{t}"
    );
}

// --- Two syncs of one org never interleave (the per-org sync lock). ---

/// Starts `n` `jit sync corps.Acme` processes together (with `extra`
/// flags, against `database_url` or the app's SQLite store) and waits.
fn syncs_started_together(
    f: &Fixture,
    n: usize,
    database_url: Option<&str>,
    extra: &[&str],
) -> Vec<Output> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_jit"));
            c.args([
                "sync",
                "corps.Acme",
                "--app",
                app_arg(f),
                "--format",
                "json",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("DATABASE_URL");
            if let Some(url) = database_url {
                c.env("DATABASE_URL", url);
            }
            c.spawn().expect("run jit")
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("jit finishes"))
        .collect()
}

/// The org's recorded runs, oldest first.
fn runs_of(location: &str) -> Vec<jit_store::SyncRun> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = jit_store::open(location).await.expect("store opens");
        let mut runs = store.list_runs("corps.Acme", 100).await.unwrap();
        runs.reverse();
        runs
    })
}

/// Every process either applied or was refused because another sync was
/// running: never a database error. Exactly one run created the org; any
/// other applied run found nothing left to do. Returns how many were busy.
fn assert_one_sync_applied(outputs: &[Output], runs: &[jit_store::SyncRun]) -> usize {
    let mut busy = 0;
    for o in outputs {
        let err = text(&o.stderr);
        if o.status.success() {
            assert_eq!(json_out(o)["outcome"], "applied", "{err}");
        } else {
            assert_eq!(o.status.code(), Some(1), "{err}");
            assert!(
                err.contains("a sync of corps.Acme is already running (run "),
                "a refusal names the running run, not a database error: {err}"
            );
            assert_eq!(json_out(o)["outcome"], "busy");
            busy += 1;
        }
    }
    let applied: Vec<_> = runs
        .iter()
        .filter(|r| r.outcome == jit_store::RunOutcome::Applied)
        .collect();
    assert_eq!(applied.len(), outputs.len() - busy, "{runs:?}");
    let creators: Vec<_> = applied
        .iter()
        .filter(|r| {
            r.counts
                .get(&jit_org::ChangeKind::Created)
                .copied()
                .unwrap_or(0)
                > 0
        })
        .collect();
    assert_eq!(
        creators.len(),
        1,
        "exactly one run created the org: {runs:?}"
    );
    for r in &applied {
        if r.run_id != creators[0].run_id {
            assert!(r.counts.is_empty(), "a later run had nothing to do: {r:?}");
        }
        assert!(r.finished_at >= r.started_at);
    }
    // Applied runs never overlap in time.
    for w in applied.windows(2) {
        assert!(w[0].finished_at <= w[1].started_at, "{runs:?}");
    }
    busy
}

#[test]
fn three_syncs_of_one_org_started_together_on_sqlite_apply_once() {
    let sim = Sim::start_with(300);
    let f = org_app(&sim);
    let outputs = syncs_started_together(&f, 3, None, &[]);
    let db = f.path().join(".jit/org.db");
    let busy = assert_one_sync_applied(&outputs, &runs_of(db.to_str().unwrap()));
    assert!(
        busy >= 1,
        "the syncs overlapped, so at least one was refused"
    );
}

#[test]
fn syncs_started_together_with_wait_run_one_after_another() {
    let sim = Sim::start_with(300);
    let f = org_app(&sim);
    let outputs = syncs_started_together(&f, 3, None, &["--wait", "60"]);
    let db = f.path().join(".jit/org.db");
    let busy = assert_one_sync_applied(&outputs, &runs_of(db.to_str().unwrap()));
    assert_eq!(busy, 0, "every sync waited for the one before it");
}

#[test]
fn three_syncs_on_a_fresh_postgresql_database_migrate_once_and_apply_once() {
    let pg = PgDatabase::create("cli");
    let sim = Sim::start_with(300);
    let f = org_app(&sim);
    let outputs = syncs_started_together(&f, 3, Some(&pg.url()), &[]);
    let busy = assert_one_sync_applied(&outputs, &runs_of(&pg.url()));
    assert!(
        busy >= 1,
        "the syncs overlapped, so at least one was refused"
    );
}

#[test]
fn three_syncs_on_a_migrated_postgresql_database_apply_once() {
    let pg = PgDatabase::create("cli");
    let sim = Sim::start_with(300);
    let f = org_app(&sim);
    // Migrate (and record the corp) first, with a dry run that writes no org rows.
    let first = syncs_started_together(&f, 1, Some(&pg.url()), &["--dry-run"]);
    assert!(first[0].status.success(), "{}", text(&first[0].stderr));
    let outputs = syncs_started_together(&f, 3, Some(&pg.url()), &[]);
    let runs: Vec<_> = runs_of(&pg.url())
        .into_iter()
        .filter(|r| r.outcome != jit_store::RunOutcome::DryRun)
        .collect();
    let busy = assert_one_sync_applied(&outputs, &runs);
    assert!(
        busy >= 1,
        "the syncs overlapped, so at least one was refused"
    );
}

#[test]
fn dynamic_sync_corp_takes_dry_run_and_force() {
    let sim = Sim::start();
    let f = org_app(&sim);
    let dry = json_out(&jit(&[
        "call",
        "corps.Acme",
        "syncCorp",
        "--app",
        app_arg(&f),
        "--args",
        r#"{"dryRun": true}"#,
    ]));
    assert_eq!(dry["outcome"], "dry_run");
    assert_eq!(dry["rowsWritten"], 0);
    assert!(jit(&["sync", "corps.Acme", "--app", app_arg(&f)])
        .status
        .success());
    for id in sim.present_members().into_iter().take(12) {
        sim.handle
            .mutate(OrgRef::Wecom, Mutation::RemoveMember { userid: id })
            .unwrap();
    }
    let refused = jit(&["call", "corps.Acme", "syncCorp", "--app", app_arg(&f)]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("refused"));
    let forced = json_out(&jit(&[
        "call",
        "corps.Acme",
        "syncCorp",
        "--app",
        app_arg(&f),
        "--args",
        r#"{"force": true}"#,
    ]));
    assert_eq!(forced["counts"]["offlined"], 12);
    let bad = jit(&[
        "call",
        "corps.Acme",
        "syncCorp",
        "--app",
        app_arg(&f),
        "--args",
        r#"{"force": "yes"}"#,
    ]);
    assert!(text(&bad.stderr).contains("force"), "{}", text(&bad.stderr));
}
