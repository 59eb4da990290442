//! One org instance: every seed method, typed and through the dynamic call.

// `CorpError` wraps the engine's `SyncError` (144 bytes: a fetch error keeps
// the API path, errcode and errmsg). Errors are the rare path of calls that
// wait on the network, so their size costs nothing measurable, and boxing
// would change the public error type hosts match on.
#![allow(clippy::result_large_err)]

use crate::config::{self, AuthConfig, CorpSettings, Platform};
use jit_apiclient::{FetchStats, NoProgress, Progress};
use jit_core::{
    mask_secrets, AppServices, CallError, CallFuture, Element, FailureKind, InstanceContext,
};
use jit_dingtalk::{DingTalkClient, DingTalkConfig, TokenSource};
use jit_org::{Admin, CorpRecord, CorpSnapshot, Member, MemberStatus};
use jit_store::{CorpStore, IdentityConflict, RoleMemberRow};
use jit_sync::{
    run_sync, CorpSource, SnapshotSource, SourceError, SyncError, SyncOptions, SyncReport,
};
use jit_wecom::{WecomClient, WecomConfig};
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::OnceCell;

/// Why an org method failed. Messages name the org and never hold secrets.
#[derive(Debug, thiserror::Error)]
pub enum CorpError {
    /// Building the platform client failed.
    #[error("{corp}: cannot build the {platform} client: {message}")]
    Client {
        /// Org fullName.
        corp: String,
        /// `WeCom` or `DingTalk`.
        platform: &'static str,
        /// Why.
        message: String,
    },
    /// Reading the organization from the platform failed.
    #[error("{corp}: {source}")]
    Fetch {
        /// Org fullName.
        corp: String,
        /// What failed (API path, errcode, errmsg).
        source: SourceError,
    },
    /// The sync engine refused or failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The store failed.
    #[error("{corp}: {source}")]
    Store {
        /// Org fullName.
        corp: String,
        /// The store's error.
        source: jit_store::StoreError,
    },
    /// Bad input from the caller.
    #[error("{0}")]
    Invalid(String),
}

impl CorpError {
    /// The kind a host tells apart (busy, refused, upstream, bad input);
    /// it travels with the message through the dynamic call.
    pub fn failure_kind(&self) -> FailureKind {
        use jit_store::StoreError as S;
        let upstream = |e: &SourceError| FailureKind::Upstream {
            errcode: e
                .downcast_ref::<jit_apiclient::ApiError>()
                .and_then(|api| api.code().map(ToString::to_string)),
        };
        match self {
            CorpError::Fetch { source, .. } => upstream(source),
            CorpError::Sync(SyncError::Fetch { error, .. }) => upstream(error),
            CorpError::Sync(SyncError::Busy(_)) => FailureKind::Busy,
            CorpError::Sync(SyncError::Refused { .. }) => FailureKind::Refused,
            CorpError::Invalid(_)
            | CorpError::Store {
                source: S::UnknownCorp(_) | S::UnknownMember { .. } | S::Invalid(_),
                ..
            } => FailureKind::InvalidInput,
            CorpError::Client { .. } | CorpError::Store { .. } | CorpError::Sync(_) => {
                FailureKind::Internal
            }
        }
    }
}

/// The platform client of an org, as `getClient()` returns it to Rust hosts.
#[derive(Debug, Clone)]
pub enum CorpClient {
    /// A WeCom client.
    Wecom(Arc<WecomClient>),
    /// A DingTalk client.
    DingTalk(Arc<DingTalkClient>),
}

impl CorpClient {
    /// The client as the engine's [`CorpSource`] (to read the org with other
    /// fetch options than the config's, or to run the engine directly).
    pub fn source(&self) -> &dyn CorpSource {
        match self {
            CorpClient::Wecom(c) => c.as_ref(),
            CorpClient::DingTalk(c) => c.as_ref(),
        }
    }

    /// Cumulative call statistics.
    pub fn stats(&self) -> FetchStats {
        self.source().stats()
    }
}

/// An organization element of a built-in org Type.
pub struct CorpElement {
    platform: Platform,
    full_name: String,
    title: String,
    corp_type: String,
    auth: AuthConfig,
    settings: CorpSettings,
    raw_config: Value,
    app: Arc<dyn AppServices>,
    fixed_store: Option<Arc<dyn CorpStore>>,
    store: OnceCell<Arc<dyn CorpStore>>,
    client: OnceLock<Result<CorpClient, String>>,
}

