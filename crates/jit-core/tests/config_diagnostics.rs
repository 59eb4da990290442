//! What `App::load` says about a config file that its schema rejects through
//! `oneOf`: the missing or wrong property, its JSON pointer and the file —
//! never "not valid under any of the schemas listed in the 'oneOf' keyword".

use jit_core::{
    App, DiagCode, Diagnostic, Element, InstanceContext, LoadOptions, TypeImpl, TypeRegistry,
};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

/// Stands in for a built-in org Type: the core only needs a registered
/// implementation to check configs against the framework's schemas.
struct Stub(&'static str);

impl TypeImpl for Stub {
    fn type_name(&self) -> &str {
        self.0
    }
    fn instantiate(&self, _ctx: InstanceContext) -> Result<Arc<dyn Element>, String> {
        Err("not built in these tests".into())
    }
}

/// An app folder in a temp dir, written file by file.
struct Fixture(tempfile::TempDir);

impl Fixture {
    fn new() -> Fixture {
        Fixture(tempfile::tempdir().expect("temp dir"))
    }

    fn json(&self, rel: &str, v: Value) -> &Fixture {
        let p = self.0.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
        self
    }

    /// An instance `corps.<name>` of `type_name` with that config file.
    fn org(&self, name: &str, type_name: &str, config: Value) -> &Fixture {
        self.json(
            &format!("corps/{name}/e.json"),
            json!({"title": name, "type": type_name}),
        )
        .json(&format!("corps/{name}/{name}.json"), config)
    }

    /// The config diagnostics of loading this app.
    fn config_errors(&self) -> Vec<Diagnostic> {
        let mut registry = TypeRegistry::new();
        registry.register(Arc::new(Stub("corps.QywxInnerType")));
        registry.register(Arc::new(Stub("corps.DDInnerType")));
        registry.register(Arc::new(Stub("shop.ServerType")));
        let app = App::load(
            self.0.path(),
            LoadOptions {
                registry,
                env: Some(Default::default()),
                skip_startup: true,
            },
        )
        .expect("the app loads");
        let errors: Vec<Diagnostic> = app.diagnostics().errors().cloned().collect();
        // Anything else wrong would be a mistake in the fixture.
        assert!(
            errors.iter().all(|d| d.code == DiagCode::InvalidConfig),
            "{}",
            all_messages(&errors)
        );
        errors
    }
}

fn ends_with(d: &Diagnostic, rel: &str) -> bool {
    d.file.ends_with(Path::new(rel))
}

fn all_messages(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("{d}\n")).collect::<String>()
}

#[test]
fn a_wecom_config_without_corp_id_names_corp_id_and_the_file() {
    let f = Fixture::new();
    f.org(
        "Acme",
        "corps.QywxInnerType",
        json!({"agentId": "1000002", "secret": "s3cr3t-value"}),
    );
    let errors = f.config_errors();
    assert_eq!(errors.len(), 1, "{}", all_messages(&errors));
    let d = &errors[0];
    assert!(ends_with(d, "corps/Acme/Acme.json"), "{d}");
    assert_eq!(d.pointer, "", "missing at the top of the file: {d}");
    assert!(
        d.message.contains("missing required property `corpId`"),
        "{d}"
    );
    assert_eq!(d.element.as_deref(), Some("corps.Acme"));
}

#[test]
fn a_dingtalk_config_without_its_app_key_names_app_key() {
    let f = Fixture::new();
    f.org(
        "Nail",
        "corps.DDInnerType",
        json!({"corpId": "ding01", "agentId": "7", "appSecret": "dd-secret"}),
    );
    let errors = f.config_errors();
    assert_eq!(errors.len(), 1, "{}", all_messages(&errors));
    assert!(
        ends_with(&errors[0], "corps/Nail/Nail.json"),
        "{}",
        errors[0]
    );
    assert!(
        errors[0]
            .message
            .contains("missing required property `appKey`"),
        "{}",
        errors[0]
    );
}

