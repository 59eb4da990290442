//! The request loop shared by every platform client.

use crate::budget::{Limiter, RateLimit};
use crate::error::{ApiError, ErrInfo};
use crate::progress::StatsRegistry;
use crate::token::{Lease, Token, TokenCache};
use jit_org::FetchStats;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The largest answer body read. The biggest real pages (100 members with
/// every field) are a few hundred KiB.
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// How a platform answer is to be treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Success; the body is the result.
    Ok,
    /// The access token was rejected: drop it and retry once with a new one.
    Token(ErrInfo),
    /// Worth retrying after a back-off (busy, throttled, server trouble).
    Transient {
        /// The platform's code and message.
        info: ErrInfo,
        /// Whether this is a rate-limit answer (counted, and backed off longer).
        throttled: bool,
    },
    /// A definite failure; retrying would not help.
    Fatal(ErrInfo),
}

/// What a platform client teaches the shared machinery.
#[async_trait::async_trait]
pub trait Dialect: Send + Sync + 'static {
    /// Short platform name for messages (`wecom`, `dingtalk`).
    fn name(&self) -> &'static str;

    /// Fetches a fresh access token, normally through [`ApiCore::call`] with
    /// [`Auth::None`] so the token call is budgeted and retried too.
    async fn fetch_token(&self, core: &ApiCore) -> Result<Token, ApiError>;

    /// Reads a parsed JSON answer with its HTTP status. HTTP 5xx answers are
    /// already treated as transient by the caller and never reach here.
    fn classify(&self, http_status: u16, body: &Value) -> Verdict;
}

/// How the access token travels with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No token (the token call itself).
    None,
    /// As a query parameter with this name (`access_token`).
    Query(&'static str),
    /// As a header with this name (`x-acs-dingtalk-access-token`).
    Header(&'static str),
}

/// One API request.
#[derive(Clone)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: reqwest::Method,
    /// Scheme and host, e.g. `https://qyapi.weixin.qq.com` (no trailing slash needed).
    pub base: String,
    /// Path, e.g. `/cgi-bin/user/list`; also the key of the rate budget and statistics.
    pub path: String,
    /// Query parameters (besides the token).
    pub query: Vec<(String, String)>,
    /// JSON body, if any.
    pub body: Option<Value>,
    /// Token placement.
    pub auth: Auth,
    /// A token the caller holds for someone else (a DingTalk user access
    /// token from a login), sent in the named header instead of the app's
    /// token; never shown by `Debug`. Set with [`ApiRequest::user_token`].
    pub user_token: Option<(&'static str, String)>,
}

impl fmt::Debug for ApiRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Query values may be secrets (gettoken); show only the names.
        let names: Vec<&str> = self.query.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ApiRequest")
            .field("method", &self.method)
            .field("base", &self.base)
            .field("path", &self.path)
            .field("query_names", &names)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl ApiRequest {
    /// A GET with the token as `access_token` query parameter.
    pub fn get(base: &str, path: &str) -> ApiRequest {
        ApiRequest {
            method: reqwest::Method::GET,
            base: base.trim_end_matches('/').to_string(),
            path: path.to_string(),
            query: Vec::new(),
            body: None,
            auth: Auth::Query("access_token"),
            user_token: None,
        }
    }

    /// A POST of `body` with the token as `access_token` query parameter.
    pub fn post(base: &str, path: &str, body: Value) -> ApiRequest {
        ApiRequest {
            method: reqwest::Method::POST,
            body: Some(body),
            ..ApiRequest::get(base, path)
        }
    }

    /// Adds a query parameter.
    pub fn query(mut self, key: &str, value: impl ToString) -> ApiRequest {
        self.query.push((key.to_string(), value.to_string()));
        self
    }

    /// Sets the token placement.
    pub fn auth(mut self, auth: Auth) -> ApiRequest {
        self.auth = auth;
        self
    }

    /// Sends `token` (a user's, not the app's) in `header`; the app token is
    /// then not sent, and a token error is not retried with a fresh app token.
    pub fn user_token(mut self, header: &'static str, token: impl Into<String>) -> ApiRequest {
        self.auth = Auth::None;
        self.user_token = Some((header, token.into()));
        self
    }
}

/// Retry policy for transient errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts in all).
    pub max_retries: u32,
    /// First back-off; doubles on each retry.
    pub base_delay: Duration,
    /// Back-off ceiling.
    pub max_delay: Duration,
    /// Minimum back-off after a throttling answer (DingTalk says: wait 1 s).
    pub throttle_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            throttle_delay: Duration::from_secs(1),
        }
    }
}

