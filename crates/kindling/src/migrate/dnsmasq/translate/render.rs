//! The `kindling.toml` text: the header, `[http]`, `[dhcp]` and its rules, `[tftp]`, `[log]`,
//! the differences from dnsmasq and the line-by-line account.

use std::collections::BTreeMap;

use kindling_dhcp::DhcpConfig;
use kindling_dhcp::config::{ArchSpec, MenuTarget, OneOrMany, TargetKind};

use super::fate::Diffs;
use super::menu::MenuPlan;
use super::model::*;
use super::plan::Tr;
use crate::migrate::dnsmasq::parse::{Conf, Fate, Line};
use crate::migrate::probe::{Boot, Client, DIFFERS, Kind, Seen};
use crate::migrate::toml_out::{Block, comment_text, string, strings};

/// What the text is made of, besides the translation state.
pub(super) struct Parts<'a> {
    pub base: &'a DhcpConfig,
    pub notes: &'a BTreeMap<&'static str, String>,
    pub rules: &'a [Planned],
    pub tftp: &'a Block,
    pub diffs: &'a Diffs,
    pub fates: &'a BTreeMap<usize, Fate>,
}

/// The `[tftp]` table.
pub(super) fn tftp_block(conf: &Conf, kseen: &BTreeMap<Client, Seen>) -> Block {
    let mut tftp = Block::default();
    let tftp_lines = |k: &str| {
        conf.lines
            .iter()
            .filter(|l| l.key == k)
            .collect::<Vec<&Line>>()
    };
    let enable = tftp_lines("enable-tftp");
    let hands_out_tftp = kseen
        .values()
        .any(|s| matches!(&s.boot, Boot::File { file, .. } if !is_url(file)));
    if let Some(l) = enable.first() {
        tftp.key("enabled", "true".into(), Some(format!("line {}", l.no)));
    } else if hands_out_tftp {
        tftp.key(
            "enabled",
            "true".into(),
            Some("Kindling names itself as next-server: it serves the boot files".into()),
        );
    }
    if let Some(l) = tftp_lines("tftp-root").last()
        && let Some(dir) = l.args.first().filter(|d| !d.is_empty())
    {
        tftp.key("root", string(dir), Some(format!("line {}", l.no)));
    }
    if let Some(l) = tftp_lines("tftp-no-blocksize").last() {
        tftp.key("max_blksize", "512".into(), Some(format!("line {}", l.no)));
    }
    if let Some(l) = tftp_lines("tftp-mtu").last()
        && let Some(m) = l
            .args
            .first()
            .and_then(|a| a.parse::<u32>().ok())
            .filter(|m| *m >= 68)
    {
        tftp.key("mtu", m.to_string(), Some(format!("line {}", l.no)));
    }
    if let Some(l) = tftp_lines("tftp-max").last()
        && let Some(m) = l
            .args
            .first()
            .and_then(|a| a.parse::<usize>().ok())
            .filter(|m| *m >= 1)
    {
        tftp.key(
            "max_transfers",
            m.to_string(),
            Some(format!("line {}", l.no)),
        );
    }
    if let Some(l) = tftp_lines("tftp-single-port").last() {
        tftp.key("single_port", "true".into(), Some(format!("line {}", l.no)));
    }
    tftp
}

