//! Calling plugin elements: results, host callbacks, panics, garbage,
//! delegation to a parent Type, and the corps services.

use crate::common;

use async_trait::async_trait;
use common::*;
use jit_core::{App, CallError, CallFuture, Element, InstanceContext, TypeImpl};
use jit_org::CorpSnapshot;
use jit_plugin_host::{CorpContext, CorpServices, PluginElement};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

#[tokio::test]
async fn a_plugin_method_runs_with_the_instance_config() {
    let (_app, loaded) = hello_app();
    let hi = loaded.get_element("greeters.Hi").unwrap();
    assert_eq!(
        hi.call("greet", json!({"name": "Ann"})).await.unwrap(),
        json!("Howdy, Ann!")
    );
    let ola = loaded.get_element("greeters.Ola").unwrap();
    assert_eq!(
        ola.call("greet", json!(["Ana"])).await.unwrap(),
        json!("Olá, Ana!")
    );
}

#[tokio::test]
async fn plugin_log_lines_reach_the_host_log_sink_tagged_with_the_element() {
    let app = TestApp::new();
    greeters(&app, json!({}));
    app.plugin("plugin-hello", None);
    let logs = Logs::default();
    let loaded = load_with(app.root(), Vec::new(), None, &logs);
    let hi = loaded.get_element("greeters.Hi").unwrap();
    hi.call("greet", json!({"name": "Ann"})).await.unwrap();
    assert_eq!(logs.lines(), ["info greeters.Hi: greeters.Hi greets Ann"]);
}

// A current-thread runtime: the nested call can only complete if the plugin
// call runs off the executor thread.
#[tokio::test(flavor = "current_thread")]
async fn a_plugin_calls_another_element_through_the_host() {
    let (_app, loaded) = hello_app();
    let hi = loaded.get_element("greeters.Hi").unwrap();
    let answer = hi
        .call(
            "ask",
            json!({"element": "greeters.Ola", "method": "greet", "args": {"name": "Bo"}}),
        )
        .await
        .unwrap();
    assert_eq!(answer, json!("Olá, Bo!"));
}

