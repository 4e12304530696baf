//! The accept loop every TCP listener of Kindling runs ([`accept_with`]): the boot
//! listener (its own HTTP/1.1, [`crate::conn`]), and over hyper ([`accept_loop`]) the admin
//! listener ([`crate::server`]) and the gRPC API's HTTP/2 listener (kindling-api).
//!
//! One connection policy ([`Limits`]): a cap on connections per client address and in
//! total (new connections over a cap are closed at once and counted), a bound on idle
//! keep-alive connections (HTTP/1: hyper's header read timeout runs from the moment a
//! connection waits for its next request; HTTP/2: keep-alive pings), a bound on writes
//! that make no progress, an optional TLS handshake (bounded by the idle timeout), a bound
//! on each connection's queue of bytes not yet sent ([`SEND_QUEUE_LOWAT`]), and an accept
//! loop that backs off instead of spinning or dying when the process runs out of
//! descriptors.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use kindling_guard::{ClientKey, Counts, Full, LogGate};

use crate::body::Body;
use crate::counts::Stats;
use crate::shared::MAX_HEAD_BYTES;

/// Connection policy of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Open connections per client (an IPv4 address, or an IPv6 /64); 0: no cap.
    pub per_client: usize,
    /// Open connections in total; 0: no cap.
    pub total: usize,
    /// A connection waiting for a request head (the first one, or the next one on a
    /// kept-alive connection) longer than this is closed.
    pub idle_timeout: Duration,
    /// A write that makes no progress for this long closes the connection.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_client: 64,
            total: 0,
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// Descriptors kept for everything that is not an HTTP connection or a TFTP transfer
    /// (DHCP sockets, the journal, the log, fetches; `kindling serve` sets TFTP's aside
    /// before calling [`Self::total_for_fd_limit`]).
    pub const FD_RESERVE: u64 = 256;

    /// A total cap that keeps a connection and the file it serves within `nofile`
    /// descriptors, with [`Self::FD_RESERVE`] spare.
    pub fn total_for_fd_limit(nofile: u64) -> usize {
        let cap = nofile.saturating_sub(Self::FD_RESERVE) / 2;
        cap.clamp(16, 1 << 20) as usize
    }
}

/// Why a new connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PerClient,
    Total,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::PerClient => "per_client",
            Refusal::Total => "total",
        }
    }
}

impl From<Full> for Refusal {
    fn from(f: Full) -> Refusal {
        match f {
            Full::Key => Refusal::PerClient,
            Full::Total => Refusal::Total,
        }
    }
}

/// Open connections per client and in total (`kindling_guard::Counts`); a connection
/// holds its place until it is dropped.
pub fn conn_table(limits: &Limits) -> Counts<ClientKey> {
    Counts::new(limits.per_client, limits.total)
}

/// Back-off after a failed `accept`: descriptor exhaustion waits longer each time (up to
/// 1 s) so that the loop neither spins nor dies; other errors (a connection reset before
/// it was accepted) retry at once.
fn accept_backoff(e: &io::Error, previous: Duration) -> Duration {
    let exhausted = matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    );
    if exhausted {
        (previous * 2).clamp(Duration::from_millis(50), Duration::from_secs(1))
    } else {
        Duration::ZERO
    }
}

/// Bytes a connection may hold queued in the kernel beyond what is in flight
/// (`TCP_NOTSENT_LOWAT`): a write, or a `sendfile(2)`, stops once the socket holds this
/// much not yet sent, and the socket is writable again when it holds less. In flight stays
/// the kernel's business (the window and congestion control), so a fast client is not
/// slowed; what is bounded is the queue behind it. Without it each of a storm's thousand
/// downloads lets its send buffer grow to `net.ipv4.tcp_wmem`'s maximum (4 MiB), and the
/// sum pushes the kernel into TCP memory pressure (`net.ipv4.tcp_mem`), where every socket
/// pays (bench/storm/README.md). 512 KiB is two of iPXE's largest windows; a smaller
/// queue wakes the sender more often per byte (128 KiB cost a third more CPU in the
/// storm and 1.6x nginx's CPU per GiB in bench/cache at 32 connections). This is the
/// floor: while a file body is sent, its connection may queue its share of a budget
/// that all file bodies share (`queue`), up to 4 MiB when few are sent at once, or the
/// whole file when it is at most 1 MiB.
pub const SEND_QUEUE_LOWAT: u32 = 512 * 1024;

