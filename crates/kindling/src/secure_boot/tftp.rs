//! GRUB's TFTP requests answered from the boot service: its configuration rendered as HTTP
//! `/grub` renders it (one renderer), its kernel and initrd from the assets directory,
//! opened confined as HTTP `/assets/` opens them.

use std::net::SocketAddr;
use std::sync::Arc;

use kindling_http::Shared;
use kindling_model::ReadError;
use kindling_tftp::secureboot::{GrubHost, SecureBootSource};
use kindling_tftp::{FileSource, Opened, TftpError};

use super::config::SecureBootConfig;

struct Host {
    shared: Arc<Shared>,
}

impl GrubHost for Host {
    fn grub_config(&self, query: &str, peer: SocketAddr) -> Result<(Vec<u8>, String), String> {
        let (body, group, profile) =
            kindling_http::grub_for_query(&self.shared, query, peer.ip().to_canonical())?;
        let origin = format!(
            "group {}, profile {}",
            group.as_deref().unwrap_or("-"),
            profile.as_deref().unwrap_or("-")
        );
        Ok((body.to_vec(), origin))
    }

    fn open_asset(&self, rest: &str) -> Result<Opened, TftpError> {
        let Some(dir) = self.shared.assets_dir.as_deref() else {
            return Err(TftpError::NotFound(
                "assets are not served ([http] assets = false)".into(),
            ));
        };
        if kindling_http::hidden_asset(rest) {
            return Err(TftpError::NotFound(format!(
                "asset {rest:?} is internal (a dotfile or kindling fcos state): never served"
            )));
        }
        let o = kindling_model::store::open_confined(dir, "assets", rest).map_err(|e| match e {
            ReadError::Escapes(..) => TftpError::AccessViolation(format!(
                "asset {rest:?} resolves outside the assets directory (refused)"
            )),
            ReadError::Nul(_) => TftpError::AccessViolation("NUL in name".into()),
            other => TftpError::NotFound(format!("asset {rest:?}: {other}")),
        })?;
        if !o.meta.is_file() {
            return Err(TftpError::NotFound(format!(
                "asset {rest:?} is not a regular file"
            )));
        }
        Ok(Opened {
            size: Some(o.meta.len()),
            reader: Box::new(o.file),
            origin: o.path.display().to_string(),
        })
    }
}

/// The TFTP source of `kindling serve`: the Secure Boot names in front of `[tftp]`'s own
/// files when the chain is served ([`SecureBootConfig::serves`]), else `None` (the
/// server's own source).
pub fn source(
    sb: &SecureBootConfig,
    dhcp: &kindling_dhcp::DhcpConfig,
    tftp: &kindling_tftp::TftpConfig,
    shared: &Arc<Shared>,
) -> Option<Arc<dyn FileSource>> {
    if !sb.serves(dhcp) {
        return None;
    }
    tracing::info!("secure boot: shim, GRUB, GRUB's configuration and /assets/ served over TFTP");
    let host = Arc::new(Host {
        shared: shared.clone(),
    });
    Some(Arc::new(SecureBootSource::new(
        Arc::new(tftp.file_source()),
        host,
    )))
}
