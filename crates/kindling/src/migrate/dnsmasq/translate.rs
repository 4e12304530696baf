//! The model of a dnsmasq configuration to `kindling.toml` text (see the module docs).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};

use kindling_dhcp::config::{ArchSpec, DEFAULT_SCRIPT_URL, OneOrMany, RuleConfig, TargetKind};
use kindling_dhcp::{CheckedConfig, Context, Decision, DhcpConfig, ListenPort, decide};

use super::parse::{self, Conf, Fate, Line, MacPattern, mac_text};
use super::sim::{Sim, lease_for};
use crate::migrate::probe::{
    self, Boot, Client, DEFAULT_MAC, DIFFERS, DISCOVER, Field, Kind, REQUEST, Seen, Step,
};
use crate::migrate::toml_out::{Block, comment_text, string, strings};

/// How to translate.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Name of the source, for the header.
    pub source: String,
    /// The address Kindling will have on the boot network (default: guessed from the
    /// configuration).
    pub server_ip: Option<Ipv4Addr>,
    /// Keep netboot.xyz menu URLs instead of pointing those machines at Kindling's menu.
    pub keep_netboot_xyz: bool,
}

/// The result: the TOML text and warnings for stderr.
#[derive(Debug, Clone)]
pub struct Output {
    pub toml: String,
    pub warnings: Vec<String>,
    /// Clients for which Kindling and dnsmasq differ.
    pub differences: usize,
}

/// What a client should get from Kindling to match dnsmasq.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    /// Firmware: this TFTP file from this host.
    Binary(String),
    /// iPXE: this URL (a Kindling URL template).
    Url(String),
    /// UEFI HTTP Boot: this URL.
    HttpFile(String),
    LocalBoot,
    Ignore,
    /// Nothing Kindling can or needs to match.
    Any,
}

/// A set of clients: the default MAC, or a MAC pattern the configuration names.
#[derive(Debug, Clone)]
struct Group {
    pattern: Option<MacPattern>,
    mac: [u8; 6],
    tag: Option<String>,
    lines: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Planned {
    rule: RuleConfig,
    lines: BTreeSet<usize>,
    clients: Vec<Client>,
}

/// Standard iPXE binaries: handing one of them to iPXE again is a chainload loop.
const IPXE_BINARIES: [&str; 8] = [
    "undionly.kpxe",
    "undionly.kkpxe",
    "undionly.0",
    "ipxe.efi",
    "snponly.efi",
    "ipxe.pxe",
    "snp.efi",
    "ipxe.kpxe",
];

const MENU_URL: &str = "http://{server_ip}:{http_port}/menu.ipxe";

fn is_url(s: &str) -> bool {
    s.contains("://")
}

/// (scheme, host, port, path) of a URL.
fn split_url(u: &str) -> Option<(String, String, u16, String)> {
    let (scheme, rest) = u.split_once("://")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        "tftp" => 69,
        _ => 0,
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (hostport, default),
    };
    Some((
        scheme.to_ascii_lowercase(),
        host.to_string(),
        port,
        path.to_string(),
    ))
}

/// `http:///host/...` (a typo in matchbox's documented recipe) is `http://host/...`.
fn fix_url(u: &str) -> String {
    for scheme in ["http", "https", "tftp"] {
        let bad = format!("{scheme}:///");
        if u.len() > bad.len()
            && u[..bad.len()].eq_ignore_ascii_case(&bad)
            && !u[bad.len()..].starts_with('/')
        {
            return format!("{scheme}://{}", &u[bad.len()..]);
        }
    }
    u.to_string()
}

fn is_netboot_xyz(u: &str) -> bool {
    let l = u.to_ascii_lowercase();
    if !(l.starts_with("http://") || l.starts_with("https://")) {
        return false;
    }
    l.contains("netboot.xyz")
        || l.contains("netbootxyz")
        || split_url(&l).is_some_and(|(_, _, _, p)| p.rsplit('/').next() == Some("menu.ipxe"))
}

fn arch_label(a: u16) -> &'static str {
    match a {
        0 => "bios",
        7 => "efi-x64",
        9 => "efi-bc",
        11 => "efi-arm64",
        16 => "http-x64",
        _ => "",
    }
}

fn arch_spec(arches: &[u16]) -> Option<OneOrMany<ArchSpec>> {
    let v: Vec<ArchSpec> = arches
        .iter()
        .map(|a| match arch_label(*a) {
            "" => ArchSpec::Number(*a),
            n => ArchSpec::Name(n.into()),
        })
        .collect();
    match v.len() {
        0 => None,
        1 => v.into_iter().next().map(OneOrMany::One),
        _ => Some(OneOrMany::Many(v)),
    }
}

fn arches_of(spec: &Option<OneOrMany<ArchSpec>>) -> Vec<u16> {
    let items: Vec<&ArchSpec> = match spec {
        None => Vec::new(),
        Some(OneOrMany::One(a)) => vec![a],
        Some(OneOrMany::Many(v)) => v.iter().collect(),
    };
    items
        .into_iter()
        .filter_map(|a| match a {
            ArchSpec::Number(n) => Some(*n),
            ArchSpec::Name(n) => kindling_dhcp::arch::parse_arch(n),
        })
        .collect()
}

fn mask_prefix(m: Ipv4Addr) -> u32 {
    u32::from(m).leading_ones()
}

fn same_net(a: Ipv4Addr, b: Ipv4Addr, mask: Ipv4Addr) -> bool {
    u32::from(a) & u32::from(mask) == u32::from(b) & u32::from(mask)
}

struct Tr<'a> {
    conf: &'a Conf,
    opts: &'a Options,
    server: Ipv4Addr,
    mask: Ipv4Addr,
    iface: String,
    server_from: String,
    http_port: u16,
    groups: Vec<Group>,
    clients: Vec<Client>,
    /// dnsmasq as configured.
    real: BTreeMap<Client, (Seen, Option<usize>)>,
    /// dnsmasq with PXE forced on when the configuration forgot it (its intent).
    intent: BTreeMap<Client, (Seen, Option<usize>)>,
    wants: BTreeMap<Client, Want>,
    /// Menu items dnsmasq offers each client (more than one: a real menu).
    menus: BTreeMap<Client, usize>,
    ignored: BTreeSet<Client>,
    dhcp_on: bool,
}

