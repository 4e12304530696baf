//! Full-mode client helpers shared by the tests: hand-built DHCP client messages, the first
//! reply to one, and a hook script for real clients (dhclient, udhcpc) that records the
//! environment of each call.

use std::collections::HashMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use dhcproto::v4::{self, DhcpOption, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

/// A client message from `mac` (broadcast flag set) with `ciaddr` and `opts`.
pub fn client_packet(
    mac: [u8; 6],
    xid: u32,
    kind: v4::MessageType,
    ciaddr: Ipv4Addr,
    opts: &[DhcpOption],
) -> Vec<u8> {
    let mut m = v4::Message::new_with_id(
        xid,
        ciaddr,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac,
    );
    m.set_flags(v4::Flags::default().set_broadcast());
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    for o in opts {
        m.opts_mut().insert(o.clone());
    }
    let mut out = Vec::new();
    m.encode(&mut Encoder::new(&mut out)).unwrap();
    out
}

/// The first reply with `xid` within `wait`.
pub fn first_reply(sock: &UdpSocket, xid: u32, wait: Duration) -> Option<v4::Message> {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 1500];
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf)
            && let Ok(m) = v4::Message::decode(&mut Decoder::new(&buf[..n]))
            && m.xid() == xid
        {
            return Some(m);
        }
    }
    None
}

/// Option 53 of a reply.
pub fn msg_type(m: &v4::Message) -> Option<v4::MessageType> {
    match m.opts().get(OptionCode::MessageType) {
        Some(DhcpOption::MessageType(t)) => Some(*t),
        _ => None,
    }
}

/// A client hook script `hook-<tag>.sh` in `dir` that appends its environment (one block per
/// call, ended by `hook_end=1`) to `out`, then runs `then` (shell text, may be empty).
pub fn hook(dir: &Path, tag: &str, out: &Path, then: &str) -> String {
    let p = dir.join(format!("hook-{tag}.sh"));
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\n{{ echo \"---\"; echo \"arg=$1\"; env; echo hook_end=1; }} >> {}\n{then}\nexit 0\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p.display().to_string()
}

/// The environment of the last complete hook call whose `reason` / `$1` is one of `kinds`
/// (a block still being written has no end marker and is not read).
pub fn last_block(out: &Path, kinds: &[&str]) -> Option<HashMap<String, String>> {
    let text = std::fs::read_to_string(out).ok()?;
    text.split("---\n")
        .map(|b| {
            b.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        })
        .filter(|m| {
            m.contains_key("hook_end")
                && kinds.iter().any(|k| {
                    m.get("reason").map(String::as_str) == Some(k)
                        || m.get("arg").map(String::as_str) == Some(k)
                })
        })
        .last()
}
