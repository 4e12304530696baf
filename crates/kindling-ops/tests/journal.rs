//! The journal: survives a restart, a line cut by a crash loses nothing before it,
//! rotation keeps to its cap.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::net::Ipv4Addr;

use common::*;
use kindling_dhcp::Firmware;
use kindling_ops::journal::{JOURNAL_FILE, journal_path, read_journal, replay_journal};
use kindling_ops::{FsyncPolicy, Ops, OpsConfig};
use kindling_tftp::Outcome;
use kindling_timeline::{Event, Stage};

fn cfg() -> OpsConfig {
    OpsConfig {
        neighbour_lookup: false,
        ..OpsConfig::default()
    }
}

/// DHCP, a 4011 request that ties the IP, TFTP.
fn boot(ops: &Ops, mac: [u8; 6], ip: Ipv4Addr) {
    dhcp_discover(ops, mac, Firmware::UefiPxe, "");
    dhcp_pxe_request(ops, mac, ip);
    tftp(ops, ip, "ipxe.efi", 1_000_000, Outcome::Completed);
}

#[test]
fn survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ops = Ops::open(&cfg(), Some(dir.path()));
    boot(&ops, MAC, Ipv4Addr::new(10, 99, 0, 50));
    let before = ops.machine(MAC_STR).unwrap();
    assert_eq!(before.summary.last_stage, Some(Stage::Tftp));
    ops.shutdown();
    drop(ops);

    let again = Ops::open(&cfg(), Some(dir.path()));
    let after = again.machine("52-54-00-12-34-56").unwrap();
    assert_eq!(after, before);
    // The IP tie survives too: a TFTP transfer from that IP lands on the machine.
    tftp(
        &again,
        Ipv4Addr::new(10, 99, 0, 50),
        "x",
        1,
        Outcome::TimedOut,
    );
    let m = again.machine(MAC_STR).unwrap();
    assert_eq!(m.timeline.last().unwrap().events.len(), 5);
    assert!(m.summary.last_error.unwrap().message.contains("timed out"));
}

#[test]
fn a_line_cut_mid_way_loses_nothing_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let ops = Ops::open(&cfg(), Some(dir.path()));
    boot(&ops, MAC, Ipv4Addr::new(10, 99, 0, 50));
    ops.shutdown();
    drop(ops);
    let path = journal_path(dir.path(), 0);
    let full = std::fs::read(&path).unwrap();
    let lines = full.iter().filter(|b| **b == b'\n').count();
    assert_eq!(lines, 4, "seen + answered + seen(4011) + tftp");
    // A crash in the middle of writing the next event: half a line, no newline.
    let last_line_start = full[..full.len() - 1]
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap()
        + 1;
    let half = &full[last_line_start..last_line_start + (full.len() - last_line_start) / 2];
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(half)
        .unwrap();

    let rb = read_journal::<Event>(dir.path(), 4).unwrap();
    assert_eq!(rb.events.len(), 4);
    assert_eq!(rb.torn_lines, 1);

    // Restart: every earlier event is back, the torn tail is counted in /metrics,
    // and new events go on a fresh line.
    let ops = Ops::open(&cfg(), Some(dir.path()));
    let m = ops.machine(MAC_STR).unwrap();
    assert_eq!(m.timeline[0].events.len(), 4);
    assert!(ops.metrics_text().contains("kindling_journal_torn_lines 1"));
    boot(&ops, [0x52, 0x54, 0, 0, 0, 2], Ipv4Addr::new(10, 99, 0, 51));
    ops.shutdown();
    drop(ops);
    let rb = read_journal::<Event>(dir.path(), 4).unwrap();
    assert_eq!(rb.events.len(), 8);
    assert_eq!(rb.torn_lines, 1);
    assert_eq!(rb.bad_lines, 0);
}

