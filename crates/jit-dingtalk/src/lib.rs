//! DingTalk (钉钉) internal-app API client and organization fetcher.
//!
//! [`DingTalkClient`] is what `corps.DDInnerType`'s `getClient()` returns. It
//! speaks both API families of reference Part B through the shared machinery
//! of `jit-apiclient`:
//! - the old family (`https://oapi.dingtalk.com/topapi/...`, token in the
//!   `access_token` query parameter, HTTP 200 with `{errcode, errmsg}`), where
//!   all contact APIs live;
//! - the new family (`https://api.dingtalk.com/v1.0/...`, token in the
//!   `x-acs-dingtalk-access-token` header, errors as HTTP 4xx
//!   `{code, message, requestid}`), used for the access token.
//!
//! Token errors (40001/40014/41001/42001, errcode 88 with `sub_code` "40014",
//! HTTP 400 `InvalidAuthentication`) drop the token and retry once; throttling
//! (90018, 90002, `Forbidden.AccessDenied.QpsLimit*`), -1 and HTTP 5xx back
//! off and retry. Every API path has its own budget of 20 calls per second,
//! and [`DingTalkClient::fetch_corp`] pipelines the walk so all APIs run at
//! their own budget at the same time.
//!
//! ```no_run
//! use jit_dingtalk::{DingTalkClient, DingTalkConfig};
//! use jit_apiclient::{FetchOptions, NoProgress};
//! # async fn demo() -> Result<(), jit_apiclient::ApiError> {
//! let client = DingTalkClient::new(DingTalkConfig::new("ding123", "1234567890", "dingappkey", "secret"))?;
//! let snap = client.fetch_corp(&FetchOptions::default(), &NoProgress).await?;
//! println!("{} members, {} roles", snap.members.len(), snap.roles.len());
//! # Ok(()) }
//! ```

mod fetch;
mod model;

pub use model::{ListedMember, LoginIdentity, UserPage};

use jit_apiclient::{
    json, ApiCore, ApiError, ApiRequest, Auth, ClientTuning, CoreConfig, Dialect, ErrCode, ErrInfo,
    FetchStats, RateLimit, RetryPolicy, Token, Verdict,
};
use jit_org::{Admin, Dept, Member, Role, RoleGroup};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The public new-family host.
pub const DEFAULT_API_BASE: &str = "https://api.dingtalk.com";
/// The public old-family host.
pub const DEFAULT_OAPI_BASE: &str = "https://oapi.dingtalk.com";

/// Where the access token comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `POST /v1.0/oauth2/accessToken` on the new-family host.
    NewFamily,
    /// `GET /gettoken` on the old-family host (archived, still works).
    OldFamily,
    /// New family first; the old one when the new one fails.
    NewThenOld,
}

/// Settings of a [`DingTalkClient`].
#[derive(Clone)]
pub struct DingTalkConfig {
    /// corpId.
    pub corp_id: String,
    /// AgentId.
    pub agent_id: String,
    /// AppKey / Client ID.
    pub app_key: String,
    /// AppSecret / Client Secret.
    pub app_secret: String,
    /// New-family host, default [`DEFAULT_API_BASE`].
    pub api_base: String,
    /// Old-family host, default [`DEFAULT_OAPI_BASE`].
    pub oapi_base: String,
    /// Token endpoint choice (default [`TokenSource::NewThenOld`]).
    pub token_source: TokenSource,
    /// Concurrency (default 32), budget per API path (default 20 per
    /// second, the documented per-app limit), timeout of one request
    /// (default 30 s) and retries.
    pub tuning: ClientTuning,
}

impl fmt::Debug for DingTalkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DingTalkConfig")
            .field("corp_id", &self.corp_id)
            .field("agent_id", &self.agent_id)
            .field("app_key", &self.app_key)
            .field("app_secret", &"***")
            .field("api_base", &self.api_base)
            .field("oapi_base", &self.oapi_base)
            .field("token_source", &self.token_source)
            .field("tuning", &self.tuning)
            .finish()
    }
}

impl DingTalkConfig {
    /// Defaults for everything but the credentials.
    pub fn new(
        corp_id: impl Into<String>,
        agent_id: impl Into<String>,
        app_key: impl Into<String>,
        app_secret: impl Into<String>,
    ) -> DingTalkConfig {
        DingTalkConfig {
            corp_id: corp_id.into(),
            agent_id: agent_id.into(),
            app_key: app_key.into(),
            app_secret: app_secret.into(),
            api_base: DEFAULT_API_BASE.into(),
            oapi_base: DEFAULT_OAPI_BASE.into(),
            token_source: TokenSource::NewThenOld,
            tuning: ClientTuning {
                concurrency: 32,
                rate_limit: RateLimit::new(20, Duration::from_secs(1)),
                timeout: Duration::from_secs(30),
                retry: RetryPolicy::default(),
            },
        }
    }
}

