//! The type registry: which Rust implementation serves which Type fullName.

use crate::define::ElementDefine;
use crate::diagnostics::Diagnostic;
use crate::element::TypeImpl;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// What a [`TypeProvider`] sees of an app while it loads: after every
/// `e.json` is read, before types are resolved.
pub struct AppView<'a> {
    /// The app's root folder.
    pub root: &'a Path,
    /// The parsed `app.json` (`Value::Null` if the app has none).
    pub manifest: &'a Value,
    /// Every element of the app and its parents, by fullName (child overrides applied).
    pub elements: &'a BTreeMap<String, Arc<ElementDefine>>,
}

/// Types found while loading an app, with the problems met finding them.
#[derive(Default)]
pub struct ProvidedTypes {
    /// Implementations to register (by their `type_name`).
    pub types: Vec<Arc<dyn TypeImpl>>,
    /// Problems, reported with the loader's own diagnostics.
    pub diagnostics: Vec<Diagnostic>,
}

/// A source of Type implementations that depends on the app being loaded
/// (the plugin host implements it; the core itself never loads libraries).
pub trait TypeProvider: Send + Sync {
    /// Called once per load.
    fn provide(&self, app: &AppView<'_>) -> ProvidedTypes;
}

/// Type implementations by fullName, plus providers consulted at load time.
#[derive(Clone, Default)]
pub struct TypeRegistry {
    types: HashMap<String, Arc<dyn TypeImpl>>,
    providers: Vec<Arc<dyn TypeProvider>>,
}

impl TypeRegistry {
    /// An empty registry.
    pub fn new() -> TypeRegistry {
        TypeRegistry::default()
    }

    /// Registers an implementation under its `type_name`, replacing any earlier one.
    pub fn register(&mut self, imp: Arc<dyn TypeImpl>) {
        self.types.insert(imp.type_name().to_string(), imp);
    }

    /// Adds a provider consulted every time an app loads.
    pub fn add_provider(&mut self, provider: Arc<dyn TypeProvider>) {
        self.providers.push(provider);
    }

    /// The implementation registered for a Type fullName.
    pub fn get(&self, type_name: &str) -> Option<&Arc<dyn TypeImpl>> {
        self.types.get(type_name)
    }

    /// Registered Type fullNames, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.types.keys().cloned().collect();
        v.sort();
        v
    }

    pub(crate) fn providers(&self) -> &[Arc<dyn TypeProvider>] {
        &self.providers
    }
}
