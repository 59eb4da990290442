//! The SDK for authors of jit Type plugins.
//!
//! A plugin is a Rust library built as a `cdylib` that the runtime loads at
//! start-up. The author writes an ordinary struct, implements [`PluginType`]
//! for it, and exports it with [`export_plugin!`]. The SDK does the rest:
//! the C ABI of `jit-plugin-abi`, JSON in and out, freeing memory on the
//! side that allocated it, and catching panics so that none ever crosses
//! into the host (a panic becomes an error of that one call).
//!
//! Host services reach the plugin through [`Host`]: logging, the element's
//! config, calls to other elements or to the parent Type, and named
//! services such as `corps.syncSnapshot`, which syncs a
//! [`org::CorpSnapshot`] through the runtime's own sync engine and store.
//!
//! ```
//! use jit_plugin_sdk::{arg, export_plugin, json, Host, Init, PluginError, PluginType, Value};
//!
//! /// `greeters.HelloType`: greets people.
//! struct Hello {
//!     greeting: String,
//! }
//!
//! impl PluginType for Hello {
//!     const TYPE_NAME: &'static str = "greeters.HelloType";
//!     const METHODS: &'static [&'static str] = &["greet"];
//!
//!     fn create(init: Init, _host: &Host) -> Result<Self, PluginError> {
//!         let greeting = init.config["greeting"].as_str().unwrap_or("Hello").to_string();
//!         Ok(Hello { greeting })
//!     }
//!
//!     fn call(&self, host: &Host, method: &str, args: Value) -> Result<Value, PluginError> {
//!         match method {
//!             "greet" => {
//!                 let name: String = arg(&args, "name")?;
//!                 host.info(&format!("greeting {name}"));
//!                 Ok(json!(format!("{}, {name}!", self.greeting)))
//!             }
//!             other => Err(PluginError::unknown_method(other)),
//!         }
//!     }
//! }
//!
//! export_plugin!(types: [Hello]);
//! ```

#![deny(missing_docs)]

pub use jit_org as org;
pub use jit_plugin_abi as abi;
pub use serde_json::{self, json, Value};

use jit_plugin_abi::{Bytes, HostApi, OwnedBuffer, STATUS_OK};
use serde::de::DeserializeOwned;
use std::fmt;

/// An error a plugin returns from a call; the host reports its message as
/// the call's failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    message: String,
}

impl PluginError {
    /// An error with this message (say what failed and with which input).
    pub fn new(message: impl Into<String>) -> PluginError {
        PluginError {
            message: message.into(),
        }
    }

    /// The error for a method the Type does not implement.
    pub fn unknown_method(method: &str) -> PluginError {
        PluginError::new(format!(
            "method `{method}` is not implemented by this plugin"
        ))
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PluginError {}

impl From<String> for PluginError {
    fn from(message: String) -> PluginError {
        PluginError::new(message)
    }
}

impl From<&str> for PluginError {
    fn from(message: &str) -> PluginError {
        PluginError::new(message)
    }
}

impl From<serde_json::Error> for PluginError {
    fn from(e: serde_json::Error) -> PluginError {
        PluginError::new(format!("JSON: {e}"))
    }
}

impl From<std::io::Error> for PluginError {
    fn from(e: std::io::Error) -> PluginError {
        PluginError::new(format!("I/O: {e}"))
    }
}

/// Reads a required argument by name from a call's `args` object.
pub fn arg<T: DeserializeOwned>(args: &Value, name: &str) -> Result<T, PluginError> {
    match args.get(name) {
        None | Some(Value::Null) => Err(PluginError::new(format!("missing argument `{name}`"))),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| PluginError::new(format!("argument `{name}`: {e}"))),
    }
}

/// Reads an optional argument by name (`None` when absent or `null`).
pub fn opt_arg<T: DeserializeOwned>(args: &Value, name: &str) -> Result<Option<T>, PluginError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| PluginError::new(format!("argument `{name}`: {e}"))),
    }
}

