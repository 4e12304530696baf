//! The bounded in-memory store: machines by MAC, their last boots, IP -> MAC ties.
//! Sans-I/O: every input carries its own timestamp.
//!
//! Laid out for writes (every DHCP, TFTP and HTTP event), not reads (the API, the CLI,
//! the dashboard): a machine is one small record keyed by its MAC's 48 bits, its facts
//! packed into one block; a boot holds its events inline (`StoredEvent`: numbers plus
//! one packed block of texts, recurring texts as shared `Names`). The public
//! [`Machine`], [`Boot`] and [`Event`] are built from that on each read. About 330 bytes
//! per machine with one HTTP request (about 930 before), see
//! `examples/memory_per_machine.rs`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::classify::{ProfileMap, http_stage};
use crate::event::{Endpoint, Event, Kind, Source, Stage, Str, arch_label, format_ts, name};
use crate::packed::{Packed, number_bytes};
use kindling_dhcp::Firmware;
use kindling_dhcp::wire::MessageType;
use kindling_model::MacAddr;

/// How far back in a boot a repeated event is looked for (the longest retry cycle:
/// DISCOVER, OFFER, REQUEST, ACK).
const REPEAT_LOOKBACK: usize = 4;

/// Bounds of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Machines kept (the least recently seen is evicted).
    pub max_machines: usize,
    /// Boots kept per machine (oldest evicted).
    pub max_boots: usize,
    /// Events kept per boot (oldest evicted, counted in `dropped_events`).
    pub max_events: usize,
    /// A gap longer than this (ms) between two events of a machine starts a new boot.
    pub boot_gap_ms: u64,
    /// Events whose IP has no known MAC wait this long (ms) to be tied to one.
    pub pending_ttl_ms: u64,
    /// Client IPs with waiting events (oldest dropped).
    pub max_pending_ips: usize,
    /// Waiting events per IP.
    pub max_pending_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_machines: 10_000,
            max_boots: 5,
            max_events: 200,
            boot_gap_ms: 15 * 60 * 1000,
            pending_ttl_ms: 10 * 60 * 1000,
            max_pending_ips: 256,
            max_pending_events: 32,
        }
    }
}

/// The error that stopped a boot (so far).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootError {
    /// Stage at which it failed (`None`: a request that is no boot step).
    pub stage: Option<Stage>,
    pub message: String,
    pub ts: u64,
}

/// One boot of one machine, as readers get it (built from the store's compact form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Boot {
    pub started: u64,
    pub started_at: Str,
    pub last_event: u64,
    /// Furthest stage reached successfully.
    pub last_stage: Option<Stage>,
    /// The last failure not followed by a success at the same or a later stage.
    pub error: Option<BootError>,
    /// Events dropped from the front because of `max_events`.
    pub dropped_events: u64,
    pub events: VecDeque<Box<Event>>,
    /// Some event of this boot came from TFTP or HTTP (kept even if it was dropped).
    #[serde(skip)]
    saw_non_dhcp: bool,
    /// Some event of this boot reached the script stage or later.
    #[serde(skip)]
    saw_script: bool,
}

/// What is known about one machine, as readers get it ([`Store::machine`]; the store
/// keeps a compact form and builds this on each call).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub mac: Str,
    pub ip: Option<Str>,
    pub arch: Option<Str>,
    pub firmware: Option<Str>,
    pub vendor_class: Option<Str>,
    pub user_class: Option<Str>,
    pub group: Option<Str>,
    pub profile: Option<Str>,
    pub first_seen: u64,
    pub last_seen: u64,
    /// Oldest first.
    pub boots: VecDeque<Box<Boot>>,
}

/// One row of `kindling machines` / `/api/v1/machines`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineSummary {
    pub mac: String,
    pub ip: Option<String>,
    pub arch: Option<String>,
    pub firmware: Option<String>,
    pub group: Option<String>,
    pub profile: Option<String>,
    /// Furthest stage of the last boot.
    pub last_stage: Option<Stage>,
    pub last_seen: u64,
    pub last_seen_at: String,
    /// Why the last boot stopped, if it failed.
    pub last_error: Option<BootError>,
    pub boots: usize,
    pub last_boot_started: Option<u64>,
}

/// `/api/v1/machines/{mac}` and `kindling machines show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineDetail {
    #[serde(flatten)]
    pub summary: MachineSummary,
    pub vendor_class: Option<String>,
    pub user_class: Option<String>,
    pub first_seen: u64,
    /// Oldest first; events in time order.
    pub timeline: Vec<Boot>,
}

impl Machine {
    pub fn summary(&self) -> MachineSummary {
        let last = self.boots.back();
        MachineSummary {
            mac: self.mac.to_string(),
            ip: owned(&self.ip),
            arch: owned(&self.arch),
            firmware: owned(&self.firmware),
            group: owned(&self.group),
            profile: owned(&self.profile),
            last_stage: last.and_then(|b| b.last_stage),
            last_seen: self.last_seen,
            last_seen_at: format_ts(self.last_seen),
            last_error: last.and_then(|b| b.error.clone()),
            boots: self.boots.len(),
            last_boot_started: last.map(|b| b.started),
        }
    }

    pub fn detail(&self) -> MachineDetail {
        MachineDetail {
            summary: self.summary(),
            vendor_class: owned(&self.vendor_class),
            user_class: owned(&self.user_class),
            first_seen: self.first_seen,
            timeline: self.boots.iter().map(|b| (**b).clone()).collect(),
        }
    }
}

