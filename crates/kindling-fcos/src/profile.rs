//! The live-PXE profile `profiles/fedora-coreos-<track>.json`, and the
//! operator's own profiles kept on the same release.
//!
//! The automatic profile is written with serde_json values so that every
//! field Kindling does not manage (name, ignition_id, generic_id, metadata,
//! unknown fields) survives an update; an operator's profile is edited in
//! place in its text ([`update_operator`]), so that everything but the
//! asset paths and `coreos.live.rootfs_url` stays byte for byte. Both are
//! written atomically (temporary file + rename) so that the server's watcher
//! sees the old profile or the new one, never a mix.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::FcosError;
use crate::state::Track;

/// What a profile boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileSpec {
    pub track: Track,
    pub release: String,
    pub kernel: String,
    pub initramfs: String,
    pub rootfs: String,
    /// `http://host:port` the machines reach this server on (no trailing `/`).
    pub server_url: String,
}

/// The profile id of a track: `fedora-coreos-stable` (x86_64),
/// `fedora-coreos-stable-aarch64`.
pub fn profile_id(track: &Track) -> String {
    format!("fedora-coreos-{}", track.dir_name())
}

/// `<data_dir>/profiles/<id>.json`.
pub fn path_of(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join("profiles").join(format!("{id}.json"))
}

/// `<data_dir>/profiles/fedora-coreos-<track>.json`.
pub fn profile_path(data_dir: &Path, track: &Track) -> PathBuf {
    path_of(data_dir, &profile_id(track))
}

/// URL path of a release's asset directory: `/assets/fedora-coreos/<track>/<release>`.
pub fn asset_path(track: &Track, release: &str) -> String {
    format!("/assets/fedora-coreos/{}/{release}", track.dir_name())
}

/// Checks and normalises a server URL (`http://10.0.0.1:8080`). It ends up in
/// a kernel command line that Linux (not iPXE) fetches the rootfs with, so it
/// must be an http(s) URL without spaces or quotes.
pub fn normalize_server_url(s: &str) -> Result<String, FcosError> {
    let t = s.trim().trim_end_matches('/');
    let rest = t
        .strip_prefix("http://")
        .or_else(|| t.strip_prefix("https://"));
    let ok = match rest {
        Some(r) => {
            !r.is_empty()
                && !r
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b == b'"' || b == b'\'' || b < 0x20)
        }
        None => false,
    };
    if ok {
        Ok(t.to_string())
    } else {
        Err(FcosError::Invalid {
            what: "server URL",
            value: s.to_string(),
            why: "expected http://host:port (no spaces or quotes)",
        })
    }
}

/// The server URL an existing profile's `coreos.live.rootfs_url` points at
/// (used when none is configured, so a plain `kindling fcos pull` keeps it).
pub fn server_url_of(profile: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(profile).ok()?;
    let args = v.get("boot")?.get("args")?.as_array()?;
    args.iter().filter_map(Value::as_str).find_map(|a| {
        let url = a.strip_prefix("coreos.live.rootfs_url=")?;
        let i = url.find("/assets/")?;
        url.get(..i).map(str::to_string)
    })
}

/// The release the profile's kernel points at, if it is one of ours.
pub fn release_of(profile: &[u8], track: &Track) -> Option<String> {
    let v: Value = serde_json::from_slice(profile).ok()?;
    let kernel = v.get("boot")?.get("kernel")?.as_str()?;
    let rest = kernel.strip_prefix(&format!("{}/", asset_path(track, "").trim_end_matches('/')))?;
    rest.split_once('/').map(|(r, _)| r.to_string())
}

const MANAGED_REPLACED: [&str; 2] = ["initrd=", "coreos.live.rootfs_url="];

