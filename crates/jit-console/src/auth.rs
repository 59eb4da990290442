//! Who is looking: sign-in (login elements or an API token), the session
//! cookie, what the viewer may do, and CSRF tokens.
//!
//! The session cookie `jit_console` (HttpOnly, SameSite=Strict) is one of
//! - `t.<payload>.<mac>`: opened with an API token; the payload names the
//!   token (hex), the expiry and a nonce, and the MAC is HMAC-SHA256 keyed
//!   by the token's value, so every replica verifies it and removing or
//!   changing the token ends the session;
//! - `l.<session token>`: opened through a login element; the element
//!   verifies it at every request (signature, expiry, logout, the member
//!   still active), and the org's admin list and roles decide the access.
//!
//! A CSRF token is a hash of the session cookie: a page carries it in every
//! form, and a state-changing request without it is refused. Cookies and
//! tokens are never logged.

use crate::html::{self, esc};
use crate::Host;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use hmac::{Hmac, KeyInit, Mac};
use jit_login::{LoginElement, SessionInfo};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// The console's session cookie.
pub(crate) const COOKIE: &str = "jit_console";
/// The cookie binding the sign-in form to the browser that loaded it.
const PRE_COOKIE: &str = "jit_console_pre";
/// How long a console session lasts.
const SESSION_SECS: i64 = 12 * 3600;

/// What a viewer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Look at everything (no secret is ever shown).
    Read,
    /// Also start syncs and dry runs, and apply refused runs.
    Admin,
}

/// A signed-in viewer.
#[derive(Clone)]
pub(crate) struct Viewer {
    /// Who, for the page header (a token's name or a member's name).
    pub who: String,
    pub access: Access,
    /// The CSRF token forms carry.
    pub csrf: String,
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer")
            .field("who", &self.who)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex(&h.finalize())
}

fn mac(key: &[u8], msg: &str) -> String {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(b"jit-console|");
    m.update(msg.as_bytes());
    hex(&m.finalize().into_bytes())
}

/// Compares in time that depends only on the lengths.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

/// A key of this process: it signs nothing that must outlive it (the CSRF
/// token of a console open without sign-in, which only loopback reaches).
fn process_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| hex(&rand::random::<[u8; 32]>()))
}

/// The login elements of the app (fullName, title).
pub(crate) fn login_elements(host: &Host) -> Vec<(String, String)> {
    let app = host.app();
    app.elements()
        .values()
        .filter(|d| d.kind == jit_core::ElementKind::Instance)
        .filter(|d| {
            app.get_element(&d.full_name)
                .is_ok_and(|h| h.downcast_ref::<LoginElement>().is_some())
        })
        .map(|d| (d.full_name.clone(), d.title.clone()))
        .collect()
}

/// Whether the console asks anyone to sign in: not when the app has
/// neither tokens nor login elements (then `jit serve` is loopback only
/// and its API open too).
fn sign_in_required(host: &Host) -> bool {
    host.tokens_configured() || !login_elements(host).is_empty()
}

/// The viewer of a request, or the answer to give instead: the sign-in page
/// (303) for no or an ended session, 403 for a member with no access.
pub(crate) async fn viewer(host: &Host, headers: &HeaderMap) -> Result<Viewer, Response> {
    if !sign_in_required(host) {
        return Ok(Viewer {
            who: "local (no sign-in configured)".into(),
            access: Access::Admin,
            csrf: digest(&["open", process_key()]),
        });
    }
    let to_signin = || Redirect::to("/signin").into_response();
    let Some(value) = jit_login::http::cookie(headers, COOKIE) else {
        return Err(to_signin());
    };
    let csrf = digest(&["csrf", value]);
    if let Some(rest) = value.strip_prefix("t.") {
        let (who, access) = token_session(host, rest).ok_or_else(to_signin)?;
        return Ok(Viewer {
            who: format!("token {who}"),
            access,
            csrf,
        });
    }
    if let Some(token) = value.strip_prefix("l.") {
        let info = verify_login(host, token).await.ok_or_else(to_signin)?;
        return match login_access(host, &info).await {
            (name, Some(access)) => Ok(Viewer {
                who: format!("{name} ({})", info.corp),
                access,
                csrf,
            }),
            (name, None) => Err(no_access(&name, &info.corp)),
        };
    }
    Err(to_signin())
}

/// A CSRF token that is not the viewer's is refused (403).
pub(crate) fn check_csrf(viewer: &Viewer, presented: &str) -> Result<(), Response> {
    if same(&viewer.csrf, presented) {
        Ok(())
    } else {
        Err(html::message_page(
            StatusCode::FORBIDDEN,
            "Request refused",
            "The form was not sent from this console session (its CSRF token does not match). \
             Reload the page and try again.",
        ))
    }
}

