//! Butane (`fcos` 1.0.0 - 1.6.0) to Ignition translation.

use crate::dataurl;
use crate::merge::merge;
use crate::report::{Report, Severity};
use crate::schema::{self, Emit, Obj, Ty};
use crate::validate;
use crate::yaml::{self, Kind, Node, Pos};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// Options of [`translate`](crate::translate).
#[derive(Clone, Debug, Default)]
pub struct TranslateOptions {
    /// Directory that `local` / `contents_local` / `ssh_authorized_keys_local` / `trees` are
    /// relative to (`-d/--files-dir`). Without it, those fields are errors, as in Butane.
    pub files_dir: Option<PathBuf>,
    /// Treat warnings as errors (`-s/--strict`).
    pub strict: bool,
    /// Never gzip inline/local contents (Butane's `NoResourceAutoCompression`).
    pub no_resource_auto_compression: bool,
}

/// A successful translation.
#[derive(Clone, Debug)]
pub struct Translation {
    /// Compact JSON, byte-compatible with Butane's output (Go escaping, Go key order).
    pub json: String,
    /// The same document as a value.
    pub value: Value,
    /// Ignition spec version of the output, e.g. `3.0.0`.
    pub spec_version: String,
    /// Butane variant (`fcos`).
    pub variant: String,
    /// Butane version, e.g. `1.0.0`.
    pub version: String,
    /// Warnings (never errors).
    pub warnings: Report,
}

impl Translation {
    /// Pretty JSON like `butane --pretty` (2-space indent).
    pub fn pretty(&self) -> String {
        crate::json::to_go_json_pretty(&self.value)
    }
}

/// A failed translation: the report holds at least one error (or, with `strict`, a warning).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct TranslateError {
    /// Butane-style summary, e.g. `source config is invalid`.
    pub message: String,
    /// All diagnostics.
    pub report: Report,
}

const ERR_SOURCES: &str = "only one of the following can be set: inline, local, source";
const ERR_SYSTEMD_SOURCES: &str = "only one of the following can be set: contents, contents_local";
const ERR_NO_FILES_DIR: &str =
    "local file paths are relative to a files directory that must be specified with -d/--files-dir";
const ERR_FILES_DIR_ESCAPE: &str = "local file path traverses outside the files directory";
const ERR_DECIMAL_MODE: &str =
    "unreasonable mode would be reasonable if specified in octal; remember to add a leading zero";

/// Ignition spec produced by fcos 1.`minor`.0.
pub fn spec_for_fcos(minor: u8) -> Option<&'static str> {
    Some(match minor {
        0 => "3.0.0",
        1 => "3.1.0",
        2 | 3 => "3.2.0",
        4 => "3.3.0",
        5 => "3.4.0",
        6 => "3.5.0",
        _ => return None,
    })
}

/// Looks up a sugar field's translated value and key position.
type SugarFn<'a> = dyn Fn(&str) -> Option<(Option<Value>, Pos)> + 'a;

struct MountReq {
    ypath: String,
    pos: Pos,
    device: String,
    format: String,
    path: Option<String>,
    mount_options: Vec<String>,
}

struct TreeReq {
    ypath: String,
    pos: Pos,
    local: String,
    path: Option<String>,
}

struct Ctx<'a> {
    /// Flatcar variant: no `boot_device`/`grub` sugar, no Clevis.
    flatcar: bool,
    minor: u8,
    opts: &'a TranslateOptions,
    report: Report,
    /// json path -> (yaml path, position)
    origins: HashMap<String, (String, Pos)>,
    mounts: Vec<MountReq>,
    trees: Vec<TreeReq>,
}

fn join(base: &str, part: &str) -> String {
    if base.is_empty() {
        part.to_string()
    } else {
        format!("{base}.{part}")
    }
}

