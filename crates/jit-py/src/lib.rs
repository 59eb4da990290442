//! Python bindings of the jit runtime: the native half (`jit._native`) of
//! the `jit` package, built with maturin into the wheel `jit-runtime`.
//!
//! This crate is deliberately thin: it loads apps, looks elements up, calls
//! their methods and runs the simulator, exchanging values with Python as
//! JSON text. The Python half (`python/jit/`) turns that text into the
//! values the seed documents use (`root_dept.name.value`,
//! `corp_data.get('userDict', {})`, `local_data['userList']`), maps error
//! kinds to exception classes and carries the docstrings and type stubs.
//! Keeping the value mapping in Python keeps it readable and changeable
//! without a rebuild, and JSON is what the dynamic call speaks anyway.
//!
//! Every call that may do I/O runs on one tokio runtime per process with
//! the GIL released, polling for signals every few milliseconds so that
//! Ctrl-C cancels it (the future is dropped; a sync applies in one
//! transaction, so a cancelled sync writes nothing).
//!
//! From Python, against the in-process simulator:
//!
//! ```python
//! import json, pathlib
//! import jit
//!
//! sim = jit.sim.start(users=40, depts=8)          # WeCom + DingTalk, no credentials
//! org = pathlib.Path("my-app/corps/MyQywxCorp")
//! org.mkdir(parents=True)
//! (org / "e.json").write_text(json.dumps({"title": "My WeCom Organization", "type": "corps.QywxInnerType"}))
//! (org / "MyQywxCorp.json").write_text(json.dumps(sim.wecomConfig()))
//!
//! app = jit.App.load("my-app")
//! corp = app.getElement("corps.MyQywxCorp")
//! corp.initCorp()
//! print(f"Root Department: {corp.getRootDept().name.value}")
//! ```

use jit_core::{
    App, CallError, ElementHandle, FailureKind, LoadOptions, LookupError, TypeRegistry,
};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How often a blocked call wakes up to let Python handle signals (Ctrl-C).
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// The one tokio runtime of the process: element calls, stores and
/// simulators all live on it, whichever Python thread calls.
fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("jit-runtime")
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))
    })
    .as_ref()
    .map_err(|e| PyRuntimeError::new_err(e.clone()))
}

/// Runs `fut` to completion with the GIL released. Every [`SIGNAL_POLL`]
/// it takes the GIL back just long enough to run Python's signal handlers;
/// if one raises (KeyboardInterrupt), the future is dropped, which cancels
/// it, and the exception propagates.
fn block_on<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let rt = runtime()?;
    let mut fut = Box::pin(fut);
    loop {
        let step = py.allow_threads(|| {
            rt.block_on(async { tokio::time::timeout(SIGNAL_POLL, &mut fut).await })
        });
        match step {
            Ok(v) => return Ok(v),
            Err(_elapsed) => {
                if let Err(e) = py.check_signals() {
                    // Dropping inside the runtime lets the future's
                    // resources (connections, timers, the sync lock) clean
                    // up in the context they were made in.
                    py.allow_threads(|| {
                        let _guard = rt.enter();
                        drop(fut);
                    });
                    return Err(e);
                }
            }
        }
    }
}

