//! Integration tests of jit-store: the store contract on both backends, crashes, locks, migrations.
//!
//! One test binary with a module per area (linking dominates a build on two
//! cores; ripgrep's `tests/tests.rs` is the model). Shared helpers live in
//! `common`. A file here that is not a module below is not compiled: the
//! tidy test checks that none is left out.

mod common;
mod connection_lost;
mod crash;
mod inbox;
mod migrate_race;
mod reads;
mod store;
mod sync_lock;
mod tls;