#[test]
fn a_type_error_inside_a_one_of_branch_is_reported_at_its_pointer() {
    let f = Fixture::new();
    f.json("shop/Meta/e.json", json!({"title": "Shop"}));
    // A Type whose config is either a port (a number) or a socket path.
    f.json(
        "shop/ServerType/e.json",
        json!({"title": "Server", "kind": "Type", "type": "shop.Meta", "configSchema": {
            "type": "object",
            "oneOf": [
                {"required": ["port"], "properties": {"port": {"type": "integer"}}},
                {"required": ["socket"], "properties": {"socket": {"type": "string"}}}
            ]
        }}),
    )
    .json(
        "shop/Web/e.json",
        json!({"title": "Web", "type": "shop.ServerType"}),
    )
    .json("shop/Web/Web.json", json!({"port": "8080"}));
    let errors = f.config_errors();
    assert_eq!(errors.len(), 1, "{}", all_messages(&errors));
    let d = &errors[0];
    assert!(ends_with(d, "shop/Web/Web.json"), "{d}");
    assert_eq!(d.pointer, "/port", "{d}");
    assert!(d.message.contains("is not of type \"integer\""), "{d}");
}

#[test]
fn a_config_fitting_no_form_lists_what_each_form_lacks() {
    let f = Fixture::new();
    f.org("Acme", "corps.QywxInnerType", json!({}));
    let errors = f.config_errors();
    assert_eq!(errors.len(), 1, "{}", all_messages(&errors));
    assert_eq!(
        errors[0].message,
        "config: fits none of the allowed forms: \
         (a) missing required properties `corpId`, `agentId`, `secret`; \
         (b) missing required property `authConfig`"
    );
}

#[test]
fn a_config_mixing_the_flat_and_nested_forms_names_the_key_that_does_not_belong() {
    let f = Fixture::new();
    f.org(
        "Acme",
        "corps.QywxInnerType",
        json!({"corpId": "ww1", "agentId": "1", "secret": "s3cr3t-value",
               "authConfig": {"corpId": "ww1", "agentId": "1", "secret": "s3cr3t-value"}}),
    );
    let errors = f.config_errors();
    assert_eq!(errors.len(), 1, "{}", all_messages(&errors));
    assert!(
        errors[0]
            .message
            .contains("must not have property `authConfig`"),
        "{}",
        errors[0]
    );
}

#[test]
fn secrets_stay_masked_in_errors_found_inside_a_one_of_branch() {
    let f = Fixture::new();
    // The flat form is chosen (its keys are present) and its errors are the
    // secret's own: the secret must not be quoted.
    f.json("shop/Meta/e.json", json!({"title": "Shop"}));
    f.json(
        "shop/ServerType/e.json",
        json!({"title": "Server", "kind": "Type", "type": "shop.Meta", "configSchema": {
            "oneOf": [
                {"required": ["user", "password"], "properties": {"password": {"minLength": 20}}},
                {"required": ["certificate"]}
            ]
        }}),
    )
    .json(
        "shop/Web/e.json",
        json!({"title": "Web", "type": "shop.ServerType"}),
    )
    .json(
        "shop/Web/Web.json",
        json!({"user": "ann", "password": "hunter2-secret"}),
    );
    let errors = f.config_errors();
    let text = all_messages(&errors);
    assert_eq!(errors.len(), 1, "{text}");
    assert_eq!(errors[0].pointer, "/password", "{text}");
    assert!(!text.contains("hunter2-secret"), "{text}");
    assert!(text.contains("******"), "{text}");
}

#[test]
fn a_misspelt_key_is_named_and_the_secret_beside_it_is_not_quoted() {
    let f = Fixture::new();
    f.org(
        "Acme",
        "corps.QywxInnerType",
        json!({"corpid": "ww1", "agentId": "1", "secret": "s3cr3t-value"}),
    );
    let errors = f.config_errors();
    let text = all_messages(&errors);
    assert!(
        text.contains("missing required property `corpId`"),
        "{text}"
    );
    assert!(text.contains("'corpid'"), "the unexpected key: {text}");
    assert!(!text.contains("s3cr3t-value"), "{text}");
    assert!(!text.contains("not valid under any"), "{text}");
}