fn token_session(host: &Host, rest: &str) -> Option<(String, Access)> {
    let (payload, sig) = rest.rsplit_once('.')?;
    let mut parts = payload.split('~');
    let name = String::from_utf8(unhex(parts.next()?)?).ok()?;
    let exp: i64 = parts.next()?.parse().ok()?;
    let (key, access) = host.token_key(&name)?;
    if !same(&mac(&key, payload), sig) || exp < now_ms() {
        return None;
    }
    Some((name, access))
}

async fn verify_login(host: &Host, token: &str) -> Option<SessionInfo> {
    let login = jit_login::session::peek_login(token)?;
    let handle = host.app().get_element(&login).ok()?;
    let el = handle.downcast_ref::<LoginElement>()?;
    match el.verify(token).await {
        Ok(info) => Some(info),
        Err(e) => {
            tracing::info!(login = %login, code = e.code(), "console session refused");
            None
        }
    }
}

/// Names listed under `settings.console.<key>` in app.json.
fn configured_roles(host: &Host, key: &str) -> Vec<String> {
    host.app()
        .manifest()
        .pointer(&format!("/settings/console/{key}"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The member's name and access: the org's admins (its admin list) sync and
/// force; holders of a role named (by name or id) in
/// `settings.console.adminRoles` too; of one in `readerRoles`, look.
async fn login_access(host: &Host, info: &SessionInfo) -> (String, Option<Access>) {
    let store = host.store();
    let person = store.person(info.user_id).await.ok().flatten();
    let membership = person.as_ref().and_then(|p| {
        p.memberships
            .iter()
            .find(|m| m.corp == info.corp && m.member_id == info.member_id)
    });
    let name = membership.map_or_else(|| info.member_id.clone(), |m| m.name.clone());
    let is_admin = store
        .get_admins(&info.corp)
        .await
        .is_ok_and(|a| a.iter().any(|r| r.member_id == info.member_id));
    let holds = |key: &str| {
        let wanted = configured_roles(host, key);
        membership.is_some_and(|m| {
            m.roles
                .iter()
                .any(|(id, name, _)| wanted.iter().any(|w| w == id || w == name))
        })
    };
    let access = if is_admin || holds("adminRoles") {
        Some(Access::Admin)
    } else if holds("readerRoles") {
        Some(Access::Read)
    } else {
        None
    };
    (name, access)
}

fn no_access(name: &str, corp: &str) -> Response {
    html::message_page(
        StatusCode::FORBIDDEN,
        "No access to the console",
        &format!(
            "You are signed in as {} of {}, but the console is open only to the org's admins \
             and to members of the roles listed in settings.console.readerRoles of the app. \
             <a href=\"/signin\">Sign in as someone else</a>.",
            esc(name),
            esc(corp)
        ),
    )
}

fn https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("cookie text is ASCII")
}

/// `GET /signin`: the login elements' buttons and the token form.
pub(crate) async fn signin_page(State(host): State<Host>, headers: HeaderMap) -> Response {
    signin_form(&host, &headers, None)
}

fn signin_form(host: &Host, headers: &HeaderMap, problem: Option<&str>) -> Response {
    let pre = jit_login::http::cookie(headers, PRE_COOKIE)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(|| hex(&rand::random::<[u8; 32]>()), str::to_string);
    let csrf = digest(&["signin", &pre]);
    let mut body = String::new();
    if let Some(p) = problem {
        body.push_str(&format!("<p class=\"alert\" role=alert>{}</p>", esc(p)));
    }
    let logins = login_elements(host);
    if !logins.is_empty() {
        body.push_str("<section><h2>With your organization account</h2><ul class=\"plain\">");
        for (name, title) in &logins {
            let title = if title.is_empty() { name } else { title };
            body.push_str(&format!(
                "<li><a class=\"button\" href=\"/auth/{}/start?redirect=/signin/done\">Sign in with {}</a></li>",
                esc(name),
                esc(title)
            ));
        }
        body.push_str("</ul></section>");
    }
    if host.tokens_configured() {
        body.push_str(&format!(
            "<section><h2>With an API token</h2>\
             <form method=post action=\"/signin\" class=\"stack\">\
             <input type=hidden name=csrf value=\"{}\">\
             <label for=token>Token (from settings.apiTokens)</label>\
             <input id=token name=token type=password autocomplete=off required>\
             <button type=submit>Sign in</button></form></section>",
            esc(&csrf)
        ));
    }
    if logins.is_empty() && !host.tokens_configured() {
        return Redirect::to("/").into_response();
    }
    let mut res = html::bare_page(StatusCode::OK, "Sign in", &body);
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(PRE_COOKIE, &pre, 3600, https(headers)),
    );
    res
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub(crate) struct SigninForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

/// `POST /signin`: opens a session for a configured API token.
pub(crate) async fn signin(
    State(host): State<Host>,
    headers: HeaderMap,
    Form(form): Form<SigninForm>,
) -> Response {
    let pre = jit_login::http::cookie(&headers, PRE_COOKIE).unwrap_or_default();
    if pre.is_empty() || !same(&digest(&["signin", pre]), &form.csrf) {
        return signin_form(
            &host,
            &headers,
            Some("The sign-in form expired or came from elsewhere; please try again."),
        );
    }
    let Some((name, _)) = host.token_access(form.token.trim()) else {
        tracing::info!("console sign-in with a token refused: not a configured token");
        return signin_form(
            &host,
            &headers,
            Some("That is not one of the app's API tokens."),
        );
    };
    let payload = format!(
        "{}~{}~{}",
        hex(name.as_bytes()),
        now_ms() + SESSION_SECS * 1000,
        hex(&rand::random::<[u8; 8]>())
    );
    let Some((key, _)) = host.token_key(&name) else {
        return signin_form(&host, &headers, Some("The token is no longer configured."));
    };
    let value = format!("t.{payload}.{}", mac(&key, &payload));
    tracing::info!(token = %name, "console sign-in with a token");
    let mut res = Redirect::to("/").into_response();
    let secure = https(&headers);
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(COOKIE, &value, SESSION_SECS, secure),
    );
    res.headers_mut()
        .append(header::SET_COOKIE, set_cookie(PRE_COOKIE, "", 0, secure));
    res
}

/// `GET /signin/done`: where a login element's browser flow lands; turns
/// its session into the console's (SameSite=Strict) cookie.
///
/// The answer is a page that moves on by itself rather than a redirect: a
/// browser arriving from the platform's login page is on a cross-site
/// navigation, which would not send a Strict cookie to the next redirect.
pub(crate) async fn signin_done(State(host): State<Host>, headers: HeaderMap) -> Response {
    let Some(token) = jit_login::http::cookie(&headers, jit_login::http::SESSION_COOKIE) else {
        return signin_form(
            &host,
            &headers,
            Some("The login did not finish; please try again."),
        );
    };
    let Some(info) = verify_login(&host, token).await else {
        return signin_form(
            &host,
            &headers,
            Some("The login was refused (expired, logged out, or the member is not active)."),
        );
    };
    let (name, access) = login_access(&host, &info).await;
    if access.is_none() {
        return no_access(&name, &info.corp);
    }
    tracing::info!(corp = %info.corp, user = info.user_id, "console sign-in through a login element");
    let mut res = html::bare_page(
        StatusCode::OK,
        "Signed in",
        &format!(
            "<meta http-equiv=\"refresh\" content=\"0;url=/\"><p>Signed in as {}. \
             <a href=\"/\">Continue to the console</a>.</p>",
            esc(&name)
        ),
    );
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(COOKIE, &format!("l.{token}"), SESSION_SECS, https(&headers)),
    );
    res
}