/// How a platform client talks to its platform: the knobs both clients
/// share (each platform's config holds one, with that platform's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTuning {
    /// Simultaneous requests.
    pub concurrency: usize,
    /// Budget per API path.
    pub rate_limit: RateLimit,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Retries of transient errors.
    pub retry: RetryPolicy,
}

impl ClientTuning {
    /// The core settings for this tuning; `rate_margin` is added to every
    /// rate window (the platform's clock against ours).
    pub fn core_config(&self, rate_margin: Duration) -> CoreConfig {
        CoreConfig {
            concurrency: self.concurrency,
            rate_limit: self.rate_limit,
            rate_margin,
            timeout: self.timeout,
            retry: self.retry,
            ..CoreConfig::default()
        }
    }
}

/// Settings of an [`ApiCore`].
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Simultaneous requests.
    pub concurrency: usize,
    /// Rate budget of every path without an override.
    pub rate_limit: RateLimit,
    /// Per-path rate budgets.
    pub rate_overrides: HashMap<String, RateLimit>,
    /// Further windows every path keeps besides its own limit (WeCom's
    /// 150,000 calls per hour beside its 10,000 per minute).
    pub also_rate_limits: Vec<RateLimit>,
    /// Added to every rate window to absorb clock and network jitter.
    pub rate_margin: Duration,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Retries of transient errors.
    pub retry: RetryPolicy,
    /// Refresh the token when less than this much of its life is left.
    pub token_refresh_margin: Duration,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            concurrency: 32,
            rate_limit: RateLimit::unlimited(),
            rate_overrides: HashMap::new(),
            also_rate_limits: Vec::new(),
            rate_margin: Duration::ZERO,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            token_refresh_margin: Duration::from_secs(300),
        }
    }
}

/// The shared HTTP machinery of a platform client: token cache, rate budget,
/// concurrency bound, retries and statistics.
pub struct ApiCore {
    http: reqwest::Client,
    config: CoreConfig,
    limiter: Limiter,
    tokens: TokenCache,
    stats: StatsRegistry,
    dialect: Arc<dyn Dialect>,
    jitter_seed: AtomicU64,
}

impl fmt::Debug for ApiCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiCore")
            .field("dialect", &self.dialect.name())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

enum Failure {
    Token(ApiError),
    Transient { error: ApiError, throttled: bool },
    Fatal(ApiError),
}

