//! Org Types shipped as plugins, end to end through the `jit` binary:
//! `corps.AuditedQywxType` (plugin-qywx-audit) extends the built-in WeCom
//! Type and overrides `syncCorp`; `corps.JsonFileType`
//! (plugin-json-file-corp) syncs an HR export through the real engine into
//! the real store.

use crate::support;

use jit_org::MemberStatus;
use jit_sim::{SimConfig, SimHandle, Simulator};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use support::Fixture;

const PACKAGES: &[&str] = &["plugin-qywx-audit", "plugin-json-file-corp"];

/// Builds the example plugins once and returns each package's library, as
/// cargo reports it (so the test never guesses the target folder).
fn library(package: &str) -> PathBuf {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(&root)
            .args(["build", "--message-format=json"]);
        for p in PACKAGES {
            cmd.args(["-p", p]);
        }
        let out = cmd.output().expect("run cargo build for the plugins");
        assert!(
            out.status.success(),
            "building the example plugins failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut libs = HashMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if msg["reason"] != "compiler-artifact" {
                continue;
            }
            let target = msg["target"]["name"].as_str().unwrap_or_default();
            let Some(pkg) = PACKAGES.iter().find(|p| p.replace('-', "_") == target) else {
                continue;
            };
            for f in msg["filenames"].as_array().into_iter().flatten() {
                let f = PathBuf::from(f.as_str().unwrap_or_default());
                if f.to_string_lossy().ends_with(std::env::consts::DLL_SUFFIX) {
                    libs.insert(pkg.to_string(), f);
                }
            }
        }
        libs
    });
    built
        .get(package)
        .unwrap_or_else(|| panic!("cargo reported no library for {package}: {built:?}"))
        .clone()
}