impl Ctx<'_> {
    fn err(&mut self, msg: impl Into<String>, path: &str, pos: Pos) {
        self.report
            .push(Severity::Error, msg, path.to_string(), Some(pos));
    }
    fn warn(&mut self, msg: impl Into<String>, path: &str, pos: Pos) {
        self.report
            .push(Severity::Warning, msg, path.to_string(), Some(pos));
    }
    fn origin(&mut self, jpath: &str, ypath: &str, pos: Pos) {
        self.origins
            .entry(jpath.to_string())
            .or_insert_with(|| (ypath.to_string(), pos));
    }

    fn type_err(&mut self, node: &Node, want: &str, ypath: &str) {
        let shown = match &node.kind {
            Kind::Scalar { text, .. } => format!("{} `{}`", node.tag_name(), text),
            _ => node.tag_name().to_string(),
        };
        self.err(
            format!("cannot unmarshal {shown} into {want}"),
            ypath,
            node.pos,
        );
    }

    fn walk(&mut self, node: &Node, ty: &Ty, ypath: &str, jpath: &str) -> Option<Value> {
        if node.kind == Kind::Null {
            return None;
        }
        match ty {
            Ty::Str => match &node.kind {
                Kind::Scalar { text, .. } => Some(Value::String(text.clone())),
                _ => {
                    self.type_err(node, "string", ypath);
                    None
                }
            },
            Ty::Int => match &node.kind {
                Kind::Scalar {
                    text,
                    plain: true,
                    tag,
                } if tag.as_deref() != Some("str") => match yaml::parse_int(text) {
                    Some(v) => Some(json!(v)),
                    None => {
                        self.type_err(node, "int", ypath);
                        None
                    }
                },
                _ => {
                    self.type_err(node, "int", ypath);
                    None
                }
            },
            Ty::Bool => match &node.kind {
                Kind::Scalar {
                    text, plain: true, ..
                } => match yaml::parse_bool(text) {
                    Some(b) => Some(Value::Bool(b)),
                    None => {
                        self.type_err(node, "bool", ypath);
                        None
                    }
                },
                _ => {
                    self.type_err(node, "bool", ypath);
                    None
                }
            },
            Ty::StrList => match &node.kind {
                Kind::Seq(items) => {
                    let mut out = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        let yp = join(ypath, &i.to_string());
                        let jp = join(jpath, &i.to_string());
                        self.origin(&jp, &yp, item.pos);
                        match &item.kind {
                            Kind::Scalar { text, .. } => out.push(Value::String(text.clone())),
                            Kind::Null => out.push(Value::String(String::new())),
                            _ => self.type_err(item, "string", &yp),
                        }
                    }
                    Some(Value::Array(out))
                }
                _ => {
                    self.type_err(node, "[]string", ypath);
                    None
                }
            },
            Ty::Obj(obj) => match &node.kind {
                Kind::Map(_) => Some(Value::Object(self.walk_obj(node, obj, ypath, jpath))),
                _ => {
                    self.type_err(node, obj.name, ypath);
                    None
                }
            },
            Ty::List(obj) => match &node.kind {
                Kind::Seq(items) => {
                    let mut out = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        let yp = join(ypath, &i.to_string());
                        let jp = join(jpath, &i.to_string());
                        self.origin(&jp, &yp, item.pos);
                        match &item.kind {
                            Kind::Map(_) | Kind::Null => {
                                out.push(Value::Object(self.walk_obj(item, obj, &yp, &jp)))
                            }
                            _ => self.type_err(item, obj.name, &yp),
                        }
                    }
                    Some(Value::Array(out))
                }
                _ => {
                    self.type_err(node, &format!("[]{}", obj.name), ypath);
                    None
                }
            },
        }
    }

    fn walk_obj(
        &mut self,
        node: &Node,
        obj: &'static Obj,
        ypath: &str,
        jpath: &str,
    ) -> Map<String, Value> {
        let items: &[(yaml::Key, Node)] = match &node.kind {
            Kind::Map(items) => items,
            _ => &[],
        };
        // yaml key -> (value, node, key position)
        let mut vals: HashMap<&'static str, (Option<Value>, Pos)> = HashMap::new();
        for (key, val) in items {
            let yp = join(ypath, &key.text);
            let field = schema::field(obj, &key.text, self.minor).filter(|f| {
                !(self.flatcar && f.json.is_empty() && matches!(f.yaml, "boot_device" | "grub"))
            });
            let Some(field) = field else {
                self.warn(format!("unused key {}", key.text), &yp, key.pos);
                continue;
            };
            let jp = if field.json.is_empty() {
                yp.clone()
            } else {
                join(jpath, field.json)
            };
            if !field.json.is_empty() {
                self.origin(&jp, &yp, key.pos);
            }
            let v = self.walk(val, &field.ty, &yp, &jp);
            vals.insert(field.yaml, (v, key.pos));
        }
        let mut out: HashMap<&'static str, Value> = HashMap::new();
        for field in obj.fields {
            if field.json.is_empty() || field.min > self.minor || field.max < self.minor {
                continue;
            }
            let v = vals.get(field.yaml).and_then(|(v, _)| v.clone());
            let v = match (v, field.emit) {
                (Some(Value::Object(m)), _) if m.is_empty() => None,
                (Some(Value::Array(a)), _) if a.is_empty() => None,
                (Some(v), Emit::Val) if is_zero(&v) => None,
                (Some(v), _) => Some(v),
                (None, Emit::Always) => Some(zero(&field.ty)),
                (None, _) => None,
            };
            if let Some(v) = v {
                out.insert(field.json, v);
            }
        }
        let sugar = |name: &str| -> Option<(Option<Value>, Pos)> { vals.get(name).cloned() };
        match obj.name {
            "Resource" | "FileContents" => self.hook_resource(&mut out, &sugar, ypath, jpath, obj),
            "Unit" | "Dropin" => {
                if let Some((Some(Value::String(local)), pos)) = sugar("contents_local") {
                    let yp = join(ypath, "contents_local");
                    if out.contains_key("contents") {
                        self.err(ERR_SYSTEMD_SOURCES, &yp, pos);
                    } else if let Some(data) = self.read_local(&local, &yp, pos) {
                        out.insert(
                            "contents",
                            Value::String(String::from_utf8_lossy(&data).into_owned()),
                        );
                        self.origin(&join(jpath, "contents"), &yp, pos);
                    }
                }
            }
            "PasswdUser" => {
                if let Some((Some(Value::Array(files)), pos)) = sugar("ssh_authorized_keys_local") {
                    let yp = join(ypath, "ssh_authorized_keys_local");
                    if self.opts.files_dir.is_none() {
                        self.err(ERR_NO_FILES_DIR, &yp, pos);
                    } else {
                        let mut keys = match out.remove("sshAuthorizedKeys") {
                            Some(Value::Array(a)) => a,
                            _ => Vec::new(),
                        };
                        for (i, f) in files.iter().enumerate() {
                            let Some(f) = f.as_str() else { continue };
                            let yp_i = join(&yp, &i.to_string());
                            if let Some(data) = self.read_local(f, &yp_i, pos) {
                                let text = String::from_utf8_lossy(&data).into_owned();
                                for line in text.split('\n') {
                                    let line = line.strip_suffix('\r').unwrap_or(line);
                                    if !line.is_empty() {
                                        let jp = join(
                                            &join(jpath, "sshAuthorizedKeys"),
                                            &keys.len().to_string(),
                                        );
                                        self.origin(&jp, &yp_i, pos);
                                        keys.push(Value::String(line.to_string()));
                                    }
                                }
                            }
                        }
                        if !keys.is_empty() {
                            out.insert("sshAuthorizedKeys", Value::Array(keys));
                        }
                    }
                }
            }
            "File" | "Directory" => {
                if let Some(Value::Number(n)) = out.get("mode")
                    && let Some(m) = n.as_i64()
                    && decimal_mode_suspicious(m, obj.name == "Directory")
                {
                    let pos = vals.get("mode").map(|v| v.1).unwrap_or(node.pos);
                    self.warn(ERR_DECIMAL_MODE, &join(ypath, "mode"), pos);
                }
            }
            "Filesystem" => {
                if let Some((Some(Value::Bool(true)), pos)) = sugar("with_mount_unit") {
                    let format = out
                        .get("format")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let path = out.get("path").and_then(Value::as_str).map(str::to_string);
                    // Missing fields are reported at the filesystem entry, present ones at
                    // their key (like vcontext's marker fallback).
                    let at = |k: &str| vals.get(k).map(|v| v.1).unwrap_or(node.pos);
                    let no_path = path.as_deref().unwrap_or("").is_empty();
                    const NO_FORMAT: &str = "format is required if with_mount_unit is true";
                    const NO_PATH: &str =
                        "path is required if with_mount_unit is true and format is not swap";
                    if self.minor < 4 && (no_path || format.is_empty()) {
                        // base v0_2/v0_3 check both, path first.
                        if no_path {
                            self.err(NO_PATH, &join(ypath, "path"), at("path"));
                        }
                        if format.is_empty() {
                            self.err(NO_FORMAT, &join(ypath, "format"), at("format"));
                        }
                    } else if format.is_empty() {
                        self.err(NO_FORMAT, &join(ypath, "format"), at("format"));
                    } else if format != "swap" && no_path {
                        self.err(NO_PATH, &join(ypath, "path"), at("path"));
                    } else {
                        if self.minor >= 6
                            && let Some(p) = &path
                            && !(p == "/etc"
                                || p == "/var"
                                || p.starts_with("/etc/")
                                || p.starts_with("/var/"))
                        {
                            self.err(
                                "path must be under /etc or /var if with_mount_unit is true",
                                &join(ypath, "path"),
                                at("path"),
                            );
                        }
                        self.mounts.push(MountReq {
                            ypath: join(ypath, "with_mount_unit"),
                            pos,
                            device: out
                                .get("device")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                            format,
                            path,
                            mount_options: out
                                .get("mountOptions")
                                .and_then(Value::as_array)
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|v| v.as_str().map(str::to_string))
                                        .collect()
                                })
                                .unwrap_or_default(),
                        });
                    }
                }
            }
            "Tree" => {
                let local = sugar("local")
                    .and_then(|v| v.0)
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                if local.is_empty() {
                    self.err("local is required", ypath, node.pos);
                } else {
                    self.trees.push(TreeReq {
                        ypath: ypath.to_string(),
                        pos: node.pos,
                        local,
                        path: sugar("path")
                            .and_then(|v| v.0)
                            .and_then(|v| v.as_str().map(str::to_string)),
                    });
                }
            }
            _ => {}
        }
        // Emit in schema order.
        let mut map = Map::new();
        for field in obj.fields {
            if field.json.is_empty() || field.min > self.minor || field.max < self.minor {
                continue;
            }
            if let Some(v) = out.remove(field.json) {
                map.insert(field.json.to_string(), v);
            }
        }
        map
    }

    fn hook_resource(
        &mut self,
        out: &mut HashMap<&'static str, Value>,
        sugar: &SugarFn<'_>,
        ypath: &str,
        jpath: &str,
        obj: &Obj,
    ) {
        let local = sugar("local");
        let inline = sugar("inline");
        let has_source = out.contains_key("source");
        let mut count = 0;
        let mut last: Option<(&str, Pos)> = None;
        for (name, v) in [("local", &local), ("inline", &inline)] {
            if let Some((Some(_), pos)) = v {
                count += 1;
                last = Some((name, *pos));
            }
        }
        if has_source {
            count += 1;
            let pos = self
                .origins
                .get(&join(jpath, "source"))
                .map(|o| o.1)
                .unwrap_or((0, 0));
            last = Some(("source", pos));
        }
        if obj.name == "FileContents"
            && count > 1
            && let Some((_, pos)) = inline.as_ref().map(|v| ((), v.1))
        {
            self.err(ERR_SOURCES, &join(ypath, "inline"), pos);
            return;
        }
        if count > 1 {
            if let Some((name, pos)) = last {
                self.err(ERR_SOURCES, &join(ypath, name), pos);
            }
            return;
        }
        let (data, yp, pos) = if let Some((Some(Value::String(s)), pos)) = inline {
            (s.into_bytes(), join(ypath, "inline"), pos)
        } else if let Some((Some(Value::String(s)), pos)) = local {
            let yp = join(ypath, "local");
            match self.read_local(&s, &yp, pos) {
                Some(d) => (d, yp, pos),
                None => return,
            }
        } else {
            return;
        };
        self.origin(&join(jpath, "source"), &yp, pos);
        if obj.name == "Resource" && jpath.starts_with("ignition.config") {
            self.check_embedded_config(&data, &yp, pos);
        }
        if obj.name == "FileContents" {
            out.insert("source", Value::String(dataurl::plain_data_url(&data)));
            return;
        }
        let user_comp = out
            .get("compression")
            .and_then(Value::as_str)
            .map(str::to_string);
        let d = dataurl::make_data_url(
            &data,
            user_comp.as_deref(),
            !self.opts.no_resource_auto_compression,
        );
        out.insert("source", Value::String(d.url));
        if let Some(c) = d.compression {
            out.insert("compression", Value::String(c.to_string()));
            self.origin(&join(jpath, "compression"), &yp, pos);
        }
    }

    /// Butane (fcos >= 1.1.0) validates inline/local configs merged or replaced through
    /// `ignition.config`: skipped with a warning unless they use this spec's version.
    fn check_embedded_config(&mut self, data: &[u8], ypath: &str, pos: Pos) {
        let spec = spec_for_fcos(self.minor).unwrap_or("");
        let version = serde_json::from_slice::<Value>(data).ok().and_then(|v| {
            v.pointer("/ignition/version")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        match version.as_deref() {
            Some(v) if v != spec && !v.is_empty() => {
                self.warn(
                    "skipping validation for the merge/replace ignition config due to an unkown version",
                    &join(ypath, "version"),
                    pos,
                );
            }
            _ => {
                for e in validate::validate_ignition(data).entries {
                    let inner = if e.path.is_empty() {
                        String::new()
                    } else {
                        format!(" (embedded config: {})", e.path)
                    };
                    self.report.push(
                        e.severity,
                        format!("{}{inner}", e.message),
                        ypath.to_string(),
                        Some(pos),
                    );
                }
            }
        }
    }

    fn local_path(&mut self, rel: &str, ypath: &str, pos: Pos) -> Option<PathBuf> {
        let Some(dir) = self.opts.files_dir.clone() else {
            self.err(ERR_NO_FILES_DIR, ypath, pos);
            return None;
        };
        // Lexical containment check like Butane's EnsurePathWithinFilesDir.
        let mut depth: i64 = 0;
        let mut out = dir.clone();
        for comp in Path::new(rel).components() {
            match comp {
                Component::Normal(c) => {
                    depth += 1;
                    out.push(c);
                }
                Component::ParentDir => {
                    depth -= 1;
                    if depth < 0 {
                        self.err(ERR_FILES_DIR_ESCAPE, ypath, pos);
                        return None;
                    }
                    out.pop();
                }
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            }
        }
        Some(out)
    }

    fn read_local(&mut self, rel: &str, ypath: &str, pos: Pos) -> Option<Vec<u8>> {
        let p = self.local_path(rel, ypath, pos)?;
        match std::fs::read(&p) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(format!("open {}: {}", p.display(), io_msg(&e)), ypath, pos);
                None
            }
        }
    }
}

