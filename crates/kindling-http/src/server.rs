//! The accept loops: one hyper HTTP/1 connection per accepted socket, for the boot
//! listener ([`serve`], [`serve_with`]) and the admin listener ([`serve_admin`]).
//!
//! Both loops share the same connection policy ([`Limits`]): a cap on connections per
//! client address and in total (new connections over a cap are closed at once and
//! counted), a bound on idle keep-alive connections (hyper's header read timeout runs
//! from the moment a connection waits for its next request), a bound on writes that make
//! no progress, and an accept loop that backs off instead of spinning or dying when the
//! process runs out of descriptors.
//!
//! The admin listener answers only its own extensions (API, events, dashboard, metrics),
//! optionally behind a bearer token and/or TLS with required client certificates.
//!

use crate::endpoint::Endpoint;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use kindling_guard::{Counts, Full, LogGate};

use crate::body::{self, Body, Reply};
use crate::request::handle;
use crate::shared::Shared;
use crate::shared::{
    ExtRequest, Extension, MAX_HEAD_BYTES, MAX_URI_LEN, RequestObserver, RequestRecord,
};

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
    /// Descriptors kept for everything that is not an HTTP connection (TFTP transfers,
    /// DHCP sockets, the journal, files being served, the log).
    pub const FD_RESERVE: u64 = 256;

    /// A total cap that keeps a connection and the file it serves within `nofile`
    /// descriptors, with [`Self::FD_RESERVE`] spare.
    pub fn total_for_fd_limit(nofile: u64) -> usize {
        let cap = nofile.saturating_sub(Self::FD_RESERVE) / 2;
        cap.clamp(16, 1 << 20) as usize
    }
}

pub use crate::counts::{Stats, register_listeners};

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
        Some(libc_errno::EMFILE | libc_errno::ENFILE | libc_errno::ENOBUFS | libc_errno::ENOMEM)
    );
    if exhausted {
        (previous * 2).clamp(Duration::from_millis(50), Duration::from_secs(1))
    } else {
        Duration::ZERO
    }
}

/// The Linux errno values the accept loop cares about (no libc dependency for four numbers).
mod libc_errno {
    pub const ENOMEM: i32 = 12;
    pub const ENFILE: i32 = 23;
    pub const EMFILE: i32 = 24;
    pub const ENOBUFS: i32 = 105;
}

/// Serves HTTP on `listener` until `cancel` fires, then drains connections (default
/// [`Limits`], no counters kept elsewhere).
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> io::Result<()> {
    serve_with(
        listener,
        shared,
        Limits::default(),
        Arc::new(Stats::default()),
        cancel,
    )
    .await
}

/// The boot listener: [`crate::handle`] for every request, within `limits`.
pub async fn serve_with(
    listener: TcpListener,
    shared: Arc<Shared>,
    limits: Limits,
    stats: Arc<Stats>,
    cancel: CancellationToken,
) -> io::Result<()> {
    let counted = stats.clone();
    let svc = move |peer: SocketAddr, local: SocketAddr| {
        let shared = shared.clone();
        let stats = counted.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let shared = shared.clone();
            let stats = stats.clone();
            async move {
                Ok::<_, std::convert::Infallible>(handle(&shared, &stats, peer, local, req).await)
            }
        })
    };
    accept_loop("http", listener, limits, stats, cancel, None, svc).await
}

/// What serves the requests of one connection.
trait ConnService:
    hyper::service::Service<
        Request<Incoming>,
        Response = Response<Body>,
        Error = std::convert::Infallible,
        Future: Send,
    > + Send
    + 'static
{
}

impl<S> ConnService for S where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<Body>,
            Error = std::convert::Infallible,
            Future: Send,
        > + Send
        + 'static
{
}