/// Texts that recur across machines (interface names, architectures, firmware, vendor
/// and user classes, profiles, DHCP summaries and boot files) kept once for the whole
/// store: a packed field then holds [`NAME_REF`] and the name's number (2 or 3 bytes)
/// instead of the text. Bounded ([`NAMES_MAX`] names of at most [`NAME_LEN_MAX`] bytes,
/// never forgotten): past that, texts are stored in place as before.
#[derive(Debug, Default)]
pub(crate) struct Names {
    ids: HashMap<Arc<str>, u32>,
    all: Vec<Arc<str>>,
    /// Names first seen in a text a client chose (vendor/user class, architecture).
    from_clients: usize,
}

/// First byte of a packed field that refers to a name (never the first byte of UTF-8).
const NAME_REF: u8 = 0xff;
const NAMES_MAX: usize = 4096;
/// Client-chosen texts may take at most this many names: spoofed DHCP packets with
/// random vendor classes cannot take the room the server's own texts need.
const CLIENT_NAMES_MAX: usize = NAMES_MAX / 2;
// References are one or two bytes of LEB128 after the marker.
const _: () = assert!(NAMES_MAX <= 1 << 14);
/// Shorter texts cost no more in place than as a reference.
const NAME_LEN_MIN: usize = 3;
const NAME_LEN_MAX: usize = 64;

/// A field's bytes: a name reference or the text itself.
#[derive(Clone, Copy)]
struct NameRef {
    buf: [u8; 3],
    len: u8,
}

impl NameRef {
    fn bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

/// Who chose a text: whether it may become a name, and from which share of the table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Intern {
    /// Differs per machine or request: kept in place.
    No,
    /// Kindling's own texts (labels, interfaces, files, endpoints, profiles).
    Server,
    /// Texts from client packets (vendor and user class, architecture).
    Client,
}

impl Names {
    /// The reference to `s`, made a name if there is room (in `who`'s share).
    fn intern(&mut self, s: &str, who: Intern) -> Option<NameRef> {
        if who == Intern::No || !(NAME_LEN_MIN..=NAME_LEN_MAX).contains(&s.len()) {
            return None;
        }
        let id = match self.ids.get(s) {
            Some(id) => *id,
            None => {
                if self.all.len() >= NAMES_MAX
                    || (who == Intern::Client && self.from_clients >= CLIENT_NAMES_MAX)
                {
                    return None;
                }
                if who == Intern::Client {
                    self.from_clients += 1;
                }
                let id = u32::try_from(self.all.len()).ok()?;
                let name: Arc<str> = Arc::from(s);
                self.ids.insert(name.clone(), id);
                self.all.push(name);
                id
            }
        };
        // NAMES_MAX < 2^14: two bytes of LEB128 at most.
        let (buf, len) = if id < 0x80 {
            ([NAME_REF, id as u8, 0], 2)
        } else {
            ([NAME_REF, (id as u8) | 0x80, (id >> 7) as u8], 3)
        };
        Some(NameRef { buf, len })
    }

    /// The text of a packed field (a name reference resolved).
    fn text<'a>(&'a self, field: &'a [u8]) -> Option<&'a str> {
        match field {
            [NAME_REF, rest @ ..] => {
                let id = match rest {
                    [lo] if lo & 0x80 == 0 => usize::from(*lo),
                    [lo, hi] => usize::from(lo & 0x7f) | (usize::from(*hi) << 7),
                    _ => return None,
                };
                self.all.get(id).map(|n| &**n)
            }
            _ => std::str::from_utf8(field).ok(),
        }
    }
}

/// Fields of a [`StoredEvent`]'s packed part.
mod ef {
    pub const WHAT: usize = 0;
    pub const IP: usize = 1;
    pub const REASON: usize = 2;
    pub const PATH: usize = 3;
    pub const IFACE: usize = 4;
    pub const VENDOR_CLASS: usize = 5;
    pub const USER_CLASS: usize = 6;
    pub const GROUP: usize = 7;
    pub const PROFILE: usize = 8;
    /// Numbers: option 93, bytes, duration (bits of the f64).
    pub const ARCH: usize = 9;
    pub const BYTES: usize = 10;
    pub const DURATION: usize = 11;
    pub const COUNT: usize = 12;
    pub const TEXTS: usize = 9;
}

/// Facts of a [`MachineRec`] (its packed part).
mod mf {
    pub const IP: usize = 0;
    pub const ARCH: usize = 1;
    pub const FIRMWARE: usize = 2;
    pub const VENDOR_CLASS: usize = 3;
    pub const USER_CLASS: usize = 4;
    pub const GROUP: usize = 5;
    pub const PROFILE: usize = 6;
    pub const COUNT: usize = 7;
    use super::Intern::{Client, No, Server};
    /// Facts kept as [`Names`](super::Names) (the others differ per machine).
    pub const NAMED: [super::Intern; COUNT] = [No, Client, Server, Client, Client, No, Server];
}

/// An event as the store keeps it in a boot: the numbers inline, every optional text
/// (and `bytes`, `duration_ms`) packed into one heap block, recurring texts as
/// [`Names`], no MAC (the machine's key). 56 bytes plus the block, where an [`Event`] is
/// about 460 bytes. Readers get an [`Event`] back ([`Store::machine`],
/// [`MachineDetail`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredEvent {
    pub ts: u64,
    pub last_ts: u64,
    pub seq: u64,
    /// Saturates (four billion retries of one event).
    pub repeats: u32,
    text: Packed,
    status: Option<u16>,
    kind: Kind,
    stage: Option<Stage>,
    ok: bool,
    firmware: Option<Firmware>,
    message: Option<MessageType>,
    endpoint: Option<Endpoint>,
}

