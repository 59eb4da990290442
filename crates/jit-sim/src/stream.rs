//! DingTalk Stream mode (reference B.8): the gateway's open call
//! (`POST /v1.0/gateway/connections/open`, AppKey + secret → endpoint and a
//! one-time ticket) and the WebSocket at `/gateway/connect?ticket=…`, which
//! pushes the org's events as EVENT frames, sends SYSTEM pings, and
//! redelivers what was not acked SUCCESS.
//!
//! Choices where the reference is silent (UNCONFIRMED there):
//! - a wrong AppKey or secret is HTTP 400 `InvalidAuthentication`, as the
//!   new API family answers a bad credential; a ticket is valid 90 s, once;
//! - an org's events are queued from its first successful open call on
//!   (before that, the app is in HTTP push mode only) and kept until acked;
//! - one connection per org: a new one replaces the old one (the old is
//!   closed), and frames the old one left unacked go to the new one;
//! - an answer with code 200 acks a frame unless its status is LATER (the
//!   Go SDK writes `{"status":"SUCCESS"}`, the Python SDK echoes the data);
//!   a frame acked LATER is sent again after `laterDelayMs`, one not acked
//!   within `ackTimeoutMs` again at once; a 400/404 answer drops it;
//! - the frame's `data` is the HTTP push payload without its envelope
//!   (`EventType`, `EventTime`, `CorpId`, `eventId`), which become the
//!   headers `eventType`, `eventBornTime`, `eventCorpId`, `eventId`.

use crate::admin::EventDraft;
use crate::config::OrgRef;
use crate::org::Platform;
use crate::server::Shared;
use crate::SimError;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

/// How long a ticket from the open call can be used (once).
const TICKET_LIFETIME: Duration = Duration::from_secs(90);
/// How long the server waits for the ack of its `disconnect` before closing.
const DISCONNECT_GRACE: Duration = Duration::from_secs(1);

/// Counters of one org's Stream gateway (`GET /_sim/orgs/{org}/stream`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStats {
    /// Whether a client is connected now.
    pub connected: bool,
    /// WebSocket connections accepted.
    pub connections: u64,
    /// Open calls refused (wrong AppKey or secret, bad request).
    pub opens_refused: u64,
    /// EVENT frames sent, redeliveries included.
    pub frames_sent: u64,
    /// EVENT frames acked SUCCESS.
    pub acked: u64,
    /// EVENT frames acked LATER.
    pub later: u64,
    /// EVENT frames answered 400/404 (dropped).
    pub refused: u64,
    /// EVENT frames sent again (after LATER, an ack timeout or a lost connection).
    pub redelivered: u64,
    /// Events waiting to be acked SUCCESS now.
    pub pending: u64,
    /// SYSTEM pings sent.
    pub pings_sent: u64,
    /// Answers to pings (code 200, same messageId, data echoed).
    pub pongs: u64,
    /// SYSTEM disconnects sent.
    pub disconnects_sent: u64,
    /// Connections dropped on purpose (admin `drop`, `dropAfterFrames`).
    pub drops: u64,
    /// WebSocket pings received from clients (their keepalive).
    pub keepalive_pings: u64,
}

/// How one org's gateway behaves; `POST /_sim/orgs/{org}/stream/settings`
/// changes it (fields left out keep their value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamSettings {
    /// Interval of SYSTEM pings (0 = none).
    pub ping_interval_ms: u64,
    /// A frame not acked within this is sent again.
    pub ack_timeout_ms: u64,
    /// A frame acked LATER is sent again after this.
    pub later_delay_ms: u64,
    /// Fault: drop the socket (no close frame) right after this many more
    /// EVENT frames were sent; cleared when it fires.
    pub drop_after_frames: Option<u64>,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            ping_interval_ms: 10_000,
            ack_timeout_ms: 5_000,
            later_delay_ms: 500,
            drop_after_frames: None,
        }
    }
}

/// What the admin API can make the live connection do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCommand {
    /// Drop the socket without a close frame, as a network failure would.
    Drop,
    /// Send SYSTEM `disconnect` (the client should ack and reconnect).
    Disconnect,
    /// Send a SYSTEM `ping` now.
    Ping,
}

enum Ctl {
    Command(StreamCommand),
    /// A text frame sent as it is (hostile-input tests).
    Raw(String),
    Replaced,
}

