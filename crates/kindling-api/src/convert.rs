//! matchbox's objects between their protocol-buffer form and their files, as matchbox
//! converts them: a group is written as its "rich" JSON form (metadata as an object) and
//! a profile as its fields, both with `json.MarshalIndent(.., "", "\t")` and empty fields
//! left out; reading back parses the file with the loader's own parsers (a `mac` selector
//! comes back normalised, metadata compact with sorted keys, as matchbox returns them).

use std::collections::BTreeMap;

use kindling_model::gojson::{sort_keys, to_go_json, to_go_json_indent};
use serde_json::{Map, Value};

use crate::pb::storagepb;

/// Why a message cannot become a file (matchbox's words where it has some).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// matchbox: "Id is required".
    #[error("Id is required")]
    NoId,
    /// matchbox: "Group requires a Profile".
    #[error("Group requires a Profile")]
    NoProfile,
    #[error("metadata is not a JSON object: {0}")]
    Metadata(String),
}

fn put_str(obj: &mut Map<String, Value>, key: &str, v: &str) {
    if !v.is_empty() {
        obj.insert(key.into(), Value::String(v.into()));
    }
}

fn put_list(obj: &mut Map<String, Value>, key: &str, v: &[String]) {
    if !v.is_empty() {
        obj.insert(
            key.into(),
            Value::Array(v.iter().map(|s| Value::String(s.clone())).collect()),
        );
    }
}

