//! The connection loop: open, dial, answer frames, reconnect.

use crate::frame::{AckStatus, DataFrame, DataFrameResponse, TYPE_EVENT, TYPE_SYSTEM};
use crate::{EventSink, StatusSnapshot, StreamConfig, StreamError, StreamEvent, StreamStatus};
use futures_util::{FutureExt, SinkExt, StreamExt};
use rand::Rng;
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The open call's path (Go SDK `utils.GetConnectionEndpointAPIUrl`).
const OPEN_PATH: &str = "/v1.0/gateway/connections/open";
/// How long a keepalive ping waits for any traffic (Go SDK `pingWait`).
const PONG_WAIT: Duration = Duration::from_secs(5);
/// An answer of the open call longer than this is not an endpoint.
const MAX_OPEN_ANSWER: usize = 64 * 1024;

/// Runs the stream of one app until `stop` resolves: connects, answers
/// frames, hands events to `sink`, reconnects with back-off. Returns
/// `Err` only for settings that cannot work; every other failure is
/// logged, kept as [`StatusSnapshot::last_error`] and retried.
pub async fn run(
    cfg: StreamConfig,
    sink: Arc<dyn EventSink>,
    stop: impl Future<Output = ()>,
) -> Result<(), StreamError> {
    run_with_status(cfg, sink, StreamStatus::default(), stop).await
}

