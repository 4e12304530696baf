//! An [`Event`] as the journal and the API write it: one flat JSON object, every field
//! in text (`"firmware":"uefi_pxe"`, `"arch":"7 (efi-x64)"`, `"what":"OFFER ipxe.efi"`),
//! absent fields left out. Made when written; read back into the typed event.

use std::fmt;
use std::net::IpAddr;

use kindling_model::MacAddr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use kindling_dhcp::Firmware;
use kindling_dhcp::policy::describe_arch;
use kindling_dhcp::v6::decide::msg_from_label;
use kindling_dhcp::wire::MessageType;

use super::kinds::{Kind, Stage};
use super::name::{Chosen, Name};
use super::record::{Detail, Dhcp, DhcpStep, Endpoint, Event, Http, Message, Reason, Str, Tftp};

/// The option 93 code of a [`describe_arch`] label (its leading number).
fn arch_from_label(s: &str) -> Option<u16> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.get(..end)?.parse().ok()
}

/// A value written as its `Display` text (no copy made).
struct Shown<T>(T);

impl<T: fmt::Display> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// The `what` line: [`Event::what`].
pub struct What<'a>(&'a Event);

impl fmt::Display for What<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.detail {
            Detail::Dhcp(d) => {
                match d.message {
                    Some(m) => {
                        for c in m.label().chars() {
                            write!(f, "{}", c.to_ascii_uppercase())?;
                        }
                    }
                    None => f.write_str("PACKET")?,
                }
                match (d.step, &d.file) {
                    (DhcpStep::Seen, _) => write!(f, " on port {}", d.port),
                    (DhcpStep::Answered, Some(file)) => write!(f, " {file}"),
                    (DhcpStep::Answered, None) if d.message.is_some_and(Message::is_v6) => Ok(()),
                    (DhcpStep::Answered, None) => f.write_str(" (to port 4011)"),
                    (DhcpStep::Ignored, _) => f.write_str(" not answered"),
                }
            }
            Detail::Tftp(t) => write!(
                f,
                "{} {}{}",
                if t.write { "WRQ" } else { "RRQ" },
                t.file,
                if t.probe { " (size probe)" } else { "" }
            ),
            Detail::Http(h) => write!(f, "{} {}", h.method, h.path),
        }
    }
}

impl Event {
    /// One line for people: `DISCOVER on port 67`, `OFFER ipxe.efi`, `RRQ undionly.kpxe`,
    /// `GET /ipxe`.
    pub fn what(&self) -> What<'_> {
        What(self)
    }
}

/// The JSON object, field for field (the order is the journal's).
#[derive(Serialize)]
struct Out<'a> {
    ts: u64,
    kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<Shown<MacAddr>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<Shown<IpAddr>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<Stage>,
    ok: bool,
    what: Shown<What<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<Shown<&'a Reason>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iface: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    firmware: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
    #[serde(skip_serializing_if = "is_false")]
    dhcpv6: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    vendor_class: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_class: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<&'a str>,
    #[serde(skip_serializing_if = "is_zero")]
    repeats: u64,
    #[serde(skip_serializing_if = "is_zero")]
    last_ts: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn text(n: &Option<Name>) -> Option<&str> {
    n.as_deref()
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = Out {
            ts: self.ts,
            kind: self.kind(),
            mac: self.mac.map(Shown),
            ip: self.ip.map(Shown),
            stage: self.stage,
            ok: self.ok,
            what: Shown(self.what()),
            reason: self.reason.as_ref().map(Shown),
            path: None,
            endpoint: None,
            status: None,
            bytes: None,
            duration_ms: None,
            iface: None,
            arch: None,
            firmware: None,
            message: None,
            dhcpv6: false,
            vendor_class: None,
            user_class: None,
            group: None,
            profile: None,
            repeats: self.repeats.into(),
            last_ts: self.last_ts,
        };
        match &self.detail {
            Detail::Dhcp(d) => {
                out.path = text(&d.file);
                out.iface = text(&d.iface);
                out.arch = d.arch.map(describe_arch);
                out.firmware = d.firmware.map(|f| f.label());
                out.message = d.message.map(Message::label);
                out.dhcpv6 = d.message.is_some_and(Message::is_v6);
                out.vendor_class = text(&d.vendor_class);
                out.user_class = text(&d.user_class);
            }
            Detail::Tftp(t) => {
                out.path = Some(&t.file);
                out.bytes = Some(t.bytes);
                out.duration_ms = t.duration_ms;
            }
            Detail::Http(h) => {
                out.path = Some(&h.path);
                out.endpoint = h.endpoint.map(Endpoint::label);
                out.status = Some(h.status);
                out.bytes = Some(h.bytes);
                out.duration_ms = Some(h.duration_ms);
                out.group = text(&h.group);
                out.profile = text(&h.profile);
            }
        }
        out.serialize(s)
    }
}

