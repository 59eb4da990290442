//! An [`CorpSource`] that reads the organization from a JSON file in the
//! seed's `CorpData` shape (what `getThirdCorpData()` returns): the simplest
//! plugin org type, and a way to import an exported organization.

use crate::{CorpSource, FetchOptions, Progress, ProgressEvent, SourceError};
use jit_org::{CorpSnapshot, Provider};
use std::path::PathBuf;

/// Reads `CorpData` JSON (`corpId`, `userDict`, `deptDict`, `roleDict`,
/// `roleGroupDict`, `admins`, `failures`) from a file on every fetch.
#[derive(Debug, Clone)]
pub struct JsonFileSource {
    /// The file.
    pub path: PathBuf,
    /// The provider the identities belong to.
    pub provider: Provider,
    /// The corp id expected in the file.
    pub corp_id: String,
}

impl JsonFileSource {
    /// A source reading `path`.
    pub fn new(path: impl Into<PathBuf>, provider: Provider, corp_id: impl Into<String>) -> Self {
        JsonFileSource {
            path: path.into(),
            provider,
            corp_id: corp_id.into(),
        }
    }
}

#[async_trait::async_trait]
impl CorpSource for JsonFileSource {
    fn provider(&self) -> Provider {
        self.provider.clone()
    }

    fn corp_id(&self) -> String {
        self.corp_id.clone()
    }

    async fn fetch(
        &self,
        opts: &FetchOptions,
        progress: &dyn Progress,
    ) -> Result<CorpSnapshot, SourceError> {
        progress.on_event(&ProgressEvent::Phase("read file".into()));
        let shown = self.path.display();
        let path = self.path.clone();
        let text = tokio::task::spawn_blocking(move || std::fs::read_to_string(path))
            .await
            .map_err(|e| SourceError::Other(format!("cannot read {shown}: {e}")))?
            .map_err(|e| SourceError::Other(format!("cannot read {shown}: {e}")))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| SourceError::Other(format!("{shown} is not JSON: {e}")))?;
        let mut snap = CorpSnapshot::from_corp_data(&value)
            .map_err(|e| SourceError::Other(format!("{shown}: {e}")))?;
        if snap.corp_id != self.corp_id {
            return Err(SourceError::Other(format!(
                "{shown} holds corp {:?}, expected {:?}",
                snap.corp_id, self.corp_id
            )));
        }
        snap.restrict_to_scope(&opts.scope);
        Ok(snap)
    }
}
