//! What `jit check` (and every load) says of a task's config beyond its
//! schema: a schedule that does not parse, and a call whose target is not
//! in the app or does not take it. Without this, such a task loads cleanly
//! and fails at every firing instead.

use crate::spec::TaskSpec;
use jit_core::{closest, App, DiagCode, Diagnostic, ElementDefine, ElementKind};
use serde_json::Value;

/// The problems of one task instance (`config` already passed its schema).
pub(crate) fn check_task(app: &App, task: &ElementDefine, config: &Value) -> Vec<Diagnostic> {
    let file = task.config_file.as_ref().unwrap_or(&task.origin.file);
    let spec = match TaskSpec::from_config(config) {
        Ok(spec) => spec,
        Err(e) => {
            return vec![Diagnostic::error(
                DiagCode::InvalidConfig,
                file,
                e.pointer(),
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
    // `names` as a hint: `before`, the names, `after`; nothing if none.
    let hint = |names: Vec<String>, before: &str, after: &str| {
        if names.is_empty() {
            String::new()
        } else {
            format!("{before}{}{after}", names.join(", "))
        }
    };
    let Some(target) = app.get_element_define(&call.element) else {
        let hint = hint(closest(&call.element, instances()), "; did you mean ", "?");
        return target_error(
            "/call/element",
            format!(
                "call.element `{}` names no element of this app{hint}",
                call.element
            ),
        );
    };
    if target.kind != ElementKind::Instance {
        let of_it = app
            .elements()
            .values()
            .filter(|e| e.is_kind_of(ElementKind::Instance, &target.full_name))
            .map(|e| e.full_name.clone())
            .take(3)
            .collect();
        let hint = hint(of_it, " (this app has ", ")");
        return target_error(
            "/call/element",
            format!(
                "call.element `{}` is a {}, not an instance: a task calls an instance{hint}",
                call.element,
                target.kind.as_str()
            ),
        );
    }
    // A target whose chain is broken (an unknown type, a cycle) has its own
    // diagnostic and no knowable methods: nothing more to say of the call.
    if app
        .element_info(&call.element)
        .is_some_and(|i| i.meta.is_none())
    {
        return Vec::new();
    }
    // A target that did not load for another reason (no implementation
    // without its plugin) has its own diagnostic too, but its methods are
    // its declarations, so the call is checked against them.
    let functions = app.element_functions(&call.element).unwrap_or_default();
    match jit_core::check_call(&call.element, functions, &call.method, call.args.clone()) {
        Ok(_) => Vec::new(),
        Err(e @ jit_core::CallError::UnknownMethod { .. }) => {
            target_error("/call/method", format!("call.method: {e}"))
        }
        Err(e) => target_error("/call/args", format!("call.args: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use jit_core::{App, DiagCode, LoadOptions, TypeRegistry};
    use serde_json::{json, Value};

    /// A task element `tasks.<name>`: its `e.json` and its config.
    fn task(name: &str, config: Value) -> [(String, Value); 2] {
        let e = json!({"title": name, "type": "tasks.NormalType"});
        [
            (format!("tasks/{name}/e.json"), e),
            (format!("tasks/{name}/{name}.json"), config),
        ]
    }

    fn load(files: impl IntoIterator<Item = (String, Value)>) -> App {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.json"), r#"{"appId": "t.check"}"#).unwrap();
        for (path, value) in files {
            let file = dir.path().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, value.to_string()).unwrap();
        }
        let mut registry = TypeRegistry::new();
        crate::register_builtins(&mut registry);
        let options = LoadOptions {
            registry,
            ..LoadOptions::default()
        };
        App::load(dir.path(), options).unwrap()
    }

    #[test]
    fn a_call_to_an_element_whose_type_is_unknown_is_reported_once_at_that_element() {
        let broken = (
            "corps/Broken/e.json".to_string(),
            json!({"title": "B", "type": "corps.NoSuchType"}),
        );
        let nightly = task(
            "Nightly",
            json!({"timerCfg": {"cron": "0 2 * * *"},
                   "call": {"element": "corps.Broken", "method": "syncCorp"}}),
        );
        let app = load(nightly.into_iter().chain([broken]));
        let codes: Vec<DiagCode> = app.diagnostics().iter().map(|d| d.code).collect();
        assert_eq!(
            codes,
            vec![DiagCode::UnknownType],
            "{:?}",
            app.diagnostics()
        );
    }

    #[test]
    fn a_task_calling_another_tasks_declared_method_loads_cleanly() {
        let a = task(
            "A",
            json!({"timerCfg": {"repeat": "1h"},
                   "call": {"element": "tasks.B", "method": "getTaskInfo", "args": {"count": 2}}}),
        );
        let b = task(
            "B",
            json!({"timerCfg": {"cron": "0 2 * * *", "timeZone": "Asia/Shanghai"},
                   "call": {"element": "tasks.A", "method": "getTaskInfo"}}),
        );
        let app = load(a.into_iter().chain(b));
        assert!(app.diagnostics().is_empty(), "{:?}", app.diagnostics());
    }
}
