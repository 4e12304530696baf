//! tokio shell around the sans-I/O core.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, field, info, info_span, warn};

use crate::config::{ConfigError, TftpConfig, blksize_for_mtu};
use crate::limits::{Admission, SlotId, Slots};
use crate::packet::{self, ErrorCode, Mode, Packet, Request};
use crate::pktinfo;
use crate::source::{FileSource, TftpError};
use crate::stats::{Refusal, TftpObserver, TftpStats};
use crate::transfer::{Outcome, Status, Transfer, TransferParams};
use kindling_guard::{Buckets, Budget, LogGate, esc};

/// Errors from [`TftpServer::bind`] and [`TftpServer::run`].
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot bind TFTP socket on udp {addr}: {source}{hint}")]
    Bind {
        addr: SocketAddr,
        source: io::Error,
        hint: &'static str,
    },
    #[error("tftp socket error: {0}")]
    Io(#[from] io::Error),
}

type Routes = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>;

struct Shared {
    socket: Arc<UdpSocket>,
    local_addr: SocketAddr,
    /// The listener is on a wildcard address: replies come from the address each
    /// request was sent to.
    answer_from_asked: bool,
    params: TransferParams,
    clamp_to_path_mtu: bool,
    single_port: bool,
    source: Arc<dyn FileSource>,
    observer: Option<Arc<dyn TftpObserver>>,
    stats: Arc<TftpStats>,
    routes: Routes,
    /// Transfer slots (per-client limit, eviction): pure state, see `limits`.
    slots: Mutex<Slots>,
    /// How to stop the transfer in each slot when it is evicted.
    evictions: Mutex<HashMap<SlotId, CancellationToken>>,
    /// Per-address request rate limit (datagrams to the listening port).
    rate: Mutex<Buckets<IpAddr>>,
    rate_budget: Budget,
    /// Log lines for requests dropped while full: one, then one per 10 s with a count.
    busy_log: Mutex<LogGate>,
}

/// Addresses tracked by the request rate limiter at most.
const RATE_TABLE_ENTRIES: usize = 4096;

/// A transfer is evictable once it has gone this long without an advancing ACK.
pub const EVICT_MIN_IDLE: Duration = Duration::from_secs(1);

/// The slot tables store progress at most this often per transfer.
const TOUCH_EVERY: Duration = Duration::from_millis(100);
/// How often the rate limiter forgets the buckets that refilled (`Buckets::sweep`).
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// A bound, not yet running, TFTP server.
pub struct TftpServer {
    shared: Shared,
}

impl std::fmt::Debug for TftpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TftpServer")
            .field("local_addr", &self.shared.local_addr)
            .field("single_port", &self.shared.single_port)
            .finish()
    }
}

impl TftpServer {
    /// Validate `config` and bind the listening socket on `addr` (normally `config.listen`).
    /// Files come from `config.file_source()` unless replaced by [`TftpServer::with_source`].
    pub async fn bind(config: TftpConfig, addr: SocketAddr) -> Result<Self, ServerError> {
        config.validate()?;
        let socket = UdpSocket::bind(addr).await.map_err(|source| {
            let hint = match source.kind() {
                io::ErrorKind::AddrInUse => {
                    " (another TFTP server is using the port: dnsmasq with enable-tftp, in.tftpd/tftpd-hpa or atftpd?)"
                }
                io::ErrorKind::PermissionDenied => {
                    " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
                }
                _ => "",
            };
            ServerError::Bind { addr, source, hint }
        })?;
        // Room for a rack's RRQs arriving at once.
        if let Err(short) =
            kindling_guard::grow_receive_buffer(&socket, kindling_guard::BURST_BUFFER)
        {
            warn!(%addr, "{short}");
        }
        let local_addr = socket.local_addr()?;
        // On a wildcard address, learn which local address each request was sent to
        // and answer from it (see `pktinfo`).
        let answer_from_asked = local_addr.ip().is_unspecified();
        if answer_from_asked {
            pktinfo::enable(&socket)?;
        }
        let source: Arc<dyn FileSource> = Arc::new(config.file_source());
        Ok(Self {
            shared: Shared {
                socket: Arc::new(socket),
                local_addr,
                answer_from_asked,
                params: config.transfer_params(),
                clamp_to_path_mtu: config.clamp_to_path_mtu,
                single_port: config.single_port,
                source,
                observer: None,
                stats: Arc::new(TftpStats::default()),
                routes: Arc::default(),
                slots: Mutex::new(Slots::new(
                    config.max_transfers,
                    config.max_transfers_per_client,
                    EVICT_MIN_IDLE,
                )),
                evictions: Mutex::default(),
                rate: Mutex::new(Buckets::new(RATE_TABLE_ENTRIES)),
                rate_budget: config.rate_budget(),
                busy_log: Mutex::new(LogGate::new(1, 0.1)),
            },
        })
    }

