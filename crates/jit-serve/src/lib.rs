//! `jit serve`: the long-running host of an app.
//!
//! It loads the app, opens its org store (`DATABASE_URL`, the app's
//! `settings.databaseUrl`, or `<app>/.jit/org.db`), and serves the element
//! API under `/api/v1` — elements, method calls, org sync runs with live
//! progress as Server-Sent Events — with an OpenAPI document generated from
//! the handlers (`/api/v1/openapi.json`), probes (`/healthz`, `/readyz`)
//! and Prometheus metrics (`/metrics`). Requests carry bearer tokens from
//! `settings.apiTokens`; without tokens it listens on loopback only. Org
//! elements that have never synced run `initCorp` in the background at
//! start. SIGTERM/SIGINT stop it gracefully.
//!
//! The host keeps no state another replica would need: runs, orgs and
//! members are in the store; only live event feeds and counters are kept
//! in memory, and they describe this process.
//!
//! Embedding the router in a test or another host:
//!
//! ```
//! use jit_core::{App, LoadOptions};
//! use jit_serve::{router, HostState, Tokens};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("app.json"), r#"{"appId": "demo"}"#).unwrap();
//! let app = App::load(dir.path(), LoadOptions::default()).unwrap();
//! let store = jit_store::open(dir.path().join("org.db").to_str().unwrap()).await.unwrap();
//! let state = HostState::new(app, store, Tokens::default());
//! let service: axum::Router = router(state);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let addr = listener.local_addr().unwrap();
//! tokio::spawn(async move { axum::serve(listener, service).await });
//! // GET /healthz answers {"status": "ok"}.
//! let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
//! let mut answer = String::new();
//! conn.read_to_string(&mut answer).await.unwrap();
//! assert!(answer.starts_with("HTTP/1.1 200") && answer.contains(r#""status":"ok""#));
//! # }
//! ```

#![warn(missing_docs)]

mod auth;
mod console;
mod error;
mod metrics;
mod routes;
mod runs;
mod state;
mod tasks;

pub use auth::{Scope, Tokens};
pub use error::{ApiError, ErrorBody, ErrorDetail, ServeError};
pub use metrics::Metrics;
pub use routes::{api_routes, router, router_with};
pub use runs::Jobs;
pub use state::HostState;
pub use tasks::routes as task_routes;

use jit_core::{App, LoadOptions, Severity, TypeRegistry};
use serde_json::{json, Value};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What `jit serve` was asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The app folder.
    pub app_dir: PathBuf,
    /// Address to listen on, e.g. `127.0.0.1:8080` (`:0` picks a free port).
    pub listen: String,
    /// How long running calls and syncs may take to finish after SIGTERM.
    pub grace: Duration,
    /// Log line format.
    pub log_format: LogFormat,
}

/// Runs the host until SIGTERM or SIGINT: sets up logging (`RUST_LOG`,
/// default `info`), builds the async runtime and calls [`run`].
pub fn serve(opts: ServeOptions) -> Result<(), ServeError> {
    init_logging(opts.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| ServeError::Io {
            what: "starting the async runtime".into(),
            source,
        })?;
    let result = rt.block_on(run(opts, stop_signal()));
    // Past the grace period nothing more is waited for, not even a plugin
    // call still running on the blocking pool.
    rt.shutdown_timeout(Duration::from_millis(100));
    result
}

/// Installs the `tracing` subscriber writing to stderr (once per process).
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Resolves on SIGTERM or SIGINT.
pub async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// The built-in Types on one shared store, plus plugins found in the app.
fn registry(store: Arc<dyn jit_store::CorpStore>) -> TypeRegistry {
    let mut registry = TypeRegistry::new();
    jit_corps::register_builtins_with_store(&mut registry, store.clone());
    jit_tasks::register_builtins(&mut registry);
    jit_login::register_builtins(&mut registry);
    let plugins = jit_plugin_host::PluginProvider::new(registry.clone())
        .with_corp_services(Arc::new(jit_corps::EngineCorpServices::with_store(store)));
    registry.add_provider(Arc::new(plugins));
    registry
}

