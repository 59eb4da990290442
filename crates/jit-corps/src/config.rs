//! Reading an org instance's config file (already schema-checked and with
//! `{{NAME}}` filled by the loader) into typed settings.

use jit_apiclient::{ClientTuning, RateLimit};
use jit_sync::{FetchOptions, SyncOptions};
use serde_json::{json, Map, Value};
use std::fmt;
use std::time::Duration;

pub use jit_org::Platform;

/// The built-in Type that talks to `platform`.
pub fn type_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Wecom => "corps.QywxInnerType",
        Platform::DingTalk => "corps.DDInnerType",
    }
}

/// Credentials and endpoints, flat or nested in the file.
#[derive(Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// `{corpId, agentId, secret, apiBase?}`.
    Wecom {
        /// corpId.
        corp_id: String,
        /// agentId.
        agent_id: String,
        /// The app secret.
        secret: String,
        /// API base URL (default: the real service).
        api_base: Option<String>,
    },
    /// `{corpId, agentId, appKey, appSecret, apiBase?, oapiBase?, tokenEndpoint?}`.
    DingTalk {
        /// corpId.
        corp_id: String,
        /// agentId.
        agent_id: String,
        /// AppKey / Client ID.
        app_key: String,
        /// AppSecret / Client Secret.
        app_secret: String,
        /// New-family base URL.
        api_base: Option<String>,
        /// Old-family base URL (defaults to `api_base` when only that is set).
        oapi_base: Option<String>,
        /// `oauth2` or `gettoken`.
        token_endpoint: Option<String>,
    },
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret is never printed.
        write!(f, "AuthConfig({})", self.masked())
    }
}

impl AuthConfig {
    /// The platform corp id.
    pub fn corp_id(&self) -> &str {
        match self {
            AuthConfig::Wecom { corp_id, .. } | AuthConfig::DingTalk { corp_id, .. } => corp_id,
        }
    }

    /// The agent id.
    pub fn agent_id(&self) -> &str {
        match self {
            AuthConfig::Wecom { agent_id, .. } | AuthConfig::DingTalk { agent_id, .. } => agent_id,
        }
    }

    /// The `authConfig` property: every key with the secret masked.
    pub fn masked(&self) -> Value {
        match self {
            AuthConfig::Wecom {
                corp_id,
                agent_id,
                api_base,
                ..
            } => {
                json!({"corpId": corp_id, "agentId": agent_id, "secret": "******", "apiBase": api_base})
            }
            AuthConfig::DingTalk {
                corp_id,
                agent_id,
                app_key,
                api_base,
                oapi_base,
                token_endpoint,
                ..
            } => json!({
                "corpId": corp_id, "agentId": agent_id, "appKey": app_key, "appSecret": "******",
                "apiBase": api_base, "oapiBase": oapi_base, "tokenEndpoint": token_endpoint,
            }),
        }
    }
}

/// Sync behaviour from the config's `sync` object.
#[derive(Debug, Clone, PartialEq)]
pub struct CorpSettings {
    /// Department subtrees to sync; empty = the whole visible org.
    pub sync_scope: Vec<i64>,
    /// Offline threshold as a share of the current members (default 0.10).
    pub max_offline_ratio: f64,
    /// Offlines always allowed per run, whatever the ratio (default 1).
    pub max_offline_count: usize,
    /// Seconds to wait for another sync of the org to finish (default 0).
    pub lock_wait_secs: f64,
    /// Simultaneous requests.
    pub concurrency: Option<usize>,
    /// Timeout of one request.
    pub timeout: Option<Duration>,
    /// Client-side budget per API (calls per window of the platform).
    pub rate_limit: Option<u32>,
    /// Retries of a transient failure after the first attempt.
    pub retries: Option<u32>,
    /// First back-off between retries (doubles on each retry).
    pub retry_base: Option<Duration>,
    /// Event-driven sync (`events`); `None` = events off.
    pub events: Option<EventsConfig>,
}

/// How an org receives change events (the config's `events` object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventMode {
    /// Pushed to `jit serve`'s callback URL (WeCom's only mode).
    Http,
    /// DingTalk Stream: `jit serve` holds a connection to the gateway.
    Stream,
}

/// The config's `events` object: the delivery mode and, for HTTP, the
/// callback crypto's Token and EncodingAESKey / aes_key.
#[derive(Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// How events arrive.
    pub mode: EventMode,
    /// The callback Token (HTTP mode).
    pub token: Option<String>,
    /// The 43-character EncodingAESKey / aes_key (HTTP mode).
    pub aes_key: Option<String>,
}

impl fmt::Debug for EventsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Token and key are secrets: only whether they are set is shown.
        f.debug_struct("EventsConfig")
            .field("mode", &self.mode)
            .field("token", &self.token.as_ref().map(|_| "******"))
            .field("aes_key", &self.aes_key.as_ref().map(|_| "******"))
            .finish()
    }
}

