//! The shape of the output: `ignition.version` set, every object in Go struct field order,
//! `ignition` first.

use crate::schema::{self, Obj, Ty};
use serde_json::{Value, json};

/// Sets the spec version and puts the config in Go key order.
pub(super) fn finish(out: &mut Value, spec: &str, minor: u8) {
    // ignition.version
    if let Value::Object(m) = out {
        let ign = m.entry("ignition").or_insert_with(|| json!({}));
        if let Value::Object(im) = ign {
            im.insert("version".into(), Value::String(spec.to_string()));
        }
    }
    reorder(out, &schema::CONFIG, minor);
    if let Some(Value::Object(im)) = out.get_mut("ignition")
        && let Some(v) = im.remove("version")
    {
        im.insert("version".into(), v);
    }
    // Top-level key order: ignition first.
    if let Value::Object(m) = out {
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