fn io_msg(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "is a directory".into(),
        _ => e.to_string(),
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Bool(b) => !b,
        _ => false,
    }
}

fn zero(ty: &Ty) -> Value {
    match ty {
        Ty::Str => Value::String(String::new()),
        Ty::Int => json!(0),
        Ty::Bool => Value::Bool(false),
        _ => Value::Null,
    }
}

/// Butane's `CheckForDecimalMode`.
pub fn decimal_mode_suspicious(mode: i64, directory: bool) -> bool {
    if !(0..=7777).contains(&mode) {
        return false;
    }
    let mut corrected = 0i64;
    let mut divisor = 1000;
    while divisor > 0 {
        let digit = (mode / divisor) % 10;
        if digit > 7 {
            return false;
        }
        corrected = (corrected << 3) | digit;
        divisor /= 10;
    }
    !typical_mode(mode, directory) && typical_mode(corrected, directory)
}

fn typical_mode(mode: i64, directory: bool) -> bool {
    if mode == 0 {
        return true;
    }
    let perms = [mode & 0o7, (mode & 0o70) >> 3, (mode & 0o700) >> 6];
    let (mut had_r, mut had_w, mut had_x) = (false, false, false);
    for perm in perms {
        let r = perm & 4 != 0;
        let w = perm & 2 != 0;
        let x = perm & 1 != 0;
        if (!r && had_r) || (!w && had_w) || (!x && had_x) {
            return false;
        }
        if x && had_r && !had_x {
            return false;
        }
        if (w || x) && !r {
            return false;
        }
        had_r |= r;
        had_w |= w;
        had_x |= x;
    }
    if !had_r {
        return false;
    }
    if directory {
        if !had_x || mode & 0o4000 != 0 || (mode & 0o3000 != 0 && !had_w) {
            return false;
        }
    } else {
        if mode & 0o6000 != 0 && (!had_x || mode & 2 != 0) {
            return false;
        }
        if mode & 0o1000 != 0 {
            return false;
        }
    }
    true
}

