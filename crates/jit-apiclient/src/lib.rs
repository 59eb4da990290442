//! Machinery shared by the WeCom and DingTalk API clients.
//!
//! Both platforms need the same things from an HTTP client, and none of the
//! open-source syncers gets them right: a cached access token refreshed by
//! one caller at a time, a client-side rate budget per API so the server
//! never throttles a full sync, bounded concurrency, retries with back-off
//! for transient answers and one retry with a fresh token for token errors,
//! and per-endpoint statistics. This crate holds all of it; a platform
//! client only supplies a [`Dialect`]: how to fetch a token and how to read
//! its answers.
//!
//! Secrets never leave this crate in messages: errors carry the API path,
//! the platform's error code and message, never the query string (where
//! tokens and secrets travel), and [`redact`] strips credentials from any
//! text that might contain a URL.
//!
//! ```no_run
//! use std::sync::Arc;
//! use jit_apiclient::*;
//! use serde_json::Value;
//!
//! struct Demo;
//! #[async_trait::async_trait]
//! impl Dialect for Demo {
//!     fn name(&self) -> &'static str { "demo" }
//!     async fn fetch_token(&self, core: &ApiCore) -> Result<Token, ApiError> {
//!         let v = core
//!             .call(&ApiRequest::get("https://api.example.com", "/gettoken").auth(Auth::None))
//!             .await?;
//!         Ok(Token::new(v["access_token"].as_str().unwrap_or_default(), 7200))
//!     }
//!     fn classify(&self, _status: u16, body: &Value) -> Verdict {
//!         match body["errcode"].as_i64().unwrap_or(0) {
//!             0 => Verdict::Ok,
//!             code => Verdict::Fatal(ErrInfo::num(code, body["errmsg"].as_str().unwrap_or(""))),
//!         }
//!     }
//! }
//!
//! # async fn demo() -> Result<(), ApiError> {
//! let core = ApiCore::new(CoreConfig::default(), Arc::new(Demo))?;
//! let users = core
//!     .call(&ApiRequest::get("https://api.example.com", "/user/list").query("department_id", "1"))
//!     .await?;
//! println!("{users}");
//! println!("{:?}", core.stats().endpoints.get("/user/list"));
//! # Ok(()) }
//! ```

mod budget;
mod core;
mod error;
pub mod json;
mod progress;
mod read;
mod token;

pub use crate::core::*;
pub use budget::{Limiter, RateLimit};
pub use error::*;
pub use progress::StatsRegistry;
pub use read::{read_if, record_admins};
// The fetch vocabulary lives in jit-org (plain data shared with the engine);
// re-exported so clients name it from one place.
pub use jit_org::{
    CountingProgress, EndpointStats, FetchOptions, FetchStats, NoProgress, Progress, ProgressEvent,
};
pub use token::{Lease, Token, TokenCache};

/// Removes credentials from text quoted from outside (answers, error pages,
/// error chains holding a URL). The one redaction function of the workspace
/// lives in `jit-core`, beside the rule for what a secret key is; it is
/// re-exported here because every client error passes through it.
pub use jit_core::redact;