/// What an instance is created from: the element and its config.
#[derive(Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Init {
    /// fullName of the element being built, e.g. `corps.HrCorp`.
    pub full_name: String,
    /// fullName of the plugin Type that builds it.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The element's title.
    #[serde(default)]
    pub title: String,
    /// The element's config file, `{{NAME}}` placeholders filled (`null` if none).
    #[serde(default)]
    pub config: Value,
    /// The app's root folder.
    #[serde(default)]
    pub app_root: String,
    /// The element's own folder, when it lives on disk.
    #[serde(default)]
    pub element_dir: Option<String>,
    /// The Type this plugin Type extends and delegates to, if it has one.
    #[serde(default)]
    pub parent_type: Option<String>,
}

impl fmt::Debug for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The config may hold secrets: never print it.
        f.debug_struct("Init")
            .field("full_name", &self.full_name)
            .field("type_name", &self.type_name)
            .field("title", &self.title)
            .field("config", &"<hidden>")
            .field("app_root", &self.app_root)
            .field("element_dir", &self.element_dir)
            .field("parent_type", &self.parent_type)
            .finish()
    }
}

/// Log levels for [`Host::log`] (defined by the ABI both sides share).
pub use jit_plugin_abi::LogLevel;

/// The host's services, as seen by one instance. Valid for the instance's
/// whole life; usable from any thread.
pub struct Host {
    api: *const HostApi,
}

// SAFETY: the ABI contract requires every HostApi function to be callable
// from any thread until the instance is released, and the SDK never lets a
// `Host` outlive its instance.
unsafe impl Send for Host {}
unsafe impl Sync for Host {}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Host")
    }
}

impl Host {
    fn api(&self) -> &HostApi {
        // SAFETY: checked non-null at create time; valid until release.
        unsafe { &*self.api }
    }

    /// Writes a line to the host's log, tagged with the element.
    pub fn log(&self, level: LogLevel, message: &str) {
        let level = level.to_abi();
        let api = self.api();
        // SAFETY: host function from the HostApi table, with its own ctx.
        unsafe { (api.log)(api.ctx, level, Bytes::from_str(message)) }
    }

    /// Logs an error.
    pub fn error(&self, message: &str) {
        self.log(LogLevel::Error, message)
    }

