//! The boot listener's HTTP/1.1 connection: request heads parsed with `httparse`, answers
//! written by Kindling itself so that a file body goes from the page cache to the socket
//! with `sendfile(2)` (no copy through user space), the way nginx serves it.
//!
//! What it speaks is what boot clients need: GET and HEAD (any method is routed, as
//! Go's `ServeMux` does), keep-alive (HTTP/1.1 by default, HTTP/1.0 on request) and
//! pipelining, `Content-Length` bodies always (Kindling never chunks). A request body is
//! read and dropped when it is at most [`DISCARD_MAX`] bytes; a larger one, a chunked one
//! or one behind `Expect: 100-continue` is not read and the connection closes after the
//! answer. A malformed head is answered 400, an oversized one 431 (and counted), then the
//! connection closes. The policy is [`Limits`]: a request head must arrive within the idle
//! timeout (the first one and every next one), a write that makes no progress for the
//! write timeout ends the connection.
//!
//! The parsing and the answer's head are pure ([`parse_head`], [`answer_head`]); the rest
//! is the thin I/O around them. The admin listener and gRPC stay on hyper.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::{HeaderMap, Method, StatusCode, Uri, Version, header};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::body::{BodyEnd, Content};
use crate::counts::Stats;
use crate::endpoint::Endpoint;
use crate::listen::Limits;
use crate::queue::{Budget, FileBody};
use crate::request::{Answer, handle};
use crate::shared::{MAX_HEAD_BYTES, Shared};

/// Most header fields in one request head (more: 431).
pub const MAX_HEADERS: usize = 100;

/// A request body up to this size is read and dropped, and the connection kept.
pub const DISCARD_MAX: u64 = 64 * 1024;

/// A body this small goes out in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;

/// One `sendfile(2)` call moves at most this much (the task yields between calls).
const SENDFILE_CHUNK: usize = 16 << 20;

/// A parsed request head.
#[derive(Debug)]
pub struct Head {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    /// What follows the head.
    pub body: Framing,
    /// The client wants the connection kept after the answer.
    pub keep_alive: bool,
}

/// The request body that follows a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    /// `Transfer-Encoding` (chunked or other), or `Expect: 100-continue`: never read; the
    /// connection closes after the answer.
    Unread,
}

/// Why a request head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// 400: not HTTP/1.x, a bad method, target, header name or value, or
    /// contradictory `Content-Length`s.
    Malformed(&'static str),
    /// 431: over [`MAX_HEAD_BYTES`] or [`MAX_HEADERS`].
    TooLarge,
}

impl HeadError {
    pub fn status(self) -> StatusCode {
        match self {
            HeadError::Malformed(_) => StatusCode::BAD_REQUEST,
            HeadError::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            HeadError::Malformed(what) => what,
            HeadError::TooLarge => "request head too large",
        }
    }
}

/// Parses the request head at the start of `buf`: `Ok(None)` when more bytes are needed,
/// else the head and how many bytes it took.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
            return Err(HeadError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) => return Err(HeadError::Malformed("not HTTP/1.x")),
        Err(_) => return Err(HeadError::Malformed("malformed request head")),
    };
    if n > MAX_HEAD_BYTES {
        return Err(HeadError::TooLarge);
    }
    let method = req
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or(HeadError::Malformed("bad method"))?;
    let uri: Uri = req
        .path
        .and_then(|p| p.parse().ok())
        .ok_or(HeadError::Malformed("bad request target"))?;
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for f in req.headers.iter() {
        let name = header::HeaderName::from_bytes(f.name.as_bytes())
            .map_err(|_| HeadError::Malformed("bad header name"))?;
        let value = header::HeaderValue::from_bytes(f.value)
            .map_err(|_| HeadError::Malformed("bad header value"))?;
        headers.append(name, value);
    }
    let body = framing(&headers)?;
    let keep_alive = keep_alive(version, &headers);
    Ok(Some((
        Head {
            method,
            uri,
            version,
            headers,
            body,
            keep_alive,
        },
        n,
    )))
}