/// [`run`], reporting into a [`StreamStatus`] the host keeps a clone of.
pub async fn run_with_status(
    cfg: StreamConfig,
    sink: Arc<dyn EventSink>,
    status: StreamStatus,
    stop: impl Future<Output = ()>,
) -> Result<(), StreamError> {
    check(&cfg)?;
    let http = reqwest::Client::builder()
        .timeout(cfg.connect_timeout)
        .build()
        .map_err(|e| StreamError::Config {
            label: cfg.label.clone(),
            message: format!("cannot build the HTTP client: {e}"),
        })?;
    let mut stop = std::pin::pin!(stop);
    // Attempts since the last connection that stayed up for `backoff.max`:
    // a connection that is accepted and then dropped at once again and
    // again still backs off.
    let mut failures: u32 = 0;
    loop {
        let (end, lasted) = session(&cfg, &http, &sink, &status, &mut stop).await;
        if lasted >= cfg.backoff.max {
            failures = 0;
        }
        let error = match end {
            End::Stopped => {
                tracing::info!(stream = %cfg.label, "DingTalk stream stopped");
                return Ok(());
            }
            End::ServerAsked => {
                tracing::info!(stream = %cfg.label, "DingTalk stream: the server asked to reconnect");
                None
            }
            End::Dropped(e) | End::Failed(e) => Some(e),
        };
        let delay = jitter(cfg.backoff.delay(failures));
        failures = failures.saturating_add(1);
        status.update(|s| {
            s.reconnects += 1;
            if let Some(e) = &error {
                s.last_error = Some(e.to_string());
            }
        });
        if let Some(e) = &error {
            tracing::warn!(stream = %cfg.label, error = %e, retry_in_ms = delay.as_millis() as u64,
                "DingTalk stream: connection failed or dropped; reconnecting");
        }
        tokio::select! {
            _ = stop.as_mut() => {
                tracing::info!(stream = %cfg.label, "DingTalk stream stopped");
                return Ok(());
            }
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

fn check(cfg: &StreamConfig) -> Result<(), StreamError> {
    let bad = |message: &str| {
        Err(StreamError::Config {
            label: cfg.label.clone(),
            message: message.to_string(),
        })
    };
    if !(cfg.base_url.starts_with("http://") || cfg.base_url.starts_with("https://")) {
        return bad("base_url must start with http:// or https://");
    }
    if cfg.client_id.is_empty() || cfg.client_secret.is_empty() {
        return bad("the AppKey (client id) and the AppSecret must not be empty");
    }
    if cfg.topics.is_empty() || cfg.topics.iter().any(|t| t.is_empty()) {
        return bad("at least one EVENT topic is needed (`*` for all), and none may be empty");
    }
    if cfg.backoff.min.is_zero() || cfg.backoff.max < cfg.backoff.min {
        return bad("the back-off needs 0 < min <= max");
    }
    Ok(())
}

/// Up to 20% more, so that many clients do not reconnect in step (Go SDK).
fn jitter(d: Duration) -> Duration {
    let extra = rand::thread_rng().gen_range(0.0..=0.2);
    d + d.mul_f64(extra)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

enum End {
    Stopped,
    ServerAsked,
    /// A connection that was up ended.
    Dropped(StreamError),
    /// No connection was made.
    Failed(StreamError),
}

#[derive(Deserialize)]
struct Endpoint {
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    ticket: String,
}

/// The error body of the platform's new API family (`code`, `message`).
#[derive(Deserialize, Default)]
struct ApiError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

async fn open(cfg: &StreamConfig, http: &reqwest::Client) -> Result<Endpoint, StreamError> {
    let url = format!("{}{OPEN_PATH}", cfg.base_url);
    let mut subscriptions: Vec<serde_json::Value> = cfg
        .topics
        .iter()
        .map(|t| serde_json::json!({"type": TYPE_EVENT, "topic": t}))
        .collect();
    for t in ["ping", "disconnect"] {
        subscriptions.push(serde_json::json!({"type": TYPE_SYSTEM, "topic": t}));
    }
    let body = serde_json::json!({
        "clientId": cfg.client_id,
        "clientSecret": cfg.client_secret,
        "subscriptions": subscriptions,
        "ua": concat!("jit-dingtalk-stream/", env!("CARGO_PKG_VERSION")),
        "localIp": local_ip(&cfg.base_url),
    });
    let transport = |source| StreamError::OpenTransport {
        url: url.clone(),
        source,
    };
    let resp = http
        .post(&url)
        .header("accept", "application/json")
        .json(&body)
        .send()
        .await
        .map_err(transport)?;
    let status = resp.status().as_u16();
    // Read at most one byte past the limit: a gateway that streams without
    // end is refused, not buffered.
    let mut resp = resp;
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_OPEN_ANSWER {
            break;
        }
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_OPEN_ANSWER)]);
    if status != 200 {
        let err: ApiError = serde_json::from_str(&text).unwrap_or_default();
        let message = if err.message.is_empty() {
            text.chars().take(200).collect()
        } else {
            err.message
        };
        return Err(StreamError::OpenRefused {
            url,
            status,
            code: err.code,
            message: scrub(&message, &[&cfg.client_secret]),
        });
    }
    let malformed = |message: String| StreamError::OpenMalformed {
        url: url.clone(),
        message,
    };
    if bytes.len() > MAX_OPEN_ANSWER {
        return Err(malformed(format!("longer than {MAX_OPEN_ANSWER} bytes")));
    }
    let ep: Endpoint = serde_json::from_slice(&bytes)
        .map_err(|e| malformed(format!("not JSON with endpoint and ticket ({e})")))?;
    if ep.ticket.is_empty() {
        return Err(malformed("the ticket is empty".into()));
    }
    if !(ep.endpoint.starts_with("ws://") || ep.endpoint.starts_with("wss://")) {
        return Err(malformed(format!(
            "the endpoint {:?} is not a ws:// or wss:// URL",
            scrub(&ep.endpoint, &[&ep.ticket])
        )));
    }
    Ok(ep)
}

/// Replaces every occurrence of a secret, then applies the project's redaction.
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(*s, "***");
    }
    jit_core::redact(&out)
}

/// The address this host uses towards the gateway (Go SDK `GetFirstLanIP`):
/// a UDP socket "connected" to it sends nothing but learns the route.
fn local_ip(base_url: &str) -> String {
    let host = base_url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or("");
    let target = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:443")
    };
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect(target.as_str())?;
            s.local_addr()
        })
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".to_string())
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Socket = WebSocketStream<Box<dyn Io>>;

