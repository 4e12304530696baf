//! What the QEMU firmware tests need before they boot: root, the programs, the firmware
//! files; a test skips with one line naming what is missing and how to install it.

use kindling_testkit::{can_run, have};

/// OVMF, the x86-64 UEFI firmware (Debian's `ovmf`).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// The iPXE a UEFI test chains to (Debian's `ipxe`).
pub const SNPONLY: &str = "/usr/lib/ipxe/snponly.efi";

/// True when `test` may boot a VM: root, every program of `cmds` on PATH, every file of
/// `files` present and nothing in `missing` (found missing by the caller); otherwise prints
/// `SKIP test: missing [...] (hint)` and returns false.
pub fn can_boot_with(
    test: &str,
    cmds: &[&str],
    files: &[&str],
    mut missing: Vec<String>,
    hint: &str,
) -> bool {
    if !can_run(test) {
        return false;
    }
    missing.extend(cmds.iter().filter(|c| !have(c)).map(|c| c.to_string()));
    missing.extend(
        files
            .iter()
            .filter(|f| !std::path::Path::new(f).exists())
            .map(|f| f.to_string()),
    );
    if !missing.is_empty() {
        eprintln!("SKIP {test}: missing {missing:?} ({hint})");
        return false;
    }
    true
}

/// [`can_boot_with`] for an x86-64 VM (SeaBIOS, or OVMF when `uefi`) next to dnsmasq.
pub fn can_boot(test: &str, uefi: bool) -> bool {
    let mut files = vec![SNPONLY, "/dev/net/tun"];
    if uefi {
        files.extend([OVMF_CODE, OVMF_VARS]);
    }
    can_boot_with(
        test,
        &["qemu-system-x86_64", "dnsmasq"],
        &files,
        Vec::new(),
        "apt-get install qemu-system-x86 ovmf ipxe ipxe-qemu dnsmasq-base",
    )
}
