//! The matchbox endpoints that select a group by labels: `/ipxe`, `/grub`, `/ignition`,
//! `/generic`, `/cloud` and `/metadata`.

use std::sync::Arc;

use bytes::Bytes;
use hyper::{HeaderMap, StatusCode};
use kindling_model::{Area, Group, Labels, ReadError, Snapshot};
use kindling_render as render;

use crate::body::Reply;
use crate::content;
use crate::lifecycle::{self, Script};
use crate::shared::Shared;

fn describe(labels: &Labels) -> String {
    let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", l.join(", "))
}

/// The group for these labels, or a 404 saying why.
fn pick_group(snap: &Snapshot, labels: &Labels) -> Result<Arc<Group>, Reply> {
    snap.select(labels)
        .cloned()
        .ok_or_else(|| Reply::not_found(format!("no group matched labels {}", describe(labels))))
}

/// `/ipxe` and `/grub`: the profile's boot section, its templated fields rendered with
/// the group's metadata and the request's labels (a template error is a 404 naming the
/// field). An installed machine of an `install_once` group gets a local boot instead; a
/// machine no group selects is recorded as discovered and gets the discovery profile
/// when one is configured.
pub(crate) fn boot_script(
    shared: &Shared,
    labels: &Labels,
    raw_query: &str,
    peer: std::net::IpAddr,
    script: Script,
) -> Reply {
    let snap = shared.snapshot.load();
    let mac = lifecycle::mac_label(labels);
    let (group, discovery) = match snap.select(labels) {
        Some(g) => {
            lifecycle::note_matched(shared, mac);
            (Arc::clone(g), false)
        }
        None => match lifecycle::discovered(shared, labels, mac, peer) {
            Some(g) => (g, true),
            None => {
                return Reply::not_found(format!("no group matched labels {}", describe(labels)));
            }
        },
    };
    let mut r = match snap.profile_for(&group) {
        Err(e) => Reply::not_found(e.to_string()),
        Ok(p) => {
            if let Some(local) = lifecycle::local_boot(shared, &group, p, mac, script) {
                let mut r = local;
                r.profile = Some(p.id.clone());
                r.group = Some(group.file_id.to_string());
                return r;
            }
            let boot = p.boot.as_ref().map(|b| {
                render::render_boot(b, || render::template_data(&group, labels, raw_query))
            });
            let render_fn = match script {
                Script::Ipxe => render::ipxe_script,
                Script::Grub => render::grub_config,
            };
            let mut r = match boot.transpose() {
                Err(e) => Reply::not_found(e),
                Ok(boot) => match render_fn(boot.as_deref()) {
                    Some(body) => Reply::sniffed(body),
                    None => {
                        Reply::not_found(format!("profile {:?} has no boot section", p.file_id))
                    }
                },
            };
            r.profile = Some(p.id.clone());
            r
        }
    };
    if discovery && r.reason.is_none() {
        r.reason = Some(format!(
            "no group matched labels {}: discovery profile",
            describe(labels)
        ));
    }
    r.group = Some(group.file_id.to_string());
    r
}

fn read_reason(kind: &str, id: &str, e: &ReadError) -> String {
    match e {
        ReadError::NotFound(_) => format!("{kind} file {id:?} does not exist"),
        other => format!("{kind} file {id:?}: {other}"),
    }
}

pub(crate) fn ignition(shared: &Shared, labels: &Labels, raw_query: &str) -> Reply {
    let snap = shared.snapshot.load();
    let group = match pick_group(&snap, labels) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut r = ignition_for(shared, &snap, &group, labels, raw_query);
    r.group = Some(group.file_id.to_string());
    r
}

