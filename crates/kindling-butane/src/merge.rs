//! Ignition-style merging of two config values (the child overrides the parent; keyed list
//! items merge in place), used to lay Butane's generated sugar under the user's own config.

use serde_json::Value;

/// Key of a list item for Ignition-style merging, by list name.
fn merge_key(list: &str, item: &Value) -> Option<String> {
    let k = |f: &str| item.get(f).and_then(Value::as_str).map(str::to_string);
    match list {
        "files" | "directories" | "links" => k("path"),
        "disks" | "filesystems" => k("device"),
        "raid" | "luks" | "units" | "dropins" | "users" | "groups" => k("name"),
        "partitions" => k("label").or_else(|| item.get("number").map(|n| format!("#{n}"))),
        _ => None,
    }
}

/// Ignition-style merge: `child` overrides `parent`; keyed list items are merged in place, new
/// child items are appended after the parent's.
pub(crate) fn merge(parent: &mut Value, child: Value, name: &str) {
    match (parent, child) {
        (Value::Object(p), Value::Object(c)) => {
            for (k, v) in c {
                match p.get_mut(&k) {
                    Some(pv) => merge(pv, v, &k),
                    None => {
                        p.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(p), Value::Array(c)) => {
            for item in c {
                let key = merge_key(name, &item);
                let existing = key.as_ref().and_then(|key| {
                    p.iter()
                        .position(|x| merge_key(name, x).as_ref() == Some(key))
                });
                match existing {
                    Some(i) => {
                        if let Some(slot) = p.get_mut(i) {
                            merge(slot, item, "");
                        }
                    }
                    None => {
                        if key.is_some() || item.is_object() || !p.contains(&item) {
                            p.push(item)
                        }
                    }
                }
            }
        }
        (p, c) => *p = c,
    }
}
