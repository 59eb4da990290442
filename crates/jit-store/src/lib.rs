//! The local organization store (under construction).
mod api;
pub use api::*;
