//! Simulator configuration.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Old families: HTTP 200 `{"errcode":-1,"errmsg":"system busy"}`;
    /// DingTalk new family: HTTP 503 with `{code, message, requestid}`.
    Busy,
    /// HTTP 502 / 503 / 504 with a non-JSON gateway page.
    Http5xx,
    /// The connection is closed without any response.
    Drop,
    /// The answer is held for `stall_ms` (longer than a sane client timeout).
    Stall,
    /// HTTP 200 with a truncated, unparsable JSON body.
    Malformed,
    /// Every token issued so far is revoked when the call arrives (the
    /// platform invalidated them early), and the call itself is refused as
    /// the platform refuses a revoked token: WeCom and DingTalk oapi 40014,
    /// DingTalk new family HTTP 400 `InvalidAuthentication`. Not injected on
    /// token calls, and at most once per round ([`FaultSettings::round`]):
    /// a later draw of this kind in the same round is no fault.
    RevokeToken,
    /// The app is refused one department: WeCom `user/list` answers 60011
    /// (no privilege) or 60020 (caller IP not allow-listed); DingTalk
    /// `v2/department/get`, `v2/user/list` and `v2/department/listsubid`
    /// answer 60011 (the app lacks the API permission point). Only injected
    /// on those calls; a draw of this kind on any other call is no fault.
    Permission,
}

impl FaultKind {
    /// Every fault kind.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Busy,
        FaultKind::Http5xx,
        FaultKind::Drop,
        FaultKind::Stall,
        FaultKind::Malformed,
        FaultKind::RevokeToken,
        FaultKind::Permission,
    ];

    /// The transport-level kinds (the default draw): every kind a client
    /// should survive by retrying the same request.
    pub const TRANSPORT: [FaultKind; 5] = [
        FaultKind::Busy,
        FaultKind::Http5xx,
        FaultKind::Drop,
        FaultKind::Stall,
        FaultKind::Malformed,
    ];

    /// The kind's name as used in JSON, the CLI and stats (`busy`, `revoke_token`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Busy => "busy",
            FaultKind::Http5xx => "http5xx",
            FaultKind::Drop => "drop",
            FaultKind::Stall => "stall",
            FaultKind::Malformed => "malformed",
            FaultKind::RevokeToken => "revoke_token",
            FaultKind::Permission => "permission",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "busy" => FaultKind::Busy,
            "http5xx" | "5xx" => FaultKind::Http5xx,
            "drop" => FaultKind::Drop,
            "stall" => FaultKind::Stall,
            "malformed" => FaultKind::Malformed,
            "revoke_token" | "revoke" => FaultKind::RevokeToken,
            "permission" => FaultKind::Permission,
            other => {
                return Err(format!(
                    "unknown fault kind {other:?} (busy, http5xx, drop, stall, malformed, revoke_token, permission)"
                ))
            }
        })
    }
}

/// Where and how change events of one org are pushed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackConfig {
    /// The receiver's URL.
    pub url: String,
    /// Signature token (letters/digits, ≤ 32).
    pub token: String,
    /// 43-character EncodingAESKey / aes_key.
    pub aes_key: String,
}

impl fmt::Debug for CallbackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackConfig")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Which simulated org a call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OrgRef {
    /// The WeCom corp.
    Wecom,
    /// DingTalk org number `n` (0-based).
    Dingtalk(usize),
}

impl OrgRef {
    /// `wecom` or `dingtalk-N`, as used in admin URLs and stats.
    pub fn label(&self) -> String {
        match self {
            OrgRef::Wecom => "wecom".into(),
            OrgRef::Dingtalk(n) => format!("dingtalk-{n}"),
        }
    }

    pub(crate) fn index(&self) -> usize {
        match self {
            OrgRef::Wecom => 0,
            OrgRef::Dingtalk(n) => n + 1,
        }
    }
}

impl FromStr for OrgRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "wecom" {
            return Ok(OrgRef::Wecom);
        }
        s.strip_prefix("dingtalk-")
            .and_then(|n| n.parse().ok())
            .map(OrgRef::Dingtalk)
            .ok_or_else(|| format!("unknown org {s:?} (wecom, dingtalk-0, dingtalk-1, ...)"))
    }
}

