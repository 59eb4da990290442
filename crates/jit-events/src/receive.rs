//! Verifying a pushed request and turning it into an inbox event. Nothing
//! here touches the store or the network: a request is checked (signature,
//! timestamp window, receiveid / ownerKey, Base64, ciphertext, padding —
//! the crypto is `jit-crypto`'s) before anything is read out of it, and a
//! refusal says why without quoting a secret or the ciphertext.

use jit_corps::{AuthConfig, CorpElement, EventMode};
use jit_crypto::{CryptoError, DingTalkCrypto, WecomCrypto};
use jit_org::Platform;
use jit_store::NewInboxEvent;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// How far a request's timestamp may be from the receiver's clock: older
/// (a replay) or newer (a forged or broken clock) is refused.
pub const TIMESTAMP_WINDOW_SECS: i64 = 300;

/// Why a pushed request was refused (answered 4xx, nothing stored).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refusal {
    /// The org element is unknown, not a built-in org, or has no events
    /// configured for this way of delivery.
    #[error("{corp} does not receive {platform} events over HTTP")]
    NotReceiving {
        /// The fullName in the URL.
        corp: String,
        /// `wecom` or `dingtalk`, from the URL.
        platform: &'static str,
    },
    /// A query parameter the platform always sends is missing.
    #[error("the query parameter `{0}` is missing")]
    MissingParameter(&'static str),
    /// The timestamp is not a number.
    #[error("the timestamp is not a number")]
    BadTimestamp,
    /// The timestamp is outside the window.
    #[error("the timestamp is {skew_secs} s away from this host's clock (at most {TIMESTAMP_WINDOW_SECS} s is accepted): a replay or a wrong clock")]
    StaleTimestamp {
        /// Request time minus now, in seconds.
        skew_secs: i64,
    },
    /// The signature, Base64, ciphertext, padding or receiveid/ownerKey is
    /// wrong (the crypto's error names which, never the key).
    #[error("the message does not verify: {0}")]
    Crypto(#[from] CryptoError),
    /// The decrypted message is not what the platform sends.
    #[error("the decrypted message is unreadable: {0}")]
    Payload(String),
    /// The decrypted event names another org.
    #[error("the event is for corp {found:?}, not this org's corpId")]
    ForeignCorp {
        /// The corpId in the event.
        found: String,
    },
}

/// The query of a WeCom callback (`msg_signature`, `timestamp`, `nonce`,
/// `echostr` on the URL check) or a DingTalk push (`signature`,
/// `timestamp`, `nonce`), as sent (axum decodes it).
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct CallbackQuery {
    /// WeCom's signature.
    pub msg_signature: Option<String>,
    /// DingTalk's signature.
    pub signature: Option<String>,
    /// Seconds (WeCom) or milliseconds (DingTalk) since the epoch.
    pub timestamp: Option<String>,
    /// Random nonce.
    pub nonce: Option<String>,
    /// WeCom URL check: the encrypted random string to answer decrypted.
    pub echostr: Option<String>,
}

/// What a verified DingTalk push asks for.
#[derive(Debug, PartialEq)]
pub enum DingTalkPush {
    /// The URL check (`check_url`): answer `success`, store nothing.
    CheckUrl,
    /// An event to store.
    Event(NewInboxEvent),
}

/// One org's receiver: its crypto and identity.
pub struct Receiver {
    corp: String,
    corp_id: String,
    crypto: Crypto,
}

enum Crypto {
    Wecom(WecomCrypto),
    DingTalk(DingTalkCrypto),
}

fn param<'a>(v: &'a Option<String>, name: &'static str) -> Result<&'a str, Refusal> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .ok_or(Refusal::MissingParameter(name))
}

/// Checks a timestamp (`unit_ms` = milliseconds per unit) against `now_ms`.
fn check_window(ts: &str, unit_ms: i64, now_ms: i64) -> Result<(), Refusal> {
    let t: i64 = ts.trim().parse().map_err(|_| Refusal::BadTimestamp)?;
    let skew_secs = t.saturating_mul(unit_ms).saturating_sub(now_ms) / 1000;
    if skew_secs.abs() > TIMESTAMP_WINDOW_SECS {
        return Err(Refusal::StaleTimestamp { skew_secs });
    }
    Ok(())
}

