//! A boot's events as the store keeps them: an [`EventLog`], one byte buffer of encoded
//! records and the boot's own list of the [`Name`]s they use. A whole boot (13 events)
//! is two heap blocks of a few hundred bytes instead of a queue of 120-byte events, each
//! HTTP or TFTP one with a box of its own and a path past 24 bytes in another.
//!
//! A record is self-contained: a header byte (kind, outcome, address family, reason,
//! repeats), the stage, time and arrival number as deltas from the boot's first event,
//! the repeat count, the address, then the event's *key*: its reason and the part of its
//! service's detail that [`Event::same_as`] compares; then the rest of the detail. Names
//! are indices into the boot's list; paths and file names are inline. After each record
//! comes its length, written backwards, so the log is read newest first, the way every
//! reader and the store's own checks (repeats, time order, facts) look at it. Events are
//! made again, exactly as they were put in, when read.
//!
//! Every field of the key says its own length (a byte, a varint, a length-prefixed text),
//! so one key is never the start of another: an event repeats a record when their headers
//! and stages agree and the record's bytes after its address start with the event's key.
//! A retry loop is counted that way, and its record's count rewritten in place, without
//! making the stored event again.
//!
//! The buffer is written only here: a record that does not decode (which would be a bug
//! here) ends the reading, it never panics.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::event::{Detail, Dhcp, DhcpStep, Endpoint, Event, Http, Message, Name, Reason, Stage};
use crate::event::{Str, Tftp};
use kindling_dhcp::wire::MessageType;
use kindling_dhcp::{Firmware, IgnoreReason};
use kindling_model::MacAddr;

/// Bytes a growing log reserves beyond the record being written: about one more record,
/// so a boot's buffer is reallocated about once per event while it grows, and holds at
/// most this much unused (an ended boot's is shrunk to fit).
const SLACK: usize = 48;

/// The events of one boot, in time order (see the module's comment).
#[derive(Debug, Clone, Default)]
pub(super) struct EventLog {
    bytes: Vec<u8>,
    names: Vec<Name>,
    len: u32,
    /// Time and arrival number the records' deltas are from: the first event's.
    base_ts: u64,
    base_seq: u64,
}

impl EventLog {
    pub(super) fn len(&self) -> usize {
        self.len as usize
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The records, newest first.
    fn ranges(&self) -> Ranges<'_> {
        Ranges {
            buf: &self.bytes,
            end: self.bytes.len(),
        }
    }

