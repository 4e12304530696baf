//! A stand-alone proxy DHCP server, used by the network-namespace tests and the benchmark.
//!
//! ```text
//! proxydhcp CONFIG.toml [--stats-file PATH] [--events] [--log-format text|json]
//! ```
//! CONFIG.toml holds a `[dhcp]` table exactly as in kindling.toml (other tables are ignored).
//! With `[dhcp.v6] enabled` the DHCPv6 server runs too (and the IPv4 one only when
//! `dhcp.enabled`). Prints `READY` on stdout once every socket of both is bound; on SIGTERM/SIGINT writes the counters
//! as JSON to `--stats-file` and exits 0. With `--events`, observer events go to stdout as JSON
//! lines. Exits 2 with the error on stderr if binding fails. Logs go to stderr; with
//! `--log-format` the subscriber is set up as `kindling serve` sets up its own (text without
//! ANSI colours, or JSON with flattened events).

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::Parser;
use kindling_dhcp::v6::Dhcp6Server;
use kindling_dhcp::{AnsweredEvent, DhcpConfig, DhcpObserver, DhcpServer, IgnoredEvent, SeenEvent};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Args {
    config: PathBuf,
    #[arg(long)]
    stats_file: Option<PathBuf>,
    #[arg(long)]
    events: bool,
    #[arg(long)]
    log_format: Option<LogFormat>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    dhcp: DhcpConfig,
}

struct Printer(Mutex<std::io::Stdout>);

impl Printer {
    fn line(&self, v: serde_json::Value) {
        if let Ok(mut out) = self.0.lock() {
            let _ = writeln!(out, "{v}");
            let _ = out.flush();
        }
    }
}

impl DhcpObserver for Printer {
    fn seen(&self, e: &SeenEvent<'_>) {
        self.line(serde_json::json!({
            "event": "seen", "iface": e.iface, "mac": e.client.mac_string(),
            "arch": e.client.arch, "architectures": e.client.architectures,
            "source": e.source.to_string(),
        }));
    }
    fn answered(&self, e: &AnsweredEvent<'_>) {
        self.line(serde_json::json!({
            "event": "answered", "iface": e.iface, "mac": e.client.mac_string(),
            "firmware": e.client.firmware.map(|f| f.label()), "arch": e.client.arch,
            "file": e.reply.file, "dest": e.reply.dest.to_string(), "port": e.port.number(),
        }));
    }
    fn ignored(&self, e: &IgnoredEvent<'_>) {
        self.line(serde_json::json!({
            "event": "ignored", "iface": e.iface, "reason": e.reason.label(),
            "mac": e.client.map(|c| c.mac_string()), "source": e.source.to_string(),
        }));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        );
    // As crates/kindling/src/main.rs init_logging does.
    match args.log_format {
        None => builder.init(),
        Some(LogFormat::Text) => builder.with_ansi(false).init(),
        Some(LogFormat::Json) => builder.json().flatten_event(true).init(),
    }
    let text = std::fs::read_to_string(&args.config)?;
    let file: File = toml::from_str(&text)?;
    let observer: Arc<dyn DhcpObserver> = if args.events {
        Arc::new(Printer(Mutex::new(std::io::stdout())))
    } else {
        Arc::new(Quiet)
    };
    // IPv4 unless only `[dhcp.v6]` is on; DHCPv6 when `[dhcp.v6] enabled`.
    let server = if file.dhcp.enabled || !file.dhcp.v6.enabled {
        match DhcpServer::bind_with_observer(&file.dhcp, observer).await {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        }
    } else {
        None
    };
    let server6 = if file.dhcp.v6.enabled {
        match Dhcp6Server::bind(&file.dhcp).await {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        }
    } else {
        None
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "READY")?;
        out.flush()?;
    }
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
    let run4 = async {
        if let Some(s) = &server {
            s.run(cancel.clone()).await;
        }
    };
    let run6 = async {
        if let Some(s) = &server6 {
            s.run(cancel.clone()).await;
        }
    };
    tokio::join!(run4, run6);
    if let Some(p) = args.stats_file {
        let mut stats = match &server {
            Some(s) => serde_json::to_value(s.stats())?,
            None => serde_json::json!({}),
        };
        if let (Some(s), Some(obj)) = (&server6, stats.as_object_mut()) {
            obj.insert("dhcpv6".into(), serde_json::to_value(s.stats())?);
        }
        std::fs::write(p, serde_json::to_string_pretty(&stats)?)?;
    }
    Ok(())
}

struct Quiet;
impl DhcpObserver for Quiet {}
