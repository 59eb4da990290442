//! The element runtime core (under construction).
mod define;
mod diagnostics;
mod element;
pub use define::*;
pub use diagnostics::*;
pub use element::*;

/// Placeholder until the loader lands.
pub struct ElementHandle;
/// Placeholder until the loader lands.
#[derive(Debug)]
pub struct LookupError;