    /// Serve files from `source` instead of the configured directories.
    pub fn with_source(mut self, source: Arc<dyn FileSource>) -> Self {
        self.shared.source = source;
        self
    }

    /// Report transfer starts/ends to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn TftpObserver>) -> Self {
        self.shared.observer = Some(observer);
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Live counters; keep the Arc to read them while and after the server runs.
    pub fn stats(&self) -> Arc<TftpStats> {
        self.shared.stats.clone()
    }

    /// Serve until `cancel` fires, then stop running transfers and return.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), ServerError> {
        let shared = Arc::new(self.shared);
        let mut tasks = JoinSet::new();
        let mut buf = vec![0u8; 65536];
        info!(addr = %shared.local_addr, single_port = shared.single_port, "tftp server listening");
        let mut sweep =
            tokio::time::interval_at(tokio::time::Instant::now() + SWEEP_EVERY, SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = sweep.tick() => {
                    if let Ok(mut r) = shared.rate.lock() {
                        r.sweep(Instant::now(), |_| shared.rate_budget);
                    }
                }
                r = recv(&shared, &mut buf) => match r {
                    Ok((n, peer, local)) => {
                        let data = buf.get(..n).unwrap_or_default();
                        let to = To { peer, local };
                        handle_datagram(&shared, &mut tasks, &cancel, data, to).await;
                    }
                    Err(e) => debug!(error = %e, "tftp recv_from failed"),
                },
            }
        }
        while tasks.join_next().await.is_some() {}
        info!("tftp server stopped");
        Ok(())
    }
}

/// Where a reply goes: the client, and the local address it sent its request to
/// (`None` when the listener is bound to one address, which is then the source).
#[derive(Debug, Clone, Copy)]
struct To {
    peer: SocketAddr,
    local: Option<IpAddr>,
}

async fn recv(shared: &Shared, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<IpAddr>)> {
    if shared.answer_from_asked {
        pktinfo::recv_from(&shared.socket, buf).await
    } else {
        let (n, peer) = shared.socket.recv_from(buf).await?;
        Ok((n, peer, None))
    }
}

/// The address a client is counted under (IPv4-mapped IPv6 as IPv4).
fn client_ip(peer: SocketAddr) -> IpAddr {
    peer.ip().to_canonical()
}

