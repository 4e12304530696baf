//! The checker the sections share: the issues found so far, the spec minor, and the checks
//! of fields that recur across sections (paths, URLs, resources, modes, owners, duplicates).

use crate::report::Severity;
use serde_json::Value;
use std::collections::HashSet;

/// A semantic issue at a JSON path (dotted, e.g. `storage.files.1.path`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// Severity.
    pub severity: Severity,
    /// Ignition's message.
    pub message: String,
    /// JSON path.
    pub path: String,
}

/// The state of one validation.
pub(super) struct V {
    pub(super) minor: u8,
    pub(super) issues: Vec<Issue>,
}

/// Joins a dotted JSON path and a key or index; an empty base is the root.
pub(super) fn j(a: &str, b: impl std::fmt::Display) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}.{b}")
    }
}

/// The array at a JSON pointer, or none.
pub(super) fn arr<'a>(v: &'a Value, p: &str) -> &'a [Value] {
    v.pointer(p)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The string field `k`, if it is one.
pub(super) fn st<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// Ignition's message for a repeated key.
const DUP: &str = "duplicate entry defined";

impl V {
    pub(super) fn err(&mut self, path: String, msg: impl Into<String>) {
        self.issues.push(Issue {
            severity: Severity::Error,
            message: msg.into(),
            path,
        });
    }
    pub(super) fn warn(&mut self, path: String, msg: impl Into<String>) {
        self.issues.push(Issue {
            severity: Severity::Warning,
            message: msg.into(),
            path,
        });
    }

    pub(super) fn path(&mut self, p: Option<&str>, at: String) {
        let p = p.unwrap_or("");
        if p.is_empty() {
            self.err(at, "path not specified");
        } else if !p.starts_with('/') {
            self.err(at, "path not absolute");
        } else if clean(p) != p {
            self.err(at, "path is not fully simplified");
        }
    }

    pub(super) fn url(&mut self, s: &str, at: String) {
        let Ok(u) = url::Url::parse(s) else {
            self.err(at, "unable to parse url");
            return;
        };
        let ok = match u.scheme() {
            "http" | "https" | "tftp" | "s3" => true,
            "data" => {
                if let Err(e) = crate::dataurl::decode(s) {
                    self.err(at, e);
                    return;
                }
                true
            }
            "gs" => self.minor >= 1,
            "arn" => self.minor >= 4,
            _ => false,
        };
        if !ok {
            self.err(at, "invalid url scheme");
        }
    }

    pub(super) fn resource(&mut self, r: &Value, at: &str, required: bool) {
        let source = r.get("source").and_then(Value::as_str);
        match source {
            Some(s) if !s.is_empty() => self.url(s, j(at, "source")),
            _ if required => self.err(j(at, "source"), "source is required"),
            _ => {}
        }
        if let Some(c) = st(r, "compression")
            && !matches!(c, "" | "gzip")
        {
            self.err(j(at, "compression"), "invalid compression method");
        }
        if let Some(h) = r.pointer("/verification/hash").and_then(Value::as_str) {
            let hp = j(at, "verification.hash");
            if self.minor >= 1 && r.get("source").is_none_or(Value::is_null) {
                self.err(
                    hp.clone(),
                    "source must be specified if verification is specified",
                );
            }
            match h.split_once('-') {
                None => self.err(hp, "malformed hash specifier"),
                Some((f, sum)) => {
                    let len = match f {
                        "sha512" => 128,
                        "sha256" if self.minor >= 1 => 64,
                        _ => 0,
                    };
                    if len == 0 {
                        self.err(hp, "unrecognized hash function");
                    } else if sum.len() != len {
                        self.err(hp, "incorrect size for hash sum");
                    }
                }
            }
        }
        let headers = arr(r, "/httpHeaders");
        if !headers.is_empty() {
            let mut seen = HashSet::new();
            for (i, h) in headers.iter().enumerate() {
                let name = st(h, "name").unwrap_or("");
                if name.is_empty() {
                    self.err(
                        j(at, format!("httpHeaders.{i}.name")),
                        "HTTP header name can't be empty",
                    );
                }
                if !seen.insert(name.to_string()) {
                    self.err(j(at, format!("httpHeaders.{i}")), DUP);
                }
            }
            let scheme_ok = source
                .and_then(|s| url::Url::parse(s).ok())
                .is_some_and(|u| matches!(u.scheme(), "http" | "https"));
            if !scheme_ok {
                self.err(
                    j(at, "httpHeaders"),
                    "cannot use HTTP headers with this source scheme",
                );
            }
        }
    }

    pub(super) fn mode(&mut self, v: &Value, at: String) {
        if let Some(m) = v.get("mode").and_then(Value::as_i64) {
            if !(0..=0o7777).contains(&m) {
                self.err(at, "illegal file mode");
            } else if m & 0o7000 != 0 && self.minor < 6 {
                self.warn(
                    at,
                    "setuid/setgid/sticky bits are not supported or functional in spec versions older than 3.6.0",
                );
            }
        }
    }

    pub(super) fn owner(&mut self, v: &Value, at: &str) {
        for k in ["user", "group"] {
            if let Some(o) = v.get(k)
                && o.get("id").is_some_and(|x| !x.is_null())
                && st(o, "name").is_some_and(|n| !n.is_empty())
            {
                self.err(j(at, k), "cannot set both id and name");
            }
        }
    }

    pub(super) fn dups<'a>(
        &mut self,
        items: impl Iterator<Item = (String, Option<&'a str>)>,
        seen: &mut HashSet<String>,
    ) {
        for (at, key) in items {
            let key = key.unwrap_or("").to_string();
            if !seen.insert(key) {
                self.err(at, DUP);
            }
        }
    }

    pub(super) fn str_list_dups(&mut self, v: &Value, ptr: &str, at: &str) {
        let mut seen = HashSet::new();
        for (i, s) in arr(v, ptr).iter().enumerate() {
            if let Some(s) = s.as_str()
                && !seen.insert(s.to_string())
            {
                self.err(j(at, i), DUP);
            }
        }
    }
}

/// Lexically simplifies an absolute path (Go's `path.Clean` for absolute paths).
pub(super) fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for s in p.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}
