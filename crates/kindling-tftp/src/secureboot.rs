//! The TFTP names of the Secure Boot chain (docs/secure-boot.md): firmware -> signed shim
//! -> signed GRUB -> signed kernel, everything after the firmware over TFTP (Debian's
//! signed GRUB has no HTTP).
//!
//! [`classify`] is pure: a request name in, what it is out. [`SecureBootSource`] answers
//! those names when another [`FileSource`] has no file of that name, asking a
//! [`GrubHost`] for what only the boot service knows (a machine's GRUB configuration, its
//! assets).
//!
//! What the chain asks for (seen on the wire with Debian 12's shim 16.1 and GRUB 2.06):
//!
//! | name | answer |
//! |---|---|
//! | `secureboot/shimx64.efi`, `secureboot/grubx64.efi` | the configured files (passed through: the binary adds them to `files`) |
//! | `secureboot/{revocations_sku,revocations_sbat,shim_certificate_0,mmx64,fbx64}.efi` | not found, at once |
//! | `/grub/x86_64-efi/*` (`command.lst`, `fs.lst`, ..., `*.mod`) | not found (the signed GRUB has its modules built in and loads no others) |
//! | `/grub/grub.cfg`, `secureboot/grub.cfg`, `/grub/x86_64-efi/grub.cfg` | [`BOOTSTRAP`] |
//! | `grub.cfg-01-<mac>` (in either directory) | that machine's configuration |
//! | `grub.cfg-<HEXIP>` and the like | not found |
//! | `/grub?<query>` | the machine's configuration, as HTTP `/grub?<query>` renders it |
//! | `/assets/<path>` | the assets directory, confined like HTTP `/assets/` |

use std::net::SocketAddr;
use std::sync::Arc;

use crate::source::{FileSource, Opened, TftpError, normalize};

/// The directory of the boot file (`secureboot/shimx64.efi`): shim fetches
/// `grubx64.efi` and its optional files next to it.
pub const DIR: &str = "secureboot";
/// shim's name in [`DIR`].
pub const SHIM: &str = "secureboot/shimx64.efi";
/// GRUB's name in [`DIR`] (shim's built-in second stage).
pub const GRUB: &str = "secureboot/grubx64.efi";

/// What GRUB's `/grub/grub.cfg` gets: it loads the machine's own configuration by MAC
/// (`net_default_mac`: lower case, colons), rendered like HTTP `/grub?mac=...`.
pub const BOOTSTRAP: &str = "# Kindling Secure Boot bootstrap: the machine's configuration by MAC\n\
configfile \"/grub?mac=${net_default_mac}\"\n";

/// Files shim asks for next to itself that Kindling does not provide (shim 16's
/// revocation and certificate updates; MokManager and the fallback loader).
pub const SHIM_OPTIONAL: &[&str] = &[
    "revocations_sku.efi",
    "revocations_sbat.efi",
    "shim_certificate_0.efi",
    "mmx64.efi",
    "fbx64.efi",
];

/// What a request name is, for the Secure Boot chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// Not a Secure Boot name: the next source answers (shim and GRUB themselves too).
    Other,
    /// One of [`SHIM_OPTIONAL`]: not found.
    ShimOptional(&'static str),
    /// Under `/grub/x86_64-efi/`: module lists and modules, never served.
    GrubModule,
    /// GRUB's configuration without a machine: [`BOOTSTRAP`].
    Bootstrap,
    /// A configuration looked up by the client's IP address: not found.
    ConfigByIp,
    /// The rendered configuration for this HTTP-style query (`mac=...`).
    Machine(String),
    /// A file below the assets directory (path relative to it, normalized).
    Asset(String),
}

/// Classifies a request name (pure; never panics). Names are matched as GRUB and shim
/// send them, with or without a leading `/`.
pub fn classify(name: &str) -> Name {
    let rel = name.strip_prefix('/').unwrap_or(name);
    if let Some(q) = rel.strip_prefix("grub?") {
        return Name::Machine(q.to_string());
    }
    let Ok(parts) = normalize(name) else {
        // `/assets/../x` and the like: the next source refuses them with the reason.
        return Name::Other;
    };
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match parts.as_slice() {
        ["assets", rest @ ..] if !rest.is_empty() => Name::Asset(rest.join("/")),
        [DIR, f] if SHIM_OPTIONAL.contains(f) => Name::ShimOptional(
            SHIM_OPTIONAL
                .iter()
                .find(|o| *o == f)
                .copied()
                .unwrap_or(""),
        ),
        ["grub", "x86_64-efi", "grub.cfg"] => Name::Bootstrap,
        ["grub", "x86_64-efi", ..] => Name::GrubModule,
        ["grub" | DIR, "grub.cfg"] => Name::Bootstrap,
        ["grub" | DIR, f] if f.starts_with("grub.cfg-") => config_by_name(f),
        _ => Name::Other,
    }
}

