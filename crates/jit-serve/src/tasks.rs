//! Task elements in the host: the scheduler it runs (crate `jit-tasks`) and
//! the routes that show tasks and their firings, all read from the store
//! (a firing another replica ran is listed the same way).

use crate::error::{ApiError, ErrorBody};
use crate::state::HostState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use jit_tasks::{FiringView, TaskView};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The task routes, merged into the API by `router_with`.
pub fn routes() -> OpenApiRouter<Arc<HostState>> {
    OpenApiRouter::new()
        .routes(routes!(list_tasks))
        .routes(routes!(list_firings))
}

fn store_error(e: jit_store::StoreError) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "store_error",
        e.to_string(),
    )
}

/// A task element that could not be built (so it is not scheduled).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TaskProblem {
    /// The element.
    full_name: String,
    /// Why.
    reason: String,
}

/// The app's task elements.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TaskList {
    /// Every task element, by fullName, with its next and newest firing.
    tasks: Vec<TaskView>,
    /// Task elements that could not be built.
    problems: Vec<TaskProblem>,
}

/// Lists the app's task elements: schedule, call, next slot, newest firing.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks",
    responses((status = 200, body = TaskList)))]
async fn list_tasks(State(state): State<Arc<HostState>>) -> Result<Json<TaskList>, ApiError> {
    let (tasks, problems) = jit_tasks::list_tasks(&state.app, state.store.as_ref())
        .await
        .map_err(store_error)?;
    Ok(Json(TaskList {
        tasks,
        problems: problems
            .into_iter()
            .map(|(full_name, reason)| TaskProblem { full_name, reason })
            .collect(),
    }))
}

/// A page of a task's firings.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct FiringsPage {
    /// Firings, newest slot first.
    firings: Vec<FiringView>,
    /// Pass as `before` for the next page; absent on the last page.
    next_before: Option<i64>,
}

/// Lists a task's firings (every slot: run, re-run, failed or skipped),
/// newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/tasks/{fullName}/firings", tag = "tasks",
    params(("fullName" = String, Path, description = "The task element's fullName"),
           ("limit" = Option<usize>, Query, description = "Firings per page (1-1000, default 50)"),
           ("before" = Option<i64>, Query, description = "Only slots before this one (the previous page's nextBefore)")),
    responses((status = 200, body = FiringsPage),
              (status = 400, body = ErrorBody),
              (status = 404, description = "Not a task element (`task_not_found`)", body = ErrorBody)))]
async fn list_firings(
    State(state): State<Arc<HostState>>,
    Path(full_name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<FiringsPage>, ApiError> {
    let bad = |name: &str, what: &str, v: &str| {
        ApiError::bad_request(
            "invalid_argument",
            format!("query parameter `{name}` must be {what}, got `{v}`"),
        )
    };
    let limit = match q.get("limit").map(String::as_str) {
        None | Some("") => 50,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => return Err(bad("limit", "a number from 1 to 1000", v)),
        },
    };
    let before = match q.get("before").map(String::as_str) {
        None | Some("") => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| bad("before", "a slot (milliseconds since the epoch)", v))?,
        ),
    };
    let is_task = state
        .app
        .get_element(&full_name)
        .ok()
        .is_some_and(|h| h.downcast_ref::<jit_tasks::TaskElement>().is_some());
    if !is_task {
        return Err(ApiError::not_found(
            "task_not_found",
            format!("{full_name} is not a task element of this app"),
        ));
    }
    let mut firings = state
        .store
        .list_firings(&full_name, limit + 1, before)
        .await
        .map_err(store_error)?;
    let more = firings.len() > limit;
    firings.truncate(limit);
    let next_before = if more {
        firings.last().map(|f| f.scheduled_at)
    } else {
        None
    };
    Ok(Json(FiringsPage {
        firings: firings.into_iter().map(FiringView::from).collect(),
        next_before,
    }))
}
