//! PostgreSQL over TLS: `sslmode` and `sslrootcert` as libpq reads them.
//!
//! The test server offers TLS with a self-signed certificate for
//! `localhost` (Debian's "snakeoil" one; `JIT_TEST_PG_ROOT_CERT` names
//! another). Whether a session is encrypted is read from the server's own
//! `pg_stat_ssl`, for the session the store opened (found by a unique
//! `application_name`). (SQLite has no connection to encrypt.)

use crate::common;

use common::*;
use jit_store::{CorpStore, StoreResult};
use std::sync::Arc;

/// The certificate the test server presents, used as its own root.
fn server_root() -> String {
    std::env::var("JIT_TEST_PG_ROOT_CERT")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/etc/ssl/certs/ssl-cert-snakeoil.pem".to_string())
}

/// A root that signed nothing the server has.
fn unrelated_root() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/unrelated-root.pem"
    )
    .to_string()
}

/// `url` with more query parameters.
fn with_params(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// A store opened with `params` added to the test URL, in a fresh schema
/// (dropped before returning), and whether its session is encrypted; or the
/// error opening it.
async fn open_with(url: &str, params: &str) -> StoreResult<bool> {
    let schema = fresh_schema();
    let app = format!("jit_{schema}");
    let opened = jit_store::open_postgres_in_schema(
        &with_params(url, &format!("{params}&application_name={app}")),
        &schema,
    )
    .await;
    let encrypted = match opened {
        Ok(store) => Ok(session_encrypted(&store, &app).await),
        Err(e) => Err(e),
    };
    jit_store::drop_postgres_schema(&common::pg_url(), &schema)
        .await
        .unwrap();
    encrypted
}

/// Whether the store's session (named `app`) is encrypted, as the server says.
async fn session_encrypted(store: &Arc<dyn CorpStore>, app: &str) -> bool {
    // A round trip first: the store works on this session.
    store.user_count().await.unwrap();
    let (admin, conn) = tokio_postgres::connect(&common::pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = admin
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty(), "no session named {app}");
    rows.iter().all(|r| r.get::<_, bool>(0))
}

#[tokio::test]
async fn sslmode_require_encrypts_the_session() {
    let Some(url) = pg_available().await else {
        return;
    };
    // With NoTls the driver refused `require` ("TLS was required but not supported").
    let encrypted = open_with(&url, "sslmode=require").await.unwrap();
    assert!(encrypted, "sslmode=require gave a plain session");
}

#[tokio::test]
async fn without_sslmode_tls_is_preferred_like_libpq() {
    let Some(url) = pg_available().await else {
        return;
    };
    // The default is `prefer`: the server offers TLS, so credentials and
    // data no longer go in clear.
    let encrypted = open_with(&url, "connect_timeout=10").await.unwrap();
    assert!(encrypted, "the default mode did not encrypt");
}

#[tokio::test]
async fn sslmode_disable_stays_plain() {
    let Some(url) = pg_available().await else {
        return;
    };
    let encrypted = open_with(&url, "sslmode=disable").await.unwrap();
    assert!(!encrypted, "sslmode=disable gave an encrypted session");
}

#[tokio::test]
async fn sslmode_allow_stays_plain_when_the_server_accepts_plain() {
    let Some(url) = pg_available().await else {
        return;
    };
    // libpq's `allow`: plain first, TLS only if the server refuses plain.
    let encrypted = open_with(&url, "sslmode=allow").await.unwrap();
    assert!(
        !encrypted,
        "sslmode=allow encrypted a session the server took plain"
    );
}

#[tokio::test]
async fn verify_ca_accepts_the_servers_root_whatever_the_host_name() {
    let Some(url) = pg_available().await else {
        return;
    };
    let params = format!("sslmode=verify-ca&sslrootcert={}", server_root());
    assert!(open_with(&url, &params).await.unwrap());
    // libpq: `require` with a root file checks the chain too.
    let params = format!("sslmode=require&sslrootcert={}", unrelated_root());
    let err = open_with(&url, &params).await.unwrap_err().to_string();
    assert!(err.contains("invalid peer certificate"), "{err}");
}

#[tokio::test]
async fn verify_ca_with_a_root_that_did_not_sign_the_certificate_is_refused() {
    let Some(url) = pg_available().await else {
        return;
    };
    let params = format!("sslmode=verify-ca&sslrootcert={}", unrelated_root());
    let err = open_with(&url, &params).await.unwrap_err().to_string();
    assert!(err.contains("sslmode=verify-ca"), "{err}");
    assert!(
        err.contains("invalid peer certificate") && err.contains("UnknownIssuer"),
        "{err}"
    );
}

#[tokio::test]
async fn verify_full_refuses_a_host_the_certificate_does_not_name() {
    let Some(url) = pg_available().await else {
        return;
    };
    if !url.contains("@127.0.0.1") {
        eprintln!("SKIPPED: the test URL does not connect by 127.0.0.1");
        return;
    }
    let params = format!("sslmode=verify-full&sslrootcert={}", server_root());
    let err = open_with(&url, &params).await.unwrap_err().to_string();
    // The certificate is for `localhost`; the store connected to 127.0.0.1.
    assert!(err.contains("sslmode=verify-full"), "{err}");
    assert!(
        err.contains("not valid for name")
            && err.contains("127.0.0.1")
            && err.contains("localhost"),
        "{err}"
    );
}

#[tokio::test]
async fn verify_full_accepts_the_host_the_certificate_names() {
    let Some(url) = pg_available().await else {
        return;
    };
    if !url.contains("@127.0.0.1") {
        eprintln!("SKIPPED: the test URL does not connect by 127.0.0.1");
        return;
    }
    let by_name = url.replace("@127.0.0.1", "@localhost");
    let params = format!("sslmode=verify-full&sslrootcert={}", server_root());
    assert!(open_with(&by_name, &params).await.unwrap());
}
