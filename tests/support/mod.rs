//! Fixture apps for the integration tests: built in temp dirs, file by file.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};

/// An app folder being written for a test; removed when dropped.
pub struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// An empty app folder.
    pub fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The app folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a JSON file (pretty, so line numbers are meaningful).
    pub fn json(&self, rel: &str, v: Value) -> &Fixture {
        self.text(rel, &serde_json::to_string_pretty(&v).unwrap())
    }

    /// Writes a file verbatim.
    pub fn text(&self, rel: &str, text: &str) -> &Fixture {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    /// A sub-folder path (for parent apps).
    pub fn sub(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}
