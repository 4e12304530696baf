//! What dnsmasq 2.90 answers a PXE client, computed from the configuration model: the tag
//! rules (`dhcp-mac`, `dhcp-match`, `dhcp-vendorclass`, `dhcp-userclass`, `dhcp-host`,
//! `tag-if`, `dhcp-ignore`) and the proxy-DHCP replies of `rfc2131.c` (`pxe_opts`,
//! `pxe_uefi_workaround`, `find_boot`, the port-4011 boot-item path), plus the boot fields of
//! a full-DHCP offer. Written from dnsmasq's documented and observed behaviour (the netns
//! test compares it with the real dnsmasq); pure.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::parse::{ClassKind, Cond, Conf, MatchValue, PxePrompt, PxeService, mac_matches};
use crate::migrate::probe::{self, ACK, Boot, Client, DISCOVER, OFFER, REQUEST, Reply, Seen, Step};

/// A reply and the configuration line that chose its boot file, if any.
#[derive(Debug, Clone)]
pub struct SimReply {
    pub reply: Reply,
    pub line: Option<usize>,
}

/// The PXE menu dnsmasq's offer shows a BIOS client.
#[derive(Debug, Clone)]
pub struct ShownMenu<'a> {
    /// Its items, in order.
    pub services: Vec<&'a PxeService>,
    /// The `pxe-prompt` a ROM reads (`None`: dnsmasq's own "PXE").
    pub prompt: Option<&'a PxePrompt>,
    /// The prompt's timeout byte as dnsmasq sends it (without a prompt: 255 with a choice, 0
    /// with one item).
    pub timeout: u8,
}

impl ShownMenu<'_> {
    /// A ROM shows something to choose from: several items, or one with a countdown.
    pub fn visible(&self) -> bool {
        self.services.len() > 1 || (self.services.len() == 1 && self.timeout > 0)
    }
}

/// The simulated dnsmasq, as seen from one interface.
pub struct Sim<'a> {
    pub conf: &'a Conf,
    /// dnsmasq's address on the interface (context->local).
    pub server: Ipv4Addr,
    /// The interface's netmask.
    pub mask: Ipv4Addr,
    /// The interface name (dnsmasq sets it as a tag).
    pub iface: String,
    /// Pretend PXE is enabled (to read the intent of a configuration that dnsmasq ignores).
    pub force_pxe: bool,
}

fn same_net(a: Ipv4Addr, b: Ipv4Addr, mask: Ipv4Addr) -> bool {
    u32::from(a) & u32::from(mask) == u32::from(b) & u32::from(mask)
}

/// dnsmasq's `match_netid`.
pub fn match_netid(conds: &[Cond], pool: &[String], tag_not_needed: bool) -> bool {
    if conds.is_empty() {
        return tag_not_needed;
    }
    conds.iter().all(|c| pool.contains(&c.tag) != c.negated)
}

/// dnsmasq's `match_netid_wild` (tag-if): a trailing `*` matches a prefix.
fn match_netid_wild(conds: &[Cond], pool: &[String]) -> bool {
    conds.iter().all(|c| {
        let hit = match c.tag.strip_suffix('*') {
            Some(prefix) => pool.iter().any(|t| t.starts_with(prefix)),
            None => pool.contains(&c.tag),
        };
        hit != c.negated
    })
}