/// The JSON object as read (any field but `ts`, `kind`, `ok` and `what` may be absent: an
/// absent `Option` is `None`).
#[derive(Deserialize)]
struct In {
    ts: u64,
    kind: Kind,
    mac: Option<Str>,
    ip: Option<Str>,
    stage: Option<Stage>,
    ok: bool,
    what: Str,
    reason: Option<Str>,
    path: Option<Str>,
    endpoint: Option<Str>,
    status: Option<u16>,
    bytes: Option<u64>,
    duration_ms: Option<f64>,
    iface: Option<Str>,
    arch: Option<Str>,
    firmware: Option<Str>,
    message: Option<Str>,
    #[serde(default)]
    dhcpv6: bool,
    vendor_class: Option<Str>,
    user_class: Option<Str>,
    group: Option<Str>,
    profile: Option<Str>,
    #[serde(default)]
    repeats: u64,
    #[serde(default)]
    last_ts: u64,
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
        In::deserialize(d).map(Event::from)
    }
}

impl From<In> for Event {
    fn from(i: In) -> Event {
        let name = |s: &Option<Str>| s.as_deref().map(Name::new);
        let client = |s: &Option<Str>| s.as_deref().map(|s| Name::of(s, Chosen::Client));
        let step = match i.kind {
            Kind::DhcpSeen => Some(DhcpStep::Seen),
            Kind::DhcpAnswered => Some(DhcpStep::Answered),
            Kind::DhcpIgnored => Some(DhcpStep::Ignored),
            Kind::TftpTransfer | Kind::HttpRequest => None,
        };
        // What the typed fields do not hold is in the `what` line: the port of a DHCP
        // packet, TFTP's verb and size probe, HTTP's method.
        let detail = match step {
            Some(step) => Detail::Dhcp(Dhcp {
                step,
                // `other` reads as `Other(0)`, DHCPv6's as 0.
                message: i.message.as_deref().and_then(|m| {
                    if i.dhcpv6 {
                        msg_from_label(m).map(Message::V6)
                    } else {
                        MessageType::from_label(m).map(Message::V4)
                    }
                }),
                firmware: i.firmware.as_deref().and_then(Firmware::from_label),
                port: i
                    .what
                    .rsplit_once(" on port ")
                    .and_then(|(_, p)| p.parse().ok())
                    .unwrap_or(0),
                arch: i.arch.as_deref().and_then(arch_from_label),
                iface: name(&i.iface),
                file: name(&i.path),
                vendor_class: client(&i.vendor_class),
                user_class: client(&i.user_class),
            }),
            None if i.kind == Kind::TftpTransfer => {
                let probe = i.what.ends_with(" (size probe)");
                let file = i.path.clone().unwrap_or_else(|| {
                    let w = i.what.strip_suffix(" (size probe)").unwrap_or(&i.what);
                    w.split_once(' ').map_or(w, |(_, f)| f).into()
                });
                Detail::Tftp(Box::new(Tftp {
                    file,
                    write: i.what.starts_with("WRQ "),
                    probe,
                    bytes: i.bytes.unwrap_or(0),
                    duration_ms: i.duration_ms,
                }))
            }
            None => {
                let (method, rest) = i.what.split_once(' ').unwrap_or((&i.what, ""));
                Detail::Http(Box::new(Http {
                    method: Name::of(method, Chosen::Client),
                    path: i.path.clone().unwrap_or_else(|| rest.into()),
                    endpoint: i.endpoint.as_deref().and_then(Endpoint::from_label),
                    status: i.status.unwrap_or(0),
                    bytes: i.bytes.unwrap_or(0),
                    duration_ms: i.duration_ms.unwrap_or(0.0),
                    group: name(&i.group),
                    profile: name(&i.profile),
                }))
            }
        };
        Event {
            ts: i.ts,
            // A MAC that is not a 6-byte address (none is written) reads as unattributed.
            mac: i.mac.as_deref().and_then(|m| MacAddr::parse(m).ok()),
            ip: i.ip.as_deref().and_then(|ip| ip.parse().ok()),
            stage: i.stage,
            ok: i.ok,
            reason: i.reason.as_deref().map(Reason::parse),
            detail,
            repeats: u32::try_from(i.repeats).unwrap_or(u32::MAX),
            last_ts: i.last_ts,
            seq: 0,
        }
    }
}
