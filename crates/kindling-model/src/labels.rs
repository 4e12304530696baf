//! Request labels, derived from a URL query string exactly as matchbox does
//! (Go's `url.ParseQuery` followed by matchbox's `labelsFromRequest`).

use std::collections::BTreeMap;

use crate::mac::Mac;

/// Labels of one request: key (original case) -> first value.
pub type Labels = BTreeMap<String, String>;

/// Something dropped while deriving labels, worth a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelWarning {
    /// A `mac` label that does not parse; it is dropped as matchbox drops it.
    UnparseableMac { key: String, value: String },
    /// A query pair Go's parser rejects (`;` in it, or a bad `%` escape).
    BadPair(String),
}

/// Decodes one query component like Go's `url.QueryUnescape`
/// (`+` is a space, `%XX` must be two hex digits).
pub fn query_unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = b.get(i + 1).and_then(|c| (*c as char).to_digit(16))?;
                let lo = b.get(i + 2).and_then(|c| (*c as char).to_digit(16))?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

/// Parses a raw query into key -> all values, in Go's `url.ParseQuery` manner.
pub fn parse_query(raw: &str, warnings: &mut Vec<LabelWarning>) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for part in raw.split('&') {
        if part.is_empty() {
            continue;
        }
        if part.contains(';') {
            warnings.push(LabelWarning::BadPair(part.to_string()));
            continue;
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match (query_unescape(k), query_unescape(v)) {
            (Some(k), Some(v)) => pairs.push((k, v)),
            _ => warnings.push(LabelWarning::BadPair(part.to_string())),
        }
    }
    pairs
}

/// Labels from a raw query string: the first value of each key, key case
/// kept; keys equal to `mac` ignoring case have their value normalised, or are
/// dropped when the value is not a MAC address.
pub fn labels_from_query(raw: &str) -> (Labels, Vec<LabelWarning>) {
    let mut warnings = Vec::new();
    let pairs = parse_query(raw, &mut warnings);
    let labels = first_values(pairs, &mut warnings);
    (labels, warnings)
}

/// Keeps the first value of each key; normalises (or drops) `mac` values.
fn first_values(pairs: Vec<(String, String)>, warnings: &mut Vec<LabelWarning>) -> Labels {
    let mut labels = Labels::new();
    // A key seen is in the labels, or among the `mac` keys dropped for their value.
    let mut dropped: Vec<String> = Vec::new();
    for (k, v) in pairs {
        if labels.contains_key(&k) || dropped.contains(&k) {
            continue;
        }
        if k.eq_ignore_ascii_case("mac") {
            match Mac::parse(&v) {
                Ok(m) => {
                    labels.insert(k, m.join(':'));
                }
                Err(_) => {
                    dropped.push(k.clone());
                    warnings.push(LabelWarning::UnparseableMac { key: k, value: v });
                }
            }
        } else {
            labels.insert(k, v);
        }
    }
    labels
}

/// Labels from `KEY=VALUE` command-line arguments (for `kindling select`),
/// with the same normalisation as a query.
pub fn labels_from_args<I: IntoIterator<Item = S>, S: AsRef<str>>(
    args: I,
) -> (Labels, Vec<LabelWarning>) {
    let pairs = args
        .into_iter()
        .map(|a| {
            let a = a.as_ref();
            let (k, v) = a.split_once('=').unwrap_or((a, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let mut warnings = Vec::new();
    let labels = first_values(pairs, &mut warnings);
    (labels, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(raw: &str) -> Labels {
        labels_from_query(raw).0
    }

    #[test]
    fn first_value_wins_and_case_kept() {
        let got = l("foo=bar&foo=baz&Foo=x");
        assert_eq!(got.get("foo").map(String::as_str), Some("bar"));
        assert_eq!(got.get("Foo").map(String::as_str), Some("x"));
    }

    #[test]
    fn mac_normalised_any_case_key() {
        let got = l("mac=52-54-00-AA-BB-CC&MAC=5254.00aa.bbcd");
        assert_eq!(got["mac"], "52:54:00:aa:bb:cc");
        assert_eq!(got["MAC"], "52:54:00:aa:bb:cd");
    }

    #[test]
    fn bad_mac_dropped_even_if_later_value_valid() {
        let (got, warns) = labels_from_query("mac=nope&mac=52:54:00:aa:bb:cc&os=x");
        assert!(!got.contains_key("mac"));
        assert_eq!(got["os"], "x");
        assert_eq!(warns.len(), 1);
    }

    #[test]
    fn go_query_quirks() {
        let got = l("a=1;b=2&c=%zz&d=%41+b&e&=v");
        assert!(!got.contains_key("a"));
        assert!(!got.contains_key("c"));
        assert_eq!(got["d"], "A b");
        assert_eq!(got["e"], "");
        assert_eq!(got[""], "v");
    }

    #[test]
    fn empty_ipxe_vars_are_empty_labels() {
        let got = l("uuid=&mac=52-54-00-12-34-56&domain=&hostname=&serial=&arch=x86_64");
        assert_eq!(got["domain"], "");
        assert_eq!(got["arch"], "x86_64");
        assert_eq!(got.len(), 6);
    }
}
