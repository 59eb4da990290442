//! Fixture apps for the integration tests: built in temp dirs, file by file.
#![allow(dead_code)]

pub mod webdriver;

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

/// One HTTP answer; `set-cookie` headers are kept apart (there may be several).
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers other than `set-cookie`, names lower-cased.
    pub headers: std::collections::HashMap<String, String>,
    /// Every `set-cookie` value.
    pub cookies: Vec<String>,
    /// The body (chunked bodies decoded).
    pub body: String,
}

impl Resp {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.body))
    }

    /// The error code of an error answer.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body ({}): {}", self.status, self.body))
            .to_string()
    }

    /// The `location` header of a redirect.
    pub fn location(&self) -> String {
        self.headers
            .get("location")
            .unwrap_or_else(|| panic!("no location ({}): {}", self.status, self.body))
            .clone()
    }

    /// The `set-cookie` header of `name`.
    pub fn cookie(&self, name: &str) -> Option<&String> {
        self.cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }
}

/// A minimal HTTP/1.1 client (one request per connection, chunked bodies
/// decoded), so the tests need no HTTP client dependency. A POST sends
/// `body` as JSON.
pub fn http(base: &str, method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> Resp {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    conn.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut headers = std::collections::HashMap::new();
    let mut cookies = Vec::new();
    for (k, v) in lines.filter_map(|l| l.split_once(':')) {
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
        if k == "set-cookie" {
            cookies.push(v);
        } else {
            headers.insert(k, v);
        }
    }
    let body = if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Resp {
        status,
        headers,
        cookies,
        body,
    }
}
