//! Element declarations as read from `e.json`.

use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;

/// Which of the three layers an element is.
///
/// An element says it is a Type with `"kind": "Type"` in its `e.json`.
/// Without `kind`, an element with no `type` is a Meta and one with a `type`
/// is an Instance. So a Type and an Instance of the same parent can never be
/// confused: the Type always carries the marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ElementKind {
    /// Root of a family; no `type`.
    Meta,
    /// Provides the behaviour of its Instances; `type` names a Meta or a Type.
    Type,
    /// A concrete element; `type` names a Type.
    Instance,
}

impl ElementKind {
    /// `Meta`, `Type` or `Instance`.
    pub fn as_str(self) -> &'static str {
        match self {
            ElementKind::Meta => "Meta",
            ElementKind::Type => "Type",
            ElementKind::Instance => "Instance",
        }
    }
}

/// One argument of a declared method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgDefine {
    /// Argument name.
    pub name: String,
    /// Human title.
    pub title: String,
    /// JitAi data type (`Stext`, `JitList`, `JitDict`, `Numeric`, ...).
    pub data_type: String,
    /// Whether the caller must pass it (`required`, default true).
    pub required: bool,
}

/// One declared method (`functionList` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDefine {
    /// Method name.
    pub name: String,
    /// Human title.
    pub title: String,
    /// Arguments in order.
    pub args: Vec<ArgDefine>,
    /// Declared return type (`None` = returns nothing).
    pub return_type: Option<String>,
    /// `async` flag as declared.
    pub is_async: bool,
}

/// Where an element's declaration came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    /// The app that declared it (its `appId`, or `jit.framework`).
    pub app_id: String,
    /// The `e.json` path (`<framework>/...` for the embedded framework app).
    pub file: PathBuf,
    /// The element's folder, when it lives on disk.
    pub dir: Option<PathBuf>,
}

/// An element declaration, resolved to its place in the app.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ElementDefine {
    /// Dotted name derived from the folder path (`corps.MyCorp`).
    pub full_name: String,
    /// `title`.
    pub title: String,
    /// `type` (fullName of its Type or Meta); `None` for a Meta.
    pub type_name: Option<String>,
    /// Meta, Type or Instance.
    pub kind: ElementKind,
    /// Declared methods (for a Type, inherited ones are resolved at lookup).
    pub functions: Vec<FunctionDefine>,
    /// `loadTime` (`startUp`, `afterStartUp`, or `None` = on demand).
    pub load_time: Option<String>,
    /// `accessModifier` (`public` by default).
    pub access_modifier: String,
    /// The config file of an instance, if found.
    pub config_file: Option<PathBuf>,
    /// Where it was declared.
    pub origin: Origin,
    /// The whole `e.json` as written.
    pub raw: Value,
}

impl ElementDefine {
    /// Whether this is a `kind` declared directly on `type_name` (an
    /// Instance of a Type, a Type of a Meta): what "did you mean" hints list.
    pub fn is_kind_of(&self, kind: ElementKind, type_name: &str) -> bool {
        self.kind == kind && self.type_name.as_deref() == Some(type_name)
    }

    /// The declared method of that name, if any.
    pub fn function(&self, name: &str) -> Option<&FunctionDefine> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// The `tag` field split on commas.
    pub fn tags(&self) -> Vec<String> {
        self.raw
            .get("tag")
            .and_then(Value::as_str)
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}
