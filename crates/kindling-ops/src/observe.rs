//! How the services' hooks become boot-timeline events and metrics: the DHCP, TFTP and
//! HTTP observers, and the Ignition binding check, implemented for [`Ops`].

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use kindling_dhcp::{
    Answered6Event, AnsweredEvent, DhcpObserver, IgnoredEvent, ListenPort, Seen6Event, SeenEvent,
};
use kindling_http::{RequestObserver, RequestRecord};
use kindling_model::MacAddr;
use kindling_model::machines::now_ms;
use kindling_tftp::{Outcome, Refusal, TftpObserver};

use crate::ops::Ops;
use kindling_timeline::classify::http_stage;
use kindling_timeline::event::{
    Chosen, Detail, Dhcp, DhcpStep, Endpoint, Event, Http, Message, Name, Reason, Stage, Tftp,
    human_bytes,
};

/// A peer's address (an IPv4-mapped IPv6 address as IPv4).
fn ip_of(addr: SocketAddr) -> IpAddr {
    addr.ip().to_canonical()
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// What a DHCP client said, either protocol: its message, classes and architecture.
struct Said<'a> {
    message: Option<Message>,
    firmware: Option<kindling_dhcp::Firmware>,
    arch: Option<u16>,
    vendor_class: Option<&'a str>,
    user_classes: &'a [String],
}

fn dhcp_event(step: DhcpStep, said: Said<'_>, iface: &str, mac: Option<[u8; 6]>) -> Event {
    let user_class = match said.user_classes {
        [] => None,
        [one] => Some(Name::of(one, Chosen::Client)),
        many => Some(Name::of(&many.join(","), Chosen::Client)),
    };
    let mut ev = Event::new(
        now_ms(),
        Detail::Dhcp(Dhcp {
            step,
            message: said.message,
            firmware: said.firmware,
            port: 0,
            arch: said.arch,
            iface: Some(Name::new(iface)),
            file: None,
            vendor_class: said.vendor_class.map(|v| Name::of(v, Chosen::Client)),
            user_class,
        }),
    );
    ev.mac = mac.map(MacAddr);
    ev
}

fn client_event(step: DhcpStep, c: &kindling_dhcp::ClientInfo, iface: &str) -> Event {
    let said = Said {
        message: c.message_type.map(Message::V4),
        firmware: c.firmware,
        arch: c.arch,
        vendor_class: c.vendor_class.as_deref(),
        user_classes: &c.user_classes,
    };
    let mut ev = dhcp_event(step, said, iface, c.mac);
    if !c.ciaddr.is_unspecified() {
        ev.ip = Some(IpAddr::V4(c.ciaddr));
    }
    ev
}

/// A DHCPv6 boot client's event: its MAC from its DUID or link-local address.
fn client6_event(
    step: DhcpStep,
    c: &kindling_dhcp::v6::Client6,
    iface: &str,
    from: &std::net::SocketAddrV6,
) -> Event {
    let said = Said {
        message: Some(Message::V6(c.msg_type)),
        firmware: c.firmware,
        arch: c.arch,
        vendor_class: c.vendor_class.as_deref(),
        user_classes: &c.user_classes,
    };
    dhcp_event(step, said, iface, c.mac(from.ip()))
}

impl DhcpObserver for Ops {
    fn seen6(&self, e: &Seen6Event<'_>) {
        let mut ev = client6_event(DhcpStep::Seen, e.client, e.iface, &e.source);
        if let Detail::Dhcp(d) = &mut ev.detail {
            d.port = kindling_dhcp::v6::decide::SERVER_PORT;
        }
        self.record(ev);
    }

    fn answered6(&self, e: &Answered6Event<'_>) {
        let mut ev = client6_event(DhcpStep::Answered, e.client, e.iface, &e.source);
        if let Detail::Dhcp(d) = &mut ev.detail {
            d.message = Some(Message::V6(e.reply.msg_type));
            d.file = e.reply.boot_url.as_deref().map(Name::new);
        }
        ev.ip = e.reply.addresses.first().map(|a| IpAddr::V6(*a));
        self.record(ev);
    }

