//! `Progress::on_run_started`: a host that runs a sync in the background
//! learns the run id as soon as the run is recorded, before any read.

use crate::common::Hr;
use jit_org::{CorpSnapshot, Dept};
use jit_sync::{Progress, ProgressEvent, SyncError, SyncOptions};
use std::sync::Mutex;

/// Remembers the run id and the order of what it was told.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Progress for Recorder {
    fn on_event(&self, event: &ProgressEvent) {
        if let ProgressEvent::Phase(p) = event {
            self.0.lock().unwrap().push(format!("phase {p}"));
        }
    }
    fn on_run_started(&self, run_id: i64) {
        self.0.lock().unwrap().push(format!("run {run_id}"));
    }
}

#[tokio::test]
async fn the_run_id_is_reported_once_before_the_first_phase_and_is_the_reports() {
    let hr = Hr::new().await;
    let mut snap = CorpSnapshot::new("hr1");
    snap.depts.insert(1, Dept::new(1, None, "Company"));
    hr.write(&snap);
    let progress = Recorder::default();
    let report = hr
        .sync_with(&SyncOptions::default(), &progress)
        .await
        .unwrap();
    let seen = progress.0.lock().unwrap().clone();
    assert_eq!(seen[0], format!("run {}", report.run_id), "{seen:?}");
    assert_eq!(seen.iter().filter(|s| s.starts_with("run ")).count(), 1);
}

#[tokio::test]
async fn a_failed_read_reports_the_run_it_then_records_as_failed() {
    let hr = Hr::new().await;
    // No file: the read fails after the run was recorded.
    let progress = Recorder::default();
    let err = hr
        .sync_with(&SyncOptions::default(), &progress)
        .await
        .unwrap_err();
    let SyncError::Fetch {
        run_id: Some(id), ..
    } = err
    else {
        panic!("expected a recorded failed read, got {err}")
    };
    assert_eq!(progress.0.lock().unwrap()[0], format!("run {id}"));
    let run = hr.store.get_run(id).await.unwrap().unwrap();
    assert_eq!(run.outcome, jit_store::RunOutcome::Failed);
}
