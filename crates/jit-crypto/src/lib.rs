//! jit-crypto (under construction)
