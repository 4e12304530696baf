//! `[tftp]` configuration table.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::packet;
use crate::source::{FsSource, IPXE_DIRS, IPXE_FILES, find_ipxe_binary};
use crate::transfer::TransferParams;

/// TFTP server configuration (the `[tftp]` table of kindling.toml). Every key has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TftpConfig {
    /// Run the TFTP server at all (used by the binary). Default false.
    pub enabled: bool,
    /// Listening address. Default `0.0.0.0:69`.
    pub listen: SocketAddr,
    /// Root directory served read-only, confined. Default none (only `files` and iPXE binaries).
    pub root: Option<PathBuf>,
    /// Request name -> file path overrides. Trusted (symlinks anywhere allowed). Default empty.
    pub files: BTreeMap<String, PathBuf>,
    /// Directory of the default iPXE binaries (undionly.kpxe, undionly.kkpxe, ipxe.efi,
    /// snponly.efi, ipxe.pxe). Default `/usr/lib/ipxe` (Debian, Ubuntu), and while it is
    /// left at the default, `/usr/share/ipxe` (Fedora, RHEL, Arch, Alpine) too, with the
    /// names those packages use (`ipxe-x86_64.efi`, `ipxe-snponly-x86_64.efi`,
    /// `x86_64/ipxe.efi`). Empty string: no default binaries.
    pub ipxe_dir: PathBuf,
    /// Largest blksize granted (8..=65464). Default 1468 (MTU 1500 minus IP/UDP/TFTP headers).
    pub max_blksize: u16,
    /// Interface MTU used to clamp blksize (blksize <= mtu - 32). Default none.
    pub mtu: Option<u32>,
    /// Also clamp blksize to the kernel's path MTU towards each client (IP_MTU). Default true.
    pub clamp_to_path_mtu: bool,
    /// Largest windowsize granted (RFC 7440, 1..=65535). Default 16.
    pub max_windowsize: u16,
    /// Retransmission timeout in seconds when the client negotiates none
    /// (fractions allowed, 0.01..=255). Default 1.
    pub timeout: f64,
    /// Retransmissions without progress before a transfer is abandoned. Default 5.
    pub retries: u32,
    /// Concurrent transfers. When all are in use, a request from an address holding
    /// no transfer evicts the longest-idle transfer (idle >= 1 s) of the address
    /// holding the most; other requests are dropped unanswered (counted as `busy`):
    /// PXE firmware sends an unanswered RRQ again but ends the boot on an ERROR.
    /// Default 1024 (a socket and a file each; `kindling serve` uses fewer when the
    /// descriptor limit cannot hold them).
    pub max_transfers: usize,
    /// Concurrent transfers per client address; more get ERROR "too many transfers".
    /// Default 8.
    pub max_transfers_per_client: usize,
    /// Largest `timeout` option (seconds, RFC 2349) accepted from a client; a larger
    /// one is left out of the OACK and the server's `timeout` is used. 1..=255,
    /// default 5.
    pub max_client_timeout: u8,
    /// Requests (datagrams to the listening port) per second allowed from one client
    /// address on average; beyond the bucket they are dropped without an answer.
    /// 0 disables. Default 20.
    pub rate_limit: f64,
    /// Requests one client address may send at once (token bucket size). Default 60.
    pub rate_burst: u32,
    /// Serve every transfer from the listening port (NAT/container friendly). Default false.
    pub single_port: bool,
}

impl Default for TftpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([0, 0, 0, 0], 69)),
            root: None,
            files: BTreeMap::new(),
            ipxe_dir: PathBuf::from("/usr/lib/ipxe"),
            max_blksize: 1468,
            mtu: None,
            clamp_to_path_mtu: true,
            max_windowsize: 16,
            timeout: 1.0,
            retries: 5,
            max_transfers: 1024,
            max_transfers_per_client: 8,
            max_client_timeout: 5,
            rate_limit: 20.0,
            rate_burst: 60,
            single_port: false,
        }
    }
}

