//! Unit tests of [`decide6`]: every message type, every firmware kind.

use std::net::Ipv6Addr;

use crate::config::DhcpConfig;
use crate::config::v6::Dhcp6Config;
use crate::v6::decide::*;
use crate::v6::wire::Message;

const SERVER: &str = "fd00:77::1";
const DUID: [u8; 10] = [0, 3, 0, 1, 0x02, 0, 0, 0, 0x77, 1];
const CLIENT_DUID: [u8; 10] = [0, 3, 0, 1, 0x02, 0, 0, 0, 0x77, 2];

fn cfgs() -> (CheckedConfig, Checked6) {
    let mut d = DhcpConfig {
        arm64_binary: Some("arm64.efi".into()),
        ..Default::default()
    };
    d.v6 = Dhcp6Config {
        enabled: true,
        prefix: Some("fd00:77::/64".into()),
        dns_servers: vec!["fd00:77::53".parse().unwrap()],
        ..Default::default()
    };
    (d.validate().unwrap(), d.v6.validate().unwrap())
}

fn ctx() -> Context6<'static> {
    Context6 {
        iface: "s0",
        server_addr: SERVER.parse().unwrap(),
        server_duid: &DUID,
        source: SocketAddrV6::new("fe80::2".parse().unwrap(), 546, 0, 3),
    }
}

/// A client message builder.
struct C {
    t: u8,
    opts: Vec<OptOut>,
}

impl C {
    fn new(t: u8) -> Self {
        Self {
            t,
            opts: vec![OptOut::new(opt::CLIENTID, CLIENT_DUID)],
        }
    }
    fn o(mut self, code: u16, data: impl Into<Vec<u8>>) -> Self {
        self.opts.push(OptOut::new(code, data));
        self
    }
    fn ia(self, iaid: u32, addrs: &[&str]) -> Self {
        let mut fixed = iaid.to_be_bytes().to_vec();
        fixed.extend([0; 8]);
        let inner: Vec<OptOut> = addrs
            .iter()
            .map(|a| iaaddr(a.parse().unwrap(), 0, 0))
            .collect();
        let o = OptOut::nested(opt::IA_NA, &fixed, &inner).unwrap();
        let mut s = self;
        s.opts.push(o);
        s
    }
    fn arch(self, a: &[u16]) -> Self {
        let d: Vec<u8> = a.iter().flat_map(|x| x.to_be_bytes()).collect();
        self.o(opt::CLIENT_ARCH_TYPE, d)
    }
    fn vendor(self, s: &str) -> Self {
        let mut d = 343u32.to_be_bytes().to_vec();
        d.extend((s.len() as u16).to_be_bytes());
        d.extend(s.as_bytes());
        self.o(opt::VENDOR_CLASS, d)
    }
    fn user(self, s: &str) -> Self {
        let mut d = (s.len() as u16).to_be_bytes().to_vec();
        d.extend(s.as_bytes());
        self.o(opt::USER_CLASS, d)
    }
    fn server(self) -> Self {
        self.o(opt::SERVERID, DUID)
    }
    fn bytes(&self) -> Vec<u8> {
        wire::encode(self.t, [1, 2, 3], &self.opts).unwrap()
    }
}

fn run(c: &C) -> Outcome6 {
    let (d, v6) = cfgs();
    decide6(&d, &v6, &ctx(), &c.bytes())
}

fn reply(c: &C) -> (Reply6, Client6) {
    let o = run(c);
    match o.decision {
        Decision6::Reply(r) => (r, o.client.unwrap()),
        Decision6::Ignore(i) => panic!("ignored: {i}"),
    }
}

fn ignored(c: &C) -> Ignore6 {
    match run(c).decision {
        Decision6::Ignore(i) => i,
        Decision6::Reply(r) => panic!("answered: {r:?}"),
    }
}

fn vendor_echo(m: &Message<'_>) -> Option<String> {
    m.vendor_classes()
        .first()
        .map(|(e, d)| format!("{e}:{}", String::from_utf8_lossy(d)))
}

