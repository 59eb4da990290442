//! The HTTP API: handlers (each documented for the generated OpenAPI
//! document), the request-id/log/metrics middleware and authentication.

use crate::auth::{Denied, Scope};
use crate::error::{ApiError, ErrorBody};
use crate::runs::{self, RunKind};
use crate::state::HostState;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use jit_core::{mask_secrets, CallError, ElementHandle};
use jit_corps::CorpElement;
use jit_store::{RunChange, SyncRun};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The route template of a method call (its scope depends on the method).
const CALL_ROUTE: &str = "/api/v1/elements/{fullName}/call/{method}";
/// Routes that answer without a token: probes must work before any secret
/// is handed to the prober.
const OPEN_ROUTES: &[&str] = &["/healthz", "/readyz"];
/// Methods that start a sync: they need the `admin` scope, whatever route.
const SYNC_METHODS: &[&str] = &["syncCorp", "initCorp"];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "jit serve",
        description = "The element API of a jit app: elements, method calls, org sync runs. \
                       Every error answers {\"error\": {\"code\", \"message\"}}."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's routes with their OpenAPI description, before state and
/// middleware: later features (task elements, schedulers) add theirs here.
pub fn api_routes() -> OpenApiRouter<Arc<HostState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_elements))
        .routes(routes!(get_element))
        .routes(routes!(call_method))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(run_events))
        .routes(routes!(start_sync))
        .routes(routes!(openapi_json))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The whole service: [`api_routes`] with the OpenAPI document, a JSON 404
/// for unknown paths, authentication, and request ids, logs and metrics.
pub fn router(state: Arc<HostState>) -> Router {
    router_with(state, OpenApiRouter::new())
}

/// [`router`] with more routes (e.g. those of another feature), which get
/// the same authentication, logs and metrics and appear in the OpenAPI
/// document. Their scope follows the same rule: GET needs `read`, other
/// methods `call`, a path ending in `/sync` `admin`.
pub fn router_with(state: Arc<HostState>, extra: OpenApiRouter<Arc<HostState>>) -> Router {
    let (routes, doc) = api_routes().merge(extra).split_for_parts();
    let doc = Arc::new(doc);
    routes
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(Extension(doc))
        .with_state(state)
}

/// Routes answered beside the API with their own sign-in (the web console):
/// they skip the API's token check but get the same request ids, log lines
/// and request metrics, so a console click shows up like an API request.
/// The log line holds the method, path and status only: the session cookie
/// and the CSRF token (a header and a form field) are never logged.
pub(crate) fn observed(state: Arc<HostState>, routes: Router) -> Router {
    routes.layer(middleware::from_fn_with_state(state, observe))
}

/// Gives each request an id (answered as `x-request-id`), runs it inside a
/// span carrying that id, logs its outcome and counts it. Headers are never
/// logged: they carry the bearer token.
async fn observe(State(state): State<Arc<HostState>>, req: Request, next: Next) -> Response {
    // A proxy's id is kept (so one id follows the request through both
    // logs) when it is short and plain; otherwise the host makes one.
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map_or_else(|| format!("{:016x}", rand::random::<u64>()), str::to_string);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", request_id = %id, method = %method, path = %path);
    let t0 = Instant::now();
    let mut res = next.run(req).instrument(span.clone()).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    let status = res.status().as_u16();
    state.metrics.request(&route, method.as_str(), status);
    span.in_scope(|| {
        tracing::info!(
            status,
            route = %route,
            elapsed_ms = t0.elapsed().as_millis() as u64,
            "request"
        )
    });
    res
}

/// The scope a request needs: GET reads, POST calls, and starting a sync
/// (the sync route, or `syncCorp`/`initCorp` through the call route) is admin.
fn needed_scope(method: &Method, route: &str, path: &str) -> Scope {
    if method == Method::GET || method == Method::HEAD {
        return Scope::Read;
    }
    if route.ends_with("/sync") {
        return Scope::Admin;
    }
    if route == CALL_ROUTE {
        let called = path.rsplit('/').next().unwrap_or_default();
        if SYNC_METHODS.contains(&called) {
            return Scope::Admin;
        }
    }
    Scope::Call
}