async fn handle_datagram(
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    cancel: &CancellationToken,
    data: &[u8],
    to: To,
) {
    let peer = to.peer;
    let stats = &shared.stats;
    if shared.single_port {
        let route = shared
            .routes
            .lock()
            .ok()
            .and_then(|m| m.get(&peer).cloned());
        if let Some(tx) = route {
            // Packets of a running transfer (a repeated RRQ is dropped by the transfer).
            if tx.try_send(data.to_vec()).is_err() {
                TftpStats::inc(&stats.unexpected);
            }
            return;
        }
    }
    // Everything else sent to the listening port is a request (or junk). A source that
    // cannot be answered (multicast, broadcast, port 0: spoofed) is dropped unanswered.
    if !kindling_guard::answerable(peer) {
        TftpStats::inc(&stats.malformed);
        debug!(%peer, "tftp datagram dropped: its source address cannot be answered");
        return;
    }
    // Charge the client's bucket; over the limit, drop it without an answer (no
    // reflection).
    let allowed = shared
        .rate
        .lock()
        .map(|mut r| {
            r.take(client_ip(peer), shared.rate_budget, Instant::now())
                .allowed()
        })
        .unwrap_or(true);
    if !allowed {
        TftpStats::inc(&stats.rate_limited);
        debug!(%peer, "tftp datagram dropped: client over its request rate limit");
        return;
    }
    let pkt = match packet::parse(data) {
        Ok(p) => p,
        Err(e) => {
            TftpStats::inc(&stats.malformed);
            debug!(%peer, error = %esc(&e), "dropped malformed tftp datagram");
            return;
        }
    };
    match pkt {
        Packet::Rrq(req) => {
            TftpStats::inc(&stats.requests);
            if req.mode == Mode::Mail {
                refused(
                    shared,
                    peer,
                    &req.filename,
                    Refusal::MailMode,
                    "mail mode is not supported",
                );
                send_listener(
                    shared,
                    to,
                    ErrorCode::IllegalOperation,
                    "mail mode not supported",
                )
                .await;
                TftpStats::inc(&stats.unexpected);
                return;
            }
            let admission = shared
                .slots
                .lock()
                .map(|mut s| s.admit(client_ip(peer), Instant::now()))
                .unwrap_or(Admission::Busy);
            let slot = match admission {
                Admission::Granted(id) => id,
                Admission::Evicted { granted, victim } => {
                    TftpStats::inc(&stats.evicted);
                    let token = shared
                        .evictions
                        .lock()
                        .ok()
                        .and_then(|mut m| m.remove(&victim));
                    if let Some(t) = token {
                        t.cancel();
                    }
                    info!(%peer, file = %esc(&req.filename), "tftp server full: evicting the longest-idle transfer for a new client");
                    granted
                }
                Admission::ClientLimit => {
                    warn!(%peer, file = %esc(&req.filename), "tftp request refused: too many transfers from this address");
                    refused(
                        shared,
                        peer,
                        &req.filename,
                        Refusal::ClientLimit,
                        "too many transfers from this address (max_transfers_per_client)",
                    );
                    send_listener(
                        shared,
                        to,
                        ErrorCode::NotDefined,
                        "Too many transfers from your address, try again later",
                    )
                    .await;
                    return;
                }
                Admission::Busy => {
                    // No answer: PXE ROMs end the boot on an ERROR but send the RRQ again
                    // when nothing comes back (as dnsmasq drops requests over tftp-max).
                    let gate = shared
                        .busy_log
                        .lock()
                        .ok()
                        .and_then(|mut g| g.allow(Instant::now()));
                    if let Some(suppressed) = gate {
                        warn!(%peer, file = %esc(&req.filename), suppressed, "tftp server full: request dropped, the client will send it again");
                    }
                    refused(
                        shared,
                        peer,
                        &req.filename,
                        Refusal::Busy,
                        "server busy (max_transfers transfers running): dropped, the client retries",
                    );
                    return;
                }
            };
            let evict = CancellationToken::new();
            if let Ok(mut m) = shared.evictions.lock() {
                m.insert(slot, evict.clone());
            }
            let guard = SlotGuard {
                shared: shared.clone(),
                id: slot,
            };
            let link = if shared.single_port {
                let (tx, rx) = mpsc::channel(256);
                if let Ok(mut m) = shared.routes.lock() {
                    m.insert(peer, tx);
                }
                Link::Shared {
                    socket: shared.socket.clone(),
                    to,
                    rx,
                }
            } else {
                Link::Pending
            };
            let shared = shared.clone();
            let cancel = cancel.clone();
            tasks.spawn(run_transfer(shared, req, to, link, guard, cancel, evict));
        }
        Packet::Wrq(req) => {
            info!(%peer, file = %esc(&req.filename), "tftp write request refused: read-only server");
            refused(
                shared,
                peer,
                &req.filename,
                Refusal::WriteRequest,
                "write request (WRQ): the server is read-only",
            );
            send_listener(shared, to, ErrorCode::AccessViolation, "Read-only server").await;
        }
        _ => {
            TftpStats::inc(&stats.unexpected);
            debug!(%peer, "dropped tftp datagram for no transfer");
        }
    }
}

