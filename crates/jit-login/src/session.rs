//! Session tokens: signed (HMAC-SHA256), expiring, verifiable by every
//! replica sharing the store.
//!
//! A token is `jit1.<kid>.<claims>.<signature>`: the claims are base64url
//! JSON (`sid`, `login`, `corp`, `member`, `user`, `iat`, `exp`; no secret in
//! them) and the signature covers everything before it. `kid` names the key:
//! `s<generation>` for a key generated once and kept in the store, `c<hash>`
//! for one from the config (`sessionSecret`, `previousSessionSecrets`; the
//! hash is of the key, so it says nothing about it).
//!
//! Rotation never logs anyone out: a stored key that a newer one replaced
//! still verifies for one session lifetime after it stopped signing; a
//! configured key moved to `previousSessionSecrets` verifies while it is
//! listed there.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// What a session says, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Session id (random; what a logout revokes).
    pub sid: String,
    /// The login element that made it.
    pub login: String,
    /// The org element the member logged in through.
    pub corp: String,
    /// The member id in that org.
    pub member: String,
    /// The local user.
    pub user: i64,
    /// Issued at, milliseconds since the epoch.
    pub iat: i64,
    /// Expires at, milliseconds since the epoch.
    pub exp: i64,
}

/// One key that may verify (and, the current one, sign).
#[derive(Clone)]
pub struct SigningKey {
    /// Its id in tokens.
    pub kid: String,
    secret: Vec<u8>,
    /// Until when it verifies (ms since the epoch); `None`: no end.
    pub verifies_until: Option<i64>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("secret", &"***")
            .field("verifies_until", &self.verifies_until)
            .finish()
    }
}

impl SigningKey {
    /// A key from the config; its id is derived from a hash of it.
    pub fn configured(secret: &str) -> SigningKey {
        let digest = Sha256::digest(secret.as_bytes());
        let kid: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        SigningKey {
            kid: format!("c{kid}"),
            secret: secret.as_bytes().to_vec(),
            verifies_until: None,
        }
    }

    /// A stored key of `generation`.
    pub fn stored(generation: i64, secret: &str, verifies_until: Option<i64>) -> SigningKey {
        SigningKey {
            kid: format!("s{generation}"),
            secret: secret.as_bytes().to_vec(),
            verifies_until,
        }
    }

    fn mac(&self, signed: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(signed.as_bytes());
        mac
    }
}

/// The keys of a login element: the first signs, all verify.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<SigningKey>,
}

/// Why a token did not verify (before store checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFault {
    /// Not a token of ours, altered, or signed by an unknown or retired key.
    Invalid,
    /// Signed by a key this replica does not know yet (maybe a rotation by
    /// another replica): worth reloading the keys once.
    UnknownKey,
    /// Past its expiry.
    Expired,
}

impl Keyring {
    /// A keyring whose first key signs. Empty keyrings are not allowed.
    pub fn new(keys: Vec<SigningKey>) -> Keyring {
        assert!(!keys.is_empty(), "a keyring needs a signing key");
        Keyring { keys }
    }

    /// The signing key's id.
    pub fn current_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// Signs claims into a token.
    pub fn sign(&self, claims: &Claims) -> String {
        let key = &self.keys[0];
        let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let signed = format!("jit1.{}.{payload}", key.kid);
        let sig = B64.encode(key.mac(&signed).finalize().into_bytes());
        format!("{signed}.{sig}")
    }

    /// Checks a token's form, key, signature and expiry at `now`.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenFault> {
        let mut parts = token.split('.');
        let (Some("jit1"), Some(kid), Some(payload), Some(sig), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenFault::Invalid);
        };
        let Some(key) = self.keys.iter().find(|k| k.kid == kid) else {
            return Err(TokenFault::UnknownKey);
        };
        if key.verifies_until.is_some_and(|t| t < now) {
            return Err(TokenFault::Invalid);
        }
        let sig = B64.decode(sig).map_err(|_| TokenFault::Invalid)?;
        key.mac(&format!("jit1.{kid}.{payload}"))
            .verify_slice(&sig)
            .map_err(|_| TokenFault::Invalid)?;
        let claims: Claims = B64
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenFault::Invalid)?;
        if claims.exp <= now {
            return Err(TokenFault::Expired);
        }
        Ok(claims)
    }
}

/// A random id (hex of `bytes` random bytes): session ids, states, keys.
pub fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// SHA-256 of text, hex: what the store keeps of a browser cookie or a used code.
pub fn digest_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The login element a token names, read WITHOUT checking it: only to pick
/// the element that then verifies it.
pub fn peek_login(token: &str) -> Option<String> {
    let payload = token.split('.').nth(2)?;
    let claims: serde_json::Value = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
    claims.get("login")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sid: "s".into(),
            login: "auths.L".into(),
            corp: "corps.C".into(),
            member: "alice".into(),
            user: 7,
            iat: 0,
            exp,
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let ring = Keyring::new(vec![SigningKey::stored(1, "k".repeat(40).as_str(), None)]);
        let token = ring.sign(&claims(1_000));
        assert_eq!(ring.verify(&token, 999), Ok(claims(1_000)));
        assert_eq!(ring.verify(&token, 1_000), Err(TokenFault::Expired));
    }

    #[test]
    fn an_altered_token_or_another_key_is_invalid() {
        let ring = Keyring::new(vec![SigningKey::stored(1, "first-key-first-key", None)]);
        let token = ring.sign(&claims(1_000));
        let mut forged = claims(1_000);
        forged.user = 8;
        let other = Keyring::new(vec![SigningKey::stored(1, "other-key-other-key", None)]);
        let forged = other.sign(&forged);
        assert_eq!(ring.verify(&forged, 0), Err(TokenFault::Invalid));
        let (head, _) = token.rsplit_once('.').unwrap();
        assert_eq!(
            ring.verify(&format!("{head}.AAAA"), 0),
            Err(TokenFault::Invalid)
        );
        assert_eq!(ring.verify("garbage", 0), Err(TokenFault::Invalid));
    }

    #[test]
    fn rotation_keeps_older_tokens_valid_until_their_key_retires() {
        let old = SigningKey::stored(1, "old-key-old-key-old", Some(5_000));
        let old_ring = Keyring::new(vec![old.clone()]);
        let token = old_ring.sign(&claims(10_000));
        let rotated = Keyring::new(vec![SigningKey::stored(2, "new-key-new-key", None), old]);
        assert!(rotated.verify(&token, 4_000).is_ok());
        assert_eq!(rotated.verify(&token, 6_000), Err(TokenFault::Invalid));
        let fresh = rotated.sign(&claims(10_000));
        assert!(fresh.starts_with("jit1.s2."));
        assert_eq!(old_ring.verify(&fresh, 0), Err(TokenFault::UnknownKey));
    }

    #[test]
    fn debug_never_shows_a_key() {
        let k = SigningKey::configured("very-secret-session-key-0123456789");
        assert!(!format!("{k:?}{:?}", Keyring::new(vec![k.clone()])).contains("very-secret"));
        assert!(k.kid.starts_with('c') && !k.kid.contains("very"));
    }
}
