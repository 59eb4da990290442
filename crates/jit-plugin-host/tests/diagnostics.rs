//! Loading problems: each becomes a `plugin` diagnostic naming the file,
//! and the rest of the app still loads.

use crate::common;

use common::*;
use jit_core::Severity;
use jit_plugin_host::{inspect_library, PluginLoadError};
use serde_json::json;

#[test]
fn a_plugin_type_reports_its_library_as_origin() {
    let app = TestApp::new();
    greeters(&app, json!({}));
    let lib = app.plugin("plugin-hello", None);
    let loaded = load(app.root());
    assert_no_errors(&loaded);
    let info = loaded.element_info("greeters.Hi").unwrap();
    let (type_name, origin) = info.implemented_by.unwrap();
    assert_eq!(type_name, "greeters.HelloType");
    assert_eq!(origin, lib.canonicalize().unwrap().display().to_string());
}

#[test]
fn inspect_library_reports_name_version_abi_and_types() {
    let info = inspect_library(&library("plugin-hello")).unwrap();
    assert_eq!(info.name, "plugin-hello");
    assert_eq!(info.version, "0.1.0");
    assert_eq!(
        info.abi,
        (jit_plugin_abi::ABI_MAJOR, jit_plugin_abi::ABI_MINOR)
    );
    assert_eq!(info.types.len(), 1);
    assert_eq!(info.types[0].full_name, "greeters.HelloType");
    assert_eq!(info.types[0].methods, ["greet", "ask", "explode"]);
    assert!(info.types[0].config_schema.is_some());
}

#[test]
fn abi_major_mismatch_is_reported_with_expected_and_found() {
    let app = TestApp::new();
    greeters(&app, json!({}));
    let lib = app.plugin("plugin-test-abi-v2", None);
    let loaded = load(app.root());
    let d = sole_plugin_diagnostic(&loaded);
    assert_eq!(d.file, lib);
    assert_says(&d, &["expected major 1, found 2", "ABI 2.3"]);
    assert_eq!(
        inspect_library(&lib).unwrap_err(),
        PluginLoadError::AbiMismatch {
            path: lib.canonicalize().unwrap(),
            expected_major: 1,
            found_major: 2,
            found_minor: 3
        }
    );
}

#[test]
fn a_library_without_the_entry_symbol_is_not_a_plugin() {
    let app = TestApp::new();
    let lib = app.plugin("plugin-test-no-entry", None);
    let d = sole_plugin_diagnostic(&load(app.root()));
    assert_eq!(d.file, lib);
    assert_says(&d, &["has no `jit_plugin_entry` symbol"]);
}

#[test]
fn a_file_that_is_not_a_library_is_reported_as_not_loadable() {
    let app = TestApp::new();
    let fake = app
        .root()
        .join("plugins")
        .join(format!("notes.{}", std::env::consts::DLL_EXTENSION));
    std::fs::create_dir_all(fake.parent().unwrap()).unwrap();
    std::fs::write(&fake, "these are my notes, not a library").unwrap();
    let d = sole_plugin_diagnostic(&load(app.root()));
    assert_eq!(d.file, fake);
    assert_says(&d, &["is not a loadable library"]);
}

#[test]
fn a_missing_library_listed_in_app_json_is_reported_at_its_entry() {
    let app = TestApp::new();
    app.json(
        "app.json",
        json!({"appId": "t.app", "plugins": ["plugins/libgone.so"]}),
    );
    let loaded = load(app.root());
    let d = sole_plugin_diagnostic(&loaded);
    assert_eq!(d.file, app.root().join("app.json"));
    assert_eq!(d.pointer, "/plugins/0");
    assert_says(&d, &["libgone.so not found"]);
}

#[test]
fn app_json_entries_without_extension_get_the_platform_naming() {
    let app = TestApp::new();
    greeters(&app, json!({}));
    let built = library("plugin-hello");
    let without_ext = built.with_file_name("plugin_hello");
    app.json(
        "app.json",
        json!({"appId": "t.app", "plugins": [without_ext.display().to_string()]}),
    );
    let loaded = load(app.root());
    assert_no_errors(&loaded);
    assert!(loaded.get_element("greeters.Hi").is_ok());
}

