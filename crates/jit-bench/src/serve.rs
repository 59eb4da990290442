//! The `serve` scenario: element calls through `jit serve`'s HTTP API
//! (`POST /api/v1/elements/{org}/call/getRootDept`) from many concurrent
//! keep-alive clients, against the same call made in-process
//! (`ElementHandle::call`) by as many concurrent tasks.
//!
//! Everything runs in this process on one two-worker runtime, like the
//! reference machine's two cores: the simulator (used once, to sync the org
//! before measuring), the store (SQLite), the host's router (the same
//! `jit_serve::router_with` the binary serves, with its auth, request ids,
//! metrics and task routes; without a log subscriber unless `--with-logs`,
//! which measures a third variant with `jit serve`'s request log lines on)
//! and the load generator: raw HTTP/1.1 over keep-alive TCP
//! connections, one per client, so the client side costs as little as it can.
//!
//! Target: ≥ 10,000 calls/s and p99 < 10 ms at 64 clients.

use crate::emit;
use jit_core::{App, LoadOptions, TypeRegistry};
use jit_sim::{SimConfig, Simulator};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Options of `jit-bench serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Concurrent clients (HTTP connections; in-process: tasks).
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Seconds measured per variant (after a one-second warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Members of the simulated WeCom org synced before measuring.
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    /// Also measure with the host's request logs on (`jit serve`'s default:
    /// one info line per request on stderr; redirect it, e.g. 2>/dev/null).
    #[arg(long)]
    pub with_logs: bool,
}

const TARGET_CALLS_PER_S: f64 = 10_000.0;
const TARGET_P99_MS: f64 = 10.0;
const ORG: &str = "corps.Bench";

/// Runs the scenario; prints an `inprocess` line and an `http` line.
pub fn run_serve(a: &ServeArgs) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(bench(a))
}

async fn bench(a: &ServeArgs) -> Result<(), String> {
    let sim = Simulator::start(SimConfig {
        users: a.users,
        depts: (a.users / 20).max(2),
        dingtalk_orgs: 0,
        latency_ms: 0,
        ..SimConfig::default()
    })
    .await
    .map_err(|e| format!("cannot start the simulator: {e}"))?;
    let info = sim.info();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let write = |rel: &str, v: Value| -> Result<(), String> {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::write(p, v.to_string()).map_err(|e| e.to_string())
    };
    write("app.json", json!({"appId": "bench.serve"}))?;
    write(
        "corps/Bench/e.json",
        json!({"title": "Bench", "type": "corps.QywxInnerType"}),
    )?;
    write(
        "corps/Bench/Bench.json",
        json!({"corpId": info.wecom.corp_id, "agentId": info.wecom.agent_id.to_string(),
               "secret": info.wecom.secret, "apiBase": info.wecom.api_base_url}),
    )?;
    let store = jit_store::open(dir.path().join("org.db").to_str().unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let mut registry = TypeRegistry::new();
    jit_corps::register_builtins_with_store(&mut registry, store.clone());
    jit_tasks::register_builtins(&mut registry);
    let app = App::load(
        dir.path(),
        LoadOptions {
            registry,
            ..LoadOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let org = app.get_element(ORG).map_err(|e| e.to_string())?;
    org.call("syncCorp", Value::Null)
        .await
        .map_err(|e| format!("the sync before measuring failed: {e}"))?;
    let root = org
        .call("getRootDept", Value::Null)
        .await
        .map_err(|e| e.to_string())?;
    drop(sim);

    // In-process: the same call, as many concurrent tasks as clients.
    let inproc = measure(a, |_| {
        let org = org.clone();
        move || {
            let org = org.clone();
            async move { org.call("getRootDept", Value::Null).await.is_ok() }
        }
    })
    .await;
    report(a, "inprocess", &inproc, &root, None);

    // Through the HTTP API.
    let state = jit_serve::HostState::new(app.clone(), store, jit_serve::Tokens::default());
    let service = jit_serve::router_with(state, jit_serve::task_routes());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move { axum::serve(listener, service).await });
    let request = Arc::new(
        format!(
            "POST /api/v1/elements/{ORG}/call/getRootDept HTTP/1.1\r\nhost: bench\r\n\
             content-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}"
        )
        .into_bytes(),
    );
    let mut conns = Vec::with_capacity(a.clients);
    for _ in 0..a.clients {
        let c = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        c.set_nodelay(true).map_err(|e| e.to_string())?;
        conns.push(Arc::new(tokio::sync::Mutex::new(Conn {
            stream: c,
            buf: Vec::with_capacity(4096),
        })));
    }
    let http = measure(a, |i| {
        let conn = conns[i].clone();
        let request = request.clone();
        move || {
            let conn = conn.clone();
            let request = request.clone();
            async move { conn.lock().await.round_trip(&request).await }
        }
    })
    .await;
    report(a, "http", &http, &root, Some(&inproc));
    if a.with_logs {
        jit_serve::init_logging(jit_serve::LogFormat::Text);
        let logged = measure(a, |i| {
            let conn = conns[i].clone();
            let request = request.clone();
            move || {
                let conn = conn.clone();
                let request = request.clone();
                async move { conn.lock().await.round_trip(&request).await }
            }
        })
        .await;
        report(a, "http_with_logs", &logged, &root, Some(&inproc));
    }
    Ok(())
}

/// One keep-alive connection of the load generator.
struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Sends the request and reads one whole answer; true for a 200.
    async fn round_trip(&mut self, request: &[u8]) -> bool {
        if self.stream.write_all(request).await.is_err() {
            return false;
        }
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let head_end = self.buf.windows(4).position(|w| w == b"\r\n\r\n");
            if let Some(end) = head_end {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    return head.starts_with("http/1.1 200");
                }
            }
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// What one variant measured.
struct Measured {
    calls: usize,
    errors: usize,
    seconds: f64,
    /// Sorted latencies in microseconds.
    latencies_us: Vec<u32>,
}

impl Measured {
    fn per_s(&self) -> f64 {
        self.calls as f64 / self.seconds
    }

    fn pct_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

/// Runs `a.clients` loops of `make(i)()` for a warm-up second and then
/// `a.seconds`, recording each call's latency in the measured window.
async fn measure<M, F, Fut>(a: &ServeArgs, make: M) -> Measured
where
    M: Fn(usize) -> F,
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(a.clients);
    for i in 0..a.clients {
        let call = make(i);
        let (measuring, stop) = (measuring.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let mut errors = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let ok = call().await;
                if measuring.load(Ordering::Relaxed) {
                    lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    errors += usize::from(!ok);
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(a.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let seconds = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            all.extend(lat);
            errors += e;
        }
    }
    all.sort_unstable();
    Measured {
        calls: all.len(),
        errors,
        seconds,
        latencies_us: all,
    }
}

fn report(a: &ServeArgs, variant: &str, m: &Measured, root: &Value, baseline: Option<&Measured>) {
    let mut v = json!({
        "scenario": "serve",
        "variant": variant,
        "call": format!("{ORG}.getRootDept"),
        "clients": a.clients,
        "seconds": (m.seconds * 100.0).round() / 100.0,
        "calls": m.calls,
        "errors": m.errors,
        "calls_per_s": m.per_s().round(),
        "p50_ms": (m.pct_ms(0.50) * 1000.0).round() / 1000.0,
        "p99_ms": (m.pct_ms(0.99) * 1000.0).round() / 1000.0,
        "max_ms": (m.pct_ms(1.0) * 1000.0).round() / 1000.0,
        "root_dept": root.get("deptId").cloned().unwrap_or(Value::Null),
        "load_avg_1m": load_average(),
    });
    if let Some(b) = baseline {
        v["inprocess_calls_per_s"] = json!(b.per_s().round());
        v["ratio_to_inprocess"] = json!((m.per_s() / b.per_s() * 1000.0).round() / 1000.0);
        v["target_calls_per_s"] = json!(TARGET_CALLS_PER_S);
        v["target_p99_ms"] = json!(TARGET_P99_MS);
        v["meets_target"] =
            json!(m.per_s() >= TARGET_CALLS_PER_S && m.pct_ms(0.99) < TARGET_P99_MS);
    }
    emit(v);
}

/// The one-minute load average (Linux), for the record.
fn load_average() -> Value {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|x| x.parse::<f64>().ok())
        })
        .map_or(Value::Null, |x| json!(x))
}
