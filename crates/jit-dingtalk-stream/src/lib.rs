//! DingTalk Stream mode: the client side of the gateway connection that
//! delivers an org's events without a public URL (reference B.8, following
//! the official Go SDK `open-dingtalk/dingtalk-stream-sdk-go`).
//!
//! [`run`] does the whole protocol for one app:
//! 1. `POST {base}/v1.0/gateway/connections/open` with the AppKey, secret and
//!    subscriptions (`EVENT` per topic, `SYSTEM` `ping` and `disconnect`) →
//!    `endpoint` + one-time `ticket`;
//! 2. a WebSocket to `endpoint?ticket=…` (TLS through rustls for `wss://`);
//! 3. every frame is answered on the same socket: a SYSTEM `ping` with the
//!    SDK's pong (same messageId, data echoed), a SYSTEM `disconnect` with an
//!    ack and then a reconnect, an EVENT frame by handing a [`StreamEvent`]
//!    to the [`EventSink`] and acking `SUCCESS` only after the sink returned
//!    `Ok` (`LATER` otherwise, so the server redelivers);
//! 4. after `keepalive` without traffic it sends a WebSocket ping and drops
//!    the connection when nothing arrives within 5 s;
//! 5. whenever the open call fails, the socket drops or the server asks, it
//!    reconnects after an exponential back-off with jitter ([`Backoff`]).
//!
//! Events are handed to the sink one at a time in the order they arrived,
//! also across reconnections (a new connection's events wait until the
//! sink has finished the old connection's event). Delivery is at least
//! once: an event whose ack was lost comes again, so the sink deduplicates
//! by [`StreamEvent::event_id`].
//!
//! The client secret and the ticket never appear in logs, `Debug` output or
//! errors.
//!
//! ```
//! use jit_dingtalk_stream::{run_with_status, EventSink, StreamConfig, StreamEvent, StreamStatus};
//! use std::future::Future;
//! use std::pin::Pin;
//! use std::sync::{Arc, Mutex};
//!
//! /// Keeps the events in memory; a host persists them in its inbox instead.
//! struct Collect(Mutex<Vec<StreamEvent>>);
//!
//! impl EventSink for Collect {
//!     fn accept(&self, event: StreamEvent) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
//!         Box::pin(async move {
//!             self.0.lock().unwrap().push(event);
//!             Ok(())
//!         })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let sim = jit_sim::Simulator::start(jit_sim::SimConfig { depts: 3, users: 10, ..Default::default() })
//!     .await
//!     .unwrap();
//! let app = sim.info().dingtalk[0].clone();
//! let cfg = StreamConfig::new(&app.api_base_url, &app.app_key, &app.app_secret);
//! assert!(!format!("{cfg:?}").contains(&app.app_secret));
//!
//! let sink = Arc::new(Collect(Mutex::new(Vec::new())));
//! let status = StreamStatus::default();
//! let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
//! let client = tokio::spawn(run_with_status(cfg, sink.clone(), status.clone(), async move {
//!     let _ = stop_rx.await;
//! }));
//! while !status.snapshot().connected {
//!     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
//! }
//!
//! // A change upstream becomes an event on the stream.
//! use jit_sim::{MembershipSpec, Mutation, OrgRef};
//! sim.mutate(OrgRef::Dingtalk(0), Mutation::add_member("zhangsan", "Zhang San", vec![MembershipSpec::of(1)]))
//!     .unwrap();
//! while status.snapshot().events_accepted == 0 {
//!     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
//! }
//! let got = sink.0.lock().unwrap().clone();
//! assert_eq!(got[0].event_type, "user_add_org");
//! assert_eq!(got[0].data["userId"][0], "zhangsan");
//!
//! stop_tx.send(()).unwrap();
//! client.await.unwrap().unwrap();
//! # }
//! ```

#![warn(missing_docs)]

mod client;
pub mod frame;

pub use client::{run, run_with_status};

use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long to wait before connecting again: `min`, doubled after every
/// failed attempt up to `max`, plus up to 20% jitter (the Go SDK: 3 s, ×2,
/// 60 s). A connection that stayed up for `max` resets it to `min`, so a
/// server that accepts and drops at once is not hammered either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub min: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_secs(3),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay before attempt `failures + 1` (no jitter): `min × 2^failures`, at most `max`.
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.min(20)).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max).max(self.min)
    }
}

/// One app's Stream connection settings.
#[derive(Clone)]
pub struct StreamConfig {
    /// What `https://api.dingtalk.com` is (no trailing `/` needed).
    pub base_url: String,
    /// The app's AppKey (Client ID).
    pub client_id: String,
    /// The app's AppSecret (Client Secret); never shown by `Debug`.
    pub client_secret: String,
    /// The EVENT topics to subscribe: `*` for all, or event types
    /// (`user_add_org`, …).
    pub topics: Vec<String>,
    /// Delays between connection attempts.
    pub backoff: Backoff,
    /// Idle time after which a WebSocket ping checks the connection (the Go
    /// SDK: 120 s).
    pub keepalive: Duration,
    /// Timeout of the open call and of the WebSocket handshake.
    pub connect_timeout: Duration,
    /// A name for log lines (the org element's fullName, say).
    pub label: String,
}

