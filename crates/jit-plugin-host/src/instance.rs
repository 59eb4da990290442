//! Plugin Types as [`TypeImpl`]s, their elements, and the host callbacks
//! a plugin instance calls.

use crate::library::{LoadedLibrary, PluginFailure, RawInstance};
use crate::services::{CorpContext, CorpServices, LogLevel, LogSink, PluginLog};
use jit_core::{
    check_call, CallError, CallFuture, Element, ElementDefine, FunctionDefine, InstanceContext,
    TypeImpl, TypeRegistry,
};
use jit_plugin_abi::{
    Bytes, DescriptorHeader, HostApi, OwnedBuffer, ABI_MAJOR, ABI_MINOR, STATUS_ERROR, STATUS_OK,
    STATUS_PANIC,
};
use serde_json::{json, Value};
use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};
use tokio::runtime::Handle;

/// Where a plugin Type finds the implementation of the Type it extends:
/// the other plugin Types of the same load first, then the base registry.
pub(crate) struct Parents {
    pub(crate) base: TypeRegistry,
    pub(crate) provided: OnceLock<HashMap<String, Arc<dyn TypeImpl>>>,
}

impl Parents {
    fn get(&self, name: &str) -> Option<Arc<dyn TypeImpl>> {
        self.provided
            .get()
            .and_then(|p| p.get(name).cloned())
            .or_else(|| self.base.get(name).cloned())
    }
}

/// A Type implemented by a plugin library.
pub(crate) struct PluginTypeImpl {
    pub(crate) library: Arc<LoadedLibrary>,
    pub(crate) index: usize,
    pub(crate) full_name: String,
    pub(crate) methods: Arc<Vec<String>>,
    pub(crate) config_schema: Option<Value>,
    pub(crate) parents: Arc<Parents>,
    pub(crate) corp: Option<Arc<dyn CorpServices>>,
    pub(crate) log: LogSink,
}

impl TypeImpl for PluginTypeImpl {
    fn type_name(&self) -> &str {
        &self.full_name
    }

    fn config_schema(&self) -> Option<Value> {
        self.config_schema.clone()
    }

    fn origin(&self) -> String {
        self.library.info.path.display().to_string()
    }

    fn instantiate(&self, ctx: InstanceContext) -> Result<Arc<dyn Element>, String> {
        let lib = &self.library.info;
        // The parent is the nearest Type above this one on the chain that has
        // an implementation.
        let above = ctx
            .chain
            .iter()
            .position(|e| e.full_name == self.full_name)
            .map(|i| i + 1)
            .unwrap_or(ctx.chain.len());
        let parent_impl = ctx.chain[above..].iter().find_map(|e| {
            self.parents
                .get(&e.full_name)
                .map(|imp| (e.full_name.clone(), imp))
        });
        let parent = match parent_impl {
            Some((name, imp)) => {
                let element = imp
                    .instantiate(ctx.clone())
                    .map_err(|e| format!("its parent Type {name} could not build it: {e}"))?;
                Some(Parent {
                    type_name: name,
                    element,
                })
            }
            None => None,
        };
        let functions = resolved_functions(&ctx.chain);
        let corp_ctx = CorpContext {
            full_name: ctx.define.full_name.clone(),
            title: ctx.define.title.clone(),
            type_name: self.full_name.clone(),
            parent_type: parent.as_ref().map(|p| p.type_name.clone()),
            library: lib.path.clone(),
            config: ctx.config.clone(),
            app: ctx.app.clone(),
        };
        let host_ctx = Box::new(HostContext {
            corp_ctx,
            functions,
            parent: parent.as_ref().map(|p| p.element.clone()),
            corp: self.corp.clone(),
            log: self.log.clone(),
        });
        let host_api = Box::new(HostApi {
            header: DescriptorHeader {
                abi_major: ABI_MAJOR,
                abi_minor: ABI_MINOR,
                size: std::mem::size_of::<HostApi>() as u32,
                reserved: 0,
            },
            ctx: &*host_ctx as *const HostContext as *const c_void,
            log: host_log,
            get_config: host_get_config,
            call_element: host_call_element,
            call_parent: host_call_parent,
            host_service,
            free_buffer: host_free_buffer,
        });
        let init = json!({
            "fullName": ctx.define.full_name,
            "type": self.full_name,
            "title": ctx.define.title,
            "config": ctx.config.clone().unwrap_or(Value::Null),
            "appRoot": ctx.app.root().display().to_string(),
            "elementDir": ctx.define.origin.dir.as_ref().map(|d| d.display().to_string()),
            "parentType": parent.as_ref().map(|p| p.type_name.clone()),
        })
        .to_string();
        let raw = self
            .library
            .create(self.index, &init, &*host_api)
            .map_err(|e| format!("plugin {} could not create it: {e}", lib.path.display()))?;
        Ok(Arc::new(PluginElement {
            instance: Arc::new(PluginInstance {
                library: self.library.clone(),
                raw,
                _host_api: host_api,
                _host_ctx: host_ctx,
            }),
            define: ctx.define.clone(),
            type_name: self.full_name.clone(),
            methods: self.methods.clone(),
            parent,
        }))
    }
}

