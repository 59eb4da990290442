//! Errors: why the host could not start ([`ServeError`]) and what an API
//! request answers when it fails ([`ApiError`], one JSON shape for all).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jit_core::{CallError, FailureKind, LookupError};
use serde::Serialize;
use utoipa::ToSchema;

/// Why `jit serve` could not start (or stopped abnormally).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The app folder could not be read.
    #[error("cannot load the app: {0}")]
    Load(#[from] jit_core::LoadError),
    /// The app's `app.json` is unreadable or has errors that stop serving.
    #[error("app {app}: {message}")]
    App {
        /// The app folder.
        app: String,
        /// What is wrong.
        message: String,
    },
    /// The org store could not be opened.
    #[error("cannot open the org store: {0}")]
    Store(#[from] jit_store::StoreError),
    /// `--listen` is not an address this host may listen on.
    #[error("--listen {listen}: {message}")]
    Listen {
        /// The address given.
        listen: String,
        /// Why it was refused.
        message: String,
    },
    /// Binding or serving failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// One API error.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`invalid_argument`, `sync_busy`, ...).
    pub code: String,
    /// What went wrong, for people; never holds a secret.
    pub message: String,
    /// The upstream platform's error code, for `upstream_error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errcode: Option<String>,
}

/// A failed API request: an HTTP status and the [`ErrorBody`] it answers.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: ErrorBody,
}

impl ApiError {
    /// An error of a status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: ErrorDetail {
                    code: code.to_string(),
                    message: message.into(),
                    errcode: None,
                },
            },
        }
    }

    /// 400 with a code.
    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 with a code.
    pub fn not_found(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.body.error.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

impl From<LookupError> for ApiError {
    fn from(e: LookupError) -> ApiError {
        match &e {
            LookupError::Unknown { .. } | LookupError::NotAnInstance { .. } => {
                ApiError::not_found("element_not_found", e.to_string())
            }
            LookupError::Invalid { .. }
            | LookupError::Instantiate { .. }
            | LookupError::AppGone(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "element_unavailable",
                e.to_string(),
            ),
        }
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> ApiError {
        let message = e.to_string();
        match e {
            CallError::UnknownMethod { .. } => ApiError::not_found("method_not_found", message),
            CallError::BadArgument { .. } => ApiError::bad_request("invalid_argument", message),
            CallError::NotImplemented { .. } => {
                ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", message)
            }
            CallError::Failed { kind, .. } => from_failure(kind, message),
        }
    }
}

/// The answer to a method that ran and failed, by the kind of its failure.
pub(crate) fn from_failure(kind: FailureKind, message: String) -> ApiError {
    match kind {
        FailureKind::InvalidInput => ApiError::bad_request("invalid_input", message),
        FailureKind::Busy => ApiError::new(StatusCode::CONFLICT, "sync_busy", message),
        FailureKind::Refused => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "sync_refused", message)
        }
        FailureKind::Upstream { errcode } => {
            let mut e = ApiError::new(StatusCode::BAD_GATEWAY, "upstream_error", message);
            e.body.error.errcode = errcode;
            e
        }
        // Plugin failures, store failures, bugs.
        _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "call_failed", message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_kind_has_its_status_and_code() {
        let cases = [
            (FailureKind::InvalidInput, 400, "invalid_input"),
            (FailureKind::Busy, 409, "sync_busy"),
            (FailureKind::Refused, 422, "sync_refused"),
            (
                FailureKind::Upstream {
                    errcode: Some("40001".into()),
                },
                502,
                "upstream_error",
            ),
            (FailureKind::Internal, 500, "call_failed"),
        ];
        for (kind, status, code) in cases {
            let e = from_failure(kind, "m".into());
            assert_eq!((e.status.as_u16(), e.code()), (status, code));
        }
    }
}
