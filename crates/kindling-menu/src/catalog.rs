//! The boot catalog: the shipped default (embedded TOML) plus the operator's
//! additions from `[menu]`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The shipped catalog, embedded in the binary.
/// Menu ids of the local Fedora CoreOS entries are `fedora-coreos-<stream>`
/// (the `fcos` module); catalog entries may not use the prefix.
pub const FCOS_ID_PREFIX: &str = "fedora-coreos-";

pub const DEFAULT_CATALOG: &str = include_str!("default-catalog.toml");

/// Architectures the menus know.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Arm64];

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// From our names or iPXE's `${buildarch}` (`i386` is a BIOS iPXE build
    /// such as `undionly.kpxe`, on what is almost always a 64-bit machine).
    pub fn parse(s: &str) -> Option<Arch> {
        match s.to_ascii_lowercase().as_str() {
            "x86_64" | "amd64" | "x86-64" | "i386" | "x86" => Some(Arch::X86_64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

/// What selecting an entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// kernel + initrd(s) + args.
    #[default]
    Linux,
    /// Chainload another iPXE image (`chain_efi` / `chain_pcbios`).
    Chain,
    /// `sanboot --no-describe --drive 0x80` (BIOS) or `exit` (EFI).
    LocalDisk,
    /// The iPXE shell.
    Shell,
}

/// Format of a published checksum file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SumsFormat {
    /// `sha256sum` output: `<hex>  <name>` (or `<hex> *<name>`).
    #[default]
    Sha256sums,
    /// A `.treeinfo` `[checksums]` section: `<name> = sha256:<hex>`.
    Treeinfo,
}

/// A checksum file published next to the files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sums {
    /// URL of the checksum file (http or https).
    pub url: String,
    /// Its format.
    #[serde(default)]
    pub format: SumsFormat,
}

/// One file of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Upstream URL (http or https).
    pub url: String,
    /// Expected SHA-256 (hex), when known in advance (neither this nor `sums_name`: the file
    /// is not verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The file's name in the architecture's `sums` file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sums_name: Option<String>,
}

/// How an entry boots on one architecture.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ArchSpec {
    /// File name (a key of `files`) of the kernel.
    pub kernel: Option<String>,
    /// File names of the initrds, in order.
    pub initrd: Vec<String>,
    /// Kernel command line; `{file:NAME}` and `{dir}` are expanded.
    pub args: String,
    /// Image chained on EFI (kind = "chain"): a file name (a key of `files`); an entry
    /// without one is hidden on EFI.
    pub chain_efi: Option<String>,
    /// Image chained on BIOS (kind = "chain"): a file name (a key of `files`); an entry
    /// without one is hidden on BIOS.
    pub chain_pcbios: Option<String>,
    /// Published checksums for this architecture's files.
    pub sums: Option<Sums>,
    /// Upstream directory `{dir}` stands for when the cache is off.
    pub dir_url: Option<String>,
    /// The files, by name (the names `kernel`, `initrd`, `chain_*` and `{file:NAME}` use).
    pub files: BTreeMap<String, FileSpec>,
}

/// One boot entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Short id: `[A-Za-z0-9_-]`, used in URLs, menus and the CLI.
    pub id: String,
    /// The line shown in the menu.
    pub title: String,
    /// Menu heading the entry is listed under.
    #[serde(default)]
    pub section: Option<String>,
    /// What selecting it does.
    #[serde(default)]
    pub kind: Kind,
    /// How it boots, per architecture (`x86_64`, `arm64`); an entry of kind `linux` or
    /// `chain` is offered only on the architectures it has.
    #[serde(default)]
    pub arch: BTreeMap<Arch, ArchSpec>,
}

impl Entry {
    /// Whether the entry can be offered on `arch` (tools are everywhere).
    pub fn supports(&self, arch: Arch) -> bool {
        match self.kind {
            Kind::LocalDisk | Kind::Shell => true,
            Kind::Linux | Kind::Chain => self.arch.contains_key(&arch),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    pub(crate) entries: Vec<Entry>,
}

/// Catalog errors.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("shipped catalog: {0}")]
    Shipped(String),
    #[error("entry {id:?}: {why}")]
    Entry { id: String, why: String },
    #[error("menu.hide names {0:?}, which is not in the catalog")]
    UnknownHidden(String),
}

/// The validated catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub(crate) entries: Vec<Entry>,
}

/// Is `s` usable as an id (and an iPXE label)?
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Is `s` usable as a file name inside an entry (relative, `/`-separated,
/// no `.`/`..` segments, conservative characters)?
pub fn valid_file_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.+~".contains(&b))
        })
}