    /// Logs a warning.
    pub fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, message)
    }

    /// Logs information.
    pub fn info(&self, message: &str) {
        self.log(LogLevel::Info, message)
    }

    /// Logs debugging detail.
    pub fn debug(&self, message: &str) {
        self.log(LogLevel::Debug, message)
    }

    /// The element's config (`null` when it has none).
    pub fn config(&self) -> Result<Value, PluginError> {
        let api = self.api();
        let mut out = OwnedBuffer::EMPTY;
        // SAFETY: host function; `out` is a valid place for its answer.
        let status = unsafe { (api.get_config)(api.ctx, &mut out) };
        self.answer("config", status, out)
    }

    /// Calls `method` of another element of the app (`args` by name).
    pub fn call_element(
        &self,
        full_name: &str,
        method: &str,
        args: Value,
    ) -> Result<Value, PluginError> {
        // SAFETY: host function from the HostApi table, with its own ctx;
        // inputs borrowed for the call only.
        self.request(
            &format!("{full_name}.{method}"),
            args,
            |api, args, out| unsafe {
                let (full_name, method) = (Bytes::from_str(full_name), Bytes::from_str(method));
                (api.call_element)(api.ctx, full_name, method, args, out)
            },
        )
    }

    /// Calls `method` as implemented by the parent Type (the Type this plugin
    /// Type extends) for this same element: how an override reuses the
    /// behaviour it replaces.
    pub fn call_parent(&self, method: &str, args: Value) -> Result<Value, PluginError> {
        // SAFETY: as above.
        self.request(&format!("parent {method}"), args, |api, args, out| unsafe {
            (api.call_parent)(api.ctx, Bytes::from_str(method), args, out)
        })
    }

    /// Calls a named host service (`corps.syncSnapshot`, `corps.localCorpData`,
    /// `app.settings`, `app.root`).
    pub fn service(&self, name: &str, args: Value) -> Result<Value, PluginError> {
        // SAFETY: as above.
        self.request(name, args, |api, args, out| unsafe {
            (api.host_service)(api.ctx, Bytes::from_str(name), args, out)
        })
    }

    /// One host call that takes JSON arguments: serializes `args`, lets
    /// `call` invoke the host function with them and a buffer for the
    /// answer, and reads that answer (`what` names the call in errors).
    fn request(
        &self,
        what: &str,
        args: Value,
        call: impl FnOnce(&HostApi, Bytes, *mut OwnedBuffer) -> i32,
    ) -> Result<Value, PluginError> {
        let args = args.to_string();
        let mut out = OwnedBuffer::EMPTY;
        let status = call(self.api(), Bytes::from_str(&args), &mut out);
        self.answer(what, status, out)
    }

    /// Syncs an organization read by the plugin into the app's org store,
    /// through the same sync engine and safety checks as the built-in org
    /// types (an incomplete snapshot never offlines anyone, mass-offline
    /// guard, ...). Returns the host's sync report.
    pub fn sync_snapshot(
        &self,
        snapshot: &org::CorpSnapshot,
        options: Value,
    ) -> Result<Value, PluginError> {
        self.service(
            "corps.syncSnapshot",
            json!({ "snapshot": snapshot, "options": options }),
        )
    }

    /// The organization as the store holds it (`getLocalCorpData` shape).
    pub fn local_corp_data(&self) -> Result<Value, PluginError> {
        self.service("corps.localCorpData", json!({}))
    }

    fn answer(&self, what: &str, status: i32, out: OwnedBuffer) -> Result<Value, PluginError> {
        let bytes = if out.ptr.is_null() {
            Vec::new()
        } else {
            // SAFETY: the host wrote `len` bytes at `ptr`; we copy them out
            // and give the buffer back to the host's allocator.
            let v = unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec();
            unsafe { (self.api().free_buffer)(out) };
            v
        };
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                PluginError::new(format!("host answered {what} with invalid JSON: {e}"))
            })?
        };
        if status == STATUS_OK {
            Ok(value)
        } else {
            let message = value
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            Err(PluginError::new(message))
        }
    }
}

/// A Type implemented by a plugin. One value of the implementing struct is
/// created per element (instance) of that Type.
///
/// `call` may run on several threads at once: keep mutable state behind a
/// `Mutex`. A panic in `create` or `call` is caught and reported as that
/// call's error; the host and every other element keep running.
pub trait PluginType: Sized + Send + Sync + 'static {
    /// fullName of the Type element this struct implements (it must be
    /// declared in the app with `"kind": "Type"`).
    const TYPE_NAME: &'static str;

    /// The methods `call` implements. Methods declared on the Type element
    /// but not listed here go to the parent Type when this Type extends one.
    const METHODS: &'static [&'static str];

    /// JSON Schema the host checks each instance's config file against
    /// (unless the Type element declares its own `configSchema`).
    fn config_schema() -> Option<Value> {
        None
    }

    /// Builds the instance of one element. Keep it cheap: no network I/O
    /// (connect lazily on the first call).
    fn create(init: Init, host: &Host) -> Result<Self, PluginError>;

    /// Runs one of [`PluginType::METHODS`] with arguments by name (an object,
    /// already checked against the declared `functionList`).
    fn call(&self, host: &Host, method: &str, args: Value) -> Result<Value, PluginError>;
}

/// Exports the plugin's Types from a `cdylib`: generates the
/// `jit_plugin_entry` function the runtime looks for.
///
/// ```text
/// export_plugin!(types: [MyType, MyOtherType]);
/// // or, naming the plugin explicitly:
/// export_plugin!(name: "hr-import", version: "1.2.0", types: [MyType]);
/// ```
/// Without `name`/`version`, the crate's package name and version are used.
#[macro_export]
macro_rules! export_plugin {
    (types: [$($ty:ty),+ $(,)?] $(,)?) => {
        $crate::export_plugin!(
            name: env!("CARGO_PKG_NAME"),
            version: env!("CARGO_PKG_VERSION"),
            types: [$($ty),+]
        );
    };
    (name: $name:expr, version: $version:expr, types: [$($ty:ty),+ $(,)?] $(,)?) => {
        /// The plugin's entry point (`jit_plugin_abi::ENTRY_SYMBOL`).
        #[unsafe(no_mangle)]
        pub extern "C" fn jit_plugin_entry(
            host_abi_major: u32,
            host_abi_minor: u32,
        ) -> *const $crate::abi::PluginDescriptor {
            static PLUGIN: $crate::__private::Plugin = $crate::__private::Plugin::new(
                $name,
                $version,
                &[$($crate::__private::TypeEntry::of::<$ty>()),+],
            );
            $crate::__private::entry(&PLUGIN, host_abi_major, host_abi_minor)
        }
    };
}

