//! `jit-bench`: measures app load, element lookups, org sync and store apply,
//! printing one JSON object per result (scenario, sizes, figures, the
//! baseline or floor, and the ratio) so scripts can compare runs.
//!
//! Run with `cargo run --release -p jit-bench -- <scenario>`; see BENCHMARKS.md.

mod apply;
mod cli_run;
mod events;
mod floor;
mod load;
mod serve;
mod sync;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "jit-bench",
    about = "Benchmarks for the jit runtime (JSON lines out)"
)]
struct Cli {
    /// Leave glibc's malloc arenas at their default (one per thread that
    /// allocates) instead of capping them at two as the `jit` binary does:
    /// what a host that embeds the crates gets unless it sets the cap.
    #[arg(long, global = true)]
    default_malloc_arenas: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Full app load with validation vs a raw walk-read-parse of the same tree.
    Load(load::LoadArgs),
    /// get_element on cached elements from 1 and 8 threads, and the first (instantiating) call.
    Lookup(load::LookupArgs),
    /// Apply a plan creating N members (1–3 departments each) to an empty SQLite store, and to PostgreSQL with --pg-url.
    Apply(apply::ApplyArgs),
    /// Full then repeated sync of a simulated WeCom or DingTalk org (in-process
    /// simulator at the real rate limits) vs its floor (rate windows or
    /// latency); optionally vs a one-call-at-a-time client and `jit sync`.
    Sync(sync::SyncArgs),
    /// Element calls (getRootDept) through jit serve's HTTP API at 64 concurrent
    /// clients vs the same call in-process: calls/s, p50/p99 latency.
    Serve(serve::ServeArgs),
    /// 1,000 mutations upstream at 100/s on a 20,000-member org, their
    /// callbacks applied through the engine: p50/p99 from mutation to
    /// commit, platform calls per event, store equal to the truth.
    Events(events::EventsArgs),
}

/// Prints one result line.
pub fn emit(v: serde_json::Value) {
    println!("{v}");
}

fn main() {
    // Parsing starts no thread, so the cap is still set before any exists.
    let cli = Cli::parse();
    if !cli.default_malloc_arenas {
        jit_alloc::limit_malloc_arenas();
    }
    let result = match cli.scenario {
        Scenario::Load(a) => load::run_load(&a),
        Scenario::Lookup(a) => load::run_lookup(&a),
        Scenario::Apply(a) => apply::run_apply(&a),
        Scenario::Sync(a) => sync::run_sync_bench(&a),
        Scenario::Serve(a) => serve::run_serve(&a),
        Scenario::Events(a) => events::run_events(&a),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
