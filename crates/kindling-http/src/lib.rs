//! Kindling's HTTP service. The matchbox endpoints (`/`, `/boot.ipxe`,
//! `/boot.ipxe.0`, `/ipxe`, `/grub`, `/ignition`, `/generic`, `/metadata`,
//! `/cloud`, `/assets/`) answer byte for byte as matchbox does for the same
//! data directory and query, with Go `net/http` routing semantics (path
//! cleaning with 301, every method accepted). Every 404 carries a reason in
//! the request log.

// A `Reply` is the response itself and is moved once per request; boxing it
// would only add an allocation.
#![allow(clippy::result_large_err)]

pub mod body;
pub mod content;
pub mod paths;
pub mod server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request, Response, StatusCode, header};
use kindling_model::store::{Opened, open_confined};
use kindling_model::{Area, DataDir, Group, Labels, ReadError, Snapshot, labels_from_query};
use kindling_render as render;

pub use body::{Body, Reply};
pub use server::serve;

/// Longest request target accepted (longer gets 414).
pub const MAX_URI_LEN: usize = 8 * 1024;
/// Largest request head (request line + headers) accepted; larger gets 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Translates a rendered Butane template into Ignition JSON.
pub trait Translate: Send + Sync {
    /// `Ok(json)` or a human-readable error (with line and column).
    fn translate(&self, rendered: &str) -> Result<String, String>;
}

/// Opt-in binding of per-machine secrets to the address that booted the machine.
pub trait MachineBinding: Send + Sync {
    /// `Ok(())` when `peer` may receive the per-machine answers for `mac`
    /// (lower-case, colon-separated, as in `Labels`), else why not.
    fn check(&self, mac: &str, peer: std::net::IpAddr) -> Result<(), String>;
}

/// A request as seen by an [`Extension`].
pub struct ExtRequest<'a> {
    pub method: &'a Method,
    /// Decoded and cleaned path (e.g. `/menu.ipxe`).
    pub path: &'a str,
    /// The raw query string (undecoded).
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub peer: SocketAddr,
    /// The local address the request arrived on (never the client's `Host`).
    pub local: SocketAddr,
}

/// More endpoints from other parts of Kindling (menus, cache, API, metrics,
/// dashboard). Consulted after the matchbox routes, in order; the first that
/// returns `Some` answers.
pub trait Extension: Send + Sync {
    /// A short name for the request log's `endpoint` field.
    fn name(&self) -> &'static str;
    fn handle<'a>(
        &'a self,
        req: &'a ExtRequest<'a>,
    ) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send + 'a>>>;
}

/// Receives one record per request (for metrics and the boot timeline).
pub trait RequestObserver: Send + Sync {
    fn request(&self, record: &RequestRecord<'_>);
}

/// What happened to one request.
#[derive(Debug)]
pub struct RequestRecord<'a> {
    pub peer: SocketAddr,
    pub method: &'a Method,
    pub path: &'a str,
    pub endpoint: &'static str,
    pub labels: Option<&'a Labels>,
    pub group: Option<&'a str>,
    pub profile: Option<&'a str>,
    pub status: u16,
    /// Body bytes handed to the connection (0 for HEAD).
    pub bytes: u64,
    /// The body's length (Content-Length).
    pub length: u64,
    /// Until the last byte went (large bodies), else until the reply was ready.
    pub duration: Duration,
    /// Why the request failed (404 reasons, or why a body stopped early).
    pub reason: Option<&'a str>,
    /// False when the body stopped before its end: the client went away (`reason` is
    /// None) or the body failed (`reason` says why). A large body is reported when it
    /// ends, so that this and `bytes` are known.
    pub complete: bool,
}

/// Bodies at least this large are reported when they end, not when they start: a kernel
/// or an initrd cut short shows as a failed download, with its real duration.
pub const TRACK_BODY_BYTES: u64 = 64 * 1024;

/// State shared by all requests.
pub struct Shared {
    /// The current data-directory snapshot, swapped atomically on reload.
    pub snapshot: ArcSwap<Snapshot>,
    pub data: DataDir,
    /// Served under `/assets/`; `None` disables the route (as `-assets-path=''`).
    pub assets_dir: Option<PathBuf>,
    /// Files served under `/tftp/<name>` (the iPXE binaries, for UEFI HTTP Boot).
    pub boot_files: HashMap<String, PathBuf>,
    pub translator: Option<Arc<dyn Translate>>,
    pub observer: Option<Arc<dyn RequestObserver>>,
    pub extensions: Vec<Arc<dyn Extension>>,
    /// Directory listings under `/assets/` (matchbox serves them; Kindling only
    /// when enabled: they reveal every asset name to anyone on the LAN).
    /// Default `false`: a directory without `index.html` is a 404.
    pub asset_listings: bool,
    /// When set, `/ignition`, `/generic`, `/cloud` and `/metadata` answer only
    /// requests that carry a `mac` label for which `check` passes (403
    /// otherwise, the reason logged). Requests without a `mac` are refused, so
    /// that another selector (`uuid`) cannot bypass the binding. Default
    /// `None`: matchbox behaviour.
    pub binding: Option<Arc<dyn MachineBinding>>,
}

