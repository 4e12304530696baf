//! The lease log: an append-only text file, one record per line, replayed at start and
//! compacted atomically.
//!
//! Format, version 1 (the header line lets a later version migrate):
//!
//! ```text
//! # kindling-leases v1
//! 10.0.0.101 02:00:00:00:00:07 bound 1767225600 7765622d31
//! 10.0.0.102 02:00:00:00:00:08 offered 1767222030 -
//! ```
//!
//! Fields, separated by one space: address, MAC, state label ([`LeaseState::label`]),
//! expiry in unix seconds, hostname as lowercase hex of its UTF-8 bytes (at most
//! [`MAX_HOSTNAME`] bytes) or `-`. Client-supplied hostnames thus cannot break a line. No
//! subnet index is stored (it changes with config edits; the table derives it from the
//! address). Later lines starting with `#` are comments.
//!
//! Replay: the last record per address wins (a later record of another MAC takes the
//! address from the earlier one; a later hold ends a lease); `free` tombstones are dropped
//! after that; the survivors come back in file order, for [`LeaseTable::restore`]. Bad lines
//! are skipped and counted, never fatal; a torn last line is cut off before appending.
//!
//! Durability: each [`LeaseLog::append`] is one `write(2)` on an `O_APPEND` descriptor, so
//! once it returns a `kill -9` loses nothing (the page cache belongs to the kernel). Power
//! loss may lose the last batches unless [`LeaseLog::set_sync`] is on: then each batch is
//! followed by `fdatasync` (one disk flush per batch).
//!
//! Compaction writes the live records to `<path>.tmp` (0600), fsyncs it, renames it over
//! the log and fsyncs the directory; the temporary file's descriptor becomes the append
//! descriptor, so there is no reopen window. A `.tmp` left by a crash is removed by open.
//!
//! [`LeaseTable::restore`]: super::leases::LeaseTable::restore

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::leases::{Lease, LeaseState, MAX_HOSTNAME, cap_hostname, format_mac, parse_mac};

/// The first line of a version-1 lease log.
pub const HEADER: &str = "# kindling-leases v1";

/// Compaction is never due below this many record lines.
pub const MIN_COMPACT_LINES: usize = 1_000;

/// What [`LeaseLog::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Lines after the header (records, comments, bad lines, the torn tail).
    pub lines: usize,
    /// Records returned (after "last per address wins").
    pub records: usize,
    /// Lines skipped as unparsable (the torn tail included).
    pub skipped: usize,
    /// The file line number (1 = header) of the first skipped line.
    pub first_bad_line: Option<usize>,
    /// The file ended in a partial line, which was cut off.
    pub torn_tail: bool,
    /// A `<path>.tmp` left by an interrupted compaction was removed.
    pub removed_stale_tmp: bool,
}

/// The open lease log (append descriptor plus counters for [`LeaseLog::needs_compaction`]).
#[derive(Debug)]
pub struct LeaseLog {
    path: PathBuf,
    file: File,
    sync: bool,
    /// Bytes known to be in the file (for undoing a partial write).
    len: u64,
    /// Record lines in the file.
    lines: usize,
    /// Addresses whose last record is not a tombstone.
    live: HashSet<Ipv4Addr>,
    /// A failed write could not be undone: start the next batch with a newline.
    torn: bool,
}

/// One record as a log line (with its newline); the hostname is cut to [`MAX_HOSTNAME`].
pub fn format_record(l: &Lease) -> String {
    let host = l.hostname.as_deref().and_then(cap_hostname).map_or_else(
        || "-".to_owned(),
        |h| h.bytes().map(|b| format!("{b:02x}")).collect(),
    );
    let (ip, mac, state) = (l.ip, format_mac(&l.mac), l.state.label());
    format!("{ip} {mac} {state} {} {host}\n", l.expires)
}