/// Opens the WebSocket to `endpoint?ticket=…`; TLS (rustls, ring, the
/// Mozilla roots) for `wss://`.
async fn dial(ep: &Endpoint, timeout: Duration) -> Result<Socket, StreamError> {
    let fail = |message: String| StreamError::Connect {
        endpoint: ep.endpoint.clone(),
        message: scrub(&message, &[&ep.ticket]),
    };
    let tls = ep.endpoint.starts_with("wss://");
    let rest = ep.endpoint.split("://").nth(1).unwrap_or("");
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (
            h.to_string(),
            p.parse::<u16>()
                .map_err(|_| fail(format!("bad port in {authority:?}")))?,
        ),
        _ => (authority.to_string(), if tls { 443 } else { 80 }),
    };
    let sep = if ep.endpoint.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}ticket={}", ep.endpoint, query_escape(&ep.ticket));
    let connect = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| fail(format!("TCP connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if tls {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| fail(format!("bad host name: {e}")))?;
            let connector = tokio_rustls::TlsConnector::from(tls_config());
            Box::new(
                connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| fail(format!("TLS: {e}")))?,
            )
        } else {
            Box::new(tcp)
        };
        let (ws, _) = tokio_tungstenite::client_async(url.as_str(), io)
            .await
            .map_err(|e| fail(format!("handshake: {e}")))?;
        Ok(ws)
    };
    tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| fail(format!("no connection within {timeout:?}")))?
}

/// Percent-encodes everything but RFC 3986's unreserved characters (the
/// Python SDK quotes the ticket the same way).
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            Arc::new(
                rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default TLS versions")
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        })
        .clone()
}

/// One connection, from the open call to its end; also how long it was up.
async fn session<S: Future<Output = ()>>(
    cfg: &StreamConfig,
    http: &reqwest::Client,
    sink: &Arc<dyn EventSink>,
    status: &StreamStatus,
    stop: &mut Pin<&mut S>,
) -> (End, Duration) {
    let attempt = async {
        let ep = open(cfg, http).await?;
        let ws = dial(&ep, cfg.connect_timeout).await?;
        Ok::<_, StreamError>((ep, ws))
    };
    let (ep, ws) = tokio::select! {
        _ = stop.as_mut() => return (End::Stopped, Duration::ZERO),
        r = attempt => match r {
            Ok(x) => x,
            Err(e) => return (End::Failed(e), Duration::ZERO),
        },
    };
    let endpoint = ep.endpoint.clone();
    drop(ep);
    let up_since = Instant::now();
    status.update(|s| {
        s.connected = true;
        s.connected_since_ms = Some(now_ms());
        s.connections += 1;
    });
    tracing::info!(stream = %cfg.label, %endpoint, "DingTalk stream connected");

    let (mut write, mut read) = ws.split();
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<DataFrameResponse>();
    let (event_tx, event_rx) = mpsc::unbounded_channel::<DataFrame>();
    let worker = tokio::spawn(deliver(
        cfg.label.clone(),
        sink.clone(),
        status.clone(),
        event_rx,
        ack_tx.clone(),
    ));
    let dropped = |message: String| {
        End::Dropped(StreamError::Connection {
            endpoint: endpoint.clone(),
            message,
        })
    };
    let mut idle_since = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    let end = loop {
        let deadline = match ping_sent {
            Some(t) => t + PONG_WAIT,
            None => idle_since + cfg.keepalive,
        };
        tokio::select! {
            _ = stop.as_mut() => {
                let _ = write.send(Message::Close(None)).await;
                break End::Stopped;
            }
            msg = read.next() => {
                let m = match msg {
                    None => break dropped("the server closed the connection".into()),
                    Some(Err(e)) => break dropped(format!("read: {e}")),
                    Some(Ok(m)) => m,
                };
                idle_since = Instant::now();
                ping_sent = None;
                let text = match m {
                    Message::Text(t) => t,
                    Message::Close(_) => break dropped("the server closed the connection".into()),
                    // Pings are answered by tungstenite itself; pongs only prove liveness.
                    _ => continue,
                };
                let frame: DataFrame = match serde_json::from_str(text.as_str()) {
                    Ok(f) => f,
                    Err(e) => {
                        // Without a readable messageId there is nothing to answer.
                        tracing::warn!(stream = %cfg.label, error = %e, len = text.len(),
                            "DingTalk stream: a frame that is not JSON was ignored");
                        continue;
                    }
                };
                match (frame.kind.as_str(), frame.topic()) {
                    (TYPE_SYSTEM, "ping") => {
                        let pong = DataFrameResponse::pong(&frame);
                        if let Err(e) = write.send(Message::text(pong.to_text())).await {
                            break dropped(format!("write: {e}"));
                        }
                        status.update(|s| { s.frames_acked += 1; s.pings_answered += 1; });
                    }
                    (TYPE_SYSTEM, "disconnect") => {
                        // Ack first, then close (Go SDK: closing first makes the
                        // server resend the command).
                        let ack = DataFrameResponse::ok(frame.message_id());
                        if write.send(Message::text(ack.to_text())).await.is_ok() {
                            status.update(|s| s.frames_acked += 1);
                        }
                        let _ = write.send(Message::Close(None)).await;
                        break End::ServerAsked;
                    }
                    (TYPE_EVENT, _) => {
                        if event_tx.send(frame).is_err() {
                            break dropped("the event handler stopped".into());
                        }
                    }
                    _ => {
                        tracing::debug!(stream = %cfg.label, kind = %frame.kind, topic = %frame.topic(),
                            "DingTalk stream: no handler for this frame");
                        let ack = DataFrameResponse::not_found(frame.message_id());
                        if let Err(e) = write.send(Message::text(ack.to_text())).await {
                            break dropped(format!("write: {e}"));
                        }
                        status.update(|s| s.frames_acked += 1);
                    }
                }
            }
            Some(ack) = ack_rx.recv() => {
                if let Err(e) = write.send(Message::text(ack.to_text())).await {
                    break dropped(format!("write: {e}"));
                }
                status.update(|s| s.frames_acked += 1);
            }
            _ = tokio::time::sleep_until(deadline) => {
                if ping_sent.is_some() {
                    break dropped(format!("no answer to a keepalive ping within {PONG_WAIT:?}"));
                }
                if let Err(e) = write.send(Message::Ping(Vec::new().into())).await {
                    break dropped(format!("write: {e}"));
                }
                ping_sent = Some(Instant::now());
            }
        }
    };
    // The worker stops taking events once nobody reads its acks; the one it
    // is handing over finishes first (its ack is lost: the server resends).
    drop(event_tx);
    drop(ack_rx);
    let _ = worker.await;
    status.update(|s: &mut StatusSnapshot| {
        s.connected = false;
        s.connected_since_ms = None;
    });
    (end, up_since.elapsed())
}

