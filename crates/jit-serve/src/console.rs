//! The web console (crate `jit-console`) on this host: what it needs from
//! the host, answered from the host's state. Its routes are merged at `/`
//! next to the API and do their own sign-in (session cookies), so they are
//! outside the API's bearer-token authentication.

use crate::auth::Scope;
use crate::state::HostState;
use jit_console::{Access, ConsoleHost, EventStream};
use jit_core::App;
use jit_store::{CorpStore, SyncRun};
use std::sync::Arc;

struct Console(Arc<HostState>);

fn access(scope: Scope) -> Access {
    match scope {
        Scope::Admin => Access::Admin,
        Scope::Read | Scope::Call => Access::Read,
    }
}

#[async_trait::async_trait]
impl ConsoleHost for Console {
    fn app(&self) -> &App {
        &self.0.app
    }

    fn store(&self) -> &Arc<dyn CorpStore> {
        &self.0.store
    }

    fn orgs(&self) -> Vec<String> {
        self.0.orgs.clone()
    }

    fn tokens_configured(&self) -> bool {
        !self.0.tokens.is_empty()
    }

    fn token_access(&self, presented: &str) -> Option<(String, Access)> {
        let (name, scope) = self.0.tokens.identify(presented.as_bytes())?;
        Some((name.to_string(), access(scope)))
    }

    fn token_key(&self, name: &str) -> Option<(Vec<u8>, Access)> {
        let (value, scope) = self.0.tokens.value_of(name)?;
        Some((value.to_vec(), access(scope)))
    }

    async fn start_sync(&self, org: &str, dry_run: bool, force: bool) -> Result<i64, String> {
        crate::routes::start_org_sync(&self.0, org, dry_run, force)
            .await
            .map_err(|e| e.body.error.message)
    }

    fn run_events(&self, run: SyncRun) -> EventStream {
        Box::pin(crate::runs::event_stream(self.0.clone(), run))
    }
}

/// The console's routes for this host, logged and counted like the API's requests.
pub(crate) fn routes(state: Arc<HostState>) -> axum::Router {
    crate::routes::observed(state.clone(), jit_console::routes(Arc::new(Console(state))))
}
