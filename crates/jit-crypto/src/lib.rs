//! Callback crypto of WeCom (WXBizMsgCrypt) and DingTalk (HTTP push).
//!
//! Both platforms use the same construction (reference A.10 and B.8):
//! `AESKey = Base64_Decode(EncodingAESKey + "=")` (32 bytes), AES-256-CBC with
//! IV = the first 16 key bytes, PKCS#7 padding to a multiple of **32** bytes,
//! plaintext `random(16) + msg_len(4, big-endian) + msg + id`, Base64 outside.
//! The trailing id is the `receiveid` (WeCom: the corpId) or the `ownerKey`
//! (DingTalk console subscriptions: the AppKey). Signatures are
//! `sha1(sorted(token, timestamp, nonce, encrypt).join(""))` in lowercase hex.
//!
//! The simulator uses this crate to push events, and the runtime's callback
//! receiver uses it to read them.
//!
//! ```
//! use jit_crypto::{WecomCrypto, DingTalkCrypto};
//! let key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"; // 43 characters
//! let wecom = WecomCrypto::new("token", key, "ww1234").unwrap();
//! let sealed = wecom.encrypt("<xml>hi</xml>");
//! assert_eq!(wecom.decrypt(&sealed).unwrap(), "<xml>hi</xml>");
//!
//! let ding = DingTalkCrypto::new("token", key, "dingappkey").unwrap();
//! let reply = ding.success_reply("1700000000000", "nonce123");
//! ding.verify_success_reply(&reply).unwrap();
//! ```

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use std::fmt;

type Enc = cbc::Encryptor<aes::Aes256>;
type Dec = cbc::Decryptor<aes::Aes256>;

/// The padding block size both platforms use (32, not AES's 16).
const PAD_BLOCK: usize = 32;

/// Why a callback message could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The EncodingAESKey / aes_key is not 43 characters that decode to 32 bytes.
    #[error(
        "the AES key must be 43 Base64 characters decoding to 32 bytes (got {len} characters)"
    )]
    BadKeyLength {
        /// Length of the key text that was given.
        len: usize,
    },
    /// The signature over (token, timestamp, nonce, encrypt) does not match.
    #[error("signature mismatch: the message was not signed with the configured token")]
    BadSignature,
    /// The ciphertext is not valid Base64.
    #[error("the encrypted text is not valid Base64: {0}")]
    BadBase64(String),
    /// The ciphertext length is not a whole number of AES blocks, or the
    /// decrypted padding bytes are inconsistent (wrong key, corrupted text).
    #[error("bad PKCS#7 padding or block length after decryption (wrong key or corrupted text)")]
    BadPadding,
    /// The decrypted frame is shorter than its own length header says.
    #[error(
        "the decrypted frame is truncated (length header {declared}, {available} bytes available)"
    )]
    BadLength {
        /// Message length written in the frame.
        declared: usize,
        /// Bytes actually available after the header.
        available: usize,
    },
    /// The trailing receiveid / ownerKey is not the expected one.
    #[error("receive id mismatch: expected {expected:?}, found {found:?}")]
    ReceiveIdMismatch {
        /// The id this crypto was created for (corpId, AppKey): not secret.
        expected: String,
        /// The id found at the end of the decrypted frame.
        found: String,
    },
    /// The decrypted message or id is not UTF-8.
    #[error("the decrypted message is not UTF-8")]
    NotUtf8,
    /// An XML envelope lacks a required element.
    #[error("the XML envelope has no <{0}> element")]
    MissingXmlField(String),
    /// A JSON envelope could not be read.
    #[error("bad JSON envelope: {0}")]
    Json(String),
    /// A decrypted reply was not the literal "success" DingTalk expects.
    #[error("the decrypted reply is {0:?}, not \"success\"")]
    NotSuccess(String),
}

/// The shared AES core: a 32-byte key and the id appended to every frame.
#[derive(Clone)]
struct Core {
    token: String,
    key: [u8; 32],
    id: String,
}

