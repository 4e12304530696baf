//! The `[dhcp]` table of `kindling.toml`: a raw serde struct (`DhcpConfig`) and its validated
//! form (`CheckedConfig`). Every key has a default; `DhcpConfig::default()` is a disabled server.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::arch::parse_arch;
use crate::ratelimit::{Budget, Limits};
use crate::wire::MAX_FILE;

/// Placeholder replaced by the server's address on the receiving interface.
pub const PLACEHOLDER_IP: &str = "{server_ip}";
/// Placeholder replaced by `http_port`.
pub const PLACEHOLDER_PORT: &str = "{http_port}";
/// The default iPXE script URL (Kindling's own HTTP service).
pub const DEFAULT_SCRIPT_URL: &str = "http://{server_ip}:{http_port}/boot.ipxe";
/// Longest cap on `reply_delay_ms`.
pub const MAX_REPLY_DELAY_MS: u64 = 5000;
/// Longest `interface_rescan_secs`.
pub const MAX_RESCAN_SECS: u64 = 3600;

/// The raw `[dhcp]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DhcpConfig {
    /// Run the proxy DHCP server at all.
    pub enabled: bool,
    /// Allow list: interface names (`*` wildcards allowed, e.g. `"enp*"`), or an IPv4 address
    /// / CIDR selecting the interfaces that have an address in that subnet (dnsmasq's
    /// `dhcp-range=<addr>,proxy`). Empty means none, unless `all_interfaces` is true.
    pub interfaces: Vec<String>,
    /// Serve every interface that is up, not loopback and has an IPv4 address, minus
    /// `exclude_interfaces`.
    pub all_interfaces: bool,
    /// Deny list of interface names (`*` wildcards allowed). Always wins over the allow list.
    pub exclude_interfaces: Vec<String>,
    /// Per-interface advertised address (option 54, siaddr, URLs). Default: the interface's
    /// first IPv4 address.
    pub advertise: BTreeMap<String, Ipv4Addr>,
    /// Kindling's HTTP port, used in `{http_port}`. `kindling serve` ignores this key: it
    /// always uses the port of `http.listen` (or `--http-listen`).
    pub http_port: u16,
    /// URL given to iPXE clients by the default `script` target.
    pub script_url: String,
    /// TFTP file for BIOS PXE firmware (arch 0).
    pub bios_binary: String,
    /// TFTP file for x86-64 UEFI PXE firmware (arch 7 and 9).
    pub efi_binary: String,
    /// File for x86-64 UEFI HTTP Boot (arch 16), served as `http://IP:PORT/tftp/<name>`.
    pub http_boot_binary: String,
    /// File for arm64 UEFI (arch 11 over TFTP, 19 over HTTP). None: arm64 is not answered.
    pub arm64_binary: Option<String>,
    /// Extra option-60 prefixes treated like `PXEClient` (dnsmasq `dhcp-pxe-vendor`).
    pub vendor_prefixes: Vec<String>,
    /// Delay before every reply (dnsmasq `dhcp-reply-delay`), in milliseconds.
    pub reply_delay_ms: u64,
    /// Listen on UDP 4011 (PXE boot server). When false, UEFI gets its file on port 67.
    pub proxy_port_4011: bool,
    /// Seconds between re-reads of the interface list (dnsmasq's `bind-dynamic`):
    /// interfaces and addresses that appear later are served, those that go away are
    /// dropped. 0 = only at start-up, where anything missing is then an error.
    pub interface_rescan_secs: u64,
    /// Per-client rate limits (`[dhcp.rate_limit]`).
    pub rate_limit: RateLimitConfig,
    /// Routing rules, first match wins.
    pub rules: Vec<RuleConfig>,
}

/// The `[dhcp.rate_limit]` table: token buckets by client MAC and by source address (see
/// `docs/dhcp.md`). A `*_burst` of 0 turns that key off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Apply the limits at all.
    pub enabled: bool,
    /// Datagrams one MAC (`chaddr`) may send at once.
    pub mac_burst: u32,
    /// Refill of a MAC's bucket, per minute.
    pub mac_per_minute: u32,
    /// Datagrams one source address (not 0.0.0.0, not relayed) may send at once.
    pub ip_burst: u32,
    /// Refill of an address's bucket, per minute.
    pub ip_per_minute: u32,
    /// Datagrams one relay (source address of packets with `giaddr` set) may send at once.
    pub relay_burst: u32,
    /// Refill of a relay's bucket, per minute.
    pub relay_per_minute: u32,
    /// Most buckets kept; the least recently used is evicted (reset) beyond.
    pub max_clients: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            mac_burst: 40,
            mac_per_minute: 60,
            ip_burst: 40,
            ip_per_minute: 120,
            relay_burst: 2000,
            relay_per_minute: 60_000,
            max_clients: 16_384,
        }
    }
}

