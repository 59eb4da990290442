//! A tiny WebDriver client (W3C protocol over HTTP, with [`super::http`])
//! driving Debian's headless Chromium through `chromedriver`, for the
//! console's browser tests. Chromium missing is a failure, never a skip.

use base64::Engine as _;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The element key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session; the driver process ends with it.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
}

/// An element of the current page.
#[derive(Clone)]
pub struct El(String);

/// One WebDriver request: chromedriver keeps connections open whatever
/// the client asks, so the answer is read by its `content-length`, not to
/// the end of the stream.
fn wd(base: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    use std::io::{BufRead, BufReader, Read, Write};
    let host = base.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\
         content-type: application/json; charset=utf-8\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).unwrap();
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut buf = vec![0u8; length];
    reader.read_exact(&mut buf).unwrap();
    let v = serde_json::from_slice(&buf).unwrap_or_else(|e| {
        panic!(
            "{method} {path}: not JSON ({e}): {}",
            String::from_utf8_lossy(&buf)
        )
    });
    (status, v)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium session of
    /// `width`×`height` CSS pixels.
    pub fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver cannot start ({e}): install Debian's chromium and \
                     chromium-driver (apt-get install -y chromium chromium-driver fonts-noto-cjk); \
                     .ci/run does"
                )
            });
        let base = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&base).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let base = format!("http://{base}");
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("Debian's chromium at /usr/bin/chromium");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": binary, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--lang=en-US", format!("--window-size={width},{height}")
            ]}
        }}});
        let (status, v) = wd(&base, "POST", "/session", &caps.to_string());
        assert_eq!(status, 200, "new session: {v}");
        let session = v["value"]["sessionId"].as_str().unwrap().to_string();
        let mut b = Browser {
            driver,
            base,
            session,
        };
        // The window's outer size includes no chrome in headless mode.
        b.cmd(
            "POST",
            "/window/rect",
            json!({"width": width, "height": height}),
        );
        b
    }

    fn cmd(&mut self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let body = if method == "POST" {
            body.to_string()
        } else {
            String::new()
        };
        let (status, v) = wd(&self.base, method, &path, &body);
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    /// Opens a URL.
    pub fn goto(&mut self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url }));
    }

    /// The current URL.
    pub fn url(&mut self) -> String {
        self.cmd("GET", "/url", Value::Null)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The elements matching a CSS selector now.
    pub fn all(&mut self, css: &str) -> Vec<El> {
        self.cmd(
            "POST",
            "/elements",
            json!({"using": "css selector", "value": css}),
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|e| El(e[ELEMENT].as_str().unwrap().to_string()))
        .collect()
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    pub fn find(&mut self, css: &str) -> El {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.all(css).into_iter().next() {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no element `{css}` on {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Clicks an element.
    pub fn click(&mut self, e: &El) {
        self.cmd("POST", &format!("/element/{}/click", e.0), json!({}));
    }

    /// Types into an element (`\u{E007}` is Enter).
    pub fn type_into(&mut self, e: &El, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{}/value", e.0),
            json!({ "text": text }),
        );
    }

    /// An element's rendered text.
    pub fn text(&mut self, e: &El) -> String {
        self.cmd("GET", &format!("/element/{}/text", e.0), Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// An element's attribute.
    pub fn attr(&mut self, e: &El, name: &str) -> Option<String> {
        self.cmd(
            "GET",
            &format!("/element/{}/attribute/{name}", e.0),
            Value::Null,
        )
        .as_str()
        .map(str::to_string)
    }

    /// Runs a script in the page; its result.
    pub fn script(&mut self, js: &str) -> Value {
        self.cmd("POST", "/execute/sync", json!({"script": js, "args": []}))
    }

    /// Waits up to `secs` for `js` (an expression) to be true.
    pub fn wait_for(&mut self, what: &str, js: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.script(&format!("return !!({js});")) != Value::Bool(true) {
            if Instant::now() > deadline {
                let (url, text) = (self.url(), self.page_text());
                panic!("timed out waiting for {what} on {url}:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The page's text.
    pub fn page_text(&mut self) -> String {
        self.script("return document.body.innerText;")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves a screenshot of the viewport as
    /// `target/console-screenshots/<name>.png`; its path.
    pub fn screenshot(&mut self, name: &str) -> PathBuf {
        let png = self.cmd("GET", "/screenshot", Value::Null);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        // Never a panic inside a drop (it may run while a test panics).
        let base = self.base.clone();
        let _ = std::panic::catch_unwind(move || wd(&base, "DELETE", &path, ""));
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