impl Shared {
    pub fn new(data: DataDir, snapshot: Snapshot) -> Shared {
        let assets = data.area(Area::Assets);
        Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            data,
            assets_dir: Some(assets),
            boot_files: HashMap::new(),
            translator: None,
            observer: None,
            extensions: Vec::new(),
            asset_listings: false,
            binding: None,
        }
    }
}

/// Handles one request.
pub async fn handle(
    shared: &Shared,
    peer: SocketAddr,
    local: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let raw_path = uri.path();
    let raw_query = uri.query().unwrap_or("");
    let mut labels_for_log: Option<Labels> = None;
    let head_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    let (endpoint, mut reply) =
        if uri.path_and_query().map_or(0, |pq| pq.as_str().len()) > MAX_URI_LEN {
            (
                "invalid",
                Reply::error(StatusCode::URI_TOO_LONG, "414 URI Too Long"),
            )
        } else if head_bytes > MAX_HEAD_BYTES {
            (
                "invalid",
                Reply::error(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "431 Request Header Fields Too Large",
                ),
            )
        } else {
            route(
                shared,
                peer,
                local,
                &method,
                raw_path,
                raw_query,
                req.headers(),
                &mut labels_for_log,
            )
            .await
        };
    let status = reply.status;
    let len = reply.len;
    let path_for_log = raw_path.to_string();
    log_request(
        &method,
        &path_for_log,
        raw_query,
        endpoint,
        labels_for_log.as_ref(),
        &reply,
        start.elapsed(),
    );
    let mut out_body = if method == Method::HEAD {
        body::empty()
    } else {
        std::mem::replace(&mut reply.body, body::empty())
    };
    if let Some(obs) = &shared.observer {
        if method != Method::HEAD && len >= TRACK_BODY_BYTES {
            out_body = body::tracked(
                out_body,
                len,
                report_at_end(
                    obs.clone(),
                    peer,
                    method.clone(),
                    path_for_log,
                    endpoint,
                    labels_for_log,
                    &reply,
                    start,
                ),
            );
        } else {
            obs.request(&RequestRecord {
                peer,
                method: &method,
                path: &path_for_log,
                endpoint,
                labels: labels_for_log.as_ref(),
                group: reply.group.as_deref(),
                profile: reply.profile.as_deref(),
                status: status.as_u16(),
                bytes: if method == Method::HEAD { 0 } else { len },
                length: len,
                duration: start.elapsed(),
                reason: reply.reason.as_deref(),
                complete: true,
            });
        }
    }
    let mut resp = Response::new(out_body);
    *resp.status_mut() = status;
    *resp.headers_mut() = std::mem::take(&mut reply.headers);
    if status != StatusCode::NOT_MODIFIED {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    }
    resp
}

/// The observer call for a large body, made when the body ends (or is dropped).
#[allow(clippy::too_many_arguments)]
fn report_at_end(
    obs: Arc<dyn RequestObserver>,
    peer: SocketAddr,
    method: Method,
    path: String,
    endpoint: &'static str,
    labels: Option<Labels>,
    reply: &Reply,
    start: Instant,
) -> body::BodyDone {
    let status = reply.status.as_u16();
    let group = reply.group.clone();
    let profile = reply.profile.clone();
    let reason = reply.reason.clone();
    let len = reply.len;
    Box::new(move |sent, end| {
        let duration = start.elapsed();
        let ms = duration.as_secs_f64() * 1000.0;
        let (complete, reason) = match end {
            body::BodyEnd::Complete => (true, reason),
            body::BodyEnd::ClientGone => {
                tracing::warn!(
                    target: "kindling::http",
                    %peer, %method, path, endpoint, sent, length = len, ms = format_args!("{ms:.3}"),
                    "download cut short: the client closed the connection"
                );
                (false, None)
            }
            body::BodyEnd::Failed(e) => {
                tracing::warn!(
                    target: "kindling::http",
                    %peer, %method, path, endpoint, sent, length = len, ms = format_args!("{ms:.3}"),
                    error = %e, "download cut short: the body failed"
                );
                (false, Some(e))
            }
        };
        obs.request(&RequestRecord {
            peer,
            method: &method,
            path: &path,
            endpoint,
            labels: labels.as_ref(),
            group: group.as_deref(),
            profile: profile.as_deref(),
            status,
            bytes: sent,
            length: len,
            duration,
            reason: reason.as_deref(),
            complete,
        });
    })
}

