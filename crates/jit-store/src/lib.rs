//! The local organization store: departments, members, roles, admins,
//! signatures, the local user pool with its per-platform auth bindings, and
//! the record of every sync run.
//!
//! Two backends sit behind one async trait, [`CorpStore`]. Each declares the
//! URL schemes it opens (a location with none of them is a SQLite path) and
//! supplies only primitives over one open transaction; every write
//! operation (the apply sequence and all its checks, role and admin
//! assignment, offlining, registration) is written once on top of them:
//! - **SQLite** (bundled, the default, no setup): one connection in WAL mode,
//!   `synchronous=NORMAL`, foreign keys on, driven from
//!   `tokio::task::spawn_blocking`. A large apply's commit does not fold
//!   its WAL into the file before returning: a `PASSIVE` checkpoint on a
//!   thread and connection of its own does, and closing the store waits
//!   for it.
//! - **PostgreSQL** for shared deployments: up to 4 `tokio-postgres`
//!   sessions per store, opened when needed; one the server ended (a
//!   restart, a failover) is replaced, and an operation that found its
//!   session gone before its transaction began runs on a new one, so the
//!   store works again without restarting the process (a transaction cut
//!   midway fails as [`StoreErrorKind::ConnectionLost`] and keeps nothing);
//!   new rows go in with binary `COPY`, updates as batched multi-row
//!   `INSERT ... SELECT FROM UNNEST(array params) ON CONFLICT DO UPDATE`,
//!   all inside one transaction. TLS over rustls as libpq's `sslmode`
//!   asks (`disable`, `allow`, `prefer` — the default —, `require`,
//!   `verify-ca`, `verify-full`), trusting the PEM file `sslrootcert` names
//!   or else the compiled-in Mozilla roots; `require` with `sslrootcert`
//!   verifies the chain, as in libpq.
//!
//! Applying a plan is all-or-nothing on both: a failure (or a killed
//! process) leaves the store exactly as before. Measured on the 2-core
//! reference machine (`jit-bench apply`, release build), a plan creating
//! 100,000 members with their memberships, users and bindings applies in
//! 1.1–1.3 s on SQLite and 1.6–1.9 s on PostgreSQL (targets: 3 s and 8 s).
//!
//! Both share one logical schema and one list of migrations (embedded in the
//! binary, applied on open, recorded in `jit_schema_version`). A database
//! whose schema is newer than this binary is refused with
//! [`StoreError::SchemaTooNew`] before anything is written. Replicas opening
//! one fresh database together migrate it once: PostgreSQL serializes on an
//! advisory lock keyed by the schema name (a stable FNV-1a hash), SQLite on
//! its write lock; each re-reads the version after taking it.
//!
//! Runs are recorded from their start ([`CorpStore::begin_run`], outcome
//! `running`) and finished by [`CorpStore::apply_plan`] or
//! [`CorpStore::record_run`]. One sync per org at a time, across processes
//! and hosts: [`CorpStore::lock_sync`] returns a [`SyncLock`] held until it
//! is dropped or its process dies; taking it fails runs left `running`.
//!
//! Role holdings and admins have an [`Origin`]: a sync writes and sees only
//! `upstream` rows, `setUserRole` / `setAdmin` only `local` ones, readers
//! return both.
//!
//! Where the data lives is decided by [`open_for_app`]: the `DATABASE_URL`
//! environment variable, else the app settings' URL, else
//! `<app>/.jit/org.db` (created on demand, with a `.gitignore` of `*`).
//!
//! Identity binding (inside [`CorpStore::apply_plan`] and
//! [`CorpStore::bulk_register`]):
//! - DingTalk members bind by unionId: one person in two DingTalk orgs is one
//!   local user with two memberships. A DingTalk member whose unionId is not
//!   known falls back to a (corpId, memberId) binding; when the unionId shows
//!   up later it is written onto that binding (or reported as a conflict if
//!   the unionId already belongs to another local user).
//! - WeCom and plugin providers bind by (provider, corpId, memberId).
//! - Offlining a member keeps its binding, so reactivation reuses the same
//!   local user. Conflicting identities are reported in
//!   [`ApplyReport::conflicts`] and never merged: the member keeps the
//!   binding it had (a new member stays unbound).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), jit_store::StoreError> {
//! use jit_org::{CorpRecord, Provider, SyncPlan, Dept};
//! use jit_store::{RunKind, RunOutcome, SyncRun};
//!
//! # let app = tempfile::tempdir().unwrap();
//! # std::env::remove_var("DATABASE_URL");
//! // <app>/.jit/org.db unless DATABASE_URL or the app settings say otherwise.
//! let store = jit_store::open_for_app(app.path(), None).await?;
//! let corp = CorpRecord {
//!     full_name: "corps.Acme".into(),
//!     title: "Acme".into(),
//!     corp_type: "corps.QywxInnerType".into(),
//!     provider: Provider::Wecom,
//!     corp_id: "ww123".into(),
//! };
//! let mut plan = SyncPlan::default();
//! plan.upsert_depts.push(Dept::new(1, None, "Acme"));
//! let run = SyncRun {
//!     run_id: 0,
//!     corp: corp.full_name.clone(),
//!     started_at: 0,
//!     finished_at: 0,
//!     outcome: RunOutcome::Applied,
//!     counts: Default::default(),
//!     error: None,
//!     notes: vec![],
//!     kind: RunKind::Sync,
//!     missed_by_events: None,
//!     calls: None,
//! };
//! let report = store.apply_plan(&corp, &plan, &run).await?;
//! assert_eq!(report.rows_written, 1);
//! let view = store.local_corp_data("corps.Acme", false).await?;
//! assert_eq!(view["deptList"][0]["path"], "/1/");
//! # Ok(()) }
//! ```

