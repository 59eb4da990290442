//! What `jit check` (and every load) says of a task's config beyond its
//! schema: a schedule that does not parse, and a call whose target is not
//! in the app or does not take it. Without this, such a task loads cleanly
//! and fails at every firing instead.

use crate::spec::{SpecError, TaskSpec};
use jit_core::{closest, App, DiagCode, Diagnostic, ElementDefine, ElementKind};
use serde_json::Value;

/// The JSON pointer, inside a task config, of the value a [`SpecError`]
/// is about.
fn pointer_of(e: &SpecError) -> &'static str {
    match e {
        SpecError::Shape(_) => "",
        SpecError::Cron { .. } => "/timerCfg/cron",
        SpecError::TimeZone(_) => "/timerCfg/timeZone",
        SpecError::Duration { field, .. } if *field == "lease" => "/lease",
        SpecError::Duration { .. } => "/timerCfg/repeat",
    }
}

/// The problems of one task instance (`config` already passed its schema).
pub(crate) fn check_task(app: &App, task: &ElementDefine, config: &Value) -> Vec<Diagnostic> {
    let file = task.config_file.as_ref().unwrap_or(&task.origin.file);
    let spec = match TaskSpec::from_config(config) {
        Ok(spec) => spec,
        Err(e) => {
            return vec![Diagnostic::error(
                DiagCode::InvalidConfig,
                file,
                pointer_of(&e),
                e.to_string(),
            )]
        }
    };
    let call = &spec.call;
    let target_error = |pointer: &str, message: String| {
        vec![Diagnostic::error(
            DiagCode::CallTarget,
            file,
            pointer,
            format!("task config: every firing would fail: {message}"),
        )]
    };
    let instances = || {
        app.elements()
            .values()
            .filter(|e| e.kind == ElementKind::Instance)
            .map(|e| e.full_name.as_str())
    };
    let Some(target) = app.get_element_define(&call.element) else {
        let near = closest(&call.element, instances());
        let hint = if near.is_empty() {
            String::new()
        } else {
            format!("; did you mean {}?", near.join(", "))
        };
        return target_error(
            "/call/element",
            format!(
                "call.element `{}` names no element of this app{hint}",
                call.element
            ),
        );
    };
    if target.kind != ElementKind::Instance {
        let of_it: Vec<&str> = app
            .elements()
            .values()
            .filter(|e| {
                e.kind == ElementKind::Instance
                    && e.type_name.as_deref() == Some(target.full_name.as_str())
            })
            .map(|e| e.full_name.as_str())
            .take(3)
            .collect();
        let hint = if of_it.is_empty() {
            String::new()
        } else {
            format!(" (this app has {})", of_it.join(", "))
        };
        return target_error(
            "/call/element",
            format!(
                "call.element `{}` is a {}, not an instance: a task calls an instance{hint}",
                call.element,
                target.kind.as_str()
            ),
        );
    }
    // A target that did not load has its own diagnostic; its methods are
    // still its declarations, so the call is checked against them.
    let functions = app.element_functions(&call.element).unwrap_or_default();
    match jit_core::check_call(&call.element, functions, &call.method, call.args.clone()) {
        Ok(_) => Vec::new(),
        Err(e @ jit_core::CallError::UnknownMethod { .. }) => {
            target_error("/call/method", format!("call.method: {e}"))
        }
        Err(e) => target_error("/call/args", format!("call.args: {e}")),
    }
}
