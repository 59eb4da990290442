//! jit-plugin-host (under construction)
