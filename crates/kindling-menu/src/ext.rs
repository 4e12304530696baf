//! The HTTP endpoints, as `kindling_http::Extension`s.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::{HeaderMap, Method, StatusCode, header};
use kindling_http::content::{self, Ranged};
use kindling_http::{ExtRequest, Extension, Reply};
use kindling_model::{Labels, Snapshot};

use crate::cache::{Cache, CacheError, Lookup, Opened, Start};
use crate::catalog::Arch;
use crate::guard::{self, Asker, Refusal};
use crate::menu::{Choice, Menu, MenuRequest, Platform};

type Fut<'a> = Pin<Box<dyn Future<Output = Reply> + Send + 'a>>;

/// Where per-machine menu defaults come from besides `[[menu.machines]]`.
/// Both are asked with the snapshot the request is served with
/// ([`ExtRequest::snapshot`]): nothing is held between requests.
pub trait MenuDefaults: Send + Sync {
    /// The default entry (and seconds of menu; 0 = boot straight away) for
    /// a machine with these labels (`mac`, `uuid`, `arch`, ...).
    fn menu_default(&self, snap: &Snapshot, labels: &Labels) -> Option<Choice>;

    /// Whether a profile boots files of `entry` on `arch` from the cache
    /// (its kernel, an initrd or an argument contains
    /// `/cache/<entry>/<arch>/`): then any client may start their fetch.
    fn profile_routes(&self, snap: &Snapshot, entry: &str, arch: Arch) -> bool {
        let _ = (snap, entry, arch);
        false
    }
}

/// The data directory's groups and profiles: the group selected for the
/// labels (matchbox rules) may set `menu_default` (an entry id) and
/// `menu_timeout` (seconds); a profile may boot from `/cache/`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GroupDefaults;

impl MenuDefaults for GroupDefaults {
    fn menu_default(&self, snap: &Snapshot, labels: &Labels) -> Option<Choice> {
        let g = snap.select(labels)?;
        group_choice(&g.metadata())
    }

    fn profile_routes(&self, snap: &Snapshot, entry: &str, arch: Arch) -> bool {
        let needle = format!("/cache/{entry}/{}/", arch.as_str());
        snap.profiles.values().any(|p| {
            p.boot.as_ref().is_some_and(|b| {
                std::iter::once(&b.kernel)
                    .chain(&b.initrd)
                    .chain(&b.args)
                    .any(|s| s.contains(&needle))
            })
        })
    }
}

/// Reads `menu_default` / `menu_timeout` from a group's metadata.
pub fn group_choice(metadata: &serde_json::Map<String, serde_json::Value>) -> Option<Choice> {
    let entry = metadata.get("menu_default")?.as_str()?.to_string();
    let timeout_secs = match metadata.get("menu_timeout") {
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0),
        None => 0,
    };
    Some(Choice {
        entry,
        timeout_secs,
    })
}

/// `/menu.ipxe`.
pub struct MenuExtension {
    menu: Arc<Menu>,
    defaults: Option<Arc<dyn MenuDefaults>>,
    cache: Option<Arc<Cache>>,
}

impl MenuExtension {
    pub fn new(menu: Arc<Menu>, defaults: Option<Arc<dyn MenuDefaults>>) -> MenuExtension {
        MenuExtension {
            menu,
            defaults,
            cache: None,
        }
    }

    /// Records, per client IP, the entries of the menus handed out: they
    /// route that client to those entries (see [`Cache::is_routed`]).
    pub fn with_cache(mut self, cache: Option<Arc<Cache>>) -> MenuExtension {
        self.cache = cache;
        self
    }
}

/// `http://host[:port]` of this server for absolute URLs: `menu.base_url`
/// when set, else the local address the request arrived on. Never the
/// request's Host header (a client could send every URL of the menu
/// elsewhere).
pub fn base_url(configured: Option<&str>, local: std::net::SocketAddr) -> String {
    if let Some(b) = configured {
        return b.trim_end_matches('/').to_string();
    }
    let ip = guard::client_ip(local.ip());
    let port = local.port();
    match ip {
        std::net::IpAddr::V4(v4) if port == 80 => format!("http://{v4}"),
        std::net::IpAddr::V4(v4) => format!("http://{v4}:{port}"),
        // No zone: iPXE could not use one, and it is only meaningful locally.
        std::net::IpAddr::V6(v6) if port == 80 => format!("http://[{v6}]"),
        std::net::IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
    }
}

impl Extension for MenuExtension {
    fn name(&self) -> kindling_http::Endpoint {
        kindling_http::Endpoint::Menu
    }

