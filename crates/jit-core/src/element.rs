//! The runtime side of an element: what a Type implementation produces and
//! what hosts call.

use crate::define::ElementDefine;
use serde_json::Value;
use std::any::Any;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

/// The future returned by [`Element::call`].
pub type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, CallError>> + Send + 'a>>;

/// An error raised by a method call. Messages never contain secrets.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    /// The element has no method of that name.
    #[error("{element} has no method `{method}`; its methods are: {known}")]
    UnknownMethod {
        /// fullName of the element.
        element: String,
        /// The method asked for.
        method: String,
        /// Comma-separated declared method names.
        known: String,
    },
    /// An argument is missing, unexpected, or of the wrong type.
    #[error("{element}.{method}: {message}")]
    BadArgument {
        /// fullName of the element.
        element: String,
        /// The method.
        method: String,
        /// What is wrong, naming the argument.
        message: String,
    },
    /// The method is declared but this Type has no implementation for it.
    #[error("{element}.{method} is declared but not implemented by {type_name}")]
    NotImplemented {
        /// fullName of the element.
        element: String,
        /// The method.
        method: String,
        /// The Type that should implement it.
        type_name: String,
    },
    /// The method ran and failed.
    #[error("{element}.{method} failed: {message}")]
    Failed {
        /// fullName of the element.
        element: String,
        /// The method.
        method: String,
        /// What went wrong, with context (API path, errcode, file...).
        message: String,
        /// What kind of failure it is, for hosts that answer differently
        /// (an HTTP status, a retry); the message stays the whole story.
        kind: FailureKind,
    },
}

/// Why a method that ran failed, as far as a host needs to tell causes
/// apart: the typed cause of a Type's error cannot cross [`CallError`]
/// (it is carried as its message), so its kind travels beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum FailureKind {
    /// Anything else: a bug, a plugin failure, a store failure.
    #[default]
    Internal,
    /// The implementation rejected its input (beyond the declared argument
    /// types): an unknown member, a malformed value.
    InvalidInput,
    /// Another run holds what the call needs (e.g. another sync of the
    /// same org is running); trying again later may work.
    Busy,
    /// A safety check refused the operation; it needs an explicit override.
    Refused,
    /// An upstream platform (WeCom, DingTalk) failed or refused the call.
    Upstream {
        /// The platform's error code (`errcode`, or a DingTalk `code`), if it sent one.
        errcode: Option<String>,
    },
}

impl CallError {
    /// Shorthand for [`CallError::Failed`] of kind [`FailureKind::Internal`].
    pub fn failed(element: &str, method: &str, message: impl Into<String>) -> CallError {
        CallError::failed_with(element, method, FailureKind::Internal, message)
    }

    /// Shorthand for [`CallError::Failed`] of a given kind.
    pub fn failed_with(
        element: &str,
        method: &str,
        kind: FailureKind,
        message: impl Into<String>,
    ) -> CallError {
        CallError::Failed {
            element: element.to_string(),
            method: method.to_string(),
            message: message.into(),
            kind,
        }
    }
}

/// A loaded element, as built by its Type.
///
/// `call` receives arguments already checked against the element's declared
/// `functionList` and normalised to a JSON object keyed by argument name.
pub trait Element: Send + Sync + 'static {
    /// Calls a declared method with named arguments; returns its JSON result.
    fn call<'a>(&'a self, method: &'a str, args: Value) -> CallFuture<'a>;

    /// Reads a property (e.g. `title`, `fullName`, `authConfig`); `None` if unknown.
    /// Secret values must come back masked.
    fn property(&self, name: &str) -> Option<Value> {
        let _ = name;
        None
    }

    /// Names of the properties [`Element::property`] answers.
    fn property_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// Gives hosts that know the concrete type a typed interface (downcast).
    fn as_any(&self) -> &dyn Any;
}

/// Services of the running app that a Type may use while building or serving
/// an element (calling other elements, reading settings).
pub trait AppServices: Send + Sync {
    /// Looks up another element of the same app.
    fn element(&self, full_name: &str) -> Result<crate::ElementHandle, crate::LookupError>;
    /// The app's `settings` from `app.json` (after `{{NAME}}` substitution).
    fn settings(&self) -> Value;
    /// The app's root folder.
    fn root(&self) -> PathBuf;
}

/// What a Type gets when asked to build one of its instances.
#[derive(Clone)]
pub struct InstanceContext {
    /// The instance being built (`nodes[0]` of the chain).
    pub define: Arc<ElementDefine>,
    /// The inheritance chain from the instance up to its Meta (`nodes`).
    pub chain: Vec<Arc<ElementDefine>>,
    /// The instance's config file, `{{NAME}}` placeholders filled; `None` if it has none.
    pub config: Option<Value>,
    /// The running app.
    pub app: Arc<dyn AppServices>,
}

impl std::fmt::Debug for InstanceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config may hold secrets: never print it.
        f.debug_struct("InstanceContext")
            .field("define", &self.define.full_name)
            .field("config", &self.config.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// A Type implementation: builds the runtime object of each Instance whose
/// chain reaches this Type. Registered in a [`crate::TypeRegistry`] by fullName.
pub trait TypeImpl: Send + Sync + 'static {
    /// fullName of the Type element it implements (e.g. `corps.QywxInnerType`).
    fn type_name(&self) -> &str;

    /// JSON Schema of an instance's config file, if this Type checks one.
    fn config_schema(&self) -> Option<Value> {
        None
    }

    /// Where the implementation comes from, shown by `jit ls` / `jit show`
    /// (e.g. `built-in`, or a plugin library path).
    fn origin(&self) -> String {
        "built-in".to_string()
    }

    /// Builds the runtime object of an instance. Must not block on I/O:
    /// connect lazily on the first call instead.
    fn instantiate(&self, ctx: InstanceContext) -> Result<Arc<dyn Element>, String>;

    /// Problems of an instance that its config alone cannot show: what it
    /// names elsewhere in the app (a task's target element, method and
    /// arguments), or values its schema cannot judge (a cron pattern).
    /// [`crate::App::load`] asks once every element is resolved, for each
    /// instance this Type implements whose config passed its schema, and
    /// reports the answers with the load's diagnostics, so `jit check`, `jit
    /// serve` and every host see them before anything runs. Reads the app's
    /// declarations only: no instance is built and nothing is called.
    fn check_instance(
        &self,
        app: &crate::App,
        instance: &ElementDefine,
        config: &Value,
    ) -> Vec<crate::Diagnostic> {
        let _ = (app, instance, config);
        Vec::new()
    }
}
