//! The `sync` scenario: a full sync and then a repeated sync of a simulated
//! WeCom or DingTalk organization, through the real path (the platform
//! client as the `CorpSource`, `jit_sync::run_sync`, a real store), against
//! the simulator running in this process at the platforms' real rate limits.
//!
//! The floor is computed from the simulator's own per-API call counts, so it
//! does not depend on the client's accounting: the largest, over the APIs
//! used, of calls ÷ allowed calls per second (WeCom 10,000 per 60 s, DingTalk
//! 20 per s). WeCom's limit is per minute, so a sync of fewer than 10,000
//! calls per API may legally finish well below that floor (the real service
//! allows the burst too); `window_floor_s` is the strict lower bound the
//! fixed windows allow, and `latency_floor_s` what the latency and the
//! client's concurrency allow.
//!
//! Targets: within 1.2× of the floor for WeCom 100,000 members / 5,000
//! departments and DingTalk 20,000 / 1,000 at 10 ms latency, peak memory
//! under 400 MB, and a repeated sync that writes 0 rows.

use crate::emit;
use jit_dingtalk::{DingTalkClient, DingTalkConfig};
use jit_org::{CorpRecord, Provider};
use jit_sim::{SimConfig, SimHandle, Simulator};
use jit_store::CorpStore;
use jit_sync::{run_sync, CorpSource, Progress, ProgressEvent, SyncOptions};
use jit_wecom::{WecomClient, WecomConfig};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use jit_org::Platform;

/// `--platform wecom|dingtalk` (WeCom: 10,000 calls per API per minute;
/// DingTalk: 20 calls per API per second).
fn parse_platform(s: &str) -> Result<Platform, String> {
    Platform::parse(s).ok_or_else(|| format!("unknown platform `{s}` (wecom, dingtalk)"))
}

