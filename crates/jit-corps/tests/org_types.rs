//! The built-in org Types end to end, as a host uses them: an app folder with
//! `app.json`, `corps/<Name>/e.json` and `<Name>.json` pointing at the
//! WeCom / DingTalk simulator, every seed method called through the dynamic
//! `ElementHandle::call`, and the results checked in a real SQLite store.

use jit_core::{App, DiagCode, ElementHandle, LoadOptions, TypeRegistry};
use jit_org::{CorpSnapshot, MemberStatus, Provider};
use jit_sim::truth::{active_members, as_synced, assert_same_org, first_active};
use jit_sim::{MembershipSpec, Mutation, OrgRef, SimConfig, SimHandle, SimStatus, Simulator};
use jit_store::{CorpStore, RunOutcome};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

// ---------------------------------------------------------------- fixtures

/// A small simulated WeCom corp and two DingTalk orgs.
async fn start_sim() -> SimHandle {
    Simulator::start(SimConfig {
        seed: 11,
        depts: 8,
        users: 40,
        dingtalk_depts: Some(6),
        dingtalk_users: Some(30),
        dingtalk_orgs: 2,
        dingtalk_shared_fraction: 0.2,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// An app folder written file by file, with its own SQLite store.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        f.json(
            "app.json",
            json!({"appId": "t.orgtypes", "title": "Org types test app"}),
        );
        f
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn json(&self, rel: &str, v: Value) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }

    /// `corps/<name>/e.json` and `corps/<name>/<name>.json`.
    fn org(&self, name: &str, type_name: &str, config: Value) {
        self.json(
            &format!("corps/{name}/e.json"),
            json!({"title": format!("{name} org"), "type": type_name}),
        );
        self.json(&format!("corps/{name}/{name}.json"), config);
    }

    async fn store(&self) -> Arc<dyn CorpStore> {
        let path = self.dir.path().join("org.db");
        jit_store::open(path.to_str().unwrap())
            .await
            .expect("sqlite store opens")
    }

    /// Loads the app with the built-in Types on this fixture's store.
    fn load(&self, store: &Arc<dyn CorpStore>, env: Option<HashMap<String, String>>) -> App {
        let mut registry = TypeRegistry::new();
        jit_corps::register_builtins_with_store(&mut registry, store.clone());
        App::load(
            self.root(),
            LoadOptions {
                registry,
                env,
                skip_startup: true,
            },
        )
        .expect("app loads")
    }
}

/// The flat WeCom config of the simulated corp.
fn wecom_flat(sim: &SimHandle) -> Value {
    let w = sim.info().wecom;
    json!({"corpId": w.corp_id, "agentId": w.agent_id.to_string(), "secret": w.secret,
           "apiBase": w.api_base_url})
}

/// The nested (`authConfig`) DingTalk config of simulated org `i`.
fn dingtalk_nested(sim: &SimHandle, i: usize) -> Value {
    let d = &sim.info().dingtalk[i];
    json!({"authConfig": {"corpId": d.corp_id, "agentId": d.agent_id, "appKey": d.app_key,
           "appSecret": d.app_secret, "apiBase": d.api_base_url}})
}

/// Every secret the simulator handed out.
fn secrets(sim: &SimHandle) -> Vec<String> {
    let info = sim.info();
    let mut s = vec![info.wecom.secret.clone(), info.wecom.contact_secret.clone()];
    s.extend(info.dingtalk.iter().map(|d| d.app_secret.clone()));
    s
}

/// Calls a method through the dynamic interface and records its output.
async fn call(h: &ElementHandle, method: &str, args: Value, seen: &mut String) -> Value {
    match h.call(method, args).await {
        Ok(v) => {
            seen.push_str(&v.to_string());
            v
        }
        Err(e) => panic!("{}.{method} failed: {e}", h.full_name()),
    }
}

/// Calls a method that must fail; returns (and records) the error message.
async fn call_err(h: &ElementHandle, method: &str, args: Value, seen: &mut String) -> String {
    match h.call(method, args).await {
        Ok(v) => panic!("{}.{method} should fail, returned {v}", h.full_name()),
        Err(e) => {
            let text = format!("{e} {e:?}");
            seen.push_str(&text);
            e.to_string()
        }
    }
}

fn assert_no_secret(sim: &SimHandle, seen: &str) {
    for s in secrets(sim) {
        assert!(!seen.contains(&s), "a secret leaked into an output");
    }
}

/// The member leaves the company (WeCom keeps listing them with status 5).
fn leave(userid: &str) -> Mutation {
    Mutation::set_member_status(userid.to_string(), SimStatus::Left)
}

/// A WeCom app (`corps.Wecom`, flat config) and a DingTalk app
/// (`corps.Nail`, nested config) on one store.
async fn both_orgs(sim: &SimHandle) -> (Fixture, Arc<dyn CorpStore>, App) {
    let f = Fixture::new();
    f.org("Wecom", "corps.QywxInnerType", wecom_flat(sim));
    f.org("Nail", "corps.DDInnerType", dingtalk_nested(sim, 0));
    let store = f.store().await;
    let app = f.load(&store, None);
    assert!(
        !app.diagnostics().has_errors(),
        "{:?}",
        app.diagnostics().iter().collect::<Vec<_>>()
    );
    (f, store, app)
}

