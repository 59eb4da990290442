//! The repository's integration tests: the public API and the `jit` binary,
//! driven as users drive them (fixture apps in temp folders, the simulator
//! in-process, the real `jit` and `jit serve` as child processes).
//!
//! One test binary with a module per area (linking dominates a build on two
//! cores; ripgrep's `tests/tests.rs` is the model). Shared helpers live in
//! `support`. A file here that is not a module below is not compiled: the
//! tidy test checks that none is left out.

mod support;

mod cli;
mod cli_plugins;
mod cli_sync;
mod console;
mod element_runtime;
mod events;
mod hostile;
mod login;
mod robustness;
mod serve;
mod serve_tasks;
mod tidy;
