//! `/metrics` text parsed by the `prometheus-parse` crate; counters move with events.

mod common;

use std::net::Ipv4Addr;

use common::*;
use kindling_dhcp::{Firmware, IgnoreReason};
use kindling_model::FcosTrack;
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
    // No DHCP server registered: no kindling_dhcp_* series (they are the server's own
    // counters, `dhcp_series_are_the_servers_counters`).
    assert_eq!(
        value(
            &s0,
            "kindling_dhcp_ignored_total",
            &[("reason", "rule_ignore")]
        ),
        None
    );
    // No TFTP server registered: no kindling_tftp_* series.
    assert_eq!(
        value(
            &s0,
            "kindling_tftp_transfers_total",
            &[("outcome", "completed")]
        ),
        None
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
    ops.metrics.set_ready();
    ops.metrics.set_cache_bytes(123_456);
    let streams = vec![FcosTrack {
        stream: "stable".into(),
        arch: "x86_64".into(),
        current: Some("42.20251012.3.0".into()),
        upstream: Some("42.20251012.3.0".into()),
        ..FcosTrack::default()
    }];
    ops.metrics
        .set_fcos_source(std::sync::Arc::new(move || streams.clone()));
    ops.metrics
        .set_config_problems(vec!["groups/a.json: bad \"json\"".into(), "p".into()]);

    let s = parse(&ops.metrics_text());
    assert_eq!(value(&s, "kindling_ready", &[]), Some(1.0));
    assert_eq!(value(&s, "kindling_cache_bytes", &[]), Some(123_456.0));
    assert_eq!(value(&s, "kindling_config_problems", &[]), Some(2.0));
    // The tracker's status is on /api/v1/status; its series are its own (kindling-fcos).
    assert!(!s.docs.contains_key("kindling_fcos_release_info"));
    assert_eq!(value(&s, "kindling_machines", &[]), Some(1.0));
    // The 4011 request tied the IP, so all three TFTP transfers landed on the machine.
    assert_eq!(
        value(&s, "kindling_events_total", &[("source", "tftp")]),
        Some(3.0)
    );
    // Every family with series is typed (a family without any, like the HTTP requests
    // here, is left out of the exposition altogether).
    assert!(!s.docs.contains_key("kindling_http_requests_total"));
    assert!(s.docs.contains_key("kindling_events_total"), "has HELP");
}

// The registry alone (no Ops): typed series, zeros, escaping.
#[test]
fn counters_are_typed_and_known_labels_start_at_zero() {
    let m = kindling_ops::metrics::Metrics::default();
    use kindling_http::Endpoint;
    // Two listeners' counts are summed.
    let (boot, admin) = (
        std::sync::Arc::new(kindling_http::server::Stats::default()),
        std::sync::Arc::new(kindling_http::server::Stats::default()),
    );
    boot.requests.answered(Endpoint::Ipxe, 200, 10, true);
    admin.requests.answered(Endpoint::Ipxe, 200, 5, true);
    boot.requests.answered(Endpoint::Ipxe, 404, 1, true);
    m.add_listener("http", boot);
    m.add_listener("admin", admin);
    let dhcp = kindling_dhcp::StatsHandle::default();
    m.add_families(std::sync::Arc::new(move |r| dhcp.register(r)));
    let store = kindling_timeline::store::Store::new(kindling_timeline::store::Limits::default());
    let text = m.render(|r| store.register(r));
    for line in [
        "kindling_http_requests_total{endpoint=\"ipxe\",status=\"200\"} 2\n",
        "kindling_http_requests_total{endpoint=\"ipxe\",status=\"404\"} 1\n",
        "kindling_http_response_bytes_total{endpoint=\"ipxe\"} 16\n",
        "kindling_dhcp_ignored_total{reason=\"no_arch\"} 0\n",
        "kindling_dhcp_seen_total{firmware=\"uefi_pxe\"} 0\n",
        "kindling_dhcp_replies_total{message=\"offer\"} 0\n",
        "# TYPE kindling_machines gauge\n",
        // Nothing is being sent by this test process.
        "kindling_http_file_bodies_sending 0\n",
        "# TYPE kindling_http_send_queue_share_bytes gauge\n",
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
    assert!(
        !text.contains(".."),
        "help texts end with one period\n{text}"
    );
}

/// The TFTP series are the TFTP server's own counters, read at each scrape.
#[test]
fn tftp_series_are_the_servers_counters() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering::Relaxed;
    let ops = Ops::in_memory(&OpsConfig::default());
    let st = Arc::new(kindling_tftp::TftpStats::default());
    let registered = st.clone();
    ops.metrics
        .add_families(Arc::new(move |r| registered.register(r)));
    let s = parse(&ops.metrics_text());
    assert_eq!(
        value(&s, "kindling_tftp_refused_total", &[("reason", "busy")]),
        Some(0.0),
        "every reason from the start"
    );
    st.refused[0].fetch_add(2, Relaxed);
    st.ended[0].fetch_add(3, Relaxed);
    st.file_bytes.fetch_add(1_024_512, Relaxed);
    let s = parse(&ops.metrics_text());
    assert_eq!(
        value(
            &s,
            "kindling_tftp_refused_total",
            &[("reason", "not_found")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &s,
            "kindling_tftp_transfers_total",
            &[("outcome", "completed")]
        ),
        Some(3.0)
    );
    assert_eq!(
        value(&s, "kindling_tftp_bytes_total", &[]),
        Some(1_024_512.0)
    );
}
