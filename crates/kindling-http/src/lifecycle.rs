//! Install once, then local boot; discovery. The decisions read the in-memory
//! [`Machines`] map; writes (an install recorded, a machine discovered) go to the state
//! directory on a blocking thread.

use std::net::IpAddr;
use std::sync::Arc;

use hyper::StatusCode;
use kindling_model::{
    Group, InstallOnce, Labels, MacAddr, Machines, Profile, Via, machines::Noted,
};

use crate::body::Reply;
use crate::shared::Shared;

/// Which boot script a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Script {
    Ipxe,
    Grub,
}

/// The machine a request names (its `mac` label, already normalised).
pub(crate) fn mac_label(labels: &Labels) -> Option<MacAddr> {
    labels.get("mac").and_then(|m| MacAddr::parse(m).ok())
}

/// What a group's machines do about installing: the group's `install_once`, else its
/// profile's.
pub(crate) fn install_once(group: &Group, profile: &Profile) -> Option<InstallOnce> {
    group.install_once.or(profile.install_once)
}

/// Writes `mac`'s record off the request's thread (a WARN when it fails).
fn persist_later(machines: &Arc<Machines>, mac: MacAddr) {
    let m = Arc::clone(machines);
    let write = move || {
        if let Err(e) = m.persist(mac) {
            tracing::warn!(target: "kindling::machines", %mac, error = %e, "could not write the machine's state");
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn_blocking(write);
        }
        Err(_) => write(),
    }
}

/// A request whose labels matched a group: a machine recorded as discovered no longer is.
pub(crate) fn note_matched(shared: &Shared, mac: Option<MacAddr>) {
    if let (Some(m), Some(mac)) = (&shared.machines, mac)
        && m.matched(mac)
    {
        persist_later(m, mac);
    }
}

/// A boot-script request that matched no group: recorded as discovered (when it names a
/// MAC), and answered by the discovery profile when one is configured (a group of its
/// own with no selectors or metadata, so templates see the request's labels).
pub(crate) fn discovered(
    shared: &Shared,
    labels: &Labels,
    mac: Option<MacAddr>,
    peer: IpAddr,
) -> Option<Arc<Group>> {
    if let (Some(m), Some(mac)) = (&shared.machines, mac) {
        let fact = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
        let facts = [fact("arch"), fact("uuid"), fact("serial"), fact("hostname")];
        match m.discovered(mac, Some(peer), facts) {
            Noted::Changed => persist_later(m, mac),
            Noted::Known => {}
            Noted::Full => {
                tracing::debug!(target: "kindling::machines", %mac, "discovered machines table full; not recorded")
            }
        }
    }
    let profile = shared.discovery_profile.as_deref()?;
    Some(Arc::new(Group::new(
        DISCOVERY_GROUP,
        DISCOVERY_GROUP.into(),
        String::new(),
        profile.into(),
        Default::default(),
        &Default::default(),
    )))
}

/// The name the discovery answer's group goes by (logs, timelines).
pub const DISCOVERY_GROUP: &str = "(discovery)";

/// The local-boot answer for an installed machine, or `None` to boot the profile.
pub(crate) fn local_boot(
    shared: &Shared,
    group: &Group,
    profile: &Profile,
    mac: Option<MacAddr>,
    script: Script,
) -> Option<Reply> {
    let once = install_once(group, profile)?;
    let machines = shared.machines.as_ref()?;
    if let Some(why) = machines.broken() {
        // Not knowing whether it is installed, do not install it again blindly.
        return Some(
            Reply::error(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable").with_reason(
                format!("install_once: the machines' install state could not be read ({why})"),
            ),
        );
    }
    let installed = machines.installed(mac?)?;
    let mac = mac?.to_string();
    let body = match script {
        Script::Ipxe => once.ipxe_local_boot(&mac),
        Script::Grub => once.grub_local_boot(&mac),
    };
    Some(Reply::sniffed(body).with_reason(format!(
        "installed (via {}, at {}): local boot ({})",
        installed.via.as_str(),
        installed.at,
        once.local_boot.as_str()
    )))
}

