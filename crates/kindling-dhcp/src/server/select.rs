//! Which interfaces the config selects among the system's, and with which address.

use std::net::Ipv4Addr;

use crate::config::{CheckedConfig, InterfaceSelector};
use crate::netif;
use crate::server::error::DhcpError;

/// An interface to serve now, with the address it advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Choice {
    pub(super) iface: String,
    pub(super) index: u32,
    pub(super) ip: Ipv4Addr,
}

/// The interfaces the config selects among `system`, and why others that it names or
/// matches cannot be served yet (a named interface missing, one without an address).
pub(super) fn choose(
    cfg: &CheckedConfig,
    system: &[netif::Interface],
) -> (Vec<Choice>, Vec<DhcpError>) {
    let mut out = Vec::new();
    let mut waiting = Vec::new();
    for sel in &cfg.interfaces {
        if let InterfaceSelector::Name(n) = sel
            && !n.as_str().contains('*')
            && !system.iter().any(|i| i.name == n.as_str())
        {
            waiting.push(DhcpError::NoSuchInterface(n.as_str().into()));
        }
    }
    for i in system {
        if cfg.is_excluded(&i.name) {
            continue;
        }
        let first = i.addrs.first().copied();
        let selected = if cfg.all_interfaces {
            i.up && !i.loopback && (first.is_some() || cfg.advertise.contains_key(&i.name))
        } else {
            cfg.interfaces.iter().any(|s| match s {
                InterfaceSelector::Name(n) => n.matches(&i.name),
                InterfaceSelector::Subnet { .. } => {
                    i.addrs.iter().any(|(a, m)| s.matches(&i.name, *a, *m))
                }
            })
        };
        if !selected {
            continue;
        }
        let ip = match cfg.advertise.get(&i.name) {
            Some(ip) => *ip,
            None => {
                // Prefer the address that matched a subnet selector.
                let by_subnet = i.addrs.iter().find(|(a, m)| {
                    cfg.interfaces.iter().any(|s| {
                        matches!(s, InterfaceSelector::Subnet { .. }) && s.matches(&i.name, *a, *m)
                    })
                });
                match by_subnet.or(i.addrs.first()) {
                    Some((a, _)) => *a,
                    None => {
                        waiting.push(DhcpError::NoAddress(i.name.clone()));
                        continue;
                    }
                }
            }
        };
        out.push(Choice {
            iface: i.name.clone(),
            index: i.index,
            ip,
        });
    }
    (out, waiting)
}

/// Chooses (interface, advertised address) pairs from the config and the system's
/// interfaces; anything named or matched that cannot be served is an error.
pub fn select_interfaces(
    cfg: &CheckedConfig,
    system: &[netif::Interface],
) -> Result<Vec<(String, Ipv4Addr)>, DhcpError> {
    let (chosen, waiting) = choose(cfg, system);
    if let Some(e) = waiting.into_iter().next() {
        return Err(e);
    }
    if chosen.is_empty() {
        return Err(DhcpError::NoMatchingInterface);
    }
    Ok(chosen.into_iter().map(|c| (c.iface, c.ip)).collect())
}
