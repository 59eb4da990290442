//! Shared state, the HTTP plumbing every API call goes through (identify the
//! app, count, rate-limit, delay, inject faults) and the server loop.

use crate::config::{FaultKind, FaultSettings, OrgRef, SimConfig};
use crate::org::{mix, Org, Platform};
use crate::{admin, dingtalk, events, wecom, SimError, SimInfo};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// Which wire conventions an answer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// `/cgi-bin/...`: `{errcode, errmsg}`, HTTP 200.
    Wecom,
    /// DingTalk oapi: `{errcode, errmsg, request_id}`, HTTP 200.
    DingOld,
    /// DingTalk `/v1.0/...`: resource JSON; errors as HTTP 4xx `{code, message, requestid}`.
    DingNew,
}

/// What a token was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// The app's own secret.
    App,
    /// WeCom contact-sync (通讯录同步) secret.
    Contact,
    /// A DingTalk user access token (OAuth2) for this userid.
    User(String),
}

#[derive(Debug, Clone)]
struct TokenRec {
    org: usize,
    kind: TokenKind,
    expires: Instant,
}

/// Why a presented token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenFault {
    Missing,
    /// Never issued (garbage).
    Unknown,
    /// Issued, then invalidated early by the platform.
    Revoked,
    /// Past its lifetime.
    Expired,
}

#[derive(Debug, Clone)]
struct CodeRec {
    org: usize,
    userid: String,
    expires: Instant,
}

#[derive(Default)]
pub(crate) struct Auth {
    tokens: HashMap<String, TokenRec>,
    revoked: HashSet<String>,
    /// DingTalk keeps one token per app and extends it on refetch.
    current: HashMap<(usize, String), String>,
    codes: HashMap<String, CodeRec>,
    refresh: HashMap<String, (usize, String)>,
    counter: u64,
}

/// Per-API counters of one app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiStats {
    /// Every call that reached the API (answered, throttled or faulted).
    pub calls: u64,
    /// Calls answered with the rate-limit error.
    pub throttled: u64,
    /// Calls that got an injected fault (sticky department refusals included).
    pub faults: u64,
    /// Injected faults by kind (a sticky refusal counts as `permission`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fault_kinds: BTreeMap<FaultKind, u64>,
}

/// Counters of event pushes to one org's callback.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventStats {
    /// Events queued for delivery.
    pub queued: u64,
    /// Events the receiver acknowledged correctly.
    pub delivered: u64,
    /// Events given up after all retries (or refused reply).
    pub failed: u64,
    /// Deliveries repeated after a failed one (the platforms retry 3
    /// times, 5 s apart).
    #[serde(default)]
    pub retried: u64,
    /// The last delivery error (no secrets).
    pub last_error: Option<String>,
}

/// Call counts per app (`wecom`, `dingtalk-0`, …; `unknown` when the caller
/// could not be identified) and per API path, plus event delivery counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimStats {
    /// app label → API path → counters.
    pub apps: BTreeMap<String, BTreeMap<String, ApiStats>>,
    /// org label → event delivery counters.
    pub events: BTreeMap<String, EventStats>,
}

impl SimStats {
    /// Total calls of one app over every API.
    pub fn total_calls(&self, app: &str) -> u64 {
        self.apps
            .get(app)
            .map(|a| a.values().map(|s| s.calls).sum())
            .unwrap_or(0)
    }

    /// Total throttled answers of one app over every API.
    pub fn total_throttled(&self, app: &str) -> u64 {
        self.apps
            .get(app)
            .map(|a| a.values().map(|s| s.throttled).sum())
            .unwrap_or(0)
    }

    /// Total injected faults of one app over every API.
    pub fn total_faults(&self, app: &str) -> u64 {
        self.apps
            .get(app)
            .map(|a| a.values().map(|s| s.faults).sum())
            .unwrap_or(0)
    }

    /// Injected faults of one app by kind, over every API.
    pub fn faults_by_kind(&self, app: &str) -> BTreeMap<FaultKind, u64> {
        let mut out = BTreeMap::new();
        for s in self.apps.get(app).into_iter().flat_map(|a| a.values()) {
            for (k, n) in &s.fault_kinds {
                *out.entry(*k).or_insert(0) += n;
            }
        }
        out
    }

