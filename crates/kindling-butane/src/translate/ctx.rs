//! The state of one translation: the diagnostics and the YAML origin of each JSON path
//! gathered while walking the config, the sugar found on the way (mount units, trees) for the
//! later steps, and reading `local` files from the files directory.

use super::types::TranslateOptions;
use crate::report::{Report, Severity};
use crate::yaml::Pos;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

pub(super) const ERR_NO_FILES_DIR: &str =
    "local file paths are relative to a files directory that must be specified with -d/--files-dir";
pub(super) const ERR_FILES_DIR_ESCAPE: &str =
    "local file path traverses outside the files directory";

/// The fields of one object as the walk translated them, by JSON name.
pub(super) type Fields = HashMap<&'static str, Value>;

/// One walked object, for the section that handles its sugar: each YAML field's translated
/// value and key position, and where the object is.
pub(super) struct Sugar<'s> {
    pub(super) vals: &'s HashMap<&'static str, (Option<Value>, Pos)>,
    /// YAML path of the object.
    pub(super) ypath: &'s str,
    /// JSON path of the object.
    pub(super) jpath: &'s str,
    /// Position of the object.
    pub(super) pos: Pos,
}

impl Sugar<'_> {
    /// A YAML field's translated value and key position.
    pub(super) fn get(&self, name: &str) -> Option<(Option<Value>, Pos)> {
        self.vals.get(name).cloned()
    }
}

/// A filesystem with `with_mount_unit`: the unit to generate once the walk is done.
pub(super) struct MountReq {
    pub(super) ypath: String,
    pub(super) pos: Pos,
    pub(super) device: String,
    pub(super) format: String,
    pub(super) path: Option<String>,
    pub(super) mount_options: Vec<String>,
}

/// A `storage.trees` entry to add once the walk is done.
pub(super) struct TreeReq {
    pub(super) ypath: String,
    pub(super) pos: Pos,
    pub(super) local: String,
    pub(super) path: Option<String>,
}

/// The state of one translation (see the module documentation).
pub(super) struct Ctx<'a> {
    /// Flatcar variant: no `boot_device`/`grub` sugar, no Clevis.
    pub(super) flatcar: bool,
    pub(super) minor: u8,
    pub(super) opts: &'a TranslateOptions,
    pub(super) report: Report,
    /// json path -> (yaml path, position)
    pub(super) origins: HashMap<String, (String, Pos)>,
    pub(super) mounts: Vec<MountReq>,
    pub(super) trees: Vec<TreeReq>,
}

/// Joins dotted paths (YAML or JSON); an empty base is the root.
pub(super) fn join(base: &str, part: &str) -> String {
    if base.is_empty() {
        part.to_string()
    } else {
        format!("{base}.{part}")
    }
}

impl<'a> Ctx<'a> {
    pub(super) fn new(flatcar: bool, minor: u8, opts: &'a TranslateOptions) -> Self {
        Ctx {
            flatcar,
            minor,
            opts,
            report: Report::default(),
            origins: HashMap::new(),
            mounts: Vec::new(),
            trees: Vec::new(),
        }
    }
}

impl Ctx<'_> {
    pub(super) fn err(&mut self, msg: impl Into<String>, path: &str, pos: Pos) {
        self.report
            .push(Severity::Error, msg, path.to_string(), Some(pos));
    }
    pub(super) fn warn(&mut self, msg: impl Into<String>, path: &str, pos: Pos) {
        self.report
            .push(Severity::Warning, msg, path.to_string(), Some(pos));
    }
    pub(super) fn origin(&mut self, jpath: &str, ypath: &str, pos: Pos) {
        self.origins
            .entry(jpath.to_string())
            .or_insert_with(|| (ypath.to_string(), pos));
    }

    pub(super) fn local_path(&mut self, rel: &str, ypath: &str, pos: Pos) -> Option<PathBuf> {
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

    pub(super) fn read_local(&mut self, rel: &str, ypath: &str, pos: Pos) -> Option<Vec<u8>> {
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

/// An I/O error in the words of Go's `os` errors, as Butane prints them.
pub(super) fn io_msg(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "is a directory".into(),
        _ => e.to_string(),
    }
}
