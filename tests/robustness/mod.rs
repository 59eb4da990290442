//! Robustness against outside data: property tests of every parser and pure
//! function that takes it (`properties`), and the scan for secrets in
//! everything `jit` writes (`secrets`). One test target, so the two share
//! one link.

mod properties;
mod secrets;
