//! Bearer-token authentication: tokens from `settings.apiTokens` in
//! `app.json`, each with a scope; compared in constant time.

use serde_json::Value;
use std::collections::HashMap;
use std::fmt;

/// What a token may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// `GET` anything.
    Read,
    /// Also call element methods (`POST .../call/{method}`).
    Call,
    /// Also start syncs (`POST .../sync`, and the methods `syncCorp` and
    /// `initCorp` through the call route), forced ones too.
    Admin,
}

impl Scope {
    /// The name used in `app.json` and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Call => "call",
            Scope::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "call" => Some(Scope::Call),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// One configured token.
#[derive(Clone)]
pub struct ApiToken {
    /// Its name, for logs (the value never is logged).
    pub name: String,
    value: Vec<u8>,
    /// What it may do.
    pub scope: Scope,
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("value", &"******")
            .field("scope", &self.scope)
            .finish()
    }
}

/// The tokens of an app; empty means no authentication (loopback only).
#[derive(Debug, Clone, Default)]
pub struct Tokens(Vec<ApiToken>);

/// Why a request is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token, or not one of the configured ones (401).
    Unauthenticated,
    /// A valid token whose scope is too small (403).
    Forbidden,
}

impl Tokens {
    /// Reads `settings.apiTokens` of an `app.json`, filling `{{NAME}}` in
    /// token values from the process environment, then the manifest's `env`.
    /// Errors name the entry and the variable, never a value.
    pub fn from_manifest(manifest: &Value) -> Result<Tokens, String> {
        let Some(list) = manifest.pointer("/settings/apiTokens") else {
            return Ok(Tokens::default());
        };
        let defaults: HashMap<String, String> = manifest
            .get("env")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let items = list
            .as_array()
            .ok_or("settings.apiTokens must be a list of {name, token, scope}")?;
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let field = |k: &str| item.get(k).and_then(Value::as_str);
            let name = field("name")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| format!("settings.apiTokens/{i}: `name` is missing"))?;
            let scope = field("scope").and_then(Scope::parse).ok_or_else(|| {
                format!("settings.apiTokens/{i} ({name}): `scope` must be read, call or admin")
            })?;
            let raw = field("token")
                .ok_or_else(|| format!("settings.apiTokens/{i} ({name}): `token` is missing"))?;
            let value = fill(raw, &defaults).map_err(|var| {
                format!(
                    "settings.apiTokens/{i} ({name}): placeholder {{{{{var}}}}} names an environment variable that is not set; export {var}=... or add it to `env` in app.json"
                )
            })?;
            if value.trim().is_empty() {
                return Err(format!(
                    "settings.apiTokens/{i} ({name}): the token is empty"
                ));
            }
            out.push(ApiToken {
                name: name.to_string(),
                value: value.into_bytes(),
                scope,
            });
        }
        Ok(Tokens(out))
    }

    /// Tokens given directly (tests, embedding hosts).
    pub fn new(tokens: impl IntoIterator<Item = (String, String, Scope)>) -> Tokens {
        Tokens(
            tokens
                .into_iter()
                .map(|(name, value, scope)| ApiToken {
                    name,
                    value: value.into_bytes(),
                    scope,
                })
                .collect(),
        )
    }

    /// True when no token is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks an `Authorization` header value against the tokens for a
    /// needed scope; on success, the token's name (`None` when no tokens are
    /// configured). Every configured token is compared, in constant time,
    /// so timing tells nothing about which tokens exist.
    pub fn check(
        &self,
        authorization: Option<&[u8]>,
        needed: Scope,
    ) -> Result<Option<&str>, Denied> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let presented = authorization
            .and_then(|h| {
                let (scheme, rest) = h.split_at(h.len().min(7));
                scheme.eq_ignore_ascii_case(b"bearer ").then_some(rest)
            })
            .map(<[u8]>::trim_ascii)
            .ok_or(Denied::Unauthenticated)?;
        let (name, scope) = self.identify(presented).ok_or(Denied::Unauthenticated)?;
        if scope >= needed {
            Ok(Some(name))
        } else {
            Err(Denied::Forbidden)
        }
    }
}

