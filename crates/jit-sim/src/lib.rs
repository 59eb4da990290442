//! A WeCom and DingTalk simulator that speaks the real wire formats.
//!
//! The machines of this project cannot reach WeCom or DingTalk, so every
//! test, demo and benchmark of the org types runs against this simulator. It
//! follows the reference `wecom-dingtalk-api.md`: paths, methods, JSON field
//! names and types, error codes, token lifetimes and rate limits. Where the
//! reference marks a behaviour UNCONFIRMED, the code says which documented
//! behaviour it chose.
//!
//! One server on 127.0.0.1 hosts:
//! - one WeCom corp under `/cgi-bin/...` (one self-built app plus the
//!   contact-sync secret);
//! - `dingtalk_orgs` DingTalk orgs, both API families (`/gettoken`,
//!   `/topapi/...`, `/v1.0/...`); the app is recognised by its token;
//! - their Stream mode gateway (`/v1.0/gateway/connections/open`, the
//!   WebSocket at `/gateway/connect`; see the `stream` module), which
//!   pushes an org's events once its app has opened a connection;
//! - an admin API under `/_sim/...` (truth, stats, mutations, login codes,
//!   callbacks), which is never metered.
//!
//! Admin API (JSON; `{org}` is `wecom`, `dingtalk-0`, `dingtalk-1`, …):
//!
//! | method & path | does |
//! |---|---|
//! | `GET /_sim/info` | the start line ([`SimInfo`]) |
//! | `GET /_sim/stats`, `POST /_sim/stats/reset` | [`SimStats`]: calls, throttled, faults per app and API; event delivery |
//! | `POST /_sim/tokens/invalidate` | invalidate every issued token early |
//! | `GET /_sim/faults`, `POST /_sim/faults` | [`FaultSettings`]: rate, kinds, outage rate, stall, round (POST: fields left out keep their value) |
//! | `POST /_sim/orgs/{org}/visible-range` | `{"depts": [2, 9]}` or `{"depts": null}` (whole org): the app's visible range / contact scope |
//! | `POST /_sim/orgs/{org}/refusals` | `[{"deptId": 7, "errcode": 60020}]`: departments the app is refused until the list changes ([`DeptRefusal`]) |
//! | `GET /_sim/orgs/{org}/truth` | the org in the jit-org model (`CorpSnapshot`) |
//! | `POST /_sim/orgs/{org}/mutate` | one [`Mutation`] or a list, e.g. `{"op":"removeMember","userid":"x"}` |
//! | `POST /_sim/orgs/{org}/login-code` | `{"userid"}` (or `{"outsider": true}`: someone who is not a member) → `{"code"}` for the login endpoints |
//!
//! The platforms' login pages (WeCom `/connect/oauth2/authorize` and
//! `/wwlogin/sso/login`, DingTalk `/oauth2/auth`) send the browser back with
//! a code for the member named by `sim_userid`; see the `login` module.
//! | `POST /_sim/orgs/{org}/callback` | [`CallbackConfig`] or `null`; `…/callback/verify` runs the URL check |
//! | `GET /_sim/orgs/{org}/stream` | [`StreamStats`] of a DingTalk org's Stream gateway |
//! | `GET`/`POST /_sim/orgs/{org}/stream/settings` | [`StreamSettings`] (POST: fields left out keep their value) |
//! | `POST /_sim/orgs/{org}/stream/{drop,disconnect,ping}` | make the live Stream connection drop, be asked to reconnect, or be pinged ([`StreamCommand`]) |
//!
//! Decisions that hold everywhere:
//! - A member removed through the admin API (or [`SimHandle::mutate`]) is
//!   gone: absent from every platform API and from the truth. WeCom members
//!   with status 5 ("left", generated for ~1%) stay visible with `status: 5`
//!   and map to `Offline`; DingTalk has no such state, so a member set to
//!   `Left` disappears from DingTalk answers and from the truth.
//! - Rate limits use fixed windows aligned to the server start, per app and
//!   per API path: WeCom 10 000 per 60 s and 150 000 per hour, DingTalk 20
//!   per 1 s. Throttled calls do not use up the window. WeCom's extra
//!   "blocked for 60 s after the minute limit" penalty is not modelled, so
//!   the floor a benchmark computes is exactly calls ÷ limit per window.
//! - Fault decisions are hashes of (seed, round, API path, the request's
//!   identity, attempt number), never of arrival order: see [`FaultSettings`].
//! - The visible range limits WeCom `department/list` (a visible department
//!   under an invisible parent keeps its real `parentid`), `user/list` and
//!   `department/get` of invisible departments (60011), `user/get` of
//!   invisible members (60011) and `tag/get` (visible members only). On
//!   DingTalk, `listsubid` is not limited (reference B.2); `department/get`
//!   and `v2/user/list` of an invisible department answer 50004, and
//!   `role/simplelist` lists visible members only. The truth is what a
//!   complete read by the app yields (see [`SimHandle::wecom_truth`]).
//! - Not simulated: IP-level limits, WeCom 45033 concurrency limits,
//!   `extattr` / `extension`
//!   (absent, so `Member::extra` is `null` in the truth).
//!
//! ```no_run
//! # async fn demo() -> Result<(), jit_sim::SimError> {
//! use jit_sim::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig { seed: 7, depts: 20, users: 100, ..SimConfig::default() }).await?;
//! let info = sim.info();
//! let url = format!("{}gettoken?corpid={}&corpsecret={}", info.wecom.api_base_url, info.wecom.corp_id, info.wecom.secret);
//! let truth = sim.wecom_truth(); // what a full sync must read back
//! assert_eq!(truth.members.len(), 100);
//! # let _ = url;
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
pub mod cli;
mod config;
mod dingtalk;
mod events;
mod latency;
mod login;
mod org;
mod server;
mod stream;
pub mod truth;
mod wecom;

