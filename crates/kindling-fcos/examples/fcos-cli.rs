//! `kindling fcos` as a standalone program, until the `kindling` binary wires
//! it in: `cargo run -p kindling-fcos --example fcos-cli -- --data-dir D pull ...`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kindling_fcos::cli::{FcosCommand, run};

#[derive(Parser)]
struct Args {
    /// Data directory (matchbox layout).
    #[arg(long)]
    data_dir: PathBuf,
    #[command(subcommand)]
    cmd: FcosCommand,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let a = Args::parse();
    match run(a.cmd, &a.data_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
