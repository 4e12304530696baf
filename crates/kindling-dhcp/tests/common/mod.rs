//! Network-namespace test harness: namespaces, veth pairs, processes and sockets that are
//! cleaned up by Drop guards even when a test panics. Everything runs inside namespaces the
//! test creates (names contain "kindling"); nothing touches the host's interfaces.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dhcproto::v4::{self, DhcpOption, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// True when the namespace tests can run; prints why not otherwise.
pub fn can_run(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP {test}: needs root (network namespaces)");
        return false;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("SKIP {test}: iproute2 `ip` not found");
        return false;
    }
    true
}

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("kindling-dhcp-{}-{n}-{tag}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ...`
    pub fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v);
    }

    /// A command run inside the namespace.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A child process, killed (SIGKILL) and reaped on drop.
pub struct Proc {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub err_lines: mpsc::Receiver<String>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let (tx, lines) = mpsc::channel();
        let (etx, err_lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(l);
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            std::thread::spawn(move || {
                for l in BufReader::new(err).lines().map_while(Result::ok) {
                    let _ = etx.send(l);
                }
            });
        }
        Self {
            child,
            lines,
            err_lines,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for a stdout (or stderr) line containing `needle`.
    pub fn wait_for(
        &self,
        needle: &str,
        stderr: bool,
        timeout: Duration,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let rx = if stderr { &self.err_lines } else { &self.lines };
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return Ok(l),
                Ok(l) => seen.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(200));
                    break;
                }
            }
        }
        let err: Vec<String> = self.err_lines.try_iter().collect();
        Err(format!(
            "no line with {needle:?}; saw {seen:?}; stderr {err:?}"
        ))
    }

    /// SIGTERM, then wait up to 5 s (SIGKILL after).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first so that wrappers such as `timeout` pass it on to their child.
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// Runs `f` on a fresh thread that has entered namespace `ns` (sockets created there stay
/// in that namespace).
pub fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let fd = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("netns thread")
    })
}

/// A UDP socket in `ns`, bound to `bind` on `device`, broadcast allowed.
pub fn udp_in(ns: &Netns, device: &str, bind: SocketAddrV4) -> UdpSocket {
    in_ns(&ns.name, || {
        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .unwrap();
        s.set_reuse_address(true).unwrap();
        s.set_broadcast(true).unwrap();
        s.bind_device(Some(device.as_bytes())).unwrap();
        s.bind(&SocketAddr::V4(bind).into()).unwrap();
        let u: UdpSocket = s.into();
        u.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        u
    })
}

/// The standard lab: server namespace S (s0 = 192.168.77.1/24) and client namespace C
/// (c0 = 192.168.77.2/24, plus 10.55.0.1/24 playing a relay's subnet, routed from S).
pub struct Lab {
    pub tmp: TempDir,
    pub s: Netns,
    pub c: Netns,
}

pub const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);
pub const RELAY: Ipv4Addr = Ipv4Addr::new(10, 55, 0, 1);

impl Lab {
    pub fn new() -> Self {
        let tmp = TempDir::new();
        let s = Netns::new("s");
        let c = Netns::new("c");
        s.ip(&[
            "link", "add", "s0", "type", "veth", "peer", "name", "c0", "netns", &c.name,
        ]);
        s.ip(&["addr", "add", "192.168.77.1/24", "dev", "s0"]);
        s.ip(&["link", "set", "s0", "up"]);
        c.ip(&["addr", "add", "192.168.77.2/24", "dev", "c0"]);
        c.ip(&["addr", "add", "10.55.0.1/24", "dev", "c0"]);
        c.ip(&["link", "set", "c0", "up"]);
        s.ip(&["route", "add", "10.55.0.0/24", "via", "192.168.77.2"]);
        Self { tmp, s, c }
    }
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("kindling-dhcp-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Path of the `proxydhcp` example next to this test binary.
pub fn example_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join("examples").join("proxydhcp");
    assert!(
        p.exists(),
        "{} missing: run `cargo test` (it builds examples)",
        p.display()
    );
    p
}

/// Kindling's proxy DHCP (the example binary) running in `ns`.
pub struct Kindling {
    pub proc: Proc,
    pub stats: PathBuf,
}

impl Kindling {
    pub fn start(ns: &Netns, tmp: &TempDir, dhcp_toml: &str) -> Result<Self, String> {
        Self::start_with(ns, tmp, dhcp_toml, &[])
    }