fn seen_kindling(
    cfg: &CheckedConfig,
    c: &Client,
    server: Ipv4Addr,
    mask: Ipv4Addr,
    iface: &str,
) -> Seen {
    let local = [(server, mask)];
    let ctx = Context {
        iface,
        server_ip: server,
        port: ListenPort::Dhcp,
        source: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        local: &local,
    };
    let pkt = probe::request_bytes(c, 0x4b1d_0001, DISCOVER, Ipv4Addr::UNSPECIFIED, None);
    let Decision::Reply(r) = decide(cfg, &ctx, &pkt).decision else {
        return Seen::SILENT;
    };
    let Some(offer) = probe::decode_reply(&r.packet) else {
        return Seen::SILENT;
    };
    let boot = match probe::after_offer(&offer) {
        Step::Done(b) => b,
        Step::Ask4011 { server: to, item } => {
            let ack = if to == server {
                let lease = lease_for(server, mask);
                let ctx = Context {
                    port: ListenPort::Pxe,
                    source: SocketAddrV4::new(lease, 68),
                    ..ctx
                };
                let pkt = probe::request_bytes(c, 0x4b1d_0002, REQUEST, lease, item);
                match decide(cfg, &ctx, &pkt).decision {
                    Decision::Reply(r) => probe::decode_reply(&r.packet),
                    Decision::Ignore(_) => None,
                }
            } else {
                None
            };
            probe::after_ack(to, ack.as_ref())
        }
    };
    Seen {
        offer: Some((offer.siaddr, offer.opt43.is_some())),
        boot,
    }
}

impl<'a> Tr<'a> {
    fn sim(&self, force_pxe: bool) -> Sim<'a> {
        Sim {
            conf: self.conf,
            server: self.server,
            mask: self.mask,
            iface: self.iface.clone(),
            force_pxe,
        }
    }

    fn expand(&self, t: &str) -> String {
        t.replace("{server_ip}", &self.server.to_string())
            .replace("{http_port}", &self.http_port.to_string())
    }

    /// The Kindling URL template for a URL dnsmasq gives iPXE.
    fn url_template(&self, u: &str) -> String {
        let fixed = fix_url(u);
        let u = fixed.as_str();
        if !self.opts.keep_netboot_xyz && is_netboot_xyz(u) {
            return MENU_URL.into();
        }
        if let Some((scheme, host, port, path)) = split_url(u)
            && host.parse::<Ipv4Addr>().ok() == Some(self.server)
        {
            if scheme == "http" && port == self.http_port {
                return format!("http://{{server_ip}}:{{http_port}}{path}");
            }
            if scheme == "tftp" && port == 69 {
                return format!("tftp://{{server_ip}}{path}");
            }
        }
        u.to_string()
    }

    /// dnsmasq shows this client a menu to choose from (several items and a prompt); the
    /// first item is what it boots when nobody chooses.
    fn real_menu(&self, c: &Client) -> bool {
        self.menus.get(c).copied().unwrap_or(0) > 1 && !self.conf.pxe_prompts.is_empty()
    }

    fn want_of(&self, c: &Client, seen: &Seen, default: Option<&Want>) -> Want {
        if self.ignored.contains(c) {
            return Want::Ignore;
        }
        let nothing = || match default {
            // A machine dnsmasq leaves out while it boots the others: keep it out.
            Some(w) if !matches!(w, Want::Any | Want::Ignore) => Want::Ignore,
            _ => Want::Any,
        };
        if seen.offer.is_none() {
            return nothing();
        }
        // A real PXE menu (several items): not supported yet (issue 19); Kindling keeps
        // handing out the iPXE binary rather than guessing the operator's choice.
        if self.real_menu(c) {
            return Want::Any;
        }
        match (&seen.boot, c.kind) {
            (Boot::LocalBoot, _) => Want::LocalBoot,
            (Boot::Nothing, _) => nothing(),
            (Boot::File { server, file }, k) if k.is_ipxe() => {
                if is_url(file) {
                    Want::Url(self.url_template(file))
                } else if IPXE_BINARIES.contains(&file.as_str()) || *server != self.server {
                    Want::Any
                } else {
                    Want::Url(format!("tftp://{{server_ip}}/{file}"))
                }
            }
            (Boot::File { file, .. }, Kind::Http) => Want::HttpFile(file.clone()),
            (Boot::File { server, file }, _) => {
                if *server == self.server && !is_url(file) {
                    Want::Binary(file.clone())
                } else {
                    Want::Any
                }
            }
        }
    }

    fn satisfied(&self, want: &Want, c: &Client, k: &Seen) -> bool {
        match want {
            Want::Any => true,
            Want::Ignore => k.offer.is_none(),
            Want::LocalBoot => {
                if c.kind == Kind::Bios {
                    k.boot == Boot::LocalBoot
                } else {
                    k.offer.is_none()
                }
            }
            Want::Binary(f) => {
                k.boot
                    == Boot::File {
                        server: self.server,
                        file: f.clone(),
                    }
            }
            Want::Url(t) => k.boot == Boot::file(self.server, &self.expand(t)),
            Want::HttpFile(u) => k.boot == Boot::file(self.server, u),
        }
    }

    fn checked(&self, base: &DhcpConfig, rules: &[Planned]) -> Option<CheckedConfig> {
        let mut cfg = base.clone();
        cfg.rules = rules.iter().map(|p| p.rule.clone()).collect();
        cfg.validate().ok()
    }

    /// Clients not getting what they want under these rules.
    fn score(&self, base: &DhcpConfig, rules: &[Planned]) -> usize {
        let Some(cfg) = self.checked(base, rules) else {
            return usize::MAX;
        };
        self.clients
            .iter()
            .filter(|c| {
                let k = seen_kindling(&cfg, c, self.server, self.mask, &self.iface);
                !self.satisfied(&self.wants[c], c, &k)
            })
            .count()
    }

    fn global_for(&self, base: &DhcpConfig, kind: Kind) -> Option<String> {
        match kind {
            Kind::Bios => Some(base.bios_binary.clone()),
            Kind::Uefi | Kind::UefiBc => Some(base.efi_binary.clone()),
            Kind::Arm64 => base.arm64_binary.clone(),
            _ => None,
        }
    }

    /// Rules for one group, placed in front of `tail`.
    fn group_rules(&self, g: &Group, base: &DhcpConfig, tail: &[Planned]) -> Vec<Planned> {
        let Some(cfg) = self.checked(base, tail) else {
            return Vec::new();
        };
        let mac = g.pattern.map(|p| mac_text(&p));
        let mut ipxe_rules: Vec<Planned> = Vec::new();
        let mut fw_rules: Vec<Planned> = Vec::new();
        for kind in Kind::ALL {
            let c = Client { kind, mac: g.mac };
            let want = &self.wants[&c];
            let k = seen_kindling(&cfg, &c, self.server, self.mask, &self.iface);
            if self.satisfied(want, &c, &k) {
                continue;
            }
            let (target, url) = match want {
                Want::Url(t) if *t == base.script_url => (Some(TargetKind::Script), None),
                Want::Url(t) => (None, Some(t.clone())),
                Want::Binary(f) if Some(f) == self.global_for(base, kind).as_ref() => {
                    (Some(TargetKind::Script), None)
                }
                Want::LocalBoot => (Some(TargetKind::LocalBoot), None),
                Want::Ignore => (Some(TargetKind::Ignore), None),
                _ => continue,
            };
            let arches = if kind == Kind::UefiIpxe {
                vec![7, 9]
            } else {
                vec![kind.arch()]
            };
            let p = Planned {
                rule: RuleConfig {
                    mac: mac.clone(),
                    arch: arch_spec(&arches),
                    user_class: kind.is_ipxe().then(|| "iPXE".to_string()),
                    target,
                    url,
                    ..Default::default()
                },
                lines: self.intent[&c]
                    .1
                    .into_iter()
                    .chain(g.lines.iter().copied())
                    .collect(),
                clients: vec![c],
            };
            if kind.is_ipxe() {
                ipxe_rules.push(p);
            } else {
                fw_rules.push(p);
            }
        }
        // Keep iPXE out of firmware rules that would stop it.
        for f in &fw_rules {
            if !matches!(
                f.rule.target,
                Some(TargetKind::Ignore | TargetKind::LocalBoot)
            ) {
                continue;
            }
            for a in arches_of(&f.rule.arch) {
                let kind = match a {
                    0 => Kind::BiosIpxe,
                    7 | 9 => Kind::UefiIpxe,
                    _ => continue,
                };
                let c = Client { kind, mac: g.mac };
                if ipxe_rules.iter().any(|r| r.clients.contains(&c)) {
                    continue;
                }
                let (target, url) = match &self.wants[&c] {
                    Want::Url(t) => (None, Some(t.clone())),
                    Want::Ignore => (Some(TargetKind::Ignore), None),
                    Want::LocalBoot => (Some(TargetKind::LocalBoot), None),
                    _ => (Some(TargetKind::Script), None),
                };
                ipxe_rules.push(Planned {
                    rule: RuleConfig {
                        mac: mac.clone(),
                        arch: arch_spec(&[a]),
                        user_class: Some("iPXE".into()),
                        target,
                        url,
                        ..Default::default()
                    },
                    lines: g.lines.iter().copied().collect(),
                    clients: vec![c],
                });
            }
        }
        let mut rules = merge(ipxe_rules);
        rules.extend(merge(fw_rules));
        // Simplify while no client loses what it wants.
        let full = |r: &[Planned]| -> Vec<Planned> {
            let mut v = r.to_vec();
            v.extend_from_slice(tail);
            v
        };
        let mut best = self.score(base, &full(&rules));
        for i in 0..rules.len() {
            for step in 0..2 {
                let mut trial = rules.clone();
                match step {
                    0 if trial[i].rule.arch.is_some() => trial[i].rule.arch = None,
                    1 if trial[i].rule.user_class.is_some() => trial[i].rule.user_class = None,
                    _ => continue,
                }
                let s = self.score(base, &full(&trial));
                if s <= best {
                    best = s;
                    rules = trial;
                }
            }
        }
        let mut i = 0;
        while i < rules.len() {
            let mut trial = rules.clone();
            trial.remove(i);
            let s = self.score(base, &full(&trial));
            if s <= best {
                best = s;
                rules = trial;
            } else {
                i += 1;
            }
        }
        rules
    }

    fn rule_name(&self, p: &Planned, g: &Group, used: &mut BTreeSet<String>) -> String {
        let from_line = p.clients.iter().find_map(|c| {
            let l = self.intent[c].1?;
            let conds = self
                .conf
                .pxe_services
                .iter()
                .find(|s| s.line == l)
                .map(|s| s.conds.clone())
                .or_else(|| {
                    self.conf
                        .boots
                        .iter()
                        .find(|b| b.line == l)
                        .map(|b| b.conds.clone())
                })?;
            conds
                .into_iter()
                .find(|c| !c.negated && c.tag != "ipxe" && c.tag != self.iface)
                .map(|c| c.tag)
        });
        let base = from_line
            .or_else(|| g.tag.clone())
            .or_else(|| {
                g.pattern
                    .map(|p| format!("mac-{}", mac_text(&p).replace(['*', ':'], "")))
            })
            .unwrap_or_else(|| {
                let kinds: Vec<&str> = p.clients.iter().map(|c| c.kind.name()).collect();
                kinds.join("-")
            });
        let mut name = base.clone();
        let mut n = 2;
        while used.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        used.insert(name.clone());
        name
    }
}

