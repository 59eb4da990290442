//! WeCom (企业微信) self-built-app API client and organization fetcher.
//!
//! [`WecomClient`] is what `corps.QywxInnerType`'s `getClient()` returns. It
//! speaks the `/cgi-bin/` API of reference Part A through the shared
//! machinery of `jit-apiclient`: cached token (refetched once on
//! 40001/40014/42001), a per-API budget of 10 000 calls per 60 s, bounded
//! concurrency, and back-off on -1/45009/45033/HTTP 5xx/timeouts.
//!
//! [`WecomClient::fetch_corp`] reads the whole organization (or the
//! `syncScope` subtrees) into a [`jit_org::CorpSnapshot`]; the client also implements
//! [`jit_sync::CorpSource`] so the sync engine can use it directly.
//!
//! ```no_run
//! use jit_wecom::{WecomClient, WecomConfig};
//! use jit_apiclient::{FetchOptions, NoProgress};
//! # async fn demo() -> Result<(), jit_apiclient::ApiError> {
//! let client = WecomClient::new(WecomConfig::new("ww1234567890abcdef", "1000001", "secret"))?;
//! let snap = client.fetch_corp(&FetchOptions::default(), &NoProgress).await?;
//! println!("{} members in {} departments", snap.members.len(), snap.depts.len());
//! println!("{} calls", client.stats().total_calls());
//! # Ok(()) }
//! ```

mod fetch;
mod model;

pub use model::{AgentInfo, DeptRef, ListIdPage, LoginIdentity, SimpleUser, Tag, TagDetail};

use jit_apiclient::{
    json, Answer, ApiCore, ApiError, ApiRequest, Auth, ClientTuning, Dialect, ErrInfo, FetchStats,
    RateLimit, RetryPolicy, Token, Verdict,
};
use jit_org::{Admin, Dept, Member};
use serde_json::{json, Value};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The public WeCom API host.
pub const DEFAULT_API_BASE: &str = "https://qyapi.weixin.qq.com";

/// Settings of a [`WecomClient`].
#[derive(Clone)]
pub struct WecomConfig {
    /// 企业ID (corpId).
    pub corp_id: String,
    /// The self-built app's AgentId.
    pub agent_id: String,
    /// The app's Secret.
    pub secret: String,
    /// API host, default [`DEFAULT_API_BASE`]; a trailing `/cgi-bin/` is accepted.
    pub api_base: String,
    /// Concurrency (default 32), budget per API path (default 10 000 per
    /// 60 s, the documented per-corp limit; [`HOUR_LIMIT`] is kept
    /// besides), timeout of one request (default
    /// 30 s) and retries (throttled answers wait at least 12 s).
    pub tuning: ClientTuning,
}

impl fmt::Debug for WecomConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WecomConfig")
            .field("corp_id", &self.corp_id)
            .field("agent_id", &self.agent_id)
            .field("secret", &"***")
            .field("api_base", &self.api_base)
            .field("tuning", &self.tuning)
            .finish()
    }
}

impl WecomConfig {
    /// Defaults for everything but the credentials.
    pub fn new(
        corp_id: impl Into<String>,
        agent_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> WecomConfig {
        WecomConfig {
            corp_id: corp_id.into(),
            agent_id: agent_id.into(),
            secret: secret.into(),
            api_base: DEFAULT_API_BASE.to_string(),
            tuning: ClientTuning {
                concurrency: 32,
                rate_limit: RateLimit::new(10_000, Duration::from_secs(60)),
                timeout: Duration::from_secs(30),
                // A minute-limit hit blocks the API for 60 s (reference A.8):
                // five throttled retries 12 s apart outlast the block. The
                // rate budget keeps this for quota shared with other clients.
                retry: RetryPolicy {
                    throttle_delay: Duration::from_secs(12),
                    ..RetryPolicy::default()
                },
            },
        }
    }
}

/// WeCom's second per-API limit: 150,000 calls per corp per hour.
pub const HOUR_LIMIT: RateLimit = RateLimit {
    calls: 150_000,
    window: Duration::from_secs(3600),
};

/// Token errors: drop the token and retry once (as wechatpy and WxJava do).
const TOKEN_CODES: [i64; 4] = [40001, 40014, 41001, 42001];
/// Busy (-1), frequency (45009), concurrency (45033): back off and retry.
const THROTTLE_CODES: [i64; 2] = [45009, 45033];

struct WecomDialect {
    base: String,
    corp_id: String,
    secret: String,
}

#[async_trait::async_trait]
impl Dialect for WecomDialect {
    fn name(&self) -> &'static str {
        "wecom"
    }

