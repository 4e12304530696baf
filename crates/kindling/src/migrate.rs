//! `kindling migrate`: configurations of the tools Kindling replaces, as `kindling.toml`.

use anyhow::Result;

#[derive(clap::Subcommand, Debug, Clone)]
pub enum MigrateCommand {
    /// Translate a dnsmasq configuration to kindling.toml.
    Dnsmasq {
        /// The dnsmasq configuration file.
        file: std::path::PathBuf,
    },
}

pub fn run(cmd: &MigrateCommand) -> Result<std::process::ExitCode> {
    match cmd {
        MigrateCommand::Dnsmasq { .. } => anyhow::bail!("kindling migrate dnsmasq: not built yet"),
    }
}