/// Every diagnostic of loading the fixture, and the config the instance got.
fn load_all(f: &Fixture, full_name: &str) -> (Vec<Diagnostic>, Option<Value>) {
    let mut registry = TypeRegistry::new();
    registry.register(Arc::new(Stub("corps.QywxInnerType")));
    let app = App::load(
        f.0.path(),
        LoadOptions {
            registry,
            env: Some(Default::default()),
            skip_startup: true,
        },
    )
    .expect("the app loads");
    let config = app.element_config(full_name).cloned();
    (app.diagnostics().iter().cloned().collect(), config)
}

/// A config file elsewhere on the machine, holding something a config
/// must never be read from.
fn outside_config() -> tempfile::TempDir {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("stolen.json"),
        json!({"corpId": "wwOUTSIDE", "agentId": "1", "secret": "OUTSIDE-SECRET"}).to_string(),
    )
    .unwrap();
    outside
}

fn assert_refused_outside(diags: &[Diagnostic], config: Option<Value>, pointer: &str) {
    let d = diags
        .iter()
        .find(|d| d.code == DiagCode::OutsideApp)
        .unwrap_or_else(|| panic!("no outside-app diagnostic: {}", all_messages(diags)));
    assert!(ends_with(d, "corps/Acme/e.json"), "{d}");
    assert_eq!(d.pointer, pointer, "{d}");
    assert!(d.message.contains("outside the app folder"), "{d}");
    assert!(!d.to_string().contains("OUTSIDE-SECRET"), "{d}");
    assert_eq!(config, None, "the outside file must not be read");
}

#[test]
fn a_front_bundle_entry_with_an_absolute_path_is_refused() {
    let outside = outside_config();
    let f = Fixture::new();
    let entry = outside.path().join("stolen.json");
    f.json(
        "corps/Acme/e.json",
        json!({"title": "Acme", "type": "corps.QywxInnerType", "frontBundleEntry": entry}),
    );
    let (diags, config) = load_all(&f, "corps.Acme");
    assert_refused_outside(&diags, config, "/frontBundleEntry");
}

#[test]
fn a_front_bundle_entry_climbing_out_with_dot_dot_is_refused() {
    let outside = outside_config();
    let f = Fixture::new();
    // Enough `..` to reach `/` from any temp dir, then down to the file.
    let entry = format!(
        "{}{}",
        "../".repeat(f.0.path().components().count() + 2),
        outside.path().join("stolen.json").display()
    );
    f.json(
        "corps/Acme/e.json",
        json!({"title": "Acme", "type": "corps.QywxInnerType", "frontBundleEntry": entry}),
    );
    let (diags, config) = load_all(&f, "corps.Acme");
    assert_refused_outside(&diags, config, "/frontBundleEntry");
}

#[cfg(unix)]
#[test]
fn a_config_file_that_is_a_symlink_leading_outside_is_refused() {
    let outside = outside_config();
    let f = Fixture::new();
    f.json(
        "corps/Acme/e.json",
        json!({"title": "Acme", "type": "corps.QywxInnerType"}),
    );
    std::os::unix::fs::symlink(
        outside.path().join("stolen.json"),
        f.0.path().join("corps/Acme/Acme.json"),
    )
    .unwrap();
    let (diags, config) = load_all(&f, "corps.Acme");
    assert_refused_outside(&diags, config, "");
}

