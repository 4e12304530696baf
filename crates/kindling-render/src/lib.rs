//! Rendering for Kindling's matchbox-compatible endpoints. Pure functions:
//! no I/O, no configuration.

pub mod gofmt;
pub mod sniff;

use std::collections::BTreeMap;
use std::sync::Arc;

use kindling_model::{Boot, Group, Labels};
use serde_json::{Map, Value};

pub use gofmt::go_float;
pub use sniff::detect_content_type;

/// matchbox's `/boot.ipxe` bootstrap script (current form, with `arch`).
pub const BOOTSTRAP_IPXE: &str = "#!ipxe\nchain ipxe?uuid=${uuid}&mac=${mac:hexhyp}&domain=${domain}&hostname=${hostname}&serial=${serial}&arch=${buildarch:uristring}\n";

/// The body of `/`.
pub const HOME: &str = "matchbox\n";

/// The iPXE script for a profile's boot section, byte for byte as matchbox's
/// template renders it. `None` when the profile has no `boot` (matchbox's
/// template fails on the nil pointer and answers 404).
pub fn ipxe_script(boot: Option<&Boot>) -> Option<String> {
    let boot = boot?;
    // The exact size: one allocation.
    let len = "#!ipxe\nkernel ".len()
        + boot.kernel.len()
        + boot.args.iter().map(|a| 1 + a.len()).sum::<usize>()
        + boot
            .initrd
            .iter()
            .map(|i| "\ninitrd ".len() + i.len())
            .sum::<usize>()
        + "\nboot\n".len();
    let mut s = String::with_capacity(len);
    s.push_str("#!ipxe\nkernel ");
    s.push_str(&boot.kernel);
    for a in &boot.args {
        s.push(' ');
        s.push_str(a);
    }
    for i in &boot.initrd {
        s.push_str("\ninitrd ");
        s.push_str(i);
    }
    s.push_str("\nboot\n");
    debug_assert_eq!(s.len(), len);
    Some(s)
}

/// The GRUB config for a profile's boot section, byte for byte as matchbox's
/// template renders it (quirks included: quoted kernel, unquoted args, two
/// spaces after `initrd`, each initrd quoted as one string).
pub fn grub_config(boot: Option<&Boot>) -> Option<String> {
    let boot = boot?;
    let args: String = boot.args.iter().map(|a| format!(" {a}")).collect();
    let initrds: String = boot.initrd.iter().map(|i| format!(" \"{i}\"")).collect();
    let entry = |title: &str, linux: &str, initrd: &str| {
        format!(
            "menuentry \"{title}\" {{\necho \"Loading kernel\"\n{linux} \"{}\"{args}\necho \"Loading initrd\"\n{initrd} {initrds}\n}}\n",
            boot.kernel
        )
    };
    Some(format!(
        "default=0\nfallback=1\ntimeout=1\n{}{}",
        entry("CoreOS (EFI)", "linuxefi", "initrdefi"),
        entry("CoreOS (BIOS)", "linux", "initrd")
    ))
}

/// Whether any of the boot section's fields is a template (contains `{{`).
pub fn is_templated(boot: &Boot) -> bool {
    let t = |s: &String| s.contains("{{");
    t(&boot.kernel) || boot.initrd.iter().any(t) || boot.args.iter().any(t)
}

