//! Shared test helpers: a real kindling_http server with our extensions.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Weak};

use kindling_http::{Extension, RequestObserver, Shared};
use kindling_model::{DataDir, Loader};
use tokio_util::sync::CancellationToken;

pub struct Server {
    pub addr: SocketAddr,
    pub cancel: CancellationToken,
    pub shared: Arc<Shared>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Starts `kindling_http::serve` on 127.0.0.1:0 over `data` with the
/// extensions `make` builds (it gets a weak handle to the shared state).
pub async fn serve(
    data: &Path,
    make: impl FnOnce(Weak<Shared>) -> Vec<Arc<dyn Extension>>,
) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(listener, data, make).await
}

/// [`serve`], with `observer` told of every request (status, reason).
pub async fn serve_observed(
    data: &Path,
    make: impl FnOnce(Weak<Shared>) -> Vec<Arc<dyn Extension>>,
    observer: Arc<dyn RequestObserver>,
) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_with(listener, data, make, Some(observer)).await
}

/// [`serve`] on a listener bound beforehand (to know its port first).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    data: &Path,
    make: impl FnOnce(Weak<Shared>) -> Vec<Arc<dyn Extension>>,
) -> Server {
    serve_with(listener, data, make, None).await
}

async fn serve_with(
    listener: tokio::net::TcpListener,
    data: &Path,
    make: impl FnOnce(Weak<Shared>) -> Vec<Arc<dyn Extension>>,
    observer: Option<Arc<dyn RequestObserver>>,
) -> Server {
    let dd = DataDir::new(data);
    dd.ensure_layout().unwrap();
    let snapshot = Loader::new(dd.clone()).load();
    let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
        let mut s = Shared::new(dd.clone(), snapshot);
        s.extensions = make(weak.clone());
        s.observer = observer;
        s
    });
    let addr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    tokio::spawn(kindling_http::serve(
        listener,
        shared.clone(),
        cancel.clone(),
    ));
    Server {
        addr,
        cancel,
        shared,
    }
}

/// Runs curl (a real client) and returns (exit status, stdout).
pub async fn curl(args: &[&str]) -> (i32, Vec<u8>) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "120"])
        .args(args)
        .output()
        .await
        .expect("curl is installed");
    (out.status.code().unwrap_or(-1), out.stdout)
}

pub mod upstream;
