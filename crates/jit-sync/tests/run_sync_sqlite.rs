//! `run_sync` end to end with a JSON-file source and the real SQLite store:
//! what is recorded for applied, dry, refused and failed runs.

use crate::common::Hr;
use jit_org::{CorpSnapshot, Dept, DeptMembership, FetchFailure, Member, MemberStatus};
use jit_store::RunOutcome;
use jit_sync::{CountingProgress, SyncError, SyncOptions};

fn org(members: usize) -> CorpSnapshot {
    let mut s = CorpSnapshot::new("hr1");
    s.depts.insert(1, Dept::new(1, None, "Company"));
    s.depts.insert(2, Dept::new(2, Some(1), "Team A"));
    s.depts.insert(3, Dept::new(3, Some(1), "Team B"));
    for i in 0..members {
        let mut m = Member::new(format!("e{i:03}"), format!("Employee {i}"));
        m.depts.push(DeptMembership {
            dept_id: 2 + (i % 2) as i64,
            order: i as i64,
            is_leader: i < 2,
        });
        s.members.insert(m.member_id.clone(), m);
    }
    s.admins = Some(Vec::new());
    s
}

#[tokio::test]
async fn applied_sync_reports_counts_and_a_repeat_writes_nothing() {
    let hr = Hr::new().await;
    hr.write(&org(20));
    let progress = CountingProgress::default();
    let r = hr
        .sync_with(&SyncOptions::default(), &progress)
        .await
        .unwrap();
    assert_eq!(r.outcome, RunOutcome::Applied);
    assert_eq!(r.counts[&jit_org::ChangeKind::Created], 3 + 20);
    assert_eq!(r.upstream_members, 20);
    assert_eq!(
        progress.phases(),
        vec!["fetch", "read file", "plan", "apply"]
    );
    let again = hr.sync().await.unwrap();
    assert!(again.changes.is_empty());
    assert_eq!(again.rows_written, 0);
    let runs = hr.store.list_runs("corps.Hr", 10).await.unwrap();
    assert_eq!(runs.len(), 2);
}

#[tokio::test]
async fn unreadable_source_is_a_failed_run_that_names_the_file() {
    let hr = Hr::new().await;
    let err = hr.sync().await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            SyncError::Fetch {
                run_id: Some(_),
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("corp.json") && msg.contains("nothing was changed"),
        "{msg}"
    );
    let runs = hr.store.list_runs("corps.Hr", 1).await.unwrap();
    assert_eq!(runs[0].outcome, RunOutcome::Failed);
    assert!(runs[0].error.as_deref().unwrap().contains("corp.json"));
}

#[tokio::test]
async fn empty_upstream_read_is_refused_and_recorded() {
    let hr = Hr::holding(&org(20)).await;
    hr.write(&org(0));
    let err = hr.sync().await.unwrap_err();
    assert!(err.to_string().contains("no members"), "{err}");
    let runs = hr.store.list_runs("corps.Hr", 1).await.unwrap();
    assert_eq!(runs[0].outcome, RunOutcome::Refused);
    let stored = hr.stored().await;
    assert_eq!(stored.active_count(), 20);
}

#[tokio::test]
async fn incomplete_read_applies_updates_but_offlines_nobody() {
    let hr = Hr::holding(&org(20)).await;
    let mut partial = org(18);
    partial.members.get_mut("e000").unwrap().name = "Renamed".into();
    partial.failures.push(FetchFailure::new(
        jit_org::ReadPart::DeptMembers { dept_id: 3 },
        "user/list department_id=3",
        "errcode -1: system busy",
    ));
    hr.write(&partial);
    let r = hr.sync().await.unwrap();
    assert!(!r.is_complete());
    assert!(r.plan.offline_members.is_empty());
    assert_eq!(r.counts[&jit_org::ChangeKind::Skipped], 2);
    assert!(r.notes.iter().any(|n| n.contains("incomplete")));
    let stored = hr.stored().await;
    assert_eq!(stored.members["e000"].name, "Renamed");
    assert_eq!(stored.members["e019"].status, MemberStatus::Active);
}

#[tokio::test]
async fn dry_run_keeps_the_store_unchanged_and_records_the_changes() {
    let hr = Hr::new().await;
    hr.write(&org(5));
    let opts = SyncOptions {
        dry_run: true,
        ..SyncOptions::default()
    };
    let r = hr.sync_with(&opts, &jit_sync::NoProgress).await.unwrap();
    assert_eq!(r.outcome, RunOutcome::DryRun);
    assert!(hr.stored().await.members.is_empty());
    assert_eq!(
        hr.store.run_changes(r.run_id).await.unwrap().len(),
        r.changes.len()
    );
}

#[tokio::test]
async fn scoped_file_read_keeps_members_outside_the_scope() {
    let hr = Hr::holding(&org(20)).await;
    // Team B (3) empties upstream; a sync scoped to Team A must not notice.
    let mut changed = org(20);
    changed.members.retain(|_, m| m.depts[0].dept_id == 2);
    hr.write(&changed);
    let mut opts = SyncOptions::default();
    opts.fetch.scope = vec![2];
    let r = hr.sync_with(&opts, &jit_sync::NoProgress).await.unwrap();
    assert!(r.plan.is_empty(), "{:?}", r.changes);
}
