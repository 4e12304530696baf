//! Install once, then local boot; discovery. The decisions read the in-memory
//! [`Machines`] map; an install is recorded durably (on a blocking thread) before the
//! answer that caused it; discovery records go to the store's writer thread.
//!
//! A completion (the Ignition fetch, `/install/done`) is judged by the install the server
//! served to that MAC (`Machines::install_served`), never by other labels the completion
//! request carries: `/install/done?mac=X&os=foo` cannot pick another group's rules.

use std::net::IpAddr;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use kindling_model::machines::Noted;
use kindling_model::{Done, Group, Labels, MacAddr, Machines, Pending, Profile, Via};

use crate::body::Reply;
use crate::shared::Shared;

/// Which boot script a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Script {
    Ipxe,
    Grub,
}

/// The machine a request names (its `mac` label, already normalised), when it is a 6-byte
/// MAC.
pub(crate) fn mac_label(labels: &Labels) -> Option<MacAddr> {
    labels.get("mac").and_then(|m| MacAddr::parse(m).ok())
}

fn unavailable(why: String) -> Reply {
    Reply::error(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable").with_reason(why)
}

/// A request whose labels matched a group: a machine recorded as discovered no longer is.
pub(crate) fn note_matched(shared: &Shared, mac: Option<MacAddr>) {
    if let (Some(m), Some(mac)) = (&shared.machines, mac) {
        m.matched(mac);
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
        if m.discovered(mac, Some(peer), facts) == Noted::Full {
            tracing::debug!(target: "kindling::machines", %mac, "discovered machines table full; not recorded");
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

/// For an `install_once` group: the local-boot answer of an installed machine, a 503 when
/// its state is not known (never a blind reinstall), or `None` to serve the install
/// profile (remembered as the install in progress for that MAC).
pub(crate) fn local_boot(
    shared: &Shared,
    group: &Group,
    profile: &Profile,
    mac: Option<MacAddr>,
    script: Script,
) -> Option<Reply> {
    let once = group.install_once_with(profile)?;
    let machines = shared.machines.as_ref()?;
    let Some(mac) = mac else {
        return Some(unavailable(
            "install_once: the request names no 6-byte MAC (mac=${mac:hexhyp}), so its install state cannot be known".into(),
        ));
    };
    if let Some(why) = machines.unknown(mac) {
        return Some(unavailable(format!(
            "install_once: the install state of {mac} could not be read ({why}); not installing it again blindly"
        )));
    }
    let Some(installed) = machines.installed(mac) else {
        machines.install_served(
            mac,
            Pending {
                once,
                group: group.file_id.to_string(),
                profile: profile.id.clone(),
            },
        );
        return None;
    };
    let text = mac.to_string();
    let body = match script {
        Script::Ipxe => once.ipxe_local_boot(&text),
        Script::Grub => once.grub_local_boot(&text),
    };
    Some(Reply::sniffed(body).with_reason(format!(
        "installed (via {}): local boot ({})",
        installed.via.as_str(),
        once.local_boot.as_str()
    )))
}

/// The install a completion request for `mac` ends: the one served to it, else (after a
/// restart) the `install_once` of a group that selects this machine by its MAC.
fn completion(
    shared: &Shared,
    machines: &Machines,
    labels: &Labels,
    mac: MacAddr,
) -> Option<Pending> {
    machines.pending(mac).or_else(|| {
        let snap = shared.snapshot.load();
        let group = snap.select(labels)?;
        if group.selector.get("mac") != Some(mac.to_string().as_str()) {
            return None;
        }
        let profile = snap.profile_for(group).ok()?;
        Some(Pending {
            once: group.install_once_with(profile)?,
            group: group.file_id.to_string(),
            profile: profile.id.clone(),
        })
    })
}

/// Records an install as done (durably, before the answer goes), as `via`.
async fn record_install(
    machines: &Arc<Machines>,
    mac: MacAddr,
    via: Via,
    p: &Pending,
) -> Result<bool, String> {
    let m = Arc::clone(machines);
    let (g, pr) = (p.group.clone(), p.profile.clone());
    match tokio::task::spawn_blocking(move || m.mark_installed(mac, via, &g, &pr)).await {
        Ok(Ok(changed)) => Ok(changed),
        Ok(Err(e)) => Err(format!("cannot record the install of {mac}: {e}")),
        Err(e) => Err(format!("cannot record the install of {mac}: {e}")),
    }
}

/// After a successful `GET /ignition`: an install whose end is the Ignition fetch
/// (`done: "ignition"`) is marked done. When that cannot be written the answer becomes a
/// 503, so that the install fails visibly instead of repeating forever.
pub(crate) async fn after_ignition(
    shared: &Shared,
    method: &Method,
    labels: &Labels,
    reply: Reply,
) -> Reply {
    if reply.status != StatusCode::OK || method != Method::GET {
        return reply;
    }
    let (Some(machines), Some(mac)) = (&shared.machines, mac_label(labels)) else {
        return reply;
    };
    if machines.installed(mac).is_some() {
        return reply;
    }
    let Some(p) =
        completion(shared, machines, labels, mac).filter(|p| p.once.done == Done::Ignition)
    else {
        return reply;
    };
    match record_install(machines, mac, Via::Ignition, &p).await {
        Ok(_) => {
            tracing::info!(target: "kindling::machines", %mac, group = %p.group, profile = %p.profile, "install done (Ignition fetched): next boots go to the local disk");
            reply.with_reason("install done (ignition fetched): next boots local")
        }
        Err(why) => {
            tracing::error!(target: "kindling::machines", %mac, "{why}");
            let mut r = unavailable(why);
            r.group = reply.group;
            r.profile = reply.profile;
            r
        }
    }
}

/// `GET|POST /install/done?mac=...`: the install script says it finished.
pub(crate) async fn install_done(shared: &Shared, method: &Method, labels: &Labels) -> Reply {
    if method != Method::GET && method != Method::POST {
        return Reply::not_allowed("GET, POST");
    }
    let Some(machines) = &shared.machines else {
        return Reply::not_found("install tracking is off ([machines] track = false)");
    };
    let Some(mac) = mac_label(labels) else {
        return Reply::error(StatusCode::BAD_REQUEST, "400 Bad Request")
            .with_reason("no valid 6-byte mac label (use /install/done?mac=${mac:hexhyp})");
    };
    let Some(p) = completion(shared, machines, labels, mac) else {
        return Reply::not_found(format!(
            "no install of {mac} in progress: no install_once profile was served to it since the server started, and no install_once group selects it by its MAC"
        ));
    };
    let mut reply = if p.once.done == Done::Operator {
        Reply::error(StatusCode::FORBIDDEN, "403 Forbidden").with_reason(format!(
            "install_once.done is {:?}: only the operator marks this install done",
            p.once.done.as_str()
        ))
    } else {
        match record_install(machines, mac, Via::Callback, &p).await {
            Ok(changed) => {
                if changed {
                    tracing::info!(target: "kindling::machines", %mac, group = %p.group, profile = %p.profile, "install done (completion URL): next boots go to the local disk");
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
                unavailable(why)
            }
        }
    };
    reply.group = Some(p.group);
    reply.profile = Some(p.profile);
    reply
}
