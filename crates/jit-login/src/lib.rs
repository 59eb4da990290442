//! Login elements: `auths.loginTypes.QywxInnerType` (WeCom) and
//! `auths.loginTypes.DDInnerType` (DingTalk), under `auths.Meta`.
//!
//! An instance names its org element (`"corp": "corps.AcmeWecom"`). Its
//! methods turn a platform login into the local user that org's sync bound
//! to the person, and a session:
//! - `authorizeUrl(redirectUri, state, mode?)`: where a browser starts
//!   (WeCom OAuth or QR-code login, DingTalk OAuth2);
//! - `login(code, flow?)`: WeCom `auth/getuserinfo`; DingTalk in-app
//!   `topapi/v2/user/getuserinfo` or OAuth2 `userAccessToken` →
//!   `contact/users/me` → `getbyunionid`. The identity is the binding
//!   (WeCom (corpId, userid), DingTalk unionId), never a name, mobile or
//!   email; the member must be active in the org (or in one of
//!   `acceptCorps`). Refusals carry a stable code ([`LoginError::code`]);
//!   nothing is issued unless everything passed;
//! - `verify(token)`, `logout(token)`, `rotateSessionKey()`.
//!
//! Sessions are HMAC-SHA256-signed tokens ([`session`]) with a key from the
//! config (`sessionSecret`, normally `{{ENV}}`) or generated once and kept
//! in the store, so every replica accepts them; `verify` checks the store
//! for a logout and the member's current status every time. [`http`] holds
//! the browser and API routes `jit serve` mounts.
//!
//! ```no_run
//! use jit_core::{App, LoadOptions, TypeRegistry};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut registry = TypeRegistry::new();
//! jit_corps::register_builtins(&mut registry);
//! jit_login::register_builtins(&mut registry);
//! let app = App::load("my-app", LoadOptions { registry, ..Default::default() })?;
//! let login = app.get_element("auths.AcmeWecomLogin")?;
//! let session = login.call("login", serde_json::json!({"code": "CODE"})).await?;
//! println!("{}", session["user"]["userId"]);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod config;
mod element;
mod error;
pub mod http;
mod platform;
pub mod session;

pub use config::{LoginConfig, LoginPlatform};
pub use element::{encode as percent_encode, LoginElement, LoginOutcome, SessionInfo};
pub use error::LoginError;
pub use platform::Identity;

use jit_core::{Element, InstanceContext, TypeImpl, TypeRegistry};
use serde_json::Value;
use std::sync::Arc;

/// The implementation of one built-in login Type.
#[derive(Debug)]
pub struct LoginType {
    platform: LoginPlatform,
}

impl LoginType {
    /// The implementation for a platform.
    pub fn new(platform: LoginPlatform) -> LoginType {
        LoginType { platform }
    }
}

impl TypeImpl for LoginType {
    fn type_name(&self) -> &str {
        self.platform.type_name()
    }

    fn config_schema(&self) -> Option<Value> {
        jit_core::embedded::config_schema(self.platform.type_name())
    }

    fn instantiate(&self, ctx: InstanceContext) -> Result<Arc<dyn Element>, String> {
        let config = ctx.config.as_ref().ok_or_else(|| {
            format!(
                "{} has no config file: a login element needs <InstanceName>.json naming its `corp`",
                ctx.define.full_name
            )
        })?;
        let config = LoginConfig::from_value(self.platform, config)?;
        Ok(Arc::new(LoginElement::new(
            self.platform,
            ctx.define.full_name.clone(),
            ctx.define.title.clone(),
            config,
            ctx.app.clone(),
        )))
    }
}

/// Registers `auths.loginTypes.QywxInnerType` and `auths.loginTypes.DDInnerType`
/// (beside the org Types of `jit_corps::register_builtins`, whose elements
/// they log in with).
pub fn register_builtins(registry: &mut TypeRegistry) {
    registry.register(Arc::new(LoginType::new(LoginPlatform::Wecom)));
    registry.register(Arc::new(LoginType::new(LoginPlatform::DingTalk)));
}