    async fn fetch_token(&self, core: &ApiCore) -> Result<Token, ApiError> {
        let req = ApiRequest::get(&self.base, "/cgi-bin/gettoken")
            .query("corpid", &self.corp_id)
            .query("corpsecret", &self.secret)
            .auth(Auth::None);
        let v = core.call(&req).await?;
        let token = json::string(v.get("access_token"))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Malformed {
                path: req.path.clone(),
                message: "no access_token in the answer".into(),
            })?;
        let expires = json::int(v.get("expires_in")).unwrap_or(7200).max(1) as u64;
        Ok(Token::new(token, expires))
    }

    fn classify(&self, _http_status: u16, body: &Value) -> Verdict {
        let code = match json::int(body.get("errcode")) {
            Some(c) => c,
            // Success bodies carry errcode 0; an object without it is not a
            // WeCom answer we understand, but the data may still be there.
            None => return Verdict::Ok,
        };
        let info = || {
            ErrInfo::num(
                code,
                body.get("errmsg").and_then(Value::as_str).unwrap_or(""),
            )
        };
        match code {
            0 => Verdict::Ok,
            c if TOKEN_CODES.contains(&c) => Verdict::Token(info()),
            -1 | 6000 => Verdict::Transient {
                info: info(),
                throttled: false,
            },
            c if THROTTLE_CODES.contains(&c) => Verdict::Transient {
                info: info(),
                throttled: true,
            },
            _ => Verdict::Fatal(info()),
        }
    }
}

/// The WeCom API client of one self-built app.
pub struct WecomClient {
    core: Arc<ApiCore>,
    config: WecomConfig,
    base: String,
}

impl fmt::Debug for WecomClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WecomClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `https://host/cgi-bin/` and `https://host` both become `https://host`.
fn normalize_base(base: &str) -> String {
    let b = base.trim().trim_end_matches('/');
    b.strip_suffix("/cgi-bin").unwrap_or(b).to_string()
}

/// Reads a `department/list` answer: every row checked (ids, parents,
/// names), no id twice, no cycle; otherwise a malformed answer naming the
/// JSON pointer. Pure, so it can be tested on any JSON.
pub fn parse_department_list(answer: &Value) -> Result<Vec<Dept>, ApiError> {
    let rows = checked("department/list", answer, "department", model::check_dept)?;
    let depts: Vec<Dept> = rows.iter().map(model::dept_from_json).collect();
    model::check_tree(&depts).map_err(|message| ApiError::Malformed {
        path: normalize_path("department/list"),
        message,
    })?;
    Ok(depts)
}

/// Reads a `user/list` answer: every row checked (userid, departments,
/// status) and no member twice; otherwise a malformed answer naming the
/// JSON pointer. Withheld fields are `None`.
pub fn parse_user_list(answer: &Value) -> Result<Vec<Member>, ApiError> {
    let rows = checked("user/list", answer, "userlist", model::check_member)?;
    unique_members(rows.iter().map(model::member_from_json).collect())
}

/// `members` when no member is listed twice in one `user/list` answer.
fn unique_members(members: Vec<Member>) -> Result<Vec<Member>, ApiError> {
    let mut seen = std::collections::HashSet::new();
    if let Some(m) = members.iter().find(|m| !seen.insert(m.member_id.as_str())) {
        return Err(ApiError::Malformed {
            path: normalize_path("user/list"),
            message: format!("member {:?} is listed twice in one answer", m.member_id),
        });
    }
    Ok(members)
}