fn framing(headers: &HeaderMap) -> Result<Framing, HeadError> {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Ok(Framing::Unread);
    }
    let mut len = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        let n = std::str::from_utf8(v.as_bytes())
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(HeadError::Malformed("bad Content-Length"))?;
        if len.is_some_and(|l| l != n) {
            return Err(HeadError::Malformed("contradictory Content-Length"));
        }
        len = Some(n);
    }
    Ok(match len {
        None | Some(0) => Framing::None,
        Some(_)
            if headers
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")) =>
        {
            Framing::Unread
        }
        Some(n) => Framing::Length(n),
    })
}

/// HTTP/1.1 keeps the connection unless the client says `close`; HTTP/1.0 closes it
/// unless the client says `keep-alive`.
fn keep_alive(version: Version, headers: &HeaderMap) -> bool {
    let has = |token: &str| {
        headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if version == Version::HTTP_10 {
        has("keep-alive")
    } else {
        !has("close")
    }
}

/// Appends the answer's head to `out`: the status line, `headers`, `Date` and, when the
/// connection closes after it or an HTTP/1.0 client keeps it, `Connection`.
pub fn answer_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    content_length: Option<u64>,
    date: &str,
    version: Version,
    keep: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (k, v) in headers {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(n) = content_length {
        // Writing a number into a Vec cannot fail.
        let _ = write!(out, "content-length: {n}\r\n");
    }
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(b"\r\n");
    if !keep {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Calls `f` with the `Date` header's value (formatted once per second per thread), without
/// a copy.
fn with_http_date<T>(f: impl FnOnce(&str) -> T) -> T {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (secs, httpdate::fmt_http_date(now));
        }
        f(&c.1)
    })
}

// ---------------------------------------------------------------------------------------
// The I/O.

/// What one connection needs.
pub(crate) struct Ctx {
    pub shared: Arc<Shared>,
    pub stats: Arc<Stats>,
    pub limits: Limits,
}

/// Serves the requests of one connection until the client closes it, it idles past the
/// idle timeout, an answer cannot be sent, or `stop` fires (between requests).
pub(crate) async fn serve(
    ctx: Arc<Ctx>,
    mut stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    stop: CancellationToken,
) {
    let mut inbuf: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    loop {
        let head = match read_head(&stream, &mut inbuf, ctx.limits.idle_timeout, &stop).await {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(e) => {
                refuse_head(&ctx, &stream, peer, e, &mut out).await;
                break;
            }
        };
        let mut keep = head.keep_alive;
        match head.body {
            Framing::None => {}
            Framing::Length(n) if n <= DISCARD_MAX => {
                if !discard(&stream, &mut inbuf, n, ctx.limits.idle_timeout).await {
                    break;
                }
            }
            Framing::Length(_) | Framing::Unread => keep = false,
        }
        let answer = handle(
            &ctx.shared,
            &ctx.stats,
            peer,
            local,
            &head.method,
            &head.uri,
            &head.headers,
        )
        .await;
        keep &= !stop.is_cancelled();
        out.clear();
        with_http_date(|date| {
            answer_head(
                &mut out,
                answer.status,
                &answer.headers,
                answer.content_length,
                date,
                head.version,
                keep,
            )
        });
        let sent = send_answer(&ctx, &stream, &mut out, answer).await;
        if !sent || !keep {
            break;
        }
        if inbuf.is_empty() && inbuf.capacity() > 4 * 1024 {
            inbuf = Vec::new();
        }
    }
    // FIN after the last answer; the socket closes when dropped.
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
}

