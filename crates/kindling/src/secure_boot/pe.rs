//! Is an EFI image (a kernel, shim, GRUB) signed? A PE/COFF image carries its Authenticode
//! signatures in the certificate table, data directory 4 of the optional header; an image
//! without one (`sbverify --list`: "No signature table present") is refused by Secure Boot
//! firmware and by shim. This only looks for the table: whose key signed it is not checked.

use std::io::Read;
use std::path::Path;

/// What the headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// Not a PE/COFF image (a compressed kernel without an EFI stub, an initrd, ...).
    NotPe,
    /// A PE/COFF image with an empty certificate table.
    Unsigned,
    /// A PE/COFF image with a certificate table.
    Signed,
}

/// The headers are in the first few KiB (Linux: `e_lfanew` is 0x40).
const HEAD_BYTES: u64 = 64 * 1024;
/// Index of the certificate table among the data directories.
const CERTIFICATE_TABLE: usize = 4;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Reads the signature state from the start of an image (pure; never panics).
pub fn signature_in(b: &[u8]) -> Signature {
    parse(b).unwrap_or(Signature::NotPe)
}

fn parse(b: &[u8]) -> Option<Signature> {
    if b.get(..2)? != b"MZ" {
        return None;
    }
    let pe = usize::try_from(u32_at(b, 0x3c)?).ok()?;
    if b.get(pe..pe.checked_add(4)?)? != b"PE\0\0" {
        return None;
    }
    let coff = pe + 4;
    let opt_size = usize::from(u16_at(b, coff + 16)?);
    let opt = coff + 20;
    // PE32 and PE32+ differ in where the directory count and the directories sit.
    let (count_at, dirs_at) = match u16_at(b, opt)? {
        0x10b => (92, 96),
        0x20b => (108, 112),
        _ => return None,
    };
    let count = usize::try_from(u32_at(b, opt + count_at)?).ok()?;
    let entry = dirs_at + CERTIFICATE_TABLE * 8;
    if count <= CERTIFICATE_TABLE || entry + 8 > opt_size {
        return Some(Signature::Unsigned);
    }
    let size = u32_at(b, opt + entry + 4)?;
    Some(if size == 0 {
        Signature::Unsigned
    } else {
        Signature::Signed
    })
}

/// [`signature_in`] of a file's first bytes.
pub fn signature_of(path: &Path) -> Result<Signature, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut head = Vec::new();
    f.take(HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(signature_in(&head))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE32+ header: DOS stub pointing at 0x40, COFF header, optional header
    /// with `dirs` data directories, the certificate table's size `cert`.
    fn image(magic: u16, dirs: u32, cert: u32) -> Vec<u8> {
        let mut b = vec![0u8; 0x200];
        b[..2].copy_from_slice(b"MZ");
        b[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        b[0x40..0x44].copy_from_slice(b"PE\0\0");
        let coff = 0x44;
        let (count_at, dirs_at) = if magic == 0x20b { (108, 112) } else { (92, 96) };
        let opt_size = (dirs_at + 8 * dirs as usize) as u16;
        b[coff + 16..coff + 18].copy_from_slice(&opt_size.to_le_bytes());
        let opt = coff + 20;
        b[opt..opt + 2].copy_from_slice(&magic.to_le_bytes());
        b[opt + count_at..opt + count_at + 4].copy_from_slice(&dirs.to_le_bytes());
        let e = opt + dirs_at + 4 * 8;
        if dirs > 4 {
            b[e..e + 4].copy_from_slice(&0x100u32.to_le_bytes());
            b[e + 4..e + 8].copy_from_slice(&cert.to_le_bytes());
        }
        b
    }

    #[test]
    fn crafted_headers() {
        assert_eq!(signature_in(&image(0x20b, 16, 0x888)), Signature::Signed);
        assert_eq!(signature_in(&image(0x20b, 16, 0)), Signature::Unsigned);
        assert_eq!(signature_in(&image(0x10b, 16, 0x10)), Signature::Signed);
        assert_eq!(signature_in(&image(0x10b, 16, 0)), Signature::Unsigned);
        // Too few directories to have a certificate table.
        assert_eq!(signature_in(&image(0x20b, 4, 0)), Signature::Unsigned);
        // Not PE: no MZ, no PE signature, an unknown magic, truncated anywhere.
        assert_eq!(signature_in(b""), Signature::NotPe);
        assert_eq!(signature_in(b"\x1f\x8b\x08\x00"), Signature::NotPe);
        let mut b = image(0x20b, 16, 1);
        b[0x40] = b'X';
        assert_eq!(signature_in(&b), Signature::NotPe);
        assert_eq!(signature_in(&image(0x107, 16, 1)), Signature::NotPe);
        let full = image(0x20b, 16, 1);
        for n in 0..full.len() {
            let _ = signature_in(&full[..n]);
        }
        // A pointer far past the end.
        let mut b = image(0x20b, 16, 1);
        b[0x3c..0x40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(signature_in(&b), Signature::NotPe);
    }

    /// Debian's installed kernels are signed (linux-image-*-amd64 ships the signed image);
    /// skipped where there is none.
    #[test]
    fn debian_kernel_is_signed() {
        let Ok(dir) = std::fs::read_dir("/boot") else {
            eprintln!("SKIP: no /boot");
            return;
        };
        let kernels: Vec<_> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("vmlinuz-") && n.ends_with("-amd64"))
            })
            .collect();
        let Some(k) = kernels.iter().find(|k| std::fs::File::open(k).is_ok()) else {
            eprintln!("SKIP: no readable /boot/vmlinuz-*-amd64");
            return;
        };
        assert_eq!(signature_of(k), Ok(Signature::Signed), "{}", k.display());
    }
}
