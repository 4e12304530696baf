//! The full-mode decision: one datagram, the lease table and the clock's `now` in, a reply
//! (with its address, lease options and, for PXE clients, the same boot answer the proxy
//! gives) or a reason for silence out. Sans-I/O like [`crate::policy::decide`]: the table is
//! changed here, the shell persists [`LeaseTable::drain_changes`] before sending.

use std::net::Ipv4Addr;

use crate::config::{CheckedConfig, FullConfig, Subnet};
use crate::full::leases::LeaseTable;
use crate::policy::{
    Context, Decision, IgnoreReason, ListenPort, Outcome, boot, client_info, decide, finish, ignore,
};
use crate::wire::{MessageType, ParseError, ReplyFields, Request, opt};

/// How long an offered address stays set aside for the client that was offered it.
pub const OFFER_HOLD_SECS: u64 = 60;
/// How long a declined (or ping-answering) address is not handed out again.
pub const CONFLICT_HOLD_SECS: u64 = 600;

/// The subnet a request belongs to: its relay's (`giaddr`), else the receiving interface's.
pub fn subnet_of(full: &FullConfig, ctx: &Context<'_>, giaddr: Ipv4Addr) -> Option<usize> {
    let anchor = if giaddr.is_unspecified() {
        ctx.server_ip
    } else {
        giaddr
    };
    full.subnets.iter().position(|n| n.contains(anchor))
}

fn ipv4_option(req: &Request, code: u8) -> Option<Ipv4Addr> {
    match req.option(code) {
        Some([a, b, c, d]) => Some(Ipv4Addr::new(*a, *b, *c, *d)),
        _ => None,
    }
}

/// Decides one datagram in full mode. Port 4011, and requests from an interface or relay in
/// none of the subnets, get the proxy's answer. Never panics.
pub fn decide_full(
    cfg: &CheckedConfig,
    full: &FullConfig,
    table: &mut LeaseTable,
    ctx: &Context<'_>,
    packet: &[u8],
    now: u64,
) -> Outcome {
    if ctx.port == ListenPort::Pxe {
        return decide(cfg, ctx, packet);
    }
    let req = match Request::parse(packet) {
        Ok(r) => r,
        Err(ParseError::NotRequest) => return ignore(None, IgnoreReason::NotBootRequest),
        Err(_) => return ignore(None, IgnoreReason::Malformed),
    };
    let Some(sidx) = subnet_of(full, ctx, req.header.giaddr) else {
        return decide(cfg, ctx, packet);
    };
    let Some(subnet) = full.subnets.get(sidx) else {
        return decide(cfg, ctx, packet);
    };
    let info = client_info(cfg, &req);
    if cfg.is_excluded(ctx.iface) {
        return ignore(Some(info), IgnoreReason::InterfaceExcluded);
    }
    let Some(mac) = info.mac else {
        return ignore(Some(info), IgnoreReason::UnsupportedHardware);
    };
    let server_id = ipv4_option(&req, opt::SERVER_ID);
    let ours = server_id.is_none_or(|s| s == ctx.server_ip);
    let requested = ipv4_option(&req, opt::REQUESTED_IP);
    match info.message_type {
        Some(MessageType::Discover) => {
            match table.offer(sidx, mac, requested, now, OFFER_HOLD_SECS) {
                Ok(ip) => answer(cfg, full, subnet, ctx, &req, info, MessageType::Offer, ip),
                Err(_) => ignore(Some(info), IgnoreReason::NoFreeAddress),
            }
        }
        Some(MessageType::Request) => {
            if !ours {
                return ignore(Some(info), IgnoreReason::OtherServerChosen);
            }
            let ip = requested.unwrap_or(req.header.ciaddr);
            if ip.is_unspecified() {
                return ignore(Some(info), IgnoreReason::Malformed);
            }
            let hostname = req
                .option(opt::HOSTNAME)
                .map(|h| String::from_utf8_lossy(h).into_owned());
            let lease = u64::from(subnet.lease_secs);
            match table.request(sidx, mac, ip, now, lease, hostname.as_deref()) {
                Ok(_) => answer(cfg, full, subnet, ctx, &req, info, MessageType::Ack, ip),
                // A client answering our own offer always hears back; anything else only
                // from an authoritative server.
                Err(_) if full.authoritative || server_id.is_some() => nak(ctx, &req, info),
                Err(_) => ignore(Some(info), IgnoreReason::NotAuthoritative),
            }
        }
        Some(MessageType::Decline) => {
            if let (true, Some(ip)) = (ours, requested) {
                table.decline(mac, ip, now, CONFLICT_HOLD_SECS);
            }
            ignore(Some(info), IgnoreReason::LeaseDeclined)
        }
        Some(MessageType::Release) => {
            if ours {
                table.release(mac, req.header.ciaddr, now);
            }
            ignore(Some(info), IgnoreReason::LeaseReleased)
        }
        Some(MessageType::Inform) if !req.header.ciaddr.is_unspecified() => answer(
            cfg,
            full,
            subnet,
            ctx,
            &req,
            info,
            MessageType::Ack,
            Ipv4Addr::UNSPECIFIED,
        ),
        _ => ignore(Some(info), IgnoreReason::NotDiscoverOrRequest),
    }
}

