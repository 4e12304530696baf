//! The packet worker: one task per bound socket reads datagrams in `recvmmsg` batches,
//! asks the decision core, applies the rate limit, logs, reports to the observer and sends
//! the replies in `sendmmsg` batches (broadcasts on the packet socket when there is one).

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn};

use crate::config::CheckedConfig;
use crate::mmsg::{RecvBatch, send_batch};
use crate::policy::{
    ClientInfo, Context, Decision, IgnoreReason, ListenPort, Reply, check_destination, decide,
    describe_arch,
};
use crate::ratelimit::{LogGate, RateLimiter, Verdict};
use crate::rawsend::{Frames, RawSender};
use crate::server::observer::{AnsweredEvent, DhcpObserver, IgnoredEvent, SeenEvent};
use crate::server::stats::StatsHandle;
use crate::wire::{self, MessageType, opt, yiaddr_is_zero};
use kindling_guard::Esc;

/// State the workers share.
pub(super) struct Shared {
    /// Every IPv4 (address, netmask) of this host, for the destination check; refreshed by
    /// rescans.
    pub(super) local: Mutex<Arc<[(Ipv4Addr, Ipv4Addr)]>>,
    /// Per-client token buckets (None: `dhcp.rate_limit.enabled = false`).
    pub(super) limiter: Option<Mutex<RateLimiter>>,
    /// Rate limit of the info/warn lines about ignored datagrams (a flood must not flood
    /// the log).
    pub(super) log_gate: Mutex<LogGate>,
    /// Boot files this server may hand out that nothing serves, and why (set once at
    /// start by the binary): each reply naming one is logged at warn.
    pub(super) unserved: std::sync::OnceLock<std::collections::HashMap<String, String>>,
    /// Full mode's lease table and log (None: proxy only).
    pub(super) leasing: Option<super::leasing::Leasing>,
    /// Echo probes in flight (full mode's `ping_check`).
    pub(super) probes: Arc<tokio::sync::Semaphore>,
    /// Full mode in a fleet: the store ACKed leases are claimed in first (set once, before
    /// the server runs).
    pub(super) fleet: std::sync::OnceLock<Arc<dyn super::claim::SharedLeases>>,
    /// Claims in flight.
    pub(super) claims: Arc<tokio::sync::Semaphore>,
    /// Machines whose group says `secure_boot` (true or false), by MAC; replaced on every
    /// reload of the groups.
    pub(super) secure_boot: Mutex<Arc<std::collections::HashMap<[u8; 6], bool>>>,
}

/// Lines about ignored datagrams: 50 at once, then 5 a second.
pub(super) const LOG_BURST: u32 = 50;
pub(super) const LOG_PER_SEC: f64 = 5.0;

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Clone)]
pub(super) struct Worker {
    pub(super) config: Arc<CheckedConfig>,
    pub(super) iface: Arc<str>,
    pub(super) server_ip: Ipv4Addr,
    pub(super) port: ListenPort,
    pub(super) socket: Arc<UdpSocket>,
    pub(super) raw: Option<Arc<RawSender>>,
    pub(super) stats: StatsHandle,
    pub(super) observer: Arc<dyn DhcpObserver>,
    pub(super) shared: Arc<Shared>,
    pub(super) cancel: CancellationToken,
}

/// Datagrams read per `recvmmsg` call.
const RECV_BATCH: usize = 32;
/// Receive buffer per datagram: far above any real DHCP packet (576 bytes minimum, rarely
/// more than one Ethernet frame); a larger datagram is dropped as malformed.
const DATAGRAM_MAX: usize = 4096;

/// A reply waiting for the batch's `sendmmsg`.
pub(super) struct Pending {
    pub(super) reply: Reply,
    pub(super) client: Option<ClientInfo>,
    pub(super) span: tracing::Span,
}

