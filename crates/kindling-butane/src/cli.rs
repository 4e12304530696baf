//! `butane`-compatible command line: `kindling butane [INPUT] [-o OUTPUT] [-p] [-s] [-d DIR]`.
//!
//! Exit codes as in Butane's `internal/main.go`: 0 on success, 1 on any error (including
//! warnings under `--strict`), 2 for usage errors (clap's default). Diagnostics go to stderr,
//! the config (followed by a newline) to stdout or `--output`.

use crate::{TranslateOptions, translate};
use std::io::{Read, Write};
use std::path::PathBuf;

/// Arguments of `kindling butane`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ButaneArgs {
    /// Butane config to read (stdin when omitted).
    pub input: Option<PathBuf>,
    /// Write the Ignition config to this file instead of stdout.
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// Output formatted JSON (2-space indent).
    #[arg(short = 'p', long = "pretty")]
    pub pretty: bool,
    /// Fail on any warning.
    #[arg(short = 's', long = "strict")]
    pub strict: bool,
    /// Allow embedding local files from this directory.
    #[arg(short = 'd', long = "files-dir")]
    pub files_dir: Option<PathBuf>,
    /// Check the config without producing output.
    #[arg(short = 'c', long = "check")]
    pub check: bool,
}

/// Runs the command, writing to the process's stdout/stderr. Returns the exit code.
pub fn run(args: ButaneArgs) -> i32 {
    let mut stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    run_with(args, &mut stdin, &mut stdout, &mut stderr)
}

/// [`run`] with explicit streams (for tests and embedding).
pub fn run_with(
    args: ButaneArgs,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let (name, data) = match &args.input {
        Some(p) => match std::fs::read(p) {
            Ok(d) => (p.display().to_string(), d),
            Err(e) => {
                let _ = writeln!(stderr, "failed to open {}: {e}", p.display());
                return 1;
            }
        },
        None => {
            let mut d = Vec::new();
            if let Err(e) = stdin.read_to_end(&mut d) {
                let _ = writeln!(stderr, "failed to read <stdin>: {e}");
                return 1;
            }
            ("<stdin>".to_string(), d)
        }
    };
    let opts = TranslateOptions {
        files_dir: args.files_dir.clone(),
        strict: false,
        no_resource_auto_compression: false,
    };
    let result = translate(&data, &opts);
    let report = match &result {
        Ok(t) => t.warnings.clone(),
        Err(e) => e.report.clone(),
    };
    for e in &report.entries {
        let _ = writeln!(stderr, "{name}: {e}");
    }
    let t = match result {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(stderr, "Error translating config: {}", e.message);
            return 1;
        }
    };
    if args.strict && !report.is_empty() {
        let _ = writeln!(
            stderr,
            "Config produced warnings and --strict was specified"
        );
        return 1;
    }
    if args.check {
        return 0;
    }
    let mut body = if args.pretty { t.pretty() } else { t.json };
    body.push('\n');
    match &args.output {
        Some(p) => {
            if let Err(e) = std::fs::write(p, body) {
                let _ = writeln!(stderr, "failed to open {}: {e}", p.display());
                return 1;
            }
        }
        None => {
            if let Err(e) = stdout.write_all(body.as_bytes()) {
                let _ = writeln!(stderr, "Failed to write config to stdout: {e}");
                return 1;
            }
        }
    }
    0
}
