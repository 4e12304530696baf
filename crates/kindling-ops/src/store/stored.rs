//! The compact forms the store keeps in memory: [`StoredEvent`] (numbers inline, texts
//! in one packed block, recurring texts as names), [`StoredBoot`] and [`MachineRec`]
//! (facts packed into one block), the `ef`/`mf` indexes of their packed fields, and the
//! conversions back to the public [`Event`], [`Boot`], [`Machine`], [`MachineSummary`]
//! and [`MachineDetail`].

use std::collections::VecDeque;

use super::names::{Intern, NameRef, Names};
use super::types::{Boot, BootError, Machine, MachineDetail, MachineSummary};
use crate::event::{Endpoint, Event, Kind, Source, Stage, Str, format_ts, name};
use crate::packed::{Packed, number_bytes};
use kindling_dhcp::Firmware;
use kindling_dhcp::wire::MessageType;
use kindling_model::MacAddr;

/// How far back in a boot a repeated event is looked for (the longest retry cycle:
/// DISCOVER, OFFER, REQUEST, ACK).
const REPEAT_LOOKBACK: usize = 4;

/// Fields of a [`StoredEvent`]'s packed part.
pub(super) mod ef {
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
pub(super) mod mf {
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
/// about 460 bytes. Readers get an [`Event`] back ([`Store::machine`](super::Store::machine),
/// [`MachineDetail`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredEvent {
    pub ts: u64,
    pub last_ts: u64,
    pub seq: u64,
    /// Saturates (four billion retries of one event).
    pub repeats: u32,
    pub(super) text: Packed,
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
    pub(super) fn from_event(ev: &Event, names: &mut Names) -> StoredEvent {
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
    pub(super) fn to_event(&self, mac: MacAddr, names: &Names) -> Event {
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
    pub(super) fn same_as(&self, other: &Event, names: &Names) -> bool {
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
pub(super) struct StoredBoot {
    started: u64,
    pub(super) last_event: u64,
    pub(super) dropped_events: u64,
    /// Boxed: most boots have none.
    pub(super) error: Option<Box<BootError>>,
    pub(super) events: VecDeque<StoredEvent>,
    last_stage: Option<Stage>,
    /// Some event of this boot came from TFTP or HTTP (kept even if it was dropped).
    saw_non_dhcp: bool,
    /// Some event of this boot reached the script stage or later.
    saw_script: bool,
}

impl StoredBoot {
    pub(super) fn new(ts: u64) -> StoredBoot {
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
    pub(super) fn ends_before(
        &self,
        ts: u64,
        gap: u64,
        firmware_discover: bool,
        ipxe_discover: bool,
    ) -> bool {
        ts.saturating_sub(self.last_event) > gap
            || (firmware_discover && self.beyond_dhcp())
            || (ipxe_discover && self.reached_script())
    }

    /// The event among the last few that `is_it` picks as repeated, with its position
    /// from the back.
    pub(super) fn repeated(
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
    pub(super) fn reached(&mut self, st: Stage) {
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
    pub(super) fn note(&mut self, ev: &Event) {
        self.saw_non_dhcp |= ev.source() != Source::Dhcp;
        self.saw_script |= ev.stage.is_some_and(|s| s >= Stage::Script);
    }
}

/// Room for one more element: exactly one for the first few (most machines have one
/// boot of a few events), doubling after that.
pub(super) fn room_for_one<T>(q: &mut VecDeque<T>) {
    if q.len() == q.capacity() && q.len() < 4 {
        q.reserve_exact(1);
    }
}

/// A machine as the store keeps it (its MAC is the key): facts packed into one block.
#[derive(Debug, Clone)]
pub(super) struct MachineRec {
    first_seen: u64,
    pub(super) last_seen: u64,
    pub(super) facts: Packed,
    /// Oldest first.
    pub(super) boots: VecDeque<StoredBoot>,
}

impl MachineRec {
    pub(super) fn new(ts: u64) -> MachineRec {
        MachineRec {
            first_seen: ts,
            last_seen: ts,
            facts: Packed::default(),
            boots: VecDeque::new(),
        }
    }

    pub(super) fn fact<'a>(&'a self, i: usize, names: &'a Names) -> Option<&'a str> {
        self.facts.get(i).and_then(|b| names.text(b))
    }

    /// Sets each fact `(i, Some(v))` to `v` when it differs (the block is rebuilt only
    /// then: a storm repeats the same facts).
    pub(super) fn set_facts(&mut self, new: &[(usize, Option<&str>)], names: &mut Names) {
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

    pub(super) fn summary(&self, mac: MacAddr, names: &Names) -> MachineSummary {
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

    pub(super) fn detail(&self, mac: MacAddr, names: &Names) -> MachineDetail {
        let owned = |i: usize| self.fact(i, names).map(str::to_string);
        MachineDetail {
            summary: self.summary(mac, names),
            vendor_class: owned(mf::VENDOR_CLASS),
            user_class: owned(mf::USER_CLASS),
            first_seen: self.first_seen,
            timeline: self.boots.iter().map(|b| b.to_boot(mac, names)).collect(),
        }
    }

    pub(super) fn to_machine(&self, mac: MacAddr, names: &Names) -> Machine {
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