/// Rules of one kind of target merged: one rule per (user class, target, url) with the
/// union of the architectures.
fn merge(rules: Vec<Planned>) -> Vec<Planned> {
    let mut out: Vec<Planned> = Vec::new();
    for r in rules {
        if let Some(o) = out.iter_mut().find(|o| {
            o.rule.user_class == r.rule.user_class
                && o.rule.target == r.rule.target
                && o.rule.url == r.rule.url
                && o.rule.mac == r.rule.mac
        }) {
            let mut a = arches_of(&o.rule.arch);
            for x in arches_of(&r.rule.arch) {
                if !a.contains(&x) {
                    a.push(x);
                }
            }
            o.rule.arch = arch_spec(&a);
            o.lines.extend(r.lines);
            o.clients.extend(r.clients);
        } else {
            out.push(r);
        }
    }
    out
}

/// Where the server is: an address the configuration names in a range's subnet, else the
/// range's own address.
fn guess_server(conf: &Conf, explicit: Option<Ipv4Addr>) -> (Ipv4Addr, Ipv4Addr, String) {
    let range_mask = |r: &parse::Range| r.netmask.unwrap_or(Ipv4Addr::new(255, 255, 255, 0));
    let mut ranges: Vec<&parse::Range> = conf.ranges.iter().filter(|r| r.proxy).collect();
    ranges.extend(conf.ranges.iter().filter(|r| !r.proxy));
    if let Some(ip) = explicit {
        let mask = ranges
            .iter()
            .find(|r| same_net(ip, r.start, range_mask(r)))
            .map(|r| range_mask(r))
            .unwrap_or(Ipv4Addr::new(255, 255, 255, 0));
        return (ip, mask, "--server-ip".into());
    }
    let mut named: Vec<(Ipv4Addr, usize)> = Vec::new();
    let host_of = |u: &str| split_url(u).and_then(|(_, h, _, _)| h.parse::<Ipv4Addr>().ok());
    for s in &conf.pxe_services {
        if let Some(ip) = s.server {
            named.push((ip, s.line));
        }
        if let Some(ip) = s.basename.as_deref().and_then(host_of) {
            named.push((ip, s.line));
        }
    }
    for b in &conf.boots {
        if let Some(ip) = host_of(&b.file) {
            named.push((ip, b.line));
        }
        if let Some(ip) = b.server {
            named.push((ip, b.line));
        }
    }
    named.sort_by_key(|(_, l)| *l);
    for (ip, line) in &named {
        if let Some(r) = ranges
            .iter()
            .find(|r| same_net(*ip, r.start, range_mask(r)))
        {
            return (*ip, range_mask(r), format!("named in dnsmasq line {line}"));
        }
    }
    if let Some(r) = ranges.first() {
        let m = range_mask(r);
        let net = u32::from(r.start) & u32::from(m);
        let ip = if r.proxy && u32::from(r.start) != net {
            r.start
        } else {
            Ipv4Addr::from(net | 1)
        };
        return (ip, m, format!("assumed from dnsmasq line {}", r.line));
    }
    (
        Ipv4Addr::new(192, 168, 0, 1),
        Ipv4Addr::new(255, 255, 255, 0),
        "assumed (no dhcp-range)".into(),
    )
}