impl Catalog {
    /// The shipped catalog alone.
    pub fn shipped() -> Result<Catalog, CatalogError> {
        let f: CatalogFile =
            toml::from_str(DEFAULT_CATALOG).map_err(|e| CatalogError::Shipped(e.to_string()))?;
        Catalog::from_entries(f.entries)
    }

    /// Validates a list of entries.
    pub fn from_entries(entries: Vec<Entry>) -> Result<Catalog, CatalogError> {
        let mut seen = std::collections::HashSet::new();
        for e in &entries {
            let bad = |why: String| CatalogError::Entry {
                id: e.id.clone(),
                why,
            };
            if !valid_id(&e.id) {
                return Err(bad("id must be 1-64 characters of A-Z a-z 0-9 - _".into()));
            }
            if e.id == FCOS_ID_PREFIX.trim_end_matches('-') || e.id.starts_with(FCOS_ID_PREFIX) {
                return Err(bad("ids starting with \"fedora-coreos\" are reserved for the local Fedora CoreOS assets".into()));
            }
            if !seen.insert(e.id.as_str()) {
                return Err(bad("duplicate id".into()));
            }
            if e.title.contains(['\n', '\r']) {
                return Err(bad("title must be one line".into()));
            }
            if matches!(e.kind, Kind::Linux | Kind::Chain) && e.arch.is_empty() {
                return Err(bad(
                    "no architecture: add [arch.x86_64] or [arch.arm64]".into()
                ));
            }
            for (arch, spec) in &e.arch {
                let a = arch.as_str();
                for (name, f) in &spec.files {
                    if !valid_file_name(name) {
                        return Err(bad(format!("{a}: bad file name {name:?}")));
                    }
                    if !(f.url.starts_with("http://") || f.url.starts_with("https://")) {
                        return Err(bad(format!("{a}: {name}: url must be http:// or https://")));
                    }
                    if let Some(h) = &f.sha256
                        && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
                    {
                        return Err(bad(format!("{a}: {name}: sha256 must be 64 hex digits")));
                    }
                    if f.sums_name.is_some() && spec.sums.is_none() {
                        return Err(bad(format!("{a}: {name}: sums_name without a sums file")));
                    }
                }
                let need = |n: &String| -> Result<(), CatalogError> {
                    if spec.files.contains_key(n) {
                        Ok(())
                    } else {
                        Err(bad(format!("{a}: {n:?} is not in files")))
                    }
                };
                match e.kind {
                    Kind::Linux => {
                        let Some(k) = &spec.kernel else {
                            return Err(bad(format!("{a}: no kernel")));
                        };
                        need(k)?;
                        for i in &spec.initrd {
                            need(i)?;
                        }
                    }
                    Kind::Chain => {
                        if spec.chain_efi.is_none() && spec.chain_pcbios.is_none() {
                            return Err(bad(format!("{a}: chain_efi or chain_pcbios needed")));
                        }
                        for n in spec.chain_efi.iter().chain(spec.chain_pcbios.iter()) {
                            need(n)?;
                        }
                    }
                    Kind::LocalDisk | Kind::Shell => {}
                }
                if spec.args.contains(['\n', '\r']) {
                    return Err(bad(format!("{a}: args must be one line")));
                }
                for name in placeholders(&spec.args) {
                    match name {
                        Placeholder::File(n) => need(&n.to_string())?,
                        Placeholder::Dir => {
                            if spec.dir_url.is_none() {
                                return Err(bad(format!("{a}: {{dir}} used without dir_url")));
                            }
                        }
                        Placeholder::Unknown(p) => {
                            return Err(bad(format!("{a}: unknown placeholder {{{p}}} in args")));
                        }
                    }
                }
            }
        }
        Ok(Catalog { entries })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// The file `name` of entry `id` on `arch`, with its checksum source.
    pub fn file(&self, id: &str, arch: Arch, name: &str) -> Option<(&FileSpec, Option<&Sums>)> {
        let spec = self.get(id)?.arch.get(&arch)?;
        let f = spec.files.get(name)?;
        Some((f, spec.sums.as_ref()))
    }
}

/// A `{...}` placeholder in args.
#[derive(Debug, PartialEq, Eq)]
pub enum Placeholder<'a> {
    File(&'a str),
    Dir,
    Unknown(&'a str),
}

/// The placeholders in `args`, in order. iPXE's own `${var}` is left alone.
pub fn placeholders(args: &str) -> Vec<Placeholder<'_>> {
    let mut out = Vec::new();
    let b = args.as_bytes();
    let mut i = 0;
    while let Some(off) = args.get(i..).and_then(|s| s.find('{')) {
        let start = i + off;
        if start > 0 && b.get(start - 1) == Some(&b'$') {
            i = start + 1;
            continue;
        }
        let Some(len) = args.get(start + 1..).and_then(|s| s.find('}')) else {
            break;
        };
        let inner = args.get(start + 1..start + 1 + len).unwrap_or("");
        out.push(match inner {
            "dir" => Placeholder::Dir,
            p => match p.strip_prefix("file:") {
                Some(n) => Placeholder::File(n),
                None => Placeholder::Unknown(p),
            },
        });
        i = start + 1 + len + 1;
    }
    out
}

/// Expands `{file:NAME}` and `{dir}` in `args`.
pub fn expand(args: &str, file_url: &dyn Fn(&str) -> String, dir_url: &str) -> String {
    let mut out = String::with_capacity(args.len());
    let mut rest = args;
    loop {
        let Some(start) = rest.find('{') else {
            out.push_str(rest);
            break;
        };
        let is_ipxe = rest.get(..start).is_some_and(|s| s.ends_with('$'));
        let close = rest.get(start..).and_then(|s| s.find('}'));
        match (is_ipxe, close) {
            (false, Some(len)) => {
                let inner = rest.get(start + 1..start + len).unwrap_or("");
                out.push_str(rest.get(..start).unwrap_or(""));
                if inner == "dir" {
                    out.push_str(dir_url);
                } else if let Some(n) = inner.strip_prefix("file:") {
                    out.push_str(&file_url(n));
                } else {
                    out.push_str(rest.get(start..=start + len).unwrap_or(""));
                }
                rest = rest.get(start + len + 1..).unwrap_or("");
            }
            _ => {
                out.push_str(rest.get(..=start).unwrap_or(""));
                rest = rest.get(start + 1..).unwrap_or("");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_catalog_is_valid() {
        let c = Catalog::shipped().unwrap();
        for id in [
            "fedora",
            "debian",
            "ubuntu",
            "alpine",
            "almalinux",
            "rocky",
            "arch",
            "local-disk",
            "shell",
            "netboot-xyz",
        ] {
            assert!(c.get(id).is_some(), "{id} missing");
        }
        // Every verified file names its sums entry.
        let d = c.get("debian").unwrap();
        let (f, s) = c.file("debian", Arch::X86_64, "linux").unwrap();
        assert!(f.sums_name.is_some() && s.is_some(), "{d:?}");
    }

    #[test]
    fn expand_placeholders() {
        let s = expand(
            "a={file:x} b={dir} c=${mac} d={other}",
            &|n| format!("U/{n}"),
            "D/",
        );
        assert_eq!(s, "a=U/x b=D/ c=${mac} d={other}");
        assert_eq!(
            placeholders("x {file:a} ${b} {dir} {zz"),
            vec![Placeholder::File("a"), Placeholder::Dir]
        );
    }

    #[test]
    fn bad_entries_rejected() {
        let e = |t: &str| {
            let f: CatalogFile = toml::from_str(t).unwrap();
            Catalog::from_entries(f.entries).unwrap_err().to_string()
        };
        let m = e("[[entries]]\nid='a b'\ntitle='x'\nkind='shell'\n");
        assert!(m.contains("\"a b\""), "{m}");
        let m = e("[[entries]]\nid='x'\ntitle='x'\n[entries.arch.x86_64]\nkernel='k'\n");
        assert!(m.contains("\"k\" is not in files"), "{m}");
        let m = e(
            "[[entries]]\nid='x'\ntitle='x'\n[entries.arch.x86_64]\nkernel='k'\nargs='{file:zz}'\n[entries.arch.x86_64.files.k]\nurl='http://h/k'\n",
        );
        assert!(m.contains("zz"), "{m}");
        let m = e(
            "[[entries]]\nid='x'\ntitle='x'\n[entries.arch.x86_64]\nkernel='../k'\n[entries.arch.x86_64.files.'../k']\nurl='http://h/k'\n",
        );
        assert!(m.contains("bad file name"), "{m}");
        let m = e(
            "[[entries]]\nid='x'\ntitle='x'\n[entries.arch.x86_64]\nkernel='k'\n[entries.arch.x86_64.files.k]\nurl='ftp://h/k'\n",
        );
        assert!(m.contains("http"), "{m}");
    }
}