/// Largest `max_clients`.
pub const MAX_RATE_LIMIT_CLIENTS: u32 = 1_000_000;
/// Largest burst or per-minute value.
pub const MAX_RATE_LIMIT_VALUE: u32 = 10_000_000;

impl RateLimitConfig {
    fn validate(&self) -> Result<Option<Limits>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        let budget = |name: &str, burst: u32, per_minute: u32| {
            for (k, v) in [("burst", burst), ("per_minute", per_minute)] {
                if v > MAX_RATE_LIMIT_VALUE {
                    return Err(ConfigError::Invalid {
                        key: format!("dhcp.rate_limit.{name}_{k}"),
                        reason: format!("{v} is more than {MAX_RATE_LIMIT_VALUE}"),
                    });
                }
            }
            if burst > 0 && per_minute == 0 {
                return Err(ConfigError::Invalid {
                    key: format!("dhcp.rate_limit.{name}_per_minute"),
                    reason: format!(
                        "must be at least 1 when {name}_burst is set (0 would lock a client out for good); set {name}_burst = 0 to turn this limit off"
                    ),
                });
            }
            Ok(Budget { burst, per_minute })
        };
        let mac = budget("mac", self.mac_burst, self.mac_per_minute)?;
        let ip = budget("ip", self.ip_burst, self.ip_per_minute)?;
        let relay = budget("relay", self.relay_burst, self.relay_per_minute)?;
        if self.max_clients == 0 || self.max_clients > MAX_RATE_LIMIT_CLIENTS {
            return Err(ConfigError::Invalid {
                key: "dhcp.rate_limit.max_clients".into(),
                reason: format!("must be 1-{MAX_RATE_LIMIT_CLIENTS}"),
            });
        }
        Ok(Some(Limits {
            mac,
            ip,
            relay,
            max_clients: self.max_clients as usize,
        }))
    }
}

impl Default for DhcpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interfaces: Vec::new(),
            all_interfaces: false,
            exclude_interfaces: vec!["virbr*".into(), "docker*".into()],
            advertise: BTreeMap::new(),
            http_port: 8080,
            script_url: DEFAULT_SCRIPT_URL.into(),
            bios_binary: "undionly.kpxe".into(),
            efi_binary: "snponly.efi".into(),
            http_boot_binary: "ipxe.efi".into(),
            arm64_binary: None,
            vendor_prefixes: Vec::new(),
            reply_delay_ms: 0,
            proxy_port_4011: true,
            interface_rescan_secs: 5,
            rate_limit: RateLimitConfig::default(),
            rules: Vec::new(),
        }
    }
}

/// An architecture given as a number or a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ArchSpec {
    Number(u16),
    Name(String),
}

/// One value or a list of values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn items(&self) -> Vec<&T> {
        match self {
            Self::One(t) => vec![t],
            Self::Many(v) => v.iter().collect(),
        }
    }
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// Kindling's own iPXE script (`script_url`).
    Script,
    /// Any URL (`url`), given to iPXE; firmware gets the iPXE binary first.
    Url,
    /// Boot from local disk: BIOS PXE gets a "local boot" menu item, others no answer.
    LocalBoot,
    /// No answer at all.
    Ignore,
}

/// One `[[dhcp.rules]]` entry. Every match key present must match (AND); a rule without match
/// keys matches every client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RuleConfig {
    /// Label for logs and metrics.
    pub name: Option<String>,
    /// MAC pattern, six octets separated by `:` or `-`, each hex or `*` (dnsmasq `dhcp-mac`).
    pub mac: Option<String>,
    /// Architecture(s): numbers or names (see docs); matches the architecture Kindling selected.
    pub arch: Option<OneOrMany<ArchSpec>>,
    /// Substring of any option-77 user class entry (dnsmasq `dhcp-userclass`).
    pub user_class: Option<String>,
    /// Substring of option 60 (dnsmasq `dhcp-vendorclass`).
    pub vendor_class: Option<String>,
    /// Receiving interface name (`*` wildcards allowed).
    pub interface: Option<String>,
    /// `script` (default), `url`, `local_boot` or `ignore`. Setting `url` alone implies `url`.
    pub target: Option<TargetKind>,
    /// The URL for `target = "url"`; `{server_ip}` and `{http_port}` are expanded.
    pub url: Option<String>,
}

