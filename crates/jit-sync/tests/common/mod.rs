//! The fixture every engine test starts from: the org `corps.Hr`, read from
//! a JSON file into a fresh SQLite store.

use jit_org::{CorpRecord, CorpSnapshot, Provider};
use jit_store::CorpStore;
use jit_sync::{
    run_sync, JsonFileSource, NoProgress, Progress, SyncError, SyncOptions, SyncReport,
};
use std::sync::Arc;

/// A fresh store and a JSON-file source for `corps.Hr`, in a temporary folder
/// that lives as long as the fixture.
pub struct Hr {
    _dir: tempfile::TempDir,
    /// The SQLite store the syncs write to.
    pub store: Arc<dyn CorpStore>,
    /// The source; its file does not exist until [`Hr::write`].
    pub source: JsonFileSource,
}

impl Hr {
    /// An empty store; no upstream file yet.
    pub async fn new() -> Hr {
        let dir = tempfile::tempdir().unwrap();
        let store = jit_store::open(dir.path().join("org.db").to_str().unwrap())
            .await
            .unwrap();
        let source = JsonFileSource::new(
            dir.path().join("corp.json"),
            Provider::Other("hr".into()),
            "hr1",
        );
        Hr {
            _dir: dir,
            store,
            source,
        }
    }

    /// A store that already holds `snap`, synced once from upstream.
    pub async fn holding(snap: &CorpSnapshot) -> Hr {
        let hr = Hr::new().await;
        hr.write(snap);
        hr.sync().await.unwrap();
        hr
    }

    /// The org as the store holds it now.
    pub async fn stored(&self) -> CorpSnapshot {
        self.store.load_snapshot("corps.Hr").await.unwrap()
    }

    /// Makes `snap` what upstream answers.
    pub fn write(&self, snap: &CorpSnapshot) {
        let json = serde_json::to_string_pretty(&snap.to_corp_data()).unwrap();
        std::fs::write(&self.source.path, json).unwrap();
    }

    /// One sync with default options and no progress reporting.
    pub async fn sync(&self) -> Result<SyncReport, SyncError> {
        self.sync_with(&SyncOptions::default(), &NoProgress).await
    }

    /// One sync with `opts`, telling `progress`.
    pub async fn sync_with(
        &self,
        opts: &SyncOptions,
        progress: &dyn Progress,
    ) -> Result<SyncReport, SyncError> {
        run_sync(&self.source, self.store.as_ref(), &corp(), opts, progress).await
    }
}

/// The org record of `corps.Hr`, a plugin-typed org.
pub fn corp() -> CorpRecord {
    CorpRecord {
        full_name: "corps.Hr".into(),
        title: "HR".into(),
        corp_type: "plugins.HrType".into(),
        provider: Provider::Other("hr".into()),
        corp_id: "hr1".into(),
    }
}
