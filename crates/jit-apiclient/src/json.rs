//! Lenient readers for platform JSON.
//!
//! The platforms' documents quote numbers and booleans as strings while live
//! answers use JSON numbers and booleans, and optional fields are often
//! absent rather than empty. These readers accept both spellings and return
//! `None` for absent or null values, never an error.

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