async fn accept_loop<Mk, S>(
    name: &'static str,
    listener: TcpListener,
    limits: Limits,
    stats: Arc<Stats>,
    cancel: CancellationToken,
    tls: Option<tokio_rustls::TlsAcceptor>,
    make_svc: Mk,
) -> io::Result<()>
where
    Mk: Fn(SocketAddr, SocketAddr) -> S,
    S: ConnService,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let table = conn_table(&limits);
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
        let local = stream.local_addr().unwrap_or(fallback_local);
        let svc = make_svc(peer, local);
        let watcher = graceful.watcher();
        let stats = stats.clone();
        let limits = limits.clone();
        let tls = tls.clone();
        stats.open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let _slot = slot;
            let io = Deadline::new(stream, limits.write_timeout, stats.clone());
            let r = match tls {
                None => serve_conn(io, svc, &limits, watcher).await,
                Some(acceptor) => {
                    let hs = tokio::time::timeout(limits.idle_timeout, acceptor.accept(io)).await;
                    match hs {
                        Ok(Ok(tls_io)) => serve_conn(tls_io, svc, &limits, watcher).await,
                        Ok(Err(e)) => {
                            stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(
                                target: "kindling::admin", peer = ?peer, error = %e,
                                "TLS handshake refused"
                            );
                            Ok(())
                        }
                        Err(_) => {
                            stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = r {
                tracing::debug!(peer = ?peer, error = %e, "connection ended with an error");
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!(listener = name, "some HTTP connections did not finish within 10 s of shutdown");
        }
    }
    Ok(())
}

async fn serve_conn<I, S>(
    io: I,
    svc: S,
    limits: &Limits,
    watcher: hyper_util::server::graceful::Watcher,
) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: ConnService,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD_BYTES)
        .timer(hyper_util::rt::TokioTimer::new())
        // Runs from the moment the connection waits for a request head: the first one
        // and every next one on a kept-alive connection (hyper re-arms it after each
        // request), so idle keep-alive connections are bounded too.
        .header_read_timeout(limits.idle_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
    watcher.watch(conn).await
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

// ---------------------------------------------------------------------------------------
// The admin listener.

/// What the admin listener serves and how it checks callers.
pub struct Admin {
    /// The operator endpoints (API, events, dashboard, metrics), in order.
    pub extensions: Vec<Arc<dyn Extension>>,
    /// Told about every request (metrics).
    pub observer: Option<Arc<dyn RequestObserver>>,
    /// When set, every request needs `Authorization: Bearer <token>`.
    pub token: Option<Vec<u8>>,
    /// When set, connections are TLS (the config decides whether client certificates are
    /// required: Kindling always requires and verifies them).
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    pub stats: Arc<Stats>,
}

/// The outcome of the bearer-token check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    /// No token configured, or the right one presented.
    Allowed,
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token that is not the configured one (or a malformed header).
    Wrong,
}

/// Compares in time that depends only on the lengths, not on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// The bearer-token check, pure: `header` is the `Authorization` value, if any.
pub fn authorize(header: Option<&[u8]>, token: Option<&[u8]>) -> AuthDecision {
    let Some(token) = token else {
        return AuthDecision::Allowed;
    };
    let Some(h) = header else {
        return AuthDecision::Missing;
    };
    // The scheme is case-insensitive (RFC 9110); one or more spaces follow it.
    let Some(rest) = h
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case(b"bearer "))
        .map(|_| &h[7..])
    else {
        return AuthDecision::Missing;
    };
    let presented = rest.trim_ascii();
    if constant_time_eq(presented, token) {
        AuthDecision::Allowed
    } else {
        AuthDecision::Wrong
    }
}

/// The admin listener: `admin.extensions` only (no matchbox routes), after the
/// credentials check, within `limits`.
pub async fn serve_admin(
    listener: TcpListener,
    admin: Arc<Admin>,
    limits: Limits,
    cancel: CancellationToken,
) -> io::Result<()> {
    let tls = admin.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let stats = admin.stats.clone();
    let svc = move |peer: SocketAddr, local: SocketAddr| {
        let admin = admin.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let admin = admin.clone();
            async move {
                Ok::<_, std::convert::Infallible>(handle_admin(&admin, peer, local, req).await)
            }
        })
    };
    accept_loop("admin", listener, limits, stats, cancel, tls, svc).await
}

