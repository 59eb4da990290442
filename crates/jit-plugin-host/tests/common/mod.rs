//! Shared by the plugin integration tests: builds the example plugins and
//! writes small apps.

#![allow(dead_code)]

use jit_core::{App, Diagnostic, LoadOptions, TypeImpl, TypeRegistry};
use jit_plugin_host::{CorpServices, LogSink, PluginLog, PluginProvider};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

/// The example plugin packages the tests load.
const PACKAGES: &[&str] = &[
    "plugin-hello",
    "plugin-json-file-corp",
    "plugin-qywx-audit",
    "plugin-test-garbage",
    "plugin-test-abi-v2",
    "plugin-test-no-entry",
];

/// Builds the example plugins once (a no-op when `cargo test --workspace`
/// already built them) and returns each package's library file, as cargo
/// reports it, so the test never guesses the target directory.
pub fn library(package: &str) -> PathBuf {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(&root)
            .args(["build", "--message-format=json"]);
        for p in PACKAGES {
            cmd.args(["-p", p]);
        }
        let out = cmd
            .output()
            .expect("run cargo build for the example plugins");
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
            let is_cdylib = msg["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
            if !is_cdylib {
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
        .unwrap_or_else(|| panic!("cargo reported no library for {package}; got {built:?}"))
        .clone()
}

/// A throw-away app folder.
pub struct TestApp {
    pub dir: tempfile::TempDir,
}

impl TestApp {
    pub fn new() -> TestApp {
        TestApp {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a JSON file at `rel`.
    pub fn json(&self, rel: &str, v: Value) -> &TestApp {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
        self
    }

    /// Copies a built library into `<app>/plugins/` (optionally renamed).
    pub fn plugin(&self, package: &str, file_name: Option<&str>) -> PathBuf {
        let src = library(package);
        let dir = self.root().join("plugins");
        std::fs::create_dir_all(&dir).unwrap();
        let dst = dir.join(
            file_name
                .map(str::to_string)
                .unwrap_or_else(|| src.file_name().unwrap().to_string_lossy().into_owned()),
        );
        std::fs::copy(&src, &dst).unwrap();
        dst
    }
}

/// Collects plugin log lines.
#[derive(Clone, Default)]
pub struct Logs(pub Arc<Mutex<Vec<String>>>);

impl Logs {
    pub fn sink(&self) -> LogSink {
        let lines = self.0.clone();
        Arc::new(move |l: &PluginLog<'_>| {
            lines.lock().unwrap().push(format!(
                "{} {}: {}",
                l.level.as_str(),
                l.element,
                l.message
            ));
        })
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Loads an app with the plugin provider over `base` built-ins.
pub fn load_with(
    root: &Path,
    base: Vec<Arc<dyn TypeImpl>>,
    corp: Option<Arc<dyn CorpServices>>,
    logs: &Logs,
) -> App {
    let mut registry = TypeRegistry::new();
    for t in base {
        registry.register(t);
    }
    let mut provider = PluginProvider::new(registry.clone()).with_log_sink(logs.sink());
    if let Some(c) = corp {
        provider = provider.with_corp_services(c);
    }
    registry.add_provider(Arc::new(provider));
    App::load(
        root,
        LoadOptions {
            registry,
            env: Some(HashMap::new()),
            skip_startup: false,
        },
    )
    .unwrap()
}

/// Loads an app with plugins only.
pub fn load(root: &Path) -> App {
    load_with(root, Vec::new(), None, &Logs::default())
}

/// The plugin diagnostics of an app, as display strings.
pub fn plugin_diagnostics(app: &App) -> Vec<Diagnostic> {
    app.diagnostics()
        .iter()
        .filter(|d| d.code == jit_core::DiagCode::Plugin)
        .cloned()
        .collect()
}

/// An app of the greeters family implemented by plugin-hello, loaded; the
/// `TestApp` holds its folder, so keep it as long as the app.
pub fn hello_app() -> (TestApp, App) {
    let app = TestApp::new();
    greeters(&app, serde_json::json!({}));
    app.plugin("plugin-hello", None);
    let loaded = load(app.root());
    (app, loaded)
}

/// The one plugin diagnostic of an app; fails unless there is exactly one.
pub fn sole_plugin_diagnostic(app: &App) -> Diagnostic {
    let diags = plugin_diagnostics(app);
    assert_eq!(diags.len(), 1, "{diags:?}");
    diags[0].clone()
}

/// Fails unless the diagnostic's message says every one of `texts`.
pub fn assert_says(d: &Diagnostic, texts: &[&str]) {
    let missing: Vec<&&str> = texts.iter().filter(|t| !d.message.contains(**t)).collect();
    assert!(missing.is_empty(), "{}", d.message);
}

/// Fails unless the app loaded without an error.
pub fn assert_no_errors(app: &App) {
    assert!(!app.diagnostics().has_errors(), "{:?}", app.diagnostics());
}

/// `name` as the platform names a library file (`libname.so`, `name.dll`).
pub fn library_file_name(name: &str) -> String {
    use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};
    format!("{DLL_PREFIX}{name}{DLL_SUFFIX}")
}

/// Declares the greeters family: Meta, the plugin Type and one instance.
pub fn greeters(app: &TestApp, type_extra: Value) {
    let mut t = serde_json::json!({
        "title": "Hello type", "kind": "Type", "type": "greeters.Meta",
        "functionList": [
            {"name": "greet", "args": [{"name": "name", "dataType": "Stext"}], "returnType": "Stext"},
            {"name": "ask", "args": [
                {"name": "element", "dataType": "Stext"},
                {"name": "method", "dataType": "Stext"},
                {"name": "args", "dataType": "JitDict", "required": false}
            ]},
            {"name": "explode", "args": []}
        ]
    });
    if let (Some(t), Some(extra)) = (t.as_object_mut(), type_extra.as_object()) {
        for (k, v) in extra {
            t.insert(k.clone(), v.clone());
        }
    }
    app.json(
        "greeters/Meta/e.json",
        serde_json::json!({"title": "Greeters"}),
    )
    .json("greeters/HelloType/e.json", t);
    greeter(app, "Hi", "Howdy");
    greeter(app, "Ola", "Olá");
}

/// Declares `greeters.<name>`, an instance of the plugin Type configured
/// to greet with `greeting`.
fn greeter(app: &TestApp, name: &str, greeting: &str) {
    let decl = serde_json::json!({"title": name, "type": "greeters.HelloType"});
    app.json(&format!("greeters/{name}/e.json"), decl).json(
        &format!("greeters/{name}/{name}.json"),
        serde_json::json!({"greeting": greeting}),
    );
}