/// The rows of a list answer, each checked: a list that is missing or not a
/// list, or a row that cannot be read, makes the answer malformed (naming
/// the JSON pointer), so a read never mistakes garbage for a smaller org.
fn checked<'a>(
    path: &str,
    v: &'a Value,
    field: &str,
    check: impl Fn(&Value, &str) -> Result<(), String>,
) -> Result<&'a [Value], ApiError> {
    let malformed = |message: String| ApiError::Malformed {
        path: normalize_path(path),
        message,
    };
    let rows = json::records(v, field).map_err(malformed)?;
    for (i, row) in rows.iter().enumerate() {
        check(row, &format!("/{field}/{i}")).map_err(malformed)?;
    }
    Ok(rows)
}

/// `user/list` and `/cgi-bin/user/list` both become `/cgi-bin/user/list`.
fn normalize_path(path: &str) -> String {
    let p = path.trim_start_matches('/');
    if p.starts_with("cgi-bin/") {
        format!("/{p}")
    } else {
        format!("/cgi-bin/{p}")
    }
}

impl WecomClient {
    /// A client for `config`. Fails only on an unusable configuration.
    pub fn new(config: WecomConfig) -> Result<WecomClient, ApiError> {
        if config.corp_id.trim().is_empty() || config.secret.trim().is_empty() {
            return Err(ApiError::Config(
                "WeCom corpId and secret must not be empty".into(),
            ));
        }
        let base = normalize_base(&config.api_base);
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ApiError::Config(format!(
                "WeCom api_base {base:?} is not an http(s) URL"
            )));
        }
        // Half a second on a minute window: our send time vs the server's arrival time.
        let mut core_cfg = config
            .tuning
            .core_config(config.tuning.rate_limit.window / 120);
        // The hour limit (reference A.8) binds above 150,000 calls of one
        // API per hour — e.g. a 15,000-department org synced every 5
        // minutes; hitting it blocks the API for an hour.
        core_cfg.also_rate_limits = vec![HOUR_LIMIT];
        let dialect = WecomDialect {
            base: base.clone(),
            corp_id: config.corp_id.clone(),
            secret: config.secret.clone(),
        };
        Ok(WecomClient {
            core: Arc::new(ApiCore::new(core_cfg, Arc::new(dialect))?),
            config,
            base,
        })
    }

    /// The settings.
    pub fn config(&self) -> &WecomConfig {
        &self.config
    }

    /// Call statistics since the client was made.
    pub fn stats(&self) -> FetchStats {
        self.core.stats()
    }

    /// GET `path` (`user/list` or `/cgi-bin/user/list`) with `query`; the
    /// answer's errcode is checked, the token added, retries applied.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ApiError> {
        let mut req = ApiRequest::get(&self.base, &normalize_path(path));
        for (k, v) in query {
            req = req.query(k, v);
        }
        self.core.call(&req).await
    }

    /// POST `body` to `path` with `query`, like [`WecomClient::get`].
    pub async fn post(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: &Value,
    ) -> Result<Value, ApiError> {
        let mut req = ApiRequest::post(&self.base, &normalize_path(path), body.clone());
        for (k, v) in query {
            req = req.query(k, v);
        }
        self.core.call(&req).await
    }

    /// Fetches (or reuses) the access token: a cheap check that the
    /// credentials work. The token itself is never handed out.
    pub async fn check_credentials(&self) -> Result<(), ApiError> {
        self.core.token().await.map(|_| ())
    }

    /// `department/list`: the department `id` and its whole subtree (or every
    /// department the app can see when `id` is `None`).
    pub async fn department_list(&self, id: Option<i64>) -> Result<Vec<Dept>, ApiError> {
        let q: Vec<(&str, String)> = id.map(|i| ("id", i.to_string())).into_iter().collect();
        let v = self.get("department/list", &q).await?;
        parse_department_list(&v)
    }

    /// `department/simplelist`: ids, parents and orders of a subtree.
    pub async fn department_simplelist(&self, id: Option<i64>) -> Result<Vec<DeptRef>, ApiError> {
        let q: Vec<(&str, String)> = id.map(|i| ("id", i.to_string())).into_iter().collect();
        let v = self.get("department/simplelist", &q).await?;
        Ok(json::array(v.get("department_id"))
            .iter()
            .map(model::dept_ref_from_json)
            .collect())
    }

    /// `department/get`: one department.
    pub async fn department_get(&self, id: i64) -> Result<Dept, ApiError> {
        let v = self
            .get("department/get", &[("id", id.to_string())])
            .await?;
        Ok(model::dept_from_json(
            v.get("department").unwrap_or(&Value::Null),
        ))
    }

    /// `user/get`: one member (withheld fields are `None`).
    pub async fn user_get(&self, userid: &str) -> Result<Member, ApiError> {
        let v = self
            .get("user/get", &[("userid", userid.to_string())])
            .await?;
        Ok(model::member_from_json(&v))
    }

    /// `user/list`: the direct members of a department, full detail.
    pub async fn user_list(&self, department_id: i64) -> Result<Vec<Member>, ApiError> {
        let req = ApiRequest::get(&self.base, &normalize_path("user/list"))
            .query("department_id", department_id.to_string());
        // The plain shape is read straight into members (no JSON tree: the
        // largest answers of a sync); anything else, the checked way.
        let v = match self.core.call_typed::<model::UserListAnswer>(&req).await? {
            Answer::Typed(answer) => {
                let members = answer
                    .into_members()
                    .map_err(|message| ApiError::Malformed {
                        path: req.path.clone(),
                        message,
                    })?;
                return unique_members(members);
            }
            Answer::Json(v) => v,
        };
        parse_user_list(&v)
    }

    /// `user/simplelist`: the direct members of a department, ids and names.
    pub async fn user_simplelist(&self, department_id: i64) -> Result<Vec<SimpleUser>, ApiError> {
        let v = self
            .get(
                "user/simplelist",
                &[("department_id", department_id.to_string())],
            )
            .await?;
        Ok(json::array(v.get("userlist"))
            .iter()
            .map(model::simple_user_from_json)
            .collect())
    }

    /// `user/list_id`: one page of (userid, department) rows. Only the
    /// contact-sync secret may call it; a normal app token gets 48002.
    pub async fn user_list_id(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ListIdPage, ApiError> {
        let mut body = json!({ "limit": limit });
        if let Some(c) = cursor.filter(|c| !c.is_empty()) {
            body["cursor"] = json!(c);
        }
        let v = self.post("user/list_id", &[], &body).await?;
        Ok(model::list_id_page_from_json(&v))
    }

    /// `tag/list`: every tag.
    pub async fn tag_list(&self) -> Result<Vec<Tag>, ApiError> {
        let v = self.get("tag/list", &[]).await?;
        let rows = checked("tag/list", &v, "taglist", model::check_tag)?;
        Ok(rows.iter().filter_map(model::tag_from_json).collect())
    }

    /// `tag/get`: a tag's name, members and departments.
    pub async fn tag_get(&self, tag_id: i64) -> Result<TagDetail, ApiError> {
        let v = self
            .get("tag/get", &[("tagid", tag_id.to_string())])
            .await?;
        if v.get("userlist").is_some_and(|u| !u.is_null()) {
            checked("tag/get", &v, "userlist", |u, p| {
                model::check_member(u, p).map(|_| ())
            })?;
        }
        Ok(model::tag_detail_from_json(tag_id, &v))
    }

    /// `agent/get_admin_list`: the app's admins (level = `auth_type`).
    pub async fn get_admin_list(&self) -> Result<Vec<Admin>, ApiError> {
        let body = match self.config.agent_id.trim().parse::<i64>() {
            Ok(n) => json!({ "agentid": n }),
            Err(_) => json!({}),
        };
        let v = self.post("agent/get_admin_list", &[], &body).await?;
        checked("agent/get_admin_list", &v, "admin", |_, _| Ok(()))?;
        Ok(json::array(v.get("admin"))
            .iter()
            .filter_map(|a| {
                Some(Admin {
                    member_id: json::string(a.get("userid"))?,
                    level: json::int(a.get("auth_type")).unwrap_or(0) as i32,
                })
            })
            .collect())
    }

    /// `agent/get`: the app and its visible range.
    pub async fn agent_get(&self) -> Result<AgentInfo, ApiError> {
        let v = self
            .get("agent/get", &[("agentid", self.config.agent_id.clone())])
            .await?;
        Ok(model::agent_from_json(&v))
    }

    /// `auth/getuserinfo`: exchanges a login code for the member's identity.
    pub async fn get_user_info(&self, code: &str) -> Result<LoginIdentity, ApiError> {
        let v = self
            .get("auth/getuserinfo", &[("code", code.to_string())])
            .await?;
        Ok(model::login_from_json(&v))
    }
}

