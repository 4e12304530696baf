//! The event itself: [`Event`], a common part and a [`Detail`] per service ([`Dhcp`],
//! [`Tftp`], [`Http`]), its [`Reason`], and the one test of sameness behind repeats.

use std::fmt;
use std::net::IpAddr;

use kindling_dhcp::wire::MessageType;
use kindling_dhcp::{Firmware, IgnoreReason};
use kindling_model::MacAddr;

use super::kinds::{Kind, Source, Stage};
use super::name::{Chosen, Name};

pub use kindling_http::Endpoint;

/// Event text that differs per request (an HTTP path, a TFTP file name, a reason in
/// words): inline up to 24 bytes, on the heap past that.
pub type Str = compact_str::CompactString;

/// Why an event failed or how it was decided, typed where the server decided it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// A DHCP packet not answered (`no_arch`, `rule_ignore`, ...).
    Ignored(IgnoreReason),
    /// The DHCP rule that chose the answer (`rule NAME` in text).
    Rule(Name),
    /// Said in words: TFTP refusals and failures, HTTP 404 reasons, cut-short downloads.
    /// A [`Name`] (one pointer: an event is 8 bytes smaller than with an inline text) from
    /// the clients' share of the table, as these texts carry names clients chose.
    Text(Name),
}

impl Reason {
    /// The reason a text says (the inverse of `Display`).
    pub fn parse(s: &str) -> Reason {
        if let Some(rule) = s.strip_prefix("rule ") {
            return Reason::Rule(Name::new(rule));
        }
        match IgnoreReason::ALL.into_iter().find(|r| r.label() == s) {
            Some(r) => Reason::Ignored(r),
            None => Reason::text(s),
        }
    }
}

impl Reason {
    /// A reason in words.
    pub fn text(s: &str) -> Reason {
        Reason::Text(Name::of(s, Chosen::Client))
    }
}

impl From<&str> for Reason {
    fn from(s: &str) -> Reason {
        Reason::parse(s)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Ignored(r) => f.write_str(r.label()),
            Reason::Rule(n) => write!(f, "rule {n}"),
            Reason::Text(t) => f.write_str(t),
        }
    }
}

/// A DHCP message type: DHCPv4's (option 53) or DHCPv6's (RFC 8415's msg-type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    V4(MessageType),
    V6(u8),
}

impl Message {
    /// The journal's spelling (`discover`, `ack`; DHCPv6: `solicit`, `reply`, ...). Three
    /// names are in both protocols (`request`, `release`, `decline`): the journal says which
    /// with `"dhcpv6": true`.
    pub fn label(self) -> &'static str {
        match self {
            Message::V4(m) => m.label(),
            Message::V6(t) => kindling_dhcp::v6::decide::msg_label(t),
        }
    }

    pub fn is_v6(self) -> bool {
        matches!(self, Message::V6(_))
    }

    /// A client's first message of an exchange: DHCPDISCOVER or SOLICIT.
    pub fn starts_exchange(self) -> bool {
        matches!(
            self,
            Message::V4(MessageType::Discover) | Message::V6(kindling_dhcp::v6::wire::msg::SOLICIT)
        )
    }
}

impl From<MessageType> for Message {
    fn from(m: MessageType) -> Message {
        Message::V4(m)
    }
}

/// Which step of a proxy DHCP exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpStep {
    /// A PXE/iPXE packet arrived (before the decision).
    Seen,
    /// A reply was sent.
    Answered,
    /// The packet was not answered (the event's reason says why).
    Ignored,
}

/// A DHCP event: what the client is and said, and what was answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Dhcp {
    pub step: DhcpStep,
    /// The client's message type (seen, ignored) or the reply's (answered).
    pub message: Option<Message>,
    pub firmware: Option<Firmware>,
    /// The port the packet arrived on (seen; 0 for the other steps).
    pub port: u16,
    /// Option 93.
    pub arch: Option<u16>,
    pub iface: Option<Name>,
    /// The boot file offered (answered; none: the client is sent to port 4011).
    pub file: Option<Name>,
    pub vendor_class: Option<Name>,
    /// Option 77's classes, comma-separated.
    pub user_class: Option<Name>,
}

