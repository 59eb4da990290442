//! `Progress::on_run_started`: a host that runs a sync in the background
//! learns the run id as soon as the run is recorded, before any read.

use jit_org::{CorpRecord, CorpSnapshot, Dept, Provider};
use jit_sync::{run_sync, JsonFileSource, Progress, ProgressEvent, SyncError, SyncOptions};
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

fn corp() -> CorpRecord {
    CorpRecord {
        full_name: "corps.Hr".into(),
        title: "HR".into(),
        corp_type: "plugins.HrType".into(),
        provider: Provider::Other("hr".into()),
        corp_id: "hr1".into(),
    }
}

async fn setup() -> (
    tempfile::TempDir,
    std::sync::Arc<dyn jit_store::OrgStore>,
    JsonFileSource,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = jit_store::open(dir.path().join("org.db").to_str().unwrap())
        .await
        .unwrap();
    let source = JsonFileSource::new(
        dir.path().join("corp.json"),
        Provider::Other("hr".into()),
        "hr1",
    );
    (dir, store, source)
}

#[tokio::test]
async fn the_run_id_is_reported_once_before_the_first_phase_and_is_the_reports() {
    let (_dir, store, source) = setup().await;
    let mut snap = CorpSnapshot::new("hr1");
    snap.depts.insert(1, Dept::new(1, None, "Company"));
    std::fs::write(&source.path, snap.to_corp_data().to_string()).unwrap();
    let progress = Recorder::default();
    let report = run_sync(
        &source,
        store.as_ref(),
        &corp(),
        &SyncOptions::default(),
        &progress,
    )
    .await
    .unwrap();
    let seen = progress.0.lock().unwrap().clone();
    assert_eq!(seen[0], format!("run {}", report.run_id), "{seen:?}");
    assert_eq!(seen.iter().filter(|s| s.starts_with("run ")).count(), 1);
}

#[tokio::test]
async fn a_failed_read_reports_the_run_it_then_records_as_failed() {
    let (_dir, store, source) = setup().await;
    // No file: the read fails after the run was recorded.
    let progress = Recorder::default();
    let err = run_sync(
        &source,
        store.as_ref(),
        &corp(),
        &SyncOptions::default(),
        &progress,
    )
    .await
    .unwrap_err();
    let SyncError::Fetch {
        run_id: Some(id), ..
    } = err
    else {
        panic!("expected a recorded failed read, got {err}")
    };
    assert_eq!(progress.0.lock().unwrap()[0], format!("run {id}"));
    let run = store.get_run(id).await.unwrap().unwrap();
    assert_eq!(run.outcome, jit_store::RunOutcome::Failed);
}
