//! The event inbox and leases on both backends: a retried event is stored
//! once, one org's events are claimed by one holder at a time in arrival
//! order, a dead holder's lease is taken over, and back-off holds the
//! events behind a failed one.

use crate::common::{suite, TestStore};
use jit_store::{InboxClaim, InboxEnd, InboxOutcome, InboxPut, InboxState, NewInboxEvent};

suite!(
    a_retried_event_is_stored_once,
    one_orgs_events_are_claimed_by_one_holder_in_arrival_order,
    an_expired_lease_is_taken_over_by_another_holder,
    a_retry_holds_the_events_behind_it_until_it_is_due,
    finishing_records_the_run_and_a_late_holder_changes_nothing,
    summary_counts_states_and_the_oldest_pending_event,
    pruning_deletes_only_events_applied_before_the_cutoff,
);

const T0: i64 = 1_700_000_000_000;

fn event(corp: &str, key: &str, at: i64) -> NewInboxEvent {
    NewInboxEvent {
        corp: corp.into(),
        platform: "wecom".into(),
        event_type: "update_user".into(),
        dedupe_key: key.into(),
        payload: format!(r#"{{"UserID":"{key}"}}"#),
        received_at: at,
    }
}

fn claim(corp: &str, holder: &str, now: i64) -> InboxClaim {
    InboxClaim {
        corp: corp.into(),
        holder: holder.into(),
        now,
        lease_ms: 30_000,
        limit: 100,
    }
}

async fn put(t: &TestStore, corp: &str, key: &str, at: i64) -> i64 {
    match t.store.inbox_put(&event(corp, key, at)).await.unwrap() {
        InboxPut::Stored(id) => id,
        other => panic!("expected a new event, got {other:?}"),
    }
}

async fn a_retried_event_is_stored_once(t: &TestStore) {
    let id = put(t, "corps.A", "k1", T0).await;
    let again = t.store.inbox_put(&event("corps.A", "k1", T0 + 5)).await;
    assert_eq!(again.unwrap(), InboxPut::Duplicate(id));
    // The same key in another org is another event.
    put(t, "corps.B", "k1", T0).await;
    assert_eq!(t.scalar("SELECT COUNT(*) FROM event_inbox").await, 2);
}

async fn one_orgs_events_are_claimed_by_one_holder_in_arrival_order(t: &TestStore) {
    let ids = [
        put(t, "corps.A", "a", T0).await,
        put(t, "corps.A", "b", T0 + 1).await,
        put(t, "corps.A", "c", T0 + 2).await,
    ];
    let got = t
        .store
        .inbox_claim(&claim("corps.A", "r1", T0 + 10))
        .await
        .unwrap();
    assert_eq!(got.iter().map(|r| r.event_id).collect::<Vec<_>>(), ids);
    assert!(got
        .iter()
        .all(|r| r.attempts == 1 && r.claimed_by.as_deref() == Some("r1")));
    let other = t
        .store
        .inbox_claim(&claim("corps.A", "r2", T0 + 11))
        .await
        .unwrap();
    assert!(
        other.is_empty(),
        "a second replica must not get the org: {other:?}"
    );
    // Another org is free for the second replica.
    put(t, "corps.B", "x", T0).await;
    let b = t
        .store
        .inbox_claim(&claim("corps.B", "r2", T0 + 12))
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
}

async fn an_expired_lease_is_taken_over_by_another_holder(t: &TestStore) {
    let id = put(t, "corps.A", "a", T0).await;
    t.store
        .inbox_claim(&claim("corps.A", "dead", T0))
        .await
        .unwrap();
    let early = t
        .store
        .inbox_claim(&claim("corps.A", "r2", T0 + 29_000))
        .await
        .unwrap();
    assert!(early.is_empty());
    let late = t
        .store
        .inbox_claim(&claim("corps.A", "r2", T0 + 31_000))
        .await
        .unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].event_id, id);
    assert_eq!(
        late[0].attempts, 2,
        "the dead holder's claim counts as an attempt"
    );
}

async fn a_retry_holds_the_events_behind_it_until_it_is_due(t: &TestStore) {
    let first = put(t, "corps.A", "a", T0).await;
    t.store
        .inbox_claim(&claim("corps.A", "r1", T0))
        .await
        .unwrap();
    let changed = t
        .store
        .inbox_finish(&InboxEnd {
            event_ids: vec![first],
            holder: "r1".into(),
            now: T0 + 1,
            outcome: InboxOutcome::Retry {
                error: "user/get failed".into(),
                next_attempt_at: T0 + 5_000,
            },
        })
        .await
        .unwrap();
    assert_eq!(changed, 1);
    put(t, "corps.A", "b", T0 + 2).await;
    let waiting = t
        .store
        .inbox_claim(&claim("corps.A", "r1", T0 + 3))
        .await
        .unwrap();
    assert!(waiting.is_empty(), "b must wait behind a: {waiting:?}");
    assert!(t.store.inbox_due(T0 + 3).await.unwrap().is_empty());
    assert_eq!(
        t.store.inbox_due(T0 + 5_000).await.unwrap(),
        vec!["corps.A".to_string()]
    );
    let due = t
        .store
        .inbox_claim(&claim("corps.A", "r2", T0 + 5_000))
        .await
        .unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(due[0].last_error.as_deref(), Some("user/get failed"));
}

