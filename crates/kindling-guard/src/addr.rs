//! Whether a datagram's source can be answered at all, and the key a client's connections
//! are counted under.

use std::net::{IpAddr, SocketAddr};

/// False for sources no reply may go to: port 0, the unspecified address, multicast,
/// the IPv4 broadcast address and class E. A spoofed source like these would make a
/// server reflect its answer to a whole segment. (Listeners that know their own
/// subnets, like proxy DHCP, check more.)
pub fn answerable(source: SocketAddr) -> bool {
    if source.port() == 0 {
        return false;
    }
    match source.ip() {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.octets()[0] >= 240)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => answerable(SocketAddr::new(IpAddr::V4(v4), source.port())),
            None => !(v6.is_unspecified() || v6.is_multicast()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unicast_sources_with_a_port() {
        let ok = |s: &str| answerable(s.parse().unwrap());
        assert!(ok("10.0.0.9:1234"));
        assert!(ok("127.0.0.1:1234"));
        assert!(ok("[fd00::1]:69"));
        assert!(!ok("10.0.0.9:0"));
        assert!(!ok("0.0.0.0:1234"));
        assert!(!ok("255.255.255.255:1234"));
        assert!(!ok("224.0.0.1:1234"));
        assert!(!ok("240.0.0.1:1234"));
        assert!(!ok("[ff02::1]:1234"));
        assert!(!ok("[::]:1234"));
        assert!(!ok("[::ffff:255.255.255.255]:1234"));
    }
}

/// The key connections are counted under: IPv4 addresses as they are (IPv4-mapped IPv6
/// too), IPv6 addresses by their /64 (one host can use a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4.octets()),
                None => {
                    let o = v6.octets();
                    let mut p = [0u8; 8];
                    p.copy_from_slice(&o[..8]);
                    ClientKey::V6Prefix(p)
                }
            },
        }
    }
}
