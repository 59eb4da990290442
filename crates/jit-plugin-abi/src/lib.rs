//! jit-plugin-abi (under construction)