/// A validation failure, naming the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{key}: bad MAC pattern {value:?}: expected six octets like 02:1a:4a:*:*:*")]
    BadMacPattern { key: String, value: String },
    #[error(
        "{key}: unknown architecture {value:?} (use a number 0-65535 or a name such as bios, efi-x64, efi-bc, efi-arm64, http-x64, http-arm64)"
    )]
    UnknownArch { key: String, value: String },
    #[error(
        "{key}: {value:?} is {len} bytes once expanded, too long for the 128-byte DHCP file field (at most {max})"
    )]
    FileTooLong {
        key: String,
        value: String,
        len: usize,
        max: usize,
    },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error(
        "dhcp.enabled is true but no interface is allowed: set dhcp.interfaces = [\"eth0\"] (or a subnet such as \"10.10.254.0/24\"), or dhcp.all_interfaces = true"
    )]
    NoInterfaces,
    #[error(
        "dhcp.interfaces lists {name:?} but dhcp.exclude_interfaces excludes it (pattern {pattern:?}); remove one of them"
    )]
    AllowedAndExcluded { name: String, pattern: String },
}

/// A MAC pattern with per-octet wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacPattern([Option<u8>; 6]);

impl MacPattern {
    pub fn parse(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.trim().split([':', '-']).collect();
        if parts.len() != 6 {
            return None;
        }
        let mut out = [None; 6];
        for (slot, p) in out.iter_mut().zip(parts) {
            if p == "*" {
                continue;
            }
            if p.is_empty() || p.len() > 2 {
                return None;
            }
            *slot = Some(u8::from_str_radix(p, 16).ok()?);
        }
        Some(Self(out))
    }

    pub fn matches(&self, mac: &[u8; 6]) -> bool {
        self.0
            .iter()
            .zip(mac)
            .all(|(p, b)| p.is_none_or(|p| p == *b))
    }
}

/// A name with `*` wildcards (matches any run of characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern(String);

impl NamePattern {
    pub fn new(s: &str) -> Self {
        Self(s.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard match with backtracking to the last '*'.
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(c) if s.get(si) == Some(c) => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == b'*'))
}

/// An allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceSelector {
    /// By name (wildcards allowed).
    Name(NamePattern),
    /// Interfaces with an address in this subnet. `prefix: None` means "use the interface's
    /// own netmask" (dnsmasq `dhcp-range=<addr>,proxy`).
    Subnet { addr: Ipv4Addr, prefix: Option<u8> },
}

impl InterfaceSelector {
    /// Does an interface named `name`, with address `ip`/`mask`, match?
    pub fn matches(&self, name: &str, ip: Ipv4Addr, mask: Ipv4Addr) -> bool {
        match self {
            Self::Name(p) => p.matches(name),
            Self::Subnet { addr, prefix } => {
                let m = match prefix {
                    Some(0) => 0u32,
                    Some(p) => u32::MAX << (32 - u32::from(*p).min(32)),
                    None => u32::from(mask),
                };
                u32::from(ip) & m == u32::from(*addr) & m
            }
        }
    }
}

/// A URL with `{server_ip}` / `{http_port}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate(String);

impl UrlTemplate {
    pub fn expand(&self, ip: Ipv4Addr, port: u16) -> String {
        self.0
            .replace(PLACEHOLDER_IP, &ip.to_string())
            .replace(PLACEHOLDER_PORT, &port.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The longest possible expansion (a 15-character address).
    fn max_len(&self, port: u16) -> usize {
        self.expand(Ipv4Addr::new(255, 255, 255, 255), port).len()
    }
}

/// A validated rule target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Script,
    Url(UrlTemplate),
    LocalBoot,
    Ignore,
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub mac: Option<MacPattern>,
    /// Empty: any architecture.
    pub arch: Vec<u16>,
    pub user_class: Option<Vec<u8>>,
    pub vendor_class: Option<Vec<u8>>,
    pub interface: Option<NamePattern>,
    pub target: Target,
}

/// The validated configuration used by the decision core and the socket shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedConfig {
    pub enabled: bool,
    pub interfaces: Vec<InterfaceSelector>,
    pub all_interfaces: bool,
    pub exclude_interfaces: Vec<NamePattern>,
    pub advertise: BTreeMap<String, Ipv4Addr>,
    pub http_port: u16,
    pub script_url: UrlTemplate,
    pub bios_binary: String,
    pub efi_binary: String,
    pub http_boot_binary: String,
    pub arm64_binary: Option<String>,
    /// Always starts with `PXEClient` and `HTTPClient`.
    pub vendor_prefixes: Vec<String>,
    pub reply_delay: Duration,
    pub proxy_port_4011: bool,
    /// How often the interface list is read again (`None`: never).
    pub interface_rescan: Option<Duration>,
    /// Per-client rate limits (`None`: off).
    pub rate_limit: Option<Limits>,
    pub rules: Vec<Rule>,
}