/// A hex SHA-256: the dedupe key of an event without an id of its own.
fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fields of a flat WeCom event XML as a JSON object of strings (the
/// tags found, each read with `jit_crypto::xml_field`).
fn wecom_fields(xml: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let Some(end) = rest.find('>') else { break };
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        let plain = !tag.is_empty()
            && tag != "xml"
            && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if plain && !out.contains_key(tag) {
            if let Some(v) = jit_crypto::xml_field(xml, tag) {
                out.insert(tag.to_string(), Value::String(v));
            }
        }
    }
    out
}

impl Receiver {
    /// The receiver of an org element whose config has HTTP events on;
    /// `None` when it has none (or Stream mode). An unusable key is an
    /// error naming the org.
    pub fn for_element(element: &CorpElement) -> Result<Option<Receiver>, String> {
        let Some(ev) = element.settings().events.as_ref() else {
            return Ok(None);
        };
        if ev.mode != EventMode::Http {
            return Ok(None);
        }
        let (Some(token), Some(key)) = (ev.token.as_deref(), ev.aes_key.as_deref()) else {
            return Ok(None);
        };
        let corp = element.full_name();
        let bad = |e: CryptoError| format!("{corp}: events.aesKey: {e}");
        match element.auth_config() {
            AuthConfig::Wecom { corp_id, .. } => Receiver::wecom(corp, token, key, corp_id),
            AuthConfig::DingTalk {
                corp_id, app_key, ..
            } => Receiver::dingtalk(corp, token, key, corp_id, app_key),
        }
        .map(Some)
        .map_err(bad)
    }

    /// A WeCom receiver from parts: the org element's fullName, the
    /// callback Token and EncodingAESKey, and the corpId (the receiveid
    /// callbacks are sealed for).
    pub fn wecom(
        corp: &str,
        token: &str,
        aes_key: &str,
        corp_id: &str,
    ) -> Result<Receiver, CryptoError> {
        Ok(Receiver {
            corp: corp.to_string(),
            corp_id: corp_id.to_string(),
            crypto: Crypto::Wecom(WecomCrypto::new(token, aes_key, corp_id)?),
        })
    }

    /// A DingTalk HTTP-push receiver from parts: console subscriptions seal
    /// for the AppKey (the ownerKey, reference B.8); events name the corpId.
    pub fn dingtalk(
        corp: &str,
        token: &str,
        aes_key: &str,
        corp_id: &str,
        app_key: &str,
    ) -> Result<Receiver, CryptoError> {
        Ok(Receiver {
            corp: corp.to_string(),
            corp_id: corp_id.to_string(),
            crypto: Crypto::DingTalk(DingTalkCrypto::new(token, aes_key, app_key)?),
        })
    }

    /// The platform this receiver is for.
    pub fn platform(&self) -> Platform {
        match self.crypto {
            Crypto::Wecom(_) => Platform::Wecom,
            Crypto::DingTalk(_) => Platform::DingTalk,
        }
    }

    fn wecom_crypto(&self) -> Result<&WecomCrypto, Refusal> {
        match &self.crypto {
            Crypto::Wecom(c) => Ok(c),
            Crypto::DingTalk(_) => Err(self.not_receiving("wecom")),
        }
    }

    fn dingtalk_crypto(&self) -> Result<&DingTalkCrypto, Refusal> {
        match &self.crypto {
            Crypto::DingTalk(c) => Ok(c),
            Crypto::Wecom(_) => Err(self.not_receiving("dingtalk")),
        }
    }

    fn not_receiving(&self, platform: &'static str) -> Refusal {
        Refusal::NotReceiving {
            corp: self.corp.clone(),
            platform,
        }
    }

    /// WeCom's URL check (`GET ?msg_signature&timestamp&nonce&echostr`):
    /// the decrypted echostr to answer with.
    pub fn wecom_verify_url(&self, q: &CallbackQuery, now_ms: i64) -> Result<String, Refusal> {
        let crypto = self.wecom_crypto()?;
        let sig = param(&q.msg_signature, "msg_signature")?;
        let ts = param(&q.timestamp, "timestamp")?;
        let nonce = param(&q.nonce, "nonce")?;
        let echostr = param(&q.echostr, "echostr")?;
        check_window(ts, 1000, now_ms)?;
        Ok(crypto.verify_url(sig, ts, nonce, echostr)?)
    }

