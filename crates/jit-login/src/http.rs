//! The login routes a host mounts (`jit serve` merges [`routes`] into its
//! API): the browser flow and the API flow. They take no API token: who may
//! call them is decided by the platform login and the session.
//!
//! | route | does |
//! |---|---|
//! | `GET /auth/{fullName}/start?redirect=…&mode=…` | 302 to the platform's login page with a fresh `state` bound to this browser (a cookie), single use, expiring |
//! | `GET /auth/{fullName}/callback?code=…&state=…` | checks the state, logs in, sets the session cookie (HttpOnly, SameSite=Lax, Secure over HTTPS) and 302s to the `redirect` given at start |
//! | `POST /api/v1/auth/{fullName}/login` `{code, flow?}` | the session as a bearer token, for apps and mobile |
//! | `GET /api/v1/me` | the session (bearer token or cookie), checked now |
//! | `POST /api/v1/auth/logout` | ends the session everywhere and clears the cookie |
//!
//! `redirect` is a path of this host (`/…`, not `//…`) or a URL on one of
//! the element's `redirectOrigins`: nothing else, so the login is no open
//! redirect. Codes, states and tokens travel only in query strings, bodies,
//! cookies and headers, never in a path, so request logs never show them.

use crate::element::{now_ms, LoginElement};
use crate::error::LoginError;
use crate::session::{digest_hex, peek_login, random_hex};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jit_core::App;
use jit_store::LoginState;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Route templates that need no API token (the host's authentication must
/// let them through).
pub const OPEN_ROUTES: &[&str] = &[
    "/auth/{fullName}/start",
    "/auth/{fullName}/callback",
    "/api/v1/auth/{fullName}/login",
    "/api/v1/me",
    "/api/v1/auth/logout",
];

/// The session cookie.
pub const SESSION_COOKIE: &str = "jit_session";
/// The cookie binding a browser flow to the browser that started it.
pub const BROWSER_COOKIE: &str = "jit_login_browser";

struct LoginHost {
    app: App,
}

/// The login routes, with their OpenAPI description, for any host state.
pub fn routes<S>(app: App) -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(callback))
        .routes(routes!(api_login))
        .routes(routes!(me))
        .routes(routes!(logout))
        .with_state(Arc::new(LoginHost { app }))
}

/// `{"error": {"code", "message"}}`, as every error of `jit serve`.
#[derive(Serialize, ToSchema)]
struct LoginErrorBody {
    error: LoginErrorDetail,
}

#[derive(Serialize, ToSchema)]
struct LoginErrorDetail {
    /// The stable refusal code (`invalid_code`, `code_used`, `not_a_member`,
    /// `member_offline`, `member_disabled`, `not_synced`,
    /// `platform_unreachable`, `session_*`, `state_invalid`, ...).
    code: String,
    /// Why, for people.
    message: String,
}

