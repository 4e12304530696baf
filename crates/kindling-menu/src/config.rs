//! `[menu]` and `[cache]` in `kindling.toml`. Every key has a default.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, CatalogError, Entry};

/// `[menu]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MenuConfig {
    /// Serve `/menu.ipxe`.
    pub enabled: bool,
    /// Menu title.
    pub title: String,
    /// Entry selected when the timeout runs out (an id; must be offered on
    /// the architecture, else the first entry is).
    pub default_entry: String,
    /// Seconds before the default entry boots (0 = wait forever).
    pub timeout_secs: u64,
    /// Base URL of this server as seen by machines (e.g.
    /// `http://10.0.0.2:8080`) for the absolute URLs in menus; default:
    /// `http://<the local address the request arrived on>`. The request's
    /// Host header is never used (a client could point other machines'
    /// menus anywhere).
    pub base_url: Option<String>,
    /// Include the shipped catalog.
    pub shipped_catalog: bool,
    /// Shipped entries to leave out (ids).
    pub hide: Vec<String>,
    /// Fedora CoreOS streams offered from the local assets (those that
    /// `kindling fcos pull` keeps); a stream with nothing on disk is hidden.
    pub fcos_streams: Vec<String>,
    /// Kernel arguments added to the Fedora CoreOS live entries.
    pub fcos_args: String,
    /// More entries (same schema as the shipped catalog); one with the id of
    /// a shipped entry replaces it.
    pub entries: Vec<Entry>,
    /// Per-machine defaults, checked before groups' `menu_default` metadata.
    pub machines: Vec<MachineDefault>,
}

impl Default for MenuConfig {
    fn default() -> Self {
        MenuConfig {
            enabled: true,
            title: "Kindling boot menu".into(),
            default_entry: "local-disk".into(),
            timeout_secs: 10,
            base_url: None,
            shipped_catalog: true,
            hide: Vec::new(),
            fcos_streams: vec!["stable".into()],
            fcos_args: String::new(),
            entries: Vec::new(),
            machines: Vec::new(),
        }
    }
}

impl MenuConfig {
    /// Mistakes that do not stop the server (for `kindling check` and the
    /// start-up log): unknown entry ids, unparsable MACs.
    pub fn problems(&self, catalog: &crate::catalog::Catalog) -> Vec<String> {
        let known =
            |id: &str| catalog.get(id).is_some() || id.starts_with(crate::catalog::FCOS_ID_PREFIX);
        let mut out = Vec::new();
        if !known(&self.default_entry) {
            out.push(format!(
                "menu.default_entry {:?} is not in the catalog",
                self.default_entry
            ));
        }
        for m in &self.machines {
            if kindling_model::mac::normalize_mac(&m.mac).is_none() {
                out.push(format!("menu.machines: {:?} is not a MAC address", m.mac));
            }
            if !known(&m.entry) {
                out.push(format!(
                    "menu.machines: entry {:?} (for {}) is not in the catalog",
                    m.entry, m.mac
                ));
            }
        }
        for s in &self.fcos_streams {
            if !crate::catalog::valid_id(s) {
                out.push(format!("menu.fcos_streams: bad stream name {s:?}"));
            }
        }
        out
    }
}

/// `[[menu.machines]]`: send a MAC (or several) straight to one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineDefault {
    /// MAC address in any common notation.
    pub mac: String,
    /// Entry id.
    pub entry: String,
    /// Seconds the menu is shown first (default 0: boot the entry directly).
    #[serde(default)]
    pub timeout_secs: u64,
}