    /// The events, newest first, without their MAC (records do not hold it).
    pub(super) fn newest_first(&self) -> impl Iterator<Item = Event> + '_ {
        self.ranges().map_while(|r| self.decode(r.body()))
    }

    /// The events of `mac`, oldest first.
    pub(super) fn to_events(&self, mac: MacAddr) -> VecDeque<Event> {
        let mut v: VecDeque<Event> = self
            .newest_first()
            .map(|mut e| {
                e.mac = Some(mac);
                e
            })
            .collect();
        v.make_contiguous().reverse();
        v
    }

    /// Puts `ev` in time order: after every event of an earlier (time, arrival), usually
    /// last (events tied late to their machine may be older than its newest).
    pub(super) fn insert(&mut self, ev: &Event) {
        if self.is_empty() {
            self.base_ts = ev.ts;
            self.base_seq = ev.seq;
        }
        let at = self
            .ranges()
            .find(|r| self.when(r.body()).is_some_and(|w| w <= (ev.ts, ev.seq)))
            .map_or(0, |r| r.end);
        let rec = self.record(ev);
        self.put(at..at, &rec);
        self.len += 1;
    }

    /// Replaces the bytes at `r` with `rec`, growing the buffer by about a record at a
    /// time, not by doubling.
    fn put(&mut self, r: std::ops::Range<usize>, rec: &[u8]) {
        let grows = rec.len().saturating_sub(r.len());
        if self.bytes.capacity() - self.bytes.len() < grows {
            self.bytes.reserve_exact(grows + SLACK);
        }
        self.bytes.splice(r, rec.iter().copied());
    }

    /// Counts `ev` on the event it repeats among the newest `lookback` (an earlier one,
    /// [`Event::same_as`]): its repeat count and last time, rewritten in place. False:
    /// no such event. `scratch` holds `ev`'s key meanwhile (the caller's, kept between
    /// calls: no allocation per event).
    pub(super) fn count_repeat(
        &mut self,
        ev: &Event,
        lookback: usize,
        scratch: &mut Vec<u8>,
    ) -> bool {
        scratch.clear();
        let mut w = Writer(std::mem::take(scratch));
        // A name the boot's list lacks is in none of its records: no repeat.
        let names = &self.names;
        let keyed = write_key(&mut w, ev, &mut |n| {
            names.iter().position(|x| x == n).map(|i| i as u64)
        });
        *scratch = w.0;
        if keyed.is_none() {
            return false;
        }
        let (head, stage) = (head_byte(ev) & KEY_BITS, stage_byte(ev));
        let found = self.ranges().take(lookback).find_map(|r| {
            let body = self.bytes.get(r.body())?;
            let mut rd = Reader::new(body);
            let h = rd.u8()?;
            if h & KEY_BITS != head || rd.u8()? != stage {
                return None;
            }
            let ts = self.base_ts.wrapping_add(rd.signed()?);
            let seq = self.base_seq.wrapping_add(rd.signed()?);
            if seq >= ev.seq || ts > ev.ts {
                return None;
            }
            let at = body.len() - rd.buf.len();
            let repeats = if h & REPEATS != 0 {
                let n = u32::try_from(rd.varint()?).ok()?;
                rd.signed()?;
                n
            } else {
                0
            };
            let counted = body.len() - rd.buf.len();
            rd.take(ip_len(h))?;
            rd.buf
                .starts_with(scratch)
                .then_some((r, ts, at..counted, repeats))
        });
        let Some((r, ts, counted, repeats)) = found else {
            return false;
        };
        // The record's count and last time, its header's flag, its length.
        scratch.clear();
        let mut w = Writer(std::mem::take(scratch));
        w.varint(u64::from(repeats.saturating_add(1)));
        w.signed(ev.ts.wrapping_sub(ts));
        let len = r.body_end - r.start - counted.len() + w.0.len();
        let (trailer, n) = length_trailer(len);
        self.put(r.body_end..r.end, trailer.get(..n).unwrap_or_default());
        self.put(r.start + counted.start..r.start + counted.end, &w.0);
        *scratch = w.0;
        if let Some(h) = self.bytes.get_mut(r.start) {
            *h |= REPEATS;
        }
        true
    }

    /// Drops the oldest event.
    pub(super) fn pop_front(&mut self) {
        let Some(first) = self.ranges().last() else {
            return;
        };
        self.bytes.drain(..first.end);
        self.len = self.len.saturating_sub(1);
        // Names only dropped events used: the list is made again from the rest.
        if self.names.len() > 2 * self.len() + 8 {
            self.rewrite();
        }
    }

    /// Names in the boot's list (tests).
    #[cfg(test)]
    pub(super) fn name_count(&self) -> usize {
        self.names.len()
    }

    /// Bytes of the encoded records (tests).
    #[cfg(test)]
    pub(super) fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Frees the unused room (a boot that ended never grows again).
    pub(super) fn shrink(&mut self) {
        self.bytes.shrink_to_fit();
        self.names.shrink_to_fit();
    }

    /// Encodes the events again, with a list of only the names they use.
    fn rewrite(&mut self) {
        let events: Vec<Event> = self.newest_first().collect();
        let (base_ts, base_seq) = (self.base_ts, self.base_seq);
        *self = EventLog {
            base_ts,
            base_seq,
            ..EventLog::default()
        };
        for e in events.iter().rev() {
            let rec = self.record(e);
            self.bytes.extend_from_slice(&rec);
            self.len += 1;
        }
        self.shrink();
    }

    /// A record's time and arrival number.
    fn when(&self, r: std::ops::Range<usize>) -> Option<(u64, u64)> {
        let mut rd = Reader::new(self.bytes.get(r)?);
        rd.u8()?;
        rd.u8()?;
        Some((
            self.base_ts.wrapping_add(rd.signed()?),
            self.base_seq.wrapping_add(rd.signed()?),
        ))
    }

    /// `ev`'s record, its length at its end.
    fn record(&mut self, ev: &Event) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64));
        let head = head_byte(ev);
        w.u8(head);
        w.u8(stage_byte(ev));
        w.signed(ev.ts.wrapping_sub(self.base_ts));
        w.signed(ev.seq.wrapping_sub(self.base_seq));
        if head & REPEATS != 0 {
            w.varint(u64::from(ev.repeats));
            w.signed(ev.last_ts.wrapping_sub(ev.ts));
        }
        match ev.ip {
            Some(IpAddr::V4(a)) => w.0.extend_from_slice(&a.octets()),
            Some(IpAddr::V6(a)) => w.0.extend_from_slice(&a.octets()),
            None => {}
        }
        let names = &mut self.names;
        let mut index = |n: &Name| Some(name_index(names, n));
        let _ = write_key(&mut w, ev, &mut index);
        match &ev.detail {
            Detail::Dhcp(_) => {}
            Detail::Tftp(t) => {
                w.u8(u8::from(t.duration_ms.is_some()));
                w.varint(t.bytes);
                if let Some(d) = t.duration_ms {
                    w.0.extend_from_slice(&d.to_bits().to_le_bytes());
                }
            }
            Detail::Http(h) => {
                w.u8(u8::from(h.group.is_some()) | u8::from(h.profile.is_some()) << 1);
                w.varint(h.bytes);
                w.0.extend_from_slice(&h.duration_ms.to_bits().to_le_bytes());
                for n in [&h.group, &h.profile].into_iter().flatten() {
                    let i = name_index(&mut self.names, n);
                    w.varint(i);
                }
            }
        }
        let (trailer, n) = length_trailer(w.0.len());
        w.0.extend_from_slice(trailer.get(..n).unwrap_or_default());
        w.0
    }

    /// The event of the record at `r` (not attributed: records do not hold the MAC).
    fn decode(&self, r: std::ops::Range<usize>) -> Option<Event> {
        let mut rd = Reader::new(self.bytes.get(r)?);
        let head = rd.u8()?;
        let stage = match rd.u8()? {
            0 => None,
            s => Some(*Stage::ALL.get(usize::from(s) - 1)?),
        };
        let ts = self.base_ts.wrapping_add(rd.signed()?);
        let seq = self.base_seq.wrapping_add(rd.signed()?);
        let (repeats, last_ts) = if head & REPEATS != 0 {
            let n = u32::try_from(rd.varint()?).ok()?;
            (n, ts.wrapping_add(rd.signed()?))
        } else {
            (0, 0)
        };
        let ip = match (head >> 4) & 3 {
            0 => None,
            1 => Some(IpAddr::V4(Ipv4Addr::from(
                <[u8; 4]>::try_from(rd.take(4)?).ok()?,
            ))),
            _ => Some(IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(rd.take(16)?).ok()?,
            ))),
        };
        let reason = if head & 0x40 != 0 {
            Some(match rd.u8()? {
                0 => Reason::Ignored(*IgnoreReason::ALL.get(usize::from(rd.u8()?))?),
                1 => Reason::Rule(self.name_at(&mut rd)?),
                _ => Reason::Text(self.name_at(&mut rd)?),
            })
        } else {
            None
        };
        let detail = self.read_detail(&mut rd, head & 7)?;
        Some(Event {
            ts,
            mac: None,
            ip,
            stage,
            ok: head & 8 != 0,
            reason,
            detail,
            repeats,
            last_ts,
            seq,
        })
    }

    /// The [`Detail`] of a record of `kind` (its header's low bits): its key, then the rest.
    fn read_detail(&self, rd: &mut Reader<'_>, kind: u8) -> Option<Detail> {
        Some(match kind {
            k @ 0..=2 => {
                let flags = rd.u8()?;
                let step = [DhcpStep::Seen, DhcpStep::Answered, DhcpStep::Ignored][usize::from(k)];
                let mut d = Dhcp::new(step);
                d.message = match flags & 3 {
                    0 => None,
                    1 => Some(Message::V4(MessageType::from_u8(rd.u8()?))),
                    _ => Some(Message::V6(rd.u8()?)),
                };
                if flags & 4 != 0 {
                    d.firmware = Some(*FIRMWARES.get(usize::from(rd.u8()?))?);
                }
                d.port = u16::try_from(rd.varint()?).ok()?;
                if flags & 8 != 0 {
                    d.arch = Some(u16::try_from(rd.varint()?).ok()?);
                }
                for (i, slot) in [
                    &mut d.iface,
                    &mut d.file,
                    &mut d.vendor_class,
                    &mut d.user_class,
                ]
                .into_iter()
                .enumerate()
                {
                    if flags & (16 << i) != 0 {
                        *slot = Some(self.name_at(rd)?);
                    }
                }
                Detail::Dhcp(d)
            }
            3 => {
                let flags = rd.u8()?;
                let file = Str::from(rd.str()?);
                let timed = rd.u8()? != 0;
                let bytes = rd.varint()?;
                let duration_ms = if timed { Some(rd.f64()?) } else { None };
                Detail::Tftp(Box::new(Tftp {
                    file,
                    write: flags & 1 != 0,
                    probe: flags & 2 != 0,
                    bytes,
                    duration_ms,
                }))
            }
            _ => {
                let endpoint = match rd.u8()? {
                    0 => None,
                    e => Some(*Endpoint::ALL.get(usize::from(e) - 1)?),
                };
                let method = self.name_at(rd)?;
                let path = Str::from(rd.str()?);
                let status = u16::try_from(rd.varint()?).ok()?;
                let flags = rd.u8()?;
                let bytes = rd.varint()?;
                let duration_ms = rd.f64()?;
                let group = if flags & 1 != 0 {
                    Some(self.name_at(rd)?)
                } else {
                    None
                };
                let profile = if flags & 2 != 0 {
                    Some(self.name_at(rd)?)
                } else {
                    None
                };
                Detail::Http(Box::new(Http {
                    method,
                    path,
                    endpoint,
                    status,
                    bytes,
                    duration_ms,
                    group,
                    profile,
                }))
            }
        })
    }

    fn name_at(&self, rd: &mut Reader<'_>) -> Option<Name> {
        let i = usize::try_from(rd.varint()?).ok()?;
        self.names.get(i).cloned()
    }
}