const _: () = assert!(std::mem::size_of::<StoredEvent>() <= 56);
// A field past the packed block's capacity would be dropped silently.
const _: () =
    assert!(ef::COUNT <= crate::packed::MAX_FIELDS && mf::COUNT <= crate::packed::MAX_FIELDS);

impl StoredEvent {
    fn from_event(ev: &Event, names: &mut Names) -> StoredEvent {
        // DHCP texts come from a few message types, ports, files and rules; HTTP and
        // TFTP requests and reasons can be anything.
        let dhcp = ev.source() == Source::Dhcp;
        use Intern::{Client, No, Server};
        let dhcp = if dhcp { Server } else { No };
        let texts: [(Option<&str>, Intern); ef::TEXTS] = [
            (Some(ev.what.as_str()), dhcp),
            (ev.ip.as_deref(), No),
            (ev.reason.as_deref(), dhcp),
            (ev.path.as_deref(), dhcp),
            (ev.iface.as_deref(), Server),
            (ev.vendor_class.as_deref(), Client),
            (ev.user_class.as_deref(), Client),
            (ev.group.as_deref(), No),
            (ev.profile.as_deref(), Server),
        ];
        let mut refs: [Option<NameRef>; ef::TEXTS] = [None; ef::TEXTS];
        for ((text, who), r) in texts.iter().zip(refs.iter_mut()) {
            if let Some(t) = text {
                *r = names.intern(t, *who);
            }
        }
        let arch = ev.arch.map(|a| number_bytes(a.into()));
        let bytes = ev.bytes.map(number_bytes);
        let duration = ev.duration_ms.map(|d| d.to_bits().to_le_bytes());
        let mut f: [Option<&[u8]>; ef::COUNT] = [None; ef::COUNT];
        for (slot, ((text, _), r)) in f.iter_mut().zip(texts.iter().zip(refs.iter())) {
            *slot = match r {
                Some(r) => Some(r.bytes()),
                None => text.map(str::as_bytes),
            };
        }
        f[ef::ARCH] = arch.as_ref().and_then(|(b, n)| b.get(..*n));
        f[ef::BYTES] = bytes.as_ref().and_then(|(b, n)| b.get(..*n));
        f[ef::DURATION] = duration.as_ref().map(|d| &d[..]);
        StoredEvent {
            ts: ev.ts,
            last_ts: ev.last_ts,
            seq: ev.seq,
            repeats: u32::try_from(ev.repeats).unwrap_or(u32::MAX),
            text: Packed::build(&f),
            status: ev.status,
            kind: ev.kind,
            stage: ev.stage,
            ok: ev.ok,
            firmware: ev.firmware,
            message: ev.message,
            endpoint: ev.endpoint,
        }
    }

    /// The event, as it was ingested (with its repeats), for the machine `mac`.
    fn to_event(&self, mac: MacAddr, names: &Names) -> Event {
        let f = self.text.unpack::<{ ef::COUNT }>();
        let text = |i: usize| f[i].and_then(|b| names.text(b));
        let s = |i: usize| text(i).map(Str::from);
        let n = |i: usize| self.text.number(i);
        Event {
            ts: self.ts,
            kind: self.kind,
            mac: Some(mac),
            ip: s(ef::IP),
            stage: self.stage,
            ok: self.ok,
            what: s(ef::WHAT).unwrap_or_default(),
            reason: s(ef::REASON),
            path: s(ef::PATH),
            endpoint: self.endpoint,
            status: self.status,
            bytes: n(ef::BYTES),
            duration_ms: n(ef::DURATION).map(f64::from_bits),
            iface: text(ef::IFACE).map(name),
            arch: n(ef::ARCH).and_then(|a| u16::try_from(a).ok()),
            firmware: self.firmware,
            message: self.message,
            vendor_class: s(ef::VENDOR_CLASS),
            user_class: s(ef::USER_CLASS),
            group: text(ef::GROUP).map(name),
            profile: text(ef::PROFILE).map(name),
            repeats: self.repeats.into(),
            last_ts: self.last_ts,
            seq: self.seq,
        }
    }

    /// [`Event::same_as`] between this stored event and `other`.
    fn same_as(&self, other: &Event, names: &Names) -> bool {
        if !(self.kind == other.kind
            && self.stage == other.stage
            && self.ok == other.ok
            && self.status == other.status)
        {
            return false;
        }
        let f = self.text.unpack::<{ ef::PATH + 1 }>();
        let text = |i: usize| f[i].and_then(|b| names.text(b));
        let is = |i: usize, v: &Option<Str>| text(i) == v.as_deref();
        text(ef::WHAT) == Some(other.what.as_str())
            && self.firmware == other.firmware
            && self.message == other.message
            && is(ef::REASON, &other.reason)
            && self.endpoint == other.endpoint
            && is(ef::PATH, &other.path)
    }
}

/// A boot as the store keeps it (see [`Boot`] for the fields).
#[derive(Debug, Clone)]
struct StoredBoot {
    started: u64,
    last_event: u64,
    dropped_events: u64,
    /// Boxed: most boots have none.
    error: Option<Box<BootError>>,
    events: VecDeque<StoredEvent>,
    last_stage: Option<Stage>,
    /// Some event of this boot came from TFTP or HTTP (kept even if it was dropped).
    saw_non_dhcp: bool,
    /// Some event of this boot reached the script stage or later.
    saw_script: bool,
}