/// `[cache]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Serve catalog files through `/cache/` (when off, menus point upstream).
    pub enabled: bool,
    /// Where cached files live; `--cache-dir` wins over it. Unset: `$CACHE_DIRECTORY`
    /// under systemd (`CacheDirectory=`), `/var/cache/kindling` as root, else
    /// `$XDG_CACHE_HOME/kindling` (`~/.cache/kindling`); never the data directory.
    pub dir: Option<PathBuf>,
    /// Size limit in bytes (20 GiB by default); least recently used files are evicted
    /// beyond it.
    pub max_bytes: u64,
    /// Seconds allowed for connecting to upstream and receiving its response head.
    pub connect_timeout_secs: u64,
    /// Longest pause (seconds) in an upstream body before the transfer is abandoned.
    pub idle_timeout_secs: u64,
    /// Redirects followed (mirrors redirect a lot).
    pub max_redirects: u32,
    /// How long a menu handed to a client IP routes that IP to the menu's
    /// entries (a GET from it may then start their upstream fetch).
    pub routed_ttl_secs: u64,
    /// Upstream fetches one client IP may have running at once.
    pub client_max_fetches: u32,
    /// Cache misses (upstream fetches started) one client IP may make in a burst.
    pub client_miss_burst: u32,
    /// The rate (per minute) a client IP's allowance of misses refills at.
    pub client_misses_per_minute: u32,
    /// Client IPs remembered for routes and for miss limits (each table).
    pub client_table: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            dir: None,
            max_bytes: 20 * 1024 * 1024 * 1024,
            connect_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_redirects: 10,
            routed_ttl_secs: 6 * 3600,
            client_max_fetches: 4,
            client_miss_burst: 12,
            client_misses_per_minute: 6,
            client_table: 4096,
        }
    }
}

impl CacheConfig {
    /// The cache directory for a data directory.
    pub fn dir_for(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("cache"))
    }

    /// The per-client miss limits.
    pub fn limits(&self) -> crate::guard::Limits {
        crate::guard::Limits {
            max_fetches: self.client_max_fetches,
            burst: self.client_miss_burst,
            per_minute: self.client_misses_per_minute,
            max_clients: self.client_table,
        }
    }
}

/// The catalog a `[menu]` table describes (here, beside the table, so that
/// `catalog` does not depend on the configuration).
impl Catalog {
    /// The shipped catalog with `cfg.entries` added (an entry with the id of
    /// a shipped one replaces it) and `cfg.hide` removed.
    pub fn load(cfg: &MenuConfig) -> Result<Catalog, CatalogError> {
        let mut entries = if cfg.shipped_catalog {
            Catalog::shipped()?.entries
        } else {
            Vec::new()
        };
        for add in &cfg.entries {
            match entries.iter_mut().find(|e| e.id == add.id) {
                Some(slot) => *slot = add.clone(),
                None => entries.push(add.clone()),
            }
        }
        for h in &cfg.hide {
            let before = entries.len();
            entries.retain(|e| &e.id != h);
            if entries.len() == before {
                return Err(CatalogError::UnknownHidden(h.clone()));
            }
        }
        Catalog::from_entries(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        menu: MenuConfig,
        #[serde(default)]
        cache: CacheConfig,
    }

    #[test]
    fn empty_is_defaults_and_unknown_keys_fail() {
        let f: File = toml::from_str("").unwrap();
        assert_eq!(f.menu, MenuConfig::default());
        assert_eq!(f.cache, CacheConfig::default());
        let e = toml::from_str::<File>("[cache]\nmax_byte = 1\n")
            .err()
            .unwrap();
        assert!(e.to_string().contains("max_byte"), "{e}");
        let f: File = toml::from_str(
            "[menu]\ntimeout_secs = 3\n[[menu.machines]]\nmac = \"52:54:00:00:00:01\"\nentry = \"debian\"\n[[menu.entries]]\nid = \"x\"\ntitle = \"X\"\nkind = \"shell\"\n[cache]\nmax_bytes = 1000\n",
        )
        .unwrap();
        assert_eq!(f.menu.timeout_secs, 3);
        assert_eq!(f.menu.machines[0].entry, "debian");
        assert_eq!(f.menu.entries[0].id, "x");
        assert_eq!(f.cache.max_bytes, 1000);
        let cat = crate::catalog::Catalog::load(&f.menu).unwrap();
        assert!(
            f.menu.problems(&cat).is_empty(),
            "{:?}",
            f.menu.problems(&cat)
        );
        let mut bad = f.menu.clone();
        bad.default_entry = "nope".into();
        bad.machines[0].mac = "zz".into();
        bad.machines[0].entry = "gone".into();
        let p = bad.problems(&cat).join("\n");
        assert!(
            p.contains("\"nope\"") && p.contains("\"zz\"") && p.contains("\"gone\""),
            "{p}"
        );
    }
}