/// Everything the simulator can be told. `Default` gives realistic limits
/// (the platforms' documented rate limits and 7200 s tokens), no faults, no
/// latency, and a small org.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SimConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Seed of the org generator and of fault injection.
    pub seed: u64,
    /// WeCom departments (DingTalk too unless `dingtalk_depts` is set).
    pub depts: usize,
    /// WeCom members (DingTalk too unless `dingtalk_users` is set).
    pub users: usize,
    /// Departments per DingTalk org.
    pub dingtalk_depts: Option<usize>,
    /// Members per DingTalk org.
    pub dingtalk_users: Option<usize>,
    /// Deepest department level below the root (root = 0).
    pub max_depth: usize,
    /// Children per department (1..=fan_out, random), a soft target when
    /// depth runs out.
    pub fan_out: usize,
    /// Number of DingTalk orgs.
    pub dingtalk_orgs: usize,
    /// Fraction of each later DingTalk org's members who are the same person
    /// (same unionId) as a member of DingTalk org 0.
    pub dingtalk_shared_fraction: f64,
    /// Added to every API answer: each answer leaves no sooner than this
    /// after its request was read (and, CPU permitting, within about 0.1 ms
    /// after).
    pub latency_ms: u64,
    /// WeCom calls per corp per API per 60 s window (0 = unlimited); real: 10 000.
    pub wecom_rate_per_minute: u32,
    /// WeCom calls per corp per API per hour (0 = unlimited); real: 150 000.
    pub wecom_rate_per_hour: u32,
    /// DingTalk calls per app per API per 1 s window (0 = unlimited); real: 20.
    pub dingtalk_rate_per_second: u32,
    /// Probability (0..=1) that an API call gets a fault instead of its answer.
    pub fault_rate: f64,
    /// Which faults to draw from (uniformly).
    pub fault_kinds: Vec<FaultKind>,
    /// Probability (0..=1) that a request is in an outage for the whole
    /// round: every attempt of it gets a fault (drawn once from
    /// `fault_kinds`), so a client's retries run out. Decided per request
    /// like every fault draw (see [`crate::FaultSettings`]).
    pub outage_rate: f64,
    /// How long a `Stall` fault holds the answer.
    pub stall_ms: u64,
    /// Access-token lifetime in seconds (`expires_in`).
    pub token_lifetime_secs: u64,
    /// Login codes' lifetime in seconds (both platforms: 5 minutes).
    pub login_code_lifetime_secs: u64,
    /// Simulate a WeCom self-built app created after 2022-06-20: user APIs
    /// withhold avatar, gender, mobile, email, biz_mail, qr_code, address.
    pub wecom_withhold_private_fields: bool,
    /// `user/list_id` answers 48002 to the normal app token (real behaviour:
    /// only the contact-sync secret may call it).
    pub wecom_list_id_requires_contact_secret: bool,
    /// Since 2022-08-15, contact-sync secrets on newly added IPs may no
    /// longer call department/list, department/get, user/get and user/list
    /// (reference A.3): with this on, those answer 48002 to the
    /// contact-sync token, which must use department/simplelist + user/list_id.
    pub wecom_contact_token_restricted: bool,
    /// WeCom change-event callback.
    pub wecom_callback: Option<CallbackConfig>,
    /// DingTalk HTTP-push callbacks by org number (missing = none).
    pub dingtalk_callbacks: Vec<Option<CallbackConfig>>,
    /// The WeCom app's visible range: department subtrees it may see
    /// (`None` = the whole corp). Changeable while serving.
    pub wecom_visible_range: Option<Vec<i64>>,
    /// Each DingTalk app's contact scope by org number (missing or `None` =
    /// the whole org). Changeable while serving.
    pub dingtalk_visible_ranges: Vec<Option<Vec<i64>>>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            port: 0,
            seed: 7,
            depts: 50,
            users: 500,
            dingtalk_depts: None,
            dingtalk_users: None,
            max_depth: 5,
            fan_out: 8,
            dingtalk_orgs: 2,
            dingtalk_shared_fraction: 0.1,
            latency_ms: 0,
            wecom_rate_per_minute: 10_000,
            wecom_rate_per_hour: 150_000,
            dingtalk_rate_per_second: 20,
            fault_rate: 0.0,
            fault_kinds: FaultKind::TRANSPORT.to_vec(),
            outage_rate: 0.0,
            stall_ms: 30_000,
            token_lifetime_secs: 7200,
            login_code_lifetime_secs: 300,
            wecom_withhold_private_fields: false,
            wecom_list_id_requires_contact_secret: true,
            wecom_contact_token_restricted: false,
            wecom_callback: None,
            dingtalk_callbacks: Vec::new(),
            wecom_visible_range: None,
            dingtalk_visible_ranges: Vec::new(),
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("port", &self.port)
            .field("seed", &self.seed)
            .field("depts", &self.depts)
            .field("users", &self.users)
            .field("dingtalk_depts", &self.dingtalk_depts)
            .field("dingtalk_users", &self.dingtalk_users)
            .field("dingtalk_orgs", &self.dingtalk_orgs)
            .field("latency_ms", &self.latency_ms)
            .field("fault_rate", &self.fault_rate)
            .field("outage_rate", &self.outage_rate)
            .field("token_lifetime_secs", &self.token_lifetime_secs)
            .finish_non_exhaustive()
    }
}

/// Fault injection while serving: what [`crate::SimHandle::set_fault_settings`]
/// and `POST /_sim/faults` set, and `GET /_sim/faults` shows.
///
/// Every decision is a hash of (seed, `round`, API path, the request's
/// identifying parameters — query and JSON body without the token — and how
/// many times that same request was seen in this round). It depends neither
/// on the order calls arrive in nor on other requests, so a client that
/// sends its calls concurrently gets the same faults on every replay of a
/// seed and round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultSettings {
    /// Probability (0..=1) that one attempt of a request gets a fault.
    pub rate: f64,
    /// Kinds to draw from (uniformly).
    pub kinds: Vec<FaultKind>,
    /// Probability (0..=1) that a request fails on every attempt this round.
    pub outage_rate: f64,
    /// How long a `Stall` fault holds the answer.
    pub stall_ms: u64,
    /// The scenario's round: a new round draws new faults for the same
    /// requests and forgets how often each was seen.
    pub round: u64,
}

impl Default for FaultSettings {
    fn default() -> Self {
        FaultSettings {
            rate: 0.0,
            kinds: FaultKind::TRANSPORT.to_vec(),
            outage_rate: 0.0,
            stall_ms: 30_000,
            round: 0,
        }
    }
}

/// A department the app is refused until the refusal is lifted (a sticky
/// misconfiguration: permission point not granted, IP not allow-listed).
/// Calls that read the department answer `errcode`: WeCom `user/list`;
/// DingTalk `v2/department/get`, `v2/user/list`, `v2/department/listsubid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeptRefusal {
    /// The refused department.
    pub dept_id: i64,
    /// The answer's errcode: 60011 (default) or, on WeCom, 60020.
    #[serde(default = "no_privilege")]
    pub errcode: i64,
}

fn no_privilege() -> i64 {
    60011
}