impl StreamConfig {
    /// Settings with the SDK's defaults: every event (`*`), back-off 3 s …
    /// 60 s, keepalive 120 s, 10 s to connect; `label` is the client id.
    pub fn new(base_url: &str, client_id: &str, client_secret: &str) -> Self {
        StreamConfig {
            base_url: base_url.trim_end_matches('/').to_string(),
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            topics: vec!["*".to_string()],
            backoff: Backoff::default(),
            keepalive: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            label: client_id.to_string(),
        }
    }
}

impl fmt::Debug for StreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamConfig")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("topics", &self.topics)
            .field("backoff", &self.backoff)
            .field("keepalive", &self.keepalive)
            .field("connect_timeout", &self.connect_timeout)
            .field("label", &self.label)
            .finish()
    }
}

/// One org event received over the stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamEvent {
    /// `eventId`: the same for every redelivery of the event (deduplicate by it).
    pub event_id: String,
    /// `eventType`, e.g. `user_add_org`, `org_dept_remove`.
    pub event_type: String,
    /// `eventCorpId`: the org the event is about.
    pub corp_id: String,
    /// `eventBornTime`: when the platform created the event (ms since the epoch; 0 if absent).
    pub born_at_ms: i64,
    /// The event's data object, the same fields as the HTTP push payload
    /// carries beside its envelope (`userId`, `deptId`, `timeStamp`, …).
    pub data: serde_json::Value,
}

/// Where received events go. The host persists them (its inbox) before
/// returning `Ok`, so an acked event is never lost.
pub trait EventSink: Send + Sync + 'static {
    /// Called once per EVENT frame (again for a redelivery); the frame is
    /// acked SUCCESS only after this returns `Ok` (LATER otherwise).
    fn accept(
        &self,
        event: StreamEvent,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// What a host can show about a stream: a cheap, shared handle the client
/// updates as it goes.
#[derive(Debug, Clone, Default)]
pub struct StreamStatus(Arc<Mutex<StatusSnapshot>>);

/// The state of a stream at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusSnapshot {
    /// Whether a WebSocket is open now.
    pub connected: bool,
    /// When the current connection was established (ms since the epoch).
    pub connected_since_ms: Option<i64>,
    /// Connections established so far.
    pub connections: u64,
    /// Connections that ended and were followed by a new attempt, and failed attempts.
    pub reconnects: u64,
    /// The last failure (no secret, no ticket).
    pub last_error: Option<String>,
    /// Frames answered on the socket (events, pings, disconnects).
    pub frames_acked: u64,
    /// Events the sink took (acked SUCCESS).
    pub events_accepted: u64,
    /// Events the sink failed (acked LATER, the server redelivers).
    pub events_later: u64,
    /// Event frames that could not be read (acked 400).
    pub frames_refused: u64,
    /// SYSTEM pings answered.
    pub pings_answered: u64,
}

impl StreamStatus {
    /// A copy of the current state.
    pub fn snapshot(&self) -> StatusSnapshot {
        self.0.lock().expect("status lock").clone()
    }

    fn update(&self, f: impl FnOnce(&mut StatusSnapshot)) {
        f(&mut self.0.lock().expect("status lock"))
    }
}

/// Why the stream failed. Every variant names the request; none carries
/// the client secret or the ticket.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The settings cannot work (nothing was sent).
    #[error("DingTalk stream settings of {label}: {message}")]
    Config {
        /// `StreamConfig::label`.
        label: String,
        /// What is wrong.
        message: String,
    },
    /// The open call did not get an answer.
    #[error("POST {url}: {source}")]
    OpenTransport {
        /// The gateway URL.
        url: String,
        /// The HTTP client's error.
        source: reqwest::Error,
    },
    /// The gateway refused the open call (e.g. a wrong AppKey or secret).
    #[error("POST {url}: HTTP {status}: {code}: {message}")]
    OpenRefused {
        /// The gateway URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The platform's error code (`""` if the body had none).
        code: String,
        /// The platform's message, redacted.
        message: String,
    },
    /// The open call answered 200 without an endpoint and ticket.
    #[error("POST {url}: the answer is not an endpoint and ticket: {message}")]
    OpenMalformed {
        /// The gateway URL.
        url: String,
        /// What was wrong with the answer.
        message: String,
    },
    /// The WebSocket could not be opened.
    #[error("WebSocket to {endpoint}: {message}")]
    Connect {
        /// The endpoint, without its ticket.
        endpoint: String,
        /// What failed.
        message: String,
    },
    /// An open WebSocket ended or could not be written.
    #[error("WebSocket to {endpoint}: {message}")]
    Connection {
        /// The endpoint, without its ticket.
        endpoint: String,
        /// What happened.
        message: String,
    },
}