fn log_request(
    method: &Method,
    path: &str,
    query: &str,
    endpoint: &str,
    labels: Option<&Labels>,
    reply: &Reply,
    elapsed: Duration,
) {
    let status = reply.status.as_u16();
    // The label list is built only for a line that will be written.
    let enabled = if status >= 400 {
        tracing::enabled!(target: "kindling::http", tracing::Level::WARN)
    } else {
        tracing::enabled!(target: "kindling::http", tracing::Level::INFO)
    };
    if !enabled {
        return;
    }
    let labels = labels.map(|l| {
        l.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    });
    let ms = elapsed.as_secs_f64() * 1000.0;
    if status >= 400 {
        tracing::warn!(
            target: "kindling::http",
            %method, path, query, endpoint, labels = labels.as_deref().unwrap_or(""),
            group = reply.group.as_deref().unwrap_or(""), profile = reply.profile.as_deref().unwrap_or(""),
            status, bytes = reply.len, ms = format_args!("{ms:.3}"),
            reason = reply.reason.as_deref().unwrap_or(""),
            "request failed"
        );
    } else {
        tracing::info!(
            target: "kindling::http",
            %method, path, query, endpoint, labels = labels.as_deref().unwrap_or(""),
            group = reply.group.as_deref().unwrap_or(""), profile = reply.profile.as_deref().unwrap_or(""),
            status, bytes = reply.len, ms = format_args!("{ms:.3}"),
            "request"
        );
    }
}

/// The request path as Go's `ServeMux` sees it: decoded and clean, or the answer when it
/// is badly escaped (400) or not clean (301 to the clean path; to `subtree/` when the
/// clean path is the subtree `subtree` itself: one hop, not two). Both listeners route
/// through it.
pub(crate) fn clean_target(
    method: &Method,
    raw_path: &str,
    raw_query: &str,
    subtree: Option<&str>,
) -> Result<String, (&'static str, Reply)> {
    let Some(path) = paths::decode_path(raw_path) else {
        return Err((
            "invalid",
            Reply::error(StatusCode::BAD_REQUEST, "400 Bad Request")
                .with_reason("malformed %-escape in path"),
        ));
    };
    let cleaned = paths::clean_path(&path);
    let with_query = |mut loc: String| {
        if !raw_query.is_empty() {
            loc.push('?');
            loc.push_str(raw_query);
        }
        loc
    };
    if subtree == Some(cleaned.as_str()) {
        let loc = with_query(format!("{cleaned}/"));
        return Err(("redirect", Reply::moved(&loc, method)));
    }
    if cleaned != path {
        let loc = with_query(paths::escape_path(&cleaned));
        return Err((
            "redirect",
            Reply::moved(&loc, method).with_reason(format!("unclean path, redirect to {cleaned}")),
        ));
    }
    Ok(path)
}

