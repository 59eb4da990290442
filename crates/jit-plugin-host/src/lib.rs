//! The host side of Type plugins: loads plugin libraries (the only crate of
//! the workspace that calls libloading), checks them, and provides their
//! Types to the element runtime as a [`jit_core::TypeProvider`].
//!
//! - **Where plugins come from**: `<app>/plugins/*.so|*.dylib|*.dll` (the
//!   platform's extension), the `"plugins"` list of `app.json` (paths
//!   relative to the app; a path without an extension gets the platform's
//!   naming, `lib<name>.so` / `lib<name>.dylib` / `<name>.dll`), and a path
//!   in a Type's `"plugin"` field.
//! - **Which Type a library implements**: a Type element (`"kind": "Type"`)
//!   whose fullName the library exports. The e.json field `"plugin"` may
//!   name the library (its plugin name, file name, or path); then that
//!   library must export the Type.
//! - **Extending a built-in**: a plugin Type whose `type` is another
//!   implemented Type (e.g. `corps.QywxInnerType`) gets an instance of that
//!   parent for each element; methods the plugin exports go to the plugin,
//!   the others to the parent, and the plugin can call the parent's
//!   version with `Host::call_parent`.
//! - **Safety**: the descriptor's header (ABI major, size) is checked before
//!   anything else is read; plugin panics come back as errors of that call;
//!   answers that are not JSON, unknown statuses and broken buffers become
//!   clear [`jit_core::CallError`]s. Plugin calls run on tokio's blocking
//!   pool, never on the executor. Libraries are never unloaded.
//! - **Problems** are [`jit_core::Diagnostic`]s with code
//!   [`jit_core::DiagCode::Plugin`], next to the loader's own.
//!
//! ```no_run
//! use jit_core::{App, LoadOptions, TypeRegistry};
//! use jit_plugin_host::PluginProvider;
//! use std::sync::Arc;
//!
//! let mut registry = TypeRegistry::new();
//! // ... register the built-in Types first, so plugins can extend them ...
//! let provider = PluginProvider::new(registry.clone());
//! registry.add_provider(Arc::new(provider));
//! let app = App::load("my-app", LoadOptions { registry, ..Default::default() }).unwrap();
//! for d in app.diagnostics().iter() {
//!     eprintln!("{d}");
//! }
//! let info = app.element_info("corps.JsonFileType").unwrap();
//! // Prints the library file implementing the Type.
//! println!("{:?}", info.implemented_by);
//! ```

#![deny(missing_docs)]

mod instance;
mod library;
mod provider;
mod services;

pub use instance::PluginElement;
pub use library::{inspect_library, ExportedType, LibraryInfo, PluginLoadError};
pub use provider::PluginProvider;
pub use services::{stderr_log_sink, CorpContext, CorpServices, LogLevel, LogSink, PluginLog};
