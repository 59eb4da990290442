//! The web console of `jit serve`, as its users drive it: the real binary
//! with an app whose WeCom org (Chinese names) points at the simulator in
//! this test process, and Debian's headless Chromium through WebDriver
//! (`support::webdriver`). Each browser test saves a screenshot under
//! `target/console-screenshots/`. Without chromium and chromium-driver the
//! tests fail; they never skip.

use crate::support::webdriver::Browser;
use crate::support::{self, Fixture, Resp};

use jit_sim::{Mutation, OrgRef, SimConfig, SimHandle, Simulator};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ORG: &str = "corps.Acme";
const ADMIN_TOKEN: &str = "console-admin-token-4b9e";
const READ_TOKEN: &str = "console-read-token-8c1d";

struct Sim {
    handle: SimHandle,
    _rt: tokio::runtime::Runtime,
}

/// 60 departments up to 4 levels deep and 240 members with Chinese names.
fn start_sim() -> Sim {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt
        .block_on(Simulator::start(SimConfig {
            seed: 15,
            depts: 60,
            users: 240,
            max_depth: 4,
            fan_out: 3,
            dingtalk_depts: Some(3),
            dingtalk_users: Some(5),
            ..SimConfig::default()
        }))
        .expect("simulator starts");
    Sim { handle, _rt: rt }
}

/// The app: `corps.Acme` on the simulator, a WeCom login element, an admin
/// and a read token, and the tag 技术委员会 as the console's reader role.
fn console_app(sim: &Sim) -> Fixture {
    let info = sim.handle.info();
    let f = Fixture::new();
    f.json(
        "app.json",
        json!({"appId": "t.console", "title": "Console", "settings": {
            "apiTokens": [
                {"name": "ops", "token": "{{T_ADMIN}}", "scope": "admin"},
                {"name": "dashboard", "token": "{{T_READ}}", "scope": "read"}
            ],
            "console": {"readerRoles": ["技术委员会"]}
        }}),
    );
    f.json(
        "corps/Acme/e.json",
        json!({"title": "示例科技", "type": "corps.QywxInnerType"}),
    );
    f.json(
        "corps/Acme/Acme.json",
        json!({"corpId": info.wecom.corp_id, "agentId": info.wecom.agent_id.to_string(),
               "secret": info.wecom.secret, "apiBase": info.wecom.api_base_url}),
    );
    // A yearly sync: listed and scheduled, never due while a test runs.
    f.json(
        "tasks/YearlySync/e.json",
        json!({"title": "年度同步", "type": "tasks.NormalType"}),
    );
    f.json(
        "tasks/YearlySync/YearlySync.json",
        json!({"timerCfg": {"cron": "0 2 1 1 *", "timeZone": "Asia/Shanghai"},
               "call": {"element": ORG, "method": "syncCorp"}}),
    );
    f.json(
        "auths/AcmeLogin/e.json",
        json!({"title": "企业微信", "type": "auths.loginTypes.QywxInnerType"}),
    );
    f.json(
        "auths/AcmeLogin/AcmeLogin.json",
        json!({"corp": ORG, "oauthBase": sim.handle.base_url(), "ssoBase": sim.handle.base_url()}),
    );
    f
}

/// Renames a member upstream.
fn rename(sim: &Sim, userid: &str, name: &str) {
    let m = Mutation::rename_member(userid, name);
    sim.handle.mutate(OrgRef::Wecom, m).unwrap();
}