const TOKEN_CODES: [i64; 5] = [40001, 40014, 41001, 42001, 88];
/// 90018 per-app QPS, 90002 global QPS, 90005/90006 "called too often".
const THROTTLE_CODES: [i64; 4] = [90018, 90002, 90005, 90006];

struct DingDialect {
    api_base: String,
    oapi_base: String,
    app_key: String,
    app_secret: String,
    source: TokenSource,
}

impl DingDialect {
    async fn new_family_token(&self, core: &ApiCore) -> Result<Token, ApiError> {
        let req = ApiRequest::post(
            &self.api_base,
            "/v1.0/oauth2/accessToken",
            json!({"appKey": self.app_key, "appSecret": self.app_secret}),
        )
        .auth(Auth::None);
        let v = core.call(&req).await?;
        token_from(&req.path, &v, &["accessToken"], &["expireIn"])
    }

    async fn old_family_token(&self, core: &ApiCore) -> Result<Token, ApiError> {
        let req = ApiRequest::get(&self.oapi_base, "/gettoken")
            .query("appkey", &self.app_key)
            .query("appsecret", &self.app_secret)
            .auth(Auth::None);
        let v = core.call(&req).await?;
        token_from(&req.path, &v, &["access_token"], &["expires_in"])
    }
}

/// Reads the `result` of a `topapi/v2/user/list` page for department
/// `dept_id`: every member checked (userid, unionid, departments);
/// otherwise a malformed answer naming the JSON pointer. Pure, so it can be
/// tested on any JSON.
pub fn parse_user_page(result: &Value, dept_id: i64) -> Result<UserPage, ApiError> {
    checked("/topapi/v2/user/list", result, "list", model::check_member)?;
    Ok(model::user_page_from_json(result, dept_id))
}

/// The rows of a list in an answer, each checked: a list that is missing or
/// not a list, or a row that cannot be read, makes the answer malformed
/// (naming the JSON pointer inside `result`), never a smaller org.
fn checked<'a>(
    path: &str,
    v: &'a Value,
    field: &str,
    check: impl Fn(&Value, &str) -> Result<(), String>,
) -> Result<&'a [Value], ApiError> {
    let malformed = |message: String| ApiError::Malformed {
        path: path.to_string(),
        message,
    };
    let rows = json::records(v, field).map_err(malformed)?;
    for (i, row) in rows.iter().enumerate() {
        check(row, &format!("/{field}/{i}")).map_err(malformed)?;
    }
    Ok(rows)
}

fn token_from(path: &str, v: &Value, keys: &[&str], exp: &[&str]) -> Result<Token, ApiError> {
    let token = json::string(json::field(v, keys))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Malformed {
            path: path.to_string(),
            message: "no access token in the answer".into(),
        })?;
    let expires = json::int(json::field(v, exp)).unwrap_or(7200).max(1) as u64;
    Ok(Token::new(token, expires))
}