impl StoredBoot {
    fn new(ts: u64) -> StoredBoot {
        StoredBoot {
            started: ts,
            last_event: ts,
            dropped_events: 0,
            error: None,
            events: VecDeque::new(),
            last_stage: None,
            saw_non_dhcp: false,
            saw_script: false,
        }
    }

    fn to_boot(&self, mac: MacAddr, names: &Names) -> Boot {
        Boot {
            started: self.started,
            started_at: format_ts(self.started).into(),
            last_event: self.last_event,
            last_stage: self.last_stage,
            error: self.error.as_deref().cloned(),
            dropped_events: self.dropped_events,
            events: self
                .events
                .iter()
                .map(|e| Box::new(e.to_event(mac, names)))
                .collect(),
            saw_non_dhcp: self.saw_non_dhcp,
            saw_script: self.saw_script,
        }
    }

    /// Got past DHCP (successfully or not): a new firmware DISCOVER is then a new boot.
    fn beyond_dhcp(&self) -> bool {
        self.last_stage.is_some_and(|s| s > Stage::Dhcp) || self.saw_non_dhcp
    }

    /// Got to a boot script (or further): iPXE only asks DHCP again when it starts anew.
    fn reached_script(&self) -> bool {
        self.last_stage.is_some_and(|s| s >= Stage::Script) || self.saw_script
    }

    /// Whether an event at `ts` (a firmware / an iPXE DHCP DISCOVER or not) starts a new
    /// boot after this one.
    fn ends_before(&self, ts: u64, gap: u64, firmware_discover: bool, ipxe_discover: bool) -> bool {
        ts.saturating_sub(self.last_event) > gap
            || (firmware_discover && self.beyond_dhcp())
            || (ipxe_discover && self.reached_script())
    }

    /// The event among the last few that `is_it` picks as repeated, with its position
    /// from the back.
    fn repeated(
        &mut self,
        is_it: impl Fn(&StoredEvent) -> bool,
    ) -> Option<(usize, &mut StoredEvent)> {
        self.events
            .iter_mut()
            .rev()
            .take(REPEAT_LOOKBACK)
            .enumerate()
            .find(|(_, e)| is_it(e))
    }

    /// A success at `st`: the furthest stage moves on, an earlier failure is over.
    fn reached(&mut self, st: Stage) {
        self.last_stage = Some(self.last_stage.map_or(st, |s| s.max(st)));
        if self
            .error
            .as_ref()
            .is_some_and(|e| e.stage.is_none_or(|es| st >= es))
        {
            self.error = None;
        }
    }

    /// Notes what a stored event says about how far the boot got.
    fn note(&mut self, ev: &Event) {
        self.saw_non_dhcp |= ev.source() != Source::Dhcp;
        self.saw_script |= ev.stage.is_some_and(|s| s >= Stage::Script);
    }
}

/// Room for one more element: exactly one for the first few (most machines have one
/// boot of a few events), doubling after that.
fn room_for_one<T>(q: &mut VecDeque<T>) {
    if q.len() == q.capacity() && q.len() < 4 {
        q.reserve_exact(1);
    }
}

/// A machine as the store keeps it (its MAC is the key): facts packed into one block.
#[derive(Debug, Clone)]
struct MachineRec {
    first_seen: u64,
    last_seen: u64,
    facts: Packed,
    /// Oldest first.
    boots: VecDeque<StoredBoot>,
}

impl MachineRec {
    fn new(ts: u64) -> MachineRec {
        MachineRec {
            first_seen: ts,
            last_seen: ts,
            facts: Packed::default(),
            boots: VecDeque::new(),
        }
    }

    fn fact<'a>(&'a self, i: usize, names: &'a Names) -> Option<&'a str> {
        self.facts.get(i).and_then(|b| names.text(b))
    }

    /// Sets each fact `(i, Some(v))` to `v` when it differs (the block is rebuilt only
    /// then: a storm repeats the same facts).
    fn set_facts(&mut self, new: &[(usize, Option<&str>)], names: &mut Names) {
        let mut f = self.facts.unpack::<{ mf::COUNT }>();
        let changed = new.iter().any(|(i, v)| {
            v.is_some_and(|v| f.get(*i).copied().flatten().and_then(|b| names.text(b)) != Some(v))
        });
        if !changed {
            return;
        }
        let mut refs: [Option<NameRef>; mf::COUNT] = [None; mf::COUNT];
        for (i, v) in new {
            if let Some(v) = v
                && let Some(named) = mf::NAMED.get(*i)
                && let Some(r) = refs.get_mut(*i)
            {
                *r = names.intern(v, *named);
            }
        }
        for (i, v) in new {
            if let (Some(v), Some(slot), Some(r)) = (v, f.get_mut(*i), refs.get(*i)) {
                *slot = Some(match r {
                    Some(r) => r.bytes(),
                    None => v.as_bytes(),
                });
            }
        }
        let facts = Packed::build(&f);
        self.facts = facts;
    }

