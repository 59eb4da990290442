//! The `events` scenario: event-driven sync keeping a large org current.
//!
//! A simulated org (20,000 members by default) is served by a real
//! `jit serve` in this process (`jit_serve::run` on a local port, its
//! SQLite store, the org's `events` config), which syncs it once at start;
//! then the simulator's callback points at the host's
//! `/callbacks/{platform}/{fullName}` and 1,000 mutations are made upstream
//! at 100 per second (renames, moves, hires, disables, each pushing one
//! event). The host verifies each callback, stores it in its inbox, answers,
//! and its worker applies what has arrived in batches through the engine
//! (one run of kind `event` per batch).
//!
//! Reported: p50/p99 of the time from the mutation (the simulator sends the
//! callback at once) to the commit of the event (the inbox's `applied_at`),
//! platform calls per event (the simulator's own count of the calls it
//! answered), and whether the store equals the truth at the end (a full
//! dry-run sync finds nothing to change). Targets: p99 < 1 s, ≤ 2 calls per
//! single-member event.
//!
//! `--direct` measures the apply path alone: a receiver in this process
//! opens the callbacks (same crypto) and hands them straight to
//! `jit_events::apply::apply_events`, without the host and its inbox.

use crate::emit;
use axum::extract::{Query, State};
use axum::routing::post;
use axum::{Json, Router};
use jit_corps::CorpClient;
use jit_dingtalk::{DingTalkClient, DingTalkConfig};
use jit_events::apply::{apply_events, ApplyContext, InboxEvent};
use jit_events::receive::{CallbackQuery, DingTalkPush, Receiver};
use jit_org::{ChangeKind, CorpRecord, Platform};
use jit_sim::{CallbackConfig, MembershipSpec, Mutation, OrgRef, SimConfig, Simulator};
use jit_sync::{run_sync, NoProgress, SyncOptions};
use jit_wecom::{WecomClient, WecomConfig};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Options of `jit-bench events`.
#[derive(clap::Args)]
pub struct EventsArgs {
    /// `wecom` or `dingtalk`.
    #[arg(long, default_value = "wecom")]
    pub platform: String,
    /// Members of the simulated org.
    #[arg(long, default_value_t = 20_000)]
    pub users: usize,
    /// Mutations made upstream.
    #[arg(long, default_value_t = 1_000)]
    pub mutations: usize,
    /// Mutations per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Apply from a receiver in this process instead of through `jit serve`.
    #[arg(long)]
    pub direct: bool,
}

const TARGET_P99_MS: f64 = 1_000.0;
const TARGET_CALLS_PER_EVENT: f64 = 2.0;
const TOKEN: &str = "benchtoken1";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const ORG: &str = "corps.Bench";