fn ignition_for(
    shared: &Shared,
    snap: &Snapshot,
    group: &Group,
    labels: &Labels,
    raw_query: &str,
) -> Reply {
    let profile = match snap.profile_for(group) {
        Ok(p) => p,
        Err(e) => return Reply::not_found(e.to_string()),
    };
    let with_profile = |mut r: Reply| {
        r.profile = Some(profile.id.clone());
        r
    };
    let id = &profile.ignition_id;
    if id.is_empty() {
        return with_profile(Reply::not_found(format!(
            "profile {:?} has no ignition_id",
            profile.file_id
        )));
    }
    let bytes = match snap.read(&shared.data, Area::Ignition, id) {
        Ok(b) => b,
        Err(e) => return with_profile(Reply::not_found(read_reason("ignition", id, &e))),
    };
    if id.ends_with(".ign") || id.ends_with(".ignition") {
        return with_profile(Reply::new(StatusCode::OK, "application/json", bytes));
    }
    let src = String::from_utf8_lossy(&bytes);
    let data = render::template_data(group, labels, raw_query);
    let rendered = match render::render_template(&src, &data) {
        Ok(s) => s,
        Err(e) => return with_profile(Reply::not_found(format!("template ignition/{id}: {e}"))),
    };
    match &shared.translator {
        None => with_profile(Reply::not_found(format!(
            "ignition/{id} is a Butane template and this build has no Butane translator"
        ))),
        Some(t) => match t.translate(&rendered) {
            Ok(json) => with_profile(Reply::new(StatusCode::OK, "application/json", json)),
            Err(e) => with_profile(Reply::not_found(format!(
                "Butane translation of ignition/{id}: {e}"
            ))),
        },
    }
}

pub(crate) fn generic(
    shared: &Shared,
    labels: &Labels,
    raw_query: &str,
    headers: &HeaderMap,
    area: Area,
) -> Reply {
    let snap = shared.snapshot.load();
    let group = match pick_group(&snap, labels) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut r = (|| {
        let profile = snap
            .profile_for(&group)
            .map_err(|e| Reply::not_found(e.to_string()))?;
        let (kind, id) = match area {
            Area::Cloud => ("cloud", &profile.cloud_id),
            _ => ("generic", &profile.generic_id),
        };
        let fail = |msg: String| {
            let mut r = Reply::not_found(msg);
            r.profile = Some(profile.id.clone());
            r
        };
        if id.is_empty() {
            return Err(fail(format!(
                "profile {:?} has no {kind}_id",
                profile.file_id
            )));
        }
        let bytes = snap
            .read(&shared.data, area, id)
            .map_err(|e| fail(read_reason(kind, id, &e)))?;
        let data = render::template_data(&group, labels, raw_query);
        let out = render::render_template(&String::from_utf8_lossy(&bytes), &data)
            .map_err(|e| fail(format!("template {kind}/{id}: {e}")))?;
        if area == Area::Cloud {
            let first = out.split('\n').next().unwrap_or("").trim_end_matches('\r');
            if first != "#cloud-config" && !out.starts_with("#!") {
                return Err(fail(format!(
                    "cloud/{id} renders neither a #cloud-config nor a script"
                )));
            }
        }
        let ct = render::detect_content_type(out.as_bytes());
        let mut r = content::serve_bytes(headers, Bytes::from(out), ct);
        r.profile = Some(profile.id.clone());
        Ok(r)
    })()
    .unwrap_or_else(|e| e);
    r.group = Some(group.file_id.to_string());
    r
}

pub(crate) fn metadata(shared: &Shared, labels: &Labels, raw_query: &str) -> Reply {
    let snap = shared.snapshot.load();
    let group = match pick_group(&snap, labels) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let data = render::template_data(&group, labels, raw_query);
    let mut r = Reply::new(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        render::metadata_env(&data),
    );
    r.group = Some(group.file_id.to_string());
    r
}

/// What HTTP `/grub?<raw_query>` answers, for another transport (Secure Boot's GRUB asks
/// over TFTP, which has no HTTP): the same selection, lifecycle and renderer. `Ok` with
/// the body and (group, profile) on a 200, else why not (the 404's reason).
pub fn grub_for_query(
    shared: &Shared,
    raw_query: &str,
    peer: std::net::IpAddr,
) -> Result<(Bytes, Option<String>, Option<String>), String> {
    let (labels, _) = kindling_model::labels_from_query(raw_query);
    let r = boot_script(shared, &labels, raw_query, peer, Script::Grub);
    match (r.status, r.body) {
        (StatusCode::OK, crate::body::Content::Bytes(b)) => Ok((b, r.group, r.profile)),
        (status, _) => Err(r.reason.unwrap_or_else(|| format!("status {status}"))),
    }
}