async fn authenticate(State(state): State<Arc<HostState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    // The login routes answer people, not API clients: the platform login
    // and the session decide (crate jit-login).
    if route
        .as_deref()
        .is_some_and(|r| OPEN_ROUTES.contains(&r) || jit_login::http::OPEN_ROUTES.contains(&r))
    {
        return next.run(req).await;
    }
    let needed = needed_scope(
        req.method(),
        route.as_deref().unwrap_or_default(),
        req.uri().path(),
    );
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match state.tokens.check(auth, needed) {
        Ok(name) => {
            if let Some(name) = name {
                tracing::debug!(token = %name, scope = needed.as_str(), "authenticated");
            }
            next.run(req).await
        }
        Err(Denied::Unauthenticated) => {
            let mut res = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "a valid bearer token is required (Authorization: Bearer <token>)",
            )
            .into_response();
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            res
        }
        Err(Denied::Forbidden) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this token's scope does not allow this request; it needs the `{}` scope",
                needed.as_str()
            ),
        )
        .into_response(),
    }
}

async fn unknown_route(req: Request) -> ApiError {
    ApiError::not_found(
        "route_not_found",
        format!(
            "no route {} {}; the API is described at /api/v1/openapi.json",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn wrong_method(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}; the API is described at /api/v1/openapi.json",
            req.method(),
            req.uri().path()
        ),
    )
}

/// One element, as listed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ElementSummary {
    /// fullName, e.g. `corps.Acme`.
    full_name: String,
    /// `Meta`, `Type` or `Instance`.
    kind: String,
    /// Its `type`.
    #[serde(rename = "type")]
    type_name: Option<String>,
    /// Its title.
    title: String,
    /// The Type implementing it and where that comes from, e.g.
    /// `corps.QywxInnerType (built-in)`.
    implementation: Option<String>,
}

/// Lists every element of the app (its parents and the framework included).
#[utoipa::path(get, path = "/api/v1/elements", tag = "elements",
    responses((status = 200, description = "Every element, by fullName", body = Vec<ElementSummary>),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_elements(State(state): State<Arc<HostState>>) -> Json<Vec<ElementSummary>> {
    let app = &state.app;
    Json(
        app.elements()
            .keys()
            .filter_map(|n| app.element_info(n))
            .map(|i| ElementSummary {
                full_name: i.full_name,
                kind: i.kind.as_str().to_string(),
                type_name: i.type_name,
                title: i.title,
                implementation: i.implemented_by.map(|(t, o)| format!("{t} ({o})")),
            })
            .collect(),
    )
}

/// One element: what `jit show --format json` prints.
#[derive(Serialize, ToSchema)]
struct ElementDetail {
    /// Chain, kind, implementation, files.
    #[schema(value_type = Object)]
    element: Value,
    /// Its config file, `{{NAME}}` filled, secrets masked.
    #[schema(value_type = Object)]
    config: Option<Value>,
    /// Its methods with their arguments.
    #[schema(value_type = Vec<Object>)]
    functions: Value,
    /// Load problems of this element.
    #[schema(value_type = Vec<Object>)]
    diagnostics: Value,
}

/// Shows one element: its resolved chain, config (secrets masked) and methods.
#[utoipa::path(get, path = "/api/v1/elements/{fullName}", tag = "elements",
    params(("fullName" = String, Path, description = "The element's fullName")),
    responses((status = 200, body = ElementDetail),
              (status = 404, description = "No such element (`element_not_found`)", body = ErrorBody)))]
async fn get_element(
    State(state): State<Arc<HostState>>,
    Path(full_name): Path<String>,
) -> Result<Json<ElementDetail>, ApiError> {
    let app = &state.app;
    let Some(info) = app.element_info(&full_name) else {
        return Err(match app.get_element(&full_name) {
            Err(e) => e.into(),
            Ok(_) => ApiError::not_found(
                "element_not_found",
                format!("no element named `{full_name}`"),
            ),
        });
    };
    let diagnostics: Vec<_> = app
        .diagnostics()
        .iter()
        .filter(|d| d.element.as_deref() == Some(full_name.as_str()))
        .cloned()
        .collect();
    Ok(Json(ElementDetail {
        element: json!(info),
        config: app.element_config(&full_name).map(mask_secrets),
        functions: json!(app.element_functions(&full_name).unwrap_or(&[])),
        diagnostics: json!(diagnostics),
    }))
}

