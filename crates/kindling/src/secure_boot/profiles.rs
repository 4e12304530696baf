//! `kindling check`'s Secure Boot findings: the profiles a Secure Boot route boots, and
//! what in them the signed chain cannot boot (an unsigned kernel, files over HTTP).

use std::collections::BTreeMap;
use std::path::Path;

use kindling_dhcp::config::MacPattern;
use kindling_model::{Group, MacAddr, Snapshot};

use super::config::SecureBootConfig;
use super::pe::{Signature, signature_of};

/// A group's `mac` selector as octets.
fn group_mac(g: &Group) -> Option<[u8; 6]> {
    MacAddr::parse(g.selector.get("mac")?).ok().map(|m| m.0)
}

/// Could a rule with this MAC pattern match the machines of this group? (A rule without a
/// MAC pattern matches any; a group without a `mac` selector may be any machine.)
fn may_match(pattern: Option<&String>, g: &Group) -> bool {
    match (pattern.and_then(|p| MacPattern::parse(p)), group_mac(g)) {
        (Some(p), Some(mac)) => p.matches(&mac),
        _ => true,
    }
}

/// Is this group's machine (possibly) routed to Secure Boot? By its own `secure_boot`
/// (with a `mac` selector: DHCP knows no other label), else by a rule with
/// `secure_boot = true` that may match it, or by the default unless a rule with
/// `secure_boot = false` that matches it exempts it.
fn routed(sb: &SecureBootConfig, dhcp: &kindling_dhcp::DhcpConfig, g: &Group) -> bool {
    // The group's own setting wins (for the machine of its `mac` selector).
    if let (Some(on), Some(_)) = (g.secure_boot, group_mac(g)) {
        return on;
    }
    let rules = || dhcp.rules.iter().filter(|r| may_match(r.mac.as_ref(), g));
    if rules().any(|r| r.secure_boot == Some(true)) {
        return true;
    }
    sb.default
        && !rules()
            .any(|r| r.secure_boot == Some(false) && r.mac.is_some() && group_mac(g).is_some())
}

/// (profile file, kind, message) for each problem of a profile a Secure Boot route boots.
pub fn profile_findings(
    sb: &SecureBootConfig,
    dhcp: &kindling_dhcp::DhcpConfig,
    snap: &Snapshot,
    assets: &Path,
) -> Vec<(String, &'static str, String)> {
    // Profile key -> the groups that boot it through Secure Boot.
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in snap.index.groups() {
        if !routed(sb, dhcp, g) {
            continue;
        }
        if let Ok(p) = snap.profile_for(g) {
            used.entry(p.file_id.clone())
                .or_default()
                .push(g.file_id.to_string());
        }
    }
    let mut out = Vec::new();
    for (key, groups) in used {
        let Some(p) = snap.profiles.get(&key) else {
            continue;
        };
        let Some(boot) = &p.boot else { continue };
        let file = format!("profiles/{}.json", p.file_id);
        let via = format!(
            "booted through Secure Boot by groups/{}.json",
            groups.join(".json, groups/")
        );
        let mut push = |kind, msg: String| out.push((file.clone(), kind, format!("{msg} ({via})")));
        for (what, v) in std::iter::once(("kernel", &boot.kernel))
            .chain(boot.initrd.iter().map(|i| ("initrd", i)))
        {
            if v.split_whitespace().any(|t| {
                let t = t.to_ascii_lowercase();
                t.starts_with("http://") || t.starts_with("https://")
            }) {
                push(
                    "secure_boot_http",
                    format!(
                        "{what} {v} is fetched over HTTP, but the signed GRUB of Secure Boot \
                         (Debian's) can only fetch over TFTP: use an /assets/ path"
                    ),
                );
            }
        }
        if boot
            .initrd
            .iter()
            .any(|i| i.trim_start().starts_with("--name"))
        {
            push(
                "secure_boot_initrd_name",
                "an initrd entry starts with iPXE's --name, which GRUB reads as part of the file name".into(),
            );
        }
        if let Some(rest) = boot.kernel.strip_prefix("/assets/")
            && !boot.kernel.contains("{{")
            && let Ok(path) = kindling_model::store::resolve_confined(assets, "assets", rest)
            && signature_of(&path) == Ok(Signature::Unsigned)
        {
            push(
                "secure_boot_unsigned_kernel",
                format!(
                    "kernel {} is an EFI image without a signature: shim refuses it under \
                     Secure Boot (\"bad shim signature\"); use the distribution's signed kernel",
                    boot.kernel
                ),
            );
        }
    }
    out
}

/// (group file, message) for each group whose `secure_boot` cannot take effect: no `mac`
/// selector (DHCP decides by MAC), or shim and GRUB that cannot be read.
pub fn group_findings(sb: &SecureBootConfig, snap: &Snapshot) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for g in snap.index.groups() {
        if g.secure_boot.is_none() {
            continue;
        }
        let file = format!("groups/{}.json", g.file_id);
        if group_mac(g).is_none() {
            out.push((
                file,
                "secure_boot is decided at DHCP time, where only the MAC is known: it takes \
                 effect only in a group with a `mac` selector"
                    .to_string(),
            ));
        } else if g.secure_boot == Some(true)
            && let Err(why) = sb.files_readable()
        {
            out.push((file, format!("secure_boot = true, but {why}")));
        }
    }
    out
}