pub use admin::{AdminSpec, MembershipSpec, Mutation, MutationOutcome};
pub use config::{CallbackConfig, DeptRefusal, FaultKind, FaultSettings, OrgRef, SimConfig};
pub use org::{Platform, SimStatus};
pub use server::{ApiStats, EventStats, RateRule, RateState, RateWindow, SimStats};
pub use stream::{StreamCommand, StreamSettings, StreamStats};

use jit_org::CorpSnapshot;
use serde::{Deserialize, Serialize};
use server::Shared;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Why the simulator could not start or do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding or serving failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (e.g. "binding 127.0.0.1:8080").
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The org reference names no simulated org.
    #[error("no simulated org {0:?}")]
    NoSuchOrg(String),
    /// A mutation was refused (unknown member, non-empty department, ...).
    #[error("mutation refused on {org}: {message}")]
    Mutation {
        /// Org label.
        org: String,
        /// Why.
        message: String,
    },
    /// A callback could not be configured or verified.
    #[error("callback of {org}: {message}")]
    Callback {
        /// Org label.
        org: String,
        /// Why (never contains the token or key).
        message: String,
    },
    /// The configuration is inconsistent.
    #[error("bad simulator configuration: {0}")]
    Config(String),
}

/// The WeCom app's credentials and URLs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WecomAppInfo {
    /// What `https://qyapi.weixin.qq.com/cgi-bin/` becomes (ends with `/`).
    pub api_base_url: String,
    /// corpId.
    pub corp_id: String,
    /// agentId of the self-built app.
    pub agent_id: i64,
    /// The app's secret.
    pub secret: String,
    /// The contact-sync (通讯录同步) secret (needed for `user/list_id`).
    pub contact_secret: String,
    /// Whether user APIs withhold mobile/email/avatar (app created after 2022-06-20).
    pub withhold_private_fields: bool,
}

/// One DingTalk org's app credentials and URLs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DingTalkAppInfo {
    /// Org label (`dingtalk-0`, ...).
    pub label: String,
    /// What `https://oapi.dingtalk.com` becomes (no trailing `/`).
    pub oapi_base_url: String,
    /// What `https://api.dingtalk.com` becomes (no trailing `/`).
    pub api_base_url: String,
    /// corpId.
    pub corp_id: String,
    /// agentId.
    pub agent_id: i64,
    /// AppKey / Client ID.
    pub app_key: String,
    /// AppSecret / Client Secret.
    pub app_secret: String,
}

/// What the simulator prints on start: base URLs and app credentials.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimInfo {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Admin API root (`{base_url}/_sim`).
    pub admin_url: String,
    /// The generator seed.
    pub seed: u64,
    /// The WeCom corp.
    pub wecom: WecomAppInfo,
    /// The DingTalk orgs.
    pub dingtalk: Vec<DingTalkAppInfo>,
    /// The limits in force, so that a benchmark can compute its floor.
    pub limits: SimLimits,
}

