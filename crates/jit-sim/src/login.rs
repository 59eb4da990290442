//! The platforms' login pages: where a browser is sent to log in, and which
//! sends it back to the app with a single-use code (reference A.7, B.6).
//!
//! | path | platform | sends back |
//! |---|---|---|
//! | `GET /connect/oauth2/authorize?appid=&redirect_uri=&state=…` | WeCom in-client OAuth | `redirect_uri?code=…&state=…` |
//! | `GET /wwlogin/sso/login?appid=&agentid=&redirect_uri=&state=…` | WeCom browser / QR login | `redirect_uri?code=…&state=…` |
//! | `GET /oauth2/auth?client_id=&redirect_uri=&state=…` | DingTalk OAuth2 | `redirect_uri?authCode=…&state=…` |
//!
//! The person at the page is chosen by the caller with `sim_userid` (a
//! member of the org) or `sim_outsider=1` (someone who is not a member:
//! WeCom then answers the code with an `openid`, DingTalk with a unionId no
//! org of the app knows). Without either the page answers the HTML form a
//! person uses in a browser: the org's admins and a few members as buttons,
//! or a userid typed in (`sim_typed`), with the request's parameters kept. The codes are the ones the admin API's `login-code`
//! issues: single use, expiring after `login_code_lifetime_secs`.

use crate::org::Platform;
use crate::server::Shared;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;

/// The login pages' routes.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/connect/oauth2/authorize", get(wecom_page))
        .route("/wwlogin/sso/login", get(wecom_page))
        .route("/oauth2/auth", get(dingtalk_page))
}

type Params = HashMap<String, String>;

fn refuse(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, message.to_string()).into_response()
}

async fn wecom_page(State(sh): State<Arc<Shared>>, Query(q): Query<Params>) -> Response {
    let Some(org) = (0..sh.orgs.len()).find(|&i| {
        let o = sh.orgs[i].read().expect("org lock");
        o.platform == Platform::Wecom && Some(&o.corp_id) == q.get("appid")
    }) else {
        return refuse("unknown appid");
    };
    page(&sh, org, &q, "code")
}

async fn dingtalk_page(State(sh): State<Arc<Shared>>, Query(q): Query<Params>) -> Response {
    let Some(org) = (0..sh.orgs.len()).find(|&i| {
        let o = sh.orgs[i].read().expect("org lock");
        o.platform == Platform::DingTalk && Some(&o.app_key) == q.get("client_id")
    }) else {
        return refuse("unknown client_id");
    };
    page(&sh, org, &q, "authCode")
}

/// Issues a code for the chosen person and redirects back, or shows the form.
fn page(sh: &Shared, org: usize, q: &Params, code_param: &str) -> Response {
    let Some(redirect) = q.get("redirect_uri").filter(|r| !r.is_empty()) else {
        return refuse("redirect_uri is required");
    };
    let state = q.get("state").map(String::as_str).unwrap_or("");
    let code = if q.get("sim_outsider").is_some_and(|v| v == "1") {
        sh.issue_code(org, "")
    } else if let Some(userid) = ["sim_userid", "sim_typed"]
        .iter()
        .find_map(|k| q.get(*k).filter(|v| !v.is_empty()))
    {
        if sh.orgs[org]
            .read()
            .expect("org lock")
            .find_member(userid)
            .is_none()
        {
            return refuse("no such member");
        }
        sh.issue_code(org, userid)
    } else {
        return Html(login_form(sh, org, q)).into_response();
    };
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let target = format!(
        "{redirect}{sep}{code_param}={}&state={}",
        encode(&code),
        encode(state)
    );
    (StatusCode::FOUND, [(header::LOCATION, target)]).into_response()
}

/// The platform's login page as a person sees it in a browser: the org's
/// admins and a few members to pick from, or any userid typed in. The
/// request's own parameters ride along as hidden fields, so submitting the
/// form is the same request with `sim_userid` added.
fn login_form(sh: &Shared, org: usize, q: &Params) -> String {
    let o = sh.orgs[org].read().expect("org lock");
    let mut hidden = String::new();
    let mut keys: Vec<&String> = q.keys().filter(|k| !k.starts_with("sim_")).collect();
    keys.sort();
    for k in keys {
        hidden.push_str(&format!(
            "<input type=hidden name=\"{}\" value=\"{}\">",
            html(k),
            html(&q[k])
        ));
    }
    // Admins first (they may sync from the console), then a few members.
    let admins = o.admins.iter().map(|(id, _)| id.as_str());
    let others = o.members.keys().map(String::as_str).take(5);
    let mut choices = String::new();
    let mut seen = std::collections::BTreeSet::new();
    for id in admins.chain(others) {
        let Some(m) = o.find_member(id) else { continue };
        if !seen.insert(id.to_string()) {
            continue;
        }
        let role = if o.admins.iter().any(|(a, _)| a == id) {
            " (admin)"
        } else {
            ""
        };
        choices.push_str(&format!(
            "<li><button name=sim_userid value=\"{}\">{} · {}{role}</button></li>",
            html(id),
            html(&m.name),
            html(id)
        ));
    }
    format!(
        "<!doctype html><meta charset=utf-8><title>Simulated login</title>\
         <h1>Simulated login: {}</h1><form method=get>{hidden}\
         <p>Log in as:</p><ul>{choices}</ul>\
         <p><label>or userid <input name=sim_typed></label> <button>Log in</button></p></form>",
        html(&o.corp_id)
    )
}

/// Escapes text for HTML (element content and quoted attributes).
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode(s: &str) -> String {
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
