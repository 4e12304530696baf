//! The DHCPv6 tokio shell: one UDP socket per served interface on `[::]:547`
//! (SO_BINDTODEVICE, IPV6_V6ONLY), joined to `ff02::1:2` (All_DHCP_Relay_Agents_and_Servers)
//! on that interface; every datagram goes through [`decide6`] and the reply goes back to the
//! client's link-local address, port 546.
//!
//! The interfaces are the exact names of `dhcp.interfaces` (patterns, subnet selectors and
//! `all_interfaces` are IPv4-only), read once at start.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn};

use crate::config::v6::Checked6;
use crate::config::{CheckedConfig, ConfigError, DhcpConfig};
use crate::ratelimit::LogGate;
use crate::server::observer::{Answered6Event, DhcpObserver, NoObserver, Seen6Event};
use crate::v6::decide::{Context6, Outcome6};
use crate::v6::decide::{Decision6, Ignore6, SERVER_PORT, decide6, msg_name};
use crate::v6::wire::msg;
use kindling_guard::Esc;

/// All_DHCP_Relay_Agents_and_Servers.
pub const ALL_DHCP_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// Errors from [`Dhcp6Server::bind`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Dhcp6Error {
    #[error("invalid [dhcp] configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("DHCPv6 is disabled (dhcp.v6.enabled = false)")]
    Disabled,
    #[error("listing network interfaces: {0}")]
    Interfaces(#[source] io::Error),
    #[error(
        "dhcp.v6 serves the exact interface names of dhcp.interfaces; {0:?} is a pattern or a subnet selector (IPv4 only): list the interface by name"
    )]
    NotAName(String),
    #[error("dhcp.v6.enabled is true but dhcp.interfaces names no interface")]
    NoInterfaces,
    #[error("interface {0:?} (from dhcp.interfaces) does not exist")]
    NoSuchInterface(String),
    #[error(
        "interface {iface:?} has no IPv6 address in dhcp.v6.prefix {prefix}/64: add one (e.g. ip -6 addr add {prefix}1/64 dev {iface})"
    )]
    NoAddressInPrefix { iface: String, prefix: Ipv6Addr },
    #[error("interface {0:?} has no MAC address (the server DUID is DUID-LL of it)")]
    NoMac(String),
    #[error(
        "UDP 547 on {iface} is in use: another DHCPv6 server (dnsmasq, kea, ...) already owns it"
    )]
    PortInUse { iface: String },
    #[error("binding UDP 547 on {iface}: {source}")]
    Bind {
        iface: String,
        #[source]
        source: io::Error,
    },
}

/// One served interface.
struct Listener6 {
    iface: Arc<str>,
    index: u32,
    server_addr: Ipv6Addr,
    duid: Arc<[u8]>,
    socket: Arc<UdpSocket>,
}

/// A bound listener, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener6Info {
    pub iface: String,
    pub server_addr: Ipv6Addr,
    /// The server DUID (DUID-LL), as hex.
    pub duid: String,
}

/// Counters (a snapshot with [`Dhcp6Server::stats`], `/metrics` through [`Stats6Handle`]).
#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    /// Replies sent (answered = both): ADVERTISE, REPLY.
    advertise: AtomicU64,
    reply: AtomicU64,
    /// Not answered, by [`Ignore6::index`] (ignored = their sum).
    ignored_by: [AtomicU64; Ignore6::ALL.len()],
}

/// Reads the DHCPv6 counters after `run` has taken over (for `/metrics`).
#[derive(Clone)]
pub struct Stats6Handle(Arc<Counters>);