/// A running `jit serve`, stopped when dropped.
struct Server {
    child: Child,
    base: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn start(app: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jit"))
            .args(["serve"])
            .arg(app)
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("DATABASE_URL")
            .env("T_ADMIN", ADMIN_TOKEN)
            .env("T_READ", READ_TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start jit serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (err, into) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                into.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = out.read_to_string(&mut sink);
        });
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!("no ready line ({e}): {line:?}\n{}", stderr.lock().unwrap())
        });
        let server = Server {
            child,
            base: ready["listen"].as_str().unwrap().to_string(),
            stderr,
        };
        server.wait_for_first_sync();
        server
    }

    /// `jit serve` syncs a never-synced org at start (initCorp).
    fn wait_for_first_sync(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.get_api(&format!("/api/v1/corps/{ORG}/runs"));
            if r.json()["runs"][0]["outcome"] == "applied" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the first sync did not apply: {}\n{}",
                r.body,
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn get_api(&self, path: &str) -> Resp {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        support::http(&self.base, "GET", path, "", &[("authorization", &auth)])
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Signs the browser in with an API token through the sign-in form.
fn sign_in_with_token(b: &mut Browser, s: &Server, token: &str) {
    b.goto(&s.url("/"));
    assert!(
        b.url().ends_with("/signin"),
        "not asked to sign in: {}",
        b.url()
    );
    let field = b.find("#token");
    b.type_into(&field, token);
    let submit = b.find("form[action='/signin'] button");
    b.click(&submit);
    b.wait_for(
        "the overview",
        "document.querySelector('h1') && document.querySelector('h1').textContent == 'Overview'",
        10,
    );
}

fn department_path(sim: &Sim, depth: usize) -> Vec<i64> {
    // A chain root → … of departments that each have sub-departments.
    let truth = sim.handle.wecom_truth();
    let has_children = |id: i64| truth.depts.values().any(|d| d.parent_id == Some(id));
    let mut path = vec![*truth
        .depts
        .values()
        .find(|d| d.parent_id.is_none())
        .map(|d| &d.dept_id)
        .unwrap()];
    while path.len() < depth {
        let last = *path.last().unwrap();
        let next = truth
            .depts
            .values()
            .find(|d| d.parent_id == Some(last) && has_children(d.dept_id))
            .unwrap_or_else(|| panic!("no department below {last} has sub-departments"));
        path.push(next.dept_id);
    }
    path
}

#[test]
fn an_org_admin_signs_in_through_the_login_element_and_sees_the_overview() {
    let sim = start_sim();
    let app = console_app(&sim);
    let server = Server::start(app.path());
    let truth = sim.handle.wecom_truth();
    let admin = &truth.admins.as_ref().unwrap()[0].member_id;
    let name = truth.members[admin].name.clone();

    let mut b = Browser::start(1280, 900);
    b.goto(&server.url("/"));
    let button = b.find("a[href^='/auth/auths.AcmeLogin/start']");
    assert!(b.text(&button).contains("企业微信"));
    b.click(&button);
    // The simulator's login page asks who is logging in: the admin.
    let at_sim = b.url();
    assert!(at_sim.starts_with(&sim.handle.base_url()), "{at_sim}");
    // (The query goes before WeCom's `#wechat_redirect` fragment.)
    let (query, fragment) = at_sim.split_once('#').unwrap_or((&at_sim, ""));
    b.goto(&format!("{query}&sim_userid={admin}#{fragment}"));
    b.wait_for(
        "the overview",
        "document.querySelector('h1') && document.querySelector('h1').textContent == 'Overview'",
        15,
    );
    let text = b.page_text();
    assert!(
        text.contains(&name),
        "the header names the admin {name}: {text}"
    );
    assert!(text.contains("admin"), "{text}");
    assert!(text.contains("示例科技"), "{text}");
    b.find("button[value='sync']");
    b.screenshot("signin-overview");
    // Signing out ends the session.
    let out = b.find("form[action='/signout'] button");
    b.click(&out);
    b.wait_for("the sign-in page", "location.pathname == '/signin'", 10);
    b.goto(&server.url("/"));
    assert!(b.url().ends_with("/signin"));
}

#[test]
fn the_org_chart_expands_three_levels_and_a_search_opens_the_persons_page() {
    let sim = start_sim();
    let app = console_app(&sim);
    let server = Server::start(app.path());
    let path = department_path(&sim, 3);
    let mut b = Browser::start(1280, 900);
    sign_in_with_token(&mut b, &server, ADMIN_TOKEN);

    b.goto(&server.url(&format!("/orgs/{ORG}")));
    for (level, id) in path.iter().enumerate() {
        let toggle = b.find(&format!("li[data-dept='{id}'] > button.toggle"));
        if level == 1 {
            // The keyboard opens it too: focus the toggle and press Enter.
            b.script(&format!(
                "document.querySelector(\"li[data-dept='{id}'] > button.toggle\").focus();"
            ));
            b.type_into(&toggle, "\u{E007}");
        } else {
            b.click(&toggle);
        }
        b.wait_for(
            "the sub-departments",
            &format!("document.querySelector(\"li[data-dept='{id}'] > ul li\")"),
            10,
        );
        assert_eq!(b.attr(&toggle, "aria-expanded").as_deref(), Some("true"));
    }
    let deepest = b.all(&format!("li[data-dept='{}'] > ul > li", path[2]));
    assert!(!deepest.is_empty(), "the third level lists departments");
    b.screenshot("orgchart");

    // A narrow phone screen shows the same page without sideways scrolling.
    let mut phone = Browser::start(390, 844);
    sign_in_with_token(&mut phone, &server, ADMIN_TOKEN);
    phone.goto(&server.url(&format!("/orgs/{ORG}")));
    let overflow =
        phone.script("return document.documentElement.scrollWidth <= window.innerWidth + 1;");
    assert_eq!(
        overflow,
        Value::Bool(true),
        "the page is wider than a phone"
    );
    phone.screenshot("orgchart-phone");

    // Search by part of a Chinese name, then open the person.
    let truth = sim.handle.wecom_truth();
    let m = truth
        .members
        .values()
        .find(|m| m.name.chars().count() >= 2)
        .unwrap();
    let part: String = m.name.chars().skip(1).collect();
    let q = b.find("#q");
    b.type_into(&q, &part);
    b.type_into(&q, "\u{E007}");
    b.wait_for(
        "search results",
        "location.pathname.endsWith('/search')",
        10,
    );
    let href = b.script(&format!(
        "const row = [...document.querySelectorAll('table tbody tr')].find(r => r.innerText.includes('{}'));\
         return row ? row.querySelector('a').getAttribute('href') : null;",
        m.member_id
    ));
    let href = href
        .as_str()
        .unwrap_or_else(|| panic!("{} ({}) is not among the hits", m.name, m.member_id));
    let link = b.find(&format!("table a[href='{href}']"));
    b.click(&link);
    b.wait_for(
        "the person page",
        "location.pathname.startsWith('/people/')",
        10,
    );
    let text = b.page_text();
    assert!(
        text.contains(&m.member_id),
        "the person page shows the userid: {text}"
    );
    assert!(text.contains("Changes that touched them"));
    assert!(
        text.contains("created"),
        "the first sync created them: {text}"
    );
    b.screenshot("person");
}

/// Clicks "Sync now" or "Dry run" on the org's runs page; returns the run page's URL.
fn start_run(b: &mut Browser, server: &Server, mode: &str) -> String {
    b.goto(&server.url(&format!("/orgs/{ORG}/runs")));
    let button = b.find(&format!("button[value='{mode}']"));
    b.click(&button);
    b.wait_for(
        "the run page",
        "/\\/runs\\/\\d+$/.test(location.pathname)",
        10,
    );
    b.url()
}

#[test]
fn sync_now_shows_live_progress_to_the_end_and_the_run_filters_its_changes() {
    let sim = start_sim();
    let app = console_app(&sim);
    let server = Server::start(app.path());
    // Changes for the run to show: a new member and a renamed one.
    let truth = sim.handle.wecom_truth();
    let renamed = truth.members.keys().next().unwrap().clone();
    rename(&sim, &renamed, "改名 测试");
    // Slow answers, so the run is still going when its page opens.
    sim.handle.set_latency_ms(25);

    let mut b = Browser::start(1280, 900);
    sign_in_with_token(&mut b, &server, ADMIN_TOKEN);
    let run_url = start_run(&mut b, &server, "sync");
    b.find("#live");
    b.wait_for(
        "progress to reach the end",
        "document.getElementById('live') && document.getElementById('live').dataset.done",
        30,
    );
    let bar = b.script("const p = document.getElementById('bar'); return [p.value, p.max];");
    assert_eq!(bar[0], bar[1], "the progress bar is full: {bar}");
    assert_eq!(
        b.script("return document.getElementById('live').dataset.done;"),
        json!("applied")
    );
    let calls_el = b.find("#calls");
    let calls = b.text(&calls_el);
    assert!(calls.contains("API calls"), "{calls}");
    b.screenshot("run-live-done");
    sim.handle.set_latency_ms(0);

    // The page reloads into the stored run, which keeps the run's calls.
    b.wait_for("the stored run", "!document.getElementById('live')", 10);
    let run_calls_el = b.find("#run-calls");
    let run_calls = b.text(&run_calls_el);
    assert!(
        run_calls.contains(" calls, ") && run_calls.contains(" throttled"),
        "{run_calls}"
    );
    // Filter its changes by kind.
    let chip = b.find("nav.chips a[href*='kind=updated']");
    b.click(&chip);
    b.wait_for("the filter", "location.search.includes('kind=updated')", 10);
    let rows = b.all("#changes tbody tr");
    assert!(!rows.is_empty(), "the renamed member is an update");
    let table_el = b.find("#changes");
    let table = b.text(&table_el);
    assert!(
        table.contains(&renamed) && table.contains("改名 测试"),
        "{table}"
    );
    assert!(
        !table.contains("created"),
        "only updates are listed: {table}"
    );
    // And search them.
    let q = b.find("#q");
    b.type_into(&q, "改名");
    b.type_into(&q, "\u{E007}");
    b.wait_for("the search", "location.search.includes('q=')", 10);
    assert_eq!(b.all("#changes tbody tr").len(), 1);
    assert!(b.url().starts_with(&run_url));
    b.screenshot("run");
}

#[test]
fn a_refused_run_names_who_would_be_offlined_and_applies_only_after_the_typed_confirmation() {
    let sim = start_sim();
    let app = console_app(&sim);
    let server = Server::start(app.path());
    // A third of the org leaves upstream at once: over the 10% guard.
    let truth = sim.handle.wecom_truth();
    let gone: Vec<String> = truth.members.keys().step_by(3).cloned().collect();
    for id in &gone {
        sim.handle
            .mutate(OrgRef::Wecom, Mutation::RemoveMember { userid: id.clone() })
            .unwrap();
    }
    let mut b = Browser::start(1280, 900);
    sign_in_with_token(&mut b, &server, ADMIN_TOKEN);
    start_run(&mut b, &server, "sync");
    b.wait_for(
        "the refusal",
        "document.body.innerText.includes('Would be offlined')",
        30,
    );
    // Those of the removed who were still members (not already offline).
    let refused = server.get_api(&format!("/api/v1/corps/{ORG}/runs")).json()["runs"][0].clone();
    assert_eq!(refused["outcome"], "refused");
    let offlined = refused["counts"]["offlined"].as_u64().unwrap();
    assert!(offlined > 0 && offlined <= gone.len() as u64, "{refused}");
    let text = b.page_text();
    assert!(
        text.contains(&format!("Would be offlined: {offlined}")),
        "{text}"
    );
    // Exactly who: the offlined lines.
    let list = b.find("a[href$='kind=offlined']");
    b.click(&list);
    b.wait_for(
        "the offlined filter",
        "location.search.includes('kind=offlined')",
        10,
    );
    let matching_el = b.find("#matching");
    let matching = b.text(&matching_el);
    assert!(
        matching.starts_with(&format!("{offlined} matching")),
        "{matching}"
    );
    let table_el = b.find("#changes");
    let table = b.text(&table_el);
    assert!(gone.iter().any(|g| table.contains(g.as_str())), "{table}");
    b.screenshot("run-refused");

    // A wrong confirmation applies nothing.
    let confirm = b.find("#confirm");
    b.type_into(&confirm, "yes");
    let apply = b.find("button.danger");
    b.click(&apply);
    b.wait_for(
        "the refusal of the confirmation",
        "document.body.innerText.includes('Not applied')",
        10,
    );
    let runs = server.get_api(&format!("/api/v1/corps/{ORG}/runs")).json();
    assert_eq!(runs["runs"][0]["outcome"], "refused");

    // The org's name, typed: applied, and the members are offline.
    b.script("history.back();");
    b.wait_for(
        "the run page again",
        "document.getElementById('confirm')",
        10,
    );
    let confirm = b.find("#confirm");
    b.script("document.getElementById('confirm').value = '';");
    b.type_into(&confirm, ORG);
    let apply = b.find("button.danger");
    b.click(&apply);
    b.wait_for(
        "the forced run to apply",
        "document.getElementById('outcome') && document.getElementById('outcome').innerText.includes('applied')",
        30,
    );
    let runs = server.get_api(&format!("/api/v1/corps/{ORG}/runs")).json();
    assert_eq!(runs["runs"][0]["outcome"], "applied");
    assert_eq!(
        runs["runs"][0]["counts"]["offlined"].as_u64(),
        Some(offlined)
    );
    b.screenshot("run-applied-anyway");
}

/// The CSRF token in a page's first form.
fn csrf_of(page: &str) -> String {
    page.split("name=csrf value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a form with a CSRF token")
        .to_string()
}

/// The session cookie of a token sign-in, by plain HTTP.
fn token_cookie(server: &Server, token: &str) -> String {
    let page = support::http(&server.base, "GET", "/signin", "", &[]);
    let pre = page
        .cookie("jit_console_pre")
        .expect("a sign-in form cookie");
    let pre = pre.split(';').next().unwrap().to_string();
    let csrf = csrf_of(&page.body);
    let r = form_post(
        server,
        "/signin",
        &format!("csrf={csrf}&token={token}"),
        &pre,
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let c = r.cookie("jit_console").expect("a session cookie");
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Strict"),
        "{c}"
    );
    c.split(';').next().unwrap().to_string()
}

fn form_post(server: &Server, path: &str, body: &str, cookie: &str) -> Resp {
    use std::io::{Read as _, Write as _};
    let host = server.base.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncookie: {cookie}\r\n\
         content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut cookies = Vec::new();
    let mut headers = std::collections::HashMap::new();
    for (k, v) in head.lines().skip(1).filter_map(|l| l.split_once(':')) {
        if k.eq_ignore_ascii_case("set-cookie") {
            cookies.push(v.trim().to_string());
        } else {
            headers.insert(k.to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Resp {
        status,
        headers,
        cookies,
        body: rest.to_string(),
    }
}

#[test]
fn a_read_token_sees_no_sync_controls_and_a_sync_without_the_csrf_token_is_refused() {
    let sim = start_sim();
    let app = console_app(&sim);
    let server = Server::start(app.path());
    let reader = token_cookie(&server, READ_TOKEN);
    let page = support::http(&server.base, "GET", "/", "", &[("cookie", &reader)]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("read-only") && !page.body.contains("Sync now"));
    let csrf = csrf_of(&page.body);
    let r = form_post(
        &server,
        &format!("/orgs/{ORG}/sync"),
        &format!("csrf={csrf}&mode=sync"),
        &reader,
    );
    assert_eq!(r.status, 403, "a reader cannot sync: {}", r.body);

    let admin = token_cookie(&server, ADMIN_TOKEN);
    let r = form_post(&server, &format!("/orgs/{ORG}/sync"), "mode=sync", &admin);
    assert_eq!(r.status, 403, "no CSRF token: {}", r.body);
    let r = form_post(
        &server,
        &format!("/orgs/{ORG}/sync"),
        &format!("csrf={csrf}&mode=sync"),
        &admin,
    );
    assert_eq!(r.status, 403, "another session's CSRF token: {}", r.body);
    let runs = server.get_api(&format!("/api/v1/corps/{ORG}/runs")).json();
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        1,
        "only the first sync ran"
    );

    // No page shows a token, and pages are never cached or framed.
    let overview = support::http(&server.base, "GET", "/", "", &[("cookie", &admin)]);
    assert!(!overview.body.contains(ADMIN_TOKEN) && !overview.body.contains(READ_TOKEN));
    assert_eq!(
        overview.headers.get("x-frame-options").map(String::as_str),
        Some("DENY")
    );
    // Without a session: the sign-in page.
    let anon = support::http(&server.base, "GET", &format!("/orgs/{ORG}"), "", &[]);
    assert_eq!((anon.status, anon.location()), (303, "/signin".to_string()));
}

#[test]
fn console_requests_are_logged_and_counted_like_api_requests_without_their_cookies_or_csrf_tokens()
{
    let sim = start_sim();
    let app = console_app(&sim);
    let server = Server::start(app.path());
    let admin = token_cookie(&server, ADMIN_TOKEN);
    let session = admin.split_once('=').unwrap().1.to_string();
    let page = support::http(
        &server.base,
        "GET",
        &format!("/orgs/{ORG}/runs"),
        "",
        &[("cookie", &admin)],
    );
    assert_eq!(page.status, 200);
    assert!(
        page.headers.contains_key("x-request-id"),
        "{:?}",
        page.headers
    );
    let csrf = csrf_of(&page.body);
    // A refused POST carries the session cookie and a CSRF token.
    let r = form_post(
        &server,
        &format!("/orgs/{ORG}/sync"),
        &format!("csrf={csrf}x&mode=sync"),
        &admin,
    );
    assert_eq!(r.status, 403, "{}", r.body);

    let metrics = server.get_api("/metrics").body;
    for counted in [
        "jit_http_requests_total{route=\"/orgs/{org}/runs\",method=\"GET\",status=\"200\"} 1",
        "jit_http_requests_total{route=\"/orgs/{org}/sync\",method=\"POST\",status=\"403\"} 1",
        "jit_http_requests_total{route=\"/signin\",method=\"POST\",status=\"303\"} 1",
    ] {
        assert!(metrics.contains(counted), "{counted} in:\n{metrics}");
    }
    let log = server.stderr.lock().unwrap().clone();
    let logged = log
        .lines()
        .find(|l| l.contains(&format!("/orgs/{ORG}/sync")) && l.contains("403"));
    assert!(logged.is_some(), "the refused POST is logged:\n{log}");
    for secret in [session.as_str(), csrf.as_str(), ADMIN_TOKEN] {
        assert!(!log.contains(secret), "{secret:?} logged:\n{log}");
    }
}

#[test]
fn names_with_markup_are_shown_as_text() {
    let sim = start_sim();
    let truth = sim.handle.wecom_truth();
    let id = truth.members.keys().next().unwrap().clone();
    rename(&sim, &id, "<img src=x onerror=alert(1)>");
    let app = console_app(&sim);
    let server = Server::start(app.path());
    let admin = token_cookie(&server, ADMIN_TOKEN);
    let r = support::http(
        &server.base,
        "GET",
        &format!("/orgs/{ORG}/search?q={id}"),
        "",
        &[("cookie", &admin)],
    );
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("<img src=x"));
}

#[test]
fn a_dry_run_records_its_plan_as_a_run_and_changes_nothing() {
    let sim = start_sim();
    let app = console_app(&sim);
    let server = Server::start(app.path());
    let truth = sim.handle.wecom_truth();
    let id = truth.members.keys().next().unwrap().clone();
    let before = truth.members[&id].name.clone();
    rename(&sim, &id, "试运行 改名");
    let admin = token_cookie(&server, ADMIN_TOKEN);
    let page = support::http(&server.base, "GET", "/", "", &[("cookie", &admin)]);
    let csrf = csrf_of(&page.body);
    let r = form_post(
        &server,
        &format!("/orgs/{ORG}/sync"),
        &format!("csrf={csrf}&mode=dry"),
        &admin,
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let run_page = r.location();
    let deadline = Instant::now() + Duration::from_secs(20);
    let run = loop {
        let runs = server.get_api(&format!("/api/v1/corps/{ORG}/runs")).json();
        if runs["runs"][0]["outcome"] != "running" {
            break runs["runs"][0].clone();
        }
        assert!(Instant::now() < deadline, "the dry run did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(run["outcome"], "dry_run");
    assert!(
        run_page.ends_with(&format!("/runs/{}", run["runId"])),
        "{run_page}"
    );
    // The run keeps the platform calls it made, and both the history and
    // the run's page show them with its throttling.
    let calls = run["calls"]["calls"].as_u64().expect("the run's calls");
    assert!(calls > 0, "{run}");
    let throttled = run["calls"]["throttled"].as_u64().expect("throttled");
    let shown_calls = format!("{calls} calls, {throttled} throttled");
    let history = support::http(
        &server.base,
        "GET",
        &format!("/orgs/{ORG}/runs"),
        "",
        &[("cookie", &admin)],
    );
    assert!(history.body.contains(&shown_calls), "{}", history.body);
    let whole = support::http(&server.base, "GET", &run_page, "", &[("cookie", &admin)]);
    assert!(
        whole
            .body
            .contains(&format!("id=\"run-calls\">{shown_calls}")),
        "{}",
        whole.body
    );
    // The run's page lists the planned update; the member keeps the old name.
    let shown = support::http(
        &server.base,
        "GET",
        &format!("{run_page}?kind=updated"),
        "",
        &[("cookie", &admin)],
    );
    assert!(
        shown.body.contains(&format!("<code>{id}</code>")),
        "{}",
        shown.body
    );
    let found = support::http(
        &server.base,
        "GET",
        &format!("/orgs/{ORG}/search?q={id}"),
        "",
        &[("cookie", &admin)],
    );
    assert!(found.body.contains(&before), "{}", found.body);
}

#[test]
fn the_tasks_page_and_the_overview_show_the_scheduled_sync() {
    let sim = start_sim();
    let app = console_app(&sim);
    let server = Server::start(app.path());
    let reader = token_cookie(&server, READ_TOKEN);
    let tasks = support::http(&server.base, "GET", "/tasks", "", &[("cookie", &reader)]);
    assert_eq!(tasks.status, 200);
    for text in [
        "年度同步",
        "tasks.YearlySync",
        "cron 0 2 1 1 *",
        "corps.Acme.syncCorp",
        "never",
    ] {
        assert!(tasks.body.contains(text), "{text} missing: {}", tasks.body);
    }
    let overview = support::http(&server.base, "GET", "/", "", &[("cookie", &reader)]);
    assert!(
        overview.body.contains("Next scheduled sync")
            && overview.body.contains("tasks.YearlySync.syncCorp"),
        "{}",
        overview.body
    );
}

/// Logs `member` in through the login element by plain HTTP, as a browser
/// would (the simulator's login page picks the person); the answer of
/// `/signin/done`.
fn login_as(server: &Server, sim: &Sim, member: &str) -> Resp {
    let first = |c: &String| c.split(';').next().unwrap().to_string();
    let start = support::http(
        &server.base,
        "GET",
        "/auth/auths.AcmeLogin/start?redirect=/signin/done",
        "",
        &[],
    );
    assert_eq!(start.status, 302, "{}", start.body);
    let browser = first(start.cookie("jit_login_browser").unwrap());
    let at_sim = start.location();
    let query = at_sim.split('#').next().unwrap();
    let sim_base = sim.handle.base_url();
    let path = query.strip_prefix(sim_base.trim_end_matches('/')).unwrap();
    let back = support::http(
        &sim_base,
        "GET",
        &format!("{path}&sim_userid={member}"),
        "",
        &[],
    );
    assert_eq!(back.status, 302, "{}", back.body);
    let callback = back.location();
    let callback = callback.strip_prefix(&server.base).unwrap();
    let done = support::http(&server.base, "GET", callback, "", &[("cookie", &browser)]);
    assert_eq!(done.status, 302, "{}", done.body);
    let session = first(done.cookie("jit_session").unwrap());
    support::http(
        &server.base,
        "GET",
        "/signin/done",
        "",
        &[("cookie", &session)],
    )
}

#[test]
fn a_member_of_a_reader_role_may_look_and_other_members_are_refused() {
    let sim = start_sim();
    let app = console_app(&sim);
    let server = Server::start(app.path());
    let truth = sim.handle.wecom_truth();
    let admins: Vec<String> = truth
        .admins
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| a.member_id.clone())
        .collect();
    let role = truth
        .roles
        .values()
        .find(|r| r.name == "技术委员会")
        .expect("the simulator's tag");
    let active = |id: &&String| {
        truth.members[id.as_str()].status == jit_org::MemberStatus::Active && !admins.contains(id)
    };
    let reader = role.members.iter().find(active).expect("an active holder");
    let outsider = truth
        .members
        .keys()
        .filter(active)
        .find(|id| !role.members.contains(id))
        .unwrap();

    let done = login_as(&server, &sim, reader);
    assert_eq!(done.status, 200, "{}", done.body);
    let cookie = done.cookie("jit_console").expect("a console session");
    assert!(
        cookie.contains("SameSite=Strict") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_string();
    let page = support::http(&server.base, "GET", "/", "", &[("cookie", &cookie)]);
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("read-only") && !page.body.contains("Sync now"),
        "{}",
        page.body
    );

    let refused = login_as(&server, &sim, outsider);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("No access to the console"));
    assert!(refused.cookie("jit_console").is_none());
}