    fn summary(&self, mac: MacAddr, names: &Names) -> MachineSummary {
        let owned = |i: usize| self.fact(i, names).map(str::to_string);
        let last = self.boots.back();
        MachineSummary {
            mac: mac.to_string(),
            ip: owned(mf::IP),
            arch: owned(mf::ARCH),
            firmware: owned(mf::FIRMWARE),
            group: owned(mf::GROUP),
            profile: owned(mf::PROFILE),
            last_stage: last.and_then(|b| b.last_stage),
            last_seen: self.last_seen,
            last_seen_at: format_ts(self.last_seen),
            last_error: last.and_then(|b| b.error.as_deref().cloned()),
            boots: self.boots.len(),
            last_boot_started: last.map(|b| b.started),
        }
    }

    fn detail(&self, mac: MacAddr, names: &Names) -> MachineDetail {
        let owned = |i: usize| self.fact(i, names).map(str::to_string);
        MachineDetail {
            summary: self.summary(mac, names),
            vendor_class: owned(mf::VENDOR_CLASS),
            user_class: owned(mf::USER_CLASS),
            first_seen: self.first_seen,
            timeline: self.boots.iter().map(|b| b.to_boot(mac, names)).collect(),
        }
    }

    fn to_machine(&self, mac: MacAddr, names: &Names) -> Machine {
        let s = |i: usize| self.fact(i, names).map(Str::from);
        Machine {
            mac: Str::from(mac.to_string()),
            ip: s(mf::IP),
            arch: s(mf::ARCH),
            firmware: s(mf::FIRMWARE),
            vendor_class: s(mf::VENDOR_CLASS),
            user_class: s(mf::USER_CLASS),
            group: s(mf::GROUP),
            profile: s(mf::PROFILE),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            boots: self
                .boots
                .iter()
                .map(|b| Box::new(b.to_boot(mac, names)))
                .collect(),
        }
    }
}

/// The store.
#[derive(Debug, Default)]
pub struct Store {
    limits: Limits,
    /// Boxed records: the table holds a key and a pointer per slot, not a whole machine.
    machines: HashMap<MacAddr, Box<MachineRec>>,
    /// Texts shared by the machines' events and facts.
    names: Names,
    /// Client IP -> (MAC, when learned).
    ip_to_mac: HashMap<Str, (MacAddr, u64)>,
    /// Events from IPs with no known MAC yet: IP -> (first arrival, events).
    /// Kept in the stored form (without their MAC, which they have not got yet).
    pending: HashMap<String, (u64, VecDeque<StoredEvent>)>,
    /// Arrival counter (see `Event::seq`).
    next_seq: u64,
    profiles: ProfileMap,
    /// Events dropped without a machine (pending expired or overflowed).
    pub unattributed: u64,
    /// DHCP events counted as repeats of a stored event (a retry loop).
    pub dhcp_repeats: u64,
}

impl Store {
    pub fn new(limits: Limits) -> Store {
        Store {
            limits,
            ..Store::default()
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Replaces the profile -> asset paths map (on every reload).
    pub fn set_profiles(&mut self, profiles: ProfileMap) {
        self.profiles = profiles;
    }

    pub fn mac_for_ip(&self, ip: &str) -> Option<MacAddr> {
        self.ip_to_mac.get(ip).map(|(m, _)| *m)
    }

    /// Everything known about `mac` (text, any form `MacAddr::parse` takes), built from
    /// the stored form (reads are rare: the store is laid out for writes).
    pub fn machine(&self, mac: &str) -> Option<Machine> {
        let mac = MacAddr::parse(mac).ok()?;
        let m = self.machines.get(&mac)?;
        Some(m.to_machine(mac, &self.names))
    }

    /// `machine(mac)?.detail()` without the copy in between.
    pub fn detail(&self, mac: &str) -> Option<MachineDetail> {
        let mac = MacAddr::parse(mac).ok()?;
        let m = self.machines.get(&mac)?;
        Some(m.detail(mac, &self.names))
    }

    /// `machine(mac)?.summary()` without building the timeline.
    pub fn summary(&self, mac: MacAddr) -> Option<MachineSummary> {
        let m = self.machines.get(&mac)?;
        Some(m.summary(mac, &self.names))
    }

    /// The newest stored event of `mac`'s last boot, with its MAC.
    pub fn last_event(&self, mac: MacAddr) -> Option<Event> {
        let m = self.machines.get(&mac)?;
        let e = m.boots.back()?.events.back()?;
        Some(e.to_event(mac, &self.names))
    }

    pub fn machine_count(&self) -> usize {
        self.machines.len()
    }

    /// Summaries, most recently seen first.
    pub fn summaries(&self) -> Vec<MachineSummary> {
        let mut v: Vec<MachineSummary> = self
            .machines
            .iter()
            .map(|(mac, m)| m.summary(*mac, &self.names))
            .collect();
        v.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.mac.cmp(&b.mac)));
        v
    }

    /// Ties `ip` to `mac` (later ties win).
    pub fn learn_ip(&mut self, ip: &str, mac: MacAddr, ts: u64) {
        if ip.is_empty() || ip == "0.0.0.0" {
            return;
        }
        self.ip_to_mac.insert(ip.into(), (mac, ts));
        let cap = self.limits.max_machines.saturating_mul(4).max(16);
        if self.ip_to_mac.len() > cap
            && let Some(oldest) = self
                .ip_to_mac
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
        {
            self.ip_to_mac.remove(&oldest);
        }
    }

