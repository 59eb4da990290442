//! Pushing change events to callback URLs as the platforms do it: WeCom
//! `change_contact` XML sealed with WXBizMsgCrypt (receiveid = corpId), and
//! DingTalk HTTP push (encrypted JSON, ownerKey = AppKey, the receiver must
//! answer with the encrypted "success").
//!
//! Each org has one delivery task, so events arrive in mutation order.

use crate::admin::EventDraft;
use crate::config::CallbackConfig;
use crate::org::Platform;
use crate::server::{EventStats, Shared};
use jit_crypto::{random_nonce, DingTalkCrypto, DingTalkEncrypted, WecomCrypto};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// WeCom waits 5 s for an answer and retries 3 times, 5 s apart (reference
/// A.10); DingTalk re-pushes a push not answered with the encrypted
/// `success` the same way. The interval is changeable
/// ([`crate::SimHandle::set_callback_retry_interval`]) so tests stay fast.
const TIMEOUT: Duration = Duration::from_secs(5);
const RETRIES: usize = 3;
/// The platforms' interval between a failed delivery and its retry.
pub(crate) const RETRY_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Clone)]
enum Transport {
    Wecom {
        crypto: WecomCrypto,
        agent_id: String,
    },
    Ding {
        crypto: DingTalkCrypto,
    },
}

struct Sink {
    url: String,
    transport: Transport,
    tx: mpsc::UnboundedSender<String>,
    task: tokio::task::JoinHandle<()>,
}

/// Callback sinks of every org and their counters.
pub(crate) struct Events {
    pub stats: Arc<Mutex<BTreeMap<String, EventStats>>>,
    sinks: Mutex<Vec<Option<Sink>>>,
    client: reqwest::Client,
    /// Between a failed delivery and its retry.
    pub retry_interval: Arc<Mutex<Duration>>,
}