/// `grub.cfg-01-52-54-00-12-34-56` (GRUB's per-MAC name: `01`, the hardware type, then the
/// MAC with dashes) -> that machine; any other suffix (the address in hex, ...) -> by IP.
fn config_by_name(f: &str) -> Name {
    let Some(mac) = f.strip_prefix("grub.cfg-01-") else {
        return Name::ConfigByIp;
    };
    let octets: Vec<&str> = mac.split(['-', ':']).collect();
    let ok = octets.len() == 6
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Name::Machine(format!("mac={}", octets.join(":").to_ascii_lowercase()))
    } else {
        Name::ConfigByIp
    }
}

/// What only the boot service knows: a machine's GRUB configuration and its assets.
pub trait GrubHost: Send + Sync {
    /// The text HTTP `/grub?<query>` answers for this query and where it comes from (for
    /// logs: group and profile), or why there is none.
    fn grub_config(&self, query: &str, peer: SocketAddr) -> Result<(Vec<u8>, String), String>;
    /// `rest` below the assets directory, opened confined (an escape is an
    /// [`TftpError::AccessViolation`]).
    fn open_asset(&self, rest: &str) -> Result<Opened, TftpError>;
}

/// Answers the Secure Boot names, and everything else from `inner`.
pub struct SecureBootSource {
    inner: Arc<dyn FileSource>,
    host: Arc<dyn GrubHost>,
}

impl SecureBootSource {
    pub fn new(inner: Arc<dyn FileSource>, host: Arc<dyn GrubHost>) -> Self {
        Self { inner, host }
    }
}

fn text(bytes: Vec<u8>, origin: &str) -> Opened {
    Opened {
        size: Some(bytes.len() as u64),
        reader: Box::new(bytes),
        origin: origin.to_string(),
    }
}

