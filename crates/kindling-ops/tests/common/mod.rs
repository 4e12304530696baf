//! Shared test helpers: simulated observer calls, a real kindling-http server, a tiny
//! HTTP client.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kindling_dhcp::wire::MessageType;
use kindling_dhcp::{
    AnsweredEvent, ClientInfo, DhcpObserver, Firmware, IgnoreReason, IgnoredEvent, ListenPort,
    SeenEvent,
};
use kindling_ops::Ops;
use kindling_tftp::{Outcome, TftpObserver};

pub const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
pub const MAC_STR: &str = "52:54:00:12:34:56";

pub fn client(mac: [u8; 6], firmware: Firmware, msg: MessageType) -> ClientInfo {
    ClientInfo {
        xid: 0x1234_5678,
        mac: Some(mac),
        message_type: Some(msg),
        vendor_class: Some("PXEClient:Arch:00007:UNDI:003016".into()),
        vendor_prefix: Some("PXEClient".into()),
        architectures: vec![7],
        arch: Some(7),
        firmware: Some(firmware),
        user_classes: if firmware == Firmware::Ipxe {
            vec!["iPXE".into()]
        } else {
            vec![]
        },
        ciaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
    }
}

/// A firmware (or iPXE) DISCOVER seen and answered on port 67.
pub fn dhcp_discover(ops: &Ops, mac: [u8; 6], firmware: Firmware, file: &str) {
    let c = client(mac, firmware, MessageType::Discover);
    let src = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
    ops.seen(&SeenEvent {
        iface: "kbr0",
        port: ListenPort::Dhcp,
        source: src,
        client: &c,
    });
    let reply = kindling_dhcp::Reply {
        packet: vec![0; 300],
        dest: SocketAddrV4::new(Ipv4Addr::BROADCAST, 68),
        message_type: MessageType::Offer,
        file: file.into(),
        rule: None,
        lease: None,
    };
    ops.answered(&AnsweredEvent {
        iface: "kbr0",
        port: ListenPort::Dhcp,
        server_ip: Ipv4Addr::new(10, 99, 0, 1),
        client: &c,
        reply: &reply,
    });
}

/// A PXE REQUEST on 4011 from `ip` (ties the IP to the MAC).
pub fn dhcp_pxe_request(ops: &Ops, mac: [u8; 6], ip: Ipv4Addr) {
    let c = client(mac, Firmware::UefiPxe, MessageType::Request);
    ops.seen(&SeenEvent {
        iface: "kbr0",
        port: ListenPort::Pxe,
        source: SocketAddrV4::new(ip, 4011),
        client: &c,
    });
}

pub fn dhcp_ignored(ops: &Ops, mac: [u8; 6], reason: IgnoreReason) {
    let c = client(mac, Firmware::UefiPxe, MessageType::Discover);
    ops.ignored(&IgnoredEvent {
        iface: "kbr0",
        port: ListenPort::Dhcp,
        source: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        client: Some(&c),
        reason,
    });
}

pub fn tftp(ops: &Ops, ip: Ipv4Addr, file: &str, bytes: u64, outcome: Outcome) {
    let peer = SocketAddr::V4(SocketAddrV4::new(ip, 2070));
    ops.transfer_started(peer, file, Some(bytes));
    ops.transfer_finished(peer, file, bytes, Duration::from_millis(120), &outcome);
}

/// A matchbox data directory with one group for `MAC_STR`, a FCOS-like profile, an
/// Ignition file and three assets.
pub fn data_dir(root: &Path) {
    for d in ["groups", "profiles", "ignition", "assets/fcos"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("groups/node1.json"),
        format!(
            r#"{{"id":"node1","name":"node 1","profile":"fcos","selector":{{"mac":"{MAC_STR}"}}}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("profiles/fcos.json"),
        r#"{"id":"fcos","name":"FCOS live","ignition_id":"node.ign",
            "boot":{"kernel":"/assets/fcos/live-k","initrd":["--name main /assets/fcos/live-i.img"],
            "args":["initrd=main","coreos.live.rootfs_url=http://10.99.0.1:8080/assets/fcos/live-r.img","ignition.firstboot"]}}"#,
    )
    .unwrap();
    std::fs::write(
        root.join("ignition/node.ign"),
        r#"{"ignition":{"version":"3.4.0"}}"#,
    )
    .unwrap();
    std::fs::write(root.join("assets/fcos/live-k"), vec![b'k'; 3000]).unwrap();
    std::fs::write(root.join("assets/fcos/live-i.img"), vec![b'i'; 5000]).unwrap();
    std::fs::write(root.join("assets/fcos/live-r.img"), vec![b'r'; 7000]).unwrap();
}

pub struct Server {
    /// The boot listener (matchbox endpoints, assets, `/readyz`).
    pub addr: SocketAddr,
    /// The admin listener (`/api/v1/*`, `/ui/`, `/metrics`), no credentials.
    pub admin: SocketAddr,
    pub ops: Arc<Ops>,
    pub cancel: tokio_util::sync::CancellationToken,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A real kindling-http server on 127.0.0.1:0 with the ops observer and boot extensions,
/// and an admin listener on another 127.0.0.1 port with the admin extensions.
pub async fn start_server(root: &Path, ops: Arc<Ops>) -> Server {
    start_server_with(root, ops, kindling_http::server::Limits::default()).await
}

/// [`start_server`] with these connection limits on the admin listener.
pub async fn start_server_with(
    root: &Path,
    ops: Arc<Ops>,
    admin_limits: kindling_http::server::Limits,
) -> Server {
    let data = kindling_model::DataDir::new(root);
    let mut loader = kindling_model::Loader::new(data.clone());
    let snap = loader.load();
    ops.note_snapshot(&snap);
    let mut shared = kindling_http::Shared::new(data, snap);
    shared.observer = Some(ops.clone());
    shared.extensions.extend(ops.boot_extensions());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = admin_listener.local_addr().unwrap();
    let stats = Arc::new(kindling_http::server::Stats::default());
    ops.metrics.add_listener("admin", stats.clone());
    let admin_cfg = Arc::new(kindling_http::server::Admin {
        extensions: ops.admin_extensions(),
        observer: Some(ops.clone()),
        token: None,
        tls: None,
        stats,
    });
    let cancel = tokio_util::sync::CancellationToken::new();
    let boot_stats = Arc::new(kindling_http::server::Stats::default());
    ops.metrics.add_listener("http", boot_stats.clone());
    let boot = kindling_http::server::serve_with(
        listener,
        Arc::new(shared),
        kindling_http::server::Limits::default(),
        boot_stats,
        cancel.clone(),
    );
    let adm =
        kindling_http::server::serve_admin(admin_listener, admin_cfg, admin_limits, cancel.clone());
    let task = tokio::spawn(async move {
        let (b, a) = tokio::join!(boot, adm);
        b.and(a)
    });
    Server {
        addr,
        admin,
        ops,
        cancel,
        task,
    }
}

/// Blocking GET; returns (status, headers (lower-case names), body).
pub fn get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let body = buf[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body)
}

pub async fn aget(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || get(addr, &path))
        .await
        .unwrap()
}

pub fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}
