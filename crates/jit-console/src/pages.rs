//! The read pages: overview, org chart, search, department, person, tasks.
//! Each reads only what it shows (page-sized store reads, never a whole
//! org snapshot).

use crate::auth::{viewer, Access, Viewer};
use crate::html::{age, badge, enc, esc, message_page, now_ms, page, when};
use crate::Host;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use jit_store::reads::{DeptNode, MemberRow};
use jit_store::RunOutcome;
use std::collections::HashMap;

/// Members per department page.
const PAGE: u64 = 50;
/// Hits per search.
const HITS: u64 = 50;

type Q = Query<HashMap<String, String>>;

/// A store failure as a page (the message names the operation, never a secret).
pub(crate) fn store_failed(e: jit_store::StoreError) -> Response {
    tracing::warn!(error = %e, "console: store read failed");
    message_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The store did not answer",
        &esc(&e.to_string()),
    )
}

/// 404 unless `org` is an org element of the app.
pub(crate) fn known_org(host: &Host, org: &str) -> Result<(), Response> {
    if host.orgs().iter().any(|o| o == org) {
        Ok(())
    } else {
        Err(message_page(
            StatusCode::NOT_FOUND,
            "No such org",
            &format!("{} is not an org element of this app.", esc(org)),
        ))
    }
}

/// The viewer, and the org checked.
async fn look(host: &Host, headers: &HeaderMap, org: &str) -> Result<Viewer, Response> {
    let v = viewer(host, headers).await?;
    known_org(host, org)?;
    Ok(v)
}

/// The sync controls of an org (admins only): Sync now and Dry run.
pub(crate) fn sync_controls(v: &Viewer, org: &str) -> String {
    if v.access < Access::Admin {
        return String::new();
    }
    format!(
        "<form method=post action=\"/orgs/{o}/sync\" class=\"inline\">\
         <input type=hidden name=csrf value=\"{c}\">\
         <button type=submit name=mode value=\"sync\">Sync now</button> \
         <button type=submit name=mode value=\"dry\" class=\"secondary\">Dry run</button></form>",
        o = enc(org),
        c = esc(&v.csrf)
    )
}

