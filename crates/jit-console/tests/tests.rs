//! Integration tests of jit-console: one test binary with a module per area.
//! (The browser tests drive the real `jit serve`: the repository's
//! `tests/console.rs`.)

mod page_times;