/// A method's answer.
#[derive(Serialize, ToSchema)]
struct CallResult {
    /// The method's JSON result (or the property's value).
    #[schema(value_type = Object)]
    result: Value,
}

/// Calls a method (or reads a property) of an element.
///
/// The body is the arguments: an object by name, an array by position, or
/// empty. `syncCorp` and `initCorp` need the `admin` scope, other methods
/// `call`.
#[utoipa::path(post, path = "/api/v1/elements/{fullName}/call/{method}", tag = "elements",
    params(("fullName" = String, Path, description = "The element's fullName"),
           ("method" = String, Path, description = "The method (or property) name")),
    request_body(content = Option<Object>, description = "Arguments by name (or an array by position); optional"),
    responses(
        (status = 200, body = CallResult),
        (status = 400, description = "A bad argument (`invalid_argument`, names it), bad input (`invalid_input`) or a body that is not JSON (`invalid_body`)", body = ErrorBody),
        (status = 404, description = "No such element (`element_not_found`) or method (`method_not_found`)", body = ErrorBody),
        (status = 409, description = "Another sync of the org is running (`sync_busy`)", body = ErrorBody),
        (status = 422, description = "The safety checks refused the sync (`sync_refused`); pass force", body = ErrorBody),
        (status = 500, description = "The implementation (e.g. a plugin) failed (`call_failed`)", body = ErrorBody),
        (status = 502, description = "The platform failed (`upstream_error`, with its `errcode`)", body = ErrorBody)))]
async fn call_method(
    State(state): State<Arc<HostState>>,
    Path((full_name, method)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<CallResult>, ApiError> {
    let args = parse_body::<Value>(&body, "an object of arguments (or an array, or nothing)")?
        .unwrap_or(Value::Null);
    let handle = state.app.get_element(&full_name)?;
    if !handle.functions().iter().any(|f| f.name == method) {
        if let Some(v) = handle.property(&method) {
            return Ok(Json(CallResult { result: v }));
        }
    }
    let t0 = Instant::now();
    let (h, m) = (handle.clone(), method.clone());
    let joined = state
        .jobs
        .spawn(async move { h.call(&m, args).await })
        .await;
    let result = joined.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "call_failed",
            format!("{full_name}.{method} panicked: {e}"),
        )
    })?;
    if !matches!(
        result,
        Err(CallError::UnknownMethod { .. } | CallError::BadArgument { .. })
    ) {
        state.metrics.call(&full_name, &method, t0.elapsed());
    }
    if SYNC_METHODS.contains(&method.as_str()) {
        runs::log_called_sync(&state, &full_name, &method, &result);
    }
    match result {
        Ok(result) => Ok(Json(CallResult { result })),
        Err(e) => {
            let e = ApiError::from(e);
            tracing::warn!(element = %full_name, method = %method, code = e.code(), error = %e.body.error.message, "call failed");
            Err(e)
        }
    }
}

/// A JSON body, `None` when empty; a body that is not JSON is a 400 naming
/// what was expected.
fn parse_body<T: serde::de::DeserializeOwned>(
    body: &Bytes,
    expected: &str,
) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the body must be {expected}: {e}"))
    })
}

/// A query parameter parsed, `None` when absent; a bad one is a 400 naming it.
fn param<T: FromStr>(
    q: &HashMap<String, String>,
    name: &str,
    what: &str,
) -> Result<Option<T>, ApiError> {
    match q.get(name).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::bad_request(
                "invalid_argument",
                format!("query parameter `{name}` must be {what}, got `{v}`"),
            )
        }),
    }
}