/// Runs the scenario; prints one line.
pub fn run_events(a: &EventsArgs) -> Result<(), String> {
    let platform = Platform::parse(&a.platform)
        .ok_or_else(|| format!("--platform must be wecom or dingtalk, not {:?}", a.platform))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    if a.direct {
        rt.block_on(bench(a, platform))
    } else {
        rt.block_on(through_serve(a, platform))
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The simulated org: 1 department per 40 members, no rate limits at the
/// simulator (setting up 20,000 members at the real limits takes minutes;
/// the clients keep their own platform budgets).
async fn start_sim(a: &EventsArgs) -> Result<jit_sim::SimHandle, String> {
    let depts = (a.users / 40).max(4);
    Simulator::start(SimConfig {
        users: a.users,
        depts,
        dingtalk_users: Some(a.users),
        dingtalk_depts: Some(depts),
        dingtalk_orgs: 1,
        latency_ms: 0,
        wecom_rate_per_minute: 0,
        wecom_rate_per_hour: 0,
        dingtalk_rate_per_second: 0,
        ..SimConfig::default()
    })
    .await
    .map_err(|e| format!("cannot start the simulator: {e}"))
}

/// Mutation `i` of the run: one event each, spread over the org.
fn mutation(truth: &jit_org::CorpSnapshot) -> impl Fn(usize) -> Mutation {
    let people: Vec<String> = truth
        .members
        .values()
        .filter(|m| m.status == jit_org::MemberStatus::Active)
        .map(|m| m.member_id.clone())
        .collect();
    let dept_ids: Vec<i64> = truth.depts.keys().copied().filter(|d| *d != 1).collect();
    move |i: usize| {
        let who = people[(i * 7919) % people.len()].clone();
        let dept = dept_ids[(i * 31) % dept_ids.len()];
        match i % 4 {
            0 => Mutation::rename_member(who, format!("Renamed {i}")),
            1 => Mutation::MoveMember {
                userid: who,
                depts: vec![MembershipSpec::of(dept)],
                main_dept: None,
            },
            2 => Mutation::add_member(
                format!("bench{i:05}"),
                format!("Hire {i}"),
                vec![MembershipSpec::of(dept)],
            ),
            _ => Mutation::DisableMember { userid: who },
        }
    }
}

/// Makes `n` mutations at `rate` per second; returns when each was made
/// (milliseconds since the epoch).
async fn produce(
    sim: &jit_sim::SimHandle,
    org: OrgRef,
    n: usize,
    rate: f64,
    mutation: &dyn Fn(usize) -> Mutation,
) -> Result<Vec<i64>, String> {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let start = Instant::now();
    let mut sent = Vec::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep_until((start + interval * i as u32).into()).await;
        let t = now_ms();
        match sim.mutate(org, mutation(i)) {
            Ok(o) if o.events.len() == 1 => sent.push(t),
            Ok(o) => return Err(format!("mutation {i} pushed {} events", o.events.len())),
            Err(e) => return Err(format!("mutation {i}: {e}")),
        }
    }
    Ok(sent)
}

fn sim_calls(sim: &jit_sim::SimHandle) -> u64 {
    sim.stats()
        .apps
        .values()
        .flat_map(|a| a.values())
        .map(|s| s.calls)
        .sum()
}

/// The measured path through `jit serve`.
async fn through_serve(a: &EventsArgs, platform: Platform) -> Result<(), String> {
    let sim = start_sim(a).await?;
    let info = sim.info();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let write = |rel: &str, v: Value| -> Result<(), String> {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("a file in a folder"))
            .map_err(|e| e.to_string())?;
        std::fs::write(p, v.to_string()).map_err(|e| e.to_string())
    };
    write("app.json", json!({"appId": "bench.events"}))?;
    write(
        "corps/Bench/e.json",
        json!({"title": "Bench", "type": jit_corps_type(platform)}),
    )?;
    // WeCom has one mode (HTTP callbacks); DingTalk is told which.
    let events = match platform {
        Platform::Wecom => json!({"token": TOKEN, "aesKey": KEY}),
        Platform::DingTalk => json!({"mode": "http", "token": TOKEN, "aesKey": KEY}),
    };
    let (config, org, path) = match platform {
        Platform::Wecom => (
            json!({"corpId": info.wecom.corp_id, "agentId": info.wecom.agent_id.to_string(),
                   "secret": info.wecom.secret, "apiBase": info.wecom.api_base_url, "events": events}),
            OrgRef::Wecom,
            "wecom",
        ),
        Platform::DingTalk => {
            let d = &info.dingtalk[0];
            (
                json!({"corpId": d.corp_id, "agentId": d.agent_id.to_string(), "appKey": d.app_key,
                       "appSecret": d.app_secret, "apiBase": d.api_base_url, "oapiBase": d.oapi_base_url,
                       "events": events}),
                OrgRef::Dingtalk(0),
                "dingtalk",
            )
        }
    };
    write("corps/Bench/Bench.json", config)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free local port: {e}"))?
        .port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let host = tokio::spawn(jit_serve::run(
        jit_serve::ServeOptions {
            app_dir: dir.path().to_path_buf(),
            listen: format!("127.0.0.1:{port}"),
            grace: Duration::from_secs(5),
            log_format: jit_serve::LogFormat::Text,
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let store = jit_store::open_for_app(dir.path(), None)
        .await
        .map_err(|e| e.to_string())?;
    // jit serve syncs a never-synced org once at start.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let runs = store.list_runs(ORG, 5).await.map_err(|e| e.to_string())?;
        if runs
            .iter()
            .any(|r| r.outcome == jit_store::RunOutcome::Applied)
        {
            break;
        }
        if Instant::now() > deadline || host.is_finished() {
            return Err("jit serve did not sync the org at start".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sim.set_callback(
        org,
        Some(CallbackConfig {
            url: format!("http://127.0.0.1:{port}/callbacks/{path}/{ORG}"),
            token: TOKEN.into(),
            aes_key: KEY.into(),
        }),
    )
    .map_err(|e| e.to_string())?;
    let truth = match org {
        OrgRef::Wecom => sim.wecom_truth(),
        OrgRef::Dingtalk(i) => sim.dingtalk_truth(i),
    };
    let n = a.mutations;
    let calls_before = sim_calls(&sim);
    let sent = produce(&sim, org, n, a.rate, &mutation(&truth)).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = store.inbox_summary(ORG).await.map_err(|e| e.to_string())?;
        if s.applied + s.failed >= n as u64 && s.pending == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("not every event was applied in time: {s:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = sim_calls(&sim) - calls_before;
    let mut rows = store
        .inbox_list(ORG, n + 10, None)
        .await
        .map_err(|e| e.to_string())?;
    rows.sort_by_key(|r| r.event_id);
    let applied = rows.iter().filter(|r| r.applied_at.is_some()).count();
    let batches: std::collections::BTreeSet<i64> = rows.iter().filter_map(|r| r.run_id).collect();
    let mut latencies: Vec<f64> = rows
        .iter()
        .zip(&sent)
        .filter_map(|(r, t)| r.applied_at.map(|at| (at - t) as f64))
        .collect();
    latencies.sort_by(|x, y| x.total_cmp(y));
    let client = jit_client(platform, &info)?;
    let corp = CorpRecord {
        full_name: ORG.into(),
        title: "Bench".into(),
        corp_type: jit_corps_type(platform).into(),
        provider: platform.provider(),
        corp_id: match platform {
            Platform::Wecom => info.wecom.corp_id.clone(),
            Platform::DingTalk => info.dingtalk[0].corp_id.clone(),
        },
    };
    let missed = missed_changes(&client, store.as_ref(), &corp).await?;
    let _ = stop_tx.send(());
    let _ = host.await;
    report(
        a,
        platform,
        "jit serve",
        applied,
        batches.len(),
        latencies,
        calls,
        missed,
    );
    Ok(())
}

/// A client of the org for the final check (and the direct mode).
fn jit_client(platform: Platform, info: &jit_sim::SimInfo) -> Result<CorpClient, String> {
    Ok(match platform {
        Platform::Wecom => {
            let w = &info.wecom;
            let mut c = WecomConfig::new(&w.corp_id, w.agent_id.to_string(), &w.secret);
            c.api_base = w.api_base_url.clone();
            CorpClient::Wecom(Arc::new(WecomClient::new(c).map_err(|e| e.to_string())?))
        }
        Platform::DingTalk => {
            let d = &info.dingtalk[0];
            let mut c = DingTalkConfig::new(
                &d.corp_id,
                d.agent_id.to_string(),
                &d.app_key,
                &d.app_secret,
            );
            c.api_base = d.api_base_url.clone();
            c.oapi_base = d.oapi_base_url.clone();
            CorpClient::DingTalk(Arc::new(DingTalkClient::new(c).map_err(|e| e.to_string())?))
        }
    })
}

/// What a full dry-run sync would still change: 0 when the store equals
/// the truth.
async fn missed_changes(
    client: &CorpClient,
    store: &dyn jit_store::CorpStore,
    corp: &CorpRecord,
) -> Result<usize, String> {
    let check = run_sync(
        client.source(),
        store,
        corp,
        &SyncOptions {
            dry_run: true,
            ..SyncOptions::default()
        },
        &NoProgress,
    )
    .await
    .map_err(|e| format!("the final check sync failed: {e}"))?;
    Ok(check
        .changes
        .iter()
        .filter(|c| c.kind != ChangeKind::Skipped)
        .count())
}

#[allow(clippy::too_many_arguments)]
fn report(
    a: &EventsArgs,
    platform: Platform,
    via: &str,
    applied: usize,
    batches: usize,
    latencies: Vec<f64>,
    calls: u64,
    missed: usize,
) {
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    let per_event = calls as f64 / applied.max(1) as f64;
    emit(json!({
        "scenario": "events",
        "via": via,
        "platform": platform.as_str(),
        "members": a.users,
        "mutations": a.mutations,
        "ratePerSecond": a.rate,
        "eventsApplied": applied,
        "batches": batches,
        "p50Ms": (p50 * 10.0).round() / 10.0,
        "p99Ms": (p99 * 10.0).round() / 10.0,
        "apiCalls": calls,
        "callsPerEvent": (per_event * 1000.0).round() / 1000.0,
        "storeEqualsTruth": missed == 0 && applied == a.mutations,
        "missedChanges": missed,
        "targetP99Ms": TARGET_P99_MS,
        "targetCallsPerEvent": TARGET_CALLS_PER_EVENT,
        "meetsTargets": p99 < TARGET_P99_MS && per_event <= TARGET_CALLS_PER_EVENT && missed == 0,
    }));
}

/// Received events, in arrival order, with the index of the mutation that
/// pushed each (one event per mutation, in order).
#[derive(Clone)]
struct Inbox {
    platform: Platform,
    /// jit serve's own receiver: verifies, opens and reads each callback.
    receiver: Arc<Receiver>,
    events: Arc<Mutex<Vec<InboxEvent>>>,
}

impl Inbox {
    fn push(&self, event_type: String, payload: Value) {
        let mut q = self.events.lock().expect("inbox lock");
        let id = q.len() as i64;
        q.push(InboxEvent {
            id,
            corp: ORG.into(),
            platform: self.platform,
            event_type,
            payload,
            received_at_ms: 0,
            attempts: 0,
        });
    }
}

async fn wecom_post(
    State(i): State<Inbox>,
    Query(q): Query<CallbackQuery>,
    body: String,
) -> String {
    let Ok(event) = i.receiver.wecom_event(&q, &body, now_ms()) else {
        return "refused".into();
    };
    i.push(
        event.event_type,
        serde_json::from_str(&event.payload).unwrap_or_default(),
    );
    "success".into()
}

async fn ding_post(
    State(i): State<Inbox>,
    Query(q): Query<CallbackQuery>,
    body: String,
) -> Json<Value> {
    if let Ok(DingTalkPush::Event(event)) = i.receiver.dingtalk_push(&q, &body, now_ms()) {
        i.push(
            event.event_type,
            serde_json::from_str(&event.payload).unwrap_or_default(),
        );
    }
    let reply = i.receiver.dingtalk_success(now_ms()).ok();
    Json(serde_json::to_value(reply).unwrap_or(Value::Null))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The apply path alone: callbacks opened here, applied in batches of
/// whatever has arrived.
async fn bench(a: &EventsArgs, platform: Platform) -> Result<(), String> {
    let sim = start_sim(a).await?;
    let info = sim.info();
    let client = jit_client(platform, &info)?;
    let (corp_id, org, receive_id) = match platform {
        Platform::Wecom => (
            info.wecom.corp_id.clone(),
            OrgRef::Wecom,
            info.wecom.corp_id.clone(),
        ),
        Platform::DingTalk => {
            let d = &info.dingtalk[0];
            (d.corp_id.clone(), OrgRef::Dingtalk(0), d.app_key.clone())
        }
    };
    let corp = CorpRecord {
        full_name: ORG.into(),
        title: "Bench".into(),
        corp_type: jit_corps_type(platform).into(),
        provider: platform.provider(),
        corp_id,
    };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = jit_store::open(dir.path().join("org.db").to_str().unwrap_or("org.db"))
        .await
        .map_err(|e| e.to_string())?;
    run_sync(
        client.source(),
        store.as_ref(),
        &corp,
        &SyncOptions::default(),
        &NoProgress,
    )
    .await
    .map_err(|e| format!("the first sync failed: {e}"))?;
    let truth = match org {
        OrgRef::Wecom => sim.wecom_truth(),
        OrgRef::Dingtalk(i) => sim.dingtalk_truth(i),
    };
    let inbox = Inbox {
        platform,
        receiver: Arc::new(
            match platform {
                Platform::Wecom => Receiver::wecom(ORG, TOKEN, KEY, &corp.corp_id),
                Platform::DingTalk => {
                    Receiver::dingtalk(ORG, TOKEN, KEY, &corp.corp_id, &receive_id)
                }
            }
            .map_err(|e| e.to_string())?,
        ),
        events: Arc::default(),
    };
    let router = Router::new()
        .route("/wecom", post(wecom_post))
        .route("/ding", post(ding_post))
        .with_state(inbox.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move { axum::serve(l, router).await });
    let path = if platform == Platform::Wecom {
        "wecom"
    } else {
        "ding"
    };
    sim.set_callback(
        org,
        Some(CallbackConfig {
            url: format!("http://{addr}/{path}"),
            token: TOKEN.into(),
            aes_key: KEY.into(),
        }),
    )
    .map_err(|e| e.to_string())?;

    let n = a.mutations;
    let calls_before = sim_calls(&sim);
    let producer_done = std::sync::atomic::AtomicBool::new(false);
    let sent_at: Mutex<Vec<i64>> = Mutex::new(Vec::new());
    let make = mutation(&truth);
    let producer = async {
        let r = produce(&sim, org, n, a.rate, &make).await;
        if let Ok(s) = &r {
            *sent_at.lock().expect("sent lock") = s.clone();
        }
        producer_done.store(true, std::sync::atomic::Ordering::SeqCst);
        r.map(|_| ())
    };
    let ctx = ApplyContext::new(
        store.as_ref(),
        corp.clone(),
        SyncOptions::default(),
        client.clone(),
    );
    let worker = async {
        let mut committed: Vec<i64> = Vec::with_capacity(n);
        let mut batches = 0usize;
        let deadline =
            Instant::now() + Duration::from_secs_f64(n as f64 / a.rate.max(0.001) + 120.0);
        loop {
            let batch: Vec<InboxEvent> =
                inbox.events.lock().expect("inbox lock")[committed.len()..].to_vec();
            if batch.is_empty() {
                let done = producer_done.load(std::sync::atomic::Ordering::SeqCst);
                if (done && committed.len() >= n) || Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            apply_events(&ctx, &batch)
                .await
                .map_err(|e| format!("applying a batch of {} events failed: {e}", batch.len()))?;
            let at = now_ms();
            committed.extend(batch.iter().map(|_| at));
            batches += 1;
        }
        Ok::<_, String>((committed, batches))
    };
    let (produced, applied) = tokio::join!(producer, worker);
    produced?;
    let (committed, batches) = applied?;
    let calls = sim_calls(&sim) - calls_before;
    let sent = sent_at.lock().expect("sent lock").clone();
    let mut latencies: Vec<f64> = committed
        .iter()
        .zip(&sent)
        .map(|(c, s)| (c - s) as f64)
        .collect();
    latencies.sort_by(|x, y| x.total_cmp(y));
    let missed = missed_changes(&client, store.as_ref(), &corp).await?;
    report(
        a,
        platform,
        "direct",
        committed.len(),
        batches,
        latencies,
        calls,
        missed,
    );
    Ok(())
}

fn jit_corps_type(platform: Platform) -> &'static str {
    match platform {
        Platform::Wecom => "corps.QywxInnerType",
        Platform::DingTalk => "corps.DDInnerType",
    }
}
