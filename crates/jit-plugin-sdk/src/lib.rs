//! jit-plugin-sdk (under construction)
