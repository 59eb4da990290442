//! The element runtime as a host application uses it: loading apps,
//! diagnostics, resolution, overrides, lookups and calls.

use crate::support;

use jit_core::{
    App, CallError, CallFuture, DiagCode, Diagnostic, Element, ElementKind, InstanceContext,
    LoadOptions, LookupError, TypeImpl, TypeRegistry,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::Fixture;

/// A test family `shop.*`: `shop.Meta` and `shop.StoreType`, whose instances
/// need a config file `{"greeting": "..."}` and answer `hello(name)`.
struct StoreType {
    built: Arc<AtomicUsize>,
}

struct Store {
    greeting: String,
    title: String,
}

impl Element for Store {
    fn call<'a>(&'a self, method: &'a str, args: Value) -> CallFuture<'a> {
        Box::pin(async move {
            match method {
                "hello" => Ok(json!(format!(
                    "{}, {}",
                    self.greeting,
                    args["name"].as_str().unwrap()
                ))),
                "echo" => Ok(args),
                other => Err(CallError::failed("shop", other, "not here")),
            }
        })
    }
    fn property(&self, name: &str) -> Option<Value> {
        (name == "title").then(|| json!(self.title))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl TypeImpl for StoreType {
    fn type_name(&self) -> &str {
        "shop.StoreType"
    }
    fn config_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "required": ["greeting"],
            "properties": {"greeting": {"type": "string"}},
            "additionalProperties": false
        }))
    }
    fn instantiate(&self, ctx: InstanceContext) -> Result<Arc<dyn Element>, String> {
        self.built.fetch_add(1, Ordering::SeqCst);
        // Make concurrent first lookups overlap for real.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let config = ctx.config.ok_or("no config")?;
        Ok(Arc::new(Store {
            greeting: config["greeting"].as_str().unwrap_or_default().to_string(),
            title: ctx.define.title.clone(),
        }))
    }
}

fn shop_family(f: &Fixture) {
    shop_family_in(f, "");
}

fn shop_family_in(f: &Fixture, prefix: &str) {
    f.json(
        &format!("{prefix}shop/Meta/e.json"),
        json!({"title": "Shops"}),
    );
    f.json(
        &format!("{prefix}shop/StoreType/e.json"),
        json!({
            "title": "Store type", "kind": "Type", "type": "shop.Meta",
            "functionList": [
                {"name": "hello", "args": [{"name": "name", "dataType": "Stext"}], "returnType": "Stext"},
                {"name": "echo", "args": [
                    {"name": "items", "dataType": "JitList"},
                    {"name": "limit", "dataType": "Numeric", "required": false}
                ]}
            ]
        }),
    );
}

fn store(f: &Fixture, name: &str, greeting: &str) {
    f.json(
        &format!("shop/{name}/e.json"),
        json!({"title": name, "type": "shop.StoreType"}),
    );
    f.json(
        &format!("shop/{name}/{name}.json"),
        json!({"greeting": greeting}),
    );
}

fn options(built: &Arc<AtomicUsize>) -> LoadOptions {
    let mut registry = TypeRegistry::new();
    registry.register(Arc::new(StoreType {
        built: built.clone(),
    }));
    LoadOptions {
        registry,
        env: Some(HashMap::from([(
            "SHOP_GREETING".to_string(),
            "Howdy".to_string(),
        )])),
        skip_startup: false,
    }
}

fn load(f: &Fixture) -> App {
    App::load(f.path(), options(&Arc::new(AtomicUsize::new(0)))).unwrap()
}

fn errors(app: &App) -> Vec<Diagnostic> {
    app.diagnostics().errors().cloned().collect()
}

