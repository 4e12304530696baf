//! Why Kindling differs from dnsmasq for a client, and what became of each line of the
//! configuration.

use std::collections::{BTreeMap, BTreeSet};

use kindling_dhcp::{CheckedConfig, DhcpConfig};

use super::model::*;
use super::plan::{Tr, seen_kindling};
use crate::migrate::dnsmasq::parse::{self, Fate, Line, MacPattern};
use crate::migrate::probe::{self, Boot, Client, DEFAULT_MAC, Field, Kind, Seen};

/// (field, dnsmasq's value, Kindling's value, why) -> the clients it applies to.
pub(super) type Diffs = BTreeMap<(Field, String, String, String), Vec<String>>;

const DNS_KEYS: &[&str] = &[
    "server",
    "address",
    "local",
    "domain",
    "expand-hosts",
    "no-resolv",
    "no-poll",
    "resolv-file",
    "cache-size",
    "log-queries",
    "bogus-priv",
    "domain-needed",
    "strict-order",
    "addn-hosts",
    "no-hosts",
    "cname",
    "host-record",
    "txt-record",
    "srv-host",
    "ptr-record",
    "mx-host",
    "dnssec",
    "trust-anchor",
    "stop-dns-rebind",
    "rebind-localhost-ok",
    "rebind-domain-ok",
    "all-servers",
    "min-port",
    "max-port",
    "edns-packet-max",
    "neg-ttl",
    "local-ttl",
    "max-ttl",
    "max-cache-ttl",
    "auth-server",
    "auth-zone",
    "ipset",
    "nftset",
    "filterwin2k",
    "localise-queries",
    "interface-name",
    "dns-forward-max",
    "query-port",
    "bogus-nxdomain",
    "alias",
    "servers-file",
    "local-service",
    "dns-rr",
    "synth-domain",
    "dns-loop-detect",
    "clear-on-reload",
];
const FULL_DHCP_KEYS: &[&str] = &[
    "dhcp-authoritative",
    "dhcp-leasefile",
    "dhcp-lease-max",
    "dhcp-script",
    "dhcp-sequential-ip",
    "dhcp-rapid-commit",
    "dhcp-broadcast",
    "dhcp-generate-names",
    "read-ethers",
    "dhcp-hostsfile",
    "dhcp-optsfile",
    "dhcp-hostsdir",
    "dhcp-optsdir",
    "dhcp-client-update",
    "dhcp-fqdn",
    "enable-ra",
    "dhcp-relay",
    "dhcp-proxy",
    "leasefile-ro",
    "dhcp-script-user",
    "script-arp",
    "dhcp-ttl",
    "quiet-dhcp",
    "quiet-dhcp6",
    "quiet-ra",
    "dhcp-ignore-names",
    "dhcp-name-match",
    "dhcp-circuitid",
    "dhcp-remoteid",
    "dhcp-subscrid",
    "bootp-dynamic",
    "dhcp-alternate-port",
    "dhcp-ignore-clid",
    "shared-network",
    "ra-param",
    "dhcp-split-relay",
];
const PROCESS_KEYS: &[&str] = &[
    "user",
    "group",
    "pid-file",
    "keep-in-foreground",
    "no-daemon",
    "log-facility",
    "log-async",
    "conntrack",
    "log-debug",
];