impl ApiCore {
    /// A core speaking `dialect` with `config`.
    pub fn new(config: CoreConfig, dialect: Arc<dyn Dialect>) -> Result<ApiCore, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .pool_max_idle_per_host(config.concurrency.max(1))
            .build()
            .map_err(|e| ApiError::Config(crate::redact(&e.without_url().to_string())))?;
        Ok(ApiCore {
            limiter: Limiter::new(
                config.concurrency,
                config.rate_limit,
                config.rate_overrides.clone(),
                config.rate_margin,
            )
            .with_also(config.also_rate_limits.clone()),
            tokens: TokenCache::new(config.token_refresh_margin),
            stats: StatsRegistry::default(),
            http,
            dialect,
            config,
            jitter_seed: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
        })
    }

    /// The settings.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// Statistics since the core was made.
    pub fn stats(&self) -> FetchStats {
        self.stats.snapshot()
    }

    /// The underlying HTTP client (for requests that are not API calls).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A usable access token (cached, or fetched by one caller at a time).
    pub async fn token(&self) -> Result<Lease, ApiError> {
        let (lease, fetched) = self.tokens.get(|| self.dialect.fetch_token(self)).await?;
        if fetched {
            self.stats.token_refresh();
        }
        Ok(lease)
    }

    /// Drops the cached token if it is still `lease` (after the platform rejected it).
    pub async fn invalidate_token(&self, lease: &Lease) {
        self.tokens.invalidate(lease).await;
    }

    /// Sends `req` within the budget, retrying as the dialect's verdicts say,
    /// and returns the successful JSON answer.
    pub async fn call(&self, req: &ApiRequest) -> Result<Value, ApiError> {
        self.call_decoded(req).await
    }

    /// Like [`ApiCore::call`], but reads a successful answer straight into
    /// `T` without building a [`Value`] tree first (for large list pages,
    /// where that tree costs more than the rows themselves). The dialect
    /// classifies the answer on its top-level scalar fields (`errcode`,
    /// `errmsg`, ...), which is all a dialect may read for calls made this
    /// way. An answer that does not fit `T` comes back as
    /// [`Answer::Json`], so the caller's checks still name what is wrong
    /// (or accept what its lenient reading accepts).
    pub async fn call_typed<T: TypedAnswer>(
        &self,
        req: &ApiRequest,
    ) -> Result<Answer<T>, ApiError> {
        self.call_decoded(req).await
    }

    async fn call_decoded<R: Decode>(&self, req: &ApiRequest) -> Result<R, ApiError> {
        let mut attempt: u32 = 0;
        let mut token_retry_used = false;
        loop {
            let lease = match req.auth {
                Auth::None => None,
                _ => Some(self.token().await?),
            };
            let (permit, waited) = self.limiter.admit(&req.path).await;
            self.stats.call(&req.path, attempt > 0, waited);
            let outcome = self.send_once::<R>(req, lease.as_ref()).await;
            drop(permit);
            let failure = match outcome {
                Ok(v) => return Ok(v),
                Err(f) => f,
            };
            match failure {
                Failure::Token(error) => match lease {
                    Some(lease) if !token_retry_used => {
                        token_retry_used = true;
                        self.invalidate_token(&lease).await;
                        attempt += 1;
                    }
                    _ => {
                        self.stats.failure(&req.path);
                        return Err(error);
                    }
                },
                Failure::Transient { error, throttled } => {
                    if throttled {
                        self.stats.throttled(&req.path);
                    }
                    if attempt >= self.config.retry.max_retries {
                        self.stats.failure(&req.path);
                        return Err(if attempt == 0 {
                            error
                        } else {
                            ApiError::Exhausted {
                                path: req.path.clone(),
                                attempts: attempt + 1,
                                last: Box::new(error),
                            }
                        });
                    }
                    tokio::time::sleep(self.backoff(attempt, throttled)).await;
                    attempt += 1;
                }
                Failure::Fatal(error) => {
                    self.stats.failure(&req.path);
                    return Err(error);
                }
            }
        }
    }

    /// Exponential back-off with jitter in [d/2, d], at least the throttle
    /// delay after a throttling answer.
    fn backoff(&self, attempt: u32, throttled: bool) -> Duration {
        let p = &self.config.retry;
        let exp = p
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(p.max_delay);
        // xorshift on a shared seed: enough to de-synchronise retrying tasks.
        let mut x = self
            .jitter_seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let frac = (x % 1000) as f64 / 1000.0;
        let d = exp.mul_f64(0.5 + frac / 2.0);
        if throttled {
            d.max(p.throttle_delay)
        } else {
            d
        }
    }

    async fn send_once<R: Decode>(
        &self,
        req: &ApiRequest,
        lease: Option<&Lease>,
    ) -> Result<R, Failure> {
        let path = &req.path;
        let url = format!("{}{}", req.base, req.path);
        let mut builder = self
            .http
            .request(req.method.clone(), &url)
            .query(&req.query);
        match (req.auth, lease) {
            (Auth::Query(name), Some(l)) => builder = builder.query(&[(name, l.value.as_str())]),
            (Auth::Header(name), Some(l)) => builder = builder.header(name, l.value.as_str()),
            _ => {}
        }
        if let Some((name, token)) = &req.user_token {
            builder = builder.header(*name, token.as_str());
        }
        if let Some(body) = &req.body {
            builder = builder.json(body);
        }
        let transport = |e: reqwest::Error| {
            let timeout = e.is_timeout();
            // Connection and body errors are worth a retry; a request we could
            // not even build (bad URL) is not.
            let retry = timeout || e.is_connect() || e.is_request() || e.is_body() || e.is_decode();
            let error = ApiError::Transport {
                path: path.clone(),
                message: crate::redact(&error_chain(&e.without_url())),
                timeout,
            };
            if retry {
                Failure::Transient {
                    error,
                    throttled: false,
                }
            } else {
                Failure::Fatal(error)
            }
        };
        let mut resp = builder.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        // Read in chunks and stop at the cap: one hostile (or broken) answer
        // must not hold the whole process's memory.
        let mut bytes: Vec<u8> = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Failure::Fatal(ApiError::Malformed {
                    path: path.clone(),
                    message: format!(
                        "the answer is larger than {} MiB; no page of a platform API is that big",
                        MAX_ANSWER_BYTES / (1024 * 1024)
                    ),
                }));
            }
            bytes.extend_from_slice(&chunk);
        }
        if status >= 500 {
            return Err(Failure::Transient {
                error: ApiError::Http {
                    path: path.clone(),
                    status,
                    snippet: snippet(&bytes),
                },
                throttled: false,
            });
        }
        R::decode(self, path, status, &bytes)
    }

    /// Reads an answer's JSON as `V` (the whole tree, or only its head): an
    /// unreadable body is malformed (retried) on success statuses, else an
    /// HTTP error.
    fn read_body<V: DeserializeOwned>(path: &str, status: u16, bytes: &[u8]) -> Result<V, Failure> {
        match serde_json::from_slice(bytes) {
            Ok(v) => Ok(v),
            Err(e) if status < 300 => Err(Failure::Transient {
                error: ApiError::Malformed {
                    path: path.to_string(),
                    message: format!("{e}; body starts {:?}", snippet(bytes)),
                },
                throttled: false,
            }),
            Err(_) => {
                let error = ApiError::Http {
                    path: path.to_string(),
                    status,
                    snippet: snippet(bytes),
                };
                Err(if status == 429 {
                    Failure::Transient {
                        error,
                        throttled: true,
                    }
                } else {
                    Failure::Fatal(error)
                })
            }
        }
    }

    /// The dialect's verdict on an answer `body` (whole, or its head).
    fn judge(&self, path: &str, status: u16, bytes: &[u8], body: &Value) -> Result<(), Failure> {
        let platform = |info: ErrInfo| ApiError::Platform {
            path: path.to_string(),
            http_status: status,
            code: info.code,
            message: info.message,
        };
        match self.dialect.classify(status, body) {
            Verdict::Ok if status < 300 => Ok(()),
            Verdict::Ok => Err(Failure::Fatal(ApiError::Http {
                path: path.to_string(),
                status,
                snippet: snippet(bytes),
            })),
            Verdict::Token(info) => Err(Failure::Token(platform(info))),
            Verdict::Transient { info, throttled } => Err(Failure::Transient {
                error: platform(info),
                throttled,
            }),
            Verdict::Fatal(info) => Err(Failure::Fatal(platform(info))),
        }
    }
}

