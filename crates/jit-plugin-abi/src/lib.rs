//! The stable C ABI between the jit runtime and Type plugins.
//!
//! Rust has no stable ABI, so a plugin built by another compiler version
//! cannot share Rust types with the host. Everything that crosses the
//! boundary is declared here with `#[repr(C)]`: plain integers, pointers,
//! byte slices and `extern "C"` function pointers. Data travels as UTF-8
//! JSON bytes. This crate has no dependencies and declares nothing else.
//!
//! # The contract
//!
//! 1. A plugin library exports one function, [`ENTRY_SYMBOL`]
//!    (`jit_plugin_entry`), of type [`EntryFn`]. Its name and signature never
//!    change; what it returns is versioned.
//! 2. It returns a pointer to a [`PluginDescriptor`] that lives as long as
//!    the library. Every descriptor, in every ABI major version, starts with
//!    a [`DescriptorHeader`]; the host reads that header first and checks the
//!    ABI major and the descriptor size **before reading anything else**.
//! 3. Minor versions only append fields to the end of the descriptor and of
//!    [`HostApi`]. A reader uses an appended field only when the `size` in the
//!    header says the writer's struct contains it.
//! 4. The host creates one plugin instance per element with
//!    [`PluginDescriptor::create`], calls its methods with
//!    [`PluginDescriptor::call`] and finally frees it with
//!    [`PluginDescriptor::release`]. Inputs are borrowed [`Bytes`]; outputs
//!    are [`OwnedBuffer`]s.
//! 5. Memory is freed by the side that allocated it: the host gives every
//!    buffer the plugin returned back to the plugin's
//!    [`PluginDescriptor::free_buffer`]; the plugin gives every buffer a
//!    host callback returned back to [`HostApi::free_buffer`].
//! 6. A function returns one of the `STATUS_*` codes. With [`STATUS_OK`] the
//!    output buffer holds the JSON result; otherwise it holds a JSON object
//!    `{"message": "..."}` describing the failure.
//! 7. No panic (or any other unwinding) may cross the boundary in either
//!    direction: each side catches its own.
//!
//! Plugin authors do not use this crate directly: `jit-plugin-sdk` implements
//! the plugin side and `jit-plugin-host` the host side.
//!
//! ```
//! use jit_plugin_abi::{Bytes, DescriptorHeader, ABI_MAJOR, PluginDescriptor};
//! // The header is the fixed prefix of every descriptor.
//! assert_eq!(std::mem::offset_of!(PluginDescriptor, header), 0);
//! assert_eq!(std::mem::size_of::<DescriptorHeader>(), 16);
//! let text = "corps.JsonFileType";
//! let b = Bytes::from_str(text);
//! assert_eq!(unsafe { b.as_slice() }, text.as_bytes());
//! assert_eq!(ABI_MAJOR, 1);
//! ```

#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

use core::ffi::c_void;

/// The ABI major version. A host only loads plugins of its own major.
pub const ABI_MAJOR: u32 = 1;

/// The ABI minor version: additions that older readers can ignore.
pub const ABI_MINOR: u32 = 0;

/// The smallest [`PluginDescriptor`] a host of this major accepts: its size
/// in ABI 1.0. Later minors may append fields; a reader uses them only when
/// the header's `size` covers them, and keeps accepting this size.
pub const MIN_DESCRIPTOR_SIZE: usize = core::mem::size_of::<PluginDescriptor>();

/// The smallest [`HostApi`] a plugin of this major accepts (its ABI 1.0 size).
pub const MIN_HOST_API_SIZE: usize = core::mem::size_of::<HostApi>();

/// Name of the one symbol a plugin library exports (an [`EntryFn`]).
pub const ENTRY_SYMBOL: &str = "jit_plugin_entry";

/// [`ENTRY_SYMBOL`] with a terminating NUL, as symbol lookups want it.
pub const ENTRY_SYMBOL_NUL: &[u8] = b"jit_plugin_entry\0";

/// The call succeeded; the output buffer holds the JSON result.
pub const STATUS_OK: i32 = 0;
/// The call failed; the output buffer holds `{"message": "..."}`.
pub const STATUS_ERROR: i32 = 1;
/// The call panicked and the panic was caught; the output holds `{"message": "..."}`.
pub const STATUS_PANIC: i32 = 2;

/// Log level for [`HostApi::log`]: an error.
pub const LOG_ERROR: u32 = 1;
/// Log level: a warning.
pub const LOG_WARN: u32 = 2;
/// Log level: information.
pub const LOG_INFO: u32 = 3;
/// Log level: debugging detail.
pub const LOG_DEBUG: u32 = 4;