    /// A WeCom event POST: verified, decrypted, read into an inbox event
    /// (its fields as a JSON object; the dedupe key a hash of the
    /// decrypted XML, which carries CreateTime: WeCom events have no id).
    pub fn wecom_event(
        &self,
        q: &CallbackQuery,
        body: &str,
        now_ms: i64,
    ) -> Result<NewInboxEvent, Refusal> {
        let crypto = self.wecom_crypto()?;
        let sig = param(&q.msg_signature, "msg_signature")?;
        let ts = param(&q.timestamp, "timestamp")?;
        let nonce = param(&q.nonce, "nonce")?;
        check_window(ts, 1000, now_ms)?;
        let xml = crypto.open_event(body, sig, ts, nonce)?;
        let fields = wecom_fields(&xml);
        let field = |k: &str| {
            fields
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        if let Some(to) = field("ToUserName") {
            if to != self.corp_id {
                return Err(Refusal::ForeignCorp { found: to.into() });
            }
        }
        let event_type = field("ChangeType")
            .or_else(|| field("Event"))
            .ok_or_else(|| Refusal::Payload("neither ChangeType nor Event is set".into()))?
            .to_string();
        Ok(NewInboxEvent {
            corp: self.corp.clone(),
            platform: "wecom".into(),
            event_type,
            dedupe_key: format!("sha256:{}", digest(&xml)),
            payload: Value::Object(fields).to_string(),
            received_at: now_ms,
        })
    }

    /// A DingTalk HTTP push: verified, decrypted, read.
    pub fn dingtalk_push(
        &self,
        q: &CallbackQuery,
        body: &str,
        now_ms: i64,
    ) -> Result<DingTalkPush, Refusal> {
        let crypto = self.dingtalk_crypto()?;
        let sig = param(&q.signature, "signature")?;
        let ts = param(&q.timestamp, "timestamp")?;
        let nonce = param(&q.nonce, "nonce")?;
        check_window(ts, 1, now_ms)?;
        let plain = crypto.open_request(sig, ts, nonce, body)?;
        let payload: Value =
            serde_json::from_str(&plain).map_err(|e| Refusal::Payload(format!("not JSON: {e}")))?;
        let obj = payload
            .as_object()
            .ok_or_else(|| Refusal::Payload("not a JSON object".into()))?;
        let event_type = obj
            .get("EventType")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Refusal::Payload("EventType is missing".into()))?
            .to_string();
        if let Some(corp) = obj.get("CorpId").and_then(Value::as_str) {
            if !corp.is_empty() && corp != self.corp_id {
                return Err(Refusal::ForeignCorp { found: corp.into() });
            }
        }
        if event_type == "check_url" {
            return Ok(DingTalkPush::CheckUrl);
        }
        let dedupe_key = match obj.get("eventId").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => format!("eventId:{id}"),
            _ => format!("sha256:{}", digest(&plain)),
        };
        Ok(DingTalkPush::Event(NewInboxEvent {
            corp: self.corp.clone(),
            platform: "dingtalk".into(),
            event_type,
            dedupe_key,
            payload: payload.to_string(),
            received_at: now_ms,
        }))
    }

    /// The encrypted `success` a DingTalk push must be answered with.
    pub fn dingtalk_success(&self, now_ms: i64) -> Result<jit_crypto::DingTalkEncrypted, Refusal> {
        let crypto = self.dingtalk_crypto()?;
        Ok(crypto.success_reply(&now_ms.to_string(), &jit_crypto::random_nonce(16)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_refuses_old_and_future_timestamps() {
        let now = 1_700_000_000_000;
        assert!(check_window("1700000000", 1000, now).is_ok());
        assert!(check_window("1699999000", 1000, now).is_err());
        assert!(check_window("1700000400", 1000, now).is_err());
        assert_eq!(check_window("x", 1, now), Err(Refusal::BadTimestamp));
    }

    #[test]
    fn wecom_fields_are_read_from_the_flat_xml() {
        let x = "<xml><ToUserName><![CDATA[ww1]]></ToUserName><CreateTime>17</CreateTime>\
                 <ChangeType><![CDATA[update_user]]></ChangeType><UserID><![CDATA[a<b]]></UserID></xml>";
        let f = wecom_fields(x);
        assert_eq!(f["ToUserName"], "ww1");
        assert_eq!(f["CreateTime"], "17");
        assert_eq!(f["UserID"], "a<b");
        assert!(!f.contains_key("xml"));
    }
}