#[test]
fn a_type_naming_a_plugin_that_does_not_export_it_is_reported() {
    let app = TestApp::new();
    greeters(&app, json!({}));
    app.json(
        "corps/FileType/e.json",
        json!({"title": "File org", "kind": "Type", "type": "corps.Meta", "plugin": "plugin-hello"}),
    );
    app.plugin("plugin-hello", None);
    let loaded = load(app.root());
    let d = sole_plugin_diagnostic(&loaded);
    assert_eq!(d.file, app.root().join("corps/FileType/e.json"));
    assert_eq!(d.pointer, "/plugin");
    assert_eq!(d.element.as_deref(), Some("corps.FileType"));
    assert_says(
        &d,
        &[
            "Type `corps.FileType` is not exported by plugin plugin-hello",
            "it exports: greeters.HelloType",
        ],
    );
    // The other plugin Type still works.
    assert!(loaded.get_element("greeters.Hi").is_ok());
}

#[test]
fn a_type_naming_an_unknown_plugin_lists_the_loaded_ones() {
    let app = TestApp::new();
    greeters(&app, json!({"plugin": "hello-world"}));
    app.plugin("plugin-hello", None);
    let d = sole_plugin_diagnostic(&load(app.root()));
    assert_says(&d, &["names plugin `hello-world`", "loaded: plugin-hello"]);
}

#[test]
fn a_type_exported_twice_by_one_library_is_refused() {
    let app = TestApp::new();
    app.json("testing/Meta/e.json", json!({"title": "Testing"}))
        .json(
            "testing/DupType/e.json",
            json!({"title": "Dup", "kind": "Type", "type": "testing.Meta", "functionList": [{"name": "ok"}]}),
        )
        .json("testing/D/e.json", json!({"title": "D", "type": "testing.DupType"}));
    app.plugin("plugin-test-garbage", None);
    let loaded = load(app.root());
    let diags = plugin_diagnostics(&loaded);
    let dup: Vec<_> = diags
        .iter()
        .filter(|d| d.message.contains("`testing.DupType` 2 times"))
        .collect();
    assert_eq!(dup.len(), 1, "{diags:?}");
    assert_eq!(dup[0].severity, Severity::Error);
    // Without an implementation the instance cannot be built.
    assert!(loaded.get_element("testing.D").is_err());
}

#[test]
fn a_type_exported_by_two_libraries_must_name_one() {
    let app = TestApp::new();
    greeters(&app, json!({}));
    app.plugin("plugin-hello", None);
    app.plugin("plugin-hello", Some(&library_file_name("hello_copy")));
    let loaded = load(app.root());
    let d = sole_plugin_diagnostic(&loaded);
    assert_says(&d, &["exported by several plugin libraries"]);
    assert!(loaded.get_element("greeters.Hi").is_err());
}

#[test]
fn the_plugin_field_picks_one_of_two_libraries_by_file_name() {
    let app = TestApp::new();
    greeters(&app, json!({"plugin": "hello_copy"}));
    app.plugin("plugin-hello", None);
    let copy = app.plugin("plugin-hello", Some(&library_file_name("hello_copy")));
    let loaded = load(app.root());
    assert_no_errors(&loaded);
    let (_, origin) = loaded
        .element_info("greeters.Hi")
        .unwrap()
        .implemented_by
        .unwrap();
    assert_eq!(origin, copy.canonicalize().unwrap().display().to_string());
}

#[test]
fn an_export_without_a_type_element_is_a_warning() {
    let app = TestApp::new();
    let lib = app.plugin("plugin-hello", None);
    let d = sole_plugin_diagnostic(&load(app.root()));
    assert_eq!(d.severity, Severity::Warning);
    assert_eq!(d.file, lib);
    assert_says(&d, &["greeters/HelloType/e.json"]);
}

#[test]
fn a_bad_library_does_not_stop_the_good_ones() {
    let app = TestApp::new();
    greeters(&app, json!({}));
    app.plugin("plugin-test-abi-v2", None);
    app.plugin("plugin-test-no-entry", None);
    app.plugin("plugin-hello", None);
    let loaded = load(app.root());
    assert_eq!(plugin_diagnostics(&loaded).len(), 2);
    assert!(loaded.get_element("greeters.Hi").is_ok());
}
