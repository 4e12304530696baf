//! `kindling.toml`: every key has a default, so no file is needed at all.
//! Precedence: built-in defaults < file < `KINDLING_*` environment < flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, Default, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// matchbox-layout data directory (`groups/ profiles/ ignition/ generic/ cloud/
    /// assets/`), created with those sub-directories if missing; served as it is when
    /// read-only. Unset: `/var/lib/kindling` as root, else `$XDG_DATA_HOME/kindling`
    /// (`~/.local/share/kindling`).
    pub data_dir: Option<PathBuf>,
    /// The HTTP boot service: matchbox's endpoints, `/assets/`, menus, cache.
    pub http: HttpConfig,
    /// The operator surface (API, events, dashboard, metrics); loopback by default.
    pub admin: AdminConfig,
    /// matchbox's gRPC management API (what terraform-provider-matchbox talks to).
    pub rpc: kindling_api::RpcConfig,
    /// Logging: format and filter.
    pub log: LogConfig,
    /// Reloading the data directory's groups and profiles when they change.
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
    /// Install-once state and discovered machines (see "Machine lifecycle" in
    /// docs/operations.md).
    pub machines: MachinesConfig,
    /// Where groups, profiles and templates live: the data directory (default) or etcd,
    /// shared by a fleet of servers (see docs/fleet.md).
    pub store: StoreConfig,
    /// UEFI Secure Boot through the distribution's signed shim and GRUB (see
    /// docs/secure-boot.md); no client is routed there by default.
    pub secure_boot: crate::secure_boot::SecureBootConfig,
}

/// The `[machines]` table: a machine's lifecycle (install once, then boot locally) and
/// machines that boot without a matching group.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MachinesConfig {
    /// Keep install-once state and discovery records in `<state dir>/machines/`, one
    /// file per machine. `false`: profiles' and groups' `install_once` is not acted on
    /// and nothing is recorded.
    pub track: bool,
    /// The profile that answers `/ipxe` and `/grub` for machines no group selects (an
    /// inventory image, a menu); `""`: a 404, as matchbox.
    pub discovery_profile: String,
    /// Discovered machines recorded at most; more are counted
    /// (`discovered_dropped` in `/api/v1/lifecycle`), not recorded.
    pub max_discovered: usize,
}

impl Default for MachinesConfig {
    fn default() -> Self {
        MachinesConfig {
            track: true,
            discovery_profile: String::new(),
            max_discovered: 10_000,
        }
    }
}

/// The `[http]` table.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the HTTP boot service.
    pub listen: SocketAddr,
    /// Serve `/assets/` (matchbox's `-assets-path`); `false` disables it.
    pub assets: bool,
    /// Assets directory; default `<data_dir>/assets`.
    pub assets_dir: Option<PathBuf>,
    /// Directory listings under `/assets/`. matchbox lists directories; Kindling answers 404
    /// for a directory without `index.html` unless this is `true`.
    pub asset_listings: bool,
    /// Answer `/ignition`, `/generic`, `/cloud`, `/metadata` by MAC only to the address
    /// that MAC was seen booting from, 403 with the reason logged otherwise (off: matchbox's
    /// behaviour). See "Ignition binding" in docs/configuration.md.
    pub ignition_binding: bool,
    /// Open connections per client address (IPv6: per /64); 0: no cap.
    pub max_connections_per_client: usize,
    /// Open connections in total on the boot listener; 0: derived from the descriptor
    /// limit, (soft `RLIMIT_NOFILE` − 256 − 2 × `tftp.max_transfers` when TFTP is on) / 2,
    /// e.g. 384 at 1,024 without TFTP.
    pub max_connections: usize,
    /// Close a connection that sends no request head for this many seconds: the first
    /// request and every idle keep-alive wait (also the TLS handshake on the admin
    /// listener).
    pub idle_timeout_secs: u64,
    /// Close a connection whose client reads nothing for this many seconds (a stalled
    /// download).
    pub write_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            assets: true,
            assets_dir: None,
            asset_listings: false,
            ignition_binding: false,
            max_connections_per_client: 64,
            max_connections: 0,
            idle_timeout_secs: 30,
            write_timeout_secs: 60,
        }
    }
}

