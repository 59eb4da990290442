//! The `events` scenario: event-driven sync keeping a large org current.
//!
//! A simulated org (20,000 members by default) is synced once into SQLite;
//! then the simulator's callback points at a receiver in this process (it
//! opens each push with the org's own crypto: WeCom WXBizMsgCrypt or
//! DingTalk's HTTP-push cipher) and 1,000 mutations are made upstream at
//! 100 per second (renames, moves, hires, disables, each pushing one
//! event). A worker applies whatever has arrived as one batch through
//! `jit_events::apply::apply_events` (the engine's plan, safety checks and
//! transaction, one run of kind `event` per batch), as the inbox worker
//! does.
//!
//! Reported: p50/p99 of the time from the mutation (the simulator queues
//! the callback at once) to the commit of the batch that holds its event,
//! platform calls per event, and whether the store equals the truth at the
//! end (a full dry-run sync finds nothing to change). Targets: p99 < 1 s,
//! ≤ 2 calls per single-member event.
//!
//! The receiver here stands in for `jit serve`'s: the callbacks go over
//! real HTTP with real crypto, but the inbox (persisting before answering)
//! is not part of the measured path.

use crate::emit;
use axum::extract::{Query, State};
use axum::routing::post;
use axum::{Json, Router};
use jit_corps::CorpClient;
use jit_crypto::{xml_field, DingTalkCrypto, WecomCrypto};
use jit_dingtalk::{DingTalkClient, DingTalkConfig};
use jit_events::apply::{apply_events, ApplyContext, InboxEvent};
use jit_org::{ChangeKind, CorpRecord, Platform};
use jit_sim::{CallbackConfig, MembershipSpec, Mutation, OrgRef, SimConfig, Simulator};
use jit_sync::{run_sync, NoProgress, SyncOptions};
use jit_wecom::{WecomClient, WecomConfig};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
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
}

const TARGET_P99_MS: f64 = 1_000.0;
const TARGET_CALLS_PER_EVENT: f64 = 2.0;
const TOKEN: &str = "benchtoken1";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const ORG: &str = "corps.Bench";
const WECOM_FIELDS: &[&str] = &[
    "Event",
    "ChangeType",
    "UserID",
    "NewUserID",
    "Department",
    "Id",
    "TagId",
];

/// Runs the scenario; prints one line.
pub fn run_events(a: &EventsArgs) -> Result<(), String> {
    let platform = Platform::parse(&a.platform)
        .ok_or_else(|| format!("--platform must be wecom or dingtalk, not {:?}", a.platform))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(bench(a, platform))
}