/// The methods an element answers: from the Meta down, a nearer
/// declaration replaces a farther one (as the core resolves them).
fn resolved_functions(chain: &[Arc<ElementDefine>]) -> Vec<FunctionDefine> {
    let mut functions: Vec<FunctionDefine> = Vec::new();
    for e in chain.iter().rev() {
        for f in &e.functions {
            match functions.iter_mut().find(|g| g.name == f.name) {
                Some(g) => *g = f.clone(),
                None => functions.push(f.clone()),
            }
        }
    }
    functions
}

struct Parent {
    type_name: String,
    element: Arc<dyn Element>,
}

/// What the host callbacks of one instance see (the `ctx` of its [`HostApi`]).
struct HostContext {
    corp_ctx: CorpContext,
    functions: Vec<FunctionDefine>,
    parent: Option<Arc<dyn Element>>,
    corp: Option<Arc<dyn CorpServices>>,
    log: LogSink,
}

/// A live plugin instance; released when the last reference goes.
struct PluginInstance {
    library: Arc<LoadedLibrary>,
    raw: RawInstance,
    // The plugin holds pointers to these until release returns.
    _host_api: Box<HostApi>,
    _host_ctx: Box<HostContext>,
}

// SAFETY: the HostApi table and context are immutable after creation and
// their callbacks are thread-safe; the plugin instance is thread-safe by the
// ABI contract.
unsafe impl Send for PluginInstance {}
unsafe impl Sync for PluginInstance {}

impl Drop for PluginInstance {
    fn drop(&mut self) {
        self.library.release(&self.raw);
    }
}

