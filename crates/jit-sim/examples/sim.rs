//! `jit sim` without the rest of the `jit` binary:
//! `cargo run -p jit-sim --example sim -- --seed 7 --depts 200 --users 5000`.

use clap::Parser;

/// The simulator's options, exactly as `jit sim` takes them.
#[derive(Parser)]
struct Cmd {
    #[command(flatten)]
    args: jit_sim::cli::SimArgs,
}

#[tokio::main]
async fn main() {
    if let Err(e) = jit_sim::cli::run(Cmd::parse().args).await {
        eprintln!("jit sim: {e}");
        std::process::exit(1);
    }
}
