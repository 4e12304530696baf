//! The clients `kindling migrate dnsmasq` asks both servers about, and how their answers
//! are read. Shared word for word with the network-namespace test
//! (`crates/kindling/tests/migrate_netns.rs` includes this file), so the migrator's
//! predicted differences and the test's observed ones use the same clients, the same
//! packets and the same reading of the replies. Only `std`.

#![allow(dead_code)]

use std::net::Ipv4Addr;

/// A kind of network-boot client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// BIOS PXE firmware (option 93 = 0).
    Bios,
    /// iPXE on BIOS (user class `iPXE` and option 175).
    BiosIpxe,
    /// x86-64 UEFI PXE firmware (arch 7).
    Uefi,
    /// x86-64 UEFI PXE firmware that says BC_EFI (arch 9).
    UefiBc,
    /// iPXE on x86-64 UEFI.
    UefiIpxe,
    /// x86-64 UEFI HTTP Boot (`HTTPClient`, arch 16).
    Http,
    /// arm64 UEFI PXE firmware (arch 11).
    Arm64,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Bios,
        Kind::BiosIpxe,
        Kind::Uefi,
        Kind::UefiBc,
        Kind::UefiIpxe,
        Kind::Http,
        Kind::Arm64,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Bios => "bios",
            Kind::BiosIpxe => "bios-ipxe",
            Kind::Uefi => "uefi",
            Kind::UefiBc => "uefi-bc",
            Kind::UefiIpxe => "uefi-ipxe",
            Kind::Http => "http",
            Kind::Arm64 => "arm64",
        }
    }

    /// What it is, in words (for the output's header).
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Bios => "BIOS PXE firmware (arch 0)",
            Kind::BiosIpxe => "iPXE on BIOS (user class iPXE, option 175)",
            Kind::Uefi => "x86-64 UEFI PXE (arch 7)",
            Kind::UefiBc => "x86-64 UEFI PXE as BC_EFI (arch 9)",
            Kind::UefiIpxe => "iPXE on x86-64 UEFI",
            Kind::Http => "UEFI HTTP Boot (HTTPClient, arch 16)",
            Kind::Arm64 => "arm64 UEFI PXE (arch 11)",
        }
    }

    pub fn arch(self) -> u16 {
        match self {
            Kind::Bios | Kind::BiosIpxe => 0,
            Kind::Uefi | Kind::UefiIpxe => 7,
            Kind::UefiBc => 9,
            Kind::Http => 16,
            Kind::Arm64 => 11,
        }
    }

    pub fn is_ipxe(self) -> bool {
        matches!(self, Kind::BiosIpxe | Kind::UefiIpxe)
    }

    /// Option 60 as firmware (and iPXE) send it.
    pub fn vendor_class(self) -> String {
        match self {
            Kind::Bios | Kind::BiosIpxe => "PXEClient:Arch:00000:UNDI:002001".into(),
            Kind::Http => "HTTPClient:Arch:00016:UNDI:003001".into(),
            k => format!("PXEClient:Arch:{:05}:UNDI:003016", k.arch()),
        }
    }

    /// Option 77.
    pub fn user_class(self) -> Option<&'static [u8]> {
        self.is_ipxe().then_some(b"iPXE".as_slice())
    }

    /// Option 175 as iPXE sends it: sub-options "HTTP supported" (19 = 1) and a bus id.
    pub fn ipxe_options(self) -> Option<&'static [u8]> {
        self.is_ipxe()
            .then_some([0x13, 0x01, 0x01, 0xb1, 0x05, 0x01, 0x80, 0x86, 0x10, 0x0e].as_slice())
    }
}

/// The MAC of clients that no MAC-based line of a configuration names.
pub const DEFAULT_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x6b, 0x69, 0x6e];

/// The GUID every client sends (option 97).
pub const GUID: [u8; 17] = [
    0, 0x6b, 0x69, 0x6e, 0x64, 0x6c, 0x69, 0x6e, 0x67, 9, 10, 11, 12, 13, 14, 15, 16,
];

/// One client: a kind and a MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Client {
    pub kind: Kind,
    pub mac: [u8; 6],
}

impl Client {
    /// `bios`, or `bios@02-1a-4a-16-01-9c` for a client with another MAC than [`DEFAULT_MAC`].
    pub fn label(&self) -> String {
        if self.mac == DEFAULT_MAC {
            self.kind.name().to_string()
        } else {
            format!("{}@{}", self.kind.name(), mac_label(&self.mac))
        }
    }
}

/// `02-1a-4a-16-01-9c`.
pub fn mac_label(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join("-")
}

pub const DISCOVER: u8 = 1;
pub const OFFER: u8 = 2;
pub const REQUEST: u8 = 3;
pub const ACK: u8 = 5;

