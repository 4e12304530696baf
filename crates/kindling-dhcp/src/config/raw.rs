//! The raw `[dhcp]` table as serde reads it, its defaults and the limits of its values.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::full::{DhcpMode, ReservationConfig, SubnetConfig};
use crate::config::menu::PxeMenuConfig;
use crate::config::v6::Dhcp6Config;

/// Placeholder replaced by the server's address on the receiving interface.
pub const PLACEHOLDER_IP: &str = "{server_ip}";
/// Placeholder replaced by `http_port`.
pub const PLACEHOLDER_PORT: &str = "{http_port}";
/// The default iPXE script URL (Kindling's own HTTP service).
pub const DEFAULT_SCRIPT_URL: &str = "http://{server_ip}:{http_port}/boot.ipxe";
/// Placeholder replaced by the architecture's HTTP Boot binary.
pub const PLACEHOLDER_BINARY: &str = "{binary}";
/// The default UEFI HTTP Boot URL (Kindling's `/tftp/` over HTTP).
pub const DEFAULT_HTTP_BOOT_URL: &str = "http://{server_ip}:{http_port}/tftp/{binary}";
/// Longest cap on `reply_delay_ms`.
pub const MAX_REPLY_DELAY_MS: u64 = 5000;
/// Longest `interface_rescan_secs`.
pub const MAX_RESCAN_SECS: u64 = 3600;

/// The raw `[dhcp]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DhcpConfig {
    /// Run the proxy DHCP server at all.
    pub enabled: bool,
    /// Allow list: interface names (`*` wildcards allowed, e.g. `"enp*"`), or an IPv4 address
    /// / CIDR selecting the interfaces that have an address in that subnet (dnsmasq's
    /// `dhcp-range=<addr>,proxy`). Empty means none, unless `all_interfaces` is true.
    pub interfaces: Vec<String>,
    /// Serve every interface that is up, not loopback and has an IPv4 address, minus
    /// `exclude_interfaces`.
    pub all_interfaces: bool,
    /// Deny list of interface names (`*` wildcards allowed). Always wins over the allow list.
    pub exclude_interfaces: Vec<String>,
    /// Per-interface advertised address (option 54, siaddr, URLs). Default: the interface's
    /// first IPv4 address.
    pub advertise: BTreeMap<String, Ipv4Addr>,
    /// Kindling's HTTP port, used in `{http_port}`. `kindling serve` ignores this key: it
    /// always uses the port of `http.listen` (or `--http-listen`).
    pub http_port: u16,
    /// URL given to iPXE clients by the default `script` target.
    pub script_url: String,
    /// TFTP file for BIOS PXE firmware (arch 0).
    pub bios_binary: String,
    /// TFTP file for x86-64 UEFI PXE firmware (arch 7 and 9).
    pub efi_binary: String,
    /// File for x86-64 UEFI HTTP Boot (arch 16), served at `http_boot_url`.
    pub http_boot_binary: String,
    /// The URL UEFI HTTP Boot clients get: `{server_ip}`, `{http_port}` and `{binary}` (the
    /// architecture's binary: `http_boot_binary` or `arm64_binary`) are expanded. Another
    /// web server, or https://, can serve the binary instead of Kindling's `/tftp/`.
    pub http_boot_url: String,
    /// File for arm64 UEFI (arch 11 over TFTP, 19 over HTTP). None: arm64 is not answered.
    pub arm64_binary: Option<String>,
    /// Extra option-60 prefixes treated like `PXEClient` (dnsmasq `dhcp-pxe-vendor`).
    pub vendor_prefixes: Vec<String>,
    /// Delay before every reply (dnsmasq `dhcp-reply-delay`), in milliseconds.
    pub reply_delay_ms: u64,
    /// Removed: Kindling always listens on UDP 4011, because UEFI firmware (EDK2) always asks
    /// there after a proxy offer. `true` is accepted (and changes nothing), `false` is refused.
    pub proxy_port_4011: Option<bool>,
    /// Seconds between re-reads of the interface list (dnsmasq's `bind-dynamic`):
    /// interfaces and addresses that appear later are served, those that go away are
    /// dropped. 0 = only at start-up, where anything missing is then an error.
    pub interface_rescan_secs: u64,
    /// Per-client rate limits (`[dhcp.rate_limit]`).
    pub rate_limit: RateLimitConfig,
    /// Routing rules, first match wins.
    pub rules: Vec<RuleConfig>,
    /// A boot menu with a prompt for BIOS PXE ROMs (`[dhcp.pxe_menu]`); no items (the
    /// default) means no menu.
    pub pxe_menu: PxeMenuConfig,
    /// `proxy` (default: next to a site's DHCP server) or `full` (Kindling hands out the
    /// addresses of `[[dhcp.subnets]]`; see docs/dhcp.md).
    pub mode: DhcpMode,
    /// Full mode: the lease log. Default (in `kindling serve`): `dhcp-leases` in the state
    /// directory.
    pub lease_file: Option<std::path::PathBuf>,
    /// Full mode: NAK a REQUEST for an address this server cannot give (a client moved from
    /// another network); when false such requests are ignored.
    pub authoritative: bool,
    /// Full mode: send an ICMP echo to an address before offering it to a new client, and
    /// skip the address if something answers.
    pub ping_check: bool,
    /// Full mode: how long to wait for the echo reply.
    pub ping_timeout_ms: u64,
    /// Full mode: the subnets served, with their pools and options.
    pub subnets: Vec<SubnetConfig>,
    /// Full mode: fixed addresses by MAC.
    pub reservations: Vec<ReservationConfig>,
    /// DHCPv6 for UEFI HTTP Boot and iPXE over IPv6 (`[dhcp.v6]`).
    pub v6: Dhcp6Config,
    /// Set by `kindling serve` from `[secure_boot] default` (not a `[dhcp]` key): every
    /// x86-64 UEFI PXE client a rule does not exempt is sent the signed shim.
    #[serde(skip)]
    pub secure_boot_default: bool,
}

