//! The five services of matchbox's gRPC API over [`Api`]: the generated traits, each
//! call converted and handed to the shared core. Writes expect nothing (matchbox has no
//! preconditions); deleting a missing object succeeds (matchbox answers `UNKNOWN`, which
//! fails `terraform destroy` for an object removed by hand).

use kindling_model::store::{Expect, Kind};
use kindling_model::{Group, Profile};
use tonic::{Request, Response, Status};

use crate::convert::{group_file, group_message, profile_file, profile_message};
use crate::core::{Api, Peer, Who, list_parsed, parse_group, parse_profile};
use crate::pb::rpcpb;
use crate::pb::serverpb::*;
use crate::pb::storagepb;
use crate::status::{ApiError, NO_MATCHING_PROFILE};

type Reply<T> = Result<Response<T>, Status>;

fn who<T>(req: &Request<T>) -> Who {
    Who(req.extensions().get::<Peer>().map(|p| p.0))
}

#[tonic::async_trait]
impl rpcpb::groups_server::Groups for Api {
    async fn group_put(&self, req: Request<GroupPutRequest>) -> Reply<GroupPutResponse> {
        let who = who(&req);
        let g = req.into_inner().group.ok_or(ApiError::Missing("group"))?;
        let bytes = group_file(&g).map_err(ApiError::from)?;
        self.put(who, Kind::Group, g.id, bytes, Expect::Anything)
            .await?;
        Ok(Response::new(GroupPutResponse {}))
    }

    async fn group_get(&self, req: Request<GroupGetRequest>) -> Reply<GroupGetResponse> {
        let id = req.into_inner().id;
        let bytes = self.get(Kind::Group, id.clone()).await?;
        let g = Group::parse(&id, &bytes).map_err(|e| ApiError::Unloadable {
            what: "group",
            id: id.clone(),
            reason: e.to_string(),
        })?;
        Ok(Response::new(GroupGetResponse {
            group: Some(group_message(&g)),
        }))
    }

    async fn group_delete(&self, req: Request<GroupDeleteRequest>) -> Reply<GroupDeleteResponse> {
        let who = who(&req);
        self.delete(who, Kind::Group, req.into_inner().id, Expect::Anything)
            .await?;
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
        let who = who(&req);
        let p = req
            .into_inner()
            .profile
            .ok_or(ApiError::Missing("profile"))?;
        let bytes = profile_file(&p).map_err(ApiError::from)?;
        self.put(who, Kind::Profile, p.id, bytes, Expect::Anything)
            .await?;
        Ok(Response::new(ProfilePutResponse {}))
    }

    async fn profile_get(&self, req: Request<ProfileGetRequest>) -> Reply<ProfileGetResponse> {
        let id = req.into_inner().id;
        let bytes = self.get(Kind::Profile, id.clone()).await?;
        let p = Profile::parse(&id, &bytes).map_err(|e| ApiError::Unloadable {
            what: "profile",
            id: id.clone(),
            reason: e.to_string(),
        })?;
        Ok(Response::new(ProfileGetResponse {
            profile: Some(profile_message(&p)),
        }))
    }

    async fn profile_delete(
        &self,
        req: Request<ProfileDeleteRequest>,
    ) -> Reply<ProfileDeleteResponse> {
        let who = who(&req);
        self.delete(who, Kind::Profile, req.into_inner().id, Expect::Anything)
            .await?;
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
        let who = who(&req);
        let r = req.into_inner();
        self.put(who, Kind::Ignition, r.name, r.config, Expect::Anything)
            .await?;
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
        let who = who(&req);
        self.delete(who, Kind::Ignition, req.into_inner().name, Expect::Anything)
            .await?;
        Ok(Response::new(IgnitionDeleteResponse {}))
    }
}

#[tonic::async_trait]
impl rpcpb::generic_server::Generic for Api {
    async fn generic_put(&self, req: Request<GenericPutRequest>) -> Reply<GenericPutResponse> {
        let who = who(&req);
        let r = req.into_inner();
        self.put(who, Kind::Generic, r.name, r.config, Expect::Anything)
            .await?;
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
        let who = who(&req);
        self.delete(who, Kind::Generic, req.into_inner().name, Expect::Anything)
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
    use crate::core::ReloadRequest;
    use arc_swap::ArcSwap;
    use kindling_model::store::{DataDir, Loader, Objects};
    use rpcpb::groups_server::Groups;
    use rpcpb::ignition_server::Ignition;
    use rpcpb::select_server::Select;
    use std::sync::Arc;
    use tokio::sync::mpsc;

    /// An API over a temporary data directory, with a reload loop that answers each
    /// request after swapping in a fresh snapshot (as the binary's does).
    fn api(dir: &std::path::Path) -> Api {
        let data = DataDir::new(dir);
        let mut loader = Loader::new(data.clone());
        let snapshot = Arc::new(ArcSwap::from_pointee(loader.load()));
        let (tx, mut rx) = mpsc::channel::<ReloadRequest>(8);
        let swapped = snapshot.clone();
        tokio::spawn(async move {
            while let Some(ask) = rx.recv().await {
                if let Some((area, key)) = &ask.forget {
                    loader.forget(*area, key);
                }
                swapped.store(Arc::new(loader.load()));
                let _ = ask.done.send(());
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
