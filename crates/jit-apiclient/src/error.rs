//! Errors of API calls. They name the API path and the platform's code and
//! message; they never contain a query string, a token or a secret.

use std::fmt;

/// A platform error code: numeric for WeCom and the DingTalk old family
/// (`errcode`), textual for the DingTalk new family (`code`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrCode {
    /// `errcode` of an old-style envelope.
    Num(i64),
    /// `code` of a DingTalk new-family error body (e.g. `InvalidAuthentication`).
    Text(String),
}

impl fmt::Display for ErrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrCode::Num(n) => write!(f, "{n}"),
            ErrCode::Text(s) => f.write_str(s),
        }
    }
}

/// The code and message a platform answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrInfo {
    /// The code.
    pub code: ErrCode,
    /// The platform's message, credentials removed.
    pub message: String,
}

impl ErrInfo {
    /// A numeric `errcode` with its `errmsg`.
    pub fn num(code: i64, message: &str) -> ErrInfo {
        ErrInfo {
            code: ErrCode::Num(code),
            message: crate::redact(message),
        }
    }

    /// A textual `code` with its `message`.
    pub fn text(code: &str, message: &str) -> ErrInfo {
        ErrInfo {
            code: ErrCode::Text(code.to_string()),
            message: crate::redact(message),
        }
    }
}

/// Why an API call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The platform answered with an error code.
    #[error("{path}: errcode {code}: {message} (HTTP {http_status})")]
    Platform {
        /// API path, e.g. `/cgi-bin/user/list`.
        path: String,
        /// HTTP status of the answer.
        http_status: u16,
        /// The platform's code.
        code: ErrCode,
        /// The platform's message.
        message: String,
    },
    /// A non-success HTTP status without a readable platform error.
    #[error("{path}: HTTP {status}: {snippet}")]
    Http {
        /// API path.
        path: String,
        /// HTTP status.
        status: u16,
        /// The start of the body, credentials removed.
        snippet: String,
    },
    /// The request did not complete (connection refused or dropped, timeout).
    #[error("{path}: {}: {message}", if *.timeout { "timed out" } else { "transport error" })]
    Transport {
        /// API path.
        path: String,
        /// What happened, credentials removed.
        message: String,
        /// Whether it was a timeout.
        timeout: bool,
    },
    /// The answer was not the JSON the platform documents.
    #[error("{path}: malformed answer: {message}")]
    Malformed {
        /// API path.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// Transient errors went on past the retry budget.
    #[error("{path}: gave up after {attempts} attempts; last error: {last}")]
    Exhausted {
        /// API path.
        path: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: Box<ApiError>,
    },
    /// The client is misconfigured (bad base URL, missing credential, ...).
    #[error("client configuration: {0}")]
    Config(String),
}

impl ApiError {
    /// The API path the error concerns (empty for configuration errors).
    pub fn path(&self) -> &str {
        match self {
            ApiError::Platform { path, .. }
            | ApiError::Http { path, .. }
            | ApiError::Transport { path, .. }
            | ApiError::Malformed { path, .. }
            | ApiError::Exhausted { path, .. } => path,
            ApiError::Config(_) => "",
        }
    }

    /// The platform code, looking through [`ApiError::Exhausted`].
    pub fn code(&self) -> Option<&ErrCode> {
        match self {
            ApiError::Platform { code, .. } => Some(code),
            ApiError::Exhausted { last, .. } => last.code(),
            _ => None,
        }
    }

    /// The numeric platform code, if any.
    pub fn errcode(&self) -> Option<i64> {
        match self.code() {
            Some(ErrCode::Num(n)) => Some(*n),
            _ => None,
        }
    }
}
