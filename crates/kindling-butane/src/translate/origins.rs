//! The YAML origin of each JSON path across merges: list items are tagged with their path
//! before the sugar is merged in, and origins follow the items that moved.

use super::ctx::join;
use crate::yaml::Pos;
use serde_json::Value;
use std::collections::HashMap;

/// Key of the tag that records a list item's JSON path before merges.
const TAG: &str = "\u{0}origin";

/// Tags every list item with its JSON path.
pub(super) fn tag(v: &mut Value, path: &str) {
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

/// The origin of `jpath`, or of its nearest ancestor that has one.
pub(super) fn nearest_origin(
    origins: &HashMap<String, (String, Pos)>,
    jpath: &str,
) -> Option<(String, Pos)> {
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

/// Removes the tags and moves each origin to where its item now is.
pub(super) fn settle(out: &mut Value, origins: &mut HashMap<String, (String, Pos)>) {
    let mut moves = HashMap::new();
    untag(out, "", &mut moves);
    remap(origins, &moves);
}
