//! Why a login, a session or a browser flow was refused, each with a stable
//! code. Messages never hold a code, token, key or secret: they name the
//! login element, the org and the member at most.

/// A refusal or failure of a login element.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The platform does not know the code, or it expired (5 minutes).
    #[error("{login}: the login code is unknown or expired; start the login again")]
    InvalidCode {
        /// The login element.
        login: String,
    },
    /// The code was already exchanged once (here or on another replica).
    #[error("{login}: the login code was already used; start the login again")]
    CodeUsed {
        /// The login element.
        login: String,
    },
    /// The person is not a member of the org.
    #[error("{login}: the person who logged in is not a member of {corp}")]
    NotAMember {
        /// The login element.
        login: String,
        /// The org element.
        corp: String,
    },
    /// The member left or was offlined in the org (and is active in no
    /// other org the element accepts).
    #[error("{login}: member {member_id} is offline (resigned or offlined) in {corp}")]
    MemberOffline {
        /// The login element.
        login: String,
        /// The org element.
        corp: String,
        /// The member.
        member_id: String,
    },
    /// The member is disabled (or has not activated their account) in the org.
    #[error("{login}: member {member_id} is {status} in {corp}")]
    MemberDisabled {
        /// The login element.
        login: String,
        /// The org element.
        corp: String,
        /// The member.
        member_id: String,
        /// `disabled` or `not_activated`.
        status: &'static str,
    },
    /// The member is on the platform but not (yet) in the store.
    #[error("{login}: member {member_id} of {corp} has no local user yet; sync the org first (jit sync {corp}, or its syncCorp)")]
    NotSynced {
        /// The login element.
        login: String,
        /// The org element.
        corp: String,
        /// The member.
        member_id: String,
    },
    /// The platform could not be reached (connection, timeout, 5xx).
    #[error("{login}: the platform is unreachable: {source}")]
    PlatformUnreachable {
        /// The login element.
        login: String,
        /// The client's error (its messages never hold tokens or codes).
        source: Box<jit_apiclient::ApiError>,
    },
    /// The platform refused the app's call (credentials, permissions).
    #[error("{login}: the platform refused the login call: {source}")]
    Platform {
        /// The login element.
        login: String,
        /// The client's error.
        source: Box<jit_apiclient::ApiError>,
    },
    /// The session token is not one this app signed (or was altered).
    #[error("the session is not valid")]
    SessionInvalid,
    /// The session expired.
    #[error("the session expired; log in again")]
    SessionExpired,
    /// The session was ended by a logout.
    #[error("the session was ended by a logout; log in again")]
    SessionRevoked,
    /// The browser flow's state is unknown, used, expired or from another browser.
    #[error("{login}: the login state is unknown, already used, expired or from another browser; start the login again")]
    StateInvalid {
        /// The login element.
        login: String,
    },
    /// A redirect target that is neither a relative path nor an allowed origin.
    #[error("{login}: redirect {redirect:?} is neither a path of this host nor an origin in redirectOrigins")]
    RedirectNotAllowed {
        /// The login element.
        login: String,
        /// The refused target.
        redirect: String,
    },
    /// A bad argument (e.g. an unknown `flow`).
    #[error("{login}: {message}")]
    BadInput {
        /// The login element.
        login: String,
        /// What was wrong.
        message: String,
    },
    /// The org element is missing or not a built-in org.
    #[error("{login}: {message}")]
    Corp {
        /// The login element.
        login: String,
        /// What was wrong.
        message: String,
    },
    /// The store failed.
    #[error("{login}: the store failed: {source}")]
    Store {
        /// The login element.
        login: String,
        /// The store's error.
        source: Box<jit_store::StoreError>,
    },
}

impl LoginError {
    /// The stable code (answered in `{"error": {"code"}}` and logged).
    pub fn code(&self) -> &'static str {
        match self {
            LoginError::InvalidCode { .. } => "invalid_code",
            LoginError::CodeUsed { .. } => "code_used",
            LoginError::NotAMember { .. } => "not_a_member",
            LoginError::MemberOffline { .. } => "member_offline",
            LoginError::MemberDisabled { .. } => "member_disabled",
            LoginError::NotSynced { .. } => "not_synced",
            LoginError::PlatformUnreachable { .. } => "platform_unreachable",
            LoginError::Platform { .. } => "platform_error",
            LoginError::SessionInvalid => "session_invalid",
            LoginError::SessionExpired => "session_expired",
            LoginError::SessionRevoked => "session_revoked",
            LoginError::StateInvalid { .. } => "state_invalid",
            LoginError::RedirectNotAllowed { .. } => "redirect_not_allowed",
            LoginError::BadInput { .. } => "invalid_input",
            LoginError::Corp { .. } => "login_misconfigured",
            LoginError::Store { .. } => "store_error",
        }
    }

    /// The HTTP status that answers it.
    pub fn http_status(&self) -> u16 {
        match self {
            LoginError::InvalidCode { .. }
            | LoginError::CodeUsed { .. }
            | LoginError::StateInvalid { .. }
            | LoginError::RedirectNotAllowed { .. }
            | LoginError::BadInput { .. } => 400,
            LoginError::SessionInvalid
            | LoginError::SessionExpired
            | LoginError::SessionRevoked => 401,
            LoginError::NotAMember { .. }
            | LoginError::MemberOffline { .. }
            | LoginError::MemberDisabled { .. } => 403,
            LoginError::NotSynced { .. } => 409,
            LoginError::Platform { .. } => 502,
            LoginError::PlatformUnreachable { .. } => 503,
            LoginError::Corp { .. } | LoginError::Store { .. } => 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_their_codes_and_statuses() {
        let l = || "auths.L".to_string();
        let cases = [
            (LoginError::InvalidCode { login: l() }, "invalid_code", 400),
            (LoginError::CodeUsed { login: l() }, "code_used", 400),
            (
                LoginError::NotAMember {
                    login: l(),
                    corp: "c".into(),
                },
                "not_a_member",
                403,
            ),
            (
                LoginError::MemberOffline {
                    login: l(),
                    corp: "c".into(),
                    member_id: "m".into(),
                },
                "member_offline",
                403,
            ),
            (
                LoginError::NotSynced {
                    login: l(),
                    corp: "c".into(),
                    member_id: "m".into(),
                },
                "not_synced",
                409,
            ),
            (LoginError::SessionRevoked, "session_revoked", 401),
            (
                LoginError::StateInvalid { login: l() },
                "state_invalid",
                400,
            ),
        ];
        for (e, code, status) in cases {
            assert_eq!((e.code(), e.http_status()), (code, status), "{e}");
        }
        let m = LoginError::NotSynced {
            login: l(),
            corp: "corps.C".into(),
            member_id: "m".into(),
        };
        assert!(
            m.to_string().contains("sync"),
            "a not-synced refusal suggests a sync: {m}"
        );
    }
}
