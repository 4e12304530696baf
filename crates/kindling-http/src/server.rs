//! The boot listener ([`serve`], [`serve_with`]: Kindling's own HTTP/1.1, [`crate::conn`])
//! and the admin listener ([`serve_admin`]: hyper), both over
//! [`crate::listen::accept_with`], which holds the connection policy ([`Limits`]) they
//! share.
//!
//! The admin listener answers only its own extensions (API, events, dashboard, metrics),
//! optionally behind a bearer token and/or TLS with required client certificates.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::body::{self, Body, Reply};
use crate::endpoint::Endpoint;
use crate::listen::{Listening, Wire, accept_loop, accept_with};
use crate::shared::Shared;
use crate::shared::{
    ExtRequest, Extension, MAX_ADMIN_BODY_BYTES, MAX_URI_LEN, RequestObserver, RequestRecord,
};

pub use crate::counts::{Stats, register_listeners};
pub use crate::listen::{Limits, Refusal, conn_table};
pub use crate::queue::register as register_send_queue;
pub use kindling_guard::ClientKey;

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

/// The boot listener: [`crate::handle`] for every request, within `limits`, over
/// Kindling's own HTTP/1.1 ([`crate::conn`]: file bodies with `sendfile(2)`).
pub async fn serve_with(
    listener: TcpListener,
    shared: Arc<Shared>,
    limits: Limits,
    stats: Arc<Stats>,
    cancel: CancellationToken,
) -> io::Result<()> {
    let ctx = Arc::new(crate::conn::Ctx {
        shared,
        stats: stats.clone(),
        limits: limits.clone(),
    });
    let serve =
        move |stream, peer, local, stop| crate::conn::serve(ctx.clone(), stream, peer, local, stop);
    accept_with(listener, "http", &limits, stats, cancel, serve).await
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
    let how = Listening {
        name: "admin",
        limits,
        stats,
        tls,
        wire: Wire::Http1,
    };
    accept_loop(listener, how, cancel, svc).await
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
        AuthDecision::Allowed => admin_route(admin, peer, local, &method, &uri, req).await,
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
        std::mem::replace(&mut reply.body, body::Content::empty()).into_body(len)
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

/// Reads an admin request's body: at most [`MAX_ADMIN_BODY_BYTES`] (413 beyond, before
/// reading it when Content-Length says so), within 30 s (408).
async fn read_body(incoming: Incoming) -> Result<bytes::Bytes, Reply> {
    use http_body_util::BodyExt;
    let too_large = || {
        Reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "413 Request Entity Too Large",
        )
        .with_reason(format!("request body over {MAX_ADMIN_BODY_BYTES} bytes"))
    };
    if hyper::body::Body::size_hint(&incoming)
        .exact()
        .is_some_and(|n| n > MAX_ADMIN_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(incoming, MAX_ADMIN_BODY_BYTES);
    match tokio::time::timeout(std::time::Duration::from_secs(30), limited.collect()).await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(Reply::error(StatusCode::BAD_REQUEST, "400 Bad Request")
            .with_reason("the request body could not be read")),
        Err(_) => Err(
            Reply::error(StatusCode::REQUEST_TIMEOUT, "408 Request Timeout")
                .with_reason("the request body did not arrive within 30 s"),
        ),
    }
}

async fn admin_route(
    admin: &Admin,
    peer: SocketAddr,
    local: SocketAddr,
    method: &Method,
    uri: &hyper::Uri,
    req: Request<Incoming>,
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
    let (parts, incoming) = req.into_parts();
    let body = if matches!(*method, Method::PUT | Method::POST | Method::PATCH) {
        match read_body(incoming).await {
            Ok(b) => b,
            Err(answer) => return (Endpoint::Invalid, answer),
        }
    } else {
        bytes::Bytes::new()
    };
    let ext = ExtRequest {
        method,
        path: &path,
        raw_query,
        headers: &parts.headers,
        peer,
        local,
        snapshot: None,
        body: &body,
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
