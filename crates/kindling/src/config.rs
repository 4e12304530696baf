//! `kindling.toml`: every key has a default, so no file is needed at all.
//! Precedence: built-in defaults < file < `KINDLING_*` environment < flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// matchbox-layout data directory (groups/ profiles/ ignition/ generic/ cloud/ assets/).
    pub data_dir: Option<PathBuf>,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub reload: ReloadConfig,
    /// Proxy DHCP (see docs/dhcp.md); off by default.
    pub dhcp: kindling_dhcp::DhcpConfig,
    /// TFTP for the iPXE binaries (see docs/tftp.md); off by default.
    pub tftp: kindling_tftp::TftpConfig,
    /// Fedora CoreOS stream tracking (see docs/fcos.md); no streams by default.
    pub fcos: kindling_fcos::FcosConfig,
    /// Distribution boot menus at /menu.ipxe (see docs/menus.md).
    pub menu: kindling_menu::MenuConfig,
    /// Pull-through cache of the menus' kernels and initrds at /cache/ (see docs/menus.md).
    pub cache: kindling_menu::CacheConfig,
    /// Boot timelines, journal, metrics, dashboard (see docs/operations.md).
    pub ops: kindling_ops::OpsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the HTTP boot service.
    pub listen: SocketAddr,
    /// Serve `/assets/` (matchbox's `-assets-path`); `false` disables it.
    pub assets: bool,
    /// Assets directory; default `<data_dir>/assets`.
    pub assets_dir: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            assets: true,
            assets_dir: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,kindling::http=warn`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReloadConfig {
    /// Watch groups/ and profiles/ for changes (inotify).
    pub watch: bool,
    /// Wait this long after a change for more changes before reloading.
    pub debounce_ms: u64,
    /// Also re-check the directory this often (0 = never); catches changes
    /// that file watching misses (network file systems).
    pub interval_secs: u64,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            watch: true,
            debounce_ms: 100,
            interval_secs: 30,
        }
    }
}

/// Where the configuration came from, for the start-up log.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Defaults,
}

/// Loads the config: an explicit path must exist; otherwise `./kindling.toml`
/// then `/etc/kindling/kindling.toml` are used if present, else defaults.
pub fn load(explicit: Option<&Path>) -> Result<(Config, Source)> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.to_path_buf()],
        None => vec![
            PathBuf::from("kindling.toml"),
            PathBuf::from("/etc/kindling/kindling.toml"),
        ],
    };
    for path in candidates {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let cfg: Config = toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                return Ok((cfg, Source::File(path)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => continue,
            Err(e) => return Err(e).with_context(|| format!("reading config {}", path.display())),
        }
    }
    Ok((Config::default(), Source::Defaults))
}

/// Where the journal lives: `ops.state_dir`, else `<data_dir>/state`.
pub fn state_dir(cfg: &Config, data_dir: &Path) -> PathBuf {
    cfg.ops
        .state_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("state"))
}

/// The default data directory: `/var/lib/kindling` for root, else
/// `$XDG_DATA_HOME/kindling` (or `~/.local/share/kindling`).
pub fn default_data_dir() -> PathBuf {
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid() == 0
        })
        .unwrap_or(false);
    if is_root {
        return PathBuf::from("/var/lib/kindling");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("kindling");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(h).join(".local/share/kindling");
    }
    PathBuf::from("kindling-data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c.http.listen.port(), 8080);
        assert!(c.http.assets);
        assert!(c.reload.watch);
    }

    #[test]
    fn unknown_keys_rejected_with_position() {
        let e =
            toml::from_str::<Config>("[http]\nlisten = \"0.0.0.0:80\"\nlisen = 1\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("lisen"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }
}
