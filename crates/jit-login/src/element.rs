//! A login element: `authorizeUrl`, `login`, `verify`, `logout`.

use crate::config::{LoginConfig, LoginPlatform};
use crate::error::LoginError;
use crate::platform::{self, Identity};
use crate::session::{digest_hex, random_hex, Claims, Keyring, SigningKey, TokenFault};
use jit_core::{AppServices, CallError, CallFuture, Element, FailureKind};
use jit_corps::{AuthConfig, CorpClient, CorpElement};
use jit_org::MemberStatus;
use jit_store::{CorpStore, LoginKey};
use serde::Serialize;
use serde_json::{json, Value};
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

/// How long a replica trusts its copy of the stored keys before reading
/// them again (another replica may have rotated).
const KEY_CACHE: Duration = Duration::from_secs(30);
/// How long a used code is remembered (codes live 5 minutes on both platforms).
const USED_CODE_MEMORY_MS: i64 = 10 * 60 * 1000;

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A successful login: who, through which org, and the session.
/// `Debug` never shows the token.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginOutcome {
    /// The local user.
    pub user_id: i64,
    /// The org element the member logged in through.
    pub corp: String,
    /// The member id in that org.
    pub member_id: String,
    /// The login element.
    pub login: String,
    /// The session token (for its owner only).
    pub token: String,
    /// When the session expires, milliseconds since the epoch.
    pub expires_at: i64,
}

impl std::fmt::Debug for LoginOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginOutcome")
            .field("user_id", &self.user_id)
            .field("corp", &self.corp)
            .field("member_id", &self.member_id)
            .field("token", &"***")
            .finish_non_exhaustive()
    }
}

/// A verified session.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// The local user.
    pub user_id: i64,
    /// The org element the member logged in through.
    pub corp: String,
    /// The member id in that org.
    pub member_id: String,
    /// The login element.
    pub login: String,
    /// When the session was made, milliseconds since the epoch.
    pub issued_at: i64,
    /// When it expires.
    pub expires_at: i64,
}

/// A login element of `auths.loginTypes.QywxInnerType` or `DDInnerType`.
pub struct LoginElement {
    platform: LoginPlatform,
    full_name: String,
    title: String,
    config: LoginConfig,
    app: Arc<dyn AppServices>,
    /// The stored keys and when they were read (configured keys never change).
    keys: tokio::sync::Mutex<Option<(Keyring, std::time::Instant)>>,
}

