//! Diagnostics: every problem found while loading an app, collected in one
//! pass, each naming the file, the JSON pointer inside it and what to do.

use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// How bad a diagnostic is. Errors make `jit check` fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; the app works.
    Warning,
    /// The element (or the app) cannot work as declared.
    Error,
}

/// A stable machine-readable code for each kind of problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiagCode {
    /// A file could not be read.
    Io,
    /// A file is not valid JSON.
    InvalidJson,
    /// A document violates its JSON Schema.
    Schema,
    /// `type` names no known element.
    UnknownType,
    /// Types extend each other in a circle.
    TypeCycle,
    /// An element's `type` points at something that cannot be its type.
    BadTypeTarget,
    /// An explicit `fullName` disagrees with the folder path.
    FullNameMismatch,
    /// Two elements claim the same fullName in one app.
    DuplicateElement,
    /// An element inside another element's folder that nothing can reach.
    Unreachable,
    /// An instance's config file is missing.
    MissingConfig,
    /// An instance's config file is invalid.
    InvalidConfig,
    /// A `{{NAME}}` placeholder names an unset environment variable.
    UnsetVariable,
    /// A folder name is not a valid identifier.
    InvalidName,
    /// `app.json` is wrong (bad `extends`, ...).
    AppManifest,
    /// A Type has no implementation (built-in or plugin).
    NoImplementation,
    /// A plugin library problem (load, symbol, ABI, exports).
    Plugin,
    /// Building a `loadTime: startUp` instance failed.
    Instantiate,
    /// A path in a declaration (`frontBundleEntry`, a config file reached
    /// through a symbolic link) leads outside the app folder.
    OutsideApp,
    /// A config names something elsewhere in the app that is not there or
    /// does not take the call (a task's `call`: an element that does not
    /// exist or is not an instance, a method it does not declare, arguments
    /// that method does not take).
    CallTarget,
}

/// One problem, located precisely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code.
    pub code: DiagCode,
    /// The file concerned (absolute or as given), or `<framework>/...` for embedded files.
    pub file: PathBuf,
    /// JSON pointer inside the file (`""` = the whole document).
    pub pointer: String,
    /// 1-based line and column, when known (JSON syntax errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// The element concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element: Option<String>,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic of `severity` at `file`/`pointer`.
    pub fn new(
        severity: Severity,
        code: DiagCode,
        file: impl AsRef<Path>,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity,
            code,
            file: file.as_ref().to_path_buf(),
            pointer: pointer.into(),
            line: None,
            column: None,
            element: None,
            message: message.into(),
        }
    }

    /// An error at `file`/`pointer`: the common case, so it has a shorthand.
    pub fn error(
        code: DiagCode,
        file: impl AsRef<Path>,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::new(Severity::Error, code, file, pointer, message)
    }

    /// Names the element concerned.
    pub fn for_element(mut self, full_name: impl Into<String>) -> Diagnostic {
        self.element = Some(full_name.into());
        self
    }

    /// Adds a line/column position.
    pub fn at(mut self, line: usize, column: usize) -> Diagnostic {
        self.line = Some(line);
        self.column = Some(column);
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}[{}]: {}", code_str(self.code), self.file.display())?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        if !self.pointer.is_empty() {
            write!(f, " at {}", self.pointer)?;
        }
        if let Some(e) = &self.element {
            write!(f, " ({e})")?;
        }
        write!(f, ": {}", self.message)
    }
}

fn code_str(code: DiagCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// All diagnostics of one load, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    /// Adds several.
    pub fn extend(&mut self, ds: impl IntoIterator<Item = Diagnostic>) {
        self.0.extend(ds);
    }
    /// True if any is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }
    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Error)
    }
    /// All of them.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