    fn seen(&self, e: &SeenEvent<'_>) {
        let c = e.client;
        // The source of an unrelayed PXE request on 4011 is where that MAC boots from.
        if e.port == ListenPort::Pxe
            && c.giaddr.is_unspecified()
            && let Some(mac) = c.mac
            && let Ok(mut b) = self.bindings.lock()
        {
            b.note(mac, *e.source.ip(), Instant::now());
        }
        // A REQUEST on 67 is for the site's DHCP server: not part of our story.
        if e.port == ListenPort::Dhcp
            && c.message_type != Some(kindling_dhcp::wire::MessageType::Discover)
        {
            return;
        }
        let mut ev = client_event(DhcpStep::Seen, c, e.iface);
        if let Detail::Dhcp(d) = &mut ev.detail {
            d.port = e.port.number();
        }
        // The source of an unrelayed packet on 4011 is the client's address.
        if ev.ip.is_none() && c.giaddr.is_unspecified() && !e.source.ip().is_unspecified() {
            ev.ip = Some(IpAddr::V4(*e.source.ip()));
        }
        self.record(ev);
    }

    fn answered(&self, e: &AnsweredEvent<'_>) {
        let mut ev = client_event(DhcpStep::Answered, e.client, e.iface);
        if let Detail::Dhcp(d) = &mut ev.detail {
            d.message = Some(Message::V4(e.reply.message_type));
            d.file = (!e.reply.file.is_empty()).then(|| Name::new(&e.reply.file));
        }
        ev.reason = e.reply.rule.as_deref().map(|r| Reason::Rule(Name::new(r)));
        self.record(ev);
    }

    fn ignored(&self, e: &IgnoredEvent<'_>) {
        let Some(c) = e.client else { return };
        if c.mac.is_none() || c.vendor_prefix.is_none() || e.reason.is_ordinary() {
            return;
        }
        let mut ev = client_event(DhcpStep::Ignored, c, e.iface);
        ev.ok = false;
        ev.reason = Some(Reason::Ignored(e.reason));
        self.record(ev);
    }
}

impl TftpObserver for Ops {
    fn request_refused(&self, peer: SocketAddr, file: &str, why: Refusal, reason: &str) {
        let mut ev = Event::new(
            now_ms(),
            Detail::Tftp(Box::new(Tftp {
                file: file.into(),
                write: why == Refusal::WriteRequest,
                probe: false,
                bytes: 0,
                duration_ms: None,
            })),
        );
        ev.ip = Some(ip_of(peer));
        ev.ok = false;
        // The server's own words (busy, a limit, a refused mode) are one shared copy: a
        // storm's thousands of refused machines hold a pointer each, not a copy each.
        // An error that names the client's file is the client's text.
        let who = match why {
            Refusal::NotFound | Refusal::AccessViolation | Refusal::IoError => Chosen::Client,
            Refusal::Busy | Refusal::ClientLimit | Refusal::WriteRequest | Refusal::MailMode => {
                Chosen::Server
            }
        };
        ev.reason = Some(Reason::Text(Name::of(reason, who)));
        self.record(ev);
    }

    fn transfer_finished(
        &self,
        peer: SocketAddr,
        file: &str,
        bytes: u64,
        duration: Duration,
        outcome: &Outcome,
    ) {
        let mut ev = Event::new(
            now_ms(),
            Detail::Tftp(Box::new(Tftp {
                file: file.into(),
                write: false,
                probe: matches!(outcome, Outcome::OptionsDeclined),
                bytes,
                duration_ms: Some(ms(duration)),
            })),
        );
        ev.ip = Some(ip_of(peer));
        ev.ok = outcome.is_success();
        ev.reason = match outcome {
            Outcome::Completed | Outcome::OptionsDeclined => None,
            other => Some(Reason::text(&other.to_string())),
        };
        self.record(ev);
    }
}

impl kindling_http::MachineBinding for Ops {
    fn check(&self, mac: &str, peer: IpAddr) -> Result<(), String> {
        self.bound(mac, peer.to_canonical())
            .inspect_err(|_| self.metrics.binding_refused())
    }
}

