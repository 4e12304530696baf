//! The `[dhcp.v6]` table and its validation into a [`Checked6`].

use std::net::Ipv6Addr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;

/// The raw `[dhcp.v6]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Dhcp6Config {
    /// Serve DHCPv6 (UDP 547) on the interfaces of `dhcp.interfaces` (exact names only):
    /// addresses from `prefix` to every client, and the boot file URL (option 59) to UEFI
    /// HTTP Boot, UEFI PXE over IPv6 and iPXE. Kindling is then the DHCPv6 server of those
    /// links (see docs/dhcpv6.md).
    pub enabled: bool,
    /// The /64 the addresses come from, e.g. `"fd00:77::/64"` (required when enabled). The
    /// served interface must have an address in it: that address goes into the boot URLs.
    pub prefix: Option<String>,
    /// DNS recursive name servers (option 23).
    pub dns_servers: Vec<Ipv6Addr>,
    /// Preferred lifetime of the addresses, in seconds (renewal at 1/2, rebinding at 4/5).
    pub preferred_secs: u32,
    /// Valid lifetime of the addresses, in seconds (at least `preferred_secs`).
    pub valid_secs: u32,
    /// Answer a SOLICIT that carries the Rapid Commit option (14) with a REPLY at once
    /// (two messages instead of four).
    pub rapid_commit: bool,
    /// Boot file parameters (option 60, RFC 5970) sent with the boot file URL to UEFI
    /// HTTP Boot and PXE clients (not to iPXE, whose boot file is its script), e.g. a
    /// kernel command line for a boot file that reads them. Each up to 1,024 bytes of
    /// printable text, 16 at most. Default: none.
    pub boot_file_params: Vec<String>,
}

impl Default for Dhcp6Config {
    fn default() -> Self {
        Self {
            enabled: false,
            prefix: None,
            dns_servers: Vec::new(),
            preferred_secs: 3600,
            valid_secs: 7200,
            rapid_commit: true,
            boot_file_params: Vec::new(),
        }
    }
}

/// `[dhcp.v6]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked6 {
    pub enabled: bool,
    /// The /64 network (the low 64 bits are zero).
    pub prefix: Ipv6Addr,
    pub dns_servers: Vec<Ipv6Addr>,
    pub preferred_secs: u32,
    pub valid_secs: u32,
    pub rapid_commit: bool,
    pub boot_file_params: Vec<String>,
}

impl Checked6 {
    /// Is `a` inside the configured /64?
    pub fn in_prefix(&self, a: Ipv6Addr) -> bool {
        a.octets()[..8] == self.prefix.octets()[..8]
    }
}

/// Largest lifetime accepted (one year; 0xffffffff would mean "infinity").
pub const MAX_LIFETIME_SECS: u32 = 365 * 24 * 3600;

fn invalid(key: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason,
    }
}

/// `"x::/64"`: the network of a /64, with checks that make it usable for addresses.
pub fn parse_prefix(key: &str, v: &str) -> Result<Ipv6Addr, ConfigError> {
    let (a, p) = v
        .split_once('/')
        .ok_or_else(|| invalid(key, format!("{v:?} is not a prefix like \"fd00:77::/64\"")))?;
    let addr: Ipv6Addr = a
        .trim()
        .parse()
        .map_err(|_| invalid(key, format!("{v:?} has no valid IPv6 address")))?;
    if p.trim() != "64" {
        return Err(invalid(
            key,
            format!(
                "{v:?}: only /64 prefixes are supported (addresses are the prefix plus a 64-bit identifier)"
            ),
        ));
    }
    if addr.octets()[8..].iter().any(|b| *b != 0) {
        return Err(invalid(
            key,
            format!("{v:?} has host bits set (write the network address, e.g. \"fd00:77::/64\")"),
        ));
    }
    let s = addr.segments();
    if addr.is_unspecified() || addr.is_multicast() || (s[0] & 0xffc0) == 0xfe80 {
        return Err(invalid(
            key,
            format!("{v:?} is not a global or unique-local (fc00::/7) prefix"),
        ));
    }
    Ok(addr)
}

