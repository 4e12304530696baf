//! A boot's events as the store keeps them: an [`EventLog`], one byte buffer of encoded
//! records and the boot's own list of the [`Name`]s they use. A whole boot (13 events)
//! is two heap blocks of a few hundred bytes instead of a queue of 120-byte events, each
//! HTTP or TFTP one with a box of its own and a path past 24 bytes in another.
//!
//! A record is self-contained: a header byte (kind, outcome, address family, reason,
//! repeats), the stage, time and arrival number as deltas from the boot's first event,
//! the address, the reason, the repeat count, then the detail of its service. Names are
//! indices into the boot's list; paths and file names are inline. After each record comes
//! its length, written backwards, so the log is read newest first, the way every reader
//! and the store's own checks (repeats, time order, facts) look at it. Events are made
//! again, exactly as they were put in, when read.
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
        self.put(at..at, rec);
        self.len += 1;
    }

    /// Replaces the bytes at `r` with `rec`, growing the buffer by about a record at a
    /// time, not by doubling.
    fn put(&mut self, r: std::ops::Range<usize>, rec: Vec<u8>) {
        let grows = rec.len().saturating_sub(r.len());
        if self.bytes.capacity() - self.bytes.len() < grows {
            self.bytes.reserve_exact(grows + SLACK);
        }
        self.bytes.splice(r, rec);
    }

    /// Counts `ev` on the event it repeats among the newest `lookback` (an earlier one,
    /// [`Event::same_as`]): its repeat count and last time, rewritten in place. False:
    /// no such event.
    pub(super) fn count_repeat(&mut self, ev: &Event, lookback: usize) -> bool {
        let found = self.ranges().take(lookback).find_map(|r| {
            let e = self.decode(r.body())?;
            (e.same_as(ev) && e.seq < ev.seq && e.ts <= ev.ts).then_some((r, e))
        });
        let Some((r, mut prev)) = found else {
            return false;
        };
        prev.repeats = prev.repeats.saturating_add(1);
        prev.last_ts = ev.ts;
        let rec = self.record(&prev);
        self.put(r.start..r.end, rec);
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

    /// Index of `n` in the boot's names (added when new).
    fn name(&mut self, n: &Name) -> u64 {
        let at = self.names.iter().position(|x| x == n).unwrap_or_else(|| {
            if self.names.len() == self.names.capacity() {
                self.names.reserve_exact(2);
            }
            self.names.push(n.clone());
            self.names.len() - 1
        });
        at as u64
    }

    /// `ev`'s record, its length at its end.
    fn record(&mut self, ev: &Event) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64));
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
        let repeats = ev.repeats != 0 || ev.last_ts != 0;
        w.u8(kind
            | u8::from(ev.ok) << 3
            | ip << 4
            | u8::from(ev.reason.is_some()) << 6
            | u8::from(repeats) << 7);
        w.u8(ev.stage.map_or(0, |s| stage_code(s) + 1));
        w.signed(ev.ts.wrapping_sub(self.base_ts));
        w.signed(ev.seq.wrapping_sub(self.base_seq));
        match ev.ip {
            Some(IpAddr::V4(a)) => w.0.extend_from_slice(&a.octets()),
            Some(IpAddr::V6(a)) => w.0.extend_from_slice(&a.octets()),
            None => {}
        }
        match &ev.reason {
            Some(Reason::Ignored(r)) => {
                w.u8(0);
                w.u8(r.index() as u8);
            }
            Some(Reason::Rule(n)) => {
                w.u8(1);
                let i = self.name(n);
                w.varint(i);
            }
            Some(Reason::Text(n)) => {
                w.u8(2);
                let i = self.name(n);
                w.varint(i);
            }
            None => {}
        }
        if repeats {
            w.varint(u64::from(ev.repeats));
            w.signed(ev.last_ts.wrapping_sub(ev.ts));
        }
        self.write_detail(&mut w, &ev.detail);
        // The length, backwards: its low seven bits last, each group but the highest
        // flagged (more to read before it).
        let len = w.0.len();
        let groups = (usize::BITS - len.leading_zeros()).div_ceil(7).max(1);
        for i in (0..groups).rev() {
            let g = (len >> (7 * i)) as u8 & 0x7f;
            w.u8(if i == groups - 1 { g } else { g | 0x80 });
        }
        w.0
    }

    /// The part of a record that is the event's [`Detail`].
    fn write_detail(&mut self, w: &mut Writer, detail: &Detail) {
        match detail {
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
                    let i = self.name(n);
                    w.varint(i);
                }
            }
            Detail::Tftp(t) => {
                w.u8(u8::from(t.write)
                    | u8::from(t.probe) << 1
                    | u8::from(t.duration_ms.is_some()) << 2);
                w.str(&t.file);
                w.varint(t.bytes);
                if let Some(d) = t.duration_ms {
                    w.0.extend_from_slice(&d.to_bits().to_le_bytes());
                }
            }
            Detail::Http(h) => {
                w.u8(u8::from(h.endpoint.is_some())
                    | u8::from(h.group.is_some()) << 1
                    | u8::from(h.profile.is_some()) << 2);
                let i = self.name(&h.method);
                w.varint(i);
                w.str(&h.path);
                if let Some(e) = h.endpoint {
                    w.u8(e.index() as u8);
                }
                w.varint(u64::from(h.status));
                w.varint(h.bytes);
                w.0.extend_from_slice(&h.duration_ms.to_bits().to_le_bytes());
                for n in [&h.group, &h.profile].into_iter().flatten() {
                    let i = self.name(n);
                    w.varint(i);
                }
            }
        }
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
        let (repeats, last_ts) = if head & 0x80 != 0 {
            let n = u32::try_from(rd.varint()?).ok()?;
            (n, ts.wrapping_add(rd.signed()?))
        } else {
            (0, 0)
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

    /// The [`Detail`] of a record of `kind` (its header's low bits).
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
                let bytes = rd.varint()?;
                let duration_ms = if flags & 4 != 0 {
                    Some(rd.f64()?)
                } else {
                    None
                };
                Detail::Tftp(Box::new(Tftp {
                    file,
                    write: flags & 1 != 0,
                    probe: flags & 2 != 0,
                    bytes,
                    duration_ms,
                }))
            }
            _ => {
                let flags = rd.u8()?;
                let method = self.name_at(rd)?;
                let path = Str::from(rd.str()?);
                let endpoint = if flags & 1 != 0 {
                    Some(*Endpoint::ALL.get(usize::from(rd.u8()?))?)
                } else {
                    None
                };
                let status = u16::try_from(rd.varint()?).ok()?;
                let bytes = rd.varint()?;
                let duration_ms = rd.f64()?;
                let group = if flags & 2 != 0 {
                    Some(self.name_at(rd)?)
                } else {
                    None
                };
                let profile = if flags & 4 != 0 {
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