#[async_trait::async_trait]
impl Dialect for DingDialect {
    fn name(&self) -> &'static str {
        "dingtalk"
    }

    async fn fetch_token(&self, core: &ApiCore) -> Result<Token, ApiError> {
        match self.source {
            TokenSource::NewFamily => self.new_family_token(core).await,
            TokenSource::OldFamily => self.old_family_token(core).await,
            TokenSource::NewThenOld => match self.new_family_token(core).await {
                Ok(t) => Ok(t),
                Err(new_err) => match self.old_family_token(core).await {
                    Ok(t) => Ok(t),
                    // A credential refusal from the new family says more than
                    // the old family's answer to the same credentials.
                    Err(_) if matches!(new_err, ApiError::Platform { .. }) => Err(new_err),
                    Err(old_err) => Err(old_err),
                },
            },
        }
    }

    fn classify(&self, http_status: u16, body: &Value) -> Verdict {
        if let Some(code) = json::int(body.get("errcode")) {
            let mut msg = json::string(body.get("errmsg")).unwrap_or_default();
            let sub = json::string(json::field(body, &["sub_code", "subCode"]));
            if let Some(sub) = &sub {
                let sub_msg =
                    json::string(json::field(body, &["sub_msg", "subMsg"])).unwrap_or_default();
                msg = format!("{msg} (sub_code {sub}: {sub_msg})");
            }
            let info = ErrInfo::num(code, &msg);
            return match code {
                0 => Verdict::Ok,
                c if TOKEN_CODES.contains(&c) => Verdict::Token(info),
                c if THROTTLE_CODES.contains(&c) => Verdict::Transient {
                    info,
                    throttled: true,
                },
                -1 | 400001 => Verdict::Transient {
                    info,
                    throttled: false,
                },
                _ => Verdict::Fatal(info),
            };
        }
        if http_status >= 400 {
            if let Some(code) = json::string(body.get("code")) {
                let info = ErrInfo::text(
                    &code,
                    &json::string(body.get("message")).unwrap_or_default(),
                );
                return if code == "InvalidAuthentication" {
                    Verdict::Token(info)
                } else if code.starts_with("Forbidden.AccessDenied.QpsLimit") || http_status == 429
                {
                    Verdict::Transient {
                        info,
                        throttled: true,
                    }
                } else {
                    Verdict::Fatal(info)
                };
            }
        }
        // The per-IP ban answers {"status":1111,"wait":5,...} without errcode.
        if json::int(body.get("status")) == Some(1111) {
            return Verdict::Transient {
                info: ErrInfo::text("IpBanned", "egress IP throttled by DingTalk"),
                throttled: true,
            };
        }
        Verdict::Ok
    }
}

/// The DingTalk API client of one internal app.
pub struct DingTalkClient {
    core: Arc<ApiCore>,
    config: DingTalkConfig,
    oapi: String,
    api: String,
}

impl fmt::Debug for DingTalkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DingTalkClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn base(s: &str) -> String {
    s.trim().trim_end_matches('/').to_string()
}

impl DingTalkClient {
    /// A client for `config`. Fails only on an unusable configuration.
    pub fn new(config: DingTalkConfig) -> Result<DingTalkClient, ApiError> {
        if config.app_key.trim().is_empty() || config.app_secret.trim().is_empty() {
            return Err(ApiError::Config(
                "DingTalk appKey and appSecret must not be empty".into(),
            ));
        }
        let (api, oapi) = (base(&config.api_base), base(&config.oapi_base));
        for b in [&api, &oapi] {
            if !(b.starts_with("http://") || b.starts_with("https://")) {
                return Err(ApiError::Config(format!(
                    "DingTalk base URL {b:?} is not an http(s) URL"
                )));
            }
        }
        let core_cfg = CoreConfig {
            // The calling guide recommends refreshing ~10 minutes before expiry.
            token_refresh_margin: Duration::from_secs(600),
            // 1/40 of the window (25 ms on 1 s): covers the spread between our
            // send time and the server's arrival time on the same host or LAN.
            ..config
                .tuning
                .core_config(config.tuning.rate_limit.window / 40)
        };
        let dialect = DingDialect {
            api_base: api.clone(),
            oapi_base: oapi.clone(),
            app_key: config.app_key.clone(),
            app_secret: config.app_secret.clone(),
            source: config.token_source,
        };
        Ok(DingTalkClient {
            core: Arc::new(ApiCore::new(core_cfg, Arc::new(dialect))?),
            config,
            oapi,
            api,
        })
    }

    /// The settings.
    pub fn config(&self) -> &DingTalkConfig {
        &self.config
    }

    /// Call statistics since the client was made.
    pub fn stats(&self) -> FetchStats {
        self.core.stats()
    }

    /// Fetches (or reuses) the access token: a cheap credentials check.
    pub async fn check_credentials(&self) -> Result<(), ApiError> {
        self.core.token().await.map(|_| ())
    }