    /// Counters of one app and path (zero when never called).
    pub fn api(&self, app: &str, path: &str) -> ApiStats {
        self.apps
            .get(app)
            .and_then(|a| a.get(path))
            .cloned()
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    idx: u64,
    count: u32,
    hour_idx: u64,
    hour_count: u32,
}

/// The rate limit of one app, per API path: `limit` calls per fixed window
/// of `window_ms` and `hour_limit` per fixed hour (0 = unlimited), both
/// aligned to the server's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateRule {
    /// Calls per window (0 = unlimited).
    pub limit: u32,
    /// Window length in ms (WeCom 60,000, DingTalk 1,000).
    pub window_ms: u64,
    /// Calls per hour (0 = unlimited; WeCom only).
    pub hour_limit: u32,
}

/// One app's and API's current windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateWindow {
    /// Index of the window last counted in (ms since start ÷ window).
    pub index: u64,
    /// Calls admitted in that window.
    pub used: u32,
    /// Index of the hour last counted in.
    pub hour_index: u64,
    /// Calls admitted in that hour.
    pub hour_used: u32,
}

/// The simulator's rate windows at one moment ([`crate::SimHandle::rate_state`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateState {
    /// Milliseconds since the windows' origin (the server's start).
    pub elapsed_ms: u64,
    /// app label → its rule.
    pub rules: BTreeMap<String, RateRule>,
    /// app label → API path → its windows (absent: never called).
    pub windows: BTreeMap<String, BTreeMap<String, RateWindow>>,
}

#[derive(Default)]
pub(crate) struct Meter {
    windows: HashMap<(usize, &'static str), Window>,
    pub(crate) stats: SimStats,
}

/// Everything the handlers share.
pub(crate) struct Shared {
    pub cfg: SimConfig,
    pub orgs: Vec<RwLock<Org>>,
    pub auth: Mutex<Auth>,
    pub meter: Mutex<Meter>,
    pub start: Instant,
    pub seq: AtomicU64,
    /// How often each request (keyed by round and identity) was seen: the
    /// attempt number of a fault draw.
    pub seen: Mutex<HashMap<u64, u64>>,
    /// Whether this round's token revocation has happened (one per round).
    pub revoked_this_round: Mutex<bool>,
    pub info: OnceLock<SimInfo>,
    pub events: events::Events,
    /// Every DingTalk org's Stream gateway.
    pub streams: crate::stream::Streams,
    /// Fault rate and kinds, and latency: changeable while serving.
    pub chaos: RwLock<Chaos>,
    /// Holds each call for the configured latency.
    pub latency: crate::latency::Latency,
}

/// The injection settings that tests may change while the server runs.
#[derive(Debug, Clone)]
pub(crate) struct Chaos {
    pub faults: FaultSettings,
    pub latency_ms: u64,
}

/// An answer before it becomes HTTP.
pub(crate) enum Reply {
    Json(StatusCode, Value),
    Text(StatusCode, &'static str, String),
    /// Close the connection without answering.
    Drop,
}

/// Marks a response whose connection must be dropped (see [`serve`]).
#[derive(Clone, Copy)]
struct DropConnection;

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Reply::Json(s, v) => (s, axum::Json(v)).into_response(),
            Reply::Text(s, ct, body) => {
                let mut r = (s, body).into_response();
                r.headers_mut()
                    .insert("content-type", HeaderValue::from_static(ct));
                r
            }
            Reply::Drop => {
                let mut r = StatusCode::INTERNAL_SERVER_ERROR.into_response();
                r.extensions_mut().insert(DropConnection);
                r
            }
        }
    }
}

/// One API request, already read.
pub(crate) struct ApiReq {
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Value,
    pub body_ok: bool,
}

impl ApiReq {
    /// A parameter from the query string.
    pub fn query(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }

    /// A parameter from the JSON body, falling back to the query string
    /// (some SDKs put oapi parameters in the query).
    pub fn param(&self, k: &str) -> Option<Value> {
        match self.body.get(k) {
            Some(v) if !v.is_null() => Some(v.clone()),
            _ => self.query.get(k).map(|s| Value::String(s.clone())),
        }
    }