#[cfg(unix)]
#[test]
fn a_front_bundle_entry_through_a_symlinked_folder_leading_outside_is_refused() {
    let outside = outside_config();
    let f = Fixture::new();
    f.json(
        "corps/Acme/e.json",
        json!({"title": "Acme", "type": "corps.QywxInnerType", "frontBundleEntry": "conf/stolen.json"}),
    );
    std::os::unix::fs::symlink(outside.path(), f.0.path().join("corps/Acme/conf")).unwrap();
    let (diags, config) = load_all(&f, "corps.Acme");
    assert_refused_outside(&diags, config, "/frontBundleEntry");
}

#[test]
fn a_front_bundle_entry_in_a_subfolder_of_the_app_is_read() {
    let f = Fixture::new();
    f.json(
        "corps/Acme/e.json",
        json!({"title": "Acme", "type": "corps.QywxInnerType", "frontBundleEntry": "./conf/acme.json"}),
    )
    .json(
        "corps/Acme/conf/acme.json",
        json!({"corpId": "wwINSIDE", "agentId": "1", "secret": "s"}),
    );
    let (diags, config) = load_all(&f, "corps.Acme");
    assert!(diags.is_empty(), "{}", all_messages(&diags));
    assert_eq!(config.unwrap()["corpId"], "wwINSIDE");
}

/// Every number a schema accepts, at its JSON pointer inside the schema,
/// that has no upper bound.
fn unbounded_numbers(schema: &Value, pointer: &str, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            let numeric = matches!(
                map.get("type").and_then(Value::as_str),
                Some("number" | "integer")
            );
            let bounded = map.contains_key("maximum") || map.contains_key("exclusiveMaximum");
            if numeric && !bounded {
                out.push(pointer.to_string());
            }
            for (k, v) in map {
                unbounded_numbers(v, &format!("{pointer}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                unbounded_numbers(v, &format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A huge number in a config reaches code such as `Duration::from_secs_f64`,
/// which panics; the schema is where every number gets its ceiling.
#[test]
fn every_number_in_every_shipped_schema_has_an_upper_bound() {
    let mut unbounded = Vec::new();
    for (name, text) in jit_core::embedded::SCHEMA_FILES {
        let schema: Value = serde_json::from_str(text).unwrap();
        let mut found = Vec::new();
        unbounded_numbers(&schema, "", &mut found);
        unbounded.extend(found.into_iter().map(|p| format!("{name}#{p}")));
    }
    assert!(
        unbounded.is_empty(),
        "numbers without a maximum: {unbounded:#?}"
    );
}

#[test]
fn a_huge_request_timeout_is_a_config_error_at_its_pointer() {
    let f = Fixture::new();
    f.org(
        "Acme",
        "corps.QywxInnerType",
        json!({"corpId": "ww1", "agentId": "1", "secret": "s", "sync": {"timeoutSecs": 1e300}}),
    );
    let errors = f.config_errors();
    assert_eq!(errors.len(), 1, "{}", all_messages(&errors));
    assert_eq!(errors[0].pointer, "/sync/timeoutSecs", "{}", errors[0]);
    assert!(ends_with(&errors[0], "corps/Acme/Acme.json"));
}

#[test]
fn a_config_schema_outside_the_element_folder_is_refused() {
    let outside = outside_config();
    for spec in [
        outside.path().join("stolen.json").display().to_string(),
        "../../../../../../../../etc/hostile.json".to_string(),
    ] {
        let f = Fixture::new();
        f.json(
            "corps/AcmeType/e.json",
            json!({"title": "T", "kind": "Type", "type": "corps.QywxInnerType", "configSchema": spec}),
        )
        .json("corps/Acme/e.json", json!({"title": "Acme", "type": "corps.AcmeType"}))
        .json("corps/Acme/Acme.json", json!({"corpId": "ww1"}));
        let (diags, _) = load_all(&f, "corps.Acme");
        let d = diags
            .iter()
            .find(|d| d.code == DiagCode::OutsideApp)
            .unwrap_or_else(|| panic!("{spec}: {}", all_messages(&diags)));
        assert!(ends_with(d, "corps/AcmeType/e.json"), "{d}");
        assert_eq!(d.pointer, "/configSchema");
    }
}