/// systemd's path escaping (`systemd-escape --path`, go-systemd `UnitNamePathEscape`).
pub fn unit_name_path_escape(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    let trimmed = parts.join("/");
    if trimmed.is_empty() {
        return "-".into();
    }
    let mut out = String::new();
    for (i, b) in trimmed.bytes().enumerate() {
        if b == b'/' {
            out.push('-');
        } else if (b == b'.' && i == 0)
            || !(b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'.')
        {
            out.push_str(&format!("\\x{b:02x}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

fn mount_unit(m: &MountReq, minor: u8, remote: bool) -> Value {
    let swap = minor >= 4 && m.format == "swap";
    let esc = unit_name_path_escape(&m.device);
    let mut opts: Vec<String> = m.mount_options.clone();
    let remote = remote && minor >= 2;
    if remote {
        opts.push("_netdev".into());
    }
    let options = if opts.is_empty() {
        String::new()
    } else {
        format!("\nOptions={}", opts.join(","))
    };
    let (name, contents) = if swap {
        (
            format!("{esc}.swap"),
            format!(
                "# Generated by Butane\n[Swap]\nWhat={}{}\n\n[Install]\nRequiredBy=swap.target",
                m.device, options
            ),
        )
    } else {
        let path = m.path.clone().unwrap_or_default();
        (
            format!("{}.mount", unit_name_path_escape(&path)),
            format!(
                "# Generated by Butane\n[Unit]\nRequires=systemd-fsck@{esc}.service\nAfter=systemd-fsck@{esc}.service\n\n[Mount]\nWhere={path}\nWhat={}\nType={}{}\n\n[Install]\nRequiredBy={}",
                m.device,
                m.format,
                options,
                if remote {
                    "remote-fs.target"
                } else {
                    "local-fs.target"
                }
            ),
        )
    };
    json!({"contents": contents, "enabled": true, "name": name})
}

/// Reorders every object in `v` into Go struct field order, following the schema.
fn reorder(v: &mut Value, obj: &'static Obj, minor: u8) {
    let Value::Object(map) = v else { return };
    let mut old = std::mem::take(map);
    for field in obj.fields {
        if field.json.is_empty() || field.min > minor || field.max < minor {
            continue;
        }
        if let Some(mut val) = old.remove(field.json) {
            match &field.ty {
                Ty::Obj(o) => reorder(&mut val, o, minor),
                Ty::List(o) => {
                    if let Value::Array(items) = &mut val {
                        for it in items {
                            reorder(it, o, minor);
                        }
                    }
                }
                _ => {}
            }
            map.insert(field.json.to_string(), val);
        }
    }
    map.extend(old);
}

fn parse_semver(s: &str) -> Option<(u64, u64, u64, Option<String>)> {
    let (core, pre) = match s.split_once('-') {
        Some((c, p)) => (c, Some(p.to_string())),
        None => (s, None),
    };
    let mut it = core.split('.');
    let a = it.next()?.parse().ok()?;
    let b = it.next()?.parse().ok()?;
    let c = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    Some((a, b, c, pre))
}

fn fail(message: &str, report: Report) -> TranslateError {
    TranslateError {
        message: message.to_string(),
        report,
    }
}

/// Translates a Butane config. See the crate documentation.
pub fn translate(input: &[u8], opts: &TranslateOptions) -> Result<Translation, TranslateError> {
    let mut report = Report::default();
    let text = match std::str::from_utf8(input) {
        Ok(t) => t,
        Err(e) => {
            report.push(
                Severity::Error,
                format!("input is not valid UTF-8: {e}"),
                "",
                None,
            );
            return Err(fail("Error unmarshaling yaml", report));
        }
    };
    let root = match yaml::parse(text) {
        Ok(r) => r,
        Err(e) => {
            report.push(Severity::Error, format!("yaml: {}", e.message), "", e.pos);
            return Err(fail("Error unmarshaling yaml", report));
        }
    };
    let items: &[(yaml::Key, Node)] = match &root.kind {
        Kind::Map(items) => items,
        Kind::Null => &[],
        _ => {
            report.push(
                Severity::Error,
                format!("cannot unmarshal {} into Config", root.tag_name()),
                "",
                Some(root.pos),
            );
            return Err(fail("Error unmarshaling yaml", report));
        }
    };
    let get = |k: &str| items.iter().find(|(key, _)| key.text == k);
    let scalar = |k: &str| -> Option<(String, Pos)> {
        get(k).and_then(|(_, n)| match &n.kind {
            Kind::Scalar { text, .. } => Some((text.clone(), n.pos)),
            _ => None,
        })
    };
    let Some((variant, _)) = scalar("variant").filter(|(v, _)| !v.is_empty()) else {
        let pos = get("variant").map(|(k, _)| k.pos).unwrap_or((1, 1));
        report.push(
            Severity::Error,
            "error parsing variant; must be specified",
            "variant",
            Some(pos),
        );
        return Err(fail("error parsing variant; must be specified", report));
    };
    let (version, vpos) = scalar("version").unwrap_or_default();
    let Some((major, minor_v, patch, pre)) = parse_semver(&version) else {
        let pos = get("version").map(|(_, n)| n.pos).unwrap_or((1, 1));
        report.push(
            Severity::Error,
            "error parsing version; must be a valid semver",
            "version",
            Some(pos),
        );
        return Err(fail(
            "error parsing version; must be a valid semver",
            report,
        ));
    };
    let flatcar = variant == "flatcar";
    // flatcar 1.0.0 is base v0_4 (like fcos 1.4.0), 1.1.0 is base v0_5 (like fcos 1.5.0).
    let base_minor = match (variant.as_str(), major, minor_v, patch, pre.is_some()) {
        ("fcos", 1, m @ 0..=6, 0, false) => Some(m as u8),
        ("flatcar", 1, m @ 0..=1, 0, false) => Some(m as u8 + 4),
        _ => None,
    };
    let Some(minor) = base_minor else {
        let mut msg = format!("No translator exists for variant {variant} with version {version}");
        if pre.is_some() {
            msg.push_str(" (experimental spec versions are not supported; kindling translates fcos 1.0.0 to 1.6.0 and flatcar 1.0.0 to 1.1.0)");
        } else {
            msg.push_str(" (kindling translates fcos 1.0.0 to 1.6.0 and flatcar 1.0.0 to 1.1.0)");
        }
        report.push(Severity::Error, msg.clone(), "version", Some(vpos));
        return Err(fail(&msg, report));
    };
    let spec = spec_for_fcos(minor).unwrap_or("3.0.0");

    let mut ctx = Ctx {
        flatcar,
        minor,
        opts,
        report,
        origins: HashMap::new(),
        mounts: Vec::new(),
        trees: Vec::new(),
    };
    let mut out = Value::Object(ctx.walk_obj(&root, &schema::CONFIG, "", ""));
    if ctx.report.has_errors() {
        return Err(fail("source config is invalid", ctx.report));
    }
    // Tag list items with their path so that origins can be remapped after merges.
    tag(&mut out, "");

    // Mount units (rendered config is the parent, the user's config the child).
    if !ctx.mounts.is_empty() {
        let luks_remote: Vec<String> = out
            .pointer("/storage/luks")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|l| {
                        l.pointer("/clevis/tang")
                            .and_then(Value::as_array)
                            .is_some_and(|t| !t.is_empty())
                    })
                    .filter_map(|l| l.get("name").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut units = Vec::new();
        for m in &ctx.mounts {
            let remote = luks_remote.iter().any(|n| {
                m.device == format!("/dev/mapper/{n}")
                    || m.device == format!("/dev/disk/by-id/dm-name-{n}")
            });
            let jp = format!("systemd.units.{}", units.len());
            ctx.origins.entry(jp).or_insert((m.ypath.clone(), m.pos));
            units.push(mount_unit(m, minor, remote));
        }
        let mut rendered = json!({"systemd": {"units": units}});
        merge(&mut rendered, out, "");
        out = rendered;
    }

    // Trees.
    let trees = std::mem::take(&mut ctx.trees);
    for t in &trees {
        process_tree(&mut ctx, &mut out, t);
    }

    // boot_device (fcos >= 1.3).
    if flatcar {
        for (i, l) in out
            .pointer("/storage/luks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if l.get("clevis").is_some() {
                let jp = format!("storage.luks.{i}.clevis");
                let (yp, pos) = nearest_origin(&ctx.origins, &jp).unwrap_or((jp.clone(), (1, 1)));
                ctx.err("clevis is not supported in this spec version", &yp, pos);
            }
        }
    }
    if let Some((_, bd)) = get("boot_device").filter(|_| minor >= 3 && !flatcar) {
        crate::bootdev::process(&mut ctx.report, &mut out, bd, minor, &mut ctx.origins);
    }
    // Partition warnings.
    if !flatcar {
        partition_warnings(&mut ctx, &out);
    }
    // grub (fcos >= 1.5).
    if let Some((_, g)) = get("grub").filter(|_| minor >= 5 && !flatcar) {
        crate::bootdev::grub(
            &mut ctx.report,
            &mut out,
            g,
            opts.no_resource_auto_compression,
        );
    }
    if ctx.report.has_errors() {
        return Err(fail("source config is invalid", ctx.report));
    }

    let mut moves = HashMap::new();
    untag(&mut out, "", &mut moves);
    remap(&mut ctx.origins, &moves);

    // ignition.version
    if let Value::Object(m) = &mut out {
        let ign = m.entry("ignition").or_insert_with(|| json!({}));
        if let Value::Object(im) = ign {
            im.insert("version".into(), Value::String(spec.to_string()));
        }
    }
    reorder(&mut out, &schema::CONFIG, minor);
    if let Some(Value::Object(im)) = out.get_mut("ignition")
        && let Some(v) = im.remove("version")
    {
        im.insert("version".into(), v);
    }
    // Top-level key order: ignition first.
    if let Value::Object(m) = &mut out {
        let mut old = std::mem::take(m);
        for k in [
            "ignition",
            "kernelArguments",
            "passwd",
            "storage",
            "systemd",
        ] {
            if let Some(v) = old.remove(k) {
                m.insert(k.into(), v);
            }
        }
        m.extend(old);
    }

    // Ignition's own validation of the result, mapped back to YAML positions.
    let spec_minor = spec.as_bytes().get(2).map(|b| b - b'0').unwrap_or(0);
    for issue in validate::validate_value(&out, spec_minor) {
        let (ypath, pos) = nearest_origin(&ctx.origins, &issue.path)
            .unwrap_or_else(|| (issue.path.clone(), (0, 0)));
        let pos = if pos == (0, 0) { None } else { Some(pos) };
        ctx.report.push(issue.severity, issue.message, ypath, pos);
    }
    if ctx.report.has_errors() {
        return Err(fail("config generated was invalid", ctx.report));
    }
    if opts.strict && ctx.report.has_warnings() {
        return Err(fail(
            "Config produced warnings and --strict was specified",
            ctx.report,
        ));
    }
    Ok(Translation {
        json: crate::json::to_go_json(&out),
        value: out,
        spec_version: spec.to_string(),
        variant,
        version,
        warnings: ctx.report,
    })
}

const TAG: &str = "\u{0}origin";

fn tag(v: &mut Value, path: &str) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                tag(val, &join(path, k));
            }
        }
        Value::Array(items) => {
            for (i, it) in items.iter_mut().enumerate() {
                let p = join(path, &i.to_string());
                tag(it, &p);
                if let Value::Object(m) = it {
                    m.insert(TAG.into(), Value::String(p));
                }
            }
        }
        _ => {}
    }
}

