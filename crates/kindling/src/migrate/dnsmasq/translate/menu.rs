//! dnsmasq's BIOS PXE menu (a `pxe-prompt` and the `pxe-service` lines for x86PC) to
//! `[dhcp.pxe_menu]`: the menu dnsmasq's offer shows a BIOS machine that no MAC-specific
//! line names, item by item, with the prompt and timeout a ROM reads. Kindling shows it to
//! BIOS PXE ROMs only, as dnsmasq in proxy mode does; UEFI and iPXE keep their answers.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use kindling_dhcp::DhcpConfig;
use kindling_dhcp::config::{MenuTarget, PxeMenuConfig, PxeMenuItemConfig};

use super::model::*;
use crate::migrate::dnsmasq::parse::PxeService;

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
pub(super) fn config_of(
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
pub(super) fn item_of(s: &PxeService, server: Ipv4Addr) -> Result<PlannedItem, String> {
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