fn only_error(app: &App, code: DiagCode) -> Diagnostic {
    let errs = errors(app);
    assert_eq!(errs.len(), 1, "expected exactly one error, got {errs:#?}");
    assert_eq!(errs[0].code, code, "{:#?}", errs[0]);
    errs[0].clone()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_valid_app_loads_without_diagnostics_and_serves_lookups() {
    let f = Fixture::new();
    shop_family(&f);
    store(&f, "Main", "Hello");
    let app = load(&f);
    assert!(app.diagnostics().is_empty(), "{:#?}", app.diagnostics());
    let main = app.get_element("shop.Main").unwrap();
    assert_eq!(main.full_name(), "shop.Main");
    assert_eq!(main.type_name(), "shop.StoreType");
    assert_eq!(
        block_on(main.call("hello", json!({"name": "Ann"}))).unwrap(),
        json!("Hello, Ann")
    );
    assert_eq!(main.property("title"), Some(json!("Main")));
    assert!(
        main.downcast_ref::<Store>().is_some(),
        "typed interface for hosts"
    );
}

#[test]
fn the_framework_app_is_always_there() {
    let f = Fixture::new();
    let app = load(&f);
    let q = app.get_element_define("corps.QywxInnerType").unwrap();
    assert_eq!(q.kind, ElementKind::Type);
    assert_eq!(q.type_name.as_deref(), Some("corps.Meta"));
    let names: Vec<&str> = q.functions.iter().map(|f| f.name.as_str()).collect();
    for m in [
        "initCorp",
        "syncCorp",
        "getThirdCorpData",
        "bulkRegister",
        "getLocalCorpData",
        "getRootDept",
        "setUserRole",
        "offlineMember",
        "getUserSignature",
        "saveUserSignature",
        "setAdmin",
        "getAdmin",
        "getCorpInfo",
        "getClient",
    ] {
        assert!(names.contains(&m), "corps.QywxInnerType lacks {m}");
    }
    let dd = app.get_element_define("corps.DDInnerType").unwrap();
    let bulk = dd.function("bulkRegister").unwrap();
    assert_eq!(bulk.args.len(), 2);
    assert!(!bulk.args[1].required, "memberList is optional");
    assert_eq!(
        app.get_element_define("corps.Meta").unwrap().kind,
        ElementKind::Meta
    );
}

#[test]
fn invalid_json_names_the_file_line_and_column() {
    let f = Fixture::new();
    shop_family(&f);
    f.text(
        "shop/Broken/e.json",
        "{\n  \"title\": \"x\",\n  \"type\": \n}",
    );
    let d = only_error(&load(&f), DiagCode::InvalidJson);
    assert!(d.file.ends_with("shop/Broken/e.json"));
    assert_eq!((d.line, d.column), (Some(4), Some(1)));
}

#[test]
fn schema_violations_carry_the_json_pointer() {
    let f = Fixture::new();
    shop_family(&f);
    f.json(
        "shop/Bad/e.json",
        json!({"title": "Bad", "type": "shop.StoreType", "loadTime": "sometimes",
               "functionList": [{"name": "9lives"}]}),
    );
    let app = load(&f);
    let pointers: Vec<String> = errors(&app).iter().map(|d| d.pointer.clone()).collect();
    assert!(pointers.contains(&"/loadTime".to_string()), "{pointers:?}");
    assert!(
        pointers.contains(&"/functionList/0/name".to_string()),
        "{pointers:?}"
    );
    assert!(errors(&app).iter().all(|d| d.code == DiagCode::Schema));
}

#[test]
fn a_missing_title_is_a_schema_error_on_the_whole_document() {
    let f = Fixture::new();
    f.json("things/Meta/e.json", json!({"description": "no title"}));
    let d = only_error(&load(&f), DiagCode::Schema);
    assert_eq!(d.pointer, "");
    assert!(d.message.contains("title"), "{}", d.message);
}

#[test]
fn an_unknown_type_suggests_the_closest_names() {
    let f = Fixture::new();
    shop_family(&f);
    f.json(
        "shop/Typo/e.json",
        json!({"title": "Typo", "type": "shop.StorType"}),
    );
    let d = only_error(&load(&f), DiagCode::UnknownType);
    assert_eq!(d.pointer, "/type");
    assert!(
        d.message.contains("did you mean shop.StoreType"),
        "{}",
        d.message
    );
}

#[test]
fn types_that_extend_each_other_are_a_cycle() {
    let f = Fixture::new();
    f.json(
        "x/A/e.json",
        json!({"title": "A", "kind": "Type", "type": "x.B"}),
    );
    f.json(
        "x/B/e.json",
        json!({"title": "B", "kind": "Type", "type": "x.A"}),
    );
    let app = load(&f);
    let errs = errors(&app);
    assert!(!errs.is_empty());
    assert!(
        errs.iter().all(|d| d.code == DiagCode::TypeCycle),
        "{errs:#?}"
    );
    assert!(
        errs[0].message.contains("x.A → x.B → x.A"),
        "{}",
        errs[0].message
    );
}

#[test]
fn an_instance_whose_type_is_a_meta_is_rejected() {
    let f = Fixture::new();
    shop_family(&f);
    f.json(
        "shop/Direct/e.json",
        json!({"title": "Direct", "type": "shop.Meta"}),
    );
    let d = only_error(&load(&f), DiagCode::BadTypeTarget);
    assert!(d.message.contains("is a Meta"), "{}", d.message);
    assert!(
        d.message.contains("shop.StoreType"),
        "names the Types to use: {}",
        d.message
    );
}

#[test]
fn an_instance_used_as_a_type_is_reported() {
    let f = Fixture::new();
    shop_family(&f);
    store(&f, "Main", "Hi");
    f.json(
        "shop/Child/e.json",
        json!({"title": "Child", "type": "shop.Main"}),
    );
    let d = only_error(&load(&f), DiagCode::BadTypeTarget);
    assert!(d.file.ends_with("shop/Child/e.json"));
    assert!(
        d.message.contains("`shop.Main` is an Instance"),
        "{}",
        d.message
    );
}

#[test]
fn an_explicit_full_name_must_agree_with_the_path() {
    let f = Fixture::new();
    shop_family(&f);
    store(&f, "Main", "Hi");
    f.json(
        "shop/Main/e.json",
        json!({"title": "Main", "type": "shop.StoreType", "fullName": "shop.Other"}),
    );
    let d = only_error(&load(&f), DiagCode::FullNameMismatch);
    assert_eq!(d.pointer, "/fullName");
    assert!(d.message.contains("shop.Main"));
}

#[test]
fn names_differing_only_in_case_are_duplicates() {
    let f = Fixture::new();
    shop_family(&f);
    store(&f, "Main", "Hi");
    store(&f, "main", "Hi");
    only_error(&load(&f), DiagCode::DuplicateElement);
}

#[test]
fn folders_that_are_not_identifiers_are_reported_as_invalid_names() {
    let f = Fixture::new();
    shop_family(&f);
    f.json(
        "shop/my-store/e.json",
        json!({"title": "x", "type": "shop.StoreType"}),
    );
    let d = only_error(&load(&f), DiagCode::InvalidName);
    assert!(d.message.contains("my-store"));
}

#[test]
fn an_e_json_at_the_app_root_is_unreachable() {
    let f = Fixture::new();
    f.json("e.json", json!({"title": "root"}));
    only_error(&load(&f), DiagCode::Unreachable);
}

#[test]
fn a_missing_config_file_is_named() {
    let f = Fixture::new();
    shop_family(&f);
    f.json(
        "shop/Main/e.json",
        json!({"title": "Main", "type": "shop.StoreType"}),
    );
    let app = load(&f);
    let d = only_error(&app, DiagCode::MissingConfig);
    assert!(d.file.ends_with("shop/Main/Main.json"), "{:?}", d.file);
    assert!(matches!(
        app.get_element("shop.Main"),
        Err(LookupError::Invalid { .. })
    ));
}

#[test]
fn front_bundle_entry_names_the_config_file() {
    let f = Fixture::new();
    shop_family(&f);
    f.json(
        "shop/Main/e.json",
        json!({"title": "Main", "type": "shop.StoreType", "frontBundleEntry": "./settings.json"}),
    );
    f.json("shop/Main/settings.json", json!({"greeting": "Yo"}));
    let app = load(&f);
    assert!(errors(&app).is_empty(), "{:#?}", errors(&app));
    assert_eq!(app.element_config("shop.Main").unwrap()["greeting"], "Yo");
}

#[test]
fn an_invalid_config_file_is_reported_with_its_pointer() {
    let f = Fixture::new();
    shop_family(&f);
    f.json(
        "shop/Main/e.json",
        json!({"title": "Main", "type": "shop.StoreType"}),
    );
    f.json("shop/Main/Main.json", json!({"greeting": 5, "extra": true}));
    let app = load(&f);
    let errs = errors(&app);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs.iter().all(|d| d.code == DiagCode::InvalidConfig));
    let pointers: Vec<&str> = errs.iter().map(|d| d.pointer.as_str()).collect();
    assert!(pointers.contains(&"/greeting"), "{pointers:?}");
}