impl Dhcp6Config {
    /// Validates; `key` names the table in messages (`dhcp.v6`).
    pub fn validate(&self) -> Result<Checked6, ConfigError> {
        let prefix = match (&self.prefix, self.enabled) {
            (Some(p), _) => parse_prefix("dhcp.v6.prefix", p)?,
            (None, true) => {
                return Err(invalid(
                    "dhcp.v6.prefix",
                    "is required when dhcp.v6.enabled is true, e.g. prefix = \"fd00:77::/64\""
                        .into(),
                ));
            }
            (None, false) => Ipv6Addr::UNSPECIFIED,
        };
        for (i, d) in self.dns_servers.iter().enumerate() {
            if d.is_unspecified() || d.is_multicast() || d.is_loopback() {
                return Err(invalid(
                    &format!("dhcp.v6.dns_servers[{i}]"),
                    format!("{d} is not a unicast address"),
                ));
            }
        }
        if self.preferred_secs == 0 || self.preferred_secs > MAX_LIFETIME_SECS {
            return Err(invalid(
                "dhcp.v6.preferred_secs",
                format!("must be 1-{MAX_LIFETIME_SECS}"),
            ));
        }
        if self.valid_secs < self.preferred_secs || self.valid_secs > MAX_LIFETIME_SECS {
            return Err(invalid(
                "dhcp.v6.valid_secs",
                format!(
                    "must be at least preferred_secs ({}) and at most {MAX_LIFETIME_SECS}",
                    self.preferred_secs
                ),
            ));
        }
        if self.boot_file_params.len() > 16 {
            return Err(invalid(
                "dhcp.v6.boot_file_params",
                format!("{} parameters; at most 16", self.boot_file_params.len()),
            ));
        }
        for (i, p) in self.boot_file_params.iter().enumerate() {
            if p.is_empty() || p.len() > 1024 || p.chars().any(char::is_control) {
                return Err(invalid(
                    &format!("dhcp.v6.boot_file_params[{i}]"),
                    "must be 1-1024 bytes of printable text".into(),
                ));
            }
        }
        Ok(Checked6 {
            enabled: self.enabled,
            prefix,
            dns_servers: self.dns_servers.clone(),
            preferred_secs: self.preferred_secs,
            valid_secs: self.valid_secs,
            rapid_commit: self.rapid_commit,
            boot_file_params: self.boot_file_params.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(prefix: &str) -> Dhcp6Config {
        Dhcp6Config {
            enabled: true,
            prefix: Some(prefix.into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_validate_and_prefix_is_required_when_enabled() {
        let c = Dhcp6Config::default().validate().unwrap();
        assert!(!c.enabled);
        assert_eq!(
            (c.preferred_secs, c.valid_secs, c.rapid_commit),
            (3600, 7200, true)
        );
        let e = Dhcp6Config {
            enabled: true,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(
            e.to_string().starts_with("dhcp.v6.prefix: is required"),
            "{e}"
        );
        let c = cfg("fd00:77::/64").validate().unwrap();
        assert_eq!(c.prefix, "fd00:77::".parse::<Ipv6Addr>().unwrap());
        assert!(c.in_prefix("fd00:77::1234".parse().unwrap()));
        assert!(!c.in_prefix("fd00:78::1".parse().unwrap()));
        assert!(cfg("2001:db8:1:2::/64").validate().is_ok());
    }

    #[test]
    fn bad_prefixes_are_refused() {
        for p in [
            "fd00:77::",
            "fd00:77::/48",
            "fd00:77::/128",
            "fd00:77::1/64",
            "fe80::/64",
            "ff02::/64",
            "::/64",
            "nonsense/64",
            "fd00:77::/x",
        ] {
            let e = cfg(p).validate().unwrap_err();
            assert!(e.to_string().starts_with("dhcp.v6.prefix:"), "{p}: {e}");
        }
    }

    #[test]
    fn lifetimes_and_dns_are_checked() {
        let mut c = cfg("fd00::/64");
        c.valid_secs = 100;
        assert!(c.validate().unwrap_err().to_string().contains("valid_secs"));
        c.valid_secs = 7200;
        c.preferred_secs = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("preferred_secs")
        );
        c.preferred_secs = 3600;
        c.dns_servers = vec!["ff02::1".parse().unwrap()];
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("dns_servers[0]")
        );
    }

    #[test]
    fn parses_from_toml() {
        let c: Dhcp6Config = toml::from_str(
            "enabled = true\nprefix = \"fd00:77::/64\"\ndns_servers = [\"fd00:77::53\"]\nrapid_commit = false\n",
        )
        .unwrap();
        let c = c.validate().unwrap();
        assert_eq!(
            c.dns_servers,
            vec!["fd00:77::53".parse::<Ipv6Addr>().unwrap()]
        );
        assert!(!c.rapid_commit);
        assert!(toml::from_str::<Dhcp6Config>("bogus = 1").is_err());
    }
}