async fn handle_admin(
    admin: &Admin,
    peer: SocketAddr,
    local: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let raw_path = uri.path();
    let raw_query = uri.query().unwrap_or("");
    let auth = authorize(
        req.headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
        admin.token.as_deref(),
    );
    let (endpoint, mut reply) = match auth {
        AuthDecision::Allowed => admin_route(admin, peer, local, &method, &uri, &req).await,
        refused => {
            admin.stats.auth_refused.fetch_add(1, Ordering::Relaxed);
            let challenge = if refused == AuthDecision::Wrong {
                "Bearer realm=\"kindling-admin\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"kindling-admin\""
            };
            let mut r = Reply::error(StatusCode::UNAUTHORIZED, "401 Unauthorized").with_reason(
                if refused == AuthDecision::Wrong {
                    "wrong bearer token"
                } else {
                    "no bearer token"
                },
            );
            r.headers.insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(challenge),
            );
            (Endpoint::Unauthorized, r)
        }
    };
    let status = reply.status;
    let elapsed = start.elapsed();
    let ms = elapsed.as_secs_f64() * 1000.0;
    if status.as_u16() >= 400 {
        tracing::warn!(
            target: "kindling::admin", peer = ?peer, method = ?method, path = ?raw_path,
            query = ?raw_query, endpoint = endpoint.label(), status = status.as_u16(), ms = format_args!("{ms:.3}"),
            reason = ?reply.reason.as_deref().unwrap_or(""), "admin request failed"
        );
    } else {
        tracing::info!(
            target: "kindling::admin", peer = ?peer, method = ?method, path = ?raw_path,
            query = ?raw_query, endpoint = endpoint.label(), status = status.as_u16(), ms = format_args!("{ms:.3}"),
            "admin request"
        );
    }
    admin
        .stats
        .requests
        .answered(endpoint, status.as_u16(), 0, true);
    if let Some(obs) = &admin.observer {
        obs.request(&RequestRecord {
            peer,
            method: &method,
            path: raw_path,
            endpoint,
            labels: None,
            group: None,
            profile: None,
            status: status.as_u16(),
            bytes: 0,
            length: 0,
            duration: elapsed,
            reason: reply.reason.as_deref(),
            complete: true,
        });
    }
    let len = reply.len;
    let out_body = if method == Method::HEAD {
        body::empty()
    } else {
        std::mem::replace(&mut reply.body, body::empty())
    };
    let mut resp = Response::new(out_body);
    *resp.status_mut() = status;
    *resp.headers_mut() = std::mem::take(&mut reply.headers);
    if status != StatusCode::NOT_MODIFIED {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    }
    resp
}

async fn admin_route(
    admin: &Admin,
    peer: SocketAddr,
    local: SocketAddr,
    method: &Method,
    uri: &hyper::Uri,
    req: &Request<Incoming>,
) -> (Endpoint, Reply) {
    let raw_path = uri.path();
    let raw_query = uri.query().unwrap_or("");
    if uri.path_and_query().map_or(0, |pq| pq.as_str().len()) > MAX_URI_LEN {
        return (
            Endpoint::Invalid,
            Reply::error(StatusCode::URI_TOO_LONG, "414 URI Too Long"),
        );
    }
    let path = match crate::route::clean_target(method, raw_path, raw_query, None) {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    if path == "/healthz" {
        return (
            Endpoint::Healthz,
            Reply::new(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        );
    }
    let ext = ExtRequest {
        method,
        path: &path,
        raw_query,
        headers: req.headers(),
        peer,
        local,
        snapshot: None,
    };
    for e in &admin.extensions {
        if let Some(fut) = e.handle(&ext) {
            return (e.name(), fut.await);
        }
    }
    (
        Endpoint::None,
        Reply::not_found(format!("no admin endpoint {path}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn bearer_token_check() {
        let t = Some(&b"s3cret"[..]);
        assert_eq!(authorize(None, None), AuthDecision::Allowed);
        assert_eq!(authorize(Some(b"junk"), None), AuthDecision::Allowed);
        assert_eq!(authorize(None, t), AuthDecision::Missing);
        assert_eq!(authorize(Some(b"Basic abc"), t), AuthDecision::Missing);
        assert_eq!(authorize(Some(b"Bearer s3cret"), t), AuthDecision::Allowed);
        assert_eq!(
            authorize(Some(b"bearer  s3cret "), t),
            AuthDecision::Allowed
        );
        assert_eq!(authorize(Some(b"Bearer s3cre"), t), AuthDecision::Wrong);
        assert_eq!(authorize(Some(b"Bearer s3cretX"), t), AuthDecision::Wrong);
        assert_eq!(authorize(Some(b"Bearer "), t), AuthDecision::Wrong);
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b"b"));
    }
}