/// Sets [`SEND_QUEUE_LOWAT`] on an accepted connection (best effort: a kernel without
/// the option keeps its default).
pub(crate) fn bound_send_queue(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_tcp_notsent_lowat(SEND_QUEUE_LOWAT);
}

/// What serves the requests of one connection, answering with bodies of type `B`
/// ([`Body`] for the HTTP listeners; gRPC's own body type for the API).
pub trait ConnService<B = Body>:
    hyper::service::Service<
        Request<Incoming>,
        Response = Response<B>,
        Error = std::convert::Infallible,
        Future: Send,
    > + Send
    + 'static
{
}

impl<S, B> ConnService<B> for S where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<B>,
            Error = std::convert::Infallible,
            Future: Send,
        > + Send
        + 'static
{
}

/// A response body any listener can send.
pub trait ConnBody:
    hyper::body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Send
    + 'static
{
}

impl<B> ConnBody for B where
    B: hyper::body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static
{
}

/// How a listener speaks: HTTP/1 (the boot and admin listeners) or HTTP/2 (gRPC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Http1,
    /// HTTP/2 with at most this many concurrent streams (calls) per connection.
    Http2 {
        max_concurrent_streams: u32,
    },
}

/// One listener's settings for [`accept_loop`].
pub struct Listening {
    /// `http`, `admin`, `rpc`: in log lines and metrics.
    pub name: &'static str,
    pub limits: Limits,
    pub stats: Arc<Stats>,
    /// TLS (the acceptor's configuration decides whether client certificates are
    /// required); the handshake must finish within `limits.idle_timeout`.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub wire: Wire,
}

