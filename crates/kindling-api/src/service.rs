//! The five services of matchbox's API over one [`Api`]: files through
//! [`kindling_model::store::Objects`] (atomic, durable, confined), selection through the
//! server's current snapshot (the same index `/ipxe` uses).
//!
//! A write returns once the server's snapshot holds it: the reload loop is asked to reload
//! and answers when the new snapshot is in place, so a `SelectGroup` or an `/ipxe` request
//! made after a `GroupPut` returns sees the group (bounded wait: if the reload loop does not
//! answer within [`SETTLE`], the write still stands and the next reload shows it).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use kindling_model::store::{Kind, Objects};
use kindling_model::{Group, Labels, Mac, Profile, Snapshot};
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use crate::convert::{group_file, group_message, profile_file, profile_message};
use crate::pb::rpcpb;
use crate::pb::serverpb::*;
use crate::pb::storagepb;
use crate::status::{ApiError, NO_MATCHING_GROUP, NO_MATCHING_PROFILE};

/// How long a write waits for the snapshot to hold it.
pub const SETTLE: Duration = Duration::from_secs(5);

/// A request to reload the data directory now; the sender is answered when the new
/// snapshot is in place.
pub type ReloadRequest = oneshot::Sender<()>;

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

type Reply<T> = Result<Response<T>, Status>;

/// The client's address, put in each call's extensions by the listener.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// Who made a call (for log lines).
#[derive(Clone, Copy)]
struct Who(Option<std::net::SocketAddr>);