/// Renders the profile: a new one when `existing` is `None`, else `existing`
/// updated. `known_releases` are releases of this stream whose asset paths
/// may appear in old arguments and initrds (they are dropped).
pub fn render(
    existing: Option<&[u8]>,
    spec: &ProfileSpec,
    known_releases: &[String],
) -> Result<Vec<u8>, String> {
    let dir = asset_path(&spec.track, &spec.release);
    let kernel = format!("{dir}/{}", spec.kernel);
    let main_initrd = format!("--name main {dir}/{}", spec.initramfs);
    let rootfs_arg = format!(
        "coreos.live.rootfs_url={}{dir}/{}",
        spec.server_url, spec.rootfs
    );
    let ignition_url = format!(
        "ignition.config.url={}/ignition?mac=${{mac:hexhyp}}",
        spec.server_url
    );

    let mut obj: Map<String, Value> = match existing {
        None => {
            let mut m = Map::new();
            m.insert("id".into(), json!(profile_id(&spec.track)));
            let name = if spec.track.arch == crate::state::DEFAULT_ARCH {
                format!("Fedora CoreOS {} (live PXE)", spec.track.stream)
            } else {
                format!(
                    "Fedora CoreOS {} {} (live PXE)",
                    spec.track.stream, spec.track.arch
                )
            };
            m.insert("name".into(), json!(name));
            m
        }
        Some(bytes) => match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err("not a JSON object".into()),
            Err(e) => {
                return Err(format!(
                    "not valid JSON: {e}; repair it or delete it (the next pull writes a new one)"
                ));
            }
        },
    };
    if obj
        .get("id")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        obj.insert("id".into(), json!(profile_id(&spec.track)));
    }

    let mut stale: BTreeSet<String> = known_releases
        .iter()
        .map(|r| format!("{}/", asset_path(&spec.track, r)))
        .collect();
    if let Some(b) = existing
        && let Some(r) = release_of(b, &spec.track)
    {
        stale.insert(format!("{}/", asset_path(&spec.track, &r)));
    }
    let points_at_release = |s: &str| stale.iter().any(|p| s.contains(p.as_str()));

    let mut boot: Map<String, Value> = match obj.remove("boot") {
        Some(Value::Object(b)) => b,
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err("\"boot\" is not an object".into()),
    };
    let old_args = string_list(&boot, "args")?;
    let old_initrd = string_list(&boot, "initrd")?;

    // Arguments: ours replaced in place, stale ones dropped, the operator's kept.
    let mut args: Vec<String> = Vec::new();
    let (mut have_initrd, mut have_rootfs) = (false, false);
    let (mut have_firstboot, mut have_platform, mut have_config) = (false, false, false);
    for a in old_args {
        if a.starts_with(MANAGED_REPLACED[0]) {
            if !have_initrd {
                args.push("initrd=main".into());
                have_initrd = true;
            }
        } else if a.starts_with(MANAGED_REPLACED[1]) {
            if !have_rootfs {
                args.push(rootfs_arg.clone());
                have_rootfs = true;
            }
        } else if points_at_release(&a) {
            continue;
        } else {
            // The operator may tune these (ignition.platform.id=qemu for VMs,
            // another Ignition URL): kept as they are.
            have_firstboot |= a == "ignition.firstboot";
            have_platform |= a.starts_with("ignition.platform.id=");
            have_config |= a.starts_with("ignition.config.url=");
            args.push(a);
        }
    }
    let mut front = Vec::new();
    if !have_initrd {
        front.push("initrd=main".to_string());
    }
    if !have_rootfs {
        front.push(rootfs_arg);
    }
    args.splice(0..0, front);
    if !have_firstboot {
        args.push("ignition.firstboot".into());
    }
    if !have_platform {
        args.push("ignition.platform.id=metal".into());
    }
    if !have_config {
        args.push(ignition_url);
    }

    // Initrds: ours first, the operator's extra ones (not of a release) kept.
    let mut initrd = vec![main_initrd];
    initrd.extend(
        old_initrd
            .into_iter()
            .filter(|i| !i.starts_with("--name main ") && !points_at_release(i)),
    );

    boot.insert("kernel".into(), json!(kernel));
    boot.insert("initrd".into(), json!(initrd));
    boot.insert("args".into(), json!(args));
    obj.insert("boot".into(), Value::Object(boot));
    let mut out = serde_json::to_vec_pretty(&Value::Object(obj)).map_err(|e| e.to_string())?;
    out.push(b'\n');
    Ok(out)
}

/// Checks that the stream's existing profile (if any) can be updated: it
/// must parse as JSON and have the shape [`render`] updates. Run before
/// anything is downloaded, so a broken profile fails a pull at once, naming
/// the file and (for bad JSON) the line and column.
pub fn check_existing(data_dir: &Path, track: &Track) -> Result<(), FcosError> {
    let path = profile_path(data_dir, track);
    let existing = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(FcosError::io(&path, e)),
    };
    render(Some(&existing), &probe(track), &[])
        .map(|_| ())
        .map_err(|why| FcosError::Profile { path, why })
}

/// A spec of the track's shape, to try an update without a release.
fn probe(track: &Track) -> ProfileSpec {
    ProfileSpec {
        track: track.clone(),
        release: "0".into(),
        kernel: format!("fedora-coreos-0-live-kernel.{}", track.arch),
        initramfs: format!("fedora-coreos-0-live-initramfs.{}.img", track.arch),
        rootfs: format!("fedora-coreos-0-live-rootfs.{}.img", track.arch),
        server_url: "http://localhost".into(),
    }
}

