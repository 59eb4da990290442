//! Integration tests of jit-events, against the simulator.
//!
//! One test binary with a module per area (linking dominates a build on two
//! cores; ripgrep's `tests/tests.rs` is the model). A file here that is not
//! a module below is not compiled: the tidy test checks that none is left out.

mod apply;
