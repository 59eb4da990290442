//! A perfectly loadable library without `jit_plugin_entry`: the host must
//! report it as "not a jit plugin" instead of calling anything in it.

/// Some unrelated export.
#[unsafe(no_mangle)]
pub extern "C" fn not_a_jit_plugin(x: u32) -> u32 {
    x.wrapping_mul(2)
}