fn untag(v: &mut Value, path: &str, moves: &mut HashMap<String, String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(old)) = m.remove(TAG)
                && old != path
            {
                moves.insert(old, path.to_string());
            }
            for (k, val) in m.iter_mut() {
                untag(val, &join(path, k), moves);
            }
        }
        Value::Array(items) => {
            for (i, it) in items.iter_mut().enumerate() {
                untag(it, &join(path, &i.to_string()), moves);
            }
        }
        _ => {}
    }
}

fn remap(origins: &mut HashMap<String, (String, Pos)>, moves: &HashMap<String, String>) {
    if moves.is_empty() {
        return;
    }
    let old = std::mem::take(origins);
    for (k, v) in old {
        let mut new_key = k.clone();
        let mut cut = Some(k.len());
        while let Some(c) = cut {
            let prefix = &k[..c];
            if let Some(n) = moves.get(prefix) {
                new_key = format!("{n}{}", &k[c..]);
                break;
            }
            cut = prefix.rfind('.');
        }
        origins.insert(new_key, v);
    }
}

fn nearest_origin(origins: &HashMap<String, (String, Pos)>, jpath: &str) -> Option<(String, Pos)> {
    let mut p = jpath;
    loop {
        if let Some(o) = origins.get(p) {
            // Keep the remainder of the JSON path when the exact field had no origin.
            return Some(o.clone());
        }
        let i = p.rfind('.')?;
        p = &p[..i];
    }
}