/// A log line's severity, on both sides of [`HostApi::log`]: the SDK sends
/// it as one of the `LOG_*` codes and the host reads it back, so the enum and
/// its codes live here, beside the ABI they travel through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something looks wrong.
    Warn,
    /// Progress worth knowing.
    Info,
    /// Detail for debugging.
    Debug,
}

impl LogLevel {
    /// The `LOG_*` code the level travels as.
    pub fn to_abi(self) -> u32 {
        match self {
            LogLevel::Error => LOG_ERROR,
            LogLevel::Warn => LOG_WARN,
            LogLevel::Info => LOG_INFO,
            LogLevel::Debug => LOG_DEBUG,
        }
    }

    /// The level of a `LOG_*` code; an unknown code is read as detail, so a
    /// newer plugin's level never loses its line.
    pub fn from_abi(level: u32) -> LogLevel {
        match level {
            LOG_ERROR => LogLevel::Error,
            LOG_WARN => LogLevel::Warn,
            LOG_INFO => LogLevel::Info,
            _ => LogLevel::Debug,
        }
    }

    /// `error`, `warn`, `info` or `debug`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// A borrowed byte slice (UTF-8 text or JSON), valid for the duration of
/// the call it is passed to (or, inside a descriptor, as long as the library).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Bytes {
    /// First byte; may be null when `len` is 0.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl Bytes {
    /// An empty slice.
    pub const EMPTY: Bytes = Bytes {
        ptr: core::ptr::null(),
        len: 0,
    };

    /// Borrows a byte slice.
    pub const fn from_slice(s: &[u8]) -> Bytes {
        Bytes {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// Borrows a string's bytes.
    #[allow(clippy::should_implement_trait)]
    pub const fn from_str(s: &str) -> Bytes {
        Bytes::from_slice(s.as_bytes())
    }

    /// The bytes as a slice.
    ///
    /// # Safety
    /// `ptr` must point at `len` readable bytes that outlive the returned
    /// slice (or `len` must be 0).
    pub unsafe fn as_slice<'a>(&self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            &[]
        } else {
            core::slice::from_raw_parts(self.ptr, self.len)
        }
    }
}

/// A buffer handed from one side to the other. Only the side that allocated
/// it may free it, through its own free function.
#[repr(C)]
#[derive(Debug)]
pub struct OwnedBuffer {
    /// First byte; null for an empty buffer.
    pub ptr: *mut u8,
    /// Number of bytes of content.
    pub len: usize,
    /// Private to the allocator (e.g. the capacity of a `Vec<u8>`).
    pub cap: usize,
}

impl OwnedBuffer {
    /// An empty buffer (nothing to free).
    pub const EMPTY: OwnedBuffer = OwnedBuffer {
        ptr: core::ptr::null_mut(),
        len: 0,
        cap: 0,
    };
}

/// The fixed prefix of every [`PluginDescriptor`] and [`HostApi`] in every
/// ABI major version. Its layout never changes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DescriptorHeader {
    /// ABI major version the writer was built against.
    pub abi_major: u32,
    /// ABI minor version the writer was built against.
    pub abi_minor: u32,
    /// `size_of` the whole struct as the writer compiled it.
    pub size: u32,
    /// Zero.
    pub reserved: u32,
}

/// The type of the exported [`ENTRY_SYMBOL`]. The host passes its own ABI
/// version; the plugin returns its descriptor (or null if it cannot run at
/// all). The descriptor must stay valid while the library is loaded.
pub type EntryFn =
    unsafe extern "C" fn(host_abi_major: u32, host_abi_minor: u32) -> *const PluginDescriptor;

/// Creates an instance of the Type at `type_index` in
/// [`PluginDescriptor::types`]. `init` is a JSON object (`fullName`, `type`,
/// `title`, `config`, `appRoot`, `elementDir`). `host` stays valid until
/// `release` of the instance returns. On [`STATUS_OK`], `*instance_out`
/// holds the plugin's instance pointer and `out` is untouched or empty.
pub type CreateFn = unsafe extern "C" fn(
    type_index: usize,
    init: Bytes,
    host: *const HostApi,
    instance_out: *mut *mut c_void,
    out: *mut OwnedBuffer,
) -> i32;

/// Calls `method` of an instance with a JSON object of named arguments.
/// May be called from several threads at once.
pub type CallFn = unsafe extern "C" fn(
    instance: *mut c_void,
    method: Bytes,
    args: Bytes,
    out: *mut OwnedBuffer,
) -> i32;

/// Frees an instance. Called once, after every call on it returned.
pub type ReleaseFn = unsafe extern "C" fn(instance: *mut c_void);