/// Rate limits and lifetimes the simulator enforces (0 = unlimited).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimLimits {
    /// WeCom calls per corp per API per 60 s window.
    pub wecom_per_minute: u32,
    /// WeCom calls per corp per API per hour.
    pub wecom_per_hour: u32,
    /// DingTalk calls per app per API per 1 s window.
    pub dingtalk_per_second: u32,
    /// Access-token lifetime (`expires_in`).
    pub token_lifetime_secs: u64,
    /// Added latency per API answer: each answer leaves no sooner than
    /// this after its request was read (and, CPU permitting, within about
    /// 0.1 ms after).
    pub latency_ms: u64,
    /// Fault probability per API call.
    pub fault_rate: f64,
}

impl fmt::Debug for SimInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimInfo")
            .field("base_url", &self.base_url)
            .field("wecom_corp_id", &self.wecom.corp_id)
            .field(
                "dingtalk_corp_ids",
                &self
                    .dingtalk
                    .iter()
                    .map(|d| d.corp_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Generates the orgs from the seed, binds 127.0.0.1:`config.port`
    /// (0 = any free port) and serves in the background.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        if !(0.0..=1.0).contains(&config.fault_rate) {
            return Err(SimError::Config(format!(
                "fault_rate {} is not within 0..=1",
                config.fault_rate
            )));
        }
        let port = config.port;
        let callbacks = (
            config.wecom_callback.clone(),
            config.dingtalk_callbacks.clone(),
        );
        let shared = Arc::new(Shared::new(config));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| SimError::Io {
                context: format!("binding 127.0.0.1:{port}"),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Io {
            context: "reading the bound address".into(),
            source,
        })?;
        let info = build_info(&shared, addr);
        let _ = shared.info.set(info);
        if let Some(cb) = callbacks.0 {
            events::set_callback(&shared, 0, Some(cb)).map_err(|message| SimError::Callback {
                org: "wecom".into(),
                message,
            })?;
        }
        for (i, cb) in callbacks.1.into_iter().enumerate() {
            if i + 1 < shared.orgs.len() {
                events::set_callback(&shared, i + 1, cb).map_err(|message| SimError::Callback {
                    org: format!("dingtalk-{i}"),
                    message,
                })?;
            }
        }
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let app = server::router(shared.clone());
        let task = tokio::spawn(server::serve(listener, app, stop_rx));
        Ok(SimHandle {
            shared,
            addr,
            stop,
            task: Mutex::new(Some(task)),
        })
    }
}

fn build_info(sh: &Shared, addr: SocketAddr) -> SimInfo {
    let base = format!("http://{addr}");
    let w = sh.orgs[0].read().expect("org lock");
    SimInfo {
        base_url: base.clone(),
        admin_url: format!("{base}/_sim"),
        seed: sh.cfg.seed,
        wecom: WecomAppInfo {
            api_base_url: format!("{base}/cgi-bin/"),
            corp_id: w.corp_id.clone(),
            agent_id: w.agent_id,
            secret: w.secret.clone(),
            contact_secret: w.contact_secret.clone(),
            withhold_private_fields: w.withhold,
        },
        dingtalk: sh.orgs[1..]
            .iter()
            .map(|o| {
                let o = o.read().expect("org lock");
                DingTalkAppInfo {
                    label: o.label.clone(),
                    oapi_base_url: base.clone(),
                    api_base_url: base.clone(),
                    corp_id: o.corp_id.clone(),
                    agent_id: o.agent_id,
                    app_key: o.app_key.clone(),
                    app_secret: o.secret.clone(),
                }
            })
            .collect(),
        limits: SimLimits {
            wecom_per_minute: sh.cfg.wecom_rate_per_minute,
            wecom_per_hour: sh.cfg.wecom_rate_per_hour,
            dingtalk_per_second: sh.cfg.dingtalk_rate_per_second,
            token_lifetime_secs: sh.cfg.token_lifetime_secs,
            latency_ms: sh.cfg.latency_ms,
            fault_rate: sh.cfg.fault_rate,
        },
    }
}

/// A running simulator. Dropping it stops the server too.
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

pub(crate) fn stats_of(sh: &Shared) -> SimStats {
    let mut s = sh.meter.lock().expect("meter lock").stats.clone();
    s.events = sh.events.stats.lock().expect("stats lock").clone();
    s
}