/// A client's DISCOVER (to port 67) or its REQUEST to port 4011 (`ciaddr` set, optionally
/// with a PXE boot item in option 43), as DHCP bytes.
pub fn request_bytes(
    c: &Client,
    xid: u32,
    msg: u8,
    ciaddr: Ipv4Addr,
    boot_item: Option<(u16, u16)>,
) -> Vec<u8> {
    let mut p = vec![0u8; 236];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = 6;
    p[4..8].copy_from_slice(&xid.to_be_bytes());
    if msg == DISCOVER {
        p[10] = 0x80; // broadcast, as PXE ROMs ask
    }
    p[12..16].copy_from_slice(&ciaddr.octets());
    p[28..34].copy_from_slice(&c.mac);
    p.extend_from_slice(&[99, 130, 83, 99]);
    let mut opt = |code: u8, data: &[u8]| {
        p.push(code);
        p.push(data.len() as u8);
        p.extend_from_slice(data);
    };
    opt(53, &[msg]);
    opt(57, &1464u16.to_be_bytes());
    opt(60, c.kind.vendor_class().as_bytes());
    opt(93, &c.kind.arch().to_be_bytes());
    opt(94, &[1, 3, 16]);
    opt(97, &GUID);
    if let Some(u) = c.kind.user_class() {
        opt(77, u);
    }
    if let Some(o) = c.kind.ipxe_options() {
        opt(175, o);
    }
    if let Some((t, l)) = boot_item {
        let (t, l) = (t.to_be_bytes(), l.to_be_bytes());
        opt(43, &[71, 4, t[0], t[1], l[0], l[1], 255]);
    }
    p.push(255);
    while p.len() < 300 {
        p.push(0);
    }
    p
}

/// The fields of a reply that decide where a client boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub msg_type: u8,
    pub xid: u32,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub file: String,
    pub server_id: Option<Ipv4Addr>,
    /// Option 43, raw.
    pub opt43: Option<Vec<u8>>,
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|x| *x == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Reads a BOOTREPLY; `None` for anything else or a malformed packet.
pub fn decode_reply(b: &[u8]) -> Option<Reply> {
    if b.len() < 240 || b[0] != 2 || b[236..240] != [99, 130, 83, 99] {
        return None;
    }
    let ip = |o: usize| Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]);
    let mut r = Reply {
        msg_type: 0,
        xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        yiaddr: ip(16),
        siaddr: ip(20),
        file: cstr(&b[108..236]),
        server_id: None,
        opt43: None,
    };
    let mut i = 240;
    while i < b.len() {
        let code = b[i];
        if code == 255 {
            break;
        }
        if code == 0 {
            i += 1;
            continue;
        }
        let len = usize::from(*b.get(i + 1)?);
        let data = b.get(i + 2..i + 2 + len)?;
        match code {
            53 if len == 1 => r.msg_type = data[0],
            54 if len == 4 => r.server_id = Some(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
            43 => r.opt43 = Some(data.to_vec()),
            _ => {}
        }
        i += 2 + len;
    }
    Some(r)
}

/// PXE sub-options of option 43 as (code, data).
pub fn pxe_subs(opt43: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < opt43.len() && opt43[i] != 255 {
        if opt43[i] == 0 {
            i += 1;
            continue;
        }
        let len = usize::from(opt43[i + 1]);
        let Some(d) = opt43.get(i + 2..i + 2 + len) else {
            break;
        };
        out.push((opt43[i], d.to_vec()));
        i += 2 + len;
    }
    out
}

/// The boot menu items (type, text) of option 43, if it has a menu.
pub fn menu_items(opt43: &[u8]) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for (code, d) in pxe_subs(opt43) {
        if code != 9 {
            continue;
        }
        let mut i = 0;
        while i + 3 <= d.len() {
            let t = u16::from_be_bytes([d[i], d[i + 1]]);
            let len = usize::from(d[i + 2]);
            let text = d.get(i + 3..i + 3 + len).unwrap_or(&[]);
            out.push((t, String::from_utf8_lossy(text).into_owned()));
            i += 3 + len;
        }
    }
    out
}

/// Where a client ends up.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Boot {
    /// Loads `file` (a TFTP name or a URL) from `server`.
    File { server: Ipv4Addr, file: String },
    /// Boots from its local disk (a menu item of type 0).
    LocalBoot,
    /// Answered, but nothing to boot (empty file, or no answer on port 4011).
    Nothing,
}

impl Boot {
    /// `tftp://HOST/PATH` is the file PATH on server HOST.
    pub fn file(server: Ipv4Addr, file: &str) -> Boot {
        if file.is_empty() {
            return Boot::Nothing;
        }
        if let Some(rest) = file.strip_prefix("tftp://")
            && let Some((host, path)) = rest.split_once('/')
            && let Ok(ip) = host.parse::<Ipv4Addr>()
        {
            return Boot::File {
                server: ip,
                file: path.to_string(),
            };
        }
        Boot::File {
            server,
            file: file.to_string(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Boot::File { server, file } if file.contains("://") => {
                let _ = server;
                file.clone()
            }
            Boot::File { server, file } => format!("{file} from {server}"),
            Boot::LocalBoot => "local disk".into(),
            Boot::Nothing => "nothing to boot".into(),
        }
    }
}

/// What a client does after an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Done(Boot),
    /// Asks the server (siaddr, else option 54) on port 4011, with this boot item.
    Ask4011 {
        server: Ipv4Addr,
        item: Option<(u16, u16)>,
    },
}

