//! Builders for PXE option 43 (vendor-specific) contents: the sub-options a PXE boot server
//! or proxy puts into its replies.

use crate::wire::pxe;

fn sub(out: &mut Vec<u8>, code: u8, data: &[u8]) {
    out.push(code);
    out.push(data.len().min(255) as u8);
    out.extend_from_slice(data.get(..data.len().min(255)).unwrap_or(&[]));
}

/// `{6: 8}`: "use the boot file in the `file` field, skip boot server discovery".
pub fn use_file_field() -> Vec<u8> {
    let mut v = Vec::new();
    sub(&mut v, pxe::DISCOVERY_CONTROL, &[8]);
    v.push(pxe::END);
    v
}

/// Echo of the client's boot item (sub-option 71), as a PXE boot server does in its ACK.
pub fn boot_item(item_type: u16, layer: u16) -> Vec<u8> {
    let mut v = Vec::new();
    let t = item_type.to_be_bytes();
    let l = layer.to_be_bytes();
    sub(&mut v, pxe::BOOT_ITEM, &[t[0], t[1], l[0], l[1]]);
    v.push(pxe::END);
    v
}

/// A one-item menu whose only item is type 0 ("boot from local disk"), with a zero
/// timeout so the ROM selects it at once. This is what dnsmasq sends for
/// `pxe-service=x86PC,"<text>"` without a basename (discovery control 3, no boot servers);
/// the netns test compares the bytes with dnsmasq 2.90's.
pub fn local_boot_menu(text: &str) -> Vec<u8> {
    let mut v = Vec::new();
    sub(&mut v, pxe::DISCOVERY_CONTROL, &[3]);
    let mut menu = vec![0u8, 0u8];
    let t = text.as_bytes();
    let t = t.get(..t.len().min(200)).unwrap_or(&[]);
    menu.push(t.len() as u8);
    menu.extend_from_slice(t);
    // Same sub-option order as dnsmasq: 6, 10, 9.
    sub(&mut v, pxe::MENU_PROMPT, &[0, b'P', b'X', b'E']);
    sub(&mut v, pxe::BOOT_MENU, &menu);
    v.push(pxe::END);
    v
}

/// A boot menu with a prompt, as dnsmasq 2.90 lays it out for `pxe-prompt` and
/// `pxe-service` lines (the netns test compares the bytes): discovery control 3 (no
/// broadcast or multicast discovery: ask the listed boot servers), the boot servers (this
/// server for every item that is not local boot), the menu, the prompt.
pub fn menu(menu: &crate::config::PxeMenu, server: std::net::Ipv4Addr) -> Vec<u8> {
    let mut v = Vec::new();
    sub(&mut v, pxe::DISCOVERY_CONTROL, &[3]);
    let mut servers = Vec::new();
    for it in menu.items.iter().filter(|i| i.item_type != 0) {
        servers.extend_from_slice(&it.item_type.to_be_bytes());
        servers.push(1);
        servers.extend_from_slice(&server.octets());
    }
    if !servers.is_empty() {
        sub(&mut v, pxe::BOOT_SERVERS, &servers);
    }
    let mut items = Vec::new();
    for it in &menu.items {
        items.extend_from_slice(&it.item_type.to_be_bytes());
        let t = it.text.as_bytes();
        let t = t.get(..t.len().min(255)).unwrap_or(&[]);
        items.push(t.len() as u8);
        items.extend_from_slice(t);
    }
    sub(&mut v, pxe::BOOT_MENU, &items);
    sub(&mut v, pxe::MENU_PROMPT, &prompt(menu));
    v.push(pxe::END);
    v
}

fn prompt(menu: &crate::config::PxeMenu) -> Vec<u8> {
    let mut p = vec![menu.timeout];
    p.extend_from_slice(menu.prompt.as_bytes());
    p
}

/// The ACK to a menu item: its boot item echoed, then the menu's prompt (as dnsmasq does).
pub fn menu_item_ack(menu: &crate::config::PxeMenu, item_type: u16, layer: u16) -> Vec<u8> {
    let mut v = boot_item(item_type, layer);
    v.pop(); // END
    sub(&mut v, pxe::MENU_PROMPT, &prompt(menu));
    v.push(pxe::END);
    v
}
