//! Turning JSON Schema validation errors into messages a person can act on.
//!
//! Most errors are reported as the validator words them. A failed `oneOf` or
//! `anyOf` is not: the validator's own message ("… is not valid under any of
//! the schemas listed in the 'oneOf' keyword") names neither what is wrong
//! nor where, and quotes the whole object. Instead we look at the errors of
//! each branch, pick the branch the document was evidently written for and
//! report its errors, each at its own JSON pointer; when no branch stands out
//! we list every branch's errors in one message.

use jsonschema::error::ValidationErrorKind;
use jsonschema::ValidationError;
use serde_json::Value;
use std::cmp::Reverse;

/// One problem found in a document: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// JSON pointer into the document (`""` = the whole document).
    pub pointer: String,
    /// What is wrong, with secret values masked.
    pub message: String,
    /// The property this problem says is missing, if that is what it says
    /// (kept apart so a listing can say "missing `a`, `b`" once).
    missing: Option<String>,
}

/// Explains one validation error as one or more problems. `schema` is the
/// schema document the validator was compiled from.
pub(crate) fn explain(err: &ValidationError<'_>, schema: &Value) -> Vec<Problem> {
    let mut out = Vec::new();
    explain_into(err, schema, &mut out);
    out
}

fn explain_into(err: &ValidationError<'_>, schema: &Value, out: &mut Vec<Problem>) {
    let pointer = err.instance_path().to_string();
    match err.kind() {
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            explain_alternatives(err, context, schema, out);
        }
        ValidationErrorKind::OneOfMultipleValid { context } => {
            // The branches that passed have no errors.
            let fitting: Vec<String> = context
                .iter()
                .enumerate()
                .filter(|(_, errors)| errors.is_empty())
                .map(|(i, _)| branch_label(i))
                .collect();
            out.push(Problem {
                pointer,
                message: format!(
                    "fits more than one of the allowed forms ({}) but must fit exactly one",
                    fitting.join(", ")
                ),
                missing: None,
            });
        }
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_string);
            out.push(Problem {
                pointer,
                message: format!("missing required property `{name}`"),
                missing: Some(name),
            });
        }
        ValidationErrorKind::Not { schema: forbidden } => out.push(Problem {
            pointer,
            // The validator's wording quotes the whole instance, secrets and all.
            message: describe_not(forbidden),
            missing: None,
        }),
        _ => out.push(Problem {
            message: without_secrets(&err.to_string(), err.instance(), &pointer),
            pointer,
            missing: None,
        }),
    }
}

/// Reports a failed `oneOf`/`anyOf`: the errors of the closest branch, or,
/// when several are equally close, all of them in one listing.
fn explain_alternatives(
    err: &ValidationError<'_>,
    context: &[Vec<ValidationError<'static>>],
    schema: &Value,
    out: &mut Vec<Problem>,
) {
    let pointer = err.instance_path().to_string();
    // `schema_path` ends in the `oneOf`/`anyOf` keyword; its array holds the branches.
    let branches = schema
        .pointer(err.schema_path().as_str())
        .and_then(Value::as_array);
    let ranks: Vec<Rank> = context
        .iter()
        .enumerate()
        .map(|(i, errors)| {
            rank(
                errors,
                branches.and_then(|b| b.get(i)),
                err.instance(),
                &pointer,
            )
        })
        .collect();
    let Some(best) = ranks.iter().min() else {
        return out.push(Problem {
            message: without_secrets(&err.to_string(), err.instance(), &pointer),
            pointer,
            missing: None,
        });
    };
    let closest: Vec<usize> = (0..context.len()).filter(|&i| ranks[i] == *best).collect();
    if let [only] = closest[..] {
        for e in &context[only] {
            explain_into(e, schema, out);
        }
        return;
    }
    let listing: Vec<String> = closest
        .iter()
        .map(|&i| {
            let problems: Vec<Problem> =
                context[i].iter().flat_map(|e| explain(e, schema)).collect();
            format!("{} {}", branch_label(i), summarize(&problems, &pointer))
        })
        .collect();
    out.push(Problem {
        pointer,
        message: format!("fits none of the allowed forms: {}", listing.join("; ")),
        missing: None,
    });
}

/// How far a document is from one branch; smaller is closer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    /// The value is not even of the branch's type (an object given where the
    /// branch wants a string): the document was not written for it.
    wrong_type: bool,
    /// A `const`/`enum` directly below mismatched: discriminator keys such as
    /// `"kind": "a"` say which branch is meant.
    wrong_discriminator: usize,
    /// How many of the keys this branch requires the document has: the keys
    /// present say which form the author chose.
    keys_present: Reverse<usize>,
}

