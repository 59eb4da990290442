//! The platforms' code exchanges (reference A.7, B.6), through the org's
//! own client (token cache, budget, retries): a code becomes the member's
//! userid (and, on DingTalk, the unionId that identifies the person).

use crate::error::LoginError;
use jit_apiclient::{ApiError, ErrCode};
use jit_corps::CorpClient;

/// Who logged in, as the platform says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The member's userid in the org.
    pub member_id: String,
    /// DingTalk's unionId, when known.
    pub union_id: Option<String>,
}

/// Whether an error is the platform saying "no such code".
fn bad_code(e: &ApiError) -> bool {
    match e.code() {
        Some(ErrCode::Num(n)) => matches!(n, 40029 | 40078),
        Some(ErrCode::Text(t)) => t.starts_with("invalidParameter.authCode"),
        None => false,
    }
}

/// Whether an error is the platform saying "not a member of this org".
fn not_found(e: &ApiError) -> bool {
    match e.code() {
        Some(ErrCode::Num(n)) => matches!(n, 60121 | 60111),
        Some(ErrCode::Text(t)) => t == "invalidParameter.user.notFound",
        None => false,
    }
}

/// Classifies a client error of a login call.
fn classify(login: &str, corp: &str, e: ApiError) -> LoginError {
    let login = login.to_string();
    if bad_code(&e) {
        return LoginError::InvalidCode { login };
    }
    if not_found(&e) {
        return LoginError::NotAMember {
            login,
            corp: corp.to_string(),
        };
    }
    let unreachable = match &e {
        ApiError::Transport { .. } | ApiError::Exhausted { .. } => true,
        ApiError::Http { status, .. } => *status >= 500,
        _ => false,
    };
    if unreachable {
        LoginError::PlatformUnreachable {
            login,
            source: Box::new(e),
        }
    } else {
        LoginError::Platform {
            login,
            source: Box::new(e),
        }
    }
}

/// Exchanges `code` with the org's platform.
pub(crate) async fn exchange(
    login: &str,
    corp: &str,
    client: &CorpClient,
    code: &str,
    flow: Option<&str>,
) -> Result<Identity, LoginError> {
    let fail = |e| classify(login, corp, e);
    let not_member = || LoginError::NotAMember {
        login: login.to_string(),
        corp: corp.to_string(),
    };
    match client {
        CorpClient::Wecom(c) => {
            if flow.is_some_and(|f| f != "oauth") {
                return Err(LoginError::BadInput {
                    login: login.to_string(),
                    message: "WeCom has one login flow: oauth".into(),
                });
            }
            let who = c.get_user_info(code).await.map_err(fail)?;
            // An openid (and no userid) is WeCom's answer for a non-member.
            match who.user_id.filter(|u| !u.is_empty()) {
                Some(member_id) => Ok(Identity {
                    member_id,
                    union_id: None,
                }),
                None => Err(not_member()),
            }
        }
        CorpClient::DingTalk(c) => match flow.unwrap_or("inApp") {
            "inApp" => {
                let who = c.get_user_info(code).await.map_err(fail)?;
                let member_id = who
                    .user_id
                    .filter(|u| !u.is_empty())
                    .ok_or_else(not_member)?;
                Ok(Identity {
                    member_id,
                    union_id: who.union_id.filter(|u| !u.is_empty()),
                })
            }
            "oauth" => {
                let token = c.user_access_token(code).await.map_err(fail)?;
                let me = c.users_me(&token).await.map_err(fail)?;
                let union_id = me.union_id.ok_or_else(not_member)?;
                let member_id = c.userid_by_unionid(&union_id).await.map_err(fail)?;
                Ok(Identity {
                    member_id,
                    union_id: Some(union_id),
                })
            }
            other => Err(LoginError::BadInput {
                login: login.to_string(),
                message: format!("unknown flow {other:?} (inApp or oauth)"),
            }),
        },
    }
}