#[test]
fn rotation_respects_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let c = OpsConfig {
        journal_max_bytes: 4096,
        journal_files: 3,
        fsync: FsyncPolicy::Never,
        ..cfg()
    };
    let ops = Ops::open(&c, Some(dir.path()));
    for i in 0..200u8 {
        boot(&ops, [0x52, 0x54, 0, 0, 1, i], Ipv4Addr::new(10, 99, 1, i));
        ops.flush();
    }
    ops.shutdown();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            JOURNAL_FILE.to_string(),
            format!("{JOURNAL_FILE}.1"),
            format!("{JOURNAL_FILE}.2")
        ]
    );
    let mut total = 0;
    for n in &names {
        let len = std::fs::metadata(dir.path().join(n)).unwrap().len();
        assert!(len <= 4096, "{n} is {len} bytes");
        total += len;
    }
    assert!(
        total > 2 * 4096 - 1024,
        "files are used up to the cap ({total})"
    );
    // What is left is the newest history, complete lines only.
    let rb = read_journal::<Event>(dir.path(), 3).unwrap();
    assert_eq!(rb.torn_lines + rb.bad_lines, 0);
    assert!(!rb.events.is_empty());
    let last = rb.events.last().unwrap();
    assert_eq!(
        last.mac.map(|m| m.to_string()).as_deref(),
        Some("52:54:00:00:01:c7")
    );
    let ts: Vec<u64> = rb.events.iter().map(|e| e.ts).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "oldest file first");
}

/// One journal line: an HTTP event of the test machine at `ts`.
fn event_line(ts: u64) -> Vec<u8> {
    let mut e = kindling_timeline::Event::http_request(
        ts,
        "GET",
        "/ipxe",
        kindling_timeline::Endpoint::Ipxe,
        200,
    );
    e.mac = kindling_model::MacAddr::parse(MAC_STR).ok();
    let mut l = serde_json::to_vec(&e).unwrap();
    l.push(b'\n');
    l
}

#[test]
fn replay_streams_every_file_oldest_first_and_counts_damage() {
    let dir = tempfile::tempdir().unwrap();
    let line = event_line;
    // Oldest file: two events, a blank line, a line that is no event.
    let mut old = line(1);
    old.extend_from_slice(b"  \n");
    old.extend_from_slice(b"not json\n");
    old.extend(line(2));
    std::fs::write(journal_path(dir.path(), 1), &old).unwrap();
    // Active file: one event, then half of one (a crash), no newline.
    let mut active = line(3);
    let cut = line(4);
    active.extend_from_slice(&cut[..cut.len() / 2]);
    std::fs::write(journal_path(dir.path(), 0), &active).unwrap();

    let mut seen = Vec::new();
    let rb = replay_journal(dir.path(), 2, |e: kindling_timeline::Event| seen.push(e.ts)).unwrap();
    assert_eq!(seen, vec![1, 2, 3]);
    assert!(rb.events.is_empty());
    assert_eq!(rb.read, 3);
    assert_eq!((rb.torn_lines, rb.bad_lines, rb.files), (1, 1, 2));
    assert_eq!(rb.bytes, (old.len() + active.len()) as u64);
    // The collecting form reads the same.
    let all = read_journal::<Event>(dir.path(), 2).unwrap();
    assert_eq!(all.events.iter().map(|e| e.ts).collect::<Vec<_>>(), seen);
    assert_eq!((all.torn_lines, all.bad_lines, all.bytes), (1, 1, rb.bytes));
    // A complete last line that parses but lacks its newline is torn too.
    std::fs::write(journal_path(dir.path(), 0), &cut[..cut.len() - 1]).unwrap();
    let rb = replay_journal::<kindling_timeline::Event>(dir.path(), 2, drop).unwrap();
    assert_eq!((rb.read, rb.torn_lines), (2, 1));
}

/// A damaged journal whose "line" is megabytes long (a zero-filled tail after a power cut,
/// a file overwritten by something else) is skipped as one bad line, events after a
/// newline are still read, and the whole file is never held in memory.
#[test]
fn an_overlong_line_is_skipped_without_being_held() {
    let dir = tempfile::tempdir().unwrap();
    let line = event_line;
    let mut f = line(1);
    f.extend(std::iter::repeat_n(
        0u8,
        3 * kindling_ops::journal::LINE_MAX,
    ));
    f.push(b'\n');
    f.extend(line(2));
    // The largest line allowed still parses when it is an event (padded with spaces).
    let mut big = line(3);
    big.pop();
    big.resize(kindling_ops::journal::LINE_MAX - 1, b' ');
    big.push(b'\n');
    f.extend(big);
    // And a zero-filled tail without a newline.
    f.extend(std::iter::repeat_n(
        0u8,
        2 * kindling_ops::journal::LINE_MAX,
    ));
    std::fs::write(journal_path(dir.path(), 0), &f).unwrap();
    let mut seen = Vec::new();
    let rb = replay_journal(dir.path(), 1, |e: kindling_timeline::Event| seen.push(e.ts)).unwrap();
    assert_eq!(seen, vec![1, 2, 3]);
    assert_eq!(rb.bad_lines, 2, "{rb:?}");
    assert_eq!(rb.bytes, f.len() as u64);
}