fn events(platform: Platform, root: &Map<String, Value>) -> Result<Option<EventsConfig>, String> {
    let Some(Value::Object(ev)) = root.get("events") else {
        return Ok(None);
    };
    let mode = match (platform, ev.get("mode").and_then(Value::as_str)) {
        (Platform::Wecom, _) | (Platform::DingTalk, Some("http")) => EventMode::Http,
        (Platform::DingTalk, Some("stream")) => EventMode::Stream,
        (Platform::DingTalk, _) => return Ok(None),
    };
    let token = text(ev, "token").filter(|t| !t.is_empty());
    let aes_key = text(ev, "aesKey").filter(|k| !k.is_empty());
    if mode == EventMode::Http && (token.is_none() || aes_key.is_none()) {
        return Err("config: `events` needs `token` and `aesKey` to receive HTTP callbacks".into());
    }
    Ok(Some(EventsConfig {
        mode,
        token,
        aes_key,
    }))
}

impl CorpSettings {
    /// Applies the client knobs of these settings to a platform client's
    /// tuning; `window` is the platform's rate window for `rate_limit`.
    pub fn tune(&self, t: &mut ClientTuning, window: Duration) {
        if let Some(n) = self.concurrency {
            t.concurrency = n;
        }
        if let Some(d) = self.timeout {
            t.timeout = d;
        }
        if let Some(r) = self.rate_limit {
            t.rate_limit = RateLimit::new(r, window);
        }
        if let Some(n) = self.retries {
            t.retry.max_retries = n;
        }
        if let Some(d) = self.retry_base {
            t.retry.base_delay = d;
        }
    }

    /// The engine options these settings give.
    pub fn sync_options(&self) -> SyncOptions {
        SyncOptions {
            fetch: FetchOptions {
                scope: self.sync_scope.clone(),
                ..FetchOptions::default()
            },
            max_offline_ratio: self.max_offline_ratio,
            max_offline_count: self.max_offline_count,
            lock_wait_secs: self.lock_wait_secs,
            reconcile_events: self.events.is_some(),
            ..SyncOptions::default()
        }
    }
}

fn text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn required(obj: &Map<String, Value>, key: &str, file_hint: &str) -> Result<String, String> {
    text(obj, key)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("config {file_hint}: `{key}` is missing"))
}

