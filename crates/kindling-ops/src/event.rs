//! The event record: one line of the journal, one entry of a boot timeline.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use kindling_dhcp::Firmware;
use kindling_dhcp::wire::MessageType;
use kindling_model::MacAddr;
use serde::{Deserialize, Serialize};

/// Event text: short values (MACs, addresses, labels, most requests) are stored inline,
/// without a heap allocation; a storm of events costs no allocator traffic for them.
pub type Str = compact_str::CompactString;

/// A server-owned name (interface, group, profile): one shared copy per distinct value
/// ([`name`]), so events of the same name hold a pointer, not a copy.
pub type Name = std::sync::Arc<str>;

/// The shared [`Name`] for `s`. Names come from the configuration and the host's
/// interfaces, so the table stays as small as they are.
pub fn name(s: &str) -> Name {
    use std::cell::RefCell;
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<Arc<str>>>> = OnceLock::new();
    thread_local! {
        // The last name this thread asked for: a storm repeats one interface.
        static LAST: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some(n) = last.as_ref().filter(|n| &***n == s) {
            return n.clone();
        }
        let n = {
            let mut names = NAMES
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match names.get(s) {
                Some(n) => n.clone(),
                None => {
                    let n: Arc<str> = Arc::from(s);
                    names.insert(n.clone());
                    n
                }
            }
        };
        *last = Some(n.clone());
        n
    })
}

/// How far a boot got, in boot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Proxy DHCP (firmware or iPXE).
    Dhcp,
    /// The iPXE binary over TFTP (or `/tftp/` over HTTP for UEFI HTTP Boot).
    Tftp,
    /// `/boot.ipxe`, `/ipxe`, `/grub`.
    Script,
    Kernel,
    Initrd,
    Rootfs,
    /// `/ignition` served.
    Ignition,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Dhcp,
        Stage::Tftp,
        Stage::Script,
        Stage::Kernel,
        Stage::Initrd,
        Stage::Rootfs,
        Stage::Ignition,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Stage::Dhcp => "dhcp",
            Stage::Tftp => "tftp",
            Stage::Script => "script",
            Stage::Kernel => "kernel",
            Stage::Initrd => "initrd",
            Stage::Rootfs => "rootfs",
            Stage::Ignition => "ignition",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Which service saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Dhcp,
    Tftp,
    Http,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::Dhcp => "dhcp",
            Source::Tftp => "tftp",
            Source::Http => "http",
        }
    }
}

/// What kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A PXE/iPXE DHCP packet arrived (before the decision).
    DhcpSeen,
    /// A proxy DHCP reply was sent.
    DhcpAnswered,
    /// A DHCP packet was not answered (`reason` says why).
    DhcpIgnored,
    /// A TFTP transfer ended.
    TftpTransfer,
    /// An HTTP request was answered.
    HttpRequest,
}

pub use kindling_http::Endpoint;

/// One thing that happened to one machine. Field names are the journal's and the API's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unix time in milliseconds.
    pub ts: u64,
    pub kind: Kind,
    /// The machine (`52:54:00:12:34:56` in text); `None` only before attribution.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "mac_text")]
    pub mac: Option<MacAddr>,
    /// The client's IP address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// False for ignores, failed transfers and HTTP status >= 400.
    pub ok: bool,
    /// One line for people: `DISCOVER`, `OFFER ipxe.efi`, `GET /ipxe`, `RRQ undionly.kpxe`.
    pub what: Str,
    /// Why it failed (DHCP ignore label, TFTP outcome, HTTP 404 reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Str>,
    /// HTTP path or TFTP file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Str>,
    /// The endpoint's name in text.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "endpoint_text"
    )]
    pub endpoint: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "name_text")]
    pub iface: Option<Name>,
    /// Option 93 architecture (`7 (EFI x64)` in text).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "arch_text")]
    pub arch: Option<u16>,
    /// `bios_pxe`, `uefi_pxe`, `uefi_http`, `ipxe` in text.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "firmware_text"
    )]
    pub firmware: Option<Firmware>,
    /// DHCP message type (`discover`, `request`, `offer`, `ack` in text).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "message_text"
    )]
    pub message: Option<MessageType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_class: Option<Str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_class: Option<Str>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "name_text")]
    pub group: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "name_text")]
    pub profile: Option<Name>,
    /// Identical events that followed this one (an iPXE retry loop, a
    /// client polling): counted here instead of stored again. Repeats since
    /// the last restart are not journaled.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeats: u64,
    /// Time of the last repeat (Unix ms), when `repeats > 0`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub last_ts: u64,
    /// Arrival order inside this process (orders events of the same
    /// millisecond); not journaled: a replay numbers events in journal order.
    #[serde(skip)]
    pub seq: u64,
}

