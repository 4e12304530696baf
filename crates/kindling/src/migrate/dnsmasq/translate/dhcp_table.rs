//! The `[dhcp]` table: interfaces, boot files and script URL chosen from what the default
//! MAC's clients want, with a note of the dnsmasq lines each key comes from.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use kindling_dhcp::DhcpConfig;
use kindling_dhcp::config::DEFAULT_SCRIPT_URL;

use super::model::*;
use super::plan::Tr;
use crate::migrate::probe::{Client, DEFAULT_MAC, Kind};

/// Fills the `[dhcp]` keys (proxy DHCP on) and their notes.
pub(super) fn dhcp_table(
    tr: &Tr,
    named_ifaces: &[String],
    excluded: &[String],
    base: &mut DhcpConfig,
    notes: &mut BTreeMap<&'static str, String>,
) {
    let conf = tr.conf;
    let server = tr.server;
    let http_port = tr.http_port;
    let line_ref = |l: Option<usize>| l.map(|l| format!("line {l}")).unwrap_or_default();
    base.enabled = true;
    let mut ifs = Vec::new();
    let mut from = Vec::new();
    if named_ifaces.is_empty() {
        for r in &conf.ranges {
            let v = match r.netmask {
                Some(m) => {
                    let net = Ipv4Addr::from(u32::from(r.start) & u32::from(m));
                    format!("{net}/{}", mask_prefix(m))
                }
                None => r.start.to_string(),
            };
            if !ifs.contains(&v) {
                ifs.push(v);
            }
            from.push(r.line);
        }
    } else {
        ifs = named_ifaces.to_vec();
        from.extend(
            conf.lines
                .iter()
                .filter(|l| l.key == "interface")
                .map(|l| l.no),
        );
    }
    // Only names Kindling accepts (an over-long name would make the file invalid).
    ifs.retain(|n| {
        let t = DhcpConfig {
            interfaces: vec![n.clone()],
            exclude_interfaces: Vec::new(),
            ..DhcpConfig::default()
        };
        t.validate().is_ok()
    });
    if ifs.is_empty() {
        ifs = conf.ranges.iter().map(|r| r.start.to_string()).collect();
        ifs.dedup();
    }
    base.interfaces = ifs;
    notes.insert(
        "interfaces",
        format!(
            "{} {}",
            if from.len() == 1 { "line" } else { "lines" },
            from.iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    if !excluded.is_empty() {
        base.exclude_interfaces = excluded
            .iter()
            .filter(|n| {
                let t = DhcpConfig {
                    exclude_interfaces: vec![(*n).clone()],
                    ..DhcpConfig::default()
                };
                t.validate().is_ok()
            })
            .cloned()
            .collect();
        let ls: Vec<String> = conf
            .lines
            .iter()
            .filter(|l| l.key == "except-interface" || l.key == "no-dhcp-interface")
            .map(|l| l.no.to_string())
            .collect();
        notes.insert(
            "exclude_interfaces",
            format!(
                "line {} (replaces Kindling's default [\"virbr*\", \"docker*\"])",
                ls.join(", ")
            ),
        );
    } else {
        let clash: Vec<&String> = base
            .interfaces
            .iter()
            .filter(|n| {
                !n.contains('*')
                    && base
                        .exclude_interfaces
                        .iter()
                        .any(|p| kindling_dhcp::config::NamePattern::new(p).matches(n))
            })
            .collect();
        if !clash.is_empty() {
            base.exclude_interfaces = Vec::new();
            notes.insert(
                "exclude_interfaces",
                "Kindling's default would exclude an interface dnsmasq serves".into(),
            );
        }
    }
    // Globals from what the default MAC's clients want.
    let d = |k: Kind| {
        tr.wants[&Client {
            kind: k,
            mac: DEFAULT_MAC,
        }]
            .clone()
    };
    let dl = |k: Kind| {
        tr.intent[&Client {
            kind: k,
            mac: DEFAULT_MAC,
        }]
            .1
    };
    // With a menu, BIOS firmware boots its items; bios_binary is the item that is an iPXE
    // binary (if any), not the first item's file.
    let bios = match tr.menu.as_ref().filter(|m| m.failed.is_none()) {
        Some(m) => m
            .bios_binary()
            .map(|(f, l)| (f, format!("line {l}, a menu item"))),
        None => match d(Kind::Bios) {
            Want::Binary(f) => Some((f, line_ref(dl(Kind::Bios)))),
            _ => None,
        },
    };
    if let Some((f, note)) = bios {
        let mut t = base.clone();
        t.bios_binary = f.clone();
        if t.validate().is_ok() {
            base.bios_binary = f;
            notes.insert("bios_binary", note);
        }
    }
    for k in [Kind::Uefi, Kind::UefiBc] {
        if let Want::Binary(f) = d(k) {
            let mut t = base.clone();
            t.efi_binary = f.clone();
            if t.validate().is_ok() {
                base.efi_binary = f;
                notes.insert("efi_binary", line_ref(dl(k)));
            }
            break;
        }
    }
    if let Want::Binary(f) = d(Kind::Arm64) {
        let mut t = base.clone();
        t.arm64_binary = Some(f.clone());
        if t.validate().is_ok() {
            base.arm64_binary = Some(f);
            notes.insert("arm64_binary", line_ref(dl(Kind::Arm64)));
        }
    }
    if let Want::HttpFile(u) = d(Kind::Http) {
        let ours = format!("http://{}:{}/tftp/", server, http_port);
        let name = match u.strip_prefix(&ours) {
            Some(n) => Some((n.to_string(), true)),
            None => u
                .rsplit('/')
                .next()
                .filter(|n| n.ends_with(".efi"))
                .map(|n| (n.to_string(), false)),
        };
        if let Some((n, exact)) = name {
            let mut t = base.clone();
            t.http_boot_binary = n.clone();
            if t.validate().is_ok() {
                base.http_boot_binary = n;
                notes.insert(
                    "http_boot_binary",
                    if exact {
                        line_ref(dl(Kind::Http))
                    } else {
                        format!(
                            "{}: served as http://SERVER:PORT/tftp/<name>",
                            line_ref(dl(Kind::Http))
                        )
                    },
                );
            }
        }
    }
    for k in [Kind::BiosIpxe, Kind::UefiIpxe] {
        if let Want::Url(t) = d(k) {
            if t != DEFAULT_SCRIPT_URL {
                let mut c = base.clone();
                c.script_url = t.clone();
                if c.validate().is_ok() {
                    base.script_url = t.clone();
                }
            }
            let netboot = t == MENU_URL && !tr.opts.keep_netboot_xyz;
            notes.insert(
                "script_url",
                format!(
                    "{}{}",
                    line_ref(dl(k)),
                    if netboot {
                        " (netboot.xyz -> Kindling's menu)"
                    } else {
                        ""
                    }
                ),
            );
            break;
        }
    }
    if let Some(p) = conf.pxe_vendors.as_ref() {
        base.vendor_prefixes = p
            .iter()
            .filter(|v| *v != "PXEClient" && *v != "HTTPClient")
            .cloned()
            .collect();
    }
    if let Some(d) = conf.delays.iter().rev().find(|d| d.conds.is_empty()) {
        base.reply_delay_ms =
            (u64::from(d.secs) * 1000).min(kindling_dhcp::config::MAX_REPLY_DELAY_MS);
        notes.insert("reply_delay_ms", format!("line {}", d.line));
    }
}