impl Stats6Handle {
    /// The `kindling_dhcpv6_*` families: datagrams received, replies by message type,
    /// datagrams not answered by reason.
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        use prometheus_client::metrics::counter::{ConstCounter, Counter};
        use prometheus_client::metrics::family::Family;
        let c = &self.0;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        r.register(
            "kindling_dhcpv6_received",
            "Datagrams received on the DHCPv6 sockets (port 547)",
            ConstCounter::new(get(&c.received)),
        );
        let replies = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        replies
            .get_or_create(&vec![("message", "advertise")])
            .inc_by(get(&c.advertise));
        replies
            .get_or_create(&vec![("message", "reply")])
            .inc_by(get(&c.reply));
        r.register(
            "kindling_dhcpv6_replies",
            "DHCPv6 replies sent, by message type",
            replies,
        );
        let ignored = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        for (reason, n) in Ignore6::ALL.iter().zip(&c.ignored_by) {
            let n = get(n);
            if n > 0 {
                ignored
                    .get_or_create(&vec![("reason", reason.label())])
                    .inc_by(n);
            }
        }
        r.register(
            "kindling_dhcpv6_ignored",
            "DHCPv6 datagrams not answered, by reason",
            ignored,
        );
    }
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Dhcp6Stats {
    pub received: u64,
    pub answered: u64,
    pub ignored: u64,
}

/// The DHCPv6 server.
pub struct Dhcp6Server {
    dhcp: Arc<CheckedConfig>,
    v6: Arc<Checked6>,
    listeners: Vec<Listener6>,
    counters: Arc<Counters>,
    observer: Arc<dyn DhcpObserver>,
}

/// What getifaddrs says about one interface.
#[derive(Default)]
struct Iface6 {
    index: u32,
    mac: Option<[u8; 6]>,
    addrs: Vec<Ipv6Addr>,
}

fn iface_info(name: &str) -> io::Result<Option<Iface6>> {
    let mut found: Option<Iface6> = None;
    for ifa in nix::ifaddrs::getifaddrs().map_err(io::Error::from)? {
        if ifa.interface_name != name {
            continue;
        }
        let e = found.get_or_insert_with(|| Iface6 {
            index: nix::net::if_::if_nametoindex(name).unwrap_or(0),
            ..Default::default()
        });
        if let Some(a) = &ifa.address {
            if let Some(s) = a.as_sockaddr_in6() {
                e.addrs.push(s.ip());
            }
            if let Some(m) = a.as_link_addr().and_then(|l| l.addr())
                && m != [0; 6]
            {
                e.mac = Some(m);
            }
        }
    }
    Ok(found)
}

/// DUID-LL (RFC 8415 11.4): type 3, hardware type 1 (Ethernet), the MAC.
pub fn duid_ll(mac: [u8; 6]) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend_from_slice(&mac);
    d
}

fn make_socket(iface: &str, index: u32) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    s.set_reuse_address(true)?;
    // Room for a rack's SOLICITs arriving at once.
    if let Err(short) = kindling_guard::grow_receive_buffer(&s, kindling_guard::BURST_BUFFER) {
        warn!(iface, "{short}");
    }
    s.bind_device(Some(iface.as_bytes()))?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, SERVER_PORT, 0, 0)).into())?;
    s.join_multicast_v6(&ALL_DHCP_SERVERS, index)?;
    Ok(s.into())
}

/// The interface names DHCPv6 serves: `dhcp.interfaces`, which must all be plain names.
fn names(config: &DhcpConfig, checked: &CheckedConfig) -> Result<Vec<String>, Dhcp6Error> {
    let mut out = Vec::new();
    for n in &config.interfaces {
        if n.contains('*') || n.contains('/') || n.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err(Dhcp6Error::NotAName(n.clone()));
        }
        if !checked.is_excluded(n) && !out.contains(n) {
            out.push(n.clone());
        }
    }
    if out.is_empty() {
        return Err(Dhcp6Error::NoInterfaces);
    }
    Ok(out)
}