/// Copies a built plugin into `<app>/plugins/`; returns its new path.
fn install(f: &Fixture, package: &str) -> PathBuf {
    let src = library(package);
    let dst = f.sub("plugins").join(src.file_name().unwrap());
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(&src, &dst).unwrap();
    dst
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
    assert!(
        o.status.success(),
        "jit failed:\n{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    serde_json::from_str(&text(&o.stdout))
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", text(&o.stdout)))
}

struct Sim {
    handle: SimHandle,
    _rt: tokio::runtime::Runtime,
}

fn start_sim() -> Sim {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt
        .block_on(Simulator::start(SimConfig {
            seed: 3,
            depts: 6,
            users: 30,
            ..SimConfig::default()
        }))
        .expect("simulator starts");
    Sim { handle, _rt: rt }
}

/// The audited WeCom org app: the plugin in `plugins/`, its Type element
/// extending `corps.QywxInnerType`, one instance pointing at the simulator.
fn audited_app(sim: &Sim) -> (Fixture, PathBuf) {
    let w = sim.handle.info().wecom;
    let f = Fixture::new();
    f.json("app.json", json!({"appId": "t.audit", "title": "Audited"}));
    let lib = install(&f, "plugin-qywx-audit");
    f.json(
        "corps/AuditedQywxType/e.json",
        json!({"title": "Audited WeCom org", "kind": "Type", "type": "corps.QywxInnerType",
               "plugin": "plugin-qywx-audit"}),
    );
    f.json(
        "corps/AuditedWecom/e.json",
        json!({"title": "Our WeCom (audited)", "type": "corps.AuditedQywxType"}),
    );
    f.json(
        "corps/AuditedWecom/AuditedWecom.json",
        json!({"corpId": w.corp_id, "agentId": w.agent_id.to_string(), "secret": w.secret,
               "apiBase": w.api_base_url}),
    );
    (f, lib)
}

fn audit_lines(f: &Fixture) -> Vec<Value> {
    std::fs::read_to_string(f.sub(".jit/sync-audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn an_overridden_sync_corp_audits_and_the_delegated_built_in_sync_writes_the_store() {
    let sim = start_sim();
    let (f, _lib) = audited_app(&sim);
    let app = f.path().to_str().unwrap();
    let out = jit(&["call", "corps.AuditedWecom", "syncCorp", "--app", app]);
    let report = json_out(&out);
    assert_eq!(report["outcome"], "applied", "{report}");
    assert!(
        text(&out.stderr).contains("sync of corps.AuditedWecom audited in"),
        "the plugin's log line: {}",
        text(&out.stderr)
    );
    let lines = audit_lines(&f);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["element"], "corps.AuditedWecom");
    assert_eq!(lines[0]["ok"], true);
    assert_eq!(lines[0]["report"]["runId"], report["runId"]);

    // The built-in parent wrote the app's store.
    let present: BTreeSet<String> = sim
        .handle
        .wecom_truth()
        .members
        .values()
        .filter(|m| m.status != MemberStatus::Offline)
        .map(|m| m.member_id.clone())
        .collect();
    let local = json_out(&jit(&[
        "call",
        "corps.AuditedWecom",
        "getLocalCorpData",
        "--app",
        app,
    ]));
    let stored: BTreeSet<String> = local["userList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["memberId"].as_str().unwrap().to_string())
        .collect();
    // getLocalCorpData lists every current member (any status but offline).
    let current: BTreeSet<String> = sim
        .handle
        .wecom_truth()
        .members
        .values()
        .filter(|m| m.status != MemberStatus::Offline)
        .map(|m| m.member_id.clone())
        .collect();
    assert_eq!(stored, current);
    assert!(current.is_subset(&present));
    assert_eq!(local["corp"]["corpType"], "corps.AuditedQywxType");
    // Methods and properties it does not override come from the parent.
    let root = json_out(&jit(&[
        "call",
        "corps.AuditedWecom",
        "getRootDept",
        "--app",
        app,
    ]));
    assert_eq!(root["corpFullName"], "corps.AuditedWecom");
    let auth = json_out(&jit(&[
        "call",
        "corps.AuditedWecom",
        "authConfig",
        "--app",
        app,
    ]));
    assert_eq!(auth["secret"], "******");
    assert_eq!(audit_lines(&f).len(), 1, "only syncCorp is audited");

    // `jit sync` on a plugin org goes through the override too.
    let again = jit(&["sync", "corps.AuditedWecom", "--app", app]);
    let r = json_out(&again);
    assert_eq!(r["rowsWritten"], 0, "{r}");
    assert_eq!(audit_lines(&f).len(), 2);
    let secret = sim.handle.info().wecom.secret;
    for o in [&out, &again] {
        assert!(!text(&o.stdout).contains(&secret) && !text(&o.stderr).contains(&secret));
    }
    assert!(!std::fs::read_to_string(f.sub(".jit/sync-audit.jsonl"))
        .unwrap()
        .contains(&secret));
}

#[test]
fn a_failed_parent_sync_is_audited_and_reported_as_the_call_error() {
    let sim = start_sim();
    let (f, _lib) = audited_app(&sim);
    let w = sim.handle.info().wecom;
    f.json(
        "corps/AuditedWecom/AuditedWecom.json",
        json!({"corpId": w.corp_id, "agentId": w.agent_id.to_string(),
               "secret": "wrong-secret-0815", "apiBase": w.api_base_url}),
    );
    let out = jit(&[
        "call",
        "corps.AuditedWecom",
        "syncCorp",
        "--app",
        f.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("corps.AuditedWecom"), "{err}");
    assert!(!err.contains("wrong-secret-0815"), "{err}");
    let lines = audit_lines(&f);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["ok"], false);
}

#[test]
fn ls_and_show_name_the_plugin_library_as_the_type_origin() {
    let sim = start_sim();
    let (f, lib) = audited_app(&sim);
    let app = f.path().to_str().unwrap();
    let lib_name = lib.file_name().unwrap().to_string_lossy().into_owned();
    let ls = jit(&["ls", app]);
    assert!(ls.status.success(), "{}", text(&ls.stderr));
    let t = text(&ls.stdout);
    for element in ["corps.AuditedQywxType ", "corps.AuditedWecom "] {
        let line = t
            .lines()
            .find(|l| l.starts_with(element))
            .unwrap_or_else(|| panic!("{element} listed:\n{t}"));
        assert!(line.contains("corps.AuditedQywxType ("), "{line}");
        assert!(line.contains(&lib_name), "{line}");
    }
    let show = jit(&["show", "corps.AuditedWecom", "--app", app]);
    let s = text(&show.stdout);
    assert!(show.status.success(), "{}", text(&show.stderr));
    assert!(
        s.contains("corps.AuditedWecom → corps.AuditedQywxType → corps.QywxInnerType → corps.Meta"),
        "{s}"
    );
    assert!(s.contains("implemented: corps.AuditedQywxType ("), "{s}");
    assert!(s.contains(&lib_name), "{s}");
    assert!(
        s.contains("syncCorp(dryRun?: Boolean, force?: Boolean)"),
        "inherited methods are listed: {s}"
    );
    assert!(s.contains("******"), "{s}");
    let json_show = json_out(&jit(&[
        "show",
        "corps.AuditedWecom",
        "--app",
        app,
        "--format",
        "json",
    ]));
    let origin = json_show["element"]["implementedBy"][1].as_str().unwrap();
    assert!(origin.ends_with(&lib_name), "{origin}");
}

/// An HR export for `corps.JsonFileType`.
fn hr_app() -> Fixture {
    let f = Fixture::new();
    f.json("app.json", json!({"appId": "t.hr", "title": "HR"}));
    install(&f, "plugin-json-file-corp");
    f.json(
        "corps/JsonFileType/e.json",
        json!({"title": "Org from an HR export file", "kind": "Type", "type": "corps.Meta",
               "plugin": "plugin-json-file-corp",
               "functionList": [
                   {"name": "syncCorp", "args": []},
                   {"name": "getThirdCorpData", "args": [], "returnType": "JitDict"},
                   {"name": "getLocalCorpData", "args": [], "returnType": "JitDict"},
                   {"name": "getCorpInfo", "args": [], "returnType": "JitDict"},
                   {"name": "getRootDept", "args": [], "returnType": "RowData"}]}),
    );
    f.json(
        "corps/Hr/e.json",
        json!({"title": "Acme HR", "type": "corps.JsonFileType"}),
    );
    f.json(
        "corps/Hr/Hr.json",
        // No offline is allowed by count alone, so the ratio decides.
        json!({"file": "hr/export.json", "provider": "hrfile", "sync": {"maxOfflineCount": 0}}),
    );
    f.json(
        "hr/export.json",
        json!({"corpId": "acme-hr", "departments": [
                {"id": 1, "name": "Acme"},
                {"id": 2, "name": "R&D", "parentId": 1, "order": 10, "leaders": ["E1"]},
                {"id": 3, "name": "Sales", "parentId": 1, "order": 20}],
               "members": [
                {"id": "E1", "name": "Zhang San", "departments": [2], "position": "Lead"},
                {"id": "E2", "name": "Li Si", "departments": [2, 3]},
                {"id": "E3", "name": "Wang Wu", "departments": [3]},
                {"id": "E4", "name": "Zhao Liu", "departments": [3], "status": "resigned"}]}),
    );
    f
}

#[test]
fn a_json_file_org_syncs_through_the_engine_into_the_app_store() {
    let f = hr_app();
    let app = f.path().to_str().unwrap();
    let first = json_out(&jit(&["call", "corps.Hr", "syncCorp", "--app", app]));
    assert_eq!(first["outcome"], "applied", "{first}");
    assert_eq!(
        first["counts"]["created"], 6,
        "3 departments and 3 present members: {first}"
    );
    assert!(first["rowsWritten"].as_u64().unwrap() > 0);

    // The real store of the app holds it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let snap = rt.block_on(async {
        let store = jit_store::open(f.sub(".jit/org.db").to_str().unwrap())
            .await
            .unwrap();
        store.load_snapshot("corps.Hr").await.unwrap()
    });
    assert_eq!(snap.corp_id, "acme-hr");
    assert_eq!(
        snap.depts.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(snap.depts[&2].leaders, vec!["E1".to_string()]);
    assert_eq!(
        snap.members.keys().cloned().collect::<Vec<_>>(),
        vec!["E1", "E2", "E3"]
    );
    assert_eq!(snap.members["E2"].depts.len(), 2);
    drop(rt);

    let local = json_out(&jit(&[
        "call",
        "corps.Hr",
        "getLocalCorpData",
        "--app",
        app,
    ]));
    assert_eq!(local["userList"].as_array().unwrap().len(), 3);
    assert_eq!(local["corp"]["provider"], "hrfile");

    let second = json_out(&jit(&["sync", "corps.Hr", "--app", app]));
    assert_eq!(second["rowsWritten"], 0, "{second}");

    // E3 leaves: the next sync offlines them (1 of 3 is above the default
    // 10 % threshold, so it is refused first).
    let mut export: Value =
        serde_json::from_str(&std::fs::read_to_string(f.sub("hr/export.json")).unwrap()).unwrap();
    export["members"][2]["status"] = json!("resigned");
    f.json("hr/export.json", export);
    let refused = jit(&["call", "corps.Hr", "syncCorp", "--app", app]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("refused"),
        "{}",
        text(&refused.stderr)
    );
    f.json(
        "corps/Hr/Hr.json",
        json!({"file": "hr/export.json", "provider": "hrfile", "sync": {"maxOfflineRatio": 0.5}}),
    );
    let third = json_out(&jit(&["call", "corps.Hr", "syncCorp", "--app", app]));
    assert_eq!(third["counts"]["offlined"], 1, "{third}");
}

#[test]
fn sync_dry_run_of_a_plugin_org_is_refused_instead_of_applying() {
    let f = hr_app();
    let app = f.path().to_str().unwrap();
    for flag in ["--dry-run", "--force"] {
        let out = jit(&["sync", "corps.Hr", "--app", app, flag]);
        assert_eq!(out.status.code(), Some(1), "{flag}: {}", text(&out.stdout));
        let err = text(&out.stderr);
        assert!(err.contains(flag), "{err}");
        assert!(err.contains("jit call corps.Hr syncCorp"), "{err}");
    }
    assert!(
        !f.sub(".jit/org.db").exists(),
        "nothing was synced, not even a store was created"
    );
}