impl CheckedConfig {
    /// Is the interface excluded by the deny list?
    pub fn is_excluded(&self, name: &str) -> bool {
        self.exclude_interfaces.iter().any(|p| p.matches(name))
    }

    /// Would this interface (with this address) be served?
    pub fn interface_allowed(&self, name: &str, ip: Ipv4Addr, mask: Ipv4Addr) -> bool {
        if self.is_excluded(name) {
            return false;
        }
        self.all_interfaces || self.interfaces.iter().any(|s| s.matches(name, ip, mask))
    }
}

fn check_iface_name(key: &str, v: &str) -> Result<(), ConfigError> {
    if v.is_empty() || v.len() > 15 || v.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(ConfigError::Invalid {
            key: key.into(),
            reason: format!("{v:?} is not an interface name (1-15 characters, no spaces or '/')"),
        });
    }
    Ok(())
}

fn check_file(key: &str, v: &str, max_len: usize) -> Result<(), ConfigError> {
    if v.is_empty() {
        return Err(ConfigError::Invalid {
            key: key.into(),
            reason: "must not be empty".into(),
        });
    }
    if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ConfigError::Invalid {
            key: key.into(),
            reason: format!("{v:?} contains whitespace or control characters"),
        });
    }
    if max_len > MAX_FILE {
        return Err(ConfigError::FileTooLong {
            key: key.into(),
            value: v.into(),
            len: max_len,
            max: MAX_FILE,
        });
    }
    Ok(())
}

fn check_url(key: &str, v: &str, http_port: u16) -> Result<UrlTemplate, ConfigError> {
    let t = UrlTemplate(v.to_string());
    let lower = v.to_ascii_lowercase();
    if !["http://", "https://", "tftp://"]
        .iter()
        .any(|s| lower.starts_with(s))
    {
        return Err(ConfigError::Invalid {
            key: key.into(),
            reason: format!("{v:?} must be an absolute http://, https:// or tftp:// URL"),
        });
    }
    check_file(key, v, t.max_len(http_port))?;
    Ok(t)
}

