//! A server on a wildcard address answers from the address each request was sent
//! to (IP_PKTINFO / IPV6_RECVPKTINFO), on a host with several addresses. PXE ROMs and
//! iPXE only accept packets from the address they asked.
//!
//! Runs inside a network namespace the test makes, with only loopback up: every 127/8
//! address is local there and the kernel's own choice of source towards 127.0.0.1 is
//! 127.0.0.1, so a request to 127.0.0.2 tells whether the server answered from the
//! address asked. Needs root; skipped with a message otherwise.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{Raw, Server, config, in_netns, pattern, tempdir};
use kindling_tftp::packet::Packet;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Windowed download with options; every packet must come from `from_ip`.
/// Returns the bytes and the transfer's address.
fn fetch(raw: &Raw, name: &str, from_ip: IpAddr) -> (Vec<u8>, SocketAddr) {
    raw.rrq(name, &[("blksize", "1024"), ("windowsize", "4")]);
    let (p, tid) = raw.recv().expect("no OACK");
    assert_eq!(tid.ip(), from_ip, "OACK from the wrong address");
    assert!(matches!(p, Packet::Oack { .. }), "{p:?}");
    raw.send_to(&Packet::Ack { block: 0 }.encode(), tid);
    let mut got = Vec::new();
    loop {
        let (p, from) = raw.recv().expect("no DATA");
        assert_eq!(from, tid, "DATA from another address or port");
        let Packet::Data { block, data } = p else {
            panic!("{p:?}")
        };
        let last = data.len() < 1024;
        got.extend_from_slice(&data);
        if last || block % 4 == 0 {
            raw.send_to(&Packet::Ack { block }.encode(), tid);
        }
        if last {
            return (got, tid);
        }
    }
}

fn error_from(raw: &Raw, what: &str) -> SocketAddr {
    let (p, from) = raw.recv().unwrap_or_else(|| panic!("no answer to {what}"));
    assert!(matches!(p, Packet::Error { .. }), "{p:?}");
    from
}

fn check(listen: &str, client: &str, asked: &str, tag: &str) {
    let dir = tempdir(&format!("tftp-{tag}"));
    let root = dir.path().to_path_buf();
    std::fs::write(root.join("f"), pattern(20_000, 9)).unwrap();
    let listen: SocketAddr = listen.parse().unwrap();
    for single_port in [false, true] {
        let mut c = config(&root);
        c.single_port = single_port;
        let port = listen.port() + single_port as u16;
        let srv = Server::start_at(c, SocketAddr::new(listen.ip(), port), None, None);
        let asked = SocketAddr::new(ip(asked), port);
        let raw = Raw::bound(client, asked);
        raw.set_timeout(Duration::from_secs(3));

        let (got, tid) = fetch(&raw, "f", asked.ip());
        assert!(got == pattern(20_000, 9), "{tag}: content");
        if single_port {
            assert_eq!(tid, asked, "{tag}: single-port answers from the listener");
        }
        // Refusals: from the transfer socket (missing file) and from the listener
        // itself (write request). A new client port each time, as real clients do:
        // in single-port mode a transfer that just ended may still hold the old one.
        let raw = Raw::bound(client, asked);
        raw.rrq("missing", &[]);
        assert_eq!(
            error_from(&raw, &format!("{tag} {single_port} missing")).ip(),
            asked.ip(),
            "{tag}: not-found error"
        );
        let raw = Raw::bound(client, asked);
        let mut wrq = vec![0u8, 2];
        wrq.extend_from_slice(b"f\0octet\0");
        raw.send_to(&wrq, asked);
        assert_eq!(
            error_from(&raw, &format!("{tag} {single_port} WRQ")),
            asked,
            "{tag}: WRQ refusal"
        );
        let s = srv.settled(1);
        assert_eq!(s.transfers_ok, 1, "{tag}: {s:?}");
    }
}

#[test]
fn ipv4_wildcard_answers_from_the_address_asked() {
    in_netns("ipv4_wildcard_answers_from_the_address_asked", || {
        // Without IP_PKTINFO every answer would come from 127.0.0.1.
        check("0.0.0.0:69", "127.0.0.1:0", "127.0.0.2", "v4");
        // And the listener's own address still works as before.
        check("0.0.0.0:169", "127.0.0.1:0", "127.0.0.1", "v4-primary");
    });
}

#[test]
fn dual_stack_wildcard_answers_ipv4_and_ipv6() {
    in_netns("dual_stack_wildcard_answers_ipv4_and_ipv6", || {
        check("[::]:69", "127.0.0.1:0", "127.0.0.3", "dual-v4");
        check("[::]:169", "[::1]:0", "::1", "dual-v6");
    });
}