impl Worker {
    pub(super) async fn run(self) {
        let mut batch = RecvBatch::new(RECV_BATCH, DATAGRAM_MAX);
        let mut pending: Vec<Pending> = Vec::with_capacity(RECV_BATCH);
        let fd = self.socket.as_raw_fd();
        // One registration for the whole loop (a fresh `cancelled()` per packet would lock the
        // token's mutex twice per datagram).
        let cancelled = self.cancel.cancelled();
        tokio::pin!(cancelled);
        loop {
            // Readiness stays set until a read returns WouldBlock, so under load this returns at
            // once (and still counts against tokio's cooperative budget, so a flood cannot
            // starve the HTTP tasks that share the runtime).
            tokio::select! {
                biased;
                _ = &mut cancelled => return,
                r = self.socket.readable() => if let Err(e) = r {
                    debug!(iface = %self.iface, error = %e, "socket readiness failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                },
            }
            match self.socket.try_io(Interest::READABLE, || batch.recv(fd)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    debug!(iface = %self.iface, error = %e, "recv failed");
                    // Never spin on a persistent error (interface gone, ...).
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            }
            let local = lock(&self.shared.local).clone();
            let now = Instant::now();
            for d in batch.iter() {
                let Some(source) = d.source else { continue };
                self.stats.0.received.fetch_add(1, Ordering::Relaxed);
                if d.truncated {
                    self.stats.0.ignored[IgnoreReason::Malformed.index()]
                        .fetch_add(1, Ordering::Relaxed);
                    debug!(iface = %self.iface, %source, "ignored: datagram larger than {DATAGRAM_MAX} bytes");
                    continue;
                }
                if let Some(p) = self.handle(d.data, source, &local, now) {
                    pending.push(p);
                }
            }
            self.flush(&mut pending).await;
        }
    }

    /// The decision context of a datagram from `source` (`local`: this host's addresses).
    pub(super) fn context<'a>(
        &'a self,
        source: SocketAddrV4,
        local: &'a [(Ipv4Addr, Ipv4Addr)],
    ) -> Context<'a> {
        Context {
            iface: &self.iface,
            server_ip: self.server_ip,
            port: self.port,
            source,
            local,
            secure_boot: None,
        }
    }

    /// The Secure Boot setting of the group of the machine whose request this is (chaddr,
    /// when it is an Ethernet address), if its group has one.
    fn group_secure_boot(&self, packet: &[u8]) -> Option<bool> {
        let mac: [u8; 6] = packet.get(28..34)?.try_into().ok()?;
        let map = lock(&self.shared.secure_boot).clone();
        map.get(&mac).copied()
    }