    /// Takes a live event. Events without a MAC are tied through their IP or kept
    /// pending until the IP is learned. Returns the events now attributed to a machine,
    /// in the order they were applied (journal and broadcast these).
    pub fn ingest(&mut self, mut ev: Event) -> Vec<Event> {
        self.next_seq += 1;
        ev.seq = self.next_seq;
        self.expire_pending(ev.ts);
        if ev.mac.is_none() {
            let Some(ip) = ev.ip.as_deref().map(str::to_string) else {
                self.unattributed += 1;
                return Vec::new();
            };
            match self.mac_for_ip(&ip) {
                Some(m) => ev.mac = Some(m),
                None => {
                    self.park(ip, ev);
                    return Vec::new();
                }
            }
        }
        let (newly_tied, inserted) = self.apply(&mut ev);
        let mut out = Vec::new();
        if let Some((ip, mac)) = newly_tied
            && let Some((_, waiting)) = self.pending.remove(&ip)
        {
            // The waiting events arrived earlier (lower seq): apply() places them
            // by (time, arrival) before the event that tied their IP.
            for w in waiting {
                let mut w = w.to_event(mac, &self.names);
                if self.apply(&mut w).1 {
                    out.push(w);
                }
            }
        }
        // Journal in arrival order, so a replay rebuilds the same timeline.
        // A repeat (counted on the previous event) is neither journaled nor
        // broadcast: a machine in a retry loop costs no memory and no disk.
        if inserted {
            out.push(ev);
        }
        out
    }

    /// Re-applies a journaled event (MAC already set) at start-up.
    pub fn replay(&mut self, mut ev: Event) {
        if ev.mac.is_some() {
            self.next_seq += 1;
            ev.seq = self.next_seq;
            self.apply(&mut ev);
        }
    }

    fn park(&mut self, ip: String, ev: Event) {
        let ts = ev.ts;
        if !self.pending.contains_key(&ip)
            && self.pending.len() >= self.limits.max_pending_ips
            && let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone())
            && let Some((_, q)) = self.pending.remove(&oldest)
        {
            self.unattributed += q.len() as u64;
        }
        let entry = self
            .pending
            .entry(ip)
            .or_insert_with(|| (ts, VecDeque::new()));
        entry
            .1
            .push_back(StoredEvent::from_event(&ev, &mut self.names));
        if entry.1.len() > self.limits.max_pending_events {
            entry.1.pop_front();
            self.unattributed += 1;
        }
    }

    /// Drops waiting events older than the TTL.
    pub fn expire_pending(&mut self, now: u64) {
        let ttl = self.limits.pending_ttl_ms;
        let mut dropped = 0u64;
        self.pending.retain(|_, (first, q)| {
            if now.saturating_sub(*first) > ttl {
                dropped += q.len() as u64;
                false
            } else {
                true
            }
        });
        self.unattributed += dropped;
    }

    /// Number of events waiting for their IP to be tied to a MAC.
    pub fn pending_events(&self) -> usize {
        self.pending.values().map(|(_, q)| q.len()).sum()
    }

    /// Applies an event that has a MAC. Fills in the stage of asset requests from the
    /// machine's profile. Returns `(ip, mac)` when this event tied a new IP.
    /// Applies one event to its machine: returns the (ip, mac) pair it newly
    /// tied, and whether it was stored (false: counted as a repeat).
    fn apply(&mut self, ev: &mut Event) -> (Option<(String, MacAddr)>, bool) {
        let Some(mac) = ev.mac else {
            return (None, false);
        };
        let ts = ev.ts;
        if !self.machines.contains_key(&mac) {
            self.evict_for_new();
            self.machines.insert(mac, Box::new(MachineRec::new(ts)));
        }
        let Some(m) = self.machines.get_mut(&mac) else {
            return (None, false);
        };
        // Stage of asset downloads: by the profile this machine got.
        if ev.kind == Kind::HttpRequest && ev.stage.is_none() {
            let path = ev.path.as_deref().unwrap_or("");
            let profile = ev.profile.as_deref().or(m.fact(mf::PROFILE, &self.names));
            let paths = profile.and_then(|p| self.profiles.get(p));
            ev.stage = ev.endpoint.and_then(|e| http_stage(e, path, paths));
        }
        // Machine facts (copied only when they change: a storm repeats them).
        m.last_seen = m.last_seen.max(ts);
        let ip = ev.ip.as_deref().filter(|i| *i != "0.0.0.0");
        let firmware = ev
            .firmware
            .filter(|f| *f != Firmware::Ipxe || m.fact(mf::FIRMWARE, &self.names).is_none())
            .map(Firmware::label);
        let arch = ev.arch.map(arch_label);
        m.set_facts(
            &[
                (mf::IP, ip),
                (mf::ARCH, arch.as_deref()),
                (mf::FIRMWARE, firmware),
                (mf::VENDOR_CLASS, ev.vendor_class.as_deref()),
                (mf::USER_CLASS, ev.user_class.as_deref()),
                (mf::GROUP, ev.group.as_deref()),
                (mf::PROFILE, ev.profile.as_deref()),
            ],
            &mut self.names,
        );
        let mut tied = None;
        if let Some(ip) = ip {
            let known = match self.ip_to_mac.get_mut(ip) {
                Some((x, t)) if *x == mac => {
                    *t = (*t).max(ts);
                    true
                }
                _ => false,
            };
            if !known {
                self.learn_ip(ip, mac, ts);
                tied = Some((ip.to_string(), mac));
            }
        }
        let limits = self.limits;
        let Some(m) = self.machines.get_mut(&mac) else {
            return (tied, false);
        };
        // Boot splitting.
        let new_boot = match m.boots.back() {
            None => true,
            Some(b) => b.ends_before(
                ts,
                limits.boot_gap_ms,
                ev.is_firmware_discover(),
                ev.is_ipxe_discover(),
            ),
        };
        if new_boot {
            room_for_one(&mut m.boots);
            m.boots.push_back(StoredBoot::new(ts));
            while m.boots.len() > limits.max_boots.max(1) {
                m.boots.pop_front();
            }
        }
        let Some(boot) = m.boots.back_mut() else {
            return (tied, false);
        };
        boot.last_event = boot.last_event.max(ts);
        // Stage and error bookkeeping first: a repeat still says where the boot is.
        if ev.ok {
            if let Some(st) = ev.stage
                && ev.kind != Kind::DhcpSeen
            {
                boot.reached(st);
            }
        } else {
            let mut message = ev.what.to_string();
            if let Some(r) = &ev.reason {
                message.push_str(": ");
                message.push_str(r);
            }
            boot.error = Some(Box::new(BootError {
                stage: ev.stage,
                message,
                ts,
            }));
        }
        // A retry loop (one event, or a cycle such as DISCOVER/OFFER or
        // DISCOVER/OFFER/REQUEST/ACK) is counted on the event it repeats instead of
        // being stored again: a machine stuck in a loop costs no memory and no disk.
        if !new_boot
            && let Some((_, prev)) = boot.repeated(|e| e.same_as(ev, &self.names))
            && prev.seq < ev.seq
            && prev.ts <= ts
        {
            prev.repeats = prev.repeats.saturating_add(1);
            prev.last_ts = ts;
            if ev.source() == Source::Dhcp {
                self.dhcp_repeats += 1;
            }
            return (tied, false);
        }
        // Keep time order (events tied late may be older than the newest).
        let pos = boot
            .events
            .iter()
            .rposition(|e| (e.ts, e.seq) <= (ts, ev.seq))
            .map(|p| p + 1)
            .unwrap_or(0);
        boot.note(ev);
        room_for_one(&mut boot.events);
        boot.events
            .insert(pos, StoredEvent::from_event(ev, &mut self.names));
        while boot.events.len() > limits.max_events.max(1) {
            boot.events.pop_front();
            boot.dropped_events += 1;
        }
        (tied, true)
    }

    /// Makes room for a new machine. Evicts the least recently seen eighth
    /// of the store in one pass, so a storm of new machines costs O(log n)
    /// per machine instead of a scan each.
    fn evict_for_new(&mut self) {
        let max = self.limits.max_machines.max(1);
        if self.machines.len() < max {
            return;
        }
        let target = max - (max / 8).max(1);
        let mut by_age: Vec<(u64, MacAddr)> = self
            .machines
            .iter()
            .map(|(mac, m)| (m.last_seen, *mac))
            .collect();
        by_age.sort_unstable();
        let excess = self.machines.len() - target.min(self.machines.len());
        let gone: std::collections::HashSet<MacAddr> = by_age
            .into_iter()
            .take(excess)
            .map(|(_, mac)| mac)
            .collect();
        for mac in &gone {
            self.machines.remove(mac);
        }
        self.ip_to_mac.retain(|_, (m, _)| !gone.contains(m));
    }
}

