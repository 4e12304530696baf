//! Ignition config validation (spec 3.0.0 - 3.5.0): a structural parse with the
//! `ignition-config` crate plus the semantic checks Ignition's Go `validate` code makes
//! (`config/v3_*/types/*.go`, `config/validate`).

use crate::json::Locator;
use crate::report::{Report, Severity};
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

struct V {
    minor: u8,
    issues: Vec<Issue>,
}

fn j(a: &str, b: impl std::fmt::Display) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}.{b}")
    }
}

fn arr<'a>(v: &'a Value, p: &str) -> &'a [Value] {
    v.pointer(p)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn st<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

const DUP: &str = "duplicate entry defined";

impl V {
    fn err(&mut self, path: String, msg: impl Into<String>) {
        self.issues.push(Issue {
            severity: Severity::Error,
            message: msg.into(),
            path,
        });
    }
    fn warn(&mut self, path: String, msg: impl Into<String>) {
        self.issues.push(Issue {
            severity: Severity::Warning,
            message: msg.into(),
            path,
        });
    }

    fn path(&mut self, p: Option<&str>, at: String) {
        let p = p.unwrap_or("");
        if p.is_empty() {
            self.err(at, "path not specified");
        } else if !p.starts_with('/') {
            self.err(at, "path not absolute");
        } else if clean(p) != p {
            self.err(at, "path is not fully simplified");
        }
    }