impl HttpConfig {
    /// The boot listener's connection policy, given the descriptor limit in force.
    pub fn limits(&self, nofile: u64) -> kindling_http::server::Limits {
        kindling_http::server::Limits {
            per_client: self.max_connections_per_client,
            total: if self.max_connections > 0 {
                self.max_connections
            } else {
                kindling_http::server::Limits::total_for_fd_limit(nofile)
            },
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_secs.max(1)),
            write_timeout: std::time::Duration::from_secs(self.write_timeout_secs.max(1)),
        }
    }
}

/// The `[admin]` table: where the operator surface listens and who may use it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// `false` turns the admin listener off.
    pub enabled: bool,
    /// Address of the admin listener (`/api/v1/*`, `/ui/`, `/metrics`, `/readyz`,
    /// `/healthz`); `""` turns it off. Beyond loopback it needs `token_file` or TLS.
    pub listen: String,
    /// Require credentials even on a loopback address.
    pub require_auth: bool,
    /// A file holding the bearer token: its first line, surrounding whitespace dropped, at
    /// least 16 characters (`openssl rand -hex 32`; keep the file `chmod 600`). Requests
    /// then need `Authorization: Bearer <token>`, else 401.
    pub token_file: Option<PathBuf>,
    /// TLS on the admin listener: the server's certificate chain (PEM). `tls_cert`,
    /// `tls_key` and `client_ca` go together: all three or none.
    pub tls_cert: Option<PathBuf>,
    /// TLS: the server's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// TLS: the CA certificates (PEM) that client certificates must chain to (mTLS:
    /// a client certificate is always required).
    pub client_ca: Option<PathBuf>,
    /// Open connections per client address on the admin listener; 0: no cap.
    pub max_connections_per_client: usize,
    /// Open connections in total on the admin listener; 0: no cap.
    pub max_connections: usize,
    /// Close an admin connection whose client reads nothing for this many seconds (also
    /// drops event streams that are not read).
    pub write_timeout_secs: u64,
}

/// The admin listener's default address: loopback, next to 8080 (HTTP) and 8081 (gRPC).
pub const ADMIN_DEFAULT_LISTEN: &str = "127.0.0.1:8082";

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: ADMIN_DEFAULT_LISTEN.into(),
            require_auth: false,
            token_file: None,
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            max_connections_per_client: 16,
            max_connections: 256,
            write_timeout_secs: 30,
        }
    }
}

/// What the admin listener will do, checked before anything is bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPlan {
    pub listen: SocketAddr,
    pub token_file: Option<PathBuf>,
    /// (certificate chain, key, client CA).
    pub tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

impl AdminConfig {
    /// `Ok(None)`: no admin listener. An error when the listener would be reachable
    /// beyond loopback (or `require_auth` is set) without a token or mTLS, or when TLS is
    /// half configured.
    pub fn plan(&self, listen_override: Option<&str>) -> Result<Option<AdminPlan>> {
        let listen = listen_override.unwrap_or(&self.listen).trim();
        if !self.enabled || listen.is_empty() {
            return Ok(None);
        }
        let addr: SocketAddr = listen
            .parse()
            .map_err(|e| anyhow::anyhow!("[admin] listen {listen:?}: {e}"))?;
        let tls = match (&self.tls_cert, &self.tls_key, &self.client_ca) {
            (None, None, None) => None,
            (Some(c), Some(k), Some(ca)) => Some((c.clone(), k.clone(), ca.clone())),
            _ => anyhow::bail!(
                "[admin] TLS needs all of tls_cert, tls_key and client_ca (client certificates are always required)"
            ),
        };
        let loopback_only = addr.ip().is_loopback();
        if (!loopback_only || self.require_auth) && self.token_file.is_none() && tls.is_none() {
            let why = if loopback_only {
                "require_auth is set".to_string()
            } else {
                format!("{} is not a loopback address", addr.ip())
            };
            anyhow::bail!(
                "refusing to start the admin listener on {addr} without credentials ({why}): \
                 set [admin] token_file and/or tls_cert, tls_key and client_ca, \
                 or listen on 127.0.0.1, or set [admin] listen = \"\" to turn it off"
            );
        }
        Ok(Some(AdminPlan {
            listen: addr,
            token_file: self.token_file.clone(),
            tls,
        }))
    }

