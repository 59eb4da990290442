//! Opening a plugin library and checking what it declares. The only module
//! of the workspace that calls libloading.

use jit_plugin_abi::{
    Bytes, DescriptorHeader, EntryFn, HostApi, OwnedBuffer, PluginDescriptor, TypeDescriptor,
    ABI_MAJOR, ABI_MINOR, ENTRY_SYMBOL, ENTRY_SYMBOL_NUL, STATUS_ERROR, STATUS_OK, STATUS_PANIC,
};
use serde_json::Value;
use std::collections::HashMap;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Why a library could not be used as a plugin.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PluginLoadError {
    /// No file at that path.
    #[error("plugin library {path} not found")]
    NotFound {
        /// The path looked at.
        path: PathBuf,
    },
    /// The OS loader refused the file.
    #[error("{path} is not a loadable library: {reason}")]
    NotLoadable {
        /// The file.
        path: PathBuf,
        /// The OS loader's message.
        reason: String,
    },
    /// The library does not export the entry function.
    #[error("{path} has no `{ENTRY_SYMBOL}` symbol, so it is not a jit plugin (plugins export it with jit_plugin_sdk::export_plugin!)")]
    MissingEntry {
        /// The file.
        path: PathBuf,
    },
    /// The entry function returned null or a misaligned pointer.
    #[error("{path}: `{ENTRY_SYMBOL}` returned {what} instead of a plugin descriptor")]
    BadDescriptor {
        /// The file.
        path: PathBuf,
        /// `null`, `a misaligned pointer`.
        what: String,
    },
    /// Built against another ABI major version.
    #[error("{path} was built against plugin ABI {found_major}.{found_minor} but this runtime speaks ABI {expected_major}.{ABI_MINOR} (expected major {expected_major}, found {found_major}); rebuild the plugin against a jit-plugin-sdk of ABI {expected_major}")]
    AbiMismatch {
        /// The file.
        path: PathBuf,
        /// The host's ABI major.
        expected_major: u32,
        /// The plugin's ABI major.
        found_major: u32,
        /// The plugin's ABI minor.
        found_minor: u32,
    },
    /// The descriptor is smaller than ABI major 1 requires.
    #[error("{path}: plugin descriptor is {found} bytes, ABI {ABI_MAJOR}.0 needs at least {expected}; the library was not built with jit-plugin-sdk or is corrupt")]
    DescriptorTooSmall {
        /// The file.
        path: PathBuf,
        /// Bytes required.
        expected: usize,
        /// Bytes declared.
        found: u32,
    },
    /// A descriptor field is unusable.
    #[error("{path}: invalid plugin descriptor: {reason}")]
    InvalidDescriptor {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One Type a library exports.
#[derive(Debug, Clone)]
pub struct ExportedType {
    /// fullName of the Type.
    pub full_name: String,
    /// Its position in the descriptor (passed to `create`).
    pub index: usize,
    /// The methods the plugin implements for it.
    pub methods: Vec<String>,
    /// The config schema it declares, if any.
    pub config_schema: Option<Value>,
}

/// What a loaded library declares, for tools (`jit ls`, diagnostics).
#[derive(Debug, Clone)]
pub struct LibraryInfo {
    /// The library file (canonical path).
    pub path: PathBuf,
    /// Plugin name from its descriptor.
    pub name: String,
    /// Plugin version from its descriptor.
    pub version: String,
    /// ABI (major, minor) it was built against.
    pub abi: (u32, u32),
    /// The Types it exports, in descriptor order (may contain duplicates).
    pub types: Vec<ExportedType>,
}

/// A plugin library that passed every check. Never unloaded.
pub(crate) struct LoadedLibrary {
    pub(crate) info: LibraryInfo,
    create: jit_plugin_abi::CreateFn,
    call: jit_plugin_abi::CallFn,
    release: jit_plugin_abi::ReleaseFn,
    free_buffer: jit_plugin_abi::FreeFn,
    // Kept so the library is never closed; the process-wide cache holds the
    // Arc forever.
    _library: libloading::Library,
}

/// How a call into a plugin failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PluginFailure {
    /// The plugin reported an error.
    Error(String),
    /// The plugin panicked (caught on its side).
    Panic(String),
    /// The plugin broke the ABI contract (bad status, bad buffer, not JSON).
    Garbage(String),
}

impl std::fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginFailure::Error(m) => write!(f, "{m}"),
            PluginFailure::Panic(m) => write!(f, "{m}"),
            PluginFailure::Garbage(m) => write!(f, "plugin broke the ABI contract: {m}"),
        }
    }
}