fn partition_warnings(ctx: &mut Ctx<'_>, out: &Value) {
    let Some(disks) = out.pointer("/storage/disks").and_then(Value::as_array) else {
        return;
    };
    let mut warns = Vec::new();
    for (i, disk) in disks.iter().enumerate() {
        let wipe = disk
            .get("wipeTable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let parts = disk
            .get("partitions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (p, part) in parts.iter().enumerate() {
            let Some(label) = part.get("label").and_then(Value::as_str) else {
                continue;
            };
            let number = part.get("number").and_then(Value::as_i64).unwrap_or(0);
            let base = format!("storage.disks.{i}.partitions.{p}");
            if ctx.minor >= 3 && label == "root" {
                let size = part.get("sizeMiB").and_then(Value::as_i64).unwrap_or(0);
                if size == 0 {
                    let constrained = parts.iter().enumerate().any(|(idx, o)| {
                        idx != p && o.get("startMiB").and_then(Value::as_i64).unwrap_or(0) == 0
                    });
                    if constrained {
                        warns.push((format!("{base}.label"), "root partition cannot expand; it is set to fill available space but is followed by an auto-positioned partition"));
                    }
                } else if size < 8192 {
                    warns.push((
                        format!("{base}.sizeMiB"),
                        "root should have 8GiB of space assigned",
                    ));
                }
            }
            if !wipe {
                let wrong = matches!((label, number), ("BIOS-BOOT", n) | ("PowerPC-PReP-boot", n) if n != 1)
                    || (label == "EFI-SYSTEM" && number != 2)
                    || (label == "boot" && number != 3)
                    || (label == "root" && number != 4);
                if wrong {
                    warns.push((format!("{base}.label"), "incorrect partition number; a new partition will be created using reserved label"));
                }
            }
        }
        if ctx.minor >= 6 {
            let device = disk.get("device").and_then(Value::as_str).unwrap_or("");
            if device != "/dev/disk/by-id/coreos-boot-disk" && !wipe {
                for (p, part) in parts.iter().enumerate() {
                    if part.get("number").is_none() && part.get("label").is_some() {
                        warns.push((format!("storage.disks.{i}.partitions.{p}.number"), "partitions cannot be reused by label; number must be specified except on boot disk (/dev/disk/by-id/coreos-boot-disk) or when wipe_table is true"));
                    }
                }
            }
        }
    }
    for (jp, msg) in warns {
        let (yp, pos) = nearest_origin(&ctx.origins, &jp).unwrap_or((jp.clone(), (0, 0)));
        ctx.report.push(
            Severity::Warning,
            msg,
            yp,
            if pos == (0, 0) { None } else { Some(pos) },
        );
    }
}

fn process_tree(ctx: &mut Ctx<'_>, out: &mut Value, t: &TreeReq) {
    let Some(src) = ctx.local_path(&t.local, &t.ypath, t.pos) else {
        return;
    };
    match std::fs::metadata(&src) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            ctx.err("root of tree must be a directory", &t.ypath, t.pos);
            return;
        }
        Err(e) => {
            ctx.err(
                format!("stat {}: {}", src.display(), io_msg(&e)),
                &t.ypath,
                t.pos,
            );
            return;
        }
    }
    let dest_base = t
        .path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    // Visit in filepath.Walk order: each directory's entries sorted by name, descending into
    // subdirectories where they appear. Symlinks are not followed.
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    walk_dir(&src, "", 0, &mut entries, &mut errors);
    for e in errors {
        ctx.err(e, &t.ypath, t.pos);
    }
    let Value::Object(root) = out else { return };
    let storage = root.entry("storage").or_insert_with(|| json!({}));
    for (p, rel, meta) in entries {
        let dest = clean_join(&dest_base, &rel);
        let Value::Object(st) = &mut *storage else {
            return;
        };
        if meta.file_type().is_symlink() {
            let target = match std::fs::read_link(&p) {
                Ok(t) => t.to_string_lossy().into_owned(),
                Err(e) => {
                    ctx.err(
                        format!("readlink {}: {}", p.display(), io_msg(&e)),
                        &t.ypath,
                        t.pos,
                    );
                    continue;
                }
            };
            if exists_other(st, &dest, "links") {
                ctx.err(
                    "matching filesystem node has existing contents or different type",
                    &t.ypath,
                    t.pos,
                );
                continue;
            }
            let links = st.entry("links").or_insert_with(|| json!([]));
            let Value::Array(links) = links else { continue };
            match links
                .iter_mut()
                .find(|l| l.get("path").and_then(Value::as_str) == Some(dest.as_str()))
            {
                Some(l) => {
                    if l.get("target")
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
                    {
                        ctx.err(
                            "matching filesystem node has existing contents or different type",
                            &t.ypath,
                            t.pos,
                        );
                        continue;
                    }
                    l["target"] = Value::String(target);
                }
                None => links.push(json!({"path": dest, "target": target})),
            }
        } else if meta.is_file() {
            if exists_other(st, &dest, "files") {
                ctx.err(
                    "matching filesystem node has existing contents or different type",
                    &t.ypath,
                    t.pos,
                );
                continue;
            }
            let data = match std::fs::read(&p) {
                Ok(d) => d,
                Err(e) => {
                    ctx.err(
                        format!("open {}: {}", p.display(), io_msg(&e)),
                        &t.ypath,
                        t.pos,
                    );
                    continue;
                }
            };
            let files = st.entry("files").or_insert_with(|| json!([]));
            let Value::Array(files) = files else { continue };
            let idx = match files
                .iter()
                .position(|f| f.get("path").and_then(Value::as_str) == Some(dest.as_str()))
            {
                Some(i) => {
                    if files[i]
                        .pointer("/contents/source")
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
                    {
                        ctx.err(
                            "matching filesystem node has existing contents or different type",
                            &t.ypath,
                            t.pos,
                        );
                        continue;
                    }
                    i
                }
                None => {
                    files.push(json!({"path": dest}));
                    files.len() - 1
                }
            };
            ctx.origins
                .entry(format!("storage.files.{idx}"))
                .or_insert((t.ypath.clone(), t.pos));
            let Some(Value::Object(file)) = files.get_mut(idx) else {
                continue;
            };
            let user_comp = file
                .get("contents")
                .and_then(|c| c.get("compression"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let d = dataurl::make_data_url(
                &data,
                user_comp.as_deref(),
                !ctx.opts.no_resource_auto_compression,
            );
            let contents = file.entry("contents").or_insert_with(|| json!({}));
            contents["source"] = Value::String(d.url);
            if let Some(c) = d.compression {
                contents["compression"] = Value::String(c.into());
            }
            if !file.contains_key("mode") {
                #[cfg(unix)]
                let exec = {
                    use std::os::unix::fs::PermissionsExt;
                    meta.permissions().mode() & 0o111 != 0
                };
                #[cfg(not(unix))]
                let exec = false;
                file.insert("mode".into(), json!(if exec { 0o755 } else { 0o644 }));
            }
        } else {
            ctx.err(
                "trees may only contain files, directories, and symlinks",
                &t.ypath,
                t.pos,
            );
        }
    }
}

type TreeEntry = (PathBuf, String, std::fs::Metadata);

fn walk_dir(
    dir: &Path,
    rel: &str,
    depth: usize,
    out: &mut Vec<TreeEntry>,
    errors: &mut Vec<String>,
) {
    if depth > 64 {
        errors.push(format!("{}: directory tree too deep", dir.display()));
        return;
    }
    let mut names: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(Result::ok).map(|e| e.file_name()).collect(),
        Err(e) => {
            errors.push(format!("open {}: {}", dir.display(), io_msg(&e)));
            return;
        }
    };
    names.sort();
    for n in names {
        let p = dir.join(&n);
        let r = if rel.is_empty() {
            n.to_string_lossy().into_owned()
        } else {
            format!("{rel}/{}", n.to_string_lossy())
        };
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => walk_dir(&p, &r, depth + 1, out, errors),
            Ok(m) => out.push((p, r, m)),
            Err(e) => errors.push(format!("lstat {}: {}", p.display(), io_msg(&e))),
        }
    }
}

fn exists_other(storage: &Map<String, Value>, dest: &str, except: &str) -> bool {
    ["files", "directories", "links"]
        .iter()
        .filter(|k| **k != except)
        .any(|k| {
            storage.get(*k).and_then(Value::as_array).is_some_and(|a| {
                a.iter()
                    .any(|n| n.get("path").and_then(Value::as_str) == Some(dest))
            })
        })
}

fn clean_join(base: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in base.split('/').chain(rel.split('/')) {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}