impl std::fmt::Debug for LoginElement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginElement")
            .field("full_name", &self.full_name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Reads a required string argument.
fn arg<'a>(args: &'a Value, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

impl LoginElement {
    /// Builds the element (no I/O: the org element and the store are reached
    /// on first use).
    pub fn new(
        platform: LoginPlatform,
        full_name: String,
        title: String,
        config: LoginConfig,
        app: Arc<dyn AppServices>,
    ) -> LoginElement {
        LoginElement {
            platform,
            full_name,
            title,
            config,
            app,
            keys: tokio::sync::Mutex::new(None),
        }
    }

    /// The element's fullName.
    pub fn full_name(&self) -> &str {
        &self.full_name
    }

    /// Its settings.
    pub fn config(&self) -> &LoginConfig {
        &self.config
    }

    /// Which platform it logs in with.
    pub fn platform(&self) -> LoginPlatform {
        self.platform
    }

    fn corp_err(&self, message: String) -> LoginError {
        LoginError::Corp {
            login: self.full_name.clone(),
            message,
        }
    }

    fn store_err(&self, source: jit_store::StoreError) -> LoginError {
        LoginError::Store {
            login: self.full_name.clone(),
            source: Box::new(source),
        }
    }

    /// Runs `f` with the org element named in `corp`.
    fn with_corp<T>(&self, f: impl FnOnce(&CorpElement) -> T) -> Result<T, LoginError> {
        let handle = self
            .app
            .element(&self.config.corp)
            .map_err(|e| self.corp_err(format!("its org element: {e}")))?;
        let corp = handle.downcast_ref::<CorpElement>().ok_or_else(|| {
            self.corp_err(format!(
                "{} is not an org of a built-in org Type (corps.QywxInnerType, corps.DDInnerType)",
                self.config.corp
            ))
        })?;
        Ok(f(corp))
    }

    /// The app's store (the org element's).
    pub async fn store(&self) -> Result<Arc<dyn CorpStore>, LoginError> {
        let handle = self
            .app
            .element(&self.config.corp)
            .map_err(|e| self.corp_err(format!("its org element: {e}")))?;
        let corp = handle
            .downcast_ref::<CorpElement>()
            .ok_or_else(|| self.corp_err(format!("{} is not a built-in org", self.config.corp)))?;
        corp.store().await.map_err(|e| self.corp_err(e.to_string()))
    }

    /// The keys: the configured ones, or the stored ones (generated once).
    async fn keyring(&self, reload: bool) -> Result<Keyring, LoginError> {
        if let Some(secret) = &self.config.session_secret {
            let mut keys = vec![SigningKey::configured(secret)];
            keys.extend(
                self.config
                    .previous_session_secrets
                    .iter()
                    .map(|s| SigningKey::configured(s)),
            );
            return Ok(Keyring::new(keys));
        }
        let mut cached = self.keys.lock().await;
        if let Some((ring, at)) = cached.as_ref() {
            if !reload && at.elapsed() < KEY_CACHE {
                return Ok(ring.clone());
            }
        }
        let store = self.store().await?;
        let first = LoginKey {
            generation: 1,
            secret: random_hex(32),
            created_at: now_ms(),
        };
        let stored = store
            .login_keys(&first)
            .await
            .map_err(|e| self.store_err(e))?;
        let ring = self.ring_of(&stored);
        *cached = Some((ring.clone(), std::time::Instant::now()));
        Ok(ring)
    }

    /// Newest first; an older key verifies one session lifetime past the
    /// moment the next one replaced it.
    fn ring_of(&self, stored: &[LoginKey]) -> Keyring {
        let lifetime_ms = self.config.session_lifetime_secs * 1000;
        let mut keys: Vec<SigningKey> = stored
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let until = stored.get(i + 1).map(|next| next.created_at + lifetime_ms);
                SigningKey::stored(k.generation, &k.secret, until)
            })
            .collect();
        keys.reverse();
        Keyring::new(keys)
    }

    /// Starts signing with a new stored key; sessions signed by older keys
    /// stay valid until they expire. Refused when the key comes from the
    /// config (rotate it there: move it to `previousSessionSecrets`).
    pub async fn rotate_session_key(&self) -> Result<String, LoginError> {
        if self.config.session_secret.is_some() {
            return Err(LoginError::BadInput {
                login: self.full_name.clone(),
                message: "the session key comes from sessionSecret: rotate it there (set a new \
                          sessionSecret and list the old one in previousSessionSecrets)"
                    .into(),
            });
        }
        self.keyring(false).await?;
        let store = self.store().await?;
        let next = LoginKey {
            generation: 0,
            secret: random_hex(32),
            created_at: now_ms(),
        };
        let stored = store
            .rotate_login_key(&next)
            .await
            .map_err(|e| self.store_err(e))?;
        let ring = self.ring_of(&stored);
        let kid = ring.current_kid().to_string();
        *self.keys.lock().await = Some((ring, std::time::Instant::now()));
        tracing::info!(login = %self.full_name, key = %kid, "session key rotated");
        Ok(kid)
    }

    /// `authorizeUrl(redirectUri, state, mode)`: where to send a browser to
    /// log in. `mode` is `oauth` (default) or, for WeCom, `qr`.
    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        mode: Option<&str>,
    ) -> Result<String, LoginError> {
        let bad = |message: String| LoginError::BadInput {
            login: self.full_name.clone(),
            message,
        };
        if state.is_empty()
            || state.len() > 128
            || !state.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(bad("state must be 1 to 128 letters and digits".into()));
        }
        if !(redirect_uri.starts_with("https://") || redirect_uri.starts_with("http://")) {
            return Err(bad("redirectUri must be an absolute http(s) URL".into()));
        }
        let auth = self.with_corp(|c| c.auth_config().clone())?;
        let r = encode(redirect_uri);
        let c = &self.config;
        Ok(match (&auth, mode.unwrap_or("oauth")) {
            (AuthConfig::Wecom { corp_id, agent_id, .. }, "oauth") => format!(
                "{}/connect/oauth2/authorize?appid={}&redirect_uri={r}&response_type=code&scope={}&state={state}&agentid={}#wechat_redirect",
                c.login_base, encode(corp_id), encode(&c.scope), encode(agent_id)
            ),
            (AuthConfig::Wecom { corp_id, agent_id, .. }, "qr") => format!(
                "{}/wwlogin/sso/login?login_type=CorpApp&appid={}&agentid={}&redirect_uri={r}&state={state}",
                c.sso_base, encode(corp_id), encode(agent_id)
            ),
            (AuthConfig::DingTalk { app_key, .. }, "oauth") => format!(
                "{}/oauth2/auth?redirect_uri={r}&response_type=code&client_id={}&scope=openid&state={state}&prompt=consent",
                c.login_base, encode(app_key)
            ),
            (_, other) => return Err(bad(format!("unknown mode {other:?} (oauth, or qr for WeCom)"))),
        })
    }

    /// The platform client of the org.
    fn client(&self) -> Result<CorpClient, LoginError> {
        self.with_corp(|c| c.client().map_err(|e| e.to_string()))?
            .map_err(|m| self.corp_err(m))
    }

    /// `login(code, flow)`: exchanges a login code for the synced local
    /// user, the member and org it came through, and a session. `flow` is
    /// DingTalk's `inApp` (default) or `oauth`; WeCom has one exchange.
    pub async fn login(&self, code: &str, flow: Option<&str>) -> Result<LoginOutcome, LoginError> {
        let result = self.login_inner(code, flow).await;
        match &result {
            Ok(o) => tracing::info!(
                login = %self.full_name, corp = %o.corp, member = %o.member_id, user = o.user_id,
                "login"
            ),
            Err(e) => tracing::info!(
                login = %self.full_name, refusal = e.code(), reason = %e, "login refused"
            ),
        }
        result
    }

    async fn login_inner(
        &self,
        code: &str,
        flow: Option<&str>,
    ) -> Result<LoginOutcome, LoginError> {
        if code.is_empty() || code.len() > 512 {
            return Err(LoginError::InvalidCode {
                login: self.full_name.clone(),
            });
        }
        let store = self.store().await?;
        // A code is single use on the platform, which answers a replay like an
        // unknown code; remembering the codes exchanged here tells them apart.
        let used = format!(
            "code:{}",
            digest_hex(&format!("{}\0{code}", self.full_name))
        );
        if store
            .session_revoked(&used)
            .await
            .map_err(|e| self.store_err(e))?
        {
            return Err(LoginError::CodeUsed {
                login: self.full_name.clone(),
            });
        }
        let client = self.client()?;
        let exchanged =
            platform::exchange(&self.full_name, &self.config.corp, &client, code, flow).await;
        if !matches!(
            exchanged,
            Err(LoginError::InvalidCode { .. }
                | LoginError::PlatformUnreachable { .. }
                | LoginError::BadInput { .. })
        ) {
            // The platform took the code: it is spent whatever follows.
            let now = now_ms();
            store
                .revoke_session(&used, now + USED_CODE_MEMORY_MS, now)
                .await
                .map_err(|e| self.store_err(e))?;
        }
        let identity = exchanged?;
        let (corp, member_id, user_id) = self.resolve(store.as_ref(), &identity).await?;
        let keys = self.keyring(false).await?;
        let now = now_ms();
        let claims = Claims {
            sid: random_hex(16),
            login: self.full_name.clone(),
            corp: corp.clone(),
            member: member_id.clone(),
            user: user_id,
            iat: now,
            exp: now + self.config.session_lifetime_secs * 1000,
        };
        Ok(LoginOutcome {
            user_id,
            corp,
            member_id,
            login: self.full_name.clone(),
            token: keys.sign(&claims),
            expires_at: claims.exp,
        })
    }

    /// The binding → local user → an active membership in this org (or in an
    /// accepted one).
    async fn resolve(
        &self,
        store: &dyn CorpStore,
        identity: &Identity,
    ) -> Result<(String, String, i64), LoginError> {
        let record = self.with_corp(|c| c.corp_record())?;
        let not_synced = || LoginError::NotSynced {
            login: self.full_name.clone(),
            corp: self.config.corp.clone(),
            member_id: identity.member_id.clone(),
        };
        let user = store
            .local_user_for(
                &record.provider,
                &record.corp_id,
                &identity.member_id,
                identity.union_id.as_deref(),
            )
            .await
            .map_err(|e| self.store_err(e))?
            .ok_or_else(not_synced)?;
        let memberships = store
            .memberships_of_user(user)
            .await
            .map_err(|e| self.store_err(e))?;
        let here = memberships
            .iter()
            .find(|(c, m, _)| *c == self.config.corp && *m == identity.member_id);
        if let Some((c, m, MemberStatus::Active)) = here {
            return Ok((c.clone(), m.clone(), user));
        }
        if let Some((c, m, _)) = memberships
            .iter()
            .find(|(c, _, s)| *s == MemberStatus::Active && self.config.accept_corps.contains(c))
        {
            return Ok((c.clone(), m.clone(), user));
        }
        match here {
            None => Err(not_synced()),
            Some((_, _, status)) => {
                Err(self.status_refusal(&self.config.corp, &identity.member_id, *status))
            }
        }
    }

    fn status_refusal(&self, corp: &str, member_id: &str, status: MemberStatus) -> LoginError {
        match status {
            MemberStatus::Offline | MemberStatus::Active => LoginError::MemberOffline {
                login: self.full_name.clone(),
                corp: corp.to_string(),
                member_id: member_id.to_string(),
            },
            MemberStatus::Disabled | MemberStatus::NotActivated => LoginError::MemberDisabled {
                login: self.full_name.clone(),
                corp: corp.to_string(),
                member_id: member_id.to_string(),
                status: status.as_str(),
            },
        }
    }

    /// `verify(token)`: the session, if it is signed by a key of the app,
    /// unexpired, not logged out, and its member is still active in the org
    /// it came through (checked now, not only at expiry).
    pub async fn verify(&self, token: &str) -> Result<SessionInfo, LoginError> {
        let claims = self.verified_claims(token).await?;
        let store = self.store().await?;
        if store
            .session_revoked(&claims.sid)
            .await
            .map_err(|e| self.store_err(e))?
        {
            return Err(LoginError::SessionRevoked);
        }
        let memberships = store
            .memberships_of_user(claims.user)
            .await
            .map_err(|e| self.store_err(e))?;
        match memberships
            .iter()
            .find(|(c, m, _)| *c == claims.corp && *m == claims.member)
        {
            Some((_, _, MemberStatus::Active)) => {}
            Some((_, _, status)) => {
                return Err(self.status_refusal(&claims.corp, &claims.member, *status))
            }
            None => return Err(LoginError::SessionInvalid),
        }
        Ok(SessionInfo {
            user_id: claims.user,
            corp: claims.corp,
            member_id: claims.member,
            login: claims.login,
            issued_at: claims.iat,
            expires_at: claims.exp,
        })
    }

    /// Signature, key and expiry; the claims must be this element's.
    async fn verified_claims(&self, token: &str) -> Result<Claims, LoginError> {
        let now = now_ms();
        let mut result = self.keyring(false).await?.verify(token, now);
        if result == Err(TokenFault::UnknownKey) {
            // Maybe another replica rotated since the keys were read.
            result = self.keyring(true).await?.verify(token, now);
        }
        let claims = result.map_err(|f| match f {
            TokenFault::Expired => LoginError::SessionExpired,
            TokenFault::Invalid | TokenFault::UnknownKey => LoginError::SessionInvalid,
        })?;
        if claims.login != self.full_name {
            return Err(LoginError::SessionInvalid);
        }
        Ok(claims)
    }

    /// `logout(token)`: ends the session for every replica. An expired
    /// session is already over; a token that is not ours is refused.
    pub async fn logout(&self, token: &str) -> Result<(), LoginError> {
        let claims = match self.verified_claims(token).await {
            Ok(c) => c,
            Err(LoginError::SessionExpired) => return Ok(()),
            Err(e) => return Err(e),
        };
        let store = self.store().await?;
        store
            .revoke_session(&claims.sid, claims.exp, now_ms())
            .await
            .map_err(|e| self.store_err(e))?;
        tracing::info!(login = %self.full_name, user = claims.user, "logout");
        Ok(())
    }

    fn call_error(&self, method: &str, e: LoginError) -> CallError {
        let kind = match &e {
            LoginError::BadInput { .. } | LoginError::RedirectNotAllowed { .. } => {
                FailureKind::InvalidInput
            }
            LoginError::Platform { source, .. }
            | LoginError::PlatformUnreachable { source, .. } => FailureKind::Upstream {
                errcode: source.code().map(|c| c.to_string()),
            },
            LoginError::Store { .. } | LoginError::Corp { .. } => FailureKind::Internal,
            _ => FailureKind::Refused,
        };
        CallError::failed_with(&self.full_name, method, kind, format!("[{}] {e}", e.code()))
    }
}

