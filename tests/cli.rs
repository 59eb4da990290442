//! The `jit` command as a user runs it.

use crate::support;

use serde_json::{json, Value};
use std::process::{Command, Output};
use support::Fixture;

fn jit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jit"))
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run jit")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn valid_app(f: &Fixture) {
    f.json(
        "app.json",
        json!({"appId": "t.cli", "title": "CLI test app"}),
    );
    f.json(
        "corps/Acme/e.json",
        json!({"title": "Acme WeCom", "type": "corps.QywxInnerType"}),
    );
    f.json(
        "corps/Acme/Acme.json",
        json!({"corpId": "ww0001", "agentId": "1000002", "secret": "s3cr3t-value"}),
    );
    f.json(
        "corps/Nail/e.json",
        json!({"title": "Nail DingTalk", "type": "corps.DDInnerType",
        "frontBundleEntry": "./Nail.json"}),
    );
    f.json(
        "corps/Nail/Nail.json",
        json!({"authConfig": {"corpId": "ding01", "agentId": 7, "appKey": "dingkey", "appSecret": "dd-secret"}}),
    );
}

#[test]
fn check_exits_zero_on_a_valid_app() {
    let f = Fixture::new();
    valid_app(&f);
    let out = jit(&["check", f.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("0 error(s)"), "{}", stdout(&out));
}

#[test]
fn check_names_file_pointer_and_cause_and_exits_non_zero() {
    let f = Fixture::new();
    valid_app(&f);
    f.json(
        "corps/Acme/Acme.json",
        json!({"corpId": "ww0001", "agentId": "1000002"}),
    );
    let out = jit(&["check", f.path().to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let d = &report["diagnostics"][0];
    assert!(
        d["file"]
            .as_str()
            .unwrap()
            .ends_with("corps/Acme/Acme.json"),
        "{d}"
    );
    assert_eq!(d["code"], "invalid-config");
    assert!(report["errors"].as_u64().unwrap() >= 1);
}

#[test]
fn check_defaults_to_the_current_folder() {
    let f = Fixture::new();
    valid_app(&f);
    let out = Command::new(env!("CARGO_BIN_EXE_jit"))
        .arg("check")
        .current_dir(f.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn ls_lists_full_name_kind_type_meta_and_title() {
    let f = Fixture::new();
    valid_app(&f);
    let out = jit(&["ls", f.path().to_str().unwrap()]);
    assert!(out.status.success());
    let text = stdout(&out);
    let acme = text
        .lines()
        .find(|l| l.starts_with("corps.Acme "))
        .expect(&text);
    for word in [
        "Instance",
        "corps.QywxInnerType",
        "corps.Meta",
        "Acme WeCom",
    ] {
        assert!(acme.contains(word), "{acme}");
    }
    assert!(
        text.lines().any(|l| l.starts_with("corps.DDInnerType ")),
        "framework types are listed"
    );
}

#[test]
fn ls_and_show_work_on_an_app_that_overrides_and_extends_official_types() {
    let f = Fixture::new();
    valid_app(&f);
    // Override the official WeCom Type's declaration ...
    f.json("corps/QywxInnerType/e.json", json!({"title": "Our WeCom type", "kind": "Type", "type": "corps.Meta",
        "configSchema": "corps.QywxInnerType.config.schema.json",
        "functionList": [{"name": "syncCorp", "title": "Sync (our wording)"}, {"name": "getCorpInfo"}]}));
    // ... and extend the DingTalk one.
    f.json(
        "corps/MyDDType/e.json",
        json!({"title": "Our DingTalk type", "kind": "Type", "type": "corps.DDInnerType"}),
    );
    f.json(
        "corps/Branch/e.json",
        json!({"title": "Branch", "type": "corps.MyDDType"}),
    );
    f.json(
        "corps/Branch/Branch.json",
        json!({"corpId": "ding02", "agentId": "8", "appKey": "k", "appSecret": "hidden-value"}),
    );
    let check = jit(&["check", f.path().to_str().unwrap()]);
    assert!(check.status.success(), "{}", stdout(&check));
    let ls = stdout(&jit(&["ls", f.path().to_str().unwrap()]));
    let over = ls
        .lines()
        .find(|l| l.starts_with("corps.QywxInnerType "))
        .unwrap();
    assert!(over.contains("Our WeCom type"), "{over}");
    let show = jit(&["show", "corps.Branch", "--app", f.path().to_str().unwrap()]);
    let text = stdout(&show);
    assert!(show.status.success(), "{}", stderr(&show));
    assert!(
        text.contains("corps.Branch → corps.MyDDType → corps.DDInnerType → corps.Meta"),
        "{text}"
    );
    assert!(
        text.contains("bulkRegister(corpData: CorpData, memberList?: list)"),
        "{text}"
    );
    assert!(!text.contains("hidden-value"), "secrets are masked: {text}");
    assert!(text.contains("******"));
}

#[test]
fn show_masks_secrets_in_json_output_too() {
    let f = Fixture::new();
    valid_app(&f);
    let out = jit(&[
        "show",
        "corps.Nail",
        "--app",
        f.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["config"]["authConfig"]["appSecret"], "******");
    assert_eq!(v["config"]["authConfig"]["appKey"], "dingkey");
    assert_eq!(v["element"]["chain"][1], "corps.DDInnerType");
}

#[test]
fn show_suggests_close_names_for_unknown_elements() {
    let f = Fixture::new();
    valid_app(&f);
    let out = jit(&["show", "corps.Acmee", "--app", f.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("did you mean corps.Acme"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn call_rejects_invalid_args_json_with_a_clear_message() {
    let f = Fixture::new();
    valid_app(&f);
    let out = jit(&[
        "call",
        "corps.Acme",
        "getCorpInfo",
        "--app",
        f.path().to_str().unwrap(),
        "--args",
        "{oops",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--args is not valid JSON"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_cli_arguments_exit_with_usage() {
    let out = jit(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Usage"), "{}", stderr(&out));
}

#[test]
fn check_never_prints_the_secret_of_an_invalid_config() {
    let f = Fixture::new();
    valid_app(&f);
    // A typo in `corpId` fails the schema's `oneOf`, whose message quotes
    // the whole config object; a secret of the wrong type is quoted alone.
    f.json(
        "corps/Acme/Acme.json",
        json!({"corpid": "ww0001", "agentId": "1000002", "secret": "s3cr3t-value"}),
    );
    f.json(
        "corps/Nail/Nail.json",
        json!({"authConfig": {"corpId": "ding01", "agentId": 7, "appKey": "dingkey", "appSecret": 424242}}),
    );
    for format in ["text", "json"] {
        let out = jit(&["check", f.path().to_str().unwrap(), "--format", format]);
        assert_eq!(out.status.code(), Some(1));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(all.contains("corps/Acme/Acme.json"), "{all}");
        assert!(all.contains("corps/Nail/Nail.json"), "{all}");
        assert!(!all.contains("s3cr3t-value"), "{all}");
        assert!(!all.contains("424242"), "{all}");
        assert!(all.contains("******"), "{all}");
    }
}

/// An app whose `plugins/` holds a file the OS loader would be asked to
/// open (a text file named like a library).
fn app_with_a_plugin_file(f: &Fixture) -> String {
    valid_app(f);
    let lib = format!(
        "plugins/{}notalib{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    f.text(&lib, "this is a text file, not a library\n");
    lib
}

#[test]
fn check_says_which_plugin_libraries_it_opened() {
    let f = Fixture::new();
    let lib = app_with_a_plugin_file(&f);
    let out = jit(&["check", f.path().to_str().unwrap()]);
    let s = stdout(&out);
    assert!(!out.status.success(), "a text file is no plugin: {s}");
    assert!(s.contains("plugins: opened 1 library"), "{s}");
    assert!(s.contains(&lib), "{s}");
}

#[test]
fn check_with_no_plugins_opens_no_library_and_says_so() {
    let f = Fixture::new();
    app_with_a_plugin_file(&f);
    let out = jit(&["check", f.path().to_str().unwrap(), "--no-plugins"]);
    let s = stdout(&out);
    assert!(out.status.success(), "{s}{}", stderr(&out));
    assert!(s.contains("plugins: none opened (--no-plugins)"), "{s}");
    assert!(!s.contains("notalib"), "the file was never looked at: {s}");
    let json_out = jit(&[
        "check",
        f.path().to_str().unwrap(),
        "--no-plugins",
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(v["plugins"], json!({"opened": false, "libraries": []}));
}

#[test]
fn check_with_no_plugins_reports_plugin_instances_as_unchecked_warnings() {
    let f = Fixture::new();
    valid_app(&f);
    f.json(
        "greeters/HelloType/e.json",
        json!({"title": "Hello", "kind": "Type", "type": "corps.Meta"}),
    )
    .json(
        "greeters/Hi/e.json",
        json!({"title": "Hi", "type": "greeters.HelloType"}),
    );
    let out = jit(&["check", f.path().to_str().unwrap(), "--no-plugins"]);
    let s = stdout(&out);
    assert!(out.status.success(), "{s}");
    assert!(s.contains("not checked"), "{s}");
}

#[test]
fn ls_with_no_plugins_opens_no_library() {
    let f = Fixture::new();
    app_with_a_plugin_file(&f);
    let out = jit(&["ls", f.path().to_str().unwrap(), "--no-plugins"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("plugins: none opened"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("notalib"), "{}", stderr(&out));
}

/// `sync.timeoutSecs` once reached `Duration::from_secs_f64` unbounded,
/// which panics on a huge value when the element is built.
#[test]
fn a_huge_sync_timeout_is_a_config_error_not_a_panic() {
    let f = Fixture::new();
    valid_app(&f);
    f.json(
        "corps/Acme/Acme.json",
        json!({"corpId": "ww0001", "agentId": "1000002", "secret": "s3cr3t-value",
               "sync": {"timeoutSecs": 1e300}}),
    );
    let app = f.path().to_str().unwrap();
    let check = jit(&["check", app]);
    let s = stdout(&check);
    assert_eq!(check.status.code(), Some(1), "{s}{}", stderr(&check));
    assert!(s.contains("/sync/timeoutSecs"), "{s}");
    let call = jit(&["call", "corps.Acme", "getCorpInfo", "--app", app]);
    let e = stderr(&call);
    assert!(!call.status.success());
    assert!(!e.contains("panicked"), "{e}");
    assert!(e.contains("/sync/timeoutSecs"), "{e}");
}