/// Renders and writes the profile atomically. Returns its path.
pub fn write(
    data_dir: &Path,
    spec: &ProfileSpec,
    known_releases: &[String],
) -> Result<PathBuf, FcosError> {
    let path = profile_path(data_dir, &spec.track);
    let existing = match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(FcosError::io(&path, e)),
    };
    let bytes =
        render(existing.as_deref(), spec, known_releases).map_err(|why| FcosError::Profile {
            path: path.clone(),
            why,
        })?;
    if existing.as_deref() == Some(&bytes[..]) {
        return Ok(path);
    }
    crate::fsutil::write_atomic(&path, &bytes)?;
    Ok(path)
}

/// Architecture names that appear in Fedora CoreOS artifact names.
const ARCHES: [&str; 4] = ["x86_64", "aarch64", "ppc64le", "s390x"];

/// The architecture an artifact's file name is built for, if it says.
fn arch_of_name(name: &str) -> Option<&'static str> {
    ARCHES.iter().copied().find(|a| name.contains(a))
}

/// The last path segment of an initrd entry or kernel (`--name main /a/b` -> `b`).
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Splits an iPXE initrd entry into its `--name X ` prefix and the path.
fn split_initrd(entry: &str) -> (&str, &str) {
    if let Some(rest) = entry.strip_prefix("--name ")
        && let Some(i) = rest.find(' ')
    {
        let cut = "--name ".len() + i + 1;
        return (&entry[..cut], &entry[cut..]);
    }
    ("", entry)
}

/// The `http://host:port` an operator's profile already fetches from: its
/// `coreos.live.rootfs_url`, else the origin of its `ignition.config.url`
/// (the seed's profile has only the latter).
pub fn operator_server_url(profile: &[u8]) -> Option<String> {
    if let Some(u) = server_url_of(profile) {
        return Some(u);
    }
    let v: Value = serde_json::from_slice(profile).ok()?;
    let args = v.get("boot")?.get("args")?.as_array()?;
    args.iter().filter_map(Value::as_str).find_map(|a| {
        let url = a.strip_prefix("ignition.config.url=")?;
        let (scheme, rest) = url.split_once("://")?;
        let host = rest.split('/').next()?;
        (!host.is_empty()).then(|| format!("{scheme}://{host}"))
    })
}

/// Whether the profile boots a Fedora CoreOS live kernel (the only kind an
/// operator's profile is kept current for).
pub fn boots_fcos_live(profile: &[u8]) -> bool {
    serde_json::from_slice::<Value>(profile)
        .ok()
        .and_then(|v| v.get("boot")?.get("kernel")?.as_str().map(str::to_string))
        .is_some_and(|k| file_name(&k).contains("live-kernel"))
}

