//! A loaded app: resolution of every element's Meta → Type → Instance chain,
//! and lazy, cached, thread-safe lookups.

use crate::define::{ElementDefine, ElementKind, FunctionDefine};
use crate::diagnostics::{DiagCode, Diagnostic, Diagnostics};
use crate::element::{AppServices, CallError, Element, InstanceContext, TypeImpl};
use crate::load::{self, CompiledSchema, Env, Layer, Schemas};
use crate::registry::{AppView, TypeRegistry};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Why a lookup failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    /// No element has that fullName.
    #[error("no element named `{name}`{}", suggest(.suggestions))]
    Unknown {
        /// The name asked for.
        name: String,
        /// Close existing names.
        suggestions: Vec<String>,
    },
    /// The element is a Meta or a Type: only Instances are looked up.
    #[error("`{name}` is a {kind}; get_element returns Instances (use get_element_define for declarations)")]
    NotAnInstance {
        /// The name asked for.
        name: String,
        /// `Meta` or `Type`.
        kind: String,
    },
    /// The element's declaration has errors (see `jit check`).
    #[error("`{name}` cannot be loaded: {reason}")]
    Invalid {
        /// The name asked for.
        name: String,
        /// The first error, with file and pointer.
        reason: String,
    },
    /// Its Type failed to build it.
    #[error("building `{name}` with {type_name} failed: {message}")]
    Instantiate {
        /// The name asked for.
        name: String,
        /// The implementing Type.
        type_name: String,
        /// What went wrong.
        message: String,
    },
    /// The app was dropped while an element still referred to it.
    #[error("the app that `{0}` belongs to is no longer loaded")]
    AppGone(String),
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", s.join(", "))
    }
}

/// Fatal problems: the app could not be read at all. Everything else is a
/// [`Diagnostic`].
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The app folder does not exist or is not a folder.
    #[error("app folder {0} does not exist or is not a folder")]
    NoSuchApp(PathBuf),
}

/// How to load an app.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// Type implementations and providers (plugins).
    pub registry: TypeRegistry,
    /// Variables for `{{NAME}}` placeholders; `None` = the process environment.
    pub env: Option<HashMap<String, String>>,
    /// Skip building `loadTime: startUp` instances (for `jit check`, `jit ls`).
    pub skip_startup: bool,
}

/// A loaded element's runtime object together with its declaration.
///
/// Cloning is cheap (one reference count). Calls are checked against the
/// element's resolved `functionList` before they reach the implementation.
#[derive(Clone)]
pub struct ElementHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    define: Arc<ElementDefine>,
    type_name: String,
    functions: Arc<Vec<FunctionDefine>>,
    element: Arc<dyn Element>,
}

impl std::fmt::Debug for ElementHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElementHandle")
            .field("full_name", &self.inner.define.full_name)
            .field("type", &self.inner.type_name)
            .finish()
    }
}

impl ElementHandle {
    /// The element's fullName.
    pub fn full_name(&self) -> &str {
        &self.inner.define.full_name
    }

    /// Its declaration.
    pub fn define(&self) -> &ElementDefine {
        &self.inner.define
    }

    /// The Type whose implementation built it.
    pub fn type_name(&self) -> &str {
        &self.inner.type_name
    }

    /// Its callable methods (inherited along the chain, overrides applied).
    pub fn functions(&self) -> &[FunctionDefine] {
        &self.inner.functions
    }

    /// Calls a method with arguments given by name (an object), by position
    /// (an array) or none (`null`). Unknown methods and bad arguments are
    /// rejected before the implementation runs.
    pub async fn call(&self, method: &str, args: Value) -> Result<Value, CallError> {
        let named = check_call(
            &self.inner.define.full_name,
            &self.inner.functions,
            method,
            args,
        )?;
        self.inner.element.call(method, named).await
    }

    /// Reads a property (`title`, `fullName`, `authConfig`, ...).
    pub fn property(&self, name: &str) -> Option<Value> {
        self.inner.element.property(name)
    }

    /// The runtime object.
    pub fn element(&self) -> &Arc<dyn Element> {
        &self.inner.element
    }

    /// The typed interface, for hosts that know the concrete type.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        self.inner.element.as_any().downcast_ref::<T>()
    }
}