fn error(status: u16, code: &str, message: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

impl IntoResponse for LoginError {
    fn into_response(self) -> Response {
        error(self.http_status(), self.code(), self.to_string())
    }
}

fn not_found(full_name: &str) -> Response {
    error(
        404,
        "login_not_found",
        format!("{full_name} is not a login element of this app"),
    )
}

/// The login element of that name, built.
fn element(app: &App, full_name: &str) -> Result<jit_core::ElementHandle, Box<Response>> {
    let handle = app
        .get_element(full_name)
        .map_err(|_| Box::new(not_found(full_name)))?;
    if handle.downcast_ref::<LoginElement>().is_none() {
        return Err(Box::new(not_found(full_name)));
    }
    Ok(handle)
}

/// The value of the cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the browser reached this host over HTTPS.
fn https(el: &LoginElement, headers: &HeaderMap) -> bool {
    if let Some(u) = &el.config().public_url {
        return u.starts_with("https://");
    }
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .expect("cookie text is ASCII")
}

/// The URL this host is reached at: the config's, else the request's.
fn base_url(el: &LoginElement, headers: &HeaderMap) -> Result<String, LoginError> {
    if let Some(u) = &el.config().public_url {
        return Ok(u.clone());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .ok_or_else(|| LoginError::BadInput {
            login: el.full_name().to_string(),
            message: "the request has no usable Host header; set publicUrl in the config".into(),
        })?;
    let scheme = if https(el, headers) { "https" } else { "http" };
    Ok(format!("{scheme}://{host}"))
}

/// A path of this host, or a URL on an allowed origin; anything else
/// (`//evil`, `https://evil`, `/\evil`, `javascript:`) is refused.
pub fn redirect_allowed(origins: &[String], redirect: &str) -> bool {
    if redirect
        .bytes()
        .any(|b| b.is_ascii_control() || b == b'\\' || b == b' ')
    {
        return false;
    }
    if let Some(rest) = redirect.strip_prefix('/') {
        return !rest.starts_with('/');
    }
    let Some((scheme, rest)) = redirect.split_once("://") else {
        return false;
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let origin = format!("{scheme}://{}", &rest[..host_end]).to_ascii_lowercase();
    origins.contains(&origin)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct StartQuery {
    /// Where to send the browser after the login: a path of this host, or a
    /// URL on one of the element's `redirectOrigins` (default `/`).
    redirect: Option<String>,
    /// `oauth` (default) or, for WeCom, `qr`.
    mode: Option<String>,
}

/// Starts a browser login: redirects to the platform's login page.
#[utoipa::path(get, path = "/auth/{fullName}/start", tag = "login",
    params(("fullName" = String, Path, description = "The login element"), StartQuery),
    responses((status = 302, description = "To the platform's login page"),
              (status = 400, body = LoginErrorBody), (status = 404, body = LoginErrorBody)),
    security(()))]
async fn start(
    State(host): State<Arc<LoginHost>>,
    Path(full_name): Path<String>,
    Query(q): Query<StartQuery>,
    headers: HeaderMap,
) -> Response {
    let handle = match element(&host.app, &full_name) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let el = handle.downcast_ref::<LoginElement>().expect("checked");
    match start_inner(el, q, &headers).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(login = %full_name, refusal = e.code(), reason = %e, "login start refused");
            e.into_response()
        }
    }
}

async fn start_inner(
    el: &LoginElement,
    q: StartQuery,
    headers: &HeaderMap,
) -> Result<Response, LoginError> {
    let redirect = q.redirect.unwrap_or_else(|| "/".into());
    if !redirect_allowed(&el.config().redirect_origins, &redirect) {
        return Err(LoginError::RedirectNotAllowed {
            login: el.full_name().to_string(),
            redirect,
        });
    }
    let existing = cookie(headers, BROWSER_COOKIE)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()));
    let browser = existing.map_or_else(|| random_hex(32), str::to_string);
    let state = random_hex(32);
    let callback = format!(
        "{}/auth/{}/callback",
        base_url(el, headers)?,
        el.full_name()
    );
    let url = el.authorize_url(&callback, &state, q.mode.as_deref())?;
    let now = now_ms();
    let lifetime = el.config().state_lifetime_secs;
    let store = el.store().await?;
    store
        .put_login_state(
            &LoginState {
                state_id: state,
                login: el.full_name().to_string(),
                browser_hash: digest_hex(&browser),
                redirect,
                expires_at: now + lifetime * 1000,
            },
            now,
        )
        .await
        .map_err(|source| LoginError::Store {
            login: el.full_name().to_string(),
            source: Box::new(source),
        })?;
    let mut res = StatusCode::FOUND.into_response();
    let h = res.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&url).map_err(|_| LoginError::BadInput {
            login: el.full_name().to_string(),
            message: "the login URL is not a valid header value".into(),
        })?,
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.append(
        header::SET_COOKIE,
        set_cookie(
            BROWSER_COOKIE,
            &browser,
            "/auth",
            lifetime,
            https(el, headers),
        ),
    );
    Ok(res)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct CallbackQuery {
    /// WeCom's code.
    code: Option<String>,
    /// DingTalk's code.
    auth_code: Option<String>,
    /// The state given at start.
    state: Option<String>,
}