    /// POST `body` to an old-family path (`/topapi/...`); returns the whole
    /// answer with errcode checked.
    pub async fn oapi_post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        let path = format!("/{}", path.trim_start_matches('/'));
        self.core
            .call(&ApiRequest::post(&self.oapi, &path, body.clone()))
            .await
    }

    /// GET an old-family path with query parameters.
    pub async fn oapi_get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ApiError> {
        let path = format!("/{}", path.trim_start_matches('/'));
        let mut req = ApiRequest::get(&self.oapi, &path);
        for (k, v) in query {
            req = req.query(k, v);
        }
        self.core.call(&req).await
    }

    /// A new-family call (`/v1.0/...`) with the app token in the header.
    pub async fn api_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let path = format!("/{}", path.trim_start_matches('/'));
        let mut req =
            ApiRequest::get(&self.api, &path).auth(Auth::Header("x-acs-dingtalk-access-token"));
        req.method = method;
        req.body = body.cloned();
        self.core.call(&req).await
    }

    async fn result(&self, path: &str, body: Value) -> Result<Value, ApiError> {
        let mut v = self.oapi_post(path, &body).await?;
        Ok(v.get_mut("result").map(Value::take).unwrap_or(Value::Null))
    }

    /// `topapi/v2/department/listsubid`: ids of the direct children.
    pub async fn department_listsubid(&self, dept_id: i64) -> Result<Vec<i64>, ApiError> {
        let r = self
            .result(
                "/topapi/v2/department/listsubid",
                json!({"dept_id": dept_id}),
            )
            .await?;
        json::check_ids(&r, "dept_id_list", "/result").map_err(|message| ApiError::Malformed {
            path: "/topapi/v2/department/listsubid".into(),
            message,
        })?;
        if !r.get("dept_id_list").is_some_and(Value::is_array) {
            return Err(ApiError::Malformed {
                path: "/topapi/v2/department/listsubid".into(),
                message: format!(
                    "/result/dept_id_list is {}, not a list",
                    json::shown(r.get("dept_id_list"))
                ),
            });
        }
        Ok(json::ints(r.get("dept_id_list")))
    }

    /// `topapi/v2/department/listsub`: the direct children (without order).
    pub async fn department_listsub(&self, dept_id: i64) -> Result<Vec<Dept>, ApiError> {
        let r = self
            .result("/topapi/v2/department/listsub", json!({"dept_id": dept_id}))
            .await?;
        let wrapped = json!({ "result": r });
        let rows = checked(
            "/topapi/v2/department/listsub",
            &wrapped,
            "result",
            model::check_dept,
        )?;
        Ok(rows.iter().map(model::dept_from_json).collect())
    }

    /// `topapi/v2/department/get`: one department with order and managers.
    pub async fn department_get(&self, dept_id: i64) -> Result<Dept, ApiError> {
        let r = self
            .result("/topapi/v2/department/get", json!({"dept_id": dept_id}))
            .await?;
        model::check_dept(&r, "/result").map_err(|message| ApiError::Malformed {
            path: "/topapi/v2/department/get".into(),
            message,
        })?;
        Ok(model::dept_from_json(&r))
    }

    /// One page of `topapi/v2/user/list` (`size` ≤ 100).
    pub async fn user_list_page(
        &self,
        dept_id: i64,
        cursor: i64,
        size: u32,
    ) -> Result<UserPage, ApiError> {
        let r = self
            .result(
                "/topapi/v2/user/list",
                json!({"dept_id": dept_id, "cursor": cursor, "size": size, "contain_access_limit": false}),
            )
            .await?;
        parse_user_page(&r, dept_id)
    }

    /// Every direct member of a department, following `next_cursor` to the end.
    pub async fn user_list(&self, dept_id: i64) -> Result<Vec<ListedMember>, ApiError> {
        let mut out = Vec::new();
        let mut cursor = 0;
        loop {
            let page = self.user_list_page(dept_id, cursor, 100).await?;
            out.extend(page.members);
            match (page.has_more, page.next_cursor) {
                (true, Some(next)) if next != cursor => cursor = next,
                (true, _) => {
                    return Err(ApiError::Malformed {
                        path: "/topapi/v2/user/list".into(),
                        message: format!(
                            "department {dept_id}: has_more without a new next_cursor after cursor {cursor}"
                        ),
                    })
                }
                (false, _) => return Ok(out),
            }
        }
    }

    /// `topapi/v2/user/get`: one member's detail.
    pub async fn user_get(&self, userid: &str) -> Result<Member, ApiError> {
        let r = self
            .result("/topapi/v2/user/get", json!({"userid": userid}))
            .await?;
        Ok(model::listed_member_from_json(&r, None).member)
    }

    /// `topapi/user/listid`: userids of a department's direct members.
    pub async fn user_listid(&self, dept_id: i64) -> Result<Vec<String>, ApiError> {
        let r = self
            .result("/topapi/user/listid", json!({"dept_id": dept_id}))
            .await?;
        Ok(json::strings(r.get("userid_list")))
    }

    /// `topapi/user/getbyunionid`: the userid of a unionId in this org.
    pub async fn userid_by_unionid(&self, union_id: &str) -> Result<String, ApiError> {
        let r = self
            .result("/topapi/user/getbyunionid", json!({"unionid": union_id}))
            .await?;
        json::string(r.get("userid")).ok_or_else(|| ApiError::Malformed {
            path: "/topapi/user/getbyunionid".into(),
            message: "no userid in the answer".into(),
        })
    }

    /// `topapi/role/list`, all pages (size 200): groups merged by `groupId`
    /// across pages, roles without members.
    pub async fn role_list(&self) -> Result<(Vec<RoleGroup>, Vec<Role>), ApiError> {
        let mut groups: BTreeMap<String, RoleGroup> = BTreeMap::new();
        let mut roles: BTreeMap<String, Role> = BTreeMap::new();
        let mut offset = 0i64;
        loop {
            let r = self
                .result("/topapi/role/list", json!({"offset": offset, "size": 200}))
                .await?;
            let list = checked("/topapi/role/list", &r, "list", |_, _| Ok(()))?;
            for g in list {
                let Some(gid) = json::string(json::field(g, &["groupId", "group_id"])) else {
                    continue;
                };
                let gname =
                    json::string(json::field(g, &["name", "group_name"])).unwrap_or_default();
                groups.entry(gid.clone()).or_insert(RoleGroup {
                    group_id: gid.clone(),
                    name: gname,
                });
                for role in json::array(g.get("roles")) {
                    let Some(rid) = json::string(json::field(role, &["id", "role_id", "roleId"]))
                    else {
                        continue;
                    };
                    roles.insert(
                        rid.clone(),
                        Role {
                            role_id: rid,
                            group_id: Some(gid.clone()),
                            name: json::string(json::field(
                                role,
                                &["name", "role_name", "roleName"],
                            ))
                            .unwrap_or_default(),
                            members: Vec::new(),
                        },
                    );
                }
            }
            let more = json::boolean(json::field(&r, &["hasMore", "has_more"])).unwrap_or(false);
            if !more || list.is_empty() {
                break;
            }
            offset += 200;
        }
        Ok((
            groups.into_values().collect(),
            roles.into_values().collect(),
        ))
    }

    /// `topapi/role/simplelist`, all pages (size 100): the role's member ids, sorted.
    pub async fn role_members(&self, role_id: &str) -> Result<Vec<String>, ApiError> {
        let id: Value = role_id
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(role_id));
        let mut out = Vec::new();
        let mut offset = 0i64;
        loop {
            let r = self
                .result(
                    "/topapi/role/simplelist",
                    json!({"role_id": id, "offset": offset, "size": 100}),
                )
                .await?;
            let list = checked("/topapi/role/simplelist", &r, "list", |_, _| Ok(()))?;
            out.extend(list.iter().filter_map(|u| json::string(u.get("userid"))));
            let more = json::boolean(json::field(&r, &["hasMore", "has_more"])).unwrap_or(false);
            if !more || list.is_empty() {
                break;
            }
            offset += 100;
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// `topapi/user/listadmin`: admins with `sys_level` (1 primary, 2 sub).
    pub async fn list_admin(&self) -> Result<Vec<Admin>, ApiError> {
        let r = self.result("/topapi/user/listadmin", json!({})).await?;
        checked(
            "/topapi/user/listadmin",
            &json!({ "result": r.clone() }),
            "result",
            |_, _| Ok(()),
        )?;
        let mut out: Vec<Admin> = json::array(Some(&r))
            .iter()
            .filter_map(|a| {
                Some(Admin {
                    member_id: json::string(a.get("userid"))?,
                    level: json::int(a.get("sys_level")).unwrap_or(0) as i32,
                })
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// `topapi/v2/user/getuserinfo`: exchanges an in-app login code.
    pub async fn get_user_info(&self, code: &str) -> Result<LoginIdentity, ApiError> {
        let r = self
            .result("/topapi/v2/user/getuserinfo", json!({"code": code}))
            .await?;
        Ok(model::login_from_json(&r))
    }

    /// `POST /v1.0/oauth2/userAccessToken` (reference B.6 b, step 2):
    /// exchanges a web login's `authCode` for the person's user access token,
    /// with the app's Client ID and Client Secret (no app token).
    pub async fn user_access_token(&self, auth_code: &str) -> Result<UserAccessToken, ApiError> {
        let req = ApiRequest::post(
            &self.api,
            "/v1.0/oauth2/userAccessToken",
            json!({
                "clientId": self.config.app_key,
                "clientSecret": self.config.app_secret,
                "code": auth_code,
                "grantType": "authorization_code",
            }),
        )
        .auth(Auth::None);
        let v = self.core.call(&req).await?;
        json::string(v.get("accessToken"))
            .filter(|t| !t.is_empty())
            .map(UserAccessToken)
            .ok_or_else(|| ApiError::Malformed {
                path: req.path.clone(),
                message: "no accessToken in the answer".into(),
            })
    }

    /// `GET /v1.0/contact/users/me` with a user access token (reference B.6 b,
    /// step 3): who logged in, above all their unionId.
    pub async fn users_me(&self, token: &UserAccessToken) -> Result<UserMe, ApiError> {
        let req = ApiRequest::get(&self.api, "/v1.0/contact/users/me")
            .user_token("x-acs-dingtalk-access-token", token.0.clone());
        let v = self.core.call(&req).await?;
        Ok(UserMe {
            union_id: json::string(v.get("unionId")).filter(|u| !u.is_empty()),
            nick: json::string(v.get("nick")),
        })
    }
}

/// A person's user access token from a web login. `Debug` never shows it.
#[derive(Clone)]
pub struct UserAccessToken(String);

impl fmt::Debug for UserAccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserAccessToken(***)")
    }
}

/// The `contact/users/me` answer, as far as a login needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMe {
    /// The person's unionId: what identifies them across DingTalk orgs.
    pub union_id: Option<String>,
    /// Their nickname.
    pub nick: Option<String>,
}