/// Header bits: the event's kind (DHCP step, TFTP, HTTP) in the low three.
const OK: u8 = 8;
/// The address's family in bits 4-5 (0: none, 1: IPv4, 2: IPv6).
const REASON: u8 = 0x40;
/// The record holds a repeat count and last time.
const REPEATS: u8 = 0x80;
/// The header bits [`Event::same_as`] compares: kind, outcome, whether there is a reason.
const KEY_BITS: u8 = 7 | OK | REASON;

fn head_byte(ev: &Event) -> u8 {
    let kind = match &ev.detail {
        Detail::Dhcp(d) => match d.step {
            DhcpStep::Seen => 0,
            DhcpStep::Answered => 1,
            DhcpStep::Ignored => 2,
        },
        Detail::Tftp(_) => 3,
        Detail::Http(_) => 4,
    };
    let ip = match ev.ip {
        None => 0,
        Some(IpAddr::V4(_)) => 1,
        Some(IpAddr::V6(_)) => 2,
    };
    let mut head = kind | ip << 4;
    if ev.ok {
        head |= OK;
    }
    if ev.reason.is_some() {
        head |= REASON;
    }
    if ev.repeats != 0 || ev.last_ts != 0 {
        head |= REPEATS;
    }
    head
}

fn stage_byte(ev: &Event) -> u8 {
    ev.stage.map_or(0, |s| stage_code(s) + 1)
}