    fn url(&mut self, s: &str, at: String) {
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

    fn resource(&mut self, r: &Value, at: &str, required: bool) {
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

    fn mode(&mut self, v: &Value, at: String) {
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

    fn owner(&mut self, v: &Value, at: &str) {
        for k in ["user", "group"] {
            if let Some(o) = v.get(k)
                && o.get("id").is_some_and(|x| !x.is_null())
                && st(o, "name").is_some_and(|n| !n.is_empty())
            {
                self.err(j(at, k), "cannot set both id and name");
            }
        }
    }

    fn dups<'a>(
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

    fn str_list_dups(&mut self, v: &Value, ptr: &str, at: &str) {
        let mut seen = HashSet::new();
        for (i, s) in arr(v, ptr).iter().enumerate() {
            if let Some(s) = s.as_str()
                && !seen.insert(s.to_string())
            {
                self.err(j(at, i), DUP);
            }
        }
    }

    fn run(&mut self, c: &Value) {
        // ignition
        for (i, r) in arr(c, "/ignition/config/merge").iter().enumerate() {
            self.resource(r, &format!("ignition.config.merge.{i}"), true);
        }
        if let Some(r) = c.pointer("/ignition/config/replace") {
            self.resource(r, "ignition.config.replace", false);
        }
        for (i, r) in arr(c, "/ignition/security/tls/certificateAuthorities")
            .iter()
            .enumerate()
        {
            self.resource(
                r,
                &format!("ignition.security.tls.certificateAuthorities.{i}"),
                true,
            );
        }
        for k in ["httpProxy", "httpsProxy"] {
            if let Some(p) = c
                .pointer(&format!("/ignition/proxy/{k}"))
                .and_then(Value::as_str)
                && !p.is_empty()
            {
                let ok = url::Url::parse(p).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
                if !ok {
                    self.err(format!("ignition.proxy.{k}"), "proxies must be http(s)");
                }
            }
        }
        // kernel arguments
        let mut seen = HashSet::new();
        for k in ["shouldExist", "shouldNotExist"] {
            let items: Vec<(String, Option<&str>)> = arr(c, &format!("/kernelArguments/{k}"))
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("kernelArguments.{k}.{i}"), a.as_str()))
                .collect();
            self.dups(items.into_iter(), &mut seen);
        }
        // passwd
        for k in ["users", "groups"] {
            let mut seen = HashSet::new();
            for (i, u) in arr(c, &format!("/passwd/{k}")).iter().enumerate() {
                let at = format!("passwd.{k}.{i}");
                let name = st(u, "name");
                if name.unwrap_or("").is_empty() {
                    // Ignition itself does not check this; useradd/groupadd fail at boot.
                    self.err(j(&at, "name"), "field \"name\" is required");
                }
                self.dups(std::iter::once((at.clone(), name)), &mut seen);
                if k == "users" {
                    self.str_list_dups(u, "/sshAuthorizedKeys", &j(&at, "sshAuthorizedKeys"));
                    self.str_list_dups(u, "/groups", &j(&at, "groups"));
                }
            }
        }
        // storage nodes
        let mut node_seen = HashSet::new();
        // Same order as Ignition's ValidateDups walks Storage's fields.
        for (i, d) in arr(c, "/storage/directories").iter().enumerate() {
            let at = format!("storage.directories.{i}");
            self.path(st(d, "path"), j(&at, "path"));
            self.mode(d, j(&at, "mode"));
            self.owner(d, &at);
            self.dups(std::iter::once((at, st(d, "path"))), &mut node_seen);
        }
        for (i, f) in arr(c, "/storage/files").iter().enumerate() {
            let at = format!("storage.files.{i}");
            self.path(st(f, "path"), j(&at, "path"));
            self.mode(f, j(&at, "mode"));
            self.owner(f, &at);
            if let Some(r) = f.get("contents") {
                self.resource(r, &j(&at, "contents"), false);
            }
            for (k, r) in arr(f, "/append").iter().enumerate() {
                self.resource(r, &j(&at, format!("append.{k}")), true);
            }
            if f.get("overwrite").and_then(Value::as_bool) == Some(true)
                && f.pointer("/contents/source").is_none_or(Value::is_null)
            {
                self.err(
                    j(&at, "overwrite"),
                    "overwrite must be false if source is unspecified",
                );
            }
            self.dups(std::iter::once((at, st(f, "path"))), &mut node_seen);
        }
        for (i, l) in arr(c, "/storage/links").iter().enumerate() {
            let at = format!("storage.links.{i}");
            self.path(st(l, "path"), j(&at, "path"));
            self.owner(l, &at);
            if self.minor >= 3 && st(l, "target").unwrap_or("").is_empty() {
                self.err(j(&at, "target"), "link target is required");
            }
            self.dups(std::iter::once((at, st(l, "path"))), &mut node_seen);
        }
        let links: Vec<&str> = arr(c, "/storage/links")
            .iter()
            .filter_map(|l| st(l, "path"))
            .collect();
        let dirs: Vec<&str> = arr(c, "/storage/directories")
            .iter()
            .filter_map(|d| st(d, "path"))
            .collect();
        for (k, msg) in [
            ("directories", "directory path includes link in config"),
            ("files", "file path includes link in config"),
            ("links", "link path includes link in config"),
        ] {
            for (i, n) in arr(c, &format!("/storage/{k}")).iter().enumerate() {
                let p = st(n, "path").unwrap_or("");
                if links.iter().any(|l| p.starts_with(&format!("{l}/"))) {
                    self.err(format!("storage.{k}.{i}"), msg);
                }
            }
        }
        for (i, l) in arr(c, "/storage/links").iter().enumerate() {
            let Some(target) = st(l, "target").filter(|t| !t.is_empty()) else {
                continue;
            };
            if l.get("hard").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            let lp = st(l, "path").unwrap_or("");
            let t = if target.starts_with('/') {
                clean(target)
            } else {
                clean(&format!("{lp}/{target}"))
            };
            if dirs.contains(&t.as_str()) {
                self.err(
                    format!("storage.links.{i}"),
                    "hard link target is a directory",
                );
            }
            for (o, f) in [
                ("user", "id"),
                ("user", "name"),
                ("group", "id"),
                ("group", "name"),
            ] {
                if l.get(o)
                    .and_then(|x| x.get(f))
                    .is_some_and(|v| !v.is_null())
                    && self.minor >= 3
                {
                    self.warn(
                        format!("storage.links.{i}.{o}.{f}"),
                        "user/group ignored for hard link",
                    );
                }
            }
        }
        // disks / partitions
        let mut seen = HashSet::new();
        for (i, d) in arr(c, "/storage/disks").iter().enumerate() {
            let at = format!("storage.disks.{i}");
            if st(d, "device").unwrap_or("").is_empty() {
                self.err(j(&at, "device"), "disk device is required");
            }
            self.dups(std::iter::once((at.clone(), st(d, "device"))), &mut seen);
            let mut labels = HashSet::new();
            let mut numbers = HashSet::new();
            for (p, part) in arr(d, "/partitions").iter().enumerate() {
                let pat = j(&at, format!("partitions.{p}"));
                if let Some(l) = st(part, "label") {
                    if l.chars().count() > 36 {
                        self.err(
                            j(&pat, "label"),
                            "partition labels may not exceed 36 characters",
                        );
                    }
                    if !labels.insert(l.to_string()) {
                        self.err(
                            j(&pat, "label"),
                            "cannot use the same partition label twice",
                        );
                    }
                }
                if let Some(n) = part.get("number").and_then(Value::as_i64)
                    && n != 0
                    && !numbers.insert(n)
                {
                    self.err(j(&pat, "number"), "partition numbers collide");
                }
                for k in ["guid", "typeGuid"] {
                    if let Some(g) = st(part, k)
                        && !g.is_empty()
                        && !is_guid(g)
                    {
                        self.err(
                            j(&pat, k),
                            "doesn't match the form \"01234567-89AB-CDEF-EDCB-A98765432101\"",
                        );
                    }
                }
            }
        }
        let mut seen = HashSet::new();
        for (i, fs) in arr(c, "/storage/filesystems").iter().enumerate() {
            let at = format!("storage.filesystems.{i}");
            let device = st(fs, "device").unwrap_or("");
            self.path(Some(device), j(&at, "device"));
            if let Some(p) = st(fs, "path")
                && !p.is_empty()
            {
                self.path(Some(p), j(&at, "path"));
            }
            let nonempty = |k: &str| st(fs, k).is_some_and(|v| !v.is_empty());
            let label = st(fs, "label").unwrap_or("");
            match st(fs, "format") {
                Some("") | None => {
                    let others = nonempty("path")
                        || nonempty("label")
                        || nonempty("uuid")
                        || fs.get("wipeFilesystem").and_then(Value::as_bool) == Some(true)
                        || !arr(fs, "/mountOptions").is_empty()
                        || !arr(fs, "/options").is_empty();
                    if others {
                        self.err(
                            j(&at, "format"),
                            "format cannot be empty when path, label, uuid, wipeFilesystem, options, or mountOptions is specified",
                        );
                    }
                    if !label.is_empty() {
                        self.err(
                            j(&at, "label"),
                            "filesystem must specify format if label is specified",
                        );
                    }
                }
                Some(f @ ("ext4" | "btrfs" | "xfs" | "vfat" | "swap")) => {
                    let (max, msg) = match f {
                        "ext4" => (
                            16,
                            "filesystem labels cannot be longer than 16 characters when using ext4",
                        ),
                        "btrfs" => (
                            256,
                            "filesystem labels cannot be longer than 256 characters when using btrfs",
                        ),
                        "xfs" => (
                            12,
                            "filesystem labels cannot be longer than 12 characters when using xfs",
                        ),
                        "swap" => (
                            15,
                            "filesystem labels cannot be longer than 15 characters when using swap",
                        ),
                        _ => (
                            11,
                            "filesystem labels cannot be longer than 11 characters when using vfat",
                        ),
                    };
                    if label.len() > max {
                        self.err(j(&at, "label"), msg);
                    }
                }
                Some("none") if self.minor >= 2 => {}
                Some(_) => self.err(j(&at, "format"), "invalid filesystem format"),
            }
            if let Some(disk) = arr(c, "/storage/disks")
                .iter()
                .find(|d| st(d, "device") == Some(device))
            {
                if !arr(disk, "/partitions").is_empty() {
                    self.warn(j(&at, "device"), "filesystem overwrites partitioned device");
                } else if fs.get("wipeFilesystem").and_then(Value::as_bool) != Some(true)
                    && disk.get("wipeTable").and_then(Value::as_bool) == Some(true)
                {
                    self.warn(
                        j(&at, "device"),
                        "device matches disk with wipeTable enabled; filesystem will be wiped",
                    );
                }
            }
            self.dups(std::iter::once((at, st(fs, "device"))), &mut seen);
        }
        let mut seen = HashSet::new();
        for (i, l) in arr(c, "/storage/luks").iter().enumerate() {
            let at = format!("storage.luks.{i}");
            let name = st(l, "name");
            if name.is_some_and(|n| n.contains('/')) {
                self.err(j(&at, "name"), "device names cannot contain slashes");
            }
            if st(l, "label").is_some_and(|n| n.chars().count() > 47) {
                self.err(
                    j(&at, "label"),
                    "luks device labels cannot be longer than 47 characters",
                );
            }
            if let Some(k) = l.get("keyFile") {
                self.resource(k, &j(&at, "keyFile"), false);
            }
            for (t, tang) in arr(l, "/clevis/tang").iter().enumerate() {
                let tat = j(&at, format!("clevis.tang.{t}"));
                match st(tang, "url") {
                    Some(u) if !u.is_empty() => {
                        if !url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
                        {
                            self.err(j(&tat, "url"), "invalid url scheme");
                        }
                    }
                    _ => self.err(j(&tat, "url"), "unable to parse url"),
                }
                if self.minor >= 3 && st(tang, "thumbprint").unwrap_or("").is_empty() {
                    self.err(j(&tat, "thumbprint"), "thumbprint is required");
                }
            }
            self.dups(std::iter::once((at, name)), &mut seen);
        }
        let mut seen = HashSet::new();
        for (i, r) in arr(c, "/storage/raid").iter().enumerate() {
            let at = format!("storage.raid.{i}");
            match st(r, "level") {
                None | Some("") => self.err(j(&at, "level"), "raid level is required"),
                Some("linear" | "raid0" | "raid1" | "raid4" | "raid5" | "raid6" | "raid10") => {}
                Some(_) => self.err(j(&at, "level"), "unrecognized raid level"),
            }
            if arr(r, "/devices").is_empty() {
                self.err(j(&at, "devices"), "raid devices required");
            }
            self.dups(std::iter::once((at, st(r, "name"))), &mut seen);
        }
        // systemd
        let mut seen = HashSet::new();
        let mut unit_paths = HashSet::new();
        for (i, u) in arr(c, "/systemd/units").iter().enumerate() {
            let at = format!("systemd.units.{i}");
            let name = st(u, "name").unwrap_or("");
            if !valid_unit_ext(name) {
                self.err(j(&at, "name"), "invalid systemd unit extension");
            }
            let contents = st(u, "contents").unwrap_or("");
            if !contents.is_empty() {
                unit_paths.insert(format!("/etc/systemd/system/{name}"));
                if let Err(e) = parse_unit(contents) {
                    self.err(j(&at, "contents"), e);
                } else if u.get("enabled").and_then(Value::as_bool) == Some(true)
                    && !has_install(contents)
                {
                    self.warn(
                        j(&at, "contents"),
                        format!("unit {name:?} is enabled, but has no install section so enable does nothing"),
                    );
                }
            }
            self.dups(std::iter::once((at.clone(), Some(name))), &mut seen);
            let mut dseen = HashSet::new();
            for (d, dropin) in arr(u, "/dropins").iter().enumerate() {
                let dat = j(&at, format!("dropins.{d}"));
                let dname = st(dropin, "name").unwrap_or("");
                if !dname.ends_with(".conf") {
                    self.err(j(&dat, "name"), "invalid systemd drop-in extension");
                }
                let dc = st(dropin, "contents").unwrap_or("");
                if !dc.is_empty() {
                    unit_paths.insert(format!("/etc/systemd/system/{name}.d/{dname}"));
                    if let Err(e) = parse_unit(dc) {
                        self.err(j(&dat, "contents"), e);
                    }
                }
                self.dups(std::iter::once((dat, Some(dname))), &mut dseen);
            }
        }
        if self.minor >= 1 {
            for k in ["files", "directories", "links"] {
                for (i, n) in arr(c, &format!("/storage/{k}")).iter().enumerate() {
                    if st(n, "path").is_some_and(|p| unit_paths.contains(p)) {
                        self.err(
                            format!("storage.{k}.{i}.path"),
                            "path conflicts with systemd unit or dropin",
                        );
                    }
                }
            }
        }
    }
}

fn valid_unit_ext(name: &str) -> bool {
    let ext = match name.rfind('.') {
        Some(i) if i > 0 || name.len() > 1 => &name[i..],
        _ => "",
    };
    matches!(
        ext,
        ".service"
            | ".socket"
            | ".device"
            | ".mount"
            | ".automount"
            | ".swap"
            | ".target"
            | ".path"
            | ".timer"
            | ".snapshot"
            | ".slice"
            | ".scope"
    )
}

fn is_guid(g: &str) -> bool {
    let b = g.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

fn clean(p: &str) -> String {
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

/// A systemd unit-file syntax check following go-systemd's `unit.DeserializeOptions` (which
/// Ignition uses), with its error messages.
fn parse_unit(contents: &str) -> Result<(), String> {
    let wrap = |m: &str| Err(format!("invalid unit content: {m}"));
    if contents.split('\n').any(|l| l.len() >= 2048) {
        return wrap("line too long (max 2048 bytes)");
    }
    let mut rest = contents;
    let mut in_section = false;
    loop {
        let trimmed = rest.trim_start();
        let Some(c) = trimmed.chars().next() else {
            return Ok(());
        };
        if c == '#' || c == ';' {
            rest = trimmed.split_once('\n').map(|x| x.1).unwrap_or("");
            continue;
        }
        if c == '[' {
            let Some(end) = trimmed.find(']') else {
                return wrap("unable to find end of section");
            };
            let after = &trimmed[end + 1..];
            let (line_rest, next) = after.split_once('\n').unwrap_or((after, ""));
            if !line_rest.trim().is_empty() {
                // go-systemd prints the section name before it is recorded, i.e. empty.
                return wrap(&format!(
                    "found garbage after section name : {:?}",
                    line_rest.trim()
                ));
            }
            in_section = true;
            rest = next;
            continue;
        }
        if !in_section {
            // Before the first section go-systemd skips anything that is not a '['.
            rest = &trimmed[c.len_utf8()..];
            continue;
        }
        // Option: a name up to '=' on the same line, then a value with '\' continuations.
        let line_end = trimmed.find('\n').unwrap_or(trimmed.len());
        let line = &trimmed[..line_end];
        if !line.contains('=') {
            if line_end == trimmed.len() {
                return wrap("unexpected EOF encountered while parsing option name");
            }
            return wrap("unexpected newline encountered while parsing option name");
        }
        let mut r = trimmed;
        loop {
            let (l, next) = r.split_once('\n').unwrap_or((r, ""));
            r = next;
            if !l.trim_end_matches('\r').ends_with('\\') || r.is_empty() {
                break;
            }
        }
        rest = r;
    }
}

fn has_install(contents: &str) -> bool {
    contents.lines().any(|l| {
        l.trim_start()
            .strip_prefix("[Install]")
            .is_some_and(|r| r.trim().is_empty())
    })
}

/// Semantic validation of an Ignition config value of spec 3.`minor`.0.
pub fn validate_value(config: &Value, minor: u8) -> Vec<Issue> {
    let mut v = V {
        minor,
        issues: Vec::new(),
    };
    v.run(config);
    v.issues
}

/// Validates a raw Ignition document (spec 3.0.0 - 3.5.0). Unknown keys are warnings (as in
/// Ignition); everything else that Ignition would refuse is an error.
pub fn validate_ignition(bytes: &[u8]) -> Report {
    let mut report = Report::default();
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            let msg = if bytes.iter().all(u8::is_ascii_whitespace) {
                "not a config (empty)".to_string()
            } else {
                format!("config is not valid JSON: {e}")
            };
            let pos = (e.line() > 0).then_some((e.line(), e.column()));
            report.push(Severity::Error, msg, "", pos);
            return report;
        }
    };
    let text = String::from_utf8_lossy(bytes);
    let loc = Locator::new(&text);
    let version = value.pointer("/ignition/version").and_then(Value::as_str);
    let Some(version) = version else {
        report.push(
            Severity::Error,
            "invalid config version (couldn't parse)",
            "ignition.version",
            loc.find("ignition.version"),
        );
        return report;
    };
    let minor = match version {
        "3.0.0" => 0,
        "3.1.0" => 1,
        "3.2.0" => 2,
        "3.3.0" => 3,
        "3.4.0" => 4,
        "3.5.0" => 5,
        v if v.starts_with("2.") || v.starts_with("1.") => {
            report.push(
                Severity::Error,
                format!(
                    "unsupported config version {v}: spec 2.x is not supported; translate it to 3.x"
                ),
                "ignition.version",
                loc.find("ignition.version"),
            );
            return report;
        }
        v => {
            report.push(
                Severity::Error,
                format!("unsupported config version {v}"),
                "ignition.version",
                loc.find("ignition.version"),
            );
            return report;
        }
    };
    match ignition_config::Config::parse_slice(bytes) {
        Ok((_, warnings)) => {
            for w in warnings {
                let ignition_config::Warning::UnusedKey(p) = &w else {
                    continue;
                };
                let p = p
                    .trim_start_matches('$')
                    .trim_start_matches('.')
                    .to_string();
                let key = p.rsplit('.').next().unwrap_or("").to_string();
                report.push(
                    Severity::Warning,
                    format!("unused key {key}"),
                    p.clone(),
                    loc.key(&p).or_else(|| loc.find(&p)),
                );
            }
        }
        Err(e) => {
            let (msg, pos) = match &e {
                ignition_config::Error::Serialization(se) => (
                    format!("config does not match the spec {version} structure: {se}"),
                    (se.line() > 0).then_some((se.line(), se.column())),
                ),
                other => (other.to_string(), None),
            };
            report.push(Severity::Error, msg, "", pos);
            return report;
        }
    }
    for issue in validate_value(&value, minor) {
        let pos = loc.find(&issue.path);
        report.push(issue.severity, issue.message, issue.path, pos);
    }
    report
}
