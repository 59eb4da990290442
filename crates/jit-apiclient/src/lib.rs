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
mod token;

pub use crate::core::*;
pub use budget::{Limiter, RateLimit};
pub use error::*;
pub use progress::StatsRegistry;
// The fetch vocabulary lives in jit-org (plain data shared with the engine);
// re-exported so clients name it from one place.
pub use jit_org::{
    CountingProgress, EndpointStats, FetchOptions, FetchStats, NoProgress, Progress, ProgressEvent,
};
pub use token::{Lease, Token, TokenCache};

/// Removes credentials from text that may contain a URL or query string:
/// the values of `access_token`, `corpsecret`, `appsecret`, `appSecret`,
/// `secret` and `code` parameters become `***`.
///
/// ```
/// assert_eq!(
///     jit_apiclient::redact("GET /cgi-bin/user/list?access_token=abc&department_id=2"),
///     "GET /cgi-bin/user/list?access_token=***&department_id=2"
/// );
/// ```
pub fn redact(text: &str) -> String {
    const KEYS: [&str; 6] = [
        "access_token=",
        "corpsecret=",
        "appsecret=",
        "appSecret=",
        "secret=",
        "code=",
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for key in KEYS {
            if rest.starts_with(key) && (out.is_empty() || out.ends_with(['?', '&', ' ', '"'])) {
                out.push_str(key);
                out.push_str("***");
                let value_len = rest[key.len()..]
                    .find(['&', ' ', '"', '\'', '#', ')', '\n'])
                    .unwrap_or(rest.len() - key.len());
                rest = &rest[key.len() + value_len..];
                continue 'outer;
            }
        }
        let ch = rest.chars().next().unwrap_or(' ');
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_every_credential_parameter() {
        let s = redact("url https://h/gettoken?corpid=ww1&corpsecret=S3CRET&x=1 failed");
        assert_eq!(
            s,
            "url https://h/gettoken?corpid=ww1&corpsecret=***&x=1 failed"
        );
        let s = redact("/gettoken?appkey=k&appsecret=zzz");
        assert!(!s.contains("zzz"));
        let s = redact("error sending request for url (http://h/x?access_token=TOKEN)");
        assert!(!s.contains("TOKEN"), "{s}");
    }

    #[test]
    fn redact_keeps_unrelated_text_intact() {
        assert_eq!(
            redact("department_id=2&cursor=abc"),
            "department_id=2&cursor=abc"
        );
        assert_eq!(redact("部门 2 失败"), "部门 2 失败");
    }
}
