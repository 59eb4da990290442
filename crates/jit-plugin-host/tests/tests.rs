//! Integration tests of jit-plugin-host: loading and calling plugin libraries.
//!
//! One test binary with a module per area (linking dominates a build on two
//! cores; ripgrep's `tests/tests.rs` is the model). Shared helpers live in
//! `common`. A file here that is not a module below is not compiled: the
//! tidy test checks that none is left out.

mod calls;
mod common;
mod diagnostics;