pub(crate) fn reset_stats_of(sh: &Shared) {
    sh.meter.lock().expect("meter lock").stats = SimStats::default();
    sh.events.stats.lock().expect("stats lock").clear();
}

pub(crate) fn mutate_shared(
    sh: &Shared,
    r: OrgRef,
    m: Mutation,
) -> Result<MutationOutcome, SimError> {
    let lock = sh.org(r)?;
    let (mut outcome, drafts) = {
        let mut org = lock.write().expect("org lock");
        admin::apply(&mut org, &m).map_err(|message| SimError::Mutation {
            org: r.label(),
            message,
        })?
    };
    let streamed = stream::push(sh, r.index(), &drafts);
    outcome.events = events::emit(sh, r.index(), drafts);
    if outcome.events.is_empty() {
        outcome.events = streamed;
    }
    Ok(outcome)
}

pub(crate) fn login_code_shared(sh: &Shared, r: OrgRef, userid: &str) -> Result<String, SimError> {
    let lock = sh.org(r)?;
    // The empty userid is the outsider: someone who is not a member.
    if !userid.is_empty() && lock.read().expect("org lock").find_member(userid).is_none() {
        return Err(SimError::Mutation {
            org: r.label(),
            message: format!("member {userid:?} does not exist"),
        });
    }
    Ok(sh.issue_code(r.index(), userid))
}

impl SimHandle {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Base URLs and app credentials: exactly what `jit sim` prints.
    pub fn info(&self) -> SimInfo {
        self.shared.info.get().cloned().expect("set on start")
    }

    /// Call counts per app and API path, throttled answers, faults, events.
    pub fn stats(&self) -> SimStats {
        stats_of(&self.shared)
    }

    /// The rate-limit windows as they stand now, with each app's rule: a
    /// benchmark reads them at the start of a sync to know exactly when the
    /// simulator would answer its calls (the strict rate floor).
    pub fn rate_state(&self) -> RateState {
        self.shared.rate_state()
    }

    /// Sets every counter back to zero (rate-limit windows are kept).
    pub fn reset_stats(&self) {
        reset_stats_of(&self.shared)
    }

    /// Changes the fault rate and kinds while serving (e.g. faults that
    /// start in the middle of a sync); the rest of [`FaultSettings`] stays.
    /// Draws stay seeded: see [`FaultSettings`].
    pub fn set_faults(&self, rate: f64, kinds: Vec<FaultKind>) -> Result<(), SimError> {
        self.set_fault_settings(FaultSettings {
            rate,
            kinds,
            ..self.fault_settings()
        })
    }

    /// The fault injection in force.
    pub fn fault_settings(&self) -> FaultSettings {
        self.shared.chaos.read().expect("chaos lock").faults.clone()
    }

    /// Replaces the fault injection settings while serving.
    pub fn set_fault_settings(&self, settings: FaultSettings) -> Result<(), SimError> {
        self.shared
            .set_fault_settings(settings)
            .map_err(SimError::Config)
    }

    /// Starts a round of a scenario: the same requests draw new faults, and
    /// attempt numbers start again from the first.
    pub fn set_round(&self, round: u64) {
        let s = FaultSettings {
            round,
            ..self.fault_settings()
        };
        self.set_fault_settings(s).expect("rates unchanged");
    }

    /// Sets the app's visible range (WeCom) / contact scope (DingTalk): the
    /// roots of the department subtrees it may see; `None` = the whole org.
    /// The truth follows at once.
    pub fn set_visible_range(&self, org: OrgRef, depts: Option<Vec<i64>>) -> Result<(), SimError> {
        self.mutate(org, Mutation::SetVisibleRange { depts })
            .map(|_| ())
    }

    /// Replaces the departments the app is refused (sticky permission
    /// errors, until the next call of this); an empty list lifts them all.
    pub fn set_refused_depts(
        &self,
        org: OrgRef,
        refusals: Vec<DeptRefusal>,
    ) -> Result<(), SimError> {
        self.shared.set_refusals(org, refusals)
    }

    /// Changes the latency added to every API answer while serving.
    pub fn set_latency_ms(&self, ms: u64) {
        self.shared.chaos.write().expect("chaos lock").latency_ms = ms;
    }