#[test]
fn http_boot_solicit_gets_advertise_with_address_url_and_vendor_class() {
    let (r, c) = reply(
        &C::new(msg::SOLICIT)
            .ia(1, &[])
            .arch(&[16])
            .vendor("HTTPClient:Arch:00016:UNDI:003016"),
    );
    assert_eq!(r.msg_type, msg::ADVERTISE);
    assert_eq!(
        r.dest,
        SocketAddrV6::new("fe80::2".parse().unwrap(), 546, 0, 3)
    );
    let m = Message::parse(&r.packet).unwrap();
    assert_eq!(m.msg_type, msg::ADVERTISE);
    assert_eq!(m.xid, [1, 2, 3]);
    assert_eq!(m.option(opt::CLIENTID), Some(&CLIENT_DUID[..]));
    assert_eq!(m.option(opt::SERVERID), Some(&DUID[..]));
    let a = m.ias[0].addrs[0];
    assert_eq!(m.ias[0].iaid, 1);
    assert_eq!((a.preferred, a.valid), (3600, 7200));
    assert_eq!(r.addresses, vec![a.addr]);
    assert_eq!(a.addr.segments()[..4], [0xfd00, 0x77, 0, 0]);
    let url = "http://[fd00:77::1]:8080/tftp/ipxe.efi";
    assert_eq!(m.option(opt::BOOTFILE_URL), Some(url.as_bytes()));
    assert_eq!(r.boot_url.as_deref(), Some(url));
    assert_eq!(vendor_echo(&m).as_deref(), Some("343:HTTPClient"));
    assert_eq!(m.option(opt::DNS_SERVERS).map(<[u8]>::len), Some(16));
    assert_eq!((c.firmware, c.arch), (Some(Firmware::UefiHttp), Some(16)));
    // The same client always gets the same address; another IAID another one.
    let (r2, _) = reply(
        &C::new(msg::REQUEST)
            .server()
            .ia(1, &[])
            .arch(&[16])
            .vendor("HTTPClient"),
    );
    assert_eq!(r2.msg_type, msg::REPLY);
    assert_eq!(r2.addresses, r.addresses);
    let (r3, _) = reply(&C::new(msg::SOLICIT).ia(2, &[]));
    assert_ne!(r3.addresses, r.addresses);
}

#[test]
fn each_firmware_gets_its_url() {
    type Case = (
        C,
        Option<&'static str>,
        Option<Firmware>,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            C::new(msg::SOLICIT)
                .ia(1, &[])
                .arch(&[7])
                .vendor("PXEClient:Arch:00007:UNDI:003016"),
            Some("tftp://[fd00:77::1]/snponly.efi"),
            Some(Firmware::UefiPxe),
            None,
        ),
        (
            C::new(msg::SOLICIT).ia(1, &[]).arch(&[9]),
            Some("tftp://[fd00:77::1]/snponly.efi"),
            Some(Firmware::UefiPxe),
            None,
        ),
        (
            C::new(msg::SOLICIT)
                .ia(1, &[])
                .arch(&[19])
                .vendor("HTTPClient"),
            Some("http://[fd00:77::1]:8080/tftp/arm64.efi"),
            Some(Firmware::UefiHttp),
            Some("343:HTTPClient"),
        ),
        (
            C::new(msg::SOLICIT).ia(1, &[]).arch(&[11]),
            Some("tftp://[fd00:77::1]/arm64.efi"),
            Some(Firmware::UefiPxe),
            None,
        ),
        (
            C::new(msg::SOLICIT).ia(1, &[]).arch(&[16]).user("iPXE"),
            Some("http://[fd00:77::1]:8080/boot.ipxe"),
            Some(Firmware::Ipxe),
            None,
        ),
        // An ordinary client: an address, no boot file.
        (C::new(msg::SOLICIT).ia(1, &[]), None, None, None),
        // BIOS has no IPv6 PXE; an unknown architecture is not booted.
        (
            C::new(msg::SOLICIT).ia(1, &[]).arch(&[0, 42]),
            None,
            None,
            None,
        ),
    ];
    for (c, url, fw, echo) in cases {
        let (r, info) = reply(&c);
        let m = Message::parse(&r.packet).unwrap();
        assert_eq!(r.boot_url.as_deref(), url);
        assert_eq!(m.option(opt::BOOTFILE_URL), url.map(str::as_bytes));
        assert_eq!(info.firmware, fw);
        assert_eq!(vendor_echo(&m).as_deref(), echo);
        assert_eq!(r.addresses.len(), 1);
    }
    let (_, info) = reply(&C::new(msg::SOLICIT).ia(1, &[]).arch(&[0]));
    assert_eq!(info.no_boot, Some(IgnoreReason::UnsupportedArch));
    let (_, info) = reply(&C::new(msg::SOLICIT).ia(1, &[]).vendor("PXEClient"));
    assert_eq!(info.no_boot, Some(IgnoreReason::NoArch));
    // arm64 without arm64_binary: no boot URL, and why.
    let (mut d, v6) = cfgs();
    d.arm64_binary = None;
    let o = decide6(
        &d,
        &v6,
        &ctx(),
        &C::new(msg::SOLICIT).ia(1, &[]).arch(&[19]).bytes(),
    );
    assert_eq!(
        o.client.unwrap().no_boot,
        Some(IgnoreReason::UnsupportedArchNoBinary)
    );
}