/// An invalid configuration value.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("tftp.max_blksize must be within 8..=65464, got {0}")]
    Blksize(u16),
    #[error("tftp.max_windowsize must be within 1..=65535, got 0")]
    Windowsize,
    #[error("tftp.timeout must be within 0.01..=255 seconds, got {0}")]
    Timeout(f64),
    #[error("tftp.max_transfers must be at least 1")]
    MaxTransfers,
    #[error("tftp.mtu must be at least 68, got {0}")]
    Mtu(u32),
    #[error("tftp.max_transfers_per_client must be at least 1")]
    MaxTransfersPerClient,
    #[error("tftp.max_client_timeout must be within 1..=255 seconds, got 0")]
    MaxClientTimeout,
    #[error("tftp.rate_limit must be a number of requests per second >= 0 (0: off), got {0}")]
    RateLimit(f64),
    #[error("tftp.rate_burst must be at least 1")]
    RateBurst,
}

impl TftpConfig {
    /// The per-address request budget (`rate_burst` at once, `rate_limit` per second);
    /// unlimited when `rate_limit` is 0.
    pub fn rate_budget(&self) -> kindling_guard::Budget {
        if self.rate_limit > 0.0 && self.rate_limit.is_finite() {
            kindling_guard::Budget {
                burst: self.rate_burst.max(1),
                per_minute: (self.rate_limit * 60.0).ceil().min(f64::from(u32::MAX)) as u32,
            }
        } else {
            kindling_guard::Budget::UNLIMITED
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(packet::MIN_BLKSIZE..=packet::MAX_BLKSIZE).contains(&self.max_blksize) {
            return Err(ConfigError::Blksize(self.max_blksize));
        }
        if self.max_windowsize == 0 {
            return Err(ConfigError::Windowsize);
        }
        if !(self.timeout >= 0.01 && self.timeout <= 255.0) {
            return Err(ConfigError::Timeout(self.timeout));
        }
        if self.max_transfers == 0 {
            return Err(ConfigError::MaxTransfers);
        }
        if let Some(m) = self.mtu
            && m < 68
        {
            return Err(ConfigError::Mtu(m));
        }
        if self.max_transfers_per_client == 0 {
            return Err(ConfigError::MaxTransfersPerClient);
        }
        if self.max_client_timeout == 0 {
            return Err(ConfigError::MaxClientTimeout);
        }
        if !(self.rate_limit.is_finite() && self.rate_limit >= 0.0) {
            return Err(ConfigError::RateLimit(self.rate_limit));
        }
        if self.rate_burst == 0 {
            return Err(ConfigError::RateBurst);
        }
        Ok(())
    }

    /// Transfer limits derived from this configuration (before per-peer MTU clamping).
    pub fn transfer_params(&self) -> TransferParams {
        let timeout = Duration::from_secs_f64(self.timeout.clamp(0.01, 255.0));
        let mut max_blksize = self.max_blksize;
        if let Some(mtu) = self.mtu {
            max_blksize = max_blksize.min(blksize_for_mtu(mtu, false));
        }
        TransferParams {
            max_blksize,
            max_windowsize: self.max_windowsize.max(1),
            timeout,
            retries: self.retries,
            max_timeout: Duration::from_secs(10).max(timeout),
            max_client_timeout: Duration::from_secs(u64::from(self.max_client_timeout.max(1))),
        }
    }

    /// The file source described by `root`, `files` and `ipxe_dir`.
    pub fn file_source(&self) -> FsSource {
        FsSource::new(self.root.clone(), self.files.clone(), self.ipxe_dirs())
    }

    /// Where the default iPXE binaries are looked for: `ipxe_dir`, or every directory of
    /// [`IPXE_DIRS`] while `ipxe_dir` is the default; none when it is empty.
    pub fn ipxe_dirs(&self) -> Vec<PathBuf> {
        if self.ipxe_dir.as_os_str().is_empty() {
            Vec::new()
        } else if self.ipxe_dir == Path::new(IPXE_DIRS[0]) {
            IPXE_DIRS.iter().map(PathBuf::from).collect()
        } else {
            vec![self.ipxe_dir.clone()]
        }
    }

    /// Every file served by name without a root lookup, as found now: the iPXE binaries
    /// present (request name -> file), then the `files` overrides over them.
    pub fn named_files(&self) -> BTreeMap<String, PathBuf> {
        let dirs = self.ipxe_dirs();
        let mut out: BTreeMap<String, PathBuf> = IPXE_FILES
            .iter()
            .filter_map(|n| Some((n.to_string(), find_ipxe_binary(&dirs, n)?)))
            .collect();
        for (name, path) in &self.files {
            out.insert(name.trim_start_matches('/').to_string(), path.clone());
        }
        out
    }

    /// Whether a request for `name` could be answered now (an override or iPXE binary
    /// that exists, or a regular file under `root`), for start-up warnings.
    pub fn serves(&self, name: &str) -> bool {
        let name = name.trim_start_matches('/');
        if let Some(p) = self.named_files().get(name) {
            return p.is_file();
        }
        self.root.as_ref().is_some_and(|r| r.join(name).is_file())
    }
}

/// Largest TFTP block fitting an MTU: IPv4 20 + UDP 8 + TFTP 4 bytes of headers
/// (IPv6: 40 + 8 + 4).
pub fn blksize_for_mtu(mtu: u32, ipv6: bool) -> u16 {
    let overhead = if ipv6 { 52 } else { 32 };
    let v = mtu.saturating_sub(overhead);
    v.clamp(
        u32::from(packet::MIN_BLKSIZE),
        u32::from(packet::MAX_BLKSIZE),
    ) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtu_to_blksize() {
        assert_eq!(blksize_for_mtu(1500, false), 1468);
        assert_eq!(blksize_for_mtu(1500, true), 1448);
        assert_eq!(blksize_for_mtu(9000, false), 8968);
        assert_eq!(blksize_for_mtu(65536, false), 65464);
        assert_eq!(blksize_for_mtu(20, false), 8);
    }

    #[test]
    fn defaults_and_toml() {
        let c: TftpConfig = toml::from_str("").unwrap();
        assert_eq!(c, TftpConfig::default());
        c.validate().unwrap();
        let c: TftpConfig = toml::from_str(
            r#"
enabled = true
listen = "127.0.0.1:6969"
root = "/srv/tftp"
ipxe_dir = ""
max_blksize = 8192
mtu = 9000
max_windowsize = 32
timeout = 0.25
retries = 9
max_transfers = 3
max_transfers_per_client = 2
max_client_timeout = 10
rate_limit = 0.5
rate_burst = 4
single_port = true
clamp_to_path_mtu = false
[files]
"ipxe.efi" = "/boot/ipxe.efi"
"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.files.get("ipxe.efi"),
            Some(&PathBuf::from("/boot/ipxe.efi"))
        );
        let p = c.transfer_params();
        assert_eq!(p.max_blksize, 8192);
        assert_eq!(p.timeout, Duration::from_millis(250));
        assert_eq!(p.max_client_timeout, Duration::from_secs(10));
        assert_eq!(c.max_transfers_per_client, 2);
        assert_eq!(c.rate_burst, 4);
        let c: TftpConfig = toml::from_str("timeout = 2").unwrap();
        assert_eq!(c.transfer_params().timeout, Duration::from_secs(2));
        assert!(toml::from_str::<TftpConfig>("bogus = 1").is_err());
        let c: TftpConfig = toml::from_str("mtu = 1400").unwrap();
        assert_eq!(c.transfer_params().max_blksize, 1368);
        let c: TftpConfig = toml::from_str("timeout = 0").unwrap();
        assert_eq!(c.validate(), Err(ConfigError::Timeout(0.0)));
        for (text, err) in [
            (
                "max_transfers_per_client = 0",
                ConfigError::MaxTransfersPerClient,
            ),
            ("max_client_timeout = 0", ConfigError::MaxClientTimeout),
            ("rate_limit = -1", ConfigError::RateLimit(-1.0)),
            ("rate_burst = 0", ConfigError::RateBurst),
        ] {
            let c: TftpConfig = toml::from_str(text).unwrap();
            assert_eq!(c.validate(), Err(err), "{text}");
        }
        assert_eq!(
            TftpConfig::default().transfer_params().max_client_timeout,
            Duration::from_secs(5)
        );
    }
}
