//! Endpoints contributed to the HTTP service: `/metrics`, `/readyz`, `/api/v1/...`, `/ui/`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Method, StatusCode, header};
use kindling_http::{Body, Endpoint, ExtRequest, Extension, Reply};
use kindling_model::{Mac, MacAddr};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::ops::Ops;
use crate::ui;

type Fut<'a> = Pin<Box<dyn Future<Output = Reply> + Send + 'a>>;

/// Content-Length announced for the event stream. kindling-http sets Content-Length from
/// `Reply::len` on every reply and has no "unknown length" form, so the stream announces
/// a length it never reaches (1 TiB); clients read it incrementally all the same.
pub const STREAM_LEN: u64 = 1 << 40;

fn ready(r: Reply) -> Option<Fut<'static>> {
    Some(Box::pin(async move { r }))
}

fn only_get(req: &ExtRequest<'_>) -> Option<Reply> {
    let get = req.method == Method::GET || req.method == Method::HEAD;
    (!get).then(|| Reply::not_allowed("GET, HEAD"))
}

fn no_store(mut r: Reply) -> Reply {
    r.headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

fn json_reply(status: StatusCode, v: &impl serde::Serialize) -> Reply {
    let body = serde_json::to_vec_pretty(v).unwrap_or_else(|_| b"{}".to_vec());
    no_store(Reply::new(status, "application/json", body))
}

/// `/metrics` (Prometheus text format).
pub struct MetricsEndpoint(pub Arc<Ops>);

impl Extension for MetricsEndpoint {
    fn name(&self) -> Endpoint {
        Endpoint::Metrics
    }
    fn handle<'a>(&'a self, req: &'a ExtRequest<'a>) -> Option<Fut<'a>> {
        if req.path != "/metrics" {
            return None;
        }
        if let Some(r) = only_get(req) {
            return ready(r);
        }
        ready(no_store(Reply::new(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            self.0.metrics_text(),
        )))
    }
}

/// `/readyz`: 200 once [`crate::metrics::Metrics::set_ready`] was called, else 503.
pub struct ReadyEndpoint(pub Arc<Ops>);

impl Extension for ReadyEndpoint {
    fn name(&self) -> Endpoint {
        Endpoint::Readyz
    }
    fn handle<'a>(&'a self, req: &'a ExtRequest<'a>) -> Option<Fut<'a>> {
        if req.path != "/readyz" {
            return None;
        }
        let r = if self.0.metrics.is_ready() {
            Reply::new(StatusCode::OK, "text/plain; charset=utf-8", "ready\n")
        } else {
            Reply::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                "not ready\n",
            )
            .with_reason("kindling is still starting")
        };
        ready(no_store(r))
    }
}

/// `/api/v1/machines`, `/api/v1/machines/{mac}`, `/api/v1/leases`, `/api/v1/status`,
/// `/api/v1/events` (SSE).
pub struct ApiEndpoint(pub Arc<Ops>);

impl Extension for ApiEndpoint {
    fn name(&self) -> Endpoint {
        Endpoint::Api
    }
    fn handle<'a>(&'a self, req: &'a ExtRequest<'a>) -> Option<Fut<'a>> {
        let rest = req.path.strip_prefix("/api/v1/")?;
        if let Some(r) = only_get(req) {
            return ready(r);
        }
        let ops = &self.0;
        let r = match rest {
            // `{"machines": [...]}`, serialized straight from the rows: a `json!` tree of
            // 10,000 machines would cost several times the rows themselves.
            "machines" => json_reply(StatusCode::OK, &BTreeMap::from([(rest, ops.machines())])),
            "leases" => json_reply(StatusCode::OK, &BTreeMap::from([(rest, ops.leases())])),
            "status" => json_reply(StatusCode::OK, &status_json(ops)),
            "events" => event_stream(ops.clone()),
            _ => match rest.strip_prefix("machines/") {
                Some(m) => machine_json(ops, m),
                None => json_reply(
                    StatusCode::NOT_FOUND,
                    &json!({ "error": format!("no API endpoint {}", req.path) }),
                )
                .with_reason(format!("no API endpoint {}", req.path)),
            },
        };
        ready(r)
    }
}

fn machine_json(ops: &Ops, m: &str) -> Reply {
    let mac = match Mac::parse(m) {
        Ok(mac) => mac.to_string(),
        Err(e) => {
            return json_reply(StatusCode::BAD_REQUEST, &json!({ "error": e.to_string() }))
                .with_reason(e.to_string());
        }
    };
    match ops.machine(&mac) {
        Some(d) => json_reply(StatusCode::OK, &d),
        None => {
            let msg = format!("no boot events recorded for {mac}");
            json_reply(StatusCode::NOT_FOUND, &json!({ "error": msg, "mac": mac })).with_reason(msg)
        }
    }
}