fn server_of(r: &Reply) -> Ipv4Addr {
    if r.siaddr.is_unspecified() {
        r.server_id.unwrap_or(Ipv4Addr::UNSPECIFIED)
    } else {
        r.siaddr
    }
}

/// After a port-67 offer: a menu (discovery control other than 8) sends the client to
/// port 4011 with its first item (type 0 = local boot); a file in the offer is booted;
/// otherwise the client asks port 4011 without an item.
pub fn after_offer(offer: &Reply) -> Step {
    let server = server_of(offer);
    let subs = offer.opt43.as_deref().map(pxe_subs).unwrap_or_default();
    let dc = subs
        .iter()
        .find(|(c, _)| *c == 6)
        .and_then(|(_, d)| d.first().copied());
    let items = offer.opt43.as_deref().map(menu_items).unwrap_or_default();
    if dc != Some(8)
        && let Some((t, _)) = items.first()
    {
        if *t == 0 {
            return Step::Done(Boot::LocalBoot);
        }
        return Step::Ask4011 {
            server,
            item: Some((*t, 0)),
        };
    }
    if !offer.file.is_empty() {
        return Step::Done(Boot::file(server, &offer.file));
    }
    Step::Ask4011 { server, item: None }
}

/// After the port-4011 answer (or none).
pub fn after_ack(server: Ipv4Addr, ack: Option<&Reply>) -> Boot {
    let Some(a) = ack else {
        return Boot::Nothing;
    };
    let srv = if a.siaddr.is_unspecified() {
        server
    } else {
        a.siaddr
    };
    if !a.file.is_empty() {
        return Boot::file(srv, &a.file);
    }
    let items = a.opt43.as_deref().map(menu_items).unwrap_or_default();
    match items.first() {
        Some((0, _)) => Boot::LocalBoot,
        _ => Boot::Nothing,
    }
}

/// What was seen for one client: the port-67 offer's fields and where the client ends up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// siaddr and whether option 43 was present, when there was an offer.
    pub offer: Option<(Ipv4Addr, bool)>,
    pub boot: Boot,
}

impl Seen {
    pub const SILENT: Seen = Seen {
        offer: None,
        boot: Boot::Nothing,
    };
}

/// A field in which the two servers differ for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// One answers, the other does not.
    Answer,
    /// Where the client boots from (after the port-4011 step).
    Boot,
    /// The offer's next-server.
    Siaddr,
    /// Option 43 present in the offer or not.
    Opt43,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::Answer => "answer",
            Field::Boot => "boot",
            Field::Siaddr => "siaddr",
            Field::Opt43 => "option 43",
        }
    }

    pub fn parse(s: &str) -> Option<Field> {
        [Field::Answer, Field::Boot, Field::Siaddr, Field::Opt43]
            .into_iter()
            .find(|f| f.name() == s)
    }
}

fn describe_offer(s: &Seen) -> String {
    match s.offer {
        None => "no answer".into(),
        Some(_) => format!("answers ({})", s.boot.describe()),
    }
}

/// The fields in which `dnsmasq` and `kindling` differ, each with both values in words.
pub fn differences(dnsmasq: &Seen, kindling: &Seen) -> Vec<(Field, String, String)> {
    let mut out = Vec::new();
    match (dnsmasq.offer, kindling.offer) {
        (None, None) => {}
        (Some(_), None) | (None, Some(_)) => {
            out.push((
                Field::Answer,
                describe_offer(dnsmasq),
                describe_offer(kindling),
            ));
        }
        (Some((ds, d43)), Some((ks, k43))) => {
            if dnsmasq.boot != kindling.boot {
                out.push((
                    Field::Boot,
                    dnsmasq.boot.describe(),
                    kindling.boot.describe(),
                ));
            }
            if ds != ks {
                out.push((Field::Siaddr, ds.to_string(), ks.to_string()));
            }
            if d43 != k43 {
                let w = |b: bool| if b { "present" } else { "absent" }.to_string();
                out.push((Field::Opt43, w(d43), w(k43)));
            }
        }
    }
    out
}

/// The marker of a difference line in the output: `# differs (FIELD): LABEL, LABEL — ...`.
pub const DIFFERS: &str = "# differs (";

/// Reads the (field, client label) pairs listed by the difference lines of an output.
pub fn listed_differences(toml_text: &str) -> Vec<(Field, String)> {
    let mut out = Vec::new();
    for line in toml_text.lines() {
        let Some(rest) = line.trim_start().strip_prefix(DIFFERS) else {
            continue;
        };
        let Some((field, rest)) = rest.split_once("): ") else {
            continue;
        };
        let Some(field) = Field::parse(field) else {
            continue;
        };
        let labels = rest.split(" — ").next().unwrap_or("");
        for l in labels.split(", ") {
            out.push((field, l.trim().to_string()));
        }
    }
    out
}