    fn handle<'a>(&'a self, req: &'a ExtRequest<'a>) -> Option<Fut<'a>> {
        if req.path != "/menu.ipxe" || !self.menu.config().enabled {
            return None;
        }
        Some(Box::pin(async move { self.answer(req) }))
    }
}

impl MenuExtension {
    fn defaults_for(&self, req: &ExtRequest<'_>, labels: &Labels) -> Option<Choice> {
        let (d, snap) = self.defaults.as_ref().zip(req.snapshot)?;
        d.menu_default(snap, labels)
    }

    fn answer(&self, req: &ExtRequest<'_>) -> Reply {
        let base = base_url(self.menu.config().base_url.as_deref(), req.local);
        let (labels, _) = kindling_model::labels_from_query(req.raw_query);
        let arch = labels
            .get("arch")
            .map(String::as_str)
            .filter(|a| !a.is_empty() && !a.starts_with("${"));
        let Some(arch_s) = arch else {
            return Reply::new(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                self.menu.bootstrap(&base),
            );
        };
        let Some(arch) = Arch::parse(arch_s) else {
            let mut r = Reply::new(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                format!(
                    "#!ipxe\necho Kindling has no menu for architecture {}\nprompt --timeout 10000 Press any key ||\nexit\n",
                    arch_s.replace("${", "$ {")
                ),
            );
            r.reason = Some(format!("menu: unknown architecture {arch_s:?}"));
            return r;
        };
        let platform = labels
            .get("platform")
            .and_then(|p| Platform::parse(p))
            .unwrap_or(if arch_s == "i386" {
                Platform::Pcbios
            } else {
                Platform::Efi
            });
        let mac = labels.get("mac").filter(|m| !m.is_empty());
        let choice = mac
            .and_then(|m| self.menu.machine_choice(m))
            .or_else(|| self.defaults_for(req, &labels));
        if let Some(c) = &self.cache {
            c.note_menu(
                req.peer.ip(),
                arch,
                self.menu.offered(arch, platform).into(),
            );
        }
        let body = self.menu.render(&MenuRequest {
            arch,
            platform,
            base,
            choice,
        });
        Reply::new(StatusCode::OK, "text/plain; charset=utf-8", body)
    }
}

/// `/cache/<entry>/<arch>/<file>` and `/cache/index.json`.
pub struct CacheExtension {
    cache: Arc<Cache>,
    profiles: Option<Arc<dyn MenuDefaults>>,
}

impl CacheExtension {
    pub fn new(cache: Arc<Cache>) -> CacheExtension {
        CacheExtension {
            cache,
            profiles: None,
        }
    }

    /// Also routes every client to entries that a profile of the data
    /// directory boots from `/cache/` (see [`MenuDefaults::profile_routes`]).
    pub fn with_profiles(mut self, profiles: Option<Arc<dyn MenuDefaults>>) -> CacheExtension {
        self.profiles = profiles;
        self
    }
}

impl Extension for CacheExtension {
    fn name(&self) -> kindling_http::Endpoint {
        kindling_http::Endpoint::Cache
    }

    fn handle<'a>(&'a self, req: &'a ExtRequest<'a>) -> Option<Fut<'a>> {
        let rest = req.path.strip_prefix("/cache/")?;
        Some(Box::pin(async move { self.answer(req, rest).await }))
    }
}

