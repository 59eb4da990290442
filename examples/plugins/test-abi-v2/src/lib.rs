//! A plugin from a hypothetical ABI 2: only the fixed header is shared with
//! ABI 1, and the rest of its descriptor has another layout. A host of ABI 1
//! must stop after reading the header and report "expected 1, found 2".

use jit_plugin_abi::DescriptorHeader;

/// The ABI 2 descriptor: the header, then fields ABI 1 knows nothing about.
#[repr(C)]
pub struct DescriptorV2 {
    header: DescriptorHeader,
    /// In ABI 2 this would be, say, a pointer to a manifest; here a value a
    /// host of ABI 1 would crash on if it read it as a string pointer.
    manifest: usize,
}

static DESCRIPTOR: DescriptorV2 = DescriptorV2 {
    header: DescriptorHeader {
        abi_major: 2,
        abi_minor: 3,
        size: std::mem::size_of::<DescriptorV2>() as u32,
        reserved: 0,
    },
    manifest: 0xdead_beef,
};

/// The entry point, with the signature every ABI version shares.
#[unsafe(no_mangle)]
pub extern "C" fn jit_plugin_entry(_host_major: u32, _host_minor: u32) -> *const DescriptorV2 {
    &DESCRIPTOR
}
