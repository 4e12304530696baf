//! State shared by all requests, and the traits through which the rest of Kindling plugs
//! into the HTTP service (extensions, observers, the Butane translator, the Ignition binding).

use crate::endpoint::Endpoint;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::{HeaderMap, Method};
use kindling_model::{Area, DataDir, Labels, Machines, Snapshot};

use crate::body::Reply;

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
    /// The data snapshot this request is served with: loaded once for it (an `ArcSwap`
    /// load, no lock), the same one for every extension asked. `None` on the admin
    /// listener, which serves nothing from the data directory.
    pub snapshot: Option<&'a Snapshot>,
    /// The request body: read (up to [`MAX_ADMIN_BODY_BYTES`]) on the admin listener for
    /// PUT, POST and PATCH after the credentials check; empty otherwise.
    pub body: &'a [u8],
}

/// The largest request body the admin listener reads (the largest template the data
/// directory loads, plus room); a larger one gets 413 before it is read.
pub const MAX_ADMIN_BODY_BYTES: usize = 8 * 1024 * 1024 + 64 * 1024;

/// More endpoints from other parts of Kindling (menus, cache, API, metrics,
/// dashboard). Consulted after the matchbox routes, in order; the first that
/// returns `Some` answers.
pub trait Extension: Send + Sync {
    /// The endpoint it serves (the request log's `endpoint` field, metrics, timelines).
    fn name(&self) -> Endpoint;
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
    pub endpoint: Endpoint,
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
    /// The current data-directory snapshot, swapped atomically on reload (shared with the
    /// gRPC API, which selects from it).
    pub snapshot: Arc<ArcSwap<Snapshot>>,
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
    /// Install-once and discovery state (`None`: no state directory; `install_once` is
    /// then never acted on and nothing is recorded).
    pub machines: Option<Arc<Machines>>,
    /// The profile machines no group selects are booted with (`None`: a 404, as matchbox).
    pub discovery_profile: Option<String>,
}

impl Shared {
    pub fn new(data: DataDir, snapshot: Snapshot) -> Shared {
        let assets = data.area(Area::Assets);
        Shared {
            snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
            data,
            assets_dir: Some(assets),
            boot_files: HashMap::new(),
            translator: None,
            observer: None,
            extensions: Vec::new(),
            asset_listings: false,
            binding: None,
            machines: None,
            discovery_profile: None,
        }
    }
}
