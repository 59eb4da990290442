//! `apply_events` against the simulator: every event kind changes the store
//! exactly as a full sync would.
//!
//! Each test syncs a small simulated org into a fresh store, points the
//! simulator's callback at a capturing receiver (it opens each push with the
//! org's crypto and keeps it as an `InboxEvent`), changes the org through
//! the simulator's admin API, and applies the captured events. Afterwards
//! the store must hold the simulator's truth, and a full sync must find
//! nothing left to change. Store-sensitive cases run on SQLite and
//! PostgreSQL (`JIT_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`, a schema per test).

use axum::extract::{Query, State};
use axum::routing::post;
use axum::{Json, Router};
use jit_apiclient::{ClientTuning, RateLimit, RetryPolicy};
use jit_corps::CorpClient;
use jit_dingtalk::{DingTalkClient, DingTalkConfig};
use jit_events::apply::{apply_events, ApplyContext, ApplyOutcome, InboxEvent};
use jit_events::receive::{CallbackQuery, DingTalkPush, Receiver};
use jit_org::{ChangeKind, CorpRecord, CorpSnapshot, MemberStatus, Platform};
use jit_sim::truth::{active_members, as_synced, assert_same_org};
use jit_sim::{
    AdminSpec, CallbackConfig, FaultKind, MembershipSpec, Mutation, OrgRef, SimConfig, SimHandle,
    Simulator,
};
use jit_store::{CorpStore, RunKind, RunOutcome};
use jit_sync::{run_sync, NoProgress, SyncOptions};
use jit_wecom::{WecomClient, WecomConfig};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "applytoken7";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const CORP: &str = "corps.Events";

/// The fields of a WeCom event the receiver keeps (the XML is flat).
/// Where a test's store lives (opened again for more connections).
type Place = jit_store::scratch::ScratchStore;

fn sqlite() -> Place {
    Place::sqlite()
}

fn postgres() -> Place {
    Place::postgres("jit_events_test")
}

/// The captured pushes of one org, as the inbox would hand them over.
#[derive(Clone)]
struct Capture {
    platform: Platform,
    /// jit serve's own receiver: verifies, opens and reads each callback.
    receiver: Arc<Receiver>,
    got: Arc<Mutex<Vec<InboxEvent>>>,
    next_id: Arc<AtomicI64>,
}

impl Capture {
    fn keep(&self, event_type: String, payload: Value) {
        self.got.lock().unwrap().push(InboxEvent {
            id: self.next_id.fetch_add(1, Ordering::SeqCst),
            corp: CORP.into(),
            platform: self.platform,
            event_type,
            payload,
            received_at_ms: 0,
            attempts: 0,
        });
    }
}

async fn wecom_post(
    State(c): State<Capture>,
    Query(q): Query<CallbackQuery>,
    body: String,
) -> String {
    let event = c
        .receiver
        .wecom_event(&q, &body, now_ms())
        .expect("a valid event");
    c.keep(
        event.event_type,
        serde_json::from_str(&event.payload).unwrap(),
    );
    "success".into()
}

async fn ding_post(
    State(c): State<Capture>,
    Query(q): Query<CallbackQuery>,
    body: String,
) -> Json<Value> {
    match c
        .receiver
        .dingtalk_push(&q, &body, now_ms())
        .expect("a valid push")
    {
        DingTalkPush::Event(event) => c.keep(
            event.event_type,
            serde_json::from_str(&event.payload).unwrap(),
        ),
        DingTalkPush::CheckUrl => {}
    }
    Json(serde_json::to_value(c.receiver.dingtalk_success(now_ms()).unwrap()).unwrap())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A synced org, its simulator, its store and the events captured so far.
struct Fx {
    sim: SimHandle,
    _place: Place,
    store: Arc<dyn CorpStore>,
    corp: CorpRecord,
    client: CorpClient,
    capture: Capture,
    org: OrgRef,
    /// Events the mutations so far pushed.
    pushed: AtomicUsize,
}

fn tuning() -> ClientTuning {
    ClientTuning {
        concurrency: 8,
        rate_limit: RateLimit::unlimited(),
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 1,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            throttle_delay: Duration::from_millis(10),
        },
    }
}