/// Parses one log line (without its newline); `subnet` is 0 (see [`Lease::subnet`]).
pub fn parse_record(line: &str) -> Option<Lease> {
    let mut f = line.split(' ');
    let ip: Ipv4Addr = f.next()?.parse().ok()?;
    let mac = parse_mac(f.next()?)?;
    let state = LeaseState::from_label(f.next()?)?;
    let expires = f.next().filter(|e| e.bytes().all(|b| b.is_ascii_digit()))?;
    let expires = expires.parse().ok()?;
    let hostname = match f.next()? {
        "-" => None,
        hex => Some(unhex(hex)?),
    };
    if f.next().is_some() {
        return None;
    }
    Some(Lease {
        mac,
        ip,
        subnet: 0,
        state,
        expires,
        hostname,
    })
}

fn unhex(s: &str) -> Option<String> {
    if s.is_empty() || !s.len().is_multiple_of(2) || s.len() > 2 * MAX_HOSTNAME {
        return None;
    }
    let nibble = |b: u8| char::from(b).to_digit(16);
    let bytes = s
        .as_bytes()
        .chunks(2)
        .map(|c| match c {
            [h, l] => Some((nibble(*h)? * 16 + nibble(*l)?) as u8),
            _ => None,
        })
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(".tmp");
    PathBuf::from(s)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
}