fn read_manifest(app_dir: &std::path::Path) -> Result<Value, ServeError> {
    let path = app_dir.join("app.json");
    if !path.is_file() {
        return Ok(Value::Null);
    }
    let app_err = |message: String| ServeError::App {
        app: app_dir.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| app_err(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| app_err(format!("{} is not JSON: {e}", path.display())))
}

/// Serves until `stop` resolves, then stops accepting, lets running
/// requests, calls and syncs finish for up to `opts.grace`, and returns.
pub async fn run(
    opts: ServeOptions,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // Checked before the store opens: opening it would create `.jit/` and
    // so the folder itself.
    if !opts.app_dir.is_dir() {
        return Err(jit_core::LoadError::NoSuchApp(opts.app_dir.clone()).into());
    }
    let manifest = read_manifest(&opts.app_dir)?;
    let tokens = Tokens::from_manifest(&manifest).map_err(|message| ServeError::App {
        app: opts.app_dir.display().to_string(),
        message,
    })?;
    let listen_err = |message: String| ServeError::Listen {
        listen: opts.listen.clone(),
        message,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(opts.listen.as_str())
        .await
        .map_err(|e| {
            listen_err(format!(
                "not an address to listen on ({e}); use HOST:PORT, e.g. 127.0.0.1:8080"
            ))
        })?
        .collect();
    let addr = *addrs
        .first()
        .ok_or_else(|| listen_err("the name resolves to no address".into()))?;
    let loopback = addrs.iter().all(|a| a.ip().is_loopback());
    if tokens.is_empty() && !loopback {
        return Err(listen_err(
            "no API tokens are configured (settings.apiTokens in app.json), and without tokens \
             jit serve listens only on loopback (127.0.0.1 or ::1); add tokens to serve on \
             another address"
                .into(),
        ));
    }

    let database_url = manifest
        .pointer("/settings/databaseUrl")
        .and_then(Value::as_str);
    let store = jit_store::open_for_app(&opts.app_dir, database_url).await?;
    let app_dir = opts.app_dir.clone();
    let reg = registry(store.clone());
    let app = tokio::task::spawn_blocking(move || {
        App::load(
            app_dir,
            LoadOptions {
                registry: reg,
                ..LoadOptions::default()
            },
        )
    })
    .await
    .map_err(|e| ServeError::App {
        app: opts.app_dir.display().to_string(),
        message: format!("loading panicked: {e}"),
    })??;
    for d in app
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error)
    {
        tracing::warn!(diagnostic = %d, "app problem (see `jit check`)");
    }
    let state = HostState::new(app, store.clone(), tokens);
    // Task firings are claimed and leased on a connection of their own, so
    // lease renewals never wait behind a long apply on the main one.
    let task_store = jit_store::open_for_app(&opts.app_dir, database_url).await?;
    let scheduler = jit_tasks::Scheduler::new(
        state.app.clone(),
        task_store,
        jit_tasks::SchedulerOptions::default(),
    );
    let task_count = scheduler.tasks().len();
    // Event receivers and the inbox worker (crate jit-events), for the orgs
    // whose config has `events`.
    let events = jit_events::Events::new(
        &state.app,
        store.clone(),
        &state.orgs,
        jit_events::options_from_manifest(&manifest),
    )
    .map_err(|e| ServeError::App {
        app: opts.app_dir.display().to_string(),
        message: e.to_string(),
    })?;
    let _ = state.events.set(events.clone());

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Io {
            what: format!("listening on {addr}"),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServeError::Io {
        what: "reading the listening address".into(),
        source,
    })?;
    let open = state.tokens.is_empty();
    println!(
        "{}",
        json!({
            "listen": format!("http://{local}"),
            "app": state.app_id,
            "auth": if open { "none" } else { "bearer" },
            "orgs": state.orgs,
            "tasks": task_count,
            "events": events.orgs(),
            "store": store.location(),
            "pid": std::process::id(),
        })
    );
    if open {
        eprintln!(
            "jit serve: no API tokens configured (settings.apiTokens in app.json): listening on \
             loopback only, requests need no token (local development)"
        );
    }
    tracing::info!(listen = %local, app = %state.app_id, orgs = state.orgs.len(), "serving");

    tokio::spawn(runs::auto_init(state.clone()));
    // A job: on shutdown the host waits (up to the grace) for the firings it runs.
    state.jobs.spawn(scheduler.run(state.shutdown.clone()));
    state.jobs.spawn(events.clone().run(state.shutdown.clone()));

    let stopping = Arc::new(tokio::sync::Notify::new());
    let signalled = stopping.clone();
    let st = state.clone();
    let extra = tasks::routes()
        .merge(jit_login::http::routes(state.app.clone()))
        .merge(jit_events::http::api_routes(events.clone()));
    // The web console answers at `/` with its own sign-in (crate jit-console).
    let service = router_with(state.clone(), extra)
        .merge(console::routes(state.clone()))
        // The platforms' callbacks: the signature authenticates them, not a token.
        .merge(jit_events::http::callback_routes(events.clone()));
    let server = axum::serve(listener, service).with_graceful_shutdown(async move {
        stop.await;
        tracing::info!(
            "stopping: no new connections; waiting for running requests, calls and syncs"
        );
        st.begin_shutdown();
        signalled.notify_one();
    });
    let mut server = tokio::spawn(async move { server.await });
    let serve_err = |source| ServeError::Io {
        what: "serving".into(),
        source,
    };
    // The server ends on its own only after the stop signal (its graceful
    // shutdown) or on an error; either way the jobs still get their grace.
    let server_done = tokio::select! {
        r = &mut server => {
            r.map_err(|e| serve_err(std::io::Error::other(e)))?.map_err(serve_err)?;
            true
        }
        _ = stopping.notified() => false,
    };
    let drained = tokio::time::timeout(opts.grace, async {
        if !server_done {
            let _ = server.await;
        }
        state.jobs.idle().await;
    })
    .await;
    match drained {
        Ok(()) => tracing::info!("stopped"),
        Err(_) => tracing::warn!(
            still_running = state.jobs.running(),
            grace_secs = opts.grace.as_secs_f64(),
            "stopped at the end of the grace period; runs cut short are marked failed by the next sync of their org"
        ),
    }
    Ok(())
}