#[tokio::test]
async fn an_error_of_a_nested_call_comes_back_to_the_plugin_and_out() {
    let (_app, loaded) = hello_app();
    let hi = loaded.get_element("greeters.Hi").unwrap();
    let err = hi
        .call(
            "ask",
            json!({"element": "greeters.Nobody", "method": "greet"}),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no element named `greeters.Nobody`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_panicking_plugin_call_is_an_error_and_every_element_keeps_serving() {
    let (_app, loaded) = hello_app();
    let hi = loaded.get_element("greeters.Hi").unwrap();
    let err = hi.call("explode", json!(null)).await.unwrap_err();
    let CallError::Failed {
        element,
        method,
        message,
        ..
    } = &err
    else {
        panic!("expected Failed, got {err:?}")
    };
    assert_eq!(
        (element.as_str(), method.as_str()),
        ("greeters.Hi", "explode")
    );
    assert!(
        message.contains("plugin panicked: greeters.Hi was asked to explode"),
        "{message}"
    );
    // The same instance and its siblings still answer.
    assert_eq!(
        hi.call("greet", json!({"name": "Ann"})).await.unwrap(),
        json!("Howdy, Ann!")
    );
    let ola = loaded.get_element("greeters.Ola").unwrap();
    assert_eq!(
        ola.call("greet", json!({"name": "Ana"})).await.unwrap(),
        json!("Olá, Ana!")
    );
}

fn garbage_app() -> TestApp {
    let app = TestApp::new();
    let f = |n: &str| json!({"name": n});
    app.json("testing/Meta/e.json", json!({"title": "Testing"}))
        .json(
            "testing/GarbageType/e.json",
            json!({"title": "Garbage", "kind": "Type", "type": "testing.Meta", "functionList": [
                f("notJson"), f("notUtf8"), f("badStatus"), f("nullBuffer"), f("emptyAnswer"), f("malformedError"), f("ok")
            ]}),
        )
        .json("testing/G/e.json", json!({"title": "G", "type": "testing.GarbageType"}));
    app.plugin("plugin-test-garbage", None);
    app
}

#[tokio::test]
async fn every_kind_of_garbage_answer_is_a_clear_error() {
    let app = garbage_app();
    let loaded = load(app.root());
    let g = loaded.get_element("testing.G").unwrap();
    let cases = [
        ("notJson", "notJson returned invalid JSON"),
        ("notUtf8", "notUtf8 returned bytes that are not UTF-8"),
        ("badStatus", "badStatus returned unknown status 42"),
        ("nullBuffer", "returned a null buffer of length 16"),
        (
            "emptyAnswer",
            "emptyAnswer returned an empty answer instead of JSON",
        ),
    ];
    for (method, expected) in cases {
        let err = g.call(method, json!(null)).await.unwrap_err().to_string();
        assert!(
            err.contains("broke the ABI contract") && err.contains(expected),
            "{method}: {err}"
        );
    }
    let err = g
        .call("malformedError", json!(null))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("failed with a malformed error: `it went wrong`"),
        "{err}"
    );
    // After all that, a proper answer still comes through.
    assert_eq!(
        g.call("ok", json!(null)).await.unwrap(),
        json!({"fine": true})
    );
}

/// A stand-in for the built-in `corps.QywxInnerType`: answers every method
/// with its name and records the calls.
struct RecordingQywx {
    calls: Arc<Mutex<Vec<String>>>,
}

struct RecordingQywxElement {
    name: String,
    calls: Arc<Mutex<Vec<String>>>,
}

impl TypeImpl for RecordingQywx {
    fn type_name(&self) -> &str {
        "corps.QywxInnerType"
    }
    fn instantiate(&self, ctx: InstanceContext) -> Result<Arc<dyn Element>, String> {
        Ok(Arc::new(RecordingQywxElement {
            name: ctx.define.full_name.clone(),
            calls: self.calls.clone(),
        }))
    }
}

impl Element for RecordingQywxElement {
    fn call<'a>(&'a self, method: &'a str, _args: Value) -> CallFuture<'a> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(method.to_string());
            Ok(json!({"by": "built-in", "method": method, "element": self.name}))
        })
    }
    fn property(&self, name: &str) -> Option<Value> {
        (name == "authConfig").then(|| json!({"corpId": "ww1", "secret": "******"}))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The qywx-audit example app's Type, with an instance of it.
fn audited_app() -> TestApp {
    let app = TestApp::new();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/plugins/qywx-audit/app/corps/AuditedQywxType/e.json");
    let type_json: Value =
        serde_json::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    app.json("corps/AuditedQywxType/e.json", type_json)
        .json(
            "corps/Wecom/e.json",
            json!({"title": "Our WeCom", "type": "corps.AuditedQywxType"}),
        )
        .json(
            "corps/Wecom/Wecom.json",
            json!({"corpId": "ww1", "agentId": "1000002", "secret": "s3cr3t"}),
        );
    app.plugin("plugin-qywx-audit", None);
    app
}

/// Loads `app` over a built-in corps.QywxInnerType that records the methods
/// called on it.
fn load_over_recording_qywx(app: &TestApp) -> (App, Arc<Mutex<Vec<String>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let base: Vec<Arc<dyn TypeImpl>> = vec![Arc::new(RecordingQywx {
        calls: calls.clone(),
    })];
    (load_with(app.root(), base, None, &Logs::default()), calls)
}

#[tokio::test]
async fn an_extending_plugin_overrides_one_method_and_calls_the_parent_version() {
    let app = audited_app();
    let (loaded, calls) = load_over_recording_qywx(&app);
    assert_no_errors(&loaded);
    let wecom = loaded.get_element("corps.Wecom").unwrap();
    let report = wecom.call("syncCorp", json!(null)).await.unwrap();
    assert_eq!(
        report,
        json!({"by": "built-in", "method": "syncCorp", "element": "corps.Wecom"})
    );
    assert_eq!(*calls.lock().unwrap(), ["syncCorp"]);
    let audit = std::fs::read_to_string(app.root().join(".jit/sync-audit.jsonl")).unwrap();
    let line: Value = serde_json::from_str(audit.trim()).unwrap();
    assert_eq!(line["element"], "corps.Wecom");
    assert_eq!(line["ok"], true);
    assert_eq!(line["report"], report);
}

#[tokio::test]
async fn methods_the_plugin_does_not_export_go_to_the_parent_type() {
    let app = audited_app();
    let (loaded, calls) = load_over_recording_qywx(&app);
    let wecom = loaded.get_element("corps.Wecom").unwrap();
    let info = wecom.call("getCorpInfo", json!(null)).await.unwrap();
    assert_eq!(info["by"], "built-in");
    assert_eq!(*calls.lock().unwrap(), ["getCorpInfo"]);
    assert!(!app.root().join(".jit/sync-audit.jsonl").exists());
    // Properties come from the parent too.
    assert_eq!(wecom.property("authConfig").unwrap()["secret"], "******");
    let el = wecom.downcast_ref::<PluginElement>().unwrap();
    assert_eq!(el.parent().unwrap().0, "corps.QywxInnerType");
    assert_eq!(el.plugin_methods(), ["syncCorp"]);
}

#[tokio::test]
async fn an_extending_plugin_without_an_implemented_parent_refuses_to_build() {
    let app = audited_app();
    // No built-in corps.QywxInnerType registered.
    let loaded = load(app.root());
    let err = loaded.get_element("corps.Wecom").unwrap_err().to_string();
    assert!(err.contains("must extend an implemented Type"), "{err}");
}

/// Records what plugins asked of the corps services.
#[derive(Default)]
struct RecordingCorps {
    synced: Mutex<Vec<(String, CorpSnapshot, Value)>>,
}

#[async_trait]
impl CorpServices for RecordingCorps {
    async fn sync_snapshot(
        &self,
        corp: &CorpContext,
        snapshot: CorpSnapshot,
        options: Value,
    ) -> Result<Value, String> {
        let report = json!({"corp": corp.full_name, "members": snapshot.members.len(), "depts": snapshot.depts.len()});
        self.synced
            .lock()
            .unwrap()
            .push((corp.full_name.clone(), snapshot, options));
        Ok(report)
    }
    async fn local_corp_data(&self, corp: &CorpContext) -> Result<Value, String> {
        Ok(json!({"corp": {"fullName": corp.full_name, "type": corp.type_name}, "userList": []}))
    }
}

fn hr_app() -> TestApp {
    let app = TestApp::new();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/plugins/json-file-corp/app");
    for rel in [
        "corps/JsonFileType/e.json",
        "corps/HrCorp/e.json",
        "corps/HrCorp/HrCorp.json",
        "corps/HrCsvCorp/e.json",
        "corps/HrCsvCorp/HrCsvCorp.json",
        "hr/export.json",
        "hr/departments.csv",
        "hr/members.csv",
    ] {
        let dst = app.root().join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(example.join(rel), dst).unwrap();
    }
    app.plugin("plugin-json-file-corp", None);
    app
}

/// Loads `app` with corps services that record what plugins ask of them.
fn load_with_recording_corps(app: &TestApp) -> (App, Arc<RecordingCorps>) {
    let corps = Arc::new(RecordingCorps::default());
    let services: Arc<dyn CorpServices> = corps.clone();
    let loaded = load_with(app.root(), Vec::new(), Some(services), &Logs::default());
    (loaded, corps)
}

#[tokio::test]
async fn json_file_corp_syncs_the_hr_export_through_the_corps_services() {
    let app = hr_app();
    let (loaded, corps) = load_with_recording_corps(&app);
    assert_no_errors(&loaded);
    let hr = loaded.get_element("corps.HrCorp").unwrap();
    let report = hr.call("syncCorp", json!(null)).await.unwrap();
    assert_eq!(
        report,
        json!({"corp": "corps.HrCorp", "members": 4, "depts": 3})
    );
    let synced = corps.synced.lock().unwrap();
    let (_, snap, options) = &synced[0];
    assert_eq!(snap.corp_id, "acme-hr");
    assert_eq!(options["provider"], "hrfile");
    assert!(snap.members["0007"].depts.iter().any(|d| d.is_leader));
    assert_eq!(snap.members["0009"].status, jit_org::MemberStatus::Offline);
}

#[tokio::test]
async fn json_file_corp_syncs_a_csv_export_the_same_way() {
    let app = hr_app();
    let (loaded, corps) = load_with_recording_corps(&app);
    let hr = loaded.get_element("corps.HrCsvCorp").unwrap();
    let report = hr.call("syncCorp", json!(null)).await.unwrap();
    assert_eq!(
        report,
        json!({"corp": "corps.HrCsvCorp", "members": 3, "depts": 3})
    );
    let synced = corps.synced.lock().unwrap();
    let (_, snap, _) = &synced[0];
    assert_eq!(snap.corp_id, "acme-hr-csv");
    assert_eq!(snap.depts[&3].name, "Sales, Europe");
    assert_eq!(snap.members["0008"].depts.len(), 2);
}

#[tokio::test]
async fn json_file_corp_reads_local_data_from_the_corps_services() {
    let app = hr_app();
    let corps = Arc::new(RecordingCorps::default());
    let loaded = load_with(app.root(), Vec::new(), Some(corps), &Logs::default());
    let hr = loaded.get_element("corps.HrCorp").unwrap();
    let local = hr.call("getLocalCorpData", json!(null)).await.unwrap();
    assert_eq!(
        local["corp"],
        json!({"fullName": "corps.HrCorp", "type": "corps.JsonFileType"})
    );
}

#[tokio::test]
async fn json_file_corp_without_corps_services_says_so() {
    let app = hr_app();
    let loaded = load(app.root());
    let hr = loaded.get_element("corps.HrCorp").unwrap();
    let err = hr
        .call("syncCorp", json!(null))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("corps.syncSnapshot is unavailable"), "{err}");
    // Methods that need no host service still work.
    let root = hr.call("getRootDept", json!(null)).await.unwrap();
    assert_eq!(
        root,
        json!({"deptId": 1, "name": "Acme", "corpFullName": "corps.HrCorp"})
    );
}

#[tokio::test]
async fn a_config_the_plugin_schema_rejects_is_an_invalid_config() {
    let app = hr_app();
    app.json(
        "corps/HrCorp/HrCorp.json",
        json!({"fiel": "hr/export.json"}),
    );
    let loaded = load(app.root());
    assert!(
        loaded
            .diagnostics()
            .iter()
            .any(|d| d.code == jit_core::DiagCode::InvalidConfig
                && d.element.as_deref() == Some("corps.HrCorp")),
        "{:?}",
        loaded.diagnostics()
    );
    assert!(loaded.get_element("corps.HrCorp").is_err());
}