/// Bytes of the address a record with header `head` holds.
fn ip_len(head: u8) -> usize {
    match (head >> 4) & 3 {
        0 => 0,
        1 => 4,
        _ => 16,
    }
}

/// Index of `n` in a boot's names (added when new).
fn name_index(names: &mut Vec<Name>, n: &Name) -> u64 {
    let at = names.iter().position(|x| x == n).unwrap_or_else(|| {
        if names.len() == names.capacity() {
            names.reserve_exact(2);
        }
        names.push(n.clone());
        names.len() - 1
    });
    at as u64
}

/// `ev`'s key (see the module's comment): its reason, then what [`Event::same_as`] compares
/// of its detail, each name as `index` gives it. `None` when `index` has none for a name.
fn write_key(
    w: &mut Writer,
    ev: &Event,
    index: &mut impl FnMut(&Name) -> Option<u64>,
) -> Option<()> {
    match &ev.reason {
        Some(Reason::Ignored(r)) => {
            w.u8(0);
            w.u8(r.index() as u8);
        }
        Some(Reason::Rule(n)) => {
            w.u8(1);
            w.varint(index(n)?);
        }
        Some(Reason::Text(n)) => {
            w.u8(2);
            w.varint(index(n)?);
        }
        None => {}
    }
    match &ev.detail {
        // Every field of a DHCP detail is compared.
        Detail::Dhcp(d) => {
            let message = match d.message {
                None => 0,
                Some(Message::V4(_)) => 1,
                Some(Message::V6(_)) => 2,
            };
            let names = [&d.iface, &d.file, &d.vendor_class, &d.user_class];
            let mut flags =
                message | u8::from(d.firmware.is_some()) << 2 | u8::from(d.arch.is_some()) << 3;
            for (i, n) in names.iter().enumerate() {
                flags |= u8::from(n.is_some()) << (4 + i);
            }
            w.u8(flags);
            match d.message {
                Some(Message::V4(m)) => w.u8(m.to_u8()),
                Some(Message::V6(m)) => w.u8(m),
                None => {}
            }
            if let Some(f) = d.firmware {
                w.u8(firmware_code(f));
            }
            w.varint(u64::from(d.port));
            if let Some(a) = d.arch {
                w.varint(u64::from(a));
            }
            for n in names.into_iter().flatten() {
                w.varint(index(n)?);
            }
        }
        Detail::Tftp(t) => {
            w.u8(u8::from(t.write) | u8::from(t.probe) << 1);
            w.str(&t.file);
        }
        Detail::Http(h) => {
            w.u8(h.endpoint.map_or(0, |e| e.index() as u8 + 1));
            w.varint(index(&h.method)?);
            w.str(&h.path);
            w.varint(u64::from(h.status));
        }
    }
    Some(())
}

