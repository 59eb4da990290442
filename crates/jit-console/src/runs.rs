//! Sync runs: the history of an org, one run with its per-object changes
//! (filtered by kind, searched, paged), its live progress, and starting
//! a sync, a dry run, or applying a refused run.

use crate::auth::{check_csrf, viewer, Access, Viewer};
use crate::html::{badge, duration, enc, esc, message_page, page, when};
use crate::pages::{known_org, pager, store_failed, sync_controls};
use crate::Host;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use jit_store::reads::ChangeFilter;
use jit_store::{RunOutcome, SyncRun};
use serde::Deserialize;
use std::collections::HashMap;

/// Change lines per run page.
const PAGE: u64 = 50;
/// Runs listed.
const RUNS: usize = 100;
/// The kinds a run's changes are filtered by.
const KINDS: &[&str] = &[
    "created",
    "updated",
    "moved",
    "offlined",
    "reactivated",
    "removed",
    "skipped",
];

fn outcome(r: &SyncRun) -> String {
    serde_json::to_value(r.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn counts_text(r: &SyncRun) -> String {
    if r.counts.is_empty() {
        return "no changes".into();
    }
    r.counts
        .iter()
        .map(|(k, n)| format!("{} {n}", esc(k.as_str())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The platform calls of a run and its throttling: "120 calls, 3 throttled
/// (waited 1.2 s)"; a dash for runs recorded before the store kept them.
fn calls_text(r: &SyncRun) -> String {
    let Some(c) = r.calls else {
        return "—".into();
    };
    let mut t = format!("{} call{}", c.calls, if c.calls == 1 { "" } else { "s" });
    if c.retries > 0 {
        t.push_str(&format!(", {} retried", c.retries));
    }
    t.push_str(&format!(", {} throttled", c.throttled));
    if c.wait_ms > 0 {
        t.push_str(&format!(" (waited {})", duration(c.wait_ms as i64)));
    }
    if c.failures > 0 {
        t.push_str(&format!(", {} failed", c.failures));
    }
    t
}

/// `GET /orgs/{org}/runs`: the newest runs.
pub(crate) async fn run_list(
    State(host): State<Host>,
    headers: HeaderMap,
    Path(org): Path<String>,
) -> Response {
    let v = match viewer(&host, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = known_org(&host, &org) {
        return r;
    }
    let runs = match host.store().list_runs(&org, RUNS).await {
        Ok(r) => r,
        Err(e) => return store_failed(e),
    };
    let mut body = sync_controls(&v, &org);
    if runs.is_empty() {
        body.push_str("<p>No runs yet.</p>");
    } else {
        body.push_str(
            "<div class=\"scroll\"><table><thead><tr><th scope=col>Run</th><th scope=col>Started</th>\
             <th scope=col>Outcome</th><th scope=col>Changes</th><th scope=col>Duration</th>\
             <th scope=col>Calls</th><th scope=col>Why</th></tr></thead><tbody>",
        );
        for r in &runs {
            body.push_str(&format!(
                "<tr><td><a href=\"/orgs/{}/runs/{id}\">#{id}</a></td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td class=\"calls\">{}</td><td class=\"reason\">{}</td></tr>",
                enc(&org),
                when(r.started_at),
                badge(&outcome(r)),
                counts_text(r),
                if r.outcome == RunOutcome::Running {
                    "running".to_string()
                } else {
                    duration(r.finished_at - r.started_at)
                },
                calls_text(r),
                esc(r.error.as_deref().unwrap_or("")),
                id = r.run_id,
            ));
        }
        body.push_str("</tbody></table></div>");
    }
    page(&v, &host.orgs(), &format!("Sync runs · {org}"), &body)
}

async fn stored_run(host: &Host, org: &str, id: i64) -> Result<SyncRun, Response> {
    known_org(host, org)?;
    match host.store().get_run(id).await {
        Ok(Some(r)) if r.corp == org => Ok(r),
        Ok(_) => Err(message_page(
            StatusCode::NOT_FOUND,
            "No such run",
            &format!("{} has no run {id}.", esc(org)),
        )),
        Err(e) => Err(store_failed(e)),
    }
}

/// The "Apply anyway" form of a refused run: the org's name must be typed.
fn apply_anyway(v: &Viewer, org: &str) -> String {
    if v.access < Access::Admin {
        return "<p class=\"muted\">An admin can apply it anyway.</p>".into();
    }
    format!(
        "<form method=post action=\"/orgs/{o}/sync\" class=\"stack confirm\">\
         <input type=hidden name=csrf value=\"{c}\"><input type=hidden name=mode value=\"force\">\
         <label for=confirm>To apply anyway, offlining these members, type the org's name <code>{n}</code>:</label>\
         <input id=confirm name=confirm autocomplete=off required>\
         <button type=submit class=\"danger\">Apply anyway</button></form>",
        o = enc(org),
        c = esc(&v.csrf),
        n = esc(org)
    )
}

/// `GET /orgs/{org}/runs/{id}?kind=&q=&page=`: a run and its changes.
pub(crate) async fn run_page(
    State(host): State<Host>,
    headers: HeaderMap,
    Path((org, id)): Path<(String, i64)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let v = match viewer(&host, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let run = match stored_run(&host, &org, id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let kind = q
        .get("kind")
        .map(String::as_str)
        .filter(|k| KINDS.contains(k))
        .unwrap_or("")
        .to_string();
    let text = q
        .get("q")
        .map(String::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    let page_no: u64 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let store = host.store();
    let lines = match store
        .run_change_page(
            id,
            &org,
            &ChangeFilter {
                kind: kind.clone(),
                text: text.clone(),
                offset: page_no * PAGE,
                limit: PAGE,
            },
        )
        .await
    {
        Ok(l) => l,
        Err(e) => return store_failed(e),
    };
    let out = outcome(&run);
    let mut body = format!(
        "<dl class=\"facts\"><dt>Outcome</dt><dd id=\"outcome\">{}</dd><dt>Started</dt><dd>{}</dd>\
         <dt>Duration</dt><dd>{}</dd><dt>Changes</dt><dd>{}</dd>\
         <dt>Calls</dt><dd id=\"run-calls\">{}</dd></dl>",
        badge(&out),
        when(run.started_at),
        if run.outcome == RunOutcome::Running {
            "running".to_string()
        } else {
            duration(run.finished_at - run.started_at)
        },
        counts_text(&run),
        calls_text(&run)
    );
    if let Some(e) = &run.error {
        body.push_str(&format!(
            "<p class=\"alert\" role=alert><strong>{}</strong>: {}</p>",
            if run.outcome == RunOutcome::Refused {
                "Refused"
            } else {
                "Failed"
            },
            esc(e)
        ));
    }
    for n in &run.notes {
        body.push_str(&format!("<p class=\"note\">{}</p>", esc(n)));
    }
    if run.outcome == RunOutcome::Running {
        body.push_str(&format!(
            "<section id=\"live\" class=\"card\" aria-live=\"polite\" data-events=\"/orgs/{}/runs/{id}/events\">\
             <h2>Live progress</h2><p id=\"phase\">Waiting for the first event…</p>\
             <progress id=\"bar\" max=\"1\" value=\"0\"></progress>\
             <dl class=\"facts\" id=\"units\"></dl><p id=\"calls\" class=\"muted\"></p></section>",
            enc(&org)
        ));
    }
    if run.outcome == RunOutcome::Refused {
        let offlined = run
            .counts
            .get(&jit_org::ChangeKind::Offlined)
            .copied()
            .unwrap_or(0);
        body.push_str(&format!(
            "<section class=\"card red\"><h2>Would be offlined: {offlined}</h2>\
             <p><a href=\"/orgs/{}/runs/{id}?kind=offlined\">List exactly who</a> (below when filtered).</p>{}</section>",
            enc(&org),
            apply_anyway(&v, &org)
        ));
    }
    // The filter: kind chips (links) and a search box.
    body.push_str("<nav class=\"chips\" aria-label=\"Filter by kind\">");
    let base = |k: &str| {
        format!(
            "/orgs/{}/runs/{id}?kind={}&q={}",
            enc(&org),
            enc(k),
            enc(&text)
        )
    };
    body.push_str(&format!(
        "<a href=\"{}\"{}>all</a>",
        esc(&base("")),
        if kind.is_empty() {
            " aria-current=true"
        } else {
            ""
        }
    ));
    for k in KINDS {
        let n = run
            .counts
            .iter()
            .find(|(ck, _)| ck.as_str() == *k)
            .map_or(0, |(_, n)| *n);
        body.push_str(&format!(
            "<a href=\"{}\"{}>{k} ({n})</a>",
            esc(&base(k)),
            if kind == *k { " aria-current=true" } else { "" }
        ));
    }
    body.push_str("</nav>");
    body.push_str(&format!(
        "<form method=get class=\"search\" role=search><input type=hidden name=kind value=\"{}\">\
         <label for=q>Search the changes</label><input id=q name=q value=\"{}\" placeholder=\"id, name or reason\">\
         <button type=submit>Filter</button></form>",
        esc(&kind),
        esc(&text)
    ));
    body.push_str(&format!(
        "<p id=\"matching\">{} matching change{}</p>",
        lines.total,
        if lines.total == 1 { "" } else { "s" }
    ));
    if !lines.lines.is_empty() {
        body.push_str(
            "<div class=\"scroll\"><table id=\"changes\"><thead><tr><th scope=col>#</th><th scope=col>Change</th>\
             <th scope=col>Object</th><th scope=col>Id</th><th scope=col>Name</th><th scope=col>Why</th></tr></thead><tbody>",
        );
        for l in &lines.lines {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                l.seq,
                badge(&l.kind),
                esc(&l.object),
                esc(&l.object_id),
                esc(l.name.as_deref().unwrap_or("")),
                esc(&l.reason)
            ));
        }
        body.push_str("</tbody></table></div>");
    }
    body.push_str(&pager(
        &format!(
            "/orgs/{}/runs/{id}?kind={}&q={}&",
            enc(&org),
            enc(&kind),
            enc(&text)
        ),
        page_no,
        lines.total,
    ));
    page(&v, &host.orgs(), &format!("Run #{id} · {org}"), &body)
}

/// `GET /orgs/{org}/runs/{id}/events`: the run's live progress (SSE).
pub(crate) async fn run_events(
    State(host): State<Host>,
    headers: HeaderMap,
    Path((org, id)): Path<(String, i64)>,
) -> Response {
    if let Err(r) = viewer(&host, &headers).await {
        return r;
    }
    let run = match stored_run(&host, &org, id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    Sse::new(host.run_events(run))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The sync form's fields.
#[derive(Deserialize)]
pub(crate) struct SyncForm {
    #[serde(default)]
    csrf: String,
    /// `sync`, `dry` or `force`.
    #[serde(default)]
    mode: String,
    /// For `force`: the org's fullName, typed.
    #[serde(default)]
    confirm: String,
}

/// `POST /orgs/{org}/sync`: starts a sync, a dry run, or (typed
/// confirmation) a forced sync; admins only. Answers with the run's page.
pub(crate) async fn start(
    State(host): State<Host>,
    headers: HeaderMap,
    Path(org): Path<String>,
    Form(form): Form<SyncForm>,
) -> Response {
    let v = match viewer(&host, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&v, &form.csrf) {
        return r;
    }
    if let Err(r) = known_org(&host, &org) {
        return r;
    }
    if v.access < Access::Admin {
        return message_page(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Starting a sync needs admin access; you can look only.",
        );
    }
    let (dry_run, force) = match form.mode.as_str() {
        "sync" => (false, false),
        "dry" => (true, false),
        "force" => {
            if form.confirm.trim() != org {
                return message_page(
                    StatusCode::BAD_REQUEST,
                    "Not applied",
                    &format!(
                        "To apply a refused run, type the org's name exactly: {}. Nothing was started.",
                        esc(&org)
                    ),
                );
            }
            (false, true)
        }
        other => {
            return message_page(
                StatusCode::BAD_REQUEST,
                "Unknown action",
                &format!("`{}` is not sync, dry or force.", esc(other)),
            )
        }
    };
    tracing::info!(org = %org, who = %v.who, dry_run, force, "console: sync requested");
    match host.start_sync(&org, dry_run, force).await {
        Ok(id) => Redirect::to(&format!("/orgs/{}/runs/{id}", enc(&org))).into_response(),
        Err(why) => message_page(StatusCode::CONFLICT, "The sync did not start", &esc(&why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(calls: Option<jit_store::RunCalls>) -> SyncRun {
        SyncRun {
            run_id: 1,
            corp: "corps.Acme".into(),
            started_at: 0,
            finished_at: 0,
            outcome: RunOutcome::Applied,
            counts: Default::default(),
            error: None,
            notes: vec![],
            kind: jit_store::RunKind::Sync,
            missed_by_events: None,
            calls,
        }
    }

    #[test]
    fn a_runs_calls_read_with_their_throttling_and_waits() {
        let throttled = jit_store::RunCalls {
            calls: 120,
            retries: 3,
            throttled: 2,
            failures: 1,
            wait_ms: 1_200,
        };
        assert_eq!(
            calls_text(&run_with(Some(throttled))),
            "120 calls, 3 retried, 2 throttled (waited 1.2 s), 1 failed"
        );
        let calm = jit_store::RunCalls {
            calls: 1,
            ..Default::default()
        };
        assert_eq!(calls_text(&run_with(Some(calm))), "1 call, 0 throttled");
    }

    #[test]
    fn a_run_recorded_before_calls_were_kept_shows_a_dash() {
        assert_eq!(calls_text(&run_with(None)), "—");
    }
}
