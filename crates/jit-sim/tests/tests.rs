//! Integration tests of jit-sim: the simulator's wire formats, admin API, faults, events and the Python cross-checks.
//!
//! One test binary with a module per area (linking dominates a build on two
//! cores; ripgrep's `tests/tests.rs` is the model). Shared helpers live in
//! `common`. A file here that is not a module below is not compiled: the
//! tidy test checks that none is left out.

mod admin_api;
mod common;
mod dingtalk_api;
mod events;
mod faults;
mod python_crosscheck;
mod stream;
mod visible_range;
mod wecom_api;