/// Where the platform sends the browser back: logs in, sets the session
/// cookie and redirects to where the login started.
#[utoipa::path(get, path = "/auth/{fullName}/callback", tag = "login",
    params(("fullName" = String, Path, description = "The login element"), CallbackQuery),
    responses((status = 302, description = "Logged in: the session cookie is set"),
              (status = 400, body = LoginErrorBody), (status = 403, body = LoginErrorBody),
              (status = 409, body = LoginErrorBody), (status = 503, body = LoginErrorBody)),
    security(()))]
async fn callback(
    State(host): State<Arc<LoginHost>>,
    Path(full_name): Path<String>,
    Query(q): Query<CallbackQuery>,
    headers: HeaderMap,
) -> Response {
    let handle = match element(&host.app, &full_name) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let el = handle.downcast_ref::<LoginElement>().expect("checked");
    match callback_inner(el, q, &headers).await {
        Ok(r) => r,
        Err(e) => {
            if matches!(e, LoginError::StateInvalid { .. }) {
                tracing::info!(login = %full_name, refusal = e.code(), "login callback refused");
            }
            e.into_response()
        }
    }
}

async fn callback_inner(
    el: &LoginElement,
    q: CallbackQuery,
    headers: &HeaderMap,
) -> Result<Response, LoginError> {
    let login = el.full_name().to_string();
    let state_invalid = || LoginError::StateInvalid {
        login: login.clone(),
    };
    let state = q
        .state
        .filter(|s| !s.is_empty())
        .ok_or_else(state_invalid)?;
    let store = el.store().await?;
    let taken = store
        .take_login_state(&state, now_ms())
        .await
        .map_err(|source| LoginError::Store {
            login: login.clone(),
            source: Box::new(source),
        })?
        .ok_or_else(state_invalid)?;
    let browser = cookie(headers, BROWSER_COOKIE).map(digest_hex);
    if taken.login != login || browser.as_deref() != Some(taken.browser_hash.as_str()) {
        return Err(state_invalid());
    }
    let code = q
        .code
        .or(q.auth_code)
        .ok_or_else(|| LoginError::InvalidCode {
            login: login.clone(),
        })?;
    let flow = match el.platform() {
        crate::LoginPlatform::DingTalk => Some("oauth"),
        crate::LoginPlatform::Wecom => None,
    };
    let outcome = el.login(&code, flow).await?;
    let secure = https(el, headers);
    let mut res = StatusCode::FOUND.into_response();
    let h = res.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&taken.redirect).map_err(|_| state_invalid())?,
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            &outcome.token,
            "/",
            el.config().session_lifetime_secs,
            secure,
        ),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(BROWSER_COOKIE, "", "/auth", 0, secure),
    );
    Ok(res)
}

/// A login code from an app.
#[derive(Deserialize, ToSchema)]
struct LoginBody {
    /// The platform's single-use login code.
    code: String,
    /// DingTalk: `inApp` (default) or `oauth`.
    flow: Option<String>,
}

/// A session, as a login answers it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LoginAnswer {
    /// The bearer token (`Authorization: Bearer <token>`).
    token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Expiry, milliseconds since the epoch.
    expires_at: i64,
    /// The local user.
    user_id: i64,
    /// The org element the member logged in through.
    corp: String,
    /// The member id there.
    member_id: String,
    /// The login element.
    login: String,
}

/// Logs in with a code (apps and mobile): the session as a bearer token.
#[utoipa::path(post, path = "/api/v1/auth/{fullName}/login", tag = "login",
    params(("fullName" = String, Path, description = "The login element")),
    request_body = LoginBody,
    responses((status = 200, body = LoginAnswer),
              (status = 400, body = LoginErrorBody), (status = 403, body = LoginErrorBody),
              (status = 404, body = LoginErrorBody), (status = 409, body = LoginErrorBody),
              (status = 502, body = LoginErrorBody), (status = 503, body = LoginErrorBody)),
    security(()))]