#[derive(Clone, Copy)]
enum Sent {
    No,
    At(Instant),
    Later(Instant),
}

struct Pending {
    message_id: String,
    event_id: String,
    event_type: String,
    corp_id: String,
    born_ms: i64,
    data: String,
    sent: Sent,
    attempts: u64,
}

#[derive(Default)]
struct OrgStream {
    enabled: bool,
    pending: VecDeque<Pending>,
    seq: u64,
    generation: u64,
    control: Option<mpsc::UnboundedSender<Ctl>>,
    stats: StreamStats,
    settings: StreamSettings,
}

struct Ticket {
    org: usize,
    topics: Vec<String>,
    issued: Instant,
}

/// Every org's gateway state.
pub(crate) struct Streams {
    orgs: Vec<Mutex<OrgStream>>,
    wake: Vec<Notify>,
    tickets: Mutex<HashMap<String, Ticket>>,
}

impl Streams {
    pub(crate) fn new(orgs: usize) -> Streams {
        Streams {
            orgs: (0..orgs)
                .map(|_| Mutex::new(OrgStream::default()))
                .collect(),
            wake: (0..orgs).map(|_| Notify::new()).collect(),
            tickets: Mutex::new(HashMap::new()),
        }
    }

    fn org(&self, idx: usize) -> std::sync::MutexGuard<'_, OrgStream> {
        self.orgs[idx].lock().expect("stream lock")
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Queues a mutation's DingTalk events for the org's stream (once the app
/// opened one); returns their kinds.
pub(crate) fn push(sh: &Shared, idx: usize, drafts: &[EventDraft]) -> Vec<String> {
    let mut kinds = Vec::new();
    {
        let mut st = sh.streams.org(idx);
        if !st.enabled {
            return kinds;
        }
        for d in drafts {
            let Ok(Value::Object(mut payload)) = serde_json::from_str::<Value>(&d.payload) else {
                continue;
            };
            let mut take = |k: &str| payload.remove(k).unwrap_or(Value::Null);
            let event_type = take("EventType").as_str().unwrap_or(&d.kind).to_string();
            let born_ms = take("EventTime").as_i64().unwrap_or_else(now_ms);
            let corp_id = take("CorpId").as_str().unwrap_or("").to_string();
            let event_id = take("eventId").as_str().unwrap_or("").to_string();
            st.seq += 1;
            let message_id = format!("{:08x}-{}", st.seq, jit_crypto::random_nonce(8));
            st.pending.push_back(Pending {
                message_id,
                event_id,
                event_type,
                corp_id,
                born_ms,
                data: Value::Object(payload).to_string(),
                sent: Sent::No,
                attempts: 0,
            });
            kinds.push(d.kind.clone());
        }
        st.stats.pending = st.pending.len() as u64;
    }
    sh.streams.wake[idx].notify_one();
    kinds
}

/// Counters of an org's gateway.
pub(crate) fn stats(sh: &Shared, r: OrgRef) -> Result<StreamStats, SimError> {
    dingtalk_org(sh, r)?;
    Ok(sh.streams.org(r.index()).stats.clone())
}

/// The settings of an org's gateway.
pub(crate) fn settings(sh: &Shared, r: OrgRef) -> Result<StreamSettings, SimError> {
    dingtalk_org(sh, r)?;
    Ok(sh.streams.org(r.index()).settings.clone())
}

/// Replaces the settings of an org's gateway.
pub(crate) fn set_settings(sh: &Shared, r: OrgRef, s: StreamSettings) -> Result<(), SimError> {
    dingtalk_org(sh, r)?;
    sh.streams.org(r.index()).settings = s;
    sh.streams.wake[r.index()].notify_one();
    Ok(())
}

/// Makes the org's live connection drop, disconnect or ping.
pub(crate) fn command(sh: &Shared, r: OrgRef, c: StreamCommand) -> Result<(), SimError> {
    control(sh, r, Ctl::Command(c))
}

/// Sends a text frame as it is on the org's live connection; its answer is
/// not interpreted.
pub(crate) fn send_raw(sh: &Shared, r: OrgRef, text: String) -> Result<(), SimError> {
    control(sh, r, Ctl::Raw(text))
}

fn control(sh: &Shared, r: OrgRef, ctl: Ctl) -> Result<(), SimError> {
    dingtalk_org(sh, r)?;
    let st = sh.streams.org(r.index());
    let sent = st.control.as_ref().is_some_and(|tx| tx.send(ctl).is_ok());
    if sent {
        Ok(())
    } else {
        Err(SimError::Config(format!(
            "{} has no Stream connection",
            r.label()
        )))
    }
}

fn dingtalk_org(sh: &Shared, r: OrgRef) -> Result<(), SimError> {
    let lock = sh.org(r)?;
    if lock.read().expect("org lock").platform != Platform::DingTalk {
        return Err(SimError::Config(format!(
            "{} is not a DingTalk org: Stream mode is DingTalk's",
            r.label()
        )));
    }
    Ok(())
}

/// The gateway and its admin routes.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1.0/gateway/connections/open", post(open))
        .route("/gateway/connect", get(connect))
        .route("/_sim/orgs/{org}/stream", get(admin_stats))
        .route(
            "/_sim/orgs/{org}/stream/settings",
            get(admin_settings).post(admin_set_settings),
        )
        .route("/_sim/orgs/{org}/stream/{command}", post(admin_command))
}

fn refuse(sh: &Shared, status: u16, code: &str, msg: &str) -> Response {
    (
        StatusCode::from_u16(status).expect("valid status"),
        Json(json!({"code": code, "message": msg, "requestid": sh.request_id()})),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpenReq {
    client_id: String,
    client_secret: String,
    #[serde(default)]
    subscriptions: Vec<Subscription>,
}

#[derive(Deserialize)]
struct Subscription {
    #[serde(rename = "type")]
    kind: String,
    topic: String,
}

async fn open(State(sh): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let refused = |sh: &Shared, idx: Option<usize>, status, code, msg: &str| {
        if let Some(i) = idx {
            sh.streams.org(i).stats.opens_refused += 1;
        }
        refuse(sh, status, code, msg)
    };
    let req: OpenReq = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return refused(
                &sh,
                None,
                400,
                "MissingParameter",
                &format!("the body needs clientId, clientSecret and subscriptions: {e}"),
            )
        }
    };
    let found = (1..sh.orgs.len()).find(|&i| {
        let o = sh.orgs[i].read().expect("org lock");
        o.platform == Platform::DingTalk && o.app_key == req.client_id
    });
    let Some(idx) = found else {
        return refused(
            &sh,
            None,
            400,
            "InvalidAuthentication",
            "clientId or clientSecret is invalid",
        );
    };
    if sh.orgs[idx].read().expect("org lock").secret != req.client_secret {
        return refused(
            &sh,
            Some(idx),
            400,
            "InvalidAuthentication",
            "clientId or clientSecret is invalid",
        );
    }
    if let Some(s) = req
        .subscriptions
        .iter()
        .find(|s| !matches!(s.kind.as_str(), "SYSTEM" | "EVENT" | "CALLBACK") || s.topic.is_empty())
    {
        return refused(
            &sh,
            Some(idx),
            400,
            "InvalidParameter",
            &format!(
                "subscription {:?}/{:?} is not a known type with a topic",
                s.kind, s.topic
            ),
        );
    }
    let topics: Vec<String> = req
        .subscriptions
        .iter()
        .filter(|s| s.kind == "EVENT")
        .map(|s| s.topic.clone())
        .collect();
    if topics.is_empty() {
        return refused(
            &sh,
            Some(idx),
            400,
            "InvalidParameter",
            "no EVENT subscription",
        );
    }
    let ticket = jit_crypto::random_nonce(32);
    {
        let mut t = sh.streams.tickets.lock().expect("tickets lock");
        t.retain(|_, v| v.issued.elapsed() < TICKET_LIFETIME);
        t.insert(
            ticket.clone(),
            Ticket {
                org: idx,
                topics,
                issued: Instant::now(),
            },
        );
    }
    sh.streams.org(idx).enabled = true;
    let base = sh
        .info
        .get()
        .map(|i| i.base_url.clone())
        .unwrap_or_default();
    let endpoint = format!("{}/gateway/connect", base.replacen("http://", "ws://", 1));
    Json(json!({"endpoint": endpoint, "ticket": ticket})).into_response()
}

#[derive(Deserialize)]
struct TicketQuery {
    #[serde(default)]
    ticket: String,
}

async fn connect(
    State(sh): State<Arc<Shared>>,
    Query(q): Query<TicketQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let ticket = sh
        .streams
        .tickets
        .lock()
        .expect("tickets lock")
        .remove(&q.ticket)
        .filter(|t| t.issued.elapsed() < TICKET_LIFETIME);
    let Some(ticket) = ticket else {
        return refuse(
            &sh,
            401,
            "InvalidTicket",
            "the ticket is unknown, used or expired",
        );
    };
    ws.on_upgrade(move |socket| serve_socket(sh, ticket.org, ticket.topics, socket))
}

/// The topic an event is delivered under for these subscriptions, if any.
fn topic_for(topics: &[String], event_type: &str) -> Option<String> {
    if topics.iter().any(|t| t == "*") {
        Some("*".to_string())
    } else {
        topics.iter().find(|t| *t == event_type).cloned()
    }
}

fn system_frame(topic: &str, message_id: &str, data: &str) -> String {
    json!({
        "specVersion": "1.0",
        "type": "SYSTEM",
        "time": now_ms(),
        "headers": {
            "topic": topic,
            "messageId": message_id,
            "contentType": "application/json",
            "time": now_ms().to_string(),
        },
        "data": data,
    })
    .to_string()
}

/// Takes the frames due now on connection `generation`; the bool says to
/// drop the socket after sending them (`dropAfterFrames`).
fn due_frames(
    sh: &Shared,
    idx: usize,
    generation: u64,
    topics: &[String],
    app_id: &str,
) -> (Vec<String>, bool) {
    let mut st = sh.streams.org(idx);
    if st.generation != generation {
        return (Vec::new(), false);
    }
    let now = Instant::now();
    let ack_timeout = Duration::from_millis(st.settings.ack_timeout_ms);
    let mut budget = st.settings.drop_after_frames;
    let mut frames = Vec::new();
    let mut sent = 0u64;
    let mut redelivered = 0u64;
    let mut unsubscribed = Vec::new();
    for p in st.pending.iter_mut() {
        if budget == Some(0) {
            break;
        }
        let due = match p.sent {
            Sent::No => true,
            Sent::At(t) => now.duration_since(t) >= ack_timeout,
            Sent::Later(t) => now >= t,
        };
        if !due {
            continue;
        }
        let Some(topic) = topic_for(topics, &p.event_type) else {
            unsubscribed.push(p.message_id.clone());
            continue;
        };
        frames.push(
            json!({
                "specVersion": "1.0",
                "type": "EVENT",
                "time": now_ms(),
                "headers": {
                    "topic": topic,
                    "messageId": p.message_id,
                    "contentType": "application/json",
                    "time": now_ms().to_string(),
                    "eventId": p.event_id,
                    "eventType": p.event_type,
                    "eventCorpId": p.corp_id,
                    "eventBornTime": p.born_ms.to_string(),
                    "eventUnifiedAppId": app_id,
                },
                "data": p.data,
            })
            .to_string(),
        );
        if p.attempts > 0 {
            redelivered += 1;
        }
        p.attempts += 1;
        p.sent = Sent::At(now);
        sent += 1;
        if let Some(b) = budget.as_mut() {
            *b -= 1;
        }
    }
    // Events of types this connection did not subscribe are not delivered.
    st.pending.retain(|p| !unsubscribed.contains(&p.message_id));
    st.stats.pending = st.pending.len() as u64;
    st.stats.frames_sent += sent;
    st.stats.redelivered += redelivered;
    let drop_now = budget == Some(0);
    if st.settings.drop_after_frames.is_some() {
        st.settings.drop_after_frames = if drop_now { None } else { budget };
    }
    (frames, drop_now)
}

/// Reads an answer: an event ack, a pong or the disconnect's ack. Returns
/// whether it acked `disconnect_id`.
fn on_answer(
    sh: &Shared,
    idx: usize,
    text: &str,
    pings: &mut HashMap<String, String>,
    disconnect_id: Option<&str>,
) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    let id = v["headers"]["messageId"].as_str().unwrap_or("");
    let code = v["code"].as_u64().unwrap_or(0);
    if disconnect_id == Some(id) {
        return true;
    }
    let mut st = sh.streams.org(idx);
    if let Some(data) = pings.remove(id) {
        // The data echoed as JSON: the Python SDK re-serialises it.
        let echoed = |d: &str| serde_json::from_str::<Value>(d).ok();
        if code == 200 && v["data"].as_str().and_then(echoed) == echoed(&data) {
            st.stats.pongs += 1;
        }
        return false;
    }
    let Some(pos) = st.pending.iter().position(|p| p.message_id == id) else {
        return false;
    };
    let status = v["data"]
        .as_str()
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
        .and_then(|d| d["status"].as_str().map(str::to_string))
        .unwrap_or_default();
    // 200 is success unless the status says LATER: the Go SDK writes
    // `{"status":"SUCCESS"}`, the Python SDK echoes the event's data.
    match (code, status.as_str()) {
        (_, "LATER") => {
            let delay = Duration::from_millis(st.settings.later_delay_ms);
            st.pending[pos].sent = Sent::Later(Instant::now() + delay);
            st.stats.later += 1;
        }
        (200, _) => {
            st.pending.remove(pos);
            st.stats.acked += 1;
        }
        (400 | 404, _) => {
            st.pending.remove(pos);
            st.stats.refused += 1;
        }
        // Anything else is no ack: the frame goes again after the ack timeout.
        _ => {}
    }
    st.stats.pending = st.pending.len() as u64;
    false
}

