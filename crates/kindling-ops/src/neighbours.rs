//! The kernel's IPv4 neighbour table (`/proc/net/arp`), read whole and kept for a
//! moment. The file has no per-address lookup: the kernel formats every entry on each
//! read, so reading it once per unknown client made a storm of N machines cost N reads
//! of N lines (1,000 machines: a million lines, with the timeline's lock held). One
//! snapshot now serves every lookup for [`REREAD_AFTER`].

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use kindling_model::MacAddr;

/// How long one read of the table answers the addresses it has: short enough that a
/// machine's address is seen as it is now, long enough that a thousand machines arriving
/// at once share a read or two.
pub const REREAD_AFTER: Duration = Duration::from_millis(100);

/// How long one read answers an address it does not have, for attribution: a machine
/// whose entry appeared since then waits at most this for the next read, and a storm
/// of new or routed clients costs at most one read per this.
pub const MISS_REREAD_AFTER: Duration = Duration::from_millis(10);

/// The last read of the table.
#[derive(Default)]
pub struct Neighbours {
    table: HashMap<Ipv4Addr, MacAddr>,
    read_at: Option<Instant>,
}

impl Neighbours {
    /// `ip`'s MAC at `now`: from the last read when it has `ip` and is younger than
    /// [`REREAD_AFTER`], or lacks it and is younger than `miss_after`; else from a new
    /// read taken with `read` (the table's text; `None`, unreadable, answers nothing).
    pub fn lookup(
        &mut self,
        ip: Ipv4Addr,
        now: Instant,
        miss_after: Duration,
        read: impl FnOnce() -> Option<String>,
    ) -> Option<MacAddr> {
        if let Some(at) = self.read_at {
            let age = now.saturating_duration_since(at);
            if age < REREAD_AFTER {
                match self.table.get(&ip) {
                    Some(m) => return Some(*m),
                    None if age < miss_after => return None,
                    None => {}
                }
            }
        }
        self.reread(now, read);
        self.table.get(&ip).copied()
    }

    /// Reads the table again.
    pub fn reread(&mut self, now: Instant, read: impl FnOnce() -> Option<String>) {
        self.table = read().map(|t| parse_arp(&t)).unwrap_or_default();
        self.read_at = Some(now);
    }
}

/// The text of `/proc/net/arp`.
pub fn read_proc_net_arp() -> Option<String> {
    std::fs::read_to_string("/proc/net/arp").ok()
}

/// The complete entries (flags not 0x0, a 6-byte non-zero address) of the text of
/// `/proc/net/arp`.
pub fn parse_arp(text: &str) -> HashMap<Ipv4Addr, MacAddr> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (addr, _, flags, hw) = (f.next()?, f.next()?, f.next()?, f.next()?);
            if flags == "0x0" {
                return None;
            }
            let mac = MacAddr::parse(hw).ok().filter(|m| m.0 != [0; 6])?;
            Some((addr.parse().ok()?, mac))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "IP address       HW type     Flags       HW address            Mask     Device\n\
        10.99.0.50       0x1         0x2         52:54:00:12:34:56     *        s0\n\
        10.99.0.51       0x1         0x0         00:00:00:00:00:00     *        s0\n";

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 99, 0, last)
    }

    #[test]
    fn complete_entries_only() {
        let t = parse_arp(TABLE);
        assert_eq!(
            t.get(&ip(50)),
            Some(&MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]))
        );
        assert_eq!(t.get(&ip(51)), None);
        assert_eq!(t.get(&ip(5)), None);
        assert!(parse_arp("").is_empty());
        assert!(parse_arp("header\n10.99.0.9 0x1\n").is_empty());
    }

    #[test]
    fn one_read_serves_the_lookups_of_its_period() {
        let mut n = Neighbours::default();
        let t0 = Instant::now();
        let mut reads = 0;
        let mut read = || {
            reads += 1;
            Some(TABLE.to_string())
        };
        // A thousand lookups of a known address within the period: one read.
        for i in 0..1000u32 {
            let at = t0 + REREAD_AFTER * i / 2000;
            assert!(n.lookup(ip(50), at, MISS_REREAD_AFTER, &mut read).is_some());
        }
        // Unknown addresses: one read per MISS_REREAD_AFTER at most.
        for i in 0..1000u32 {
            let at = t0 + REREAD_AFTER * i / 2000;
            assert_eq!(n.lookup(ip(7), at, MISS_REREAD_AFTER, &mut read), None);
        }
        let most = 1 + (REREAD_AFTER / 2).as_millis() / MISS_REREAD_AFTER.as_millis() + 1;
        assert!(reads as u128 <= most, "{reads} reads");
        // A miss with no grace reads again, and sees an entry that appeared.
        let added = format!("{TABLE}10.99.0.7 0x1 0x2 52:54:00:00:00:07 * s0\n");
        assert_eq!(
            n.lookup(ip(7), t0, Duration::ZERO, || Some(added)),
            Some(MacAddr([0x52, 0x54, 0, 0, 0, 7]))
        );
        // After the period the next lookup reads again and sees what changed.
        let later = t0 + REREAD_AFTER;
        let moved = TABLE.replace("52:54:00:12:34:56", "52:54:00:00:00:99");
        assert_eq!(
            n.lookup(ip(50), later, MISS_REREAD_AFTER, || Some(moved)),
            Some(MacAddr([0x52, 0x54, 0, 0, 0, 0x99]))
        );
        // An unreadable table answers nothing.
        let gone = later + REREAD_AFTER;
        assert_eq!(n.lookup(ip(50), gone, MISS_REREAD_AFTER, || None), None);
    }
}
