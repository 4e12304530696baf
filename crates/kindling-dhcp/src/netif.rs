//! Interface enumeration (getifaddrs) and "who holds this port" diagnostics (/proc).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;

/// One interface with its IPv4 addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    /// Kernel interface index (a re-created interface gets a new one).
    pub index: u32,
    pub up: bool,
    pub loopback: bool,
    /// (address, netmask) pairs, in kernel order.
    pub addrs: Vec<(Ipv4Addr, Ipv4Addr)>,
}

/// Lists the interfaces of the current network namespace.
pub fn interfaces() -> std::io::Result<Vec<Interface>> {
    let mut map: BTreeMap<String, Interface> = BTreeMap::new();
    for ifa in getifaddrs().map_err(std::io::Error::from)? {
        let e = map
            .entry(ifa.interface_name.clone())
            .or_insert_with(|| Interface {
                name: ifa.interface_name.clone(),
                index: nix::net::if_::if_nametoindex(ifa.interface_name.as_str()).unwrap_or(0),
                up: false,
                loopback: false,
                addrs: Vec::new(),
            });
        e.up |= ifa.flags.contains(InterfaceFlags::IFF_UP);
        e.loopback |= ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        let addr = ifa
            .address
            .as_ref()
            .and_then(|a| a.as_sockaddr_in())
            .map(|s| s.ip());
        let mask = ifa
            .netmask
            .as_ref()
            .and_then(|a| a.as_sockaddr_in())
            .map(|s| s.ip())
            .unwrap_or(Ipv4Addr::BROADCAST);
        if let Some(a) = addr {
            e.addrs.push((a, mask));
        }
    }
    Ok(map.into_values().collect())
}

/// `socket:[inode]` of the sockets bound to UDP `port`, from /proc/net/udp.
fn udp_port_inodes(port: u16) -> Vec<String> {
    let mut inodes = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/proc/net/udp") {
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local_port = cols
                .get(1)
                .and_then(|l| l.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port)
                && let Some(inode) = cols.get(9)
                && *inode != "0"
            {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    inodes
}

/// Best-effort list of processes holding a UDP port in this namespace, as "name (pid N)".
/// Reads /proc/net/udp for the socket inodes and /proc/*/fd to map them to processes.
pub fn udp_port_holders(port: u16) -> Vec<String> {
    // /proc/net/udp and /proc/*/fd are produced while sockets come and go, so one pass
    // can miss a line: try again before giving up.
    for _ in 0..3 {
        let inodes = udp_port_inodes(port);
        if inodes.is_empty() {
            continue;
        }
        let out = processes_holding(&inodes);
        if !out.is_empty() {
            return out;
        }
    }
    Vec::new()
}

/// "name (pid N)" of every process with one of `inodes` open.
fn processes_holding(inodes: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let pid = p.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .map(|l| inodes.iter().any(|i| l.as_os_str() == i.as_str()))
                .unwrap_or(false)
        });
        if holds {
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            let entry = format!("{} (pid {pid})", comm.trim());
            if !out.contains(&entry) {
                out.push(entry);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed() {
        let ifs = interfaces().unwrap();
        let lo = ifs
            .iter()
            .find(|i| i.loopback)
            .expect("a loopback interface");
        assert!(lo.addrs.iter().any(|(a, _)| a.is_loopback()));
    }

    #[test]
    fn finds_the_holder_of_a_udp_port() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        let holders = udp_port_holders(port);
        let me = format!("(pid {})", std::process::id());
        assert!(holders.iter().any(|h| h.ends_with(&me)), "{holders:?}");
    }
}
