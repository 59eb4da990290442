//! The firing table's claim/lease protocol, on SQLite and on PostgreSQL,
//! and the scheduler running an app's tasks against a store.
//!
//! Every store case runs on both backends (`sqlite::<name>`,
//! `postgres::<name>`); PostgreSQL is `JIT_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), each test in a schema of its own.

use jit_core::{App, LoadOptions, TypeRegistry};
use jit_store::{Claim, FiringClaim, FiringEnd, FiringState};
use jit_tasks::{list_tasks, Scheduler, SchedulerOptions};
use serde_json::json;
use std::time::Duration;

/// Where a test's store lives (opened again for more connections).
type Place = jit_store::scratch::ScratchStore;

fn postgres() -> Place {
    Place::postgres("jit_tasks_test")
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::$name(crate::Place::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::$name(crate::postgres()).await;
                }
            )*
        }
    };
}

both_backends!(
    a_slot_is_run_by_exactly_one_of_many_racing_claimers,
    an_expired_lease_is_taken_over_as_a_visible_rerun,
    a_slot_whose_previous_firing_still_runs_is_skipped_and_recorded,
    a_finished_firing_keeps_its_result_and_is_listed_newest_first,
    the_scheduler_runs_each_slot_once_and_records_the_call,
    a_slot_missed_while_no_host_ran_is_run_once_at_start_when_catch_up_is_on,
);

fn claim(task: &str, slot: i64, holder: &str, now: i64, lease_ms: i64) -> FiringClaim {
    FiringClaim {
        task: task.into(),
        scheduled_at: slot,
        holder: holder.into(),
        now,
        lease_ms,
    }
}

