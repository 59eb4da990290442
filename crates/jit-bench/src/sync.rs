//! The `sync` scenario: a full sync and then a repeated sync of a simulated
//! WeCom or DingTalk organization, through the real path (the platform
//! client as the `CorpSource`, `jit_sync::run_sync`, a real store), against
//! the simulator running in this process at the platforms' real rate limits.
//!
//! Each sync is measured against its floor, the larger of two bounds no
//! client can beat (see [`crate::floor`]):
//! - the **rate floor**: when the simulator's fixed windows (WeCom 10,000
//!   calls per API per minute and 150,000 per hour, DingTalk 20 per API per
//!   second), as they stood when the sync began, would admit its last call,
//!   plus that call's latency;
//! - the **latency floor**: total calls × latency ÷ the client's concurrency.
//!
//! `--compare sequential` also syncs the same org into a fresh store of the
//! same kind with the same client at concurrency 1 (one call at a time, no
//! pipelining) and prints the `speedup`.
//!
//! Targets: within 1.2× of the floor where the rate floor binds (WeCom
//! 300,000 members / 15,000 departments, DingTalk 20,000 / 1,000 at 10 ms),
//! at least 20× the sequential client at 1,000 departments / 20,000 members
//! / 10 ms, a syncing-side peak under 700 MB, and a repeated sync that
//! writes 0 rows.

use crate::{emit, floor};
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
#[derive(clap::Args, Clone)]
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
    /// `sequential`: also sync the org into a fresh store with the same
    /// client at concurrency 1 (one call at a time) and print the speedup.
    #[arg(long, value_parser = ["sequential"])]
    pub compare: Option<String>,
    /// Also time the `jit` binary at this path running `jit sync` of the
    /// same org into a fresh app's SQLite store, process start to exit.
    #[arg(long, value_name = "PATH")]
    pub cli: Option<std::path::PathBuf>,
    /// The client's concurrency instead of its default (32): how the fetch
    /// scales with it; the latency floor follows it.
    #[arg(long)]
    pub concurrency: Option<usize>,
}

/// Where the rate floor binds: wall ÷ floor at most this.
const TARGET_RATIO: f64 = 1.2;
/// The syncing side's peak (the process minus the simulator's org).
const TARGET_PEAK_MB: f64 = 700.0;
/// Against the sequential client at 1,000 departments / 20,000 members.
const TARGET_SPEEDUP: f64 = 20.0;

/// Runs the scenario and prints three lines: `full`, `repeat` and `memory`.
pub fn run_sync_bench(a: &SyncArgs) -> Result<(), String> {
    // Two workers: the reference machine has two cores, and the simulator
    // shares them with the client, the planner and the store.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    // Run on a worker, as `jit sync` runs a sync: from the thread that
    // called `block_on`, every answer would hop to a third thread that the
    // two cores time-slice with the workers serving the simulator.
    let a = a.clone();
    rt.block_on(async move {
        tokio::spawn(async move { bench(&a).await })
            .await
            .map_err(|e| format!("the benchmark task failed: {e}"))?
    })
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
    let (source, concurrency, corp) = client_for(a.platform, &info, a.concurrency)?;

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
        corp: &corp,
        latency_ms: a.latency_ms,
        base: &base,
    };

    let result = async {
        let full = ctx
            .run("full", source.as_ref(), concurrency, store.as_ref(), None)
            .await?;
        if full.upstream_members != truth_members {
            return Err(format!(
                "the full sync read {} members, the simulator holds {truth_members}",
                full.upstream_members
            ));
        }
        let repeat = ctx
            .run("repeat", source.as_ref(), concurrency, store.as_ref(), None)
            .await?;
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
        // The target is the syncing side's: the simulator's org is not.
        let syncing_peak_kb =
            peak_kb.saturating_sub(mem_with_sim.rss_kb.saturating_sub(mem_before_sim.rss_kb));
        o.insert(
            "malloc_arenas".into(),
            json!(if std::env::args().any(|a| a == "--default-malloc-arenas") {
                "glibc default"
            } else {
                "capped at 2 (jit_alloc::limit_malloc_arenas)"
            }),
        );
        o.insert("target_peak_mb".into(), json!(TARGET_PEAK_MB));
        o.insert(
            "ratio".into(),
            json!(round3(mb(syncing_peak_kb) / TARGET_PEAK_MB)),
        );
        o.insert("load_avg".into(), json!(load_avg()));
        o.insert(
            "note".into(),
            json!("the simulator runs in this process: peak_rss_mb covers it and its generated org (simulator_org_mb); the *_peak_growth_mb figures are the peak above the RSS at the start of each sync (client, engine, store, and the simulator's answer buffers)"),
        );
        emit(line);
        if a.compare.is_some() {
            // The same org, the same client with one call at a time, into a
            // fresh store of the same kind (a full sync, like the first).
            let (seq_source, seq_concurrency, _) = client_for(a.platform, &info, Some(1))?;
            let seq_store = open_store(&a.store).await?;
            let seq = ctx
                .run(
                    "sequential",
                    seq_source.as_ref(),
                    seq_concurrency,
                    seq_store.store.as_ref(),
                    Some(full.wall_s),
                )
                .await;
            seq_store.close().await?;
            seq?;
        }
        if let Some(jit) = &a.cli {
            // `jit sync` runs with the app's configuration: the default concurrency.
            let (_, cli_concurrency, _) = client_for(a.platform, &info, None)?;
            ctx.run_cli(jit, a.platform, &info, cli_concurrency, full.apply_s)?;
        }
        if repeat.rows_written != 0 {
            return Err(format!(
                "the repeated sync wrote {} rows; it must write none (counts {:?})",
                repeat.rows_written, repeat.counts
            ));
        }
        Ok(())
    }
    .await;

    Opened {
        store,
        _dir: dir,
        pg: cleanup,
    }
    .close()
    .await?;
    sim.shutdown().await;
    result
}

