//! An [`OrgSource`] that reads the organization from a JSON file in the
//! seed's `CorpData` shape (what `getThirdCorpData()` returns): the simplest
//! plugin org type, and a way to import an exported organization.

use crate::{FetchOptions, OrgSource, Progress, ProgressEvent, SourceError};
use jit_org::{CorpSnapshot, Provider};
use std::collections::{HashMap, HashSet};
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

/// Keeps only the departments under `scope` roots and the members in them.
pub(crate) fn restrict_to_scope(snap: &mut CorpSnapshot, scope: &[i64]) {
    if scope.is_empty() {
        return;
    }
    let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
    for d in snap.depts.values() {
        if let Some(p) = d.parent_id {
            children.entry(p).or_default().push(d.dept_id);
        }
    }
    let mut keep: HashSet<i64> = HashSet::new();
    let mut stack: Vec<i64> = scope.to_vec();
    while let Some(id) = stack.pop() {
        if snap.depts.contains_key(&id) && keep.insert(id) {
            stack.extend(children.get(&id).into_iter().flatten().copied());
        }
    }
    snap.depts.retain(|id, _| keep.contains(id));
    for d in snap.depts.values_mut() {
        if d.parent_id.is_some_and(|p| !keep.contains(&p)) {
            d.parent_id = None;
        }
    }
    snap.members.retain(|_, m| {
        m.depts.retain(|d| keep.contains(&d.dept_id));
        !m.depts.is_empty()
    });
    for r in snap.roles.values_mut() {
        r.members.retain(|u| snap.members.contains_key(u));
    }
    snap.scope = scope.to_vec();
}

#[async_trait::async_trait]
impl OrgSource for JsonFileSource {
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
        restrict_to_scope(&mut snap, &opts.scope);
        Ok(snap)
    }
}