/// Anything larger is not a real answer: reading it could only crash.
const MAX_BUFFER: usize = 1 << 30;
/// More Types than this in one library means a garbage descriptor.
const MAX_TYPES: usize = 10_000;
const MAX_METHODS: usize = 10_000;

type Cache = Mutex<HashMap<PathBuf, Result<Arc<LoadedLibrary>, PluginLoadError>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Loads (once per process) and checks the plugin library at `path`.
pub(crate) fn load(path: &Path) -> Result<Arc<LoadedLibrary>, PluginLoadError> {
    if !path.is_file() {
        return Err(PluginLoadError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mut cache = cache().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = cache.get(&canonical) {
        return r.clone();
    }
    let r = open(&canonical).map(Arc::new);
    cache.insert(canonical, r.clone());
    r
}

/// Loads a plugin library and reports what it declares, without an app.
pub fn inspect_library(path: &Path) -> Result<LibraryInfo, PluginLoadError> {
    load(path).map(|l| l.info.clone())
}

fn open(path: &Path) -> Result<LoadedLibrary, PluginLoadError> {
    // SAFETY: loading a library runs its initialisers; that is the trust an
    // app gives a plugin by listing it. Everything after this is checked.
    let library =
        unsafe { libloading::Library::new(path) }.map_err(|e| PluginLoadError::NotLoadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    // SAFETY: the symbol's type is fixed by the ABI for every version.
    let entry: Option<EntryFn> = unsafe { library.get::<EntryFn>(ENTRY_SYMBOL_NUL) }
        .ok()
        .map(|s| *s);
    let Some(entry) = entry else {
        // Closing a library that ran initialisers is not always safe; keep it.
        std::mem::forget(library);
        return Err(PluginLoadError::MissingEntry {
            path: path.to_path_buf(),
        });
    };
    // SAFETY: calling the entry as the ABI specifies.
    let descriptor = unsafe { entry(ABI_MAJOR, ABI_MINOR) };
    match unsafe { check_descriptor(path, descriptor) } {
        Ok((info, create, call, release, free_buffer)) => Ok(LoadedLibrary {
            info,
            create,
            call,
            release,
            free_buffer,
            _library: library,
        }),
        Err(e) => {
            std::mem::forget(library);
            Err(e)
        }
    }
}

type Checked = (
    LibraryInfo,
    jit_plugin_abi::CreateFn,
    jit_plugin_abi::CallFn,
    jit_plugin_abi::ReleaseFn,
    jit_plugin_abi::FreeFn,
);

fn utf8(path: &Path, b: Bytes, what: &str) -> Result<String, PluginLoadError> {
    if b.ptr.is_null() && b.len != 0 {
        return Err(PluginLoadError::InvalidDescriptor {
            path: path.to_path_buf(),
            reason: format!("{what} is a null pointer with length {}", b.len),
        });
    }
    if b.len > MAX_BUFFER {
        return Err(PluginLoadError::InvalidDescriptor {
            path: path.to_path_buf(),
            reason: format!("{what} claims {} bytes", b.len),
        });
    }
    // SAFETY: descriptor strings live as long as the library.
    String::from_utf8(unsafe { b.as_slice() }.to_vec()).map_err(|e| {
        PluginLoadError::InvalidDescriptor {
            path: path.to_path_buf(),
            reason: format!("{what} is not UTF-8: {e}"),
        }
    })
}

/// Reads a descriptor: header first, and nothing else unless the ABI major
/// and the size fit.
unsafe fn check_descriptor(
    path: &Path,
    d: *const PluginDescriptor,
) -> Result<Checked, PluginLoadError> {
    let bad = |what: &str| PluginLoadError::BadDescriptor {
        path: path.to_path_buf(),
        what: what.to_string(),
    };
    if d.is_null() {
        return Err(bad("null"));
    }
    if !d.is_aligned() {
        return Err(bad("a misaligned pointer"));
    }
    let header: DescriptorHeader = std::ptr::read(d as *const DescriptorHeader);
    if header.abi_major != ABI_MAJOR {
        return Err(PluginLoadError::AbiMismatch {
            path: path.to_path_buf(),
            expected_major: ABI_MAJOR,
            found_major: header.abi_major,
            found_minor: header.abi_minor,
        });
    }
    let needed = jit_plugin_abi::MIN_DESCRIPTOR_SIZE;
    if (header.size as usize) < needed {
        return Err(PluginLoadError::DescriptorTooSmall {
            path: path.to_path_buf(),
            expected: needed,
            found: header.size,
        });
    }
    let d = &*d;
    let invalid = |reason: String| PluginLoadError::InvalidDescriptor {
        path: path.to_path_buf(),
        reason,
    };
    let name = utf8(path, d.name, "plugin name")?;
    let version = utf8(path, d.version, "plugin version")?;
    let (Some(create), Some(call), Some(release), Some(free_buffer)) =
        (d.create, d.call, d.release, d.free_buffer)
    else {
        return Err(invalid(
            "a create/call/release/free_buffer function pointer is null".into(),
        ));
    };
    if d.types_len > MAX_TYPES || (d.types.is_null() && d.types_len > 0) {
        return Err(invalid(format!(
            "types array is unusable (length {})",
            d.types_len
        )));
    }
    let raw_types: &[TypeDescriptor] = if d.types_len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(d.types, d.types_len)
    };
    let mut types = Vec::with_capacity(raw_types.len());
    for (index, t) in raw_types.iter().enumerate() {
        let full_name = utf8(path, t.full_name, &format!("types[{index}].fullName"))?;
        if !is_full_name(&full_name) {
            return Err(invalid(format!(
                "types[{index}].fullName `{full_name}` is not a dotted element name like `corps.MyType`"
            )));
        }
        if t.methods_len > MAX_METHODS || (t.methods.is_null() && t.methods_len > 0) {
            return Err(invalid(format!(
                "{full_name}: methods array is unusable (length {})",
                t.methods_len
            )));
        }
        let raw_methods: &[Bytes] = if t.methods_len == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(t.methods, t.methods_len)
        };
        let methods = raw_methods
            .iter()
            .enumerate()
            .map(|(i, m)| utf8(path, *m, &format!("{full_name}: methods[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let schema_text = utf8(
            path,
            t.config_schema,
            &format!("{full_name}: config schema"),
        )?;
        let config_schema = if schema_text.trim().is_empty() {
            None
        } else {
            Some(
                serde_json::from_str(&schema_text)
                    .map_err(|e| invalid(format!("{full_name}: config schema is not JSON: {e}")))?,
            )
        };
        types.push(ExportedType {
            full_name,
            index,
            methods,
            config_schema,
        });
    }
    Ok((
        LibraryInfo {
            path: path.to_path_buf(),
            name,
            version,
            abi: (header.abi_major, header.abi_minor),
            types,
        },
        create,
        call,
        release,
        free_buffer,
    ))
}

fn is_full_name(s: &str) -> bool {
    s.contains('.') && s.split('.').all(jit_core::is_identifier)
}

/// An instance pointer the plugin handed out.
pub(crate) struct RawInstance(pub(crate) *mut c_void);

// SAFETY: the ABI requires instances to be callable from any thread.
unsafe impl Send for RawInstance {}
unsafe impl Sync for RawInstance {}

impl LoadedLibrary {
    /// Copies a plugin-owned buffer out and gives it back to the plugin.
    fn take(&self, out: OwnedBuffer) -> Result<Vec<u8>, PluginFailure> {
        if out.ptr.is_null() {
            if out.len != 0 {
                return Err(PluginFailure::Garbage(format!(
                    "returned a null buffer of length {}",
                    out.len
                )));
            }
            return Ok(Vec::new());
        }
        if out.len > MAX_BUFFER {
            // Do not read or free: the fields cannot be trusted.
            return Err(PluginFailure::Garbage(format!(
                "returned a buffer claiming {} bytes",
                out.len
            )));
        }
        // SAFETY: the plugin wrote `len` bytes at `ptr` for us.
        let bytes = unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec();
        unsafe { (self.free_buffer)(out) };
        Ok(bytes)
    }

    /// Turns a status and output into a result.
    fn answer(&self, what: &str, status: i32, out: OwnedBuffer) -> Result<Value, PluginFailure> {
        let bytes = self.take(out)?;
        let parse = |bytes: &[u8]| -> Result<Value, String> {
            let text = std::str::from_utf8(bytes)
                .map_err(|e| format!("{what} returned bytes that are not UTF-8 ({e})"))?;
            if text.trim().is_empty() {
                return Err(format!("{what} returned an empty answer instead of JSON"));
            }
            serde_json::from_str(text)
                .map_err(|e| format!("{what} returned invalid JSON ({e}): {}", preview(text)))
        };
        match status {
            STATUS_OK => parse(&bytes).map_err(PluginFailure::Garbage),
            STATUS_ERROR | STATUS_PANIC => {
                let message = match parse(&bytes) {
                    Ok(v) => match v.get("message").and_then(Value::as_str) {
                        Some(m) => m.to_string(),
                        None => format!(
                            "{what} failed without a message: {}",
                            preview(&v.to_string())
                        ),
                    },
                    Err(_) => format!(
                        "{what} failed with a malformed error: {}",
                        preview(&String::from_utf8_lossy(&bytes))
                    ),
                };
                Err(if status == STATUS_PANIC {
                    PluginFailure::Panic(message)
                } else {
                    PluginFailure::Error(message)
                })
            }
            other => Err(PluginFailure::Garbage(format!(
                "{what} returned unknown status {other}"
            ))),
        }
    }

    /// Creates an instance of the Type at `index`.
    pub(crate) fn create(
        &self,
        index: usize,
        init: &str,
        host: *const HostApi,
    ) -> Result<RawInstance, PluginFailure> {
        let mut instance: *mut c_void = std::ptr::null_mut();
        let mut out = OwnedBuffer::EMPTY;
        // SAFETY: calling the plugin as the ABI specifies; `host` outlives the instance.
        let status =
            unsafe { (self.create)(index, Bytes::from_str(init), host, &mut instance, &mut out) };
        if status == STATUS_OK {
            // The answer of a successful create carries no data.
            let _ = self.take(out);
            if instance.is_null() {
                return Err(PluginFailure::Garbage(
                    "create succeeded but returned no instance".into(),
                ));
            }
            return Ok(RawInstance(instance));
        }
        Err(self
            .answer("create", status, out)
            .err()
            .unwrap_or_else(|| PluginFailure::Garbage("create failed without saying why".into())))
    }

    /// Calls a method of an instance.
    pub(crate) fn call(
        &self,
        instance: &RawInstance,
        method: &str,
        args: &str,
    ) -> Result<Value, PluginFailure> {
        let mut out = OwnedBuffer::EMPTY;
        // SAFETY: `instance` came from this library's `create` and is not released yet.
        let status = unsafe {
            (self.call)(
                instance.0,
                Bytes::from_str(method),
                Bytes::from_str(args),
                &mut out,
            )
        };
        self.answer(method, status, out)
    }

    /// Frees an instance.
    pub(crate) fn release(&self, instance: &RawInstance) {
        // SAFETY: called once, after every call on the instance returned.
        unsafe { (self.release)(instance.0) }
    }
}

fn preview(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if s.chars().count() > 80 {
        out.push_str("...");
    }
    format!("`{out}`")
}
