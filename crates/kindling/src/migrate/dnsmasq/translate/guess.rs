//! What the configuration does not say outright: Kindling's address, its HTTP port and the
//! interface it is checked on.

use std::net::Ipv4Addr;

use super::model::{is_netboot_xyz, same_net, split_url};
use crate::migrate::dnsmasq::parse::{self, Conf};

/// Where the server is: an address the configuration names in a range's subnet, else the
/// range's own address.
pub(super) fn guess_server(
    conf: &Conf,
    explicit: Option<Ipv4Addr>,
) -> (Ipv4Addr, Ipv4Addr, String) {
    let range_mask = |r: &parse::Range| r.netmask.unwrap_or(Ipv4Addr::new(255, 255, 255, 0));
    let mut ranges: Vec<&parse::Range> = conf.ranges.iter().filter(|r| r.proxy).collect();
    ranges.extend(conf.ranges.iter().filter(|r| !r.proxy));
    if let Some(ip) = explicit {
        let mask = ranges
            .iter()
            .find(|r| same_net(ip, r.start, range_mask(r)))
            .map(|r| range_mask(r))
            .unwrap_or(Ipv4Addr::new(255, 255, 255, 0));
        return (ip, mask, "--server-ip".into());
    }
    let mut named: Vec<(Ipv4Addr, usize)> = Vec::new();
    let host_of = |u: &str| split_url(u).and_then(|(_, h, _, _)| h.parse::<Ipv4Addr>().ok());
    for s in &conf.pxe_services {
        if let Some(ip) = s.server {
            named.push((ip, s.line));
        }
        if let Some(ip) = s.basename.as_deref().and_then(host_of) {
            named.push((ip, s.line));
        }
    }
    for b in &conf.boots {
        if let Some(ip) = host_of(&b.file) {
            named.push((ip, b.line));
        }
        if let Some(ip) = b.server {
            named.push((ip, b.line));
        }
    }
    named.sort_by_key(|(_, l)| *l);
    for (ip, line) in &named {
        if let Some(r) = ranges
            .iter()
            .find(|r| same_net(*ip, r.start, range_mask(r)))
        {
            return (*ip, range_mask(r), format!("named in dnsmasq line {line}"));
        }
    }
    if let Some(r) = ranges.first() {
        let m = range_mask(r);
        let net = u32::from(r.start) & u32::from(m);
        let ip = if r.proxy && u32::from(r.start) != net {
            r.start
        } else {
            Ipv4Addr::from(net | 1)
        };
        return (ip, m, format!("assumed from dnsmasq line {}", r.line));
    }
    (
        Ipv4Addr::new(192, 168, 0, 1),
        Ipv4Addr::new(255, 255, 255, 0),
        "assumed (no dhcp-range)".into(),
    )
}

/// The HTTP port of "this server" (where matchbox ran and Kindling will serve).
pub(super) fn guess_http_port(conf: &Conf, server: Ipv4Addr) -> u16 {
    let mut urls: Vec<&str> = Vec::new();
    urls.extend(
        conf.pxe_services
            .iter()
            .filter_map(|s| s.basename.as_deref()),
    );
    urls.extend(conf.boots.iter().map(|b| b.file.as_str()));
    let ours: Vec<(u16, String)> = urls
        .iter()
        .filter(|u| !is_netboot_xyz(u))
        .filter_map(|u| split_url(u))
        .filter(|(s, h, _, _)| s == "http" && h.parse::<Ipv4Addr>().ok() == Some(server))
        .map(|(_, _, p, path)| (p, path))
        .collect();
    ours.iter()
        .find(|(_, p)| p == "/boot.ipxe")
        .or_else(|| ours.first())
        .map(|(p, _)| *p)
        .unwrap_or(8080)
}

/// The interfaces dnsmasq excludes and names, and the one the translation is checked on.
pub(super) struct Interfaces {
    pub excluded: Vec<String>,
    pub named: Vec<String>,
    pub iface: String,
}

pub(super) fn guess_interfaces(conf: &Conf) -> Interfaces {
    let excluded: Vec<String> = conf
        .lines
        .iter()
        .filter(|l| l.key == "except-interface" || l.key == "no-dhcp-interface")
        .flat_map(|l| l.args.clone())
        .filter(|a| !a.is_empty())
        .collect();
    let named_ifaces: Vec<String> = conf
        .lines
        .iter()
        .filter(|l| l.key == "interface")
        .flat_map(|l| l.args.clone())
        .filter(|a| !a.is_empty())
        .collect();
    let is_excluded = |n: &str| {
        excluded
            .iter()
            .chain(["virbr*".to_string(), "docker*".to_string()].iter())
            .any(|p| kindling_dhcp::config::NamePattern::new(p).matches(n))
    };
    let iface = named_ifaces
        .iter()
        .find(|n| !n.contains('*') && n.len() <= 15)
        .cloned()
        .or_else(|| {
            ["eth0", "lan0", "net0"]
                .into_iter()
                .find(|n| !is_excluded(n))
                .map(String::from)
        })
        .unwrap_or_else(|| "eth0".into());
    Interfaces {
        excluded,
        named: named_ifaces,
        iface,
    }
}