/// A profile's boot section with its templated fields rendered: `kernel`, each `initrd`
/// and each `args` entry that contains `{{` is a Go template, rendered with `data` (what
/// `/generic` templates see: the group's metadata, its selectors, `request`) with
/// `missingkey=error`. Fields without `{{` are left as they are, so a profile without
/// templates renders byte for byte as in matchbox, and `data` is not even built
/// (`Cow::Borrowed`). The error names the field.
pub fn render_boot<'a>(
    boot: &'a Boot,
    data: impl FnOnce() -> Map<String, Value>,
) -> Result<std::borrow::Cow<'a, Boot>, String> {
    let templated = |s: &String| s.contains("{{");
    if !templated(&boot.kernel)
        && !boot.initrd.iter().any(templated)
        && !boot.args.iter().any(templated)
    {
        return Ok(std::borrow::Cow::Borrowed(boot));
    }
    let data = data();
    let one = |field: String, s: &String| -> Result<String, String> {
        if templated(s) {
            render_template(s, &data).map_err(|e| format!("profile boot.{field}: {e}"))
        } else {
            Ok(s.clone())
        }
    };
    let mut out = Boot {
        kernel: one("kernel".into(), &boot.kernel)?,
        ..Boot::default()
    };
    for (i, s) in boot.initrd.iter().enumerate() {
        out.initrd.push(one(format!("initrd[{i}]"), s)?);
    }
    for (i, s) in boot.args.iter().enumerate() {
        out.args.push(one(format!("args[{i}]"), s)?);
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// The variables a template sees, merged as matchbox does:
/// group metadata, then selectors (keys lower-cased) over it, then
/// `request` = `{query: labels, raw_query}` over everything.
pub fn template_data(group: &Group, labels: &Labels, raw_query: &str) -> Map<String, Value> {
    let mut data = group.metadata();
    for (k, v) in &group.selector {
        data.insert(k.to_lowercase(), Value::String(v.to_string()));
    }
    let query: Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut request = Map::new();
    request.insert("query".into(), Value::Object(query));
    request.insert("raw_query".into(), Value::String(raw_query.to_string()));
    data.insert("request".into(), Value::Object(request));
    data
}

/// `/metadata`'s env-file rendering: nested keys joined with `_` and
/// upper-cased; strings, booleans and numbers (Go `%v`) printed; arrays and
/// nulls dropped. Kindling sorts the lines (matchbox's order is random).
pub fn metadata_env(data: &Map<String, Value>) -> String {
    fn walk(prefix: &str, m: &Map<String, Value>, out: &mut Vec<(String, String)>) {
        for (k, v) in m {
            let name = format!("{prefix}{k}");
            match v {
                Value::String(s) => out.push((name.to_uppercase(), s.clone())),
                Value::Bool(b) => out.push((name.to_uppercase(), b.to_string())),
                Value::Number(n) => {
                    out.push((name.to_uppercase(), go_float(n.as_f64().unwrap_or(0.0))))
                }
                Value::Object(inner) => walk(&format!("{name}_"), inner, out),
                Value::Array(_) | Value::Null => {}
            }
        }
    }
    let mut lines = Vec::new();
    walk("", data, &mut lines);
    lines.sort();
    let mut s = String::new();
    for (k, v) in lines {
        s.push_str(&k);
        s.push('=');
        s.push_str(&v);
        s.push('\n');
    }
    s
}

/// A template that failed to parse or execute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// A parsed Go template, reusable across requests.
pub struct Template(gotmpl::Template);

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Template")
    }
}

impl Template {
    /// Parses Go `text/template` source with matchbox's options
    /// (`missingkey=error`, no extra functions).
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        gotmpl::Template::new("")
            .missing_key(gotmpl::MissingKey::Error)
            .parse(src)
            .map(Template)
            .map_err(|e| TemplateError(e.to_string()))
    }

    /// Executes against template data (see [`template_data`]).
    pub fn render(&self, data: &Map<String, Value>) -> Result<String, TemplateError> {
        let v = to_go_map(data);
        self.0
            .execute_to_string(&v)
            .map_err(|e| TemplateError(e.to_string()))
    }
}

/// Parses and renders in one go.
pub fn render_template(src: &str, data: &Map<String, Value>) -> Result<String, TemplateError> {
    Template::parse(src)?.render(data)
}

fn to_go_map(m: &Map<String, Value>) -> gotmpl::Value {
    let map: BTreeMap<Arc<str>, gotmpl::Value> = m
        .iter()
        .map(|(k, v)| (Arc::from(k.as_str()), to_go(v)))
        .collect();
    gotmpl::Value::Map(Arc::new(map))
}