impl Core {
    fn new(token: &str, aes_key: &str, id: &str) -> Result<Core, CryptoError> {
        let bad = CryptoError::BadKeyLength { len: aes_key.len() };
        if aes_key.len() != 43 || !aes_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad);
        }
        let raw = B64
            .decode(format!("{aes_key}="))
            .or_else(|_| {
                // The last character may carry non-zero trailing bits; the
                // platforms' decoders (Python b64decode, Java) accept that.
                base64::engine::GeneralPurpose::new(
                    &base64::alphabet::STANDARD,
                    base64::engine::GeneralPurposeConfig::new()
                        .with_decode_allow_trailing_bits(true),
                )
                .decode(format!("{aes_key}="))
            })
            .map_err(|_| bad.clone())?;
        let key: [u8; 32] = raw.try_into().map_err(|_| bad)?;
        Ok(Core {
            token: token.to_string(),
            key,
            id: id.to_string(),
        })
    }

    fn signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        signature(&self.token, timestamp, nonce, encrypt)
    }

    fn encrypt_with_random(&self, msg: &str, random: [u8; 16]) -> String {
        let mut frame = Vec::with_capacity(16 + 4 + msg.len() + self.id.len() + PAD_BLOCK);
        frame.extend_from_slice(&random);
        frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        frame.extend_from_slice(msg.as_bytes());
        frame.extend_from_slice(self.id.as_bytes());
        let pad = PAD_BLOCK - frame.len() % PAD_BLOCK;
        frame.extend(std::iter::repeat_n(pad as u8, pad));
        let len = frame.len();
        let iv: [u8; 16] = self.key[..16].try_into().expect("16 bytes");
        Enc::new(&self.key.into(), &iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut frame, len)
            .expect("frame is block aligned");
        B64.encode(&frame)
    }

    fn encrypt(&self, msg: &str) -> String {
        let mut random = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut random);
        self.encrypt_with_random(msg, random)
    }

    /// Decrypts and returns (message, trailing id) without checking the id.
    fn open(&self, encrypt: &str) -> Result<(String, String), CryptoError> {
        let mut buf = B64
            .decode(encrypt.trim())
            .map_err(|e| CryptoError::BadBase64(e.to_string()))?;
        if buf.is_empty() || buf.len() % 16 != 0 {
            return Err(CryptoError::BadPadding);
        }
        let iv: [u8; 16] = self.key[..16].try_into().expect("16 bytes");
        let plain = Dec::new(&self.key.into(), &iv.into())
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| CryptoError::BadPadding)?;
        let pad = *plain.last().ok_or(CryptoError::BadPadding)? as usize;
        if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
            return Err(CryptoError::BadPadding);
        }
        if !plain[plain.len() - pad..]
            .iter()
            .all(|&b| b as usize == pad)
        {
            return Err(CryptoError::BadPadding);
        }
        let body = &plain[..plain.len() - pad];
        if body.len() < 20 {
            return Err(CryptoError::BadLength {
                declared: 0,
                available: body.len().saturating_sub(20),
            });
        }
        let declared = u32::from_be_bytes(body[16..20].try_into().expect("4 bytes")) as usize;
        let rest = &body[20..];
        if declared > rest.len() {
            return Err(CryptoError::BadLength {
                declared,
                available: rest.len(),
            });
        }
        let msg = std::str::from_utf8(&rest[..declared]).map_err(|_| CryptoError::NotUtf8)?;
        let id = std::str::from_utf8(&rest[declared..]).map_err(|_| CryptoError::NotUtf8)?;
        Ok((msg.to_string(), id.to_string()))
    }

    fn decrypt(&self, encrypt: &str) -> Result<String, CryptoError> {
        let (msg, id) = self.open(encrypt)?;
        if id != self.id {
            return Err(CryptoError::ReceiveIdMismatch {
                expected: self.id.clone(),
                found: id,
            });
        }
        Ok(msg)
    }

    fn check(
        &self,
        sig: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<(), CryptoError> {
        if self.signature(timestamp, nonce, encrypt) != sig.to_ascii_lowercase() {
            return Err(CryptoError::BadSignature);
        }
        Ok(())
    }
}

/// `sha1(sorted([token, timestamp, nonce, encrypt]).join(""))`, lowercase hex:
/// the signature both platforms use.
pub fn signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypt];
    parts.sort_unstable();
    let mut h = Sha1::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A random nonce of ASCII letters and digits.
pub fn random_nonce(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[(rng.next_u32() as usize) % ALPHABET.len()] as char)
        .collect()
}

