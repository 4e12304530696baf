//! `storage.trees`: each tree's local directory becomes files and links of the config, in
//! `filepath.Walk` order.

use super::ctx::{Ctx, Sugar, TreeReq, io_msg};
use crate::dataurl;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// Records a tree to add once the walk is done.
pub(super) fn request(ctx: &mut Ctx<'_>, sugar: &Sugar<'_>) {
    let ypath = sugar.ypath;
    let local = sugar
        .get("local")
        .and_then(|v| v.0)
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    if local.is_empty() {
        ctx.err("local is required", ypath, sugar.pos);
    } else {
        ctx.trees.push(TreeReq {
            ypath: ypath.to_string(),
            pos: sugar.pos,
            local,
            path: sugar
                .get("path")
                .and_then(|v| v.0)
                .and_then(|v| v.as_str().map(str::to_string)),
        });
    }
}

/// Adds the recorded trees to the config.
pub(super) fn add_trees(ctx: &mut Ctx<'_>, out: &mut Value) {
    let trees = std::mem::take(&mut ctx.trees);
    for t in &trees {
        process_tree(ctx, out, t);
    }
}

/// Adds one tree's files and links, refusing nodes the config already has otherwise.
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