fn metric(text: &str, name: &str) -> Option<f64> {
    let s = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).ok()?;
    s.samples
        .iter()
        .find(|x| x.metric == name)
        .and_then(|x| match x.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => Some(v),
            _ => None,
        })
}

/// History never stops the server: a state directory that is a regular file leaves the
/// timelines in memory, says so in `/metrics` and `/api/v1/status`, counts what it drops.
#[test]
fn a_state_dir_that_is_a_file_keeps_timelines_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::write(&state, "a file, not a directory").unwrap();
    let ops = Ops::open(&cfg(), Some(&state));
    let text = ops.metrics_text();
    assert_eq!(
        metric(&text, "kindling_journal_writable"),
        Some(0.0),
        "{text}"
    );
    boot(&ops, MAC, Ipv4Addr::new(10, 99, 0, 50));
    ops.flush();
    // In memory, whole.
    let m = ops.machine(MAC_STR).unwrap();
    assert_eq!(m.timeline[0].events.len(), 4);
    let text = ops.metrics_text();
    assert_eq!(
        metric(&text, "kindling_journal_dropped_total"),
        Some(4.0),
        "{text}"
    );
    let st = ops.metrics.journal_status();
    assert!(st.enabled && !st.writable);
    assert!(
        st.error.as_deref().unwrap().contains("is not a directory"),
        "{st:?}"
    );
    let status = kindling_ops::http::status_json(&ops);
    assert_eq!(status["journal"]["writable"], false);
    assert_eq!(status["journal"]["dropped"], 4);
    ops.shutdown();
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        "a file, not a directory"
    );
}

/// A directory where the active journal file should be: the older files are read back,
/// the server goes on without writing.
#[test]
fn a_journal_path_that_is_a_directory_is_read_around_and_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(journal_path(dir.path(), 1), event_line(1)).unwrap();
    std::fs::create_dir(journal_path(dir.path(), 0)).unwrap();
    let ops = Ops::open(&cfg(), Some(dir.path()));
    let m = ops.machine(MAC_STR).unwrap();
    assert_eq!(
        m.timeline[0].events.len(),
        1,
        "read back from events.jsonl.1"
    );
    boot(&ops, [0x52, 0x54, 0, 0, 0, 9], Ipv4Addr::new(10, 99, 0, 59));
    ops.flush();
    assert!(ops.machine("52:54:00:00:00:09").is_some());
    let text = ops.metrics_text();
    assert_eq!(metric(&text, "kindling_journal_writable"), Some(0.0));
    assert_eq!(metric(&text, "kindling_journal_dropped_total"), Some(4.0));
    ops.shutdown();
}

/// Without a journal there is nothing to be writable: the gauge is absent, the counter 0.
#[test]
fn no_journal_no_writable_gauge() {
    let ops = Ops::open(&cfg(), None);
    let text = ops.metrics_text();
    assert_eq!(metric(&text, "kindling_journal_writable"), None);
    assert_eq!(metric(&text, "kindling_journal_dropped_total"), Some(0.0));
    let dir = tempfile::tempdir().unwrap();
    let ops = Ops::open(&cfg(), Some(dir.path()));
    assert_eq!(
        metric(&ops.metrics_text(), "kindling_journal_writable"),
        Some(1.0)
    );
}