impl FileSource for SecureBootSource {
    fn open(&self, name: &str, peer: SocketAddr) -> Result<Opened, TftpError> {
        let what = classify(name);
        if what == Name::Other {
            return self.inner.open(name, peer);
        }
        // The operator's own file of that name (`[tftp] root` or `files`) wins: serving the
        // chain changes nothing for names a server already had.
        match self.inner.open(name, peer) {
            Err(TftpError::NotFound(_)) => {}
            own => return own,
        }
        match what {
            Name::Other => self.inner.open(name, peer),
            Name::ShimOptional(f) => Err(TftpError::NotFound(format!(
                "secure boot: shim's optional {f} is not provided (shim goes on without it)"
            ))),
            Name::GrubModule => Err(TftpError::NotFound(
                "secure boot: the signed GRUB has its modules built in (module lists and modules are never served)"
                    .into(),
            )),
            Name::ConfigByIp => Err(TftpError::NotFound(
                "secure boot: GRUB configurations are looked up by MAC, not by address".into(),
            )),
            Name::Bootstrap => Ok(text(
                BOOTSTRAP.as_bytes().to_vec(),
                "secure boot: GRUB bootstrap",
            )),
            Name::Machine(q) => match self.host.grub_config(&q, peer) {
                Ok((b, origin)) => Ok(text(b, &format!("secure boot: /grub, {origin}"))),
                Err(why) => Err(TftpError::NotFound(format!("secure boot: /grub?{q}: {why}"))),
            },
            Name::Asset(rest) => self.host.open_asset(&rest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_chain() {
        assert_eq!(classify("secureboot/shimx64.efi"), Name::Other);
        assert_eq!(classify("secureboot/grubx64.efi"), Name::Other);
        assert_eq!(classify("snponly.efi"), Name::Other);
        for f in SHIM_OPTIONAL {
            assert_eq!(classify(&format!("secureboot/{f}")), Name::ShimOptional(f));
        }
        // Not in shim's directory: an ordinary name.
        assert_eq!(classify("revocations_sku.efi"), Name::Other);
        for f in [
            "command.lst",
            "fs.lst",
            "crypto.lst",
            "terminal.lst",
            "http.mod",
        ] {
            assert_eq!(classify(&format!("/grub/x86_64-efi/{f}")), Name::GrubModule);
        }
        for f in [
            "/grub/grub.cfg",
            "grub/grub.cfg",
            "secureboot/grub.cfg",
            "/grub/x86_64-efi/grub.cfg",
        ] {
            assert_eq!(classify(f), Name::Bootstrap, "{f}");
        }
        assert_eq!(
            classify("/grub?mac=52:54:00:12:34:56"),
            Name::Machine("mac=52:54:00:12:34:56".into())
        );
        assert_eq!(
            classify("grub?mac=52:54:00:12:34:56&os=x"),
            Name::Machine("mac=52:54:00:12:34:56&os=x".into())
        );
        assert_eq!(
            classify("/grub/grub.cfg-01-52-54-00-AB-34-56"),
            Name::Machine("mac=52:54:00:ab:34:56".into())
        );
        assert_eq!(
            classify("secureboot/grub.cfg-01-52:54:00:12:34:56"),
            Name::Machine("mac=52:54:00:12:34:56".into())
        );
        for f in [
            "/grub/grub.cfg-0A637701",
            "/grub/grub.cfg-01-52-54",
            "/grub/grub.cfg-01-zz-54-00-12-34-56",
            "/grub/grub.cfg-01-",
        ] {
            assert_eq!(classify(f), Name::ConfigByIp, "{f}");
        }
        assert_eq!(
            classify("/assets/fedora-coreos/kernel"),
            Name::Asset("fedora-coreos/kernel".into())
        );
        assert_eq!(classify("assets//vmlinuz"), Name::Asset("vmlinuz".into()));
        assert_eq!(classify("/assets/"), Name::Other);
        // Traversal is left to the next source, which refuses it.
        assert_eq!(classify("/assets/../x"), Name::Other);
        assert_eq!(classify("/grub/../etc/passwd"), Name::Other);
        assert_eq!(classify(""), Name::Other);
    }

    #[test]
    fn hostile_names_never_panic() {
        let pieces: Vec<&str> =
            "/ grub ? mac= .. assets secureboot grub.cfg-01- - : x86_64-efi \\ \0 é %2e ff  /"
                .split(' ')
                .collect();
        let mut seed = 0x9e37_79b9_u64;
        for _ in 0..20_000 {
            let mut name = String::new();
            for _ in 0..(seed % 9) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                name.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            let _ = classify(&name);
        }
    }

    #[test]
    fn bootstrap_loads_the_machine_config_by_mac() {
        assert!(BOOTSTRAP.contains("configfile \"/grub?mac=${net_default_mac}\""));
    }

    struct Host;
    impl GrubHost for Host {
        fn grub_config(&self, query: &str, _: SocketAddr) -> Result<(Vec<u8>, String), String> {
            match query {
                "mac=52:54:00:12:34:56" => Ok((b"menuentry x {}\n".to_vec(), "g".into())),
                _ => Err("no group matched".into()),
            }
        }
        fn open_asset(&self, rest: &str) -> Result<Opened, TftpError> {
            Ok(text(rest.as_bytes().to_vec(), "asset"))
        }
    }
    struct Inner;
    impl FileSource for Inner {
        fn open(&self, name: &str, _: SocketAddr) -> Result<Opened, TftpError> {
            normalize(name)?;
            if name == "/assets/own" {
                return Ok(text(b"operator's".to_vec(), "root"));
            }
            Err(TftpError::NotFound(format!("inner {name}")))
        }
    }

    fn read(o: Opened) -> Vec<u8> {
        let mut r = o.reader;
        let mut buf = vec![0; o.size.unwrap() as usize];
        let n = r.read_at(0, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn source_answers_and_explains() {
        let s = SecureBootSource::new(Arc::new(Inner), Arc::new(Host));
        let peer: SocketAddr = "192.0.2.9:1000".parse().unwrap();
        assert_eq!(
            read(s.open("/grub/grub.cfg", peer).unwrap()),
            BOOTSTRAP.as_bytes()
        );
        assert_eq!(
            read(s.open("/grub?mac=52:54:00:12:34:56", peer).unwrap()),
            b"menuentry x {}\n"
        );
        assert_eq!(
            read(s.open("grub/grub.cfg-01-52-54-00-12-34-56", peer).unwrap()),
            b"menuentry x {}\n"
        );
        let e = s.open("/grub?mac=52:54:00:12:34:57", peer).unwrap_err();
        assert!(
            matches!(&e, TftpError::NotFound(m) if m.contains("no group matched")),
            "{e}"
        );
        assert_eq!(read(s.open("/assets/a/b", peer).unwrap()), b"a/b");
        let e = s.open("secureboot/revocations_sbat.efi", peer).unwrap_err();
        assert!(matches!(&e, TftpError::NotFound(m) if m.contains("revocations_sbat.efi")));
        let e = s.open("/grub/x86_64-efi/fs.lst", peer).unwrap_err();
        assert!(matches!(e, TftpError::NotFound(_)));
        let e = s.open("/assets/../x", peer).unwrap_err();
        assert!(matches!(e, TftpError::AccessViolation(_)), "{e}");
        let e = s.open("secureboot/shimx64.efi", peer).unwrap_err();
        assert!(matches!(&e, TftpError::NotFound(m) if m.starts_with("inner")));
        // The operator's own files of a chain name win.
        assert_eq!(read(s.open("/assets/own", peer).unwrap()), b"operator's");
    }
}
