//! The `apply` scenario: apply a plan that creates a whole org (N members,
//! each in 1–3 departments of a ~N/20 department tree, with their
//! memberships, local users and auth bindings) to an empty store, timing
//! only `apply_plan` (one transaction).
//!
//! Targets: under 3 s on SQLite and under 8 s on PostgreSQL for 100,000
//! members, on the 2-core reference machine, release build.

use crate::emit;
use jit_org::Provider;
use serde_json::json;
use std::time::Instant;

/// Options of `jit-bench apply`.
#[derive(clap::Args)]
pub struct ApplyArgs {
    /// Members the plan creates.
    #[arg(long, default_value_t = 100_000)]
    pub members: usize,
    /// Also measure PostgreSQL at this URL (a fresh schema, dropped afterwards).
    #[arg(long)]
    pub pg_url: Option<String>,
}

const SQLITE_TARGET_S: f64 = 3.0;
const PG_TARGET_S: f64 = 8.0;

/// Runs the scenario: SQLite always, PostgreSQL when a URL is given.
pub fn run_apply(a: &ApplyArgs) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async {
        let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temp dir: {e}"))?;
        let path = dir.path().join("bench.db");
        let store = jit_store::open(&path.display().to_string())
            .await
            .map_err(|e| e.to_string())?;
        measure(&*store, "sqlite", a.members, SQLITE_TARGET_S).await?;
        if let Some(url) = &a.pg_url {
            let schema = format!("jit_bench_{}", std::process::id());
            let store = jit_store::open_postgres_in_schema(url, &schema)
                .await
                .map_err(|e| e.to_string())?;
            let result = measure(&*store, "postgres", a.members, PG_TARGET_S).await;
            drop(store);
            jit_store::drop_postgres_schema(url, &schema)
                .await
                .map_err(|e| e.to_string())?;
            result?;
        }
        Ok(())
    })
}

async fn measure(
    store: &dyn jit_store::CorpStore,
    backend: &str,
    members: usize,
    target: f64,
) -> Result<(), String> {
    let org = jit_store::synthetic::creation_plan("corps.Bench", Provider::Wecom, members);
    let run = jit_store::SyncRun {
        run_id: 0,
        corp: org.corp.full_name.clone(),
        started_at: 0,
        finished_at: 0,
        outcome: jit_store::RunOutcome::Applied,
        counts: Default::default(),
        error: None,
        notes: vec![],
        kind: jit_store::RunKind::Sync,
        missed_by_events: None,
        calls: None,
    };
    // Handed over as the sync engine hands it (no copy inside the timing).
    let plan = std::sync::Arc::new(org.plan.clone());
    let start = Instant::now();
    let report = store
        .apply_shared_plan(&org.corp, plan, &run)
        .await
        .map_err(|e| e.to_string())?;
    let seconds = start.elapsed().as_secs_f64();
    let expected = jit_store::synthetic::expected_rows(&org);
    if report.rows_written != expected {
        return Err(format!(
            "{backend}: wrote {} rows, expected {expected}",
            report.rows_written
        ));
    }
    emit(json!({
        "scenario": "apply",
        "backend": backend,
        "members": members,
        "depts": org.plan.upsert_depts.len(),
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "rows_written": report.rows_written,
        "target_seconds": target,
        "ratio": (seconds / target * 1000.0).round() / 1000.0,
    }));
    Ok(())
}