/// Keeps an operator's profile (the seed's `fedora-core-1`, with its
/// `ignition_id` and kernel arguments) on `spec`'s release. Only what the
/// release owns changes: `boot.kernel`, the live initramfs entry of
/// `boot.initrd` (its `--name` kept; a live rootfs given as an initrd too),
/// and the `coreos.live.rootfs_url=` argument, added at the end of
/// `boot.args` when missing (current live PXE needs it). The edit is made
/// in the text, so every other byte (order, spacing, other fields and
/// arguments) stays as it was. Refused: a profile that does not boot a
/// Fedora CoreOS live kernel, or boots another architecture's.
pub fn update_operator(existing: &[u8], spec: &ProfileSpec) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(existing).map_err(|_| "not UTF-8 text".to_string())?;
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let boot = value
        .get("boot")
        .and_then(Value::as_object)
        .ok_or("has no \"boot\" object")?;
    let kernel = boot
        .get("kernel")
        .and_then(Value::as_str)
        .ok_or("has no boot.kernel")?;
    if !file_name(kernel).contains("live-kernel") {
        return Err(format!(
            "boot.kernel {kernel:?} is not a Fedora CoreOS live kernel; only profiles that boot Fedora CoreOS live PXE are kept current"
        ));
    }
    if let Some(a) = arch_of_name(file_name(kernel))
        && a != spec.track.arch
    {
        return Err(format!(
            "it boots {a} (boot.kernel {kernel:?}), not {}; keep it current from the {a} track (--arch {a}) or name a profile for {}",
            spec.track.arch, spec.track.arch
        ));
    }
    string_list(boot, "initrd")?;
    string_list(boot, "args")?;

    let dir = asset_path(&spec.track, &spec.release);
    let rootfs_arg = format!(
        "coreos.live.rootfs_url={}{dir}/{}",
        spec.server_url, spec.rootfs
    );
    let spans = BootSpans::find(text)?;
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let decode = |r: &Range<usize>| serde_json::from_str::<String>(&text[r.clone()]).ok();

    let k = spans.kernel.clone().ok_or("has no boot.kernel")?;
    edits.push((k, quote(&format!("{dir}/{}", spec.kernel))));

    let (mut have_initramfs, mut rootfs_as_initrd) = (false, false);
    let initrd = spans.initrd.as_ref().ok_or("has no boot.initrd list")?;
    for r in &initrd.items {
        let Some(entry) = decode(r) else { continue };
        let (prefix, path) = split_initrd(&entry);
        let name = file_name(path);
        if name.contains("live-initramfs") {
            edits.push((
                r.clone(),
                quote(&format!("{prefix}{dir}/{}", spec.initramfs)),
            ));
            have_initramfs = true;
        } else if name.contains("live-rootfs") {
            edits.push((r.clone(), quote(&format!("{prefix}{dir}/{}", spec.rootfs))));
            rootfs_as_initrd = true;
        }
    }
    if !have_initramfs {
        edits.push(initrd.append(text, &quote(&format!("{dir}/{}", spec.initramfs))));
    }

    let mut have_rootfs_url = false;
    if let Some(args) = &spans.args {
        for r in &args.items {
            if decode(r).is_some_and(|a| a.starts_with("coreos.live.rootfs_url=")) {
                edits.push((r.clone(), quote(&rootfs_arg)));
                have_rootfs_url = true;
            }
        }
        if !have_rootfs_url && !rootfs_as_initrd {
            edits.push(args.append(text, &quote(&rootfs_arg)));
        }
    } else if !rootfs_as_initrd {
        return Err("has no boot.args list to add coreos.live.rootfs_url to".into());
    }

    edits.sort_by_key(|(r, _)| (r.start, r.end));
    let mut out = text.to_string();
    for (r, new) in edits.into_iter().rev() {
        out.replace_range(r, &new);
    }
    // The edit must have produced the profile it means to: valid JSON with
    // the new kernel, and nothing but boot changed.
    let after: Value = serde_json::from_str(&out).map_err(|e| format!("edit failed: {e}"))?;
    let mut before_rest = value.clone();
    let mut after_rest = after.clone();
    if let (Some(b), Some(a)) = (before_rest.as_object_mut(), after_rest.as_object_mut()) {
        b.remove("boot");
        a.remove("boot");
    }
    if before_rest != after_rest
        || after["boot"]["kernel"].as_str() != Some(&format!("{dir}/{}", spec.kernel))
    {
        return Err("edit failed: the profile's text is ambiguous (duplicate keys?)".into());
    }
    Ok(out.into_bytes())
}

/// Checks that an operator's profile can be kept current on `track`,
/// before anything is downloaded.
pub fn check_operator(existing: &[u8], track: &Track) -> Result<(), String> {
    update_operator(existing, &probe(track)).map(|_| ())
}

/// Byte ranges (quotes included) of the strings under `boot` that a pull edits.
struct BootSpans {
    kernel: Option<Range<usize>>,
    initrd: Option<ArraySpans>,
    args: Option<ArraySpans>,
}

/// A JSON array's elements and where it opens and closes.
struct ArraySpans {
    items: Vec<Range<usize>>,
    open: usize,
}

impl ArraySpans {
    /// An edit that appends `item` (JSON text) after the last element, with
    /// the separator the array already uses between its last two elements.
    fn append(&self, text: &str, item: &str) -> (Range<usize>, String) {
        match self.items.as_slice() {
            [] => (self.open + 1..self.open + 1, item.to_string()),
            [only] => (only.end..only.end, format!(", {item}")),
            [.., a, b] => {
                let sep = &text[a.end..b.start];
                (b.end..b.end, format!("{sep}{item}"))
            }
        }
    }
}

