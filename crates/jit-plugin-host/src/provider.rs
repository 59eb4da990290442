//! Finding an app's plugin libraries and matching their Types with the
//! app's Type elements.

use crate::instance::{Parents, PluginTypeImpl};
use crate::library::{self, LoadedLibrary, PluginLoadError};
use crate::services::{stderr_log_sink, CorpServices, LogSink};
use jit_core::{
    AppView, DiagCode, Diagnostic, ElementDefine, ElementKind, ProvidedTypes, Severity, TypeImpl,
    TypeProvider, TypeRegistry,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Loads an app's plugin libraries and provides their Types.
///
/// Libraries come from `<app>/plugins/` (every file with the platform's
/// library extension), from the `"plugins"` list of `app.json` (paths
/// relative to the app), and from a path in a Type's `"plugin"` field. Each
/// library is opened once per process and never unloaded.
pub struct PluginProvider {
    base: TypeRegistry,
    corp: Option<Arc<dyn CorpServices>>,
    log: LogSink,
    opened: Mutex<Vec<PathBuf>>,
}

impl PluginProvider {
    /// A provider whose plugin Types extend the Types of `base` (the
    /// built-in implementations; pass the registry before adding this
    /// provider to it).
    pub fn new(base: TypeRegistry) -> PluginProvider {
        PluginProvider {
            base,
            corp: None,
            log: stderr_log_sink(),
            opened: Mutex::new(Vec::new()),
        }
    }

    /// Every library file this provider handed to the OS loader, in order,
    /// whether or not it turned out to be a usable plugin: opening a library
    /// runs its native initialisers, so a host that inspects an app says
    /// which code it ran (`jit check` prints them).
    pub fn opened_libraries(&self) -> Vec<PathBuf> {
        self.opened.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Serves the `corps.*` host services with `services`.
    pub fn with_corp_services(mut self, services: Arc<dyn CorpServices>) -> PluginProvider {
        self.corp = Some(services);
        self
    }

    /// Sends plugin log lines to `sink` instead of stderr.
    pub fn with_log_sink(mut self, sink: LogSink) -> PluginProvider {
        self.log = sink;
        self
    }
}

/// Where a library was declared, for diagnostics.
#[derive(Clone)]
struct Declared {
    path: PathBuf,
    file: PathBuf,
    pointer: String,
}

fn is_library_file(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()) == Some(std::env::consts::DLL_EXTENSION)
}

fn looks_like_path(s: &str) -> bool {
    s.contains('/')
        || s.contains('\\')
        || [".so", ".dylib", ".dll"].iter().any(|ext| s.ends_with(ext))
}

/// Resolves a declared library path: relative to the app; a path without an
/// extension gets the platform's prefix and suffix (`target/release/hr` →
/// `target/release/libhr.so` on Linux).
fn resolve(root: &Path, spec: &str) -> PathBuf {
    let p = root.join(spec);
    if p.exists() || p.extension().is_some() {
        return p;
    }
    match p.file_name().and_then(|n| n.to_str()) {
        Some(name) => p.with_file_name(format!(
            "{}{name}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )),
        None => p,
    }
}

/// Names a library answers to in a Type's `"plugin"` field.
fn names_of(lib: &LoadedLibrary) -> Vec<String> {
    let norm = |s: &str| s.replace('-', "_");
    let mut names = vec![norm(&lib.info.name)];
    if let Some(stem) = lib.info.path.file_stem().and_then(|s| s.to_str()) {
        names.push(norm(stem));
        if let Some(s) = stem
            .strip_prefix(std::env::consts::DLL_PREFIX)
            .filter(|_| !std::env::consts::DLL_PREFIX.is_empty())
        {
            names.push(norm(s));
        }
    }
    names
}

/// A problem with how the Type element `def` is matched to a plugin export,
/// reported on its e.json at `pointer`.
fn type_problem(def: &ElementDefine, pointer: &str, message: String) -> Diagnostic {
    Diagnostic::error(DiagCode::Plugin, &def.origin.file, pointer, message)
        .for_element(def.full_name.clone())
}

/// `items` joined with commas, or `empty` when there are none, so a message
/// never ends in an empty list.
fn joined_or(items: &[impl AsRef<str>], empty: &str) -> String {
    if items.is_empty() {
        return empty.to_string();
    }
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ")
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

impl TypeProvider for PluginProvider {
    fn provide(&self, app: &AppView<'_>) -> ProvidedTypes {
        let mut diagnostics = Vec::new();
        let manifest_file = app.root.join("app.json");

        // 1. Every declared library, once.
        let mut declared: Vec<Declared> = Vec::new();
        let plugins_dir = app.root.join("plugins");
        if let Ok(rd) = std::fs::read_dir(&plugins_dir) {
            let mut files: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| is_library_file(p))
                .collect();
            files.sort();
            for path in files {
                declared.push(Declared {
                    file: path.clone(),
                    pointer: String::new(),
                    path,
                });
            }
        }
        if let Some(list) = app.manifest.get("plugins").and_then(Value::as_array) {
            for (i, spec) in list.iter().enumerate() {
                if let Some(spec) = spec.as_str() {
                    declared.push(Declared {
                        path: resolve(app.root, spec),
                        file: manifest_file.clone(),
                        pointer: format!("/plugins/{i}"),
                    });
                }
            }
        }
        for def in app.elements.values() {
            if let Some(spec) = def
                .raw
                .get("plugin")
                .and_then(Value::as_str)
                .filter(|s| looks_like_path(s))
            {
                declared.push(Declared {
                    path: resolve(app.root, spec),
                    file: def.origin.file.clone(),
                    pointer: "/plugin".into(),
                });
            }
        }

        let mut libraries: Vec<Arc<LoadedLibrary>> = Vec::new();
        let mut seen: Vec<PathBuf> = Vec::new();
        let mut failed: Vec<PathBuf> = Vec::new();
        for d in &declared {
            let key = canonical(&d.path);
            if seen.contains(&key) {
                continue;
            }
            seen.push(key.clone());
            if d.path.exists() {
                if let Ok(mut opened) = self.opened.lock() {
                    opened.push(d.path.clone());
                }
            }
            match library::load(&d.path) {
                Ok(lib) => libraries.push(lib),
                Err(e) => {
                    failed.push(key);
                    let message = match &e {
                        PluginLoadError::NotFound { path } if d.pointer == "/plugin" => {
                            format!(
                                "this Type names plugin library {}, which does not exist",
                                path.display()
                            )
                        }
                        _ => e.to_string(),
                    };
                    diagnostics.push(Diagnostic::error(
                        DiagCode::Plugin,
                        &d.file,
                        d.pointer.clone(),
                        message,
                    ));
                }
            }
        }

        // 2. Exports by fullName; a library exporting a name twice offers none of them.
        let mut exports: BTreeMap<String, Vec<(Arc<LoadedLibrary>, usize)>> = BTreeMap::new();
        for lib in &libraries {
            let mut count: HashMap<&str, Vec<usize>> = HashMap::new();
            for t in &lib.info.types {
                count.entry(t.full_name.as_str()).or_default().push(t.index);
            }
            let mut names: Vec<(&str, Vec<usize>)> = count.into_iter().collect();
            names.sort();
            for (name, idx) in names {
                if idx.len() > 1 {
                    diagnostics.push(Diagnostic::error(
                        DiagCode::Plugin,
                        &lib.info.path,
                        "",
                        format!(
                            "plugin {} exports Type `{name}` {} times (entries {}); a Type may be exported once, so none of them is used",
                            lib.info.name,
                            idx.len(),
                            idx.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                    continue;
                }
                exports
                    .entry(name.to_string())
                    .or_default()
                    .push((lib.clone(), idx[0]));
            }
        }

        // 3. Match Type elements with exports.
        let parents = Arc::new(Parents {
            base: self.base.clone(),
            provided: OnceLock::new(),
        });
        let mut chosen: BTreeMap<String, (Arc<LoadedLibrary>, usize)> = BTreeMap::new();
        for def in app
            .elements
            .values()
            .filter(|d| d.kind == ElementKind::Type)
        {
            let name = &def.full_name;
            let offered = exports.get(name).cloned().unwrap_or_default();
            let named = def.raw.get("plugin").and_then(Value::as_str);
            let pick = match named {
                Some(spec) => {
                    let lib = if looks_like_path(spec) {
                        let key = canonical(&resolve(app.root, spec));
                        if failed.contains(&key) {
                            // Already reported where the library was declared.
                            continue;
                        }
                        libraries
                            .iter()
                            .find(|l| canonical(&l.info.path) == key)
                            .cloned()
                    } else {
                        let want = spec.replace('-', "_");
                        libraries
                            .iter()
                            .find(|l| names_of(l).contains(&want))
                            .cloned()
                    };
                    let Some(lib) = lib else {
                        let loaded: Vec<String> =
                            libraries.iter().map(|l| l.info.name.clone()).collect();
                        diagnostics.push(type_problem(
                            def,
                            "/plugin",
                            format!(
                                "this Type names plugin `{spec}`, but no loaded plugin library has that name (loaded: {}); put the library in {}/ or list it in app.json \"plugins\"",
                                joined_or(&loaded, "none"),
                                plugins_dir.display()
                            ),
                        ));
                        continue;
                    };
                    match offered.iter().find(|(l, _)| Arc::ptr_eq(l, &lib)) {
                        Some(p) => p.clone(),
                        None => {
                            let exported: Vec<&str> = lib
                                .info
                                .types
                                .iter()
                                .map(|t| t.full_name.as_str())
                                .collect();
                            if !lib.info.types.iter().any(|t| &t.full_name == name) {
                                diagnostics.push(type_problem(
                                    def,
                                    "/plugin",
                                    format!(
                                        "Type `{name}` is not exported by plugin {} ({}); it exports: {}",
                                        lib.info.name,
                                        lib.info.path.display(),
                                        joined_or(&exported, "nothing")
                                    ),
                                ));
                            }
                            continue;
                        }
                    }
                }
                None => match offered.len() {
                    0 => continue,
                    1 => offered[0].clone(),
                    _ => {
                        diagnostics.push(type_problem(
                            def,
                            "",
                            format!(
                                "Type `{name}` is exported by several plugin libraries ({}); name the one to use with \"plugin\" in this e.json",
                                offered.iter().map(|(l, _)| l.info.path.display().to_string()).collect::<Vec<_>>().join(", ")
                            ),
                        ));
                        continue;
                    }
                },
            };
            chosen.insert(name.clone(), pick);
        }

        // 4. Exports the app has no Type element for.
        for (name, offered) in &exports {
            let problem = match app.elements.get(name) {
                None => Some(format!(
                    "exports Type `{name}` but the app declares no element `{name}`; create {}/e.json with \"kind\": \"Type\" to use it",
                    name.replace('.', "/")
                )),
                Some(d) if d.kind != ElementKind::Type => Some(format!(
                    "exports Type `{name}` but the app's `{name}` is a {}, not a Type (add \"kind\": \"Type\" to its e.json)",
                    d.kind.as_str()
                )),
                _ => None,
            };
            if let Some(msg) = problem {
                for (lib, _) in offered {
                    diagnostics.push(Diagnostic::new(
                        Severity::Warning,
                        DiagCode::Plugin,
                        &lib.info.path,
                        "",
                        msg.clone(),
                    ));
                }
            }
        }

        let mut types: Vec<Arc<dyn TypeImpl>> = Vec::new();
        let mut provided: HashMap<String, Arc<dyn TypeImpl>> = HashMap::new();
        for (name, (lib, index)) in chosen {
            let t = &lib.info.types[index];
            let imp: Arc<dyn TypeImpl> = Arc::new(PluginTypeImpl {
                library: lib.clone(),
                index,
                full_name: name.clone(),
                methods: Arc::new(t.methods.clone()),
                config_schema: t.config_schema.clone(),
                parents: parents.clone(),
                corp: self.corp.clone(),
                log: self.log.clone(),
            });
            provided.insert(name, imp.clone());
            types.push(imp);
        }
        let _ = parents.provided.set(provided);
        ProvidedTypes { types, diagnostics }
    }
}