/// The text of the first `<tag>` element of a flat XML document, with a
/// CDATA wrapper removed and the five predefined entities decoded.
///
/// WeCom envelopes are flat and generated by machines, so a full XML parser
/// is not needed to read them.
pub fn xml_field(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    let inner = xml[start..end].trim();
    if let Some(c) = inner
        .strip_prefix("<![CDATA[")
        .and_then(|s| s.strip_suffix("]]>"))
    {
        return Some(c.to_string());
    }
    Some(
        inner
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// Wraps text in CDATA for an XML element, splitting any `]]>` it contains.
pub fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

/// Implements `Debug` for a sealed message: its timestamp, nonce and the
/// length of the sealed text, never the ciphertext itself, which belongs in no
/// log. The keys are the names each platform gives the values.
macro_rules! debug_sealed {
    ($ty:ident { $timestamp_key:literal: $timestamp:ident, $len_key:literal: $sealed:ident }) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field($timestamp_key, &self.$timestamp)
                    .field("nonce", &self.nonce)
                    .field($len_key, &self.$sealed.len())
                    .finish()
            }
        }
    };
}

/// An encrypted WeCom event ready to POST: the XML body and the query values.
#[derive(Clone, PartialEq, Eq)]
pub struct WecomEnvelope {
    /// `<xml><ToUserName/><AgentID/><Encrypt/></xml>`.
    pub body: String,
    /// The `msg_signature` query parameter.
    pub msg_signature: String,
    /// The `timestamp` query parameter.
    pub timestamp: String,
    /// The `nonce` query parameter.
    pub nonce: String,
}

debug_sealed!(WecomEnvelope { "timestamp": timestamp, "body_len": body });

/// Defines one platform's callback crypto: a type wrapping the shared `Core`
/// (WXBizMsgCrypt framing), its constructor, the accessor of the id frames are
/// sealed for, and the four methods both platforms expose word for word.
/// Only the envelopes differ, so each platform adds those in its own `impl`.
macro_rules! callback_crypto {
    (
        $(#[$type_doc:meta])*
        pub struct $name:ident;
        #[doc = $new_doc:literal]
        new($token:ident, $aes_key:ident, $id:ident);
        #[doc = $id_doc:literal]
        id: $id_fn:ident, named $id_name:literal;
    ) => {
        $(#[$type_doc])*
        #[derive(Clone)]
        pub struct $name {
            core: Core,
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field(stringify!($id_fn), &self.core.id)
                    .finish_non_exhaustive()
            }
        }

        impl $name {
            #[doc = $new_doc]
            pub fn new($token: &str, $aes_key: &str, $id: &str) -> Result<Self, CryptoError> {
                Ok($name {
                    core: Core::new($token, $aes_key, $id)?,
                })
            }

            #[doc = $id_doc]
            pub fn $id_fn(&self) -> &str {
                &self.core.id
            }

            /// Signature (`msg_signature`) over (token, timestamp, nonce, encrypt).
            pub fn signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
                self.core.signature(timestamp, nonce, encrypt)
            }

            /// Encrypts a message with a fresh random prefix; returns Base64.
            pub fn encrypt(&self, msg: &str) -> String {
                self.core.encrypt(msg)
            }

            /// Encrypts with a given 16-byte random prefix (reproducible output).
            pub fn encrypt_with_random(&self, msg: &str, random: [u8; 16]) -> String {
                self.core.encrypt_with_random(msg, random)
            }

            #[doc = concat!("Decrypts Base64 ciphertext and checks the trailing ", $id_name, ".")]
            pub fn decrypt(&self, encrypt: &str) -> Result<String, CryptoError> {
                self.core.decrypt(encrypt)
            }
        }
    };
}

callback_crypto! {
    /// WeCom's WXBizMsgCrypt for enterprise callbacks (receiveid = corpId).
    pub struct WecomCrypto;
    /// Creates the crypto for one callback configuration.
    new(token, encoding_aes_key, corp_id);
    /// The corpId (receiveid) frames are sealed for.
    id: receive_id, named "receiveid";
}

impl WecomCrypto {
    /// URL verification (`GET ?msg_signature&timestamp&nonce&echostr`): checks
    /// the signature over echostr and returns the plaintext to answer with.
    /// The parameters must already be URL-decoded.
    pub fn verify_url(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        echostr: &str,
    ) -> Result<String, CryptoError> {
        self.core.check(msg_signature, timestamp, nonce, echostr)?;
        self.decrypt(echostr)
    }