thread_local! {
    /// The runtime of the plugin call running on this thread, so callbacks
    /// made during the call can run async host work.
    static CALL_RUNTIME: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// An element built by a plugin Type.
pub struct PluginElement {
    instance: Arc<PluginInstance>,
    define: Arc<ElementDefine>,
    type_name: String,
    methods: Arc<Vec<String>>,
    parent: Option<Parent>,
}

impl PluginElement {
    /// The plugin library that implements it.
    pub fn library(&self) -> &std::path::Path {
        &self.instance.library.info.path
    }

    /// The Type it extends and the element that Type built, if any.
    pub fn parent(&self) -> Option<(&str, &Arc<dyn Element>)> {
        self.parent
            .as_ref()
            .map(|p| (p.type_name.as_str(), &p.element))
    }

    /// The methods the plugin itself implements (the rest are delegated).
    pub fn plugin_methods(&self) -> &[String] {
        &self.methods
    }

    fn failure(&self, method: &str, f: PluginFailure) -> CallError {
        let lib = self.instance.library.info.path.display();
        let message = match f {
            PluginFailure::Error(m) => format!("{m} (plugin {lib})"),
            PluginFailure::Panic(m) => {
                format!("{m} (plugin {lib}; the panic was caught, other elements are unaffected)")
            }
            PluginFailure::Garbage(m) => format!("plugin {lib} broke the ABI contract: {m}"),
        };
        CallError::failed(&self.define.full_name, method, message)
    }
}

impl Element for PluginElement {
    fn call<'a>(&'a self, method: &'a str, args: Value) -> CallFuture<'a> {
        Box::pin(async move {
            if self.methods.iter().any(|m| m == method) {
                let instance = self.instance.clone();
                let m = method.to_string();
                let args = args.to_string();
                let run = move |rt: Option<Handle>| {
                    CALL_RUNTIME.with(|c| *c.borrow_mut() = rt);
                    let r = instance.library.call(&instance.raw, &m, &args);
                    CALL_RUNTIME.with(|c| *c.borrow_mut() = None);
                    r
                };
                let result = match Handle::try_current() {
                    // Off the executor: a slow plugin must not stall it.
                    Ok(rt) => rt
                        .clone()
                        .spawn_blocking(move || run(Some(rt)))
                        .await
                        .map_err(|e| {
                            CallError::failed(
                                &self.define.full_name,
                                method,
                                format!("plugin call did not finish: {e}"),
                            )
                        })?,
                    Err(_) => run(None),
                };
                result.map_err(|f| self.failure(method, f))
            } else if let Some(p) = &self.parent {
                p.element.call(method, args).await
            } else {
                Err(CallError::NotImplemented {
                    element: self.define.full_name.clone(),
                    method: method.to_string(),
                    type_name: format!("{} (plugin {})", self.type_name, self.library().display()),
                })
            }
        })
    }

    fn property(&self, name: &str) -> Option<Value> {
        if let Some(v) = self.parent.as_ref().and_then(|p| p.element.property(name)) {
            return Some(v);
        }
        match name {
            "title" => Some(json!(self.define.title)),
            "fullName" | "corpFullName" => Some(json!(self.define.full_name)),
            _ => None,
        }
    }

    fn property_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .parent
            .as_ref()
            .map(|p| p.element.property_names())
            .unwrap_or_default();
        for n in ["title", "fullName", "corpFullName"] {
            if !names.iter().any(|x| x == n) {
                names.push(n.to_string());
            }
        }
        names
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---- host callbacks -------------------------------------------------------

fn host_buffer(v: &Value) -> OwnedBuffer {
    let mut bytes = std::mem::ManuallyDrop::new(v.to_string().into_bytes());
    OwnedBuffer {
        ptr: bytes.as_mut_ptr(),
        len: bytes.len(),
        cap: bytes.capacity(),
    }
}

unsafe extern "C" fn host_free_buffer(buffer: OwnedBuffer) {
    if !buffer.ptr.is_null() {
        // SAFETY: every buffer the host hands out comes from `host_buffer`.
        drop(Vec::from_raw_parts(buffer.ptr, buffer.len, buffer.cap));
    }
}

/// Runs a callback body: decodes the context, catches panics, writes the answer.
unsafe fn respond(
    ctx: *const c_void,
    out: *mut OwnedBuffer,
    f: impl FnOnce(&HostContext) -> Result<Value, String>,
) -> i32 {
    if ctx.is_null() {
        return STATUS_ERROR;
    }
    // SAFETY: `ctx` is the HostContext this instance was created with; it
    // lives until the instance is released.
    let host = &*(ctx as *const HostContext);
    let (status, value) = match catch_unwind(AssertUnwindSafe(|| f(host))) {
        Ok(Ok(v)) => (STATUS_OK, v),
        Ok(Err(m)) => (STATUS_ERROR, json!({ "message": m })),
        Err(_) => (
            STATUS_PANIC,
            json!({ "message": "the host panicked while serving this call" }),
        ),
    };
    if !out.is_null() {
        *out = host_buffer(&value);
    }
    status
}

fn text<'a>(b: Bytes, what: &str) -> Result<&'a str, String> {
    if b.ptr.is_null() && b.len != 0 {
        return Err(format!("{what}: null pointer with length {}", b.len));
    }
    // SAFETY: the plugin's inputs are valid for the duration of the callback.
    std::str::from_utf8(unsafe { b.as_slice() }).map_err(|e| format!("{what} is not UTF-8: {e}"))
}

fn json_arg(b: Bytes, what: &str) -> Result<Value, String> {
    let t = text(b, what)?;
    if t.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(t).map_err(|e| format!("{what} is not JSON: {e}"))
}

/// Runs async host work from a plugin callback.
fn block_on<F: Future>(what: &str, fut: F) -> Result<F::Output, String> {
    if let Some(rt) = CALL_RUNTIME.with(|c| c.borrow().clone()) {
        return Ok(rt.block_on(fut));
    }
    if Handle::try_current().is_ok() {
        // On an executor thread (e.g. inside `create`): blocking here could
        // deadlock the runtime.
        return Err(format!(
            "{what} cannot run here: host calls are available during method calls, not while the instance is created"
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("{what}: could not start a runtime: {e}"))?;
    Ok(rt.block_on(fut))
}

unsafe extern "C" fn host_log(ctx: *const c_void, level: u32, message: Bytes) {
    if ctx.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as in `respond`.
        let host = unsafe { &*(ctx as *const HostContext) };
        let message = match text(message, "log message") {
            Ok(m) => m.to_string(),
            Err(e) => format!("<unreadable log message: {e}>"),
        };
        (host.log)(&PluginLog {
            level: LogLevel::from_abi(level),
            library: &host.corp_ctx.library,
            element: &host.corp_ctx.full_name,
            message: &message,
        });
    }));
}

unsafe extern "C" fn host_get_config(ctx: *const c_void, out: *mut OwnedBuffer) -> i32 {
    respond(ctx, out, |h| {
        Ok(h.corp_ctx.config.clone().unwrap_or(Value::Null))
    })
}

unsafe extern "C" fn host_call_element(
    ctx: *const c_void,
    full_name: Bytes,
    method: Bytes,
    args: Bytes,
    out: *mut OwnedBuffer,
) -> i32 {
    respond(ctx, out, |h| {
        let full_name = text(full_name, "element name")?;
        let method = text(method, "method name")?;
        let args = json_arg(args, "arguments")?;
        let element = h
            .corp_ctx
            .app
            .element(full_name)
            .map_err(|e| e.to_string())?;
        let what = format!("{full_name}.{method}");
        block_on(&what, element.call(method, args))?.map_err(|e| e.to_string())
    })
}

unsafe extern "C" fn host_call_parent(
    ctx: *const c_void,
    method: Bytes,
    args: Bytes,
    out: *mut OwnedBuffer,
) -> i32 {
    respond(ctx, out, |h| {
        let method = text(method, "method name")?;
        let args = json_arg(args, "arguments")?;
        let Some(parent) = &h.parent else {
            return Err(format!(
                "{} extends no implemented Type, so there is no parent `{method}` to call",
                h.corp_ctx.type_name
            ));
        };
        let named = check_call(&h.corp_ctx.full_name, &h.functions, method, args)
            .map_err(|e| e.to_string())?;
        block_on(&format!("parent {method}"), parent.call(method, named))?
            .map_err(|e| e.to_string())
    })
}

const SERVICES: &str = "corps.syncSnapshot, corps.localCorpData, app.settings, app.root";

unsafe extern "C" fn host_service(
    ctx: *const c_void,
    name: Bytes,
    args: Bytes,
    out: *mut OwnedBuffer,
) -> i32 {
    respond(ctx, out, |h| {
        let name = text(name, "service name")?;
        let args = json_arg(args, "arguments")?;
        match name {
            "app.settings" => Ok(h.corp_ctx.app.settings()),
            "app.root" => Ok(json!(h.corp_ctx.app.root().display().to_string())),
            corps if corps.starts_with("corps.") => {
                let Some(corp) = &h.corp else {
                    return Err(format!(
                        "{name} is unavailable: this runtime was started without corps services"
                    ));
                };
                let cc = &h.corp_ctx;
                match corps {
                    "corps.syncSnapshot" => {
                        let snapshot = args.get("snapshot").cloned().unwrap_or(Value::Null);
                        let snapshot: jit_org::CorpSnapshot = serde_json::from_value(snapshot)
                            .map_err(|e| {
                                format!(
                                    "corps.syncSnapshot: args/snapshot is not a CorpSnapshot: {e}"
                                )
                            })?;
                        let options = args.get("options").cloned().unwrap_or_else(|| json!({}));
                        block_on(name, corp.sync_snapshot(cc, snapshot, options))?
                    }
                    "corps.localCorpData" => block_on(name, corp.local_corp_data(cc))?,
                    other => block_on(name, corp.call(cc, other, args))?,
                }
            }
            other => Err(format!("unknown host service `{other}`; known: {SERVICES}")),
        }
    })
}