/// The file of a group put through the API (`groups/<id>.json`).
pub fn group_file(g: &storagepb::Group) -> Result<Vec<u8>, Refused> {
    if g.id.is_empty() {
        return Err(Refused::NoId);
    }
    if g.profile.is_empty() {
        return Err(Refused::NoProfile);
    }
    let mut obj = Map::new();
    put_str(&mut obj, "id", &g.id);
    put_str(&mut obj, "name", &g.name);
    put_str(&mut obj, "profile", &g.profile);
    if !g.selector.is_empty() {
        let sorted: BTreeMap<&String, &String> = g.selector.iter().collect();
        obj.insert(
            "selector".into(),
            Value::Object(
                sorted
                    .into_iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
        );
    }
    if !g.metadata.is_empty() {
        let mut meta: Value =
            serde_json::from_slice(&g.metadata).map_err(|e| Refused::Metadata(e.to_string()))?;
        match &meta {
            // Go unmarshals `null` into the map as nothing.
            Value::Null => {}
            Value::Object(m) if m.is_empty() => {}
            Value::Object(_) => {
                sort_keys(&mut meta);
                obj.insert("metadata".into(), meta);
            }
            other => {
                return Err(Refused::Metadata(format!(
                    "found {}",
                    kindling_model::json::kind(other)
                )));
            }
        }
    }
    Ok(to_go_json_indent(&Value::Object(obj), "\t").into_bytes())
}

/// A loaded group as matchbox's `GroupGet` returns it.
pub fn group_message(g: &kindling_model::Group) -> storagepb::Group {
    let mut meta = Value::Object(g.metadata());
    let metadata = if meta.as_object().is_some_and(Map::is_empty) {
        Vec::new()
    } else {
        sort_keys(&mut meta);
        to_go_json(&meta).into_bytes()
    };
    storagepb::Group {
        id: g.id.to_string(),
        name: g.name.to_string(),
        profile: g.profile.to_string(),
        selector: g
            .selector
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        metadata,
    }
}

/// The file of a profile put through the API (`profiles/<id>.json`), fields in the order
/// of matchbox's message.
pub fn profile_file(p: &storagepb::Profile) -> Result<Vec<u8>, Refused> {
    if p.id.is_empty() {
        return Err(Refused::NoId);
    }
    let mut obj = Map::new();
    put_str(&mut obj, "id", &p.id);
    put_str(&mut obj, "name", &p.name);
    put_str(&mut obj, "ignition_id", &p.ignition_id);
    put_str(&mut obj, "cloud_id", &p.cloud_id);
    if let Some(b) = &p.boot {
        let mut boot = Map::new();
        put_str(&mut boot, "kernel", &b.kernel);
        put_list(&mut boot, "initrd", &b.initrd);
        put_list(&mut boot, "args", &b.args);
        obj.insert("boot".into(), Value::Object(boot));
    }
    put_str(&mut obj, "generic_id", &p.generic_id);
    Ok(to_go_json_indent(&Value::Object(obj), "\t").into_bytes())
}

/// A loaded profile as matchbox's `ProfileGet` returns it.
pub fn profile_message(p: &kindling_model::Profile) -> storagepb::Profile {
    storagepb::Profile {
        id: p.id.clone(),
        name: p.name.clone(),
        ignition_id: p.ignition_id.clone(),
        cloud_id: p.cloud_id.clone(),
        boot: p.boot.as_ref().map(|b| storagepb::NetBoot {
            kernel: b.kernel.clone(),
            initrd: b.initrd.clone(),
            args: b.args.clone(),
        }),
        generic_id: p.generic_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(meta: &[u8]) -> storagepb::Group {
        storagepb::Group {
            id: "node1".into(),
            name: "Node <1>".into(),
            profile: "worker".into(),
            selector: [
                ("os".to_string(), "installed".to_string()),
                ("mac".to_string(), "52-54-00-A1-9C-AE".to_string()),
            ]
            .into(),
            metadata: meta.to_vec(),
        }
    }

    #[test]
    fn a_group_file_is_what_matchbox_writes() {
        let text = group_file(&group(br#"{"z":{"b":2,"a":[1]},"a":"x&y"}"#)).unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "{\n\t\"id\": \"node1\",\n\t\"name\": \"Node \\u003c1\\u003e\",\n\t\"profile\": \"worker\",\n\t\
             \"selector\": {\n\t\t\"mac\": \"52-54-00-A1-9C-AE\",\n\t\t\"os\": \"installed\"\n\t},\n\t\
             \"metadata\": {\n\t\t\"a\": \"x\\u0026y\",\n\t\t\"z\": {\n\t\t\t\"a\": [\n\t\t\t\t1\n\t\t\t],\n\t\t\t\"b\": 2\n\t\t}\n\t}\n}"
        );
        // Read back as matchbox returns it: MAC normalised, metadata compact and sorted.
        let bytes = group_file(&group(br#"{"z":{"b":2,"a":[1]},"a":"x&y"}"#)).unwrap();
        let loaded = kindling_model::Group::parse("node1", &bytes).unwrap();
        let m = group_message(&loaded);
        assert_eq!(m.selector["mac"], "52:54:00:a1:9c:ae");
        assert_eq!(m.metadata, br#"{"a":"x\u0026y","z":{"a":[1],"b":2}}"#);
    }

    #[test]
    fn groups_matchbox_refuses_are_refused() {
        let mut g = group(b"");
        g.profile.clear();
        assert_eq!(group_file(&g), Err(Refused::NoProfile));
        g.id.clear();
        assert_eq!(group_file(&g), Err(Refused::NoId));
        assert!(matches!(
            group_file(&group(b"[1]")),
            Err(Refused::Metadata(_))
        ));
        assert!(matches!(
            group_file(&group(b"{nope")),
            Err(Refused::Metadata(_))
        ));
        // null and {} mean no metadata.
        for m in [&b"null"[..], b"{}", b""] {
            let text = String::from_utf8(group_file(&group(m)).unwrap()).unwrap();
            assert!(!text.contains("metadata"), "{text}");
        }
    }

    #[test]
    fn a_profile_file_keeps_matchbox_field_order_and_omits_empty_fields() {
        let p = storagepb::Profile {
            id: "worker".into(),
            ignition_id: "worker.yaml.tmpl".into(),
            boot: Some(storagepb::NetBoot {
                kernel: "/assets/vmlinuz".into(),
                initrd: vec!["/assets/initramfs.img".into()],
                args: vec![],
            }),
            generic_id: "g".into(),
            ..Default::default()
        };
        let text = String::from_utf8(profile_file(&p).unwrap()).unwrap();
        assert_eq!(
            text,
            "{\n\t\"id\": \"worker\",\n\t\"ignition_id\": \"worker.yaml.tmpl\",\n\t\"boot\": {\n\t\t\
             \"kernel\": \"/assets/vmlinuz\",\n\t\t\"initrd\": [\n\t\t\t\"/assets/initramfs.img\"\n\t\t]\n\t},\n\t\
             \"generic_id\": \"g\"\n}"
        );
        let loaded = kindling_model::Profile::parse("worker", text.as_bytes()).unwrap();
        assert_eq!(profile_message(&loaded), p);
        assert_eq!(
            profile_file(&storagepb::Profile::default()),
            Err(Refused::NoId)
        );
    }
}
