//! `[dhcp.pxe_menu]`: a PXE boot menu with a prompt (dnsmasq's `pxe-prompt` and several
//! `pxe-service` lines), shown by BIOS PXE ROMs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::checked::{ConfigError, check_file};

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
        let len = crate::opt43::menu(&menu, std::net::Ipv4Addr::UNSPECIFIED).len();
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
    /// The item a client asked for by its boot server type, if it is one of ours (never
    /// local boot: a ROM boots that itself).
    pub fn item(&self, item_type: u16) -> Option<&MenuItem> {
        self.items
            .iter()
            .find(|i| i.item_type == item_type && item_type != 0)
    }
}