async fn fixture(platform: Platform, place: Place) -> Fx {
    let sim = Simulator::start(SimConfig {
        seed: 7,
        depts: 12,
        users: 60,
        dingtalk_depts: Some(12),
        dingtalk_users: Some(60),
        max_depth: 3,
        fan_out: 3,
        dingtalk_orgs: 1,
        wecom_rate_per_minute: 0,
        wecom_rate_per_hour: 0,
        dingtalk_rate_per_second: 0,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let info = sim.info();
    let (client, corp_id, org, corp_for_crypto) = match platform {
        Platform::Wecom => {
            let w = &info.wecom;
            let mut c = WecomConfig::new(&w.corp_id, w.agent_id.to_string(), &w.secret);
            c.api_base = w.api_base_url.clone();
            c.tuning = tuning();
            let client = CorpClient::Wecom(Arc::new(WecomClient::new(c).unwrap()));
            (client, w.corp_id.clone(), OrgRef::Wecom, w.corp_id.clone())
        }
        Platform::DingTalk => {
            let d = &info.dingtalk[0];
            let mut c = DingTalkConfig::new(
                &d.corp_id,
                d.agent_id.to_string(),
                &d.app_key,
                &d.app_secret,
            );
            c.api_base = d.api_base_url.clone();
            c.oapi_base = d.oapi_base_url.clone();
            c.tuning = tuning();
            let client = CorpClient::DingTalk(Arc::new(DingTalkClient::new(c).unwrap()));
            (
                client,
                d.corp_id.clone(),
                OrgRef::Dingtalk(0),
                d.app_key.clone(),
            )
        }
    };
    let corp = CorpRecord {
        full_name: CORP.into(),
        title: "Events".into(),
        corp_type: "corps.QywxInnerType".into(),
        provider: platform.provider(),
        corp_id,
    };
    let store = place.open().await;
    let first = run_sync(
        client.source(),
        store.as_ref(),
        &corp,
        &SyncOptions::default(),
        &NoProgress,
    )
    .await
    .expect("the first sync applies");
    assert!(first.is_complete());
    let capture = Capture {
        platform,
        receiver: Arc::new(
            match platform {
                Platform::Wecom => Receiver::wecom(CORP, TOKEN, KEY, &corp.corp_id),
                Platform::DingTalk => {
                    Receiver::dingtalk(CORP, TOKEN, KEY, &corp.corp_id, &corp_for_crypto)
                }
            }
            .unwrap(),
        ),
        got: Arc::default(),
        next_id: Arc::new(AtomicI64::new(1)),
    };
    let app = Router::new()
        .route("/wecom", post(wecom_post))
        .route("/ding", post(ding_post))
        .with_state(capture.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let path = if platform == Platform::Wecom {
        "wecom"
    } else {
        "ding"
    };
    sim.set_callback(
        org,
        Some(CallbackConfig {
            url: format!("http://{addr}/{path}"),
            token: TOKEN.into(),
            aes_key: KEY.into(),
        }),
    )
    .unwrap();
    Fx {
        sim,
        _place: place,
        store,
        corp,
        client,
        capture,
        org,
        pushed: AtomicUsize::new(0),
    }
}

impl Fx {
    fn ctx(&self) -> ApplyContext<'_> {
        ApplyContext::new(
            self.store.as_ref(),
            self.corp.clone(),
            SyncOptions::default(),
            self.client.clone(),
        )
    }

    fn truth(&self) -> CorpSnapshot {
        match self.org {
            OrgRef::Wecom => self.sim.wecom_truth(),
            OrgRef::Dingtalk(i) => self.sim.dingtalk_truth(i),
        }
    }

    async fn stored(&self) -> CorpSnapshot {
        self.store.load_snapshot(CORP).await.unwrap()
    }

    /// Makes one change upstream.
    fn change(&self, m: Mutation) -> jit_sim::MutationOutcome {
        let out = self.sim.mutate(self.org, m).unwrap();
        self.pushed.fetch_add(out.events.len(), Ordering::SeqCst);
        out
    }

    /// Makes the mutations upstream and returns every event pushed since
    /// the last call, once all have arrived.
    async fn mutate(&self, ms: Vec<Mutation>) -> Vec<InboxEvent> {
        for m in ms {
            self.change(m);
        }
        let expected = self.pushed.swap(0, Ordering::SeqCst);
        let t0 = Instant::now();
        loop {
            let n = self.capture.got.lock().unwrap().len();
            if n >= expected {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "only {n} of {expected} events arrived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::mem::take(&mut *self.capture.got.lock().unwrap())
    }

    async fn apply(&self, events: &[InboxEvent]) -> ApplyOutcome {
        apply_events(&self.ctx(), events)
            .await
            .expect("the events apply")
    }

    /// The store holds the truth (members who left are offline, never
    /// deleted), and a full sync finds nothing left to change.
    async fn assert_follows_truth(&self) {
        let mut stored = self.stored().await;
        stored
            .members
            .retain(|_, m| m.status != MemberStatus::Offline);
        assert_same_org(&stored, &as_synced(self.truth()));
        let full = run_sync(
            self.client.source(),
            self.store.as_ref(),
            &self.corp,
            &SyncOptions {
                dry_run: true,
                ..SyncOptions::default()
            },
            &NoProgress,
        )
        .await
        .unwrap();
        let missed: Vec<_> = full
            .changes
            .iter()
            .filter(|c| c.kind != ChangeKind::Skipped)
            .collect();
        assert!(
            missed.is_empty(),
            "a full sync would still change {missed:?}"
        );
    }
}

fn depts_of(snap: &CorpSnapshot) -> Vec<i64> {
    snap.depts.keys().copied().filter(|d| *d != 1).collect()
}

/// A few of every member change: hire, rename, move, disable, leave.
fn member_changes(truth: &CorpSnapshot) -> Vec<Mutation> {
    let people = active_members(truth, 4);
    let depts = depts_of(truth);
    vec![
        Mutation::add_member(
            "newhire01",
            "New Hire",
            vec![MembershipSpec::of(depts[0]), MembershipSpec::of(depts[2])],
        ),
        Mutation::rename_member(&people[0], "Renamed Person"),
        Mutation::MoveMember {
            userid: people[1].clone(),
            depts: vec![MembershipSpec {
                dept_id: depts[3],
                order: 5,
                leader: true,
            }],
            main_dept: None,
        },
        Mutation::DisableMember {
            userid: people[2].clone(),
        },
        Mutation::RemoveMember {
            userid: people[3].clone(),
        },
    ]
}

/// New, renamed, moved and removed departments (a new department with a
/// member in it, so its event and the member's arrive in one batch).
fn dept_changes(fx: &Fx) {
    let truth = fx.truth();
    let depts = depts_of(&truth);
    let new = fx
        .change(Mutation::add_dept(depts[0], "Brand New"))
        .dept_id
        .unwrap();
    let empty = fx
        .change(Mutation::add_dept(depts[1], "Short Lived"))
        .dept_id
        .unwrap();
    for m in [
        Mutation::add_member("indept01", "In New Dept", vec![MembershipSpec::of(new)]),
        Mutation::RenameDept {
            dept_id: depts[1],
            name: "Renamed Dept".into(),
        },
        Mutation::MoveDept {
            dept_id: depts[2],
            parent_id: new,
        },
        Mutation::RemoveDept { dept_id: empty },
    ] {
        fx.change(m);
    }
}

async fn every_member_event_changes_the_store_as_a_full_sync_would(
    platform: Platform,
    place: Place,
) {
    let fx = fixture(platform, place).await;
    let events = fx.mutate(member_changes(&fx.truth())).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    match platform {
        Platform::Wecom => {
            for k in ["create_user", "update_user", "delete_user"] {
                assert!(kinds.contains(&k), "{k} in {kinds:?}");
            }
        }
        Platform::DingTalk => {
            for k in ["user_add_org", "user_modify_org", "user_leave_org"] {
                assert!(kinds.contains(&k), "{k} in {kinds:?}");
            }
        }
    }
    let out = fx.apply(&events).await;
    let report = out.report.expect("a run");
    assert_eq!(report.outcome, RunOutcome::Applied);
    // The batch is one run of kind `event` in the org's history.
    let runs = fx.store.list_runs(CORP, 10).await.unwrap();
    assert_eq!(runs[0].run_id, report.run_id);
    assert_eq!(runs[0].kind, RunKind::Event);
    assert_eq!(runs[1].kind, RunKind::Sync, "the first sync");
    fx.assert_follows_truth().await;
}

async fn every_department_event_changes_the_store_as_a_full_sync_would(
    platform: Platform,
    place: Place,
) {
    let fx = fixture(platform, place).await;
    dept_changes(&fx);
    let events = fx.mutate(Vec::new()).await;
    // 2 creates + hire + rename + move + remove.
    assert_eq!(events.len(), 6, "{events:?}");
    fx.apply(&events).await;
    fx.assert_follows_truth().await;
}

async fn role_and_admin_events_change_the_store_as_a_full_sync_would(platform: Platform) {
    let fx = fixture(platform, sqlite()).await;
    let truth = fx.truth();
    let admins: Vec<String> = truth
        .admins
        .iter()
        .flatten()
        .map(|a| a.member_id.clone())
        .collect();
    let people: Vec<String> = active_members(&truth, 10)
        .into_iter()
        .filter(|p| !admins.contains(p))
        .take(3)
        .collect();
    // Roles with holders (WeCom pushes nothing for an empty tag's removal).
    let mut roles: Vec<i64> = truth
        .roles
        .values()
        .filter(|r| !["主管理员", "子管理员"].contains(&r.name.as_str()))
        .filter(|r| !r.members.is_empty())
        .map(|r| r.role_id.parse().unwrap())
        .collect();
    roles.sort();
    let mut ms = vec![
        Mutation::AddRoleMembers {
            role_id: roles[0],
            userids: people.clone(),
        },
        Mutation::RemoveRoleMembers {
            role_id: roles[1],
            userids: truth.roles[&roles[1].to_string()]
                .members
                .iter()
                .take(1)
                .cloned()
                .collect(),
        },
        Mutation::SetAdmins {
            // A new admin replaces the current ones.
            admins: vec![AdminSpec {
                userid: people[2].clone(),
                level: 1,
            }],
        },
    ];
    if platform == Platform::DingTalk {
        let group = truth.role_groups.keys().next().unwrap().parse().unwrap();
        ms.extend([
            Mutation::AddRole {
                role_id: None,
                group_id: Some(group),
                name: "Auditors".into(),
            },
            Mutation::RenameRole {
                role_id: roles[2],
                name: "Renamed Role".into(),
            },
            Mutation::RemoveRole { role_id: roles[3] },
        ]);
    } else {
        // WeCom pushes update_tag for a deleted tag that had members.
        ms.push(Mutation::RemoveRole { role_id: roles[2] });
    }
    let events = fx.mutate(ms).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let expected: &[&str] = match platform {
        Platform::Wecom => &["update_tag", "change_app_admin"],
        Platform::DingTalk => &[
            "label_user_change",
            "org_admin_add",
            "org_admin_remove",
            "label_conf_add",
            "label_conf_modify",
            "label_conf_del",
        ],
    };
    for k in expected {
        assert!(kinds.contains(k), "{k} in {kinds:?}");
    }
    fx.apply(&events).await;
    fx.assert_follows_truth().await;
}

async fn duplicates_and_out_of_order_retries_are_harmless(platform: Platform, place: Place) {
    let fx = fixture(platform, place).await;
    let events = fx.mutate(member_changes(&fx.truth())).await;
    let mut reversed = events.clone();
    reversed.reverse();
    fx.apply(&reversed).await;
    fx.assert_follows_truth().await;
    // The platform retries everything once more, in another order.
    let again = fx.apply(&events).await;
    let changed: Vec<_> = again
        .report
        .unwrap()
        .changes
        .into_iter()
        .filter(|c| c.kind != ChangeKind::Skipped)
        .collect();
    assert!(changed.is_empty(), "a duplicate changed {changed:?}");
    fx.assert_follows_truth().await;
}

async fn an_event_whose_read_fails_changes_nothing_and_is_retryable(platform: Platform) {
    let fx = fixture(platform, sqlite()).await;
    let events = fx.mutate(member_changes(&fx.truth())).await;
    let before = fx.stored().await;
    fx.sim.set_faults(1.0, vec![FaultKind::Busy]).unwrap();
    let err = apply_events(&fx.ctx(), &events)
        .await
        .expect_err("every read fails");
    assert!(err.is_retryable(), "{err}");
    assert_eq!(fx.stored().await, before, "a failed batch wrote something");
    fx.sim.set_faults(0.0, Vec::new()).unwrap();
    fx.apply(&events).await;
    fx.assert_follows_truth().await;
}

async fn a_burst_in_one_department_is_read_by_its_member_list(platform: Platform) {
    let fx = fixture(platform, sqlite()).await;
    let truth = fx.truth();
    let target = depts_of(&truth)[4];
    let ms: Vec<Mutation> = (0..30)
        .map(|i| {
            Mutation::add_member(
                format!("burst{i:03}"),
                format!("Burst {i}"),
                vec![MembershipSpec::of(target)],
            )
        })
        .collect();
    let events = fx.mutate(ms).await;
    assert_eq!(events.len(), 30);
    let out = fx.apply(&events).await;
    let per_event = out.api_calls as f64 / events.len() as f64;
    assert!(
        per_event <= 0.5,
        "{} calls for {} events",
        out.api_calls,
        events.len()
    );
    fx.assert_follows_truth().await;
}

async fn a_userid_change_offlines_the_old_id_and_creates_the_new_one() {
    let fx = fixture(Platform::Wecom, sqlite()).await;
    let truth = fx.truth();
    let old = active_members(&truth, 1).pop().unwrap();
    let dept = truth.members[&old].depts[0].dept_id;
    // Upstream the person now has another userid; WeCom says so with one
    // update_user carrying NewUserID.
    fx.sim
        .mutate(
            fx.org,
            Mutation::add_member(
                "renamed_id",
                &truth.members[&old].name,
                vec![MembershipSpec::of(dept)],
            ),
        )
        .unwrap();
    fx.sim
        .mutate(
            fx.org,
            Mutation::RemoveMember {
                userid: old.clone(),
            },
        )
        .unwrap();
    let event = InboxEvent {
        id: 1,
        corp: CORP.into(),
        platform: Platform::Wecom,
        event_type: "update_user".into(),
        payload: json!({"ChangeType": "update_user", "UserID": old, "NewUserID": "renamed_id"}),
        received_at_ms: 0,
        attempts: 0,
    };
    fx.apply(&[event]).await;
    let stored = fx.stored().await;
    assert_eq!(stored.members[&old].status, MemberStatus::Offline);
    assert_eq!(stored.members["renamed_id"].status, MemberStatus::Active);
    fx.assert_follows_truth().await;
}

async fn a_malformed_event_is_refused_before_anything_is_read() {
    let fx = fixture(Platform::DingTalk, sqlite()).await;
    let event = InboxEvent {
        id: 41,
        corp: CORP.into(),
        platform: Platform::DingTalk,
        event_type: "org_dept_modify".into(),
        payload: json!({"EventType": "org_dept_modify", "deptId": ["not-a-number"]}),
        received_at_ms: 0,
        attempts: 0,
    };
    let calls = fx.client.stats().total_calls();
    let err = apply_events(&fx.ctx(), &[event]).await.unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(err.event_id(), Some(41));
    assert!(err.to_string().contains("deptId"), "{err}");
    assert_eq!(fx.client.stats().total_calls(), calls);
}

async fn an_event_of_a_kind_not_synced_is_passed_over_without_a_run() {
    let fx = fixture(Platform::DingTalk, sqlite()).await;
    let event = InboxEvent {
        id: 9,
        corp: CORP.into(),
        platform: Platform::DingTalk,
        event_type: "bpms_task_change".into(),
        payload: json!({"EventType": "bpms_task_change"}),
        received_at_ms: 0,
        attempts: 0,
    };
    let out = fx.apply(&[event]).await;
    assert!(out.report.is_none());
    assert_eq!(out.ignored.len(), 1);
}

/// The periodic full sync is the backstop: with events configured it
/// counts what the events missed, in its report and its run record.
async fn a_full_sync_counts_the_differences_events_missed() {
    let fx = fixture(Platform::Wecom, sqlite()).await;
    let people = active_members(&fx.truth(), 3);
    let events = fx
        .mutate(vec![
            Mutation::rename_member(&people[0], "Applied By Event"),
            Mutation::rename_member(&people[1], "Event Lost"),
        ])
        .await;
    // The second callback never arrives.
    fx.apply(&events[..1]).await;
    let reconcile = SyncOptions {
        reconcile_events: true,
        ..SyncOptions::default()
    };
    let full = run_sync(
        fx.client.source(),
        fx.store.as_ref(),
        &fx.corp,
        &reconcile,
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(full.missed_by_events, Some(1));
    let runs = fx.store.list_runs(CORP, 1).await.unwrap();
    assert_eq!(runs[0].missed_by_events, Some(1));
    assert_eq!(runs[0].kind, RunKind::Sync);
    let again = run_sync(
        fx.client.source(),
        fx.store.as_ref(),
        &fx.corp,
        &reconcile,
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(again.missed_by_events, Some(0));
}

macro_rules! cases {
    ($($name:ident => $body:expr),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $body.await;
            }
        )*
    };
}

cases! {
    wecom_member_events_on_sqlite => every_member_event_changes_the_store_as_a_full_sync_would(Platform::Wecom, sqlite()),
    wecom_member_events_on_postgres => every_member_event_changes_the_store_as_a_full_sync_would(Platform::Wecom, postgres()),
    dingtalk_member_events_on_sqlite => every_member_event_changes_the_store_as_a_full_sync_would(Platform::DingTalk, sqlite()),
    dingtalk_member_events_on_postgres => every_member_event_changes_the_store_as_a_full_sync_would(Platform::DingTalk, postgres()),
    wecom_department_events_on_sqlite => every_department_event_changes_the_store_as_a_full_sync_would(Platform::Wecom, sqlite()),
    wecom_department_events_on_postgres => every_department_event_changes_the_store_as_a_full_sync_would(Platform::Wecom, postgres()),
    dingtalk_department_events_on_sqlite => every_department_event_changes_the_store_as_a_full_sync_would(Platform::DingTalk, sqlite()),
    dingtalk_department_events_on_postgres => every_department_event_changes_the_store_as_a_full_sync_would(Platform::DingTalk, postgres()),
    wecom_tag_and_admin_events => role_and_admin_events_change_the_store_as_a_full_sync_would(Platform::Wecom),
    dingtalk_label_and_admin_events => role_and_admin_events_change_the_store_as_a_full_sync_would(Platform::DingTalk),
    wecom_duplicates_and_reordered_retries_on_sqlite => duplicates_and_out_of_order_retries_are_harmless(Platform::Wecom, sqlite()),
    dingtalk_duplicates_and_reordered_retries_on_postgres => duplicates_and_out_of_order_retries_are_harmless(Platform::DingTalk, postgres()),
    wecom_failed_read_changes_nothing_and_is_retryable => an_event_whose_read_fails_changes_nothing_and_is_retryable(Platform::Wecom),
    dingtalk_failed_read_changes_nothing_and_is_retryable => an_event_whose_read_fails_changes_nothing_and_is_retryable(Platform::DingTalk),
    wecom_burst_in_one_department_reads_its_member_list => a_burst_in_one_department_is_read_by_its_member_list(Platform::Wecom),
    dingtalk_burst_in_one_department_reads_its_member_list => a_burst_in_one_department_is_read_by_its_member_list(Platform::DingTalk),
    wecom_userid_change_offlines_the_old_id_and_creates_the_new_one => a_userid_change_offlines_the_old_id_and_creates_the_new_one(),
    malformed_event_is_refused_before_anything_is_read => a_malformed_event_is_refused_before_anything_is_read(),
    event_of_a_kind_not_synced_is_passed_over_without_a_run => an_event_of_a_kind_not_synced_is_passed_over_without_a_run(),
    full_sync_counts_the_differences_events_missed => a_full_sync_counts_the_differences_events_missed(),
}