fn rank(
    errors: &[ValidationError<'static>],
    branch: Option<&Value>,
    instance: &Value,
    pointer: &str,
) -> Rank {
    let wrong_type = errors.iter().any(|e| {
        e.instance_path().as_str() == pointer
            && matches!(e.kind(), ValidationErrorKind::Type { .. })
    });
    let wrong_discriminator = errors
        .iter()
        .filter(|e| {
            is_child(e.instance_path().as_str(), pointer)
                && matches!(
                    e.kind(),
                    ValidationErrorKind::Constant { .. } | ValidationErrorKind::Enum { .. }
                )
        })
        .count();
    let keys_present = branch
        .and_then(|b| b.get("required"))
        .and_then(Value::as_array)
        .map_or(0, |keys| {
            keys.iter()
                .filter_map(Value::as_str)
                .filter(|k| instance.get(k).is_some())
                .count()
        });
    Rank {
        wrong_type,
        wrong_discriminator,
        keys_present: Reverse(keys_present),
    }
}

/// Whether `pointer` is exactly one step below `parent`.
fn is_child(pointer: &str, parent: &str) -> bool {
    pointer
        .strip_prefix(parent)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| !rest.contains('/'))
}

/// `(a)`, `(b)`, … for the branches in the order the schema lists them.
fn branch_label(i: usize) -> String {
    match u8::try_from(i).ok().filter(|i| *i < 26) {
        Some(i) => format!("({})", char::from(b'a' + i)),
        None => format!("({})", i + 1),
    }
}

/// One branch's problems in a few words: missing properties named together,
/// others with their pointer when it is not the alternatives' own.
fn summarize(problems: &[Problem], base: &str) -> String {
    let at = |p: &Problem| {
        if p.pointer == base {
            String::new()
        } else {
            format!("at {}: ", p.pointer)
        }
    };
    let mut parts: Vec<String> = Vec::new();
    let mut missing_at: Vec<(&str, Vec<&str>)> = Vec::new();
    for p in problems {
        match &p.missing {
            Some(name) => match missing_at.iter_mut().find(|(ptr, _)| *ptr == p.pointer) {
                Some((_, names)) => names.push(name),
                None => missing_at.push((&p.pointer, vec![name])),
            },
            None => parts.push(format!("{}{}", at(p), p.message)),
        }
    }
    let missing = missing_at.into_iter().map(|(ptr, names)| {
        let prefix = if ptr == base {
            String::new()
        } else {
            format!("at {ptr}: ")
        };
        let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        let noun = if names.len() == 1 {
            "property"
        } else {
            "properties"
        };
        format!("{prefix}missing required {noun} {}", names.join(", "))
    });
    missing.chain(parts).collect::<Vec<_>>().join(", ")
}