#[test]
fn config_that_is_not_json_is_an_invalid_config() {
    let f = Fixture::new();
    shop_family(&f);
    f.json(
        "shop/Main/e.json",
        json!({"title": "Main", "type": "shop.StoreType"}),
    );
    f.text("shop/Main/Main.json", "{\"greeting\": }");
    let d = only_error(&load(&f), DiagCode::InvalidConfig);
    assert_eq!(d.line, Some(1));
}

#[test]
fn placeholders_are_filled_from_the_environment() {
    let f = Fixture::new();
    shop_family(&f);
    f.json(
        "shop/Main/e.json",
        json!({"title": "Main", "type": "shop.StoreType"}),
    );
    f.json(
        "shop/Main/Main.json",
        json!({"greeting": "{{SHOP_GREETING}}"}),
    );
    let app = load(&f);
    assert!(errors(&app).is_empty(), "{:#?}", errors(&app));
    let main = app.get_element("shop.Main").unwrap();
    assert_eq!(
        block_on(main.call("hello", json!(["Bo"]))).unwrap(),
        json!("Howdy, Bo")
    );
}

#[test]
fn an_unset_placeholder_is_reported_at_its_pointer() {
    let f = Fixture::new();
    shop_family(&f);
    f.json(
        "shop/Main/e.json",
        json!({"title": "Main", "type": "shop.StoreType"}),
    );
    f.json(
        "shop/Main/Main.json",
        json!({"greeting": "{{NOT_SET_ANYWHERE_42}}"}),
    );
    let d = only_error(&load(&f), DiagCode::UnsetVariable);
    assert_eq!(d.pointer, "/greeting");
    assert!(d.message.contains("NOT_SET_ANYWHERE_42"));
}

