//! Fixture apps for the integration tests: built in temp dirs, file by file.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};

/// An app folder being written for a test; removed when dropped.
pub struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// An empty app folder.
    pub fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The app folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a JSON file (pretty, so line numbers are meaningful).
    pub fn json(&self, rel: &str, v: Value) -> &Fixture {
        self.text(rel, &serde_json::to_string_pretty(&v).unwrap())
    }

    /// Writes a file verbatim.
    pub fn text(&self, rel: &str, text: &str) -> &Fixture {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    /// A sub-folder path (for parent apps).
    pub fn sub(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

/// A fresh PostgreSQL database for one test, dropped (with its sessions) at
/// the end. Made with `psql`, so the CLI, host and replica tests can hand
/// its URL to the real binaries; fails, never skips, without a server.
pub struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    /// A new, empty database named after the test area (`prefix`).
    pub fn create(prefix: &str) -> PgDatabase {
        let admin_url = std::env::var("JIT_TEST_PG_URL")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("jit_{prefix}_{}_{nanos}", std::process::id());
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        PgDatabase { admin_url, name }
    }

    /// Its URL (the test server's, with this database).
    pub fn url(&self) -> String {
        let (base, _) = self.admin_url.rsplit_once('/').expect("a URL with a path");
        format!("{base}/{}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs one statement with `psql` as the test database's user.
pub fn psql(url: &str, sql: &str) {
    let out = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql is installed (the PostgreSQL client)");
    assert!(
        out.status.success(),
        "psql {sql:?} failed (is PostgreSQL running? set JIT_TEST_PG_URL): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The body of an HTTP/1.1 answer sent with `transfer-encoding: chunked`.
pub fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