    /// Seals an event XML the way WeCom POSTs it to a callback URL.
    pub fn seal_event(
        &self,
        plaintext_xml: &str,
        agent_id: &str,
        timestamp: &str,
        nonce: &str,
    ) -> WecomEnvelope {
        let encrypt = self.encrypt(plaintext_xml);
        let msg_signature = self.signature(timestamp, nonce, &encrypt);
        let body = format!(
            "<xml><ToUserName>{}</ToUserName><AgentID>{}</AgentID><Encrypt>{}</Encrypt></xml>",
            cdata(&self.core.id),
            cdata(agent_id),
            cdata(&encrypt)
        );
        WecomEnvelope {
            body,
            msg_signature,
            timestamp: timestamp.to_string(),
            nonce: nonce.to_string(),
        }
    }

    /// Reads a POSTed event: verifies the signature over `<Encrypt>` and
    /// returns the decrypted XML.
    pub fn open_event(
        &self,
        body_xml: &str,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
    ) -> Result<String, CryptoError> {
        let encrypt = xml_field(body_xml, "Encrypt")
            .ok_or_else(|| CryptoError::MissingXmlField("Encrypt".into()))?;
        self.core.check(msg_signature, timestamp, nonce, &encrypt)?;
        self.decrypt(&encrypt)
    }

    /// The encrypted passive reply:
    /// `<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`.
    pub fn seal_reply(&self, reply_xml: &str, timestamp: &str, nonce: &str) -> String {
        let encrypt = self.encrypt(reply_xml);
        let sig = self.signature(timestamp, nonce, &encrypt);
        format!(
            "<xml><Encrypt>{}</Encrypt><MsgSignature>{}</MsgSignature><TimeStamp>{}</TimeStamp><Nonce>{}</Nonce></xml>",
            cdata(&encrypt),
            cdata(&sig),
            timestamp,
            cdata(nonce)
        )
    }

    /// Reads an encrypted passive reply produced by [`WecomCrypto::seal_reply`].
    pub fn open_reply(&self, reply: &str) -> Result<String, CryptoError> {
        let get =
            |t: &str| xml_field(reply, t).ok_or_else(|| CryptoError::MissingXmlField(t.into()));
        let encrypt = get("Encrypt")?;
        self.core.check(
            &get("MsgSignature")?,
            &get("TimeStamp")?,
            &get("Nonce")?,
            &encrypt,
        )?;
        self.decrypt(&encrypt)
    }
}

/// DingTalk's encrypted JSON: the request body field `encrypt` and the reply
/// `{"msg_signature","timeStamp","nonce","encrypt"}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DingTalkEncrypted {
    /// Signature over (token, timeStamp, nonce, encrypt).
    pub msg_signature: String,
    /// Milliseconds since the epoch, as a string.
    #[serde(rename = "timeStamp")]
    pub time_stamp: String,
    /// Random nonce.
    pub nonce: String,
    /// Base64 ciphertext.
    pub encrypt: String,
}

debug_sealed!(DingTalkEncrypted { "timeStamp": time_stamp, "encrypt_len": encrypt });

callback_crypto! {
    /// DingTalk's HTTP-push crypto (ownerKey = the AppKey for console subscriptions).
    pub struct DingTalkCrypto;
    /// Creates the crypto for one app's HTTP push configuration.
    new(token, aes_key, owner_key);
    /// The ownerKey (AppKey, or corpId for legacy registrations).
    id: owner_key, named "ownerKey";
}

impl DingTalkCrypto {
    /// Encrypts and signs a message (an event JSON, or "success").
    pub fn seal(&self, msg: &str, timestamp: &str, nonce: &str) -> DingTalkEncrypted {
        let encrypt = self.encrypt(msg);
        DingTalkEncrypted {
            msg_signature: self.signature(timestamp, nonce, &encrypt),
            time_stamp: timestamp.to_string(),
            nonce: nonce.to_string(),
            encrypt,
        }
    }

    /// The reply every push must get: the encrypted string "success".
    pub fn success_reply(&self, timestamp: &str, nonce: &str) -> DingTalkEncrypted {
        self.seal("success", timestamp, nonce)
    }