fn invalid(path: &Path, what: &str) -> io::Error {
    let msg = format!(
        "{}: {what} (expected first line {HEADER:?})",
        path.display()
    );
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn remove_if_present(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

impl LeaseLog {
    /// Opens (or creates, mode 0600; the parent directory must exist) the log at `path`,
    /// replays it and cuts off a torn tail. Fails on I/O errors and on a file that is not
    /// a lease log or has an unknown format version (it is then left untouched).
    pub fn open(path: &Path) -> io::Result<(LeaseLog, Vec<Lease>, LoadReport)> {
        let mut report = LoadReport {
            removed_stale_tmp: remove_if_present(&tmp_path(path))?,
            ..LoadReport::default()
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let (body, tail) = data.split_at(complete);
        let header = format!("{HEADER}\n");
        if body.is_empty() {
            if !header.as_bytes().starts_with(tail) {
                return Err(invalid(path, "not a kindling lease log"));
            }
        } else if !body.starts_with(header.as_bytes()) {
            if body.starts_with(b"# kindling-leases ") {
                return Err(invalid(path, "unsupported lease log version"));
            }
            return Err(invalid(path, "not a kindling lease log"));
        }

        let mut records = Vec::new();
        let bad = |report: &mut LoadReport, n: usize| {
            report.skipped += 1;
            report.first_bad_line.get_or_insert(n);
        };
        let lines = body.split_inclusive(|&b| b == b'\n').skip(1);
        for (i, raw) in lines.enumerate() {
            report.lines += 1;
            let line = raw.strip_suffix(b"\n").unwrap_or(raw);
            if line.starts_with(b"#") {
                continue;
            }
            match std::str::from_utf8(line).ok().and_then(parse_record) {
                Some(l) => records.push(l),
                None => bad(&mut report, i + 2),
            }
        }
        let mut lines = report.lines;
        if !tail.is_empty() {
            report.torn_tail = true;
            if !body.is_empty() {
                report.lines += 1;
                let n = report.lines + 1;
                bad(&mut report, n);
            }
            file.set_len(complete as u64)?;
        }
        let mut len = complete as u64;
        if body.is_empty() {
            file.write_all(header.as_bytes())?;
            file.sync_all()?;
            sync_dir(path)?;
            (len, lines) = (header.len() as u64, 0);
        }

        let last: HashMap<Ipv4Addr, usize> =
            records.iter().enumerate().map(|(i, l)| (l.ip, i)).collect();
        let kept: Vec<Lease> = records
            .into_iter()
            .enumerate()
            .filter(|(i, l)| last.get(&l.ip) == Some(i) && l.state != LeaseState::Free)
            .map(|(_, l)| l)
            .collect();
        report.records = kept.len();
        let live = kept.iter().map(|l| l.ip).collect();
        let path = path.to_owned();
        let log = LeaseLog {
            path,
            file,
            sync: false,
            len,
            lines,
            live,
            torn: false,
        };
        Ok((log, kept, report))
    }

    /// Whether each append is followed by `fdatasync` (power-loss safety; default off).
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
    }

    /// Appends the records in one write (then `fdatasync` if [`set_sync`](Self::set_sync)
    /// is on). A failed write is undone (truncated) if possible, so that the next batch
    /// starts on a fresh line.
    pub fn append(&mut self, leases: &[Lease]) -> io::Result<()> {
        if leases.is_empty() {
            return Ok(());
        }
        let mut buf = String::from(if self.torn { "\n" } else { "" });
        leases.iter().for_each(|l| buf.push_str(&format_record(l)));
        if let Err(e) = self.file.write_all(buf.as_bytes()) {
            self.torn = self.file.set_len(self.len).is_err();
            return Err(e);
        }
        self.lines += leases.len() + usize::from(self.torn);
        self.torn = false;
        self.len += buf.len() as u64;
        for l in leases {
            if l.state == LeaseState::Free {
                self.live.remove(&l.ip);
            } else {
                self.live.insert(l.ip);
            }
        }
        if self.sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// More than max(2 × live records, [`MIN_COMPACT_LINES`]) lines: time to compact.
    pub fn needs_compaction(&self) -> bool {
        self.lines > (2 * self.live.len()).max(MIN_COMPACT_LINES)
    }

    /// Rewrites the log with exactly `live` (tombstones skipped) through `<path>.tmp`,
    /// fsync, rename and directory fsync. On failure before the rename the old log stays.
    pub fn compact<'a>(&mut self, live: impl IntoIterator<Item = &'a Lease>) -> io::Result<()> {
        let mut buf = format!("{HEADER}\n");
        let (mut lines, mut ips) = (0, HashSet::new());
        for l in live.into_iter().filter(|l| l.state != LeaseState::Free) {
            buf.push_str(&format_record(l));
            ips.insert(l.ip);
            lines += 1;
        }
        let tmp = tmp_path(&self.path);
        let written = remove_if_present(&tmp).and_then(|_| {
            let mut f = OpenOptions::new()
                .append(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(buf.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            Ok(f)
        });
        let file = written.inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })?;
        (self.file, self.len, self.lines) = (file, buf.len() as u64, lines);
        (self.live, self.torn) = (ips, false);
        sync_dir(&self.path)
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record lines in the file.
    pub fn line_count(&self) -> usize {
        self.lines
    }

    /// Addresses whose last record is live (not a tombstone).
    pub fn live_count(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn lease(n: u8, state: LeaseState, host: Option<&str>) -> Lease {
        Lease {
            mac: [2, 0, 0, 0, 0, n],
            ip: Ipv4Addr::new(10, 0, 0, n),
            subnet: 0,
            state,
            expires: 1_700_000_000 + u64::from(n),
            hostname: host.map(str::to_owned),
        }
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap()
    }

    #[test]
    fn round_trip_with_hostile_hostnames() {
        let dir = kindling_testkit::tempdir("leaselog");
        let p = dir.path().join("leases");
        let (mut log, got, report) = LeaseLog::open(&p).unwrap();
        assert!(got.is_empty());
        assert_eq!(report, LoadReport::default());
        assert_eq!(read(&p), format!("{HEADER}\n"));
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let ls = vec![
            lease(1, LeaseState::Bound, Some("web 1\nbound 10.0.0.9 x")),
            lease(2, LeaseState::Offered, None),
            lease(3, LeaseState::Declined, Some("ünïcødé")),
            lease(4, LeaseState::Released, Some("")),
        ];
        log.set_sync(true);
        log.append(&ls).unwrap();
        assert_eq!(read(&p).lines().count(), 5);
        let (log, got, report) = LeaseLog::open(&p).unwrap();
        let mut want = ls.clone();
        want[3].hostname = None;
        assert_eq!(got, want);
        assert_eq!((report.lines, report.records, report.skipped), (4, 4, 0));
        assert_eq!((log.line_count(), log.live_count()), (4, 4));
        assert!(!log.needs_compaction());
    }

    #[test]
    fn torn_tail_is_cut_and_the_next_append_starts_fresh() {
        let dir = kindling_testkit::tempdir("leaselog");
        let p = dir.path().join("leases");
        let (mut log, _, _) = LeaseLog::open(&p).unwrap();
        log.append(&[
            lease(1, LeaseState::Bound, None),
            lease(2, LeaseState::Bound, None),
        ])
        .unwrap();
        drop(log);
        let half = &format_record(&lease(3, LeaseState::Bound, Some("h")))[..20];
        OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(half.as_bytes())
            .unwrap();
        let (mut log, got, report) = LeaseLog::open(&p).unwrap();
        assert_eq!(got.len(), 2);
        assert!(report.torn_tail);
        assert_eq!(
            (report.lines, report.skipped, report.first_bad_line),
            (3, 1, Some(4))
        );
        assert!(read(&p).ends_with('\n'));
        log.append(&[lease(4, LeaseState::Offered, None)]).unwrap();
        let (_, got, report) = LeaseLog::open(&p).unwrap();
        assert_eq!(
            got.iter().map(|l| l.ip.octets()[3]).collect::<Vec<_>>(),
            [1, 2, 4]
        );
        assert_eq!((report.skipped, report.torn_tail), (0, false));
    }

    #[test]
    fn bad_lines_in_the_middle_are_skipped() {
        let dir = kindling_testkit::tempdir("leaselog");
        let p = dir.path().join("leases");
        let good = |n| format_record(&lease(n, LeaseState::Bound, None));
        let mut text = format!("{HEADER}\n{}garbage\n# a comment\n", good(1)).into_bytes();
        text.extend_from_slice(b"\xff\xfe\n\n10.0.0.2 02:00:00:00:00:02 bound +5 -\n");
        text.extend_from_slice(good(3).as_bytes());
        fs::write(&p, text).unwrap();
        let (_, got, report) = LeaseLog::open(&p).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (report.lines, report.skipped, report.first_bad_line),
            (7, 4, Some(3))
        );
    }

    #[test]
    fn last_record_per_address_wins() {
        let dir = kindling_testkit::tempdir("leaselog");
        let p = dir.path().join("leases");
        let (mut log, _, _) = LeaseLog::open(&p).unwrap();
        let mut taken = lease(1, LeaseState::Bound, None);
        taken.mac = [2, 0, 0, 0, 0, 9];
        let hold = Lease {
            mac: [0; 6],
            ..lease(3, LeaseState::Declined, None)
        };
        log.append(&[
            lease(1, LeaseState::Bound, None),
            lease(2, LeaseState::Bound, None),
        ])
        .unwrap();
        log.append(&[lease(3, LeaseState::Offered, None), taken.clone()])
            .unwrap();
        log.append(&[lease(2, LeaseState::Free, None), hold.clone()])
            .unwrap();
        assert_eq!(log.live_count(), 2);
        let (_, got, report) = LeaseLog::open(&p).unwrap();
        assert_eq!(got, [taken, hold]);
        assert_eq!((report.lines, report.records), (6, 2));
    }

    #[test]
    fn compaction_keeps_exactly_the_live_set() {
        let dir = kindling_testkit::tempdir("leaselog");
        let p = dir.path().join("leases");
        let (mut log, _, _) = LeaseLog::open(&p).unwrap();
        let mut live: Vec<Lease> = (1..=10)
            .map(|n| lease(n, LeaseState::Bound, None))
            .collect();
        for round in 0..101 {
            live.iter_mut().for_each(|l| l.expires += round);
            log.append(&live).unwrap();
        }
        assert!(log.needs_compaction());
        let tomb = lease(10, LeaseState::Free, None);
        live.push(tomb);
        log.compact(&live).unwrap();
        live.pop();
        assert!(!log.needs_compaction());
        assert_eq!((log.line_count(), log.live_count()), (10, 10));
        assert_eq!(read(&p).lines().count(), 11);
        assert!(!tmp_path(&p).exists());
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let extra = lease(11, LeaseState::Offered, Some("after"));
        log.append(std::slice::from_ref(&extra)).unwrap();
        let (_, got, report) = LeaseLog::open(&p).unwrap();
        live.push(extra);
        assert_eq!(got, live);
        assert_eq!((report.lines, report.skipped), (11, 0));
    }

    #[test]
    fn crash_before_rename_leaves_a_stale_tmp_that_open_removes() {
        let dir = kindling_testkit::tempdir("leaselog");
        let p = dir.path().join("leases");
        let (mut log, _, _) = LeaseLog::open(&p).unwrap();
        log.append(&[lease(1, LeaseState::Bound, None)]).unwrap();
        drop(log);
        fs::write(
            tmp_path(&p),
            format!("{HEADER}\n10.0.0.7 02:00:00:00:00:07 bou"),
        )
        .unwrap();
        let (_, got, report) = LeaseLog::open(&p).unwrap();
        assert_eq!(got, [lease(1, LeaseState::Bound, None)]);
        assert!(report.removed_stale_tmp);
        assert!(!tmp_path(&p).exists());
    }

    #[test]
    fn foreign_files_and_unknown_versions_are_refused_untouched() {
        let dir = kindling_testkit::tempdir("leaselog");
        let p = dir.path().join("leases");
        for text in [
            "root:x:0:0:root:/root:/bin/sh\n",
            "# kindling-leases v2\n",
            "no newline",
        ] {
            fs::write(&p, text).unwrap();
            let e = LeaseLog::open(&p).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert_eq!(read(&p), text);
        }
        fs::write(&p, "# kindling-le").unwrap();
        let (_, got, report) = LeaseLog::open(&p).unwrap();
        assert!(got.is_empty() && report.torn_tail);
        assert_eq!(read(&p), format!("{HEADER}\n"));
        assert!(LeaseLog::open(&dir.path().join("missing/leases")).is_err());
    }

    #[test]
    fn record_parsing_is_strict() {
        let ok = "10.0.0.1 02:00:00:00:00:01 bound 5 6869";
        assert_eq!(parse_record(ok).and_then(|l| l.hostname), Some("hi".into()));
        for bad in [
            "",
            "10.0.0.1 02:00:00:00:00:01 bound 5",
            "10.0.0.1 02:00:00:00:00:01 bound 5 - extra",
            "10.0.0.1 02:00:00:00:00:01 bound 5 686",
            "10.0.0.1 02:00:00:00:00:01 bound 5 +6",
            "10.0.0.1 02:00:00:00:00:01 bound 5 ff",
            "10.0.0.1 02:00:00:00:00:01 gone 5 -",
            "10.0.0.1 02:00:00:00:00:01 bound 99999999999999999999 -",
            "10.0.0.1  02:00:00:00:00:01 bound 5 -",
            "10.0.0.256 02:00:00:00:00:01 bound 5 -",
        ] {
            assert_eq!(parse_record(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_record(&format!("{ok}{}", "61".repeat(62))),
            None,
            "over 63 bytes"
        );
        let long = lease(1, LeaseState::Bound, Some(&"x".repeat(100)));
        let line = format_record(&long);
        let back = parse_record(line.trim_end()).unwrap();
        assert_eq!(back.hostname.map(|h| h.len()), Some(MAX_HOSTNAME));
    }
}
