//! Unit tests of the full-mode decision: packets in, replies out, no sockets. Replies are
//! decoded with `dhcproto` (an independent implementation).

use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::{self, DhcpOption, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

use crate::config::{CheckedConfig, DhcpConfig};
use crate::full::decide::decide_full;
use crate::full::leases::LeaseTable;
use crate::full::pool_specs;
use crate::policy::{Context, Decision, IgnoreReason, ListenPort, Outcome};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const RELAY: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
const LOCAL: &[(Ipv4Addr, Ipv4Addr)] = &[(SERVER, Ipv4Addr::new(255, 255, 255, 0))];

fn cfg(extra: &str) -> CheckedConfig {
    let text = format!(
        "enabled = true
interfaces = [\"eth0\"]
mode = \"full\"
lease_file = \"/nonexistent\"
{extra}
[[subnets]]
network = \"10.77.0.0/24\"
pools = [\"10.77.0.100-10.77.0.101\"]
router = \"10.77.0.1\"
routes = [{{ network = \"10.1.0.0/16\", gateway = \"10.77.0.254\" }}]
lease_secs = 1000
[[subnets]]
network = \"10.78.0.0/24\"
pools = [\"10.78.0.50/31\"]
[[reservations]]
mac = \"02:00:00:00:00:aa\"
ip = \"10.77.0.10\"
hostname = \"node-a\"
"
    );
    toml::from_str::<DhcpConfig>(&text)
        .unwrap()
        .validate()
        .unwrap()
}

fn table(c: &CheckedConfig) -> LeaseTable {
    LeaseTable::new(&pool_specs(c.full.as_ref().unwrap(), &[SERVER])).unwrap()
}

struct Pkt {
    kind: v4::MessageType,
    mac: [u8; 6],
    ciaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    opts: Vec<DhcpOption>,
    raw: Vec<(u8, Vec<u8>)>,
}

fn pkt(kind: v4::MessageType, mac: u8) -> Pkt {
    Pkt {
        kind,
        mac: [2, 0, 0, 0, 0, mac],
        ciaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        opts: Vec::new(),
        raw: Vec::new(),
    }
}

impl Pkt {
    fn bytes(&self) -> Vec<u8> {
        let mut m = v4::Message::new_with_id(
            0x1234,
            self.ciaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            self.giaddr,
            &self.mac,
        );
        m.opts_mut().insert(DhcpOption::MessageType(self.kind));
        for o in &self.opts {
            m.opts_mut().insert(o.clone());
        }
        let mut out = Vec::new();
        m.encode(&mut Encoder::new(&mut out)).unwrap();
        assert_eq!(out.pop(), Some(255));
        for (code, data) in &self.raw {
            out.push(*code);
            out.push(data.len() as u8);
            out.extend_from_slice(data);
        }
        out.push(255);
        out
    }
}

fn run(c: &CheckedConfig, t: &mut LeaseTable, p: &Pkt) -> Outcome {
    let source = if p.giaddr.is_unspecified() {
        SocketAddrV4::new(p.ciaddr, 68)
    } else {
        SocketAddrV4::new(p.giaddr, 67)
    };
    let ctx = Context {
        iface: "eth0",
        server_ip: SERVER,
        port: ListenPort::Dhcp,
        source,
        local: LOCAL,
        secure_boot: None,
    };
    decide_full(c, c.full.as_ref().unwrap(), t, &ctx, &p.bytes(), 1_000_000)
}

fn reply(o: &Outcome) -> (v4::Message, SocketAddrV4) {
    let Decision::Reply(r) = &o.decision else {
        panic!("expected a reply, got {:?}", o.decision);
    };
    let m = v4::Message::decode(&mut Decoder::new(&r.packet)).unwrap();
    assert_eq!(r.lease, Some(m.yiaddr()).filter(|a| !a.is_unspecified()));
    (m, r.dest)
}

fn opt(m: &v4::Message, code: OptionCode) -> Option<&DhcpOption> {
    m.opts().get(code)
}

#[test]
fn dora_gives_an_address_with_the_subnet_options() {
    let c = cfg("");
    let mut t = table(&c);
    let (offer, dest) = reply(&run(&c, &mut t, &pkt(v4::MessageType::Discover, 1)));
    assert_eq!(dest, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68));
    let ip = offer.yiaddr();
    assert_eq!(ip, Ipv4Addr::new(10, 77, 0, 100));
    let mut req = pkt(v4::MessageType::Request, 1);
    req.opts = vec![
        DhcpOption::RequestedIpAddress(ip),
        DhcpOption::ServerIdentifier(SERVER),
    ];
    let o = run(&c, &mut t, &req);
    let (ack, _) = reply(&o);
    assert_eq!(ack.yiaddr(), ip);
    assert_eq!(
        opt(&ack, OptionCode::MessageType),
        Some(&DhcpOption::MessageType(v4::MessageType::Ack))
    );
    assert_eq!(
        opt(&ack, OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(1000))
    );
    assert_eq!(
        opt(&ack, OptionCode::Renewal),
        Some(&DhcpOption::Renewal(500))
    );
    assert_eq!(
        opt(&ack, OptionCode::Rebinding),
        Some(&DhcpOption::Rebinding(875))
    );
    assert_eq!(
        opt(&ack, OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
    );
    // RFC 3442: 10.1/16 via .254, then the default route via the router.
    let Decision::Reply(r) = &o.decision else {
        unreachable!()
    };
    let i = r.packet[240..]
        .windows(2)
        .position(|w| w == [121, 12])
        .unwrap_or_else(|| panic!("option 121 in {:?}", &r.packet[240..]))
        + 240;
    assert_eq!(
        r.packet[i + 2..i + 14],
        [16, 10, 1, 10, 77, 0, 254, 0, 10, 77, 0, 1]
    );
    // Option 60 only for PXE clients.
    assert_eq!(opt(&ack, OptionCode::ClassIdentifier), None);
}

#[test]
fn reservations_requests_naks_and_other_servers() {
    let c = cfg("");
    let mut t = table(&c);
    let (offer, _) = reply(&run(&c, &mut t, &pkt(v4::MessageType::Discover, 0xaa)));
    assert_eq!(offer.yiaddr(), Ipv4Addr::new(10, 77, 0, 10));
    assert_eq!(
        opt(&offer, OptionCode::Hostname),
        Some(&DhcpOption::Hostname("node-a".into()))
    );
    // INIT-REBOOT for an address of another network: NAK (authoritative), broadcast.
    let mut r = pkt(v4::MessageType::Request, 2);
    r.opts = vec![DhcpOption::RequestedIpAddress(Ipv4Addr::new(
        192, 168, 1, 5,
    ))];
    let (nak, dest) = reply(&run(&c, &mut t, &r));
    assert_eq!(
        opt(&nak, OptionCode::MessageType),
        Some(&DhcpOption::MessageType(v4::MessageType::Nak))
    );
    assert_eq!(nak.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(dest.ip(), &Ipv4Addr::BROADCAST);
    // Not authoritative: silence.
    let c2 = cfg("authoritative = false");
    let mut t2 = table(&c2);
    let o = run(&c2, &mut t2, &r);
    assert_eq!(o.decision, Decision::Ignore(IgnoreReason::NotAuthoritative));
    // A REQUEST naming another server: it chose that server's offer.
    r.opts
        .push(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 77, 0, 2)));
    let o = run(&c, &mut t, &r);
    assert_eq!(
        o.decision,
        Decision::Ignore(IgnoreReason::OtherServerChosen)
    );
}

#[test]
fn relayed_requests_use_the_relays_subnet_and_get_option_82_back() {
    let c = cfg("");
    let mut t = table(&c);
    let mut d = pkt(v4::MessageType::Discover, 3);
    d.giaddr = RELAY;
    d.raw = vec![(82, vec![1, 4, b'p', b'o', b'r', b't'])];
    let o = run(&c, &mut t, &d);
    let Decision::Reply(r) = &o.decision else {
        panic!("{:?}", o.decision)
    };
    assert_eq!(r.dest, SocketAddrV4::new(RELAY, 67));
    assert_eq!(r.lease, Some(Ipv4Addr::new(10, 78, 0, 50)));
    let i = r
        .packet
        .windows(2)
        .position(|w| w == [82, 6])
        .expect("82 echoed");
    assert_eq!(&r.packet[i + 2..i + 8], b"\x01\x04port");
    // The /31 pool holds two addresses; the third client finds none.
    for mac in [4, 5] {
        let mut d = pkt(v4::MessageType::Discover, mac);
        d.giaddr = RELAY;
        let o = run(&c, &mut t, &d);
        if mac == 5 {
            assert_eq!(o.decision, Decision::Ignore(IgnoreReason::NoFreeAddress));
        }
    }
}

#[test]
fn pxe_clients_get_the_lease_and_the_boot_answer_in_one_reply() {
    let c = cfg("");
    let mut t = table(&c);
    let mut d = pkt(v4::MessageType::Discover, 6);
    d.opts = vec![DhcpOption::ClassIdentifier(
        b"PXEClient:Arch:00000:UNDI:002001".to_vec(),
    )];
    d.raw = vec![(93, vec![0, 0])];
    let (offer, _) = reply(&run(&c, &mut t, &d));
    assert_eq!(offer.yiaddr(), Ipv4Addr::new(10, 77, 0, 100));
    assert_eq!(offer.siaddr(), SERVER);
    let file = String::from_utf8_lossy(offer.fname().unwrap())
        .trim_end_matches('\0')
        .to_string();
    assert_eq!(file, "undionly.kpxe");
    assert_eq!(
        opt(&offer, OptionCode::ClassIdentifier),
        Some(&DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
    );
    // INFORM: options, no address, no lease time, to the client's address.
    let mut inf = pkt(v4::MessageType::Inform, 7);
    inf.ciaddr = Ipv4Addr::new(10, 77, 0, 33);
    let (ack, dest) = reply(&run(&c, &mut t, &inf));
    assert_eq!(ack.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(opt(&ack, OptionCode::AddressLeaseTime), None);
    assert_eq!(dest, SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 33), 68));
}

#[test]
fn hostile_packets_never_panic() {
    let c = cfg("");
    let mut t = table(&c);
    let base = pkt(v4::MessageType::Request, 8).bytes();
    let mut seed = 7u64;
    for _ in 0..5000 {
        let mut b = base.clone();
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed % b.len() as u64) as usize;
            b[i] = (seed >> 32) as u8;
        }
        b.truncate((seed % 400) as usize + 200);
        let ctx = Context {
            iface: "eth0",
            server_ip: SERVER,
            port: ListenPort::Dhcp,
            source: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
            local: LOCAL,
            secure_boot: None,
        };
        let _ = decide_full(&c, c.full.as_ref().unwrap(), &mut t, &ctx, &b, 1_000_000);
    }
}
