//! Sugar of resources and file contents: `inline` and `local` become data URLs (gzip unless
//! turned off), and configs merged or replaced through `ignition.config` are validated.

use super::ctx::{Ctx, Fields, Sugar, join};
use super::header::spec_for_fcos;
use crate::dataurl;
use crate::schema::Obj;
use crate::validate;
use crate::yaml::Pos;
use serde_json::Value;

const ERR_SOURCES: &str = "only one of the following can be set: inline, local, source";

/// `inline`/`local` of a resource or file contents: one source at most, turned into a data URL.
pub(super) fn hook_resource(ctx: &mut Ctx<'_>, out: &mut Fields, sugar: &Sugar<'_>, obj: &Obj) {
    let (ypath, jpath) = (sugar.ypath, sugar.jpath);
    let local = sugar.get("local");
    let inline = sugar.get("inline");
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
        let pos = ctx
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
        ctx.err(ERR_SOURCES, &join(ypath, "inline"), pos);
        return;
    }
    if count > 1 {
        if let Some((name, pos)) = last {
            ctx.err(ERR_SOURCES, &join(ypath, name), pos);
        }
        return;
    }
    let (data, yp, pos) = if let Some((Some(Value::String(s)), pos)) = inline {
        (s.into_bytes(), join(ypath, "inline"), pos)
    } else if let Some((Some(Value::String(s)), pos)) = local {
        let yp = join(ypath, "local");
        match ctx.read_local(&s, &yp, pos) {
            Some(d) => (d, yp, pos),
            None => return,
        }
    } else {
        return;
    };
    ctx.origin(&join(jpath, "source"), &yp, pos);
    if obj.name == "Resource" && jpath.starts_with("ignition.config") {
        check_embedded_config(ctx, &data, &yp, pos);
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
        !ctx.opts.no_resource_auto_compression,
    );
    out.insert("source", Value::String(d.url));
    if let Some(c) = d.compression {
        out.insert("compression", Value::String(c.to_string()));
        ctx.origin(&join(jpath, "compression"), &yp, pos);
    }
}

/// Butane (fcos >= 1.1.0) validates inline/local configs merged or replaced through
/// `ignition.config`: skipped with a warning unless they use this spec's version.
fn check_embedded_config(ctx: &mut Ctx<'_>, data: &[u8], ypath: &str, pos: Pos) {
    let spec = spec_for_fcos(ctx.minor).unwrap_or("");
    let version = serde_json::from_slice::<Value>(data).ok().and_then(|v| {
        v.pointer("/ignition/version")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    match version.as_deref() {
        Some(v) if v != spec && !v.is_empty() => {
            ctx.warn(
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
                ctx.report.push(
                    e.severity,
                    format!("{}{inner}", e.message),
                    ypath.to_string(),
                    Some(pos),
                );
            }
        }
    }
}
