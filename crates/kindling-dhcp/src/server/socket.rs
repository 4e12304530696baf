//! Binding: the UDP sockets of one served interface (SO_BINDTODEVICE), and the packet
//! socket for its broadcast replies.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::netif;
use crate::policy::ListenPort;
use crate::rawsend::RawSender;
use crate::server::error::DhcpError;
use crate::server::select::Choice;

/// One bound socket.
pub(super) struct Listener {
    pub(super) iface: Arc<str>,
    pub(super) server_ip: Ipv4Addr,
    pub(super) port: ListenPort,
    pub(super) socket: Arc<UdpSocket>,
    /// Broadcast replies on port 67 go out here when it could be opened.
    pub(super) raw: Option<Arc<RawSender>>,
}

/// A bound listener, for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInfo {
    pub iface: String,
    pub server_ip: Ipv4Addr,
    pub port: u16,
}

fn make_socket(iface: &str, port: u16) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    // Room for a rack's DISCOVERs arriving at once.
    if let Err(short) = kindling_guard::grow_receive_buffer(&s, kindling_guard::BURST_BUFFER) {
        tracing::warn!(iface, port, "{short}");
    }
    s.bind_device(Some(iface.as_bytes()))?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
    Ok(s.into())
}

fn bind_error(port: u16, iface: &str, e: io::Error) -> DhcpError {
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            let h = netif::udp_port_holders(port);
            DhcpError::PortInUse {
                port,
                iface: iface.into(),
                holders: if h.is_empty() {
                    String::new()
                } else {
                    format!(" by {}", h.join(", "))
                },
            }
        }
        io::ErrorKind::PermissionDenied => DhcpError::PermissionDenied {
            port,
            iface: iface.into(),
            source: e,
        },
        _ => DhcpError::Bind {
            port,
            iface: iface.into(),
            source: e,
        },
    }
}

/// The sockets of one served interface (UDP 67, and 4011 unless turned off), stopped
/// together when the interface goes away or changes address.
pub(super) struct Bound {
    pub(super) choice: Choice,
    pub(super) listeners: Vec<Listener>,
    pub(super) stop: CancellationToken,
}

pub(super) fn bind_interface(choice: &Choice) -> Result<Bound, DhcpError> {
    let iface: Arc<str> = Arc::from(choice.iface.as_str());
    let ip = choice.ip;
    let ports = [ListenPort::Dhcp, ListenPort::Pxe];
    let mut listeners = Vec::new();
    for port in ports {
        let std_sock =
            make_socket(&iface, port.number()).map_err(|e| bind_error(port.number(), &iface, e))?;
        let socket = UdpSocket::from_std(std_sock).map_err(|e| DhcpError::Bind {
            port: port.number(),
            iface: iface.to_string(),
            source: e,
        })?;
        info!(iface = %iface, server_ip = %ip, port = port.number(), "proxy DHCP listening");
        let raw = match port {
            ListenPort::Dhcp => match RawSender::open(&iface, ip) {
                Ok(r) => Some(Arc::new(r)),
                Err(e) => {
                    debug!(iface = %iface, error = %e, "no packet socket for broadcast replies; using UDP");
                    None
                }
            },
            ListenPort::Pxe => None,
        };
        listeners.push(Listener {
            iface: iface.clone(),
            server_ip: ip,
            port,
            socket: Arc::new(socket),
            raw,
        });
    }
    Ok(Bound {
        choice: choice.clone(),
        listeners,
        stop: CancellationToken::new(),
    })
}
