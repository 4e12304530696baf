//! A machine as the store keeps it ([`MachineRec`]: its boots, nothing more), a boot as
//! kept ([`BootRec`]: what it knows of its own progress, its events encoded), and the
//! machine's facts ([`Facts`]: address, architecture, firmware, classes, group, profile),
//! read from its newest events rather than kept twice.

use std::collections::VecDeque;
use std::net::IpAddr;

use super::log::EventLog;
use super::types::{Boot, BootError, MachineDetail, MachineSummary};
use crate::event::{Detail, Event, Name, Source, Stage, format_ts};
use kindling_dhcp::Firmware;
use kindling_dhcp::policy::describe_arch;
use kindling_model::MacAddr;

/// How far back in a boot a repeated event is looked for (the longest retry cycle:
/// DISCOVER, OFFER, REQUEST, ACK).
const REPEAT_LOOKBACK: usize = 4;

/// One boot of one machine as the store keeps it: [`Boot`]'s fields, its events encoded.
#[derive(Debug, Clone)]
pub(super) struct BootRec {
    pub(super) started: u64,
    pub(super) last_event: u64,
    /// Furthest stage reached successfully.
    pub(super) last_stage: Option<Stage>,
    /// The last failure not followed by a success at the same or a later stage (boxed:
    /// most boots have none).
    pub(super) error: Option<Box<BootError>>,
    /// Events dropped from the front because of `max_events`.
    pub(super) dropped_events: u64,
    pub(super) events: EventLog,
    /// Some event of this boot came from TFTP or HTTP (kept even if it was dropped).
    saw_non_dhcp: bool,
    /// Some event of this boot reached the script stage or later.
    saw_script: bool,
}

impl BootRec {
    pub(super) fn new(ts: u64) -> BootRec {
        BootRec {
            started: ts,
            last_event: ts,
            last_stage: None,
            error: None,
            dropped_events: 0,
            events: EventLog::default(),
            saw_non_dhcp: false,
            saw_script: false,
        }
    }

    /// The boot as readers get it, its events made again.
    pub(super) fn to_boot(&self, mac: MacAddr) -> Boot {
        Boot {
            started: self.started,
            last_event: self.last_event,
            last_stage: self.last_stage,
            error: self.error.clone(),
            dropped_events: self.dropped_events,
            events: self.events.to_events(mac),
        }
    }

    /// Got past DHCP (successfully or not): a new firmware DISCOVER is then a new boot.
    fn beyond_dhcp(&self) -> bool {
        self.last_stage.is_some_and(|s| s > Stage::Dhcp) || self.saw_non_dhcp
    }

    /// Got to a boot script (or further): iPXE only asks DHCP again when it starts anew.
    fn reached_script(&self) -> bool {
        self.last_stage.is_some_and(|s| s >= Stage::Script) || self.saw_script
    }

    /// Whether `ev` starts a new boot after this one.
    pub(super) fn ends_before(&self, ev: &Event, gap: u64) -> bool {
        ev.ts.saturating_sub(self.last_event) > gap
            || (ev.is_firmware_discover() && self.beyond_dhcp())
            || (ev.is_ipxe_discover() && self.reached_script())
    }

    /// Counts `ev` on the event among the last few that it repeats (a retry loop: one
    /// event, or a cycle such as DISCOVER/OFFER), if any: false when there is none.
    pub(super) fn count_repeat(&mut self, ev: &Event, scratch: &mut Vec<u8>) -> bool {
        self.events.count_repeat(ev, REPEAT_LOOKBACK, scratch)
    }

    /// A success at `st`: the furthest stage moves on, an earlier failure is over.
    pub(super) fn reached(&mut self, st: Stage) {
        self.last_stage = Some(self.last_stage.map_or(st, |s| s.max(st)));
        if self
            .error
            .as_ref()
            .is_some_and(|e| e.stage.is_none_or(|es| st >= es))
        {
            self.error = None;
        }
    }

    /// Notes what a stored event says about how far the boot got.
    pub(super) fn note(&mut self, ev: &Event) {
        self.saw_non_dhcp |= ev.source() != Source::Dhcp;
        self.saw_script |= ev.stage.is_some_and(|s| s >= Stage::Script);
    }
}