fn refused(shared: &Shared, peer: SocketAddr, file: &str, kind: Refusal, reason: &str) {
    shared.stats.refusal(kind);
    if let Some(o) = &shared.observer {
        o.request_refused(peer, file, kind, reason);
    }
}

async fn send_listener(shared: &Shared, to: To, code: ErrorCode, msg: &str) {
    let pkt = packet::encode_error(code, msg);
    match pktinfo::send_to(&shared.socket, &pkt, to.peer, to.local).await {
        Ok(_) => {
            TftpStats::inc(&shared.stats.packets_sent);
            TftpStats::add(&shared.stats.bytes_sent, pkt.len() as u64);
        }
        Err(e) => debug!(peer = %to.peer, error = %e, "cannot send tftp error"),
    }
}

/// Holds a transfer slot; frees it (and its eviction handle) when dropped.
struct SlotGuard {
    shared: Arc<Shared>,
    id: SlotId,
}

impl SlotGuard {
    /// The transfer made progress at `now`.
    fn touch(&self, now: Instant) {
        if let Ok(mut s) = self.shared.slots.lock() {
            s.touch(self.id, now);
        }
    }
}

impl SlotGuard {
    /// Free the slot now (idempotent; dropping the guard frees it too).
    fn release(&self) {
        if let Ok(mut s) = self.shared.slots.lock() {
            s.release(self.id);
        }
        if let Ok(mut m) = self.shared.evictions.lock() {
            m.remove(&self.id);
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.release();
    }
}

enum Link {
    /// Classic mode before the per-transfer socket exists.
    Pending,
    /// Classic mode: own ephemeral socket connected to the peer.
    Own(UdpSocket),
    /// Single-port mode: listener socket, packets routed by the listener.
    Shared {
        socket: Arc<UdpSocket>,
        to: To,
        rx: mpsc::Receiver<Vec<u8>>,
    },
}

impl Link {
    async fn send(&self, pkt: &[u8]) -> io::Result<()> {
        match self {
            Link::Pending => Ok(()),
            Link::Own(s) => s.send(pkt).await.map(|_| ()),
            Link::Shared { socket, to, .. } => pktinfo::send_to(socket, pkt, to.peer, to.local)
                .await
                .map(|_| ()),
        }
    }

    /// Receive one datagram into `buf`; Ok(None) if the link closed.
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self {
            Link::Pending => std::future::pending().await,
            Link::Own(s) => s.recv(buf).await.map(Some),
            Link::Shared { rx, .. } => Ok(rx.recv().await.map(|d| {
                let n = d.len().min(buf.len());
                if let (Some(dst), Some(src)) = (buf.get_mut(..n), d.get(..n)) {
                    dst.copy_from_slice(src);
                }
                n
            })),
        }
    }
}

/// Kernel path MTU towards `peer` (IP_MTU on a connected UDP socket).
fn path_mtu(local: IpAddr, peer: SocketAddr) -> Option<u32> {
    let s = std::net::UdpSocket::bind((local, 0)).ok()?;
    s.connect(peer).ok()?;
    socket_mtu(&s, peer.is_ipv6())
}

fn socket_mtu(s: &impl std::os::fd::AsRawFd, ipv6: bool) -> Option<u32> {
    let (level, opt) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU)
    } else {
        (libc::IPPROTO_IP, libc::IP_MTU)
    };
    let mut mtu: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid fd, pointer to a c_int and its size.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            level,
            opt,
            (&mut mtu as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0 && mtu > 0).then_some(mtu as u32)
}

