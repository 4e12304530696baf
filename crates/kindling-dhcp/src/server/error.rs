//! What can go wrong when binding the proxy DHCP sockets.

use std::io;

use crate::config::ConfigError;

/// Errors from [`DhcpServer::bind`](crate::DhcpServer::bind).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DhcpError {
    #[error("invalid [dhcp] configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("proxy DHCP is disabled (dhcp.enabled = false)")]
    Disabled,
    #[error("listing network interfaces: {0}")]
    Interfaces(#[source] io::Error),
    #[error("interface {0:?} (from dhcp.interfaces) does not exist")]
    NoSuchInterface(String),
    #[error("interface {0:?} has no IPv4 address; give one with dhcp.advertise.{0} = \"a.b.c.d\"")]
    NoAddress(String),
    #[error(
        "no interface matches dhcp.interfaces / dhcp.all_interfaces after dhcp.exclude_interfaces"
    )]
    NoMatchingInterface,
    #[error(
        "UDP {port} on {iface} is in use{holders}: another DHCP server (dnsmasq/libvirt?) already owns it; stop it, bind it to other interfaces (dnsmasq --bind-interfaces --except-interface={iface}), or exclude {iface} with dhcp.exclude_interfaces"
    )]
    PortInUse {
        port: u16,
        iface: String,
        /// " by dnsmasq (pid 812)" when the holder could be found, else "".
        holders: String,
    },
    #[error(
        "binding UDP {port} on {iface} was refused ({source}); proxy DHCP needs root or CAP_NET_BIND_SERVICE + CAP_NET_RAW"
    )]
    PermissionDenied {
        port: u16,
        iface: String,
        #[source]
        source: io::Error,
    },
    #[error("lease file {}: {source}", path.display())]
    LeaseFile {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("binding UDP {port} on {iface}: {source}")]
    Bind {
        port: u16,
        iface: String,
        #[source]
        source: io::Error,
    },
}