    /// Reads a pushed request: `signature`/`timestamp`/`nonce` from the query
    /// (already URL-decoded) and the JSON body `{"encrypt": "..."}`.
    pub fn open_request(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        body_json: &str,
    ) -> Result<String, CryptoError> {
        #[derive(Deserialize)]
        struct Body {
            encrypt: String,
        }
        let body: Body =
            serde_json::from_str(body_json).map_err(|e| CryptoError::Json(e.to_string()))?;
        self.core
            .check(signature, timestamp, nonce, &body.encrypt)?;
        self.decrypt(&body.encrypt)
    }

    /// Opens a sealed message: checks its signature and decrypts it.
    pub fn open(&self, sealed: &DingTalkEncrypted) -> Result<String, CryptoError> {
        self.core.check(
            &sealed.msg_signature,
            &sealed.time_stamp,
            &sealed.nonce,
            &sealed.encrypt,
        )?;
        self.decrypt(&sealed.encrypt)
    }

    /// Checks that a receiver's reply is the signed, encrypted "success".
    pub fn verify_success_reply(&self, reply: &DingTalkEncrypted) -> Result<(), CryptoError> {
        let text = self.open(reply)?;
        if text != "success" {
            return Err(CryptoError::NotSuccess(text));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    #[test]
    fn a_key_that_is_not_43_characters_is_refused() {
        let err = WecomCrypto::new("t", "short", "ww1").unwrap_err();
        assert_eq!(err, CryptoError::BadKeyLength { len: 5 });
    }

    #[test]
    fn frames_are_padded_to_32_byte_blocks() {
        let c = WecomCrypto::new("t", KEY, "ww1").unwrap();
        // 16 + 4 + 9 + 3 = 32 bytes: a full pad block of 32 is appended.
        let raw = B64.decode(c.encrypt("123456789")).unwrap();
        assert_eq!(raw.len(), 64);
    }

    #[test]
    fn a_frame_sealed_for_another_corp_is_rejected() {
        let a = WecomCrypto::new("t", KEY, "wwA").unwrap();
        let b = WecomCrypto::new("t", KEY, "wwB").unwrap();
        let err = b.decrypt(&a.encrypt("x")).unwrap_err();
        assert!(matches!(err, CryptoError::ReceiveIdMismatch { .. }));
    }

    #[test]
    fn a_tampered_signature_is_rejected() {
        let c = WecomCrypto::new("t", KEY, "ww1").unwrap();
        let env = c.seal_event("<xml/>", "1000002", "1700000000", "n1");
        let err = c
            .open_event(&env.body, "0000", &env.timestamp, &env.nonce)
            .unwrap_err();
        assert_eq!(err, CryptoError::BadSignature);
        assert_eq!(
            c.open_event(&env.body, &env.msg_signature, &env.timestamp, &env.nonce)
                .unwrap(),
            "<xml/>"
        );
    }

    #[test]
    fn a_wrong_key_shows_as_bad_padding_or_mismatch() {
        let a = DingTalkCrypto::new("t", KEY, "app").unwrap();
        let b =
            DingTalkCrypto::new("t", "ZZZZefghijklmnopqrstuvwxyz0123456789ABCDEFG", "app").unwrap();
        assert!(b.decrypt(&a.encrypt("hello")).is_err());
    }

    #[test]
    fn debug_output_never_shows_the_key_or_token() {
        let c = DingTalkCrypto::new("secrettoken", KEY, "app").unwrap();
        let s = format!("{c:?}");
        assert!(!s.contains(KEY) && !s.contains("secrettoken"), "{s}");
    }

    #[test]
    fn signature_matches_the_documented_sorted_sha1() {
        // sorted: "1409659813", "1409659813", "nonce", "token" -> joined and hashed.
        let s = signature("token", "1409659813", "nonce", "1409659813");
        let mut h = Sha1::new();
        h.update(b"14096598131409659813noncetoken");
        let want: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(s, want);
    }

    #[test]
    fn xml_field_reads_cdata_and_plain_text() {
        let x = "<xml><A><![CDATA[a<b]]></A><B>1 &amp; 2</B></xml>";
        assert_eq!(xml_field(x, "A").unwrap(), "a<b");
        assert_eq!(xml_field(x, "B").unwrap(), "1 & 2");
        assert!(xml_field(x, "C").is_none());
    }
}