async fn serve_socket(sh: Arc<Shared>, idx: usize, topics: Vec<String>, mut ws: WebSocket) {
    let (tx, mut control) = mpsc::unbounded_channel::<Ctl>();
    let generation = {
        let mut st = sh.streams.org(idx);
        st.generation += 1;
        if let Some(old) = st.control.replace(tx) {
            let _ = old.send(Ctl::Replaced);
        }
        // What an earlier connection left unacked goes to this one.
        for p in st.pending.iter_mut() {
            if matches!(p.sent, Sent::At(_)) {
                p.sent = Sent::No;
            }
        }
        st.stats.connections += 1;
        st.stats.connected = true;
        st.generation
    };
    let app_id = sh.orgs[idx].read().expect("org lock").app_key.clone();
    let mut pings: HashMap<String, String> = HashMap::new();
    let mut last_ping = Instant::now();
    let mut disconnect: Option<(String, Instant)> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut seq = 0u64;
    let mut send_system = |topic: &str, pings: &mut HashMap<String, String>| {
        seq += 1;
        let id = format!("{topic}-{generation}-{seq}");
        let data = if topic == "ping" {
            let d = json!({"opaque": jit_crypto::random_nonce(12)}).to_string();
            pings.insert(id.clone(), d.clone());
            d
        } else {
            json!({"reason": "the server asks the client to reconnect"}).to_string()
        };
        (id.clone(), system_frame(topic, &id, &data))
    };
    'conn: loop {
        let (frames, drop_now) = due_frames(&sh, idx, generation, &topics, &app_id);
        for f in frames {
            if ws.send(Message::Text(f.into())).await.is_err() {
                break 'conn;
            }
        }
        if drop_now {
            sh.streams.org(idx).stats.drops += 1;
            break 'conn;
        }
        let ping_every = sh.streams.org(idx).settings.ping_interval_ms;
        if ping_every > 0
            && disconnect.is_none()
            && last_ping.elapsed() >= Duration::from_millis(ping_every)
        {
            let (_, frame) = send_system("ping", &mut pings);
            if ws.send(Message::Text(frame.into())).await.is_err() {
                break 'conn;
            }
            sh.streams.org(idx).stats.pings_sent += 1;
            last_ping = Instant::now();
        }
        if let Some((_, deadline)) = &disconnect {
            if Instant::now() >= *deadline {
                let _ = ws.send(Message::Close(None)).await;
                break 'conn;
            }
        }
        tokio::select! {
            m = ws.recv() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break 'conn,
                Some(Ok(Message::Text(t))) => {
                    let id = disconnect.as_ref().map(|d| d.0.as_str());
                    if on_answer(&sh, idx, t.as_str(), &mut pings, id) {
                        let _ = ws.send(Message::Close(None)).await;
                        break 'conn;
                    }
                }
                Some(Ok(Message::Ping(_))) => sh.streams.org(idx).stats.keepalive_pings += 1,
                Some(Ok(_)) => {}
            },
            c = control.recv() => match c {
                Some(Ctl::Command(StreamCommand::Drop)) => {
                    sh.streams.org(idx).stats.drops += 1;
                    break 'conn;
                }
                Some(Ctl::Command(StreamCommand::Disconnect)) => {
                    let (id, frame) = send_system("disconnect", &mut pings);
                    if ws.send(Message::Text(frame.into())).await.is_err() {
                        break 'conn;
                    }
                    sh.streams.org(idx).stats.disconnects_sent += 1;
                    disconnect = Some((id, Instant::now() + DISCONNECT_GRACE));
                }
                Some(Ctl::Command(StreamCommand::Ping)) => {
                    let (_, frame) = send_system("ping", &mut pings);
                    if ws.send(Message::Text(frame.into())).await.is_err() {
                        break 'conn;
                    }
                    sh.streams.org(idx).stats.pings_sent += 1;
                    last_ping = Instant::now();
                }
                Some(Ctl::Raw(text)) => {
                    if ws.send(Message::Text(text.into())).await.is_err() {
                        break 'conn;
                    }
                }
                Some(Ctl::Replaced) | None => {
                    let _ = ws.send(Message::Close(None)).await;
                    break 'conn;
                }
            },
            _ = sh.streams.wake[idx].notified() => {}
            _ = tick.tick() => {}
        }
    }
    // Dropping the socket closes the TCP connection (no close frame when
    // the loop ended on a drop). Unacked frames wait for the next client.
    drop(ws);
    let mut st = sh.streams.org(idx);
    if st.generation == generation {
        st.control = None;
        st.stats.connected = false;
        for p in st.pending.iter_mut() {
            if matches!(p.sent, Sent::At(_)) {
                p.sent = Sent::No;
            }
        }
    }
}