/// The options of a request, by code.
fn options(packet: &[u8]) -> BTreeMap<u8, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut i = 240;
    while i < packet.len() {
        let code = packet[i];
        if code == 255 {
            break;
        }
        if code == 0 {
            i += 1;
            continue;
        }
        let Some(&len) = packet.get(i + 1) else { break };
        let Some(d) = packet.get(i + 2..i + 2 + usize::from(len)) else {
            break;
        };
        out.entry(code).or_insert_with(|| d.to_vec());
        i += 2 + usize::from(len);
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// dnsmasq's `match_bytes`.
fn match_bytes(v: &MatchValue, data: &[u8]) -> bool {
    match v {
        MatchValue::Present => true,
        MatchValue::Text(t) => contains(data, t),
        MatchValue::Int(b) => {
            if b.len() > data.len() {
                return false;
            }
            let mut i = 0;
            while i + b.len() <= data.len() {
                if data[i..i + b.len()] == b[..] {
                    return true;
                }
                i += b.len();
            }
            false
        }
        MatchValue::Hex(b, mask) => {
            b.len() <= data.len()
                && b.iter()
                    .enumerate()
                    .all(|(i, x)| (i < 32 && mask & (1 << i) != 0) || data[i] == *x)
        }
    }
}

/// What the tag rules made of a client.
#[derive(Debug, Clone)]
pub struct Tags {
    /// Before tag-if (dnsmasq's `netid`).
    pub netid: Vec<String>,
    /// After tag-if (`tagif_netid`).
    pub tags: Vec<String>,
    /// A `dhcp-host` with `ignore` matched (honoured in full DHCP only).
    pub host_ignore: bool,
}

impl<'a> Sim<'a> {
    fn run_tag_if(&self, netid: &[String]) -> Vec<String> {
        let mut tags = netid.to_vec();
        for t in &self.conf.tag_ifs {
            if match_netid_wild(&t.conds, &tags) {
                for s in &t.sets {
                    tags.push(s.clone());
                }
            }
        }
        tags
    }

    /// The ranges dnsmasq would consider for this interface.
    fn ranges_here(&self) -> impl Iterator<Item = &super::parse::Range> {
        self.conf.ranges.iter().filter(|r| {
            let m = r.netmask.unwrap_or(self.mask);
            same_net(r.start, self.server, m)
        })
    }

    pub fn tags(&self, c: &Client, packet: &[u8]) -> Tags {
        let opts = options(packet);
        let mut netid = vec![self.iface.clone()];
        for m in &self.conf.macs {
            if mac_matches(&m.pattern, &c.mac) {
                netid.push(m.tag.clone());
            }
        }
        for m in &self.conf.matches {
            if let Some(d) = opts.get(&m.option)
                && match_bytes(&m.value, d)
            {
                netid.push(m.tag.clone());
            }
        }
        for cl in &self.conf.classes {
            let code = match cl.kind {
                ClassKind::Vendor => 60,
                ClassKind::User => 77,
            };
            if let Some(d) = opts.get(&code)
                && contains(d, &cl.needle)
            {
                netid.push(cl.tag.clone());
            }
        }
        // find_config: dnsmasq keeps dhcp-host lines newest first.
        let pre = self.run_tag_if(&netid);
        let mut host_ignore = false;
        for h in self.conf.hosts.iter().rev() {
            let in_context = h.addr.is_none_or(|a| {
                self.ranges_here()
                    .any(|r| same_net(a, r.start, r.netmask.unwrap_or(self.mask)))
            });
            if h.macs.iter().any(|p| mac_matches(p, &c.mac))
                && in_context
                && match_netid(&h.filter, &pre, true)
            {
                netid.push("known".into());
                netid.extend(h.sets.iter().cloned());
                host_ignore = h.ignore;
                break;
            }
        }
        let tags = self.run_tag_if(&netid);
        Tags {
            netid,
            tags,
            host_ignore,
        }
    }

    fn is_pxe_client(&self, packet: &[u8]) -> bool {
        let opts = options(packet);
        let Some(v) = opts.get(&60) else { return false };
        let default = ["PXEClient".to_string()];
        let vendors = self.conf.pxe_vendors.as_deref().unwrap_or(&default);
        vendors.iter().any(|p| v.starts_with(p.as_bytes()))
    }

    fn ignored(&self, tags: &[String]) -> bool {
        self.conf
            .ignores
            .iter()
            .any(|i| match_netid(&i.conds, tags, false))
    }

    /// `find_boot`: the newest tagged `dhcp-boot` whose tags all match, else the newest
    /// untagged one.
    fn find_boot(&self, tags: &[String]) -> Option<&super::parse::DhcpBoot> {
        let boots = &self.conf.boots;
        boots
            .iter()
            .rev()
            .find(|b| match_netid(&b.conds, tags, false))
            .or_else(|| boots.iter().rev().find(|b| b.conds.is_empty()))
    }

    fn boot_server(&self, b: &super::parse::DhcpBoot) -> Option<Ipv4Addr> {
        match (b.server, &b.server_name) {
            (Some(ip), _) if !ip.is_unspecified() => Some(ip),
            (_, Some(_)) => Some(Ipv4Addr::UNSPECIFIED), // a name dnsmasq cannot resolve here
            _ => None,
        }
    }

    /// `pxe_uefi_workaround`: with exactly one matching service with a file for this
    /// architecture, (siaddr, file, line).
    fn uefi_workaround(&self, arch: u16, tags: &[String]) -> Option<(Ipv4Addr, String, usize)> {
        if arch < 6 {
            return None;
        }
        let mut found =
            self.conf.pxe_services.iter().filter(|s| {
                s.csa == arch && s.basename.is_some() && match_netid(&s.conds, tags, true)
            });
        let s = found.next()?;
        if found.next().is_some() {
            return None;
        }
        let siaddr = if s.server_name.is_some() {
            Ipv4Addr::UNSPECIFIED
        } else {
            s.server.unwrap_or(self.server)
        };
        let b = s.basename.clone().unwrap_or_default();
        let file = if b.contains('.') { b } else { format!("{b}.0") };
        Some((siaddr, file, s.line))
    }

    /// The services of `pxe_opts`' menu for this architecture and these tags, in order, as
    /// many as fit in dnsmasq's 253 bytes.
    pub fn menu_services(&self, arch: u16, tags: &[String]) -> Vec<&'a PxeService> {
        let mut out = Vec::new();
        let mut len = 0;
        for s in &self.conf.pxe_services {
            if s.csa != arch || !match_netid(&s.conds, tags, true) {
                continue;
            }
            if len + s.menu.len() + 3 >= 253 {
                break;
            }
            len += s.menu.len() + 3;
            out.push(s);
        }
        out
    }

    /// The `pxe-prompt` lines whose tags match, newest first (dnsmasq keeps its options
    /// newest first and sends every matching one; a ROM reads the first).
    pub fn prompts(&self, tags: &[String]) -> Vec<&'a PxePrompt> {
        self.conf
            .pxe_prompts
            .iter()
            .rev()
            .filter(|p| match_netid(&p.conds, tags, true))
            .collect()
    }

    fn push_prompts(&self, out: &mut Vec<u8>, tags: &[String]) {
        for p in self.prompts(tags) {
            let text = p.text.as_bytes();
            let text = &text[..text.len().min(254)];
            out.push(10);
            out.push(text.len() as u8 + 1);
            out.push(p.dnsmasq_timeout());
            out.extend_from_slice(text);
        }
    }

    /// `pxe_opts`: option 43 with the menu of the services for this architecture, then the
    /// matching `pxe-prompt`s (without one, dnsmasq's own `{0 or 255, "PXE"}`).
    fn pxe_opts(&self, arch: u16, tags: &[String]) -> (Vec<u8>, Option<usize>) {
        let mut dc = 3u8;
        let mut menu = Vec::new();
        let mut servers = Vec::new();
        let services = self.menu_services(arch, tags);
        let items = services.len();
        let first_line = services.first().map(|s| s.line);
        for s in services {
            let text = s.menu.as_bytes();
            menu.extend_from_slice(&s.boot_type.to_be_bytes());
            menu.push(text.len() as u8);
            menu.extend_from_slice(text);
            let server = if s.basename.is_some() {
                self.server
            } else if s.server_name.is_some() {
                Ipv4Addr::UNSPECIFIED
            } else {
                s.server.unwrap_or(Ipv4Addr::UNSPECIFIED)
            };
            if !server.is_unspecified() {
                servers.extend_from_slice(&s.boot_type.to_be_bytes());
                servers.push(1);
                servers.extend_from_slice(&server.octets());
            } else if s.boot_type != 0 {
                dc = 2;
            }
        }
        if items == 0 {
            dc = 8;
        }
        let prompted = !self.prompts(tags).is_empty();
        let mut out = vec![6, 1, dc];
        if !prompted {
            out.extend_from_slice(&[10, 4, if items > 1 { 255 } else { 0 }, b'P', b'X', b'E']);
        }
        if items > 0 {
            if !servers.is_empty() {
                out.push(8);
                out.push(servers.len() as u8);
                out.extend_from_slice(&servers);
            }
            out.push(9);
            out.push(menu.len() as u8);
            out.extend_from_slice(&menu);
        }
        self.push_prompts(&mut out, tags);
        out.push(255);
        (out, first_line)
    }

    /// The tags of a proxy answer (the client's, with the proxy range's `set:` tag), or
    /// `None` when no proxy range here serves the client.
    fn proxy_tags(&self, t: &Tags) -> Option<Vec<String>> {
        let range = self
            .ranges_here()
            .find(|r| r.proxy && match_netid(&r.filter, &t.tags, true))?;
        Some(match &range.set {
            Some(s) => {
                let mut n = t.netid.clone();
                n.push(s.clone());
                self.run_tag_if(&n)
            }
            None => t.tags.clone(),
        })
    }

    /// The PXE menu of the port-67 offer to this client (BIOS, arch below 6): its services
    /// and the prompt a ROM reads. `None` without a menu.
    pub fn menu(&self, c: &Client) -> Option<ShownMenu<'a>> {
        let offer = self.offer(c)?;
        if probe::menu_items(offer.reply.opt43.as_deref()?).is_empty() {
            return None;
        }
        let packet = probe::request_bytes(c, 1, DISCOVER, Ipv4Addr::UNSPECIFIED, None);
        let tags = self.proxy_tags(&self.tags(c, &packet))?;
        let services = self.menu_services(c.kind.arch(), &tags);
        let prompt = self.prompts(&tags).first().copied();
        let timeout = match prompt {
            Some(p) => p.dnsmasq_timeout(),
            None if services.len() > 1 => 255,
            None => 0,
        };
        Some(ShownMenu {
            services,
            prompt,
            timeout,
        })
    }

    fn reply(&self, msg_type: u8, siaddr: Ipv4Addr, file: String, opt43: Option<Vec<u8>>) -> Reply {
        Reply {
            msg_type,
            xid: 0,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr,
            file,
            server_id: Some(self.server),
            opt43,
        }
    }

    /// The proxy-DHCP answer (`pxe` = on port 4011).
    fn proxy(&self, c: &Client, packet: &[u8], t: &Tags, pxe: bool) -> Option<SimReply> {
        let arch = c.kind.arch();
        let tags = self.proxy_tags(t)?;
        let _ = packet;
        let boot = self.find_boot(&tags);
        let mut siaddr = Ipv4Addr::UNSPECIFIED;
        let mut file = String::new();
        let mut line = None;
        if arch >= 6 {
            siaddr = self.server;
        }
        let workaround = self.uefi_workaround(arch, &tags);
        if let (true, Some((s, f, l))) = (pxe, &workaround) {
            siaddr = *s;
            file = f.clone();
            line = Some(*l);
        }
        if workaround.is_none()
            && let Some(b) = boot
        {
            if let Some(s) = self.boot_server(b) {
                siaddr = s;
            }
            file = b.file.clone();
            line = Some(b.line);
        }
        let opt43 = if (pxe && workaround.is_none()) || arch < 6 {
            let (o, l) = self.pxe_opts(arch, &tags);
            if line.is_none() || file.is_empty() {
                line = l.or(line);
            }
            Some(o)
        } else {
            None
        };
        if self.ignored(&tags) {
            return None;
        }
        Some(SimReply {
            reply: self.reply(if pxe { ACK } else { OFFER }, siaddr, file, opt43),
            line,
        })
    }

    /// The port-67 answer to a DISCOVER.
    pub fn offer(&self, c: &Client) -> Option<SimReply> {
        let packet = probe::request_bytes(c, 1, DISCOVER, Ipv4Addr::UNSPECIFIED, None);
        let t = self.tags(c, &packet);
        let pxe_on = self.conf.enable_pxe || self.force_pxe;
        if pxe_on
            && self.is_pxe_client(&packet)
            && let Some(r) = self.proxy(c, &packet, &t, false)
        {
            return Some(r);
        }
        // "If we're just a proxy server, go no further."
        if self.ranges_here().any(|r| r.proxy) {
            return None;
        }
        let range = self.ranges_here().find(|r| !r.proxy)?;
        let mut tags = t.tags.clone();
        if let Some(s) = &range.set {
            let mut n = t.netid.clone();
            n.push(s.clone());
            tags = self.run_tag_if(&n);
        }
        if self.ignored(&tags) || t.host_ignore {
            return None;
        }
        let mut siaddr = self.server;
        let mut file = String::new();
        let mut line = None;
        if let Some(b) = self.find_boot(&tags) {
            if let Some(s) = self.boot_server(b) {
                siaddr = s;
            }
            file = b.file.clone();
            line = Some(b.line);
        }
        let mut r = self.reply(OFFER, siaddr, file, None);
        r.yiaddr = range.start;
        Some(SimReply { reply: r, line })
    }

    /// The port-4011 answer to a REQUEST (with a boot item or without).
    pub fn ack(&self, c: &Client, item: Option<(u16, u16)>) -> Option<SimReply> {
        let lease = lease_for(self.server, self.mask);
        let packet = probe::request_bytes(c, 1, REQUEST, lease, item);
        let pxe_on = self.conf.enable_pxe || self.force_pxe;
        if !pxe_on || !self.is_pxe_client(&packet) {
            return None;
        }
        let t = self.tags(c, &packet);
        if let Some((ty, layer)) = item {
            let t_tags = self.proxy_tags(&t).unwrap_or_else(|| t.tags.clone());
            if self.ignored(&t.tags) || layer & 0x8000 != 0 {
                return None;
            }
            let s = self.conf.pxe_services.iter().find(|s| s.boot_type == ty)?;
            let b = s.basename.as_ref()?;
            if !self
                .ranges_here()
                .any(|r| match_netid(&r.filter, &t.tags, true))
            {
                return None;
            }
            let file = if b.contains('.') {
                b.clone()
            } else {
                format!("{b}.{layer}")
            };
            let siaddr = if s.server_name.is_some() {
                Ipv4Addr::UNSPECIFIED
            } else {
                s.server.unwrap_or(self.server)
            };
            let t = ty.to_be_bytes();
            let l = layer.to_be_bytes();
            let mut o = vec![71, 4, t[0], t[1], l[0], l[1]];
            self.push_prompts(&mut o, &t_tags);
            o.push(255);
            return Some(SimReply {
                reply: self.reply(ACK, siaddr, file, Some(o)),
                line: Some(s.line),
            });
        }
        self.proxy(c, &packet, &t, true)
    }

    /// Where the client ends up, and the line that decided it.
    pub fn seen(&self, c: &Client) -> (Seen, Option<usize>) {
        let Some(o) = self.offer(c) else {
            return (Seen::SILENT, None);
        };
        let mut line = o.line;
        let boot = match probe::after_offer(&o.reply) {
            Step::Done(b) => b,
            Step::Ask4011 { server, item } => {
                let ack = if server == self.server {
                    self.ack(c, item)
                } else {
                    None
                };
                if let Some(a) = &ack {
                    line = a.line.or(line);
                }
                probe::after_ack(server, ack.as_ref().map(|a| &a.reply))
            }
        };
        let seen = Seen {
            offer: Some((o.reply.siaddr, o.reply.opt43.is_some())),
            boot,
        };
        let line = match seen.boot {
            Boot::Nothing => None,
            _ => line,
        };
        (seen, line)
    }
}