#[test]
fn app_env_defaults_fill_placeholders_the_environment_leaves_unset() {
    let f = Fixture::new();
    shop_family(&f);
    f.json(
        "app.json",
        json!({"appId": "t.shop", "env": {"GREETING_DEFAULT": "Hej"}}),
    );
    f.json(
        "shop/Main/e.json",
        json!({"title": "Main", "type": "shop.StoreType"}),
    );
    f.json(
        "shop/Main/Main.json",
        json!({"greeting": "{{GREETING_DEFAULT}}"}),
    );
    let app = load(&f);
    assert_eq!(app.element_config("shop.Main").unwrap()["greeting"], "Hej");
}

#[test]
fn all_problems_are_collected_in_one_pass() {
    let f = Fixture::new();
    shop_family(&f);
    f.text("shop/A/e.json", "{");
    f.json("shop/B/e.json", json!({"title": "B", "type": "shop.Nope"}));
    f.json(
        "shop/C/e.json",
        json!({"title": "C", "type": "shop.StoreType"}),
    );
    let app = load(&f);
    let codes: Vec<DiagCode> = errors(&app).iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        vec![
            DiagCode::InvalidJson,
            DiagCode::UnknownType,
            DiagCode::MissingConfig
        ]
    );
}

#[test]
fn a_child_app_overrides_a_parent_element_of_the_same_name() {
    let f = Fixture::new();
    f.json("base/app.json", json!({"appId": "t.base"}));
    f.json(
        "base/shop/Main/e.json",
        json!({"title": "From base", "type": "shop.StoreType"}),
    );
    f.json("base/shop/Main/Main.json", json!({"greeting": "base"}));
    f.json(
        "base/shop/Extra/e.json",
        json!({"title": "Only in base", "type": "shop.StoreType"}),
    );
    f.json("base/shop/Extra/Extra.json", json!({"greeting": "extra"}));
    f.json(
        "child/app.json",
        json!({"appId": "t.child", "extends": ["../base", {"path": "../family"}]}),
    );
    f.json(
        "child/shop/Main/e.json",
        json!({"title": "From child", "type": "shop.StoreType"}),
    );
    f.json("child/shop/Main/Main.json", json!({"greeting": "child"}));
    shop_family_in(&f, "family/");
    let app = App::load(f.sub("child"), options(&Arc::new(AtomicUsize::new(0)))).unwrap();
    assert!(errors(&app).is_empty(), "{:#?}", errors(&app));
    let main = app.get_element_define("shop.Main").unwrap();
    assert_eq!(main.title, "From child");
    assert_eq!(main.origin.app_id, "t.child");
    assert_eq!(
        app.get_element_define("shop.Extra").unwrap().origin.app_id,
        "t.base"
    );
    let ids: Vec<&str> = app.layers().iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, vec!["jit.framework", "t.base", "family", "t.child"]);
}

