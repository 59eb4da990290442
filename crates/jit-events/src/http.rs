//! The HTTP side: the platforms' callback routes (open: the signature is
//! the authentication) and the inbox listing under `/api/v1` (behind the
//! host's API tokens).
//!
//! Every callback is verified before anything else; a refused one is a
//! 4xx with `{"error": {"code", "message"}}`, nothing is stored, and the
//! log line says why (never the body, the query or a key). An accepted
//! event is stored before it is answered (persist first, answer second),
//! and the worker is woken.

use crate::receive::{CallbackQuery, DingTalkPush, Receiver, Refusal};
use crate::worker::now_ms;
use crate::Events;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jit_store::{InboxPut, InboxRow, InboxSummary, NewInboxEvent};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Bodies larger than this are refused (a 4xx, nothing stored): a callback is
/// a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn refused(events: &Events, corp: &str, r: Refusal) -> Response {
    events.counters.refused(corp);
    let (status, code) = match r {
        Refusal::NotReceiving { .. } => (StatusCode::NOT_FOUND, "not_receiving"),
        Refusal::StaleTimestamp { .. } => (StatusCode::FORBIDDEN, "stale_timestamp"),
        Refusal::Crypto(_) => (StatusCode::FORBIDDEN, "not_verified"),
        Refusal::ForeignCorp { .. } => (StatusCode::FORBIDDEN, "foreign_corp"),
        Refusal::MissingParameter(_) | Refusal::BadTimestamp | Refusal::Payload(_) => {
            (StatusCode::BAD_REQUEST, "bad_request")
        }
    };
    tracing::warn!(org = corp, code, reason = %r, "callback refused");
    error(status, code, format!("callback refused: {r}"))
}

/// Stores an accepted event, then wakes the worker. A store failure is a
/// 503: the platform retries, and nothing was half-written.
async fn store(events: &Events, corp: &str, ev: NewInboxEvent) -> Result<(), Response> {
    match events.store.inbox_put(&ev).await {
        Ok(InboxPut::Stored(id)) => {
            events.counters.stored(corp);
            tracing::info!(org = corp, event = id, kind = %ev.event_type, "event stored");
            events.worker.wake.notify_one();
            Ok(())
        }
        Ok(InboxPut::Duplicate(id)) => {
            events.counters.duplicate(corp);
            tracing::info!(org = corp, event = id, kind = %ev.event_type, "duplicate event (already stored)");
            Ok(())
        }
        Err(e) => {
            tracing::error!(org = corp, error = %e, "storing an event failed");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("the event could not be stored: {e}"),
            ))
        }
    }
}

/// The org's receiver and the body as text (empty for a GET), or the
/// refusal: an org that does not receive this platform's callbacks, a
/// body over [`MAX_BODY`] or not UTF-8.
fn request<'a>(
    events: &'a Events,
    corp: &str,
    platform: &'static str,
    body: &axum::body::Bytes,
) -> Result<(&'a Receiver, String), Box<Response>> {
    let refuse = |r: Refusal| Box::new(refused(events, corp, r));
    let rx = events.receivers.get(corp).ok_or_else(|| {
        refuse(Refusal::NotReceiving {
            corp: corp.to_string(),
            platform,
        })
    })?;
    if body.len() > MAX_BODY {
        return Err(refuse(Refusal::Payload(format!(
            "the body is over {MAX_BODY} bytes"
        ))));
    }
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| refuse(Refusal::Payload("the body is not UTF-8".into())))?;
    Ok((rx, text))
}

async fn wecom_get(
    State(events): State<Arc<Events>>,
    Path(corp): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let (rx, _) = match request(&events, &corp, "wecom", &Default::default()) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    match rx.wecom_verify_url(&q, now_ms()) {
        Ok(plain) => {
            tracing::info!(org = %corp, "WeCom URL verification answered");
            plain.into_response()
        }
        Err(r) => refused(&events, &corp, r),
    }
}

