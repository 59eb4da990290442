//! `corps.AuditedQywxType`: a WeCom org exactly like the built-in
//! `corps.QywxInnerType` (its Type element says `"type": "corps.QywxInnerType"`),
//! except that `syncCorp` also appends one line per run to the app's sync
//! audit log, `<app>/.jit/sync-audit.jsonl`: when, which org, and the
//! outcome. Every other method is served by the built-in parent Type; the
//! override calls the parent's own `syncCorp` to do the actual sync.

use jit_plugin_sdk::{export_plugin, json, Host, Init, PluginError, PluginType, Value};
use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// One audited WeCom org.
pub struct AuditedQywx {
    full_name: String,
    log_file: PathBuf,
}

impl PluginType for AuditedQywx {
    const TYPE_NAME: &'static str = "corps.AuditedQywxType";
    /// Only `syncCorp` is overridden; the parent Type serves the rest.
    const METHODS: &'static [&'static str] = &["syncCorp"];

    fn create(init: Init, _host: &Host) -> Result<Self, PluginError> {
        if init.parent_type.is_none() {
            return Err(PluginError::new(
                "corps.AuditedQywxType must extend an implemented Type (declare \"type\": \"corps.QywxInnerType\")",
            ));
        }
        Ok(AuditedQywx {
            log_file: PathBuf::from(&init.app_root)
                .join(".jit")
                .join("sync-audit.jsonl"),
            full_name: init.full_name,
        })
    }

    fn call(&self, host: &Host, method: &str, args: Value) -> Result<Value, PluginError> {
        match method {
            "syncCorp" => {
                let outcome = host.call_parent("syncCorp", args);
                let at = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let line = match &outcome {
                    Ok(report) => {
                        json!({ "at": at, "element": self.full_name, "ok": true, "report": report })
                    }
                    Err(e) => {
                        json!({ "at": at, "element": self.full_name, "ok": false, "error": e.message() })
                    }
                };
                self.append(&line)?;
                host.info(&format!(
                    "sync of {} audited in {}",
                    self.full_name,
                    self.log_file.display()
                ));
                outcome
            }
            other => Err(PluginError::unknown_method(other)),
        }
    }
}

impl AuditedQywx {
    fn append(&self, line: &Value) -> Result<(), PluginError> {
        let fail = |e: std::io::Error| {
            PluginError::new(format!("audit log {}: {e}", self.log_file.display()))
        };
        if let Some(dir) = self.log_file.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .map_err(fail)?;
        writeln!(f, "{line}").map_err(fail)
    }
}

export_plugin!(types: [AuditedQywx]);