    /// Invalidates every token issued so far, as the platforms may do early:
    /// the next call with one gets 40014 (WeCom, DingTalk oapi) or HTTP 400
    /// `InvalidAuthentication` (DingTalk new family).
    pub fn invalidate_tokens(&self) {
        self.shared.invalidate_tokens()
    }

    /// The WeCom corp's current truth in the jit-org model, read from the
    /// simulator's state (not through its API): what a complete read by the
    /// app yields, so only what its visible range shows.
    pub fn wecom_truth(&self) -> CorpSnapshot {
        self.shared.orgs[0].read().expect("org lock").truth()
    }

    /// DingTalk org `org_index`'s current truth in the jit-org model.
    ///
    /// # Panics
    /// When `org_index` is not below the configured number of DingTalk orgs.
    pub fn dingtalk_truth(&self, org_index: usize) -> CorpSnapshot {
        let lock = self
            .shared
            .orgs
            .get(org_index + 1)
            .unwrap_or_else(|| panic!("no DingTalk org {org_index}"));
        lock.read().expect("org lock").truth()
    }

    /// Applies a mutation (the typed form of `POST /_sim/orgs/{org}/mutate`)
    /// and pushes its events to the org's callback, if one is set.
    pub fn mutate(&self, org: OrgRef, m: Mutation) -> Result<MutationOutcome, SimError> {
        mutate_shared(&self.shared, org, m)
    }

    /// Issues a single-use login code for a member (valid
    /// `login_code_lifetime_secs`): WeCom `auth/getuserinfo?code=`, DingTalk
    /// `topapi/v2/user/getuserinfo` and `/v1.0/oauth2/userAccessToken`.
    pub fn issue_login_code(&self, org: OrgRef, userid: &str) -> Result<String, SimError> {
        login_code_shared(&self.shared, org, userid)
    }

    /// Sets or clears an org's event callback.
    pub fn set_callback(&self, org: OrgRef, cfg: Option<CallbackConfig>) -> Result<(), SimError> {
        self.shared.org(org)?;
        events::set_callback(&self.shared, org.index(), cfg).map_err(|message| SimError::Callback {
            org: org.label(),
            message,
        })
    }

    /// Sets how long a failed callback delivery waits before its retry
    /// (default 5 s, as the platforms do; 3 retries); tests shorten it.
    pub fn set_callback_retry_interval(&self, interval: std::time::Duration) {
        *self
            .shared
            .events
            .retry_interval
            .lock()
            .expect("interval lock") = interval;
    }

    /// Runs the platform's URL verification against the org's callback.
    pub async fn verify_callback(&self, org: OrgRef) -> Result<(), SimError> {
        self.shared.org(org)?;
        events::verify(&self.shared, org.index())
            .await
            .map_err(|message| SimError::Callback {
                org: org.label(),
                message,
            })
    }

    /// Counters of a DingTalk org's Stream gateway (frames sent, acked,
    /// redelivered, connections, pings).
    pub fn stream_stats(&self, org: OrgRef) -> Result<StreamStats, SimError> {
        stream::stats(&self.shared, org)
    }

    /// The settings of a DingTalk org's Stream gateway.
    pub fn stream_settings(&self, org: OrgRef) -> Result<StreamSettings, SimError> {
        stream::settings(&self.shared, org)
    }

    /// Changes a DingTalk org's Stream gateway while serving (ping
    /// interval, redelivery delays, the `drop_after_frames` fault).
    pub fn set_stream_settings(&self, org: OrgRef, s: StreamSettings) -> Result<(), SimError> {
        stream::set_settings(&self.shared, org, s)
    }

    /// Makes the org's live Stream connection drop, send `disconnect` or
    /// ping; an error when no client is connected.
    pub fn stream_command(&self, org: OrgRef, c: StreamCommand) -> Result<(), SimError> {
        stream::command(&self.shared, org, c)
    }

    /// Sends a text frame as it is on the org's live Stream connection
    /// (malformed or unexpected frames for hostile-input tests).
    pub fn stream_send_raw(&self, org: OrgRef, text: &str) -> Result<(), SimError> {
        stream::send_raw(&self.shared, org, text.to_string())
    }

    /// Stops serving and waits for the server task to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.shared.events.shutdown();
        self.shared.latency.stop();
        let task = self.task.lock().expect("task lock").take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.shared.events.shutdown();
        self.shared.latency.stop();
    }
}