impl Dhcp {
    /// A `step` with nothing known yet.
    pub fn new(step: DhcpStep) -> Dhcp {
        Dhcp {
            step,
            message: None,
            firmware: None,
            port: 0,
            arch: None,
            iface: None,
            file: None,
            vendor_class: None,
            user_class: None,
        }
    }
}

/// A TFTP request: a transfer that ended, or a request refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Tftp {
    pub file: Str,
    /// A write request (always refused).
    pub write: bool,
    /// The client only asked for the size (EDK2 declines the OACK): a normal end.
    pub probe: bool,
    pub bytes: u64,
    /// None for a refused request.
    pub duration_ms: Option<f64>,
}

/// An HTTP request of a machine's boot.
#[derive(Debug, Clone, PartialEq)]
pub struct Http {
    pub method: Name,
    /// Path and query as the client sent them.
    pub path: Str,
    pub endpoint: Option<Endpoint>,
    pub status: u16,
    pub bytes: u64,
    pub duration_ms: f64,
    pub group: Option<Name>,
    pub profile: Option<Name>,
}

/// What happened, by the service that saw it. DHCP, the storm path, is held inline;
/// an HTTP request and a TFTP transfer, larger and rarer, in boxes of their own (an
/// event is as large as its largest inline part).
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    Dhcp(Dhcp),
    Tftp(Box<Tftp>),
    Http(Box<Http>),
}

/// One thing that happened to one machine. The journal's and the API's JSON (flat, with
/// a `what` line for people) is made from it when read (`doc`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unix time in milliseconds.
    pub ts: u64,
    /// The machine; `None` only before attribution.
    pub mac: Option<MacAddr>,
    /// The client's address, when known.
    pub ip: Option<IpAddr>,
    pub stage: Option<Stage>,
    /// False for ignores, failed transfers and HTTP status >= 400.
    pub ok: bool,
    pub reason: Option<Reason>,
    pub detail: Detail,
    /// Identical events that followed this one (an iPXE retry loop, a client polling):
    /// counted here instead of stored again. Repeats since the last restart are not
    /// journaled.
    pub repeats: u32,
    /// Time of the last repeat (Unix ms), when `repeats > 0`.
    pub last_ts: u64,
    /// Arrival order inside this process (orders events of the same millisecond); not
    /// journaled: a replay numbers events in journal order.
    pub seq: u64,
}

impl Event {
    /// An event of `detail` at `ts`, successful, not yet attributed.
    pub fn new(ts: u64, detail: Detail) -> Event {
        let stage = match &detail {
            Detail::Dhcp(_) => Some(Stage::Dhcp),
            Detail::Tftp(_) => Some(Stage::Tftp),
            Detail::Http(_) => None,
        };
        Event {
            ts,
            mac: None,
            ip: None,
            stage,
            ok: true,
            reason: None,
            detail,
            repeats: 0,
            last_ts: 0,
            seq: 0,
        }
    }

    /// An HTTP request of `status` (no bytes, no time, no group or profile yet).
    pub fn http_request(
        ts: u64,
        method: &str,
        path: &str,
        endpoint: Endpoint,
        status: u16,
    ) -> Event {
        let mut e = Event::new(
            ts,
            Detail::Http(Box::new(Http {
                method: Name::of(method, Chosen::Client),
                path: path.into(),
                endpoint: Some(endpoint),
                status,
                bytes: 0,
                duration_ms: 0.0,
                group: None,
                profile: None,
            })),
        );
        e.ok = status < 400;
        e
    }

    pub fn dhcp_mut(&mut self) -> Option<&mut Dhcp> {
        match &mut self.detail {
            Detail::Dhcp(d) => Some(d),
            _ => None,
        }
    }

    pub fn tftp_mut(&mut self) -> Option<&mut Tftp> {
        match &mut self.detail {
            Detail::Tftp(t) => Some(t),
            _ => None,
        }
    }

    pub fn http_mut(&mut self) -> Option<&mut Http> {
        match &mut self.detail {
            Detail::Http(h) => Some(h),
            _ => None,
        }
    }

