//! A misbehaving plugin, written against the raw ABI (no SDK), to prove the
//! host survives it. It exports:
//! - `testing.GarbageType`, whose methods answer garbage of every kind
//!   (not JSON, not UTF-8, unknown status, null buffer, empty answer, an
//!   error without a message, a buffer claiming a terabyte), plus `ok`,
//!   which answers properly;
//! - `testing.DupType`, listed twice in its descriptor.

use jit_plugin_abi::{
    Bytes, DescriptorHeader, HostApi, OwnedBuffer, PluginDescriptor, TypeDescriptor, ABI_MAJOR,
    ABI_MINOR, STATUS_ERROR, STATUS_OK,
};
use std::ffi::c_void;
use std::sync::OnceLock;

/// Method names with a stable address (a `const` would be a temporary).
struct Names<const N: usize>([Bytes; N]);
// SAFETY: read-only pointers to 'static strings.
unsafe impl<const N: usize> Sync for Names<N> {}

static GARBAGE_METHODS: Names<8> = Names([
    Bytes::from_str("notJson"),
    Bytes::from_str("notUtf8"),
    Bytes::from_str("badStatus"),
    Bytes::from_str("nullBuffer"),
    Bytes::from_str("emptyAnswer"),
    Bytes::from_str("malformedError"),
    Bytes::from_str("hugeAnswer"),
    Bytes::from_str("ok"),
]);
static DUP_METHODS: Names<1> = Names([Bytes::from_str("ok")]);

struct Storage {
    descriptor: PluginDescriptor,
    _types: Vec<TypeDescriptor>,
}
// SAFETY: written once, then read-only; points at 'static data and itself.
unsafe impl Send for Storage {}
unsafe impl Sync for Storage {}

fn buffer(bytes: &[u8]) -> OwnedBuffer {
    let mut v = std::mem::ManuallyDrop::new(bytes.to_vec());
    OwnedBuffer {
        ptr: v.as_mut_ptr(),
        len: v.len(),
        cap: v.capacity(),
    }
}

unsafe extern "C" fn create(
    _type_index: usize,
    _init: Bytes,
    _host: *const HostApi,
    instance_out: *mut *mut c_void,
    _out: *mut OwnedBuffer,
) -> i32 {
    // No state: any non-null pointer will do.
    static MARKER: u8 = 0;
    *instance_out = &MARKER as *const u8 as *mut c_void;
    STATUS_OK
}

unsafe extern "C" fn call(
    _instance: *mut c_void,
    method: Bytes,
    _args: Bytes,
    out: *mut OwnedBuffer,
) -> i32 {
    match method.as_slice() {
        b"notJson" => {
            *out = buffer(b"<html>surely this is JSON</html>");
            STATUS_OK
        }
        b"notUtf8" => {
            *out = buffer(&[0xff, 0xfe, 0x7b]);
            STATUS_OK
        }
        b"badStatus" => {
            *out = buffer(b"{}");
            42
        }
        b"nullBuffer" => {
            *out = OwnedBuffer {
                ptr: std::ptr::null_mut(),
                len: 16,
                cap: 16,
            };
            STATUS_OK
        }
        b"emptyAnswer" => STATUS_OK,
        b"hugeAnswer" => {
            // A buffer that claims a terabyte: the host must refuse it
            // without reading (or freeing) it.
            static ONE_BYTE: u8 = b'{';
            *out = OwnedBuffer {
                ptr: &ONE_BYTE as *const u8 as *mut u8,
                len: 1 << 40,
                cap: 1 << 40,
            };
            STATUS_OK
        }
        b"malformedError" => {
            *out = buffer(b"it went wrong");
            STATUS_ERROR
        }
        _ => {
            *out = buffer(br#"{"fine": true}"#);
            STATUS_OK
        }
    }
}

unsafe extern "C" fn release(_instance: *mut c_void) {}

unsafe extern "C" fn free_buffer(b: OwnedBuffer) {
    if !b.ptr.is_null() {
        drop(Vec::from_raw_parts(b.ptr, b.len, b.cap));
    }
}

/// The entry point.
#[unsafe(no_mangle)]
pub extern "C" fn jit_plugin_entry(_host_major: u32, _host_minor: u32) -> *const PluginDescriptor {
    static STORAGE: OnceLock<Storage> = OnceLock::new();
    let s = STORAGE.get_or_init(|| {
        let types = vec![
            TypeDescriptor {
                full_name: Bytes::from_str("testing.GarbageType"),
                methods: GARBAGE_METHODS.0.as_ptr(),
                methods_len: GARBAGE_METHODS.0.len(),
                config_schema: Bytes::EMPTY,
            },
            TypeDescriptor {
                full_name: Bytes::from_str("testing.DupType"),
                methods: DUP_METHODS.0.as_ptr(),
                methods_len: DUP_METHODS.0.len(),
                config_schema: Bytes::EMPTY,
            },
            TypeDescriptor {
                full_name: Bytes::from_str("testing.DupType"),
                methods: DUP_METHODS.0.as_ptr(),
                methods_len: DUP_METHODS.0.len(),
                config_schema: Bytes::EMPTY,
            },
        ];
        Storage {
            descriptor: PluginDescriptor {
                header: DescriptorHeader {
                    abi_major: ABI_MAJOR,
                    abi_minor: ABI_MINOR,
                    size: std::mem::size_of::<PluginDescriptor>() as u32,
                    reserved: 0,
                },
                name: Bytes::from_str("test-garbage"),
                version: Bytes::from_str("0.0.0"),
                types: types.as_ptr(),
                types_len: types.len(),
                create: Some(create),
                call: Some(call),
                release: Some(release),
                free_buffer: Some(free_buffer),
            },
            _types: types,
        }
    });
    &s.descriptor
}