impl Tokens {
    /// The name and scope of the configured token `presented` is, if any
    /// (every token compared, in constant time).
    pub(crate) fn identify(&self, presented: &[u8]) -> Option<(&str, Scope)> {
        let mut found = None;
        for t in &self.0 {
            if constant_time_eq(&t.value, presented) && found.is_none() {
                found = Some((t.name.as_str(), t.scope));
            }
        }
        found
    }

    /// The value and scope of the token called `name` (the console keys
    /// the sessions a token opened with it).
    pub(crate) fn value_of(&self, name: &str) -> Option<(&[u8], Scope)> {
        self.0
            .iter()
            .find(|t| t.name == name)
            .map(|t| (t.value.as_slice(), t.scope))
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    // Walk the longer one whole so an early length mismatch costs the same.
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Fills `{{NAME}}` placeholders; `Err(NAME)` for the first unset one.
fn fill(raw: &str, defaults: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = after[..end].trim();
        let value = std::env::var(name)
            .ok()
            .or_else(|| defaults.get(name).cloned())
            .ok_or_else(|| name.to_string())?;
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tokens() -> Tokens {
        Tokens::new([
            ("reader".into(), "r-token".into(), Scope::Read),
            ("ops".into(), "a-token".into(), Scope::Admin),
        ])
    }

    #[test]
    fn a_token_of_a_large_enough_scope_is_accepted_by_name() {
        let t = tokens();
        assert_eq!(
            t.check(Some(b"Bearer r-token"), Scope::Read),
            Ok(Some("reader"))
        );
        assert_eq!(
            t.check(Some(b"bearer a-token"), Scope::Call),
            Ok(Some("ops"))
        );
    }

    #[test]
    fn a_small_scope_is_forbidden_and_an_unknown_or_missing_token_unauthenticated() {
        let t = tokens();
        assert_eq!(
            t.check(Some(b"Bearer r-token"), Scope::Call),
            Err(Denied::Forbidden)
        );
        assert_eq!(
            t.check(Some(b"Bearer nope"), Scope::Read),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            t.check(Some(b"Basic r-token"), Scope::Read),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(t.check(None, Scope::Read), Err(Denied::Unauthenticated));
        assert_eq!(
            t.check(Some(b"Bearer r-toke"), Scope::Read),
            Err(Denied::Unauthenticated)
        );
    }

    #[test]
    fn without_tokens_everything_is_allowed() {
        assert_eq!(Tokens::default().check(None, Scope::Admin), Ok(None));
    }

    #[test]
    fn token_values_come_from_placeholders_and_never_show_in_debug() {
        let m = json!({"env": {"JIT_SERVE_TEST_TOKEN_X": "from-env-default"},
            "settings": {"apiTokens": [{"name": "ci", "token": "{{JIT_SERVE_TEST_TOKEN_X}}", "scope": "call"}]}});
        let t = Tokens::from_manifest(&m).unwrap();
        assert_eq!(
            t.check(Some(b"Bearer from-env-default"), Scope::Call),
            Ok(Some("ci"))
        );
        assert!(!format!("{t:?}").contains("from-env-default"));
    }

    #[test]
    fn an_unset_placeholder_is_an_error_naming_the_variable() {
        let m = json!({"settings": {"apiTokens": [{"name": "ci", "token": "{{JIT_SERVE_UNSET_VAR}}", "scope": "read"}]}});
        let e = Tokens::from_manifest(&m).unwrap_err();
        assert!(
            e.contains("JIT_SERVE_UNSET_VAR") && e.contains("(ci)"),
            "{e}"
        );
    }

    #[test]
    fn equal_bytes_compare_equal_and_any_difference_does_not() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