    pub fn kind(&self) -> Kind {
        match &self.detail {
            Detail::Dhcp(d) => match d.step {
                DhcpStep::Seen => Kind::DhcpSeen,
                DhcpStep::Answered => Kind::DhcpAnswered,
                DhcpStep::Ignored => Kind::DhcpIgnored,
            },
            Detail::Tftp(_) => Kind::TftpTransfer,
            Detail::Http(_) => Kind::HttpRequest,
        }
    }

    pub fn source(&self) -> Source {
        match &self.detail {
            Detail::Dhcp(_) => Source::Dhcp,
            Detail::Tftp(_) => Source::Tftp,
            Detail::Http(_) => Source::Http,
        }
    }

    pub fn dhcp(&self) -> Option<&Dhcp> {
        match &self.detail {
            Detail::Dhcp(d) => Some(d),
            _ => None,
        }
    }

    pub fn http(&self) -> Option<&Http> {
        match &self.detail {
            Detail::Http(h) => Some(h),
            _ => None,
        }
    }

    /// HTTP status.
    pub fn status(&self) -> Option<u16> {
        self.http().map(|h| h.status)
    }

    /// Bytes sent (TFTP, HTTP).
    pub fn bytes(&self) -> Option<u64> {
        match &self.detail {
            Detail::Tftp(t) => Some(t.bytes),
            Detail::Http(h) => Some(h.bytes),
            Detail::Dhcp(_) => None,
        }
    }

    pub fn duration_ms(&self) -> Option<f64> {
        match &self.detail {
            Detail::Tftp(t) => t.duration_ms,
            Detail::Http(h) => Some(h.duration_ms),
            Detail::Dhcp(_) => None,
        }
    }

    /// HTTP path, TFTP file, the boot file a DHCP answer offered.
    pub fn path(&self) -> Option<&str> {
        match &self.detail {
            Detail::Dhcp(d) => d.file.as_deref(),
            Detail::Tftp(t) => Some(&t.file),
            Detail::Http(h) => Some(&h.path),
        }
    }

    /// Whether `other` is this event happening again (same request or packet, stage,
    /// outcome and reason; times, sizes, durations and the address may differ): then it
    /// is counted as a repeat instead of stored. The one test of sameness, for every
    /// event of every service.
    pub fn same_as(&self, other: &Event) -> bool {
        self.stage == other.stage
            && self.ok == other.ok
            && self.reason == other.reason
            && match (&self.detail, &other.detail) {
                (Detail::Dhcp(a), Detail::Dhcp(b)) => a == b,
                (Detail::Tftp(a), Detail::Tftp(b)) => {
                    (&a.file, a.write, a.probe) == (&b.file, b.write, b.probe)
                }
                (Detail::Http(a), Detail::Http(b)) => {
                    (&a.method, &a.path, a.endpoint, a.status)
                        == (&b.method, &b.path, b.endpoint, b.status)
                }
                _ => false,
            }
    }

    /// An iPXE DHCP DISCOVER or SOLICIT (a new iPXE instance: chainloaded, or the VM's
    /// ROM).
    pub fn is_ipxe_discover(&self) -> bool {
        self.dhcp().is_some_and(|d| {
            d.step == DhcpStep::Seen
                && d.message.is_some_and(Message::starts_exchange)
                && d.firmware == Some(Firmware::Ipxe)
        })
    }

    /// A firmware (not iPXE) DHCP DISCOVER or SOLICIT: the start of a new boot.
    pub fn is_firmware_discover(&self) -> bool {
        self.dhcp().is_some_and(|d| {
            d.step == DhcpStep::Seen
                && d.message.is_some_and(Message::starts_exchange)
                && d.firmware.is_some_and(|f| f != Firmware::Ipxe)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A timeline holds ~3 events per boot per machine: each byte here is 30 KB at 10,000
    /// machines (bench/memory). The large, rare parts stay boxed.
    #[test]
    fn an_event_stays_small() {
        assert_eq!(std::mem::size_of::<Option<Reason>>(), 16);
        assert_eq!(std::mem::size_of::<Detail>(), 48);
        assert_eq!(std::mem::size_of::<Event>(), 120);
    }
}