async fn api_login(
    State(host): State<Arc<LoginHost>>,
    Path(full_name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let handle = match element(&host.app, &full_name) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let el = handle.downcast_ref::<LoginElement>().expect("checked");
    let Ok(body) = serde_json::from_slice::<LoginBody>(&body) else {
        return error(
            400,
            "invalid_body",
            "the body must be {\"code\": \"...\", \"flow\"?: \"inApp\" | \"oauth\"}".into(),
        );
    };
    match el.login(&body.code, body.flow.as_deref()).await {
        Ok(o) => Json(LoginAnswer {
            token: o.token.clone(),
            token_type: "Bearer",
            expires_at: o.expires_at,
            user_id: o.user_id,
            corp: o.corp.clone(),
            member_id: o.member_id.clone(),
            login: o.login.clone(),
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The session token of a request: bearer, else the cookie.
fn session_token(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    bearer
        .or_else(|| cookie(headers, SESSION_COOKIE))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// The element that issued a token, or the refusal.
fn issuer(app: &App, token: &str) -> Result<jit_core::ElementHandle, Box<Response>> {
    let invalid = || Box::new(LoginError::SessionInvalid.into_response());
    let name = peek_login(token).ok_or_else(invalid)?;
    element(app, &name).map_err(|_| invalid())
}

fn unauthenticated() -> Response {
    error(
        401,
        "unauthenticated",
        "no session: log in first (a session cookie or Authorization: Bearer <session token>)"
            .into(),
    )
}

/// Who is logged in: the session, checked now (a member offlined since
/// the login is refused).
#[utoipa::path(get, path = "/api/v1/me", tag = "login",
    responses((status = 200, body = crate::SessionInfo), (status = 401, body = LoginErrorBody),
              (status = 403, body = LoginErrorBody)),
    security(()))]
async fn me(State(host): State<Arc<LoginHost>>, headers: HeaderMap) -> Response {
    let Some(token) = session_token(&headers) else {
        return unauthenticated();
    };
    let handle = match issuer(&host.app, &token) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let el = handle.downcast_ref::<LoginElement>().expect("checked");
    match el.verify(&token).await {
        Ok(s) => Json(s).into_response(),
        Err(e) => {
            tracing::info!(login = %el.full_name(), refusal = e.code(), "session refused");
            e.into_response()
        }
    }
}

/// Ends the session (every replica refuses it from now on) and clears the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "login",
    responses((status = 200, description = "{\"loggedOut\": true}"),
              (status = 401, body = LoginErrorBody)),
    security(()))]
async fn logout(State(host): State<Arc<LoginHost>>, headers: HeaderMap) -> Response {
    let Some(token) = session_token(&headers) else {
        return unauthenticated();
    };
    let handle = match issuer(&host.app, &token) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let el = handle.downcast_ref::<LoginElement>().expect("checked");
    if let Err(e) = el.logout(&token).await {
        return e.into_response();
    }
    let mut res = Json(json!({"loggedOut": true})).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/", 0, https(el, &headers)),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::redirect_allowed;

    #[test]
    fn only_paths_of_this_host_and_allowed_origins_are_redirect_targets() {
        let origins = vec!["https://app.example.com".to_string()];
        for ok in [
            "/",
            "/home?x=1",
            "https://app.example.com/x",
            "HTTPS://APP.example.com",
        ] {
            assert!(redirect_allowed(&origins, ok), "{ok}");
        }
        for bad in [
            "//evil.com",
            "/\\evil.com",
            "https://evil.com",
            "https://app.example.com@evil.com/",
            "https://app.example.com.evil.com/",
            "javascript:alert(1)",
            "evil.com",
            "",
            "/ok\r\nSet-Cookie: x",
        ] {
            assert!(!redirect_allowed(&origins, bad), "{bad:?}");
        }
    }
}
