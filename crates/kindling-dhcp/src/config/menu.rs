//! `[dhcp.pxe_menu]`: a PXE boot menu with a prompt (dnsmasq's `pxe-prompt` and several
//! `pxe-service` lines), shown by BIOS PXE ROMs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::error::{ConfigError, check_file};
use crate::opt43::{boot_item, sub};
use crate::wire::pxe;

/// The raw `[dhcp.pxe_menu]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PxeMenuConfig {
    /// Text the ROM prints while it counts down (dnsmasq `pxe-prompt`); pressing F8 shows
    /// the menu.
    pub prompt: String,
    /// Seconds before the first item is chosen without a key press: 0 chooses it at once,
    /// 255 waits for a key for ever (PXE specification).
    pub timeout_secs: u8,
    /// The items, in menu order. The first one is the default. None: no menu.
    pub items: Vec<PxeMenuItemConfig>,
}

impl Default for PxeMenuConfig {
    fn default() -> Self {
        Self {
            prompt: "Press F8 for the boot menu".into(),
            timeout_secs: 10,
            items: Vec::new(),
        }
    }
}

/// One `[[dhcp.pxe_menu.items]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PxeMenuItemConfig {
    /// The menu line.
    pub text: String,
    /// `script` (default: Kindling's boot, the iPXE binary then the machine's script) or
    /// `local_boot` (the ROM boots the next device).
    #[serde(default)]
    pub target: MenuTarget,
    /// A TFTP file for this item instead of `bios_binary` (e.g. a memory tester); only with
    /// `target = "script"`.
    #[serde(default)]
    pub file: Option<String>,
}

/// What a menu item does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MenuTarget {
    /// Kindling's boot file for the client's firmware (or the item's `file`).
    #[default]
    Script,
    /// Boot from the local disk: PXE boot item type 0, never sent to a server.
    LocalBoot,
}

/// A validated menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PxeMenu {
    pub prompt: String,
    pub timeout: u8,
    pub items: Vec<MenuItem>,
}

/// A validated menu item with its PXE boot server type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuItem {
    pub text: String,
    /// 0 for local boot; 0x8000, 0x8001, ... for the others in order (as dnsmasq numbers its
    /// `pxe-service` lines).
    pub item_type: u16,
    /// The TFTP file of a non-local item (`None`: the firmware's default binary).
    pub file: Option<String>,
}

/// Longest option 43 a ROM reads (one option, no RFC 3396 splitting).
const OPT43_MAX: usize = 255;

impl PxeMenuConfig {
    /// The menu, or `None` when it has no items.
    pub(super) fn validate(&self) -> Result<Option<PxeMenu>, ConfigError> {
        let bad = |key: String, reason: String| ConfigError::Invalid { key, reason };
        if self.items.is_empty() {
            return Ok(None);
        }
        let text_ok = |t: &str| !t.is_empty() && t.is_ascii() && !t.chars().any(|c| c.is_control());
        if !text_ok(&self.prompt) {
            return Err(bad(
                "dhcp.pxe_menu.prompt".into(),
                "must be printable ASCII, not empty (a ROM prints it as is)".into(),
            ));
        }
        let mut items = Vec::new();
        let mut next = 0x8000u16;
        for (i, it) in self.items.iter().enumerate() {
            let key = |k: &str| format!("dhcp.pxe_menu.items[{i}].{k}");
            if !text_ok(&it.text) {
                return Err(bad(
                    key("text"),
                    "must be printable ASCII, not empty".into(),
                ));
            }
            let item_type = match it.target {
                MenuTarget::LocalBoot => {
                    if it.file.is_some() {
                        return Err(bad(key("file"), "a local_boot item has no file".into()));
                    }
                    0
                }
                MenuTarget::Script => {
                    if let Some(f) = &it.file {
                        check_file(&key("file"), f, f.len())?;
                    }
                    let t = next;
                    next += 1;
                    t
                }
            };
            items.push(MenuItem {
                text: it.text.clone(),
                item_type,
                file: it.file.clone(),
            });
        }
        let menu = PxeMenu {
            prompt: self.prompt.clone(),
            timeout: self.timeout_secs,
            items,
        };
        let len = menu.option43(std::net::Ipv4Addr::UNSPECIFIED).len();
        if len > OPT43_MAX {
            return Err(bad(
                "dhcp.pxe_menu".into(),
                format!(
                    "the menu takes {len} bytes of option 43, more than the {OPT43_MAX} a PXE ROM reads: shorten the texts or the prompt"
                ),
            ));
        }
        Ok(Some(menu))
    }
}

impl PxeMenu {
    /// The offer's option 43, as dnsmasq 2.90 lays it out for `pxe-prompt` and
    /// `pxe-service` lines (the netns test compares the bytes): discovery control 3 (no
    /// broadcast or multicast discovery: ask the listed boot servers), the boot servers
    /// (`server` for every item that is not local boot), the menu, the prompt.
    pub fn option43(&self, server: std::net::Ipv4Addr) -> Vec<u8> {
        let mut v = Vec::new();
        sub(&mut v, pxe::DISCOVERY_CONTROL, &[3]);
        let mut servers = Vec::new();
        for it in self.items.iter().filter(|i| i.item_type != 0) {
            servers.extend_from_slice(&it.item_type.to_be_bytes());
            servers.push(1);
            servers.extend_from_slice(&server.octets());
        }
        if !servers.is_empty() {
            sub(&mut v, pxe::BOOT_SERVERS, &servers);
        }
        let mut items = Vec::new();
        for it in &self.items {
            items.extend_from_slice(&it.item_type.to_be_bytes());
            let t = it.text.as_bytes();
            let t = t.get(..t.len().min(255)).unwrap_or(&[]);
            items.push(t.len() as u8);
            items.extend_from_slice(t);
        }
        sub(&mut v, pxe::BOOT_MENU, &items);
        sub(&mut v, pxe::MENU_PROMPT, &self.prompt_option());
        v.push(pxe::END);
        v
    }

    fn prompt_option(&self) -> Vec<u8> {
        let mut p = vec![self.timeout];
        p.extend_from_slice(self.prompt.as_bytes());
        p
    }

    /// The ACK's option 43 for an item: its boot item echoed, then the prompt (as dnsmasq
    /// does).
    pub fn item_ack(&self, item_type: u16, layer: u16) -> Vec<u8> {
        let mut v = boot_item(item_type, layer);
        v.pop(); // END
        sub(&mut v, pxe::MENU_PROMPT, &self.prompt_option());
        v.push(pxe::END);
        v
    }

    /// The item a client asked for by its boot server type, if it is one of ours (never
    /// local boot: a ROM boots that itself).
    pub fn item(&self, item_type: u16) -> Option<&MenuItem> {
        self.items
            .iter()
            .find(|i| i.item_type == item_type && item_type != 0)
    }
}