    /// An integer parameter; accepts numbers and numeric strings.
    pub fn int(&self, k: &str) -> Result<Option<i64>, ()> {
        match self.param(k) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(()),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| ()),
            Some(_) => Err(()),
        }
    }

    /// A string parameter; numbers are turned into their text.
    pub fn string(&self, k: &str) -> Option<String> {
        match self.param(k)? {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

impl Shared {
    pub(crate) fn new(cfg: SimConfig) -> Shared {
        let mut orgs = vec![RwLock::new(Org::generate(&cfg, Platform::Wecom, 0))];
        for i in 0..cfg.dingtalk_orgs {
            orgs.push(RwLock::new(Org::generate(&cfg, Platform::DingTalk, i)));
        }
        let events = events::Events::new(orgs.len());
        let streams = crate::stream::Streams::new(orgs.len());
        let chaos = RwLock::new(Chaos {
            faults: FaultSettings {
                rate: cfg.fault_rate,
                kinds: cfg.fault_kinds.clone(),
                outage_rate: cfg.outage_rate,
                stall_ms: cfg.stall_ms,
                round: 0,
            },
            latency_ms: cfg.latency_ms,
        });
        Shared {
            chaos,
            cfg,
            orgs,
            auth: Mutex::new(Auth::default()),
            meter: Mutex::new(Meter::default()),
            start: Instant::now(),
            seq: AtomicU64::new(1),
            seen: Mutex::new(HashMap::new()),
            revoked_this_round: Mutex::new(false),
            info: OnceLock::new(),
            events,
            streams,
            latency: crate::latency::Latency::new(),
        }
    }

    /// The errcode with which the app is refused a department, if it is.
    pub(crate) fn refusal(&self, org: usize, dept: i64) -> Option<i64> {
        self.orgs[org]
            .read()
            .expect("org lock")
            .refused
            .get(&dept)
            .copied()
    }

    /// Replaces an org's sticky department refusals.
    pub(crate) fn set_refusals(
        &self,
        r: OrgRef,
        refusals: Vec<crate::DeptRefusal>,
    ) -> Result<(), SimError> {
        let lock = self.org(r)?;
        let mut org = lock.write().expect("org lock");
        org.refused = refusals
            .into_iter()
            .map(|x| (x.dept_id, x.errcode))
            .collect();
        Ok(())
    }

    pub(crate) fn org(&self, r: OrgRef) -> Result<&RwLock<Org>, SimError> {
        self.orgs
            .get(r.index())
            .ok_or_else(|| SimError::NoSuchOrg(r.label()))
    }

    pub(crate) fn label(&self, idx: usize) -> String {
        if idx == 0 {
            "wecom".into()
        } else {
            format!("dingtalk-{}", idx - 1)
        }
    }

    /// A request id in DingTalk's style (upper-case UUID-like).
    pub(crate) fn request_id(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let h = mix(self.cfg.seed ^ 0xabcdef, n);
        format!(
            "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
            (h >> 32) as u32,
            (h >> 16) as u16,
            h as u16,
            n as u16,
            n & 0xFFFF_FFFF_FFFF
        )
    }

    fn new_token(&self, auth: &mut Auth, org: usize) -> String {
        auth.counter += 1;
        let a = mix(self.cfg.seed ^ 0x70_6b, auth.counter);
        let b = mix(a, org as u64);
        let c = mix(b, 77);
        let d = mix(c, 78);
        format!("{a:016x}{b:016x}{c:016x}{d:016x}")
    }

    fn lifetime(&self) -> Duration {
        Duration::from_secs(self.cfg.token_lifetime_secs)
    }

    /// Issues an app (or contact-sync) token. DingTalk returns the live token
    /// again and extends it; WeCom issues a fresh token each time while older
    /// ones stay valid until they expire.
    pub(crate) fn issue_token(&self, org: usize, kind: TokenKind) -> (String, u64) {
        // Read the org before taking the auth lock: handlers hold an org
        // read lock while they take the auth lock (login codes), so the
        // opposite order could deadlock behind a waiting writer.
        let platform = self.orgs[org].read().expect("org lock").platform;
        let mut auth = self.auth.lock().expect("auth lock");
        let now = Instant::now();
        let expires = now + self.lifetime();
        let ckey = (org, format!("{kind:?}"));
        if platform == Platform::DingTalk {
            if let Some(t) = auth.current.get(&ckey).cloned() {
                if let Some(rec) = auth.tokens.get_mut(&t) {
                    if rec.expires > now {
                        rec.expires = expires;
                        return (t, self.cfg.token_lifetime_secs);
                    }
                }
            }
        }
        let t = self.new_token(&mut auth, org);
        auth.tokens
            .insert(t.clone(), TokenRec { org, kind, expires });
        auth.current.insert(ckey, t.clone());
        (t, self.cfg.token_lifetime_secs)
    }

    /// Issues a DingTalk user access token and its refresh token.
    pub(crate) fn issue_user_token(&self, org: usize, userid: &str) -> (String, String, u64) {
        let mut auth = self.auth.lock().expect("auth lock");
        let t = self.new_token(&mut auth, org);
        let r = self.new_token(&mut auth, org);
        auth.tokens.insert(
            t.clone(),
            TokenRec {
                org,
                kind: TokenKind::User(userid.to_string()),
                expires: Instant::now() + self.lifetime(),
            },
        );
        auth.refresh.insert(r.clone(), (org, userid.to_string()));
        (t, r, self.cfg.token_lifetime_secs)
    }

    pub(crate) fn take_refresh(&self, refresh: &str) -> Option<(usize, String)> {
        self.auth.lock().expect("auth lock").refresh.remove(refresh)
    }

    /// Checks a presented token.
    pub(crate) fn check_token(
        &self,
        token: Option<&str>,
    ) -> Result<(usize, TokenKind), (Option<usize>, TokenFault)> {
        let Some(t) = token.filter(|t| !t.is_empty()) else {
            return Err((None, TokenFault::Missing));
        };
        let auth = self.auth.lock().expect("auth lock");
        if auth.revoked.contains(t) {
            return Err((None, TokenFault::Revoked));
        }
        match auth.tokens.get(t) {
            None => Err((None, TokenFault::Unknown)),
            Some(rec) if rec.expires <= Instant::now() => Err((Some(rec.org), TokenFault::Expired)),
            Some(rec) => Ok((rec.org, rec.kind.clone())),
        }
    }

    /// Invalidates every token issued so far (the platforms may do this early).
    pub(crate) fn invalidate_tokens(&self) {
        let mut auth = self.auth.lock().expect("auth lock");
        let all: Vec<String> = auth.tokens.keys().cloned().collect();
        auth.revoked.extend(all);
        auth.tokens.clear();
        auth.current.clear();
        auth.refresh.clear();
    }

    /// Issues a single-use login code for a member.
    pub(crate) fn issue_code(&self, org: usize, userid: &str) -> String {
        let mut auth = self.auth.lock().expect("auth lock");
        auth.counter += 1;
        // Random, as the platforms' codes are: a code derived from the seed
        // would repeat in the next run of the same simulated org, and an app
        // that remembers spent codes (jit-login does) would refuse it.
        let code = format!(
            "{}{:08x}",
            jit_crypto::random_nonce(16),
            auth.counter as u32
        );
        auth.codes.insert(
            code.clone(),
            CodeRec {
                org,
                userid: userid.to_string(),
                expires: Instant::now() + Duration::from_secs(self.cfg.login_code_lifetime_secs),
            },
        );
        code
    }

    /// Consumes a login code of the given org: the member's userid, or
    /// `None` when unknown, used, expired or of another org.
    pub(crate) fn take_code(&self, org: usize, code: &str) -> Option<String> {
        let mut auth = self.auth.lock().expect("auth lock");
        match auth.codes.get(code) {
            Some(c) if c.org == org => {
                let c = auth.codes.remove(code).expect("present");
                (c.expires > Instant::now()).then_some(c.userid)
            }
            _ => None,
        }
    }

    /// The rate rule of an org's app: WeCom per minute and per hour,
    /// DingTalk per second (the one home of which limit has which window).
    pub(crate) fn rate_rule(&self, org: usize) -> RateRule {
        if org == 0 {
            RateRule {
                limit: self.cfg.wecom_rate_per_minute,
                window_ms: 60_000,
                hour_limit: self.cfg.wecom_rate_per_hour,
            }
        } else {
            RateRule {
                limit: self.cfg.dingtalk_rate_per_second,
                window_ms: 1_000,
                hour_limit: 0,
            }
        }
    }

    /// The rate windows as they stand now: what a benchmark needs to
    /// compute the exact earliest time a number of further calls can be
    /// answered (see [`RateState`]).
    pub(crate) fn rate_state(&self) -> RateState {
        let m = self.meter.lock().expect("meter lock");
        let elapsed_ms = self.start.elapsed().as_millis() as u64;
        let rules = (0..self.orgs.len())
            .map(|o| (self.label(o), self.rate_rule(o)))
            .collect();
        let mut windows: BTreeMap<String, BTreeMap<String, RateWindow>> = BTreeMap::new();
        for ((org, path), w) in &m.windows {
            windows.entry(self.label(*org)).or_default().insert(
                path.to_string(),
                RateWindow {
                    index: w.idx,
                    used: w.count,
                    hour_index: w.hour_idx,
                    hour_used: w.hour_count,
                },
            );
        }
        RateState {
            elapsed_ms,
            rules,
            windows,
        }
    }

    /// Counts a call and applies the rate limit; `false` = throttled.
    pub(crate) fn meter(&self, org: Option<usize>, path: &'static str) -> bool {
        self.meter_at(org, path, self.start.elapsed().as_millis() as u64)
    }

    /// [`Shared::meter`] at a given time since start (ms), for exact tests.
    pub(crate) fn meter_at(&self, org: Option<usize>, path: &'static str, elapsed: u64) -> bool {
        let label = org
            .map(|o| self.label(o))
            .unwrap_or_else(|| "unknown".into());
        let mut m = self.meter.lock().expect("meter lock");
        m.stats
            .apps
            .entry(label.clone())
            .or_default()
            .entry(path.to_string())
            .or_default()
            .calls += 1;
        let Some(org) = org else { return true };
        let RateRule {
            limit,
            window_ms: period,
            hour_limit,
        } = self.rate_rule(org);
        let w = m.windows.entry((org, path)).or_default();
        let idx = elapsed / period;
        if w.idx != idx {
            w.idx = idx;
            w.count = 0;
        }
        let hidx = elapsed / 3_600_000;
        if w.hour_idx != hidx {
            w.hour_idx = hidx;
            w.hour_count = 0;
        }
        let over =
            (limit > 0 && w.count >= limit) || (hour_limit > 0 && w.hour_count >= hour_limit);
        if over {
            m.stats
                .apps
                .get_mut(&label)
                .and_then(|a| a.get_mut(path))
                .expect("just inserted")
                .throttled += 1;
            return false;
        }
        w.count += 1;
        w.hour_count += 1;
        true
    }

    fn count_fault(&self, org: Option<usize>, path: &'static str, kind: FaultKind) {
        let label = org
            .map(|o| self.label(o))
            .unwrap_or_else(|| "unknown".into());
        let mut m = self.meter.lock().expect("meter lock");
        let st = m
            .stats
            .apps
            .entry(label)
            .or_default()
            .entry(path.to_string())
            .or_default();
        st.faults += 1;
        *st.fault_kinds.entry(kind).or_insert(0) += 1;
    }

    /// Replaces the fault settings; a new round forgets how often each
    /// request was seen.
    pub(crate) fn set_fault_settings(&self, f: FaultSettings) -> Result<(), String> {
        for (name, p) in [("fault rate", f.rate), ("outage rate", f.outage_rate)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} {p} is not within 0..=1"));
            }
        }
        let mut c = self.chaos.write().expect("chaos lock");
        if c.faults.round != f.round {
            self.seen.lock().expect("seen lock").clear();
            *self.revoked_this_round.lock().expect("revocation lock") = false;
        }
        c.faults = f;
        Ok(())
    }

    /// Draws the fault for one attempt of a request, if any. The draw is a
    /// hash of (seed, round, path, the request's identity, attempt number):
    /// independent of arrival order, so concurrent clients replay exactly.
    fn draw_fault(&self, path: &'static str, req: &ApiReq) -> Option<(FaultKind, u64)> {
        let (rate, outage, kinds, round) = {
            let c = self.chaos.read().expect("chaos lock");
            let f = &c.faults;
            if (f.rate <= 0.0 && f.outage_rate <= 0.0) || f.kinds.is_empty() {
                return None;
            }
            (f.rate, f.outage_rate, f.kinds.clone(), f.round)
        };
        let key = mix(
            mix(self.cfg.seed ^ 0xfa17, round),
            request_identity(path, req),
        );
        let attempt = {
            let mut seen = self.seen.lock().expect("seen lock");
            let n = seen.entry(key).or_insert(0);
            *n += 1;
            *n
        };
        // An outage is decided once per request and round: every attempt
        // fails the same way.
        let whole = mix(key, 0x0u64.wrapping_sub(1));
        let h = if unit(whole) < outage {
            whole
        } else {
            let h = mix(key, attempt);
            if unit(h) >= rate {
                return None;
            }
            h
        };
        let kind = kinds[(mix(h, 5) % kinds.len() as u64) as usize];
        let applies = match kind {
            // One revocation per round: every call in flight with the old
            // token is refused once and retried with a fresh one. More would
            // make which calls fail twice a matter of timing, not of the
            // seed (and real platforms do not revoke tokens every second).
            FaultKind::RevokeToken => {
                !TOKEN_PATHS.contains(&path)
                    && !std::mem::replace(
                        &mut *self.revoked_this_round.lock().expect("revocation lock"),
                        true,
                    )
            }
            FaultKind::Permission => refusable_dept(path, req).is_some(),
            _ => true,
        };
        applies.then_some((kind, h))
    }
}