mod api;
mod firings;
mod inbox;
mod lock;
mod logic;
mod logins;
mod postgres;
pub mod reads;
mod schema;
#[cfg(feature = "scratch")]
pub mod scratch;
mod sqlite;
mod sqlite_bind;
pub mod synthetic;

pub use api::*;
pub use firings::{Claim, Firing, FiringClaim, FiringEnd, FiringState};
pub use inbox::{
    InboxClaim, InboxEnd, InboxOutcome, InboxPut, InboxRow, InboxState, InboxSummary, NewInboxEvent,
};
pub use lock::SyncLock;
pub use logins::{LoginKey, LoginState};

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Name of the environment variable that selects the database for every app.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";

/// The highest schema version this binary knows (and migrates to).
pub fn schema_version() -> i64 {
    schema::latest_version()
}

/// Opens (and migrates) a store.
///
/// `location` is a `postgres://` / `postgresql://` URL (PostgreSQL, default
/// search path), a `sqlite://path` URL, or a plain file path (SQLite; the
/// file is created if missing, its folder must exist). Each backend declares
/// the URL schemes it opens; a location with none of them is a SQLite path.
pub async fn open(location: &str) -> StoreResult<Arc<dyn CorpStore>> {
    (driver_for(location).open)(location.to_string(), None).await
}

/// Opens the store of an app.
///
/// Precedence: the `DATABASE_URL` environment variable (when set and not
/// empty), then `settings_url` (the app settings' database URL; a relative
/// SQLite path there is relative to `app_root`), then
/// `<app_root>/.jit/org.db`. The `.jit/` folder is created on demand together
/// with a `.jit/.gitignore` containing `*`, so the database is never committed.
pub async fn open_for_app(
    app_root: &Path,
    settings_url: Option<&str>,
) -> StoreResult<Arc<dyn CorpStore>> {
    if let Ok(url) = std::env::var(DATABASE_URL_ENV) {
        if !url.trim().is_empty() {
            return open(url.trim()).await;
        }
    }
    if let Some(url) = settings_url.map(str::trim).filter(|u| !u.is_empty()) {
        return (driver_for(url).open)(url.to_string(), Some(app_root.to_path_buf())).await;
    }
    let dir = app_root.join(".jit");
    let open_err = |message: &str, e: std::io::Error| StoreError::Open {
        location: dir.display().to_string(),
        message: message.to_string(),
        cause: Some(e.into()),
    };
    std::fs::create_dir_all(&dir).map_err(|e| open_err("cannot create folder", e))?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "*\n").map_err(|e| open_err("cannot write .gitignore", e))?;
    }
    Ok(Arc::new(
        sqlite::SqliteStore::open(dir.join("org.db")).await?,
    ))
}