pub(super) fn render(tr: &Tr, parts: &Parts) -> String {
    let Parts {
        base,
        notes,
        rules,
        tftp,
        diffs,
        fates,
    } = *parts;
    let opts = tr.opts;
    let conf = tr.conf;
    let dhcp_on = tr.dhcp_on;
    let http_port = tr.http_port;
    let mut out = String::new();
    let src = if opts.source.is_empty() {
        "dnsmasq.conf"
    } else {
        opts.source.as_str()
    };
    out.push_str(&format!(
        "# kindling.toml written by `kindling migrate dnsmasq` from {}.\n",
        comment_text(src)
    ));
    out.push_str(
        "# Every line of the original is accounted for at the end (\"dnsmasq line N\").\n",
    );
    if dhcp_on {
        out.push_str("# The proxy DHCP below was checked against dnsmasq's own rules for each kind of client:\n");
        for k in Kind::ALL {
            out.push_str(&format!("#   {:<10} {}\n", k.name(), k.describe()));
        }
        out.push_str(
            "# with the MAC 0e:6b:69:6e:64:6c, and again with every MAC the configuration names.\n",
        );
        out.push_str(&format!(
            "# checked on interface {}, address {}/{} ({})\n",
            tr.iface,
            tr.server,
            mask_prefix(tr.mask),
            tr.server_from
        ));
        out.push_str(&format!(
            "# clients checked: {}\n",
            tr.clients
                .iter()
                .map(|c| c.label())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.push('\n');
    if http_port != 8080 && dhcp_on {
        out.push_str("[http]\n");
        let mut b = Block::default();
        b.key(
            "listen",
            string(&format!("0.0.0.0:{http_port}")),
            Some("the port of the boot URLs on this server".into()),
        );
        b.render(&mut out);
        out.push('\n');
    }
    if dhcp_on {
        out.push_str("[dhcp]\n");
        let mut b = Block::default();
        let d = DhcpConfig::default();
        b.key("enabled", "true".into(), None);
        b.key(
            "interfaces",
            strings(&base.interfaces),
            notes.get("interfaces").cloned(),
        );
        if base.exclude_interfaces != d.exclude_interfaces {
            b.key(
                "exclude_interfaces",
                strings(&base.exclude_interfaces),
                notes.get("exclude_interfaces").cloned(),
            );
        }
        let show = |b: &mut Block, k: &'static str, v: &str, dv: &str| {
            if v != dv || notes.contains_key(k) {
                let mut n = notes.get(k).cloned().unwrap_or_default();
                if v == dv {
                    n = if n.is_empty() {
                        "Kindling's default".into()
                    } else {
                        format!("{n} (Kindling's default)")
                    };
                }
                b.key(k, string(v), Some(n).filter(|n| !n.is_empty()));
            }
        };
        show(&mut b, "bios_binary", &base.bios_binary, &d.bios_binary);
        show(&mut b, "efi_binary", &base.efi_binary, &d.efi_binary);
        if let Some(a) = &base.arm64_binary {
            b.key(
                "arm64_binary",
                string(a),
                notes.get("arm64_binary").cloned(),
            );
        }
        show(
            &mut b,
            "http_boot_binary",
            &base.http_boot_binary,
            &d.http_boot_binary,
        );
        show(&mut b, "script_url", &base.script_url, &d.script_url);
        if !base.vendor_prefixes.is_empty() {
            b.key("vendor_prefixes", strings(&base.vendor_prefixes), None);
        }
        if base.reply_delay_ms != 0 {
            b.key(
                "reply_delay_ms",
                base.reply_delay_ms.to_string(),
                notes.get("reply_delay_ms").cloned(),
            );
        }
        b.render(&mut out);
        if !base.pxe_menu.items.is_empty()
            && let Some(m) = &tr.menu
        {
            render_menu(&mut out, m, base);
        }
        for p in rules {
            out.push('\n');
            out.push_str("[[dhcp.rules]]\n");
            let mut b = Block::default();
            let r = &p.rule;
            if let Some(n) = &r.name {
                b.key("name", string(n), None);
            }
            if let Some(m) = &r.mac {
                b.key("mac", string(m), None);
            }
            if let Some(a) = &r.arch {
                let v = match a {
                    OneOrMany::One(x) => spec_text(x),
                    OneOrMany::Many(v) => format!(
                        "[{}]",
                        v.iter().map(spec_text).collect::<Vec<_>>().join(", ")
                    ),
                };
                b.key("arch", v, None);
            }
            if let Some(u) = &r.user_class {
                b.key("user_class", string(u), None);
            }
            if let Some(t) = r.target {
                let t = match t {
                    TargetKind::Script => "script",
                    TargetKind::Url => "url",
                    TargetKind::LocalBoot => "local_boot",
                    TargetKind::Ignore => "ignore",
                };
                b.key("target", string(t), None);
            }
            if let Some(u) = &r.url {
                let note = (u == MENU_URL && !opts.keep_netboot_xyz)
                    .then(|| "Kindling's menu (docs/menus.md) in place of netboot.xyz".to_string());
                b.key("url", string(u), note);
            }
            let ls: Vec<String> = p.lines.iter().map(|l| l.to_string()).collect();
            if !ls.is_empty() {
                out.push_str(&format!(
                    "# from dnsmasq line{} {}; for {}\n",
                    if ls.len() == 1 { "" } else { "s" },
                    ls.join(", "),
                    p.clients
                        .iter()
                        .map(|c| c.label())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            b.render(&mut out);
        }
        if rules
            .iter()
            .any(|p| p.rule.url.as_deref() == Some(MENU_URL))
            && !opts.keep_netboot_xyz
        {
            out.push_str(
                "# /menu.ipxe is Kindling's boot menu (docs/menus.md), replacing netboot.xyz. To choose the\n\
                 # entry a machine boots without asking: [[menu.machines]] mac = \"...\", entry = \"debian\".\n\
                 # To keep netboot.xyz instead: kindling migrate dnsmasq --keep-netboot-xyz.\n",
            );
        }
        out.push('\n');
    }
    if !tftp.is_empty() {
        out.push_str("[tftp]\n");
        tftp.render(&mut out);
        out.push('\n');
    }
    if let Some(l) = conf.lines.iter().find(|l| l.key == "log-dhcp") {
        out.push_str("[log]\n");
        let mut b = Block::default();
        b.key(
            "level",
            string("info,kindling_dhcp=debug"),
            Some(format!(
                "line {}; or: kindling serve --log info,kindling_dhcp=debug",
                l.no
            )),
        );
        b.render(&mut out);
        out.push('\n');
    }
    if dhcp_on {
        if diffs.is_empty() {
            out.push_str("# Differences from dnsmasq: none; every client checked gets the same answer from both.\n");
        } else {
            out.push_str("# Differences from dnsmasq (field: clients — dnsmasq; Kindling: why):\n");
            for ((f, dv, kv, why), labels) in diffs {
                out.push_str(&format!(
                    "{DIFFERS}{}): {} — dnsmasq {}; Kindling {}: {}\n",
                    f.name(),
                    labels.join(", "),
                    comment_text(dv),
                    comment_text(kv),
                    comment_text(why)
                ));
            }
        }
        out.push('\n');
    }
    out.push_str("# Line by line:\n");
    for l in &conf.lines {
        let text = comment_text(&l.text);
        match fates.get(&l.no) {
            Some(Fate::NotTranslated(why)) => out.push_str(&format!(
                "# dnsmasq line {}: {} — not translated: {}\n",
                l.no,
                text,
                comment_text(why)
            )),
            Some(Fate::Done(what)) => out.push_str(&format!(
                "# dnsmasq line {}: {} — {}\n",
                l.no,
                text,
                comment_text(what)
            )),
            None => {}
        }
    }
    out
}

/// `[dhcp.pxe_menu]` and its items, each with the dnsmasq line it comes from.
fn render_menu(out: &mut String, m: &MenuPlan, base: &DhcpConfig) {
    let lines: Vec<String> = m.lines().iter().map(|l| l.to_string()).collect();
    out.push_str("\n[dhcp.pxe_menu]\n");
    out.push_str(&format!(
        "# dnsmasq's BIOS PXE menu (lines {}); for BIOS PXE ROMs only, as dnsmasq shows it (UEFI and iPXE keep their answers)\n",
        lines.join(", ")
    ));
    let mut b = Block::default();
    b.key(
        "prompt",
        string(&base.pxe_menu.prompt),
        Some(match m.prompt_line {
            Some(l) => format!("line {l}"),
            None => "dnsmasq's own prompt (no pxe-prompt applies)".into(),
        }),
    );
    b.key(
        "timeout_secs",
        base.pxe_menu.timeout_secs.to_string(),
        Some(m.timeout_note.clone()),
    );
    b.render(out);
    for (it, cfg) in m.items.iter().zip(&base.pxe_menu.items) {
        out.push_str("\n[[dhcp.pxe_menu.items]]\n");
        let mut b = Block::default();
        b.key("text", string(&cfg.text), Some(format!("line {}", it.line)));
        match (cfg.target, &cfg.file) {
            (MenuTarget::LocalBoot, _) => b.key(
                "target",
                string("local_boot"),
                Some("no basename: boot from the local disk".into()),
            ),
            (MenuTarget::Script, None) => b.key(
                "target",
                string("script"),
                Some(format!(
                    "bios_binary ({}), then the machine's iPXE script",
                    base.bios_binary
                )),
            ),
            (MenuTarget::Script, Some(f)) => b.key("file", string(f), it.note.clone()),
        }
        b.render(out);
    }
}

fn spec_text(a: &ArchSpec) -> String {
    match a {
        ArchSpec::Number(n) => n.to_string(),
        ArchSpec::Name(s) => string(s),
    }
}