/// Calls that issue tokens: never answered with a token revocation.
const TOKEN_PATHS: [&str; 4] = [
    "/cgi-bin/gettoken",
    "/gettoken",
    "/v1.0/oauth2/accessToken",
    "/v1.0/oauth2/userAccessToken",
];

/// The department a permission error can refuse on this call: WeCom
/// `user/list`; DingTalk `v2/department/get`, `v2/user/list`,
/// `v2/department/listsubid`.
fn refusable_dept(path: &str, req: &ApiReq) -> Option<i64> {
    match path {
        "/cgi-bin/user/list" => req.query("department_id")?.trim().parse().ok(),
        "/topapi/v2/department/get"
        | "/topapi/v2/user/list"
        | "/topapi/v2/department/listsubid" => req.int("dept_id").ok().flatten(),
        _ => None,
    }
}

/// A uniform number in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// FNV-1a: a stable hash of text (std's hasher may change between releases).
fn text_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// JSON with object keys sorted, so that key order does not change identity.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for k in keys {
                out.push_str(k);
                out.push(':');
                canonical(&m[k], out);
                out.push(',');
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for x in a {
                canonical(x, out);
                out.push(',');
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// What identifies a request for fault draws: its API path, its query
/// without the token, and its JSON body (department id, cursor, tag id, ...).
fn request_identity(path: &str, req: &ApiReq) -> u64 {
    let mut q: Vec<(&String, &String)> = req
        .query
        .iter()
        .filter(|(k, _)| k.as_str() != "access_token")
        .collect();
    q.sort();
    let mut text = String::from(path);
    for (k, v) in q {
        text.push_str(&format!("&{k}={v}"));
    }
    text.push('#');
    canonical(&req.body, &mut text);
    text_hash(&text)
}

/// How a route authenticates.
pub(crate) struct Routed {
    /// The canonical API path used in stats and rate limits.
    pub path: &'static str,
    /// The org and token kind, or the error answer (with the org when known).
    pub who: Result<(usize, TokenKind), (Option<usize>, Reply)>,
}

/// The fallback handler: every platform API call.
pub(crate) async fn api(
    State(sh): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let path = uri.path().to_string();
    let query: HashMap<String, String> =
        axum::extract::Query::<HashMap<String, String>>::try_from_uri(&uri)
            .map(|q| q.0)
            .unwrap_or_default();
    let (body, body_ok) = if body.is_empty() {
        (Value::Null, true)
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => (v, true),
            Err(_) => (Value::Null, false),
        }
    };
    let _ = method;
    let req = ApiReq {
        path,
        query,
        headers,
        body,
        body_ok,
    };
    let family = if req.path.starts_with("/cgi-bin/") {
        Family::Wecom
    } else if req.path.starts_with("/v1.0/") {
        Family::DingNew
    } else {
        Family::DingOld
    };
    let routed = match family {
        Family::Wecom => wecom::route(&sh, &req),
        _ => dingtalk::route(&sh, &req),
    };
    let Some(routed) = routed else {
        return unknown_api(&sh, family, &req.path);
    };
    let path = routed.path;
    let (org, kind) = match routed.who {
        Ok(who) => who,
        Err((org, reply)) => {
            sh.meter(org, path);
            delay(&sh).await;
            return reply;
        }
    };
    if !sh.meter(Some(org), path) {
        delay(&sh).await;
        return throttled(&sh, family, path);
    }
    delay(&sh).await;
    if let Some(code) = refusable_dept(path, &req).and_then(|d| sh.refusal(org, d)) {
        sh.count_fault(Some(org), path, FaultKind::Permission);
        return permission_error(&sh, family, code);
    }
    let fault = sh.draw_fault(path, &req);
    if let Some((kind, _)) = fault {
        sh.count_fault(Some(org), path, kind);
    }
    let stall_ms = sh.chaos.read().expect("chaos lock").faults.stall_ms;
    match fault {
        Some((FaultKind::Busy, _)) => return busy(&sh, family),
        Some((FaultKind::Http5xx, h)) => {
            let code = [502u16, 503, 504][(mix(h, 3) % 3) as usize];
            return Reply::Text(
                StatusCode::from_u16(code).expect("valid"),
                "text/html",
                format!("<html><body><h1>{code}</h1>upstream error</body></html>"),
            );
        }
        Some((FaultKind::Drop, _)) => return Reply::Drop,
        Some((FaultKind::Stall, _)) => tokio::time::sleep(Duration::from_millis(stall_ms)).await,
        Some((FaultKind::RevokeToken, _)) => {
            sh.invalidate_tokens();
            return revoked(&sh, family);
        }
        Some((FaultKind::Permission, h)) => {
            // WeCom has two documented refusals of a department read.
            let code = if family == Family::Wecom && mix(h, 7) % 2 == 1 {
                60020
            } else {
                60011
            };
            return permission_error(&sh, family, code);
        }
        _ => {}
    }
    let reply = match family {
        Family::Wecom => wecom::handle(&sh, path, org, &kind, &req),
        _ => dingtalk::handle(&sh, path, org, &kind, &req),
    };
    if matches!(fault, Some((FaultKind::Malformed, _))) {
        let (status, text) = match reply {
            Reply::Json(s, v) => (s, v.to_string()),
            Reply::Text(s, _, t) => (s, t),
            Reply::Drop => return Reply::Drop,
        };
        let cut = text
            .char_indices()
            .nth(text.chars().count() / 2)
            .map(|c| c.0)
            .unwrap_or(0);
        return Reply::Text(status, "application/json", text[..cut].to_string());
    }
    reply
}