async fn a_slot_is_run_by_exactly_one_of_many_racing_claimers(place: Place) {
    // Eight "replicas", each with its own connection, claim the same slot at once.
    let mut stores = Vec::new();
    for _ in 0..8 {
        stores.push(place.open().await);
    }
    let claims = stores.iter().enumerate().map(|(i, s)| {
        let s = s.clone();
        tokio::spawn(async move {
            s.claim_firing(&claim("tasks.Sync", 1_000, &format!("r{i}"), 1_000, 30_000))
                .await
                .unwrap()
        })
    });
    let mut won = 0;
    for c in claims {
        match c.await.unwrap() {
            Claim::Run(f) => {
                won += 1;
                assert_eq!((f.attempt, f.state), (1, FiringState::Running));
            }
            Claim::Taken => {}
            Claim::Skipped(f) => panic!("nothing ran before, yet skipped: {f:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        stores[0]
            .list_firings("tasks.Sync", 10, None)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn an_expired_lease_is_taken_over_as_a_visible_rerun(place: Place) {
    let store = place.open().await;
    let Claim::Run(first) = store
        .claim_firing(&claim("tasks.Sync", 1_000, "dead", 1_000, 5_000))
        .await
        .unwrap()
    else {
        panic!("first claim must run")
    };
    // Within the lease nobody else may take it, and it is not expired.
    assert_eq!(
        store
            .claim_firing(&claim("tasks.Sync", 1_000, "b", 5_999, 5_000))
            .await
            .unwrap(),
        Claim::Taken
    );
    assert!(store.expired_firings(5_999).await.unwrap().is_empty());
    // The holder died: its lease ran out at 6 000.
    let expired = store.expired_firings(6_001).await.unwrap();
    assert_eq!(expired.len(), 1);
    let Claim::Run(rerun) = store
        .claim_firing(&claim("tasks.Sync", 1_000, "b", 6_001, 5_000))
        .await
        .unwrap()
    else {
        panic!("an expired firing must be taken over")
    };
    assert_eq!(
        (rerun.firing_id, rerun.attempt, rerun.holder.as_str()),
        (first.firing_id, 2, "b")
    );
    assert!(rerun
        .note
        .as_deref()
        .unwrap()
        .contains("lease of dead on attempt 1 expired"));
    // The old holder, if it comes back, can neither renew nor finish.
    assert!(!store
        .renew_firing(first.firing_id, "dead", 1, 99_000)
        .await
        .unwrap());
    let late = FiringEnd {
        firing_id: first.firing_id,
        holder: "dead".into(),
        attempt: 1,
        state: FiringState::Succeeded,
        finished_at: 7_000,
        result: Some(json!({"from": "dead"})),
        error: None,
    };
    assert!(!store.finish_firing(&late).await.unwrap());
    // The new holder renews and finishes; the record shows the re-run.
    assert!(store
        .renew_firing(first.firing_id, "b", 2, 20_000)
        .await
        .unwrap());
    let done = FiringEnd {
        holder: "b".into(),
        attempt: 2,
        result: Some(json!({"from": "b"})),
        ..late
    };
    assert!(store.finish_firing(&done).await.unwrap());
    let f = &store.list_firings("tasks.Sync", 1, None).await.unwrap()[0];
    assert_eq!(
        (f.attempt, f.state, f.holder.as_str()),
        (2, FiringState::Succeeded, "b")
    );
    assert_eq!(f.result, Some(json!({"from": "b"})));
    assert!(f.note.as_deref().unwrap().starts_with("re-run (attempt 2)"));
}

async fn a_slot_whose_previous_firing_still_runs_is_skipped_and_recorded(place: Place) {
    let store = place.open().await;
    assert!(matches!(
        store
            .claim_firing(&claim("tasks.Sync", 1_000, "a", 1_000, 30_000))
            .await
            .unwrap(),
        Claim::Run(_)
    ));
    let Claim::Skipped(skipped) = store
        .claim_firing(&claim("tasks.Sync", 3_000, "b", 3_000, 30_000))
        .await
        .unwrap()
    else {
        panic!("the previous firing still runs: the slot must be skipped")
    };
    assert_eq!(skipped.state, FiringState::Skipped);
    assert!(skipped
        .note
        .as_deref()
        .unwrap()
        .contains("scheduled at 1000"));
    // The skip is the slot's record: nobody runs it later.
    assert_eq!(
        store
            .claim_firing(&claim("tasks.Sync", 3_000, "c", 3_001, 30_000))
            .await
            .unwrap(),
        Claim::Taken
    );
    // Another task is not held up.
    assert!(matches!(
        store
            .claim_firing(&claim("tasks.Other", 3_000, "b", 3_000, 30_000))
            .await
            .unwrap(),
        Claim::Run(_)
    ));
}

async fn a_finished_firing_keeps_its_result_and_is_listed_newest_first(place: Place) {
    let store = place.open().await;
    for (slot, ok) in [(1_000, true), (2_000, false)] {
        let Claim::Run(f) = store
            .claim_firing(&claim("tasks.Sync", slot, "a", slot, 30_000))
            .await
            .unwrap()
        else {
            panic!("must run")
        };
        let end = FiringEnd {
            firing_id: f.firing_id,
            holder: "a".into(),
            attempt: 1,
            state: if ok {
                FiringState::Succeeded
            } else {
                FiringState::Failed
            },
            finished_at: slot + 10,
            result: ok.then(|| json!({"runId": 7})),
            error: (!ok).then(|| "corps.X is busy".to_string()),
        };
        assert!(store.finish_firing(&end).await.unwrap());
    }
    let all = store.list_firings("tasks.Sync", 10, None).await.unwrap();
    assert_eq!(
        all.iter().map(|f| f.scheduled_at).collect::<Vec<_>>(),
        [2_000, 1_000]
    );
    assert_eq!(all[0].error.as_deref(), Some("corps.X is busy"));
    assert_eq!(all[1].result, Some(json!({"runId": 7})));
    assert_eq!(all[1].finished_at, Some(1_010));
    // Paging, and finished firings never count as expired.
    let older = store
        .list_firings("tasks.Sync", 10, Some(2_000))
        .await
        .unwrap();
    assert_eq!(older.len(), 1);
    assert!(store.expired_firings(i64::MAX).await.unwrap().is_empty());
}

/// An app with one task that calls another task's `getTaskInfo` (no
/// network needed) every 300 ms.
fn task_app(dir: &std::path::Path) -> App {
    task_app_with(dir, json!({"repeat": "300ms"}), true)
}

fn task_app_with(dir: &std::path::Path, timer: serde_json::Value, catch_up: bool) -> App {
    std::fs::write(dir.join("app.json"), r#"{"appId": "tasks.test"}"#).unwrap();
    for (name, config) in [
        (
            "Tick",
            json!({"timerCfg": timer, "lease": "3s", "catchUp": catch_up,
                   "call": {"element": "tasks.Info", "method": "getTaskInfo", "args": {"count": 1}}}),
        ),
        (
            "Info",
            json!({"timerCfg": {"cron": "0 0 1 1 *", "timeZone": "Asia/Shanghai"}, "enabled": false,
                   "call": {"element": "tasks.Tick", "method": "getTaskInfo"}}),
        ),
    ] {
        let d = dir.join("tasks").join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("e.json"),
            json!({"title": name, "type": "tasks.NormalType"}).to_string(),
        )
        .unwrap();
        std::fs::write(d.join(format!("{name}.json")), config.to_string()).unwrap();
    }
    let mut registry = TypeRegistry::new();
    jit_tasks::register_builtins(&mut registry);
    let app = App::load(
        dir,
        LoadOptions {
            registry,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert!(
        app.diagnostics()
            .iter()
            .all(|d| d.severity != jit_core::Severity::Error),
        "{:?}",
        app.diagnostics()
    );
    app
}

async fn the_scheduler_runs_each_slot_once_and_records_the_call(place: Place) {
    let dir = tempfile::tempdir().unwrap();
    let app = task_app(dir.path());
    // Two schedulers on one store: two replicas.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let s = Scheduler::new(app.clone(), place.open().await, SchedulerOptions::default());
        assert_eq!(s.tasks().len(), 1, "the disabled task is not scheduled");
        replicas.push(tokio::spawn(s.run(stop.clone())));
    }
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    stop_tx.send(true).unwrap();
    for r in replicas {
        r.await.unwrap();
    }
    let store = place.open().await;
    let firings = store.list_firings("tasks.Tick", 100, None).await.unwrap();
    assert!(firings.len() >= 4, "{firings:?}");
    let mut slots: Vec<i64> = firings.iter().map(|f| f.scheduled_at).collect();
    slots.dedup();
    assert_eq!(slots.len(), firings.len(), "a slot recorded twice");
    for f in &firings {
        assert_eq!(
            f.scheduled_at % 300,
            0,
            "slots are multiples of the interval"
        );
        assert_eq!((f.state, f.attempt), (FiringState::Succeeded, 1), "{f:?}");
        assert_eq!(f.result.as_ref().unwrap()["fullName"], "tasks.Info");
    }
    // The listing shows the schedule and the newest firing.
    let (views, problems) = list_tasks(&app, store.as_ref()).await.unwrap();
    assert!(problems.is_empty());
    let tick = views.iter().find(|v| v.full_name == "tasks.Tick").unwrap();
    assert_eq!(tick.schedule, "every 300ms");
    assert_eq!(tick.last_firing.as_ref().unwrap().scheduled_at, slots[0]);
    let info = views.iter().find(|v| v.full_name == "tasks.Info").unwrap();
    assert_eq!(info.schedule, "cron 0 0 1 1 * (Asia/Shanghai)");
    assert!(info.next_firing.is_none() && info.last_firing.is_none());
}

async fn a_slot_missed_while_no_host_ran_is_run_once_at_start_when_catch_up_is_on(place: Place) {
    let hour = 3_600_000;
    let this_hour = jit_tasks_now() / hour * hour;
    for catch_up in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let app = task_app_with(dir.path(), json!({"repeat": "1h"}), catch_up);
        let store = place.open().await;
        // A host ran the task three hours ago (recorded before the first
        // start below); none ran it since.
        let old = this_hour - 3 * hour;
        if !catch_up {
            let Claim::Run(f) = store
                .claim_firing(&claim("tasks.Tick", old, "gone", old, 1_000))
                .await
                .unwrap()
            else {
                panic!("must run")
            };
            let end = FiringEnd {
                firing_id: f.firing_id,
                holder: "gone".into(),
                attempt: 1,
                state: FiringState::Succeeded,
                finished_at: old + 10,
                result: None,
                error: None,
            };
            assert!(store.finish_firing(&end).await.unwrap());
        }
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let s = Scheduler::new(app, store.clone(), SchedulerOptions::default());
        let run = tokio::spawn(s.run(stop));
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop_tx.send(true).unwrap();
        run.await.unwrap();
        let slots: Vec<i64> = store
            .list_firings("tasks.Tick", 10, None)
            .await
            .unwrap()
            .iter()
            .map(|f| f.scheduled_at)
            .collect();
        if catch_up {
            // Only the newest missed slot is run, once.
            assert_eq!(slots, [this_hour, old]);
        } else {
            assert_eq!(
                slots,
                [old],
                "catchUp false: nothing runs before the next slot"
            );
        }
    }
}

fn jit_tasks_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
