//! What both management APIs (matchbox's gRPC, and the REST objects API of the admin
//! listener) do, said once in [`Api`]: files through [`kindling_model::store::Objects`]
//! (atomic, durable, confined, preconditions checked with the write), selection through
//! the server's current snapshot (the same index `/ipxe` uses), a log line per write.
//!
//! A write returns once the server's snapshot holds it: the reload loop is asked to reload
//! and answers when the new snapshot is in place, so a `SelectGroup` or an `/ipxe` request
//! made after a `GroupPut` returns sees the group (bounded wait: if the reload loop does not
//! answer within [`SETTLE`], the write still stands and the next reload shows it).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use kindling_model::store::{Area, Expect, Kind, Objects};
use kindling_model::{Group, Labels, Mac, Profile, Snapshot};
use tokio::sync::{mpsc, oneshot};

use crate::status::{ApiError, NO_MATCHING_GROUP};

/// How long a write waits for the snapshot to hold it.
pub const SETTLE: Duration = Duration::from_secs(5);

/// A request to reload the data directory now, after a write: `done` is answered when
/// the new snapshot is in place. `forget` names the group or profile file written
/// (area, name without `.json`), which the loader must re-read whatever its stamp says.
#[derive(Debug)]
pub struct ReloadRequest {
    pub forget: Option<(Area, String)>,
    pub done: oneshot::Sender<()>,
}

/// The API's state: the data directory's objects, the server's current snapshot and the
/// reload loop's request channel.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

struct Inner {
    objects: Objects,
    snapshot: Arc<ArcSwap<Snapshot>>,
    reload: mpsc::Sender<ReloadRequest>,
}

/// The client's address, put in each call's extensions by the listener.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// Who made a call (for log lines).
#[derive(Clone, Copy)]
pub(crate) struct Who(pub(crate) Option<std::net::SocketAddr>);

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) => a.fmt(f),
            None => f.write_str("-"),
        }
    }
}

impl Api {
    pub fn new(
        objects: Objects,
        snapshot: Arc<ArcSwap<Snapshot>>,
        reload: mpsc::Sender<ReloadRequest>,
    ) -> Api {
        Api {
            inner: Arc::new(Inner {
                objects,
                snapshot,
                reload,
            }),
        }
    }

    /// Runs file work off the async threads (an fsync can take milliseconds).
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Objects) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner.objects))
            .await
            .map_err(|_| ApiError::Unavailable)?
    }

    /// Writes when `expect` holds, then waits (bounded) until the snapshot holds the
    /// write. Returns the new tag and whether the object is new.
    pub(crate) async fn put(
        &self,
        who: Who,
        kind: Kind,
        id: String,
        bytes: Vec<u8>,
        expect: Expect,
    ) -> Result<(String, bool), ApiError> {
        let logged = id.clone();
        let len = bytes.len();
        let (tag, created) = self
            .blocking(move |o| Ok(o.put_expecting(kind, &id, &bytes, &expect)?))
            .await?;
        tracing::info!(
            target: "kindling::api", peer = %who, kind = kind.what(),
            id = %kindling_guard::esc(&logged), bytes = len, created, "written"
        );
        self.settle(kind, logged).await;
        Ok((tag, created))
    }

    /// Deletes when `expect` holds; answers whether there was an object.
    pub(crate) async fn delete(
        &self,
        who: Who,
        kind: Kind,
        id: String,
        expect: Expect,
    ) -> Result<bool, ApiError> {
        let logged = id.clone();
        let existed = self
            .blocking(move |o| Ok(o.delete_expecting(kind, &id, &expect)?))
            .await?;
        tracing::info!(
            target: "kindling::api", peer = %who, kind = kind.what(),
            id = %kindling_guard::esc(&logged), existed, "deleted"
        );
        if existed {
            self.settle(kind, logged).await;
        }
        Ok(existed)
    }

    pub(crate) async fn get(&self, kind: Kind, id: String) -> Result<Vec<u8>, ApiError> {
        self.blocking(move |o| Ok(o.get(kind, &id)?)).await
    }

    /// The object and its tag (the ETag), read together.
    pub(crate) async fn get_tagged(
        &self,
        kind: Kind,
        id: String,
    ) -> Result<(Vec<u8>, String), ApiError> {
        self.blocking(move |o| Ok(o.get_tagged(kind, &id)?)).await
    }

    /// The ids of a kind's objects, sorted.
    pub(crate) async fn ids(&self, kind: Kind) -> Result<Vec<String>, ApiError> {
        self.blocking(move |o| Ok(o.list(kind)?)).await
    }

    /// Waits (bounded) until the server's snapshot holds a write. With a data directory
    /// only groups and profiles live in the snapshot (templates are read per request, so
    /// they are served as soon as they are written); with a shared store (etcd) every
    /// object comes from the snapshot.
    async fn settle(&self, kind: Kind, id: String) {
        let area = match kind {
            Kind::Group => Area::Groups,
            Kind::Profile => Area::Profiles,
            Kind::Ignition if self.inner.objects.remote().is_some() => Area::Ignition,
            Kind::Generic if self.inner.objects.remote().is_some() => Area::Generic,
            Kind::Ignition | Kind::Generic => return,
        };
        let (done, answered) = oneshot::channel();
        let ask = ReloadRequest {
            forget: Some((area, id)),
            done,
        };
        let asked = tokio::time::timeout(SETTLE, self.inner.reload.send(ask)).await;
        if !matches!(asked, Ok(Ok(()))) || tokio::time::timeout(SETTLE, answered).await.is_err() {
            tracing::warn!(
                target: "kindling::api",
                "the reload loop did not answer within 5 s; the write stands and the next reload shows it"
            );
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.load_full()
    }

    /// The group the labels select, as `/ipxe` would. `mac` labels are normalised first
    /// (matchbox compares them as given, so `52-54-00-…` finds nothing there).
    pub(crate) fn select(
        &self,
        labels: std::collections::HashMap<String, String>,
    ) -> Result<(Arc<Snapshot>, Arc<Group>), ApiError> {
        let labels: Labels = labels
            .into_iter()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("mac") {
                    Mac::parse(&v).map(|m| m.to_string()).unwrap_or(v)
                } else {
                    v
                };
                (k, v)
            })
            .collect();
        let snap = self.snapshot();
        let group = snap
            .select(&labels)
            .cloned()
            .ok_or(ApiError::NoMatch(NO_MATCHING_GROUP))?;
        Ok((snap, group))
    }
}

pub(crate) fn parse_group(id: &str, bytes: &[u8]) -> Option<Group> {
    Group::parse(id, bytes).ok()
}

pub(crate) fn parse_profile(id: &str, bytes: &[u8]) -> Option<Profile> {
    Profile::parse(id, bytes).ok()
}

/// Reads every object of a kind that parses; the others are left out with a log line,
/// as matchbox's lists do.
pub(crate) fn list_parsed<T>(
    o: &Objects,
    kind: Kind,
    parse: fn(&str, &[u8]) -> Option<T>,
) -> Result<Vec<T>, ApiError> {
    let mut out = Vec::new();
    for id in o.list(kind)? {
        match o.get(kind, &id).ok().and_then(|b| parse(&id, &b)) {
            Some(v) => out.push(v),
            None => tracing::info!(
                target: "kindling::api", kind = kind.what(), id = %kindling_guard::esc(&id),
                "left out of the list: it does not load (see `kindling check`)"
            ),
        }
    }
    Ok(out)
}