#[doc(hidden)]
pub mod __private {
    //! Used by [`export_plugin!`]; not a public API.

    use super::*;
    use jit_plugin_abi::{
        DescriptorHeader, PluginDescriptor, TypeDescriptor, ABI_MAJOR, ABI_MINOR, STATUS_ERROR,
        STATUS_PANIC,
    };
    use std::ffi::c_void;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::OnceLock;

    /// A type-erased instance.
    pub trait ErasedInstance: Send + Sync {
        /// See [`PluginType::call`].
        fn call(&self, host: &Host, method: &str, args: Value) -> Result<Value, PluginError>;
    }

    impl<T: PluginType> ErasedInstance for T {
        fn call(&self, host: &Host, method: &str, args: Value) -> Result<Value, PluginError> {
            PluginType::call(self, host, method, args)
        }
    }

    type CreateErased = fn(Init, &Host) -> Result<Box<dyn ErasedInstance>, PluginError>;

    fn create_erased<T: PluginType>(
        init: Init,
        host: &Host,
    ) -> Result<Box<dyn ErasedInstance>, PluginError> {
        Ok(Box::new(T::create(init, host)?))
    }

    /// One exported Type.
    pub struct TypeEntry {
        name: &'static str,
        methods: &'static [&'static str],
        schema: fn() -> Option<Value>,
        create: CreateErased,
    }

    impl TypeEntry {
        /// The entry of `T`.
        pub const fn of<T: PluginType>() -> TypeEntry {
            TypeEntry {
                name: T::TYPE_NAME,
                methods: T::METHODS,
                schema: T::config_schema,
                create: create_erased::<T>,
            }
        }
    }

    struct Built {
        descriptor: PluginDescriptor,
        // Owned storage the descriptor points into; never dropped.
        _types: Vec<TypeDescriptor>,
        _methods: Vec<Vec<Bytes>>,
        _schemas: Vec<String>,
    }

    // SAFETY: `Built` is written once and then only read; its raw pointers
    // point into itself or into 'static data.
    unsafe impl Send for Built {}
    unsafe impl Sync for Built {}

    /// The plugin, as declared by [`export_plugin!`].
    pub struct Plugin {
        name: &'static str,
        version: &'static str,
        types: &'static [TypeEntry],
        built: OnceLock<Built>,
    }

    impl Plugin {
        /// A plugin with these Types.
        pub const fn new(
            name: &'static str,
            version: &'static str,
            types: &'static [TypeEntry],
        ) -> Plugin {
            Plugin {
                name,
                version,
                types,
                built: OnceLock::new(),
            }
        }

        fn build(&self) -> Built {
            let methods: Vec<Vec<Bytes>> = self
                .types
                .iter()
                .map(|t| t.methods.iter().map(|m| Bytes::from_str(m)).collect())
                .collect();
            let schemas: Vec<String> = self
                .types
                .iter()
                .map(|t| (t.schema)().map(|s| s.to_string()).unwrap_or_default())
                .collect();
            let types: Vec<TypeDescriptor> = self
                .types
                .iter()
                .zip(&methods)
                .zip(&schemas)
                .map(|((t, m), s)| TypeDescriptor {
                    full_name: Bytes::from_str(t.name),
                    methods: m.as_ptr(),
                    methods_len: m.len(),
                    config_schema: Bytes::from_str(s),
                })
                .collect();
            let descriptor = PluginDescriptor {
                header: DescriptorHeader {
                    abi_major: ABI_MAJOR,
                    abi_minor: ABI_MINOR,
                    size: std::mem::size_of::<PluginDescriptor>() as u32,
                    reserved: 0,
                },
                name: Bytes::from_str(self.name),
                version: Bytes::from_str(self.version),
                types: types.as_ptr(),
                types_len: types.len(),
                create: Some(sdk_create),
                call: Some(sdk_call),
                release: Some(sdk_release),
                free_buffer: Some(sdk_free_buffer),
            };
            // Moving the Vecs into `Built` keeps their heap storage in place.
            Built {
                descriptor,
                _types: types,
                _methods: methods,
                _schemas: schemas,
            }
        }
    }

    static ACTIVE: OnceLock<&'static Plugin> = OnceLock::new();

    /// Body of the generated `jit_plugin_entry`.
    pub fn entry(
        plugin: &'static Plugin,
        _host_major: u32,
        _host_minor: u32,
    ) -> *const PluginDescriptor {
        // The host checks versions itself; the plugin always answers with its own.
        catch_unwind(|| {
            let _ = ACTIVE.set(plugin);
            &plugin.built.get_or_init(|| plugin.build()).descriptor as *const PluginDescriptor
        })
        .unwrap_or(std::ptr::null())
    }

    struct InstanceBox {
        inner: Box<dyn ErasedInstance>,
        host: Host,
        type_name: &'static str,
        methods: &'static [&'static str],
    }

    fn to_buffer(v: &Value) -> OwnedBuffer {
        let mut bytes = std::mem::ManuallyDrop::new(v.to_string().into_bytes());
        OwnedBuffer {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            cap: bytes.capacity(),
        }
    }

    fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a non-text payload".to_string())
    }

    /// Runs `f`, catching panics, and writes its answer to `out`.
    fn guard(out: *mut OwnedBuffer, f: impl FnOnce() -> Result<Value, PluginError>) -> i32 {
        let (status, value) = match catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(v)) => (STATUS_OK, v),
            Ok(Err(e)) => (STATUS_ERROR, json!({ "message": e.message })),
            Err(payload) => (
                STATUS_PANIC,
                json!({ "message": format!("plugin panicked: {}", panic_message(payload.as_ref())) }),
            ),
        };
        if !out.is_null() {
            // Serialising a Value cannot panic; the write is to host memory
            // the host passed for this purpose.
            unsafe { *out = to_buffer(&value) };
        }
        status
    }

    fn text<'a>(b: Bytes, what: &str) -> Result<&'a str, PluginError> {
        // SAFETY: the host's inputs are valid for the duration of the call;
        // the slice never escapes the call.
        std::str::from_utf8(unsafe { b.as_slice() })
            .map_err(|e| PluginError::new(format!("{what} is not UTF-8: {e}")))
    }

    unsafe extern "C" fn sdk_create(
        type_index: usize,
        init: Bytes,
        host: *const HostApi,
        instance_out: *mut *mut c_void,
        out: *mut OwnedBuffer,
    ) -> i32 {
        guard(out, || {
            let plugin = ACTIVE
                .get()
                .ok_or_else(|| PluginError::new("create called before jit_plugin_entry"))?;
            let entry = plugin.types.get(type_index).ok_or_else(|| {
                PluginError::new(format!(
                    "no Type at index {type_index} (this plugin has {})",
                    plugin.types.len()
                ))
            })?;
            if host.is_null() || instance_out.is_null() {
                return Err(PluginError::new(
                    "create called with a null host table or output",
                ));
            }
            // SAFETY: checked non-null; the header is the fixed prefix.
            let header = unsafe { (*host).header };
            if header.abi_major != jit_plugin_abi::ABI_MAJOR
                || (header.size as usize) < jit_plugin_abi::MIN_HOST_API_SIZE
            {
                return Err(PluginError::new(format!(
                    "host ABI {}.{} (table of {} bytes) is not compatible with this plugin's ABI {}.{}",
                    header.abi_major,
                    header.abi_minor,
                    header.size,
                    jit_plugin_abi::ABI_MAJOR,
                    jit_plugin_abi::ABI_MINOR
                )));
            }
            let init: Init = serde_json::from_str(text(init, "init")?)
                .map_err(|e| PluginError::new(format!("init document: {e}")))?;
            let host = Host { api: host };
            let inner = (entry.create)(init, &host)?;
            let boxed = Box::new(InstanceBox {
                inner,
                host,
                type_name: entry.name,
                methods: entry.methods,
            });
            // SAFETY: checked non-null above.
            unsafe { *instance_out = Box::into_raw(boxed) as *mut c_void };
            Ok(Value::Null)
        })
    }

    unsafe extern "C" fn sdk_call(
        instance: *mut c_void,
        method: Bytes,
        args: Bytes,
        out: *mut OwnedBuffer,
    ) -> i32 {
        guard(out, || {
            if instance.is_null() {
                return Err(PluginError::new("call on a null instance"));
            }
            // SAFETY: the host passes back the pointer `create` gave it, and
            // releases it only after every call returned.
            let inst = unsafe { &*(instance as *const InstanceBox) };
            let method = text(method, "method name")?;
            if !inst.methods.contains(&method) {
                return Err(PluginError::new(format!(
                    "{} does not implement `{method}`; it implements: {}",
                    inst.type_name,
                    inst.methods.join(", ")
                )));
            }
            let args_text = text(args, "arguments")?;
            let args: Value = if args_text.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(args_text)
                    .map_err(|e| PluginError::new(format!("arguments: {e}")))?
            };
            inst.inner.call(&inst.host, method, args)
        })
    }

    unsafe extern "C" fn sdk_release(instance: *mut c_void) {
        if instance.is_null() {
            return;
        }
        // A panicking Drop must not unwind into the host.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the pointer came from Box::into_raw in sdk_create and
            // the host releases it exactly once.
            drop(unsafe { Box::from_raw(instance as *mut InstanceBox) });
        }));
    }

    unsafe extern "C" fn sdk_free_buffer(buffer: OwnedBuffer) {
        if buffer.ptr.is_null() {
            return;
        }
        // SAFETY: every buffer this plugin hands out comes from `to_buffer`.
        drop(unsafe { Vec::from_raw_parts(buffer.ptr, buffer.len, buffer.cap) });
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_panic_becomes_a_panic_status_with_its_message() {
            let mut out = OwnedBuffer::EMPTY;
            let status = guard(&mut out, || panic!("boom at row 7"));
            assert_eq!(status, STATUS_PANIC);
            let text = unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec();
            unsafe { sdk_free_buffer(out) };
            let v: Value = serde_json::from_slice(&text).unwrap();
            assert_eq!(v["message"], "plugin panicked: boom at row 7");
        }

        #[test]
        fn an_error_becomes_an_error_status_with_its_message() {
            let mut out = OwnedBuffer::EMPTY;
            let status = guard(&mut out, || Err(PluginError::new("file hr.json not found")));
            assert_eq!(status, STATUS_ERROR);
            let text = unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec();
            unsafe { sdk_free_buffer(out) };
            assert_eq!(text, br#"{"message":"file hr.json not found"}"#);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arg_names_the_missing_argument() {
        let e = arg::<String>(&json!({}), "name").unwrap_err();
        assert_eq!(e.message(), "missing argument `name`");
    }

    #[test]
    fn arg_names_the_argument_of_the_wrong_type() {
        let e = arg::<i64>(&json!({"count": "x"}), "count").unwrap_err();
        assert!(e.message().starts_with("argument `count`:"), "{e}");
    }

    #[test]
    fn opt_arg_is_none_for_null() {
        assert_eq!(opt_arg::<i64>(&json!({"n": null}), "n").unwrap(), None);
        assert_eq!(opt_arg::<i64>(&json!({"n": 3}), "n").unwrap(), Some(3));
    }

    #[test]
    fn init_debug_hides_the_config() {
        let init: Init = serde_json::from_value(json!({
            "fullName": "corps.A", "type": "corps.T", "config": {"secret": "s3cr3t"}
        }))
        .unwrap();
        assert!(!format!("{init:?}").contains("s3cr3t"));
    }
}