/// Received events, in arrival order, with the index of the mutation that
/// pushed each (one event per mutation, in order).
#[derive(Clone)]
struct Inbox {
    platform: Platform,
    wecom: Option<WecomCrypto>,
    ding: Option<DingTalkCrypto>,
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
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> String {
    let c = i.wecom.as_ref().expect("wecom crypto");
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let Ok(xml) = c.open_event(&body, get("msg_signature"), get("timestamp"), get("nonce")) else {
        return "refused".into();
    };
    let mut f = Map::new();
    for k in WECOM_FIELDS {
        if let Some(v) = xml_field(&xml, k) {
            f.insert(k.to_string(), Value::String(v));
        }
    }
    let kind = xml_field(&xml, "ChangeType")
        .or_else(|| xml_field(&xml, "Event"))
        .unwrap_or_default();
    i.push(kind, Value::Object(f));
    "success".into()
}

async fn ding_post(
    State(i): State<Inbox>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Json<Value> {
    let c = i.ding.as_ref().expect("dingtalk crypto");
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    if let Ok(plain) = c.open_request(get("signature"), get("timestamp"), get("nonce"), &body) {
        if let Ok(v) = serde_json::from_str::<Value>(&plain) {
            let kind = v["EventType"].as_str().unwrap_or_default().to_string();
            i.push(kind, v);
        }
    }
    Json(serde_json::to_value(c.success_reply(get("timestamp"), "bench")).unwrap_or(Value::Null))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn bench(a: &EventsArgs, platform: Platform) -> Result<(), String> {
    let depts = (a.users / 40).max(4);
    let sim = Simulator::start(SimConfig {
        users: a.users,
        depts,
        dingtalk_users: Some(a.users),
        dingtalk_depts: Some(depts),
        dingtalk_orgs: 1,
        latency_ms: 0,
        // Setting up a 20,000-member org at the real rate limits would take
        // minutes; the scenario measures the events, not the first sync.
        wecom_rate_per_minute: 0,
        wecom_rate_per_hour: 0,
        dingtalk_rate_per_second: 0,
        ..SimConfig::default()
    })
    .await
    .map_err(|e| format!("cannot start the simulator: {e}"))?;
    let info = sim.info();
    let (client, corp_id, org, receive_id) = match platform {
        Platform::Wecom => {
            let w = &info.wecom;
            let mut c = WecomConfig::new(&w.corp_id, w.agent_id.to_string(), &w.secret);
            c.api_base = w.api_base_url.clone();
            let client = WecomClient::new(c).map_err(|e| e.to_string())?;
            (
                CorpClient::Wecom(Arc::new(client)),
                w.corp_id.clone(),
                OrgRef::Wecom,
                w.corp_id.clone(),
            )
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
            let client = DingTalkClient::new(c).map_err(|e| e.to_string())?;
            (
                CorpClient::DingTalk(Arc::new(client)),
                d.corp_id.clone(),
                OrgRef::Dingtalk(0),
                d.app_key.clone(),
            )
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
        wecom: (platform == Platform::Wecom)
            .then(|| WecomCrypto::new(TOKEN, KEY, &receive_id))
            .transpose()
            .map_err(|e| e.to_string())?,
        ding: (platform == Platform::DingTalk)
            .then(|| DingTalkCrypto::new(TOKEN, KEY, &receive_id))
            .transpose()
            .map_err(|e| e.to_string())?,
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

    // The mutations: one event each, spread over the org.
    let people: Vec<String> = truth
        .members
        .values()
        .filter(|m| m.status == jit_org::MemberStatus::Active)
        .map(|m| m.member_id.clone())
        .collect();
    let dept_ids: Vec<i64> = truth.depts.keys().copied().filter(|d| *d != 1).collect();
    let mutation = |i: usize| -> Mutation {
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
    };

    let calls_before = client.stats().total_calls();
    let n = a.mutations;
    let interval = Duration::from_secs_f64(1.0 / a.rate.max(0.001));
    let sent: Mutex<Vec<Instant>> = Mutex::new(Vec::with_capacity(n));
    let producer_done = std::sync::atomic::AtomicBool::new(false);
    let producer = async {
        let start = Instant::now();
        for i in 0..n {
            tokio::time::sleep_until((start + interval * i as u32).into()).await;
            let t = Instant::now();
            let r = sim.mutate(org, mutation(i));
            match r {
                Ok(o) if o.events.len() == 1 => sent.lock().expect("sent lock").push(t),
                Ok(o) => {
                    producer_done.store(true, std::sync::atomic::Ordering::SeqCst);
                    return Err(format!("mutation {i} pushed {} events", o.events.len()));
                }
                Err(e) => {
                    producer_done.store(true, std::sync::atomic::Ordering::SeqCst);
                    return Err(format!("mutation {i}: {e}"));
                }
            }
        }
        producer_done.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    };
    let ctx = ApplyContext::new(
        store.as_ref(),
        corp.clone(),
        SyncOptions::default(),
        client.clone(),
    );
    let worker = async {
        let mut latencies_ms: Vec<f64> = Vec::with_capacity(n);
        let mut applied = 0usize;
        let mut batches = 0usize;
        let deadline =
            Instant::now() + Duration::from_secs_f64(n as f64 / a.rate.max(0.001) + 60.0);
        loop {
            let batch: Vec<InboxEvent> =
                inbox.events.lock().expect("inbox lock")[applied..].to_vec();
            if batch.is_empty() {
                let done = producer_done.load(std::sync::atomic::Ordering::SeqCst);
                if (done && applied >= sent.lock().expect("sent lock").len())
                    || Instant::now() > deadline
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            apply_events(&ctx, &batch)
                .await
                .map_err(|e| format!("applying a batch of {} events failed: {e}", batch.len()))?;
            let committed = Instant::now();
            let sent = sent.lock().expect("sent lock");
            for j in applied..applied + batch.len() {
                if let Some(t) = sent.get(j) {
                    latencies_ms.push(committed.duration_since(*t).as_secs_f64() * 1000.0);
                }
            }
            applied += batch.len();
            batches += 1;
        }
        Ok::<_, String>((latencies_ms, applied, batches))
    };
    let (produced, applied) = tokio::join!(producer, worker);
    produced?;
    let (mut latencies, applied, batches) = applied?;
    let calls = client.stats().total_calls() - calls_before;
    latencies.sort_by(|x, y| x.total_cmp(y));
    // The store equals the truth when a full sync finds nothing to change.
    let check = run_sync(
        client.source(),
        store.as_ref(),
        &corp,
        &SyncOptions {
            dry_run: true,
            ..SyncOptions::default()
        },
        &NoProgress,
    )
    .await
    .map_err(|e| format!("the final check sync failed: {e}"))?;
    let missed = check
        .changes
        .iter()
        .filter(|c| c.kind != ChangeKind::Skipped)
        .count();
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    let per_event = calls as f64 / applied.max(1) as f64;
    emit(json!({
        "scenario": "events",
        "platform": platform.as_str(),
        "members": a.users,
        "mutations": n,
        "ratePerSecond": a.rate,
        "eventsApplied": applied,
        "batches": batches,
        "p50Ms": (p50 * 10.0).round() / 10.0,
        "p99Ms": (p99 * 10.0).round() / 10.0,
        "apiCalls": calls,
        "callsPerEvent": (per_event * 1000.0).round() / 1000.0,
        "storeEqualsTruth": missed == 0 && applied == n,
        "missedChanges": missed,
        "targetP99Ms": TARGET_P99_MS,
        "targetCallsPerEvent": TARGET_CALLS_PER_EVENT,
        "meetsTargets": p99 < TARGET_P99_MS && per_event <= TARGET_CALLS_PER_EVENT && missed == 0,
    }));
    Ok(())
}

fn jit_corps_type(platform: Platform) -> &'static str {
    match platform {
        Platform::Wecom => "corps.QywxInnerType",
        Platform::DingTalk => "corps.DDInnerType",
    }
}