    /// The admin listener's connection policy.
    pub fn limits(&self, idle_timeout_secs: u64) -> kindling_http::server::Limits {
        kindling_http::server::Limits {
            per_client: self.max_connections_per_client,
            total: self.max_connections,
            idle_timeout: std::time::Duration::from_secs(idle_timeout_secs.max(1)),
            write_timeout: std::time::Duration::from_secs(self.write_timeout_secs.max(1)),
        }
    }
}

/// How log lines are written.
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum, Default, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event (no colours).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The `[log]` table.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Log line format.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info`, `debug`, or `info,kindling::http=warn` to silence the
    /// per-request lines.
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

/// The `[reload]` table.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReloadConfig {
    /// Watch groups/ and profiles/ for changes (inotify).
    pub watch: bool,
    /// Wait this many milliseconds after a change for more changes before reloading.
    pub debounce_ms: u64,
    /// Also re-check the directory every this many seconds (0 = never); catches changes that
    /// file watching misses (network file systems). Only changed files are re-read.
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
    /// `--config` / `$KINDLING_CONFIG`, or `/etc/kindling/kindling.toml`.
    File(PathBuf),
    /// `./kindling.toml` found in the working directory (absolute path).
    WorkingDir(PathBuf),
    Defaults,
}

impl Source {
    /// For messages: the file, or "built-in defaults".
    pub fn describe(&self) -> String {
        match self {
            Source::File(p) | Source::WorkingDir(p) => p.display().to_string(),
            Source::Defaults => "built-in defaults".into(),
        }
    }
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
                let mut cfg: Config = toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                cfg.secure_boot.wire(&mut cfg.dhcp, &mut cfg.tftp);
                let source = if explicit.is_none() && path.is_relative() {
                    Source::WorkingDir(std::path::absolute(&path).unwrap_or(path))
                } else {
                    Source::File(path)
                };
                return Ok((cfg, source));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => continue,
            Err(e) => return Err(e).with_context(|| format!("reading config {}", path.display())),
        }
    }
    Ok((Config::default(), Source::Defaults))
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A directory systemd hands over in an environment variable (`$STATE_DIRECTORY`,
/// `$CACHE_DIRECTORY`: colon-separated when several are configured; the first is ours).
fn env_dir(var: &str) -> Option<PathBuf> {
    let v = std::env::var_os(var)?;
    let first = v.to_str()?.split(':').next()?.to_string();
    (!first.is_empty()).then(|| PathBuf::from(first))
}

/// An XDG base directory (`$XDG_STATE_HOME`), else `$HOME/<fallback>`.
fn xdg_dir(var: &str, home_fallback: &str) -> Option<PathBuf> {
    if let Some(x) = std::env::var_os(var).filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("kindling"));
    }
    let h = std::env::var_os("HOME").filter(|x| !x.is_empty())?;
    Some(PathBuf::from(h).join(home_fallback).join("kindling"))
}

/// The default data directory: `/var/lib/kindling` for root, else
/// `$XDG_DATA_HOME/kindling` (or `~/.local/share/kindling`).
pub fn default_data_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/kindling");
    }
    xdg_dir("XDG_DATA_HOME", ".local/share").unwrap_or_else(|| PathBuf::from("kindling-data"))
}

/// The default state directory (the boot journal), never inside the data directory
/// unless the operator says so: `$STATE_DIRECTORY/state` under systemd
/// (`StateDirectory=`), `/var/lib/kindling/state` for root, else
/// `$XDG_STATE_HOME/kindling` (or `~/.local/state/kindling`).
pub fn default_state_dir() -> PathBuf {
    if let Some(d) = env_dir("STATE_DIRECTORY") {
        return d.join("state");
    }
    if is_root() {
        return PathBuf::from("/var/lib/kindling/state");
    }
    xdg_dir("XDG_STATE_HOME", ".local/state").unwrap_or_else(|| PathBuf::from("kindling-state"))
}

/// The default cache directory (the menus' pull-through cache): `$CACHE_DIRECTORY`
/// under systemd (`CacheDirectory=`), `/var/cache/kindling` for root, else
/// `$XDG_CACHE_HOME/kindling` (or `~/.cache/kindling`).
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = env_dir("CACHE_DIRECTORY") {
        return d;
    }
    if is_root() {
        return PathBuf::from("/var/cache/kindling");
    }
    xdg_dir("XDG_CACHE_HOME", ".cache").unwrap_or_else(|| PathBuf::from("kindling-cache"))
}

/// Where the journal lives: `--state-dir`, else `[ops] state_dir`, else
/// [`default_state_dir`].
pub fn state_dir(cfg: &Config, flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| cfg.ops.state_dir.clone())
        .unwrap_or_else(default_state_dir)
}

/// Where the pull-through cache lives: `--cache-dir`, else `[cache] dir`, else
/// [`default_cache_dir`].
pub fn cache_dir(cfg: &Config, flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| cfg.cache.dir.clone())
        .unwrap_or_else(default_cache_dir)
}

/// What checking a configuration found: errors stop `kindling serve` before anything
/// is bound (and make `kindling check` fail); warnings are logged.
#[derive(Debug, Default)]
pub struct Findings {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// The settings that flags and the environment can change for `kindling serve`.
#[derive(Debug, Default, Clone)]
pub struct Overrides<'a> {
    pub admin_listen: Option<&'a str>,
    pub http_port: Option<u16>,
    pub log: Option<&'a str>,
    pub dhcp_interfaces: &'a [String],
    pub tftp: bool,
    pub tftp_listen: Option<SocketAddr>,
}

impl Config {
    /// The boot listener's connection policy under `nofile` descriptors, once TFTP's
    /// transfers (a socket and an open file each, `max_transfers` at most) are set aside.
    pub fn http_limits(&self, nofile: u64) -> kindling_http::server::Limits {
        let tftp = if self.tftp.enabled {
            2 * self.tftp_transfers(nofile) as u64
        } else {
            0
        };
        self.http.limits(nofile.saturating_sub(tftp))
    }

    /// TFTP's concurrent transfers under `nofile` descriptors: `[tftp] max_transfers`, or
    /// fewer when a socket and a file each would take more than half of what is left
    /// after 256 for everything else (a soft limit that cannot be raised), at least 8.
    pub fn tftp_transfers(&self, nofile: u64) -> usize {
        let fit = usize::try_from(nofile.saturating_sub(256) / 4).unwrap_or(usize::MAX);
        let n = self.tftp.max_transfers.min(fit.max(8));
        if n < self.tftp.max_transfers {
            tracing::warn!(
                configured = self.tftp.max_transfers,
                used = n,
                descriptor_limit = nofile,
                "[tftp] max_transfers lowered to fit the descriptor limit"
            );
        }
        n
    }

    /// Applies the `kindling serve` flags that enable or move DHCP and TFTP.
    pub fn apply(&mut self, o: &Overrides<'_>) {
        if !o.dhcp_interfaces.is_empty() {
            self.dhcp.enabled = true;
            self.dhcp.interfaces = o.dhcp_interfaces.to_vec();
        }
        if o.tftp || o.tftp_listen.is_some() {
            self.tftp.enabled = true;
        }
        if let Some(l) = o.tftp_listen {
            self.tftp.listen = l;
        }
    }

    /// Every table checked, enabled or not (a typo in a table turned off today is still a
    /// typo), before anything is bound. Each error names its key.
    pub fn check(&self, o: &Overrides<'_>) -> Findings {
        let mut f = Findings::default();
        let filter = o.log.unwrap_or(&self.log.level);
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(filter) {
            f.errors
                .push(format!("[log] level {filter:?} is not a log filter: {e}"));
        }
        if let Err(e) = self.admin.plan(o.admin_listen) {
            f.errors.push(format!("{e:#}"));
        }
        f.errors.extend(self.store.check());
        match self.rpc.listen(None) {
            Err(e) => f.errors.push(e),
            Ok(Some(_)) => {
                // Read at start; a file missing here may be present where it runs.
                for (key, path) in [
                    ("cert_file", &self.rpc.cert_file),
                    ("key_file", &self.rpc.key_file),
                    ("ca_file", &self.rpc.ca_file),
                ] {
                    if !path.is_file() {
                        f.warnings.push(format!(
                            "[rpc] {key} {} is not a readable file here; `kindling serve` will refuse to start the gRPC API without it",
                            path.display()
                        ));
                    }
                }
            }
            Ok(None) => {}
        }
        if !self.machines.discovery_profile.is_empty()
            && kindling_model::store::profile_key(&self.machines.discovery_profile).is_none()
        {
            f.errors.push(format!(
                "[machines] discovery_profile {:?} is not a profile id (it must name a file below profiles/)",
                self.machines.discovery_profile
            ));
        }
        if !self.machines.discovery_profile.is_empty() && !self.machines.track {
            f.warnings.push(
                "[machines] discovery_profile is set with track = false: machines get the discovery profile but are not recorded".into(),
            );
        }
        let mut dhcp = self.dhcp.clone();
        dhcp.http_port = o.http_port.unwrap_or(self.http.listen.port()).max(1);
        // Their messages name the key (`tftp.max_blksize ...`).
        if let Err(e) = dhcp.validate() {
            f.errors.push(e.to_string());
        }
        if let Err(e) = self.tftp.validate() {
            f.errors.push(e.to_string());
        }
        if let Err(e) = self.fcos.validate() {
            f.errors.push(e.to_string());
        }
        match kindling_menu::catalog::Catalog::load(&self.menu) {
            Ok(catalog) => f.warnings.extend(
                self.menu
                    .problems(&catalog)
                    .into_iter()
                    .map(|w| format!("[menu] {w}")),
            ),
            Err(e) => f.errors.push(format!("[menu] {e}")),
        }
        if self.dhcp.enabled {
            f.warnings.extend(self.unserved_boot_files().into_values());
        }
        let (errors, warnings) = self.secure_boot.check(&self.dhcp, &self.tftp);
        f.errors.extend(errors);
        f.warnings.extend(warnings);
        f
    }

    /// What the DHCP server logs at warn when a reply names it: the boot files nothing
    /// serves ([`unserved_boot_files`](Self::unserved_boot_files)), and Secure Boot's shim
    /// when a group could route a machine to it but it is not served (not said at
    /// start-up: most servers have no group asking for it).
    pub fn unserved_for_replies(&self) -> std::collections::HashMap<String, String> {
        let mut out: std::collections::HashMap<String, String> =
            self.unserved_boot_files().into_iter().collect();
        let why = if !self.tftp.enabled {
            Some("Kindling's TFTP server is off".to_string())
        } else {
            self.secure_boot.files_readable().err()
        };
        if let Some(why) = why {
            let shim = kindling_tftp::secureboot::SHIM;
            out.insert(
                shim.to_string(),
                format!(
                    "Secure Boot's {shim} is handed out (a group or rule says secure_boot = \
                     true), but {why} (docs/secure-boot.md)"
                ),
            );
        }
        out
    }

    /// The TFTP files proxy DHCP hands out that nothing here serves, each with why
    /// (file -> message).
    pub fn unserved_boot_files(&self) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        let mut files = vec![
            ("dhcp.bios_binary", self.dhcp.bios_binary.as_str()),
            ("dhcp.efi_binary", self.dhcp.efi_binary.as_str()),
        ];
        if let Some(a) = &self.dhcp.arm64_binary {
            files.push(("dhcp.arm64_binary", a.as_str()));
        }
        for (key, file) in files {
            if file.is_empty() || file.contains("://") {
                continue;
            }
            let why = if !self.tftp.enabled {
                format!(
                    "{key} {file:?} is handed out over TFTP, but Kindling's TFTP server is off \
                     ([tftp] enabled = true or --tftp turns it on; or another TFTP server must serve it)"
                )
            } else if !self.tftp.serves(file) {
                let dirs: Vec<String> = self
                    .tftp
                    .ipxe_dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect();
                format!(
                    "{key} {file:?} is handed out over TFTP, but the TFTP server has no such file \
                     (not in [tftp] files or root, nor in the iPXE directories {}: install the \
                     distribution's ipxe package or set [tftp] ipxe_dir)",
                    if dirs.is_empty() {
                        "(ipxe_dir is empty)".to_string()
                    } else {
                        dirs.join(", ")
                    }
                )
            } else {
                continue;
            };
            out.insert(file.to_string(), why);
        }
        // UEFI HTTP Boot gets http://IP:PORT/tftp/<name>, served from the same files
        // whether TFTP is on or not.
        let name = self.dhcp.http_boot_binary.trim_start_matches('/');
        if !name.is_empty()
            && !self.dhcp.http_boot_binary.contains("://")
            && !self.tftp.named_files().contains_key(name)
        {
            out.insert(
                format!("/tftp/{name}"),
                format!(
                    "dhcp.http_boot_binary {name:?} is handed out as http://.../tftp/{name}, but no \
                     such iPXE binary or [tftp] files entry exists (install the distribution's \
                     ipxe package or set [tftp] ipxe_dir or files)"
                ),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests;

/// Which store holds the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The data directory (`groups/`, `profiles/`, `ignition/`, `generic/`, `cloud/`).
    #[default]
    Dir,
    /// etcd v3, shared by every server of a fleet.
    Etcd,
}

/// The `[store]` table.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `dir`: the data directory; `etcd`: groups, profiles, Ignition, generic and cloud
    /// files in etcd, under `prefix`, in matchbox's file formats (assets stay in the
    /// data directory).
    pub backend: Backend,
    /// etcd client URLs, e.g. `["https://10.0.0.1:2379", "https://10.0.0.2:2379"]`.
    pub endpoints: Vec<String>,
    /// Key prefix; the keys mirror the data directory (`/kindling/groups/<id>.json`).
    pub prefix: String,
    /// CA of the etcd members' certificates (for `https://` endpoints).
    pub ca_file: Option<PathBuf>,
    /// Client certificate, when etcd requires one (`--client-cert-auth`); with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// Longest wait for one etcd call, in seconds.
    pub timeout_secs: u64,
    /// How long `kindling serve` tries to make its first load before giving up, in seconds.
    pub first_load_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: Backend::Dir,
            endpoints: Vec::new(),
            prefix: "/kindling/".into(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            timeout_secs: 5,
            first_load_secs: 30,
        }
    }
}

impl StoreConfig {
    /// Configuration errors, each naming its key.
    pub fn check(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.backend == Backend::Dir {
            return errors;
        }
        if !cfg!(feature = "etcd") {
            errors.push(
                "[store] backend = \"etcd\": this build has no etcd support (built without the `etcd` feature)".into(),
            );
        }
        if self.endpoints.is_empty() {
            errors.push("[store] backend = \"etcd\" needs endpoints".into());
        }
        for e in &self.endpoints {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                errors.push(format!(
                    "[store] endpoints: {e:?} is not an http:// or https:// URL"
                ));
            }
        }
        if !self.prefix.starts_with('/') {
            errors.push(format!(
                "[store] prefix {:?} must start with '/'",
                self.prefix
            ));
        }
        if self.timeout_secs == 0 {
            errors.push("[store] timeout_secs must be at least 1".into());
        }
        errors
    }
}