fn error_reply(e: &CacheError) -> Reply {
    let status = match e {
        CacheError::Unknown(_) | CacheError::Refused { .. } => {
            return Reply::not_found(format!("cache: {e}"));
        }
        CacheError::Disk { .. } | CacheError::Open { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        CacheError::Upstream { why, .. }
            if why.contains("no response within") || why.contains("sent nothing") =>
        {
            StatusCode::GATEWAY_TIMEOUT
        }
        _ => StatusCode::BAD_GATEWAY,
    };
    let msg = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    Reply::error(status, &msg).with_reason(format!("cache: {e}"))
}

fn set(h: &mut HeaderMap, name: header::HeaderName, v: &str) {
    if let Ok(v) = v.parse() {
        h.insert(name, v);
    }
}

const X_CACHE: header::HeaderName = header::HeaderName::from_static("x-kindling-cache");

/// The header `kindling cache prefetch --server` sends its operator token in.
pub const OPERATOR_HEADER: &str = "x-kindling-operator";

/// The answer to a miss that may not start a fetch.
fn refusal_reply(r: &Refusal, k: &str) -> Reply {
    let mut reply = match r {
        Refusal::Head => Reply::not_found(format!(
            "cache: {k:?} is not cached; HEAD never starts a download (a GET from a machine routed to the entry, or `kindling cache prefetch`, does)"
        )),
        Refusal::NotRouted => Reply::not_found(format!(
            "cache: {k:?} is not cached and no machine at this address is routed to it (hand it a menu offering the entry, name the file in a profile, or run `kindling cache prefetch`)"
        )),
        Refusal::Busy { running } => Reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "429 Too Many Requests: this client already has {running} downloads from upstream running"
            ),
        )
        .with_reason(format!(
            "cache: {k:?} refused: client has {running} upstream fetches running (cache.client_max_fetches)"
        )),
        Refusal::RateLimited { retry_after } => {
            let mut rep = Reply::error(
                StatusCode::TOO_MANY_REQUESTS,
                "429 Too Many Requests: too many cache misses from this client",
            )
            .with_reason(format!(
                "cache: {k:?} refused: client's cache misses over cache.client_misses_per_minute (retry in {} s)",
                retry_after.as_secs().max(1)
            ));
            set(
                &mut rep.headers,
                header::RETRY_AFTER,
                &retry_after.as_secs().max(1).to_string(),
            );
            rep
        }
        Refusal::TableFull => {
            let mut rep = Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable: too many clients downloading from upstream",
            )
            .with_reason(format!(
                "cache: {k:?} refused: every slot of the client table (cache.client_table) has fetches running"
            ));
            set(&mut rep.headers, header::RETRY_AFTER, "30");
            rep
        }
    };
    set(&mut reply.headers, X_CACHE, "refused");
    reply
}

impl CacheExtension {
    fn is_operator(&self, headers: &HeaderMap) -> bool {
        headers
            .get(OPERATOR_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| self.cache.is_operator_token(t))
    }

    /// A file neither cached nor downloading: start its fetch if allowed,
    /// else the refusal.
    fn admit(
        &self,
        req: &ExtRequest<'_>,
        entry: &str,
        arch: Arch,
        file: &str,
    ) -> Result<Lookup, Reply> {
        let k = crate::cache::key(entry, arch, file);
        let ip = guard::client_ip(req.peer.ip());
        let head = req.method == Method::HEAD;
        let operator = self.is_operator(req.headers);
        let asker = if operator {
            Asker::Operator
        } else {
            let routed = !head
                && (self.cache.is_routed(ip, entry, arch)
                    || self
                        .profiles
                        .as_ref()
                        .zip(req.snapshot)
                        .is_some_and(|(p, snap)| p.profile_routes(snap, entry, arch)));
            Asker::Client { head, routed }
        };
        let ticket = guard::decide(asker).and_then(|()| {
            if operator {
                Ok(None)
            } else {
                self.cache.try_start(ip).map(Some)
            }
        });
        match ticket {
            Ok(t) => {
                if operator {
                    tracing::info!(target: "kindling::cache", client = %ip, file = ?k, "fetch started by an operator (prefetch)");
                }
                self.cache
                    .fetch(entry, arch, file, t)
                    .map_err(|e| error_reply(&e))
            }
            Err(r) => {
                self.cache.count_refusal(&r);
                tracing::warn!(target: "kindling::cache", client = %ip, file = ?k, refusal = r.name(), "cache miss refused: no upstream fetch");
                Err(refusal_reply(&r, &k))
            }
        }
    }