/// The first 200 characters of an answer, redacted: a window larger than
/// what is shown is redacted, so a key just before the cut still hides its
/// value.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]);
    crate::redact(&text).chars().take(200).collect::<String>()
}

/// A successful answer of [`ApiCore::call_typed`].
#[derive(Debug)]
pub enum Answer<T> {
    /// The answer, read straight into `T`.
    Typed(T),
    /// The answer did not fit `T`: its JSON, for the caller's own checks.
    Json(Value),
}

/// How [`ApiCore`] turns an answer's bytes into what a call returns.
trait Decode: Sized {
    fn decode(core: &ApiCore, path: &str, status: u16, bytes: &[u8]) -> Result<Self, Failure>;
}

impl Decode for Value {
    fn decode(core: &ApiCore, path: &str, status: u16, bytes: &[u8]) -> Result<Value, Failure> {
        let body: Value = ApiCore::read_body(path, status, bytes)?;
        core.judge(path, status, bytes, &body)?;
        Ok(body)
    }
}

/// An answer type of [`ApiCore::call_typed`]: read in one pass, and judged
/// on the top-level scalar fields it keeps.
///
/// The type keeps, as [`Scalar`] fields, every top-level field its
/// dialect's [`Dialect::classify`] reads (WeCom: `errcode` and `errmsg`),
/// and gives them back from [`TypedAnswer::head`]. An answer that fits the
/// type is then judged exactly as the two-pass reading would judge it; one
/// that does not is read the two-pass way.
pub trait TypedAnswer: DeserializeOwned {
    /// The kept top-level fields as a JSON object (see [`head_of`]).
    fn head(&self) -> Value;
}