#[async_trait::async_trait]
impl jit_sync::CorpSource for WecomClient {
    fn provider(&self) -> jit_org::Provider {
        jit_org::Provider::Wecom
    }

    fn corp_id(&self) -> String {
        self.config.corp_id.clone()
    }

    async fn fetch(
        &self,
        opts: &jit_sync::FetchOptions,
        progress: &dyn jit_sync::Progress,
    ) -> Result<jit_org::CorpSnapshot, jit_sync::SourceError> {
        self.fetch_corp(opts, progress)
            .await
            .map_err(jit_sync::SourceError::platform)
    }

    fn stats(&self) -> FetchStats {
        self.core.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_and_paths_normalise() {
        assert_eq!(normalize_base("http://h:1/cgi-bin/"), "http://h:1");
        assert_eq!(
            normalize_base("https://qyapi.weixin.qq.com"),
            DEFAULT_API_BASE
        );
        assert_eq!(normalize_path("user/list"), "/cgi-bin/user/list");
        assert_eq!(normalize_path("/cgi-bin/tag/get"), "/cgi-bin/tag/get");
    }

    #[test]
    fn config_debug_hides_the_secret() {
        let c = WecomConfig::new("ww1", "1000001", "TOPSECRET");
        assert!(!format!("{c:?}").contains("TOPSECRET"));
    }

    #[test]
    fn errcodes_are_classified_as_documented() {
        let d = WecomDialect {
            base: String::new(),
            corp_id: String::new(),
            secret: String::new(),
        };
        let v = |c: i64| json!({"errcode": c, "errmsg": "x"});
        assert_eq!(d.classify(200, &v(0)), Verdict::Ok);
        for c in [40001, 40014, 42001] {
            assert!(matches!(d.classify(200, &v(c)), Verdict::Token(_)), "{c}");
        }
        assert!(matches!(
            d.classify(200, &v(-1)),
            Verdict::Transient {
                throttled: false,
                ..
            }
        ));
        for c in [45009, 45033] {
            assert!(matches!(
                d.classify(200, &v(c)),
                Verdict::Transient {
                    throttled: true,
                    ..
                }
            ));
        }
        assert!(matches!(d.classify(200, &v(60011)), Verdict::Fatal(_)));
    }

    /// `user/list` is read in one pass and judged on the fields its type
    /// keeps: they must be every field `classify` reads.
    #[test]
    fn a_user_list_page_is_judged_on_its_kept_fields_as_on_its_json() {
        use jit_apiclient::TypedAnswer;
        let d = WecomDialect {
            base: String::new(),
            corp_id: String::new(),
            secret: String::new(),
        };
        for head in [
            json!({}),
            json!({"errcode": 0, "errmsg": "ok"}),
            json!({"errcode": 45009, "errmsg": "api freq out of limit", "hint": "x"}),
            json!({"errcode": 40014, "errmsg": "invalid access_token", "errinfo": 1}),
            json!({"errcode": 60011, "errmsg": "no privilege", "status": 1}),
            json!({"errcode": "60011", "errmsg": 7}),
            json!({"errcode": null, "errmsg": null}),
        ] {
            let mut body = head.clone();
            body["userlist"] = json!([{"userid": "u", "department": [1]}]);
            let page: model::UserListAnswer =
                serde_json::from_value(body.clone()).expect("a page that fits");
            assert_eq!(
                d.classify(200, &page.head()),
                d.classify(200, &body),
                "{body}"
            );
        }
    }
}
