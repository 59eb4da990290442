//! The element runtime core: reads an app (a folder tree of elements, each a
//! folder with an `e.json`), validates every declaration and config file
//! against the JSON Schemas in `schemas/`, resolves each element's
//! Meta → Type → Instance chain through a [`TypeRegistry`], and serves
//! [`App::get_element`] lookups.
//!
//! The core knows nothing of WeCom or DingTalk and does no network I/O. Type
//! implementations are registered by other crates (`jit-corps` for the
//! built-in org types, `jit-plugin-host` for plugins).
//!
//! Every problem found while loading is a [`Diagnostic`] naming the file, the
//! JSON pointer and the cause; loading never stops at the first one.
//!
//! ```
//! use jit_core::{App, CallFuture, Element, InstanceContext, LoadOptions, TypeImpl, TypeRegistry};
//! use serde_json::{json, Value};
//! use std::sync::Arc;
//!
//! // A tiny Type implementation: `greet(name)` answers a greeting.
//! struct Greeter;
//! struct Hello(String);
//! impl Element for Hello {
//!     fn call<'a>(&'a self, _method: &'a str, args: Value) -> CallFuture<'a> {
//!         Box::pin(async move { Ok(json!(format!("{} {}", self.0, args["name"].as_str().unwrap()))) })
//!     }
//!     fn as_any(&self) -> &dyn std::any::Any { self }
//! }
//! impl TypeImpl for Greeter {
//!     fn type_name(&self) -> &str { "greeters.HelloType" }
//!     fn instantiate(&self, ctx: InstanceContext) -> Result<Arc<dyn Element>, String> {
//!         Ok(Arc::new(Hello(ctx.define.title.clone())))
//!     }
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! let write = |rel: &str, v: Value| {
//!     let p = dir.path().join(rel);
//!     std::fs::create_dir_all(p.parent().unwrap()).unwrap();
//!     std::fs::write(p, v.to_string()).unwrap();
//! };
//! write("greeters/Meta/e.json", json!({"title": "Greeters"}));
//! write("greeters/HelloType/e.json", json!({"title": "Hello type", "kind": "Type", "type": "greeters.Meta",
//!     "functionList": [{"name": "greet", "args": [{"name": "name", "dataType": "Stext"}], "returnType": "Stext"}]}));
//! write("greeters/Hi/e.json", json!({"title": "Hi", "type": "greeters.HelloType"}));
//!
//! let mut registry = TypeRegistry::new();
//! registry.register(Arc::new(Greeter));
//! let app = App::load(dir.path(), LoadOptions { registry, ..Default::default() }).unwrap();
//! assert!(!app.diagnostics().has_errors(), "{:?}", app.diagnostics());
//! let hi = app.get_element("greeters.Hi").unwrap();
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! assert_eq!(rt.block_on(hi.call("greet", json!({"name": "Ann"}))).unwrap(), json!("Hi Ann"));
//! // Calls are checked against the declared functionList.
//! assert!(rt.block_on(hi.call("greet", json!({}))).is_err());
//! ```

mod app;
mod define;
mod diagnostics;
mod element;
mod load;
mod redact;
mod registry;
mod schema_errors;

/// Files embedded at build time from `elements/` and `schemas/`.
pub mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

    /// The embedded config schema of a built-in Type
    /// (`schemas/<type>.config.schema.json`), parsed; `None` if it has none.
    pub fn config_schema(type_name: &str) -> Option<serde_json::Value> {
        let name = format!("{type_name}.config.schema.json");
        SCHEMA_FILES
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, text)| serde_json::from_str(text).ok())
    }
}

pub use app::{
    check_call, is_secret_key, mask_secrets, App, ElementHandle, ElementInfo, LoadError,
    LoadOptions, LookupError,
};
pub use define::*;
pub use diagnostics::*;
pub use element::*;
pub use load::{closest, is_identifier, FRAMEWORK_PREFIX};
pub use redact::redact;
pub use registry::*;