/// Hands events to the sink one at a time, in arrival order, and queues
/// their acks.
async fn deliver(
    label: String,
    sink: Arc<dyn EventSink>,
    status: StreamStatus,
    mut events: mpsc::UnboundedReceiver<DataFrame>,
    acks: mpsc::UnboundedSender<DataFrameResponse>,
) {
    while let Some(frame) = events.recv().await {
        if acks.is_closed() {
            break;
        }
        let ack = match to_event(&frame) {
            Err(why) => {
                tracing::warn!(stream = %label, message_id = %frame.message_id(), why,
                    "DingTalk stream: an event frame could not be read; refused with 400");
                status.update(|s| s.frames_refused += 1);
                DataFrameResponse::malformed(frame.message_id(), why)
            }
            Ok(event) => {
                let (id, kind) = (event.event_id.clone(), event.event_type.clone());
                // A panicking sink is a failed event (LATER), not a dead stream.
                let taken = std::panic::AssertUnwindSafe(sink.accept(event))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err("the event sink panicked".to_string()));
                match taken {
                    Ok(()) => {
                        status.update(|s| s.events_accepted += 1);
                        DataFrameResponse::event_ack(frame.message_id(), AckStatus::Success)
                    }
                    Err(e) => {
                        tracing::warn!(stream = %label, event_id = %id, event_type = %kind, error = %e,
                            "DingTalk stream: the event was not taken; acked LATER for redelivery");
                        status.update(|s| s.events_later += 1);
                        DataFrameResponse::event_ack(frame.message_id(), AckStatus::Later)
                    }
                }
            }
        };
        let _ = acks.send(ack);
    }
}

