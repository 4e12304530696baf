//! passwd sugar: `ssh_authorized_keys_local` of a user, read from the files directory.

use super::ctx::{Ctx, ERR_NO_FILES_DIR, Fields, Sugar, join};
use serde_json::Value;

/// `ssh_authorized_keys_local`: one key a non-empty line, after the inline keys.
pub(super) fn ssh_keys_local(ctx: &mut Ctx<'_>, out: &mut Fields, sugar: &Sugar<'_>) {
    let (ypath, jpath) = (sugar.ypath, sugar.jpath);
    if let Some((Some(Value::Array(files)), pos)) = sugar.get("ssh_authorized_keys_local") {
        let yp = join(ypath, "ssh_authorized_keys_local");
        if ctx.opts.files_dir.is_none() {
            ctx.err(ERR_NO_FILES_DIR, &yp, pos);
        } else {
            let mut keys = match out.remove("sshAuthorizedKeys") {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            };
            for (i, f) in files.iter().enumerate() {
                let Some(f) = f.as_str() else { continue };
                let yp_i = join(&yp, &i.to_string());
                if let Some(data) = ctx.read_local(f, &yp_i, pos) {
                    let text = String::from_utf8_lossy(&data).into_owned();
                    for line in text.split('\n') {
                        let line = line.strip_suffix('\r').unwrap_or(line);
                        if !line.is_empty() {
                            let jp =
                                join(&join(jpath, "sshAuthorizedKeys"), &keys.len().to_string());
                            ctx.origin(&jp, &yp_i, pos);
                            keys.push(Value::String(line.to_string()));
                        }
                    }
                }
            }
            if !keys.is_empty() {
                out.insert("sshAuthorizedKeys", Value::Array(keys));
            }
        }
    }
}
