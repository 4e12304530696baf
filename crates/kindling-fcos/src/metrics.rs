//! The tracker's `/metrics` series (`kindling_fcos_*`): one per tracked stream and
//! architecture, read from [`FcosStatus`] at each scrape.
//!
//! Timestamps are 0 until the first check (success), so that
//! `time() - kindling_fcos_last_success_timestamp_seconds` alerts on a tracker that never
//! succeeded too. The last error's text is not a label: it is on `/api/v1/status`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::FcosTrack;
use crate::track::FcosStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Track {
    stream: String,
    arch: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrackRelease {
    stream: String,
    arch: String,
    release: String,
}

impl FcosStatus {
    /// Registers the tracker's series in `r`, as its status is now.
    pub fn register(&self, r: &mut Registry) {
        register(&self.snapshot(), r);
    }
}

fn register(streams: &[FcosTrack], r: &mut Registry) {
    let release = Family::<TrackRelease, Gauge>::default();
    let upstream = Family::<TrackRelease, Gauge>::default();
    let failures = Family::<Track, Counter>::default();
    let gauges: [Family<Track, Gauge<u64, AtomicU64>>; 3] = Default::default();
    for st in streams {
        let track = Track {
            stream: st.stream.clone(),
            arch: st.arch.clone(),
        };
        let with = |r: &str| TrackRelease {
            stream: st.stream.clone(),
            arch: st.arch.clone(),
            release: r.to_string(),
        };
        if let Some(c) = &st.current {
            release.get_or_create(&with(c)).set(1);
        }
        if let Some(u) = &st.upstream {
            upstream.get_or_create(&with(u)).set(1);
        }
        failures.get_or_create(&track).inc_by(st.failures);
        let values = [
            st.consecutive_failures,
            st.last_check.unwrap_or(0),
            st.last_success.unwrap_or(0),
        ];
        for (g, v) in gauges.iter().zip(values) {
            g.get_or_create(&track).set(v);
        }
    }
    r.register(
        "kindling_fcos_release_info",
        "Fedora CoreOS release the profile boots, per tracked stream and architecture",
        release,
    );
    r.register(
        "kindling_fcos_upstream_release_info",
        "Fedora CoreOS release seen upstream at the last successful check, per tracked stream and architecture",
        upstream,
    );
    r.register(
        "kindling_fcos_check_failures",
        "Fedora CoreOS tracker checks that failed since start, per stream and architecture",
        failures,
    );
    let [consecutive, last_check, last_success] = gauges;
    r.register(
        "kindling_fcos_consecutive_failures",
        "Fedora CoreOS tracker checks that failed since the last successful one (0 after a success)",
        consecutive,
    );
    r.register(
        "kindling_fcos_last_check_timestamp_seconds",
        "Unix time of the last Fedora CoreOS tracker check, failed or not (0: none yet)",
        last_check,
    );
    r.register(
        "kindling_fcos_last_success_timestamp_seconds",
        "Unix time of the last successful Fedora CoreOS tracker check (0: none since start)",
        last_success,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(streams: &[FcosTrack]) -> String {
        let mut r = Registry::default();
        register(streams, &mut r);
        let mut o = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut o, &r).unwrap();
        o
    }

    /// Failures, timestamps (0 before the first success), current and upstream
    /// releases, per stream and architecture; typed; no error text.
    #[test]
    fn series_per_stream_and_architecture() {
        assert!(
            !text(&[]).contains("kindling_fcos_check_failures_total{"),
            "no series before the tracker reports"
        );
        let t = text(&[
            FcosTrack {
                stream: "testing".into(),
                arch: "aarch64".into(),
                current: Some("43.20251101.2.0".into()),
                upstream: Some("43.20251115.2.0".into()),
                last_check: Some(1_764_000_100),
                last_success: Some(1_764_000_100),
                ..FcosTrack::default()
            },
            FcosTrack {
                stream: "stable".into(),
                arch: "x86_64".into(),
                last_error: Some("http request failed\nConnection refused".into()),
                last_check: Some(1_764_000_000),
                failures: 3,
                consecutive_failures: 3,
                ..FcosTrack::default()
            },
        ]);
        let sa = "{stream=\"stable\",arch=\"x86_64\"}";
        let ta = "{stream=\"testing\",arch=\"aarch64\"}";
        for line in [
            format!("kindling_fcos_check_failures_total{sa} 3\n"),
            format!("kindling_fcos_consecutive_failures{sa} 3\n"),
            format!("kindling_fcos_last_check_timestamp_seconds{sa} 1764000000\n"),
            format!("kindling_fcos_last_success_timestamp_seconds{sa} 0\n"),
            format!("kindling_fcos_check_failures_total{ta} 0\n"),
            format!("kindling_fcos_last_success_timestamp_seconds{ta} 1764000100\n"),
            "kindling_fcos_release_info{stream=\"testing\",arch=\"aarch64\",release=\"43.20251101.2.0\"} 1\n".into(),
            "kindling_fcos_upstream_release_info{stream=\"testing\",arch=\"aarch64\",release=\"43.20251115.2.0\"} 1\n".into(),
            "# TYPE kindling_fcos_check_failures_total counter\n".into(),
            "# TYPE kindling_fcos_release_info gauge\n".into(),
            "# HELP kindling_fcos_last_check_timestamp_seconds ".into(),
        ] {
            assert!(t.contains(&line), "{line} missing in\n{t}");
        }
        // No release series for a stream that has none; the error is not a label.
        assert!(
            !t.contains("kindling_fcos_release_info{stream=\"stable\""),
            "{t}"
        );
        assert!(!t.contains("Connection refused"), "{t}");
    }

    #[test]
    fn label_values_are_escaped() {
        let t = text(&[FcosTrack {
            stream: "a\"b\\c\nd".into(),
            arch: "x86_64".into(),
            upstream: Some("4\"2".into()),
            consecutive_failures: 1,
            ..Default::default()
        }]);
        assert!(
            t.contains(
                "kindling_fcos_consecutive_failures{stream=\"a\\\"b\\\\c\\nd\",arch=\"x86_64\"} 1\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("kindling_fcos_upstream_release_info{stream=\"a\\\"b\\\\c\\nd\",arch=\"x86_64\",release=\"4\\\"2\"} 1\n"),
            "{t}"
        );
    }
}