#[test]
fn rapid_commit_gives_a_reply_when_enabled() {
    let c = C::new(msg::SOLICIT).ia(1, &[]).o(opt::RAPID_COMMIT, []);
    let (r, _) = reply(&c);
    assert_eq!(r.msg_type, msg::REPLY);
    assert!(Message::parse(&r.packet).unwrap().has(opt::RAPID_COMMIT));
    let (d, mut v6) = cfgs();
    v6.rapid_commit = false;
    let o = decide6(&d, &v6, &ctx(), &c.bytes());
    let Decision6::Reply(r) = o.decision else {
        panic!()
    };
    assert_eq!(r.msg_type, msg::ADVERTISE);
    assert!(!Message::parse(&r.packet).unwrap().has(opt::RAPID_COMMIT));
}

#[test]
fn renew_and_rebind_keep_the_address_and_retire_others() {
    let (adv, _) = reply(&C::new(msg::SOLICIT).ia(5, &[]));
    let a = adv.addresses[0].to_string();
    for c in [
        C::new(msg::RENEW).server().ia(5, &[&a]),
        C::new(msg::REBIND).ia(5, &[&a, "2001:db8::9"]),
    ] {
        let (r, _) = reply(&c);
        assert_eq!(r.msg_type, msg::REPLY);
        assert_eq!(r.addresses, adv.addresses);
        let m = Message::parse(&r.packet).unwrap();
        let ia = &m.ias[0];
        assert_eq!(ia.addrs[0].addr.to_string(), a);
        assert!(ia.addrs[0].valid > 0);
        for old in &ia.addrs[1..] {
            assert_eq!((old.preferred, old.valid), (0, 0));
        }
    }
}

#[test]
fn release_decline_confirm_and_information_request() {
    for t in [msg::RELEASE, msg::DECLINE] {
        let (r, _) = reply(&C::new(t).server().ia(1, &["fd00:77::5"]));
        let m = Message::parse(&r.packet).unwrap();
        assert_eq!(m.msg_type, msg::REPLY);
        assert_eq!(
            m.option(opt::STATUS_CODE).map(|s| &s[..2]),
            Some(&[0u8, 0][..])
        );
        assert!(m.ias.is_empty() && r.addresses.is_empty());
    }
    let (r, _) = reply(&C::new(msg::CONFIRM).ia(1, &["fd00:77::5"]));
    let m = Message::parse(&r.packet).unwrap();
    assert_eq!(
        m.option(opt::STATUS_CODE).map(|s| &s[..2]),
        Some(&[0u8, 0][..])
    );
    let (r, _) = reply(&C::new(msg::CONFIRM).ia(1, &["fd00:99::5"]));
    let m = Message::parse(&r.packet).unwrap();
    assert_eq!(
        m.option(opt::STATUS_CODE).map(|s| &s[..2]),
        Some(&[0u8, 4][..])
    );
    assert_eq!(
        ignored(&C::new(msg::CONFIRM).ia(1, &[])),
        Ignore6::NothingToConfirm
    );

    let (r, _) = reply(
        &C::new(msg::INFORMATION_REQUEST)
            .arch(&[16])
            .vendor("HTTPClient"),
    );
    let m = Message::parse(&r.packet).unwrap();
    assert_eq!(m.msg_type, msg::REPLY);
    assert!(m.ias.is_empty() && r.addresses.is_empty());
    assert!(m.has(opt::DNS_SERVERS));
    assert_eq!(
        r.boot_url.as_deref(),
        Some("http://[fd00:77::1]:8080/tftp/ipxe.efi")
    );
    // Without a client id, with our server id: still answered.
    let c = C {
        t: msg::INFORMATION_REQUEST,
        opts: vec![OptOut::new(opt::SERVERID, DUID)],
    };
    let (r, _) = reply(&c);
    assert!(
        Message::parse(&r.packet)
            .unwrap()
            .option(opt::CLIENTID)
            .is_none()
    );
    assert_eq!(
        ignored(&C::new(msg::INFORMATION_REQUEST).ia(1, &[])),
        Ignore6::IaInInformationRequest
    );
}

