//! The `Tr` side of the menu translation: finding dnsmasq's BIOS menu for a translation
//! and turning it into `[dhcp.pxe_menu]` (the menu's own types are in `menu`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use kindling_dhcp::config::TargetKind;
use kindling_dhcp::{CheckedConfig, Context, Decision, DhcpConfig, ListenPort, decide};

use super::menu::*;
use super::model::*;
use super::plan::Tr;
use crate::migrate::dnsmasq::parse::{Fate, PromptTimeout};
use crate::migrate::probe::{self, Client, DEFAULT_MAC, DISCOVER, Kind};

impl Tr<'_> {
    /// dnsmasq's menu for the BIOS machine no MAC-specific line names, when a ROM shows it.
    pub(super) fn plan_menu(&self) -> Option<MenuPlan> {
        let sim = self.sim(false);
        let c = Client {
            kind: Kind::Bios,
            mac: DEFAULT_MAC,
        };
        let m = sim.menu(&c).filter(|m| m.visible())?;
        let mut items = Vec::new();
        let mut left_out = BTreeMap::new();
        for s in &m.services {
            match item_of(s, self.server) {
                Ok(it) => items.push(it),
                Err(why) => {
                    left_out.insert(s.line, why);
                }
            }
        }
        let (prompt, prompt_line, timeout, timeout_note) = match m.prompt {
            Some(p) => {
                let l = p.line;
                let (t, note) = match p.timeout() {
                    PromptTimeout::Absent => (
                        255,
                        format!("line {l} gives no timeout: dnsmasq waits for a key (255)"),
                    ),
                    PromptTimeout::NotANumber => (
                        255,
                        format!(
                            "line {l}: {:?} is not a number, so dnsmasq waits for a key (255)",
                            p.timeout.clone().unwrap_or_default()
                        ),
                    ),
                    PromptTimeout::Secs(n) if n <= 255 => (n as u8, format!("line {l}")),
                    PromptTimeout::Secs(n) => (
                        254,
                        format!(
                            "line {l}: {n} s does not fit the PXE prompt's one byte: clamped to 254, the longest countdown (255 waits for a key; dnsmasq itself sends the low byte, {})",
                            p.dnsmasq_timeout()
                        ),
                    ),
                };
                (p.text.clone(), Some(l), t, note)
            }
            None => (
                "PXE".to_string(),
                None,
                m.timeout,
                "no pxe-prompt applies: dnsmasq's own prompt \"PXE\" waits for a key (255)".into(),
            ),
        };
        let mut plan = MenuPlan {
            prompt,
            timeout,
            prompt_line,
            timeout_note,
            items,
            left_out,
            failed: None,
        };
        if plan.items.is_empty() {
            plan.failed =
                Some("none of its items can be expressed (see its pxe-service lines)".into());
        } else {
            let d = DhcpConfig {
                pxe_menu: config_of(&plan.prompt, plan.timeout, &plan.items, None),
                ..DhcpConfig::default()
            };
            if let Err(e) = d.validate() {
                plan.failed = Some(format!("Kindling refuses it ({e})"));
            }
        }
        Some(plan)
    }

    /// Whether the translation has a menu.
    fn translated(&self) -> Option<&MenuPlan> {
        self.menu.as_ref().filter(|m| m.failed.is_none())
    }

    /// BIOS firmware clients matching `pred`, as labels.
    fn bios_labels(&self, pred: impl Fn(&Client, &ClientMenu) -> bool) -> Vec<String> {
        self.clients
            .iter()
            .filter(|c| c.kind == Kind::Bios)
            .filter(|c| self.menus.get(*c).is_some_and(|m| pred(c, m)))
            .map(|c| c.label())
            .collect()
    }

    /// What became of a `pxe-prompt` line.
    pub(super) fn prompt_fate(&self, no: usize) -> Fate {
        let Some(p) = self.conf.pxe_prompts.iter().find(|p| p.line == no) else {
            return Fate::NotTranslated("malformed".into());
        };
        if let Some(m) = &self.menu {
            if let Some(why) = &m.failed {
                return Fate::NotTranslated(format!(
                    "dnsmasq's BIOS menu is not translated: {why}"
                ));
            }
            if m.prompt_line == Some(no) {
                return Fate::Done(format!(
                    "-> [dhcp.pxe_menu] prompt, timeout_secs = {}",
                    m.timeout
                ));
            }
            let theirs = m
                .prompt_line
                .map(|l| format!("line {l}'s"))
                .unwrap_or_else(|| "dnsmasq's own, \"PXE\"".into());
            if !p.conds.is_empty() {
                return Fate::NotTranslated(format!(
                    "a prompt for tagged machines: Kindling's menu has one prompt for every BIOS machine ({theirs})"
                ));
            }
            return Fate::Done(format!(
                "dnsmasq sends every matching pxe-prompt, newest first, and a ROM reads the first: {theirs} is translated"
            ));
        }
        let others = self.bios_labels(|_, m| m.visible);
        if !others.is_empty() {
            return Fate::NotTranslated(format!(
                "dnsmasq shows a PXE menu only to {} (tags), not to other BIOS machines; Kindling's [dhcp.pxe_menu] would go to every BIOS machine, so it is left out",
                others.join(", ")
            ));
        }
        let one = self.bios_labels(|_, m| m.lines.len() == 1);
        let what = if one.is_empty() {
            "no BIOS machine checked gets a menu from dnsmasq".to_string()
        } else {
            format!(
                "a menu of one item with timeout {} for {}: the ROM boots it at once, as Kindling's offer does without a menu",
                p.dnsmasq_timeout(),
                one.join(", ")
            )
        };
        Fate::Done(format!(
            "nothing to show ({what}); the line also switches dnsmasq's PXE on, which Kindling's proxy always is"
        ))
    }

    /// What became of a `pxe-service` line with a menu in the picture (`None`: the usual
    /// account, `chosen`, says it all).
    pub(super) fn service_fate(
        &self,
        no: usize,
        chosen: Option<&str>,
        rules: &[Planned],
        base: &DhcpConfig,
    ) -> Option<Fate> {
        let m = self.menu.as_ref()?;
        let csa = self.conf.pxe_services.iter().find(|s| s.line == no)?.csa;
        if let Some(why) = m.left_out.get(&no) {
            return Some(Fate::NotTranslated(format!(
                "an item of dnsmasq's BIOS menu, left out of [dhcp.pxe_menu]: {why}"
            )));
        }
        let at = m.items.iter().position(|it| it.line == no);
        if let (Some(why), Some(_)) = (&m.failed, at) {
            return Some(Fate::NotTranslated(format!(
                "an item of dnsmasq's BIOS menu, which is not translated: {why}"
            )));
        }
        if m.failed.is_some() {
            return None;
        }
        let Some(i) = at else {
            let shown = self.bios_labels(|_, cm| cm.visible && cm.lines.contains(&no));
            if !shown.is_empty() {
                let mut s = format!(
                    "an item of dnsmasq's menu for {} only (tags), left out: Kindling's [dhcp.pxe_menu] is the same for every BIOS machine",
                    shown.join(", ")
                );
                if let Some(ch) = chosen {
                    s.push_str(&format!("; {ch}"));
                }
                return Some(Fate::NotTranslated(s));
            }
            if chosen.is_none() && csa != 0 {
                return Some(Fate::Done(
                    "evaluated for every client checked: chosen for none; Kindling's [dhcp.pxe_menu] is for BIOS PXE ROMs only (UEFI gets efi_binary)".into(),
                ));
            }
            return None;
        };
        let it = &m.items[i];
        let how = match &it.kind {
            ItemKind::LocalBoot => "target local_boot".to_string(),
            ItemKind::File(f) if *f == base.bios_binary => {
                format!("bios_binary {f:?}, then the machine's iPXE script")
            }
            ItemKind::File(f) => format!("file {f:?}"),
        };
        let mut s = format!("-> [dhcp.pxe_menu] item {} ({how}", i + 1);
        if let Some(n) = &it.note {
            s.push_str(&format!(": {n}"));
        }
        s.push(')');
        if i == 0 {
            s.push_str(", the default when the prompt times out");
        }
        let bypassed = |c: &Client| {
            rules.iter().any(|p| {
                p.clients.contains(c)
                    && matches!(
                        p.rule.target,
                        Some(TargetKind::LocalBoot | TargetKind::Ignore)
                    )
            })
        };
        let without = self
            .bios_labels(|c, cm| !cm.lines.is_empty() && !cm.lines.contains(&no) && !bypassed(c));
        if !without.is_empty() {
            s.push_str(&format!(
                "; dnsmasq leaves it out for {} (tags): Kindling's menu is the same for every BIOS machine",
                without.join(", ")
            ));
        }
        if let Some(ch) = chosen {
            s.push_str(&format!("; as the first item, {ch}"));
        }
        Some(Fate::Done(s))
    }

    /// A BIOS machine dnsmasq shows the menu that `[dhcp.pxe_menu]` is: rules must not take
    /// it past Kindling's menu (a local_boot rule boots the same first item, without one).
    pub(super) fn wants_menu(&self, c: &Client, base: &DhcpConfig) -> bool {
        c.kind == Kind::Bios
            && !base.pxe_menu.items.is_empty()
            && self.real_menu(c)
            && self.menu_reason(c, base).is_none()
    }

    /// Kindling's port-67 offer to this client is its `[dhcp.pxe_menu]`.
    pub(super) fn shows_menu(&self, cfg: &CheckedConfig, c: &Client) -> bool {
        let Some(m) = cfg.pxe_menu.as_ref() else {
            return false;
        };
        let local = [(self.server, self.mask)];
        let ctx = Context {
            iface: &self.iface,
            server_ip: self.server,
            port: ListenPort::Dhcp,
            source: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
            local: &local,
            secure_boot: None,
        };
        let pkt = probe::request_bytes(c, 0x4b1d_0003, DISCOVER, Ipv4Addr::UNSPECIFIED, None);
        let Decision::Reply(r) = decide(cfg, &ctx, &pkt).decision else {
            return false;
        };
        probe::decode_reply(&r.packet).and_then(|o| o.opt43) == Some(m.option43(self.server))
    }

    /// Why a BIOS client boots otherwise than under dnsmasq, when menus are the cause.
    pub(super) fn menu_reason(&self, c: &Client, base: &DhcpConfig) -> Option<String> {
        let dm = self.menus.get(c)?;
        if c.kind.is_ipxe() {
            return self.real_menu(c).then(|| {
                "dnsmasq sends iPXE its PXE menu too (the first item is compared); Kindling gives iPXE its script (iPXE is past the ROM's menu)".to_string()
            });
        }
        if c.kind != Kind::Bios {
            return None;
        }
        let Some(m) = self
            .translated()
            .filter(|_| !base.pxe_menu.items.is_empty())
        else {
            return dm.visible.then(|| {
                "dnsmasq shows a PXE menu here (the first item is compared); it is not translated (see the pxe-prompt line)".to_string()
            });
        };
        if dm.lines.first().is_some_and(|l| m.left_out.contains_key(l)) {
            return Some(
                "the first item of dnsmasq's menu is left out of [dhcp.pxe_menu] (see its line)"
                    .into(),
            );
        }
        let kept: Vec<usize> = dm
            .lines
            .iter()
            .copied()
            .filter(|l| !m.left_out.contains_key(l))
            .collect();
        let ours: Vec<usize> = m.items.iter().map(|i| i.line).collect();
        if kept == ours {
            return None;
        }
        Some(if dm.visible {
            "dnsmasq shows this machine another PXE menu (its tags; the first items are compared); Kindling's [dhcp.pxe_menu] is the same for every BIOS machine".into()
        } else {
            "dnsmasq shows this machine no menu (its tags); Kindling's [dhcp.pxe_menu] goes to every BIOS machine (only a local_boot or ignore rule takes one past it)".into()
        })
    }
}