/// A sync run as stored.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RunView {
    /// The run id.
    run_id: i64,
    /// The org's fullName.
    org: String,
    /// `running`, `applied`, `dry_run`, `refused` or `failed`.
    outcome: String,
    /// Start, milliseconds since the epoch.
    started_at: i64,
    /// End (the start while running), milliseconds since the epoch.
    finished_at: i64,
    /// Change lines per kind (`created`, `updated`, ...).
    counts: BTreeMap<String, usize>,
    /// Why it was refused or failed.
    error: Option<String>,
    /// Notes of the read and the safety checks.
    notes: Vec<String>,
    /// What started it: `sync` (a full sync) or `event` (a batch of
    /// platform events).
    kind: String,
    /// For a full sync of an org with events: the differences it found that
    /// the events had missed (reconciliation; 0 is the goal).
    #[serde(skip_serializing_if = "Option::is_none")]
    missed_by_events: Option<u64>,
    /// The platform API calls the run made (calls, retries, throttled
    /// answers, failures, throttling waits in ms); absent for runs recorded
    /// before the store kept them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    calls: Option<jit_store::RunCalls>,
}

impl From<SyncRun> for RunView {
    fn from(r: SyncRun) -> RunView {
        RunView {
            run_id: r.run_id,
            org: r.corp,
            outcome: serde_json::to_value(r.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            started_at: r.started_at,
            finished_at: r.finished_at,
            counts: r
                .counts
                .iter()
                .map(|(k, n)| (k.as_str().to_string(), *n))
                .collect(),
            error: r.error,
            notes: r.notes,
            kind: r.kind.as_str().to_string(),
            missed_by_events: r.missed_by_events,
            calls: r.calls,
        }
    }
}

/// A page of runs, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RunsPage {
    /// The runs.
    runs: Vec<RunView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    next_before: Option<i64>,
}

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

fn limit(q: &HashMap<String, String>) -> Result<usize, ApiError> {
    let n = param::<usize>(q, "limit", "a number from 1 to 1000")?.unwrap_or(DEFAULT_LIMIT);
    if n == 0 || n > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "invalid_argument",
            format!("query parameter `limit` must be a number from 1 to 1000, got `{n}`"),
        ));
    }
    Ok(n)
}

/// The handle of an org element of the app (404 `org_not_found` otherwise).
fn org_handle(state: &HostState, full_name: &str) -> Result<ElementHandle, ApiError> {
    if !state.orgs.iter().any(|o| o == full_name) {
        return Err(ApiError::not_found(
            "org_not_found",
            format!("`{full_name}` is not an org element of this app (an instance with syncCorp)"),
        ));
    }
    Ok(state.app.get_element(full_name)?)
}

fn store_error(e: jit_store::StoreError) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "store_error",
        e.to_string(),
    )
}

/// Lists an org's sync runs, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/corps/{fullName}/runs", tag = "corps",
    params(("fullName" = String, Path, description = "The org element's fullName"),
           ("limit" = Option<usize>, Query, description = "Runs per page (1-1000, default 50)"),
           ("before" = Option<i64>, Query, description = "Only runs with a smaller id (the previous page's nextBefore)")),
    responses((status = 200, body = RunsPage),
              (status = 400, body = ErrorBody),
              (status = 404, description = "Not an org element (`org_not_found`)", body = ErrorBody)))]