/// The sign-out form's fields.
#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /signout`: ends the session (a login element's everywhere).
pub(crate) async fn signout(
    State(host): State<Host>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let value = jit_login::http::cookie(&headers, COOKIE).unwrap_or_default();
    if !same(&digest(&["csrf", value]), &form.csrf) {
        return html::message_page(
            StatusCode::FORBIDDEN,
            "Request refused",
            "The sign-out form did not come from this session.",
        );
    }
    if let Some(token) = value.strip_prefix("l.") {
        if let Some(login) = jit_login::session::peek_login(token) {
            if let Ok(h) = host.app().get_element(&login) {
                if let Some(el) = h.downcast_ref::<LoginElement>() {
                    let _ = el.logout(token).await;
                }
            }
        }
    }
    let mut res = Redirect::to("/signin").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(COOKIE, "", 0, https(&headers)),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_odd_text() {
        assert_eq!(unhex(&hex(b"ops \xe4")), Some(b"ops \xe4".to_vec()));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn a_mac_depends_on_key_and_message() {
        assert_ne!(mac(b"k1", "m"), mac(b"k2", "m"));
        assert_ne!(mac(b"k1", "m"), mac(b"k1", "n"));
        assert!(same(&mac(b"k", "m"), &mac(b"k", "m")));
        assert!(!same("ab", "abc"));
    }

    #[test]
    fn viewer_debug_hides_the_csrf_token() {
        let v = Viewer {
            who: "token ops".into(),
            access: Access::Admin,
            csrf: "c5rf-secret-value".into(),
        };
        assert!(!format!("{v:?}").contains("c5rf"));
    }
}