/// Reads an EVENT frame's headers and data.
fn to_event(frame: &DataFrame) -> Result<StreamEvent, &'static str> {
    let event_id = frame.header("eventId");
    let event_type = frame.header("eventType");
    if event_id.is_empty() || event_type.is_empty() {
        return Err("the eventId or eventType header is missing");
    }
    let data: serde_json::Value =
        serde_json::from_str(&frame.data).map_err(|_| "the data is not a JSON document")?;
    if !data.is_object() {
        return Err("the data is not a JSON object");
    }
    Ok(StreamEvent {
        event_id: event_id.to_string(),
        event_type: event_type.to_string(),
        corp_id: frame.header("eventCorpId").to_string(),
        born_at_ms: frame.header("eventBornTime").parse().unwrap_or(0),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backoff;

    #[test]
    fn the_backoff_doubles_from_min_up_to_max() {
        let b = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        let got: Vec<u128> = (0..6).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(u32::MAX), Duration::from_millis(1000));
    }

    #[test]
    fn jitter_adds_at_most_a_fifth() {
        let d = Duration::from_millis(1000);
        for _ in 0..100 {
            let j = jitter(d);
            assert!(j >= d && j <= Duration::from_millis(1200), "{j:?}");
        }
    }

    #[test]
    fn an_event_frame_becomes_a_stream_event() {
        let frame: DataFrame = serde_json::from_str(
            r#"{"specVersion":"1.0","type":"EVENT","time":1,"headers":{"topic":"*","messageId":"m1",
            "eventId":"e1","eventType":"user_add_org","eventCorpId":"ding1","eventBornTime":"1683533823336"},
            "data":"{\"timeStamp\":\"1683533823336\",\"userId\":[\"u1\"]}"}"#,
        )
        .unwrap();
        let ev = to_event(&frame).unwrap();
        assert_eq!(
            (
                ev.event_id.as_str(),
                ev.event_type.as_str(),
                ev.corp_id.as_str()
            ),
            ("e1", "user_add_org", "ding1")
        );
        assert_eq!(ev.born_at_ms, 1683533823336);
        assert_eq!(ev.data["userId"][0], "u1");
    }

    #[test]
    fn an_event_frame_without_an_event_id_or_with_bad_data_is_refused() {
        let mut frame = DataFrame {
            spec_version: "1.0".into(),
            kind: "EVENT".into(),
            time: 0,
            headers: [("eventType", "user_add_org"), ("messageId", "m")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            data: "{}".into(),
        };
        assert!(to_event(&frame).is_err());
        frame.headers.insert("eventId".into(), "e".into());
        assert!(to_event(&frame).is_ok());
        frame.data = "[1]".into();
        assert!(to_event(&frame).is_err());
        frame.data = "{".into();
        assert!(to_event(&frame).is_err());
    }

    #[test]
    fn acks_are_the_go_sdks_frames() {
        let ack = DataFrameResponse::event_ack("m1", AckStatus::Success);
        let v: serde_json::Value = serde_json::from_str(&ack.to_text()).unwrap();
        assert_eq!(v["code"], 200);
        assert_eq!(v["headers"]["messageId"], "m1");
        assert_eq!(v["headers"]["contentType"], "application/json");
        let data: serde_json::Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["status"], "SUCCESS");
        let later = DataFrameResponse::event_ack("m2", AckStatus::Later);
        let data: serde_json::Value = serde_json::from_str(&later.data).unwrap();
        assert_eq!((later.code, data["status"].as_str()), (500, Some("LATER")));
    }

    #[test]
    fn a_ticket_is_percent_encoded_in_the_query() {
        assert_eq!(query_escape("a1-_.~"), "a1-_.~");
        assert_eq!(query_escape("a+b/c=d&e"), "a%2Bb%2Fc%3Dd%26e");
    }

    #[test]
    fn a_refusal_message_loses_the_secret() {
        let text = scrub(
            "bad secret s3cr3t-value in {\"clientSecret\":\"x\"}",
            &["s3cr3t-value"],
        );
        assert!(!text.contains("s3cr3t-value"), "{text}");
    }
}
