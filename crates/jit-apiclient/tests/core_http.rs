//! The shared request loop against a small local HTTP server whose answers
//! are scripted per test. The platform simulators exercise the WeCom and
//! DingTalk dialects; here the generic behaviour is pinned down.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use jit_apiclient::*;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// errcode 0 ok, 1 token error, 2 busy, 3 throttled, anything else fatal.
struct Toy {
    base: String,
}

#[async_trait::async_trait]
impl Dialect for Toy {
    fn name(&self) -> &'static str {
        "toy"
    }
    async fn fetch_token(&self, core: &ApiCore) -> Result<Token, ApiError> {
        let v = core
            .call(&ApiRequest::get(&self.base, "/token").auth(Auth::None))
            .await?;
        Ok(Token::new(v["token"].as_str().unwrap(), 7200))
    }
    fn classify(&self, _status: u16, body: &Value) -> Verdict {
        let code = body["errcode"].as_i64().unwrap_or(0);
        let info = ErrInfo::num(code, body["errmsg"].as_str().unwrap_or(""));
        match code {
            0 => Verdict::Ok,
            1 => Verdict::Token(info),
            2 => Verdict::Transient {
                info,
                throttled: false,
            },
            3 => Verdict::Transient {
                info,
                throttled: true,
            },
            _ => Verdict::Fatal(info),
        }
    }
}

/// What the server answers next on `/api` (then `{"errcode":0}` forever).
#[derive(Default)]
struct Script {
    answers: Mutex<VecDeque<(u16, String)>>,
    tokens_issued: AtomicU32,
    api_calls: AtomicU32,
    in_flight: AtomicU32,
    max_in_flight: AtomicU32,
    delay_ms: u64,
}

async fn token(State(s): State<Arc<Script>>) -> Response {
    let n = s.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
    axum::Json(json!({"errcode": 0, "token": format!("TOKEN-{n}")})).into_response()
}

async fn api(State(s): State<Arc<Script>>, Query(q): Query<HashMap<String, String>>) -> Response {
    s.api_calls.fetch_add(1, Ordering::SeqCst);
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    if s.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(s.delay_ms)).await;
    }
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
    let next = s.answers.lock().unwrap().pop_front();
    match next {
        Some((status, body)) => (StatusCode::from_u16(status).unwrap(), body).into_response(),
        None => {
            axum::Json(json!({"errcode": 0, "token_seen": q.get("access_token")})).into_response()
        }
    }
}

async fn serve(script: Script) -> (String, Arc<Script>) {
    let script = Arc::new(script);
    let app = Router::new()
        .route("/token", get(token))
        .route("/api", get(api))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, script)
}

fn core(base: &str, tweak: impl FnOnce(&mut CoreConfig)) -> ApiCore {
    let mut cfg = CoreConfig {
        retry: RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            throttle_delay: Duration::from_millis(10),
        },
        ..CoreConfig::default()
    };
    tweak(&mut cfg);
    ApiCore::new(cfg, Arc::new(Toy { base: base.into() })).unwrap()
}

fn script(answers: &[(u16, &str)]) -> Script {
    Script {
        answers: Mutex::new(answers.iter().map(|(s, b)| (*s, b.to_string())).collect()),
        ..Script::default()
    }
}

