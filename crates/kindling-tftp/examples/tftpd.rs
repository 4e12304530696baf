//! Minimal TFTP daemon around `kindling_tftp::TftpServer`, used by the netns
//! tests and the benchmark. Prints `listening on ADDR` once bound.
//!
//! Usage: tftpd [--listen ADDR] [--root DIR] [--max-blksize N] [--max-windowsize N]
//!              [--timeout SECS] [--retries N] [--max-transfers N] [--single-port]
//!              [--ipxe-dir DIR] [--file NAME=PATH]... [--stats]

use std::io::Write;
use std::path::PathBuf;

use kindling_tftp::{CancellationToken, TftpConfig, TftpServer};

fn parse_args() -> Result<(TftpConfig, bool), String> {
    let mut c = TftpConfig {
        listen: "127.0.0.1:6969".parse().map_err(|e| format!("{e}"))?,
        ipxe_dir: PathBuf::new(),
        ..TftpConfig::default()
    };
    let mut stats = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--listen" => c.listen = val()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--root" => c.root = Some(PathBuf::from(val()?)),
            "--ipxe-dir" => c.ipxe_dir = PathBuf::from(val()?),
            "--max-blksize" => c.max_blksize = val()?.parse().map_err(|e| format!("{e}"))?,
            "--max-windowsize" => c.max_windowsize = val()?.parse().map_err(|e| format!("{e}"))?,
            "--timeout" => c.timeout = val()?.parse().map_err(|e| format!("{e}"))?,
            "--retries" => c.retries = val()?.parse().map_err(|e| format!("{e}"))?,
            "--max-transfers" => c.max_transfers = val()?.parse().map_err(|e| format!("{e}"))?,
            "--single-port" => c.single_port = true,
            "--stats" => stats = true,
            "--file" => {
                let v = val()?;
                let (k, p) = v.split_once('=').ok_or("--file NAME=PATH")?;
                c.files.insert(k.to_string(), PathBuf::from(p));
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((c, stats))
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let (config, print_stats) = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tftpd: {e}");
            std::process::exit(2);
        }
    };
    let addr = config.listen;
    let server = match TftpServer::bind(config, addr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tftpd: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on {}", server.local_addr());
    let _ = std::io::stdout().flush();
    let stats = server.stats();
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        c2.cancel();
    });
    if let Err(e) = server.run(cancel).await {
        eprintln!("tftpd: {e}");
        std::process::exit(1);
    }
    if print_stats {
        println!("{:?}", stats.snapshot());
    }
}