impl Events {
    pub(crate) fn new(orgs: usize) -> Events {
        Events {
            stats: Arc::new(Mutex::new(BTreeMap::new())),
            sinks: Mutex::new((0..orgs).map(|_| None).collect()),
            retry_interval: Arc::new(Mutex::new(RETRY_INTERVAL)),
            client: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    /// Stops every delivery task.
    pub(crate) fn shutdown(&self) {
        for s in self.sinks.lock().expect("sinks lock").iter_mut() {
            if let Some(s) = s.take() {
                s.task.abort();
            }
        }
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// Sets (or clears, with `None`) the callback of org `idx`.
pub(crate) fn set_callback(
    sh: &Shared,
    idx: usize,
    cfg: Option<CallbackConfig>,
) -> Result<(), String> {
    let mut sinks = sh.events.sinks.lock().expect("sinks lock");
    if let Some(old) = sinks[idx].take() {
        old.task.abort();
    }
    let Some(cfg) = cfg else { return Ok(()) };
    let (platform, corp_id, agent_id, app_key) = {
        let org = sh.orgs[idx].read().expect("org lock");
        (
            org.platform,
            org.corp_id.clone(),
            org.agent_id.to_string(),
            org.app_key.clone(),
        )
    };
    let transport = match platform {
        Platform::Wecom => Transport::Wecom {
            crypto: WecomCrypto::new(&cfg.token, &cfg.aes_key, &corp_id)
                .map_err(|e| e.to_string())?,
            agent_id,
        },
        Platform::DingTalk => Transport::Ding {
            crypto: DingTalkCrypto::new(&cfg.token, &cfg.aes_key, &app_key)
                .map_err(|e| e.to_string())?,
        },
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let label = sh.label(idx);
    let stats = sh.events.stats.clone();
    let client = sh.events.client.clone();
    let url = cfg.url.clone();
    let t2 = transport.clone();
    let interval = sh.events.retry_interval.clone();
    let task = tokio::spawn(async move {
        while let Some(payload) = rx.recv().await {
            let mut last_err = None;
            for attempt in 0..=RETRIES {
                if attempt > 0 {
                    let wait = *interval.lock().expect("interval lock");
                    tokio::time::sleep(wait).await;
                    stats
                        .lock()
                        .expect("stats lock")
                        .entry(label.clone())
                        .or_default()
                        .retried += 1;
                }
                match deliver(&client, &url, &t2, &payload).await {
                    Ok(()) => {
                        last_err = None;
                        break;
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            let mut s = stats.lock().expect("stats lock");
            let e = s.entry(label.clone()).or_default();
            match last_err {
                None => e.delivered += 1,
                Some(err) => {
                    e.failed += 1;
                    e.last_error = Some(err);
                }
            }
        }
    });
    sinks[idx] = Some(Sink {
        url: cfg.url,
        transport,
        tx,
        task,
    });
    Ok(())
}

/// Queues events for org `idx`; returns their kinds (empty without a callback).
pub(crate) fn emit(sh: &Shared, idx: usize, drafts: Vec<EventDraft>) -> Vec<String> {
    let sinks = sh.events.sinks.lock().expect("sinks lock");
    let Some(sink) = sinks[idx].as_ref() else {
        return Vec::new();
    };
    let mut kinds = Vec::new();
    for d in drafts {
        if sink.tx.send(d.payload).is_ok() {
            kinds.push(d.kind);
        }
    }
    let mut s = sh.events.stats.lock().expect("stats lock");
    s.entry(sh.label(idx)).or_default().queued += kinds.len() as u64;
    kinds
}

async fn deliver(
    client: &reqwest::Client,
    url: &str,
    t: &Transport,
    payload: &str,
) -> Result<(), String> {
    let nonce = random_nonce(16);
    match t {
        Transport::Wecom { crypto, agent_id } => {
            let ts = (now_ms() / 1000).to_string();
            let env = crypto.seal_event(payload, agent_id, &ts, &nonce);
            let resp = client
                .post(url)
                .query(&[
                    ("msg_signature", env.msg_signature.as_str()),
                    ("timestamp", env.timestamp.as_str()),
                    ("nonce", env.nonce.as_str()),
                ])
                .header("content-type", "text/xml")
                .body(env.body)
                .send()
                .await
                .map_err(|e| format!("POST {url}: {e}"))?;
            if resp.status().as_u16() != 200 {
                return Err(format!("POST {url}: HTTP {}", resp.status()));
            }
            Ok(())
        }
        Transport::Ding { crypto } => {
            let ts = now_ms().to_string();
            let sealed = crypto.seal(payload, &ts, &nonce);
            let resp = client
                .post(url)
                .query(&[
                    ("signature", sealed.msg_signature.as_str()),
                    ("timestamp", ts.as_str()),
                    ("nonce", nonce.as_str()),
                ])
                .json(&serde_json::json!({"encrypt": sealed.encrypt}))
                .send()
                .await
                .map_err(|e| format!("POST {url}: {e}"))?;
            let status = resp.status();
            let text = resp.text().await.map_err(|e| format!("POST {url}: {e}"))?;
            if !status.is_success() {
                return Err(format!("POST {url}: HTTP {status}"));
            }
            let reply: DingTalkEncrypted = serde_json::from_str(&text)
                .map_err(|e| format!("POST {url}: reply is not the encrypted JSON: {e}"))?;
            crypto
                .verify_success_reply(&reply)
                .map_err(|e| format!("POST {url}: reply refused: {e}"))
        }
    }
}

/// The platforms' URL check: WeCom `GET ?msg_signature&timestamp&nonce&echostr`
/// expecting the decrypted echostr back; DingTalk a `check_url` push
/// expecting the encrypted "success".
pub(crate) async fn verify(sh: &Shared, idx: usize) -> Result<(), String> {
    let (url, transport) = {
        let sinks = sh.events.sinks.lock().expect("sinks lock");
        let s = sinks[idx]
            .as_ref()
            .ok_or("no callback is set for this org")?;
        (s.url.clone(), s.transport.clone())
    };
    let client = &sh.events.client;
    match &transport {
        Transport::Wecom { crypto, .. } => {
            let plain = random_nonce(24);
            let echostr = crypto.encrypt(&plain);
            let ts = (now_ms() / 1000).to_string();
            let nonce = random_nonce(10);
            let sig = crypto.signature(&ts, &nonce, &echostr);
            let resp = client
                .get(&url)
                .query(&[
                    ("msg_signature", sig.as_str()),
                    ("timestamp", ts.as_str()),
                    ("nonce", nonce.as_str()),
                    ("echostr", echostr.as_str()),
                ])
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            let body = resp.text().await.map_err(|e| format!("GET {url}: {e}"))?;
            if body != plain {
                return Err(format!(
                    "GET {url}: the answer is not the decrypted echostr"
                ));
            }
            Ok(())
        }
        Transport::Ding { .. } => {
            let corp = sh.orgs[idx].read().expect("org lock").corp_id.clone();
            let payload = serde_json::json!({"EventType": "check_url", "CorpId": corp}).to_string();
            deliver(client, &url, &transport, &payload).await
        }
    }
}