/// The platform client for the simulator's org with the platform's default
/// tuning (or `concurrency` instead of the default), its concurrency, and
/// the org record the syncs write under.
fn client_for(
    platform: Platform,
    info: &jit_sim::SimInfo,
    concurrency: Option<usize>,
) -> Result<(Box<dyn CorpSource>, usize, CorpRecord), String> {
    Ok(match platform {
        Platform::Wecom => {
            let mut c = WecomConfig::new(
                info.wecom.corp_id.clone(),
                info.wecom.agent_id.to_string(),
                info.wecom.secret.clone(),
            );
            c.api_base = info.wecom.api_base_url.clone();
            if let Some(n) = concurrency {
                c.tuning.concurrency = n;
            }
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
            if let Some(n) = concurrency {
                c.tuning.concurrency = n;
            }
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
    })
}

/// The store under test and what to clean up after it.
struct Opened {
    store: Arc<dyn CorpStore>,
    /// Kept so the SQLite file lives as long as the store; removed on drop.
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL URL and the benchmark's schema, dropped afterwards.
    pg: Option<(String, String)>,
}

impl Opened {
    /// Closes the store and removes what the benchmark made for it.
    async fn close(self) -> Result<(), String> {
        drop(self.store);
        drop(self._dir);
        if let Some((url, schema)) = self.pg {
            jit_store::drop_postgres_schema(&url, &schema)
                .await
                .map_err(|e| format!("dropping the benchmark schema {schema}: {e}"))?;
        }
        Ok(())
    }
}

/// A fresh SQLite file in a temp dir, or a fresh schema of the PostgreSQL
/// at `spec`.
async fn open_store(spec: &str) -> Result<Opened, String> {
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        static SCHEMAS: AtomicU64 = AtomicU64::new(0);
        let schema = format!(
            "jit_bench_sync_{}_{}",
            std::process::id(),
            SCHEMAS.fetch_add(1, Ordering::Relaxed)
        );
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
    corp: &'a CorpRecord,
    latency_ms: u64,
    base: &'a Value,
}

/// What the later lines need from a sync; the report itself (plan, change
/// lines) is dropped as soon as its line is printed, so the benchmark does
/// not inflate the next phase's memory.
struct Outcome {
    wall_s: f64,
    apply_s: f64,
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

/// `jit sync` from process start to exit within this many latency floors
/// plus the apply of the same rows.
const TARGET_CLI_LATENCY_FLOORS: f64 = 1.5;

impl Ctx<'_> {
    /// Times `jit sync` of the same org (a fresh app and store) and prints
    /// the `cli` line: its wall against 1.5× the latency floor of its calls
    /// plus `apply_s`, the in-process full sync's apply of the same rows.
    fn run_cli(
        &self,
        jit: &std::path::Path,
        platform: Platform,
        info: &jit_sim::SimInfo,
        concurrency: usize,
        apply_s: f64,
    ) -> Result<(), String> {
        self.sim.reset_stats();
        // Waiting for the process blocks this thread, which is one of the
        // two runtime workers serving the simulator: handed off, so the
        // simulator answers `jit sync` with both, as it answers the
        // in-process syncs (blocking it in place left one).
        let run = tokio::task::block_in_place(|| crate::cli_run::run(jit, platform, info))?;
        let stats = self.sim.stats();
        let total_calls: u64 = stats
            .apps
            .values()
            .flat_map(|apis| apis.values().map(|s| s.calls))
            .sum();
        let latency_floor = floor::latency_floor_s(total_calls, self.latency_ms, concurrency);
        let target = TARGET_CLI_LATENCY_FLOORS * latency_floor + apply_s;
        let mut line = self.base.clone();
        let o = line.as_object_mut().expect("object");
        o.insert("phase".into(), json!("cli"));
        o.insert("command".into(), json!(format!("{} sync", jit.display())));
        o.insert("wall_s".into(), json!(round3(run.wall_s)));
        o.insert("total_calls".into(), json!(total_calls));
        o.insert("latency_floor_s".into(), json!(round3(latency_floor)));
        o.insert("apply_s".into(), json!(round3(apply_s)));
        o.insert("target_s".into(), json!(round3(target)));
        o.insert(
            "target".into(),
            json!("1.5 × latency_floor_s + apply_s (the full sync's apply of the same rows)"),
        );
        o.insert("ratio".into(), json!(round3(run.wall_s / target.max(1e-9))));
        o.insert("load_avg".into(), json!(load_avg()));
        emit(line);
        Ok(())
    }

    /// One sync of `source` into `store`, measured; prints its line. With
    /// `against` (the wall of the full sync), the line has the speedup.
    async fn run(
        &self,
        phase: &str,
        source: &dyn CorpSource,
        concurrency: usize,
        store: &dyn CorpStore,
        against: Option<f64>,
    ) -> Result<Outcome, String> {
        self.sim.reset_stats();
        let windows_at_start = self.sim.rate_state();
        // The process-wide peak so far is kept before the kernel's is reset.
        note_peak(Mem::read().hwm_kb);
        let hwm_reset = Mem::reset_peak();
        let mem_start = Mem::read();
        let marks = PhaseMemory::default();
        let started = Instant::now();
        let report = run_sync(source, store, self.corp, &SyncOptions::default(), &marks)
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
        let mut by_app: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        for (app, apis) in self.sim.stats().apps {
            for (path, s) in apis {
                *calls.entry(path.clone()).or_default() += s.calls;
                if s.throttled > 0 {
                    *throttled.entry(path.clone()).or_default() += s.throttled;
                }
                by_app.insert((app.clone(), path), (s.calls, s.throttled));
            }
        }
        // Answered calls are what the windows count; throttled ones are not.
        let answered: BTreeMap<(String, String), u64> = by_app
            .iter()
            .map(|(key, (n, throttled))| (key.clone(), n - throttled))
            .collect();
        let rate = floor::rate_floor(&windows_at_start, &answered, self.latency_ms);
        let total_calls: u64 = calls.values().sum();
        let latency_floor = floor::latency_floor_s(total_calls, self.latency_ms, concurrency);
        let (floor, floor_kind) = if rate.seconds >= latency_floor {
            (rate.seconds, "rate")
        } else {
            (latency_floor, "latency")
        };

        let peak_growth_mb = if hwm_reset {
            mb(mem_end.hwm_kb.saturating_sub(mem_start.rss_kb))
        } else {
            f64::NAN
        };
        let mut line = self.base.clone();
        let o: &mut Map<String, Value> = line.as_object_mut().expect("object");
        o.insert("phase".into(), json!(phase));
        o.insert("concurrency".into(), json!(concurrency));
        o.insert("wall_s".into(), json!(round3(wall)));
        o.insert("floor_s".into(), json!(round3(floor)));
        o.insert("floor".into(), json!(floor_kind));
        // No floor at all (no latency, nothing rate-bound): no ratio.
        o.insert(
            "ratio".into(),
            if floor > 0.0 {
                json!(round3(wall / floor))
            } else {
                Value::Null
            },
        );
        if floor_kind == "rate" && floor > 0.0 && phase != "sequential" {
            o.insert("target_ratio".into(), json!(TARGET_RATIO));
        }
        o.insert("rate_floor_s".into(), json!(round3(rate.seconds)));
        o.insert("rate_floor_api".into(), json!(rate.api));
        o.insert("latency_floor_s".into(), json!(round3(latency_floor)));
        o.insert(
            "rate_windows_at_start".into(),
            json!({
                "elapsed_ms": windows_at_start.elapsed_ms,
                "used": windows_at_start
                    .windows
                    .iter()
                    .flat_map(|(app, apis)| apis.iter().map(move |(p, w)| (format!("{app} {p}"), w.used)))
                    .filter(|(_, used)| *used > 0)
                    .collect::<BTreeMap<_, _>>(),
            }),
        );
        if let Some(fast) = against {
            o.insert("speedup".into(), json!(round3(wall / fast.max(1e-9))));
            o.insert(
                "speedup_of".into(),
                json!("this wall ÷ the full sync's wall"),
            );
            o.insert("target_speedup".into(), json!(TARGET_SPEEDUP));
        }
        o.insert("load_avg".into(), json!(load_avg()));
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
            wall_s: wall,
            apply_s: report.durations.apply_ms as f64 / 1000.0,
            upstream_members: report.upstream_members,
            rows_written: report.rows_written,
            counts: report.counts,
            peak_growth_mb: round3(peak_growth_mb),
        })
    }
}

/// The 1-, 5- and 15-minute load averages (other work on the machine
/// shares the cores: figures are quoted with them).
pub fn load_avg() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect()
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
