//! The one function that removes secrets from text quoted from outside: a
//! platform's answer, an error page, an error chain that may hold a URL.
//!
//! What counts as a secret is decided by key name, with the same rule as
//! config masking ([`crate::is_secret_key`]), so a secret is hidden whether it
//! travels as a query or form parameter (`access_token=…`), a JSON member
//! (`"accessToken": "…"`, also inside an escaped JSON string), an HTTP header
//! line (`x-acs-dingtalk-access-token: …`) or a bearer credential.

use crate::is_secret_key;

/// What replaces a secret value.
const MASK: &str = "***";

/// Whether `b` can be part of a key name.
fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Whether a query/form key names a credential: a secret key, or the OAuth
/// `code` a login hands over (single use, but a credential while valid).
fn is_secret_param(key: &str) -> bool {
    is_secret_key(key) || key.eq_ignore_ascii_case("code")
}

/// Removes credentials from text quoted from outside (an answer's body, an
/// error page, an error chain holding a URL): the value of every key that
/// names a secret ([`crate::is_secret_key`], e.g. `access_token`,
/// `accessToken`, `corpsecret`, `appSecret`, `encodingAesKey`) becomes
/// `***`, in query and form strings, JSON members (plain or escaped inside a
/// JSON string), header lines and `Bearer` credentials. A value cut off by
/// truncation is removed up to the end of the text.
///
/// ```
/// use jit_core::redact;
/// assert_eq!(
///     redact("GET /cgi-bin/user/list?access_token=abc&department_id=2"),
///     "GET /cgi-bin/user/list?access_token=***&department_id=2"
/// );
/// assert_eq!(redact(r#"{"errcode":0,"access_token":"abc123"#), r#"{"errcode":0,"access_token":"***"#);
/// assert_eq!(redact(r#"{"accessToken": "abc", "expireIn": 7200}"#), r#"{"accessToken": "***", "expireIn": 7200}"#);
/// ```
pub fn redact(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0; // text[copied..i] is still to be copied verbatim
    let mut i = 0;
    while i < bytes.len() {
        // A JSON member: "key" or \"key\" (JSON inside a JSON string).
        let quote: Option<&[u8]> = if bytes[i..].starts_with(b"\\\"") {
            Some(b"\\\"")
        } else if bytes[i] == b'"' {
            Some(b"\"")
        } else {
            None
        };
        if let Some(q) = quote {
            let key_start = i + q.len();
            let key_end = key_start
                + bytes[key_start..]
                    .iter()
                    .take_while(|b| is_key_byte(**b))
                    .count();
            if key_end > key_start && bytes[key_end..].starts_with(q) {
                let key = &text[key_start..key_end];
                let mut j = key_end + q.len();
                j += count_spaces(&bytes[j..]);
                if is_secret_key(key) && bytes.get(j) == Some(&b':') {
                    j += 1;
                    j += count_spaces(&bytes[j..]);
                    out.push_str(&text[copied..j]);
                    let (masked, end) = json_value(text, j, q);
                    out.push_str(&masked);
                    i = end;
                    copied = end;
                    continue;
                }
                // Not a secret: step over the key so its closing quote is
                // not read as the opening of another.
                i = key_end + q.len();
                continue;
            }
            i += q.len();
            continue;
        }
        // A bare key at a word boundary: key=value, key: value, Bearer value.
        let at_boundary = i == 0 || !is_key_byte(bytes[i - 1]);
        if at_boundary && is_key_byte(bytes[i]) {
            let key_end = i + bytes[i..].iter().take_while(|b| is_key_byte(**b)).count();
            let key = &text[i..key_end];
            let value_start = match bytes.get(key_end) {
                Some(b'=') if is_secret_param(key) => Some(key_end + 1),
                Some(b':') if is_secret_key(key) => {
                    Some(key_end + 1 + count_spaces(&bytes[key_end + 1..]))
                }
                Some(b' ') if key.eq_ignore_ascii_case("bearer") => {
                    Some(key_end + count_spaces(&bytes[key_end..]))
                }
                _ => None,
            };
            if let Some(start) = value_start {
                let len = bytes[start..]
                    .iter()
                    .take_while(|b| !b" \t\r\n&\"'#),;<>}]\\".contains(b))
                    .count();
                out.push_str(&text[copied..start]);
                out.push_str(MASK);
                i = start + len;
                copied = i;
                continue;
            }
            i = key_end;
            continue;
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

fn count_spaces(b: &[u8]) -> usize {
    b.iter().take_while(|b| b.is_ascii_whitespace()).count()
}

/// The masked form of the JSON value starting at `start` (a string quoted
/// with `q`, or a bare number/literal) and where it ends.
fn json_value(text: &str, start: usize, q: &[u8]) -> (String, usize) {
    let bytes = text.as_bytes();
    if bytes[start..].starts_with(q) {
        let mut j = start + q.len();
        while j < bytes.len() {
            if bytes[j..].starts_with(q) {
                let end = j + q.len();
                let q = String::from_utf8_lossy(q);
                return (format!("{q}{MASK}{q}"), end);
            }
            // An escape inside a plain JSON string: skip the escaped byte.
            if q == b"\"" && bytes[j] == b'\\' {
                j += 1;
            }
            j += 1;
        }
        // Cut off before the closing quote: everything after is the secret.
        return (format!("{}{MASK}", String::from_utf8_lossy(q)), bytes.len());
    }
    let len = bytes[start..]
        .iter()
        .take_while(|b| !b" \t\r\n,}]\\\"".contains(b))
        .count();
    (MASK.to_string(), start + len)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn query_and_form_credentials_are_hidden() {
        assert_eq!(
            redact("url https://h/gettoken?corpid=ww1&corpsecret=S3CRET&x=1 failed"),
            "url https://h/gettoken?corpid=ww1&corpsecret=***&x=1 failed"
        );
        assert!(!redact("/gettoken?appkey=k&appsecret=zzz").contains("zzz"));
        let s = redact("error sending request for url (http://h/x?access_token=TOKEN)");
        assert!(!s.contains("TOKEN"), "{s}");
        assert_eq!(redact("/sns?code=abc&state=1"), "/sns?code=***&state=1");
    }

    #[test]
    fn json_members_are_hidden_by_key_name_in_any_spelling() {
        assert_eq!(
            redact(r#"{"accessToken":"T0K","expireIn":7200}"#),
            r#"{"accessToken":"***","expireIn":7200}"#
        );
        assert_eq!(
            redact(r#"{"access_token" : "a\"b", "x": 1}"#),
            r#"{"access_token" : "***", "x": 1}"#
        );
        assert_eq!(
            redact(r#"{"secret": 12345, "a": 1}"#),
            r#"{"secret": ***, "a": 1}"#
        );
        assert_eq!(
            redact(r#"msg "{\"appSecret\":\"XYZ\",\"k\":1}""#),
            r#"msg "{\"appSecret\":\"***\",\"k\":1}""#
        );
    }

    #[test]
    fn a_value_cut_off_by_truncation_is_hidden_to_the_end() {
        assert_eq!(
            redact(r#"{"errcode":0,"access_token":"abcdef"#),
            r#"{"errcode":0,"access_token":"***"#
        );
        assert_eq!(redact("x?access_token=abc"), "x?access_token=***");
    }

    #[test]
    fn header_lines_and_bearer_credentials_are_hidden() {
        assert_eq!(
            redact("x-acs-dingtalk-access-token: T0K\nok"),
            "x-acs-dingtalk-access-token: ***\nok"
        );
        assert_eq!(
            redact("Authorization: Bearer abc.def"),
            "Authorization: Bearer ***"
        );
    }

    #[test]
    fn unrelated_text_is_kept_intact() {
        for s in [
            "department_id=2&cursor=abc",
            "部门 2 失败",
            r#"{"errcode":60011,"errmsg":"no privilege","tokenEndpoint":"x"}"#,
            r#"{"code":"InvalidAuthentication","message":"token expired"}"#,
            "errcode=0 encode=1 barcode=3",
        ] {
            assert_eq!(redact(s), s);
        }
    }
}
