//! The gRPC listener: HTTP/2 over TLS with client certificates required, on the same
//! accept loop as the HTTP listeners ([`kindling_http::listen::accept_loop`]: connections
//! capped per client and in total, the handshake bounded in time, writes that make no
//! progress dropped, descriptor exhaustion survived). Each call is dispatched by its
//! service name to one of the five generated servers; message sizes, concurrent calls per
//! connection, calls in progress over all connections and each call's duration are
//! bounded.

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

/// How long a call waits for a free slot before it is refused.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(10);

/// The bound on calls over all connections: at most `max` at once (each may hold a
/// decoded message of up to [`MAX_MESSAGE_BYTES`]), each for at most `timeout`.
#[derive(Clone)]
struct Admission {
    slots: Arc<tokio::sync::Semaphore>,
    wait: Duration,
    timeout: Duration,
}

impl Admission {
    fn new(max: usize, wait: Duration, timeout: Duration) -> Admission {
        Admission {
            slots: Arc::new(tokio::sync::Semaphore::new(max.max(1))),
            wait,
            timeout,
        }
    }

    /// Runs `call` in a slot, within the deadline; otherwise the gRPC error that says why.
    async fn run<F>(&self, call: F) -> Response<tonic::body::Body>
    where
        F: std::future::Future<Output = Response<tonic::body::Body>>,
    {
        let slot = match tokio::time::timeout(self.wait, self.slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            _ => {
                return tonic::Status::resource_exhausted(
                    "too many calls in progress on this server; try again",
                )
                .into_http();
            }
        };
        let answer = match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r,
            Err(_) => tonic::Status::deadline_exceeded(format!(
                "the call did not finish within {} s",
                self.timeout.as_secs()
            ))
            .into_http(),
        };
        drop(slot);
        answer
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
    let admission = Admission::new(
        cfg.max_calls,
        ADMISSION_WAIT,
        Duration::from_secs(cfg.call_timeout_secs.max(1)),
    );
    let make_svc = move |peer: SocketAddr, _local: SocketAddr| {
        let (services, admission) = (services.clone(), admission.clone());
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let (services, admission) = (services.clone(), admission.clone());
            req.extensions_mut().insert(Peer(peer));
            async move { Ok::<_, Infallible>(admission.run(services.call(req)).await) }
        })
    };
    accept_loop(listener, how, cancel, make_svc).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(r: &Response<tonic::body::Body>) -> Option<tonic::Code> {
        tonic::Status::from_header_map(r.headers()).map(|s| s.code())
    }

    fn ok() -> Response<tonic::body::Body> {
        Response::new(tonic::body::Body::empty())
    }

    // The clock is paused: waits end when every task is idle, not after real time, so
    // nothing here depends on the machine's speed.
    #[tokio::test(start_paused = true)]
    async fn calls_beyond_the_slots_are_refused_and_slow_calls_cut() {
        let a = Admission::new(1, Duration::from_secs(10), Duration::from_secs(60));
        let (hold_tx, hold_rx) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let a = a.clone();
            tokio::spawn(async move {
                a.run(async move {
                    let _ = hold_rx.await;
                    ok()
                })
                .await
            })
        };
        tokio::task::yield_now().await;
        // The one slot is taken: the next call waits 10 s, then is refused.
        let refused = a.run(async { ok() }).await;
        assert_eq!(status_of(&refused), Some(tonic::Code::ResourceExhausted));
        hold_tx.send(()).unwrap();
        assert_eq!(status_of(&first.await.unwrap()), None);
        // The slot is free again.
        assert_eq!(status_of(&a.run(async { ok() }).await), None);
        // A call that never ends is cut at the deadline, and gives its slot back.
        let cut = a.run(std::future::pending()).await;
        assert_eq!(status_of(&cut), Some(tonic::Code::DeadlineExceeded));
        assert_eq!(status_of(&a.run(async { ok() }).await), None);
    }
}