/// Accepts connections on `listener` until `cancel` fires, serving each with the hyper
/// service `make_svc(peer, local)` returns (HTTP/1 or HTTP/2, TLS when configured), then
/// drains them (10 s at most).
pub async fn accept_loop<Mk, S, B>(
    listener: TcpListener,
    how: Listening,
    cancel: CancellationToken,
    make_svc: Mk,
) -> io::Result<()>
where
    Mk: Fn(SocketAddr, SocketAddr) -> S,
    S: ConnService<B>,
    B: ConnBody,
{
    let Listening {
        name,
        limits,
        stats,
        tls,
        wire,
    } = how;
    let conn_stats = stats.clone();
    let conn_limits = limits.clone();
    let serve = move |stream: TcpStream, peer: SocketAddr, local: SocketAddr, stop| {
        let svc = make_svc(peer, local);
        let stats = conn_stats.clone();
        let limits = conn_limits.clone();
        let tls = tls.clone();
        async move {
            let io = Deadline::new(stream, limits.write_timeout, stats.clone());
            let r = match tls {
                None => serve_conn(io, svc, &limits, wire, stop).await,
                Some(acceptor) => {
                    let hs = tokio::time::timeout(limits.idle_timeout, acceptor.accept(io)).await;
                    match hs {
                        Ok(Ok(tls_io)) => serve_conn(tls_io, svc, &limits, wire, stop).await,
                        Ok(Err(e)) => {
                            stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(
                                target: "kindling::http", listener = name, peer = ?peer,
                                error = %e, "TLS handshake refused"
                            );
                            Ok(())
                        }
                        Err(_) => {
                            stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(
                                target: "kindling::http", listener = name, peer = ?peer,
                                "TLS handshake not finished in time"
                            );
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = r {
                tracing::debug!(peer = ?peer, error = %e, "connection ended with an error");
            }
        }
    };
    accept_with(listener, name, &limits, stats, cancel, serve).await
}

/// Accepts connections on `listener` until `cancel` fires, within `limits` (connections
/// per client and in total), and runs `serve(stream, peer, local, stop)` for each in a task
/// of its own; `stop` fires at shutdown, when a connection should finish what it is sending
/// and close. Then waits for the connections (10 s at most).
pub async fn accept_with<F, Fut>(
    listener: TcpListener,
    name: &'static str,
    limits: &Limits,
    stats: Arc<Stats>,
    cancel: CancellationToken,
    serve: F,
) -> io::Result<()>
where
    F: Fn(TcpStream, SocketAddr, SocketAddr, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let tracker = tokio_util::task::TaskTracker::new();
    let table = conn_table(limits);
    // One line, then at most one per 10 s saying how many were held back.
    let mut refusal_log = LogGate::new(1, 0.1);
    let mut error_log = LogGate::new(1, 0.1);
    let mut backoff = Duration::ZERO;
    let fallback_local = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => {
                    backoff = Duration::ZERO;
                    x
                }
                Err(e) => {
                    stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    backoff = accept_backoff(&e, backoff);
                    if let Some(suppressed) = error_log.allow(Instant::now()) {
                        tracing::warn!(
                            target: "kindling::http", listener = name, error = %e, suppressed,
                            "accept failed; retrying"
                        );
                    }
                    if !backoff.is_zero() {
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                    }
                    continue;
                }
            },
        };
        let slot = match table.try_hold(ClientKey::of(peer.ip())) {
            Ok(s) => s,
            Err(why) => {
                let why = Refusal::from(why);
                match why {
                    Refusal::PerClient => &stats.refused_per_client,
                    Refusal::Total => &stats.refused_total,
                }
                .fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = refusal_log.allow(Instant::now()) {
                    tracing::warn!(
                        target: "kindling::http", listener = name, peer = ?peer,
                        reason = why.label(), per_client = limits.per_client, total = limits.total,
                        suppressed, "connection refused: too many open connections"
                    );
                }
                // Closed at once: no request is read from it.
                drop(stream);
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        bound_send_queue(&stream);
        let local = stream.local_addr().unwrap_or(fallback_local);
        let conn = serve(stream, peer, local, cancel.clone());
        let stats = stats.clone();
        stats.open.fetch_add(1, Ordering::Relaxed);
        tracker.spawn(async move {
            let _slot = slot;
            conn.await;
            stats.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            "some connections did not finish within 10 s of shutdown"
        );
    }
    Ok(())
}

async fn serve_conn<I, S, B>(
    io: I,
    svc: S,
    limits: &Limits,
    wire: Wire,
    stop: CancellationToken,
) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: ConnService<B>,
    B: ConnBody,
{
    if let Wire::Http2 {
        max_concurrent_streams,
    } = wire
    {
        let conn = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .max_concurrent_streams(max_concurrent_streams)
            .max_header_list_size(MAX_HEAD_BYTES as u32)
            // A peer that stops answering pings is dropped (HTTP/2 has no header read
            // timeout between calls).
            .keep_alive_interval(limits.idle_timeout)
            .keep_alive_timeout(limits.idle_timeout)
            .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
        tokio::pin!(conn);
        return tokio::select! {
            r = conn.as_mut() => r,
            _ = stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
    }
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD_BYTES)
        .timer(hyper_util::rt::TokioTimer::new())
        // Runs from the moment the connection waits for a request head: the first one
        // and every next one on a kept-alive connection (hyper re-arms it after each
        // request), so idle keep-alive connections are bounded too.
        .header_read_timeout(limits.idle_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

/// A stream whose writes fail with `TimedOut` when they make no progress for `timeout`
/// (a client that stopped reading a download or an event stream).
struct Deadline<S> {
    inner: S,
    timeout: Duration,
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    stats: Arc<Stats>,
}

impl<S> Deadline<S> {
    fn new(inner: S, timeout: Duration, stats: Arc<Stats>) -> Self {
        Deadline {
            inner,
            timeout,
            stall: None,
            stats,
        }
    }

    fn check<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => {
                if self.timeout.is_zero() {
                    return Poll::Pending;
                }
                let timeout = self.timeout;
                let stall = self
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stall.as_mut().poll(cx).is_ready() {
                    self.stall = None;
                    self.stats.write_timeouts.fetch_add(1, Ordering::Relaxed);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client did not read for the write timeout",
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.stall = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Deadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn limits(per_client: usize, total: usize) -> Limits {
        Limits {
            per_client,
            total,
            ..Limits::default()
        }
    }

    #[test]
    fn table_counts_per_client_and_in_total() {
        let t = conn_table(&limits(2, 3));
        let a = ClientKey::of("10.0.0.1".parse().unwrap_or_else(|_| unreachable!()));
        let b = ClientKey::of("10.0.0.2".parse().unwrap_or_else(|_| unreachable!()));
        let s1 = t.try_hold(a).unwrap_or_else(|_| unreachable!());
        let _s2 = t.try_hold(a).unwrap_or_else(|_| unreachable!());
        assert_eq!(
            t.try_hold(a).err().map(Refusal::from),
            Some(Refusal::PerClient)
        );
        let _s3 = t.try_hold(b).unwrap_or_else(|_| unreachable!());
        assert_eq!(t.try_hold(b).err().map(Refusal::from), Some(Refusal::Total));
        drop(s1);
        assert!(t.try_hold(a).is_ok(), "a place was freed");
        assert_eq!((t.held(), t.keys()), (2, 2));
        // 0: no cap.
        let t = conn_table(&limits(0, 0));
        let held: Vec<_> = (0..10_000).map(|_| t.try_hold(a).ok()).collect();
        assert!(held.iter().all(Option::is_some));
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap_or_else(|_| unreachable!());
        let b: IpAddr = "2001:db8:1:2:ffff::9"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(ClientKey::of(a), ClientKey::of(b));
        assert_ne!(ClientKey::of(a), ClientKey::of(c));
        let m: IpAddr = "::ffff:10.0.0.7".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(ClientKey::of(m), ClientKey::V4([10, 0, 0, 7]));
    }

    /// Every accepted connection carries the send-queue bound (read back from the socket
    /// the accept loop hands over, on loopback).
    #[tokio::test]
    async fn accepted_connections_bound_their_send_queue() {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let serve = move |stream: TcpStream, _, _, _| {
            let _ = tx.send(socket2::SockRef::from(&stream).tcp_notsent_lowat().ok());
            async move { drop(stream) }
        };
        let lim = Limits::default();
        let accept = accept_with(
            listener,
            "test",
            &lim,
            Arc::new(Stats::default()),
            cancel.clone(),
            serve,
        );
        let client = async {
            let _c = TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("connect: {e}"));
            let got = rx.recv().await;
            cancel.cancel();
            got
        };
        let (_, got) = tokio::join!(accept, client);
        assert_eq!(got, Some(Some(SEND_QUEUE_LOWAT)));
    }

    #[test]
    fn fd_budget() {
        assert_eq!(Limits::total_for_fd_limit(1024), 384);
        assert_eq!(Limits::total_for_fd_limit(100), 16);
        assert_eq!(Limits::total_for_fd_limit(1 << 30), 1 << 20);
    }

    #[test]
    fn backoff_grows_on_exhaustion_only() {
        let emfile = io::Error::from_raw_os_error(24);
        let b1 = accept_backoff(&emfile, Duration::ZERO);
        assert_eq!(b1, Duration::from_millis(50));
        let b2 = accept_backoff(&emfile, b1);
        assert_eq!(b2, Duration::from_millis(100));
        let mut b = b2;
        for _ in 0..20 {
            b = accept_backoff(&emfile, b);
        }
        assert_eq!(b, Duration::from_secs(1));
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(accept_backoff(&reset, b), Duration::ZERO);
    }
}