#[test]
fn a_missing_parent_app_is_an_app_manifest_error() {
    let f = Fixture::new();
    f.json(
        "app.json",
        json!({"extends": ["../does-not-exist-anywhere"]}),
    );
    let d = only_error(&load(&f), DiagCode::AppManifest);
    assert_eq!(d.pointer, "/extends/0");
}

#[test]
fn apps_extending_each_other_are_reported_not_looped() {
    let f = Fixture::new();
    f.json("a/app.json", json!({"appId": "t.a", "extends": ["../b"]}));
    f.json("b/app.json", json!({"appId": "t.b", "extends": ["../a"]}));
    let app = App::load(f.sub("a"), options(&Arc::new(AtomicUsize::new(0)))).unwrap();
    assert_eq!(errors(&app)[0].code, DiagCode::AppManifest);
}

#[test]
fn a_protected_parent_element_cannot_be_overridden() {
    let f = Fixture::new();
    f.json("base/app.json", json!({"appId": "t.base"}));
    f.json(
        "base/x/Meta/e.json",
        json!({"title": "X", "accessModifier": "protected"}),
    );
    f.json(
        "child/app.json",
        json!({"appId": "t.child", "extends": ["../base"]}),
    );
    f.json("child/x/Meta/e.json", json!({"title": "Mine"}));
    let app = App::load(f.sub("child"), options(&Arc::new(AtomicUsize::new(0)))).unwrap();
    let d = only_error(&app, DiagCode::DuplicateElement);
    assert!(d.message.contains("protected"));
    assert_eq!(app.get_element_define("x.Meta").unwrap().title, "X");
}

#[test]
fn an_app_type_extending_a_registered_type_inherits_behaviour_methods_and_config_schema() {
    let f = Fixture::new();
    shop_family(&f);
    f.json(
        "shop/FancyType/e.json",
        json!({"title": "Fancy", "kind": "Type", "type": "shop.StoreType",
               "functionList": [{"name": "hello", "title": "Say hello nicely",
                                 "args": [{"name": "name", "dataType": "Stext"}]}]}),
    );
    f.json(
        "shop/Fancy/e.json",
        json!({"title": "Fancy", "type": "shop.FancyType"}),
    );
    f.json("shop/Fancy/Fancy.json", json!({"greeting": 1}));
    let app = load(&f);
    // The inherited config schema applies to the sub-Type's instance.
    assert_eq!(
        only_error(&app, DiagCode::InvalidConfig).pointer,
        "/greeting"
    );
    f.json("shop/Fancy/Fancy.json", json!({"greeting": "Dear"}));
    let app = load(&f);
    let fancy = app.get_element("shop.Fancy").unwrap();
    assert_eq!(fancy.type_name(), "shop.StoreType");
    let hello = fancy
        .functions()
        .iter()
        .find(|f| f.name == "hello")
        .unwrap();
    assert_eq!(
        hello.title, "Say hello nicely",
        "the nearer declaration wins"
    );
    assert!(
        fancy.functions().iter().any(|f| f.name == "echo"),
        "inherited method"
    );
    assert_eq!(
        block_on(fancy.call("hello", json!({"name": "Cy"}))).unwrap(),
        json!("Dear, Cy")
    );
    let info = app.element_info("shop.Fancy").unwrap();
    assert_eq!(
        info.chain,
        vec![
            "shop.Fancy",
            "shop.FancyType",
            "shop.StoreType",
            "shop.Meta"
        ]
    );
    assert_eq!(info.meta.as_deref(), Some("shop.Meta"));
}