#[test]
fn ia_ta_and_ia_pd_get_a_status() {
    let mut c = C::new(msg::SOLICIT);
    c.opts.push(OptOut::new(opt::IA_TA, [0, 0, 0, 4]));
    c.opts.push(OptOut::new(
        opt::IA_PD,
        [0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0],
    ));
    let (r, _) = reply(&c);
    let m = Message::parse(&r.packet).unwrap();
    assert_eq!(m.ias.len(), 2);
    assert!(r.addresses.is_empty());
}

#[test]
fn silence_where_due() {
    assert_eq!(
        ignored(&C::new(msg::REQUEST).ia(1, &[])),
        Ignore6::OtherServer
    );
    let other = C::new(msg::REQUEST).o(opt::SERVERID, [0, 3, 0, 1, 9, 9, 9, 9, 9, 9]);
    assert_eq!(ignored(&other), Ignore6::OtherServer);
    assert_eq!(
        ignored(&C::new(msg::SOLICIT).server()),
        Ignore6::UnexpectedServerId
    );
    assert_eq!(
        ignored(&C::new(msg::REBIND).server()),
        Ignore6::UnexpectedServerId
    );
    let no_id = C {
        t: msg::SOLICIT,
        opts: vec![],
    };
    assert_eq!(ignored(&no_id), Ignore6::NoClientId);
    for (t, why) in [
        (msg::ADVERTISE, Ignore6::NotClientMessage),
        (msg::REPLY, Ignore6::NotClientMessage),
        (msg::RELAY_FORW, Ignore6::Relayed),
        (msg::RELAY_REPL, Ignore6::NotClientMessage),
        (200, Ignore6::UnknownType),
    ] {
        assert_eq!(ignored(&C::new(t)), why, "{t}");
    }
    let (d, v6) = cfgs();
    assert_eq!(
        decide6(&d, &v6, &ctx(), &[1, 2]).decision,
        Decision6::Ignore(Ignore6::Malformed)
    );
    // Replies only go to link-local sources.
    for src in ["fd00:77::9", "ff02::1", "::1", "::"] {
        let mut x = ctx();
        x.source = SocketAddrV6::new(src.parse().unwrap(), 546, 0, 3);
        let o = decide6(&d, &v6, &x, &C::new(msg::SOLICIT).bytes());
        assert_eq!(
            o.decision,
            Decision6::Ignore(Ignore6::UnsafeSource),
            "{src}"
        );
    }
    let mut x = ctx();
    x.source.set_port(0);
    let o = decide6(&d, &v6, &x, &C::new(msg::SOLICIT).bytes());
    assert_eq!(o.decision, Decision6::Ignore(Ignore6::UnsafeSource));
}

#[test]
fn hostile_datagrams_never_panic() {
    let (d, v6) = cfgs();
    let good = C::new(msg::REQUEST)
        .server()
        .ia(1, &["fd00:77::5"])
        .arch(&[16])
        .vendor("HTTPClient")
        .bytes();
    for n in 0..good.len() {
        let _ = decide6(&d, &v6, &ctx(), &good[..n]);
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..3000 {
        let mut b = good.clone();
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % b.len();
            b[i] = (x >> 32) as u8;
        }
        let _ = decide6(&d, &v6, &ctx(), &b);
    }
}