impl Who {
    fn of<T>(req: &Request<T>) -> Who {
        Who(req.extensions().get::<Peer>().map(|p| p.0))
    }
}

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
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Objects) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner.objects))
            .await
            .map_err(|_| ApiError::Unavailable)?
    }

    /// Writes, then waits (bounded) until the snapshot holds the write.
    async fn put(&self, who: Who, kind: Kind, id: String, bytes: Vec<u8>) -> Result<(), ApiError> {
        let logged = id.clone();
        let len = bytes.len();
        self.blocking(move |o| Ok(o.put(kind, &id, &bytes)?))
            .await?;
        tracing::info!(
            target: "kindling::rpc", peer = %who, kind = kind.what(),
            id = %kindling_guard::esc(&logged), bytes = len, "written"
        );
        self.settle().await;
        Ok(())
    }

    /// Deletes; a missing object is not an error (matchbox answers `UNKNOWN`, which
    /// fails `terraform destroy` for an object removed by hand).
    async fn delete(&self, who: Who, kind: Kind, id: String) -> Result<(), ApiError> {
        let logged = id.clone();
        let existed = self.blocking(move |o| Ok(o.delete(kind, &id)?)).await?;
        tracing::info!(
            target: "kindling::rpc", peer = %who, kind = kind.what(),
            id = %kindling_guard::esc(&logged), existed, "deleted"
        );
        self.settle().await;
        Ok(())
    }

    async fn get(&self, kind: Kind, id: String) -> Result<Vec<u8>, ApiError> {
        self.blocking(move |o| Ok(o.get(kind, &id)?)).await
    }

    async fn settle(&self) {
        let (tx, rx) = oneshot::channel();
        let asked = tokio::time::timeout(SETTLE, self.inner.reload.send(tx)).await;
        if !matches!(asked, Ok(Ok(()))) || tokio::time::timeout(SETTLE, rx).await.is_err() {
            tracing::debug!(target: "kindling::rpc", "the reload loop did not answer; the next reload shows the write");
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.load_full()
    }

    /// The group the labels select, as `/ipxe` would. `mac` labels are normalised first
    /// (matchbox compares them as given, so `52-54-00-…` finds nothing there).
    fn select(
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

fn parse_group(id: &str, bytes: &[u8]) -> Option<Group> {
    Group::parse(id, bytes).ok()
}

fn parse_profile(id: &str, bytes: &[u8]) -> Option<Profile> {
    Profile::parse(id, bytes).ok()
}

/// Reads every object of a kind that parses; the others are left out with a log line,
/// as matchbox's lists do.
fn list_parsed<T>(
    o: &Objects,
    kind: Kind,
    parse: fn(&str, &[u8]) -> Option<T>,
) -> Result<Vec<T>, ApiError> {
    let mut out = Vec::new();
    for id in o.list(kind)? {
        match o.get(kind, &id).ok().and_then(|b| parse(&id, &b)) {
            Some(v) => out.push(v),
            None => tracing::info!(
                target: "kindling::rpc", kind = kind.what(), id = %kindling_guard::esc(&id),
                "left out of the list: it does not load (see `kindling check`)"
            ),
        }
    }
    Ok(out)
}

#[tonic::async_trait]
impl rpcpb::groups_server::Groups for Api {
    async fn group_put(&self, req: Request<GroupPutRequest>) -> Reply<GroupPutResponse> {
        let who = Who::of(&req);
        let g = req.into_inner().group.ok_or(ApiError::Missing("group"))?;
        let bytes = group_file(&g).map_err(ApiError::from)?;
        self.put(who, Kind::Group, g.id, bytes).await?;
        Ok(Response::new(GroupPutResponse {}))
    }

    async fn group_get(&self, req: Request<GroupGetRequest>) -> Reply<GroupGetResponse> {
        let id = req.into_inner().id;
        let bytes = self.get(Kind::Group, id.clone()).await?;
        let g = Group::parse(&id, &bytes).map_err(|e| {
            ApiError::Object(kindling_model::store::ObjectError::Invalid {
                what: "group",
                id: id.clone(),
                reason: e.to_string(),
            })
        })?;
        Ok(Response::new(GroupGetResponse {
            group: Some(group_message(&g)),
        }))
    }

    async fn group_delete(&self, req: Request<GroupDeleteRequest>) -> Reply<GroupDeleteResponse> {
        let who = Who::of(&req);
        self.delete(who, Kind::Group, req.into_inner().id).await?;
        Ok(Response::new(GroupDeleteResponse {}))
    }

    async fn group_list(&self, _: Request<GroupListRequest>) -> Reply<GroupListResponse> {
        let groups = self
            .blocking(|o| list_parsed(o, Kind::Group, parse_group))
            .await?;
        Ok(Response::new(GroupListResponse {
            groups: groups.iter().map(group_message).collect(),
        }))
    }
}

#[tonic::async_trait]
impl rpcpb::profiles_server::Profiles for Api {
    async fn profile_put(&self, req: Request<ProfilePutRequest>) -> Reply<ProfilePutResponse> {
        let who = Who::of(&req);
        let p = req
            .into_inner()
            .profile
            .ok_or(ApiError::Missing("profile"))?;
        let bytes = profile_file(&p).map_err(ApiError::from)?;
        self.put(who, Kind::Profile, p.id, bytes).await?;
        Ok(Response::new(ProfilePutResponse {}))
    }

    async fn profile_get(&self, req: Request<ProfileGetRequest>) -> Reply<ProfileGetResponse> {
        let id = req.into_inner().id;
        let bytes = self.get(Kind::Profile, id.clone()).await?;
        let p = Profile::parse(&id, &bytes).map_err(|e| {
            ApiError::Object(kindling_model::store::ObjectError::Invalid {
                what: "profile",
                id: id.clone(),
                reason: e.to_string(),
            })
        })?;
        Ok(Response::new(ProfileGetResponse {
            profile: Some(profile_message(&p)),
        }))
    }

    async fn profile_delete(
        &self,
        req: Request<ProfileDeleteRequest>,
    ) -> Reply<ProfileDeleteResponse> {
        let who = Who::of(&req);
        self.delete(who, Kind::Profile, req.into_inner().id).await?;
        Ok(Response::new(ProfileDeleteResponse {}))
    }

    async fn profile_list(&self, _: Request<ProfileListRequest>) -> Reply<ProfileListResponse> {
        let profiles = self
            .blocking(|o| list_parsed(o, Kind::Profile, parse_profile))
            .await?;
        Ok(Response::new(ProfileListResponse {
            profiles: profiles.iter().map(profile_message).collect(),
        }))
    }
}

#[tonic::async_trait]
impl rpcpb::ignition_server::Ignition for Api {
    async fn ignition_put(&self, req: Request<IgnitionPutRequest>) -> Reply<IgnitionPutResponse> {
        let who = Who::of(&req);
        let r = req.into_inner();
        self.put(who, Kind::Ignition, r.name, r.config).await?;
        Ok(Response::new(IgnitionPutResponse {}))
    }

    async fn ignition_get(&self, req: Request<IgnitionGetRequest>) -> Reply<IgnitionGetResponse> {
        let config = self.get(Kind::Ignition, req.into_inner().name).await?;
        Ok(Response::new(IgnitionGetResponse { config }))
    }

    async fn ignition_delete(
        &self,
        req: Request<IgnitionDeleteRequest>,
    ) -> Reply<IgnitionDeleteResponse> {
        let who = Who::of(&req);
        self.delete(who, Kind::Ignition, req.into_inner().name)
            .await?;
        Ok(Response::new(IgnitionDeleteResponse {}))
    }
}

#[tonic::async_trait]
impl rpcpb::generic_server::Generic for Api {
    async fn generic_put(&self, req: Request<GenericPutRequest>) -> Reply<GenericPutResponse> {
        let who = Who::of(&req);
        let r = req.into_inner();
        self.put(who, Kind::Generic, r.name, r.config).await?;
        Ok(Response::new(GenericPutResponse {}))
    }

    async fn generic_get(&self, req: Request<GenericGetRequest>) -> Reply<GenericGetResponse> {
        let config = self.get(Kind::Generic, req.into_inner().name).await?;
        Ok(Response::new(GenericGetResponse { config }))
    }

    async fn generic_delete(
        &self,
        req: Request<GenericDeleteRequest>,
    ) -> Reply<GenericDeleteResponse> {
        let who = Who::of(&req);
        self.delete(who, Kind::Generic, req.into_inner().name)
            .await?;
        Ok(Response::new(GenericDeleteResponse {}))
    }
}

#[tonic::async_trait]
impl rpcpb::select_server::Select for Api {
    async fn select_group(&self, req: Request<SelectGroupRequest>) -> Reply<SelectGroupResponse> {
        let (_, g) = self.select(req.into_inner().labels)?;
        Ok(Response::new(SelectGroupResponse {
            group: Some(group_message(&g)),
        }))
    }

    async fn select_profile(
        &self,
        req: Request<SelectProfileRequest>,
    ) -> Reply<SelectProfileResponse> {
        let (snap, g) = self.select(req.into_inner().labels)?;
        let p = snap
            .profile_for(&g)
            .map_err(|_| ApiError::NoMatch(NO_MATCHING_PROFILE))?;
        Ok(Response::new(SelectProfileResponse {
            profile: Some(profile_message(p)),
        }))
    }
}

/// Unused message types are part of the wire interface; this keeps the storage module
/// referenced for readers of the generated code.
#[allow(dead_code)]
type StoredGroup = storagepb::Group;

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_model::store::{DataDir, Loader};
    use rpcpb::groups_server::Groups;
    use rpcpb::ignition_server::Ignition;
    use rpcpb::select_server::Select;

    /// An API over a temporary data directory, with a reload loop that answers each
    /// request after swapping in a fresh snapshot (as the binary's does).
    fn api(dir: &std::path::Path) -> Api {
        let data = DataDir::new(dir);
        let mut loader = Loader::new(data.clone());
        let snapshot = Arc::new(ArcSwap::from_pointee(loader.load()));
        let (tx, mut rx) = mpsc::channel::<ReloadRequest>(8);
        let swapped = snapshot.clone();
        tokio::spawn(async move {
            while let Some(done) = rx.recv().await {
                swapped.store(Arc::new(loader.load()));
                let _ = done.send(());
            }
        });
        Api::new(Objects::new(data), snapshot, tx)
    }

    fn group(id: &str, mac: &str) -> storagepb::Group {
        storagepb::Group {
            id: id.into(),
            profile: "p".into(),
            selector: [("mac".to_string(), mac.to_string())].into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_put_is_selectable_when_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let api = api(dir.path());
        for n in 0..20u8 {
            let mac = format!("52:54:00:00:00:{n:02x}");
            api.group_put(Request::new(GroupPutRequest {
                group: Some(group(&format!("g{n}"), &mac)),
            }))
            .await
            .unwrap();
            // No wait: the write returned once the snapshot held it.
            let got = api
                .select_group(Request::new(SelectGroupRequest {
                    labels: [("mac".to_string(), mac)].into(),
                }))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(got.group.unwrap().id, format!("g{n}"));
        }
        let file = std::fs::read_to_string(dir.path().join("groups/g3.json")).unwrap();
        assert!(file.starts_with("{\n\t\"id\": \"g3\",\n"), "{file}");
    }

    #[tokio::test]
    async fn refusals_write_nothing_and_deletes_of_missing_objects_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let api = api(dir.path());
        let bad = api
            .group_put(Request::new(GroupPutRequest {
                group: Some(group("g", "52:54:00:zz:00:01")),
            }))
            .await
            .unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
        assert!(!dir.path().join("groups/g.json").exists());
        for name in ["../profiles/x.json", "a/b", "..", ".hidden", ""] {
            let e = api
                .ignition_put(Request::new(IgnitionPutRequest {
                    name: name.into(),
                    config: b"{}".to_vec(),
                }))
                .await
                .unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{name:?}: {e:?}");
            assert!(
                !e.message().contains(&*dir.path().to_string_lossy()),
                "{e:?}"
            );
        }
        assert!(!dir.path().join("profiles/x.json").exists());
        api.group_delete(Request::new(GroupDeleteRequest { id: "nope".into() }))
            .await
            .unwrap();
        let e = api
            .group_get(Request::new(GroupGetRequest { id: "nope".into() }))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
    }
}
