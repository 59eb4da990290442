//! Integration tests of jit-sync: the engine end to end.
//!
//! One test binary with a module per area (linking dominates a build on two
//! cores; ripgrep's `tests/tests.rs` is the model). Shared helpers live in
//! `common`. A file here that is not a module below is not compiled: the
//! tidy test checks that none is left out.

mod common;
mod run_started;
mod run_sync_sqlite;
