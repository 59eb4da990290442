//! `jit-bench sync --cli PATH`: the whole `jit sync` command as a user runs
//! it — process start, app load, store open, fetch, plan, apply, exit —
//! against the same simulator, timed from spawn to exit.
//!
//! The app is written to a temp dir: one org element whose config points at
//! the simulator, with the default SQLite store in the app's `.jit/`.

use jit_org::Platform;
use jit_sim::SimInfo;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Instant;

/// What one `jit sync` process did.
pub struct CliRun {
    /// Spawn to exit.
    pub wall_s: f64,
}

fn write(path: &Path, v: &Value) -> Result<(), String> {
    std::fs::create_dir_all(path.parent().expect("has parent"))
        .and_then(|()| std::fs::write(path, serde_json::to_vec_pretty(v).expect("json")))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Writes the app and runs `jit sync corps.Bench --app DIR` once.
pub fn run(jit: &Path, platform: Platform, info: &SimInfo) -> Result<CliRun, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temp dir: {e}"))?;
    let root = dir.path();
    write(
        &root.join("app.json"),
        &json!({"appId": "bench.cli", "title": "jit sync benchmark"}),
    )?;
    let (ty, config) = match platform {
        Platform::Wecom => (
            "corps.QywxInnerType",
            json!({
                "corpId": info.wecom.corp_id,
                "agentId": info.wecom.agent_id.to_string(),
                "secret": info.wecom.secret,
                "apiBase": info.wecom.api_base_url,
            }),
        ),
        Platform::DingTalk => {
            let d = &info.dingtalk[0];
            (
                "corps.DDInnerType",
                json!({"authConfig": {
                    "corpId": d.corp_id,
                    "agentId": d.agent_id.to_string(),
                    "appKey": d.app_key,
                    "appSecret": d.app_secret,
                    "apiBase": d.api_base_url,
                    "oapiBase": d.oapi_base_url,
                }}),
            )
        }
    };
    write(
        &root.join("corps/Bench/e.json"),
        &json!({"title": "Benchmark org", "type": ty, "backendBundleEntry": "."}),
    )?;
    write(&root.join("corps/Bench/Bench.json"), &config)?;

    let started = Instant::now();
    let out = std::process::Command::new(jit)
        .args(["sync", "corps.Bench", "--app"])
        .arg(root)
        // A store URL in the environment would send the rows elsewhere.
        .env_remove(jit_store::DATABASE_URL_ENV)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", jit.display()))?;
    let wall_s = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "{} sync failed ({}): {}",
            jit.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(CliRun { wall_s })
}
