//! Page frame, escaping, formatting, and the embedded assets.

use crate::auth::{Access, Viewer};
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

const CSS: &str = include_str!("../assets/console.css");
const JS: &str = include_str!("../assets/console.js");

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment or query value.
pub(crate) fn enc(s: &str) -> String {
    jit_login::percent_encode(s)
}

/// `GET /console/{asset}`: the stylesheet and the script.
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return message_page(StatusCode::NOT_FOUND, "Not found", "No such file."),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

fn document(title: &str, header_html: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · jit console</title>\
         <link rel=\"stylesheet\" href=\"/console/console.css\">\
         <script src=\"/console/console.js\" defer></script></head>\
         <body>{header_html}<main id=\"main\">{body}</main></body></html>",
        esc(title)
    )
}

fn respond(status: StatusCode, html: String) -> Response {
    let mut res = (status, Html(html)).into_response();
    let h = res.headers_mut();
    // Pages show org data: never cached, never framed, no other origin's script.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    res
}

/// A page without navigation (sign-in, errors before sign-in).
pub(crate) fn bare_page(status: StatusCode, title: &str, body: &str) -> Response {
    let header_html =
        "<header class=\"top\"><a class=\"brand\" href=\"/\">jit console</a></header>";
    respond(
        status,
        document(
            title,
            header_html,
            &format!("<h1>{}</h1>{body}", esc(title)),
        ),
    )
}

/// A short page saying what happened; `body` is HTML.
pub(crate) fn message_page(status: StatusCode, title: &str, body: &str) -> Response {
    bare_page(status, title, &format!("<p>{body}</p>"))
}

/// A console page: the header with navigation and the viewer, then `body`
/// (HTML; its title is `title`).
pub(crate) fn page(viewer: &Viewer, orgs: &[String], title: &str, body: &str) -> Response {
    let mut nav = String::from("<a href=\"/\">Overview</a>");
    for o in orgs {
        nav.push_str(&format!("<a href=\"/orgs/{}\">{}</a>", enc(o), esc(o)));
    }
    nav.push_str("<a href=\"/tasks\">Tasks</a>");
    let role = match viewer.access {
        Access::Admin => "admin",
        Access::Read => "read-only",
    };
    let header_html = format!(
        "<a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header class=\"top\"><a class=\"brand\" href=\"/\">jit console</a>\
         <nav aria-label=\"Main\">{nav}</nav>\
         <form method=post action=\"/signout\" class=\"who\">\
         <span>{} · {role}</span><input type=hidden name=csrf value=\"{}\">\
         <button type=submit class=\"link\">Sign out</button></form></header>",
        esc(&viewer.who),
        esc(&viewer.csrf)
    );
    respond(
        StatusCode::OK,
        document(
            title,
            &header_html,
            &format!("<h1>{}</h1>{body}", esc(title)),
        ),
    )
}

/// An instant (ms since the epoch) as UTC text, in a `<time>` element.
pub(crate) fn when(ms: i64) -> String {
    let text = jit_tasks::utc_text(ms);
    format!(
        "<time datetime=\"{text}\">{}</time>",
        text.replace('T', " ")
    )
}

/// How long ago `ms` was, roughly.
pub(crate) fn age(ms: i64, now: i64) -> String {
    let s = (now - ms).max(0) / 1000;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// A duration in ms as text.
pub(crate) fn duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, (ms / 1000) % 60)
    }
}

/// A status or outcome as a badge.
pub(crate) fn badge(text: &str) -> String {
    let class = match text {
        "applied" | "active" | "succeeded" | "created" | "reactivated" => "ok",
        "refused" | "failed" | "offline" | "offlined" | "removed" => "bad",
        "running" | "dry_run" | "not_activated" | "disabled" | "skipped" | "moved" | "updated" => {
            "warn"
        }
        _ => "plain",
    };
    format!("<span class=\"badge {class}\">{}</span>", esc(text))
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_text_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(esc("王伟"), "王伟");
    }

    #[test]
    fn urls_parts_are_percent_encoded() {
        assert_eq!(enc("corps.Acme"), "corps.Acme");
        assert_eq!(enc("a/b?c d&王"), "a%2Fb%3Fc%20d%26%E7%8E%8B");
    }

    #[test]
    fn durations_and_ages_read_naturally() {
        assert_eq!(duration(250), "250 ms");
        assert_eq!(duration(2500), "2.5 s");
        assert_eq!(duration(185_000), "3 min 5 s");
        assert_eq!(age(0, 90_000), "1 min ago");
    }
}