#[tokio::test]
async fn token_error_refetches_the_token_and_retries_once() {
    let (base, s) = serve(script(&[(200, r#"{"errcode":1,"errmsg":"expired"}"#)])).await;
    let c = core(&base, |_| {});
    let v = c.call(&ApiRequest::get(&base, "/api")).await.unwrap();
    assert_eq!(v["token_seen"], "TOKEN-2");
    assert_eq!(s.tokens_issued.load(Ordering::SeqCst), 2);
    assert_eq!(c.stats().token_refreshes, 2);
}

#[tokio::test]
async fn a_token_error_that_persists_fails_after_one_retry() {
    let (base, s) = serve(script(&[
        (200, r#"{"errcode":1,"errmsg":"expired"}"#),
        (200, r#"{"errcode":1,"errmsg":"still expired"}"#),
    ]))
    .await;
    let c = core(&base, |_| {});
    let e = c.call(&ApiRequest::get(&base, "/api")).await.unwrap_err();
    assert!(e.to_string().contains("still expired"), "{e}");
    assert_eq!(s.api_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn server_errors_and_malformed_bodies_are_retried() {
    let (base, s) = serve(script(&[
        (502, "<html>bad gateway</html>"),
        (200, r#"{"errcode":0, "trunc"#),
        (200, r#"{"errcode":2,"errmsg":"busy"}"#),
    ]))
    .await;
    let c = core(&base, |_| {});
    c.call(&ApiRequest::get(&base, "/api")).await.unwrap();
    assert_eq!(s.api_calls.load(Ordering::SeqCst), 4);
    let st = &c.stats().endpoints["/api"];
    assert_eq!((st.calls, st.retries, st.failures), (4, 3, 0));
}

#[tokio::test]
async fn retries_are_bounded_and_the_last_error_is_reported() {
    let busy = r#"{"errcode":3,"errmsg":"api freq out of limit"}"#;
    let (base, s) = serve(script(&[(200, busy); 10])).await;
    let c = core(&base, |_| {});
    let e = c.call(&ApiRequest::get(&base, "/api")).await.unwrap_err();
    match &e {
        ApiError::Exhausted { attempts, path, .. } => {
            assert_eq!(*attempts, 4);
            assert_eq!(path, "/api");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("errcode 3"), "{e}");
    assert_eq!(s.api_calls.load(Ordering::SeqCst), 4);
    assert_eq!(c.stats().endpoints["/api"].throttled, 4);
}

#[tokio::test]
async fn fatal_errors_are_not_retried() {
    let (base, s) = serve(script(&[(
        200,
        r#"{"errcode":60011,"errmsg":"no privilege"}"#,
    )]))
    .await;
    let c = core(&base, |_| {});
    let e = c.call(&ApiRequest::get(&base, "/api")).await.unwrap_err();
    assert_eq!(e.errcode(), Some(60011));
    assert_eq!(s.api_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn messages_never_contain_the_token() {
    let (base, _s) = serve(script(&[(
        200,
        r#"{"errcode":99,"errmsg":"bad request /api?access_token=TOKEN-1&x=1"}"#,
    )]))
    .await;
    let c = core(&base, |_| {});
    let e = c.call(&ApiRequest::get(&base, "/api")).await.unwrap_err();
    assert!(!e.to_string().contains("TOKEN-1"), "{e}");
    assert!(!format!("{e:?}").contains("TOKEN-1"));
}

#[tokio::test]
async fn connection_refused_is_a_transport_error_without_the_url_query() {
    // Nothing listens on this port once the listener is dropped.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let c = core(&base, |cfg| cfg.retry.max_retries = 1);
    let e = c
        .call(
            &ApiRequest::get(&base, "/token")
                .query("secret", "S3CRET")
                .auth(Auth::None),
        )
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("/token"), "{msg}");
    assert!(!msg.contains("S3CRET"), "{msg}");
}

#[tokio::test]
async fn concurrency_never_exceeds_the_configured_bound() {
    let (base, s) = serve(Script {
        delay_ms: 30,
        ..Script::default()
    })
    .await;
    let c = Arc::new(core(&base, |cfg| cfg.concurrency = 4));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let c = c.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            c.call(&ApiRequest::get(&base, "/api")).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(s.max_in_flight.load(Ordering::SeqCst) <= 4);
    assert_eq!(
        s.tokens_issued.load(Ordering::SeqCst),
        1,
        "one token for 20 concurrent calls"
    );
}

#[tokio::test]
async fn budget_wait_is_counted_per_endpoint() {
    let (base, _s) = serve(Script::default()).await;
    let c = core(&base, |cfg| {
        cfg.rate_overrides
            .insert("/api".into(), RateLimit::new(2, Duration::from_millis(200)));
    });
    for _ in 0..4 {
        c.call(&ApiRequest::get(&base, "/api")).await.unwrap();
    }
    let st = &c.stats().endpoints["/api"];
    assert_eq!(st.calls, 4);
    assert!(st.budget_wait_ms >= 150, "{st:?}");
}

/// A 2xx answer cut off in the middle of a token: the error quotes the start
/// of the body, and must quote it without the token, in any spelling.
#[tokio::test]
async fn a_truncated_token_answer_is_malformed_without_the_token() {
    for body in [
        r#"{"errcode":0,"access_token":"SENTINELTOKEN0123456789"#,
        r#"{"accessToken":"SENTINELTOKEN0123456789","expireIn":7200"#,
        r#"{"errcode":0, "access_token" : "SENTINELTOKEN0123456789", "expires_in":"#,
    ] {
        let (base, _s) = serve(script(&[(200, body); 10])).await;
        let c = core(&base, |_| {});
        let e = c.call(&ApiRequest::get(&base, "/api")).await.unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(text.contains("malformed answer"), "{text}");
        assert!(!text.contains("SENTINEL"), "{text}");
    }
}

/// An error page that echoes a form body (`appsecret=...`) or a header keeps
/// its shape, not the credential.
#[tokio::test]
async fn an_error_page_echoing_credentials_is_quoted_without_them() {
    let page = "<html>bad request: appkey=k&appsecret=SENTINELSECRET99 \
                x-acs-dingtalk-access-token: SENTINELTOKEN77</html>";
    let (base, _s) = serve(script(&[(400, page)])).await;
    let c = core(&base, |_| {});
    let e = c.call(&ApiRequest::get(&base, "/api")).await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(text.contains("HTTP 400"), "{text}");
    assert!(!text.contains("SENTINEL"), "{text}");
}

/// A list page as a caller reads it with `call_typed`: its rows, and the
/// top-level fields the test dialect judges.
#[derive(serde::Deserialize, Debug)]
struct Page {
    #[serde(default)]
    errcode: Scalar,
    #[serde(default)]
    errmsg: Scalar,
    items: Vec<i64>,
}

impl TypedAnswer for Page {
    fn head(&self) -> serde_json::Value {
        head_of([("errcode", &self.errcode), ("errmsg", &self.errmsg)])
    }
}

#[tokio::test]
async fn a_typed_call_reads_the_answer_straight_into_its_type() {
    match typed_page(r#"{"errcode":0,"items":[1,2,3]}"#).await {
        Ok(Answer::Typed(page)) => assert_eq!(page.items, [1, 2, 3]),
        other => panic!("expected a typed page, got {other:?}"),
    }
}

#[tokio::test]
async fn a_typed_call_is_classified_and_retried_like_any_call() {
    let (base, s) = serve(script(&[
        (200, r#"{"items":[], "errcode":2,"errmsg":"busy"}"#),
        (200, r#"{"errcode":9,"errmsg":"no such list","items":[4]}"#),
    ]))
    .await;
    let c = core(&base, |_| {});
    let e = c
        .call_typed::<Page>(&ApiRequest::get(&base, "/api"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no such list"), "{e}");
    assert_eq!(
        s.api_calls.load(Ordering::SeqCst),
        2,
        "busy retried, fatal not"
    );
}

#[tokio::test]
async fn an_answer_that_does_not_fit_the_type_comes_back_as_json() {
    match typed_page(r#"{"errcode":0,"items":["one"]}"#).await {
        Ok(Answer::Json(v)) => assert_eq!(v["items"][0], "one"),
        other => panic!("expected the JSON, got {other:?}"),
    }
}

/// The one-pass reading judges what the two-pass reading judged: an error
/// code next to rows that fit, and a code that is not a scalar (left out,
/// so the answer is not an error of that code).
/// `call_typed::<Page>` of a server that answers `body` once.
async fn typed_page(body: &'static str) -> Result<Answer<Page>, ApiError> {
    let (base, _) = serve(script(&[(200, body)])).await;
    core(&base, |_| {})
        .call_typed::<Page>(&ApiRequest::get(&base, "/api"))
        .await
}

#[tokio::test]
async fn a_typed_answer_is_judged_on_the_fields_it_keeps_as_the_json_would_be() {
    let e = typed_page(r#"{"items":[7],"errcode":9,"errmsg":"gone"}"#)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("gone"), "{e}");
    match typed_page(r#"{"items":[7],"errcode":{"x":9}}"#).await {
        Ok(Answer::Typed(page)) => assert_eq!(page.items, [7]),
        other => panic!("expected a typed page, got {other:?}"),
    }
    let kept = head_of([
        ("a", &Scalar(None)),
        ("b", &Scalar(Some(serde_json::Value::Null))),
    ]);
    assert_eq!(kept, serde_json::json!({"b": null}));
}
