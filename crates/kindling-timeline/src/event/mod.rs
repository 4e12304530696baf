//! The event record: one line of the journal, one entry of a boot timeline.
//!
//! * `kinds`: [`Stage`], [`Source`], [`Kind`].
//! * `name`: [`Name`], a shared recurring text.
//! * `record`: [`Event`] and its [`Detail`]s, [`Reason`], sameness.
//! * `doc`: the journal's and the API's JSON of an event, the `what` line.
//!
//! Here: times and sizes in text.

mod doc;
mod kinds;
mod name;
mod record;

pub use doc::What;
pub use kinds::{Kind, Source, Stage};
pub use name::{Chosen, Name};
pub use record::{Detail, Dhcp, DhcpStep, Endpoint, Event, Http, Message, Reason, Str, Tftp};

/// `2026-11-25T19:40:01.123Z` (UTC).
pub fn format_ts(ms: u64) -> String {
    let secs = ms / 1000;
    let frac = ms % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// `19:40:01.123` (UTC time of day).
pub fn format_time(ms: u64) -> String {
    let s = format_ts(ms);
    s.get(11..23).unwrap_or("").to_string()
}

/// The proleptic Gregorian date (year, month 1-12, day 1-31) of day `z` counted from
/// 1970-01-01 (negative before it), by Howard Hinnant's days-to-civil algorithm: 400-year
/// eras of 146,097 days, each year counted from 1 March so that the leap day ends it.
/// Also the text log's timestamps (`kindling`'s `log_format`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `1.5 MiB`, `532 B`.
pub fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Day after day for 1,600 years around the epoch, each date is the one after the day
    /// before's, with February's length by the Gregorian rule.
    #[test]
    fn calendar_days_follow_each_other() {
        let leap = |y: i64| y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let len = |y: i64, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let start = -800 * 366;
        let mut prev = civil_from_days(start);
        for day in start + 1..800 * 366 {
            let (y, m, d) = prev;
            let next = if d < len(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            let got = civil_from_days(day);
            assert_eq!(got, next, "day {day}");
            prev = got;
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_ts(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ts(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_ts(1_795_635_601_500), "2026-11-25T19:40:01.500Z");
        assert_eq!(format_time(1_795_635_601_500), "19:40:01.500");
    }

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(532), "532 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
