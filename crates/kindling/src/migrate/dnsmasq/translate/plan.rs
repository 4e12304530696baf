//! dnsmasq's answers simulated for every client, what each client should get from Kindling,
//! and the `[[dhcp.rules]]` that give it (checked with Kindling's own decision core).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};

use kindling_dhcp::config::{RuleConfig, TargetKind};
use kindling_dhcp::{CheckedConfig, Context, Decision, DhcpConfig, ListenPort, decide};

use super::menu::{ClientMenu, MenuPlan};
use super::model::*;
use crate::migrate::dnsmasq::parse::{Conf, MacPattern, mac_text};
use crate::migrate::dnsmasq::sim::{Sim, lease_for, match_netid};
use crate::migrate::probe::{self, Boot, Client, DEFAULT_MAC, DISCOVER, Kind, REQUEST, Seen, Step};

pub(super) struct Tr<'a> {
    pub(super) conf: &'a Conf,
    pub(super) opts: &'a Options,
    pub(super) server: Ipv4Addr,
    pub(super) mask: Ipv4Addr,
    pub(super) iface: String,
    pub(super) server_from: String,
    pub(super) http_port: u16,
    pub(super) groups: Vec<Group>,
    pub(super) clients: Vec<Client>,
    /// dnsmasq as configured.
    pub(super) real: BTreeMap<Client, (Seen, Option<usize>)>,
    /// dnsmasq with PXE forced on when the configuration forgot it (its intent).
    pub(super) intent: BTreeMap<Client, (Seen, Option<usize>)>,
    pub(super) wants: BTreeMap<Client, Want>,
    /// The PXE menu dnsmasq's offer shows each client.
    pub(super) menus: BTreeMap<Client, ClientMenu>,
    /// dnsmasq's BIOS menu as `[dhcp.pxe_menu]`, when it shows one.
    pub(super) menu: Option<MenuPlan>,
    pub(super) ignored: BTreeSet<Client>,
    pub(super) dhcp_on: bool,
}

pub(super) fn seen_kindling(
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
        secure_boot: None,
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
    pub(super) fn sim(&self, force_pxe: bool) -> Sim<'a> {
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

    /// dnsmasq shows this client a menu to choose from; the first item is what it boots
    /// when nobody chooses. A ROM shows several items, or one with a countdown; iPXE (which
    /// boots a file in the offer first) is counted as shown a menu only with several items
    /// and a `pxe-prompt`, or when the BIOS menu is translated (Kindling gives iPXE its
    /// script then, rather than a rule for an item of a menu meant for ROMs).
    pub(super) fn real_menu(&self, c: &Client) -> bool {
        self.menus.get(c).is_some_and(|m| {
            if c.kind.is_ipxe() {
                m.lines.len() > 1
                    && (!self.conf.pxe_prompts.is_empty()
                        || self.menu.as_ref().is_some_and(|m| m.failed.is_none()))
            } else {
                m.visible
            }
        })
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
        // dnsmasq sends iPXE its PXE menu too; Kindling gives iPXE its script. BIOS
        // firmware wants the menu's first item (what it boots when nobody chooses).
        if c.kind.is_ipxe() && self.real_menu(c) {
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

    pub(super) fn satisfied(&self, want: &Want, c: &Client, k: &Seen) -> bool {
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
                    || (self.wants_menu(c, base) && !self.shows_menu(&cfg, c))
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
pub(super) fn merge(rules: Vec<Planned>) -> Vec<Planned> {
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

/// Groups: the default MAC, then each MAC pattern named by dhcp-mac or dhcp-host.
pub(super) fn groups_of(conf: &Conf) -> Vec<Group> {
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
    groups
}

impl Tr<'_> {
    /// dnsmasq as configured and as intended, for every client; then what each wants.
    pub(super) fn simulate(&mut self, forgot_pxe: bool) {
        let conf = self.conf;
        {
            let real = self.sim(false);
            let intent = self.sim(forgot_pxe);
            for c in &self.clients {
                self.real.insert(*c, real.seen(c));
                self.intent.insert(*c, intent.seen(c));
                let m = intent
                    .menu(c)
                    .map(|m| ClientMenu {
                        lines: m.services.iter().map(|s| s.line).collect(),
                        visible: m.visible(),
                    })
                    .unwrap_or_default();
                self.menus.insert(*c, m);
                let pkt = probe::request_bytes(c, 1, DISCOVER, Ipv4Addr::UNSPECIFIED, None);
                let t = intent.tags(c, &pkt);
                if conf
                    .ignores
                    .iter()
                    .any(|i| match_netid(&i.conds, &t.tags, false))
                {
                    self.ignored.insert(*c);
                }
            }
        }
        if self.dhcp_on {
            self.menu = self.plan_menu();
        }
        // Wants: the default group first (others compare with it).
        for kind in Kind::ALL {
            let c = Client {
                kind,
                mac: DEFAULT_MAC,
            };
            let w = self.want_of(&c, &self.intent[&c].0.clone(), None);
            self.wants.insert(c, w);
        }
        for c in self.clients.clone() {
            if c.mac == DEFAULT_MAC {
                continue;
            }
            let d = self.wants[&Client {
                kind: c.kind,
                mac: DEFAULT_MAC,
            }]
                .clone();
            let w = self.want_of(&c, &self.intent[&c].0.clone(), Some(&d));
            self.wants.insert(c, w);
        }
    }

    /// Rules: the default group's, then each MAC group from the least specific to the most,
    /// each in front of the ones before.
    pub(super) fn plan_rules(&self, base: &DhcpConfig) -> Vec<Planned> {
        let mut names = BTreeSet::new();
        let mut order: Vec<usize> = (1..self.groups.len()).collect();
        order.sort_by_key(|i| {
            let wild = self.groups[*i]
                .pattern
                .map(|p| p.iter().filter(|o| o.is_none()).count())
                .unwrap_or(0);
            std::cmp::Reverse(wild)
        });
        let g0 = self.groups[0].clone();
        let mut r0 = self.group_rules(&g0, base, &[]);
        for p in &mut r0 {
            p.rule.name = Some(self.rule_name(p, &g0, &mut names));
        }
        let mut rules = r0;
        for i in order {
            let g = self.groups[i].clone();
            let mut rg = self.group_rules(&g, base, &rules);
            for p in &mut rg {
                p.rule.name = Some(self.rule_name(p, &g, &mut names));
            }
            rg.extend(rules);
            rules = rg;
        }
        rules
    }
}