/// Journals written before events were typed hold every field as text; they read back
/// into the typed fields (MAC, firmware, message type, option 93 code) and render as
/// they were written.
#[test]
fn a_journal_of_text_fields_reads_into_typed_events() {
    let dir = tempfile::tempdir().unwrap();
    let old = concat!(
        r#"{"ts":1795006000021,"kind":"dhcp_seen","mac":"52:54:00:00:00:0a","stage":"dhcp","ok":true,"what":"DISCOVER on port 67","iface":"kbr0","arch":"7 (efi-x64)","firmware":"uefi_pxe","message":"discover","vendor_class":"PXEClient:Arch:00007:UNDI:003016"}"#,
        "\n",
        r#"{"ts":1795006000022,"kind":"dhcp_answered","mac":"52:54:00:00:00:0a","stage":"dhcp","ok":true,"what":"OFFER ipxe.efi","path":"ipxe.efi","arch":"0 (bios)","firmware":"bios_pxe","message":"offer"}"#,
        "\n",
    );
    std::fs::write(journal_path(dir.path(), 0), old).unwrap();
    let rb = read_journal::<Event>(dir.path(), 1).unwrap();
    assert_eq!((rb.read, rb.bad_lines), (2, 0));
    assert_eq!(
        rb.events[0].mac,
        Some(kindling_model::MacAddr([0x52, 0x54, 0, 0, 0, 0x0a]))
    );
    let (seen, offer) = (rb.events[0].dhcp().unwrap(), rb.events[1].dhcp().unwrap());
    assert_eq!(seen.firmware, Some(Firmware::UefiPxe));
    assert_eq!(
        seen.message,
        Some(kindling_dhcp::wire::MessageType::Discover.into())
    );
    assert_eq!(seen.port, 67);
    assert_eq!((seen.arch, offer.arch), (Some(7), Some(0)));
    assert_eq!(
        offer.message,
        Some(kindling_dhcp::wire::MessageType::Offer.into())
    );
    assert_eq!(offer.file.as_deref(), Some("ipxe.efi"));
    let again: String = rb
        .events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    assert_eq!(again, old);
}

/// DHCPv6 events (the IPv6 boot's SOLICIT and ADVERTISE) are written with `"dhcpv6":true`
/// and read back as DHCPv6 message types: `request` is DHCPv6's REQUEST there, DHCPv4's
/// elsewhere.
#[test]
fn dhcpv6_events_read_back_as_dhcpv6() {
    use kindling_timeline::event::Message;
    let dir = tempfile::tempdir().unwrap();
    let lines = concat!(
        r#"{"ts":1795006000031,"kind":"dhcp_seen","mac":"52:54:00:12:34:66","stage":"dhcp","ok":true,"what":"SOLICIT on port 547","iface":"br0","arch":"16 (http-x64)","firmware":"uefi_http","message":"solicit","dhcpv6":true,"vendor_class":"HTTPClient:Arch:00016:UNDI:003000"}"#,
        "\n",
        r#"{"ts":1795006000032,"kind":"dhcp_answered","mac":"52:54:00:12:34:66","ip":"fd00:99::2473:e555:57b:c1ca","stage":"dhcp","ok":true,"what":"ADVERTISE http://[fd00:99::1]:8080/tftp/snponly.efi","path":"http://[fd00:99::1]:8080/tftp/snponly.efi","iface":"br0","arch":"16 (http-x64)","firmware":"uefi_http","message":"advertise","dhcpv6":true,"vendor_class":"HTTPClient:Arch:00016:UNDI:003000"}"#,
        "\n",
        r#"{"ts":1795006000033,"kind":"dhcp_seen","mac":"52:54:00:12:34:66","stage":"dhcp","ok":true,"what":"REQUEST on port 547","iface":"br0","arch":"7 (efi-x64)","firmware":"ipxe","message":"request","dhcpv6":true,"user_class":"iPXE"}"#,
        "\n",
        r#"{"ts":1795006000034,"kind":"dhcp_seen","mac":"52:54:00:12:34:66","stage":"dhcp","ok":true,"what":"REQUEST on port 4011","arch":"7 (efi-x64)","firmware":"uefi_pxe","message":"request"}"#,
        "\n",
    );
    std::fs::write(journal_path(dir.path(), 0), lines).unwrap();
    let rb = read_journal::<Event>(dir.path(), 1).unwrap();
    assert_eq!((rb.read, rb.bad_lines), (4, 0));
    let msg = |i: usize| rb.events[i].dhcp().unwrap().message;
    assert_eq!(msg(0), Some(Message::V6(1)));
    assert_eq!(msg(1), Some(Message::V6(2)));
    assert_eq!(msg(2), Some(Message::V6(3)));
    assert_eq!(
        msg(3),
        Some(kindling_dhcp::wire::MessageType::Request.into())
    );
    assert!(
        rb.events[0].is_firmware_discover(),
        "a firmware SOLICIT starts a boot"
    );
    assert_eq!(rb.events[0].dhcp().unwrap().port, 547);
    let again: String = rb
        .events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    assert_eq!(again, lines);
}
