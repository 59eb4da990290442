//! What hosts show of tasks and firings (the API and `jit tasks`).

use crate::now_ms;
use crate::scheduler::task_elements;
use jit_core::App;
use jit_store::{CorpStore, Firing, StoreResult};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// One firing of a task. Times are milliseconds since the epoch.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FiringView {
    /// Store-assigned id.
    pub firing_id: i64,
    /// The slot the schedule gave.
    pub scheduled_at: i64,
    /// 1 for the first run; more for a re-run after a host's lease expired.
    pub attempt: i64,
    /// `running`, `succeeded`, `failed` or `skipped`.
    pub state: String,
    /// The host (replica) that ran the current attempt.
    pub holder: String,
    /// When the current attempt started.
    pub started_at: i64,
    /// When it ended.
    pub finished_at: Option<i64>,
    /// The call's result.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// The call's error.
    pub error: Option<String>,
    /// Why it was skipped, or whose lease expired before a re-run.
    pub note: Option<String>,
}

impl From<Firing> for FiringView {
    fn from(f: Firing) -> FiringView {
        FiringView {
            firing_id: f.firing_id,
            scheduled_at: f.scheduled_at,
            attempt: f.attempt,
            state: f.state.as_str().to_string(),
            holder: f.holder,
            started_at: f.started_at,
            finished_at: f.finished_at,
            result: f.result,
            error: f.error,
            note: f.note,
        }
    }
}

/// A task element with its schedule and its newest firing.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    /// The element's fullName.
    pub full_name: String,
    /// Its title.
    pub title: String,
    /// `every 2s` or `cron 0 * * * * (Asia/Shanghai)`.
    pub schedule: String,
    /// The element it calls.
    pub element: String,
    /// The method it calls.
    pub method: String,
    /// Whether a slot missed while no host ran is run at start.
    pub catch_up: bool,
    /// `false`: never fired.
    pub enabled: bool,
    /// The next slot after now (none for a disabled task).
    pub next_firing: Option<i64>,
    /// The newest recorded firing.
    pub last_firing: Option<FiringView>,
}

/// Every task element of `app` (sorted by fullName) with its next slot
/// and newest firing in `store`; the problems of task elements that could
/// not be built (fullName, reason).
pub async fn list_tasks(
    app: &App,
    store: &dyn CorpStore,
) -> StoreResult<(Vec<TaskView>, Vec<(String, String)>)> {
    let (tasks, problems) = task_elements(app);
    let now = now_ms();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let last = store.list_firings(&t.full_name, 1, None).await?;
        out.push(TaskView {
            next_firing: t
                .spec
                .enabled
                .then(|| t.spec.schedule.next_after(now))
                .flatten(),
            schedule: t.spec.schedule.describe(),
            element: t.spec.call.element.clone(),
            method: t.spec.call.method.clone(),
            catch_up: t.spec.catch_up,
            enabled: t.spec.enabled,
            last_firing: last.into_iter().next().map(FiringView::from),
            full_name: t.full_name,
            title: t.title,
        });
    }
    Ok((out, problems))
}

/// An instant (milliseconds since the epoch) as RFC 3339 UTC, to the second.
pub fn utc_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// The `jit tasks` table: one line per task with its schedule, call, next
/// slot and newest firing (slot, outcome, attempt, duration).
pub fn render_text(tasks: &[TaskView]) -> String {
    let rows: Vec<[String; 5]> = tasks
        .iter()
        .map(|t| {
            let next = match (t.enabled, t.next_firing) {
                (false, _) => "disabled".to_string(),
                (true, Some(n)) => utc_text(n),
                (true, None) => "never".to_string(),
            };
            let last = match &t.last_firing {
                None => "never fired".to_string(),
                Some(f) => {
                    let mut s = format!("{} {}", utc_text(f.scheduled_at), f.state);
                    if f.attempt > 1 {
                        s.push_str(&format!(" (attempt {})", f.attempt));
                    }
                    if let Some(end) = f.finished_at.filter(|_| f.state != "skipped") {
                        s.push_str(&format!(
                            " in {:.1}s",
                            (end - f.started_at).max(0) as f64 / 1000.0
                        ));
                    }
                    if let Some(e) = &f.error {
                        s.push_str(&format!(": {e}"));
                    }
                    s
                }
            };
            [
                t.full_name.clone(),
                t.schedule.clone(),
                format!("{}.{}", t.element, t.method),
                next,
                last,
            ]
        })
        .collect();
    let header = ["TASK", "SCHEDULE", "CALLS", "NEXT", "LAST"].map(String::from);
    let mut widths = [0usize; 4];
    for r in std::iter::once(&header).chain(&rows) {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(&rows) {
        for (i, c) in r.iter().enumerate() {
            if i < 4 {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            } else {
                out.push_str(c);
            }
        }
        out.push('\n');
    }
    out
}
