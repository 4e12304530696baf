//! The kernel's IPv4 neighbour table (`/proc/net/arp`), read whole and kept for a
//! moment. The file has no per-address lookup: the kernel formats every entry on each
//! read, so reading it once per unknown client made a storm of N machines cost N reads
//! of N lines (1,000 machines: a million lines, with the timeline's lock held). One
//! snapshot now serves every lookup for [`REREAD_AFTER`].
//!
//! Also the tables' overflows ([`check_tables`]): past `gc_thresh3` entries the kernel
//! drops packets to addresses it has no entry for, Kindling's unicast replies among them
//! (port-4011 ACKs, TFTP, HTTP), without telling the sender. A boot storm of more machines
//! than the bound (1,024 by default) looks like machines that ignore their answers.

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

/// One family's neighbour table as the kernel counts it: ARP for IPv4, NDP for IPv6.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub family: &'static str,
    /// Its statistics: a header, then one row of hexadecimal counters per CPU.
    pub stat: &'static str,
    /// The sysctl that bounds it.
    pub sysctl: &'static str,
}

/// The tables whose overflows Kindling reports. Each is one for every network namespace
/// of the host.
pub const TABLES: [Table; 2] = [
    Table {
        family: "IPv4 (ARP)",
        stat: "/proc/net/stat/arp_cache",
        sysctl: "net.ipv4.neigh.default.gc_thresh3",
    },
    Table {
        family: "IPv6 (NDP)",
        stat: "/proc/net/stat/ndisc_cache",
        sysctl: "net.ipv6.neigh.default.gc_thresh3",
    },
];

/// The `table_fulls` column of a `/proc/net/stat/*_cache` text, summed over the CPUs'
/// rows: how many times the kernel found the table full and could not add an entry
/// (the packet that needed it is dropped). `None` when the text has no such column.
pub fn table_fulls(text: &str) -> Option<u64> {
    let mut lines = text.lines();
    let col = lines
        .next()?
        .split_whitespace()
        .position(|h| h == "table_fulls")?;
    let mut sum = 0u64;
    for row in lines {
        let v = row.split_whitespace().nth(col)?;
        sum = sum.saturating_add(u64::from_str_radix(v, 16).ok()?);
    }
    Some(sum)
}

/// Overflows of one table since the last look.
#[derive(Debug, Default)]
pub struct OverflowWatch {
    last: Option<u64>,
}

impl OverflowWatch {
    /// The overflows since the last look, from the kernel's count now (`None`:
    /// unreadable, nothing new). The first look sets the baseline: overflows from before
    /// Kindling looked are not news.
    pub fn observe(&mut self, total: Option<u64>) -> u64 {
        let Some(total) = total else { return 0 };
        let new = self.last.map_or(0, |l| total.saturating_sub(l));
        self.last = Some(total);
        new
    }
}

/// Looks at each table's overflow count; calls `report(table, new overflows, its bound)`
/// for a table that overflowed since the last look.
pub fn check_tables(watches: &mut [OverflowWatch; 2], mut report: impl FnMut(&Table, u64, String)) {
    for (t, w) in TABLES.iter().zip(watches.iter_mut()) {
        let total = std::fs::read_to_string(t.stat)
            .ok()
            .and_then(|s| table_fulls(&s));
        let new = w.observe(total);
        if new > 0 {
            let path = format!("/proc/sys/{}", t.sysctl.replace('.', "/"));
            let bound = std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into());
            report(t, new, bound);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/net/stat/arp_cache` of a 2-CPU machine after a storm of 10,000 machines
    /// with the default bound of 1,024 entries.
    const STAT: &str = "entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls\n\
        00000000 00015ead 0001b787 00000000   0002f2c2 0002ca50 000008a7   00000000         00000000         000011be         0000d656       00000000            0000d618\n\
        00000000 00016ba1 000112c7 0000000b   00031598 0002e971 00000a71   00000000         00000000         00000000         0000cef7       00000000            0000ceb4\n";

    #[test]
    fn table_fulls_are_summed_over_the_cpus() {
        assert_eq!(table_fulls(STAT), Some(0xd618 + 0xceb4));
        assert_eq!(table_fulls("entries table_fulls\n"), Some(0));
        assert_eq!(table_fulls("entries allocs\n00000001 00000002\n"), None);
        assert_eq!(table_fulls("entries table_fulls\n00000001\n"), None);
        assert_eq!(table_fulls("entries table_fulls\n00000001 zz\n"), None);
        assert_eq!(table_fulls(""), None);
    }

    #[test]
    fn a_watch_reports_only_what_is_new() {
        let mut w = OverflowWatch::default();
        // The count before the first look is not news.
        assert_eq!(w.observe(Some(500)), 0);
        assert_eq!(w.observe(Some(500)), 0);
        assert_eq!(w.observe(Some(530)), 30);
        // Unreadable: nothing, and the baseline stays.
        assert_eq!(w.observe(None), 0);
        assert_eq!(w.observe(Some(531)), 1);
        // A count that went back (never seen, but not a panic) is a new baseline.
        assert_eq!(w.observe(Some(10)), 0);
        assert_eq!(w.observe(Some(12)), 2);
    }

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