impl BootSpans {
    fn find(text: &str) -> Result<BootSpans, String> {
        let mut sc = Scan {
            b: text.as_bytes(),
            i: 0,
        };
        let top = sc.members()?;
        let boot = top
            .iter()
            .rev()
            .find(|(k, _)| k == "boot")
            .map(|(_, r)| r.clone())
            .ok_or("has no \"boot\" object")?;
        let mut sc = Scan {
            b: text.as_bytes(),
            i: boot.start,
        };
        let members = sc.members()?;
        let last = |key: &str| {
            members
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, r)| r.clone())
        };
        let array = |r: Option<Range<usize>>| -> Result<Option<ArraySpans>, String> {
            match r {
                Some(r) if text.as_bytes()[r.start] == b'[' => {
                    let mut sc = Scan {
                        b: text.as_bytes(),
                        i: r.start,
                    };
                    sc.elements().map(|items| {
                        Some(ArraySpans {
                            items,
                            open: r.start,
                        })
                    })
                }
                _ => Ok(None),
            }
        };
        Ok(BootSpans {
            kernel: last("kernel").filter(|r| text.as_bytes()[r.start] == b'"'),
            initrd: array(last("initrd"))?,
            args: array(last("args"))?,
        })
    }
}

/// A minimal JSON scanner that records where values are (the text was
/// already parsed by serde_json, so only well-formed input reaches it).
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("unexpected text at byte {}", self.i))
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn string(&mut self) -> Result<Range<usize>, String> {
        self.ws();
        let start = self.i;
        self.eat(b'"')?;
        while let Some(&c) = self.b.get(self.i) {
            self.i += 1;
            match c {
                b'\\' => self.i += 1,
                b'"' => return Ok(start..self.i),
                _ => {}
            }
        }
        Err("unterminated string".into())
    }

    fn value(&mut self, depth: usize) -> Result<Range<usize>, String> {
        if depth > 128 {
            return Err("nested too deeply".into());
        }
        self.ws();
        let start = self.i;
        match self.peek() {
            Some(b'"') => {
                self.string()?;
            }
            Some(b'{') => {
                self.eat(b'{')?;
                if self.peek() == Some(b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.string()?;
                        self.eat(b':')?;
                        self.value(depth + 1)?;
                        if self.peek() == Some(b',') {
                            self.i += 1;
                        } else {
                            self.eat(b'}')?;
                            break;
                        }
                    }
                }
            }
            Some(b'[') => {
                self.eat(b'[')?;
                if self.peek() == Some(b']') {
                    self.i += 1;
                } else {
                    loop {
                        self.value(depth + 1)?;
                        if self.peek() == Some(b',') {
                            self.i += 1;
                        } else {
                            self.eat(b']')?;
                            break;
                        }
                    }
                }
            }
            Some(_) => {
                while self.i < self.b.len()
                    && !matches!(self.b[self.i], b',' | b'}' | b']')
                    && !self.b[self.i].is_ascii_whitespace()
                {
                    self.i += 1;
                }
            }
            None => return Err("unexpected end".into()),
        }
        Ok(start..self.i)
    }

    /// The members of the object at the cursor: (key, value range).
    fn members(&mut self) -> Result<Vec<(String, Range<usize>)>, String> {
        let mut out = Vec::new();
        self.eat(b'{')?;
        if self.peek() == Some(b'}') {
            return Ok(out);
        }
        loop {
            let k = self.string()?;
            let key: String =
                serde_json::from_slice(&self.b[k]).map_err(|e| format!("bad key: {e}"))?;
            self.eat(b':')?;
            let v = self.value(1)?;
            out.push((key, v));
            if self.peek() == Some(b',') {
                self.i += 1;
            } else {
                self.eat(b'}')?;
                return Ok(out);
            }
        }
    }

    /// The element ranges of the array at the cursor.
    fn elements(&mut self) -> Result<Vec<Range<usize>>, String> {
        let mut out = Vec::new();
        self.eat(b'[')?;
        if self.peek() == Some(b']') {
            return Ok(out);
        }
        loop {
            out.push(self.value(1)?);
            if self.peek() == Some(b',') {
                self.i += 1;
            } else {
                self.eat(b']')?;
                return Ok(out);
            }
        }
    }
}

/// Writes an operator's profile kept on `spec`'s release (see
/// [`update_operator`]) atomically. Returns whether it changed.
pub fn write_operator(data_dir: &Path, id: &str, spec: &ProfileSpec) -> Result<bool, FcosError> {
    let path = path_of(data_dir, id);
    let existing = std::fs::read(&path).map_err(|e| FcosError::io(&path, e))?;
    let bytes = update_operator(&existing, spec).map_err(|why| FcosError::Profile {
        path: path.clone(),
        why,
    })?;
    if bytes == existing {
        return Ok(false);
    }
    crate::fsutil::write_atomic(&path, &bytes)?;
    Ok(true)
}

/// A `boot.<key>` list of strings (absent or null: empty).
fn string_list(boot: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match boot.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("boot.{key} holds a non-string"))
            })
            .collect(),
        Some(_) => Err(format!("boot.{key} is not a list")),
    }
}

#[cfg(test)]
mod tests;