/// Configuration problems, the Fedora CoreOS tracker (`fcos`: one entry per stream and
/// architecture, [`kindling_model::FcosTrack`]), cache and assets, the journal's health.
pub fn status_json(ops: &Ops) -> serde_json::Value {
    json!({
        "ready": ops.metrics.is_ready(),
        "config_problems": ops.metrics.config_problems(),
        "fcos": ops.metrics.fcos_streams(),
        "cache_bytes": ops.metrics.cache_bytes(),
        "asset_bytes_served": ops.metrics.asset_bytes_by_kind(),
        "assets": ops.metrics.asset_status(),
        "journal": ops.metrics.journal_status(),
    })
}

/// Server-sent events: `event: machine` with an [`crate::Update`] as data. At most
/// `max_subscribers` streams are open (more get 503); see [`sse_body`] for how a subscriber
/// that does not read is dropped.
fn event_stream(ops: Arc<Ops>) -> Reply {
    // Subscribed before the slot is taken: a counted subscriber hears every later event.
    let rx = ops.tx.subscribe();
    let Some(slot) = ops.try_subscriber_slot() else {
        let max = ops.subscriber_limits.max;
        let msg = format!("too many event-stream subscribers ({max} open); try again later");
        let mut r =
            json_reply(StatusCode::SERVICE_UNAVAILABLE, &json!({ "error": msg })).with_reason(msg);
        r.headers
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("10"));
        return r;
    };
    let mut reply = no_store(Reply::new(
        StatusCode::OK,
        "text/event-stream",
        Bytes::new(),
    ));
    reply.body = sse_body(&ops, slot, rx).into();
    reply.len = STREAM_LEN;
    reply
}

/// The next message for a subscriber: `Ok(Some)` a chunk, `Ok(None)` nothing (look again),
/// `None` the stream ends (shutdown, or the connection is gone).
async fn wait_next(
    rx: &mut tokio::sync::broadcast::Receiver<Arc<str>>,
    closed: &mut tokio::sync::watch::Receiver<bool>,
    tx: &tokio::sync::mpsc::Sender<Bytes>,
) -> Option<Option<Bytes>> {
    let chunk = tokio::select! {
        r = rx.recv() => match r {
            Ok(msg) => Bytes::from(format!("event: machine\ndata: {msg}\n\n")),
            Err(RecvError::Lagged(n)) => Bytes::from(format!("event: lagged\ndata: {n}\n\n")),
            Err(RecvError::Closed) => return None,
        },
        r = closed.changed() => {
            r.ok()?;
            return Some(None);
        }
        _ = tx.closed() => return None,
        _ = tokio::time::sleep(Duration::from_secs(15)) => Bytes::from_static(b": keepalive\n\n"),
    };
    Some(Some(chunk))
}

/// Moves live updates into one subscriber's queue until the stream ends or the
/// subscriber is dropped.
async fn pump(
    ops: Arc<Ops>,
    _slot: crate::ops::SubscriberSlot,
    mut rx: tokio::sync::broadcast::Receiver<Arc<str>>,
    mut closed: tokio::sync::watch::Receiver<bool>,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    epoch: std::time::Instant,
    last_taken: Arc<std::sync::atomic::AtomicU64>,
) {
    use tokio::sync::mpsc::error::TrySendError;
    let limits = ops.subscriber_limits;
    let mut next = Some(Bytes::from_static(b"retry: 2000\n: connected\n\n"));
    let mut nonempty_since = Duration::ZERO;
    loop {
        let Some(chunk) = next.take() else {
            if *closed.borrow() {
                return;
            }
            match wait_next(&mut rx, &mut closed, &tx).await {
                Some(n) => next = n,
                None => return,
            }
            continue;
        };
        let overflow = match tx.try_send(chunk) {
            Ok(()) => false,
            Err(TrySendError::Full(_)) => true,
            Err(TrySendError::Closed(_)) => return,
        };
        let waiting = limits.queue.saturating_sub(tx.capacity());
        let now = epoch.elapsed();
        if waiting <= 1 {
            // The queue was empty: the oldest message waiting is this one.
            nonempty_since = now;
        }
        let taken_at = Duration::from_millis(last_taken.load(std::sync::atomic::Ordering::Relaxed));
        let idle = now.saturating_sub(taken_at.max(nonempty_since));
        // Dropped when its queue is full (it does not read fast enough, or at all), or the
        // queue has waited longer than the stall timeout without being taken from.
        if overflow || (waiting > 1 && idle >= limits.stall) {
            ops.metrics.subscriber_dropped(overflow);
            tracing::info!(
                target: "kindling::ops",
                reason = if overflow { "overflow" } else { "stalled" },
                queue = limits.queue,
                "event-stream subscriber dropped: it does not read"
            );
            return;
        }
    }
}

