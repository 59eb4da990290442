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