    /// Like `start`, with extra command-line arguments (e.g. `--log-format json`) and the
    /// log filter pinned to `info`.
    pub fn start_with(
        ns: &Netns,
        tmp: &TempDir,
        dhcp_toml: &str,
        extra: &[&str],
    ) -> Result<Self, String> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let cfg = tmp.path(&format!("kindling-{n}.toml"));
        std::fs::write(&cfg, format!("[dhcp]\n{dhcp_toml}")).unwrap();
        let stats = tmp.path(&format!("stats-{n}.json"));
        let mut cmd = ns.cmd(example_bin().to_str().unwrap());
        cmd.arg(&cfg)
            .arg("--stats-file")
            .arg(&stats)
            .arg("--events")
            .args(extra);
        if !extra.is_empty() {
            cmd.env("RUST_LOG", "info");
        }
        let proc = Proc::spawn(cmd);
        proc.wait_for("READY", false, Duration::from_secs(10))?;
        Ok(Self { proc, stats })
    }

    /// Stops the server and returns its counters.
    pub fn stop(mut self) -> serde_json::Value {
        let st = self.proc.terminate();
        assert!(st.is_some_and(|s| s.success()), "proxydhcp exit: {st:?}");
        let text = std::fs::read_to_string(&self.stats).expect("stats file");
        serde_json::from_str(&text).unwrap()
    }

    /// Observer events printed so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.proc
            .lines
            .try_iter()
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    }
}

/// dnsmasq (Debian 2.90) running in `ns` as the behavioural oracle.
pub struct Dnsmasq {
    pub proc: Proc,
}

impl Dnsmasq {
    pub fn start(ns: &Netns, tmp: &TempDir, iface: &str, conf: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let cfg = tmp.path(&format!("dnsmasq-{n}.conf"));
        std::fs::write(&cfg, conf).unwrap();
        let leases = tmp.path(&format!("dnsmasq-{n}.leases"));
        let mut cmd = ns.cmd("dnsmasq");
        cmd.arg("--no-daemon")
            .arg("--port=0")
            .arg("--bind-interfaces")
            .arg(format!("--interface={iface}"))
            .arg(format!("--conf-file={}", cfg.display()))
            .arg(format!("--dhcp-leasefile={}", leases.display()))
            .arg("--pid-file=")
            .arg("--user=root")
            .arg("--log-dhcp")
            .arg("--log-facility=-");
        let proc = Proc::spawn(cmd);
        proc.wait_for("started", true, Duration::from_secs(10))
            .expect("dnsmasq started");
        // Give it a moment to finish binding 67/4011 after the banner.
        std::thread::sleep(Duration::from_millis(200));
        Self { proc }
    }
}

/// A PXE client packet builder (what firmware sends), encoded with dhcproto.
#[derive(Clone, Debug)]
pub struct Pkt {
    pub xid: u32,
    pub msg: v4::MessageType,
    pub vendor: Option<Vec<u8>>,
    pub arch: Vec<u16>,
    pub user_class: Option<Vec<u8>>,
    pub opt175: bool,
    pub guid: bool,
    pub boot_item: Option<(u16, u16)>,
    pub mac: [u8; 6],
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    /// The address the site's DHCP server leased (ciaddr of the 4011 REQUEST).
    pub lease: Ipv4Addr,
}

pub const GUID: [u8; 17] = [
    0, 0xde, 0xad, 0xbe, 0xef, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
];

