//! jit-sim (under construction)
