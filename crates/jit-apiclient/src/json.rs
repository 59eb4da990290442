//! Lenient readers for platform JSON.
//!
//! The platforms' documents quote numbers and booleans as strings while live
//! answers use JSON numbers and booleans, and optional fields are often
//! absent rather than empty. These readers accept both spellings and return
//! `None` for absent or null values, never an error.
//!
//! Lenient is not blind: a record whose id cannot be read, or a list that
//! is not a list, is garbage, not an absent field. The `check_*` functions
//! and [`records`] say so with the JSON pointer, so a client reports a
//! malformed answer instead of reading garbage as a smaller org.

use serde_json::Value;

/// The first of `keys` present (and not null) in `v`, so camelCase and
/// snake_case spellings can both be read.
pub fn field<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|k| v.get(*k).filter(|x| !x.is_null()))
}

/// An integer from a number or a numeric string.
pub fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// A string; numbers are rendered (ids sometimes arrive as numbers).
pub fn string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A boolean from `true`/`false`, `1`/`0` or their string forms.
pub fn boolean(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => match s.trim() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The elements of an array (empty when absent or not an array).
pub fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Integers of an array, skipping unreadable elements.
pub fn ints(v: Option<&Value>) -> Vec<i64> {
    array(v).iter().filter_map(|x| int(Some(x))).collect()
}

/// Strings of an array, skipping unreadable elements.
pub fn strings(v: Option<&Value>) -> Vec<String> {
    array(v).iter().filter_map(|x| string(Some(x))).collect()
}

/// The largest id accepted (the strict checks below): JSON's safe integer range; anything beyond is
/// no id a platform hands out (and 2^63 would overflow the store's column).
pub const MAX_ID: i64 = (1 << 53) - 1;

/// Shows an upstream value in an error: short, credentials removed.
pub fn shown(v: Option<&Value>) -> String {
    match v {
        None => "missing".into(),
        Some(v) => {
            let text = crate::redact(&v.to_string());
            let short: String = text.chars().take(40).collect();
            if short.len() < text.len() {
                format!("{short}…")
            } else {
                short
            }
        }
    }
}

/// The records of a list answer: `field` must be a JSON array (an absent or
/// mistyped list is a malformed answer, never an empty org).
pub fn records<'a>(v: &'a Value, field: &str) -> Result<&'a [Value], String> {
    match v.get(field) {
        Some(Value::Array(items)) => Ok(items),
        other => Err(format!("/{field} is {}, not a list", shown(other))),
    }
}

/// A positive id (number or numeric string) no larger than 2^53 - 1.
pub fn check_id(v: &Value, key: &str, pointer: &str, required: bool) -> Result<(), String> {
    match v.get(key) {
        None | Some(Value::Null) if !required => Ok(()),
        x => match int(x).filter(|_| !matches!(x, Some(Value::Bool(_)))) {
            Some(n)
                if (1..=MAX_ID).contains(&n)
                    && !matches!(x, Some(Value::Number(n)) if n.is_f64()) =>
            {
                Ok(())
            }
            _ => Err(format!("{pointer}/{key} is {}, not an id", shown(x))),
        },
    }
}

/// A list of ids, when present.
pub fn check_ids(v: &Value, key: &str, pointer: &str) -> Result<(), String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                check_id(
                    &serde_json::json!({ "id": item }),
                    "id",
                    &format!("{pointer}/{key}/{i}"),
                    true,
                )
                .map_err(|e| e.replace("/id is", " is"))?;
            }
            Ok(())
        }
        other => Err(format!(
            "{pointer}/{key} is {}, not a list of ids",
            shown(other)
        )),
    }
}

/// A string field (a number is read as its text), when present or required.
pub fn check_text(v: &Value, key: &str, pointer: &str, required: bool) -> Result<(), String> {
    match v.get(key) {
        None | Some(Value::Null) if !required => Ok(()),
        Some(Value::String(s)) if !s.is_empty() || !required => Ok(()),
        Some(Value::Number(_)) => Ok(()),
        other => Err(format!("{pointer}/{key} is {}, not a text", shown(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_and_booleans_may_be_quoted() {
        let v = json!({"a": "12", "b": 12, "c": "true", "d": 1, "e": "x"});
        assert_eq!(int(v.get("a")), Some(12));
        assert_eq!(int(v.get("b")), Some(12));
        assert_eq!(boolean(v.get("c")), Some(true));
        assert_eq!(boolean(v.get("d")), Some(true));
        assert_eq!(int(v.get("e")), None);
        assert_eq!(int(v.get("missing")), None);
    }

    #[test]
    fn user_ids_keep_leading_zeros() {
        let v = json!({"userid": "01543620621234"});
        assert_eq!(string(v.get("userid")).as_deref(), Some("01543620621234"));
    }

    #[test]
    fn field_reads_either_spelling() {
        let v = json!({"hasMore": true});
        assert_eq!(boolean(field(&v, &["has_more", "hasMore"])), Some(true));
        let v = json!({"has_more": null, "hasMore": false});
        assert_eq!(boolean(field(&v, &["has_more", "hasMore"])), Some(false));
    }
}