async fn delay(sh: &Shared) {
    let ms = sh.chaos.read().expect("chaos lock").latency_ms;
    sh.latency.wait(Duration::from_millis(ms)).await;
}

/// The old-family error envelope.
pub(crate) fn errcode(code: i64, msg: &str) -> Reply {
    Reply::Json(StatusCode::OK, json!({"errcode": code, "errmsg": msg}))
}

/// A DingTalk oapi error with its request id.
pub(crate) fn ding_err(sh: &Shared, code: i64, msg: &str) -> Reply {
    Reply::Json(
        StatusCode::OK,
        json!({"errcode": code, "errmsg": msg, "request_id": sh.request_id()}),
    )
}

/// A DingTalk new-family error.
pub(crate) fn new_err(sh: &Shared, status: u16, code: &str, msg: &str) -> Reply {
    Reply::Json(
        StatusCode::from_u16(status).expect("valid status"),
        json!({"code": code, "message": msg, "requestid": sh.request_id()}),
    )
}

fn unknown_api(sh: &Shared, family: Family, path: &str) -> Reply {
    match family {
        // WeCom answers unknown cgi paths with a non-zero errcode too
        // (reference Part D); 48001 "api unauthorized" is the closest documented code.
        Family::Wecom => errcode(
            48001,
            &format!("api unauthorized, hint: [{path} is not an API]"),
        ),
        // Reference Part D: an unknown /topapi path answers errcode 22.
        Family::DingOld => ding_err(sh, 22, "无效的API，请检查API路径"),
        Family::DingNew => new_err(
            sh,
            404,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        ),
    }
}