/// Records an install as done (durably, before the answer goes), as `via`.
async fn record_install(
    machines: &Arc<Machines>,
    mac: MacAddr,
    via: Via,
    group: &str,
    profile: &str,
) -> Result<bool, String> {
    let m = Arc::clone(machines);
    let (g, p) = (group.to_string(), profile.to_string());
    match tokio::task::spawn_blocking(move || m.mark_installed(mac, via, &g, &p)).await {
        Ok(Ok(changed)) => Ok(changed),
        Ok(Err(e)) => Err(format!("cannot record the install of {mac}: {e}")),
        Err(e) => Err(format!("cannot record the install of {mac}: {e}")),
    }
}

/// After a successful `/ignition` answer: a profile whose install is done when the
/// machine fetches its Ignition marks it installed. When that cannot be written the
/// answer becomes a 503, so that the install fails visibly instead of repeating forever.
pub(crate) async fn after_ignition(shared: &Shared, labels: &Labels, reply: Reply) -> Reply {
    if reply.status != StatusCode::OK {
        return reply;
    }
    let (Some(machines), Some(mac)) = (&shared.machines, mac_label(labels)) else {
        return reply;
    };
    let snap = shared.snapshot.load_full();
    let Some(group) = snap.select(labels).cloned() else {
        return reply;
    };
    let Ok(profile) = snap.profile_for(&group).cloned() else {
        return reply;
    };
    match install_once(&group, &profile) {
        Some(o) if o.done == kindling_model::Done::Ignition => {}
        _ => return reply,
    }
    if machines.installed(mac).is_some() {
        return reply;
    }
    match record_install(machines, mac, Via::Ignition, &group.file_id, &profile.id).await {
        Ok(_) => {
            tracing::info!(target: "kindling::machines", %mac, group = %group.file_id, profile = %profile.id, "install done (Ignition fetched): next boots go to the local disk");
            let mut r = reply;
            r.reason = Some("install done (ignition fetched): next boots local".into());
            r
        }
        Err(why) => {
            tracing::error!(target: "kindling::machines", %mac, "{why}");
            let mut r = Reply::error(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable")
                .with_reason(why);
            r.group = reply.group;
            r.profile = reply.profile;
            r
        }
    }
}

/// `/install/done?mac=...`: the install script says it finished.
pub(crate) async fn install_done(shared: &Shared, labels: &Labels) -> Reply {
    let Some(machines) = &shared.machines else {
        return Reply::not_found("install tracking is off (no state directory)");
    };
    let Some(mac) = mac_label(labels) else {
        return Reply::error(StatusCode::BAD_REQUEST, "400 Bad Request")
            .with_reason("no valid mac label (use /install/done?mac=${mac:hexhyp})");
    };
    let snap = shared.snapshot.load_full();
    let Some(group) = snap.select(labels).cloned() else {
        return Reply::not_found(format!("no group matched mac={mac}"));
    };
    let mut reply = match snap.profile_for(&group).cloned() {
        Err(e) => Reply::not_found(e.to_string()),
        Ok(profile) => {
            let mut r = match install_once(&group, &profile) {
                None => Reply::not_found(format!(
                    "neither group {:?} nor profile {:?} has install_once",
                    group.file_id, profile.id
                )),
                Some(o) if o.done == kindling_model::Done::Operator => Reply::error(
                    StatusCode::FORBIDDEN,
                    "403 Forbidden",
                )
                .with_reason(
                    "install_once.done is \"operator\": only the operator marks this install done",
                ),
                Some(_) => {
                    match record_install(machines, mac, Via::Callback, &group.file_id, &profile.id)
                        .await
                    {
                        Ok(changed) => {
                            if changed {
                                tracing::info!(target: "kindling::machines", %mac, group = %group.file_id, profile = %profile.id, "install done (completion URL): next boots go to the local disk");
                            }
                            Reply::new(
                                StatusCode::OK,
                                "text/plain; charset=utf-8",
                                if changed {
                                    "installed\n"
                                } else {
                                    "already installed\n"
                                },
                            )
                            .with_reason(if changed {
                                "install done (completion URL): next boots local"
                            } else {
                                "install already recorded"
                            })
                        }
                        Err(why) => {
                            tracing::error!(target: "kindling::machines", %mac, "{why}");
                            Reply::error(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable")
                                .with_reason(why)
                        }
                    }
                }
            };
            r.profile = Some(profile.id.clone());
            r
        }
    };
    reply.group = Some(group.file_id.to_string());
    reply
}
