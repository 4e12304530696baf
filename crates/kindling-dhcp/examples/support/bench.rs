//! What the DHCP load generators (`dhcpbench`, `dorabench`) share: the client socket and
//! the percentile of sorted latencies. Included with `#[path]`; not an example itself.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

/// A DHCP client's socket on `iface`: port 68, broadcast allowed, a 4 MiB receive buffer
/// (a storm's replies must not be dropped by the generator), reads time out after 20 ms.
pub fn client_socket(iface: &str) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(iface.as_bytes()))?;
    s.set_recv_buffer_size(4 << 20)?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68)).into())?;
    let sock: UdpSocket = s.into();
    sock.set_read_timeout(Some(Duration::from_millis(20)))?;
    Ok(sock)
}

/// Percentile `p` of sorted nanoseconds, in microseconds (nearest rank); NaN without data.
pub fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}