/// The `[dhcp.rate_limit]` table: token buckets by client MAC and by source address (see
/// `docs/dhcp.md`). A `*_burst` of 0 turns that key off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Apply the limits at all.
    pub enabled: bool,
    /// Datagrams one MAC (`chaddr`) may send at once.
    pub mac_burst: u32,
    /// Refill of a MAC's bucket, per minute.
    pub mac_per_minute: u32,
    /// Datagrams one source address (not 0.0.0.0, not relayed) may send at once.
    pub ip_burst: u32,
    /// Refill of an address's bucket, per minute.
    pub ip_per_minute: u32,
    /// Datagrams one relay (source address of packets with `giaddr` set) may send at once.
    pub relay_burst: u32,
    /// Refill of a relay's bucket, per minute.
    pub relay_per_minute: u32,
    /// Most buckets kept; the least recently used is evicted (reset) beyond.
    pub max_clients: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            mac_burst: 40,
            mac_per_minute: 60,
            ip_burst: 40,
            ip_per_minute: 120,
            relay_burst: 2000,
            relay_per_minute: 60_000,
            max_clients: 16_384,
        }
    }
}

/// Largest `max_clients`.
pub const MAX_RATE_LIMIT_CLIENTS: u32 = 1_000_000;
/// Largest burst or per-minute value.
pub const MAX_RATE_LIMIT_VALUE: u32 = 10_000_000;

impl Default for DhcpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interfaces: Vec::new(),
            all_interfaces: false,
            exclude_interfaces: vec!["virbr*".into(), "docker*".into()],
            advertise: BTreeMap::new(),
            http_port: 8080,
            script_url: DEFAULT_SCRIPT_URL.into(),
            bios_binary: "undionly.kpxe".into(),
            efi_binary: "snponly.efi".into(),
            http_boot_binary: "ipxe.efi".into(),
            arm64_binary: None,
            vendor_prefixes: Vec::new(),
            reply_delay_ms: 0,
            http_boot_url: DEFAULT_HTTP_BOOT_URL.into(),
            proxy_port_4011: None,
            pxe_menu: PxeMenuConfig::default(),
            mode: DhcpMode::Proxy,
            lease_file: None,
            authoritative: true,
            ping_check: true,
            ping_timeout_ms: 300,
            subnets: Vec::new(),
            reservations: Vec::new(),
            v6: Dhcp6Config::default(),
            interface_rescan_secs: 5,
            rate_limit: RateLimitConfig::default(),
            rules: Vec::new(),
            secure_boot_default: false,
        }
    }
}

/// An architecture given as a number or a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ArchSpec {
    Number(u16),
    Name(String),
}

/// One value or a list of values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// Kindling's own iPXE script (`script_url`).
    Script,
    /// Any URL (`url`), given to iPXE; firmware gets the iPXE binary first.
    Url,
    /// Boot from local disk: BIOS PXE gets a "local boot" menu item, others no answer.
    LocalBoot,
    /// No answer at all.
    Ignore,
}

/// One `[[dhcp.rules]]` entry. Every match key present must match (AND); a rule without match
/// keys matches every client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RuleConfig {
    /// Label for logs and metrics.
    pub name: Option<String>,
    /// MAC pattern, six octets separated by `:` or `-`, each hex or `*` (dnsmasq `dhcp-mac`).
    pub mac: Option<String>,
    /// Architecture(s): numbers or names (see docs); matches the architecture Kindling selected.
    pub arch: Option<OneOrMany<ArchSpec>>,
    /// Substring of any option-77 user class entry (dnsmasq `dhcp-userclass`).
    pub user_class: Option<String>,
    /// Substring of option 60 (dnsmasq `dhcp-vendorclass`).
    pub vendor_class: Option<String>,
    /// Receiving interface name (`*` wildcards allowed).
    pub interface: Option<String>,
    /// `script` (default), `url`, `local_boot` or `ignore`. Setting `url` alone implies `url`.
    pub target: Option<TargetKind>,
    /// The URL for `target = "url"`; `{server_ip}` and `{http_port}` are expanded.
    pub url: Option<String>,
    /// x86-64 UEFI PXE firmware (arch 7, 9) this rule matches gets the signed shim
    /// (`secureboot/shimx64.efi`, see `[secure_boot]` and docs/secure-boot.md) instead of
    /// the iPXE binary; `false` keeps them on iPXE even with `[secure_boot] default = true`.
    /// iPXE, BIOS, arm64 and UEFI HTTP Boot clients are unaffected.
    pub secure_boot: Option<bool>,
}