/// `GET /`: every org with its counts, last sync, last run and schedule.
pub(crate) async fn overview(State(host): State<Host>, headers: HeaderMap) -> Response {
    let v = match viewer(&host, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let store = host.store();
    let orgs = host.orgs();
    let now = now_ms();
    let tasks = jit_tasks::list_tasks(host.app(), store.as_ref())
        .await
        .map(|(t, _)| t)
        .unwrap_or_default();
    let mut body = String::from("<div class=\"cards\">");
    if orgs.is_empty() {
        body.push_str("<p>This app has no org elements.</p>");
    }
    for org in &orgs {
        let title = host
            .app()
            .element_info(org)
            .map(|i| i.title)
            .unwrap_or_default();
        let record = store.corp(org).await.ok().flatten();
        let counts = match store.org_counts(org).await {
            Ok(c) => c,
            Err(e) => return store_failed(e),
        };
        let last_ok = store.last_successful_sync(org).await.ok().flatten();
        let last = store
            .list_runs(org, 1)
            .await
            .ok()
            .and_then(|r| r.into_iter().next());
        let red = last
            .as_ref()
            .is_some_and(|r| matches!(r.outcome, RunOutcome::Refused | RunOutcome::Failed));
        body.push_str(&format!(
            "<section class=\"card{}\" aria-labelledby=\"org-{id}\"><h2 id=\"org-{id}\"><a href=\"/orgs/{u}\">{}</a></h2>\
             <p class=\"muted\">{} · {}</p><dl class=\"facts\">",
            if red { " red" } else { "" },
            esc(if title.is_empty() { org } else { &title }),
            esc(org),
            esc(&record.as_ref().map_or_else(
                || "not synced yet".to_string(),
                |r| format!("{:?} {}", r.provider, r.corp_id)
            )),
            id = enc(org).replace('%', "_"),
            u = enc(org),
        ));
        let members: u64 = counts.members.values().sum();
        let by_status: Vec<String> = counts
            .members
            .iter()
            .map(|(s, n)| format!("{} {n}", badge(s)))
            .collect();
        body.push_str(&format!(
            "<dt>Members</dt><dd>{members} {}</dd><dt>Departments</dt><dd>{}</dd>",
            by_status.join(" "),
            counts.depts
        ));
        body.push_str(&format!(
            "<dt>Last successful sync</dt><dd>{}</dd>",
            last_ok.map_or_else(
                || "never".to_string(),
                |t| format!("{} ({})", when(t), age(t, now))
            )
        ));
        if let Some(r) = &last {
            let outcome = serde_json::to_value(r.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            body.push_str(&format!(
                "<dt>Last run</dt><dd><a href=\"/orgs/{}/runs/{}\">#{}</a> {} {}</dd>",
                enc(org),
                r.run_id,
                r.run_id,
                badge(&outcome),
                when(r.started_at)
            ));
            if red {
                body.push_str(&format!(
                    "<dt>Why</dt><dd class=\"reason\">{}</dd>",
                    esc(r.error.as_deref().unwrap_or("no reason recorded"))
                ));
            }
        }
        // Change events (callbacks, stream): the inbox's backlog and its age.
        if let Ok(ev) = store.inbox_summary(org).await {
            if ev.pending + ev.applied + ev.failed > 0 {
                body.push_str(&format!(
                    "<dt>Events</dt><dd>{} pending{}, {} applied, {} given up{}</dd>",
                    ev.pending,
                    ev.oldest_pending_at
                        .map(|t| format!(" (lag {})", age(t, now).trim_end_matches(" ago")))
                        .unwrap_or_default(),
                    ev.applied,
                    ev.failed,
                    ev.last_applied_at
                        .map(|t| format!("; last applied {}", age(t, now)))
                        .unwrap_or_default()
                ));
            }
        }
        let next = tasks
            .iter()
            .filter(|t| t.element == *org)
            .filter_map(|t| t.next_firing.map(|n| (n, t)))
            .min_by_key(|(n, _)| *n);
        body.push_str(&format!(
            "<dt>Next scheduled sync</dt><dd>{}</dd>",
            next.map_or_else(
                || "no task calls this org".to_string(),
                |(n, t)| format!("{} ({}.{})", when(n), esc(&t.full_name), esc(&t.method))
            )
        ));
        body.push_str(&format!(
            "</dl><p class=\"actions\"><a href=\"/orgs/{u}\">Org chart</a> · \
             <a href=\"/orgs/{u}/runs\">Sync runs</a></p>{}</section>",
            sync_controls(&v, org),
            u = enc(org)
        ));
    }
    body.push_str("</div>");
    page(&v, &orgs, "Overview", &body)
}

fn leaders_text(d: &DeptNode) -> String {
    if d.leaders.is_empty() {
        return String::new();
    }
    let names: Vec<String> = d.leaders.iter().map(|(_, n)| esc(n)).collect();
    format!(" <span class=\"leaders\">lead: {}</span>", names.join(", "))
}

/// One `<li>` of the tree; a node with sub-departments gets a toggle that
/// loads them (a real button: Enter and Space expand it).
fn tree_item(org: &str, d: &DeptNode) -> String {
    let toggle = if d.children > 0 {
        format!(
            "<button type=button class=\"toggle\" aria-expanded=\"false\" \
             data-children=\"/orgs/{}/tree/{}\" aria-label=\"Expand {}\">▸</button>",
            enc(org),
            d.dept_id,
            esc(&d.name)
        )
    } else {
        "<span class=\"toggle-space\"></span>".to_string()
    };
    format!(
        "<li role=treeitem data-dept=\"{id}\">{toggle}<a href=\"/orgs/{o}/depts/{id}\">{}</a> \
         <span class=\"count\">{} members{}</span>{}</li>",
        esc(&d.name),
        d.members,
        if d.children > 0 {
            format!(" · {} sub-departments", d.children)
        } else {
            String::new()
        },
        leaders_text(d),
        id = d.dept_id,
        o = enc(org)
    )
}

fn tree_list(org: &str, nodes: &[DeptNode]) -> String {
    let items: String = nodes.iter().map(|d| tree_item(org, d)).collect();
    format!("<ul role=group>{items}</ul>")
}

fn search_form(org: &str, q: &str) -> String {
    format!(
        "<form method=get action=\"/orgs/{}/search\" class=\"search\" role=search>\
         <label for=q>Find a person or department</label>\
         <input id=q name=q value=\"{}\" placeholder=\"name, userid or mobile\">\
         <button type=submit>Search</button></form>",
        enc(org),
        esc(q)
    )
}

/// `GET /orgs/{org}`: the top of the tree, expanded lazily.
pub(crate) async fn org_chart(
    State(host): State<Host>,
    headers: HeaderMap,
    Path(org): Path<String>,
) -> Response {
    let v = match look(&host, &headers, &org).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let tops = match host.store().dept_children(&org, None).await {
        Ok(t) => t,
        Err(e) => return store_failed(e),
    };
    let mut body = search_form(&org, "");
    body.push_str(&format!(
        "<p class=\"actions\"><a href=\"/orgs/{u}/runs\">Sync runs</a></p>{}",
        sync_controls(&v, &org),
        u = enc(&org)
    ));
    if tops.is_empty() {
        body.push_str("<p>No departments are stored yet: the org has not synced.</p>");
    } else {
        let items: String = tops.iter().map(|d| tree_item(&org, d)).collect();
        body.push_str(&format!(
            "<ul class=\"tree\" role=tree aria-label=\"Departments\">{items}</ul>"
        ));
    }
    page(&v, &host.orgs(), &format!("Org chart · {org}"), &body)
}

/// `GET /orgs/{org}/tree/{dept}`: one level of the tree, as an HTML fragment.
pub(crate) async fn tree_level(
    State(host): State<Host>,
    headers: HeaderMap,
    Path((org, dept)): Path<(String, i64)>,
) -> Response {
    if let Err(r) = look(&host, &headers, &org).await {
        return r;
    }
    match host.store().dept_children(&org, Some(dept)).await {
        Ok(nodes) => Html(tree_list(&org, &nodes)).into_response(),
        Err(e) => store_failed(e),
    }
}

fn member_link(m: &MemberRow) -> String {
    match m.user_id {
        Some(u) => format!("<a href=\"/people/{u}\">{}</a>", esc(&m.name)),
        None => esc(&m.name),
    }
}

fn member_rows(members: &[MemberRow]) -> String {
    let mut out = String::from(
        "<div class=\"scroll\"><table><thead><tr><th scope=col>Name</th><th scope=col>userid</th>\
         <th scope=col>Position</th><th scope=col>Status</th></tr></thead><tbody>",
    );
    for m in members {
        out.push_str(&format!(
            "<tr><td>{}{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            member_link(m),
            if m.leader {
                " <span class=\"badge plain\">leader</span>"
            } else {
                ""
            },
            esc(&m.member_id),
            esc(m.position.as_deref().unwrap_or("")),
            badge(&m.status)
        ));
    }
    out.push_str("</tbody></table></div>");
    out
}

/// `GET /orgs/{org}/search?q=`: members and departments found.
pub(crate) async fn search(
    State(host): State<Host>,
    headers: HeaderMap,
    Path(org): Path<String>,
    Query(q): Q,
) -> Response {
    let v = match look(&host, &headers, &org).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let text = q
        .get("q")
        .map(String::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    let hits = match host.store().search_org(&org, &text, HITS).await {
        Ok(h) => h,
        Err(e) => return store_failed(e),
    };
    let mut body = search_form(&org, &text);
    if !text.is_empty() {
        body.push_str(&format!(
            "<h2>People ({}{})</h2>",
            hits.members.len(),
            if hits.members.len() as u64 == HITS {
                "+"
            } else {
                ""
            }
        ));
        if hits.members.is_empty() {
            body.push_str("<p>Nobody matches.</p>");
        } else {
            body.push_str(&member_rows(&hits.members));
        }
        body.push_str(&format!("<h2>Departments ({})</h2><ul>", hits.depts.len()));
        for (id, name) in &hits.depts {
            body.push_str(&format!(
                "<li><a href=\"/orgs/{}/depts/{id}\">{}</a></li>",
                enc(&org),
                esc(name)
            ));
        }
        body.push_str("</ul>");
    }
    page(&v, &host.orgs(), &format!("Search · {org}"), &body)
}

/// `GET /orgs/{org}/depts/{dept}?page=`: a department and a page of its
/// members, leaders first.
pub(crate) async fn dept_page(
    State(host): State<Host>,
    headers: HeaderMap,
    Path((org, dept)): Path<(String, i64)>,
    Query(q): Q,
) -> Response {
    let v = match look(&host, &headers, &org).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let store = host.store();
    let node = match store.dept(&org, dept).await {
        Ok(Some(n)) => n,
        Ok(None) => {
            return message_page(
                StatusCode::NOT_FOUND,
                "No such department",
                &format!("{} has no department {dept}.", esc(&org)),
            )
        }
        Err(e) => return store_failed(e),
    };
    let page_no: u64 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let members = match store.dept_members(&org, dept, page_no * PAGE, PAGE).await {
        Ok(m) => m,
        Err(e) => return store_failed(e),
    };
    let subs = match store.dept_children(&org, Some(dept)).await {
        Ok(s) => s,
        Err(e) => return store_failed(e),
    };
    let mut body = String::new();
    if let Some(p) = node.parent_id {
        body.push_str(&format!(
            "<p><a href=\"/orgs/{}/depts/{p}\">↑ Parent department</a> · <a href=\"/orgs/{}\">Org chart</a></p>",
            enc(&org),
            enc(&org)
        ));
    }
    body.push_str(&format!(
        "<dl class=\"facts\"><dt>Department id</dt><dd>{}</dd><dt>Members here</dt><dd>{}</dd>\
         <dt>Sub-departments</dt><dd>{}</dd><dt>Leaders</dt><dd>{}</dd></dl>",
        node.dept_id,
        members.total,
        node.children,
        if node.leaders.is_empty() {
            "none".to_string()
        } else {
            node.leaders
                .iter()
                .map(|(_, n)| esc(n))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    if !subs.is_empty() {
        body.push_str("<h2>Sub-departments</h2>");
        body.push_str(&format!(
            "<ul class=\"tree\" role=tree aria-label=\"Sub-departments\">{}</ul>",
            subs.iter().map(|d| tree_item(&org, d)).collect::<String>()
        ));
    }
    let first = page_no * PAGE + 1;
    let last = page_no * PAGE + members.members.len() as u64;
    body.push_str(&format!(
        "<h2>Members {}</h2>",
        if members.total == 0 {
            "(none)".to_string()
        } else {
            format!("{first}–{last} of {}", members.total)
        }
    ));
    if !members.members.is_empty() {
        body.push_str(&member_rows(&members.members));
    }
    body.push_str(&pager(
        &format!("/orgs/{}/depts/{dept}?", enc(&org)),
        page_no,
        members.total,
    ));
    page(&v, &host.orgs(), &node.name, &body)
}

/// Previous / next links for `total` items in pages of [`PAGE`].
pub(crate) fn pager(base: &str, page_no: u64, total: u64) -> String {
    let mut out = String::from("<nav class=\"pager\" aria-label=\"Pages\">");
    if page_no > 0 {
        out.push_str(&format!(
            "<a href=\"{}page={}\" rel=prev>← Previous</a>",
            esc(base),
            page_no - 1
        ));
    }
    if (page_no + 1) * PAGE < total {
        out.push_str(&format!(
            "<a href=\"{}page={}\" rel=next>Next →</a>",
            esc(base),
            page_no + 1
        ));
    }
    out.push_str("</nav>");
    out
}

/// `GET /people/{user}`: every membership in every org, bindings,
/// signatures and the changes that touched the person.
pub(crate) async fn person(
    State(host): State<Host>,
    headers: HeaderMap,
    Path(user): Path<i64>,
) -> Response {
    let v = match viewer(&host, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let store = host.store();
    let p = match store.person(user).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return message_page(
                StatusCode::NOT_FOUND,
                "No such person",
                &format!("There is no local user {user}."),
            )
        }
        Err(e) => return store_failed(e),
    };
    let mut body = format!(
        "<dl class=\"facts\"><dt>Local user</dt><dd>{}</dd><dt>Created</dt><dd>{}</dd></dl>",
        p.user_id,
        when(p.created_at)
    );
    body.push_str("<h2>Bindings</h2><div class=\"scroll\"><table><thead><tr><th scope=col>Platform</th>\
        <th scope=col>Corp id</th><th scope=col>userid</th><th scope=col>unionId</th></tr></thead><tbody>");
    for b in &p.bindings {
        body.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            esc(&b.provider),
            esc(&b.corp_id),
            esc(&b.member_id),
            esc(b.union_id.as_deref().unwrap_or("—"))
        ));
    }
    body.push_str("</tbody></table></div>");
    for m in &p.memberships {
        body.push_str(&format!(
            "<section class=\"card\"><h2>{} in <a href=\"/orgs/{}\">{}</a> {}</h2><dl class=\"facts\">\
             <dt>userid</dt><dd><code>{}</code></dd><dt>Position</dt><dd>{}</dd>\
             <dt>Mobile</dt><dd>{}</dd><dt>Email</dt><dd>{}</dd>",
            esc(&m.name),
            enc(&m.corp),
            esc(&m.corp),
            badge(&m.status),
            esc(&m.member_id),
            esc(m.position.as_deref().unwrap_or("unknown")),
            esc(m.mobile.as_deref().unwrap_or("unknown")),
            esc(m.email.as_deref().unwrap_or("unknown")),
        ));
        let depts: Vec<String> = m
            .depts
            .iter()
            .map(|(id, name, lead)| {
                format!(
                    "<a href=\"/orgs/{}/depts/{id}\">{}</a>{}",
                    enc(&m.corp),
                    esc(name),
                    if *lead { " (leader)" } else { "" }
                )
            })
            .collect();
        let roles: Vec<String> = m
            .roles
            .iter()
            .map(|(_, name, origin)| {
                format!(
                    "{} <span class=\"muted\">({})</span>",
                    esc(name),
                    esc(origin)
                )
            })
            .collect();
        let admin: Vec<String> = m
            .admin
            .iter()
            .map(|(level, origin)| format!("level {level} ({})", esc(origin)))
            .collect();
        let signature = store
            .get_signature(&m.corp, &m.member_id)
            .await
            .ok()
            .flatten();
        body.push_str(&format!(
            "<dt>Departments</dt><dd>{}</dd><dt>Roles</dt><dd>{}</dd><dt>Admin</dt><dd>{}</dd>\
             <dt>Signature</dt><dd>{}</dd></dl>",
            if depts.is_empty() {
                "none".into()
            } else {
                depts.join(", ")
            },
            if roles.is_empty() {
                "none".into()
            } else {
                roles.join(", ")
            },
            if admin.is_empty() {
                "no".into()
            } else {
                admin.join(", ")
            },
            esc(signature.as_deref().unwrap_or("none")),
        ));
        let changes = match store.member_changes(&m.corp, &m.member_id, 50).await {
            Ok(c) => c,
            Err(e) => return store_failed(e),
        };
        body.push_str("<h3>Changes that touched them</h3>");
        if changes.is_empty() {
            body.push_str("<p>None recorded.</p>");
        } else {
            body.push_str("<div class=\"scroll\"><table><thead><tr><th scope=col>Run</th><th scope=col>When</th>\
                <th scope=col>Change</th><th scope=col>Why</th></tr></thead><tbody>");
            for c in &changes {
                body.push_str(&format!(
                    "<tr><td><a href=\"/orgs/{}/runs/{}\">#{}</a> {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    enc(&m.corp),
                    c.run_id,
                    c.run_id,
                    badge(&c.outcome),
                    when(c.started_at),
                    badge(&c.kind),
                    esc(&c.reason)
                ));
            }
            body.push_str("</tbody></table></div>");
        }
        body.push_str("</section>");
    }
    page(&v, &host.orgs(), &p.name, &body)
}

/// `GET /tasks`: each task with its schedule, next slot and newest firing.
pub(crate) async fn tasks(State(host): State<Host>, headers: HeaderMap) -> Response {
    let v = match viewer(&host, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (tasks, problems) = match jit_tasks::list_tasks(host.app(), host.store().as_ref()).await {
        Ok(t) => t,
        Err(e) => return store_failed(e),
    };
    let mut body = String::new();
    if tasks.is_empty() {
        body.push_str("<p>This app has no task elements.</p>");
    } else {
        body.push_str("<div class=\"scroll\"><table><thead><tr><th scope=col>Task</th><th scope=col>Schedule</th>\
            <th scope=col>Calls</th><th scope=col>Next</th><th scope=col>Last firing</th></tr></thead><tbody>");
        for t in &tasks {
            let last = t.last_firing.as_ref().map_or_else(
                || "never".to_string(),
                |f| {
                    format!(
                        "{} {} attempt {}{}",
                        when(f.scheduled_at),
                        badge(&f.state),
                        f.attempt,
                        f.error
                            .as_deref()
                            .or(f.note.as_deref())
                            .map(|e| format!("<br><span class=\"reason\">{}</span>", esc(e)))
                            .unwrap_or_default()
                    )
                },
            );
            body.push_str(&format!(
                "<tr><td>{}<br><span class=\"muted\">{}</span></td><td>{}</td><td><code>{}.{}</code></td>\
                 <td>{}</td><td>{last}</td></tr>",
                esc(&t.title),
                esc(&t.full_name),
                esc(&t.schedule),
                esc(&t.element),
                esc(&t.method),
                t.next_firing
                    .map_or_else(|| "disabled".to_string(), when),
            ));
        }
        body.push_str("</tbody></table></div>");
    }
    for (name, why) in &problems {
        body.push_str(&format!(
            "<p class=\"alert\">{} is not scheduled: {}</p>",
            esc(name),
            esc(why)
        ));
    }
    page(&v, &host.orgs(), "Tasks", &body)
}