impl Pkt {
    pub fn new(vendor: &str, arch: &[u16]) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst) as u32;
        Self {
            xid: 0x4b00_0000 | (std::process::id() << 8 & 0x00ff_ff00) | (n & 0xff),
            msg: v4::MessageType::Discover,
            vendor: Some(vendor.as_bytes().to_vec()),
            arch: arch.to_vec(),
            user_class: None,
            opt175: false,
            guid: true,
            boot_item: None,
            mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56],
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            lease: CLIENT,
        }
    }
    pub fn bios() -> Self {
        Self::new("PXEClient:Arch:00000:UNDI:002001", &[0])
    }
    pub fn uefi(a: u16) -> Self {
        Self::new(&format!("PXEClient:Arch:{a:05}:UNDI:003016"), &[a])
    }
    pub fn http(a: u16) -> Self {
        Self::new(&format!("HTTPClient:Arch:{a:05}:UNDI:003001"), &[a])
    }
    pub fn ipxe(mut self) -> Self {
        self.user_class = Some(b"iPXE".to_vec());
        self
    }
    /// The follow-up REQUEST to port 4011 from an address the real DHCP server leased.
    pub fn to_4011(&self, boot_item: Option<(u16, u16)>) -> Self {
        let mut p = self.clone();
        p.msg = v4::MessageType::Request;
        p.ciaddr = p.lease;
        p.boot_item = boot_item;
        p.giaddr = Ipv4Addr::UNSPECIFIED;
        p
    }
    pub fn bytes(&self) -> Vec<u8> {
        let mut m = v4::Message::new_with_id(
            self.xid,
            self.ciaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            self.giaddr,
            &self.mac,
        );
        if !self.giaddr.is_unspecified() {
            m.set_hops(1);
        }
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(self.msg));
        if let Some(v) = &self.vendor {
            o.insert(DhcpOption::ClassIdentifier(v.clone()));
        }
        if self.guid {
            o.insert(DhcpOption::ClientMachineIdentifier(GUID.to_vec()));
        }
        o.insert(DhcpOption::ClientNetworkInterface(1, 3, 16));
        o.insert(DhcpOption::MaxMessageSize(1464));
        if let Some(u) = &self.user_class {
            o.insert(DhcpOption::UserClass(u.clone()));
        }
        if self.opt175 {
            o.insert(DhcpOption::Unknown(v4::UnknownOption::new(
                175.into(),
                vec![0xb1, 0x05, 0x01, 0x80, 0x86, 0x10, 0x0e],
            )));
        }
        if let Some((t, l)) = self.boot_item {
            let t = t.to_be_bytes();
            let l = l.to_be_bytes();
            o.insert(DhcpOption::VendorExtensions(vec![
                71, 4, t[0], t[1], l[0], l[1], 255,
            ]));
        }
        let mut out = Vec::new();
        m.encode(&mut Encoder::new(&mut out)).unwrap();
        // dhcproto encodes only one option-93 value: append the full list by hand.
        if !self.arch.is_empty() {
            out.pop();
            out.push(93);
            out.push((self.arch.len() * 2) as u8);
            for a in &self.arch {
                out.extend_from_slice(&a.to_be_bytes());
            }
            out.push(255);
        }
        out
    }
}

/// A decoded reply.
#[derive(Clone, Debug)]
pub struct Got {
    pub from: SocketAddrV4,
    pub msg: v4::Message,
}

impl Got {
    pub fn file(&self) -> String {
        nul_trim(self.msg.fname())
    }
    pub fn sname(&self) -> String {
        nul_trim(self.msg.sname())
    }
    pub fn msg_type(&self) -> v4::MessageType {
        self.msg.opts().msg_type().expect("option 53")
    }
    pub fn opt54(&self) -> Option<Ipv4Addr> {
        match self.msg.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
            _ => None,
        }
    }
    pub fn opt60(&self) -> Option<String> {
        match self.msg.opts().get(OptionCode::ClassIdentifier) {
            Some(DhcpOption::ClassIdentifier(v)) => Some(String::from_utf8_lossy(v).into()),
            _ => None,
        }
    }
    pub fn opt43(&self) -> Option<Vec<u8>> {
        match self.msg.opts().get(OptionCode::VendorExtensions) {
            Some(DhcpOption::VendorExtensions(v)) => Some(v.clone()),
            _ => None,
        }
    }
    pub fn opt97(&self) -> Option<Vec<u8>> {
        match self.msg.opts().get(OptionCode::ClientMachineIdentifier) {
            Some(DhcpOption::ClientMachineIdentifier(v)) => Some(v.clone()),
            _ => None,
        }
    }
    /// PXE sub-options of option 43 as (code, data).
    pub fn pxe_subs(&self) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let Some(d) = self.opt43() else { return out };
        let mut i = 0;
        while i + 1 < d.len() && d[i] != 255 {
            let len = d[i + 1] as usize;
            if i + 2 + len > d.len() {
                break;
            }
            out.push((d[i], d[i + 2..i + 2 + len].to_vec()));
            i += 2 + len;
        }
        out
    }
}