/// The address the site's DHCP server leased the client (source of its port-4011 request):
/// the 50th address of the subnet, or the 51st when that is the server's.
pub fn lease_for(server: Ipv4Addr, mask: Ipv4Addr) -> Ipv4Addr {
    let net = u32::from(server) & u32::from(mask);
    let a = Ipv4Addr::from(net | 50);
    if a == server {
        Ipv4Addr::from(net | 51)
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::*;
    use crate::migrate::probe::{DEFAULT_MAC, Kind};

    const S: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);

    fn sim(conf: &Conf) -> Sim<'_> {
        Sim {
            conf,
            server: S,
            mask: Ipv4Addr::new(255, 255, 255, 0),
            iface: "eth0".into(),
            force_pxe: false,
        }
    }

    fn client(kind: Kind) -> Client {
        Client {
            kind,
            mac: DEFAULT_MAC,
        }
    }

    fn file(f: &str) -> Boot {
        Boot::File {
            server: S,
            file: f.into(),
        }
    }

    /// The matchbox recipe, as observed on the wire in docs/dhcp.md's oracle (A1-A8).
    #[test]
    fn matchbox_recipe_like_the_oracle() {
        let c = parse(
            "dhcp-range=192.168.77.0,proxy,255.255.255.0\n\
             dhcp-userclass=set:ipxe,iPXE\n\
             pxe-service=tag:#ipxe,x86PC,\"PXE chainload to iPXE\",undionly.kpxe\n\
             pxe-service=tag:ipxe,x86PC,\"iPXE\",http://192.168.77.1:8080/boot.ipxe\n\
             pxe-service=tag:#ipxe,X86-64_EFI,\"PXE chainload to iPXE UEFI\",ipxe.efi\n\
             pxe-service=tag:ipxe,X86-64_EFI,\"iPXE UEFI\",http://192.168.77.1:8080/boot.ipxe\n",
        );
        let s = sim(&c);
        let o = s.offer(&client(Kind::Bios)).unwrap().reply;
        assert_eq!(o.siaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            hex(o.opt43.as_deref().unwrap()),
            "0601030a04005058450807800001c0a84d01091880001550584520636861696e6c6f616420746f2069505845ff"
        );
        let (seen, line) = s.seen(&client(Kind::Bios));
        assert_eq!(seen.boot, file("undionly.kpxe"));
        assert_eq!(line, Some(3));
        assert_eq!(
            s.seen(&client(Kind::BiosIpxe)).0.boot,
            file("http://192.168.77.1:8080/boot.ipxe")
        );
        let (u, _) = s.seen(&client(Kind::Uefi));
        assert_eq!(u.offer, Some((S, false)));
        assert_eq!(u.boot, file("ipxe.efi"));
        assert_eq!(
            s.seen(&client(Kind::UefiIpxe)).0.boot,
            file("http://192.168.77.1:8080/boot.ipxe")
        );
        assert_eq!(s.seen(&client(Kind::Http)).0, Seen::SILENT);
        // arm64 without a service: redirected to 4011, then a dead end.
        let (a, _) = s.seen(&client(Kind::Arm64));
        assert_eq!(a.offer, Some((S, false)));
        assert_eq!(a.boot, Boot::Nothing);
    }

    #[test]
    fn dhcp_boot_needs_pxe_enabled_and_newest_tagged_wins() {
        let c = parse(
            "dhcp-range=192.168.77.0,proxy\n\
             dhcp-match=set:ipxe,175\n\
             dhcp-boot=tag:ipxe,http://a/1\n\
             dhcp-boot=tag:ipxe,http://a/2\n\
             dhcp-boot=undionly.kpxe\n",
        );
        assert_eq!(sim(&c).seen(&client(Kind::BiosIpxe)).0, Seen::SILENT);
        let mut s = sim(&c);
        s.force_pxe = true;
        assert_eq!(s.seen(&client(Kind::BiosIpxe)).0.boot, file("http://a/2"));
        assert_eq!(s.seen(&client(Kind::Bios)).0.boot, file("undionly.kpxe"));
    }

    #[test]
    fn tag_if_wildcards_hosts_and_ignore() {
        let c = parse(
            "dhcp-range=192.168.77.0,proxy\n\
             dhcp-host=52:54:00:6b:69:6e,set:lab-a\n\
             tag-if=set:lab,tag:lab-*\n\
             dhcp-ignore=tag:!lab\n\
             pxe-service=x86PC,\"x\",undionly.kpxe\n",
        );
        assert_eq!(
            sim(&c).seen(&client(Kind::Bios)).0.boot,
            file("undionly.kpxe")
        );
        let other = Client {
            kind: Kind::Bios,
            mac: [2, 0, 0, 0, 0, 1],
        };
        assert_eq!(sim(&c).seen(&other).0, Seen::SILENT);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
