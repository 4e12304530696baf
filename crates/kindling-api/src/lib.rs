//! matchbox's gRPC management API, wire-compatible with matchbox v0.9 (the services,
//! messages and field numbers of its `rpcpb`, `serverpb` and `storagepb` packages), served
//! over mutual TLS: what terraform-provider-matchbox talks to.
//!
//! - [`convert`]: messages to files and back, as matchbox writes and returns them;
//! - [`status`]: every error to a gRPC status, in one place (no server paths);
//! - [`service`]: the services over the data directory's objects and the current snapshot;
//! - [`serve`]: the listener: TLS with client certificates required, connections capped
//!   per client and in total, message sizes and streams bounded;
//! - [`config`]: the `[rpc]` table (matchbox's `-rpc-address`, `-cert-file`, `-key-file`,
//!   `-ca-file`).

pub mod config;
pub mod convert;
pub mod serve;
pub mod service;
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
pub use serve::serve;
pub use service::{Api, ReloadRequest};