/// Frees a buffer allocated by the side exporting this function.
pub type FreeFn = unsafe extern "C" fn(buffer: OwnedBuffer);

/// One Type a plugin provides.
#[repr(C)]
#[derive(Debug)]
pub struct TypeDescriptor {
    /// fullName of the Type element it implements, e.g. `corps.JsonFileType`.
    pub full_name: Bytes,
    /// Methods the plugin implements (an array of `methods_len` [`Bytes`]).
    /// Other declared methods go to the parent Type, if any.
    pub methods: *const Bytes,
    /// Length of `methods`.
    pub methods_len: usize,
    /// JSON Schema of an instance's config file, or empty for none.
    pub config_schema: Bytes,
}

/// What [`EntryFn`] returns: who the plugin is and how to call it.
#[repr(C)]
#[derive(Debug)]
pub struct PluginDescriptor {
    /// Versions and size; checked first.
    pub header: DescriptorHeader,
    /// Plugin name (UTF-8).
    pub name: Bytes,
    /// Plugin version (UTF-8).
    pub version: Bytes,
    /// The Types provided (an array of `types_len`).
    pub types: *const TypeDescriptor,
    /// Length of `types`.
    pub types_len: usize,
    /// Creates an instance.
    pub create: Option<CreateFn>,
    /// Calls a method of an instance.
    pub call: Option<CallFn>,
    /// Frees an instance.
    pub release: Option<ReleaseFn>,
    /// Frees a buffer the plugin returned.
    pub free_buffer: Option<FreeFn>,
}

/// Writes a line to the host's log.
pub type LogFn = unsafe extern "C" fn(ctx: *const c_void, level: u32, message: Bytes);

/// Writes the instance's config (JSON, `null` if none) to `out`.
pub type GetConfigFn = unsafe extern "C" fn(ctx: *const c_void, out: *mut OwnedBuffer) -> i32;

/// Calls a method of another element of the app.
pub type CallElementFn = unsafe extern "C" fn(
    ctx: *const c_void,
    full_name: Bytes,
    method: Bytes,
    args: Bytes,
    out: *mut OwnedBuffer,
) -> i32;

/// Calls a method of the parent Type's implementation of this same element.
pub type CallParentFn = unsafe extern "C" fn(
    ctx: *const c_void,
    method: Bytes,
    args: Bytes,
    out: *mut OwnedBuffer,
) -> i32;

/// Calls a named host service (`corps.syncSnapshot`, `corps.localCorpData`, `app.settings`, ...).
pub type HostServiceFn = unsafe extern "C" fn(
    ctx: *const c_void,
    name: Bytes,
    args: Bytes,
    out: *mut OwnedBuffer,
) -> i32;

/// The host's callbacks, given to each instance at create time. Every
/// function may be called from any thread while a call on the instance runs.
/// Outputs are JSON in an [`OwnedBuffer`] freed with [`HostApi::free_buffer`].
#[repr(C)]
#[derive(Debug)]
pub struct HostApi {
    /// The host's ABI version and `size_of::<HostApi>()`.
    pub header: DescriptorHeader,
    /// Opaque host context; pass it back to every function.
    pub ctx: *const c_void,
    /// See [`LogFn`].
    pub log: LogFn,
    /// See [`GetConfigFn`].
    pub get_config: GetConfigFn,
    /// See [`CallElementFn`].
    pub call_element: CallElementFn,
    /// See [`CallParentFn`].
    pub call_parent: CallParentFn,
    /// See [`HostServiceFn`].
    pub host_service: HostServiceFn,
    /// Frees a buffer the host returned.
    pub free_buffer: FreeFn,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn header_is_the_prefix_of_both_tables() {
        assert_eq!(offset_of!(PluginDescriptor, header), 0);
        assert_eq!(offset_of!(HostApi, header), 0);
        assert_eq!(size_of::<DescriptorHeader>(), 16);
        assert_eq!(align_of::<DescriptorHeader>(), 4);
    }

    #[test]
    fn nullable_function_pointers_are_one_pointer_wide() {
        assert_eq!(size_of::<Option<CallFn>>(), size_of::<usize>());
    }

    // These sizes are part of ABI 1: a change here breaks every plugin.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn abi_1_0_table_sizes_are_frozen() {
        assert_eq!(MIN_DESCRIPTOR_SIZE, 96);
        assert_eq!(MIN_HOST_API_SIZE, 72);
        assert_eq!(size_of::<TypeDescriptor>(), 48);
    }

    #[test]
    fn empty_bytes_read_as_an_empty_slice() {
        assert!(unsafe { Bytes::EMPTY.as_slice() }.is_empty());
    }
}