fn nul_trim(b: Option<&[u8]>) -> String {
    b.map(|f| {
        String::from_utf8_lossy(f)
            .trim_end_matches('\0')
            .to_string()
    })
    .unwrap_or_default()
}

/// Sends `pkt` to `dest` and collects every reply with the same xid for `window` (after the
/// first reply, 300 ms more to catch duplicates).
pub fn exchange(sock: &UdpSocket, pkt: &Pkt, dest: SocketAddrV4, window: Duration) -> Vec<Got> {
    sock.send_to(&pkt.bytes(), dest).expect("send");
    collect(sock, pkt.xid, window)
}

pub fn collect(sock: &UdpSocket, xid: u32, window: Duration) -> Vec<Got> {
    let mut out = Vec::new();
    let mut deadline = Instant::now() + window;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok((n, SocketAddr::V4(from))) => {
                let Ok(msg) = v4::Message::decode(&mut Decoder::new(&buf[..n])) else {
                    continue;
                };
                if msg.xid() != xid || msg.opcode() != v4::Opcode::BootReply {
                    continue;
                }
                if out.is_empty() {
                    deadline = deadline.min(Instant::now() + Duration::from_millis(300));
                }
                out.push(Got { from, msg });
            }
            Ok(_) => {}
            Err(_) => {}
        }
    }
    out
}

/// Exactly one reply expected.
pub fn one(mut v: Vec<Got>, what: &str) -> Got {
    assert_eq!(v.len(), 1, "{what}: expected exactly one reply, got {v:#?}");
    v.remove(0)
}

/// Asserts the invariants of every proxy reply.
pub fn check_proxy_reply(g: &Got, server: Ipv4Addr) {
    assert_eq!(
        g.msg.yiaddr(),
        Ipv4Addr::UNSPECIFIED,
        "yiaddr must be 0: {g:#?}"
    );
    assert_eq!(g.opt54(), Some(server), "option 54");
}

/// Where a real PXE client would end up after this offer: (TFTP/HTTP server, file), doing the
/// 4011 step when the offer asks for it (menu item, or no option 43 and no file).
pub fn resolve_boot(
    sock4011: &UdpSocket,
    discover: &Pkt,
    offer: &Got,
) -> (Ipv4Addr, String, Option<Got>) {
    let subs = offer.pxe_subs();
    let menu = subs.iter().find(|(c, _)| *c == 9).map(|(_, d)| d.clone());
    let dc = subs
        .iter()
        .find(|(c, _)| *c == 6)
        .map(|(_, d)| d.first().copied().unwrap_or(0));
    let server = if offer.msg.siaddr().is_unspecified() {
        offer.opt54().unwrap()
    } else {
        offer.msg.siaddr()
    };
    let item = match (&menu, dc) {
        (Some(m), dc) if dc != Some(8) && m.len() >= 2 => {
            Some((u16::from_be_bytes([m[0], m[1]]), 0))
        }
        _ => None,
    };
    if item.is_none() && !offer.file().is_empty() {
        return (server, offer.file(), None);
    }
    let req = discover.to_4011(item);
    let ack = one(
        exchange(
            sock4011,
            &req,
            SocketAddrV4::new(server, 4011),
            Duration::from_secs(2),
        ),
        "4011 ACK",
    );
    assert_eq!(ack.msg_type(), v4::MessageType::Ack);
    let srv = if ack.msg.siaddr().is_unspecified() {
        server
    } else {
        ack.msg.siaddr()
    };
    (srv, ack.file(), Some(ack))
}

