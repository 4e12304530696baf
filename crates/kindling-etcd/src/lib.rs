//! Kindling's shared store in etcd: what several servers of a fleet share.
//!
//! * [`Store`]: the connection (endpoints, TLS client certificates, a key prefix), every
//!   call bounded in time and retried on another member when one is unreachable;
//! * [`EtcdObjects`]: matchbox's objects (groups, profiles, Ignition, generic, cloud) as
//!   keys below the prefix that mirror the data directory (`<prefix>groups/<id>.json`),
//!   written with compare-and-swap on the modification revision (the REST API's ETag);
//! * [`mirror`]: every server's in-memory copy of those objects: a range read at one
//!   revision, then a watch from that revision; a lost watch or a compaction re-reads and
//!   resumes; while etcd is unreachable the last good copy keeps serving, and how stale it
//!   is can be read ([`mirror::Health`]). The request path never waits on etcd.

pub mod election;
pub mod mirror;
mod objects;

use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

pub use etcd_client::Error as EtcdError;
pub use objects::EtcdObjects;

/// Where the store is and how to reach it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Client URLs of the members (`http://10.0.0.1:2379`, `https://…` with TLS).
    pub endpoints: Vec<String>,
    /// Every key Kindling reads or writes starts with it (`/kindling/`).
    pub prefix: String,
    /// TLS: the CA that signed the members' certificates, and this server's client
    /// certificate and key (etcd's `--client-cert-auth`).
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Longest wait for one call (connecting included).
    pub timeout: Duration,
}

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
    #[error("reading {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        let kind = match &e {
            Error::Timeout(_) => std::io::ErrorKind::TimedOut,
            Error::Etcd(_) => std::io::ErrorKind::ConnectionRefused,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e.to_string())
    }
}

/// A connection to the store: cheap to clone (one channel to all members).
#[derive(Clone)]
pub struct Store {
    client: Client,
    /// The same connection options without a per-call timeout, for calls that wait on
    /// purpose (an election's campaign).
    long: Client,
    prefix: String,
    timeout: Duration,
    /// The revision of the last write this process made (shared by the clones).
    written: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// How many times a call is tried when a member does not answer (the channel balances
/// over the members, so the next try usually reaches another one).
const TRIES: u32 = 4;

impl Store {
    /// Connects (lazily: an unreachable store fails the first call, not this one).
    pub async fn connect(s: &Settings) -> Result<Store, Error> {
        if s.endpoints.is_empty() {
            return Err(Error::Invalid("[store] endpoints is empty".into()));
        }
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(s.timeout)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5))
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        if let Some(tls) = tls(s)? {
            opts = opts.with_tls(tls);
        }
        let long = Client::connect(&s.endpoints, Some(opts.clone())).await?;
        let client = Client::connect(&s.endpoints, Some(opts.with_timeout(s.timeout))).await?;
        Ok(Store {
            client,
            long,
            prefix: normalize_prefix(&s.prefix),
            timeout: s.timeout,
            written: Default::default(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full key of a relative path (`groups/web.json`).
    pub fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    /// A client whose calls have no time limit (they may wait on purpose).
    pub fn long_client(&self) -> Client {
        self.long.clone()
    }

    /// The client, for what this crate does not wrap (tests, elections).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Runs `call` with a fresh client handle, bounded by the timeout, tried again on
    /// another member when the one reached is unavailable.
    pub(crate) async fn call<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        self.call_tries(call).await.map(|(v, _)| v)
    }

    /// [`Store::call`], also saying how many tries it took (a write tried again may have
    /// been done by an earlier try whose answer was lost).
    pub(crate) async fn call_tries<T, F, Fut>(&self, call: F) -> Result<(T, u32), Error>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut last = None;
        for attempt in 0..TRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            match tokio::time::timeout(self.timeout, call(self.client.clone())).await {
                Ok(Ok(v)) => return Ok((v, attempt + 1)),
                Ok(Err(e)) if retryable(&e) => last = Some(Error::Etcd(e)),
                Ok(Err(e)) => return Err(Error::Etcd(e)),
                Err(_) => last = Some(Error::Timeout(self.timeout)),
            }
        }
        Err(last.unwrap_or(Error::Timeout(self.timeout)))
    }

    /// Notes the revision of a write this process made.
    pub(crate) fn wrote(&self, revision: i64) {
        self.written
            .fetch_max(revision, std::sync::atomic::Ordering::Relaxed);
    }

    /// The store's revisions started over (rebuilt, restored): writes made before count
    /// from `revision`.
    pub(crate) fn restart_writes(&self, revision: i64) {
        self.written
            .store(revision, std::sync::atomic::Ordering::Relaxed);
    }

    /// The revision of the last write this process made (0: none yet).
    pub fn last_write(&self) -> i64 {
        self.written.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn tls(s: &Settings) -> Result<Option<etcd_client::TlsOptions>, Error> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|source| Error::File {
            path: p.display().to_string(),
            source,
        })
    };
    let mut tls = etcd_client::TlsOptions::new();
    let mut any = false;
    if let Some(ca) = &s.ca_file {
        tls = tls.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
        any = true;
    }
    match (&s.cert_file, &s.key_file) {
        (Some(c), Some(k)) => {
            tls = tls.identity(etcd_client::Identity::from_pem(read(c)?, read(k)?));
            any = true;
        }
        (None, None) => {}
        _ => {
            return Err(Error::Invalid(
                "[store] cert_file and key_file go together".into(),
            ));
        }
    }
    if !any && s.endpoints.iter().any(|e| e.starts_with("https://")) {
        return Err(Error::Invalid(
            "[store] endpoints use https:// but no ca_file is set".into(),
        ));
    }
    Ok(any.then_some(tls))
}

/// Writes one object (`rel`: its path in a data directory) whatever is there; the new
/// revision.
pub async fn put(store: &Store, rel: &str, bytes: Vec<u8>) -> Result<i64, Error> {
    let key = store.key(rel);
    let resp = store
        .call(|mut c| {
            let (key, bytes) = (key.clone(), bytes.clone());
            async move { c.put(key, bytes, None).await }
        })
        .await?;
    let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
    store.wrote(rev);
    Ok(rev)
}

/// A prefix ends with `/` (`/kindling` and `/kindling/` are the same prefix).
pub fn normalize_prefix(p: &str) -> String {
    let p = p.trim();
    if p.ends_with('/') {
        p.to_string()
    } else {
        format!("{p}/")
    }
}

/// Errors worth another try: the member reached is down, has no leader, or timed out.
fn retryable(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => matches!(
            s.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled
                | tonic::Code::Unknown
        ),
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}