async fn finishing_records_the_run_and_a_late_holder_changes_nothing(t: &TestStore) {
    let id = put(t, "corps.A", "a", T0).await;
    t.store
        .inbox_claim(&claim("corps.A", "slow", T0))
        .await
        .unwrap();
    t.store
        .inbox_claim(&claim("corps.A", "r2", T0 + 40_000))
        .await
        .unwrap();
    let applied = |holder: &str| InboxEnd {
        event_ids: vec![id],
        holder: holder.into(),
        now: T0 + 41_000,
        outcome: InboxOutcome::Applied { run_id: Some(7) },
    };
    assert_eq!(t.store.inbox_finish(&applied("slow")).await.unwrap(), 0);
    assert_eq!(t.store.inbox_finish(&applied("r2")).await.unwrap(), 1);
    let rows = t.store.inbox_list("corps.A", 10, None).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, InboxState::Applied);
    assert_eq!(rows[0].run_id, Some(7));
    assert_eq!(rows[0].applied_at, Some(T0 + 41_000));
    assert!(t
        .store
        .inbox_claim(&claim("corps.A", "r2", T0 + 42_000))
        .await
        .unwrap()
        .is_empty());
}

async fn summary_counts_states_and_the_oldest_pending_event(t: &TestStore) {
    let a = put(t, "corps.A", "a", T0).await;
    put(t, "corps.A", "b", T0 + 10).await;
    t.store
        .inbox_claim(&InboxClaim {
            limit: 1,
            ..claim("corps.A", "r1", T0 + 20)
        })
        .await
        .unwrap();
    t.store
        .inbox_finish(&InboxEnd {
            event_ids: vec![a],
            holder: "r1".into(),
            now: T0 + 30,
            outcome: InboxOutcome::Failed {
                error: "bad payload".into(),
            },
        })
        .await
        .unwrap();
    let s = t.store.inbox_summary("corps.A").await.unwrap();
    assert_eq!((s.pending, s.applied, s.failed), (1, 0, 1));
    assert_eq!(s.oldest_pending_at, Some(T0 + 10));
    assert!(t
        .store
        .take_lease("stream:corps.A", "r1", T0, 1_000)
        .await
        .unwrap());
    assert!(!t
        .store
        .take_lease("stream:corps.A", "r2", T0 + 500, 1_000)
        .await
        .unwrap());
    t.store.release_lease("stream:corps.A", "r1").await.unwrap();
    assert!(t
        .store
        .take_lease("stream:corps.A", "r2", T0 + 600, 1_000)
        .await
        .unwrap());
}

async fn pruning_deletes_only_events_applied_before_the_cutoff(t: &TestStore) {
    let old = put(t, "corps.A", "old", T0).await;
    let new = put(t, "corps.A", "new", T0 + 1).await;
    let bad = put(t, "corps.A", "bad", T0 + 2).await;
    put(t, "corps.A", "waiting", T0 + 3).await;
    t.store
        .inbox_claim(&InboxClaim {
            limit: 3,
            ..claim("corps.A", "r1", T0 + 10)
        })
        .await
        .unwrap();
    for (ids, at, outcome) in [
        (vec![old], T0 + 100, InboxOutcome::Applied { run_id: None }),
        (vec![new], T0 + 300, InboxOutcome::Applied { run_id: None }),
        (
            vec![bad],
            T0 + 100,
            InboxOutcome::Failed {
                error: "bad".into(),
            },
        ),
    ] {
        t.store
            .inbox_finish(&InboxEnd {
                event_ids: ids,
                holder: "r1".into(),
                now: at,
                outcome,
            })
            .await
            .unwrap();
    }
    assert_eq!(t.store.inbox_prune(T0 + 200).await.unwrap(), 1);
    let left: Vec<i64> = t
        .store
        .inbox_list("corps.A", 10, None)
        .await
        .unwrap()
        .iter()
        .map(|r| r.event_id)
        .collect();
    assert_eq!(left.len(), 3);
    assert!(!left.contains(&old), "{left:?}");
}
