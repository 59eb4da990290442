//! A login element's config, read once from the value `jit-core` has
//! already schema-checked (`schemas/auths.loginTypes.*.config.schema.json`).

use serde_json::Value;
use std::fmt;

/// Which platform a login Type speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginPlatform {
    /// `auths.loginTypes.QywxInnerType`.
    Wecom,
    /// `auths.loginTypes.DDInnerType`.
    DingTalk,
}

impl LoginPlatform {
    /// The Type's fullName.
    pub fn type_name(self) -> &'static str {
        match self {
            LoginPlatform::Wecom => "auths.loginTypes.QywxInnerType",
            LoginPlatform::DingTalk => "auths.loginTypes.DDInnerType",
        }
    }
}

/// The WeCom in-client OAuth host.
pub const WECOM_OAUTH_BASE: &str = "https://open.weixin.qq.com";
/// The WeCom browser (QR-code) login host.
pub const WECOM_SSO_BASE: &str = "https://login.work.weixin.qq.com";
/// The DingTalk OAuth2 login host.
pub const DINGTALK_LOGIN_BASE: &str = "https://login.dingtalk.com";

/// A login element's settings. `Debug` never shows the session secrets.
#[derive(Clone)]
pub struct LoginConfig {
    /// The org element whose members log in here.
    pub corp: String,
    /// Other org elements whose active members are accepted too.
    pub accept_corps: Vec<String>,
    /// Origins the browser may be sent back to (besides relative paths).
    pub redirect_origins: Vec<String>,
    /// The host's public URL, when configured.
    pub public_url: Option<String>,
    /// Session lifetime, seconds.
    pub session_lifetime_secs: i64,
    /// Browser flow (state) lifetime, seconds.
    pub state_lifetime_secs: i64,
    /// The configured signing key, if any (else a stored one is used).
    pub session_secret: Option<String>,
    /// Keys that still verify.
    pub previous_session_secrets: Vec<String>,
    /// The login page host (WeCom OAuth, DingTalk OAuth2).
    pub login_base: String,
    /// WeCom's QR-code login host.
    pub sso_base: String,
    /// WeCom OAuth scope.
    pub scope: String,
}

impl fmt::Debug for LoginConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginConfig")
            .field("corp", &self.corp)
            .field("accept_corps", &self.accept_corps)
            .field("redirect_origins", &self.redirect_origins)
            .field("public_url", &self.public_url)
            .field("session_lifetime_secs", &self.session_lifetime_secs)
            .field(
                "session_secret",
                &self.session_secret.as_ref().map(|_| "***"),
            )
            .field(
                "previous_session_secrets",
                &format!("{} hidden", self.previous_session_secrets.len()),
            )
            .field("login_base", &self.login_base)
            .finish_non_exhaustive()
    }
}

fn base(s: &str) -> String {
    s.trim().trim_end_matches('/').to_string()
}

impl LoginConfig {
    /// Reads the (schema-checked) config of an element of `platform`.
    pub fn from_value(platform: LoginPlatform, v: &Value) -> Result<LoginConfig, String> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let list = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let corp = text("corp")
            .filter(|c| !c.is_empty())
            .ok_or("the config names no `corp` (the org element whose members log in)")?;
        let login_base = match platform {
            LoginPlatform::Wecom => text("oauthBase").unwrap_or_else(|| WECOM_OAUTH_BASE.into()),
            LoginPlatform::DingTalk => {
                text("loginBase").unwrap_or_else(|| DINGTALK_LOGIN_BASE.into())
            }
        };
        Ok(LoginConfig {
            corp,
            accept_corps: list("acceptCorps"),
            redirect_origins: list("redirectOrigins")
                .iter()
                .map(|o| base(o).to_ascii_lowercase())
                .collect(),
            public_url: text("publicUrl").map(|u| base(&u)),
            session_lifetime_secs: v
                .get("sessionLifetimeSecs")
                .and_then(Value::as_i64)
                .unwrap_or(8 * 3600),
            state_lifetime_secs: v
                .get("stateLifetimeSecs")
                .and_then(Value::as_i64)
                .unwrap_or(600),
            session_secret: text("sessionSecret"),
            previous_session_secrets: list("previousSessionSecrets"),
            login_base: base(&login_base),
            sso_base: base(&text("ssoBase").unwrap_or_else(|| WECOM_SSO_BASE.into())),
            scope: text("scope").unwrap_or_else(|| "snsapi_base".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_the_real_login_hosts_and_debug_hides_the_keys() {
        let c = LoginConfig::from_value(
            LoginPlatform::DingTalk,
            &json!({"corp": "corps.D", "sessionSecret": "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t",
                    "previousSessionSecrets": ["old-old-old-old-old-old-old-old-old"],
                    "redirectOrigins": ["HTTPS://Portal.example.com/"]}),
        )
        .unwrap();
        assert_eq!(c.login_base, DINGTALK_LOGIN_BASE);
        assert_eq!(c.session_lifetime_secs, 8 * 3600);
        assert_eq!(c.redirect_origins, ["https://portal.example.com"]);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("old-old"),
            "{shown}"
        );
        let w = LoginConfig::from_value(LoginPlatform::Wecom, &json!({"corp": "corps.W"})).unwrap();
        assert_eq!(
            (w.login_base.as_str(), w.sso_base.as_str()),
            (WECOM_OAUTH_BASE, WECOM_SSO_BASE)
        );
        assert!(LoginConfig::from_value(LoginPlatform::Wecom, &json!({})).is_err());
    }
}