/// Whether an error means "this department is outside the app's contact
/// scope": 50004 (企业部门不在授权范围, reference B.2/B.3). `listsubid` is not
/// limited by the scope, so the walk lists such departments and only their
/// reads say so; they are not the app's to sync, like a department WeCom's
/// `department/list` does not return.
///
/// Every other refusal is a failed read, never "out of scope": 60011 means
/// the app lacks the API permission point (reference B.1), 60020 that the
/// caller's IP is not allow-listed, 43007 that the token lacks authorisation,
/// 60019 that users cannot be read from the department.
pub(crate) fn out_of_scope(e: &ApiError) -> bool {
    matches!(e.code(), Some(ErrCode::Num(50004)))
}

#[async_trait::async_trait]
impl jit_sync::CorpSource for DingTalkClient {
    fn provider(&self) -> jit_org::Provider {
        jit_org::Provider::DingTalk
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

    fn dialect() -> DingDialect {
        DingDialect {
            api_base: String::new(),
            oapi_base: String::new(),
            app_key: String::new(),
            app_secret: String::new(),
            source: TokenSource::NewThenOld,
        }
    }

    #[test]
    fn old_family_codes_are_classified() {
        let d = dialect();
        assert_eq!(
            d.classify(200, &json!({"errcode":0,"errmsg":"ok"})),
            Verdict::Ok
        );
        let v = json!({"errcode":88,"errmsg":"鉴权异常","sub_code":"40014","sub_msg":"不合法的access_token"});
        match d.classify(200, &v) {
            Verdict::Token(info) => assert!(info.message.contains("40014")),
            other => panic!("{other:?}"),
        }
        for c in [90018, 90002] {
            assert!(matches!(
                d.classify(200, &json!({"errcode": c})),
                Verdict::Transient {
                    throttled: true,
                    ..
                }
            ));
        }
        assert!(matches!(
            d.classify(200, &json!({"errcode": -1})),
            Verdict::Transient {
                throttled: false,
                ..
            }
        ));
        assert!(matches!(
            d.classify(200, &json!({"errcode": 60003})),
            Verdict::Fatal(_)
        ));
    }

    #[test]
    fn new_family_codes_are_classified() {
        let d = dialect();
        let v = json!({"code":"InvalidAuthentication","message":"不合法的access_token","requestid":"x"});
        assert!(matches!(d.classify(400, &v), Verdict::Token(_)));
        let v = json!({"code":"Forbidden.AccessDenied.QpsLimitForAppkeyAndApi","message":"qps"});
        assert!(matches!(
            d.classify(403, &v),
            Verdict::Transient {
                throttled: true,
                ..
            }
        ));
        let v = json!({"code":"invalidClientIdOrSecret","message":"bad"});
        assert!(matches!(d.classify(400, &v), Verdict::Fatal(_)));
        assert_eq!(
            d.classify(200, &json!({"accessToken":"t","expireIn":7200})),
            Verdict::Ok
        );
    }

    #[test]
    fn config_debug_hides_the_secret() {
        let c = DingTalkConfig::new("ding1", "1", "key", "TOPSECRET");
        assert!(!format!("{c:?}").contains("TOPSECRET"));
    }
}