impl std::fmt::Debug for CorpElement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorpElement")
            .field("full_name", &self.full_name)
            .field("type", &self.corp_type)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

fn member_ids(v: &Value, what: &str) -> Result<Vec<String>, CorpError> {
    let items = v
        .as_array()
        .ok_or_else(|| CorpError::Invalid(format!("{what} must be a list of member ids")))?;
    items
        .iter()
        .map(|i| match i {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            // Member objects (as `memberList` may hold) are accepted by their id.
            Value::Object(o) => o
                .get("memberId")
                .or_else(|| o.get("userid"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| CorpError::Invalid(format!("{what}: an entry has no memberId"))),
            other => Err(CorpError::Invalid(format!(
                "{what}: `{other}` is not a member id (member ids are strings)"
            ))),
        })
        .collect()
}

fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

impl CorpElement {
    pub(crate) fn new(
        platform: Platform,
        ctx: InstanceContext,
        fixed_store: Option<Arc<dyn CorpStore>>,
    ) -> Result<CorpElement, String> {
        let full_name = ctx.define.full_name.clone();
        let (auth, settings) = config::parse(platform, ctx.config.as_ref(), &full_name)?;
        Ok(CorpElement {
            platform,
            title: ctx.define.title.clone(),
            corp_type: ctx.define.type_name.clone().unwrap_or_default(),
            auth,
            settings,
            raw_config: ctx.config.clone().unwrap_or(Value::Null),
            app: ctx.app.clone(),
            fixed_store,
            store: OnceCell::new(),
            client: OnceLock::new(),
            full_name,
        })
    }

    /// The org's fullName (`corpFullName` is the same).
    pub fn full_name(&self) -> &str {
        &self.full_name
    }

    /// The display title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The platform.
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The credentials (use [`AuthConfig::masked`] for display).
    pub fn auth_config(&self) -> &AuthConfig {
        &self.auth
    }

    /// The sync settings from the config.
    pub fn settings(&self) -> &CorpSettings {
        &self.settings
    }

    /// The record the store keeps for this org.
    pub fn corp_record(&self) -> CorpRecord {
        CorpRecord {
            full_name: self.full_name.clone(),
            title: self.title.clone(),
            corp_type: self.corp_type.clone(),
            provider: self.platform.provider(),
            corp_id: self.auth.corp_id().to_string(),
        }
    }

    /// `getClient()`: the platform client, built on first use.
    pub fn client(&self) -> Result<CorpClient, CorpError> {
        self.client
            .get_or_init(|| self.build_client())
            .clone()
            .map_err(|message| CorpError::Client {
                corp: self.full_name.clone(),
                platform: match self.platform {
                    Platform::Wecom => "WeCom",
                    Platform::DingTalk => "DingTalk",
                },
                message,
            })
    }

    fn build_client(&self) -> Result<CorpClient, String> {
        let s = &self.settings;
        match &self.auth {
            AuthConfig::Wecom {
                corp_id,
                agent_id,
                secret,
                api_base,
            } => {
                let mut c = WecomConfig::new(corp_id, agent_id, secret);
                if let Some(b) = api_base {
                    c.api_base = b.clone();
                }
                s.tune(&mut c.tuning, Duration::from_secs(60));
                WecomClient::new(c)
                    .map(|c| CorpClient::Wecom(Arc::new(c)))
                    .map_err(|e| e.to_string())
            }
            AuthConfig::DingTalk {
                corp_id,
                agent_id,
                app_key,
                app_secret,
                api_base,
                oapi_base,
                token_endpoint,
            } => {
                let mut c = DingTalkConfig::new(corp_id, agent_id, app_key, app_secret);
                if let Some(b) = api_base {
                    c.api_base = b.clone();
                    // A private deployment or the simulator serves both families.
                    c.oapi_base = b.clone();
                }
                if let Some(b) = oapi_base {
                    c.oapi_base = b.clone();
                }
                match token_endpoint.as_deref() {
                    Some("gettoken") => c.token_source = TokenSource::OldFamily,
                    Some("oauth2") => c.token_source = TokenSource::NewThenOld,
                    _ => {}
                }
                s.tune(&mut c.tuning, Duration::from_secs(1));
                DingTalkClient::new(c)
                    .map(|c| CorpClient::DingTalk(Arc::new(c)))
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// The org store of the app, opened on first use.
    pub async fn store(&self) -> Result<Arc<dyn CorpStore>, CorpError> {
        if let Some(s) = &self.fixed_store {
            return Ok(s.clone());
        }
        self.store
            .get_or_try_init(|| async {
                let settings = self.app.settings();
                let url = settings.get("databaseUrl").and_then(Value::as_str);
                jit_store::open_for_app(&self.app.root(), url).await
            })
            .await
            .cloned()
            .map_err(|source| self.store_err(source))
    }

    fn store_err(&self, source: jit_store::StoreError) -> CorpError {
        CorpError::Store {
            corp: self.full_name.clone(),
            source,
        }
    }

    /// Default engine options from the config (`sync` object).
    pub fn sync_options(&self) -> SyncOptions {
        self.settings.sync_options()
    }

    /// `syncCorp()`: reads the org and applies the changes through the shared
    /// engine (with its safety checks), in one transaction.
    pub async fn sync_corp(
        &self,
        opts: &SyncOptions,
        progress: &dyn Progress,
    ) -> Result<SyncReport, CorpError> {
        let client = self.client()?;
        let store = self.store().await?;
        Ok(run_sync(
            client.source(),
            store.as_ref(),
            &self.corp_record(),
            opts,
            progress,
        )
        .await?)
    }

    /// `getThirdCorpData()`: the org as the platform has it now.
    pub async fn get_third_corp_data(&self) -> Result<CorpSnapshot, CorpError> {
        let client = self.client()?;
        let opts = self.sync_options();
        client
            .source()
            .fetch(&opts.fetch, &NoProgress)
            .await
            .map_err(|source| CorpError::Fetch {
                corp: self.full_name.clone(),
                source,
            })
    }

    /// `bulkRegister(corpData, memberList)`: creates or updates local users and
    /// their auth bindings for the org's present members (members who left
    /// upstream are skipped), or exactly those in `member_ids` when given.
    /// Identity conflicts are returned, never merged.
    pub async fn bulk_register(
        &self,
        corp_data: &CorpSnapshot,
        member_ids: Option<&[String]>,
    ) -> Result<Vec<IdentityConflict>, CorpError> {
        if !corp_data.corp_id.is_empty() && corp_data.corp_id != self.auth.corp_id() {
            return Err(CorpError::Invalid(format!(
                "{}: corpData is of corp `{}`, this org is corp `{}`",
                self.full_name,
                corp_data.corp_id,
                self.auth.corp_id()
            )));
        }
        let members: Vec<Member> = match member_ids {
            // Without a list, only the org's present members: WeCom still
            // returns people who left (status 5, read as `Offline`), and
            // registering them would create local users for non-members.
            None => corp_data
                .members
                .values()
                .filter(|m| m.status != MemberStatus::Offline)
                .cloned()
                .collect(),
            Some(ids) => {
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    let m = corp_data.members.get(id).ok_or_else(|| {
                        CorpError::Invalid(format!(
                            "{}: memberList names `{id}`, which is not in corpData",
                            self.full_name
                        ))
                    })?;
                    out.push(m.clone());
                }
                out
            }
        };
        let store = self.store().await?;
        store
            .upsert_corp(&self.corp_record())
            .await
            .map_err(|e| self.store_err(e))?;
        store
            .bulk_register(&self.corp_record(), &members)
            .await
            .map_err(|e| self.store_err(e))
    }

    /// `initCorp()`: `syncCorp()` then `bulkRegister()` on the same read of
    /// the platform, as the seed's automatic flow describes.
    pub async fn init_corp(
        &self,
        opts: &SyncOptions,
        progress: &dyn Progress,
    ) -> Result<(SyncReport, Vec<IdentityConflict>), CorpError> {
        let client = self.client()?;
        let before = client.stats();
        let started = std::time::Instant::now();
        let snapshot = client
            .source()
            .fetch(&opts.fetch, progress)
            .await
            .map_err(|source| CorpError::Fetch {
                corp: self.full_name.clone(),
                source,
            })?;
        let fetch_ms = started.elapsed().as_millis() as u64;
        let fetch_stats = client.stats().since(&before);
        let source = SnapshotSource {
            snapshot,
            provider: self.platform.provider(),
        };
        let store = self.store().await?;
        let mut report =
            run_sync(&source, store.as_ref(), &self.corp_record(), opts, progress).await?;
        // The engine saw a pre-read snapshot: report the real read.
        report.fetch_stats = fetch_stats;
        report.durations.fetch_ms = fetch_ms;
        report.durations.total_ms += fetch_ms;
        let conflicts = if opts.dry_run {
            Vec::new()
        } else {
            self.bulk_register(&source.snapshot, None).await?
        };
        Ok((report, conflicts))
    }

    /// `getLocalCorpData(includeOffline=False)`: every current member (any
    /// status but offline, each with its `status`), with members who left
    /// too when `include_offline` is true.
    pub async fn local_corp_data(&self, include_offline: bool) -> Result<Value, CorpError> {
        let store = self.store().await?;
        store
            .local_corp_data(&self.full_name, include_offline)
            .await
            .map_err(|e| self.store_err(e))
    }

    /// `getRootDept()`: `deptId`, `name`, `corpFullName` (plus `order`, `path`).
    pub async fn get_root_dept(&self) -> Result<Value, CorpError> {
        // One indexed query, not the whole org: hosts call this per request.
        let store = self.store().await?;
        let (root, path) = store
            .root_dept(&self.full_name)
            .await
            .map_err(|e| self.store_err(e))?
            .ok_or_else(|| {
                CorpError::Invalid(format!(
                    "{} has no departments in the store yet; run syncCorp first",
                    self.full_name
                ))
            })?;
        Ok(json!({
            "deptId": root.dept_id,
            "name": root.name,
            "corpFullName": self.full_name,
            "order": root.order,
            "path": path,
            "leaders": root.leaders,
        }))
    }

    /// `setUserRole(memberId, roleIdList)`: replaces the member's LOCAL role
    /// assignments with `roleIdList` and returns every role row of the
    /// member with its `origin`. Local assignments live beside the ones a
    /// sync writes: the next sync neither sees nor undoes them, and a role
    /// the member holds upstream stays (only the platform can take it away).
    pub async fn set_user_role(
        &self,
        member_id: &str,
        role_ids: &[String],
    ) -> Result<Vec<RoleMemberRow>, CorpError> {
        let store = self.store().await?;
        store
            .set_member_roles(&self.full_name, member_id, role_ids)
            .await
            .map_err(|e| self.store_err(e))
    }

    /// `offlineMember(memberIdList)`: marks them resigned in this org only.
    pub async fn offline_member(&self, member_ids: &[String]) -> Result<usize, CorpError> {
        let store = self.store().await?;
        store
            .offline_members(&self.full_name, member_ids)
            .await
            .map_err(|e| self.store_err(e))
    }

    /// `getUserSignature(memberId)`.
    pub async fn get_user_signature(&self, member_id: &str) -> Result<Option<String>, CorpError> {
        let store = self.store().await?;
        store
            .get_signature(&self.full_name, member_id)
            .await
            .map_err(|e| self.store_err(e))
    }

    /// `saveUserSignature(memberId, signature)`: the signature is an image
    /// link and must be an http(s) URL.
    pub async fn save_user_signature(
        &self,
        member_id: &str,
        signature: &str,
    ) -> Result<(), CorpError> {
        if !is_http_url(signature) {
            return Err(CorpError::Invalid(format!(
                "signature must be an http(s) URL of the signature image, got `{signature}`"
            )));
        }
        let store = self.store().await?;
        store
            .save_signature(&self.full_name, member_id, signature)
            .await
            .map_err(|e| self.store_err(e))
    }

    /// `setAdmin(memberIdList)`: replaces the org's LOCAL administrators.
    /// The platform's own admins (written by syncs) stay beside them, and
    /// the next sync leaves the local ones alone.
    pub async fn set_admin(&self, member_ids: &[String]) -> Result<(), CorpError> {
        let admins: Vec<Admin> = member_ids
            .iter()
            .map(|m| Admin {
                member_id: m.clone(),
                level: 0,
            })
            .collect();
        let store = self.store().await?;
        store
            .set_admins(&self.full_name, &admins)
            .await
            .map_err(|e| self.store_err(e))
    }

    /// `getAdmin()`: the administrators' member ids, upstream and local,
    /// each once, in stored order.
    pub async fn get_admin(&self) -> Result<Vec<String>, CorpError> {
        let store = self.store().await?;
        let admins = store
            .get_admins(&self.full_name)
            .await
            .map_err(|e| self.store_err(e))?;
        let mut seen = std::collections::HashSet::new();
        Ok(admins
            .into_iter()
            .map(|a| a.member_id)
            .filter(|m| seen.insert(m.clone()))
            .collect())
    }

    /// `getCorpInfo()`.
    pub async fn get_corp_info(&self) -> Result<Value, CorpError> {
        let store = self.store().await?;
        let last = store
            .last_successful_sync(&self.full_name)
            .await
            .map_err(|e| self.store_err(e))?;
        Ok(json!({
            "title": self.title,
            "fullName": self.full_name,
            "corpFullName": self.full_name,
            "type": self.corp_type,
            "provider": self.platform.provider().as_str(),
            "corpId": self.auth.corp_id(),
            "agentId": self.auth.agent_id(),
            "lastSyncAt": last,
            "store": store.location(),
        }))
    }

    /// What `getClient()` shows through the dynamic call (Rust hosts get the
    /// client itself from [`CorpElement::client`]).
    fn client_info(&self) -> Result<Value, CorpError> {
        let client = self.client()?;
        Ok(match &client {
            CorpClient::Wecom(c) => json!({
                "client": "WecomClient", "platform": "wecom",
                "corpId": c.config().corp_id, "agentId": c.config().agent_id,
                "apiBase": c.config().api_base, "stats": c.stats(),
            }),
            CorpClient::DingTalk(c) => json!({
                "client": "DDInnerClient", "platform": "dingtalk",
                "corpId": c.config().corp_id, "agentId": c.config().agent_id,
                "apiBase": c.config().api_base, "oapiBase": c.config().oapi_base, "stats": c.stats(),
            }),
        })
    }

    /// The config's sync options with a dynamic call's `dryRun` / `force`.
    fn call_options(&self, args: &Value) -> Result<SyncOptions, CorpError> {
        let mut opts = self.sync_options();
        let flag = |name: &str| match args.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(CorpError::Invalid(format!(
                "`{name}` must be true or false"
            ))),
        };
        opts.dry_run = flag("dryRun")?;
        opts.force = flag("force")?;
        Ok(opts)
    }

    async fn dispatch(&self, method: &str, args: &Value) -> Result<Value, CorpError> {
        let arg = |name: &str| args.get(name).cloned().unwrap_or(Value::Null);
        let text = |name: &str| -> Result<String, CorpError> {
            arg(name)
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| CorpError::Invalid(format!("`{name}` must be a string")))
        };
        Ok(match method {
            "initCorp" => {
                let opts = self.call_options(args)?;
                let (report, conflicts) = self.init_corp(&opts, &NoProgress).await?;
                json!({"sync": report_summary(&self.full_name, &report), "registrationConflicts": conflicts})
            }
            "syncCorp" => report_summary(
                &self.full_name,
                &self
                    .sync_corp(&self.call_options(args)?, &NoProgress)
                    .await?,
            ),
            "getThirdCorpData" => self.get_third_corp_data().await?.to_corp_data(),
            "bulkRegister" => {
                let snap = CorpSnapshot::from_corp_data(&arg("corpData"))
                    .map_err(|e| CorpError::Invalid(format!("corpData: {e}")))?;
                let list = match arg("memberList") {
                    Value::Null => None,
                    v => Some(member_ids(&v, "memberList")?),
                };
                let conflicts = self.bulk_register(&snap, list.as_deref()).await?;
                let registered = list.as_ref().map_or_else(
                    || {
                        snap.members
                            .values()
                            .filter(|m| m.status != MemberStatus::Offline)
                            .count()
                    },
                    Vec::len,
                );
                json!({"registered": registered, "conflicts": conflicts})
            }
            "getLocalCorpData" => {
                let include_offline = match arg("includeOffline") {
                    Value::Null => false,
                    Value::Bool(b) => b,
                    _ => {
                        return Err(CorpError::Invalid(
                            "`includeOffline` must be true or false".into(),
                        ))
                    }
                };
                self.local_corp_data(include_offline).await?
            }
            "getRootDept" => self.get_root_dept().await?,
            "setUserRole" => {
                let roles = member_ids(&arg("roleIdList"), "roleIdList")?;
                serde_json::to_value(self.set_user_role(&text("memberId")?, &roles).await?)
                    .unwrap_or(Value::Null)
            }
            "offlineMember" => {
                let ids = member_ids(&arg("memberIdList"), "memberIdList")?;
                json!({"offlined": self.offline_member(&ids).await?})
            }
            "getUserSignature" => {
                json!({"signature": self.get_user_signature(&text("memberId")?).await?})
            }
            "saveUserSignature" => {
                let (m, s) = (text("memberId")?, text("signature")?);
                self.save_user_signature(&m, &s).await?;
                json!({"success": true, "memberId": m, "signature": s})
            }
            "setAdmin" => {
                self.set_admin(&member_ids(&arg("memberIdList"), "memberIdList")?)
                    .await?;
                json!({})
            }
            "getAdmin" => json!(self.get_admin().await?),
            "getCorpInfo" => self.get_corp_info().await?,
            "getClient" => self.client_info()?,
            other => {
                return Err(CorpError::Invalid(format!(
                    "{} ({}) does not implement `{other}`",
                    self.full_name,
                    config::type_name(self.platform)
                )))
            }
        })
    }
}

/// The JSON form of a run report: the summary and the first `max_changes`
/// per-object change lines (all of them with `None`). A dynamic `syncCorp`
/// shows 100; the full list stays in the store's run history.
pub fn report_json(full_name: &str, r: &SyncReport, max_changes: Option<usize>) -> Value {
    let shown = max_changes.unwrap_or(usize::MAX);
    json!({
        "org": full_name,
        "runId": r.run_id,
        "outcome": r.outcome,
        "counts": r.counts,
        "rowsWritten": r.rows_written,
        "upstreamMembers": r.upstream_members,
        "upstreamDepts": r.upstream_depts,
        "complete": r.is_complete(),
        "failures": r.failures,
        "notes": r.notes,
        "conflicts": r.conflicts,
        "fetchStats": r.fetch_stats,
        "durations": r.durations,
        "changes": r.changes.iter().take(shown).collect::<Vec<_>>(),
        "changesOmitted": r.changes.len().saturating_sub(shown),
    })
}

pub(crate) fn report_summary(full_name: &str, r: &SyncReport) -> Value {
    report_json(full_name, r, Some(100))
}

impl Element for CorpElement {
    fn call<'a>(&'a self, method: &'a str, args: Value) -> CallFuture<'a> {
        Box::pin(async move {
            self.dispatch(method, &args).await.map_err(|e| {
                CallError::failed_with(&self.full_name, method, e.failure_kind(), e.to_string())
            })
        })
    }

    fn property(&self, name: &str) -> Option<Value> {
        Some(match name {
            "title" => json!(self.title),
            "fullName" | "corpFullName" => json!(self.full_name),
            "authConfig" => self.auth.masked(),
            "corpData" => json!({
                "title": self.title,
                "fullName": self.full_name,
                "type": self.corp_type,
                "config": mask_secrets(&self.raw_config),
            }),
            _ => return None,
        })
    }

    fn property_names(&self) -> Vec<String> {
        [
            "corpData",
            "title",
            "fullName",
            "corpFullName",
            "authConfig",
        ]
        .map(String::from)
        .to_vec()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_must_be_http_urls() {
        assert!(is_http_url("https://example.com/sig.png"));
        assert!(is_http_url("http://cdn.local/a"));
        assert!(!is_http_url("ftp://example.com/a"));
        assert!(!is_http_url("https://"));
        assert!(!is_http_url("javascript:alert(1)"));
        assert!(!is_http_url("https://exa mple.com"));
    }

    #[test]
    fn errors_carry_the_kind_a_host_answers_by() {
        let busy = CorpError::Sync(SyncError::Busy(jit_store::StoreError::SyncBusy {
            corp: "corps.X".into(),
            run_id: Some(3),
            started_at: None,
        }));
        assert_eq!(busy.failure_kind(), FailureKind::Busy);
        let api = jit_apiclient::ApiError::Platform {
            path: "/cgi-bin/gettoken".into(),
            http_status: 200,
            code: jit_apiclient::ErrCode::Num(40001),
            message: "invalid credential".into(),
        };
        let fetch = CorpError::Fetch {
            corp: "corps.X".into(),
            source: SourceError::platform(api),
        };
        assert_eq!(
            fetch.failure_kind(),
            FailureKind::Upstream {
                errcode: Some("40001".into())
            }
        );
        assert_eq!(
            CorpError::Invalid("x".into()).failure_kind(),
            FailureKind::InvalidInput
        );
    }

    #[test]
    fn member_lists_accept_ids_and_member_objects() {
        let v = json!(["a", {"memberId": "b"}]);
        assert_eq!(member_ids(&v, "x").unwrap(), vec!["a", "b"]);
        assert!(member_ids(&json!([1]), "x").is_err());
        assert!(member_ids(&json!("a"), "x").is_err());
    }
}