impl Dhcp6Server {
    /// Validates `[dhcp]` and `[dhcp.v6]` and binds UDP 547 on every interface of
    /// `dhcp.interfaces`.
    pub async fn bind(config: &DhcpConfig) -> Result<Self, Dhcp6Error> {
        let v6 = config.v6.validate()?;
        if !v6.enabled {
            return Err(Dhcp6Error::Disabled);
        }
        let dhcp = config.validate()?;
        let mut listeners = Vec::new();
        for name in names(config, &dhcp)? {
            let info = iface_info(&name)
                .map_err(Dhcp6Error::Interfaces)?
                .ok_or_else(|| Dhcp6Error::NoSuchInterface(name.clone()))?;
            let server_addr = info
                .addrs
                .iter()
                .copied()
                .find(|a| v6.in_prefix(*a))
                .ok_or_else(|| Dhcp6Error::NoAddressInPrefix {
                    iface: name.clone(),
                    prefix: v6.prefix,
                })?;
            let mac = info.mac.ok_or_else(|| Dhcp6Error::NoMac(name.clone()))?;
            let sock = make_socket(&name, info.index).map_err(|e| match e.kind() {
                io::ErrorKind::AddrInUse => Dhcp6Error::PortInUse {
                    iface: name.clone(),
                },
                _ => Dhcp6Error::Bind {
                    iface: name.clone(),
                    source: e,
                },
            })?;
            let socket = UdpSocket::from_std(sock).map_err(|e| Dhcp6Error::Bind {
                iface: name.clone(),
                source: e,
            })?;
            info!(iface = %name, server_addr = %server_addr, port = SERVER_PORT, "DHCPv6 listening");
            listeners.push(Listener6 {
                iface: Arc::from(name.as_str()),
                index: info.index,
                server_addr,
                duid: Arc::from(duid_ll(mac)),
                socket: Arc::new(socket),
            });
        }
        Ok(Self {
            dhcp: Arc::new(dhcp),
            v6: Arc::new(v6),
            listeners,
            counters: Arc::new(Counters::default()),
            observer: Arc::new(NoObserver),
        })
    }

    /// The bound sockets.
    pub fn listeners(&self) -> Vec<Listener6Info> {
        self.listeners
            .iter()
            .map(|l| Listener6Info {
                iface: l.iface.to_string(),
                server_addr: l.server_addr,
                duid: l.duid.iter().map(|b| format!("{b:02x}")).collect(),
            })
            .collect()
    }