impl Tr<'_> {
    fn reason(
        &self,
        c: &Client,
        f: Field,
        d: &Seen,
        k: &Seen,
        base: &DhcpConfig,
        forgot_pxe: bool,
    ) -> String {
        let kind = c.kind;
        let want = &self.wants[c];
        match f {
            Field::Answer if d.offer.is_none() => {
                if kind == Kind::Http
                    && !self
                        .conf
                        .pxe_vendors
                        .as_ref()
                        .is_some_and(|v| v.iter().any(|p| p == "HTTPClient"))
                    && self.conf.ranges.iter().any(|r| r.proxy)
                {
                    "HTTPClient is not in dhcp-pxe-vendor, so dnsmasq ignores UEFI HTTP Boot; Kindling serves it".into()
                } else if forgot_pxe
                    || (!self.conf.enable_pxe && self.conf.ranges.iter().any(|r| r.proxy))
                {
                    "without pxe-service or pxe-prompt dnsmasq's proxy answers nobody (its dhcp-boot lines are ignored); Kindling answers".into()
                } else if self.ignored.contains(c) {
                    "dnsmasq ignores this client here".into()
                } else {
                    format!(
                        "dnsmasq has nothing for {} in this configuration; Kindling answers with its defaults",
                        kind.describe()
                    )
                }
            }
            Field::Answer => {
                if kind == Kind::Arm64 && base.arm64_binary.is_none() {
                    "Kindling does not answer arm64 without dhcp.arm64_binary (dnsmasq's answer leads nowhere: no arm64 boot file)".into()
                } else if *want == Want::LocalBoot {
                    "Kindling's local_boot answers only BIOS firmware; other clients get no answer and go on to their next boot option".into()
                } else if *want == Want::Ignore {
                    "dnsmasq's answer leads nowhere for this machine; Kindling does not answer it"
                        .into()
                } else {
                    "Kindling does not answer this client".into()
                }
            }
            Field::Boot => {
                if let Boot::File { file, .. } = &d.boot
                    && fix_url(file) != *file
                {
                    return "the URL dnsmasq hands out is malformed (\"http:///\"); Kindling's is corrected".into();
                }
                if let Want::Url(t) = want
                    && t == MENU_URL
                    && !self.opts.keep_netboot_xyz
                    && matches!(&d.boot, Boot::File { file, .. } if is_netboot_xyz(file))
                {
                    return "netboot.xyz's menu is replaced by Kindling's /menu.ipxe (docs/menus.md)".into();
                }
                if let Some(why) = self.menu_reason(c, base) {
                    return why;
                }
                match (&d.boot, &k.boot) {
                    (Boot::Nothing, _) => format!(
                        "dnsmasq's answer leads nowhere for {} (no boot file for it); Kindling hands out its default",
                        kind.describe()
                    ),
                    (Boot::File { file, .. }, _) if kind.is_ipxe() && IPXE_BINARIES.contains(&file.as_str()) => {
                        "dnsmasq hands iPXE the iPXE binary again (a chainload loop); Kindling gives iPXE its script".into()
                    }
                    (Boot::File { server, .. }, _) if *server != self.server && !kind.is_ipxe() => format!(
                        "dnsmasq sends this client to {server}; Kindling serves the boot files itself (copy them into [tftp] root or /usr/lib/ipxe)"
                    ),
                    (_, Boot::File { file, .. }) if kind == Kind::Http => format!(
                        "Kindling serves UEFI HTTP Boot binaries at http://SERVER:PORT/tftp/NAME ({file})"
                    ),
                    (Boot::File { file, .. }, _) if kind == Kind::UefiBc && *file != base.efi_binary => {
                        "Kindling gives arch 7 and 9 the same efi_binary".into()
                    }
                    (Boot::File { .. }, Boot::File { .. }) if !kind.is_ipxe() && c.mac != DEFAULT_MAC => {
                        "Kindling has one boot file per architecture; rules change only what iPXE gets".into()
                    }
                    (Boot::File { file, .. }, _) if file.starts_with("http:///") => {
                        "the URL dnsmasq hands out is malformed (http:///); Kindling's is not".into()
                    }
                    (Boot::LocalBoot, _) => "Kindling's local_boot answers only BIOS firmware".into(),
                    _ => "Kindling cannot express what dnsmasq does for this client".into(),
                }
            }
            Field::Siaddr => {
                if d.offer.is_some_and(|(s, _)| s.is_unspecified()) {
                    "dnsmasq leaves next-server empty (its PXE menu or port 4011 names the server); Kindling always sets it (iPXE needs it)".into()
                } else {
                    "Kindling always names itself as next-server".into()
                }
            }
            Field::Opt43 => {
                if d.offer.is_some_and(|(_, o)| o) {
                    if kind.is_ipxe() {
                        "dnsmasq sends its PXE menu to iPXE too; Kindling gives iPXE the URL in the file field".into()
                    } else {
                        "dnsmasq sends option 43 (its PXE menu); Kindling does not".into()
                    }
                } else if kind == Kind::Bios && !base.pxe_menu.items.is_empty() {
                    "Kindling sends BIOS firmware its PXE menu (option 43); dnsmasq's full-DHCP offer has no option 43".into()
                } else if kind == Kind::Bios {
                    "Kindling tells BIOS firmware to use the file field (option 43 {6: 8}); dnsmasq's full-DHCP offer has no option 43".into()
                } else {
                    "Kindling sends option 43; dnsmasq does not".into()
                }
            }
        }
    }

    /// What became of one line.
    fn fate(
        &self,
        l: &Line,
        rules: &[Planned],
        base: &DhcpConfig,
        kseen: &BTreeMap<Client, Seen>,
        forgot_pxe: bool,
    ) -> Fate {
        let done = |s: &str| Fate::Done(s.to_string());
        let not = |s: &str| Fate::NotTranslated(s.to_string());
        let key = l.key.as_str();
        let rule_names = |pred: &dyn Fn(&Planned) -> bool| -> Vec<String> {
            rules
                .iter()
                .filter(|p| pred(p))
                .filter_map(|p| p.rule.name.clone())
                .collect()
        };
        match key {
            "dhcp-range" => match self.conf.ranges.iter().find(|r| r.line == l.no) {
                Some(r) if r.proxy => done("-> [dhcp] interfaces"),
                Some(_) => not(
                    "full DHCP: Kindling hands out no addresses (keep the LAN's DHCP server for that); its subnet -> [dhcp] interfaces, where Kindling answers PXE clients as a proxy",
                ),
                None => not("not an IPv4 range"),
            },
            "pxe-service" | "dhcp-boot" => {
                let used: Vec<&Client> = self
                    .clients
                    .iter()
                    .filter(|c| self.intent[*c].1 == Some(l.no))
                    .collect();
                if key == "dhcp-boot" && forgot_pxe && self.conf.ranges.iter().all(|r| r.proxy) {
                    // dnsmasq ignores it; the translation follows its intent.
                }
                if used.is_empty() {
                    if key == "pxe-service"
                        && let Some(f) = self.service_fate(l.no, None, rules, base)
                    {
                        return f;
                    }
                    return done(
                        "evaluated for every client checked: chosen for none (its tags or architecture never match, or another line wins)",
                    );
                }
                let same: Vec<String> = used
                    .iter()
                    .filter(|c| {
                        kseen
                            .get(**c)
                            .is_some_and(|k| self.satisfied(&self.wants[*c], c, k))
                            && !matches!(self.wants[*c], Want::Any)
                    })
                    .map(|c| c.label())
                    .collect();
                let labels: Vec<String> = used.iter().map(|c| c.label()).collect();
                let names = rule_names(&|p: &Planned| p.lines.contains(&l.no));
                let mut s = format!("chosen for {}", labels.join(", "));
                if !names.is_empty() {
                    s.push_str(&format!(" -> rule {}", names.join(", ")));
                }
                if same.len() == labels.len() {
                    s.push_str("; Kindling gives them the same");
                } else if !same.is_empty() {
                    s.push_str(&format!(
                        "; Kindling gives the same to {} (see the differences for the others)",
                        same.join(", ")
                    ));
                } else {
                    s.push_str("; see the differences");
                }
                if key == "pxe-service"
                    && let Some(f) = self.service_fate(l.no, Some(&s), rules, base)
                {
                    return f;
                }
                Fate::Done(s)
            }
            "pxe-prompt" => self.prompt_fate(l.no),
            "dhcp-userclass" | "dhcp-match"
                if self
                    .conf
                    .classes
                    .iter()
                    .any(|c| c.line == l.no && c.needle == b"iPXE")
                    || self.conf.matches.iter().any(|m| {
                        m.line == l.no
                            && (m.option == 175
                                || (m.option == 77
                                    && m.value == parse::MatchValue::Text(b"iPXE".to_vec())))
                    }) =>
            {
                done("built in: Kindling recognises iPXE by its user class and option 175")
            }
            "dhcp-userclass" | "dhcp-vendorclass" | "dhcp-match" | "tag-if" => {
                done("evaluated for every client checked (tags)")
            }
            "dhcp-mac" | "dhcp-host" => {
                let pats: Vec<MacPattern> = self
                    .conf
                    .macs
                    .iter()
                    .filter(|m| m.line == l.no)
                    .map(|m| m.pattern)
                    .chain(
                        self.conf
                            .hosts
                            .iter()
                            .filter(|h| h.line == l.no)
                            .flat_map(|h| h.macs.clone()),
                    )
                    .collect();
                let names = rule_names(&|p: &Planned| {
                    p.rule
                        .mac
                        .as_deref()
                        .and_then(parse::parse_mac)
                        .is_some_and(|m| pats.contains(&m))
                });
                let labels: Vec<String> = self
                    .groups
                    .iter()
                    .filter(|g| g.pattern.is_some_and(|p| pats.contains(&p)))
                    .map(|g| format!("*@{}", probe::mac_label(&g.mac)))
                    .collect();
                let mut s = format!("checked as {}", labels.join(", "));
                if names.is_empty() {
                    s.push_str(" (no rule needed)");
                } else {
                    s.push_str(&format!(" -> rule {}", names.join(", ")));
                }
                if let Some(h) = self.conf.hosts.iter().find(|h| h.line == l.no) {
                    if h.addr.is_some() {
                        s.push_str("; its address is for full DHCP (not translated)");
                    }
                    if h.ignore {
                        s.push_str("; `ignore` (dnsmasq honours it in full DHCP only)");
                    }
                }
                Fate::Done(s)
            }
            "dhcp-ignore" => {
                done("evaluated for every client checked -> rules with target = \"ignore\"")
            }
            "dhcp-reply-delay" => match self.conf.delays.iter().find(|d| d.line == l.no) {
                Some(d) if d.conds.is_empty() => {
                    if u64::from(d.secs) * 1000 > kindling_dhcp::config::MAX_REPLY_DELAY_MS {
                        Fate::Done(format!(
                            "-> reply_delay_ms (capped at {} ms)",
                            kindling_dhcp::config::MAX_REPLY_DELAY_MS
                        ))
                    } else {
                        done("-> reply_delay_ms")
                    }
                }
                _ => not("Kindling's reply delay applies to every client, not by tag"),
            },
            "dhcp-pxe-vendor" => {
                if base.vendor_prefixes.is_empty() {
                    done("built in: PXEClient and HTTPClient are always recognised")
                } else {
                    done("-> vendor_prefixes (PXEClient and HTTPClient are built in)")
                }
            }
            "interface" => done("-> [dhcp] interfaces"),
            "except-interface" | "no-dhcp-interface" => done("-> [dhcp] exclude_interfaces"),
            "listen-address" => {
                not("Kindling binds proxy DHCP by interface (SO_BINDTODEVICE), not by address")
            }
            "bind-interfaces" | "bind-dynamic" => done(
                "nothing to do: Kindling binds each interface (SO_BINDTODEVICE) and follows interfaces that come and go (interface_rescan_secs, as bind-dynamic)",
            ),
            "port" => {
                if l.args.first().map(String::as_str) == Some("0") {
                    done("nothing to do: Kindling has no DNS server")
                } else {
                    not("DNS: Kindling has no DNS server")
                }
            }
            "enable-tftp" => {
                if l.args.iter().any(|a| !a.is_empty()) {
                    not(
                        "per-interface TFTP: Kindling's TFTP listens on [tftp] listen (0.0.0.0:69); enabled",
                    )
                } else {
                    done("-> [tftp] enabled")
                }
            }
            "tftp-root" => {
                if l.args.len() > 1 {
                    not(
                        "per-interface TFTP roots: Kindling has one [tftp] root (the directory is kept)",
                    )
                } else {
                    done("-> [tftp] root")
                }
            }
            "tftp-no-blocksize" => done("-> [tftp] max_blksize = 512"),
            "tftp-mtu" => done("-> [tftp] mtu"),
            "tftp-max" => done("-> [tftp] max_transfers"),
            "tftp-single-port" => done("-> [tftp] single_port"),
            "tftp-secure" => done(
                "nothing to do: Kindling's TFTP serves its root read-only and confined by the kernel (openat2 RESOLVE_BENEATH)",
            ),
            "tftp-lowercase"
            | "tftp-unique-root"
            | "tftp-no-fail"
            | "tftp-port-range"
            | "tftp-sequential-ports" => {
                not("no equivalent in Kindling's TFTP server (docs/tftp.md)")
            }
            "log-dhcp" => {
                done("-> [log] level = \"info,kindling_dhcp=debug\" (kindling serve --log ...)")
            }
            "dhcp-no-override" => {
                done("nothing to do: Kindling never puts options into the file and sname fields")
            }
            "dhcp-option" | "dhcp-option-force" | "dhcp-option-pxe" => not(
                "Kindling's proxy replies carry only the PXE boot fields (the LAN's DHCP server sends routers, DNS and the rest)",
            ),
            "conf-file" | "conf-dir" | "servers-file" => not(
                "not read: translate that file too (kindling migrate dnsmasq FILE) and merge the results",
            ),
            k if DNS_KEYS.contains(&k) => not("DNS: Kindling has no DNS server"),
            k if FULL_DHCP_KEYS.contains(&k) => not(
                "full DHCP: Kindling is a proxy next to the LAN's DHCP server and hands out no addresses",
            ),
            k if PROCESS_KEYS.contains(&k) => not(
                "process settings: run Kindling under systemd or in a container; it logs to stdout ([log])",
            ),
            _ => not("unknown to this translator"),
        }
    }
}