    /// Decides one datagram; returns the reply to send now (delayed replies are spawned).
    fn handle(
        &self,
        packet: &[u8],
        source: SocketAddrV4,
        local: &[(Ipv4Addr, Ipv4Addr)],
        now: Instant,
    ) -> Option<Pending> {
        let mut ctx = self.context(source, local);
        if self.port == ListenPort::Pxe {
            ctx.secure_boot = self.group_secure_boot(packet);
        }
        let (mut outcome, probe) = match &self.shared.leasing {
            Some(l) => l.decide(&self.config, &ctx, packet),
            None => (decide(&self.config, &ctx, packet), None),
        };
        // Per-client rate limit: every datagram of a PXE client is charged (answered or
        // not: the info lines and the timeline cost too); ordinary DHCP traffic never is.
        let mut first_drop = true;
        if let (Some(limiter), Some(c)) = (&self.shared.limiter, &outcome.client)
            && c.vendor_prefix.is_some()
        {
            let verdict = lock(limiter).check(now, c.mac, *source.ip(), !c.giaddr.is_unspecified());
            if let Verdict::Limited { key, first } = verdict {
                outcome.decision = Decision::Ignore(key.reason());
                first_drop = first;
            }
        }
        let client = outcome.client.as_ref();
        let span = info_span!(
            "dhcp",
            xid = %client.map(|c| format!("{:08x}", c.xid)).unwrap_or_default(),
            mac = %client.map(ClientInfo::mac_string).unwrap_or_default(),
            iface = %self.iface,
            port = self.port.number(),
        );
        if let Some(c) = client
            && c.vendor_prefix.is_some()
            && first_drop
        {
            self.stats.0.seen(c.firmware);
            self.observer.seen(&SeenEvent {
                iface: &self.iface,
                port: self.port,
                source,
                client: c,
            });
        }
        match outcome.decision {
            Decision::Ignore(reason) => {
                self.stats.0.ignored[reason.index()].fetch_add(1, Ordering::Relaxed);
                if reason == IgnoreReason::LeaseReleased {
                    self.release_shared(client);
                }
                if first_drop {
                    span.in_scope(|| self.log_ignore(&ctx, reason, client, packet, now));
                }
                self.observer.ignored(&IgnoredEvent {
                    iface: &self.iface,
                    port: self.port,
                    source,
                    client: client.filter(|_| first_drop),
                    reason,
                });
                None
            }
            Decision::Reply(reply) => {
                if !self.safe(&reply, local, &span) {
                    return None;
                }
                let client = outcome.client;
                if reply.message_type == MessageType::Ack
                    && let (Some(ip), Some(fleet)) = (reply.lease, self.shared.fleet.get())
                {
                    let Ok(permit) = self.shared.claims.clone().try_acquire_owned() else {
                        self.unavailable();
                        return None;
                    };
                    let (this, fleet, packet) = (self.clone(), fleet.clone(), packet.to_vec());
                    tokio::spawn(async move {
                        let p = Pending {
                            reply,
                            client,
                            span,
                        };
                        if let Some(p) = this.claim_first(fleet, ip, &packet, source, p).await {
                            this.flush(&mut vec![p]).await;
                        }
                        drop(permit);
                    });
                    return None;
                }
                if let Some(ip) = probe
                    && let Ok(permit) = self.shared.probes.clone().try_acquire_owned()
                {
                    let this = self.clone();
                    let packet = packet.to_vec();
                    tokio::spawn(async move {
                        let p = Pending {
                            reply,
                            client,
                            span,
                        };
                        if let Some(p) = this.probe_first(ip, &packet, source, p).await {
                            this.flush(&mut vec![p]).await;
                        }
                        drop(permit);
                    });
                    return None;
                }
                let delay = self.config.reply_delay;
                if delay.is_zero() {
                    return Some(Pending {
                        reply,
                        client,
                        span,
                    });
                }
                let this = self.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = this.cancel.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    let mut one = vec![Pending {
                        reply,
                        client,
                        span,
                    }];
                    this.flush(&mut one).await;
                });
                None
            }
        }
    }

    /// Last lines of defence: a proxy never hands out an address (a lease's `yiaddr` is the
    /// address the table gave, full mode only), and nothing goes to a broadcast, multicast,
    /// loopback or own address unless it is the port-67 broadcast to clients on this link.
    pub(super) fn safe(
        &self,
        reply: &Reply,
        local: &[(Ipv4Addr, Ipv4Addr)],
        span: &tracing::Span,
    ) -> bool {
        let dest_ok = (*reply.dest.ip() == Ipv4Addr::BROADCAST
            && reply.dest.port() == crate::policy::DHCP_CLIENT_PORT)
            || check_destination(*reply.dest.ip(), self.server_ip, local).is_ok();
        let yiaddr_ok = match reply.lease {
            None => yiaddr_is_zero(&reply.packet),
            Some(ip) => {
                self.shared.leasing.is_some()
                    && reply
                        .packet
                        .get(wire::YIADDR_OFFSET..wire::YIADDR_OFFSET + 4)
                        == Some(&ip.octets()[..])
            }
        };
        if !yiaddr_ok || !dest_ok {
            self.stats.0.refused_unsafe.fetch_add(1, Ordering::Relaxed);
            span.in_scope(|| warn!(dest = %reply.dest, "refusing to send an unsafe reply (yiaddr not the lease, or bad destination)"));
        }
        yiaddr_ok && dest_ok
    }

    /// Full mode's `ping_check`: echoes `ip` before its offer goes out; an address that
    /// answers is held back and the datagram decided again (up to three addresses, the last
    /// offered unprobed). `None`: nothing to send.
    async fn probe_first(
        &self,
        mut ip: Ipv4Addr,
        packet: &[u8],
        source: SocketAddrV4,
        mut p: Pending,
    ) -> Option<Pending> {
        let leasing = self.shared.leasing.as_ref()?;
        let timeout = self.config.full.as_ref()?.ping_timeout?;
        for round in 0..3u16 {
            let xid = p.reply.packet.get(6..8).unwrap_or(&[0, 0]);
            let id = (std::process::id() as u16) ^ u16::from_be_bytes([xid[0], xid[1]]);
            let answered =
                tokio::task::spawn_blocking(move || super::probe::echo(ip, timeout, id, round))
                    .await
                    .unwrap_or_else(|e| Err(io::Error::other(e)));
            match answered {
                Ok(false) => return Some(p),
                Err(e) => {
                    p.span.in_scope(|| debug!(address = %ip, error = %e, "ping check failed; offering without it"));
                    return Some(p);
                }
                Ok(true) => {}
            }
            p.span.in_scope(|| warn!(address = %ip, "address answered a ping: another host uses it; holding it back and offering another"));
            let local = lock(&self.shared.local).clone();
            let ctx = self.context(source, &local);
            let (outcome, next) = leasing.conflict(&self.config, &ctx, packet, ip);
            match outcome.decision {
                Decision::Reply(r) if self.safe(&r, &local, &p.span) => {
                    p.reply = r;
                    p.client = outcome.client;
                    match next {
                        Some(n) => ip = n,
                        None => return Some(p),
                    }
                }
                Decision::Reply(_) => return None,
                Decision::Ignore(reason) => {
                    self.stats.0.ignored[reason.index()].fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
        Some(p)
    }

    /// Logs an ignored datagram: ordinary LAN traffic at debug, the rest (rate-limited by
    /// [`LogGate`]) at info, refusals of unsafe destinations and rate-limit drops at warn.
    /// Client texts are escaped ([`Esc`]).
    fn log_ignore(
        &self,
        ctx: &Context<'_>,
        reason: IgnoreReason,
        client: Option<&ClientInfo>,
        packet: &[u8],
        now: Instant,
    ) {
        let source = ctx.source;
        // Ordinary DHCP traffic: every client on the LAN would log here.
        if reason.is_ordinary() {
            debug!(reason = reason.label(), %source, "ignored");
            return;
        }
        let Some(suppressed) = lock(&self.shared.log_gate).allow(now) else {
            return;
        };
        // The client's own bytes (not the lossy copies in ClientInfo), escaped.
        let req = wire::Request::parse(packet).ok();
        let vendor = req
            .as_ref()
            .and_then(|r| r.option(opt::VENDOR_CLASS))
            .unwrap_or_default();
        let user_classes = req.as_ref().map(|r| r.user_classes()).unwrap_or_default();
        let vendor_class = Esc(vendor);
        let user_classes = user_classes.join(&b","[..]);
        let user_class = Esc(&user_classes);
        let arches = client
            .map(|c| {
                c.architectures
                    .iter()
                    .map(|a| describe_arch(*a))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        match reason {
            IgnoreReason::UnsafeGiaddr | IgnoreReason::UnsafeSource => {
                let (field, addr) = match (reason, client) {
                    (IgnoreReason::UnsafeGiaddr, Some(c)) => ("giaddr", c.giaddr),
                    _ => ("source", *source.ip()),
                };
                let kind = match check_destination(addr, ctx.server_ip, ctx.local) {
                    Err(k) => k.label(),
                    Ok(()) => "port_zero",
                };
                warn!(
                    reason = reason.label(),
                    %source,
                    %addr,
                    kind,
                    %vendor_class,
                    suppressed,
                    "ignored: refusing to send a reply to the {field} address (not a unicast address of another host)"
                );
            }
            IgnoreReason::RateLimitedMac
            | IgnoreReason::RateLimitedIp
            | IgnoreReason::RateLimitedRelay => {
                warn!(
                    reason = reason.label(),
                    %source,
                    %vendor_class,
                    suppressed,
                    "ignored: over the dhcp.rate_limit budget; dropping this client's datagrams until it refills (logged once per run)"
                );
            }
            _ => {
                let why = match reason {
                    IgnoreReason::UnsupportedArchNoBinary => {
                        "arm64 firmware and no dhcp.arm64_binary configured: not answering rather than sending a dead end"
                    }
                    IgnoreReason::UnsupportedArch => {
                        "no architecture in option 93 that Kindling boots"
                    }
                    IgnoreReason::NoArch => "PXE vendor class without option 93",
                    IgnoreReason::UnknownBootItem => {
                        "a port-4011 request for a boot item that dhcp.pxe_menu does not have"
                    }
                    IgnoreReason::RuleIgnore => "a rule with target = \"ignore\" matched",
                    IgnoreReason::LocalBoot => {
                        "a rule with target = \"local_boot\" matched: staying silent so the firmware boots locally"
                    }
                    _ => "",
                };
                info!(
                    reason = reason.label(),
                    %source,
                    %vendor_class,
                    %user_class,
                    arch = %arches,
                    suppressed,
                    "ignored: {why}"
                );
            }
        }
    }

    /// Sends every pending reply, as few system calls as the kernel allows; empties `pending`.
    async fn flush(&self, pending: &mut Vec<Pending>) {
        if let Some(raw) = &self.raw {
            self.send_broadcasts(raw, pending);
        }
        let fd = self.socket.as_raw_fd();
        let mut start = 0;
        while start < pending.len() {
            let rest = &pending[start..];
            let packets: Vec<(&[u8], SocketAddrV4)> = rest
                .iter()
                .map(|p| (p.reply.packet.as_slice(), p.reply.dest))
                .collect();
            match self
                .socket
                .try_io(Interest::WRITABLE, || send_batch(fd, &packets))
            {
                Ok(n) if n > 0 => {
                    for p in &rest[..n] {
                        self.sent(p);
                    }
                    start += n;
                }
                Ok(_) => start += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Send buffer full: wait for room for this one, then batch again.
                    let p = &rest[0];
                    match self.socket.send_to(&p.reply.packet, p.reply.dest).await {
                        Ok(_) => self.sent(p),
                        Err(e) => self.send_failed(p, &e),
                    }
                    start += 1;
                }
                Err(e) => {
                    // The first datagram was refused (no route, ...): count it, go on.
                    self.send_failed(&rest[0], &e);
                    start += 1;
                }
            }
        }
        pending.clear();
    }

    /// Sends the broadcast replies of `pending` on the packet socket and removes those the
    /// kernel took; anything else (unicast, or a send error) stays for the UDP socket.
    fn send_broadcasts(&self, raw: &RawSender, pending: &mut Vec<Pending>) {
        let (bcast, rest): (Vec<Pending>, Vec<Pending>) = pending
            .drain(..)
            .partition(|p| *p.reply.dest.ip() == Ipv4Addr::BROADCAST);
        *pending = rest;
        if bcast.is_empty() {
            return;
        }
        let mut frames = Frames::default();
        for p in &bcast {
            if !raw.push_frame(
                &mut frames,
                self.port.number(),
                p.reply.dest,
                &p.reply.packet,
            ) {
                break;
            }
        }
        let sent = match raw.send_batch(&frames) {
            Ok(n) => n,
            Err(e) => {
                debug!(iface = %self.iface, error = %e, "packet socket send failed; using UDP");
                0
            }
        };
        let mut bcast = bcast.into_iter();
        for p in bcast.by_ref().take(sent) {
            self.sent(&p);
        }
        pending.extend(bcast);
    }

    fn sent(&self, p: &Pending) {
        let counter = match p.reply.message_type {
            wire::MessageType::Offer => &self.stats.0.offers,
            wire::MessageType::Nak => &self.stats.0.naks,
            _ => &self.stats.0.acks,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let Some(c) = &p.client else { return };
        let reply = &p.reply;
        p.span.in_scope(|| {
            info!(
                reply = reply.message_type.label(),
                firmware = %c.firmware.map(|f| f.label()).unwrap_or("-"),
                arch = %c.arch.map(describe_arch).unwrap_or_else(|| "-".into()),
                file = %reply.file,
                dest = %reply.dest,
                rule = %reply.rule.as_deref().unwrap_or("-"),
                lease = %reply.lease.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
                "{}",
                if reply.lease.is_some() || reply.message_type == wire::MessageType::Nak {
                    "DHCP reply"
                } else {
                    "proxy DHCP reply"
                }
            )
        });
        // TFTP names are keyed as they are; HTTP Boot URLs by their `/tftp/<name>` path.
        let key = match reply.file.split_once("://") {
            Some((_, rest)) => rest.find("/tftp/").map(|i| &rest[i..]),
            None => Some(reply.file.as_str()),
        };
        if let Some(why) = key.and_then(|k| self.shared.unserved.get()?.get(k))
            && let Some(suppressed) = lock(&self.shared.log_gate).allow(Instant::now())
        {
            p.span.in_scope(|| {
                warn!(
                    file = %reply.file,
                    suppressed,
                    "handed out a boot file that nothing serves: {why}; this client will fail to fetch it"
                )
            });
        }
        self.observer.answered(&AnsweredEvent {
            iface: &self.iface,
            port: self.port,
            server_ip: self.server_ip,
            client: c,
            reply,
        });
    }

    fn send_failed(&self, p: &Pending, e: &io::Error) {
        self.stats.0.send_errors.fetch_add(1, Ordering::Relaxed);
        p.span.in_scope(
            || warn!(dest = %p.reply.dest, error = %e, "sending proxy DHCP reply failed"),
        );
    }
}