impl DhcpConfig {
    /// Validates into a [`CheckedConfig`], with an error naming the offending key.
    pub fn validate(&self) -> Result<CheckedConfig, ConfigError> {
        if self.http_port == 0 {
            return Err(ConfigError::Invalid {
                key: "dhcp.http_port".into(),
                reason: "must be 1-65535".into(),
            });
        }
        let script_url = check_url("dhcp.script_url", &self.script_url, self.http_port)?;
        check_file(
            "dhcp.bios_binary",
            &self.bios_binary,
            self.bios_binary.len(),
        )?;
        check_file("dhcp.efi_binary", &self.efi_binary, self.efi_binary.len())?;
        // HTTP Boot gets http://IP:PORT/tftp/<name>.
        let http_len =
            |name: &str| format!("http://255.255.255.255:{}/tftp/{name}", self.http_port).len();
        check_file(
            "dhcp.http_boot_binary",
            &self.http_boot_binary,
            http_len(&self.http_boot_binary),
        )?;
        if let Some(a) = &self.arm64_binary {
            check_file("dhcp.arm64_binary", a, http_len(a))?;
        }
        for (i, p) in self.vendor_prefixes.iter().enumerate() {
            if p.is_empty() || p.len() > 64 || !p.is_ascii() {
                return Err(ConfigError::Invalid {
                    key: format!("dhcp.vendor_prefixes[{i}]"),
                    reason: format!("{p:?} must be 1-64 ASCII characters"),
                });
            }
        }
        if self.interface_rescan_secs > MAX_RESCAN_SECS {
            return Err(ConfigError::Invalid {
                key: "dhcp.interface_rescan_secs".into(),
                reason: format!(
                    "{} s is longer than the {MAX_RESCAN_SECS} s maximum (0 turns rescans off)",
                    self.interface_rescan_secs
                ),
            });
        }
        if self.reply_delay_ms > MAX_REPLY_DELAY_MS {
            return Err(ConfigError::Invalid {
                key: "dhcp.reply_delay_ms".into(),
                reason: format!(
                    "{} ms is longer than the {MAX_REPLY_DELAY_MS} ms maximum (firmware gives up)",
                    self.reply_delay_ms
                ),
            });
        }
        let mut interfaces = Vec::new();
        for (i, v) in self.interfaces.iter().enumerate() {
            let key = format!("dhcp.interfaces[{i}]");
            interfaces.push(parse_selector(&key, v)?);
        }
        let mut exclude_interfaces = Vec::new();
        for (i, v) in self.exclude_interfaces.iter().enumerate() {
            check_iface_name(&format!("dhcp.exclude_interfaces[{i}]"), v)?;
            exclude_interfaces.push(NamePattern::new(v));
        }
        for (name, ip) in &self.advertise {
            check_iface_name(&format!("dhcp.advertise.{name}"), name)?;
            if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
                return Err(ConfigError::Invalid {
                    key: format!("dhcp.advertise.{name}"),
                    reason: format!("{ip} is not a unicast address"),
                });
            }
        }
        if self.enabled && interfaces.is_empty() && !self.all_interfaces {
            return Err(ConfigError::NoInterfaces);
        }
        for sel in &interfaces {
            if let InterfaceSelector::Name(n) = sel
                && !n.as_str().contains('*')
                && let Some(p) = exclude_interfaces.iter().find(|p| p.matches(n.as_str()))
            {
                return Err(ConfigError::AllowedAndExcluded {
                    name: n.as_str().into(),
                    pattern: p.as_str().into(),
                });
            }
        }
        let mut vendor_prefixes = vec!["PXEClient".to_string(), "HTTPClient".to_string()];
        for p in &self.vendor_prefixes {
            if !vendor_prefixes.contains(p) {
                vendor_prefixes.push(p.clone());
            }
        }
        let rate_limit = self.rate_limit.validate()?;
        let mut rules = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            rules.push(check_rule(i, r, self.http_port)?);
        }
        Ok(CheckedConfig {
            enabled: self.enabled,
            interfaces,
            all_interfaces: self.all_interfaces,
            exclude_interfaces,
            advertise: self.advertise.clone(),
            http_port: self.http_port,
            script_url,
            bios_binary: self.bios_binary.clone(),
            efi_binary: self.efi_binary.clone(),
            http_boot_binary: self.http_boot_binary.clone(),
            arm64_binary: self.arm64_binary.clone(),
            vendor_prefixes,
            reply_delay: Duration::from_millis(self.reply_delay_ms),
            proxy_port_4011: self.proxy_port_4011,
            interface_rescan: (self.interface_rescan_secs > 0)
                .then(|| Duration::from_secs(self.interface_rescan_secs)),
            rate_limit,
            rules,
        })
    }
}

fn parse_selector(key: &str, v: &str) -> Result<InterfaceSelector, ConfigError> {
    let bad = || ConfigError::Invalid {
        key: key.into(),
        reason: format!("{v:?} is neither an interface name nor an IPv4 subnet like 10.0.0.0/24"),
    };
    if let Some((a, p)) = v.split_once('/') {
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        return Ok(InterfaceSelector::Subnet {
            addr,
            prefix: Some(prefix),
        });
    }
    if let Ok(addr) = v.parse::<Ipv4Addr>() {
        return Ok(InterfaceSelector::Subnet { addr, prefix: None });
    }
    check_iface_name(key, v)?;
    Ok(InterfaceSelector::Name(NamePattern::new(v)))
}