// ---------------------------------------------------------------- sync

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_corp_stores_exactly_the_wecom_truth_and_a_second_sync_writes_nothing() {
    let sim = start_sim().await;
    let (_f, store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    let corp = app.get_element("corps.Wecom").unwrap();
    let report = call(&corp, "syncCorp", Value::Null, &mut seen).await;
    assert_eq!(report["outcome"], "applied");
    assert_eq!(report["complete"], true);
    assert!(report["rowsWritten"].as_u64().unwrap() > 0);
    let truth = as_synced(sim.wecom_truth());
    assert!(!truth.roles.is_empty(), "the simulated corp has tags");
    assert_same_org(&store.load_snapshot("corps.Wecom").await.unwrap(), &truth);

    let again = call(&corp, "syncCorp", Value::Null, &mut seen).await;
    assert_eq!(again["rowsWritten"], 0, "{again}");
    assert_eq!(again["changes"], json!([]));
    assert_no_secret(&sim, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_corp_stores_exactly_the_dingtalk_truth_with_roles_and_role_groups() {
    let sim = start_sim().await;
    let (_f, store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    let corp = app.get_element("corps.Nail").unwrap();
    let report = call(&corp, "syncCorp", Value::Null, &mut seen).await;
    assert_eq!(report["outcome"], "applied", "{report}");
    let truth = as_synced(sim.dingtalk_truth(0));
    assert!(!truth.role_groups.is_empty() && !truth.roles.is_empty());
    assert_same_org(&store.load_snapshot("corps.Nail").await.unwrap(), &truth);
    let again = call(&corp, "syncCorp", Value::Null, &mut seen).await;
    assert_eq!(again["rowsWritten"], 0, "{again}");
    assert_no_secret(&sim, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_corp_follows_upstream_changes_to_memberships_and_leaders() {
    let sim = start_sim().await;
    let (_f, store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    let corp = app.get_element("corps.Wecom").unwrap();
    call(&corp, "syncCorp", Value::Null, &mut seen).await;
    let truth = sim.wecom_truth();
    let who = first_active(&truth);
    let depts: Vec<i64> = truth.depts.keys().copied().take(3).collect();
    sim.mutate(
        OrgRef::Wecom,
        Mutation::MoveMember {
            userid: who.clone(),
            depts: vec![
                MembershipSpec {
                    dept_id: depts[2],
                    order: 7,
                    leader: true,
                },
                MembershipSpec {
                    dept_id: depts[1],
                    order: 3,
                    leader: false,
                },
            ],
            main_dept: Some(depts[1]),
        },
    )
    .unwrap();
    let report = call(&corp, "syncCorp", Value::Null, &mut seen).await;
    assert_eq!(report["counts"]["moved"], 1, "{report}");
    assert_same_org(
        &store.load_snapshot("corps.Wecom").await.unwrap(),
        &as_synced(sim.wecom_truth()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_corp_syncs_and_registers_every_present_member() {
    let sim = start_sim().await;
    // One member left the company: WeCom still lists them with status 5.
    let leaver = first_active(&sim.wecom_truth());
    sim.mutate(OrgRef::Wecom, leave(&leaver)).unwrap();
    let (_f, store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    let corp = app.get_element("corps.Wecom").unwrap();
    let out = call(&corp, "initCorp", Value::Null, &mut seen).await;
    assert_eq!(out["sync"]["outcome"], "applied", "{out}");
    assert_eq!(out["registrationConflicts"], json!([]));
    let truth = as_synced(sim.wecom_truth());
    assert_same_org(&store.load_snapshot("corps.Wecom").await.unwrap(), &truth);
    assert_eq!(
        store.user_count().await.unwrap(),
        truth.members.len() as u64,
        "one local user per present member, none for the leaver"
    );
    let w = sim.info().wecom;
    assert_eq!(
        store
            .local_user_for(&Provider::Wecom, &w.corp_id, &leaver, None)
            .await
            .unwrap(),
        None
    );
    for id in truth.members.keys() {
        assert!(store
            .local_user_for(&Provider::Wecom, &w.corp_id, id, None)
            .await
            .unwrap()
            .is_some());
    }
    assert_no_secret(&sim, &seen);
}

// ---------------------------------------------------------------- reading

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_third_corp_data_returns_the_platform_org_as_corp_data() {
    let sim = start_sim().await;
    let (_f, store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    for (name, truth) in [
        ("corps.Wecom", sim.wecom_truth()),
        ("corps.Nail", sim.dingtalk_truth(0)),
    ] {
        let corp = app.get_element(name).unwrap();
        let data = call(&corp, "getThirdCorpData", Value::Null, &mut seen).await;
        assert_eq!(data["corpId"], truth.corp_id.as_str());
        let users: BTreeSet<&String> = data["userDict"].as_object().unwrap().keys().collect();
        assert_eq!(users, truth.members.keys().collect());
        let depts: BTreeSet<String> = data["deptDict"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            depts,
            truth
                .depts
                .keys()
                .map(|d| d.to_string())
                .collect::<BTreeSet<_>>()
        );
        // Reading the platform writes nothing locally.
        assert!(store.load_snapshot(name).await.unwrap().members.is_empty());
    }
    assert_no_secret(&sim, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_local_corp_data_lists_users_depts_with_paths_memberships_and_roles() {
    let sim = start_sim().await;
    let (_f, _store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    let corp = app.get_element("corps.Nail").unwrap();
    call(&corp, "syncCorp", Value::Null, &mut seen).await;
    let data = call(&corp, "getLocalCorpData", Value::Null, &mut seen).await;
    for key in [
        "userList",
        "deptList",
        "deptMemberList",
        "roleList",
        "roleGroupList",
        "roleMemberSet",
    ] {
        assert!(data[key].is_array(), "{key} missing: {data}");
    }
    let truth = as_synced(sim.dingtalk_truth(0));
    // Every current member, not only the active ones; each with its status.
    let current = |m: &&jit_org::Member| m.status != MemberStatus::Offline;
    assert_eq!(
        data["userList"].as_array().unwrap().len(),
        truth.members.values().filter(current).count()
    );
    assert!(truth.active_count() < truth.members.values().filter(current).count());
    assert!(data["userList"][0]["userId"].is_i64());
    assert!(data["userList"][0]["status"].is_string());
    let depts = data["deptList"].as_array().unwrap();
    assert_eq!(depts.len(), truth.depts.len());
    let root = depts.iter().find(|d| d["parentId"].is_null()).unwrap();
    assert_eq!(root["path"], format!("/{}/", root["deptId"]));
    let child = depts.iter().find(|d| !d["parentId"].is_null()).unwrap();
    assert!(
        child["path"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{}/{}/", child["parentId"], child["deptId"])),
        "{child}"
    );
    let memberships: usize = truth
        .members
        .values()
        .filter(current)
        .map(|m| m.depts.len())
        .sum();
    assert_eq!(
        data["deptMemberList"].as_array().unwrap().len(),
        memberships
    );
    assert_eq!(
        data["roleList"].as_array().unwrap().len(),
        truth.roles.len()
    );
    assert_eq!(
        data["roleGroupList"].as_array().unwrap().len(),
        truth.role_groups.len()
    );
    let holdings: usize = truth.roles.values().map(|r| r.members.len()).sum();
    assert_eq!(data["roleMemberSet"].as_array().unwrap().len(), holdings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_root_dept_names_the_root_and_the_org() {
    let sim = start_sim().await;
    let (_f, _store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    let corp = app.get_element("corps.Wecom").unwrap();
    let before = call_err(&corp, "getRootDept", Value::Null, &mut seen).await;
    assert!(before.contains("syncCorp"), "{before}");
    call(&corp, "syncCorp", Value::Null, &mut seen).await;
    let root = call(&corp, "getRootDept", Value::Null, &mut seen).await;
    let truth = sim.wecom_truth();
    let t = truth
        .depts
        .values()
        .find(|d| d.parent_id.is_none())
        .unwrap();
    assert_eq!(root["deptId"], t.dept_id);
    assert_eq!(root["name"], t.name.as_str());
    assert_eq!(root["corpFullName"], "corps.Wecom");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_corp_info_get_client_and_properties_describe_the_org_without_secrets() {
    let sim = start_sim().await;
    let (_f, _store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    for (name, platform) in [("corps.Wecom", "wecom"), ("corps.Nail", "dingtalk")] {
        let corp = app.get_element(name).unwrap();
        let info = call(&corp, "getCorpInfo", Value::Null, &mut seen).await;
        assert_eq!(info["title"], format!("{} org", &name[6..]));
        assert_eq!(info["fullName"], name);
        let client = call(&corp, "getClient", Value::Null, &mut seen).await;
        assert_eq!(client["platform"], platform);
        for p in [
            "corpData",
            "title",
            "fullName",
            "corpFullName",
            "authConfig",
        ] {
            let v = corp.property(p).unwrap_or_else(|| panic!("{name}.{p}"));
            seen.push_str(&v.to_string());
        }
        assert_eq!(corp.property("fullName").unwrap(), name);
        assert_eq!(corp.property("corpFullName").unwrap(), name);
        assert_eq!(corp.property("title").unwrap(), info["title"]);
        assert_eq!(corp.property("corpData").unwrap()["fullName"], name);
        let auth = corp.property("authConfig").unwrap();
        let secret_key = if platform == "wecom" {
            "secret"
        } else {
            "appSecret"
        };
        assert_eq!(auth[secret_key], "******", "{auth}");
        assert_eq!(auth["corpId"], info["corpId"]);
        seen.push_str(&format!("{corp:?}"));
        let typed = corp.downcast_ref::<jit_corps::CorpElement>().unwrap();
        seen.push_str(&format!("{typed:?} {:?}", typed.client().unwrap()));
    }
    assert_no_secret(&sim, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_fails_with_the_platform_error_and_never_shows_a_secret() {
    let sim = start_sim().await;
    let f = Fixture::new();
    let mut cfg = wecom_flat(&sim);
    cfg["secret"] = json!("not-the-right-secret-4711");
    f.org("Wecom", "corps.QywxInnerType", cfg);
    let mut cfg = dingtalk_nested(&sim, 0);
    cfg["authConfig"]["appSecret"] = json!("not-the-right-secret-4712");
    f.org("Nail", "corps.DDInnerType", cfg);
    let store = f.store().await;
    let app = f.load(&store, None);
    let mut seen = String::new();
    for name in ["corps.Wecom", "corps.Nail"] {
        let corp = app.get_element(name).unwrap();
        let err = call_err(&corp, "syncCorp", Value::Null, &mut seen).await;
        assert!(err.contains(name), "{err}");
        let err = call_err(&corp, "getThirdCorpData", Value::Null, &mut seen).await;
        assert!(err.contains(name), "{err}");
    }
    assert!(!seen.contains("not-the-right-secret"), "{seen}");
    assert_no_secret(&sim, &seen);
}

// ---------------------------------------------------------------- registration

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_register_creates_one_local_user_per_present_member_of_corp_data() {
    let sim = start_sim().await;
    let leaver = first_active(&sim.wecom_truth());
    sim.mutate(OrgRef::Wecom, leave(&leaver)).unwrap();
    let (_f, store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    let corp = app.get_element("corps.Wecom").unwrap();
    let data = call(&corp, "getThirdCorpData", Value::Null, &mut seen).await;
    assert_eq!(
        data["userDict"][&leaver]["status"], "offline",
        "WeCom lists the leaver"
    );
    let out = call(&corp, "bulkRegister", json!({"corpData": data}), &mut seen).await;
    assert_eq!(out["conflicts"], json!([]));
    let present_members = as_synced(sim.wecom_truth()).members.len() as u64;
    assert_eq!(out["registered"], present_members);
    assert_eq!(store.user_count().await.unwrap(), present_members);
    // Registering again binds the same users.
    call(&corp, "bulkRegister", json!([data]), &mut seen).await;
    assert_eq!(store.user_count().await.unwrap(), present_members);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dingtalk_bulk_register_honours_the_member_list() {
    let sim = start_sim().await;
    let (_f, store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    let corp = app.get_element("corps.Nail").unwrap();
    let data = call(&corp, "getThirdCorpData", Value::Null, &mut seen).await;
    let truth = sim.dingtalk_truth(0);
    let ids: Vec<&String> = truth.members.keys().collect();
    let out = call(
        &corp,
        "bulkRegister",
        json!({"corpData": data, "memberList": [ids[0], ids[1]]}),
        &mut seen,
    )
    .await;
    assert_eq!(out["registered"], 2, "{out}");
    assert_eq!(store.user_count().await.unwrap(), 2);
    let corp_id = &sim.info().dingtalk[0].corp_id;
    for (i, id) in ids.iter().enumerate() {
        let m = &truth.members[*id];
        let user = store
            .local_user_for(&Provider::DingTalk, corp_id, id, m.union_id.as_deref())
            .await
            .unwrap();
        assert_eq!(user.is_some(), i < 2, "{id}");
    }
    let err = call_err(
        &corp,
        "bulkRegister",
        json!({"corpData": data, "memberList": ["nobody-here"]}),
        &mut seen,
    )
    .await;
    assert!(err.contains("nobody-here"), "{err}");
    assert_eq!(
        store.user_count().await.unwrap(),
        2,
        "nothing was registered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_register_refuses_corp_data_of_another_corp() {
    let sim = start_sim().await;
    let (_f, store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    let nail = app.get_element("corps.Nail").unwrap();
    let wecom = app.get_element("corps.Wecom").unwrap();
    let data = call(&nail, "getThirdCorpData", Value::Null, &mut seen).await;
    let err = call_err(&wecom, "bulkRegister", json!({"corpData": data}), &mut seen).await;
    assert!(err.contains("corpData is of corp"), "{err}");
    assert_eq!(store.user_count().await.unwrap(), 0);
}

// ---------------------------------------------------------------- local edits

/// The member's role holdings as getLocalCorpData lists them: (roleId, origin).
async fn holdings(corp: &ElementHandle, member: &str, seen: &mut String) -> Vec<(String, String)> {
    let data = call(corp, "getLocalCorpData", Value::Null, seen).await;
    let mut out: Vec<(String, String)> = data["roleMemberSet"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["memberId"] == member)
        .map(|r| {
            (
                r["roleId"].as_str().unwrap().to_string(),
                r["origin"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_user_role_sets_local_roles_that_the_next_sync_keeps() {
    let sim = start_sim().await;
    let (_f, store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    let corp = app.get_element("corps.Wecom").unwrap();
    call(&corp, "syncCorp", Value::Null, &mut seen).await;
    let snap = store.load_snapshot("corps.Wecom").await.unwrap();
    // A member who holds no tag upstream, given two tags locally.
    let member = snap
        .members
        .keys()
        .find(|m| snap.roles.values().all(|r| !r.members.contains(m)))
        .unwrap()
        .clone();
    let roles: Vec<String> = snap.roles.keys().take(2).cloned().collect();
    let rows = call(
        &corp,
        "setUserRole",
        json!({"memberId": member, "roleIdList": roles}),
        &mut seen,
    )
    .await;
    let expected: Vec<Value> = roles
        .iter()
        .map(|r| json!({"memberId": member, "roleId": r, "origin": "local"}))
        .collect();
    assert_eq!(rows, json!(expected));
    let local: Vec<(String, String)> = roles.iter().map(|r| (r.clone(), "local".into())).collect();
    assert_eq!(holdings(&corp, &member, &mut seen).await, local);
    // The next sync neither sees nor undoes them.
    let report = call(&corp, "syncCorp", Value::Null, &mut seen).await;
    assert_eq!(report["rowsWritten"], 0, "{report}");
    assert_eq!(holdings(&corp, &member, &mut seen).await, local);
    // An unknown role changes nothing.
    let err = call_err(
        &corp,
        "setUserRole",
        json!([member, ["no-such-role"]]),
        &mut seen,
    )
    .await;
    assert!(err.contains("no-such-role"), "{err}");
    assert_eq!(holdings(&corp, &member, &mut seen).await, local);
    // An empty list removes the local roles only.
    call(&corp, "setUserRole", json!([member, []]), &mut seen).await;
    assert!(holdings(&corp, &member, &mut seen).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_member_hides_the_member_locally_and_unknown_ids_change_nothing() {
    let sim = start_sim().await;
    let (_f, store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    let corp = app.get_element("corps.Wecom").unwrap();
    call(&corp, "syncCorp", Value::Null, &mut seen).await;
    let snap = store.load_snapshot("corps.Wecom").await.unwrap();
    let who: Vec<String> = active_members(&snap, 2);
    let out = call(
        &corp,
        "offlineMember",
        json!({"memberIdList": who}),
        &mut seen,
    )
    .await;
    assert_eq!(out["offlined"], 2);
    let after = store.load_snapshot("corps.Wecom").await.unwrap();
    for id in &who {
        assert_eq!(after.members[id].status, MemberStatus::Offline);
    }
    let data = call(&corp, "getLocalCorpData", Value::Null, &mut seen).await;
    assert!(!data["userList"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| who.iter().any(|w| u["memberId"] == w.as_str())));
    let err = call_err(
        &corp,
        "offlineMember",
        json!({"memberIdList": [snap.members.keys().last().unwrap(), "ghost"]}),
        &mut seen,
    )
    .await;
    assert!(err.contains("ghost"), "{err}");
    assert_eq!(store.load_snapshot("corps.Wecom").await.unwrap(), after);
}

/// The behaviour documented for the README: a local `offlineMember` is not
/// a veto over the platform. A member who is still active upstream is
/// reactivated by the next sync (same member, same local user).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locally_offlined_member_still_active_upstream_is_reactivated_by_the_next_sync() {
    let sim = start_sim().await;
    let (_f, store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    let corp = app.get_element("corps.Wecom").unwrap();
    call(&corp, "initCorp", Value::Null, &mut seen).await;
    let snap = store.load_snapshot("corps.Wecom").await.unwrap();
    let who = first_active(&snap);
    let corp_id = sim.info().wecom.corp_id;
    let user = store
        .local_user_for(&Provider::Wecom, &corp_id, &who, None)
        .await
        .unwrap();
    call(&corp, "offlineMember", json!([[who]]), &mut seen).await;
    let report = call(&corp, "syncCorp", Value::Null, &mut seen).await;
    assert_eq!(report["counts"]["reactivated"], 1, "{report}");
    let line = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == who.as_str())
        .unwrap();
    assert_eq!(line["kind"], "reactivated", "{line}");
    let after = store.load_snapshot("corps.Wecom").await.unwrap();
    assert_eq!(after.members[&who].status, MemberStatus::Active);
    assert_eq!(
        store
            .local_user_for(&Provider::Wecom, &corp_id, &who, None)
            .await
            .unwrap(),
        user,
        "the same local user"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_signatures_are_http_urls_and_others_are_rejected() {
    let sim = start_sim().await;
    let (_f, _store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    for name in ["corps.Wecom", "corps.Nail"] {
        let corp = app.get_element(name).unwrap();
        call(&corp, "syncCorp", Value::Null, &mut seen).await;
        let data = call(&corp, "getLocalCorpData", Value::Null, &mut seen).await;
        let member = data["userList"][0]["memberId"]
            .as_str()
            .unwrap()
            .to_string();
        let none = call(
            &corp,
            "getUserSignature",
            json!({"memberId": member}),
            &mut seen,
        )
        .await;
        assert_eq!(none, json!({"signature": null}));
        let url = "https://cdn.example.com/sig/1.png";
        let saved = call(
            &corp,
            "saveUserSignature",
            json!({"memberId": member, "signature": url}),
            &mut seen,
        )
        .await;
        assert_eq!(saved["success"], true);
        for bad in [
            "javascript:alert(1)",
            "ftp://example.com/a.png",
            "data:image/png;base64,AAAA",
        ] {
            let err = call_err(&corp, "saveUserSignature", json!([member, bad]), &mut seen).await;
            assert!(err.contains("http(s) URL"), "{err}");
        }
        let got = call(&corp, "getUserSignature", json!([member]), &mut seen).await;
        assert_eq!(
            got,
            json!({"signature": url}),
            "the rejected values changed nothing"
        );
        let err = call_err(&corp, "getUserSignature", json!(["ghost"]), &mut seen).await;
        assert!(err.contains("ghost"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_admin_adds_local_admins_beside_the_platform_ones_and_syncs_keep_them() {
    let sim = start_sim().await;
    let (_f, store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    for (name, truth) in [
        ("corps.Wecom", sim.wecom_truth()),
        ("corps.Nail", sim.dingtalk_truth(0)),
    ] {
        let corp = app.get_element(name).unwrap();
        call(&corp, "syncCorp", Value::Null, &mut seen).await;
        let synced = call(&corp, "getAdmin", Value::Null, &mut seen).await;
        let mut expected: Vec<String> = truth
            .admins
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.member_id)
            .collect();
        let mut got: Vec<String> = serde_json::from_value(synced).unwrap();
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "{name}: admins come from the platform");
        let snap = store.load_snapshot(name).await.unwrap();
        let picked: Vec<String> = snap.members.keys().rev().take(2).cloned().collect();
        let out = call(
            &corp,
            "setAdmin",
            json!({"memberIdList": picked}),
            &mut seen,
        )
        .await;
        assert_eq!(out, json!({}));
        // Local admins stand beside the platform's, each listed once.
        let mut both = expected.clone();
        both.extend(picked.iter().filter(|p| !expected.contains(p)).cloned());
        both.sort();
        let admins_now = |v: Value| {
            let mut v: Vec<String> = serde_json::from_value(v).unwrap();
            v.sort();
            v
        };
        let now = call(&corp, "getAdmin", Value::Null, &mut seen).await;
        assert_eq!(admins_now(now), both);
        let err = call_err(&corp, "setAdmin", json!([["ghost"]]), &mut seen).await;
        assert!(err.contains("ghost"), "{err}");
        assert_eq!(
            admins_now(call(&corp, "getAdmin", Value::Null, &mut seen).await),
            both
        );
        // The next sync keeps them.
        call(&corp, "syncCorp", Value::Null, &mut seen).await;
        assert_eq!(
            admins_now(call(&corp, "getAdmin", Value::Null, &mut seen).await),
            both,
            "{name}: a sync never undoes setAdmin"
        );
    }
}

// ---------------------------------------------------------------- safety

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_resignation_above_the_threshold_is_refused_and_writes_nothing() {
    let sim = start_sim().await;
    let (_f, store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    let corp = app.get_element("corps.Wecom").unwrap();
    call(&corp, "syncCorp", Value::Null, &mut seen).await;
    let before = store.load_snapshot("corps.Wecom").await.unwrap();
    let leavers: Vec<String> = active_members(&sim.wecom_truth(), 12);
    for id in &leavers {
        sim.mutate(OrgRef::Wecom, Mutation::RemoveMember { userid: id.clone() })
            .unwrap();
    }
    let err = call_err(&corp, "syncCorp", Value::Null, &mut seen).await;
    assert!(err.contains("refused"), "{err}");
    assert!(err.contains("would offline 12 of"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(store.load_snapshot("corps.Wecom").await.unwrap(), before);
    let runs = store.list_runs("corps.Wecom", 1).await.unwrap();
    assert_eq!(runs[0].outcome, RunOutcome::Refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_threshold_comes_from_the_config_sync_object() {
    let sim = start_sim().await;
    let f = Fixture::new();
    let mut cfg = wecom_flat(&sim);
    cfg["sync"] = json!({"maxOfflineRatio": 0.5});
    f.org("Wecom", "corps.QywxInnerType", cfg);
    let store = f.store().await;
    let app = f.load(&store, None);
    let mut seen = String::new();
    let corp = app.get_element("corps.Wecom").unwrap();
    call(&corp, "syncCorp", Value::Null, &mut seen).await;
    let leavers: Vec<String> = active_members(&sim.wecom_truth(), 12);
    for id in &leavers {
        sim.mutate(OrgRef::Wecom, Mutation::RemoveMember { userid: id.clone() })
            .unwrap();
    }
    let report = call(&corp, "syncCorp", Value::Null, &mut seen).await;
    assert_eq!(report["counts"]["offlined"], 12, "{report}");
}

// ---------------------------------------------------------------- two DingTalk orgs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_person_in_two_dingtalk_orgs_is_one_local_user_with_two_memberships() {
    let sim = start_sim().await;
    let f = Fixture::new();
    f.org("Nail0", "corps.DDInnerType", dingtalk_nested(&sim, 0));
    // The second org in the flat form.
    let d1 = &sim.info().dingtalk[1];
    f.org(
        "Nail1",
        "corps.DDInnerType",
        json!({"corpId": d1.corp_id, "agentId": d1.agent_id.to_string(), "appKey": d1.app_key,
               "appSecret": d1.app_secret, "apiBase": d1.api_base_url}),
    );
    let store = f.store().await;
    let app = f.load(&store, None);
    let mut seen = String::new();
    for name in ["corps.Nail0", "corps.Nail1"] {
        let corp = app.get_element(name).unwrap();
        call(&corp, "initCorp", Value::Null, &mut seen).await;
    }
    let (t0, t1) = (sim.dingtalk_truth(0), sim.dingtalk_truth(1));
    let union_of = |t: &CorpSnapshot| -> BTreeMap<String, String> {
        t.members
            .values()
            .map(|m| (m.union_id.clone().unwrap(), m.member_id.clone()))
            .collect()
    };
    let (u0, u1) = (union_of(&t0), union_of(&t1));
    let active = |t: &CorpSnapshot, id: &str| t.members[id].status == MemberStatus::Active;
    // People in both orgs, active in both (the check below expects that).
    let shared: Vec<&String> = u0
        .keys()
        .filter(|u| u1.contains_key(*u) && active(&t0, &u0[*u]) && active(&t1, &u1[*u]))
        .collect();
    assert!(
        !shared.is_empty(),
        "the simulator shares people between orgs"
    );
    let people: BTreeSet<&String> = u0.keys().chain(u1.keys()).collect();
    assert_eq!(store.user_count().await.unwrap(), people.len() as u64);

    let info = sim.info();
    let union = shared[0].clone();
    let (m0, m1) = (u0[&union].clone(), u1[&union].clone());
    let user0 = store
        .local_user_for(
            &Provider::DingTalk,
            &info.dingtalk[0].corp_id,
            &m0,
            Some(&union),
        )
        .await
        .unwrap()
        .unwrap();
    let user1 = store
        .local_user_for(&Provider::DingTalk, &info.dingtalk[1].corp_id, &m1, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user0, user1, "one local user");
    let mut ms = store.memberships_of_user(user0).await.unwrap();
    ms.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        ms,
        vec![
            ("corps.Nail0".to_string(), m0.clone(), MemberStatus::Active),
            ("corps.Nail1".to_string(), m1.clone(), MemberStatus::Active),
        ]
    );

    // Offlining in one org leaves the other membership active.
    let nail0 = app.get_element("corps.Nail0").unwrap();
    call(
        &nail0,
        "offlineMember",
        json!({"memberIdList": [m0]}),
        &mut seen,
    )
    .await;
    let mut ms = store.memberships_of_user(user0).await.unwrap();
    ms.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        ms,
        vec![
            ("corps.Nail0".to_string(), m0.clone(), MemberStatus::Offline),
            ("corps.Nail1".to_string(), m1.clone(), MemberStatus::Active),
        ]
    );
    let nail1 = app.get_element("corps.Nail1").unwrap();
    let data = call(&nail1, "getLocalCorpData", Value::Null, &mut seen).await;
    assert!(data["userList"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["memberId"] == m1.as_str() && u["userId"] == user0));
    assert_no_secret(&sim, &seen);
}

// ---------------------------------------------------------------- config forms

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flat_nested_and_placeholder_configs_reach_the_same_org() {
    let sim = start_sim().await;
    let info = sim.info();
    let f = Fixture::new();
    f.org("Flat", "corps.QywxInnerType", wecom_flat(&sim));
    f.org(
        "Nested",
        "corps.QywxInnerType",
        json!({"authConfig": {"corpId": info.wecom.corp_id, "agentId": info.wecom.agent_id,
               "secret": info.wecom.secret, "apiBase": info.wecom.api_base_url}}),
    );
    f.org(
        "Placeholders",
        "corps.QywxInnerType",
        json!({"corpId": "{{T_CORP}}", "agentId": "{{T_AGENT}}", "secret": "{{T_SECRET}}",
               "apiBase": "{{T_BASE}}"}),
    );
    let env: HashMap<String, String> = [
        ("T_CORP", info.wecom.corp_id.clone()),
        ("T_AGENT", info.wecom.agent_id.to_string()),
        ("T_SECRET", info.wecom.secret.clone()),
        ("T_BASE", info.wecom.api_base_url.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let store = f.store().await;
    let app = f.load(&store, Some(env));
    assert!(
        !app.diagnostics().has_errors(),
        "{:?}",
        app.diagnostics().iter().collect::<Vec<_>>()
    );
    let mut seen = String::new();
    let truth = as_synced(sim.wecom_truth());
    for name in ["corps.Flat", "corps.Nested", "corps.Placeholders"] {
        let corp = app.get_element(name).unwrap();
        let auth = corp.property("authConfig").unwrap();
        assert_eq!(auth["corpId"], info.wecom.corp_id.as_str(), "{name}");
        assert_eq!(auth["agentId"], info.wecom.agent_id.to_string(), "{name}");
        call(&corp, "syncCorp", Value::Null, &mut seen).await;
        assert_same_org(&store.load_snapshot(name).await.unwrap(), &truth);
        seen.push_str(&corp.property("corpData").unwrap().to_string());
    }
    assert_no_secret(&sim, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unset_placeholder_is_a_load_diagnostic_naming_the_variable() {
    let f = Fixture::new();
    f.org(
        "Acme",
        "corps.QywxInnerType",
        json!({"corpId": "ww1", "agentId": "1", "secret": "{{T_NOT_SET_ANYWHERE}}"}),
    );
    let store = f.store().await;
    let app = f.load(&store, Some(HashMap::new()));
    let d = app
        .diagnostics()
        .iter()
        .find(|d| d.code == DiagCode::UnsetVariable)
        .cloned()
        .expect("an unset-variable diagnostic");
    assert!(d.message.contains("T_NOT_SET_ANYWHERE"), "{d}");
    assert!(app.get_element("corps.Acme").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_declared_in_the_app_extending_qywx_inherits_behaviour_and_config_schema() {
    let sim = start_sim().await;
    let f = Fixture::new();
    f.json(
        "corps/MyWecomType/e.json",
        json!({"title": "Our WeCom type", "kind": "Type", "type": "corps.QywxInnerType"}),
    );
    f.org("Branch", "corps.MyWecomType", wecom_flat(&sim));
    // Missing `secret` and an unknown key: the inherited schema rejects it.
    f.org(
        "Broken",
        "corps.MyWecomType",
        json!({"corpId": "ww1", "agentId": "1", "secrett": "typo"}),
    );
    let store = f.store().await;
    let app = f.load(&store, None);
    let broken: Vec<_> = app
        .diagnostics()
        .iter()
        .filter(|d| d.element.as_deref() == Some("corps.Broken"))
        .cloned()
        .collect();
    assert!(
        broken.iter().any(|d| d.code == DiagCode::InvalidConfig),
        "{broken:?}"
    );
    assert!(
        !app.diagnostics()
            .iter()
            .any(|d| d.element.as_deref() == Some("corps.Branch")),
        "the valid instance has no problem"
    );
    let branch = app.get_element("corps.Branch").unwrap();
    assert_eq!(branch.type_name(), "corps.QywxInnerType");
    let methods: BTreeSet<&str> = branch.functions().iter().map(|f| f.name.as_str()).collect();
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
        assert!(methods.contains(m), "{m} is inherited");
    }
    let mut seen = String::new();
    call(&branch, "syncCorp", Value::Null, &mut seen).await;
    assert_same_org(
        &store.load_snapshot("corps.Branch").await.unwrap(),
        &as_synced(sim.wecom_truth()),
    );
    let info = call(&branch, "getCorpInfo", Value::Null, &mut seen).await;
    assert_eq!(info["type"], "corps.MyWecomType");
    assert_eq!(
        store.corp("corps.Branch").await.unwrap().unwrap().corp_type,
        "corps.MyWecomType"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_and_bad_arguments_are_rejected_before_the_org_runs() {
    let sim = start_sim().await;
    let (_f, store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    let corp = app.get_element("corps.Nail").unwrap();
    // DingTalk's seed has no setUserRole.
    let err = call_err(&corp, "setUserRole", json!(["a", ["b"]]), &mut seen).await;
    assert!(err.contains("has no method `setUserRole`"), "{err}");
    let err = call_err(
        &corp,
        "offlineMember",
        json!({"memberIdList": "u1"}),
        &mut seen,
    )
    .await;
    assert!(err.contains("memberIdList"), "{err}");
    assert!(
        store.corp("corps.Nail").await.unwrap().is_none(),
        "nothing ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_org_syncs_only_its_subtree_and_its_root_dept_is_the_scope_root() {
    let sim = start_sim().await;
    let truth = sim.wecom_truth();
    // A department below the root that has children of its own, if any.
    let scope_root = truth
        .depts
        .values()
        .filter(|d| d.parent_id.is_some())
        .max_by_key(|d| {
            truth
                .depts
                .values()
                .filter(|c| c.parent_id == Some(d.dept_id))
                .count()
        })
        .unwrap()
        .clone();
    let f = Fixture::new();
    let mut cfg = wecom_flat(&sim);
    cfg["sync"] = json!({"syncScope": [scope_root.dept_id]});
    f.org("Scoped", "corps.QywxInnerType", cfg);
    let store = f.store().await;
    let app = f.load(&store, None);
    let mut seen = String::new();
    let corp = app.get_element("corps.Scoped").unwrap();
    let report = call(&corp, "syncCorp", Value::Null, &mut seen).await;
    assert_eq!(report["outcome"], "applied", "{report}");
    let stored = store.load_snapshot("corps.Scoped").await.unwrap();
    assert!(stored.depts.contains_key(&scope_root.dept_id));
    assert!(stored.depts.len() < truth.depts.len(), "only the subtree");
    let root = call(&corp, "getRootDept", Value::Null, &mut seen).await;
    assert_eq!(root["deptId"], scope_root.dept_id, "{root}");
    assert_eq!(root["name"], scope_root.name.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_platform_fails_clearly_and_never_shows_the_secret_from_the_token_url() {
    // A port nothing listens on: the token request fails at connect time,
    // the moment an HTTP client likes to print the full URL (with the
    // secret in its query string).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let f = Fixture::new();
    f.org(
        "Wecom",
        "corps.QywxInnerType",
        json!({"corpId": "ww-unreachable", "agentId": "1", "secret": "SECRET-IN-QUERY-1",
               "apiBase": format!("{base}/cgi-bin/"), "sync": {"timeoutSecs": 2}}),
    );
    f.org(
        "Nail",
        "corps.DDInnerType",
        json!({"corpId": "ding-unreachable", "agentId": "1", "appKey": "k",
               "appSecret": "SECRET-IN-QUERY-2", "apiBase": base, "tokenEndpoint": "gettoken",
               "sync": {"timeoutSecs": 2}}),
    );
    let store = f.store().await;
    let app = f.load(&store, None);
    let (wecom, nail) = (
        app.get_element("corps.Wecom").unwrap(),
        app.get_element("corps.Nail").unwrap(),
    );
    // Both at once: each retries with back-off before giving up.
    let (mut seen_w, mut seen_n) = (String::new(), String::new());
    let (err_w, err_n) = tokio::join!(
        call_err(&wecom, "syncCorp", Value::Null, &mut seen_w),
        call_err(&nail, "syncCorp", Value::Null, &mut seen_n),
    );
    let mut seen = seen_w + &seen_n;
    for (name, err) in [("corps.Wecom", err_w), ("corps.Nail", err_n)] {
        assert!(err.contains(name), "{err}");
        assert!(err.contains("nothing was changed"), "{err}");
        let runs = store.list_runs(name, 5).await.unwrap();
        seen.push_str(&format!("{runs:?}"));
        assert_eq!(runs[0].outcome, RunOutcome::Failed);
    }
    assert!(!seen.contains("SECRET-IN-QUERY"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locally_offlined_member_who_also_left_upstream_stays_offline_without_a_change_line() {
    let sim = start_sim().await;
    let (_f, store, app) = both_orgs(&sim).await;
    let mut seen = String::new();
    let corp = app.get_element("corps.Wecom").unwrap();
    call(&corp, "syncCorp", Value::Null, &mut seen).await;
    let who = first_active(&sim.wecom_truth());
    call(&corp, "offlineMember", json!([[who]]), &mut seen).await;
    sim.mutate(
        OrgRef::Wecom,
        Mutation::RemoveMember {
            userid: who.clone(),
        },
    )
    .unwrap();
    let report = call(&corp, "syncCorp", Value::Null, &mut seen).await;
    // Their tag and admin entries go (the platform dropped them); the
    // member row itself needs no change.
    assert!(
        !report["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["object"] == "member"),
        "{report}"
    );
    assert_eq!(report["counts"].get("offlined"), None, "{report}");
    let after = store.load_snapshot("corps.Wecom").await.unwrap();
    assert_eq!(
        after.members[&who].status,
        MemberStatus::Offline,
        "kept, not deleted"
    );
}

// ---------------------------------------------------------------- read coverage

/// Syncs `name` with the offline guard fully open (only read coverage
/// protects the store) and returns the run report.
async fn sync_with_guard_open(app: &App, name: &str) -> jit_sync::SyncReport {
    let handle = app.get_element(name).unwrap();
    let corp = handle.downcast_ref::<jit_corps::CorpElement>().unwrap();
    let mut opts = corp.sync_options();
    opts.max_offline_ratio = 1.0;
    corp.sync_corp(&opts, &jit_sync::NoProgress)
        .await
        .expect("a partial read still applies what it covered")
}

/// Departments with their parents, (member, dept) memberships, role holdings.
type Facts = (
    BTreeMap<i64, Option<i64>>,
    BTreeSet<(String, i64)>,
    BTreeSet<(String, String)>,
    BTreeMap<String, MemberStatus>,
);

fn facts(s: &CorpSnapshot) -> Facts {
    (
        s.depts.values().map(|d| (d.dept_id, d.parent_id)).collect(),
        s.members
            .values()
            .flat_map(|m| m.depts.iter().map(|d| (m.member_id.clone(), d.dept_id)))
            .collect(),
        s.roles
            .values()
            .flat_map(|r| r.members.iter().map(|m| (r.role_id.clone(), m.clone())))
            .collect(),
        s.members
            .values()
            .map(|m| (m.member_id.clone(), m.status))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dingtalk_permission_errors_on_two_departments_lose_nothing() {
    let sim = start_sim().await;
    let (_f, store, app) = both_orgs(&sim).await;
    sync_with_guard_open(&app, "corps.Nail").await;
    let before = store.load_snapshot("corps.Nail").await.unwrap();
    // The app lacks the permission point (60011 on department/get, user/list
    // and listsubid) for: a department with children (its whole subtree
    // goes unread), then two leaf departments with members.
    let with_kids = before
        .depts
        .values()
        .find(|d| {
            d.parent_id.is_some()
                && before
                    .depts
                    .values()
                    .any(|c| c.parent_id == Some(d.dept_id))
        })
        .expect("a department with children")
        .dept_id;
    let has_members = |id: i64| {
        before
            .members
            .values()
            .any(|m| m.depts.iter().any(|x| x.dept_id == id))
    };
    let leaves: Vec<i64> = before
        .depts
        .values()
        .filter(|d| {
            before
                .depts
                .values()
                .all(|c| c.parent_id != Some(d.dept_id))
        })
        .map(|d| d.dept_id)
        .filter(|id| has_members(*id))
        .take(2)
        .collect();
    assert_eq!(leaves.len(), 2, "{:?}", facts(&before).0);
    for refused in [vec![with_kids], leaves] {
        let refusals = refused
            .iter()
            .map(|&dept_id| jit_sim::DeptRefusal {
                dept_id,
                errcode: 60011,
            })
            .collect();
        sim.set_refused_depts(OrgRef::Dingtalk(0), refusals)
            .unwrap();
        let report = sync_with_guard_open(&app, "corps.Nail").await;
        assert!(!report.is_complete(), "a permission error is a failed read");
        assert_eq!(
            report.counts.get(&jit_org::ChangeKind::Offlined),
            None,
            "{:?}",
            report.changes
        );
        assert_eq!(
            report.counts.get(&jit_org::ChangeKind::Removed),
            None,
            "{:?}",
            report.changes
        );
        let after = store.load_snapshot("corps.Nail").await.unwrap();
        assert_eq!(
            facts(&after),
            facts(&before),
            "refused {refused:?}: nothing the read missed changed"
        );
    }
    // Once the permission is granted, the next sync is complete again.
    sim.set_refused_depts(OrgRef::Dingtalk(0), Vec::new())
        .unwrap();
    assert!(sync_with_guard_open(&app, "corps.Nail").await.is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wecom_permission_error_on_one_department_keeps_its_members_and_their_tags() {
    let sim = start_sim().await;
    let (_f, store, app) = both_orgs(&sim).await;
    sync_with_guard_open(&app, "corps.Wecom").await;
    let before = store.load_snapshot("corps.Wecom").await.unwrap();
    // The department whose members hold the most tags.
    let tagged: BTreeSet<&String> = before.roles.values().flat_map(|r| &r.members).collect();
    let dept = before
        .depts
        .keys()
        .max_by_key(|d| {
            before
                .members
                .values()
                .filter(|m| {
                    m.depts.iter().any(|x| x.dept_id == **d) && tagged.contains(&m.member_id)
                })
                .count()
        })
        .copied()
        .unwrap();
    for errcode in [60011, 60020] {
        sim.set_refused_depts(
            OrgRef::Wecom,
            vec![jit_sim::DeptRefusal {
                dept_id: dept,
                errcode,
            }],
        )
        .unwrap();
        let report = sync_with_guard_open(&app, "corps.Wecom").await;
        assert!(
            !report.is_complete(),
            "{errcode} on a listed department is a failed read"
        );
        assert_eq!(
            report.counts.get(&jit_org::ChangeKind::Offlined),
            None,
            "{:?}",
            report.changes
        );
        let after = store.load_snapshot("corps.Wecom").await.unwrap();
        assert_eq!(
            facts(&after),
            facts(&before),
            "{errcode}: nothing the read missed changed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_export_reimported_through_a_plugin_stays_scoped() {
    let sim = start_sim().await;
    let (_f, store, app) = both_orgs(&sim).await;
    sync_with_guard_open(&app, "corps.Wecom").await;
    let before = store.load_snapshot("corps.Wecom").await.unwrap();
    // A scoped read of one subtree, exported in the seed's CorpData shape
    // and read back (what a plugin passing corpData does).
    let root = before
        .depts
        .values()
        .find(|d| d.parent_id == Some(1))
        .unwrap()
        .dept_id;
    let handle = app.get_element("corps.Wecom").unwrap();
    let corp = handle.downcast_ref::<jit_corps::CorpElement>().unwrap();
    let mut opts = corp.sync_options();
    opts.fetch.scope = vec![root];
    let client = corp.client().unwrap();
    let scoped = client
        .source()
        .fetch(&opts.fetch, &jit_sync::NoProgress)
        .await
        .unwrap();
    let back = CorpSnapshot::from_corp_data(&scoped.to_corp_data()).unwrap();
    assert_eq!(back.scope, vec![root]);
    let source = jit_sync::SnapshotSource {
        snapshot: back,
        provider: Provider::Wecom,
    };
    let record = store.corp("corps.Wecom").await.unwrap().unwrap();
    let report = jit_sync::run_sync(
        &source,
        store.as_ref(),
        &record,
        &jit_sync::SyncOptions {
            max_offline_ratio: 1.0,
            ..jit_sync::SyncOptions::default()
        },
        &jit_sync::NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(
        report.counts.get(&jit_org::ChangeKind::Offlined),
        None,
        "{:?}",
        report.changes
    );
    assert_eq!(
        report.counts.get(&jit_org::ChangeKind::Removed),
        None,
        "{:?}",
        report.changes
    );
    assert_eq!(
        facts(&store.load_snapshot("corps.Wecom").await.unwrap()),
        facts(&before)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_element_kept_after_its_app_is_dropped_still_uses_the_apps_own_store() {
    let sim = start_sim().await;
    let f = Fixture::new();
    f.org("Wecom", "corps.QywxInnerType", wecom_flat(&sim));
    let mut registry = TypeRegistry::new();
    jit_corps::register_builtins(&mut registry);
    let app = App::load(
        f.root(),
        LoadOptions {
            registry,
            env: None,
            skip_startup: true,
        },
    )
    .expect("app loads");
    let corp = app.get_element("corps.Wecom").unwrap();
    drop(app);
    let mut seen = String::new();
    let report = call(&corp, "syncCorp", Value::Null, &mut seen).await;
    assert_eq!(report["outcome"], "applied");
    assert!(
        f.root().join(".jit/org.db").exists(),
        "the store is the app's own, not one in the current directory"
    );
}
