//! Full DHCP mode's keys: `dhcp.mode`, the lease file, `[[dhcp.subnets]]` (pools and
//! options) and `[[dhcp.reservations]]`, with their validation.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;

/// Proxy DHCP next to a site's server, or Kindling as the only DHCP server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DhcpMode {
    /// Answer PXE clients only, never hand out addresses (next to an existing DHCP server).
    #[default]
    Proxy,
    /// Hand out addresses on the `[[dhcp.subnets]]` (interfaces and relays in no subnet keep
    /// the proxy behaviour).
    Full,
}

/// One `[[dhcp.subnets]]` entry (full mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubnetConfig {
    /// The subnet, e.g. `"10.77.0.0/24"`. Served on the interface that has an address in it,
    /// and for relays whose `giaddr` is in it.
    pub network: String,
    /// Address ranges handed out: `"10.77.0.100-10.77.0.199"` or a CIDR inside the network.
    #[serde(default)]
    pub pools: Vec<String>,
    /// Option 3, the default gateway.
    #[serde(default)]
    pub router: Option<Ipv4Addr>,
    /// Option 6.
    #[serde(default)]
    pub dns_servers: Vec<Ipv4Addr>,
    /// Option 15.
    #[serde(default)]
    pub domain: Option<String>,
    /// Option 42.
    #[serde(default)]
    pub ntp_servers: Vec<Ipv4Addr>,
    /// Option 26, the interface MTU (68-65535).
    #[serde(default)]
    pub mtu: Option<u16>,
    /// Option 121 (classless static routes; the router is added as the default route, since
    /// clients that read 121 ignore option 3).
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Lease time in seconds (option 51); renewal at 1/2, rebinding at 7/8.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u32,
}

fn default_lease_secs() -> u32 {
    3600
}

/// One classless static route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Destination, e.g. `"10.1.0.0/16"`.
    pub network: String,
    /// Next hop.
    pub gateway: Ipv4Addr,
}

/// One `[[dhcp.reservations]]` entry: a fixed address for one MAC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationConfig {
    /// The client's MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Its address, inside one of the subnets (it need not be in a pool).
    pub ip: Ipv4Addr,
    /// Option 12 for this client.
    #[serde(default)]
    pub hostname: Option<String>,
}

/// A validated subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
    pub ranges: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub router: Option<Ipv4Addr>,
    pub dns_servers: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub ntp_servers: Vec<Ipv4Addr>,
    pub mtu: Option<u16>,
    /// (destination, prefix, gateway).
    pub routes: Vec<(Ipv4Addr, u8, Ipv4Addr)>,
    pub lease_secs: u32,
}

impl Subnet {
    /// The netmask.
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask_bits(self.prefix))
    }

    /// Is `ip` inside the network?
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask_bits(self.prefix) == u32::from(self.network)
    }

    /// The directed broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask_bits(self.prefix))
    }
}

/// A validated reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
}

/// Full mode, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullConfig {
    pub subnets: Vec<Subnet>,
    pub reservations: Vec<Reservation>,
    /// `None`: the embedding program chooses (`kindling serve`: the state directory).
    pub lease_file: Option<PathBuf>,
    pub authoritative: bool,
    /// ICMP echo before offering an address no client held (`None`: off).
    pub ping_timeout: Option<std::time::Duration>,
    /// Reservations' host names by MAC (option 12).
    pub hostnames: std::collections::HashMap<[u8; 6], String>,
}

fn mask_bits(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

/// `"a.b.c.d/p"` with no host bits set.
pub(super) fn parse_cidr(key: &str, v: &str) -> Result<(Ipv4Addr, u8), ConfigError> {
    let bad = |why: &str| ConfigError::Invalid {
        key: key.into(),
        reason: format!("{v:?} {why}"),
    };
    let (a, p) = v
        .split_once('/')
        .ok_or_else(|| bad("is not a subnet like 10.77.0.0/24"))?;
    let addr: Ipv4Addr = a.trim().parse().map_err(|_| bad("has no valid address"))?;
    let prefix: u8 = p
        .trim()
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| bad("has no prefix length 0-32"))?;
    if u32::from(addr) & !mask_bits(prefix) != 0 {
        return Err(bad("has host bits set (write the network address)"));
    }
    Ok((addr, prefix))
}

fn parse_pool(key: &str, v: &str, net: &Subnet) -> Result<(Ipv4Addr, Ipv4Addr), ConfigError> {
    let bad = |why: String| ConfigError::Invalid {
        key: key.into(),
        reason: why,
    };
    let (start, end) = if let Some((a, b)) = v.split_once('-') {
        let a: Ipv4Addr = a.trim().parse().map_err(|_| {
            bad(format!(
                "{v:?} is not a range like 10.77.0.100-10.77.0.199 or a CIDR"
            ))
        })?;
        let b: Ipv4Addr = b.trim().parse().map_err(|_| {
            bad(format!(
                "{v:?} is not a range like 10.77.0.100-10.77.0.199 or a CIDR"
            ))
        })?;
        (a, b)
    } else {
        let (a, p) = parse_cidr(key, v)?;
        let last = Ipv4Addr::from(u32::from(a) | !mask_bits(p));
        (a, last)
    };
    if u32::from(start) > u32::from(end) {
        return Err(bad(format!("{v:?}: the start is after the end")));
    }
    if !net.contains(start) || !net.contains(end) {
        return Err(bad(format!(
            "{v:?} is not inside the subnet {}/{}",
            net.network, net.prefix
        )));
    }
    Ok((start, end))
}

