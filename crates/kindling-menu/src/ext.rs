//! The HTTP endpoints, as `kindling_http::Extension`s.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use hyper::{HeaderMap, Method, StatusCode, header};
use kindling_http::content::{self, Ranged};
use kindling_http::{ExtRequest, Extension, Reply};
use kindling_model::Labels;

use crate::cache::{Cache, CacheError, Lookup, Start};
use crate::catalog::Arch;
use crate::menu::{Choice, Menu, MenuRequest, Platform};

type Fut<'a> = Pin<Box<dyn Future<Output = Reply> + Send + 'a>>;

/// Where per-machine menu defaults come from besides `[[menu.machines]]`.
pub trait MenuDefaults: Send + Sync {
    /// The default entry (and seconds of menu; 0 = boot straight away) for
    /// a machine with these labels (`mac`, `uuid`, `arch`, ...).
    fn menu_default(&self, labels: &Labels) -> Option<Choice>;
}

/// Groups' metadata: the group selected for the labels (matchbox rules)
/// may set `menu_default` (an entry id) and `menu_timeout` (seconds).
impl MenuDefaults for Weak<kindling_http::Shared> {
    fn menu_default(&self, labels: &Labels) -> Option<Choice> {
        let shared = self.upgrade()?;
        let snap = shared.snapshot.load();
        let g = snap.select(labels)?;
        group_choice(&g.metadata())
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
}

impl MenuExtension {
    pub fn new(menu: Arc<Menu>, defaults: Option<Arc<dyn MenuDefaults>>) -> MenuExtension {
        MenuExtension { menu, defaults }
    }
}

/// `http://<host>` from the config or the request's Host header.
fn base_url(configured: Option<&str>, headers: &HeaderMap) -> Option<String> {
    if let Some(b) = configured {
        return Some(b.trim_end_matches('/').to_string());
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
    ok.then(|| format!("http://{host}"))
}

impl Extension for MenuExtension {
    fn name(&self) -> &'static str {
        "menu"
    }

    fn handle<'a>(&'a self, req: &'a ExtRequest<'a>) -> Option<Fut<'a>> {
        if req.path != "/menu.ipxe" || !self.menu.config().enabled {
            return None;
        }
        Some(Box::pin(async move { self.answer(req) }))
    }
}

impl MenuExtension {
    fn answer(&self, req: &ExtRequest<'_>) -> Reply {
        let Some(base) = base_url(self.menu.config().base_url.as_deref(), req.headers) else {
            return Reply::error(StatusCode::BAD_REQUEST, "400 Bad Request")
                .with_reason("menu: no usable Host header and no menu.base_url");
        };
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
            .or_else(|| self.defaults.as_ref().and_then(|d| d.menu_default(&labels)));
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
}

impl CacheExtension {
    pub fn new(cache: Arc<Cache>) -> CacheExtension {
        CacheExtension { cache }
    }
}

impl Extension for CacheExtension {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn handle<'a>(&'a self, req: &'a ExtRequest<'a>) -> Option<Fut<'a>> {
        let rest = req.path.strip_prefix("/cache/")?;
        Some(Box::pin(async move { self.answer(req, rest).await }))
    }
}

fn error_reply(e: &CacheError) -> Reply {
    let status = match e {
        CacheError::Unknown(_) => return Reply::not_found(format!("cache: {e}")),
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

impl CacheExtension {
    async fn answer(&self, req: &ExtRequest<'_>, rest: &str) -> Reply {
        if req.method != Method::GET && req.method != Method::HEAD {
            let mut r = Reply::error(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed");
            set(&mut r.headers, header::ALLOW, "GET, HEAD");
            return r;
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
        let follower = match self.cache.lookup(entry, arch, file) {
            Ok(Lookup::Disk(path)) => return serve_disk(req.headers, &path, "hit").await,
            Ok(Lookup::Flight(f)) => f,
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
            Ok(Start::Done(path)) => serve_disk(req.headers, &path, "miss").await,
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
                        // from the start of the range.
                        drop(body);
                        match self.cache.lookup(entry, arch, file) {
                            Ok(Lookup::Disk(path)) => serve_disk(req.headers, &path, "hit").await,
                            Ok(Lookup::Flight(f)) => match f.start(Some((s, e))).await {
                                Ok(Start::Stream { body, .. }) => {
                                    let mut r = Reply::new(
                                        StatusCode::PARTIAL_CONTENT,
                                        content_type,
                                        bytes::Bytes::new(),
                                    );
                                    r.body = body;
                                    r.len = e - s + 1;
                                    set(
                                        &mut r.headers,
                                        header::CONTENT_RANGE,
                                        &format!("bytes {s}-{e}/{total}"),
                                    );
                                    set(&mut r.headers, header::ACCEPT_RANGES, "bytes");
                                    set(
                                        &mut r.headers,
                                        header::HeaderName::from_static("x-kindling-cache"),
                                        "miss",
                                    );
                                    r
                                }
                                Ok(Start::Done(path)) => {
                                    serve_disk(req.headers, &path, "miss").await
                                }
                                Err(e) => error_reply(&e),
                            },
                            Err(e) => error_reply(&e),
                        }
                    }
                    Some(Ranged::Full) | None => {
                        let mut r = Reply::new(StatusCode::OK, content_type, bytes::Bytes::new());
                        r.body = body;
                        r.len = total;
                        set(&mut r.headers, header::ACCEPT_RANGES, "bytes");
                        set(
                            &mut r.headers,
                            header::HeaderName::from_static("x-kindling-cache"),
                            "miss",
                        );
                        r
                    }
                }
            }
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
        let v =
            serde_json::json!({ "total_bytes": total, "files": held, "downloading": downloading });
        let mut body = serde_json::to_vec_pretty(&v).unwrap_or_default();
        body.push(b'\n');
        Reply::new(StatusCode::OK, "application/json", body)
    }
}

async fn serve_disk(headers: &HeaderMap, path: &std::path::Path, how: &str) -> Reply {
    let meta = match tokio::fs::metadata(path).await {
        Ok(m) => m,
        Err(e) => return Reply::not_found(format!("cache: {}: {e}", path.display())),
    };
    let mut r = content::serve_file(headers, path, &meta).await;
    set(
        &mut r.headers,
        header::HeaderName::from_static("x-kindling-cache"),
        how,
    );
    r
}