/// Words for a `not` that failed. The usual use is to forbid keys
/// (`"not": {"required": ["a"]}`, or several through `anyOf`), which reads
/// best as "must not have `a`".
fn describe_not(forbidden: &Value) -> String {
    fn required_keys(schema: &Value) -> Option<Vec<&str>> {
        let obj = schema.as_object()?;
        if obj.len() != 1 {
            return None;
        }
        obj.get("required")?
            .as_array()?
            .iter()
            .map(Value::as_str)
            .collect()
    }
    let keys: Option<Vec<&str>> = required_keys(forbidden).or_else(|| {
        let obj = forbidden.as_object()?;
        let alternatives = obj.get("anyOf")?.as_array()?;
        if obj.len() != 1 {
            return None;
        }
        let mut keys = Vec::new();
        for a in alternatives {
            keys.extend(required_keys(a)?);
        }
        Some(keys)
    });
    match keys.as_deref() {
        Some([one]) => format!("must not have property `{one}` in this form"),
        Some(several) if !several.is_empty() => format!(
            "must not have any of the properties {} in this form",
            several
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => format!("must not match the schema {forbidden}"),
    }
}

/// A schema error message quotes the offending value, which may be a secret
/// itself: mask it.
pub(crate) fn without_secrets(message: &str, instance: &Value, pointer: &str) -> String {
    let key = pointer.rsplit('/').next().unwrap_or_default();
    // Masking a one-key object reuses the rule that decides what a secret key is.
    let mut masked = crate::mask_secrets(&serde_json::json!({ key: instance }))[key].clone();
    // Strings in an array have no key to tell whether they are secrets
    // (`["s3cr3t"]` where an object belongs): none of them is quoted.
    if let Value::Array(items) = &masked {
        masked = Value::Array(
            items
                .iter()
                .map(|v| match v {
                    Value::String(_) => Value::String("******".into()),
                    other => other.clone(),
                })
                .collect(),
        );
    }
    let (raw, safe) = (instance.to_string(), masked.to_string());
    // An empty value reveals nothing, and "\"\" is too short" must stay readable.
    if raw == safe || instance.as_str() == Some("") {
        message.to_string()
    } else {
        message.replace(&raw, &safe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The problems `schema` finds in `doc`, as `pointer: message` lines.
    fn problems(schema: Value, doc: Value) -> Vec<String> {
        let validator = jsonschema::validator_for(&schema).unwrap();
        validator
            .iter_errors(&doc)
            .flat_map(|e| explain(&e, &schema))
            .map(|p| format!("{}: {}", p.pointer, p.message))
            .collect()
    }

    #[test]
    fn a_one_of_behind_a_ref_still_picks_the_branch_whose_keys_are_present() {
        let schema = json!({
            "properties": {"db": {"$ref": "#/$defs/db"}},
            "$defs": {"db": {"oneOf": [
                {"required": ["url"]},
                {"required": ["host", "port"], "properties": {"port": {"type": "integer"}}}
            ]}}
        });
        assert_eq!(
            problems(schema, json!({"db": {"host": "h", "port": "5432"}})),
            ["/db/port: \"5432\" is not of type \"integer\""]
        );
    }

    #[test]
    fn an_any_of_is_explained_like_a_one_of() {
        let schema = json!({"anyOf": [{"required": ["a", "b"]}, {"required": ["c"]}]});
        assert_eq!(
            problems(schema, json!({"a": 1})),
            [": missing required property `b`"]
        );
    }

    #[test]
    fn a_branch_of_the_wrong_type_is_never_the_closest() {
        let schema = json!({"oneOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]});
        assert_eq!(
            problems(schema, json!("")),
            [": \"\" is shorter than 1 character"]
        );
    }

    #[test]
    fn equally_close_branches_are_listed_with_the_pointers_of_their_errors() {
        let schema = json!({"oneOf": [
            {"properties": {"a": {"type": "integer"}}},
            {"properties": {"a": {"type": "boolean"}}}
        ]});
        assert_eq!(
            problems(schema, json!({"a": "x"})),
            [": fits none of the allowed forms: \
              (a) at /a: \"x\" is not of type \"integer\"; \
              (b) at /a: \"x\" is not of type \"boolean\""]
        );
    }

    #[test]
    fn a_document_fitting_two_branches_of_a_one_of_is_told_which() {
        let schema =
            json!({"oneOf": [{"required": ["a"]}, {"required": ["b"]}, {"required": ["c"]}]});
        assert_eq!(
            problems(schema, json!({"a": 1, "c": 2})),
            [": fits more than one of the allowed forms ((a), (c)) but must fit exactly one"]
        );
    }

    #[test]
    fn a_discriminator_key_picks_its_branch() {
        let schema = json!({"oneOf": [
            {"properties": {"kind": {"const": "pg"}, "url": {"type": "string"}}},
            {"properties": {"kind": {"const": "file"}, "path": {"type": "string"}}}
        ]});
        assert_eq!(
            problems(schema, json!({"kind": "file", "path": 7})),
            ["/path: 7 is not of type \"string\""]
        );
    }
}