/// Builds an exception of the class `name` from `jit._errors` (defined in
/// Python so that classes can inherit from builtins such as `ValueError`).
fn error(py: Python<'_>, name: &str, message: String, errcode: Option<String>) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let class = py.import("jit._errors")?.getattr(name)?;
        let kwargs = PyDict::new(py);
        if let Some(code) = errcode {
            kwargs.set_item("errcode", code)?;
        }
        let exc = class.call((message.clone(),), Some(&kwargs))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

/// The exception for a failed call: one class per [`CallError`] variant and
/// [`FailureKind`]; the message is the CLI's (`jit call`) word for word.
fn call_error(py: Python<'_>, e: CallError) -> PyErr {
    let message = e.to_string();
    match e {
        CallError::UnknownMethod { .. } => error(py, "MethodNotFound", message, None),
        CallError::BadArgument { .. } => error(py, "ArgumentError", message, None),
        CallError::NotImplemented { .. } => error(py, "NotImplementedByType", message, None),
        CallError::Failed { kind, .. } => match kind {
            FailureKind::InvalidInput => error(py, "ArgumentError", message, None),
            FailureKind::Busy => error(py, "SyncBusy", message, None),
            FailureKind::Refused => error(py, "SyncRefused", message, None),
            FailureKind::Upstream { errcode } => error(py, "PlatformError", message, errcode),
            FailureKind::Internal => error(py, "InternalError", message, None),
        },
    }
}

/// The exception for a failed lookup.
fn lookup_error(py: Python<'_>, e: LookupError) -> PyErr {
    let message = e.to_string();
    match e {
        LookupError::Unknown { .. } => error(py, "ElementNotFound", message, None),
        _ => error(py, "ElementInvalid", message, None),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

/// A loaded app (the native half of `jit.App`).
#[pyclass(module = "jit._native", frozen)]
struct NativeApp {
    app: App,
}

#[pymethods]
impl NativeApp {
    /// Loads the app in `path` with the built-in org Types (and its plugins
    /// unless `plugins` is false). `store` overrides where orgs are stored
    /// (a `postgres://` URL or an SQLite path); `env` replaces the process
    /// environment for `{{NAME}}` placeholders.
    #[staticmethod]
    #[pyo3(signature = (path, store=None, env=None, plugins=true))]
    fn load(
        py: Python<'_>,
        path: std::path::PathBuf,
        store: Option<String>,
        env: Option<HashMap<String, String>>,
        plugins: bool,
    ) -> PyResult<NativeApp> {
        let opened = match store {
            Some(location) => Some(
                block_on(py, async move { jit_store::open(&location).await })?
                    .map_err(|e| error(py, "StoreError", e.to_string(), None))?,
            ),
            None => None,
        };
        let mut registry = TypeRegistry::new();
        // Login elements (auths.loginTypes.*) reach their org's store through it.
        jit_login::register_builtins(&mut registry);
        let services = match &opened {
            Some(s) => {
                jit_corps::register_builtins_with_store(&mut registry, s.clone());
                jit_corps::EngineCorpServices::with_store(s.clone())
            }
            None => {
                jit_corps::register_builtins(&mut registry);
                jit_corps::EngineCorpServices::new()
            }
        };
        if plugins {
            let provider = jit_plugin_host::PluginProvider::new(registry.clone())
                .with_corp_services(Arc::new(services));
            registry.add_provider(Arc::new(provider));
        }
        let app = py
            .allow_threads(|| {
                App::load(
                    &path,
                    LoadOptions {
                        registry,
                        env,
                        skip_startup: false,
                    },
                )
            })
            .map_err(|e| error(py, "LoadError", e.to_string(), None))?;
        Ok(NativeApp { app })
    }

    /// The app's root folder.
    #[getter]
    fn root(&self) -> String {
        self.app.root().display().to_string()
    }

    /// The app's id from `app.json` (empty if none).
    #[getter]
    fn app_id(&self) -> String {
        self.app
            .manifest()
            .get("appId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    /// Every load diagnostic, as JSON.
    fn diagnostics(&self) -> String {
        to_json(&self.app.diagnostics())
    }

    /// Looks up an Instance; builds it on first use.
    fn get_element(&self, py: Python<'_>, full_name: &str) -> PyResult<NativeElement> {
        let handle = py
            .allow_threads(|| self.app.get_element(full_name))
            .map_err(|e| lookup_error(py, e))?;
        Ok(NativeElement {
            handle,
            _app: self.app.clone(),
        })
    }

    /// The declaration of any element (Meta, Type or Instance), as JSON, or
    /// `None` if there is no such element: its e.json fields, with
    /// `fullName`, `kind`, `type`, `meta`, `chain`, the resolved
    /// `functionList` (inherited methods included) and `configFile`.
    fn get_element_define(&self, full_name: &str) -> Option<String> {
        let define = self.app.get_element_define(full_name)?;
        let mut v = match &define.raw {
            Value::Object(raw) => raw.clone(),
            _ => serde_json::Map::new(),
        };
        v.insert("fullName".into(), json!(define.full_name));
        v.insert("title".into(), json!(define.title));
        v.insert("kind".into(), json!(define.kind.as_str()));
        v.insert("type".into(), json!(define.type_name));
        if let Some(info) = self.app.element_info(full_name) {
            v.insert("meta".into(), json!(info.meta));
            v.insert("chain".into(), json!(info.chain));
            v.insert("appId".into(), json!(info.app_id));
            v.insert("configFile".into(), json!(info.config_file));
        }
        if let Some(functions) = self.app.element_functions(full_name) {
            v.insert("functionList".into(), json!(functions));
        }
        Some(to_json(&v))
    }

    /// The fullNames matching a selector (see `App::find_elements`).
    fn find_elements(&self, selector: &str) -> Vec<String> {
        self.app
            .find_elements(selector)
            .iter()
            .map(|d| d.full_name.clone())
            .collect()
    }

    /// Every element's fullName.
    fn element_names(&self) -> Vec<String> {
        self.app.elements().keys().cloned().collect()
    }
}

/// A loaded element (the native half of `jit.Element`).
#[pyclass(module = "jit._native", frozen)]
struct NativeElement {
    handle: ElementHandle,
    /// Elements reach their app (root folder, settings, store) through a
    /// weak reference: `App.load(...).getElement(...)` in one expression
    /// must keep the app alive as long as the element.
    _app: App,
}

#[pymethods]
impl NativeElement {
    /// fullName.
    #[getter]
    fn full_name(&self) -> String {
        self.handle.full_name().to_string()
    }

    /// The Type whose implementation built it.
    #[getter]
    fn type_name(&self) -> String {
        self.handle.type_name().to_string()
    }

    /// `title` of its declaration.
    #[getter]
    fn title(&self) -> String {
        self.handle.define().title.clone()
    }

    /// Its methods (name, title, args with name/dataType/required), as JSON.
    fn functions(&self) -> String {
        to_json(&self.handle.functions())
    }

    /// The properties it answers.
    fn property_names(&self) -> Vec<String> {
        self.handle.element().property_names()
    }

    /// A property as JSON (secrets masked), or `None` if it has none of that name.
    fn property(&self, name: &str) -> Option<String> {
        self.handle.property(name).map(|v| to_json(&v))
    }

    /// Calls a method with JSON arguments (an object by name, an array by
    /// position, or `null`); returns its JSON result. Releases the GIL while
    /// it runs; Ctrl-C cancels it.
    fn call(&self, py: Python<'_>, method: String, args_json: &str) -> PyResult<String> {
        let args: Value = serde_json::from_str(args_json).map_err(|e| {
            error(
                py,
                "ArgumentError",
                format!("arguments are not JSON: {e}"),
                None,
            )
        })?;
        let handle = self.handle.clone();
        // Serialising inside the future keeps large results (a 20 000-member
        // org) off the GIL too.
        let result = block_on(py, async move {
            handle.call(&method, args).await.map(|v| to_json(&v))
        })?;
        result.map_err(|e| call_error(py, e))
    }
}

/// A running simulator (the native half of `jit.sim.Simulator`).
#[pyclass(module = "jit._native", frozen)]
struct NativeSim {
    info: String,
    handle: Mutex<Option<jit_sim::SimHandle>>,
}

#[pymethods]
impl NativeSim {
    /// URLs and credentials, as JSON (the `jit sim` line).
    fn info(&self) -> String {
        self.info.clone()
    }

    /// Changes the simulated org `org` (`"wecom"` or `"dingtalk-N"`) as
    /// the platform's admin would: `mutation_json` is a `jit_sim::Mutation`
    /// (`{"op": "removeMember", "userid": ...}`). Returns the outcome as JSON.
    fn mutate(&self, py: Python<'_>, org: &str, mutation_json: &str) -> PyResult<String> {
        let bad = |m: String| error(py, "ArgumentError", m, None);
        let org: jit_sim::OrgRef = org.parse().map_err(|e: String| bad(e))?;
        let mutation: jit_sim::Mutation = serde_json::from_str(mutation_json)
            .map_err(|e| bad(format!("bad simulator mutation: {e}")))?;
        let guard = self
            .handle
            .lock()
            .map_err(|_| PyRuntimeError::new_err("simulator lock poisoned"))?;
        let handle = guard
            .as_ref()
            .ok_or_else(|| PyRuntimeError::new_err("the simulator is stopped"))?;
        handle
            .mutate(org, mutation)
            .map(|o| to_json(&o))
            .map_err(|e| bad(e.to_string()))
    }

    /// Stops serving (idempotent).
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let handle = self.handle.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            block_on(py, async move { h.shutdown().await })?;
        }
        Ok(())
    }

    /// Added latency per API answer, in milliseconds (to make syncs slow
    /// enough to interrupt).
    fn set_latency_ms(&self, ms: u64) {
        if let Ok(h) = self.handle.lock() {
            if let Some(h) = h.as_ref() {
                h.set_latency_ms(ms);
            }
        }
    }
}

/// Starts a simulator from a JSON `SimConfig` (camelCase keys, missing =
/// default) on the process runtime.
#[pyfunction]
fn sim_start(py: Python<'_>, config_json: &str) -> PyResult<NativeSim> {
    // SimConfig takes missing keys as defaults and ignores unknown ones: a
    // misspelt setting (`user=`) would silently give the default company.
    let given: Value = serde_json::from_str(config_json).unwrap_or(Value::Null);
    let known = serde_json::to_value(jit_sim::SimConfig::default()).unwrap_or(Value::Null);
    if let (Some(given), Some(known)) = (given.as_object(), known.as_object()) {
        if let Some(unknown) = given.keys().find(|k| !known.contains_key(*k)) {
            let names: Vec<&str> = known.keys().map(String::as_str).collect();
            return Err(error(
                py,
                "ArgumentError",
                format!(
                    "unknown simulator setting `{unknown}`; the settings are: {}",
                    names.join(", ")
                ),
                None,
            ));
        }
    }
    let config: jit_sim::SimConfig = serde_json::from_str(config_json).map_err(|e| {
        error(
            py,
            "ArgumentError",
            format!("bad simulator settings: {e}"),
            None,
        )
    })?;
    let handle = block_on(py, async move { jit_sim::Simulator::start(config).await })?
        .map_err(|e| error(py, "JitError", e.to_string(), None))?;
    Ok(NativeSim {
        info: to_json(&handle.info()),
        handle: Mutex::new(Some(handle)),
    })
}

/// The native module `jit._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeApp>()?;
    m.add_class::<NativeElement>()?;
    m.add_class::<NativeSim>()?;
    m.add_function(wrap_pyfunction!(sim_start, m)?)?;
    Ok(())
}
