//! dnsmasq's BIOS PXE menu (a `pxe-prompt` and the `pxe-service` lines for x86PC) to
//! `[dhcp.pxe_menu]`: the menu dnsmasq's offer shows a BIOS machine that no MAC-specific
//! line names, item by item, with the prompt and timeout a ROM reads. Kindling shows it to
//! BIOS PXE ROMs only, as dnsmasq in proxy mode does; UEFI and iPXE keep their answers.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use kindling_dhcp::config::{MenuTarget, PxeMenuConfig, PxeMenuItemConfig, TargetKind};
use kindling_dhcp::{CheckedConfig, Context, Decision, DhcpConfig, ListenPort, decide};

use super::model::*;
use super::plan::Tr;
use crate::migrate::dnsmasq::parse::{Fate, PromptTimeout, PxeService};
use crate::migrate::probe::{self, Client, DEFAULT_MAC, DISCOVER, Kind};

/// The menu one client's dnsmasq offer shows.
#[derive(Debug, Clone, Default)]
pub(super) struct ClientMenu {
    /// The `pxe-service` lines of its items, in order.
    pub(super) lines: Vec<usize>,
    /// A ROM shows it: several items, or one with a countdown.
    pub(super) visible: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ItemKind {
    LocalBoot,
    /// The TFTP file dnsmasq hands out for it (after the port-4011 step).
    File(String),
}

#[derive(Debug, Clone)]
pub(super) struct PlannedItem {
    pub(super) line: usize,
    pub(super) text: String,
    pub(super) kind: ItemKind,
    /// How the file name was found (layer suffix, another server).
    pub(super) note: Option<String>,
}

/// dnsmasq's menu for the default BIOS machine, as `[dhcp.pxe_menu]`.
#[derive(Debug, Clone)]
pub(super) struct MenuPlan {
    pub(super) prompt: String,
    pub(super) timeout: u8,
    /// The `pxe-prompt` line (`None`: dnsmasq's own prompt).
    pub(super) prompt_line: Option<usize>,
    /// Where `timeout_secs` comes from.
    pub(super) timeout_note: String,
    pub(super) items: Vec<PlannedItem>,
    /// `pxe-service` lines of dnsmasq's menu that Kindling cannot express, with why.
    pub(super) left_out: BTreeMap<usize, String>,
    /// Why the menu is not in the translation (`None`: it is).
    pub(super) failed: Option<String>,
}

/// The error without its key (`dhcp.pxe_menu.items[0].text: must be ...` -> `must be ...`).
fn reason(e: &kindling_dhcp::ConfigError) -> String {
    let s = e.to_string();
    match s.split_once(": ") {
        Some((k, r)) if k.starts_with("dhcp.") && !k.contains(' ') => r.to_string(),
        _ => s,
    }
}

/// A menu of these items, with every file item as a `file` except `bios_binary`'s.
fn config_of(
    prompt: &str,
    timeout: u8,
    items: &[PlannedItem],
    bios_binary: Option<&str>,
) -> PxeMenuConfig {
    PxeMenuConfig {
        prompt: prompt.to_string(),
        timeout_secs: timeout,
        items: items
            .iter()
            .map(|it| match &it.kind {
                ItemKind::LocalBoot => PxeMenuItemConfig {
                    text: it.text.clone(),
                    target: MenuTarget::LocalBoot,
                    file: None,
                },
                ItemKind::File(f) => PxeMenuItemConfig {
                    text: it.text.clone(),
                    target: MenuTarget::Script,
                    file: (Some(f.as_str()) != bios_binary).then(|| f.clone()),
                },
            })
            .collect(),
    }
}

fn menu_check(cfg: PxeMenuConfig) -> Result<(), String> {
    let d = DhcpConfig {
        pxe_menu: cfg,
        ..DhcpConfig::default()
    };
    d.validate().map(|_| ()).map_err(|e| reason(&e))
}

/// One `pxe-service` line of the menu as an item, or why it cannot be one.
fn item_of(s: &PxeService, server: Ipv4Addr) -> Result<PlannedItem, String> {
    let (kind, mut notes) = match &s.basename {
        None if s.boot_type == 0 => (ItemKind::LocalBoot, Vec::new()),
        None => {
            return Err(format!(
                "boot server type {}: the ROM looks for a boot server of that type (PXE discovery){}; a Kindling menu item boots Kindling's file or the local disk",
                s.boot_type,
                match (s.server, &s.server_name) {
                    (Some(ip), _) => format!(" at {ip}"),
                    (_, Some(n)) => format!(" at {n}"),
                    _ => String::new(),
                }
            ));
        }
        Some(b) if is_url(b) => {
            return Err(
                "a URL as a BIOS menu item's file: a PXE ROM loads it over TFTP, which cannot work (iPXE URLs belong in script_url or rules)"
                    .into(),
            );
        }
        Some(b) if b.contains('.') => (ItemKind::File(b.clone()), Vec::new()),
        Some(b) => (
            ItemKind::File(format!("{b}.0")),
            vec![format!(
                "{b:?} with the layer suffix \".0\" dnsmasq adds to a basename without a dot"
            )],
        ),
    };
    let elsewhere = match (s.server, &s.server_name) {
        (_, Some(n)) => Some(n.clone()),
        (Some(ip), _) if ip != server && !ip.is_unspecified() => Some(ip.to_string()),
        _ => None,
    };
    if let (Some(at), ItemKind::File(_)) = (elsewhere, &kind) {
        notes.push(format!(
            "dnsmasq sends the ROM to {at}'s TFTP server for it; Kindling serves it itself (copy it into [tftp] root)"
        ));
    }
    let it = PlannedItem {
        line: s.line,
        text: s.menu.clone(),
        kind,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    };
    menu_check(config_of("PXE", 0, std::slice::from_ref(&it), None))?;
    Ok(it)
}

impl MenuPlan {
    /// The file of the first item that is an iPXE binary: the natural `bios_binary`.
    pub(super) fn bios_binary(&self) -> Option<(String, usize)> {
        self.items.iter().find_map(|it| match &it.kind {
            ItemKind::File(f) if IPXE_BINARIES.contains(&f.as_str()) => Some((f.clone(), it.line)),
            _ => None,
        })
    }

    /// Puts the menu into `base` (its items with `bios_binary`'s file become plain `script`
    /// items), or records why it cannot.
    pub(super) fn apply(&mut self, base: &mut DhcpConfig) {
        if self.failed.is_some() {
            return;
        }
        let cfg = config_of(
            &self.prompt,
            self.timeout,
            &self.items,
            Some(&base.bios_binary),
        );
        let mut t = base.clone();
        t.pxe_menu = cfg.clone();
        match t.validate() {
            Ok(_) => base.pxe_menu = cfg,
            Err(e) => self.failed = Some(format!("Kindling refuses it ({e})")),
        }
    }

    pub(super) fn lines(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.prompt_line.into_iter().collect();
        v.extend(self.items.iter().map(|i| i.line));
        v.extend(self.left_out.keys());
        v.sort();
        v.dedup();
        v
    }
}

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
        };
        let pkt = probe::request_bytes(c, 0x4b1d_0003, DISCOVER, Ipv4Addr::UNSPECIFIED, None);
        let Decision::Reply(r) = decide(cfg, &ctx, &pkt).decision else {
            return false;
        };
        probe::decode_reply(&r.packet).and_then(|o| o.opt43)
            == Some(kindling_dhcp::opt43::menu(m, self.server))
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