/// An OFFER or ACK with `ip` (0 for an INFORM's ACK), the subnet's options and, for a PXE
/// client, the proxy's boot answer.
#[allow(clippy::too_many_arguments)]
fn answer(
    cfg: &CheckedConfig,
    full: &FullConfig,
    subnet: &Subnet,
    ctx: &Context<'_>,
    req: &Request,
    mut info: crate::policy::ClientInfo,
    kind: MessageType,
    ip: Ipv4Addr,
) -> Outcome {
    let (mut fields, rule) = match info.vendor_prefix {
        Some(_) => match boot(cfg, ctx, req, &mut info, kind) {
            Ok((f, rule)) => (f, rule),
            // No boot answer (a rule, an unsupported architecture): an address all the same.
            Err(_) => (plain(ctx, req, kind), None),
        },
        None => (plain(ctx, req, kind), None),
    };
    fields.flags = req.header.flags;
    fields.yiaddr = ip;
    let hostname = info
        .mac
        .and_then(|m| full.hostnames.get(&m))
        .map(String::as_str);
    let lease = (!ip.is_unspecified()).then_some(subnet.lease_secs);
    fields.options = lease_options(subnet, hostname, lease);
    // A parameter request list (55) limits the options to those asked for, as dnsmasq and
    // Kea do; the mask and the lease times always go (RFC 2131 4.3.1).
    if let Some(asked) = req.option(opt::PARAMETER_LIST) {
        fields.options.retain(|(code, _)| {
            asked.contains(code)
                || matches!(
                    *code,
                    opt::SUBNET_MASK | opt::LEASE_TIME | opt::RENEWAL_TIME | opt::REBINDING_TIME
                )
        });
    }
    echo_relay_info(req, &mut fields);
    let mut out = finish(ctx, req, info, fields, rule);
    if let Decision::Reply(r) = &mut out.decision
        && !ip.is_unspecified()
    {
        r.lease = Some(ip);
    }
    out
}

/// A reply with no boot information.
fn plain<'a>(ctx: &Context<'_>, req: &'a Request, kind: MessageType) -> ReplyFields<'a> {
    ReplyFields {
        message_type: kind,
        htype: req.header.htype,
        hlen: req.header.hlen,
        xid: req.header.xid,
        flags: req.header.flags,
        ciaddr: req.header.ciaddr,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: req.header.giaddr,
        chaddr: req.header.chaddr,
        sname: None,
        file: String::new(),
        server_id: ctx.server_ip,
        vendor_class: &[],
        client_uuid: None,
        vendor_options: None,
        options: Vec::new(),
    }
}

/// A DHCPNAK: broadcast on the link (or to the relay, with the broadcast bit set so the relay
/// broadcasts it), RFC 2131 4.3.2.
fn nak(ctx: &Context<'_>, req: &Request, info: crate::policy::ClientInfo) -> Outcome {
    let mut f = plain(ctx, req, MessageType::Nak);
    f.flags = 0x8000;
    f.ciaddr = Ipv4Addr::UNSPECIFIED;
    echo_relay_info(req, &mut f);
    finish(ctx, req, info, f, None)
}

/// RFC 3046: a relay's agent information (option 82) goes back in the reply, last, as is.
fn echo_relay_info(req: &Request, f: &mut ReplyFields<'_>) {
    if !req.header.giaddr.is_unspecified()
        && let Some(o82) = req.option(opt::RELAY_AGENT_INFO)
    {
        f.options.push((opt::RELAY_AGENT_INFO, o82.to_vec()));
    }
}

/// The subnet's options, in code order; the lease time and its renewal (1/2) and rebinding
/// (7/8) times only for a lease.
pub fn lease_options(
    subnet: &Subnet,
    hostname: Option<&str>,
    lease_secs: Option<u32>,
) -> Vec<(u8, Vec<u8>)> {
    let mut o: Vec<(u8, Vec<u8>)> = Vec::new();
    let ips = |v: &[Ipv4Addr]| v.iter().flat_map(|a| a.octets()).collect::<Vec<u8>>();
    o.push((opt::SUBNET_MASK, subnet.mask().octets().to_vec()));
    if let Some(r) = subnet.router {
        o.push((opt::ROUTER, r.octets().to_vec()));
    }
    if !subnet.dns_servers.is_empty() {
        o.push((opt::DNS, ips(&subnet.dns_servers)));
    }
    if let Some(h) = hostname {
        o.push((opt::HOSTNAME, h.as_bytes().to_vec()));
    }
    if let Some(d) = &subnet.domain {
        o.push((opt::DOMAIN, d.as_bytes().to_vec()));
    }
    if let Some(m) = subnet.mtu {
        o.push((opt::MTU, m.to_be_bytes().to_vec()));
    }
    o.push((opt::BROADCAST, subnet.broadcast().octets().to_vec()));
    if !subnet.ntp_servers.is_empty() {
        o.push((opt::NTP, ips(&subnet.ntp_servers)));
    }
    if let Some(l) = lease_secs {
        o.push((opt::LEASE_TIME, l.to_be_bytes().to_vec()));
        o.push((opt::RENEWAL_TIME, (l / 2).to_be_bytes().to_vec()));
        let t2 = (u64::from(l) * 7 / 8) as u32;
        o.push((opt::REBINDING_TIME, t2.to_be_bytes().to_vec()));
    }
    if !subnet.routes.is_empty() {
        // RFC 3442: a client that reads 121 ignores option 3, so the default route goes in.
        let mut v = Vec::new();
        let mut push = |dest: Ipv4Addr, prefix: u8, gw: Ipv4Addr| {
            v.push(prefix);
            let n = usize::from(prefix.div_ceil(8));
            v.extend_from_slice(dest.octets().get(..n).unwrap_or(&[]));
            v.extend_from_slice(&gw.octets());
        };
        for (dest, prefix, gw) in &subnet.routes {
            push(*dest, *prefix, *gw);
        }
        if let Some(r) = subnet.router {
            push(Ipv4Addr::UNSPECIFIED, 0, r);
        }
        o.push((opt::CLASSLESS_ROUTES, v));
    }
    o
}
