use super::*;

#[test]
fn comments_quotes_and_commas() {
    let c = parse(
        "# a comment\n\
         pxe-service=tag:#ipxe,x86PC,\"PXE, chainload\",undionly.kpxe   # trailing\n\
         tag-if=set:netboot-xyz, tag:ipxe, tag:netboot\n\
         dhcp-boot=a#b\n",
    );
    assert_eq!(c.lines.len(), 3);
    assert_eq!(c.lines[0].no, 2);
    assert_eq!(
        c.lines[0].args,
        vec!["tag:#ipxe", "x86PC", "PXE, chainload", "undionly.kpxe"]
    );
    let s = &c.pxe_services[0];
    assert_eq!(
        s.conds,
        vec![Cond {
            tag: "ipxe".into(),
            negated: true
        }]
    );
    assert_eq!((s.csa, s.boot_type), (0, 0x8000));
    assert_eq!(s.basename.as_deref(), Some("undionly.kpxe"));
    assert_eq!(c.tag_ifs[0].sets, vec!["netboot-xyz"]);
    assert_eq!(c.tag_ifs[0].conds.len(), 2);
    // '#' not after white space is part of the value.
    assert_eq!(c.boots[0].file, "a#b");
    assert!(c.malformed.is_empty());
}

#[test]
fn ranges_services_and_matches() {
    let c = parse(
        "dhcp-range=set:lab,tag:eth1,192.168.1.1,proxy,255.255.255.0\n\
         dhcp-range=10.0.0.10,10.0.0.50,12h\n\
         pxe-service=X86-64_EFI,\"x\",ipxe.efi,10.0.0.5\n\
         pxe-service=x86PC,\"Boot from local disk\"\n\
         pxe-service=BC_EFI,\"y\",snponly.efi\n\
         dhcp-match=set:efi,option:client-arch,7\n\
         dhcp-match=set:ipxe,175\n\
         dhcp-match=set:http,175,19\n\
         dhcp-match=set:v,60,PXEClient:Arch:00007\n\
         dhcp-host=02:1a:4a:16:01:9c,set:install,10.0.0.20,ignore\n\
         dhcp-mac=set:vm,52:54:00:*:*:*\n",
    );
    assert!(c.malformed.is_empty(), "{:?}", c.malformed);
    assert_eq!(c.ranges[0].set.as_deref(), Some("lab"));
    assert!(c.ranges[0].proxy);
    assert_eq!(c.ranges[0].netmask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert!(!c.ranges[1].proxy);
    assert_eq!(c.pxe_services[0].server, Some(Ipv4Addr::new(10, 0, 0, 5)));
    assert_eq!(c.pxe_services[0].csa, 7);
    assert_eq!(c.pxe_services[1].boot_type, 0);
    assert_eq!(c.pxe_services[2].boot_type, 0x8001);
    assert_eq!(c.matches[0].value, MatchValue::Int(vec![0, 7]));
    assert_eq!(c.matches[1].value, MatchValue::Present);
    assert_eq!(c.matches[2].value, MatchValue::Int(vec![19]));
    assert_eq!(
        c.matches[3].value,
        MatchValue::Text(b"PXEClient:Arch:00007".to_vec())
    );
    assert_eq!(c.hosts[0].sets, vec!["install"]);
    assert!(c.hosts[0].ignore);
    assert_eq!(c.macs[0].pattern[3], None);
}

#[test]
fn bad_lines_are_listed_not_fatal() {
    let c = parse(
        "pxe-service=x86PC\n\
         dhcp-mac=set:x,zz:zz\n\
         dhcp-range=fe80::1,proxy\n\
         pxe-prompt=\"unterminated\n\
         dhcp-match=set:x,option:no-such-option\n\
         tag-if=tag:a\n\
         \u{0}\u{ff}=\n",
    );
    assert_eq!(c.malformed.len(), 6, "{:?}", c.malformed);
    assert_eq!(c.lines.len(), 7);
}

#[test]
fn prompts_and_their_timeouts_as_dnsmasq_reads_them() {
    let c = parse(
        "pxe-prompt=\"Press F8, then choose\",5\n\
         pxe-prompt=tag:lab,\"Lab\"\n\
         pxe-prompt=\"Wait\",300\n\
         pxe-prompt=\"Soon\",soon\n\
         pxe-prompt=\"Empty\",\n\
         pxe-prompt=\"Huge\",99999999999999999999999\n",
    );
    assert!(c.malformed.is_empty(), "{:?}", c.malformed);
    let p = &c.pxe_prompts;
    assert_eq!(p[0].text, "Press F8, then choose");
    assert_eq!(p[0].timeout(), PromptTimeout::Secs(5));
    assert_eq!(p[1].conds, vec![Cond::parse("lab")]);
    assert_eq!(p[1].timeout(), PromptTimeout::Absent);
    // One byte on the wire: dnsmasq keeps the low byte of atoi's value; no timeout or one
    // that is not only digits waits for a key (255); an empty one is atoi("") = 0.
    let bytes: Vec<u8> = p.iter().map(|p| p.dnsmasq_timeout()).collect();
    assert_eq!(bytes, [5, 255, 44, 255, 0, 255]);
    assert_eq!(p[3].timeout(), PromptTimeout::NotANumber);
    assert!(c.enable_pxe);
}