fn bad(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": msg.to_string()}))).into_response()
}

fn org_of(s: &str) -> Result<OrgRef, String> {
    s.parse::<OrgRef>()
}

async fn admin_stats(State(sh): State<Arc<Shared>>, Path(org): Path<String>) -> Response {
    let r = match org_of(&org) {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::NOT_FOUND, e),
    };
    match stats(&sh, r) {
        Ok(s) => Json(s).into_response(),
        Err(e) => bad(StatusCode::NOT_FOUND, e),
    }
}

async fn admin_settings(State(sh): State<Arc<Shared>>, Path(org): Path<String>) -> Response {
    let r = match org_of(&org) {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::NOT_FOUND, e),
    };
    match settings(&sh, r) {
        Ok(s) => Json(s).into_response(),
        Err(e) => bad(StatusCode::NOT_FOUND, e),
    }
}

/// Body of `POST …/stream/settings`: fields left out keep their value.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettingsPatch {
    ping_interval_ms: Option<u64>,
    ack_timeout_ms: Option<u64>,
    later_delay_ms: Option<u64>,
    drop_after_frames: Option<Option<u64>>,
}

async fn admin_set_settings(
    State(sh): State<Arc<Shared>>,
    Path(org): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let r = match org_of(&org) {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::NOT_FOUND, e),
    };
    let p: SettingsPatch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("bad stream settings: {e}")),
    };
    let mut s = match settings(&sh, r) {
        Ok(s) => s,
        Err(e) => return bad(StatusCode::NOT_FOUND, e),
    };
    s.ping_interval_ms = p.ping_interval_ms.unwrap_or(s.ping_interval_ms);
    s.ack_timeout_ms = p.ack_timeout_ms.unwrap_or(s.ack_timeout_ms);
    s.later_delay_ms = p.later_delay_ms.unwrap_or(s.later_delay_ms);
    if let Some(d) = p.drop_after_frames {
        s.drop_after_frames = d;
    }
    match set_settings(&sh, r, s.clone()) {
        Ok(()) => Json(s).into_response(),
        Err(e) => bad(StatusCode::NOT_FOUND, e),
    }
}

async fn admin_command(
    State(sh): State<Arc<Shared>>,
    Path((org, name)): Path<(String, String)>,
) -> Response {
    let r = match org_of(&org) {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::NOT_FOUND, e),
    };
    let c = match name.as_str() {
        "drop" => StreamCommand::Drop,
        "disconnect" => StreamCommand::Disconnect,
        "ping" => StreamCommand::Ping,
        other => {
            return bad(
                StatusCode::NOT_FOUND,
                format!("no stream command {other:?} (drop, disconnect, ping)"),
            )
        }
    };
    match command(&sh, r, c) {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => bad(StatusCode::CONFLICT, e),
    }
}