fn throttled(sh: &Shared, family: Family, path: &str) -> Reply {
    match family {
        Family::Wecom => errcode(
            45009,
            &format!(
                "api freq out of limit, hint: [{}], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e=45009",
                path
            ),
        ),
        Family::DingOld => ding_err(sh, 90018, "当前企业内应用对该接口的调用频率超出限制，请稍后重试"),
        // HTTP status of the Forbidden.* codes is UNCONFIRMED (reference B.7: likely 403).
        Family::DingNew => new_err(
            sh,
            403,
            "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
            "该应用对该接口的调用QPS超过限制",
        ),
    }
}

/// A call refused because every token was revoked (reference A.2, B.1).
fn revoked(sh: &Shared, family: Family) -> Reply {
    match family {
        Family::Wecom => errcode(40014, "invalid access_token"),
        Family::DingOld => ding_err(sh, 40014, "不合法的access_token"),
        Family::DingNew => new_err(sh, 400, "InvalidAuthentication", "不合法的access_token"),
    }
}

/// A department read refused for lack of permission (reference A.8, B.1).
fn permission_error(sh: &Shared, family: Family, code: i64) -> Reply {
    match (family, code) {
        (Family::Wecom, 60020) => errcode(
            60020,
            "not allow to access from your ip, hint: [from ip: 127.0.0.1]",
        ),
        (Family::Wecom, c) => errcode(c, "no privilege to access/modify contact/party/agent"),
        (_, 60020) => ding_err(sh, 60020, "访问ip不在白名单之中"),
        (_, c) => ding_err(sh, c, "应用尚未开通所需的权限，请在权限管理中开通"),
    }
}