/// A MAC as its canonical text in the journal and the API. A line whose MAC is not a
/// 6-byte address (none is written any more) reads as unattributed.
mod mac_text {
    use kindling_model::MacAddr;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(mac: &Option<MacAddr>, s: S) -> Result<S::Ok, S::Error> {
        match mac {
            Some(m) => s.collect_str(m),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MacAddr>, D::Error> {
        let text = Option::<compact_str::CompactString>::deserialize(d)?;
        Ok(text.and_then(|t| MacAddr::parse(&t).ok()))
    }
}

/// The firmware of a `label()` (`None`: not one of them).
pub fn firmware_from_label(s: &str) -> Option<Firmware> {
    [
        Firmware::Ipxe,
        Firmware::BiosPxe,
        Firmware::UefiPxe,
        Firmware::UefiHttp,
    ]
    .into_iter()
    .find(|f| f.label() == s)
}

/// The DHCP message type of a `label()` (`other` reads as `Other(0)`).
pub fn message_from_label(s: &str) -> Option<MessageType> {
    (1..=8)
        .chain([0])
        .map(MessageType::from_u8)
        .find(|m| m.label() == s)
}

/// `7 (EFI x64)`: option 93 with its name (the common ones made once).
pub fn arch_label(a: u16) -> Str {
    static KNOWN: std::sync::OnceLock<Vec<Str>> = std::sync::OnceLock::new();
    fn make(a: u16) -> Str {
        kindling_dhcp::policy::describe_arch(a).into()
    }
    let known = KNOWN.get_or_init(|| (0..64).map(make).collect());
    match known.get(usize::from(a)) {
        Some(s) => s.clone(),
        None => make(a),
    }
}

/// The option 93 code of an [`arch_label`] (its leading number).
pub fn arch_from_label(s: &str) -> Option<u16> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.get(..end)?.parse().ok()
}

/// The architecture as its [`arch_label`] in the journal and the API.
mod arch_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u16>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(a) => s.serialize_str(&super::arch_label(*a)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
        let text = Option::<compact_str::CompactString>::deserialize(d)?;
        Ok(text.and_then(|t| super::arch_from_label(&t)))
    }
}

/// A [`Name`] as its text in the journal and the API, shared when read.
mod name_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<super::Name>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_str(n),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<super::Name>, D::Error> {
        let text = Option::<compact_str::CompactString>::deserialize(d)?;
        Ok(text.map(|t| super::name(&t)))
    }
}

/// An enum field as its label in the journal and the API; an unknown label reads as
/// absent.
macro_rules! label_serde {
    ($name:ident, $ty:ty, $parse:path) => {
        mod $name {
            use serde::{Deserialize, Deserializer, Serializer};

            pub fn serialize<S: Serializer>(v: &Option<$ty>, s: S) -> Result<S::Ok, S::Error> {
                match v {
                    Some(v) => s.serialize_str(v.label()),
                    None => s.serialize_none(),
                }
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$ty>, D::Error> {
                let text = Option::<compact_str::CompactString>::deserialize(d)?;
                Ok(text.and_then(|t| $parse(&t)))
            }
        }
    };
}

label_serde!(
    firmware_text,
    kindling_dhcp::Firmware,
    super::firmware_from_label
);
label_serde!(endpoint_text, super::Endpoint, super::Endpoint::from_label);
label_serde!(
    message_text,
    kindling_dhcp::wire::MessageType,
    super::message_from_label
);

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Event {
    /// Whether `other` is the same thing happening again (same kind, stage,
    /// outcome, request, reason and client firmware), so it can be counted as a repeat.
    pub fn same_as(&self, other: &Event) -> bool {
        self.kind == other.kind
            && self.stage == other.stage
            && self.firmware == other.firmware
            && self.message == other.message
            && self.ok == other.ok
            && self.what == other.what
            && self.status == other.status
            && self.reason == other.reason
            && self.endpoint == other.endpoint
            && self.path == other.path
    }

    /// An event with only the mandatory fields set.
    pub fn new(ts: u64, kind: Kind, what: impl Into<Str>) -> Event {
        Event {
            ts,
            kind,
            mac: None,
            ip: None,
            stage: None,
            ok: true,
            what: what.into(),
            reason: None,
            path: None,
            endpoint: None,
            status: None,
            bytes: None,
            duration_ms: None,
            iface: None,
            arch: None,
            firmware: None,
            message: None,
            vendor_class: None,
            user_class: None,
            group: None,
            profile: None,
            repeats: 0,
            last_ts: 0,
            seq: 0,
        }
    }

    pub fn source(&self) -> Source {
        match self.kind {
            Kind::DhcpSeen | Kind::DhcpAnswered | Kind::DhcpIgnored => Source::Dhcp,
            Kind::TftpTransfer => Source::Tftp,
            Kind::HttpRequest => Source::Http,
        }
    }

    /// An iPXE DHCP DISCOVER (a new iPXE instance: chainloaded, or the VM's ROM).
    pub fn is_ipxe_discover(&self) -> bool {
        self.kind == Kind::DhcpSeen
            && self.message == Some(MessageType::Discover)
            && self.firmware == Some(Firmware::Ipxe)
    }

    /// A firmware (not iPXE) DHCP DISCOVER: the start of a new boot.
    pub fn is_firmware_discover(&self) -> bool {
        self.kind == Kind::DhcpSeen
            && self.message == Some(MessageType::Discover)
            && self.firmware.is_some_and(|f| f != Firmware::Ipxe)
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2026-11-25T19:40:01.123Z` (UTC).
pub fn format_ts(ms: u64) -> String {
    let secs = ms / 1000;
    let frac = ms % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// `19:40:01.123` (UTC time of day).
pub fn format_time(ms: u64) -> String {
    let s = format_ts(ms);
    s.get(11..23).unwrap_or("").to_string()
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `1.5 MiB`, `532 B`.
pub fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_one_shared_copy_per_value() {
        let a = name("kbr0");
        let b = name(&String::from("kbr0"));
        let c = std::thread::spawn(|| name("kbr0")).join().unwrap();
        assert!(std::sync::Arc::ptr_eq(&a, &b) && std::sync::Arc::ptr_eq(&a, &c));
        assert_eq!(&*name("eth1"), "eth1");
        assert!(!std::sync::Arc::ptr_eq(&a, &name("eth1")));
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_ts(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ts(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_ts(1_795_635_601_500), "2026-11-25T19:40:01.500Z");
        assert_eq!(format_time(1_795_635_601_500), "19:40:01.500");
    }

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(532), "532 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