/// Validates the full-mode keys (only called with `mode = "full"`).
pub(super) fn validate(
    subnets: &[SubnetConfig],
    reservations: &[ReservationConfig],
    lease_file: Option<PathBuf>,
    authoritative: bool,
    ping_check: bool,
    ping_timeout_ms: u64,
) -> Result<FullConfig, ConfigError> {
    let invalid = |key: String, reason: String| ConfigError::Invalid { key, reason };
    if subnets.is_empty() {
        return Err(invalid(
            "dhcp.subnets".into(),
            "mode = \"full\" needs at least one [[dhcp.subnets]] entry with its pools".into(),
        ));
    }
    let mut out: Vec<Subnet> = Vec::new();
    for (i, s) in subnets.iter().enumerate() {
        let key = |k: &str| format!("dhcp.subnets[{i}].{k}");
        let (network, prefix) = parse_cidr(&key("network"), &s.network)?;
        if !(8..=30).contains(&prefix) {
            return Err(invalid(
                key("network"),
                format!("a /{prefix} subnet cannot be served (8 to 30)"),
            ));
        }
        if let Some(o) = out
            .iter()
            .find(|o| o.contains(network) || Subnet::contains(&shell(network, prefix), o.network))
        {
            return Err(invalid(
                key("network"),
                format!("overlaps the subnet {}/{}", o.network, o.prefix),
            ));
        }
        let mut net = shell(network, prefix);
        for (j, p) in s.pools.iter().enumerate() {
            net.ranges
                .push(parse_pool(&key(&format!("pools[{j}]")), p, &net)?);
        }
        if let Some(r) = s.router
            && !net.contains(r)
        {
            return Err(invalid(
                key("router"),
                format!("{r} is not inside {}/{prefix}", net.network),
            ));
        }
        if let Some(d) = &s.domain
            && (d.is_empty()
                || d.len() > 253
                || !d
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
        {
            return Err(invalid(
                key("domain"),
                format!("{d:?} is not a domain name"),
            ));
        }
        if let Some(m) = s.mtu
            && m < 68
        {
            return Err(invalid(key("mtu"), format!("{m} is below the minimum 68")));
        }
        if s.lease_secs < 60 {
            return Err(invalid(
                key("lease_secs"),
                format!("{} s is too short (at least 60)", s.lease_secs),
            ));
        }
        if s.dns_servers.len() > 8 || s.ntp_servers.len() > 8 || s.routes.len() > 32 {
            return Err(invalid(
                key("dns_servers"),
                "at most 8 DNS and 8 NTP servers and 32 routes".into(),
            ));
        }
        for (j, r) in s.routes.iter().enumerate() {
            let (dest, p) = parse_cidr(&key(&format!("routes[{j}].network")), &r.network)?;
            net.routes.push((dest, p, r.gateway));
        }
        net.router = s.router;
        net.dns_servers = s.dns_servers.clone();
        net.domain = s.domain.clone();
        net.ntp_servers = s.ntp_servers.clone();
        net.mtu = s.mtu;
        net.lease_secs = s.lease_secs;
        out.push(net);
    }
    let mut res: Vec<Reservation> = Vec::new();
    for (i, r) in reservations.iter().enumerate() {
        let key = |k: &str| format!("dhcp.reservations[{i}].{k}");
        let mac = crate::config::pattern::MacPattern::parse(&r.mac)
            .and_then(|p| p.exact())
            .ok_or_else(|| {
                invalid(
                    key("mac"),
                    format!("{:?} is not a MAC like 52:54:00:12:34:56", r.mac),
                )
            })?;
        let Some(net) = out.iter().find(|n| n.contains(r.ip)) else {
            return Err(invalid(
                key("ip"),
                format!("{} is in none of dhcp.subnets", r.ip),
            ));
        };
        if r.ip == net.network || r.ip == net.broadcast() || Some(r.ip) == net.router {
            return Err(invalid(
                key("ip"),
                format!(
                    "{} is the network, broadcast or router address of its subnet",
                    r.ip
                ),
            ));
        }
        if let Some(h) = &r.hostname
            && (h.is_empty()
                || h.len() > 63
                || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(invalid(
                key("hostname"),
                format!("{h:?} is not a host name (letters, digits, '-', at most 63)"),
            ));
        }
        if let Some(o) = res.iter().find(|o| o.mac == mac || o.ip == r.ip) {
            return Err(invalid(
                key("mac"),
                format!(
                    "{} / {} is reserved twice (also for {})",
                    r.mac,
                    r.ip,
                    crate::wire::format_mac(&o.mac)
                ),
            ));
        }
        res.push(Reservation {
            mac,
            ip: r.ip,
            hostname: r.hostname.clone(),
        });
    }
    if ping_check && !(10..=5000).contains(&ping_timeout_ms) {
        return Err(invalid(
            "dhcp.ping_timeout_ms".into(),
            format!(
                "{ping_timeout_ms} ms is outside 10-5000 (set ping_check = false to turn the check off)"
            ),
        ));
    }
    let hostnames = res
        .iter()
        .filter_map(|r| Some((r.mac, r.hostname.clone()?)))
        .collect();
    Ok(FullConfig {
        hostnames,
        subnets: out,
        reservations: res,
        lease_file,
        authoritative,
        ping_timeout: ping_check.then(|| std::time::Duration::from_millis(ping_timeout_ms)),
    })
}

fn shell(network: Ipv4Addr, prefix: u8) -> Subnet {
    Subnet {
        network,
        prefix,
        ranges: Vec::new(),
        router: None,
        dns_servers: Vec::new(),
        domain: None,
        ntp_servers: Vec::new(),
        mtu: None,
        routes: Vec::new(),
        lease_secs: default_lease_secs(),
    }
}