/// Options of `jit-bench sync`.
#[derive(clap::Args)]
pub struct SyncArgs {
    /// The platform: wecom or dingtalk.
    #[arg(long, value_parser = parse_platform)]
    pub platform: Platform,
    /// Members of the simulated org (default: WeCom 100,000, DingTalk 20,000).
    #[arg(long)]
    pub users: Option<usize>,
    /// Departments of the simulated org (default: WeCom 5,000, DingTalk 1,000).
    #[arg(long)]
    pub depts: Option<usize>,
    /// Latency the simulator adds to every API answer.
    #[arg(long, default_value_t = 10)]
    pub latency_ms: u64,
    /// `sqlite` (a fresh file in a temp dir) or a PostgreSQL URL (a fresh
    /// schema, dropped afterwards).
    #[arg(long, default_value = "sqlite")]
    pub store: String,
    /// Seed of the simulator's org generator.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

const TARGET_RATIO: f64 = 1.2;
const TARGET_PEAK_MB: f64 = 400.0;

/// Runs the scenario and prints three lines: `full`, `repeat` and `memory`.
pub fn run_sync_bench(a: &SyncArgs) -> Result<(), String> {
    // Two workers: the reference machine has two cores, and the simulator
    // shares them with the client, the planner and the store.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    // Driven from this thread, as `jit sync` drives a sync (the simulator's
    // connections and the store's blocking work run on the workers).
    rt.block_on(bench(a))
}

/// The simulator's limits, as calls per second and as fixed windows.
struct Limits {
    per_second: f64,
    window_calls: u64,
    window_s: f64,
}

async fn bench(a: &SyncArgs) -> Result<(), String> {
    let (users, depts) = match a.platform {
        Platform::Wecom => (a.users.unwrap_or(100_000), a.depts.unwrap_or(5_000)),
        Platform::DingTalk => (a.users.unwrap_or(20_000), a.depts.unwrap_or(1_000)),
    };
    let mem_before_sim = Mem::read();
    // The other platform's org is kept tiny: it is generated but never called.
    let cfg = match a.platform {
        Platform::Wecom => SimConfig {
            seed: a.seed,
            users,
            depts,
            dingtalk_orgs: 0,
            latency_ms: a.latency_ms,
            ..SimConfig::default()
        },
        Platform::DingTalk => SimConfig {
            seed: a.seed,
            users: 1,
            depts: 1,
            dingtalk_users: Some(users),
            dingtalk_depts: Some(depts),
            dingtalk_orgs: 1,
            latency_ms: a.latency_ms,
            ..SimConfig::default()
        },
    };
    let sim = Simulator::start(cfg)
        .await
        .map_err(|e| format!("cannot start the simulator: {e}"))?;
    let mem_with_sim = Mem::read();
    let info = sim.info();
    // The configured sizes, not the simulator's truth: cloning a 100,000
    // member truth would add ~100 MB to this process before the measurement.
    let (truth_members, truth_depts) = (users, depts);
    let limits = match a.platform {
        Platform::Wecom => Limits {
            per_second: f64::from(info.limits.wecom_per_minute) / 60.0,
            window_calls: u64::from(info.limits.wecom_per_minute),
            window_s: 60.0,
        },
        Platform::DingTalk => Limits {
            per_second: f64::from(info.limits.dingtalk_per_second),
            window_calls: u64::from(info.limits.dingtalk_per_second),
            window_s: 1.0,
        },
    };
    let (source, concurrency, corp): (Box<dyn CorpSource>, usize, CorpRecord) = match a.platform {
        Platform::Wecom => {
            let mut c = WecomConfig::new(
                info.wecom.corp_id.clone(),
                info.wecom.agent_id.to_string(),
                info.wecom.secret.clone(),
            );
            c.api_base = info.wecom.api_base_url.clone();
            let n = c.tuning.concurrency;
            let client = WecomClient::new(c).map_err(|e| e.to_string())?;
            let corp = CorpRecord {
                full_name: "corps.BenchWecom".into(),
                title: "Benchmark WeCom".into(),
                corp_type: "corps.QywxInnerType".into(),
                provider: Provider::Wecom,
                corp_id: info.wecom.corp_id.clone(),
            };
            (Box::new(client), n, corp)
        }
        Platform::DingTalk => {
            let d = &info.dingtalk[0];
            let mut c = DingTalkConfig::new(
                d.corp_id.clone(),
                d.agent_id.to_string(),
                d.app_key.clone(),
                d.app_secret.clone(),
            );
            c.api_base = d.api_base_url.clone();
            c.oapi_base = d.oapi_base_url.clone();
            let n = c.tuning.concurrency;
            let client = DingTalkClient::new(c).map_err(|e| e.to_string())?;
            let corp = CorpRecord {
                full_name: "corps.BenchDingTalk".into(),
                title: "Benchmark DingTalk".into(),
                corp_type: "corps.DDInnerType".into(),
                provider: Provider::DingTalk,
                corp_id: d.corp_id.clone(),
            };
            (Box::new(client), n, corp)
        }
    };

    let Opened {
        store,
        _dir: dir,
        pg: cleanup,
    } = open_store(&a.store).await?;
    let store_label = if cleanup.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let base = json!({
        "scenario": "sync",
        "platform": a.platform.as_str(),
        "users": truth_members,
        "depts": truth_depts,
        "latency_ms": a.latency_ms,
        "store": store_label,
    });
    let ctx = Ctx {
        sim: &sim,
        source: source.as_ref(),
        store: store.as_ref(),
        corp: &corp,
        limits: &limits,
        latency_ms: a.latency_ms,
        concurrency,
        base: &base,
    };

    let result = async {
        let full = ctx.run("full").await?;
        if full.upstream_members != truth_members {
            return Err(format!(
                "the full sync read {} members, the simulator holds {truth_members}",
                full.upstream_members
            ));
        }
        let repeat = ctx.run("repeat").await?;
        let mem_end = Mem::read();
        let peak_kb = note_peak(mem_end.hwm_kb);
        let mut line = base.clone();
        let o = line.as_object_mut().expect("object");
        o.insert("phase".into(), json!("memory"));
        o.insert("includes_simulator".into(), json!(true));
        o.insert("peak_rss_mb".into(), json!(mb(peak_kb)));
        o.insert(
            "rss_before_simulator_mb".into(),
            json!(mb(mem_before_sim.rss_kb)),
        );
        o.insert("rss_with_simulator_mb".into(), json!(mb(mem_with_sim.rss_kb)));
        o.insert(
            "simulator_org_mb".into(),
            json!(mb(mem_with_sim.rss_kb.saturating_sub(mem_before_sim.rss_kb))),
        );
        // What a deployment without the in-process simulator would see, to
        // within the simulator's answer buffers (counted in the sync).
        o.insert(
            "peak_rss_without_simulator_org_mb".into(),
            json!(mb(peak_kb.saturating_sub(
                mem_with_sim.rss_kb.saturating_sub(mem_before_sim.rss_kb)
            ))),
        );
        o.insert(
            "full_sync_peak_growth_mb".into(),
            json!(full.peak_growth_mb),
        );
        o.insert(
            "repeat_sync_peak_growth_mb".into(),
            json!(repeat.peak_growth_mb),
        );
        o.insert("rss_end_mb".into(), json!(mb(mem_end.rss_kb)));
        o.insert("target_peak_mb".into(), json!(TARGET_PEAK_MB));
        o.insert(
            "ratio".into(),
            json!(round3(mb(peak_kb) / TARGET_PEAK_MB)),
        );
        o.insert(
            "note".into(),
            json!("the simulator runs in this process: peak_rss_mb covers it and its generated org (simulator_org_mb); the *_peak_growth_mb figures are the peak above the RSS at the start of each sync (client, engine, store, and the simulator's answer buffers)"),
        );
        emit(line);
        if repeat.rows_written != 0 {
            return Err(format!(
                "the repeated sync wrote {} rows; it must write none (counts {:?})",
                repeat.rows_written, repeat.counts
            ));
        }
        Ok(())
    }
    .await;

    drop(store);
    drop(dir);
    if let Some((url, schema)) = cleanup {
        jit_store::drop_postgres_schema(&url, &schema)
            .await
            .map_err(|e| format!("dropping the benchmark schema {schema}: {e}"))?;
    }
    sim.shutdown().await;
    result
}

/// The store under test and what to clean up after it.
struct Opened {
    store: Arc<dyn CorpStore>,
    /// Kept so the SQLite file lives as long as the store; removed on drop.
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL URL and the benchmark's schema, dropped afterwards.
    pg: Option<(String, String)>,
}

/// A fresh SQLite file in a temp dir, or a fresh schema of the PostgreSQL
/// at `spec`.
async fn open_store(spec: &str) -> Result<Opened, String> {
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        let schema = format!("jit_bench_sync_{}", std::process::id());
        let store = jit_store::open_postgres_in_schema(spec, &schema)
            .await
            .map_err(|e| format!("opening PostgreSQL: {e}"))?;
        return Ok(Opened {
            store,
            _dir: None,
            pg: Some((spec.to_string(), schema)),
        });
    }
    if spec != "sqlite" {
        return Err(format!(
            "--store must be `sqlite` or a postgres:// URL, not {spec:?}"
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temp dir: {e}"))?;
    let path = dir.path().join("bench.db");
    let store = jit_store::open(&path.display().to_string())
        .await
        .map_err(|e| format!("opening SQLite at {}: {e}", path.display()))?;
    Ok(Opened {
        store,
        _dir: Some(dir),
        pg: None,
    })
}

struct Ctx<'a> {
    sim: &'a SimHandle,
    source: &'a dyn CorpSource,
    store: &'a dyn CorpStore,
    corp: &'a CorpRecord,
    limits: &'a Limits,
    latency_ms: u64,
    concurrency: usize,
    base: &'a Value,
}

/// What the later lines need from a sync; the report itself (plan, change
/// lines) is dropped as soon as its line is printed, so the benchmark does
/// not inflate the next phase's memory.
struct Outcome {
    upstream_members: usize,
    rows_written: u64,
    counts: jit_org::ChangeCounts,
    peak_growth_mb: f64,
}

/// Records the RSS and the peak when each sync phase starts, to show which
/// phase holds the memory.
#[derive(Default)]
struct PhaseMemory {
    marks: Mutex<Vec<(String, f64, f64)>>,
}

impl Progress for PhaseMemory {
    fn on_event(&self, event: &ProgressEvent) {
        if let ProgressEvent::Phase(p) = event {
            if matches!(p.as_str(), "fetch" | "plan" | "apply") {
                let m = Mem::read();
                self.marks.lock().unwrap_or_else(|e| e.into_inner()).push((
                    p.clone(),
                    mb(m.rss_kb),
                    mb(m.hwm_kb),
                ));
            }
        }
    }
}

impl Ctx<'_> {
    /// One sync, measured; prints its line.
    async fn run(&self, phase: &str) -> Result<Outcome, String> {
        self.sim.reset_stats();
        // The process-wide peak so far is kept before the kernel's is reset.
        note_peak(Mem::read().hwm_kb);
        let hwm_reset = Mem::reset_peak();
        let mem_start = Mem::read();
        let marks = PhaseMemory::default();
        let started = Instant::now();
        let report = run_sync(
            self.source,
            self.store,
            self.corp,
            &SyncOptions::default(),
            &marks,
        )
        .await
        .map_err(|e| format!("{phase} sync: {e}"))?;
        let wall = started.elapsed().as_secs_f64();
        let mem_end = Mem::read();
        note_peak(mem_end.hwm_kb);
        if !report.is_complete() {
            return Err(format!(
                "{phase} sync read the org incompletely: {:?}",
                report.failures
            ));
        }

        // Every app's counters: only one org is ever called, and token
        // endpoints may be metered under `unknown`.
        let mut calls: BTreeMap<String, u64> = BTreeMap::new();
        let mut throttled: BTreeMap<String, u64> = BTreeMap::new();
        for apis in self.sim.stats().apps.values() {
            for (path, s) in apis {
                *calls.entry(path.clone()).or_default() += s.calls;
                if s.throttled > 0 {
                    *throttled.entry(path.clone()).or_default() += s.throttled;
                }
            }
        }
        let (busiest, busiest_calls) = calls
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(p, n)| (p.clone(), *n))
            .unwrap_or_default();
        // Answered calls are what the limit counts; throttled ones are not.
        let answered = busiest_calls - throttled.get(&busiest).copied().unwrap_or(0);
        let floor = answered as f64 / self.limits.per_second;
        let windows_needed = answered.div_ceil(self.limits.window_calls.max(1));
        let window_floor = windows_needed.saturating_sub(1) as f64 * self.limits.window_s;
        let total_calls: u64 = calls.values().sum();
        let latency_floor =
            total_calls as f64 * self.latency_ms as f64 / 1000.0 / self.concurrency as f64;

        let peak_growth_mb = if hwm_reset {
            mb(mem_end.hwm_kb.saturating_sub(mem_start.rss_kb))
        } else {
            f64::NAN
        };
        let mut line = self.base.clone();
        let o: &mut Map<String, Value> = line.as_object_mut().expect("object");
        o.insert("phase".into(), json!(phase));
        o.insert("wall_s".into(), json!(round3(wall)));
        o.insert("floor_s".into(), json!(round3(floor)));
        o.insert(
            "ratio".into(),
            json!(if floor > 0.0 {
                round3(wall / floor)
            } else {
                f64::NAN
            }),
        );
        o.insert("target_ratio".into(), json!(TARGET_RATIO));
        o.insert("busiest_api".into(), json!(busiest));
        o.insert("window_floor_s".into(), json!(round3(window_floor)));
        o.insert("latency_floor_s".into(), json!(round3(latency_floor)));
        o.insert("calls".into(), json!(calls));
        o.insert("total_calls".into(), json!(total_calls));
        o.insert("throttled".into(), json!(throttled.values().sum::<u64>()));
        o.insert("throttled_by_api".into(), json!(throttled));
        o.insert("rows_written".into(), json!(report.rows_written));
        o.insert("counts".into(), json!(report.counts));
        o.insert("upstream_members".into(), json!(report.upstream_members));
        o.insert("upstream_depts".into(), json!(report.upstream_depts));
        o.insert(
            "phases_ms".into(),
            json!({
                "fetch": report.durations.fetch_ms,
                "load": report.durations.load_ms,
                "plan": report.durations.plan_ms,
                "apply": report.durations.apply_ms,
            }),
        );
        o.insert("phase_peak_rss_mb".into(), json!(mb(mem_end.hwm_kb)));
        o.insert("peak_growth_mb".into(), json!(round3(peak_growth_mb)));
        let marks = marks.marks.into_inner().unwrap_or_else(|e| e.into_inner());
        o.insert(
            "rss_mb_at_phase_start".into(),
            Value::Object(
                marks
                    .iter()
                    .map(|(p, rss, _)| (p.clone(), json!(rss)))
                    .collect(),
            ),
        );
        o.insert(
            "peak_mb_at_phase_start".into(),
            Value::Object(
                marks
                    .iter()
                    .map(|(p, _, hwm)| (p.clone(), json!(hwm)))
                    .collect(),
            ),
        );
        o.insert("rss_end_mb".into(), json!(mb(mem_end.rss_kb)));
        if phase == "repeat" {
            o.insert("target_rows_written".into(), json!(0));
        }
        emit(line);
        Ok(Outcome {
            upstream_members: report.upstream_members,
            rows_written: report.rows_written,
            counts: report.counts,
            peak_growth_mb: round3(peak_growth_mb),
        })
    }
}

/// Resident-set figures of this process from /proc/self/status (KiB).
#[derive(Clone, Copy, Default)]
struct Mem {
    rss_kb: u64,
    hwm_kb: u64,
}

impl Mem {
    fn read() -> Mem {
        let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        Mem {
            rss_kb: field("VmRSS:"),
            hwm_kb: field("VmHWM:"),
        }
    }

    /// Sets the peak (VmHWM) back to the current RSS (Linux `clear_refs` 5),
    /// so a phase's own peak can be read; false when the kernel refuses.
    fn reset_peak() -> bool {
        std::fs::write("/proc/self/clear_refs", "5").is_ok()
    }
}

/// The largest VmHWM seen so far, across the per-phase resets.
static PEAK_KB: AtomicU64 = AtomicU64::new(0);

/// Folds a VmHWM reading into the process-wide peak; returns the peak.
fn note_peak(hwm_kb: u64) -> u64 {
    PEAK_KB.fetch_max(hwm_kb, Ordering::Relaxed).max(hwm_kb)
}

fn mb(kb: u64) -> f64 {
    round3(kb as f64 / 1024.0)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
