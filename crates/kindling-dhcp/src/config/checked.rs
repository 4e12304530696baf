//! Validation: [`DhcpConfig::validate`] turns the raw table into a [`CheckedConfig`], or a
//! [`ConfigError`] naming the offending key.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use crate::arch::parse_arch;
pub use crate::config::error::ConfigError;
use crate::config::error::check_file;
use crate::config::full::{self, DhcpMode, FullConfig};
use crate::config::menu::PxeMenu;
use crate::config::pattern::{InterfaceSelector, MacPattern, NamePattern};
use crate::config::raw::{
    ArchSpec, DhcpConfig, MAX_RATE_LIMIT_CLIENTS, MAX_RATE_LIMIT_VALUE, MAX_REPLY_DELAY_MS,
    MAX_RESCAN_SECS, OneOrMany, PLACEHOLDER_BINARY, PLACEHOLDER_IP, PLACEHOLDER_PORT,
    RateLimitConfig, RuleConfig, TargetKind,
};
use crate::ratelimit::{Budget, Limits};

/// A URL with `{server_ip}` / `{http_port}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate(String);

impl UrlTemplate {
    /// `{server_ip}` as `host`, `{http_port}` as `port`.
    fn fill(&self, host: &str, port: u16) -> String {
        self.0
            .replace(PLACEHOLDER_IP, host)
            .replace(PLACEHOLDER_PORT, &port.to_string())
    }

    pub fn expand(&self, ip: Ipv4Addr, port: u16) -> String {
        self.fill(&ip.to_string(), port)
    }

    /// [`expand`](Self::expand), then `{binary}`.
    pub fn expand_binary(&self, ip: Ipv4Addr, port: u16, binary: &str) -> String {
        self.expand(ip, port).replace(PLACEHOLDER_BINARY, binary)
    }

    /// For IPv6: `{server_ip}` as `[ip]` (a URL literal), `{http_port}`, `{binary}`.
    pub fn expand_v6(&self, ip: std::net::Ipv6Addr, port: u16, binary: &str) -> String {
        self.fill(&format!("[{ip}]"), port)
            .replace(PLACEHOLDER_BINARY, binary)
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
    /// `Some(true)`: x86-64 UEFI PXE firmware gets the signed shim; `Some(false)`: never,
    /// whatever `secure_boot_default` says; `None`: as `secure_boot_default`.
    pub secure_boot: Option<bool>,
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
    /// Always starts with `PXEClient` and `HTTPClient`. Shared: each PXE request's
    /// [`ClientInfo`](crate::policy::ClientInfo) points at the one it matched.
    pub vendor_prefixes: Vec<Arc<str>>,
    pub reply_delay: Duration,
    /// The HTTP Boot URL (`{binary}` still to expand, see [`UrlTemplate::expand_binary`]).
    pub http_boot_url: UrlTemplate,
    /// The BIOS PXE boot menu, if any.
    pub pxe_menu: Option<PxeMenu>,
    /// Full DHCP mode (`None`: proxy only).
    pub full: Option<FullConfig>,
    /// How often the interface list is read again (`None`: never).
    pub interface_rescan: Option<Duration>,
    /// Per-client rate limits (`None`: off).
    pub rate_limit: Option<Limits>,
    pub rules: Vec<Rule>,
    /// `[secure_boot] default`: x86-64 UEFI PXE firmware no rule exempts gets the shim.
    pub secure_boot_default: bool,
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

impl<T> OneOrMany<T> {
    fn items(&self) -> Vec<&T> {
        match self {
            Self::One(t) => vec![t],
            Self::Many(v) => v.iter().collect(),
        }
    }
}

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

fn check_iface_name(key: &str, v: &str) -> Result<(), ConfigError> {
    if v.is_empty() || v.len() > 15 || v.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(ConfigError::Invalid {
            key: key.into(),
            reason: format!("{v:?} is not an interface name (1-15 characters, no spaces or '/')"),
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
        if self.proxy_port_4011 == Some(false) {
            return Err(ConfigError::Invalid {
                key: "dhcp.proxy_port_4011".into(),
                reason: "false is no longer supported: UEFI firmware (EDK2) always asks port 4011 after a proxy offer, so Kindling always listens there; remove the key".into(),
            });
        }
        let http_boot_url = UrlTemplate(self.http_boot_url.clone());
        let lower = self.http_boot_url.to_ascii_lowercase();
        if !lower.starts_with("http://") && !lower.starts_with("https://") {
            return Err(ConfigError::Invalid {
                key: "dhcp.http_boot_url".into(),
                reason: format!(
                    "{:?} must be an absolute http:// or https:// URL",
                    self.http_boot_url
                ),
            });
        }
        // HTTP Boot gets `http_boot_url` with the binary's name in it.
        let http_len = |name: &str| {
            http_boot_url
                .expand_binary(Ipv4Addr::new(255, 255, 255, 255), self.http_port, name)
                .len()
        };
        let pxe_menu = self.pxe_menu.validate()?;
        // `[dhcp.v6]` is served by its own server; a mistake is reported with the rest.
        self.v6.validate()?;
        let full = match self.mode {
            DhcpMode::Proxy => {
                if !self.subnets.is_empty() || !self.reservations.is_empty() {
                    return Err(ConfigError::Invalid {
                        key: "dhcp.mode".into(),
                        reason: "dhcp.subnets and dhcp.reservations need mode = \"full\" (a proxy hands out no addresses)".into(),
                    });
                }
                None
            }
            DhcpMode::Full => Some(full::validate(
                &self.subnets,
                &self.reservations,
                self.lease_file.clone(),
                self.authoritative,
                self.ping_check,
                self.ping_timeout_ms,
            )?),
        };
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
        let mut vendor_prefixes: Vec<Arc<str>> = vec!["PXEClient".into(), "HTTPClient".into()];
        for p in &self.vendor_prefixes {
            if !vendor_prefixes.iter().any(|v| **v == **p) {
                vendor_prefixes.push(p.as_str().into());
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
            http_boot_url,
            pxe_menu,
            full,
            interface_rescan: (self.interface_rescan_secs > 0)
                .then(|| Duration::from_secs(self.interface_rescan_secs)),
            rate_limit,
            rules,
            secure_boot_default: self.secure_boot_default,
        })
    }
}

pub(super) fn parse_selector(key: &str, v: &str) -> Result<InterfaceSelector, ConfigError> {
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
    if r.secure_boot == Some(true) && matches!(target, Target::LocalBoot | Target::Ignore) {
        return Err(ConfigError::Invalid {
            key: key("secure_boot"),
            reason: format!(
                "secure_boot = true boots the signed shim, but target = {:?} boots nothing from the network",
                if kind == TargetKind::Ignore {
                    "ignore"
                } else {
                    "local_boot"
                }
            ),
        });
    }
    Ok(Rule {
        name: r.name.clone().unwrap_or_else(|| format!("rules[{i}]")),
        mac,
        arch,
        user_class: r.user_class.as_ref().map(|s| s.as_bytes().to_vec()),
        vendor_class: r.vendor_class.as_ref().map(|s| s.as_bytes().to_vec()),
        interface: r.interface.as_deref().map(NamePattern::new),
        target,
        secure_boot: r.secure_boot,
    })
}
