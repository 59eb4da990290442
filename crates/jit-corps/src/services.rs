//! The corps services offered to plugin org Types: the same store and the
//! same sync engine (diff, safety checks, one transaction) as the built-ins.

use crate::element::report_summary;
use jit_apiclient::NoProgress;
use jit_org::{CorpRecord, CorpSnapshot, Provider};
use jit_plugin_host::{CorpContext, CorpServices};
use jit_store::CorpStore;
use jit_sync::{run_sync, SnapshotSource, SyncOptions};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Mutex;

/// [`CorpServices`] backed by the org store and the shared sync engine.
#[derive(Default)]
pub struct EngineCorpServices {
    fixed: Option<Arc<dyn CorpStore>>,
    by_app: Mutex<HashMap<PathBuf, Arc<dyn CorpStore>>>,
}

impl EngineCorpServices {
    /// Services that open each app's own store (like the built-in types do).
    pub fn new() -> EngineCorpServices {
        EngineCorpServices::default()
    }

    /// Services that use one given store for every app.
    pub fn with_store(store: Arc<dyn CorpStore>) -> EngineCorpServices {
        EngineCorpServices {
            fixed: Some(store),
            by_app: Mutex::default(),
        }
    }

    async fn store(&self, corp: &CorpContext) -> Result<Arc<dyn CorpStore>, String> {
        if let Some(s) = &self.fixed {
            return Ok(s.clone());
        }
        let root = corp.app.root();
        let mut map = self.by_app.lock().await;
        if let Some(s) = map.get(&root) {
            return Ok(s.clone());
        }
        let settings = corp.app.settings();
        let url = settings.get("databaseUrl").and_then(Value::as_str);
        let store = jit_store::open_for_app(&root, url)
            .await
            .map_err(|e| e.to_string())?;
        map.insert(root, store.clone());
        Ok(store)
    }
}

fn options_from(v: &Value) -> SyncOptions {
    let mut o = SyncOptions::default();
    if let Some(r) = v.get("maxOfflineRatio").and_then(Value::as_f64) {
        o.max_offline_ratio = r;
    }
    if let Some(n) = v.get("maxOfflineCount").and_then(Value::as_u64) {
        o.max_offline_count = n as usize;
    }
    if let Some(w) = v.get("lockWaitSecs").and_then(Value::as_f64) {
        o.lock_wait_secs = w;
    }
    o.dry_run = v.get("dryRun").and_then(Value::as_bool).unwrap_or(false);
    o.force = v.get("force").and_then(Value::as_bool).unwrap_or(false);
    o
}

#[async_trait::async_trait]
impl CorpServices for EngineCorpServices {
    async fn sync_snapshot(
        &self,
        corp: &CorpContext,
        snapshot: CorpSnapshot,
        options: Value,
    ) -> Result<Value, String> {
        let provider = match options.get("provider").and_then(Value::as_str) {
            Some(p) if !p.is_empty() => Provider::parse(p),
            _ => Provider::Other("plugin".into()),
        };
        let record = CorpRecord {
            full_name: corp.full_name.clone(),
            title: corp.title.clone(),
            corp_type: corp.type_name.clone(),
            provider: provider.clone(),
            corp_id: snapshot.corp_id.clone(),
        };
        let store = self.store(corp).await?;
        let source = SnapshotSource { snapshot, provider };
        let report = run_sync(
            &source,
            store.as_ref(),
            &record,
            &options_from(&options),
            &NoProgress,
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(report_summary(&corp.full_name, &report))
    }

    async fn local_corp_data(&self, corp: &CorpContext) -> Result<Value, String> {
        let store = self.store(corp).await?;
        store
            .local_corp_data(&corp.full_name, false)
            .await
            .map_err(|e| e.to_string())
    }
}
