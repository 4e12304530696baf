//! Routing: the path as Go's `ServeMux` cleans it, the matchbox endpoints, `/assets/`,
//! `/tftp/` and then the extensions.

use crate::endpoint::Endpoint;
use std::net::SocketAddr;

use hyper::{HeaderMap, Method, StatusCode};
use kindling_model::{Area, Labels, labels_from_query};
use kindling_render as render;

use crate::assets::{assets, serve_trusted_file};
use crate::body::Reply;
use crate::endpoints::{boot_script, generic, ignition, metadata};
use crate::lifecycle::{Script, after_ignition, install_done};
use crate::paths;
use crate::shared::{ExtRequest, Shared};

/// The request path as Go's `ServeMux` sees it: decoded and clean, or the answer when it
/// is badly escaped (400) or not clean (301 to the clean path; to `subtree/` when the
/// clean path is the subtree `subtree` itself: one hop, not two). Both listeners route
/// through it.
pub(crate) fn clean_target(
    method: &Method,
    raw_path: &str,
    raw_query: &str,
    subtree: Option<&str>,
) -> Result<String, (Endpoint, Reply)> {
    // The usual request: nothing to decode, nothing to clean.
    if !raw_path.contains('%') && paths::is_clean_path(raw_path) && subtree != Some(raw_path) {
        return Ok(raw_path.to_string());
    }
    let Some(path) = paths::decode_path(raw_path) else {
        return Err((
            Endpoint::Invalid,
            Reply::error(StatusCode::BAD_REQUEST, "400 Bad Request")
                .with_reason("malformed %-escape in path"),
        ));
    };
    let cleaned = paths::clean_path(&path);
    let with_query = |mut loc: String| {
        if !raw_query.is_empty() {
            loc.push('?');
            loc.push_str(raw_query);
        }
        loc
    };
    if subtree == Some(cleaned.as_str()) {
        let loc = with_query(format!("{cleaned}/"));
        return Err((Endpoint::Redirect, Reply::moved(&loc, method)));
    }
    if cleaned != path {
        let loc = with_query(paths::escape_path(&cleaned));
        return Err((
            Endpoint::Redirect,
            Reply::moved(&loc, method).with_reason(format!("unclean path, redirect to {cleaned}")),
        ));
    }
    Ok(path)
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn route(
    shared: &Shared,
    peer: SocketAddr,
    local: SocketAddr,
    method: &Method,
    raw_path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    labels_out: &mut Option<Labels>,
) -> (Endpoint, Reply) {
    let subtree = shared.assets_dir.as_ref().map(|_| "/assets");
    let path = match clean_target(method, raw_path, raw_query, subtree) {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    // The labels are kept in `labels_out` (for the log line and the timeline) and lent.
    let select = || {
        let (labels, warnings) = labels_from_query(raw_query);
        for w in &warnings {
            tracing::warn!(target: "kindling::http", warning = ?w, "query label dropped");
        }
        labels
    };
    match path.as_str() {
        "/" => (Endpoint::Home, Reply::sniffed(render::HOME)),
        "/boot.ipxe" | "/boot.ipxe.0" => {
            (Endpoint::BootIpxe, Reply::sniffed(render::BOOTSTRAP_IPXE))
        }
        "/ipxe" => (
            Endpoint::Ipxe,
            boot_script(
                shared,
                labels_out.insert(select()),
                raw_query,
                peer.ip().to_canonical(),
                Script::Ipxe,
            ),
        ),
        "/grub" => (
            Endpoint::Grub,
            boot_script(
                shared,
                labels_out.insert(select()),
                raw_query,
                peer.ip().to_canonical(),
                Script::Grub,
            ),
        ),
        "/install/done" => {
            let labels = &*labels_out.insert(select());
            if let Err(refused) = check_binding(shared, labels, peer) {
                return (Endpoint::InstallDone, refused);
            }
            (
                Endpoint::InstallDone,
                install_done(shared, method, labels).await,
            )
        }
        "/ignition" | "/generic" | "/cloud" | "/metadata" => {
            let labels = &*labels_out.insert(select());
            let endpoint = &path[1..];
            if let Err(refused) = check_binding(shared, labels, peer) {
                let name = match endpoint {
                    "ignition" => Endpoint::Ignition,
                    "generic" => Endpoint::Generic,
                    "cloud" => Endpoint::Cloud,
                    _ => Endpoint::Metadata,
                };
                return (name, refused);
            }
            match endpoint {
                "ignition" => (
                    Endpoint::Ignition,
                    after_ignition(shared, method, labels, ignition(shared, labels, raw_query))
                        .await,
                ),
                "generic" => (
                    Endpoint::Generic,
                    generic(shared, labels, raw_query, headers, Area::Generic),
                ),
                "cloud" => (
                    Endpoint::Cloud,
                    generic(shared, labels, raw_query, headers, Area::Cloud),
                ),
                _ => (Endpoint::Metadata, metadata(shared, labels, raw_query)),
            }
        }
        "/healthz" => (
            Endpoint::Healthz,
            Reply::new(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        ),
        p => {
            if let (Some(rest), Some(dir)) =
                (p.strip_prefix("/assets/"), shared.assets_dir.as_deref())
            {
                return (
                    Endpoint::Assets,
                    assets(
                        dir,
                        rest,
                        raw_path,
                        raw_query,
                        headers,
                        shared.asset_listings,
                    )
                    .await,
                );
            }
            if let Some(name) = p.strip_prefix("/tftp/")
                && let Some(file) = shared.boot_files.get(name)
            {
                return (Endpoint::Tftp, serve_trusted_file(file, headers).await);
            }
            let snapshot = shared.snapshot.load_full();
            let ext = ExtRequest {
                method,
                path: p,
                raw_query,
                headers,
                peer,
                local,
                snapshot: Some(&snapshot),
                body: &[],
            };
            for e in &shared.extensions {
                if let Some(fut) = e.handle(&ext) {
                    return (e.name(), fut.await);
                }
            }
            (Endpoint::None, Reply::not_found(format!("no endpoint {p}")))
        }
    }
}

/// The opt-in Ignition binding: `Err(403)` when it is on and the request may
/// not have the per-machine answers.
fn check_binding(shared: &Shared, labels: &Labels, peer: SocketAddr) -> Result<(), Reply> {
    let Some(binding) = &shared.binding else {
        return Ok(());
    };
    let ip = peer.ip().to_canonical();
    let refuse = |why: String| {
        Err(Reply::error(StatusCode::FORBIDDEN, "403 Forbidden")
            .with_reason(format!("ignition binding: {why}")))
    };
    // Selection uses the `mac` label; a `MAC` (any other case of the key) may
    // feed templates: every one of them must pass.
    if !labels.contains_key("mac") {
        return refuse(format!(
            "request from {ip} carries no mac label (required while binding is on)"
        ));
    }
    for (k, mac) in labels {
        if k.eq_ignore_ascii_case("mac")
            && let Err(why) = binding.check(mac, ip)
        {
            return refuse(why);
        }
    }
    Ok(())
}