impl Tr<'_> {
    /// Differences, by comparing dnsmasq as configured with Kindling as translated: the
    /// differences, the clients that differ, and what Kindling answers each client.
    pub(super) fn differences(
        &self,
        checked: Option<&CheckedConfig>,
        base: &DhcpConfig,
        forgot_pxe: bool,
    ) -> (Diffs, BTreeSet<Client>, BTreeMap<Client, Seen>) {
        let dhcp_on = self.dhcp_on;
        let mut diffs = Diffs::new();
        let mut differing = BTreeSet::new();
        let mut kseen: BTreeMap<Client, Seen> = BTreeMap::new();
        if let Some(cfg) = checked {
            for c in &self.clients {
                let k = if dhcp_on {
                    seen_kindling(cfg, c, self.server, self.mask, &self.iface)
                } else {
                    Seen::SILENT
                };
                let d = &self.real[c].0;
                for (f, dv, kv) in probe::differences(d, &k) {
                    let why = self.reason(c, f, d, &k, base, forgot_pxe);
                    diffs.entry((f, dv, kv, why)).or_default().push(c.label());
                    differing.insert(*c);
                }
                kseen.insert(*c, k);
            }
        }
        (diffs, differing, kseen)
    }

    /// Line by line: what became of each line.
    pub(super) fn fates(
        &self,
        rules: &[Planned],
        base: &DhcpConfig,
        kseen: &BTreeMap<Client, Seen>,
        forgot_pxe: bool,
    ) -> BTreeMap<usize, Fate> {
        let conf = self.conf;
        let mut fates: BTreeMap<usize, Fate> = BTreeMap::new();
        for (no, e) in &conf.malformed {
            fates.insert(
                *no,
                Fate::NotTranslated(format!("malformed ({e}); dnsmasq would refuse it too")),
            );
        }
        for l in &conf.lines {
            if fates.contains_key(&l.no) {
                continue;
            }
            fates.insert(l.no, self.fate(l, rules, base, kseen, forgot_pxe));
        }
        fates
    }
}
