//! The `[rpc]` table: matchbox's `-rpc-address`, `-cert-file`, `-key-file` and `-ca-file`,
//! with matchbox's defaults, and the connection caps every Kindling listener has.

use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Off unless `address` is set; what is served and how it differs from matchbox:
/// docs/matchbox-compatibility.md ("The gRPC API").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RpcConfig {
    /// Address of matchbox's gRPC API (matchbox's `-rpc-address`, e.g. `0.0.0.0:8081`);
    /// `""` (the default, as in matchbox) turns it off. Always mutual TLS.
    pub address: String,
    /// The server's certificate chain, PEM (matchbox's `-cert-file`).
    pub cert_file: PathBuf,
    /// The server's private key, PEM (matchbox's `-key-file`).
    pub key_file: PathBuf,
    /// CA certificates, PEM, that client certificates must chain to (matchbox's
    /// `-ca-file`). A client without a certificate, or with one from another CA, is
    /// refused during the TLS handshake.
    pub ca_file: PathBuf,
    /// Open connections per client address; more are closed at once. 0: no cap.
    pub max_connections_per_client: usize,
    /// Open connections in total; 0: no cap.
    pub max_connections: usize,
    /// Concurrent calls on one connection (HTTP/2 streams).
    pub max_concurrent_streams: u32,
    /// Calls in progress at once over all connections (each may hold a message of up to
    /// 8 MiB); a call that finds none free for 10 s is answered `RESOURCE_EXHAUSTED`.
    pub max_calls: usize,
    /// A call that has not finished after this many seconds is answered
    /// `DEADLINE_EXCEEDED` (a client that sends its message slowly cannot hold a call).
    pub call_timeout_secs: u64,
    /// A TLS handshake that has not finished after this many seconds is dropped; an open
    /// connection is pinged (HTTP/2 PING) after this long without traffic and dropped when
    /// the ping is not answered within it.
    pub handshake_timeout_secs: u64,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            address: String::new(),
            cert_file: "/etc/matchbox/server.crt".into(),
            key_file: "/etc/matchbox/server.key".into(),
            ca_file: "/etc/matchbox/ca.crt".into(),
            max_connections_per_client: 16,
            max_connections: 256,
            max_concurrent_streams: 64,
            max_calls: 32,
            call_timeout_secs: 60,
            handshake_timeout_secs: 10,
        }
    }
}

impl RpcConfig {
    /// `Ok(None)`: the API is off. An error names what is wrong with `address`.
    pub fn listen(&self, address_override: Option<&str>) -> Result<Option<SocketAddr>, String> {
        let a = address_override.unwrap_or(&self.address).trim();
        if a.is_empty() {
            return Ok(None);
        }
        a.parse()
            .map(Some)
            .map_err(|e| format!("[rpc] address {a:?}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_unless_an_address_is_given() {
        let c = RpcConfig::default();
        assert_eq!(c.listen(None), Ok(None));
        assert_eq!(
            c.listen(Some("127.0.0.1:8081")),
            Ok(Some("127.0.0.1:8081".parse().unwrap()))
        );
        assert!(c.listen(Some("nonsense")).unwrap_err().contains("nonsense"));
    }
}
