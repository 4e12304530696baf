//! Builders for PXE option 43 (vendor-specific) contents: the sub-options a PXE boot server
//! or proxy puts into its replies.

use crate::wire::pxe;

/// Appends sub-option `code` (at most 255 bytes of `data`).
pub(crate) fn sub(out: &mut Vec<u8>, code: u8, data: &[u8]) {
    out.push(code);
    out.push(data.len().min(255) as u8);
    out.extend_from_slice(data.get(..data.len().min(255)).unwrap_or(&[]));
}

/// `{6: 8}`: "use the boot file in the `file` field, skip boot server discovery".
pub const USE_FILE_FIELD: &[u8] = &[pxe::DISCOVERY_CONTROL, 1, 8, pxe::END];

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