/// Reads the config of an instance. The loader has validated it against the
/// Type's schema; this only types it.
pub(crate) fn parse(
    platform: Platform,
    config: Option<&Value>,
    element: &str,
) -> Result<(AuthConfig, CorpSettings), String> {
    let Some(Value::Object(root)) = config else {
        return Err(format!(
            "{element} has no config file: create `{}.json` beside its e.json with the app credentials",
            element.rsplit('.').next().unwrap_or(element)
        ));
    };
    // Nested `authConfig` or flat: both forms are documented by the seeds.
    let auth = match root.get("authConfig") {
        Some(Value::Object(a)) => a,
        _ => root,
    };
    let hint = "";
    let auth_config = match platform {
        Platform::Wecom => AuthConfig::Wecom {
            corp_id: required(auth, "corpId", hint)?,
            agent_id: required(auth, "agentId", hint)?,
            secret: required(auth, "secret", hint)?,
            api_base: text(auth, "apiBase").or_else(|| text(root, "apiBase")),
        },
        Platform::DingTalk => AuthConfig::DingTalk {
            corp_id: required(auth, "corpId", hint)?,
            agent_id: required(auth, "agentId", hint)?,
            app_key: required(auth, "appKey", hint)?,
            app_secret: required(auth, "appSecret", hint)?,
            api_base: text(auth, "apiBase").or_else(|| text(root, "apiBase")),
            oapi_base: text(auth, "oapiBase").or_else(|| text(root, "oapiBase")),
            token_endpoint: text(auth, "tokenEndpoint").or_else(|| text(root, "tokenEndpoint")),
        },
    };
    let sync = root.get("sync").and_then(Value::as_object);
    let get = |k: &str| sync.and_then(|s| s.get(k));
    let defaults = SyncOptions::default();
    let settings = CorpSettings {
        sync_scope: get("syncScope")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default(),
        max_offline_ratio: get("maxOfflineRatio")
            .and_then(Value::as_f64)
            .unwrap_or(defaults.max_offline_ratio),
        max_offline_count: get("maxOfflineCount")
            .and_then(Value::as_u64)
            .map_or(defaults.max_offline_count, |n| n as usize),
        lock_wait_secs: get("lockWaitSecs")
            .and_then(Value::as_f64)
            .unwrap_or(defaults.lock_wait_secs),
        concurrency: get("concurrency")
            .and_then(Value::as_u64)
            .map(|n| n as usize),
        timeout: get("timeoutSecs")
            .and_then(Value::as_f64)
            .map(Duration::from_secs_f64),
        rate_limit: get("rateLimitPerMinute")
            .or_else(|| get("rateLimitPerSecond"))
            .and_then(Value::as_u64)
            .map(|n| n as u32),
        retries: get("retries").and_then(Value::as_u64).map(|n| n as u32),
        retry_base: get("retryBaseMs")
            .and_then(Value::as_u64)
            .map(Duration::from_millis),
        events: events(platform, root)?,
    };
    Ok((auth_config, settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flat_and_nested_wecom_forms_read_the_same() {
        let flat = json!({"corpId": "ww1", "agentId": "100", "secret": "s"});
        let nested = json!({"authConfig": {"corpId": "ww1", "agentId": 100, "secret": "s"}});
        let a = parse(Platform::Wecom, Some(&flat), "corps.A").unwrap();
        let b = parse(Platform::Wecom, Some(&nested), "corps.A").unwrap();
        assert_eq!(a.0, b.0);
        assert_eq!(a.0.agent_id(), "100");
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let c = json!({"authConfig": {"corpId": "d", "agentId": "1", "appKey": "k", "appSecret": "TOPSECRET"}});
        let (auth, _) = parse(Platform::DingTalk, Some(&c), "corps.D").unwrap();
        assert!(!format!("{auth:?}").contains("TOPSECRET"));
        assert_eq!(auth.masked()["appSecret"], "******");
    }

    #[test]
    fn sync_settings_come_from_the_sync_object() {
        let c = json!({"corpId": "ww", "agentId": "1", "secret": "s",
                       "sync": {"syncScope": [3, 4], "maxOfflineRatio": 0.5}});
        let (_, s) = parse(Platform::Wecom, Some(&c), "corps.A").unwrap();
        assert_eq!(s.sync_scope, vec![3, 4]);
        assert_eq!(s.sync_options().max_offline_ratio, 0.5);
        assert_eq!(
            s.sync_options().max_offline_count,
            1,
            "the engine's default"
        );
    }

    #[test]
    fn client_knobs_tune_the_platform_client() {
        let c = json!({"corpId": "ww", "agentId": "1", "secret": "s",
                       "sync": {"retries": 1, "retryBaseMs": 5, "timeoutSecs": 2, "concurrency": 3}});
        let (_, s) = parse(Platform::Wecom, Some(&c), "corps.A").unwrap();
        let mut t = jit_wecom::WecomConfig::new("ww", "1", "s").tuning;
        s.tune(&mut t, Duration::from_secs(60));
        assert_eq!(t.retry.max_retries, 1);
        assert_eq!(t.retry.base_delay, Duration::from_millis(5));
        assert_eq!(t.timeout, Duration::from_secs(2));
        assert_eq!(t.concurrency, 3);
    }

    #[test]
    fn the_offline_count_and_lock_wait_come_from_the_sync_object() {
        let c = json!({"corpId": "ww", "agentId": "1", "secret": "s",
                       "sync": {"maxOfflineCount": 3, "lockWaitSecs": 2.5}});
        let (_, s) = parse(Platform::Wecom, Some(&c), "corps.A").unwrap();
        assert_eq!(s.sync_options().max_offline_count, 3);
        assert_eq!(s.sync_options().lock_wait_secs, 2.5);
    }

    #[test]
    fn events_are_off_unless_configured_and_their_secrets_stay_hidden() {
        let key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
        let plain = json!({"corpId": "ww", "agentId": "1", "secret": "s"});
        let (_, s) = parse(Platform::Wecom, Some(&plain), "corps.A").unwrap();
        assert_eq!(s.events, None);
        let wecom = json!({"corpId": "ww", "agentId": "1", "secret": "s",
                           "events": {"token": "TOKEN123", "aesKey": key}});
        let (_, s) = parse(Platform::Wecom, Some(&wecom), "corps.A").unwrap();
        let ev = s.events.unwrap();
        assert_eq!(ev.mode, EventMode::Http);
        assert_eq!(ev.token.as_deref(), Some("TOKEN123"));
        let shown = format!("{ev:?}");
        assert!(
            !shown.contains("TOKEN123") && !shown.contains(key),
            "{shown}"
        );
        let ding = |events: Value| {
            let c = json!({"corpId": "d", "agentId": "1", "appKey": "k", "appSecret": "x",
                           "events": events});
            parse(Platform::DingTalk, Some(&c), "corps.D").map(|(_, s)| s.events)
        };
        let stream = ding(json!({"mode": "stream"})).unwrap().unwrap();
        assert_eq!(stream.mode, EventMode::Stream);
        assert_eq!(ding(json!({})).unwrap(), None, "no mode: events off");
        let err = ding(json!({"mode": "http"})).unwrap_err();
        assert!(err.contains("token") && err.contains("aesKey"), "{err}");
    }

    #[test]
    fn a_missing_config_says_which_file_to_create() {
        let err = parse(Platform::Wecom, None, "corps.Acme").unwrap_err();
        assert!(err.contains("Acme.json"), "{err}");
    }
}
