//! The web console of `jit serve`: server-rendered pages for the people who
//! run an org sync — an overview of every org, the org chart (lazy tree with
//! member counts and leaders, search by name, userid or mobile, department
//! pages with members paged, leaders first), people (every membership in
//! every org, bindings, signature, the changes that touched them), sync runs
//! (history, a run's per-object changes filtered by kind and searched),
//! "Sync now" and "Dry run" with live progress over Server-Sent Events, a
//! refused run's would-be-offlined members with "Apply anyway" behind a
//! typed confirmation, and the app's tasks.
//!
//! Every asset is embedded in the binary (`include_str!`); the pages work
//! without JavaScript except for the tree's lazy expansion and live
//! progress, which use a few lines of vanilla JS. Every text shown is
//! HTML-escaped, and no page shows a secret.
//!
//! **Access.** People sign in through the app's login elements
//! (`auths.loginTypes.*`; the org's admins may sync and force, members of a
//! role listed in `settings.console.readerRoles` may look) or with an API
//! token of `settings.apiTokens` (`admin` scope: sync and force; `read` and
//! `call`: look). The session is a cookie (HttpOnly, SameSite=Strict) and
//! every state-changing request carries a CSRF token derived from it. An app
//! with neither tokens nor login elements (which `jit serve` serves on
//! loopback only) opens the console to whoever reaches it, like its API.
//!
//! The console knows its host only through [`ConsoleHost`], so it does not
//! depend on `jit-serve`; `jit serve` implements it and merges [`routes`]
//! into its router at `/`.
//!
//! ```
//! use jit_console::{routes, Access, ConsoleHost};
//! use jit_core::{App, LoadOptions};
//! use std::sync::Arc;
//!
//! /// A host with no tokens, no login elements and no syncs.
//! struct Host {
//!     app: App,
//!     store: Arc<dyn jit_store::CorpStore>,
//! }
//!
//! #[async_trait::async_trait]
//! impl ConsoleHost for Host {
//!     fn app(&self) -> &App { &self.app }
//!     fn store(&self) -> &Arc<dyn jit_store::CorpStore> { &self.store }
//!     fn orgs(&self) -> Vec<String> { Vec::new() }
//!     fn tokens_configured(&self) -> bool { false }
//!     fn token_access(&self, _presented: &str) -> Option<(String, Access)> { None }
//!     fn token_key(&self, _name: &str) -> Option<(Vec<u8>, Access)> { None }
//!     async fn start_sync(&self, org: &str, _dry_run: bool, _force: bool) -> Result<i64, String> {
//!         Err(format!("{org} cannot sync here"))
//!     }
//!     fn run_events(&self, _run: jit_store::SyncRun) -> jit_console::EventStream {
//!         Box::pin(futures_util::stream::empty())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("app.json"), r#"{"appId": "demo"}"#).unwrap();
//! let app = App::load(dir.path(), LoadOptions::default()).unwrap();
//! let store = jit_store::open(dir.path().join("org.db").to_str().unwrap()).await.unwrap();
//! let service: axum::Router = routes(Arc::new(Host { app, store }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let addr = listener.local_addr().unwrap();
//! tokio::spawn(async move { axum::serve(listener, service).await });
//!
//! // Without tokens or login elements the overview answers at once.
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
//! conn.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
//! let mut answer = String::new();
//! conn.read_to_string(&mut answer).await.unwrap();
//! assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
//! assert!(answer.contains("<h1>Overview</h1>"));
//! # }
//! ```

#![warn(missing_docs)]
// A page's early answer (sign in, not found, refused) is the `Response`
// itself, returned through `Err` to the handler, which sends it at once;
// boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

mod auth;
mod html;
mod pages;
mod runs;

use axum::response::sse::Event;
use axum::routing::{get, post};
use axum::Router;
use jit_core::App;
use jit_store::{CorpStore, SyncRun};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;

pub use auth::Access;

/// The live events of a run, as the host's API sends them (`run`, `phase`,
/// `progress`, `note`, then `done`).
pub type EventStream =
    Pin<Box<dyn futures_util::Stream<Item = Result<Event, Infallible>> + Send + 'static>>;

/// What the console needs from the host serving it (`jit serve`).
#[async_trait::async_trait]
pub trait ConsoleHost: Send + Sync + 'static {
    /// The loaded app.
    fn app(&self) -> &App;
    /// The org store.
    fn store(&self) -> &Arc<dyn CorpStore>;
    /// The org elements of the app (instances that answer `syncCorp`).
    fn orgs(&self) -> Vec<String>;
    /// Whether API tokens are configured (`settings.apiTokens`).
    fn tokens_configured(&self) -> bool;
    /// The token's name and what it may do here, if `presented` is one of
    /// the configured tokens (compared in constant time).
    fn token_access(&self, presented: &str) -> Option<(String, Access)>;
    /// The value of the token called `name` (it keys the signatures of the
    /// sessions it opened, so removing or changing the token ends them on
    /// every replica) and what it may do.
    fn token_key(&self, name: &str) -> Option<(Vec<u8>, Access)>;
    /// Starts a sync of `org` in the background; its run id once recorded,
    /// or why it did not start (busy, not a built-in org, ...).
    async fn start_sync(&self, org: &str, dry_run: bool, force: bool) -> Result<i64, String>;
    /// The live events of a stored run (the final `done` at once for a
    /// finished one).
    fn run_events(&self, run: SyncRun) -> EventStream;
}

pub(crate) type Host = Arc<dyn ConsoleHost>;

/// The console's routes, for the host to merge into its router at `/`.
///
/// | route | page |
/// |---|---|
/// | `GET /` | overview of every org |
/// | `GET /signin`, `POST /signin`, `GET /signin/done`, `POST /signout` | sign in and out |
/// | `GET /orgs/{org}` | org chart; `/orgs/{org}/tree/{dept}` is one level of it (HTML fragment) |
/// | `GET /orgs/{org}/search?q=` | members and departments found |
/// | `GET /orgs/{org}/depts/{dept}?page=` | a department and a page of its members |
/// | `GET /people/{user}` | a person |
/// | `GET /orgs/{org}/runs`, `/orgs/{org}/runs/{id}?kind=&q=&page=` | runs, one run |
/// | `GET /orgs/{org}/runs/{id}/events` | a run's live progress (SSE) |
/// | `POST /orgs/{org}/sync` | sync now, dry run, apply anyway |
/// | `GET /tasks` | task elements |
/// | `GET /console/{asset}` | the embedded stylesheet and script |
pub fn routes(host: Arc<dyn ConsoleHost>) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/signin", get(auth::signin_page).post(auth::signin))
        .route("/signin/done", get(auth::signin_done))
        .route("/signout", post(auth::signout))
        .route("/orgs/{org}", get(pages::org_chart))
        .route("/orgs/{org}/tree/{dept}", get(pages::tree_level))
        .route("/orgs/{org}/search", get(pages::search))
        .route("/orgs/{org}/depts/{dept}", get(pages::dept_page))
        .route("/people/{user}", get(pages::person))
        .route("/orgs/{org}/runs", get(runs::run_list))
        .route("/orgs/{org}/runs/{id}", get(runs::run_page))
        .route("/orgs/{org}/runs/{id}/events", get(runs::run_events))
        .route("/orgs/{org}/sync", post(runs::start))
        .route("/tasks", get(pages::tasks))
        .route("/console/{asset}", get(html::asset))
        .with_state(host)
}