async fn list_runs(
    State(state): State<Arc<HostState>>,
    Path(full_name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<RunsPage>, ApiError> {
    let limit = limit(&q)?;
    let before = param::<i64>(&q, "before", "a run id")?;
    org_handle(&state, &full_name)?;
    // The store lists the newest runs; a page before a run id is found by
    // widening that window (runs are few per org: one per sync).
    let mut window = limit + 1;
    let page = loop {
        let runs = state
            .store
            .list_runs(&full_name, window)
            .await
            .map_err(store_error)?;
        let exhausted = runs.len() < window;
        let older: Vec<SyncRun> = runs
            .into_iter()
            .filter(|r| before.is_none_or(|b| r.run_id < b))
            .collect();
        if older.len() > limit || exhausted {
            break older;
        }
        window = window.saturating_mul(4);
    };
    let more = page.len() > limit;
    let runs: Vec<RunView> = page.into_iter().take(limit).map(RunView::from).collect();
    let next_before = if more {
        runs.last().map(|r| r.run_id)
    } else {
        None
    };
    Ok(Json(RunsPage { runs, next_before }))
}

/// A run with a page of its per-object change lines.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RunDetail {
    /// The run.
    run: RunView,
    /// Change lines `offset..offset+limit`: object, id, kind, reason.
    #[schema(value_type = Vec<Object>)]
    changes: Vec<RunChange>,
    /// How many change lines the run has.
    changes_total: usize,
    /// Pass as `offset` for the next page; absent on the last page.
    next_offset: Option<usize>,
}

async fn stored_run(state: &HostState, full_name: &str, id: &str) -> Result<SyncRun, ApiError> {
    org_handle(state, full_name)?;
    let not_found =
        || ApiError::not_found("run_not_found", format!("{full_name} has no run `{id}`"));
    let id: i64 = id.parse().map_err(|_| not_found())?;
    match state.store.get_run(id).await.map_err(store_error)? {
        Some(run) if run.corp == full_name => Ok(run),
        _ => Err(not_found()),
    }
}

/// One run of an org and its per-object change lines, a page at a time.
#[utoipa::path(get, path = "/api/v1/corps/{fullName}/runs/{id}", tag = "corps",
    params(("fullName" = String, Path, description = "The org element's fullName"),
           ("id" = i64, Path, description = "The run id"),
           ("limit" = Option<usize>, Query, description = "Change lines per page (1-1000, default 50)"),
           ("offset" = Option<usize>, Query, description = "Change lines to skip (the previous page's nextOffset)")),
    responses((status = 200, body = RunDetail),
              (status = 404, description = "No such org (`org_not_found`) or run (`run_not_found`)", body = ErrorBody)))]
async fn get_run(
    State(state): State<Arc<HostState>>,
    Path((full_name, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<RunDetail>, ApiError> {
    let limit = limit(&q)?;
    let offset = param::<usize>(&q, "offset", "a number")?.unwrap_or(0);
    let run = stored_run(&state, &full_name, &id).await?;
    let all = state
        .store
        .run_changes(run.run_id)
        .await
        .map_err(store_error)?;
    let total = all.len();
    let changes: Vec<RunChange> = all.into_iter().skip(offset).take(limit).collect();
    let end = offset.saturating_add(changes.len());
    Ok(Json(RunDetail {
        run: run.into(),
        changes,
        changes_total: total,
        next_offset: (end < total).then_some(end),
    }))
}

/// Live progress of a run as Server-Sent Events.
///
/// Events: `run` (id), `phase` (with the API calls so far: total, retries,
/// throttled, budget waits), `progress` (found/done per unit), `note`, and
/// the final `done` (outcome, counts, error). For a finished run `done`
/// comes at once; for a run another process is running, when it ends.
#[utoipa::path(get, path = "/api/v1/corps/{fullName}/runs/{id}/events", tag = "corps",
    params(("fullName" = String, Path, description = "The org element's fullName"),
           ("id" = i64, Path, description = "The run id")),
    responses((status = 200, description = "An event stream ending with `done`", content_type = "text/event-stream", body = String),
              (status = 404, body = ErrorBody)))]
async fn run_events(
    State(state): State<Arc<HostState>>,
    Path((full_name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let run = stored_run(&state, &full_name, &id).await?;
    Ok(Sse::new(runs::event_stream(state, run))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// What a sync is asked to do.
#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SyncRequest {
    /// Compute and record the plan; write nothing.
    #[serde(default)]
    dry_run: bool,
    /// Apply even when the safety checks refuse.
    #[serde(default)]
    force: bool,
}

/// A sync started in the background.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SyncStarted {
    /// Its run: follow it at `.../runs/{runId}/events`.
    run_id: i64,
}

/// Starts a sync of an org in the background; answers its run id at once.
#[utoipa::path(post, path = "/api/v1/corps/{fullName}/sync", tag = "corps",
    params(("fullName" = String, Path, description = "The org element's fullName")),
    request_body(content = Option<SyncRequest>, description = "Optional; both default to false"),
    responses((status = 202, body = SyncStarted),
              (status = 400, description = "A body that is not {dryRun, force} (`invalid_body`)", body = ErrorBody),
              (status = 404, description = "Not an org element (`org_not_found`)", body = ErrorBody),
              (status = 409, description = "Another sync of the org is running (`sync_busy`)", body = ErrorBody),
              (status = 501, description = "An org Type (plugin) whose sync takes no options (`sync_unsupported`)", body = ErrorBody),
              (status = 502, body = ErrorBody)))]
async fn start_sync(
    State(state): State<Arc<HostState>>,
    Path(full_name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<SyncStarted>), ApiError> {
    let req = parse_body::<SyncRequest>(&body, "{\"dryRun\": bool, \"force\": bool}")?
        .unwrap_or_default();
    let run_id = start_org_sync(&state, &full_name, req.dry_run, req.force).await?;
    Ok((StatusCode::ACCEPTED, Json(SyncStarted { run_id })))
}

/// Starts a sync of an org element in the background and answers its run
/// id once recorded (the API's `POST .../sync` and the console's "Sync now").
pub(crate) async fn start_org_sync(
    state: &Arc<HostState>,
    full_name: &str,
    dry_run: bool,
    force: bool,
) -> Result<i64, ApiError> {
    let handle = org_handle(state, full_name)?;
    let Some(corp) = handle.downcast_ref::<CorpElement>() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "sync_unsupported",
            format!(
                "{full_name} is implemented by {}, whose syncCorp takes no options; call it with POST /api/v1/elements/{full_name}/call/syncCorp",
                handle.type_name()
            ),
        ));
    };
    let mut opts = corp.sync_options();
    opts.dry_run = dry_run;
    opts.force = force;
    tracing::info!(org = %full_name, dry_run, force, "sync requested");
    let started = runs::spawn_tracked(state, handle.clone(), opts, RunKind::Sync);
    started
        .await
        .map_err(|_| ApiError::internal("the sync stopped before it started"))?
}