async fn run_transfer(
    shared: Arc<Shared>,
    req: Request,
    to: To,
    link: Link,
    slot: SlotGuard,
    cancel: CancellationToken,
    evict: CancellationToken,
) {
    let peer = to.peer;
    let span = info_span!(
        "tftp_transfer",
        %peer,
        file = %esc(&req.filename),
        blksize = field::Empty,
        windowsize = field::Empty
    );
    let ended = transfer_inner(&shared, &req, to, link, &slot, cancel, evict)
        .instrument(span.clone())
        .await;
    // Free the slot and the route before reporting, so a client that retries
    // right after its last ACK is never told "busy".
    if shared.single_port
        && let Ok(mut m) = shared.routes.lock()
    {
        m.remove(&peer);
    }
    drop(slot);
    if let Some(e) = ended {
        let _g = span.enter();
        report(&shared, &req.filename, peer, e);
    }
}

struct Ended {
    outcome: Outcome,
    counters: crate::transfer::TransferCounters,
    bytes: u64,
    elapsed: std::time::Duration,
}

fn report(shared: &Shared, file: &str, peer: SocketAddr, e: Ended) {
    let stats = &shared.stats;
    let Ended {
        outcome,
        counters: c,
        bytes,
        elapsed,
    } = e;
    account(stats, &c, &outcome);
    TftpStats::add(&stats.file_bytes, bytes);
    let ms = elapsed.as_millis() as u64;
    if outcome.is_success() {
        info!(bytes, ms, retransmits = c.retransmits, outcome = %esc(&outcome), "tftp transfer finished");
    } else {
        warn!(bytes, ms, retransmits = c.retransmits, outcome = %esc(&outcome), "tftp transfer failed");
    }
    if let Some(o) = &shared.observer {
        o.transfer_finished(peer, file, bytes, elapsed, &outcome);
    }
}

/// Largest datagram a transfer reads from its client.
const TRANSFER_RECV_MAX: usize = 2048;