fn data_type_matches(data_type: &str, v: &Value) -> Result<(), &'static str> {
    let expected = match data_type.to_ascii_lowercase().as_str() {
        "stext" | "text" | "str" | "string" | "ltext" => {
            if v.is_string() {
                return Ok(());
            }
            "a string"
        }
        "jitlist" | "list" | "array" => {
            if v.is_array() {
                return Ok(());
            }
            "a list"
        }
        "jitdict" | "dict" | "corpdata" | "object" | "rowdata" => {
            if v.is_object() {
                return Ok(());
            }
            "an object"
        }
        "numeric" | "integer" | "int" | "float" | "number" | "money" => {
            if v.is_number() {
                return Ok(());
            }
            "a number"
        }
        "bool" | "boolean" => {
            if v.is_boolean() {
                return Ok(());
            }
            "true or false"
        }
        _ => return Ok(()),
    };
    Err(expected)
}

/// Checks a call against the declared methods and normalises the arguments
/// to an object keyed by argument name.
pub fn check_call(
    element: &str,
    functions: &[FunctionDefine],
    method: &str,
    args: Value,
) -> Result<Value, CallError> {
    let Some(f) = functions.iter().find(|f| f.name == method) else {
        return Err(CallError::UnknownMethod {
            element: element.into(),
            method: method.into(),
            known: functions
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let bad = |message: String| CallError::BadArgument {
        element: element.into(),
        method: method.into(),
        message,
    };
    let mut named = Map::new();
    match args {
        Value::Null => {}
        Value::Object(map) => {
            for (k, v) in map {
                if !f.args.iter().any(|a| a.name == k) {
                    let known: Vec<&str> = f.args.iter().map(|a| a.name.as_str()).collect();
                    return Err(bad(format!(
                        "unexpected argument `{k}`; {method} takes {}",
                        if known.is_empty() {
                            "no arguments".to_string()
                        } else {
                            known.join(", ")
                        }
                    )));
                }
                named.insert(k, v);
            }
        }
        Value::Array(items) => {
            if items.len() > f.args.len() {
                return Err(bad(format!(
                    "{} arguments given, {method} takes at most {}",
                    items.len(),
                    f.args.len()
                )));
            }
            for (a, v) in f.args.iter().zip(items) {
                named.insert(a.name.clone(), v);
            }
        }
        other if f.args.len() == 1 => {
            named.insert(f.args[0].name.clone(), other);
        }
        _ => {
            return Err(bad(
                "arguments must be an object (by name), an array (by position) or null".into(),
            ))
        }
    }
    for a in &f.args {
        match named.get(&a.name) {
            None | Some(Value::Null) if a.required => {
                return Err(bad(format!(
                    "missing required argument `{}` ({})",
                    a.name, a.data_type
                )))
            }
            Some(v) if !v.is_null() => {
                if let Err(expected) = data_type_matches(&a.data_type, v) {
                    return Err(bad(format!(
                        "argument `{}` must be {expected} ({}), got {}",
                        a.name,
                        a.data_type,
                        short(v)
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(Value::Object(named))
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(37).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

/// The resolved state of one element.
struct Slot {
    define: Arc<ElementDefine>,
    chain: Vec<Arc<ElementDefine>>,
    implementation: Option<Arc<dyn TypeImpl>>,
    config: Option<Value>,
    functions: Arc<Vec<FunctionDefine>>,
    /// The first error that keeps the element from loading.
    problem: Option<String>,
    cell: OnceLock<Result<ElementHandle, LookupError>>,
}

/// FNV-1a: element names are short and trusted (they come from the app's own
/// folders), so a fast non-keyed hash serves lookups better than SipHash.
#[derive(Default, Clone, Copy)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type SlotMap = HashMap<String, Slot, std::hash::BuildHasherDefault<Fnv>>;

struct AppInner {
    root: PathBuf,
    manifest: Value,
    layers: Vec<(String, Option<PathBuf>)>,
    elements: BTreeMap<String, Arc<ElementDefine>>,
    slots: SlotMap,
    registry: TypeRegistry,
    diagnostics: Mutex<Diagnostics>,
    self_ref: Weak<AppInner>,
}

/// A loaded app. Cheap to clone; safe to share between threads.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

/// What `jit ls` / `jit show` print about an element.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ElementInfo {
    /// fullName.
    pub full_name: String,
    /// Meta, Type or Instance.
    pub kind: ElementKind,
    /// Its `type`.
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    /// The Meta at the top of its chain.
    pub meta: Option<String>,
    /// `title`.
    pub title: String,
    /// The chain from the element up to its Meta.
    pub chain: Vec<String>,
    /// The Type that implements it, and where that implementation comes from.
    pub implemented_by: Option<(String, String)>,
    /// The app that declared it.
    pub app_id: String,
    /// Its e.json.
    pub file: PathBuf,
    /// Its config file, if any.
    pub config_file: Option<PathBuf>,
}

impl App {
    /// Loads the app in `root`: its parents, the embedded framework app, every
    /// `e.json` and config file. Problems become diagnostics (see
    /// [`App::diagnostics`]); only an unreadable root is fatal.
    pub fn load(root: impl AsRef<Path>, options: LoadOptions) -> Result<App, LoadError> {
        let root = root.as_ref();
        if !root.is_dir() {
            return Err(LoadError::NoSuchApp(root.to_path_buf()));
        }
        let mut diags = Diagnostics::default();
        let mut schemas = Schemas::new();
        let layers: Vec<Layer> = load::resolve_layers(root, &mut schemas, &mut diags);
        let per_layer: Vec<Vec<(ElementDefine, load::ConfigText)>> = layers
            .iter()
            .map(|l| load::read_layer(l, &mut schemas, &mut diags))
            .collect();
        let (elements, config_texts) = load::merge_layers(per_layer, &mut diags);
        let manifest = layers
            .last()
            .map(|l| l.manifest.clone())
            .unwrap_or(Value::Null);

        let mut registry = options.registry.clone();
        for provider in options.registry.providers() {
            let provided = provider.provide(&AppView {
                root,
                manifest: &manifest,
                elements: &elements,
            });
            diags.extend(provided.diagnostics);
            for t in provided.types {
                registry.register(t);
            }
        }

        let mut defaults = HashMap::new();
        for l in &layers {
            if let Some(env) = l.manifest.get("env").and_then(Value::as_object) {
                for (k, v) in env {
                    if let Some(s) = v.as_str() {
                        defaults.insert(k.clone(), s.to_string());
                    }
                }
            }
        }
        let env = Env {
            vars: options.env.clone(),
            defaults,
        };
        let slots = resolve_all(
            &elements,
            &registry,
            &env,
            config_texts,
            &mut schemas,
            &mut diags,
        );

        let inner = Arc::new_cyclic(|weak| AppInner {
            root: root.to_path_buf(),
            manifest,
            layers: layers
                .iter()
                .map(|l| (l.app_id.clone(), l.root.clone()))
                .collect(),
            elements,
            slots,
            registry,
            diagnostics: Mutex::new(diags),
            self_ref: weak.clone(),
        });
        let app = App { inner };
        app.check_instances();
        if !options.skip_startup {
            app.build_startup();
        }
        Ok(app)
    }

    /// Asks each instance's Type what its config names elsewhere in the app
    /// ([`TypeImpl::check_instance`]); only instances that loaded cleanly,
    /// so a config that failed its schema is not reported twice.
    fn check_instances(&self) {
        let found: Vec<Diagnostic> = self
            .inner
            .slots
            .values()
            .filter(|s| s.define.kind == ElementKind::Instance && s.problem.is_none())
            .filter_map(|s| Some((s.implementation.as_ref()?, s.config.as_ref()?, s)))
            .flat_map(|(imp, config, s)| {
                imp.check_instance(self, &s.define, config)
                    .into_iter()
                    .map(|d| match d.element {
                        Some(_) => d,
                        None => d.for_element(s.define.full_name.clone()),
                    })
            })
            .collect();
        for d in found {
            self.push_diagnostic(d);
        }
    }

    fn build_startup(&self) {
        let startup: Vec<String> = self
            .inner
            .slots
            .values()
            .filter(|s| {
                s.define.kind == ElementKind::Instance
                    && s.define.load_time.as_deref() == Some("startUp")
                    && s.problem.is_none()
            })
            .map(|s| s.define.full_name.clone())
            .collect();
        for name in startup {
            if let Err(e) = self.get_element(&name) {
                let file = self.inner.slots[&name].define.origin.file.clone();
                self.push_diagnostic(
                    Diagnostic::error(DiagCode::Instantiate, file, "/loadTime", e.to_string())
                        .for_element(name),
                );
            }
        }
    }

    fn push_diagnostic(&self, d: Diagnostic) {
        self.inner
            .diagnostics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(d);
    }

    /// Every problem found while loading, in the order found.
    pub fn diagnostics(&self) -> Diagnostics {
        self.inner
            .diagnostics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The app's root folder.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The app's `app.json` (`null` if none).
    pub fn manifest(&self) -> &Value {
        &self.inner.manifest
    }

    /// The app's `settings` from `app.json` (`{}` if none).
    pub fn settings(&self) -> Value {
        self.inner
            .manifest
            .get("settings")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()))
    }

    /// The apps stacked to make this one, lowest first: (appId, folder; `None` = embedded framework).
    pub fn layers(&self) -> &[(String, Option<PathBuf>)] {
        &self.inner.layers
    }

    /// The registry in effect (built-ins plus plugin types).
    pub fn registry(&self) -> &TypeRegistry {
        &self.inner.registry
    }

    /// The element, built through its Type on first use and cached. Safe to
    /// call from many threads: concurrent first calls build it once.
    pub fn get_element(&self, full_name: &str) -> Result<ElementHandle, LookupError> {
        let Some(slot) = self.inner.slots.get(full_name) else {
            return Err(LookupError::Unknown {
                name: full_name.to_string(),
                suggestions: load::closest(
                    full_name,
                    self.inner.elements.keys().map(String::as_str),
                ),
            });
        };
        if slot.define.kind != ElementKind::Instance {
            return Err(LookupError::NotAnInstance {
                name: full_name.to_string(),
                kind: slot.define.kind.as_str().to_string(),
            });
        }
        slot.cell.get_or_init(|| self.instantiate(slot)).clone()
    }

    fn instantiate(&self, slot: &Slot) -> Result<ElementHandle, LookupError> {
        let name = slot.define.full_name.clone();
        if let Some(reason) = &slot.problem {
            return Err(LookupError::Invalid {
                name,
                reason: reason.clone(),
            });
        }
        let Some(imp) = &slot.implementation else {
            return Err(LookupError::Invalid {
                name,
                reason: "no implementation".into(),
            });
        };
        let ctx = InstanceContext {
            define: slot.define.clone(),
            chain: slot.chain.clone(),
            config: slot.config.clone(),
            app: Arc::new(AppRef {
                app: self.inner.self_ref.clone(),
                root: self.inner.root.clone(),
                settings: self.settings(),
            }),
        };
        let element = imp
            .instantiate(ctx)
            .map_err(|message| LookupError::Instantiate {
                name: name.clone(),
                type_name: imp.type_name().to_string(),
                message,
            })?;
        Ok(ElementHandle {
            inner: Arc::new(HandleInner {
                define: slot.define.clone(),
                type_name: imp.type_name().to_string(),
                functions: slot.functions.clone(),
                element,
            }),
        })
    }

    /// The declaration of an element, without loading it.
    pub fn get_element_define(&self, full_name: &str) -> Option<Arc<ElementDefine>> {
        self.inner.elements.get(full_name).cloned()
    }

    /// Every element's declaration, by fullName.
    pub fn elements(&self) -> &BTreeMap<String, Arc<ElementDefine>> {
        &self.inner.elements
    }

    /// The instance's config file contents after `{{NAME}}` substitution.
    pub fn element_config(&self, full_name: &str) -> Option<&Value> {
        self.inner.slots.get(full_name)?.config.as_ref()
    }

    /// The methods an element answers (its own and inherited ones).
    pub fn element_functions(&self, full_name: &str) -> Option<&[FunctionDefine]> {
        self.inner
            .slots
            .get(full_name)
            .map(|s| s.functions.as_slice())
    }

    /// Resolved information about an element (chain, meta, implementation).
    pub fn element_info(&self, full_name: &str) -> Option<ElementInfo> {
        let slot = self.inner.slots.get(full_name)?;
        let d = &slot.define;
        let meta = slot
            .chain
            .last()
            .filter(|m| m.kind == ElementKind::Meta)
            .map(|m| m.full_name.clone());
        Some(ElementInfo {
            full_name: d.full_name.clone(),
            kind: d.kind,
            type_name: d.type_name.clone(),
            meta,
            title: d.title.clone(),
            chain: slot.chain.iter().map(|e| e.full_name.clone()).collect(),
            implemented_by: slot
                .implementation
                .as_ref()
                .map(|i| (i.type_name().to_string(), i.origin())),
            app_id: d.origin.app_id.clone(),
            file: d.origin.file.clone(),
            config_file: d.config_file.clone().filter(|p| p.is_file()),
        })
    }

    /// Elements matching a selector; a comma separates alternatives:
    /// `corps.X` (exact), `.corps.QywxInnerType` (whose chain contains that
    /// Type), `corps.*` or `corps*` (fullName starts with), `*corps.X.y`
    /// (the elements whose folders contain it), `#attr=value` (e.json field).
    pub fn find_elements(&self, selector: &str) -> Vec<Arc<ElementDefine>> {
        let mut out: BTreeMap<String, Arc<ElementDefine>> = BTreeMap::new();
        for part in selector.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            for (name, slot) in &self.inner.slots {
                if matches_selector(part, name, slot) {
                    out.insert(name.clone(), slot.define.clone());
                }
            }
        }
        out.into_values().collect()
    }
}

fn matches_selector(sel: &str, name: &str, slot: &Slot) -> bool {
    if let Some(t) = sel.strip_prefix('.') {
        slot.chain.iter().skip(1).any(|e| e.full_name == t)
    } else if let Some(attr) = sel.strip_prefix('#') {
        let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
        match slot.define.raw.get(k) {
            Some(Value::String(s)) => v.is_empty() || s == v,
            Some(other) => {
                v.is_empty() || serde_json::from_str::<Value>(v).is_ok_and(|pv| &pv == other)
            }
            None => false,
        }
    } else if let Some(child) = sel.strip_prefix('*') {
        child.starts_with(&format!("{name}.")) && child != name
    } else if let Some(prefix) = sel.strip_suffix('*') {
        name.starts_with(prefix) && name != prefix.trim_end_matches('.')
    } else {
        name == sel
    }
}

/// Lets elements reach the app they belong to without keeping it alive.
///
/// The root folder and settings never change after loading, so they are
/// copied: an element that outlives its `App` (a host that kept only the
/// element) still opens the app's own store, never one in the current
/// directory.
struct AppRef {
    app: Weak<AppInner>,
    root: PathBuf,
    settings: Value,
}

impl AppServices for AppRef {
    fn element(&self, full_name: &str) -> Result<ElementHandle, LookupError> {
        let inner = self
            .app
            .upgrade()
            .ok_or_else(|| LookupError::AppGone(full_name.to_string()))?;
        App { inner }.get_element(full_name)
    }

    fn settings(&self) -> Value {
        self.settings.clone()
    }

    fn root(&self) -> PathBuf {
        self.root.clone()
    }
}

/// Resolves every element's chain, implementation, methods and config.
fn resolve_all(
    elements: &BTreeMap<String, Arc<ElementDefine>>,
    registry: &TypeRegistry,
    env: &Env,
    config_texts: Vec<load::ConfigText>,
    schemas: &mut Schemas,
    diags: &mut Diagnostics,
) -> SlotMap {
    let type_names = || {
        elements
            .values()
            .filter(|e| e.kind != ElementKind::Instance)
            .map(|e| e.full_name.as_str())
    };
    let mut pending = Vec::with_capacity(elements.len());
    let mut function_memo: HashMap<String, Arc<Vec<FunctionDefine>>> = HashMap::new();
    let mut schema_memo: HashMap<String, Option<Arc<CompiledSchema>>> = HashMap::new();
    for ((name, def), read_ahead) in elements.iter().zip(config_texts) {
        let mut problem: Option<Diagnostic> = None;
        let mut chain = vec![def.clone()];
        let mut cur = def.clone();
        while let Some(parent_name) = cur.type_name.clone() {
            let Some(parent) = elements.get(&parent_name) else {
                let near = load::closest(&parent_name, type_names());
                problem = Some(Diagnostic::error(
                    DiagCode::UnknownType,
                    &cur.origin.file,
                    "/type",
                    format!(
                        "unknown type `{parent_name}`{}",
                        if near.is_empty() {
                            String::new()
                        } else {
                            format!("; did you mean {}?", near.join(", "))
                        }
                    ),
                ));
                break;
            };
            if chain.iter().any(|e| e.full_name == parent.full_name) {
                let cycle: Vec<&str> = chain
                    .iter()
                    .map(|e| e.full_name.as_str())
                    .chain(std::iter::once(parent.full_name.as_str()))
                    .collect();
                problem = Some(Diagnostic::error(
                    DiagCode::TypeCycle,
                    &cur.origin.file,
                    "/type",
                    format!("types form a cycle: {}", cycle.join(" → ")),
                ));
                break;
            }
            let bad_target = match (cur.kind, parent.kind) {
                (_, ElementKind::Instance) => Some(format!(
                    "`{}` is an Instance and cannot be used as a type; point `type` at a Type (declared with \"kind\": \"Type\")",
                    parent.full_name
                )),
                (ElementKind::Instance, ElementKind::Meta) => Some(format!(
                    "an Instance's type must be a Type, but `{}` is a Meta; use one of its Types{}",
                    parent.full_name,
                    {
                        let types: Vec<&str> = elements
                            .values()
                            .filter(|e| e.is_kind_of(ElementKind::Type, &parent.full_name))
                            .map(|e| e.full_name.as_str())
                            .take(5)
                            .collect();
                        if types.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", types.join(", "))
                        }
                    }
                )),
                _ => None,
            };
            if let Some(msg) = bad_target {
                problem = Some(Diagnostic::error(
                    DiagCode::BadTypeTarget,
                    &cur.origin.file,
                    "/type",
                    msg,
                ));
                break;
            }
            chain.push(parent.clone());
            cur = parent.clone();
        }

        let functions = resolved_functions(&chain, &mut function_memo);

        let implementation = if def.kind == ElementKind::Meta {
            None
        } else {
            chain
                .iter()
                .find_map(|e| registry.get(&e.full_name).cloned())
        };
        if problem.is_none() && def.kind == ElementKind::Instance && implementation.is_none() {
            problem = Some(Diagnostic::error(
                DiagCode::NoImplementation,
                &def.origin.file,
                "/type",
                format!(
                    "no implementation for this element: its chain {} reaches no built-in or plugin Type",
                    chain.iter().map(|e| e.full_name.as_str()).collect::<Vec<_>>().join(" → ")
                ),
            ));
        }

        // Every instance of one Type shares its config schema: find it once.
        let schema = if problem.is_none() && def.kind == ElementKind::Instance {
            let schema_key = chain
                .get(1)
                .map(|t| t.full_name.clone())
                .unwrap_or_default();
            Some(match schema_memo.get(&schema_key) {
                Some(s) => s.clone(),
                None => {
                    let s = config_schema_for(&chain, implementation.as_deref(), schemas, diags);
                    schema_memo.insert(schema_key, s.clone());
                    s
                }
            })
        } else {
            None
        };
        // The config read and parsed ahead by the walk, if it was;
        // `load_config` reads any other.
        let config_text = read_ahead.filter(|_| schema.is_some());
        pending.push(Pending {
            config_text,
            name: name.clone(),
            define: def.clone(),
            chain,
            implementation,
            functions,
            problem,
            schema,
        });
    }

    // Config files are independent: fill and check them (read them, when the
    // walk did not) on all cores, then report in element order so
    // diagnostics stay deterministic.
    let resolved = load::par_map(pending, |mut p| {
        let mut local = Diagnostics::default();
        let config = match &p.schema {
            Some(schema) => Some(load_config(
                &p.define,
                schema.clone(),
                p.config_text.take(),
                env,
                &mut local,
            )),
            None => None,
        };
        (p, config, local)
    });
    let mut slots = SlotMap::with_capacity_and_hasher(resolved.len(), Default::default());
    for (p, config, local) in resolved {
        diags.extend(local.0);
        let (config, problem) = match (config, p.problem) {
            (Some(Err(reason)), _) => (None, Some(reason)),
            (Some(Ok(c)), _) => (c, None),
            (None, Some(d)) => {
                let text = d.to_string();
                diags.push(d.for_element(p.name.clone()));
                (None, Some(text))
            }
            (None, None) => (None, None),
        };
        slots.insert(
            p.name,
            Slot {
                define: p.define,
                chain: p.chain,
                implementation: p.implementation,
                config,
                functions: p.functions,
                problem,
                cell: OnceLock::new(),
            },
        );
    }
    slots
}

/// An element whose chain is resolved, waiting for its config file.
struct Pending {
    name: String,
    define: Arc<ElementDefine>,
    chain: Vec<Arc<ElementDefine>>,
    implementation: Option<Arc<dyn TypeImpl>>,
    functions: Arc<Vec<FunctionDefine>>,
    problem: Option<Diagnostic>,
    /// `Some` for an instance whose config must be loaded (with its schema, if any).
    schema: Option<Option<Arc<CompiledSchema>>>,
    /// Its config file, when the walk read and parsed it ahead.
    config_text: load::ConfigText,
}

/// The methods of the element at `chain[0]`: declarations merged from the
/// Meta down, a nearer one replacing a farther one. Elements that declare no
/// methods of their own share their parent's list.
fn resolved_functions(
    chain: &[Arc<ElementDefine>],
    memo: &mut HashMap<String, Arc<Vec<FunctionDefine>>>,
) -> Arc<Vec<FunctionDefine>> {
    let Some(first) = chain.first() else {
        return Arc::default();
    };
    if let Some(f) = memo.get(&first.full_name) {
        return f.clone();
    }
    let parent = if chain.len() > 1 {
        resolved_functions(&chain[1..], memo)
    } else {
        Arc::default()
    };
    let own = if first.functions.is_empty() {
        parent
    } else {
        let mut functions: Vec<FunctionDefine> = (*parent).clone();
        for f in &first.functions {
            match functions.iter_mut().find(|g| g.name == f.name) {
                Some(g) => *g = f.clone(),
                None => functions.push(f.clone()),
            }
        }
        Arc::new(functions)
    };
    // Instances are looked up once each; only Types and Metas are worth remembering.
    if first.kind != ElementKind::Instance {
        memo.insert(first.full_name.clone(), own.clone());
    }
    own
}

/// Finds the config schema for an instance: the nearest `configSchema` on its
/// chain, else the implementation's own.
fn config_schema_for(
    chain: &[Arc<ElementDefine>],
    imp: Option<&dyn TypeImpl>,
    schemas: &mut Schemas,
    diags: &mut Diagnostics,
) -> Option<Arc<CompiledSchema>> {
    for e in chain.iter().skip(1) {
        let Some(spec) = e.raw.get("configSchema") else {
            continue;
        };
        let file = &e.origin.file;
        return match spec {
            Value::Object(_) => {
                let key = format!("inline:{}", e.full_name);
                schemas.get(&key, || Some(spec.clone()), diags, file)
            }
            Value::String(s) => {
                // Like a config, a schema file is read only from inside the
                // element's folder: no absolute path, no `..`, no link out.
                if let Some(dir) = e.origin.dir.as_ref() {
                    if let Err(message) = load::inside(dir, s) {
                        diags.push(
                            Diagnostic::error(DiagCode::OutsideApp, file, "/configSchema", message)
                                .for_element(e.full_name.clone()),
                        );
                        return None;
                    }
                }
                let local = e
                    .origin
                    .dir
                    .as_ref()
                    .map(|d| d.join(s.trim_start_matches("./")));
                match local.filter(|p| p.is_file()) {
                    Some(path) => {
                        let key = path.display().to_string();
                        let parsed = match load::read_json(&path) {
                            Ok(v) => Some(v),
                            Err(d) => {
                                diags.push(*d);
                                None
                            }
                        };
                        schemas.get(&key, || parsed, diags, file)
                    }
                    None => match Schemas::embedded(s) {
                        Some(text) => {
                            schemas.get(s, || serde_json::from_str(text).ok(), diags, file)
                        }
                        None => {
                            diags.push(
                                Diagnostic::error(
                                    DiagCode::Io,
                                    file,
                                    "/configSchema",
                                    format!("config schema `{s}` is neither a file beside e.json nor a schema shipped in schemas/"),
                                )
                                .for_element(e.full_name.clone()),
                            );
                            None
                        }
                    },
                }
            }
            _ => None,
        };
    }
    let imp = imp?;
    let schema = imp.config_schema()?;
    let key = format!("impl:{}", imp.type_name());
    schemas.get(&key, || Some(schema), diags, Path::new(imp.type_name()))
}

fn load_config(
    def: &ElementDefine,
    schema: Option<Arc<CompiledSchema>>,
    read_ahead: load::ConfigText,
    env: &Env,
    diags: &mut Diagnostics,
) -> Result<Option<Value>, String> {
    let Some(path) = def.config_file.as_ref() else {
        return Ok(None);
    };
    // Reading straight away (rather than checking first) costs one system
    // call per instance instead of two; the walk usually did it already.
    let read = match read_ahead.unwrap_or_else(|| load::read_config(path)) {
        Ok(parsed) => Some(parsed),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            let d = Diagnostic::error(DiagCode::Io, path, "", format!("cannot read file: {e}"))
                .for_element(def.full_name.clone());
            let text = d.to_string();
            diags.push(d);
            return Err(text);
        }
    };
    let Some(parsed) = read else {
        if schema.is_none() {
            // This Type does not need a config file.
            return Ok(None);
        }
        let d = Diagnostic::error(
            DiagCode::MissingConfig,
            path,
            "",
            format!(
                "config file is missing: an instance of {} needs `{}` beside its e.json (or a `frontBundleEntry` naming it)",
                def.type_name.as_deref().unwrap_or("?"),
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            ),
        )
        .for_element(def.full_name.clone());
        let text = d.to_string();
        diags.push(d);
        return Err(text);
    };
    let mut value = match parsed {
        Ok(v) => v,
        Err(d) => {
            let d = Diagnostic {
                code: if d.code == DiagCode::InvalidJson {
                    DiagCode::InvalidConfig
                } else {
                    d.code
                },
                ..*d
            }
            .for_element(def.full_name.clone());
            let text = d.to_string();
            diags.push(d);
            return Err(text);
        }
    };
    let before = diags.len();
    let mut filled = Vec::new();
    env.substitute(
        &mut value,
        &mut String::new(),
        path,
        &def.full_name,
        diags,
        &mut filled,
    );
    if let Some(v) = &schema {
        let mut local = Diagnostics::default();
        load::validate(v, &value, path, Some(&def.full_name), "config", &mut local);
        for d in local.0 {
            // A value filled from the environment is quoted by a schema
            // message whatever key it sits under; it is masked like a secret.
            let mut message = d.message;
            for f in filled.iter().filter(|f| f.len() >= 4) {
                message = message.replace(f.as_str(), "******");
            }
            diags.push(Diagnostic {
                code: DiagCode::InvalidConfig,
                message,
                ..d
            });
        }
    }
    if diags.len() > before {
        return Err(diags.0[before].to_string());
    }
    Ok(Some(value))
}

/// Whether a config key names a secret: any `*secret*`, `*password*`,
/// `*aeskey*` or `*privatekey*`, and keys ending in `token` (`token`,
/// `accessToken`), but not settings such as `tokenEndpoint`.
pub fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    ["secret", "password", "aeskey", "privatekey"]
        .iter()
        .any(|s| lower.contains(s))
        || lower.ends_with("token")
}

/// Replaces secret values (keys naming a secret, token, password or AES key)
/// with `******`, for display.
pub fn mask_secrets(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) && !v.is_null() {
                        Value::String("******".into())
                    } else {
                        mask_secrets(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(mask_secrets).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_masked_but_settings_that_mention_tokens_are_not() {
        let v = serde_json::json!({
            "corpId": "ww1", "secret": "s", "appSecret": "a", "accessToken": "t",
            "encodingAesKey": "k", "tokenEndpoint": "oauth2", "nested": {"password": "p"}
        });
        let m = mask_secrets(&v);
        for k in ["secret", "appSecret", "accessToken", "encodingAesKey"] {
            assert_eq!(m[k], "******", "{k}");
        }
        assert_eq!(m["nested"]["password"], "******");
        assert_eq!(m["tokenEndpoint"], "oauth2");
        assert_eq!(m["corpId"], "ww1");
    }
}
