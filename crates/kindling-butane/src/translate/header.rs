//! Reads the YAML document and its `variant`/`version` header, and maps them to the schema
//! version (the base minor) and the Ignition spec of the output.

use super::types::{TranslateError, fail};
use crate::report::{Report, Severity};
use crate::yaml::{self, Kind, Node, Pos};

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

/// What the header says: the variant and version as written, the base minor of the schema
/// (flatcar maps onto the fcos minors) and the Ignition spec the output has.
pub(super) struct Header {
    pub(super) variant: String,
    pub(super) version: String,
    pub(super) minor: u8,
    pub(super) flatcar: bool,
    pub(super) spec: &'static str,
}

/// Parses the input as YAML whose root is a mapping (or empty); anything else fails with
/// `Error unmarshaling yaml`.
pub(super) fn parse(input: &[u8]) -> Result<Node, TranslateError> {
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
    if !matches!(root.kind, Kind::Map(_) | Kind::Null) {
        report.push(
            Severity::Error,
            format!("cannot unmarshal {} into Config", root.tag_name()),
            "",
            Some(root.pos),
        );
        return Err(fail("Error unmarshaling yaml", report));
    }
    Ok(root)
}

/// Reads `variant` and `version` from the root of a parsed config.
pub(super) fn read(root: &Node) -> Result<Header, TranslateError> {
    let mut report = Report::default();
    let items: &[(yaml::Key, Node)] = match &root.kind {
        Kind::Map(items) => items,
        _ => &[],
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
    Ok(Header {
        variant,
        version,
        minor,
        flatcar,
        spec,
    })
}