async fn transfer_inner(
    shared: &Shared,
    req: &Request,
    to: To,
    mut link: Link,
    slot: &SlotGuard,
    cancel: CancellationToken,
    evict: CancellationToken,
) -> Option<Ended> {
    let peer = to.peer;
    let stats = &shared.stats;
    let mut params = shared.params.clone();
    // The transfer's own address: the one the client asked, else the listener's.
    let local_ip = match (to.local, shared.local_addr) {
        (None, l) => l.ip(),
        // An IPv4 request on a dual-stack listener: stay in the listener's family.
        (Some(IpAddr::V4(a)), SocketAddr::V6(_)) => IpAddr::V6(a.to_ipv6_mapped()),
        (Some(a), _) => a,
    };
    if let Link::Pending = link {
        let bind_ip = local_ip;
        let sock = match UdpSocket::bind((bind_ip, 0)).await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot open transfer socket");
                TftpStats::inc(&stats.io_errors);
                return None;
            }
        };
        if let Err(e) = sock.connect(peer).await {
            warn!(error = %e, "cannot connect transfer socket");
            TftpStats::inc(&stats.io_errors);
            return None;
        }
        if shared.clamp_to_path_mtu
            && let Some(mtu) = socket_mtu(&sock, peer.is_ipv6())
        {
            params.max_blksize = params.max_blksize.min(blksize_for_mtu(mtu, peer.is_ipv6()));
        }
        link = Link::Own(sock);
    } else if shared.clamp_to_path_mtu
        && let Some(mtu) = path_mtu(local_ip, peer)
    {
        params.max_blksize = params.max_blksize.min(blksize_for_mtu(mtu, peer.is_ipv6()));
    }

    let opened = match shared.source.open(&req.filename, peer) {
        Ok(o) => o,
        Err(e) => {
            if let TftpError::Io(_) = &e {
                TftpStats::inc(&stats.io_errors);
            }
            warn!(reason = %esc(&e), "tftp request refused");
            let kind = match &e {
                TftpError::NotFound(_) => Refusal::NotFound,
                TftpError::AccessViolation(_) => Refusal::AccessViolation,
                TftpError::Io(_) => Refusal::IoError,
            };
            refused(shared, peer, &req.filename, kind, &e.to_string());
            // Free the slot before the client hears the refusal: a client asking for
            // its next name at once must not be told "busy".
            slot.release();
            let pkt = packet::encode_error(e.code(), e.client_message());
            if link.send(&pkt).await.is_ok() {
                TftpStats::inc(&stats.packets_sent);
                TftpStats::add(&stats.bytes_sent, pkt.len() as u64);
            }
            return None;
        }
    };
    let started = Instant::now();
    let (mut transfer, mut step) =
        Transfer::start(&req.options, opened.reader, opened.size, params, started);
    let neg = transfer.negotiated().clone();
    let span = tracing::Span::current();
    span.record("blksize", neg.blksize);
    span.record("windowsize", neg.windowsize);
    // The OACK holds only option names the server knows and values it chose.
    debug!(origin = %esc(&opened.origin), size = ?opened.size, oack = ?neg.oack, "tftp transfer started");
    if let Some(o) = &shared.observer {
        o.transfer_started(peer, &req.filename, opened.size);
    }
    // A client sends a transfer ACKs (4 bytes) and ERRORs: anything longer is cut (and
    // then malformed), so 1,000 transfers hold 2 MB of buffers, not 64.
    let mut buf = vec![0u8; TRANSFER_RECV_MAX];
    let mut progress = 0;
    let mut touched = started;
    let outcome = loop {
        let mut gone = None;
        for p in &step.send {
            if let Err(e) = link.send(p).await {
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    gone = Some(e.to_string());
                    break;
                }
                debug!(error = %e, "tftp send failed");
            }
        }
        if let Some(g) = gone {
            break Outcome::PeerGone(g);
        }
        let deadline = match step.status {
            Status::Finished(o) => break o,
            Status::Wait(d) => d,
        };
        tokio::select! {
            _ = cancel.cancelled() => {
                let _ = link.send(&packet::encode_error(ErrorCode::NotDefined, "Server shutting down")).await;
                break Outcome::Cancelled;
            }
            _ = evict.cancelled() => {
                let _ = link.send(&packet::encode_error(ErrorCode::NotDefined, "Server busy, transfer stopped")).await;
                break Outcome::Evicted;
            }
            r = link.recv(&mut buf) => match r {
                Ok(Some(n)) => {
                    let data = buf.get(..n).unwrap_or_default();
                    let now = Instant::now();
                    step = transfer.on_packet(data, now);
                    let p = transfer.counters().progress;
                    if p != progress {
                        progress = p;
                        if now.saturating_duration_since(touched) >= TOUCH_EVERY {
                            touched = now;
                            slot.touch(now);
                        }
                    }
                }
                Ok(None) => break Outcome::Cancelled,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break Outcome::PeerGone(e.to_string()),
                Err(e) => {
                    debug!(error = %e, "tftp recv failed");
                    step = transfer.on_timeout(Instant::now());
                }
            },
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                step = transfer.on_timeout(Instant::now());
            }
        }
    };
    Some(Ended {
        outcome,
        counters: transfer.counters(),
        bytes: transfer.delivered(),
        elapsed: started.elapsed(),
    })
}

fn account(stats: &TftpStats, c: &crate::transfer::TransferCounters, outcome: &Outcome) {
    TftpStats::add(&stats.bytes_sent, c.bytes_sent);
    TftpStats::add(&stats.packets_sent, c.packets_sent);
    TftpStats::add(&stats.retransmits, c.retransmits);
    TftpStats::add(&stats.stale_acks, c.stale_acks);
    TftpStats::add(&stats.malformed, c.malformed);
    TftpStats::add(&stats.unexpected, c.unexpected);
    stats.ended(outcome);
}