#[test]
fn an_app_type_may_bring_its_own_config_schema() {
    let f = Fixture::new();
    shop_family(&f);
    f.json(
        "shop/StrictType/e.json",
        json!({"title": "Strict", "kind": "Type", "type": "shop.StoreType",
        "configSchema": "strict.schema.json"}),
    );
    f.json(
        "shop/StrictType/strict.schema.json",
        json!({"type": "object", "required": ["greeting", "owner"]}),
    );
    f.json(
        "shop/S/e.json",
        json!({"title": "S", "type": "shop.StrictType"}),
    );
    f.json("shop/S/S.json", json!({"greeting": "hi"}));
    let d = only_error(&load(&f), DiagCode::InvalidConfig);
    assert!(d.message.contains("owner"), "{}", d.message);
}

#[test]
fn a_type_without_any_implementation_cannot_serve_instances() {
    let f = Fixture::new();
    f.json("misc/Meta/e.json", json!({"title": "Misc"}));
    f.json(
        "misc/LoneType/e.json",
        json!({"title": "Lone", "kind": "Type", "type": "misc.Meta"}),
    );
    f.json(
        "misc/One/e.json",
        json!({"title": "One", "type": "misc.LoneType"}),
    );
    let app = load(&f);
    only_error(&app, DiagCode::NoImplementation);
    assert!(matches!(
        app.get_element("misc.One"),
        Err(LookupError::Invalid { .. })
    ));
}

#[test]
fn unknown_names_get_a_clear_error_with_suggestions() {
    let f = Fixture::new();
    shop_family(&f);
    store(&f, "Main", "Hi");
    let err = load(&f).get_element("shop.Mian").unwrap_err();
    assert!(err.to_string().contains("did you mean shop.Main"), "{err}");
}

#[test]
fn types_and_metas_are_not_instances() {
    let f = Fixture::new();
    shop_family(&f);
    let app = load(&f);
    assert!(matches!(
        app.get_element("shop.StoreType"),
        Err(LookupError::NotAnInstance { .. })
    ));
    assert!(app.get_element_define("shop.StoreType").is_some());
}

#[test]
fn concurrent_first_lookups_build_the_instance_once() {
    let f = Fixture::new();
    shop_family(&f);
    store(&f, "Main", "Hi");
    let built = Arc::new(AtomicUsize::new(0));
    let app = App::load(f.path(), options(&built)).unwrap();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let app = app.clone();
            std::thread::spawn(move || app.get_element("shop.Main").unwrap())
        })
        .collect();
    let got: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(built.load(Ordering::SeqCst), 1);
    for g in &got {
        assert!(Arc::ptr_eq(g.element(), got[0].element()));
    }
}

#[test]
fn get_element_define_does_not_instantiate() {
    let f = Fixture::new();
    shop_family(&f);
    store(&f, "Main", "Hi");
    let built = Arc::new(AtomicUsize::new(0));
    let app = App::load(f.path(), options(&built)).unwrap();
    assert_eq!(app.get_element_define("shop.Main").unwrap().title, "Main");
    assert_eq!(built.load(Ordering::SeqCst), 0);
}

#[test]
fn start_up_instances_are_built_at_load() {
    let f = Fixture::new();
    shop_family(&f);
    f.json(
        "shop/Early/e.json",
        json!({"title": "Early", "type": "shop.StoreType", "loadTime": "startUp"}),
    );
    f.json("shop/Early/Early.json", json!({"greeting": "Up"}));
    store(&f, "Lazy", "Zz");
    let built = Arc::new(AtomicUsize::new(0));
    let _app = App::load(f.path(), options(&built)).unwrap();
    assert_eq!(built.load(Ordering::SeqCst), 1);
}

