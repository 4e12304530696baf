//! Butane (`fcos` 1.0.0 - 1.6.0) to Ignition translation.
//!
//! [`translate`] runs the steps in order: [`header`] reads the variant and version, [`walk`]
//! turns the YAML into JSON along the schema and hands each object's sugar to its section
//! ([`resource`], [`systemd`], [`passwd`], [`storage`], [`trees`]), [`bootdev`](crate::bootdev)
//! desugars `boot_device` and `grub`, [`origins`] keeps YAML positions across merges,
//! [`output`] orders the result, and [`validate`](crate::validate) checks it.

mod ctx;
mod header;
mod origins;
mod output;
mod passwd;
mod resource;
mod storage;
mod systemd;
mod trees;
mod types;
mod walk;

pub use header::spec_for_fcos;
pub use types::{TranslateError, TranslateOptions, Translation};

use crate::bootdev;
use crate::validate;
use crate::yaml::{self, Node};
use ctx::Ctx;
use origins::nearest_origin;
use serde_json::Value;
use types::fail;

/// Translates a Butane config. See the crate documentation.
pub fn translate(input: &[u8], opts: &TranslateOptions) -> Result<Translation, TranslateError> {
    let root = header::parse(input)?;
    let header::Header {
        variant,
        version,
        minor,
        flatcar,
        spec,
    } = header::read(&root)?;
    let mut ctx = Ctx::new(flatcar, minor, opts);
    let mut out = walk::config(&mut ctx, &root);
    if ctx.report.has_errors() {
        return Err(fail("source config is invalid", ctx.report));
    }
    // Tag list items with their path so that origins can be remapped after merges.
    origins::tag(&mut out, "");
    systemd::add_mount_units(&mut ctx, &mut out);
    trees::add_trees(&mut ctx, &mut out);
    boot_sugar(&mut ctx, &mut out, &root);
    if ctx.report.has_errors() {
        return Err(fail("source config is invalid", ctx.report));
    }
    origins::settle(&mut out, &mut ctx.origins);
    output::finish(&mut out, spec, minor);
    check_output(&mut ctx, &out, spec);
    if ctx.report.has_errors() {
        return Err(fail("config generated was invalid", ctx.report));
    }
    if opts.strict && ctx.report.has_warnings() {
        return Err(fail(
            "Config produced warnings and --strict was specified",
            ctx.report,
        ));
    }
    Ok(Translation {
        json: crate::json::to_go_json(&out),
        value: out,
        spec_version: spec.to_string(),
        variant,
        version,
        warnings: ctx.report,
    })
}

/// `boot_device` (fcos >= 1.3) and `grub` (fcos >= 1.5), with the partition warnings between
/// them; flatcar has neither and refuses Clevis instead.
fn boot_sugar(ctx: &mut Ctx<'_>, out: &mut Value, root: &Node) {
    if ctx.flatcar {
        storage::reject_clevis(ctx, out);
        return;
    }
    if let Some(bd) = yaml::get(root, "boot_device").filter(|_| ctx.minor >= 3) {
        bootdev::process(&mut ctx.report, out, bd, ctx.minor, &mut ctx.origins);
    }
    storage::partition_warnings(ctx, out);
    if let Some(g) = yaml::get(root, "grub").filter(|_| ctx.minor >= 5) {
        bootdev::grub(
            &mut ctx.report,
            out,
            g,
            ctx.opts.no_resource_auto_compression,
        );
    }
}

/// Ignition's own validation of the result, mapped back to YAML positions.
fn check_output(ctx: &mut Ctx<'_>, out: &Value, spec: &str) {
    let spec_minor = spec.as_bytes().get(2).map(|b| b - b'0').unwrap_or(0);
    for issue in validate::validate_value(out, spec_minor) {
        let (ypath, pos) = nearest_origin(&ctx.origins, &issue.path)
            .unwrap_or_else(|| (issue.path.clone(), (0, 0)));
        let pos = if pos == (0, 0) { None } else { Some(pos) };
        ctx.report.push(issue.severity, issue.message, ypath, pos);
    }
}