/// Room for one more element: exactly one while fewer than `exact` are held (a
/// machine's boots up to `max_boots`), doubling after that.
pub(super) fn room_for_one<T>(q: &mut VecDeque<T>, exact: usize) {
    if q.len() == q.capacity() && q.len() < exact {
        q.reserve_exact(1);
    }
}

/// A machine as the store keeps it (its MAC is the key).
#[derive(Debug, Clone)]
pub(super) struct MachineRec {
    pub(super) first_seen: u64,
    pub(super) last_seen: u64,
    /// Oldest first.
    pub(super) boots: VecDeque<BootRec>,
}

/// What a machine's newest events say it is: for each fact, the newest event that
/// carries it (the firmware: the newest that is not iPXE, when there is one: a machine
/// chainloaded into iPXE is still a UEFI or BIOS machine).
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Facts {
    pub ip: Option<IpAddr>,
    pub arch: Option<u16>,
    pub firmware: Option<Firmware>,
    pub vendor_class: Option<Name>,
    pub user_class: Option<Name>,
    pub group: Option<Name>,
    pub profile: Option<Name>,
}

impl MachineRec {
    pub(super) fn new(ts: u64) -> MachineRec {
        MachineRec {
            first_seen: ts,
            last_seen: ts,
            boots: VecDeque::new(),
        }
    }

    /// Events, newest first, without their MAC.
    fn newest_first(&self) -> impl Iterator<Item = Event> + '_ {
        self.boots
            .iter()
            .rev()
            .flat_map(|b| b.events.newest_first())
    }

    /// The profile of the newest event that names one.
    pub(super) fn profile(&self) -> Option<Name> {
        self.newest_first()
            .find_map(|e| e.http().and_then(|h| h.profile.clone()))
    }

    pub(super) fn facts(&self) -> Facts {
        fn fill<T: Clone>(slot: &mut Option<T>, v: Option<&T>) {
            if slot.is_none() {
                *slot = v.cloned();
            }
        }
        let mut f = Facts::default();
        let mut ipxe = false;
        for e in self.newest_first() {
            fill(&mut f.ip, e.ip.as_ref());
            match &e.detail {
                Detail::Dhcp(d) => {
                    fill(&mut f.arch, d.arch.as_ref());
                    match d.firmware {
                        Some(Firmware::Ipxe) => ipxe = true,
                        other => fill(&mut f.firmware, other.as_ref()),
                    }
                    fill(&mut f.vendor_class, d.vendor_class.as_ref());
                    fill(&mut f.user_class, d.user_class.as_ref());
                }
                Detail::Http(h) => {
                    fill(&mut f.group, h.group.as_ref());
                    fill(&mut f.profile, h.profile.as_ref());
                }
                Detail::Tftp(_) => {}
            }
        }
        if f.firmware.is_none() && ipxe {
            f.firmware = Some(Firmware::Ipxe);
        }
        f
    }

    pub(super) fn summary(&self, mac: MacAddr) -> MachineSummary {
        self.summary_with(mac, &self.facts())
    }

    fn summary_with(&self, mac: MacAddr, f: &Facts) -> MachineSummary {
        let last = self.boots.back();
        MachineSummary {
            mac: mac.to_string(),
            ip: f.ip.map(|ip| ip.to_string()),
            arch: f.arch.map(describe_arch),
            firmware: f.firmware.map(|fw| fw.label().to_string()),
            group: f.group.as_deref().map(str::to_string),
            profile: f.profile.as_deref().map(str::to_string),
            last_stage: last.and_then(|b| b.last_stage),
            last_seen: self.last_seen,
            last_seen_at: format_ts(self.last_seen),
            last_error: last.and_then(|b| b.error.as_deref().cloned()),
            boots: self.boots.len(),
            last_boot_started: last.map(|b| b.started),
            lifecycle: None,
            lease: None,
        }
    }

    pub(super) fn detail(&self, mac: MacAddr) -> MachineDetail {
        let f = self.facts();
        MachineDetail {
            summary: self.summary_with(mac, &f),
            vendor_class: f.vendor_class.as_deref().map(str::to_string),
            user_class: f.user_class.as_deref().map(str::to_string),
            first_seen: self.first_seen,
            timeline: self.boots.iter().map(|b| b.to_boot(mac)).collect(),
            lifecycle_record: None,
        }
    }
}