#[test]
fn a_clients_mac_comes_from_its_duid_or_its_link_local_address() {
    let client = |duid: &[u8]| Client6 {
        xid: 0,
        msg_type: msg::SOLICIT,
        duid: duid.to_vec(),
        vendor_class: None,
        user_classes: vec![],
        architectures: vec![],
        arch: None,
        firmware: None,
        no_boot: None,
    };
    let none: Ipv6Addr = "fd00::1".parse().unwrap();
    let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x66];
    // EDK2: DUID-LLT (type 1, Ethernet, time, MAC).
    let llt = [
        0, 1, 0, 1, 0x31, 0xec, 0x0a, 0x67, 0x52, 0x54, 0x00, 0x12, 0x34, 0x66,
    ];
    assert_eq!(client(&llt).mac(&none), Some(mac));
    // DUID-LL (type 3, Ethernet, MAC).
    assert_eq!(
        client(&[0, 3, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x66]).mac(&none),
        Some(mac)
    );
    // iPXE: DUID-UUID; the MAC is in the link-local source (EUI-64, U/L bit flipped).
    let uuid = [0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let ll: Ipv6Addr = "fe80::5054:ff:fe12:3466".parse().unwrap();
    assert_eq!(client(&uuid).mac(&ll), Some(mac));
    // Neither: a DUID of another hardware type and a non-EUI-64 or non-link-local source.
    assert_eq!(client(&[0, 3, 0, 6, 1, 2, 3, 4, 5, 6]).mac(&none), None);
    assert_eq!(client(&uuid).mac(&"fe80::1".parse().unwrap()), None);
    assert_eq!(
        client(&uuid).mac(&"fd00::5054:ff:fe12:3466".parse().unwrap()),
        None
    );
}

#[test]
fn message_labels_read_back() {
    for t in 1..=13u8 {
        assert_eq!(msg_from_label(msg_label(t)), Some(t), "{t}");
    }
    assert_eq!(msg_label(200), "other");
    assert_eq!(msg_from_label("other"), Some(0));
    assert_eq!(msg_from_label("discover"), None);
}

#[test]
fn boot_file_params_go_to_firmware_with_the_url_not_to_ipxe() {
    let (d, mut v6) = cfgs();
    v6.boot_file_params = vec!["console=ttyS0".into(), "ip=dhcp6".into()];
    let ask = |c: C| match decide6(&d, &v6, &ctx(), &c.bytes()).decision {
        Decision6::Reply(r) => r.packet,
        Decision6::Ignore(i) => panic!("ignored: {i}"),
    };
    let http = ask(C::new(msg::SOLICIT)
        .ia(1, &[])
        .arch(&[16])
        .vendor("HTTPClient"));
    let m = Message::parse(&http).unwrap();
    let mut want = 13u16.to_be_bytes().to_vec();
    want.extend(b"console=ttyS0");
    want.extend(8u16.to_be_bytes());
    want.extend(b"ip=dhcp6");
    assert_eq!(m.option(opt::BOOTFILE_PARAM), Some(&want[..]));
    let ipxe = ask(C::new(msg::SOLICIT).ia(1, &[]).arch(&[7]).user("iPXE"));
    assert_eq!(
        Message::parse(&ipxe).unwrap().option(opt::BOOTFILE_PARAM),
        None
    );
    // An OS client gets no boot URL, so no parameters either.
    let os = ask(C::new(msg::SOLICIT).ia(1, &[]));
    assert_eq!(
        Message::parse(&os).unwrap().option(opt::BOOTFILE_PARAM),
        None
    );
    // Checked at load time.
    let mut bad = Dhcp6Config {
        enabled: true,
        prefix: Some("fd00:77::/64".into()),
        boot_file_params: vec!["a\nb".into()],
        ..Default::default()
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("boot_file_params[0]")
    );
    bad.boot_file_params = vec!["x".into(); 17];
    assert!(bad.validate().is_err());
}
