//! The gRPC listener: HTTP/2 over TLS with client certificates required, on the same
//! accept loop as the HTTP listeners ([`kindling_http::listen::accept_loop`]: connections
//! capped per client and in total, the handshake bounded in time, writes that make no
//! progress dropped, descriptor exhaustion survived). Each call is dispatched by its
//! service name to one of the five generated servers; message sizes and concurrent calls
//! per connection are bounded.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use kindling_http::listen::{Limits, Listening, Wire, accept_loop};
use kindling_model::store::MAX_TEMPLATE_BYTES;
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;
use tonic::codegen::Service;
use tonic::server::NamedService;

use crate::config::RpcConfig;
use crate::core::{Api, Peer};
use crate::pb::rpcpb::generic_server::GenericServer;
use crate::pb::rpcpb::groups_server::GroupsServer;
use crate::pb::rpcpb::ignition_server::IgnitionServer;
use crate::pb::rpcpb::profiles_server::ProfilesServer;
use crate::pb::rpcpb::select_server::SelectServer;

/// The largest message accepted: the largest Ignition or generic template the data
/// directory loads, plus room for the envelope.
pub const MAX_MESSAGE_BYTES: usize = MAX_TEMPLATE_BYTES as usize + 64 * 1024;

/// The five services of matchbox's API.
#[derive(Clone)]
struct Services {
    groups: GroupsServer<Api>,
    profiles: ProfilesServer<Api>,
    ignition: IgnitionServer<Api>,
    generic: GenericServer<Api>,
    select: SelectServer<Api>,
}

impl Services {
    fn new(api: Api) -> Services {
        let m = MAX_MESSAGE_BYTES;
        Services {
            groups: GroupsServer::new(api.clone()).max_decoding_message_size(m),
            profiles: ProfilesServer::new(api.clone()).max_decoding_message_size(m),
            ignition: IgnitionServer::new(api.clone()).max_decoding_message_size(m),
            generic: GenericServer::new(api.clone()).max_decoding_message_size(m),
            select: SelectServer::new(api).max_decoding_message_size(m),
        }
    }

    /// Dispatches on the service name (`/rpcpb.Groups/GroupPut` -> `rpcpb.Groups`);
    /// an unknown service or method is answered `UNIMPLEMENTED`, as grpc-go does.
    async fn call(&self, req: Request<Incoming>) -> Response<tonic::body::Body> {
        let service = req
            .uri()
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        let answered = match service {
            GroupsServer::<Api>::NAME => self.groups.clone().call(req).await,
            ProfilesServer::<Api>::NAME => self.profiles.clone().call(req).await,
            IgnitionServer::<Api>::NAME => self.ignition.clone().call(req).await,
            GenericServer::<Api>::NAME => self.generic.clone().call(req).await,
            SelectServer::<Api>::NAME => self.select.clone().call(req).await,
            _ => Ok(tonic::Status::unimplemented("unknown service").into_http()),
        };
        match answered {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }
}

/// The TLS settings for the API: `tls` (client certificates required) speaking HTTP/2
/// only (gRPC clients, grpc-go among them, insist on ALPN `h2`).
pub fn with_h2(tls: &rustls::ServerConfig) -> Arc<rustls::ServerConfig> {
    let mut c = tls.clone();
    c.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(c)
}

/// Serves the API on `listener` until `cancel` fires. `tls` must require client
/// certificates; it is given ALPN `h2` here.
pub async fn serve(
    listener: TcpListener,
    tls: &rustls::ServerConfig,
    api: Api,
    cfg: &RpcConfig,
    stats: Arc<kindling_http::server::Stats>,
    cancel: CancellationToken,
) -> io::Result<()> {
    let services = Services::new(api);
    let how = Listening {
        name: "rpc",
        limits: Limits {
            per_client: cfg.max_connections_per_client,
            total: cfg.max_connections,
            idle_timeout: Duration::from_secs(cfg.handshake_timeout_secs.max(1)),
            write_timeout: Duration::from_secs(30),
        },
        stats,
        tls: Some(tokio_rustls::TlsAcceptor::from(with_h2(tls))),
        wire: Wire::Http2 {
            max_concurrent_streams: cfg.max_concurrent_streams.max(1),
        },
    };
    let make_svc = move |peer: SocketAddr, _local: SocketAddr| {
        let services = services.clone();
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let services = services.clone();
            req.extensions_mut().insert(Peer(peer));
            async move { Ok::<_, Infallible>(services.call(req).await) }
        })
    };
    accept_loop(listener, how, cancel, make_svc).await
}