    async fn answer(&self, req: &ExtRequest<'_>, rest: &str) -> Reply {
        if req.method != Method::GET && req.method != Method::HEAD {
            return Reply::not_allowed("GET, HEAD");
        }
        if rest.is_empty() || rest == "index.json" {
            return self.index_json();
        }
        let mut parts = rest.splitn(3, '/');
        let (Some(entry), Some(arch), Some(file)) = (parts.next(), parts.next(), parts.next())
        else {
            return Reply::not_found(format!("cache: {rest:?} is not <entry>/<arch>/<file>"));
        };
        let Some(arch) = Arch::parse(arch).filter(|a| a.as_str() == arch) else {
            return Reply::not_found(format!("cache: unknown architecture {arch:?}"));
        };
        let follower = match self.cache.find(entry, arch, file) {
            Ok(Some(Lookup::Disk(o))) => return serve_opened(req.headers, o, file, "hit"),
            Ok(Some(Lookup::Flight(f))) => f,
            Ok(None) => match self.admit(req, entry, arch, file) {
                Ok(Lookup::Disk(o)) => return serve_opened(req.headers, o, file, "hit"),
                Ok(Lookup::Flight(f)) => f,
                Err(r) => return r,
            },
            Err(e) => return error_reply(&e),
        };
        let range_hdr = req
            .headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // The total is needed to interpret a Range: peek at it first.
        let start = follower.start(None).await;
        match start {
            Err(e) => error_reply(&e),
            Ok(Start::Done) => self.finished(req, entry, arch, file).await,
            Ok(Start::Stream { body, total }) => {
                let content_type = content::type_by_extension(std::path::Path::new(file))
                    .unwrap_or("application/octet-stream");
                let range = range_hdr.as_deref().map(|h| content::parse_range(h, total));
                match range {
                    Some(Ranged::Unsatisfiable) => {
                        let mut r = Reply::error(
                            StatusCode::RANGE_NOT_SATISFIABLE,
                            "invalid range: failed to overlap",
                        );
                        set(
                            &mut r.headers,
                            header::CONTENT_RANGE,
                            &format!("bytes */{total}"),
                        );
                        r
                    }
                    Some(Ranged::Part(s, e)) => {
                        // A range of a file still downloading: follow it again
                        // from the start of the range (never starting a fetch).
                        drop(body);
                        match self.cache.find(entry, arch, file) {
                            Ok(Some(Lookup::Disk(o))) => serve_opened(req.headers, o, file, "hit"),
                            Ok(Some(Lookup::Flight(f))) => match f.start(Some((s, e))).await {
                                Ok(Start::Stream { body, .. }) => {
                                    let mut r = Reply::new(
                                        StatusCode::PARTIAL_CONTENT,
                                        content_type,
                                        bytes::Bytes::new(),
                                    );
                                    r.body = body.into();
                                    r.len = e - s + 1;
                                    set(
                                        &mut r.headers,
                                        header::CONTENT_RANGE,
                                        &format!("bytes {s}-{e}/{total}"),
                                    );
                                    set(&mut r.headers, header::ACCEPT_RANGES, "bytes");
                                    set(&mut r.headers, X_CACHE, "miss");
                                    r
                                }
                                Ok(Start::Done) => self.finished(req, entry, arch, file).await,
                                Err(e) => error_reply(&e),
                            },
                            Ok(None) => self.finished(req, entry, arch, file).await,
                            Err(e) => error_reply(&e),
                        }
                    }
                    Some(Ranged::Full) | None => {
                        let mut r = Reply::new(StatusCode::OK, content_type, bytes::Bytes::new());
                        r.body = body.into();
                        r.len = total;
                        set(&mut r.headers, header::ACCEPT_RANGES, "bytes");
                        set(&mut r.headers, X_CACHE, "miss");
                        r
                    }
                }
            }
        }
    }

    /// A download that finished before this request followed it: serve
    /// what it kept (never starting another fetch).
    async fn finished(&self, req: &ExtRequest<'_>, entry: &str, arch: Arch, file: &str) -> Reply {
        match self.cache.find(entry, arch, file) {
            Ok(Some(Lookup::Disk(o))) => serve_opened(req.headers, o, file, "miss"),
            Ok(_) => Reply::not_found(format!(
                "cache: {:?}: downloaded but not kept (larger than cache.max_bytes?)",
                crate::cache::key(entry, arch, file)
            )),
            Err(e) => error_reply(&e),
        }
    }

    fn index_json(&self) -> Reply {
        let held = self.cache.held();
        let total: u64 = held.iter().map(|h| h.size).sum();
        let downloading: Vec<serde_json::Value> = self
            .cache
            .in_progress()
            .into_iter()
            .map(|(k, w, t, c)| serde_json::json!({"file": k, "received": w, "total": t, "clients": c}))
            .collect();
        let v = serde_json::json!({
            "total_bytes": total,
            "files": held,
            "downloading": downloading,
            "counters": self.cache.counters(),
        });
        let mut body = serde_json::to_vec_pretty(&v).unwrap_or_default();
        body.push(b'\n');
        Reply::new(StatusCode::OK, "application/json", body)
    }
}

/// Serves an opened cached file (kindling-http's file serving: its own length and mtime
/// from `fstat`, Range, If-Modified-Since, Last-Modified) and says how it was found.
/// Opened and typed on the async thread, as the cache's lookup opens it: local disk.
fn serve_opened(headers: &HeaderMap, o: Opened, name: &str, how: &str) -> Reply {
    let typ = content::content_type_of(&o.file, std::path::Path::new(name));
    let mut r = content::serve_open_file(headers, o.file, &o.meta, typ);
    set(&mut r.headers, X_CACHE, how);
    r
}
