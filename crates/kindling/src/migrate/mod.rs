//! `kindling migrate`: configurations of the tools Kindling replaces, as `kindling.toml`.
//!
//! The translations are sans-I/O ([`dnsmasq::translate`], [`matchbox::translate`]: text or
//! arguments in, TOML text and warnings out); this module only reads the input, writes the
//! output and prints the warnings.

pub mod dnsmasq;
pub mod matchbox;
pub mod probe;
mod toml_out;

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

#[derive(clap::Subcommand, Debug, Clone)]
pub enum MigrateCommand {
    /// Translate a dnsmasq configuration to kindling.toml (proxy DHCP, TFTP, logging), with a
    /// comment for every line Kindling cannot express and every client that would be
    /// answered differently.
    Dnsmasq(DnsmasqArgs),
    /// Translate matchbox's flags (and MATCHBOX_* environment variables) to kindling.toml.
    Matchbox(MatchboxArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct DnsmasqArgs {
    /// The dnsmasq configuration file ("-": standard input).
    pub file: PathBuf,
    /// Write the result here instead of to standard output.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Kindling's address on the boot network (default: the address the configuration's
    /// URLs name in a dhcp-range subnet, else one of the range).
    #[arg(long, value_name = "IP")]
    pub server_ip: Option<Ipv4Addr>,
    /// Keep netboot.xyz menu URLs instead of sending those machines to Kindling's /menu.ipxe.
    #[arg(long)]
    pub keep_netboot_xyz: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct MatchboxArgs {
    /// Write the result here instead of to standard output.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// matchbox's flags as given to matchbox, e.g. -address=0.0.0.0:8080 -rpc-address=0.0.0.0:8081
    /// (MATCHBOX_* environment variables are read too).
    #[arg(
        value_name = "FLAGS",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..
    )]
    pub flags: Vec<String>,
}

pub fn run(cmd: &MigrateCommand) -> Result<std::process::ExitCode> {
    match cmd {
        MigrateCommand::Dnsmasq(a) => {
            let text = read_input(&a.file)?;
            let source = if a.file == Path::new("-") {
                "standard input".to_string()
            } else {
                a.file.display().to_string()
            };
            let out = dnsmasq::translate(
                &text,
                &dnsmasq::Options {
                    source,
                    server_ip: a.server_ip,
                    keep_netboot_xyz: a.keep_netboot_xyz,
                },
            );
            for w in &out.warnings {
                eprintln!("kindling migrate: warning: {w}");
            }
            write_output(a.output.as_deref(), &out.toml)?;
            let not_translated = out.toml.matches("— not translated:").count();
            eprintln!(
                "kindling migrate: {} line(s) not translated, {} client(s) answered differently from dnsmasq (see the comments)",
                not_translated, out.differences
            );
        }
        MigrateCommand::Matchbox(a) => {
            let env: Vec<(String, String)> = std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .filter(|(k, _)| k.starts_with("MATCHBOX_"))
                .collect();
            let out = matchbox::translate(&a.flags, &env);
            for w in &out.warnings {
                eprintln!("kindling migrate: warning: {w}");
            }
            write_output(a.output.as_deref(), &out.toml)?;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn read_input(p: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    if p == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
    } else {
        bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    }
    // dnsmasq reads bytes; text that is not UTF-8 (a Latin-1 comment) is kept lossily.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn write_output(out: Option<&Path>, text: &str) -> Result<()> {
    match out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display())),
        None => {
            let mut o = std::io::stdout().lock();
            o.write_all(text.as_bytes())
                .and_then(|_| o.flush())
                .context("writing standard output")
        }
    }
}