async fn wecom_post(
    State(events): State<Arc<Events>>,
    Path(corp): Path<String>,
    Query(q): Query<CallbackQuery>,
    body: axum::body::Bytes,
) -> Response {
    let (rx, body) = match request(&events, &corp, "wecom", &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let ev = match rx.wecom_event(&q, &body, now_ms()) {
        Ok(ev) => ev,
        Err(r) => return refused(&events, &corp, r),
    };
    match store(&events, &corp, ev).await {
        // WeCom takes an empty 200 (or "success") as received.
        Ok(()) => "success".into_response(),
        Err(r) => r,
    }
}

async fn dingtalk_post(
    State(events): State<Arc<Events>>,
    Path(corp): Path<String>,
    Query(q): Query<CallbackQuery>,
    body: axum::body::Bytes,
) -> Response {
    let (rx, body) = match request(&events, &corp, "dingtalk", &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let now = now_ms();
    match rx.dingtalk_push(&q, &body, now) {
        Ok(DingTalkPush::CheckUrl) => {
            tracing::info!(org = %corp, "DingTalk check_url answered");
        }
        Ok(DingTalkPush::Event(ev)) => {
            if let Err(r) = store(&events, &corp, ev).await {
                return r;
            }
        }
        Err(r) => return refused(&events, &corp, r),
    }
    match rx.dingtalk_success(now) {
        Ok(reply) => Json(reply).into_response(),
        Err(r) => refused(&events, &corp, r),
    }
}

/// The callback routes, with their own state; a host merges them outside
/// its token authentication: the platform's signature is what
/// authenticates a callback, and the platforms send no bearer token.
pub fn callback_routes<S>(events: Arc<Events>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(
            "/callbacks/wecom/{fullName}",
            get(wecom_get).post(wecom_post),
        )
        .route(
            "/callbacks/dingtalk/{fullName}",
            axum::routing::post(dingtalk_post),
        )
        .with_state(events)
}

/// `GET /api/v1/corps/{fullName}/events` query.
#[derive(Deserialize, utoipa::IntoParams)]
struct ListQuery {
    /// At most this many events (default 50, at most 1000).
    limit: Option<usize>,
    /// Only events with a smaller id (paging).
    before: Option<i64>,
}

/// One inbox event as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EventView {
    id: i64,
    platform: String,
    event_type: String,
    state: &'static str,
    received_at: i64,
    attempts: i64,
    next_attempt_at: i64,
    claimed_by: Option<String>,
    last_error: Option<String>,
    applied_at: Option<i64>,
    run_id: Option<i64>,
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

/// An org's inbox: counts, lag and the newest events.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct InboxView {
    org: String,
    pending: u64,
    applied: u64,
    failed: u64,
    /// Age of the oldest pending event, milliseconds (0 when none waits).
    lag_ms: i64,
    last_applied_at: Option<i64>,
    events: Vec<EventView>,
}

fn view(r: InboxRow) -> EventView {
    EventView {
        id: r.event_id,
        platform: r.platform,
        event_type: r.event_type,
        state: r.state.as_str(),
        received_at: r.received_at,
        attempts: r.attempts,
        next_attempt_at: r.next_attempt_at,
        claimed_by: r.claimed_by,
        last_error: r.last_error,
        applied_at: r.applied_at,
        run_id: r.run_id,
        payload: serde_json::from_str(&r.payload).unwrap_or(serde_json::Value::Null),
    }
}

/// Lists an org's received events (newest first) with its lag.
#[utoipa::path(get, path = "/api/v1/corps/{fullName}/events", tag = "events",
    params(("fullName" = String, Path, description = "The org element"), ListQuery),
    responses((status = 200, body = InboxView), (status = 404), (status = 503)))]
async fn list_events(
    State(events): State<Arc<Events>>,
    Path(corp): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    if !events.worker.orgs.contains(&corp) {
        return error(
            StatusCode::NOT_FOUND,
            "not_receiving",
            format!("{corp} is not an org element with events configured"),
        );
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let (summary, rows) = match tokio::try_join!(
        events.store.inbox_summary(&corp),
        events.store.inbox_list(&corp, limit, q.before)
    ) {
        Ok(x) => x,
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("reading the inbox of {corp} failed: {e}"),
            )
        }
    };
    let InboxSummary {
        pending,
        applied,
        failed,
        oldest_pending_at,
        last_applied_at,
    } = summary;
    Json(InboxView {
        org: corp,
        pending,
        applied,
        failed,
        lag_ms: oldest_pending_at.map_or(0, |t| (now_ms() - t).max(0)),
        last_applied_at,
        events: rows.into_iter().map(view).collect(),
    })
    .into_response()
}

/// The API routes (behind the host's tokens: GET needs `read`).
pub fn api_routes<S>(events: Arc<Events>) -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .with_state(events)
}