/// The object [`Dialect::classify`] reads, from an answer's kept top-level
/// fields: a field that was absent, a list or an object is left out, as
/// the two-pass reading leaves it out.
pub fn head_of<'a>(fields: impl IntoIterator<Item = (&'a str, &'a Scalar)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.0.clone()?)))
            .collect(),
    )
}

impl<T: TypedAnswer> Decode for Answer<T> {
    fn decode(core: &ApiCore, path: &str, status: u16, bytes: &[u8]) -> Result<Self, Failure> {
        // One pass for the answers that fit (every page of a sync); reading
        // the top-level fields first, then the rows, parsed each page twice.
        if let Ok(typed) = serde_json::from_slice::<T>(bytes) {
            core.judge(path, status, bytes, &typed.head())?;
            return Ok(Answer::Typed(typed));
        }
        let Head(head) = ApiCore::read_body(path, status, bytes)?;
        core.judge(path, status, bytes, &head)?;
        Ok(Answer::Json(ApiCore::read_body(path, status, bytes)?))
    }
}

/// An answer's top-level scalar fields as a JSON object (lists and objects
/// are skipped without being built); a body that is not an object is kept
/// as it is when scalar, else becomes `null`.
struct Head(Value);

impl<'de> serde::Deserialize<'de> for Head {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Head, D::Error> {
        struct Top;
        impl<'de> serde::de::Visitor<'de> for Top {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON answer")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Value, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if let Scalar(Some(v)) = map.next_value()? {
                        out.insert(key, v);
                    }
                }
                Ok(Value::Object(out))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Value::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
                Ok(v.into())
            }
            fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
                Ok(v.into())
            }
            fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
                Ok(v.into())
            }
            fn visit_str<E>(self, v: &str) -> Result<Value, E> {
                Ok(v.into())
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
        }
        d.deserialize_any(Top).map(Head)
    }
}

/// One top-level field of an answer as [`Dialect::classify`] sees it: a
/// scalar (`null` included), or `None` for a list or an object (skipped,
/// not built) and, with `#[serde(default)]`, for an absent field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scalar(pub Option<Value>);

impl<'de> serde::Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        struct One;
        impl<'de> serde::de::Visitor<'de> for One {
            type Value = Option<Value>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(None)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(None)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Some(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Some(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Some(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Some(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Some(v.into()))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Some(Value::Null))
            }
        }
        d.deserialize_any(One).map(Scalar)
    }
}

/// An error and its sources in one line (reqwest hides the useful part in sources).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_token_is_sent_instead_of_the_app_token_and_never_shown_by_debug() {
        let req = ApiRequest::get("https://api.example.com", "/v1.0/contact/users/me")
            .user_token("x-acs-dingtalk-access-token", "user-token-value-123");
        assert_eq!(req.auth, Auth::None, "no app token is fetched for it");
        assert!(!format!("{req:?}").contains("user-token-value"));
    }
}
