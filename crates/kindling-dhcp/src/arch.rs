//! Client system architectures (DHCP option 93, IANA "Processor Architecture Types").

/// A canonical name for each IANA value Kindling knows, plus dnsmasq's `pxe-service` CSA names
/// as aliases so that dnsmasq configurations translate one to one.
const NAMES: &[(u16, &[&str])] = &[
    (0, &["bios", "x86pc", "x86-pc"]),
    (1, &["pc98"]),
    (2, &["ia64-efi", "efi-ia64"]),
    (3, &["alpha"]),
    (4, &["arc-x86"]),
    (5, &["intel-lean-client"]),
    (6, &["efi-ia32", "ia32-efi"]),
    (7, &["efi-x64", "x86-64-efi", "x64-efi", "efi-x86-64"]),
    (8, &["xscale-efi", "efi-xscale"]),
    (9, &["efi-bc", "bc-efi"]),
    (10, &["efi-arm32", "arm32-efi"]),
    (11, &["efi-arm64", "arm64-efi"]),
    (15, &["http-ia32", "efi-ia32-http", "x86-uefi-http"]),
    (16, &["http-x64", "efi-x64-http", "x64-uefi-http"]),
    (18, &["http-arm32", "efi-arm32-http", "arm32-uefi-http"]),
    (19, &["http-arm64", "efi-arm64-http", "arm64-uefi-http"]),
];

/// Parses an architecture name (case-insensitive, `_` and `-` interchangeable) or a decimal
/// number.
pub fn parse_arch(s: &str) -> Option<u16> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u16>() {
        return Some(n);
    }
    let norm = t.to_ascii_lowercase().replace('_', "-");
    NAMES
        .iter()
        .find(|(_, names)| names.contains(&norm.as_str()))
        .map(|(n, _)| *n)
}

/// The canonical name of an architecture number, if it has one.
pub fn arch_name(n: u16) -> Option<&'static str> {
    NAMES
        .iter()
        .find(|(v, _)| *v == n)
        .and_then(|(_, names)| names.first().copied())
}

/// What Kindling can boot an architecture into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArchFamily {
    /// 0: legacy BIOS PXE, gets `bios_binary` (undionly.kpxe).
    Bios,
    /// 7 and 9 (and 16 over HTTP): x86-64 UEFI.
    X64Efi,
    /// 11 (and 19 over HTTP): arm64 UEFI.
    Arm64Efi,
    /// Everything else: never answered.
    Unsupported,
}

impl ArchFamily {
    pub fn of(arch: u16) -> Self {
        match arch {
            0 => Self::Bios,
            7 | 9 | 16 => Self::X64Efi,
            11 | 19 => Self::Arm64Efi,
            _ => Self::Unsupported,
        }
    }
}

/// True for the UEFI HTTP Boot architectures (15, 16, 18, 19).
pub fn is_http_arch(arch: u16) -> bool {
    matches!(arch, 15 | 16 | 18 | 19)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse_arch("x86PC"), Some(0));
        assert_eq!(parse_arch("X86-64_EFI"), Some(7));
        assert_eq!(parse_arch("BC_EFI"), Some(9));
        assert_eq!(parse_arch("ARM64_EFI"), Some(11));
        assert_eq!(parse_arch("http-x64"), Some(16));
        assert_eq!(parse_arch("19"), Some(19));
        assert_eq!(parse_arch("efi-sparc"), None);
        assert_eq!(arch_name(7), Some("efi-x64"));
        assert_eq!(ArchFamily::of(9), ArchFamily::X64Efi);
        assert_eq!(ArchFamily::of(6), ArchFamily::Unsupported);
    }
}