impl Ops {
    /// The Ignition binding's answer for `mac` asked from `peer` (see [`crate::binding`]).
    fn bound(&self, mac: &str, peer: IpAddr) -> Result<(), String> {
        // A `mac` label that is no MAC was never seen booting anywhere.
        let mac = MacAddr::parse(mac).map_err(|_| format!("{mac:?} is not a MAC address"))?;
        // A refusal comes only from a new read: the last one (up to 100 ms old) may
        // predate this machine's entry or a change of hands.
        let neighbour = match self.neighbour_now(peer, Duration::ZERO) {
            Some(hw) if hw != mac => self.neighbour_fresh(peer),
            other => other,
        };
        let booted_from = self
            .bindings
            .lock()
            .map(|b| b.ips(&mac.0).to_vec())
            .unwrap_or_default();
        crate::binding::decide(mac, peer, neighbour, &booted_from)
    }
}

impl RequestObserver for Ops {
    fn request(&self, r: &RequestRecord<'_>) {
        let endpoint = r.endpoint;
        if !endpoint.is_boot() {
            return;
        }
        let ip = ip_of(r.peer);
        let mac = r
            .labels
            .and_then(|l| l.get("mac"))
            .and_then(|m| MacAddr::parse(m).ok());
        // The bytes metric's kind: the asset's stage by the profile of the machine that
        // asked (its kernel, initrd, rootfs paths) as the store knows it. A machine asks
        // for its script before its kernel, so the store has usually taken that event
        // already; only when it cannot tell is the queue applied here first (in a storm
        // every download applying it cost a journal write and a wake-up of its thread
        // each). The timeline's event leaves the stage to the store, which decides it
        // when it takes the event, after every earlier one (`Store::apply`).
        if endpoint == Endpoint::Assets && (200..300).contains(&r.status) {
            let known = || (self.store.lock().ok()).and_then(|s| s.asset_stage(mac, ip, r.path));
            let stage = known()
                .or_else(|| {
                    self.apply_queued();
                    known()
                })
                .or_else(|| http_stage(Endpoint::Assets, r.path, None));
            let kind = match stage {
                Some(s @ (Stage::Kernel | Stage::Initrd | Stage::Rootfs)) => s.label(),
                _ => "other",
            };
            self.metrics.asset_bytes(kind, r.bytes);
        }
        // Stray 404s from unknown clients are not worth a machine.
        if matches!(endpoint, Endpoint::None | Endpoint::Invalid) && mac.is_none() {
            let known = self
                .store
                .lock()
                .map(|s| s.mac_for_ip(ip).is_some())
                .unwrap_or(false);
            if !known {
                return;
            }
        }
        let mut reason = r.reason.map(Reason::text);
        if !r.complete {
            reason = Some(Reason::text(&format!(
                "download cut short after {} of {}: {}",
                human_bytes(r.bytes),
                human_bytes(r.length),
                r.reason.unwrap_or("the client closed the connection")
            )));
        }
        let mut ev = Event::new(
            now_ms(),
            Detail::Http(Box::new(Http {
                method: Name::of(r.method.as_str(), Chosen::Client),
                path: r.path.into(),
                endpoint: Some(endpoint),
                status: r.status,
                bytes: r.bytes,
                duration_ms: ms(r.duration),
                group: r.group.map(Name::new),
                profile: r.profile.map(Name::new),
            })),
        );
        ev.mac = mac;
        ev.ip = Some(ip);
        ev.reason = reason;
        ev.ok = r.status < 400 && r.complete;
        ev.stage = (endpoint != Endpoint::Assets)
            .then(|| http_stage(endpoint, r.path, None))
            .flatten();
        self.record(ev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::OpsConfig;
    use kindling_model::machines::now_ms;
    use kindling_timeline::event::{Event, Stage};

    use crate::test_support as support;

    fn bios_client(mac: u8) -> kindling_dhcp::ClientInfo {
        support::bios_client(1, [0x52, 0x54, 0, 0, 0, mac])
    }

    fn exchange(ops: &Ops, c: &kindling_dhcp::ClientInfo, file: &str) {
        support::discover_offer(ops, c, &support::offer(file));
    }

    #[test]
    fn dhcp_retries_are_counted_on_the_event_they_repeat() {
        let ops = Ops::in_memory(&OpsConfig::default());
        let c = bios_client(1);
        for _ in 0..5 {
            exchange(&ops, &c, "undionly.kpxe");
        }
        let m = ops
            .machine("52:54:00:00:00:01")
            .unwrap_or_else(|| unreachable!());
        assert_eq!(m.timeline.len(), 1);
        let evs = &m.timeline[0].events;
        assert_eq!(evs.len(), 2, "{evs:?}");
        assert_eq!(evs[0].what().to_string(), "DISCOVER on port 67");
        assert_eq!(evs[1].what().to_string(), "OFFER undionly.kpxe");
        assert_eq!((evs[0].repeats, evs[1].repeats), (4, 4));
        assert_eq!(
            ops.store.lock().map_or(0, |s| s.dhcp_repeats),
            8,
            "all but the first exchange were repeats"
        );
        // Something different is stored, not counted.
        exchange(&ops, &c, "ipxe.efi");
        let m = ops
            .machine("52:54:00:00:00:01")
            .unwrap_or_else(|| unreachable!());
        let evs = &m.timeline[0].events;
        assert_eq!(evs.len(), 3, "{evs:?}");
        assert_eq!(evs[2].what().to_string(), "OFFER ipxe.efi");
        assert_eq!(evs[0].repeats, 5);
        // A new firmware DISCOVER after the boot got past DHCP starts a new boot, not a
        // repeat.
        ops.record({
            let mut e = Event::new(
                now_ms(),
                Detail::Tftp(Box::new(Tftp {
                    file: "undionly.kpxe".into(),
                    write: false,
                    probe: false,
                    bytes: 0,
                    duration_ms: Some(1.0),
                })),
            );
            e.mac = kindling_model::MacAddr::parse("52:54:00:00:00:01").ok();
            e
        });
        exchange(&ops, &c, "undionly.kpxe");
        let m = ops
            .machine("52:54:00:00:00:01")
            .unwrap_or_else(|| unreachable!());
        assert_eq!(m.timeline.len(), 2, "{:?}", m.timeline);
    }

    #[test]
    fn a_refused_tftp_request_explains_where_the_boot_stopped() {
        let ops = Ops::in_memory(&OpsConfig::default());
        // The REQUEST to port 4011 comes from the client's address: that ties it.
        ops.record({
            let mut d = Dhcp::new(DhcpStep::Seen);
            d.message = Some(kindling_dhcp::wire::MessageType::Request.into());
            d.port = 4011;
            let mut e = Event::new(now_ms(), Detail::Dhcp(d));
            e.mac = kindling_model::MacAddr::parse("52:54:00:00:00:07").ok();
            e.ip = "10.0.0.57".parse().ok();
            e
        });
        let peer: SocketAddr = "10.0.0.57:2070".parse().unwrap_or_else(|_| unreachable!());
        ops.request_refused(
            peer,
            "undionly.kpxe",
            Refusal::NotFound,
            "file not found: undionly.kpxe (looked in /srv/tftp)",
        );
        let m = ops
            .machine("52:54:00:00:00:07")
            .unwrap_or_else(|| unreachable!());
        let err = m.summary.last_error.unwrap_or_else(|| unreachable!());
        assert_eq!(err.stage, Some(Stage::Tftp));
        assert_eq!(
            err.message,
            "RRQ undionly.kpxe: file not found: undionly.kpxe (looked in /srv/tftp)"
        );
        let last = m.timeline[0]
            .events
            .back()
            .unwrap_or_else(|| unreachable!());
        assert_eq!(last.what().to_string(), "RRQ undionly.kpxe");
        assert!(!last.ok);
    }

    #[test]
    fn mapped_ipv6_peers_are_ipv4() {
        let a: SocketAddr = "[::ffff:10.0.0.7]:80"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(ip_of(a).to_string(), "10.0.0.7");
    }
}