/// This OpenAPI document, generated from the handlers.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3 document", body = Object)))]
async fn openapi_json(Extension(doc): Extension<Arc<utoipa::openapi::OpenApi>>) -> Response {
    Json(doc.as_ref().clone()).into_response()
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "meta", security(()),
    responses((status = 200, description = "Alive", body = Object)))]
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the app is loaded and the store answers (org initialisation
/// running in the background is not waited for).
#[utoipa::path(get, path = "/readyz", tag = "meta", security(()),
    responses((status = 200, description = "Ready", body = Object),
              (status = 503, description = "The store does not answer (`not_ready`)", body = ErrorBody)))]
async fn readyz(State(state): State<Arc<HostState>>) -> Result<Json<Value>, ApiError> {
    state.store.user_count().await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("the org store does not answer: {e}"),
        )
    })?;
    Ok(Json(json!({"status": "ready", "app": state.app_id})))
}

/// Metrics in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text exposition (0.0.4)", content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<Arc<HostState>>) -> Response {
    let mut snap = crate::metrics::Snapshot::default();
    for org in &state.orgs {
        // Building an element (cached after the first time) and its client
        // needs no network, so a scrape stays cheap.
        if let Ok(h) = state.app.get_element(org) {
            if let Some(c) = h
                .downcast_ref::<CorpElement>()
                .and_then(|c| c.client().ok())
            {
                snap.upstream.push((org.clone(), c.stats()));
            }
        }
        let last = state.store.last_successful_sync(org).await.ok().flatten();
        snap.last_sync.push((org.clone(), last));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        {
            let mut text = state.metrics.render(&snap);
            if let Some(events) = state.events.get() {
                text.push_str(&events.render_metrics());
            }
            text
        },
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_read_calls_are_call_and_syncs_are_admin() {
        let p = "/api/v1/elements/corps.A/call/";
        assert_eq!(
            needed_scope(&Method::GET, "/api/v1/elements", "/api/v1/elements"),
            Scope::Read
        );
        assert_eq!(
            needed_scope(&Method::POST, CALL_ROUTE, &format!("{p}getAdmin")),
            Scope::Call
        );
        assert_eq!(
            needed_scope(&Method::POST, CALL_ROUTE, &format!("{p}syncCorp")),
            Scope::Admin
        );
        assert_eq!(
            needed_scope(&Method::POST, CALL_ROUTE, &format!("{p}initCorp")),
            Scope::Admin
        );
        assert_eq!(
            needed_scope(
                &Method::POST,
                "/api/v1/corps/{fullName}/sync",
                "/api/v1/corps/corps.A/sync"
            ),
            Scope::Admin
        );
    }
}
