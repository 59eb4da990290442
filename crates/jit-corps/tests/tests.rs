//! Integration tests of jit-corps: the built-in org Types end to end and the seeded fault suite.
//!
//! One test binary with a module per area (linking dominates a build on two
//! cores; ripgrep's `tests/tests.rs` is the model). Shared helpers live in
//! `common`. A file here that is not a module below is not compiled: the
//! tidy test checks that none is left out.

mod fault_suite;
mod org_types;