/// Reads UDP payloads (src ip, src port, payload) out of a pcap file of Ethernet frames.
pub fn pcap_udp(path: &Path) -> Vec<(Ipv4Addr, u16, Vec<u8>)> {
    let data = std::fs::read(path).unwrap_or_default();
    let mut out = Vec::new();
    if data.len() < 24 {
        return out;
    }
    let le = data[0..4] == [0xd4, 0xc3, 0xb2, 0xa1];
    let rd = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let mut i = 24;
    while i + 16 <= data.len() {
        let incl = rd(&data[i + 8..i + 12]) as usize;
        let frame = &data[i + 16..(i + 16 + incl).min(data.len())];
        i += 16 + incl;
        if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        let ihl = ((ip[0] & 0x0f) as usize) * 4;
        if ip[9] != 17 || ip.len() < ihl + 8 {
            continue;
        }
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let udp = &ip[ihl..];
        let sport = u16::from_be_bytes([udp[0], udp[1]]);
        out.push((src, sport, udp[8..].to_vec()));
    }
    out
}

/// One IPv4/UDP datagram seen by a [`Sniffer`].
#[derive(Clone, Debug)]
pub struct Frame {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The BOOTP xid when this is a BOOTREPLY.
    pub fn reply_xid(&self) -> Option<u32> {
        let p = &self.payload;
        (p.len() >= 8 && p[0] == 2).then(|| u32::from_be_bytes([p[4], p[5], p[6], p[7]]))
    }
}

/// Captures every IPv4/UDP frame on one interface of a namespace (an AF_PACKET socket, in
/// and out), without tcpdump. Stopped (and its thread joined) by `stop` or on drop.
pub struct Sniffer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Frame>>>,
}

impl Sniffer {
    pub fn start(ns: &Netns, dev: &str) -> Self {
        use std::os::fd::{FromRawFd, OwnedFd};
        let dev = dev.to_string();
        let fd: OwnedFd = in_ns(&ns.name, move || unsafe {
            let proto = (libc::ETH_P_ALL as u16).to_be();
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            let fd = OwnedFd::from_raw_fd(fd);
            let name = std::ffi::CString::new(dev.clone()).unwrap();
            let index = libc::if_nametoindex(name.as_ptr());
            assert!(index > 0, "no interface {dev}");
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = index as i32;
            let r = libc::bind(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(r, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
            fd
        });
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut buf = vec![0u8; 65536];
            while !s2.load(Ordering::SeqCst) {
                let n = unsafe {
                    libc::recv(
                        std::os::fd::AsRawFd::as_raw_fd(&fd),
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                        0,
                    )
                };
                if n <= 0 {
                    continue;
                }
                if let Some(f) = parse_frame(&buf[..n as usize]) {
                    out.push(f);
                }
            }
            out
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops capturing; every frame seen.
    pub fn stop(mut self) -> Vec<Frame> {
        self.finish()
    }

    fn finish(&mut self) -> Vec<Frame> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// An Ethernet frame (as AF_PACKET gives them, also on `lo`) to an IPv4/UDP [`Frame`].
fn parse_frame(frame: &[u8]) -> Option<Frame> {
    if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    if ip[9] != 17 || ip.len() < ihl + 8 {
        return None;
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let udp = &ip[ihl..];
    Some(Frame {
        src: SocketAddrV4::new(src, u16::from_be_bytes([udp[0], udp[1]])),
        dst: SocketAddrV4::new(dst, u16::from_be_bytes([udp[2], udp[3]])),
        payload: udp[8..].to_vec(),
    })
}

/// Every BOOTREPLY read from `sock` for `window`, whatever its xid.
pub fn collect_all(sock: &UdpSocket, window: Duration) -> Vec<Got> {
    let mut out = Vec::new();
    let deadline = Instant::now() + window;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Ok((n, SocketAddr::V4(from))) = sock.recv_from(&mut buf)
            && let Ok(msg) = v4::Message::decode(&mut Decoder::new(&buf[..n]))
            && msg.opcode() == v4::Opcode::BootReply
        {
            out.push(Got { from, msg });
        }
    }
    out
}