/// The HTTP port of "this server" (where matchbox ran and Kindling will serve).
fn guess_http_port(conf: &Conf, server: Ipv4Addr) -> u16 {
    let mut urls: Vec<&str> = Vec::new();
    urls.extend(
        conf.pxe_services
            .iter()
            .filter_map(|s| s.basename.as_deref()),
    );
    urls.extend(conf.boots.iter().map(|b| b.file.as_str()));
    let ours: Vec<(u16, String)> = urls
        .iter()
        .filter(|u| !is_netboot_xyz(u))
        .filter_map(|u| split_url(u))
        .filter(|(s, h, _, _)| s == "http" && h.parse::<Ipv4Addr>().ok() == Some(server))
        .map(|(_, _, p, path)| (p, path))
        .collect();
    ours.iter()
        .find(|(_, p)| p == "/boot.ipxe")
        .or_else(|| ours.first())
        .map(|(p, _)| *p)
        .unwrap_or(8080)
}

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

/// Translates a dnsmasq configuration. Never panics; lines it cannot read become comments
/// and warnings.
pub fn translate(text: &str, opts: &Options) -> Output {
    let conf = parse::parse(text);
    let mut warnings: Vec<String> = conf
        .malformed
        .iter()
        .map(|(no, e)| {
            let t = conf.line(*no).map(|l| l.text.clone()).unwrap_or_default();
            format!("line {no}: {t}: {e} (left out, with a comment)")
        })
        .collect();
    let (server, mask, server_from) = guess_server(&conf, opts.server_ip);
    let excluded: Vec<String> = conf
        .lines
        .iter()
        .filter(|l| l.key == "except-interface" || l.key == "no-dhcp-interface")
        .flat_map(|l| l.args.clone())
        .filter(|a| !a.is_empty())
        .collect();
    let named_ifaces: Vec<String> = conf
        .lines
        .iter()
        .filter(|l| l.key == "interface")
        .flat_map(|l| l.args.clone())
        .filter(|a| !a.is_empty())
        .collect();
    let is_excluded = |n: &str| {
        excluded
            .iter()
            .chain(["virbr*".to_string(), "docker*".to_string()].iter())
            .any(|p| kindling_dhcp::config::NamePattern::new(p).matches(n))
    };
    let iface = named_ifaces
        .iter()
        .find(|n| !n.contains('*') && n.len() <= 15)
        .cloned()
        .or_else(|| {
            ["eth0", "lan0", "net0"]
                .into_iter()
                .find(|n| !is_excluded(n))
                .map(String::from)
        })
        .unwrap_or_else(|| "eth0".into());
    let http_port = guess_http_port(&conf, server);

    // Groups: the default MAC, then each MAC pattern named by dhcp-mac or dhcp-host.
    let mut groups = vec![Group {
        pattern: None,
        mac: DEFAULT_MAC,
        tag: None,
        lines: Vec::new(),
    }];
    let mut add_group = |p: MacPattern, tag: Option<String>, line: usize| {
        if let Some(g) = groups.iter_mut().find(|g| g.pattern == Some(p)) {
            g.lines.push(line);
            if g.tag.is_none() {
                g.tag = tag;
            }
            return;
        }
        let mut mac = DEFAULT_MAC;
        for (i, o) in p.iter().enumerate() {
            if let Some(b) = o {
                mac[i] = *b;
            } else {
                mac[i] = 0xa5 ^ (i as u8);
            }
        }
        groups.push(Group {
            pattern: Some(p),
            mac,
            tag,
            lines: vec![line],
        });
    };
    for m in &conf.macs {
        add_group(m.pattern, Some(m.tag.clone()), m.line);
    }
    for h in &conf.hosts {
        for p in &h.macs {
            add_group(*p, h.sets.first().cloned(), h.line);
        }
    }
    let clients: Vec<Client> = groups
        .iter()
        .flat_map(|g| Kind::ALL.map(|kind| Client { kind, mac: g.mac }))
        .collect();

    let dhcp_on = !conf.ranges.is_empty();
    let mut tr = Tr {
        conf: &conf,
        opts,
        server,
        mask,
        iface,
        server_from,
        http_port,
        groups,
        clients,
        real: BTreeMap::new(),
        intent: BTreeMap::new(),
        wants: BTreeMap::new(),
        menus: BTreeMap::new(),
        ignored: BTreeSet::new(),
        dhcp_on,
    };
    let forgot_pxe =
        !conf.enable_pxe && conf.ranges.iter().any(|r| r.proxy) && !conf.boots.is_empty();
    {
        let real = tr.sim(false);
        let intent = tr.sim(forgot_pxe);
        for c in &tr.clients {
            tr.real.insert(*c, real.seen(c));
            tr.intent.insert(*c, intent.seen(c));
            let items = intent
                .offer(c)
                .and_then(|o| o.reply.opt43)
                .map(|o| probe::menu_items(&o).len())
                .unwrap_or(0);
            tr.menus.insert(*c, items);
            let pkt = probe::request_bytes(c, 1, DISCOVER, Ipv4Addr::UNSPECIFIED, None);
            let t = intent.tags(c, &pkt);
            if conf
                .ignores
                .iter()
                .any(|i| super::sim::match_netid(&i.conds, &t.tags, false))
            {
                tr.ignored.insert(*c);
            }
        }
    }
    // Wants: the default group first (others compare with it).
    for kind in Kind::ALL {
        let c = Client {
            kind,
            mac: DEFAULT_MAC,
        };
        let w = tr.want_of(&c, &tr.intent[&c].0.clone(), None);
        tr.wants.insert(c, w);
    }
    for c in tr.clients.clone() {
        if c.mac == DEFAULT_MAC {
            continue;
        }
        let d = tr.wants[&Client {
            kind: c.kind,
            mac: DEFAULT_MAC,
        }]
            .clone();
        let w = tr.want_of(&c, &tr.intent[&c].0.clone(), Some(&d));
        tr.wants.insert(c, w);
    }

    // The [dhcp] table.
    let mut base = DhcpConfig::default();
    let mut notes: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut fates: BTreeMap<usize, Fate> = BTreeMap::new();
    let line_ref = |l: Option<usize>| l.map(|l| format!("line {l}")).unwrap_or_default();
    if dhcp_on {
        base.enabled = true;
        let mut ifs = Vec::new();
        let mut from = Vec::new();
        if named_ifaces.is_empty() {
            for r in &conf.ranges {
                let v = match r.netmask {
                    Some(m) => {
                        let net = Ipv4Addr::from(u32::from(r.start) & u32::from(m));
                        format!("{net}/{}", mask_prefix(m))
                    }
                    None => r.start.to_string(),
                };
                if !ifs.contains(&v) {
                    ifs.push(v);
                }
                from.push(r.line);
            }
        } else {
            ifs = named_ifaces.clone();
            from.extend(
                conf.lines
                    .iter()
                    .filter(|l| l.key == "interface")
                    .map(|l| l.no),
            );
        }
        // Only names Kindling accepts (an over-long name would make the file invalid).
        ifs.retain(|n| {
            let t = DhcpConfig {
                interfaces: vec![n.clone()],
                exclude_interfaces: Vec::new(),
                ..DhcpConfig::default()
            };
            t.validate().is_ok()
        });
        if ifs.is_empty() {
            ifs = conf.ranges.iter().map(|r| r.start.to_string()).collect();
            ifs.dedup();
        }
        base.interfaces = ifs;
        notes.insert(
            "interfaces",
            format!(
                "{} {}",
                if from.len() == 1 { "line" } else { "lines" },
                from.iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        if !excluded.is_empty() {
            base.exclude_interfaces = excluded
                .iter()
                .filter(|n| {
                    let t = DhcpConfig {
                        exclude_interfaces: vec![(*n).clone()],
                        ..DhcpConfig::default()
                    };
                    t.validate().is_ok()
                })
                .cloned()
                .collect();
            let ls: Vec<String> = conf
                .lines
                .iter()
                .filter(|l| l.key == "except-interface" || l.key == "no-dhcp-interface")
                .map(|l| l.no.to_string())
                .collect();
            notes.insert(
                "exclude_interfaces",
                format!(
                    "line {} (replaces Kindling's default [\"virbr*\", \"docker*\"])",
                    ls.join(", ")
                ),
            );
        } else {
            let clash: Vec<&String> = base
                .interfaces
                .iter()
                .filter(|n| {
                    !n.contains('*')
                        && base
                            .exclude_interfaces
                            .iter()
                            .any(|p| kindling_dhcp::config::NamePattern::new(p).matches(n))
                })
                .collect();
            if !clash.is_empty() {
                base.exclude_interfaces = Vec::new();
                notes.insert(
                    "exclude_interfaces",
                    "Kindling's default would exclude an interface dnsmasq serves".into(),
                );
            }
        }
        // Globals from what the default MAC's clients want.
        let d = |k: Kind| {
            tr.wants[&Client {
                kind: k,
                mac: DEFAULT_MAC,
            }]
                .clone()
        };
        let dl = |k: Kind| {
            tr.intent[&Client {
                kind: k,
                mac: DEFAULT_MAC,
            }]
                .1
        };
        if let Want::Binary(f) = d(Kind::Bios) {
            let mut t = base.clone();
            t.bios_binary = f.clone();
            if t.validate().is_ok() {
                base.bios_binary = f;
                notes.insert("bios_binary", line_ref(dl(Kind::Bios)));
            }
        }
        for k in [Kind::Uefi, Kind::UefiBc] {
            if let Want::Binary(f) = d(k) {
                let mut t = base.clone();
                t.efi_binary = f.clone();
                if t.validate().is_ok() {
                    base.efi_binary = f;
                    notes.insert("efi_binary", line_ref(dl(k)));
                }
                break;
            }
        }
        if let Want::Binary(f) = d(Kind::Arm64) {
            let mut t = base.clone();
            t.arm64_binary = Some(f.clone());
            if t.validate().is_ok() {
                base.arm64_binary = Some(f);
                notes.insert("arm64_binary", line_ref(dl(Kind::Arm64)));
            }
        }
        if let Want::HttpFile(u) = d(Kind::Http) {
            let ours = format!("http://{}:{}/tftp/", server, http_port);
            let name = match u.strip_prefix(&ours) {
                Some(n) => Some((n.to_string(), true)),
                None => u
                    .rsplit('/')
                    .next()
                    .filter(|n| n.ends_with(".efi"))
                    .map(|n| (n.to_string(), false)),
            };
            if let Some((n, exact)) = name {
                let mut t = base.clone();
                t.http_boot_binary = n.clone();
                if t.validate().is_ok() {
                    base.http_boot_binary = n;
                    notes.insert(
                        "http_boot_binary",
                        if exact {
                            line_ref(dl(Kind::Http))
                        } else {
                            format!(
                                "{}: served as http://SERVER:PORT/tftp/<name>",
                                line_ref(dl(Kind::Http))
                            )
                        },
                    );
                }
            }
        }
        for k in [Kind::BiosIpxe, Kind::UefiIpxe] {
            if let Want::Url(t) = d(k) {
                if t != DEFAULT_SCRIPT_URL {
                    let mut c = base.clone();
                    c.script_url = t.clone();
                    if c.validate().is_ok() {
                        base.script_url = t.clone();
                    }
                }
                let netboot = t == MENU_URL && !tr.opts.keep_netboot_xyz;
                notes.insert(
                    "script_url",
                    format!(
                        "{}{}",
                        line_ref(dl(k)),
                        if netboot {
                            " (netboot.xyz -> Kindling's menu)"
                        } else {
                            ""
                        }
                    ),
                );
                break;
            }
        }
        if let Some(p) = conf.pxe_vendors.as_ref() {
            base.vendor_prefixes = p
                .iter()
                .filter(|v| *v != "PXEClient" && *v != "HTTPClient")
                .cloned()
                .collect();
        }
        if let Some(d) = conf.delays.iter().rev().find(|d| d.conds.is_empty()) {
            base.reply_delay_ms =
                (u64::from(d.secs) * 1000).min(kindling_dhcp::config::MAX_REPLY_DELAY_MS);
            notes.insert("reply_delay_ms", format!("line {}", d.line));
        }
    }

    // Whatever went into the table must be valid; if not (it should not happen), fall
    // back to the interfaces alone, then to no proxy DHCP.
    if let Err(e) = base.validate() {
        warnings.push(format!(
            "internal: the [dhcp] keys did not validate ({e}); Kindling's defaults kept"
        ));
        let mut fallback = DhcpConfig {
            enabled: base.enabled,
            interfaces: base.interfaces.clone(),
            exclude_interfaces: base.exclude_interfaces.clone(),
            ..DhcpConfig::default()
        };
        if fallback.validate().is_err() {
            fallback = DhcpConfig::default();
        }
        base = fallback;
    }
    let dhcp_on = base.enabled;
    tr.dhcp_on = dhcp_on;

    // Rules: the default group's, then each MAC group from the least specific to the most,
    // each in front of the ones before.
    let mut rules: Vec<Planned> = Vec::new();
    let mut names = BTreeSet::new();
    if dhcp_on {
        let mut order: Vec<usize> = (1..tr.groups.len()).collect();
        order.sort_by_key(|i| {
            let wild = tr.groups[*i]
                .pattern
                .map(|p| p.iter().filter(|o| o.is_none()).count())
                .unwrap_or(0);
            std::cmp::Reverse(wild)
        });
        let g0 = tr.groups[0].clone();
        let mut r0 = tr.group_rules(&g0, &base, &[]);
        for p in &mut r0 {
            p.rule.name = Some(tr.rule_name(p, &g0, &mut names));
        }
        rules = r0;
        for i in order {
            let g = tr.groups[i].clone();
            let mut rg = tr.group_rules(&g, &base, &rules);
            for p in &mut rg {
                p.rule.name = Some(tr.rule_name(p, &g, &mut names));
            }
            rg.extend(rules);
            rules = rg;
        }
    }
    let mut final_cfg = base.clone();
    final_cfg.rules = rules.iter().map(|p| p.rule.clone()).collect();
    let checked = match final_cfg.validate() {
        Ok(c) => Some(c),
        Err(e) => {
            warnings.push(format!(
                "internal: the rules did not validate ({e}); rules left out"
            ));
            final_cfg.rules.clear();
            rules.clear();
            final_cfg.validate().ok()
        }
    };

    // Differences, by comparing dnsmasq as configured with Kindling as translated.
    let mut diffs: BTreeMap<(Field, String, String, String), Vec<String>> = BTreeMap::new();
    let mut differing = BTreeSet::new();
    let mut kseen: BTreeMap<Client, Seen> = BTreeMap::new();
    if let Some(cfg) = &checked {
        for c in &tr.clients {
            let k = if dhcp_on {
                seen_kindling(cfg, c, tr.server, tr.mask, &tr.iface)
            } else {
                Seen::SILENT
            };
            let d = &tr.real[c].0;
            for (f, dv, kv) in probe::differences(d, &k) {
                let why = tr.reason(c, f, d, &k, &base, forgot_pxe);
                diffs.entry((f, dv, kv, why)).or_default().push(c.label());
                differing.insert(*c);
            }
            kseen.insert(*c, k);
        }
    }

    // Line by line.
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
        fates.insert(l.no, tr.fate(l, &rules, &base, &kseen, forgot_pxe));
    }

    // TFTP.
    let mut tftp = Block::default();
    let tftp_lines = |k: &str| {
        conf.lines
            .iter()
            .filter(|l| l.key == k)
            .collect::<Vec<&Line>>()
    };
    let enable = tftp_lines("enable-tftp");
    let hands_out_tftp = kseen
        .values()
        .any(|s| matches!(&s.boot, Boot::File { file, .. } if !is_url(file)));
    if let Some(l) = enable.first() {
        tftp.key("enabled", "true".into(), Some(format!("line {}", l.no)));
    } else if hands_out_tftp {
        tftp.key(
            "enabled",
            "true".into(),
            Some("Kindling names itself as next-server: it serves the boot files".into()),
        );
    }
    if let Some(l) = tftp_lines("tftp-root").last()
        && let Some(dir) = l.args.first().filter(|d| !d.is_empty())
    {
        tftp.key("root", string(dir), Some(format!("line {}", l.no)));
    }
    if let Some(l) = tftp_lines("tftp-no-blocksize").last() {
        tftp.key("max_blksize", "512".into(), Some(format!("line {}", l.no)));
    }
    if let Some(l) = tftp_lines("tftp-mtu").last()
        && let Some(m) = l
            .args
            .first()
            .and_then(|a| a.parse::<u32>().ok())
            .filter(|m| *m >= 68)
    {
        tftp.key("mtu", m.to_string(), Some(format!("line {}", l.no)));
    }
    if let Some(l) = tftp_lines("tftp-max").last()
        && let Some(m) = l
            .args
            .first()
            .and_then(|a| a.parse::<usize>().ok())
            .filter(|m| *m >= 1)
    {
        tftp.key(
            "max_transfers",
            m.to_string(),
            Some(format!("line {}", l.no)),
        );
    }
    if let Some(l) = tftp_lines("tftp-single-port").last() {
        tftp.key("single_port", "true".into(), Some(format!("line {}", l.no)));
    }

    // Render.
    let mut out = String::new();
    let src = if opts.source.is_empty() {
        "dnsmasq.conf"
    } else {
        opts.source.as_str()
    };
    out.push_str(&format!(
        "# kindling.toml written by `kindling migrate dnsmasq` from {}.\n",
        comment_text(src)
    ));
    out.push_str(
        "# Every line of the original is accounted for at the end (\"dnsmasq line N\").\n",
    );
    if dhcp_on {
        out.push_str("# The proxy DHCP below was checked against dnsmasq's own rules for each kind of client:\n");
        for k in Kind::ALL {
            out.push_str(&format!("#   {:<10} {}\n", k.name(), k.describe()));
        }
        out.push_str(
            "# with the MAC 0e:6b:69:6e:64:6c, and again with every MAC the configuration names.\n",
        );
        out.push_str(&format!(
            "# checked on interface {}, address {}/{} ({})\n",
            tr.iface,
            tr.server,
            mask_prefix(tr.mask),
            tr.server_from
        ));
        out.push_str(&format!(
            "# clients checked: {}\n",
            tr.clients
                .iter()
                .map(|c| c.label())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.push('\n');
    if http_port != 8080 && dhcp_on {
        out.push_str("[http]\n");
        let mut b = Block::default();
        b.key(
            "listen",
            string(&format!("0.0.0.0:{http_port}")),
            Some("the port of the boot URLs on this server".into()),
        );
        b.render(&mut out);
        out.push('\n');
    }
    if dhcp_on {
        out.push_str("[dhcp]\n");
        let mut b = Block::default();
        let d = DhcpConfig::default();
        b.key("enabled", "true".into(), None);
        b.key(
            "interfaces",
            strings(&base.interfaces),
            notes.get("interfaces").cloned(),
        );
        if base.exclude_interfaces != d.exclude_interfaces {
            b.key(
                "exclude_interfaces",
                strings(&base.exclude_interfaces),
                notes.get("exclude_interfaces").cloned(),
            );
        }
        let show = |b: &mut Block, k: &'static str, v: &str, dv: &str| {
            if v != dv || notes.contains_key(k) {
                let mut n = notes.get(k).cloned().unwrap_or_default();
                if v == dv {
                    n = if n.is_empty() {
                        "Kindling's default".into()
                    } else {
                        format!("{n} (Kindling's default)")
                    };
                }
                b.key(k, string(v), Some(n).filter(|n| !n.is_empty()));
            }
        };
        show(&mut b, "bios_binary", &base.bios_binary, &d.bios_binary);
        show(&mut b, "efi_binary", &base.efi_binary, &d.efi_binary);
        if let Some(a) = &base.arm64_binary {
            b.key(
                "arm64_binary",
                string(a),
                notes.get("arm64_binary").cloned(),
            );
        }
        show(
            &mut b,
            "http_boot_binary",
            &base.http_boot_binary,
            &d.http_boot_binary,
        );
        show(&mut b, "script_url", &base.script_url, &d.script_url);
        if !base.vendor_prefixes.is_empty() {
            b.key("vendor_prefixes", strings(&base.vendor_prefixes), None);
        }
        if base.reply_delay_ms != 0 {
            b.key(
                "reply_delay_ms",
                base.reply_delay_ms.to_string(),
                notes.get("reply_delay_ms").cloned(),
            );
        }
        b.render(&mut out);
        for p in &rules {
            out.push('\n');
            out.push_str("[[dhcp.rules]]\n");
            let mut b = Block::default();
            let r = &p.rule;
            if let Some(n) = &r.name {
                b.key("name", string(n), None);
            }
            if let Some(m) = &r.mac {
                b.key("mac", string(m), None);
            }
            if let Some(a) = &r.arch {
                let v = match a {
                    OneOrMany::One(x) => spec_text(x),
                    OneOrMany::Many(v) => format!(
                        "[{}]",
                        v.iter().map(spec_text).collect::<Vec<_>>().join(", ")
                    ),
                };
                b.key("arch", v, None);
            }
            if let Some(u) = &r.user_class {
                b.key("user_class", string(u), None);
            }
            if let Some(t) = r.target {
                let t = match t {
                    TargetKind::Script => "script",
                    TargetKind::Url => "url",
                    TargetKind::LocalBoot => "local_boot",
                    TargetKind::Ignore => "ignore",
                };
                b.key("target", string(t), None);
            }
            if let Some(u) = &r.url {
                let note = (u == MENU_URL && !opts.keep_netboot_xyz)
                    .then(|| "Kindling's menu (docs/menus.md) in place of netboot.xyz".to_string());
                b.key("url", string(u), note);
            }
            let ls: Vec<String> = p.lines.iter().map(|l| l.to_string()).collect();
            if !ls.is_empty() {
                out.push_str(&format!(
                    "# from dnsmasq line{} {}; for {}\n",
                    if ls.len() == 1 { "" } else { "s" },
                    ls.join(", "),
                    p.clients
                        .iter()
                        .map(|c| c.label())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            b.render(&mut out);
        }
        if rules
            .iter()
            .any(|p| p.rule.url.as_deref() == Some(MENU_URL))
            && !opts.keep_netboot_xyz
        {
            out.push_str(
                "# /menu.ipxe is Kindling's boot menu (docs/menus.md), replacing netboot.xyz. To choose the\n\
                 # entry a machine boots without asking: [[menu.machines]] mac = \"...\", entry = \"debian\".\n\
                 # To keep netboot.xyz instead: kindling migrate dnsmasq --keep-netboot-xyz.\n",
            );
        }
        out.push('\n');
    }
    if !tftp.is_empty() {
        out.push_str("[tftp]\n");
        tftp.render(&mut out);
        out.push('\n');
    }
    if let Some(l) = conf.lines.iter().find(|l| l.key == "log-dhcp") {
        out.push_str("[log]\n");
        let mut b = Block::default();
        b.key(
            "level",
            string("info,kindling_dhcp=debug"),
            Some(format!(
                "line {}; or: kindling serve --log info,kindling_dhcp=debug",
                l.no
            )),
        );
        b.render(&mut out);
        out.push('\n');
    }
    if dhcp_on {
        if diffs.is_empty() {
            out.push_str("# Differences from dnsmasq: none; every client checked gets the same answer from both.\n");
        } else {
            out.push_str("# Differences from dnsmasq (field: clients — dnsmasq; Kindling: why):\n");
            for ((f, dv, kv, why), labels) in &diffs {
                out.push_str(&format!(
                    "{DIFFERS}{}): {} — dnsmasq {}; Kindling {}: {}\n",
                    f.name(),
                    labels.join(", "),
                    comment_text(dv),
                    comment_text(kv),
                    comment_text(why)
                ));
            }
        }
        out.push('\n');
    }
    out.push_str("# Line by line:\n");
    for l in &conf.lines {
        let text = comment_text(&l.text);
        match fates.get(&l.no) {
            Some(Fate::NotTranslated(why)) => out.push_str(&format!(
                "# dnsmasq line {}: {} — not translated: {}\n",
                l.no,
                text,
                comment_text(why)
            )),
            Some(Fate::Done(what)) => out.push_str(&format!(
                "# dnsmasq line {}: {} — {}\n",
                l.no,
                text,
                comment_text(what)
            )),
            None => {}
        }
    }
    Output {
        toml: out,
        warnings,
        differences: differing.len(),
    }
}

fn spec_text(a: &ArchSpec) -> String {
    match a {
        ArchSpec::Number(n) => n.to_string(),
        ArchSpec::Name(s) => string(s),
    }
}

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
                if self.real_menu(c) {
                    return "dnsmasq offers a PXE boot menu (the first item is compared); PXE menus are not supported yet (issue 19): Kindling hands firmware the iPXE binary".into();
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
                Fate::Done(s)
            }
            "pxe-prompt" => not(
                "PXE menus and prompts are not supported yet (issue 19): Kindling hands firmware the iPXE binary; offer choices as an iPXE menu instead (e.g. /menu.ipxe)",
            ),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(text: &str) -> Output {
        translate(
            text,
            &Options {
                source: "test.conf".into(),
                ..Default::default()
            },
        )
    }

    fn parsed(o: &Output) -> crate::config::Config {
        let c: crate::config::Config =
            toml::from_str(&o.toml).unwrap_or_else(|e| panic!("{e}\n{}", o.toml));
        c.dhcp
            .validate()
            .unwrap_or_else(|e| panic!("{e}\n{}", o.toml));
        c.tftp.validate().unwrap();
        c
    }

    const SEED: &str = "except-interface=virbr0
dhcp-range=10.10.254.0,proxy
pxe-service=tag:#ipxe,x86PC,\"PXE chainload to iPXE\",undionly.kpxe
dhcp-userclass=set:ipxe,iPXE
dhcp-mac=set:netboot,02:1a:4a:16:01:9c
tag-if=set:netboot-xyz, tag:ipxe, tag:netboot
pxe-service=tag:netboot-xyz,x86PC,\"iPXE\",http://10.10.254.200:8081/menus/menu.ipxe
pxe-service=tag:ipxe,x86PC,\"iPXE\",http://10.10.254.200:8080/boot.ipxe
enable-tftp
tftp-root=/var/ftpd
log-queries
log-dhcp
";

    #[test]
    fn the_seed() {
        let o = tr(SEED);
        let c = parsed(&o);
        assert_eq!(c.dhcp.interfaces, vec!["10.10.254.0"]);
        assert_eq!(c.dhcp.exclude_interfaces, vec!["virbr0"]);
        assert_eq!(c.dhcp.bios_binary, "undionly.kpxe");
        assert_eq!(c.dhcp.script_url, DEFAULT_SCRIPT_URL);
        assert_eq!(c.dhcp.rules.len(), 1, "{}", o.toml);
        let r = &c.dhcp.rules[0];
        assert_eq!(r.name.as_deref(), Some("netboot-xyz"));
        assert_eq!(r.mac.as_deref(), Some("02:1a:4a:16:01:9c"));
        assert_eq!(r.url.as_deref(), Some(MENU_URL));
        assert!(c.tftp.enabled);
        assert_eq!(
            c.tftp.root.as_deref(),
            Some(std::path::Path::new("/var/ftpd"))
        );
        assert_eq!(c.log.level, "info,kindling_dhcp=debug");
        assert!(
            o.toml
                .contains("checked on interface eth0, address 10.10.254.200/24"),
            "{}",
            o.toml
        );
        assert!(
            o.toml
                .contains("# dnsmasq line 11: log-queries — not translated: DNS"),
            "{}",
            o.toml
        );
        let listed = probe::listed_differences(&o.toml);
        assert!(
            listed.contains(&(Field::Boot, "bios-ipxe@02-1a-4a-16-01-9c".into())),
            "{}",
            o.toml
        );
        assert!(
            listed.contains(&(Field::Siaddr, "bios".into())),
            "{}",
            o.toml
        );
        assert!(
            !listed
                .iter()
                .any(|(f, l)| *f == Field::Boot && (l == "bios" || l == "bios-ipxe")),
            "{}",
            o.toml
        );
        // Kept netboot.xyz: no boot difference left for that machine.
        let k = translate(
            SEED,
            &Options {
                keep_netboot_xyz: true,
                ..Default::default()
            },
        );
        let listed = probe::listed_differences(&k.toml);
        assert!(
            !listed
                .iter()
                .any(|(f, l)| *f == Field::Boot && l == "bios-ipxe@02-1a-4a-16-01-9c"),
            "{}",
            k.toml
        );
        assert!(k.toml.contains("http://10.10.254.200:8081/menus/menu.ipxe"));
    }

    #[test]
    fn matchbox_recipe_with_uefi() {
        let o = tr("dhcp-range=192.168.1.1,proxy,255.255.255.0
enable-tftp
tftp-root=/var/lib/tftpboot
dhcp-userclass=set:ipxe,iPXE
pxe-service=tag:#ipxe,x86PC,\"PXE chainload to iPXE\",undionly.kpxe
pxe-service=tag:ipxe,x86PC,\"iPXE\",http://matchbox.example.com:8080/boot.ipxe
pxe-service=tag:#ipxe,X86-64_EFI,\"PXE chainload to iPXE UEFI\",ipxe.efi
pxe-service=tag:ipxe,X86-64_EFI,\"iPXE UEFI\",http:///matchbox.example.com:8080/boot.ipxe
");
        let c = parsed(&o);
        assert_eq!(c.dhcp.interfaces, vec!["192.168.1.0/24"]);
        assert_eq!(c.dhcp.efi_binary, "ipxe.efi");
        assert_eq!(
            c.dhcp.script_url,
            "http://matchbox.example.com:8080/boot.ipxe"
        );
        // The typo'd UEFI iPXE URL is a listed difference, not a rule.
        assert!(c.dhcp.rules.is_empty(), "{}", o.toml);
        let listed = probe::listed_differences(&o.toml);
        assert!(
            listed.contains(&(Field::Boot, "uefi-ipxe".into())),
            "{}",
            o.toml
        );
    }

    #[test]
    fn ignore_unknown_machines_and_local_boot() {
        let o = tr("dhcp-range=10.0.0.0,proxy
dhcp-host=52:54:00:aa:bb:01,set:disk
dhcp-host=52:54:00:aa:bb:02
pxe-service=tag:disk,x86PC,\"Boot from local disk\"
pxe-service=tag:!disk,x86PC,\"iPXE\",undionly.kpxe
dhcp-ignore=tag:!known
");
        let c = parsed(&o);
        let targets: Vec<Option<TargetKind>> = c.dhcp.rules.iter().map(|r| r.target).collect();
        assert!(targets.contains(&Some(TargetKind::LocalBoot)), "{}", o.toml);
        assert!(targets.contains(&Some(TargetKind::Ignore)), "{}", o.toml);
        // The catch-all ignore comes last.
        let last = c.dhcp.rules.last().unwrap();
        assert_eq!(
            (last.mac.as_deref(), last.target),
            (None, Some(TargetKind::Ignore)),
            "{}",
            o.toml
        );
    }

    #[test]
    fn hostile_input_never_panics_and_stays_valid() {
        let inputs = [
            "",
            "=\n==\n,,,\n",
            "dhcp-range=",
            "dhcp-range=1.2.3.4",
            "dhcp-range=300.1.1.1,proxy",
            "pxe-service=tag:,x86PC,,",
            "dhcp-boot=tag:x,\"file with space\"\ndhcp-range=10.0.0.0,proxy\npxe-prompt=x",
            "dhcp-boot=http://10.0.0.1/\u{0}\ndhcp-range=10.0.0.0,proxy\npxe-service=x86PC,a,b",
            "interface=virbr0\ndhcp-range=10.0.0.0,proxy\npxe-service=x86PC,\"a\",undionly.kpxe",
            "interface=a-very-long-interface-name\ndhcp-range=10.0.0.0,proxy",
            "tag-if=set:a,tag:a*\ntag-if=set:b,tag:!a\ndhcp-range=10.0.0.0,proxy,255.0.0.0\npxe-service=0,x,y",
            "dhcp-mac=set:m,*:*:*:*:*:*\ndhcp-range=10.0.0.0,proxy\npxe-service=tag:m,x86PC,\"a\",undionly.kpxe",
            &format!(
                "dhcp-range=10.0.0.0,proxy\npxe-service=tag:ipxe,x86PC,\"a\",http://10.0.0.1/{}\ndhcp-userclass=set:ipxe,iPXE",
                "x".repeat(300)
            ),
            "dhcp-pxe-vendor=,,\ndhcp-reply-delay=999999\ndhcp-range=10.0.0.0,proxy\npxe-prompt=\"a\",7",
            "\"unterminated\n\u{feff}port=0\n\u{7}",
        ];
        for i in inputs {
            let o = tr(i);
            parsed(&o);
        }
    }
}