/// Percent-encodes a query value or path segment (everything but
/// unreserved characters).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Element for LoginElement {
    fn call<'a>(&'a self, method: &'a str, args: Value) -> CallFuture<'a> {
        Box::pin(async move {
            let need = |name: &str| {
                arg(&args, name).ok_or_else(|| CallError::BadArgument {
                    element: self.full_name.clone(),
                    method: method.to_string(),
                    message: format!("`{name}` is required"),
                })
            };
            let err = |e| self.call_error(method, e);
            match method {
                "authorizeUrl" => {
                    let url = self
                        .authorize_url(need("redirectUri")?, need("state")?, arg(&args, "mode"))
                        .map_err(err)?;
                    Ok(json!(url))
                }
                "login" => {
                    let o = self
                        .login(need("code")?, arg(&args, "flow"))
                        .await
                        .map_err(err)?;
                    Ok(json!({
                        "user": {"userId": o.user_id},
                        "member": {"corp": o.corp, "memberId": o.member_id},
                        "org": o.corp,
                        "session": {"token": o.token, "expiresAt": o.expires_at},
                    }))
                }
                "verify" => {
                    let s = self.verify(need("token")?).await.map_err(err)?;
                    Ok(serde_json::to_value(s).expect("serializes"))
                }
                "logout" => {
                    self.logout(need("token")?).await.map_err(err)?;
                    Ok(json!({"loggedOut": true}))
                }
                "rotateSessionKey" => {
                    let kid = self.rotate_session_key().await.map_err(err)?;
                    Ok(json!({"keyId": kid}))
                }
                _ => Err(CallError::NotImplemented {
                    element: self.full_name.clone(),
                    method: method.to_string(),
                    type_name: self.platform.type_name().to_string(),
                }),
            }
        })
    }

    fn property(&self, name: &str) -> Option<Value> {
        match name {
            "title" => Some(json!(self.title)),
            "fullName" => Some(json!(self.full_name)),
            "corp" => Some(json!(self.config.corp)),
            _ => None,
        }
    }

    fn property_names(&self) -> Vec<String> {
        ["title", "fullName", "corp"].map(String::from).to_vec()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
