//! `/metrics` text parsed by the `prometheus-parse` crate; counters move with events.

mod common;

use std::net::Ipv4Addr;

use common::*;
use kindling_dhcp::{Firmware, IgnoreReason};
use kindling_ops::{Ops, OpsConfig};
use kindling_tftp::Outcome;

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses")
}

fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[test]
fn counters_move_with_events() {
    let ops = Ops::in_memory(&OpsConfig {
        neighbour_lookup: false,
        ..OpsConfig::default()
    });
    let s0 = parse(&ops.metrics_text());
    assert_eq!(
        value(
            &s0,
            "kindling_dhcp_ignored_total",
            &[("reason", "rule_ignore")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &s0,
            "kindling_tftp_transfers_total",
            &[("outcome", "completed")]
        ),
        Some(0.0)
    );
    assert_eq!(value(&s0, "kindling_ready", &[]), Some(0.0));
    assert_eq!(value(&s0, "kindling_cache_bytes", &[]), None);

    dhcp_discover(&ops, MAC, Firmware::UefiPxe, "");
    dhcp_discover(&ops, MAC, Firmware::Ipxe, "http://10.99.0.1:8080/boot.ipxe");
    dhcp_ignored(&ops, MAC, IgnoreReason::RuleIgnore);
    dhcp_ignored(&ops, MAC, IgnoreReason::NotPxe);
    dhcp_pxe_request(&ops, MAC, Ipv4Addr::new(10, 99, 0, 50));
    tftp(
        &ops,
        Ipv4Addr::new(10, 99, 0, 50),
        "ipxe.efi",
        1_024_000,
        Outcome::Completed,
    );
    tftp(
        &ops,
        Ipv4Addr::new(10, 99, 0, 50),
        "ipxe.efi",
        0,
        Outcome::OptionsDeclined,
    );
    tftp(
        &ops,
        Ipv4Addr::new(10, 99, 0, 50),
        "x",
        512,
        Outcome::TimedOut,
    );
    ops.set_ready();
    ops.set_cache_bytes(123_456);
    ops.set_cache_counters(vec![
        ("fetches", 3),
        ("refused_head", 7),
        ("refused_not_routed", 2),
    ]);
    ops.set_fcos_release("stable", "42.20251012.3.0");
    ops.set_config_problems(vec!["groups/a.json: bad \"json\"".into(), "p".into()]);

    let s = parse(&ops.metrics_text());
    assert_eq!(value(&s, "kindling_cache_fetches_total", &[]), Some(3.0));
    assert_eq!(
        value(&s, "kindling_cache_refused_total", &[("reason", "head")]),
        Some(7.0)
    );
    assert_eq!(
        value(
            &s,
            "kindling_cache_refused_total",
            &[("reason", "not_routed")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(&s, "kindling_dhcp_replies_total", &[("message", "offer")]),
        Some(2.0)
    );
    assert_eq!(
        value(
            &s,
            "kindling_dhcp_ignored_total",
            &[("reason", "rule_ignore")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "kindling_dhcp_ignored_total", &[("reason", "not_pxe")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "kindling_dhcp_seen_total", &[("firmware", "uefi_pxe")]),
        Some(2.0)
    );
    assert_eq!(
        value(&s, "kindling_dhcp_seen_total", &[("firmware", "ipxe")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            "kindling_tftp_transfers_total",
            &[("outcome", "completed")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            "kindling_tftp_transfers_total",
            &[("outcome", "options_declined")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            "kindling_tftp_transfers_total",
            &[("outcome", "timed_out")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "kindling_tftp_bytes_total", &[]),
        Some(1_024_512.0)
    );
    assert_eq!(value(&s, "kindling_ready", &[]), Some(1.0));
    assert_eq!(value(&s, "kindling_cache_bytes", &[]), Some(123_456.0));
    assert_eq!(value(&s, "kindling_config_problems", &[]), Some(2.0));
    assert_eq!(
        value(
            &s,
            "kindling_fcos_release_info",
            &[("stream", "stable"), ("release", "42.20251012.3.0")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&s, "kindling_machines", &[]), Some(1.0));
    // The 4011 request tied the IP, so all three TFTP transfers landed on the machine.
    assert_eq!(
        value(&s, "kindling_events_total", &[("source", "tftp")]),
        Some(3.0)
    );
    // Every family is typed.
    for name in [
        "kindling_http_requests_total",
        "kindling_dhcp_ignored_total",
        "kindling_tftp_bytes_total",
    ] {
        assert!(s.docs.contains_key(name), "{name} has HELP");
    }
}
