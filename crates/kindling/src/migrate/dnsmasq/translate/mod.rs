//! The model of a dnsmasq configuration to `kindling.toml` text (see the module docs).
//!
//! [`guess`] finds the server's address, port and interface; [`plan`] simulates dnsmasq for
//! every client and plans the rules; [`menu`] turns dnsmasq's BIOS PXE menu into
//! `[dhcp.pxe_menu]`; [`dhcp_table()`] fills `[dhcp]`; [`fate`] explains the differences and
//! each line; [`render()`] writes the text.

mod dhcp_table;
mod fate;
mod guess;
mod menu;
mod menu_plan;
mod model;
mod plan;
mod render;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use kindling_dhcp::DhcpConfig;

use crate::migrate::dnsmasq::parse;
use crate::migrate::probe::{Client, Kind};
use dhcp_table::dhcp_table;
use guess::{Interfaces, guess_http_port, guess_interfaces, guess_server};
use plan::{Tr, groups_of};
use render::{Parts, render, tftp_block};

pub use model::{Options, Output};

/// Translates a dnsmasq configuration. Never panics; lines it cannot read become comments
/// and warnings.
pub fn translate(text: &str, opts: &Options) -> Output {
    let conf = parse::parse(text);
    let mut warnings: Vec<String> = conf
        .malformed
        .iter()
        .map(|(no, e)| {
            let t = conf.line(*no).map(|l| l.text.clone()).unwrap_or_default();
            format!("line {no}: {t}: {e} (left out, with a comment)")
        })
        .collect();
    let (server, mask, server_from) = guess_server(&conf, opts.server_ip);
    let Interfaces {
        excluded,
        named: named_ifaces,
        iface,
    } = guess_interfaces(&conf);
    let http_port = guess_http_port(&conf, server);

    let groups = groups_of(&conf);
    let clients: Vec<Client> = groups
        .iter()
        .flat_map(|g| Kind::ALL.map(|kind| Client { kind, mac: g.mac }))
        .collect();

    let dhcp_on = !conf.ranges.is_empty();
    let mut tr = Tr {
        conf: &conf,
        opts,
        server,
        mask,
        iface,
        server_from,
        http_port,
        groups,
        clients,
        real: BTreeMap::new(),
        intent: BTreeMap::new(),
        wants: BTreeMap::new(),
        menus: BTreeMap::new(),
        menu: None,
        ignored: BTreeSet::new(),
        dhcp_on,
    };
    let forgot_pxe =
        !conf.enable_pxe && conf.ranges.iter().any(|r| r.proxy) && !conf.boots.is_empty();
    tr.simulate(forgot_pxe);

    // The [dhcp] table.
    let mut base = DhcpConfig::default();
    let mut notes: BTreeMap<&'static str, String> = BTreeMap::new();
    if dhcp_on {
        dhcp_table(&tr, &named_ifaces, &excluded, &mut base, &mut notes);
    }

    // Whatever went into the table must be valid; if not (it should not happen), fall
    // back to the interfaces alone, then to no proxy DHCP.
    if let Err(e) = base.validate() {
        warnings.push(format!(
            "internal: the [dhcp] keys did not validate ({e}); Kindling's defaults kept"
        ));
        let mut fallback = DhcpConfig {
            enabled: base.enabled,
            interfaces: base.interfaces.clone(),
            exclude_interfaces: base.exclude_interfaces.clone(),
            ..DhcpConfig::default()
        };
        if fallback.validate().is_err() {
            fallback = DhcpConfig::default();
        }
        base = fallback;
    }
    let dhcp_on = base.enabled;
    tr.dhcp_on = dhcp_on;
    if let Some(m) = tr.menu.as_mut() {
        if dhcp_on {
            m.apply(&mut base);
        } else {
            m.failed = Some("proxy DHCP is off".into());
        }
    }

    let mut rules = if dhcp_on {
        tr.plan_rules(&base)
    } else {
        Vec::new()
    };
    let mut final_cfg = base.clone();
    final_cfg.rules = rules.iter().map(|p| p.rule.clone()).collect();
    let checked = match final_cfg.validate() {
        Ok(c) => Some(c),
        Err(e) => {
            warnings.push(format!(
                "internal: the rules did not validate ({e}); rules left out"
            ));
            final_cfg.rules.clear();
            rules.clear();
            final_cfg.validate().ok()
        }
    };

    let (diffs, differing, kseen) = tr.differences(checked.as_ref(), &base, forgot_pxe);
    let fates = tr.fates(&rules, &base, &kseen, forgot_pxe);
    let tftp = tftp_block(&conf, &kseen);
    let out = render(
        &tr,
        &Parts {
            base: &base,
            notes: &notes,
            rules: &rules,
            tftp: &tftp,
            diffs: &diffs,
            fates: &fates,
        },
    );
    Output {
        toml: out,
        warnings,
        differences: differing.len(),
    }
}