/// JSON -> template value with Go's types: every number is a float64 (as
/// `encoding/json` decodes into `interface{}`). Where Go's `%v` output of a
/// float differs from the template engine's (large or tiny magnitudes, e.g.
/// `1e+06`), the number is handed over pre-formatted so it prints as Go's does.
fn to_go(v: &Value) -> gotmpl::Value {
    match v {
        Value::Null => gotmpl::Value::Nil,
        Value::Bool(b) => gotmpl::Value::Bool(*b),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            let go = go_float(f);
            if go == format!("{f}") {
                gotmpl::Value::Float(f)
            } else {
                gotmpl::Value::String(Arc::from(go.as_str()))
            }
        }
        Value::String(s) => gotmpl::Value::String(Arc::from(s.as_str())),
        Value::Array(a) => gotmpl::Value::List(a.iter().map(to_go).collect::<Vec<_>>().into()),
        Value::Object(m) => to_go_map(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot() -> Boot {
        Boot {
            kernel: "/assets/k".into(),
            initrd: vec!["--name main /assets/i".into(), "/assets/j".into()],
            args: vec!["initrd=main".into(), "a=b".into()],
        }
    }

    #[test]
    fn ipxe_exact() {
        assert_eq!(
            ipxe_script(Some(&boot())).unwrap(),
            "#!ipxe\nkernel /assets/k initrd=main a=b\ninitrd --name main /assets/i\ninitrd /assets/j\nboot\n"
        );
        assert_eq!(
            ipxe_script(Some(&Boot::default())).unwrap(),
            "#!ipxe\nkernel \nboot\n"
        );
        assert_eq!(ipxe_script(None), None);
    }

    #[test]
    fn boot_fields_are_templates_only_when_they_say_so() {
        let boot = Boot {
            kernel: "/assets/{{.os}}/kernel".into(),
            initrd: vec!["/assets/initrd".into()],
            args: vec![
                "ip=${ip}".into(),
                "hostname={{.hostname}}".into(),
                "mac={{.request.query.mac}}".into(),
            ],
        };
        let mut data = Map::new();
        data.insert("os".into(), Value::String("fcos".into()));
        data.insert("hostname".into(), Value::String("node1".into()));
        let mut q = Map::new();
        q.insert("mac".into(), Value::String("52:54:00:00:00:01".into()));
        let mut req = Map::new();
        req.insert("query".into(), Value::Object(q));
        data.insert("request".into(), Value::Object(req));
        let out = render_boot(&boot, || data.clone()).unwrap();
        assert_eq!(out.kernel, "/assets/fcos/kernel");
        assert_eq!(
            out.args,
            ["ip=${ip}", "hostname=node1", "mac=52:54:00:00:00:01"]
        );
        // Nothing templated: borrowed, and the data is never built.
        let plain = Boot {
            kernel: "/k".into(),
            initrd: vec![],
            args: vec!["a=${b}".into()],
        };
        assert!(matches!(
            render_boot(&plain, || unreachable!()).unwrap(),
            std::borrow::Cow::Borrowed(_)
        ));
        // A missing key names the field.
        data.remove("hostname");
        let e = render_boot(&boot, || data.clone()).unwrap_err();
        assert!(e.starts_with("profile boot.args[1]:"), "{e}");
    }

    #[test]
    fn grub_exact() {
        let want = "default=0\nfallback=1\ntimeout=1\nmenuentry \"CoreOS (EFI)\" {\necho \"Loading kernel\"\nlinuxefi \"/assets/k\" initrd=main a=b\necho \"Loading initrd\"\ninitrdefi  \"--name main /assets/i\" \"/assets/j\"\n}\nmenuentry \"CoreOS (BIOS)\" {\necho \"Loading kernel\"\nlinux \"/assets/k\" initrd=main a=b\necho \"Loading initrd\"\ninitrd  \"--name main /assets/i\" \"/assets/j\"\n}\n";
        assert_eq!(grub_config(Some(&boot())).unwrap(), want);
    }

    #[test]
    fn metadata_sorted_and_flattened() {
        let data: Map<String, Value> = serde_json::from_str(
            r#"{"b":"x","a":{"inner":true,"n":1000000,"list":[1]},"nil":null,"request":{"query":{"mac":"m"},"raw_query":"mac=m"}}"#,
        )
        .unwrap();
        assert_eq!(
            metadata_env(&data),
            "A_INNER=true\nA_N=1e+06\nB=x\nREQUEST_QUERY_MAC=m\nREQUEST_RAW_QUERY=mac=m\n"
        );
    }

    #[test]
    fn templates_follow_go() {
        let data: Map<String, Value> =
            serde_json::from_str(r#"{"n":1000000,"f":1.5,"s":"x","m":{"k":"v"}}"#).unwrap();
        assert_eq!(
            render_template("{{.n}} {{.f}} {{.s}} {{.m.k}}", &data).unwrap(),
            "1e+06 1.5 x v"
        );
        assert!(render_template("{{.missing}}", &data).is_err());
        assert!(render_template("{{.m.missing}}", &data).is_err());
        assert!(render_template("{{if index . \"missing\"}}y{{else}}n{{end}}", &data).is_ok());
        assert!(render_template("{{.s", &data).is_err());
    }
}
