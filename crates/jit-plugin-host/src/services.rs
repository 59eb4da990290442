//! Host services offered to plugins beyond the element calls: the corps
//! services (org store + shared sync engine) and the log sink.

use jit_core::AppServices;
use jit_org::CorpSnapshot;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The organization a plugin org element stands for, as given to
/// [`CorpServices`].
#[derive(Clone)]
pub struct CorpContext {
    /// fullName of the element (the org), e.g. `corps.HrCorp`.
    pub full_name: String,
    /// Its title.
    pub title: String,
    /// The plugin Type implementing it, e.g. `corps.JsonFileType`.
    pub type_name: String,
    /// The Type it extends and delegates to, if any.
    pub parent_type: Option<String>,
    /// The plugin library.
    pub library: PathBuf,
    /// The element's config (may hold secrets: never log it).
    pub config: Option<Value>,
    /// The running app.
    pub app: Arc<dyn AppServices>,
}

impl std::fmt::Debug for CorpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorpContext")
            .field("full_name", &self.full_name)
            .field("type_name", &self.type_name)
            .field("parent_type", &self.parent_type)
            .field("library", &self.library)
            .field("config", &self.config.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// The corps services a plugin reaches through `host_service("corps.*")`.
///
/// The runtime's org crate implements it with the real store and the shared
/// sync engine, so an org synced by a plugin gets the same diff, the same
/// safety checks (incomplete snapshots never offline anyone, mass-offline
/// guard) and the same store as the built-in org types. Errors are messages
/// returned to the plugin as the service's failure.
#[async_trait::async_trait]
pub trait CorpServices: Send + Sync {
    /// `corps.syncSnapshot`: syncs a snapshot the plugin read into the store.
    /// `options` is the object the plugin passed: by convention `provider`
    /// (the identity namespace of the org, e.g. `"hrfile"`, stored as
    /// `jit_org::Provider::Other`) plus the sync settings of the element's
    /// config (`maxOfflineRatio`, `dryRun`, ...). Returns the sync report.
    async fn sync_snapshot(
        &self,
        corp: &CorpContext,
        snapshot: CorpSnapshot,
        options: Value,
    ) -> Result<Value, String>;

    /// `corps.localCorpData`: the org as stored (`getLocalCorpData` shape).
    async fn local_corp_data(&self, corp: &CorpContext) -> Result<Value, String>;

    /// Any other `corps.<name>` service.
    async fn call(&self, corp: &CorpContext, service: &str, args: Value) -> Result<Value, String> {
        let _ = (corp, args);
        Err(format!(
            "unknown host service `{service}`; the corps services are corps.syncSnapshot and corps.localCorpData"
        ))
    }
}

/// Severity of a plugin's log line (defined by the ABI both sides share).
pub use jit_plugin_abi::LogLevel;

/// One line a plugin logged.
#[derive(Debug, Clone, Copy)]
pub struct PluginLog<'a> {
    /// Severity.
    pub level: LogLevel,
    /// The plugin library.
    pub library: &'a Path,
    /// The element that logged.
    pub element: &'a str,
    /// The text.
    pub message: &'a str,
}

/// Where plugin log lines go.
pub type LogSink = Arc<dyn Fn(&PluginLog<'_>) + Send + Sync>;

/// The default sink: one line on stderr per log call.
pub fn stderr_log_sink() -> LogSink {
    Arc::new(|l: &PluginLog<'_>| {
        let lib = l
            .library
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        eprintln!(
            "[{}] plugin {lib} ({}): {}",
            l.level.as_str(),
            l.element,
            l.message
        );
    })
}