fn busy(sh: &Shared, family: Family) -> Reply {
    match family {
        Family::Wecom => errcode(-1, "system busy"),
        Family::DingOld => ding_err(sh, -1, "系统繁忙"),
        // The new family's code for a transient server error is not in the
        // reference; an HTTP 503 with the standard error body is the closest.
        Family::DingNew => new_err(sh, 503, "ServiceUnavailable", "系统繁忙，请稍后重试"),
    }
}

/// Builds the whole router: admin API under `/_sim`, everything else is an API call.
pub(crate) fn router(sh: Arc<Shared>) -> Router {
    admin::routes()
        .merge(crate::login::routes())
        .merge(crate::stream::routes())
        .fallback(api)
        .with_state(sh)
}

#[derive(Debug)]
struct DroppedByFault;

impl std::fmt::Display for DroppedByFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DroppedByFault {}

/// Serves the router on the listener until `stop` changes. A response marked
/// [`DropConnection`] makes the service fail, and hyper then closes the
/// connection without writing anything.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use tower::ServiceExt;
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let app = app.clone();
                let mut stop_conn = stop.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let app = app.clone();
                        async move {
                            let resp = match app.oneshot(req).await {
                                Ok(r) => r,
                                Err(never) => match never {},
                            };
                            if resp.extensions().get::<DropConnection>().is_some() {
                                Err(DroppedByFault)
                            } else {
                                Ok(resp)
                            }
                        }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        // The Stream gateway's WebSocket is an upgrade.
                        .with_upgrades();
                    tokio::select! {
                        _ = conn => {}
                        _ = stop_conn.changed() => {}
                    }
                });
            }
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared::new(SimConfig {
            depts: 3,
            users: 10,
            ..SimConfig::default()
        })
    }

    #[test]
    fn dingtalk_allows_exactly_20_calls_per_api_per_second_window() {
        let sh = shared();
        let p = "/topapi/user/listadmin";
        assert!((0..20).all(|i| sh.meter_at(Some(1), p, i * 10)));
        assert!(!sh.meter_at(Some(1), p, 999));
        assert!(
            sh.meter_at(Some(1), "/topapi/v2/user/get", 999),
            "another API has its own window"
        );
        assert!(
            sh.meter_at(Some(2), p, 999),
            "another app has its own window"
        );
        assert!(sh.meter_at(Some(1), p, 1000), "a new window starts at 1 s");
        let st = sh.meter.lock().unwrap().stats.api("dingtalk-0", p);
        assert_eq!((st.calls, st.throttled), (22, 1));
    }

    #[test]
    fn wecom_allows_exactly_10000_calls_per_api_per_minute_window() {
        let sh = shared();
        let p = "/cgi-bin/user/get";
        assert!((0..10_000).all(|i| sh.meter_at(Some(0), p, i)));
        assert!(!sh.meter_at(Some(0), p, 59_999));
        assert!(sh.meter_at(Some(0), p, 60_000));
    }

    #[test]
    fn rate_state_shows_each_apps_rule_and_the_calls_of_its_current_windows() {
        let sh = shared();
        let p = "/cgi-bin/user/list";
        assert!((0..3).all(|i| sh.meter_at(Some(0), p, 61_000 + i)));
        let st = sh.rate_state();
        assert_eq!(st.rules["wecom"].window_ms, 60_000);
        assert_eq!(st.rules["wecom"].hour_limit, 150_000);
        assert_eq!(st.rules["dingtalk-0"].window_ms, 1_000);
        let w = st.windows["wecom"][p];
        assert_eq!((w.index, w.used, w.hour_index, w.hour_used), (1, 3, 0, 3));
        assert!(!st.windows.contains_key("dingtalk-0"), "never called");
    }

    #[test]
    fn wecom_hour_limit_applies_across_minute_windows() {
        let sh = shared();
        let p = "/cgi-bin/user/get";
        for minute in 0..15u64 {
            assert!((0..10_000).all(|i| sh.meter_at(Some(0), p, minute * 60_000 + i)));
        }
        assert!(
            !sh.meter_at(Some(0), p, 15 * 60_000),
            "150 000 per hour reached"
        );
        assert!(sh.meter_at(Some(0), p, 3_600_000), "a new hour");
    }
}
