//! The built-in organization Types: `corps.QywxInnerType` (WeCom self-built
//! app) and `corps.DDInnerType` (DingTalk self-built app).
//!
//! Each instance element is a [`CorpElement`]: it reads its config file (flat
//! or nested `authConfig`, with `apiBase` and `sync` settings), builds the
//! platform client lazily, opens the app's org store lazily, and offers every
//! method of the seed documents through the dynamic call (`syncCorp`,
//! `getLocalCorpData`, ...) and as typed Rust methods (`sync_corp`,
//! `local_corp_data`, ...). Syncs go through the shared engine in `jit-sync`;
//! nothing platform-specific lives here beyond choosing the client.
//!
//! It also implements the plugin host's [`CorpServices`], so org Types shipped
//! as plugins sync into the same store through the same engine.
//!
//! ```no_run
//! use jit_core::{App, LoadOptions, TypeRegistry};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut registry = TypeRegistry::new();
//! jit_corps::register_builtins(&mut registry);
//! let app = App::load("examples/demo-app", LoadOptions { registry, ..Default::default() })?;
//! let corp = app.get_element("corps.AcmeWecom")?;
//! let report = corp.call("syncCorp", serde_json::Value::Null).await?;
//! println!("{report}");
//! // Hosts that know the type get the typed interface:
//! let typed = corp.downcast_ref::<jit_corps::CorpElement>().unwrap();
//! let admins = typed.get_admin().await?;
//! # let _ = admins; Ok(()) }
//! ```

mod config;
mod element;
mod services;

pub use config::{AuthConfig, CorpSettings, EventMode, EventsConfig, Platform};
pub use element::{report_json, CorpClient, CorpElement, CorpError};
pub use services::EngineCorpServices;

use jit_core::{Element, InstanceContext, TypeImpl, TypeRegistry};
use jit_store::CorpStore;
use serde_json::Value;
use std::sync::Arc;

/// The implementation of one built-in org Type.
pub struct CorpType {
    platform: Platform,
    store: Option<Arc<dyn CorpStore>>,
}

impl CorpType {
    /// The implementation for a platform; instances open their app's store.
    pub fn new(platform: Platform) -> CorpType {
        CorpType {
            platform,
            store: None,
        }
    }

    /// The implementation for a platform, with every instance using `store`
    /// (hosts that manage one shared store, tests, benchmarks).
    pub fn with_store(platform: Platform, store: Arc<dyn CorpStore>) -> CorpType {
        CorpType {
            platform,
            store: Some(store),
        }
    }
}

impl TypeImpl for CorpType {
    fn type_name(&self) -> &str {
        config::type_name(self.platform)
    }

    fn config_schema(&self) -> Option<Value> {
        jit_core::embedded::config_schema(config::type_name(self.platform))
    }

    fn instantiate(&self, ctx: InstanceContext) -> Result<Arc<dyn Element>, String> {
        Ok(Arc::new(CorpElement::new(
            self.platform,
            ctx,
            self.store.clone(),
        )?))
    }
}

/// Registers `corps.QywxInnerType` and `corps.DDInnerType`; each instance
/// opens its app's store (`DATABASE_URL`, the app's `settings.databaseUrl`,
/// or `.jit/org.db` in the app).
pub fn register_builtins(registry: &mut TypeRegistry) {
    registry.register(Arc::new(CorpType::new(Platform::Wecom)));
    registry.register(Arc::new(CorpType::new(Platform::DingTalk)));
}

/// Registers the built-in Types with every instance using one shared store.
pub fn register_builtins_with_store(registry: &mut TypeRegistry, store: Arc<dyn CorpStore>) {
    registry.register(Arc::new(CorpType::with_store(
        Platform::Wecom,
        store.clone(),
    )));
    registry.register(Arc::new(CorpType::with_store(Platform::DingTalk, store)));
}