fn owned(s: &Option<Str>) -> Option<String> {
    s.as_deref().map(str::to_string)
}

impl Store {
    /// Stage of an `/assets/` download for the machine behind `mac` or `ip`.
    pub fn asset_stage(&self, mac: Option<MacAddr>, ip: &str, path: &str) -> Option<Stage> {
        let mac = mac.or_else(|| self.mac_for_ip(ip))?;
        let m = self.machines.get(&mac)?;
        let pp = m
            .fact(mf::PROFILE, &self.names)
            .and_then(|p| self.profiles.get(p));
        http_stage(Endpoint::Assets, path, pp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Event {
        let mut e = Event::new(
            1_795_000_000_123,
            Kind::HttpRequest,
            "GET /ipxe?mac=52-54-00-00-27-0f",
        );
        e.mac = kindling_model::MacAddr::parse("52:54:00:00:27:0f").ok();
        e.ip = Some("127.0.0.1".into());
        e.stage = Some(Stage::Script);
        e.ok = false;
        e.reason = Some("r".repeat(200).into());
        e.path = Some("/ipxe".into());
        e.endpoint = Some(Endpoint::Ipxe);
        e.status = Some(404);
        e.bytes = Some(600);
        e.duration_ms = Some(0.123_456_789);
        e.iface = Some("eth0".into());
        e.arch = Some(7);
        e.firmware = Some(Firmware::UefiHttp);
        e.message = Some(MessageType::Discover);
        e.vendor_class = Some("PXEClient:Arch:00007:UNDI:003016".into());
        e.user_class = Some("iPXE,x".into());
        e.group = Some("node-42".into());
        e.profile = Some("profile-2".into());
        e.repeats = 3;
        e.last_ts = 1_795_000_009_000;
        e.seq = 77;
        e
    }

    #[test]
    fn stored_events_give_back_the_same_event() {
        let mac = MacAddr([0x52, 0x54, 0, 0, 0x27, 0x0f]);
        let e = full();
        for dhcp in [false, true] {
            let mut e = e.clone();
            if dhcp {
                e.kind = Kind::DhcpAnswered;
            }
            // Fresh names, names known already, no room for names.
            let mut names = Names::default();
            let once = StoredEvent::from_event(&e, &mut names);
            let twice = StoredEvent::from_event(&e, &mut names);
            assert_eq!(once, twice);
            assert_eq!(once.to_event(mac, &names), e);
            let mut full_names = Names::default();
            for i in 0..NAMES_MAX {
                full_names.intern(&format!("name {i}"), Intern::Server);
            }
            assert!(full_names.intern("one more", Intern::Server).is_none());
            let raw = StoredEvent::from_event(&e, &mut full_names);
            assert_eq!(raw.to_event(mac, &full_names), e);
            assert!(
                raw.text
                    .get(ef::VENDOR_CLASS)
                    .is_some_and(|b| b.first() != Some(&NAME_REF))
            );
            assert!(
                once.text
                    .get(ef::VENDOR_CLASS)
                    .is_some_and(|b| b.first() == Some(&NAME_REF))
            );
        }
        // Client texts get half of the table; Kindling's own texts keep the rest.
        let mut names = Names::default();
        for i in 0..NAMES_MAX {
            names.intern(&format!("PXEClient:spoof:{i}"), Intern::Client);
        }
        assert_eq!(names.all.len(), CLIENT_NAMES_MAX);
        assert!(names.intern("PXEClient:spoof:0", Intern::Client).is_some());
        assert!(names.intern("PXEClient:new", Intern::Client).is_none());
        assert!(
            names
                .intern("OFFER undionly.kpxe", Intern::Server)
                .is_some()
        );
        assert!(names.intern("GET /ipxe?mac=x", Intern::No).is_none());
        let mut names = Names::default();
        // Names past the first 128 take two bytes.
        for i in 0..300 {
            names.intern(&format!("name {i}"), Intern::Server);
        }
        // Every field absent but the mandatory ones; odd numbers.
        let mut bare = Event::new(0, Kind::DhcpSeen, "");
        bare.mac = Some(mac);
        assert_eq!(
            StoredEvent::from_event(&bare, &mut names).to_event(mac, &names),
            bare
        );
        for (bytes, d) in [(0, 0.0), (u64::MAX, -0.0), (1 << 40, f64::MAX)] {
            let mut x = bare.clone();
            x.bytes = Some(bytes);
            x.duration_ms = Some(d);
            let back = StoredEvent::from_event(&x, &mut names).to_event(mac, &names);
            assert_eq!(back.bytes, Some(bytes));
            assert_eq!(back.duration_ms.map(f64::to_bits), Some(d.to_bits()));
        }
        let json = |e: &Event| serde_json::to_string(e).unwrap_or_default();
        let back = StoredEvent::from_event(&e, &mut names).to_event(mac, &names);
        assert_eq!(json(&back), json(&e));
    }

    #[test]
    fn stored_same_as_is_event_same_as() {
        let mut a = full();
        a.kind = Kind::DhcpSeen;
        let mut names = Names::default();
        let stored = StoredEvent::from_event(&a, &mut names);
        let mut variants = vec![a.clone()];
        let mut v = a.clone();
        v.kind = Kind::DhcpAnswered;
        variants.push(v);
        let mut v = a.clone();
        v.stage = None;
        variants.push(v);
        let mut v = a.clone();
        v.firmware = None;
        variants.push(v);
        let mut v = a.clone();
        v.message = Some(MessageType::Offer);
        variants.push(v);
        let mut v = a.clone();
        v.ok = true;
        variants.push(v);
        let mut v = a.clone();
        v.what = "GET /ipxe".into();
        variants.push(v);
        let mut v = a.clone();
        v.status = Some(200);
        variants.push(v);
        let mut v = a.clone();
        v.reason = None;
        variants.push(v);
        let mut v = a.clone();
        v.endpoint = Some(Endpoint::BootIpxe);
        variants.push(v);
        let mut v = a.clone();
        v.path = None;
        variants.push(v);
        // Not part of the comparison.
        let mut v = a.clone();
        v.ip = Some("10.0.0.1".into());
        v.bytes = None;
        v.ts += 5;
        variants.push(v);
        for v in &variants {
            assert_eq!(stored.same_as(v, &names), a.same_as(v), "{v:?}");
        }
        let same = variants.iter().filter(|v| stored.same_as(v, &names));
        assert_eq!(same.count(), 2);
    }

    #[test]
    fn facts_change_only_when_given_and_different() {
        let mut n = Names::default();
        let mut m = MachineRec::new(1);
        m.set_facts(&[(mf::IP, Some("10.0.0.1")), (mf::ARCH, None)], &mut n);
        m.set_facts(&[(mf::ARCH, Some("0 (bios)")), (mf::IP, None)], &mut n);
        assert_eq!(m.fact(mf::IP, &n), Some("10.0.0.1"));
        assert_eq!(m.fact(mf::ARCH, &n), Some("0 (bios)"));
        let before = m.facts.clone();
        m.set_facts(&[(mf::ARCH, Some("0 (bios)"))], &mut n);
        assert_eq!(m.facts, before);
        m.set_facts(&[(mf::IP, Some("10.0.0.2"))], &mut n);
        assert_eq!(m.fact(mf::IP, &n), Some("10.0.0.2"));
        assert_eq!(m.fact(mf::ARCH, &n), Some("0 (bios)"));
        assert_eq!(m.fact(mf::PROFILE, &n), None);
        // Named facts are references, the others text.
        assert_eq!(
            m.facts.get(mf::ARCH).and_then(|b| b.first()),
            Some(&NAME_REF)
        );
        assert_eq!(m.facts.get(mf::IP), Some(&b"10.0.0.2"[..]));
    }
}
