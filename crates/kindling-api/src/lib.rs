//! Kindling's management APIs: matchbox's gRPC API, wire-compatible with matchbox v0.9
//! (the services, messages and field numbers of its `rpcpb`, `serverpb` and `storagepb`
//! packages), served over mutual TLS: what terraform-provider-matchbox talks to; and the
//! REST objects API of the admin listener.
//!
//! - [`core`]: what both do, once: writes (atomic, durable, preconditions) that return
//!   when the snapshot holds them, reads, lists, selection;
//! - [`convert`]: gRPC messages to files and back, as matchbox writes and returns them;
//! - [`status`]: every error to a gRPC or HTTP status, in one place (no server paths);
//! - [`grpc`]: the five gRPC services over the core;
//! - [`rest`]: `/api/v1/{groups,profiles,ignition,generic}` with ETags;
//! - [`lifecycle`]: `/api/v1/lifecycle`: installed and discovered machines, re-arming;
//! - [`cli`]: `kindling group|profile|ignition|generic ls|get|put|rm`, through a server
//!   or straight in the data directory;
//! - [`lifecycle_cli`]: `kindling machines reinstall|mark-installed` and the records of
//!   `--discovered|--installed`, through a server or straight in the state directory;
//! - [`machines_cli`]: `kindling machines [show MAC]` and the tables of
//!   `--discovered|--installed`: a server's timelines (`--server`, several merged) or the
//!   journal in the state directory replayed;
//! - [`serve()`]: the listener: TLS with client certificates required, connections capped
//!   per client and in total, message sizes and streams bounded;
//! - [`config`]: the `[rpc]` table (matchbox's `-rpc-address`, `-cert-file`, `-key-file`,
//!   `-ca-file`).

pub mod cli;
pub mod config;
pub mod convert;
pub mod core;
pub mod grpc;
pub mod lifecycle;
pub mod lifecycle_cli;
pub mod machines_cli;
pub mod rest;
pub mod serve;
pub mod status;

/// Code generated from `proto/*.proto` at build time (protox + tonic-prost-build).
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    pub mod storagepb {
        tonic::include_proto!("storagepb");
    }
    pub mod serverpb {
        tonic::include_proto!("serverpb");
    }
    pub mod rpcpb {
        tonic::include_proto!("rpcpb");
    }
}

pub use config::RpcConfig;
pub use core::{Api, ReloadRequest, SETTLE};
pub use lifecycle::LifecycleApi;
pub use rest::ObjectsApi;
pub use serve::serve;