/// The stream's body. Messages wait in a queue of `subscriber_queue` entries; the
/// subscriber is dropped (its subscription ended, its place freed, counted in
/// `kindling_events_subscribers_dropped_total`) when the queue overflows or when the
/// connection has taken nothing from a non-empty queue for `subscriber_stall_secs`. The
/// connection itself is closed by the listener's write timeout once its buffers are full.
fn sse_body(
    ops: &Arc<Ops>,
    slot: crate::ops::SubscriberSlot,
    rx: tokio::sync::broadcast::Receiver<Arc<str>>,
) -> Body {
    use std::sync::atomic::{AtomicU64, Ordering};
    let limits = ops.subscriber_limits;
    let closed = ops.closed.subscribe();
    let (tx, mut out) = tokio::sync::mpsc::channel::<Bytes>(limits.queue);
    let epoch = std::time::Instant::now();
    let last_taken = Arc::new(AtomicU64::new(0));
    let taken = last_taken.clone();
    tokio::spawn(pump(ops.clone(), slot, rx, closed, tx, epoch, last_taken));
    let s = futures_util::stream::poll_fn(move |cx| {
        out.poll_recv(cx).map(|o| {
            o.map(|b| {
                taken.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                Ok::<_, std::io::Error>(Frame::data(b))
            })
        })
    });
    BodyExt::boxed(StreamBody::new(s))
}

/// `/ui/` (machines; `?fragment=rows&mac=...&mac=...` those machines' rows alone, for live
/// updates), `/ui/machines/{mac}` (timeline), `/ui/app.js`, `/ui/style.css`.
pub struct UiEndpoint(pub Arc<Ops>);

impl Extension for UiEndpoint {
    fn name(&self) -> Endpoint {
        Endpoint::Ui
    }
    fn handle<'a>(&'a self, req: &'a ExtRequest<'a>) -> Option<Fut<'a>> {
        if req.path == "/ui" {
            return ready(Reply::moved("/ui/", req.method));
        }
        let rest = req.path.strip_prefix("/ui/")?;
        if let Some(r) = only_get(req) {
            return ready(r);
        }
        let html = |body: String| {
            let mut r = Reply::new(StatusCode::OK, "text/html; charset=utf-8", body);
            r.headers.insert(
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_static(
                    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:",
                ),
            );
            no_store(r)
        };
        let r = match rest {
            "" if req.raw_query.is_empty() => html(ui::machines_page(&self.0)),
            "" => {
                let q = kindling_model::labels::parse_query(req.raw_query, &mut Vec::new());
                if q.iter().any(|(k, v)| k == "fragment" && v == "rows") {
                    // At most 128 machines a request; what is no MAC is left out.
                    let macs: Vec<MacAddr> = (q.iter().filter(|(k, _)| k == "mac").take(128))
                        .filter_map(|(_, v)| MacAddr::parse(v).ok())
                        .collect();
                    html(
                        self.0
                            .summaries(&macs)
                            .iter()
                            .map(ui::machine_row)
                            .collect(),
                    )
                } else {
                    html(ui::machines_page(&self.0))
                }
            }
            "app.js" => Reply::new(StatusCode::OK, "text/javascript; charset=utf-8", ui::APP_JS),
            "style.css" => Reply::new(StatusCode::OK, "text/css; charset=utf-8", ui::STYLE_CSS),
            _ => match rest.strip_prefix("machines/") {
                Some(m) => match Mac::parse(m) {
                    Ok(mac) => {
                        let mac = mac.to_string();
                        if req.raw_query == "fragment=timeline" {
                            html(ui::timeline_fragment(self.0.machine(&mac).as_ref()))
                        } else {
                            html(ui::machine_page(&mac, self.0.machine(&mac).as_ref()))
                        }
                    }
                    Err(e) => Reply::error(StatusCode::BAD_REQUEST, &e.to_string()),
                },
                None => Reply::not_found(format!("no dashboard page {}", req.path)),
            },
        };
        ready(r)
    }
}