fn check_rule(i: usize, r: &RuleConfig, http_port: u16) -> Result<Rule, ConfigError> {
    let key = |k: &str| format!("dhcp.rules[{i}].{k}");
    let mac = match &r.mac {
        Some(m) => Some(
            MacPattern::parse(m).ok_or_else(|| ConfigError::BadMacPattern {
                key: key("mac"),
                value: m.clone(),
            })?,
        ),
        None => None,
    };
    let mut arch = Vec::new();
    if let Some(a) = &r.arch {
        for spec in a.items() {
            let n = match spec {
                ArchSpec::Number(n) => *n,
                ArchSpec::Name(s) => parse_arch(s).ok_or_else(|| ConfigError::UnknownArch {
                    key: key("arch"),
                    value: s.clone(),
                })?,
            };
            arch.push(n);
        }
    }
    for (k, v) in [
        ("user_class", &r.user_class),
        ("vendor_class", &r.vendor_class),
    ] {
        if v.as_deref() == Some("") {
            return Err(ConfigError::Invalid {
                key: key(k),
                reason: "must not be empty (omit the key to match anything)".into(),
            });
        }
    }
    if let Some(n) = &r.interface {
        check_iface_name(&key("interface"), n)?;
    }
    let kind = match (r.target, &r.url) {
        (Some(k), _) => k,
        (None, Some(_)) => TargetKind::Url,
        (None, None) => TargetKind::Script,
    };
    let target = match kind {
        TargetKind::Url => {
            let u = r.url.as_ref().ok_or_else(|| ConfigError::Invalid {
                key: key("url"),
                reason: "target = \"url\" needs a url".into(),
            })?;
            Target::Url(check_url(&key("url"), u, http_port)?)
        }
        other => {
            if r.url.is_some() {
                return Err(ConfigError::Invalid {
                    key: key("url"),
                    reason: format!("a url only makes sense with target = \"url\", not {other:?}"),
                });
            }
            match other {
                TargetKind::Script => Target::Script,
                TargetKind::LocalBoot => Target::LocalBoot,
                _ => Target::Ignore,
            }
        }
    };
    Ok(Rule {
        name: r.name.clone().unwrap_or_else(|| format!("rules[{i}]")),
        mac,
        arch,
        user_class: r.user_class.as_ref().map(|s| s.as_bytes().to_vec()),
        vendor_class: r.vendor_class.as_ref().map(|s| s.as_bytes().to_vec()),
        interface: r.interface.as_deref().map(NamePattern::new),
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> DhcpConfig {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn defaults_are_valid_and_disabled() {
        let c = DhcpConfig::default().validate().unwrap();
        assert!(!c.enabled);
        assert_eq!(c.efi_binary, "snponly.efi");
        assert_eq!(c.vendor_prefixes, vec!["PXEClient", "HTTPClient"]);
        let empty: DhcpConfig = parse("");
        assert_eq!(empty, DhcpConfig::default());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<DhcpConfig>("enable = true").is_err());
        assert!(toml::from_str::<DhcpConfig>("[[rules]]\nmacc = \"x\"").is_err());
    }

    #[test]
    fn enabled_without_interfaces_is_an_error() {
        let c = parse("enabled = true");
        assert_eq!(c.validate().unwrap_err(), ConfigError::NoInterfaces);
        assert!(
            parse("enabled = true\nall_interfaces = true")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn seed_config_translates() {
        let c = parse(
            r#"
            enabled = true
            all_interfaces = true
            exclude_interfaces = ["virbr0"]
            http_port = 8080
            [[rules]]
            name = "netboot-xyz"
            mac = "02:1a:4a:16:01:9c"
            url = "http://10.10.254.200:8081/menus/menu.ipxe"
        "#,
        )
        .validate()
        .unwrap();
        assert_eq!(c.rules.len(), 1);
        assert!(matches!(c.rules[0].target, Target::Url(_)));
        assert!(c.is_excluded("virbr0"));
        assert!(!c.is_excluded("eth0"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = parse("[[rules]]\nmac = \"02:1a:4a:16:01\"")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("dhcp.rules[0].mac"), "{e}");
        let e = parse("[[rules]]\narch = \"efi-sparc\"")
            .validate()
            .unwrap_err();
        assert!(matches!(e, ConfigError::UnknownArch { .. }), "{e}");
        let e = parse(&format!("efi_binary = \"{}\"", "a".repeat(128)))
            .validate()
            .unwrap_err();
        assert!(matches!(e, ConfigError::FileTooLong { .. }), "{e}");
        let e = parse(&format!(
            "[[rules]]\nurl = \"http://{{server_ip}}/{}\"",
            "a".repeat(105)
        ))
        .validate()
        .unwrap_err();
        assert!(matches!(e, ConfigError::FileTooLong { .. }), "{e}");
        let e = parse("[[rules]]\nurl = \"ftp://x/y\"")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("absolute"), "{e}");
        let e = parse("[[rules]]\ntarget = \"ignore\"\nurl = \"http://x/y\"")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("rules[0].url"), "{e}");
        let e = parse("[[rules]]\ntarget = \"url\"").validate().unwrap_err();
        assert!(e.to_string().contains("needs a url"), "{e}");
        let e = parse("enabled = true\ninterfaces = [\"virbr0\"]")
            .validate()
            .unwrap_err();
        assert!(matches!(e, ConfigError::AllowedAndExcluded { .. }), "{e}");
        let e = parse("reply_delay_ms = 60000").validate().unwrap_err();
        assert!(e.to_string().contains("reply_delay_ms"), "{e}");
        let e = parse("interfaces = [\"10.0.0.0/33\"]")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("interfaces[0]"), "{e}");
        let e = parse("[advertise]\neth0 = \"0.0.0.0\"")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("advertise.eth0"), "{e}");
    }

    #[test]
    fn rate_limit_table() {
        let c = DhcpConfig::default().validate().unwrap();
        let l = c.rate_limit.expect("on by default");
        assert_eq!((l.mac.burst, l.mac.per_minute), (40, 60));
        assert_eq!(l.max_clients, 16_384);
        let c = parse("[rate_limit]\nenabled = false").validate().unwrap();
        assert_eq!(c.rate_limit, None);
        let c = parse("[rate_limit]\nmac_burst = 5\nmac_per_minute = 1\nip_burst = 0")
            .validate()
            .unwrap();
        let l = c.rate_limit.unwrap();
        assert_eq!((l.mac.burst, l.mac.per_minute, l.ip.burst), (5, 1, 0));
        assert!(toml::from_str::<DhcpConfig>("[rate_limit]\nmac_brust = 5").is_err());
        let e = parse("[rate_limit]\nmac_per_minute = 0")
            .validate()
            .unwrap_err();
        assert!(
            e.to_string().contains("dhcp.rate_limit.mac_per_minute"),
            "{e}"
        );
        let e = parse("[rate_limit]\nmax_clients = 0")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("dhcp.rate_limit.max_clients"), "{e}");
        let e = parse("[rate_limit]\nrelay_burst = 4000000000")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("dhcp.rate_limit.relay_burst"), "{e}");
    }

    #[test]
    fn arch_lists_and_names() {
        let c = parse("[[rules]]\narch = [\"x86PC\", 7, \"BC_EFI\"]\ntarget = \"ignore\"")
            .validate()
            .unwrap();
        assert_eq!(c.rules[0].arch, vec![0, 7, 9]);
        let c = parse("[[rules]]\narch = 11\ntarget = \"local_boot\"")
            .validate()
            .unwrap();
        assert_eq!(c.rules[0].arch, vec![11]);
        assert_eq!(c.rules[0].target, Target::LocalBoot);
    }

    #[test]
    fn mac_patterns() {
        let p = MacPattern::parse("01:34:23:*:*:*").unwrap();
        assert!(p.matches(&[1, 0x34, 0x23, 9, 9, 9]));
        assert!(!p.matches(&[1, 0x34, 0x24, 9, 9, 9]));
        assert!(MacPattern::parse("01-34-23-AA-bb-0c").is_some());
        assert!(MacPattern::parse("01:34:23:*:*").is_none());
        assert!(MacPattern::parse("01:34:23:*:*:1234").is_none());
        assert!(MacPattern::parse("01:34:23:*:*:zz").is_none());
    }

    #[test]
    fn globs_and_subnets() {
        assert!(NamePattern::new("virbr*").matches("virbr0"));
        assert!(NamePattern::new("*").matches("eth0"));
        assert!(NamePattern::new("e*h*").matches("eth0x"));
        assert!(!NamePattern::new("virbr*").matches("eth0"));
        assert!(!NamePattern::new("eth0").matches("eth01"));
        let s = parse_selector("k", "10.10.254.0").unwrap();
        let m = Ipv4Addr::new(255, 255, 255, 0);
        assert!(s.matches("x", Ipv4Addr::new(10, 10, 254, 200), m));
        assert!(!s.matches("x", Ipv4Addr::new(10, 10, 253, 200), m));
        let s = parse_selector("k", "10.10.0.0/16").unwrap();
        assert!(s.matches("x", Ipv4Addr::new(10, 10, 253, 200), m));
    }
}
