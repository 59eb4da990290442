//! Integration tests of jit-dingtalk-stream against the simulator's Stream gateway.
//!
//! One test binary with a module per area (linking dominates a build on two
//! cores); shared helpers live in `common`.

mod common;
mod stream;