    /// The boot timeline's hook: boot clients' messages and the replies they get
    /// ([`DhcpObserver::seen6`], [`DhcpObserver::answered6`]). Call before `run`.
    pub fn with_observer(mut self, observer: Arc<dyn DhcpObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// A handle on the counters for `/metrics`.
    pub fn stats_handle(&self) -> Stats6Handle {
        Stats6Handle(self.counters.clone())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Dhcp6Stats {
        Dhcp6Stats {
            received: self.counters.received.load(Ordering::Relaxed),
            answered: self.counters.advertise.load(Ordering::Relaxed)
                + self.counters.reply.load(Ordering::Relaxed),
            ignored: self
                .counters
                .ignored_by
                .iter()
                .map(|n| n.load(Ordering::Relaxed))
                .sum(),
        }
    }

    /// Serves until `cancel` fires.
    pub async fn run(&self, cancel: CancellationToken) {
        let gate = Arc::new(Mutex::new(LogGate::new(50, 5.0)));
        let mut tasks = tokio::task::JoinSet::new();
        for l in &self.listeners {
            let w = Worker {
                dhcp: self.dhcp.clone(),
                v6: self.v6.clone(),
                iface: l.iface.clone(),
                index: l.index,
                server_addr: l.server_addr,
                duid: l.duid.clone(),
                socket: l.socket.clone(),
                counters: self.counters.clone(),
                gate: gate.clone(),
                observer: self.observer.clone(),
            };
            let c = cancel.clone();
            tasks.spawn(async move {
                tokio::select! {
                    _ = c.cancelled() => {}
                    _ = w.run() => {}
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

struct Worker {
    dhcp: Arc<CheckedConfig>,
    v6: Arc<Checked6>,
    iface: Arc<str>,
    index: u32,
    server_addr: Ipv6Addr,
    duid: Arc<[u8]>,
    socket: Arc<UdpSocket>,
    counters: Arc<Counters>,
    gate: Arc<Mutex<LogGate>>,
    observer: Arc<dyn DhcpObserver>,
}

/// Receive buffer: far above any real DHCPv6 client message; larger ones are cut and so
/// fail to parse.
const DATAGRAM_MAX: usize = 4096;

impl Worker {
    async fn run(self) {
        let mut buf = vec![0u8; DATAGRAM_MAX];
        loop {
            let (n, from) = match self.socket.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    debug!(iface = %self.iface, error = %e, "DHCPv6 recv failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let SocketAddr::V6(mut source) = from else {
                continue;
            };
            if source.scope_id() == 0 {
                source.set_scope_id(self.index);
            }
            self.counters.received.fetch_add(1, Ordering::Relaxed);
            let ctx = Context6 {
                iface: &self.iface,
                server_addr: self.server_addr,
                server_duid: &self.duid,
                source,
            };
            let outcome = decide6(&self.dhcp, &self.v6, &ctx, buf.get(..n).unwrap_or_default());
            self.finish(&ctx, outcome).await;
        }
    }

    async fn finish(&self, ctx: &Context6<'_>, o: Outcome6) {
        let c = o.client.as_ref();
        let span = info_span!(
            "dhcpv6",
            xid = %c.map(|c| format!("{:06x}", c.xid)).unwrap_or_default(),
            duid = %c.map(|c| c.duid_string()).unwrap_or_default(),
            iface = %self.iface,
        );
        let _g = span.enter();
        let boot = c.filter(|c| c.is_boot_client());
        if let Some(client) = boot {
            self.observer.seen6(&Seen6Event {
                iface: &self.iface,
                source: ctx.source,
                client,
            });
        }
        match o.decision {
            Decision6::Ignore(reason) => {
                self.counters.ignored_by[reason.index()].fetch_add(1, Ordering::Relaxed);
                let t = c.map(|c| msg_name(c.msg_type)).unwrap_or("-");
                if reason.is_ordinary() {
                    debug!(source = %ctx.source, message = t, reason = reason.label(), "DHCPv6 ignored");
                } else if let Some(suppressed) = self
                    .gate
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .allow(Instant::now())
                {
                    info!(source = %ctx.source, message = t, reason = reason.label(), suppressed, "DHCPv6 ignored");
                }
            }
            Decision6::Reply(r) => {
                match self.socket.send_to(&r.packet, SocketAddr::V6(r.dest)).await {
                    Ok(_) => {
                        let by_type = if r.msg_type == msg::ADVERTISE {
                            &self.counters.advertise
                        } else {
                            &self.counters.reply
                        };
                        by_type.fetch_add(1, Ordering::Relaxed);
                        if let Some(client) = boot {
                            self.observer.answered6(&Answered6Event {
                                iface: &self.iface,
                                source: ctx.source,
                                client,
                                reply: &r,
                            });
                        }
                        let addrs: Vec<String> =
                            r.addresses.iter().map(ToString::to_string).collect();
                        info!(
                            dest = %r.dest,
                            message = c.map(|c| msg_name(c.msg_type)).unwrap_or("-"),
                            reply = msg_name(r.msg_type),
                            addresses = %addrs.join(","),
                            firmware = c.and_then(|c| c.firmware).map(|f| f.label()).unwrap_or("-"),
                            arch = ?c.and_then(|c| c.arch),
                            vendor_class = %c.and_then(|c| c.vendor_class.as_deref()).map(|s| Esc(s.as_bytes()).to_string()).unwrap_or_default(),
                            boot_url = %r.boot_url.as_deref().map(|s| Esc(s.as_bytes()).to_string()).unwrap_or_default(),
                            no_boot = c.and_then(|c| c.no_boot).map(|r| r.label()).unwrap_or(""),
                            "DHCPv6 answered"
                        );
                    }
                    Err(e) => warn!(dest = %r.dest, error = %e, "DHCPv6 send failed"),
                }
            }
        }
    }
}