#[test]
fn calls_are_checked_against_the_declared_function_list() {
    let f = Fixture::new();
    shop_family(&f);
    store(&f, "Main", "Hi");
    let main = load(&f).get_element("shop.Main").unwrap();
    let unknown = block_on(main.call("goodbye", Value::Null)).unwrap_err();
    assert!(matches!(unknown, CallError::UnknownMethod { .. }));
    assert!(unknown.to_string().contains("hello, echo"), "{unknown}");
    let missing = block_on(main.call("hello", json!({}))).unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("missing required argument `name`"),
        "{missing}"
    );
    let wrong = block_on(main.call("echo", json!({"items": "not a list"}))).unwrap_err();
    assert!(
        wrong.to_string().contains("`items` must be a list"),
        "{wrong}"
    );
    let extra = block_on(main.call("hello", json!({"name": "a", "nmae": "b"}))).unwrap_err();
    assert!(
        extra.to_string().contains("unexpected argument `nmae`"),
        "{extra}"
    );
    // Optional arguments may be left out; positional arguments are accepted.
    assert_eq!(
        block_on(main.call("echo", json!([[1, 2]]))).unwrap(),
        json!({"items": [1, 2]})
    );
}

#[test]
fn find_elements_supports_type_prefix_parent_and_attribute_selectors() {
    let f = Fixture::new();
    shop_family(&f);
    store(&f, "A", "a");
    store(&f, "B", "b");
    f.json(
        "shop/A/sub/Inner/e.json",
        json!({"title": "Inner", "tag": "x", "type": "shop.StoreType"}),
    );
    f.json("shop/A/sub/Inner/Inner.json", json!({"greeting": "i"}));
    let app = load(&f);
    let names = |sel: &str| -> Vec<String> {
        app.find_elements(sel)
            .iter()
            .map(|d| d.full_name.clone())
            .collect()
    };
    assert_eq!(
        names(".shop.StoreType"),
        vec!["shop.A", "shop.A.sub.Inner", "shop.B"]
    );
    assert_eq!(names("shop.A.*"), vec!["shop.A.sub.Inner"]);
    assert_eq!(names("*shop.A.sub.Inner"), vec!["shop.A"]);
    assert_eq!(names("#tag=x"), vec!["shop.A.sub.Inner"]);
    assert_eq!(names("shop.B, shop.Meta"), vec!["shop.B", "shop.Meta"]);
}

#[test]
fn hidden_target_and_node_modules_folders_are_skipped() {
    let f = Fixture::new();
    shop_family(&f);
    for skipped in [".git", "target", "node_modules"] {
        f.text(&format!("{skipped}/junk/e.json"), "not json");
    }
    assert!(load(&f).diagnostics().is_empty());
}

#[test]
fn a_thousand_generated_elements_load_and_resolve() {
    let f = Fixture::new();
    shop_family(&f);
    for i in 0..1000 {
        store(&f, &format!("S{i:04}"), &format!("g{i}"));
    }
    let app = load(&f);
    assert!(app.diagnostics().is_empty());
    assert_eq!(app.find_elements(".shop.StoreType").len(), 1000);
    let last = app.get_element("shop.S0999").unwrap();
    assert_eq!(
        block_on(last.call("hello", json!({"name": "z"}))).unwrap(),
        json!("g999, z")
    );
}

#[test]
fn the_order_of_elements_is_deterministic() {
    let f = Fixture::new();
    shop_family(&f);
    for n in ["Zed", "Alpha", "Mid"] {
        store(&f, n, "x");
    }
    let a: Vec<String> = load(&f).elements().keys().cloned().collect();
    let b: Vec<String> = load(&f).elements().keys().cloned().collect();
    assert_eq!(a, b);
    assert!(a.windows(2).all(|w| w[0] <= w[1]));
}
