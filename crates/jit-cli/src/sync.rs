//! `jit sync`: one org sync with a progress line on a terminal and a summary.

use jit_apiclient::{Progress, ProgressEvent};
use jit_corps::{CorpClient, CorpElement};
use jit_sync::{SyncError, SyncReport};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the progress line shows, and when it was last drawn.
struct LineState {
    /// Per unit: (found, done).
    tallies: BTreeMap<String, (u64, u64)>,
    /// The current phase.
    phase: String,
    /// When the line was last drawn (redrawn at most every 100 ms).
    drawn: Instant,
}

/// Shows what a sync is doing on one self-rewriting stderr line (only when
/// stderr is a terminal, so logs and pipes stay clean).
pub struct TerminalProgress {
    enabled: bool,
    client: Option<CorpClient>,
    state: Mutex<LineState>,
}

impl TerminalProgress {
    /// A progress line for a sync through `client`.
    pub fn new(client: Option<CorpClient>) -> TerminalProgress {
        TerminalProgress {
            enabled: std::io::stderr().is_terminal(),
            client,
            state: Mutex::new(LineState {
                tallies: BTreeMap::new(),
                phase: String::new(),
                drawn: Instant::now(),
            }),
        }
    }

    fn draw(&self, tallies: &BTreeMap<String, (u64, u64)>, phase: &str) {
        let mut line = format!("\r  {phase:<12}");
        for (unit, (found, done)) in tallies {
            line.push_str(&format!(" {unit} {done}/{found}"));
        }
        if let Some(c) = &self.client {
            let s = c.stats();
            let waits: u64 = s.endpoints.values().map(|e| e.budget_wait_ms).sum();
            let throttled: u64 = s.endpoints.values().map(|e| e.throttled).sum();
            line.push_str(&format!(
                "  calls {}  throttled {}  budget waits {:.1}s",
                s.total_calls(),
                throttled,
                waits as f64 / 1000.0
            ));
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{line}\x1b[K");
        let _ = err.flush();
    }

    /// Ends the progress line.
    pub fn finish(&self) {
        if self.enabled {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            self.draw(&state.tallies, "done");
            eprintln!();
        }
    }
}

impl Progress for TerminalProgress {
    fn on_event(&self, event: &ProgressEvent) {
        if !self.enabled {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            ProgressEvent::Phase(p) => state.phase = p.clone(),
            ProgressEvent::Discovered { unit, count } => {
                state.tallies.entry(unit.clone()).or_default().0 += count
            }
            ProgressEvent::Done { unit, count } => {
                state.tallies.entry(unit.clone()).or_default().1 += count
            }
            ProgressEvent::Note(_) => {}
        }
        if state.drawn.elapsed() >= Duration::from_millis(100)
            || matches!(event, ProgressEvent::Phase(_))
        {
            state.drawn = Instant::now();
            self.draw(&state.tallies, &state.phase);
        }
    }
}

/// The `jit sync` flags that change the engine's options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--force`.
    pub force: bool,
    /// `--wait SECS`, overriding `sync.lockWaitSecs`.
    pub wait: Option<f64>,
}

/// Runs a sync of one org element and prints the result.
pub async fn sync_one(corp: &CorpElement, flags: Flags, json_out: bool) -> Result<bool, String> {
    let mut opts = corp.sync_options();
    opts.dry_run = flags.dry_run;
    opts.force = flags.force;
    if let Some(w) = flags.wait {
        opts.lock_wait_secs = w;
    }
    let progress = TerminalProgress::new(corp.client().ok());
    let result = corp.sync_corp(&opts, &progress).await;
    progress.finish();
    match result {
        Ok(report) => {
            if json_out {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&jit_corps::report_json(
                        corp.full_name(),
                        &report,
                        None
                    ))
                    .unwrap_or_default()
                );
            } else {
                print_summary(corp, &report);
            }
            let complete = report.is_complete();
            // `jit sync` exits next, and the OS takes an org-sized report
            // back at once: freeing it allocation by allocation (every
            // planned member and change line, twice) is ~20 ms at 20,000
            // members that would only delay the exit.
            std::mem::forget(report);
            Ok(complete)
        }
        Err(jit_corps::CorpError::Sync(e @ SyncError::Refused { .. })) => {
            if json_out {
                println!(
                    "{}",
                    json!({"org": corp.full_name(), "outcome": "refused", "error": e.to_string()})
                );
            }
            Err(e.to_string())
        }
        Err(jit_corps::CorpError::Sync(e @ SyncError::Busy(_))) => {
            if json_out {
                println!(
                    "{}",
                    json!({"org": corp.full_name(), "outcome": "busy", "error": e.to_string()})
                );
            }
            Err(format!(
                "{e}; nothing was read or written (wait for it, or pass --wait SECS)"
            ))
        }
        Err(e) => {
            if json_out {
                println!(
                    "{}",
                    json!({"org": corp.full_name(), "outcome": "failed", "error": e.to_string()})
                );
            }
            Err(e.to_string())
        }
    }
}

/// The human summary table of a run.
pub fn print_summary(corp: &CorpElement, r: &SyncReport) {
    println!(
        "{} ({}): run {} {}",
        corp.full_name(),
        corp.title(),
        r.run_id,
        match r.outcome {
            jit_store::RunOutcome::DryRun => "DRY RUN: nothing was written",
            _ => "applied",
        }
    );
    println!(
        "  upstream            {} members in {} departments",
        r.upstream_members, r.upstream_depts
    );
    // In ChangeKind order: created, updated, moved, offlined, reactivated,
    // removed, skipped.
    for (kind, n) in r.counts.iter().filter(|(_, n)| **n > 0) {
        println!("  {:<19} {n}", kind.as_str());
    }
    if r.counts.values().all(|n| *n == 0) {
        println!("  changes             none (the store already matches)");
    }
    println!("  rows written        {}", r.rows_written);
    let throttled: u64 = r.fetch_stats.endpoints.values().map(|e| e.throttled).sum();
    let retries: u64 = r.fetch_stats.endpoints.values().map(|e| e.retries).sum();
    println!(
        "  API calls           {} ({} retried, {} throttled)",
        r.fetch_stats.total_calls(),
        retries,
        throttled
    );
    println!(
        "  time                {:.2}s (fetch {:.2}s, apply {:.2}s)",
        r.durations.total_ms as f64 / 1000.0,
        r.durations.fetch_ms as f64 / 1000.0,
        r.durations.apply_ms as f64 / 1000.0
    );
    for f in &r.failures {
        println!(
            "  FAILED TO READ      {}: {} (nothing was offlined)",
            f.what, f.error
        );
    }
    for n in &r.notes {
        println!("  note                {n}");
    }
    for c in &r.conflicts {
        println!("  identity conflict   {}: {}", c.member_id, c.message);
    }
}