/// Opens a PostgreSQL store whose tables live in `schema` (created if
/// missing). Meant for tests and benchmarks that need an isolated, throwaway
/// namespace; `schema` must be a plain identifier (`[A-Za-z_][A-Za-z0-9_]*`).
pub async fn open_postgres_in_schema(url: &str, schema: &str) -> StoreResult<Arc<dyn CorpStore>> {
    Ok(Arc::new(postgres::PgStore::open(url, Some(schema)).await?))
}

/// Drops a schema made by [`open_postgres_in_schema`] with everything in it.
pub async fn drop_postgres_schema(url: &str, schema: &str) -> StoreResult<()> {
    postgres::drop_schema(url, schema).await
}

/// `location` with any password removed, as shown in messages.
///
/// ```
/// assert_eq!(
///     jit_store::redact_location("postgres://app:s3cret@db:5432/org"),
///     "postgres://app@db:5432/org"
/// );
/// ```
pub fn redact_location(location: &str) -> String {
    let Some(scheme_end) = location.find("://") else {
        return redact_key_values(location);
    };
    let (scheme, rest) = location.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{user}{}", &authority[at..])
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| !kv.to_ascii_lowercase().starts_with("password="))
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_string(),
    };
    format!("{scheme}{authority}{tail}")
}

/// `host=... password=...` connection strings: drop the password pair.
fn redact_key_values(s: &str) -> String {
    if !s.contains("password") {
        return s.to_string();
    }
    s.split_whitespace()
        .filter(|kv| !kv.to_ascii_lowercase().starts_with("password="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An opened store, on its way.
pub(crate) type OpenFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = StoreResult<Arc<dyn CorpStore>>> + Send>>;

/// What a backend declares about itself (as sqlx's `AnyDriver` does): the
/// URL schemes it opens, and how it opens them. Adding a backend is adding
/// one of these to [`DRIVERS`].
pub(crate) struct Driver {
    /// Schemes (`<scheme>:...`, compared without case) this backend opens.
    pub url_schemes: &'static [&'static str],
    /// Opens the location as given (scheme included); a relative path in
    /// it is relative to the folder given, else to the working directory.
    pub open: fn(location: String, base: Option<PathBuf>) -> OpenFuture,
}

/// Every backend. Locations with none of their schemes are SQLite paths.
const DRIVERS: &[&Driver] = &[&postgres::DRIVER, &sqlite::DRIVER];

/// The backend that opens `location`.
fn driver_for(location: &str) -> &'static Driver {
    let scheme = location
        .split_once(':')
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    DRIVERS
        .iter()
        .copied()
        .find(|d| d.url_schemes.contains(&scheme.as_str()))
        .unwrap_or(&sqlite::DRIVER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_location("postgresql://u:p%40ss@h/db?sslmode=disable&password=x"),
            "postgresql://u@h/db?sslmode=disable"
        );
        assert_eq!(
            redact_location("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(
            redact_location("host=db user=u password=p"),
            "host=db user=u"
        );
    }

    #[test]
    fn locations_select_the_backend() {
        let backend = |l: &str| driver_for(l).url_schemes[0];
        assert_eq!(backend("postgres://h/db"), "postgres");
        assert_eq!(backend("POSTGRESQL://h/db"), "postgres");
        assert_eq!(backend("sqlite:///tmp/x.db"), "sqlite");
        assert_eq!(backend("data/org.db"), "sqlite");
        assert_eq!(
            sqlite::file_of("sqlite:///tmp/x.db", None),
            PathBuf::from("/tmp/x.db")
        );
        assert_eq!(
            sqlite::file_of("sqlite:data/org.db", Some(Path::new("/app"))),
            PathBuf::from("/app/data/org.db")
        );
        assert_eq!(
            sqlite::file_of("data/org.db", None),
            PathBuf::from("data/org.db")
        );
    }
}