/// A record's length as it follows the record, written backwards: its low seven bits
/// last, each group but the highest flagged (more to read before it): the array's first
/// bytes, as many as the number says.
fn length_trailer(len: usize) -> ([u8; 10], usize) {
    let mut out = [0u8; 10];
    let groups = (usize::BITS - len.leading_zeros()).div_ceil(7).max(1) as usize;
    for (k, i) in (0..groups).rev().enumerate() {
        let g = (len >> (7 * i)) as u8 & 0x7f;
        if let Some(b) = out.get_mut(k) {
            *b = if i == groups - 1 { g } else { g | 0x80 };
        }
    }
    (out, groups)
}

/// Firmware by its one-byte code.
const FIRMWARES: [Firmware; 4] = [
    Firmware::Ipxe,
    Firmware::BiosPxe,
    Firmware::UefiPxe,
    Firmware::UefiHttp,
];

fn firmware_code(f: Firmware) -> u8 {
    match f {
        Firmware::Ipxe => 0,
        Firmware::BiosPxe => 1,
        Firmware::UefiPxe => 2,
        Firmware::UefiHttp => 3,
    }
}

fn stage_code(s: Stage) -> u8 {
    Stage::ALL.iter().position(|x| *x == s).unwrap_or(0) as u8
}

/// Where a record is: its body from `start` to `body_end`, its length after, to `end`.
#[derive(Clone, Copy)]
struct Rec {
    start: usize,
    body_end: usize,
    end: usize,
}

impl Rec {
    fn body(self) -> std::ops::Range<usize> {
        self.start..self.body_end
    }
}

/// The records, newest first, each found from the length at its end.
struct Ranges<'a> {
    buf: &'a [u8],
    end: usize,
}

impl Iterator for Ranges<'_> {
    type Item = Rec;

    fn next(&mut self) -> Option<Rec> {
        let end = self.end;
        let mut at = end;
        let (mut len, mut shift) = (0usize, 0u32);
        loop {
            at = at.checked_sub(1)?;
            let b = *self.buf.get(at)?;
            len |= usize::from(b & 0x7f).checked_shl(shift)?;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let start = at.checked_sub(len)?;
        self.end = start;
        Some(Rec {
            start,
            body_end: at,
            end,
        })
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, b: u8) {
        self.0.push(b);
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    /// A difference of two `u64`s (wrapping), zigzag-encoded: small either way.
    fn signed(&mut self, d: u64) {
        let d = d as i64;
        self.varint(((d << 1) ^ (d >> 63)) as u64);
    }

    fn str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.buf.split_at_checked(n)?;
        self.buf = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn signed(&mut self) -> Option<u64> {
        let z = self.varint()?;
        Some(((z >> 1) as i64 ^ -((z & 1) as i64)) as u64)
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = usize::try_from(self.varint()?).ok()?;
        std::str::from_utf8(self.take(n)?).ok()
    }

    fn f64(&mut self) -> Option<f64> {
        Some(f64::from_bits(u64::from_le_bytes(
            self.take(8)?.try_into().ok()?,
        )))
    }
}