#[allow(clippy::too_many_arguments)]
async fn route(
    shared: &Shared,
    peer: SocketAddr,
    local: SocketAddr,
    method: &Method,
    raw_path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    labels_out: &mut Option<Labels>,
) -> (&'static str, Reply) {
    let subtree = shared.assets_dir.as_ref().map(|_| "/assets");
    let path = match clean_target(method, raw_path, raw_query, subtree) {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let mut select = || {
        let (labels, warnings) = labels_from_query(raw_query);
        for w in &warnings {
            tracing::warn!(target: "kindling::http", warning = ?w, "query label dropped");
        }
        *labels_out = Some(labels.clone());
        labels
    };
    match path.as_str() {
        "/" => ("home", Reply::sniffed(render::HOME)),
        "/boot.ipxe" | "/boot.ipxe.0" => ("boot.ipxe", Reply::sniffed(render::BOOTSTRAP_IPXE)),
        "/ipxe" => ("ipxe", boot_script(shared, &select(), render::ipxe_script)),
        "/grub" => ("grub", boot_script(shared, &select(), render::grub_config)),
        "/ignition" | "/generic" | "/cloud" | "/metadata" => {
            let labels = select();
            let endpoint = &path[1..];
            if let Err(refused) = check_binding(shared, &labels, peer) {
                let name = match endpoint {
                    "ignition" => "ignition",
                    "generic" => "generic",
                    "cloud" => "cloud",
                    _ => "metadata",
                };
                return (name, refused);
            }
            match endpoint {
                "ignition" => ("ignition", ignition(shared, &labels, raw_query)),
                "generic" => (
                    "generic",
                    generic(shared, &labels, raw_query, headers, Area::Generic),
                ),
                "cloud" => (
                    "cloud",
                    generic(shared, &labels, raw_query, headers, Area::Cloud),
                ),
                _ => ("metadata", metadata(shared, &labels, raw_query)),
            }
        }
        "/healthz" => (
            "healthz",
            Reply::new(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        ),
        p => {
            if let (Some(rest), Some(dir)) =
                (p.strip_prefix("/assets/"), shared.assets_dir.as_deref())
            {
                return (
                    "assets",
                    assets(
                        dir,
                        rest,
                        raw_path,
                        raw_query,
                        headers,
                        shared.asset_listings,
                    )
                    .await,
                );
            }
            if let Some(name) = p.strip_prefix("/tftp/")
                && let Some(file) = shared.boot_files.get(name)
            {
                return ("tftp", serve_trusted_file(file, headers).await);
            }
            let ext = ExtRequest {
                method,
                path: p,
                raw_query,
                headers,
                peer,
                local,
            };
            for e in &shared.extensions {
                if let Some(fut) = e.handle(&ext) {
                    return (e.name(), fut.await);
                }
            }
            ("none", Reply::not_found(format!("no endpoint {p}")))
        }
    }
}

/// The opt-in Ignition binding: `Err(403)` when it is on and the request may
/// not have the per-machine answers.
fn check_binding(shared: &Shared, labels: &Labels, peer: SocketAddr) -> Result<(), Reply> {
    let Some(binding) = &shared.binding else {
        return Ok(());
    };
    let ip = peer.ip().to_canonical();
    let refuse = |why: String| {
        Err(Reply::error(StatusCode::FORBIDDEN, "403 Forbidden")
            .with_reason(format!("ignition binding: {why}")))
    };
    // Selection uses the `mac` label; a `MAC` (any other case of the key) may
    // feed templates: every one of them must pass.
    if !labels.contains_key("mac") {
        return refuse(format!(
            "request from {ip} carries no mac label (required while binding is on)"
        ));
    }
    for (k, mac) in labels {
        if k.eq_ignore_ascii_case("mac")
            && let Err(why) = binding.check(mac, ip)
        {
            return refuse(why);
        }
    }
    Ok(())
}

fn describe(labels: &Labels) -> String {
    let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", l.join(", "))
}

/// The group for these labels, or a 404 saying why.
fn pick_group(snap: &Snapshot, labels: &Labels) -> Result<Arc<Group>, Reply> {
    snap.select(labels)
        .cloned()
        .ok_or_else(|| Reply::not_found(format!("no group matched labels {}", describe(labels))))
}

fn boot_script(
    shared: &Shared,
    labels: &Labels,
    render_fn: fn(Option<&kindling_model::Boot>) -> Option<String>,
) -> Reply {
    let snap = shared.snapshot.load();
    let group = match pick_group(&snap, labels) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut r = match snap.profile_for(&group) {
        Err(e) => Reply::not_found(e.to_string()),
        Ok(p) => match render_fn(p.boot.as_ref()) {
            Some(body) => {
                let mut r = Reply::sniffed(body);
                r.profile = Some(p.id.clone());
                r
            }
            None => {
                let mut r =
                    Reply::not_found(format!("profile {:?} has no boot section", p.file_id));
                r.profile = Some(p.id.clone());
                r
            }
        },
    };
    r.group = Some(group.file_id.to_string());
    r
}

fn read_reason(kind: &str, id: &str, e: &ReadError) -> String {
    match e {
        ReadError::NotFound(_) => format!("{kind} file {id:?} does not exist"),
        other => format!("{kind} file {id:?}: {other}"),
    }
}

fn ignition(shared: &Shared, labels: &Labels, raw_query: &str) -> Reply {
    let snap = shared.snapshot.load();
    let group = match pick_group(&snap, labels) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut r = ignition_for(shared, &snap, &group, labels, raw_query);
    r.group = Some(group.file_id.to_string());
    r
}

fn ignition_for(
    shared: &Shared,
    snap: &Snapshot,
    group: &Group,
    labels: &Labels,
    raw_query: &str,
) -> Reply {
    let profile = match snap.profile_for(group) {
        Ok(p) => p,
        Err(e) => return Reply::not_found(e.to_string()),
    };
    let with_profile = |mut r: Reply| {
        r.profile = Some(profile.id.clone());
        r
    };
    let id = &profile.ignition_id;
    if id.is_empty() {
        return with_profile(Reply::not_found(format!(
            "profile {:?} has no ignition_id",
            profile.file_id
        )));
    }
    let bytes = match shared.data.read(Area::Ignition, id) {
        Ok(b) => b,
        Err(e) => return with_profile(Reply::not_found(read_reason("ignition", id, &e))),
    };
    if id.ends_with(".ign") || id.ends_with(".ignition") {
        return with_profile(Reply::new(StatusCode::OK, "application/json", bytes));
    }
    let src = String::from_utf8_lossy(&bytes);
    let data = render::template_data(group, labels, raw_query);
    let rendered = match render::render_template(&src, &data) {
        Ok(s) => s,
        Err(e) => return with_profile(Reply::not_found(format!("template ignition/{id}: {e}"))),
    };
    match &shared.translator {
        None => with_profile(Reply::not_found(format!(
            "ignition/{id} is a Butane template and this build has no Butane translator"
        ))),
        Some(t) => match t.translate(&rendered) {
            Ok(json) => with_profile(Reply::new(StatusCode::OK, "application/json", json)),
            Err(e) => with_profile(Reply::not_found(format!(
                "Butane translation of ignition/{id}: {e}"
            ))),
        },
    }
}

fn generic(
    shared: &Shared,
    labels: &Labels,
    raw_query: &str,
    headers: &HeaderMap,
    area: Area,
) -> Reply {
    let snap = shared.snapshot.load();
    let group = match pick_group(&snap, labels) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut r = (|| {
        let profile = snap
            .profile_for(&group)
            .map_err(|e| Reply::not_found(e.to_string()))?;
        let (kind, id) = match area {
            Area::Cloud => ("cloud", &profile.cloud_id),
            _ => ("generic", &profile.generic_id),
        };
        let fail = |msg: String| {
            let mut r = Reply::not_found(msg);
            r.profile = Some(profile.id.clone());
            r
        };
        if id.is_empty() {
            return Err(fail(format!(
                "profile {:?} has no {kind}_id",
                profile.file_id
            )));
        }
        let bytes = shared
            .data
            .read(area, id)
            .map_err(|e| fail(read_reason(kind, id, &e)))?;
        let data = render::template_data(&group, labels, raw_query);
        let out = render::render_template(&String::from_utf8_lossy(&bytes), &data)
            .map_err(|e| fail(format!("template {kind}/{id}: {e}")))?;
        if area == Area::Cloud {
            let first = out.split('\n').next().unwrap_or("").trim_end_matches('\r');
            if first != "#cloud-config" && !out.starts_with("#!") {
                return Err(fail(format!(
                    "cloud/{id} renders neither a #cloud-config nor a script"
                )));
            }
        }
        let ct = render::detect_content_type(out.as_bytes());
        let mut r = content::serve_bytes(headers, Bytes::from(out), ct);
        r.profile = Some(profile.id.clone());
        Ok(r)
    })()
    .unwrap_or_else(|e| e);
    r.group = Some(group.file_id.to_string());
    r
}

fn metadata(shared: &Shared, labels: &Labels, raw_query: &str) -> Reply {
    let snap = shared.snapshot.load();
    let group = match pick_group(&snap, labels) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let data = render::template_data(&group, labels, raw_query);
    let mut r = Reply::new(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        render::metadata_env(&data),
    );
    r.group = Some(group.file_id.to_string());
    r
}

async fn serve_trusted_file(path: &Path, headers: &HeaderMap) -> Reply {
    match tokio::fs::File::open(path).await {
        Ok(file) => match file.metadata().await {
            Ok(m) if m.is_file() => content::serve_open_file(headers, file, &m, path).await,
            Ok(_) => Reply::not_found(format!("{} is not a file", path.display())),
            Err(e) => Reply::not_found(format!("{}: {e}", path.display())),
        },
        Err(e) => Reply::not_found(format!("{}: {e}", path.display())),
    }
}

/// Opens `name` below the assets directory, confined (off the async threads).
async fn open_asset(dir: &Path, name: &str) -> Result<Opened, ReadError> {
    let (dir, name) = (dir.to_path_buf(), name.to_string());
    tokio::task::spawn_blocking(move || open_confined(&dir, "assets", &name))
        .await
        .unwrap_or_else(|e| {
            Err(ReadError::Io {
                path: "assets".into(),
                source: std::io::Error::other(e.to_string()),
            })
        })
}

fn asset_error(rest: &str, dir: &Path, e: ReadError) -> Reply {
    match e {
        ReadError::Escapes(..) => Reply::not_found(format!(
            "asset {rest:?} resolves outside the assets directory (refused)"
        )),
        ReadError::NotFound(p) if Path::new(&p) == dir => {
            Reply::not_found(format!("assets directory {} is missing", dir.display()))
        }
        other => Reply::not_found(format!("asset {rest:?}: {other}")),
    }
}

/// `/assets/`: Go's `http.FileServer`, confined to the assets directory:
/// every name is opened below a handle of that directory with the kernel
/// refusing symlinks that leave it (unlike matchbox), and type, size and
/// modification time come from the opened file. Directory listings only when
/// `listings` is on.
async fn assets(
    dir: &Path,
    rest: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    listings: bool,
) -> Reply {
    if hidden_asset(rest) {
        return Reply::not_found(format!(
            "asset {rest:?} is internal (a dotfile or kindling fcos state): never served"
        ));
    }
    if raw_path.ends_with("/index.html") {
        return Reply::local_redirect("./", raw_query);
    }
    let name = rest.trim_end_matches('/');
    let opened = match open_asset(dir, name).await {
        Ok(o) => o,
        Err(e) => return asset_error(rest, dir, e),
    };
    let last = raw_path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("");
    if opened.meta.is_dir() {
        if !raw_path.ends_with('/') {
            return Reply::local_redirect(&format!("{}/", paths::escape_path(last)), raw_query);
        }
        match open_asset(dir, &format!("{name}/index.html")).await {
            Ok(index) if index.meta.is_file() => {
                let path = index.path.clone();
                let meta = index.meta.clone();
                let file = tokio::fs::File::from_std(index.file);
                return content::serve_open_file(headers, file, &meta, &path).await;
            }
            Ok(_) | Err(ReadError::NotFound(_)) => {}
            Err(e) => return asset_error(&format!("{name}/index.html"), dir, e),
        }
        if !listings {
            return Reply::not_found(format!(
                "asset {rest:?} is a directory: directory listings are disabled"
            ));
        }
        let modified = opened.meta.modified().ok();
        if content::not_modified_since(headers, modified) {
            return content::not_modified(modified);
        }
        let mut r = listing(opened, name).await;
        if let Some(m) = modified
            && let Ok(v) = httpdate::fmt_http_date(m).parse()
        {
            r.headers.insert(header::LAST_MODIFIED, v);
        }
        return r;
    }
    if !opened.meta.is_file() {
        return Reply::not_found(format!("asset {rest:?} is not a regular file"));
    }
    if raw_path.ends_with('/') {
        return Reply::local_redirect(&format!("../{}", paths::escape_path(last)), raw_query);
    }
    let meta = opened.meta.clone();
    let path = opened.path.clone();
    content::serve_open_file(
        headers,
        tokio::fs::File::from_std(opened.file),
        &meta,
        &path,
    )
    .await
}

/// The directory `kindling fcos` keeps its streams in, under `assets/`.
const FCOS_DIR: &str = "fedora-coreos";

/// Whether `rest` (a clean path below `/assets/`) names something that is
/// never served nor listed, whatever is on disk: any path component that
/// starts with `.` (dotfiles and dot-directories; among them what `kindling
/// fcos` stages and locks: `.partial/`, `.lock`, and the `.<name>.<pid>.tmp`
/// files of its atomic writes), and the `state.json` of a stream below
/// `fedora-coreos/`. matchbox (Go's `http.FileServer`) serves both; see
/// docs/matchbox-compatibility.md. A release's `release.json` is served: it
/// holds only what was verified (names, sha256, sources, signing keys).
pub fn hidden_asset(rest: &str) -> bool {
    let comps: Vec<&str> = rest.split('/').filter(|c| !c.is_empty()).collect();
    comps.iter().any(|c| c.starts_with('.'))
        || (comps.first() == Some(&FCOS_DIR)
            && comps.len() > 1
            && comps.last() == Some(&"state.json"))
}

/// A directory listing of `name` (below `/assets/`), read through the opened
/// directory's handle; [`hidden_asset`]s are left out.
async fn listing(opened: Opened, name: &str) -> Reply {
    let dir_name = name.to_string();
    let shown = opened.path.display().to_string();
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> {
        let dir = opened.into_dir();
        let mut names = Vec::new();
        for e in dir.entries()? {
            let Ok(e) = e else { break };
            let mut name = e.file_name().to_string_lossy().into_owned();
            if hidden_asset(&format!("{dir_name}/{name}")) {
                continue;
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                name.push('/');
            }
            names.push(name);
        }
        Ok(names)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    let mut names = match read {
        Ok(n) => n,
        Err(e) => {
            return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "Error reading directory")
                .with_reason(format!("{shown}: {e}"));
        }
    };
    names.sort();
    let mut s = String::from(
        "<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>\n",
    );
    for n in names {
        let mut href = paths::escape_path(&n);
        if n.split('/').next().is_some_and(|f| f.contains(':')) {
            href = format!("./{href}");
        }
        let text = body::html_escape(&n);
        s.push_str(&format!("<a href=\"{href}\">{text}</a>\n"));
    }
    s.push_str("</pre>\n");
    Reply::new(StatusCode::OK, "text/html; charset=utf-8", s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const ALLOWED: &str = "52:54:00:00:00:01";

    /// Allows only `ALLOWED` from 127.0.0.1.
    struct FakeBinding;

    impl MachineBinding for FakeBinding {
        fn check(&self, mac: &str, peer: std::net::IpAddr) -> Result<(), String> {
            if mac == ALLOWED && peer == std::net::IpAddr::from([127, 0, 0, 1]) {
                Ok(())
            } else {
                Err(format!("{peer} did not boot {mac}"))
            }
        }
    }

    /// Keeps (path and query, status, reason) of every request.
    #[derive(Default)]
    struct Seen(Mutex<Vec<(String, u16, Option<String>)>>);

    impl RequestObserver for Seen {
        fn request(&self, r: &RequestRecord<'_>) {
            self.0.lock().unwrap().push((
                r.path.to_string(),
                r.status,
                r.reason.map(str::to_string),
            ));
        }
    }

    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn data_dir(tag: &str) -> TempDir {
        let root = std::env::temp_dir().join(format!(
            "kindling-http-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let dd = DataDir::new(&root);
        dd.ensure_layout().unwrap();
        let w = |p: &str, s: &str| std::fs::write(root.join(p), s).unwrap();
        w(
            "profiles/p.json",
            r#"{"id":"p","boot":{"kernel":"/k"},"ignition_id":"m.ign","generic_id":"g.tmpl","cloud_id":"c.tmpl"}"#,
        );
        w("ignition/m.ign", r#"{"ignition":{"version":"3.4.0"}}"#);
        w("generic/g.tmpl", "generic file\n");
        w("cloud/c.tmpl", "#cloud-config\n");
        w(
            "groups/by-mac.json",
            &format!(
                r#"{{"id":"m","profile":"p","selector":{{"mac":"{ALLOWED}"}},"metadata":{{"k":"v"}}}}"#
            ),
        );
        w(
            "groups/by-uuid.json",
            r#"{"id":"u","profile":"p","selector":{"uuid":"u1"}}"#,
        );
        w(
            "groups/other.json",
            r#"{"id":"o","profile":"p","selector":{"mac":"52:54:00:00:00:02"}}"#,
        );
        std::fs::create_dir_all(root.join("assets/sub/site")).unwrap();
        w("assets/sub/a.txt", "a\n");
        w("assets/sub/site/index.html", "<html>index</html>\n");
        TempDir(root)
    }

    async fn start(
        root: &Path,
        configure: impl FnOnce(&mut Shared),
    ) -> (SocketAddr, Arc<Seen>, CancelOnDrop) {
        let dd = DataDir::new(root);
        let snapshot = kindling_model::Loader::new(dd.clone()).load();
        assert!(snapshot.problems.is_empty(), "{:?}", snapshot.problems);
        let mut shared = Shared::new(dd, snapshot);
        let seen = Arc::new(Seen::default());
        shared.observer = Some(seen.clone());
        configure(&mut shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = tokio_util::sync::CancellationToken::new();
        tokio::spawn(serve(listener, Arc::new(shared), cancel.clone()));
        (addr, seen, CancelOnDrop(cancel))
    }

    struct CancelOnDrop(tokio_util::sync::CancellationToken);

    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.0.cancel();
        }
    }

    /// One HTTP/1.1 request over a real socket: (status, body).
    async fn get(addr: SocketAddr, target: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut raw))
            .await
            .expect("response within 60 s")
            .unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text[9..12].parse().unwrap();
        let body = text.split_once("\r\n\r\n").unwrap().1.to_string();
        (status, body)
    }

    fn reason_of(seen: &Seen, path_query: &str) -> Option<String> {
        let path = path_query.split('?').next().unwrap();
        seen.0
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(p, _, _)| p == path)
            .and_then(|(_, _, r)| r.clone())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn binding_refuses_strangers_and_requests_without_mac() {
        let tmp = data_dir("binding");
        let (addr, seen, _stop) = start(&tmp.0, |s| s.binding = Some(Arc::new(FakeBinding))).await;
        for ep in ["/ignition", "/generic", "/cloud", "/metadata"] {
            // The machine that booted from this address: served.
            let (status, body) = get(addr, &format!("{ep}?mac=52-54-00-00-00-01")).await;
            assert_eq!(status, 200, "{ep}: {body}");
            // Another MAC: refused, with the binding's reason in the log.
            let target = format!("{ep}?mac=52:54:00:00:00:02");
            let (status, body) = get(addr, &target).await;
            assert_eq!((status, body.as_str()), (403, "403 Forbidden\n"), "{ep}");
            let reason = reason_of(&seen, &target).unwrap();
            assert_eq!(
                reason,
                "ignition binding: 127.0.0.1 did not boot 52:54:00:00:00:02"
            );
            // No MAC (a uuid selector): refused while binding is on.
            let (status, _) = get(addr, &format!("{ep}?uuid=u1")).await;
            assert_eq!(status, 403, "{ep}");
            let reason = reason_of(&seen, ep).unwrap();
            assert!(reason.contains("carries no mac label"), "{reason}");
            // A second, differently cased MAC key cannot smuggle a stranger in.
            let (status, _) = get(addr, &format!("{ep}?mac={ALLOWED}&MAC=52:54:00:00:00:02")).await;
            assert_eq!(status, 403, "{ep}");
        }
        // Boot scripts are not per-machine secrets: unaffected.
        assert_eq!(get(addr, "/ipxe?mac=52:54:00:00:00:02").await.0, 200);
        assert_eq!(get(addr, "/ipxe?uuid=u1").await.0, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_binding_matchbox_answers_anyone() {
        let tmp = data_dir("nobinding");
        let (addr, _seen, _stop) = start(&tmp.0, |_| {}).await;
        for ep in ["/ignition", "/generic", "/cloud", "/metadata"] {
            assert_eq!(
                get(addr, &format!("{ep}?mac=52:54:00:00:00:02")).await.0,
                200
            );
            assert_eq!(get(addr, &format!("{ep}?uuid=u1")).await.0, 200);
        }
    }

    #[test]
    fn hidden_assets() {
        for hidden in [
            ".env",
            "a/.git/config",
            "fedora-coreos/stable/.partial/",
            "fedora-coreos/stable/.partial/42.1/k",
            "fedora-coreos/stable/.lock",
            "fedora-coreos/stable/state.json",
            "fedora-coreos/stable-aarch64/state.json",
            "fedora-coreos/stable/.state.json.7.tmp",
        ] {
            assert!(hidden_asset(hidden), "{hidden}");
        }
        for served in [
            "",
            "fedora-coreos/",
            "fedora-coreos/stable/",
            "fedora-coreos/stable/42.1/release.json",
            "fedora-coreos/stable/42.1/k.sig",
            "state.json",
            "other/stable/state.json",
            "a..b/c",
        ] {
            assert!(!hidden_asset(served), "{served}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn asset_listings_are_off_by_default() {
        let tmp = data_dir("listings");
        let (addr, seen, _stop) = start(&tmp.0, |_| {}).await;
        for dir in ["/assets/", "/assets/sub/"] {
            assert_eq!(get(addr, dir).await.0, 404, "{dir}");
            let reason = reason_of(&seen, dir).unwrap();
            assert!(
                reason.contains("directory listings are disabled"),
                "{reason}"
            );
        }
        // Files and index.html are still served.
        assert_eq!(get(addr, "/assets/sub/a.txt").await, (200, "a\n".into()));
        assert_eq!(
            get(addr, "/assets/sub/site/").await,
            (200, "<html>index</html>\n".into())
        );
        drop(_stop);

        let (addr, _seen, _stop) = start(&tmp.0, |s| s.asset_listings = true).await;
        let (status, body) = get(addr, "/assets/sub/").await;
        assert_eq!(status, 200);
        assert!(body.contains("<a href=\"a.txt\">a.txt</a>"), "{body}");
        assert!(body.contains("<a href=\"site/\">site/</a>"), "{body}");
    }
}