/// Reads until a whole head is in `buf` (and takes it out), within `idle` from the
/// start; `Ok(None)`: the client closed, idled or the listener stops.
async fn read_head(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    idle: Duration,
    stop: &CancellationToken,
) -> Result<Option<Head>, HeadError> {
    let deadline = (!idle.is_zero()).then(|| tokio::time::Instant::now() + idle);
    loop {
        if !buf.is_empty()
            && let Some((head, n)) = parse_head(buf)?
        {
            buf.drain(..n);
            return Ok(Some(head));
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
        tokio::select! {
            _ = stop.cancelled(), if buf.is_empty() => return Ok(None),
            r = readable_by(stream, deadline) => if r.is_err() { return Ok(None) },
        }
        buf.reserve(4096);
        match stream.try_read_buf(buf) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Ok(None),
        }
    }
}

/// Waits until the socket has bytes to read, until `deadline` at most.
async fn readable_by(stream: &TcpStream, deadline: Option<tokio::time::Instant>) -> io::Result<()> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, stream.readable())
            .await
            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
        None => stream.readable().await,
    }
}

/// Reads and drops `n` request-body bytes (some may already be in `buf`), all of them
/// within `idle`.
async fn discard(stream: &TcpStream, buf: &mut Vec<u8>, n: u64, idle: Duration) -> bool {
    let from_buf = (n as usize).min(buf.len());
    buf.drain(..from_buf);
    let mut left = n as usize - from_buf;
    let deadline = (!idle.is_zero()).then(|| tokio::time::Instant::now() + idle);
    let mut scratch = [0u8; 4096];
    while left > 0 {
        if readable_by(stream, deadline).await.is_err() {
            return false;
        }
        let want = left.min(scratch.len());
        match stream.try_read(&mut scratch[..want]) {
            Ok(0) => return false,
            Ok(k) => left -= k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
    }
    true
}

/// Answers a head that could not be taken (400 or 431, empty body, closing), counted
/// as an invalid request.
async fn refuse_head(
    ctx: &Ctx,
    stream: &TcpStream,
    peer: SocketAddr,
    e: HeadError,
    out: &mut Vec<u8>,
) {
    let status = e.status();
    tracing::debug!(target: "kindling::http", %peer, status = status.as_u16(), reason = e.reason(), "request head refused");
    ctx.stats
        .requests
        .answered(Endpoint::Invalid, status.as_u16(), 0, true);
    out.clear();
    with_http_date(|date| {
        answer_head(
            out,
            status,
            &HeaderMap::new(),
            Some(0),
            date,
            Version::HTTP_11,
            false,
        )
    });
    let _ = send_all(ctx, stream, out, false).await;
}

/// Sends the head in `out` and the body; reports a large body's end. True when the
/// whole answer went and the connection may serve another request.
async fn send_answer(ctx: &Ctx, stream: &TcpStream, out: &mut Vec<u8>, answer: Answer) -> bool {
    let Answer {
        content,
        send_len,
        done,
        ..
    } = answer;
    let (sent, end) = match content {
        _ if send_len == 0 => match send_all(ctx, stream, out, false).await {
            Ok(()) => (0, BodyEnd::Complete),
            Err(_) => (0, BodyEnd::ClientGone),
        },
        Content::Bytes(b) => {
            let b = &b[..(send_len as usize).min(b.len())];
            let r = if b.len() <= INLINE_BODY {
                out.extend_from_slice(b);
                send_all(ctx, stream, out, false).await
            } else {
                match send_all(ctx, stream, out, true).await {
                    Ok(()) => send_all(ctx, stream, b, false).await,
                    Err(e) => Err(e),
                }
            };
            match r {
                Ok(()) if (b.len() as u64) < send_len => (
                    b.len() as u64,
                    BodyEnd::Failed(format!(
                        "the body ended {} bytes short",
                        send_len - b.len() as u64
                    )),
                ),
                Ok(()) => (send_len, BodyEnd::Complete),
                Err(_) => (0, BodyEnd::ClientGone),
            }
        }
        Content::File { file, offset } => match send_all(ctx, stream, out, true).await {
            Ok(()) => send_file(ctx, stream, &file, offset, send_len).await,
            Err(_) => (0, BodyEnd::ClientGone),
        },
        Content::Stream(body) => match send_all(ctx, stream, out, false).await {
            Ok(()) => send_stream(ctx, stream, body, send_len).await,
            Err(_) => (0, BodyEnd::ClientGone),
        },
    };
    let whole = end == BodyEnd::Complete;
    if let Some(done) = done {
        done(sent, end);
    }
    whole
}

/// `send(2)` of all of `buf` (`more`: MSG_MORE, the body follows), waiting for the socket
/// at most the write timeout each time it is full.
async fn send_all(ctx: &Ctx, stream: &TcpStream, mut buf: &[u8], more: bool) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    while !buf.is_empty() {
        let r = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: `buf` is a live slice; `fd` is the stream's open socket.
            let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match r {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => writable(ctx, stream).await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits until the socket takes bytes again, at most the write timeout (then counted).
async fn writable(ctx: &Ctx, stream: &TcpStream) -> io::Result<()> {
    let t = ctx.limits.write_timeout;
    if t.is_zero() {
        return stream.writable().await;
    }
    match tokio::time::timeout(t, stream.writable()).await {
        Ok(r) => r,
        Err(_) => {
            ctx.stats.write_timeouts.fetch_add(1, Ordering::Relaxed);
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read for the write timeout",
            ))
        }
    }
}

/// `len` bytes of `file` from `offset`, kernel to kernel, the connection's send-queue
/// bound kept at the body's share ([`FileBody`]) and set back at the end.
async fn send_file(
    ctx: &Ctx,
    stream: &TcpStream,
    file: &std::fs::File,
    offset: u64,
    len: u64,
) -> (u64, BodyEnd) {
    let mut body = FileBody::start(stream, len, Budget::of_this_machine());
    let (sock, fd): (RawFd, RawFd) = (stream.as_raw_fd(), file.as_raw_fd());
    let Ok(mut off) = libc::off_t::try_from(offset) else {
        return (0, BodyEnd::Failed("offset out of range".into()));
    };
    let mut sent = 0u64;
    while sent < len {
        let want = (len - sent).min(SENDFILE_CHUNK as u64) as usize;
        body.refresh();
        let r = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the call; `off` is a live off_t.
            let n = unsafe { libc::sendfile(sock, fd, &mut off, want) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as u64)
            }
        });
        match r {
            Ok(0) => {
                return (
                    sent,
                    BodyEnd::Failed(format!("the file ended {} bytes short", len - sent)),
                );
            }
            Ok(n) => {
                sent += n;
                // Other connections on this worker get their turn.
                tokio::task::consume_budget().await;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if writable(ctx, stream).await.is_err() {
                    return (sent, BodyEnd::ClientGone);
                }
            }
            Err(e) if client_gone(&e) => return (sent, BodyEnd::ClientGone),
            Err(e) => return (sent, BodyEnd::Failed(format!("sendfile: {e}"))),
        }
    }
    (sent, BodyEnd::Complete)
}

fn client_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN | libc::ETIMEDOUT)
    )
}

/// A body's frames as they come, at most `len` bytes.
async fn send_stream(
    ctx: &Ctx,
    stream: &TcpStream,
    mut body: crate::body::Body,
    len: u64,
) -> (u64, BodyEnd) {
    use http_body_util::BodyExt;
    let mut sent = 0u64;
    while sent < len {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let take = (data.len() as u64).min(len - sent) as usize;
                if send_all(ctx, stream, &data[..take], false).await.is_err() {
                    return (sent, BodyEnd::ClientGone);
                }
                sent += take as u64;
            }
            Some(Err(e)) => return (sent, BodyEnd::Failed(e.to_string())),
            None => {
                return (
                    sent,
                    BodyEnd::Failed(format!("the body ended {} bytes short", len - sent)),
                );
            }
        }
    }
    (sent, BodyEnd::Complete)
}

#[cfg(test)]
mod tests;
