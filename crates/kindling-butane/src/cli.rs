//! `butane`-compatible command line:
//! `kindling butane [INPUT] [-o OUTPUT] [-p] [-s] [-c] [-r] [-d DIR] [-V]`.
//!
//! The flags are Butane's (`internal/main.go`): `-c/--check`, `-s/--strict`, `-p/--pretty`,
//! `-r/--raw`, `--raw-errors`, `--color`, `-o/--output`, `-d/--files-dir`, `-V/--version` and the
//! deprecated hidden `--input`. Butane's hidden `-D/--debug` (log translations) is not provided.
//!
//! `--raw` ("never wrap in a MachineConfig; force Ignition output") only changes anything for
//! Butane's `openshift` variant, which Kindling does not translate; for the variants Kindling
//! supports (`fcos`, `flatcar`) the output is always plain Ignition, with or without `--raw`,
//! exactly as with `butane`. Diagnostics are always printed in the plain form `butane` prints
//! with `--raw-errors`, never coloured, so `--raw-errors` and `--color` are accepted and change
//! nothing.
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
    #[arg(conflicts_with = "input_flag")]
    pub input: Option<PathBuf>,
    /// Deprecated in Butane (name the file directly instead): read from this input file.
    #[arg(long = "input", id = "input_flag", value_name = "INPUT", hide = true)]
    pub input_flag: Option<PathBuf>,
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
    /// Never wrap in a MachineConfig; force Ignition output. Only Butane's `openshift`
    /// variant (not supported by Kindling) wraps: `fcos` and `flatcar` always give plain Ignition.
    #[arg(short = 'r', long = "raw")]
    pub raw: bool,
    /// Show raw errors rather than pretty printing them (Kindling always prints them plain).
    #[arg(long = "raw-errors")]
    pub raw_errors: bool,
    /// Control color output: auto, always or never (Kindling never colours its diagnostics).
    #[arg(
        long = "color",
        alias = "colour",
        require_equals = true,
        value_name = "WHEN",
        num_args = 0..=1,
        default_missing_value = "always",
        value_parser = ["auto", "always", "never", "yes", "no"]
    )]
    pub color: Option<String>,
    /// Print the version and exit.
    #[arg(short = 'V', long = "version")]
    pub version: bool,
}

/// What `--version` prints: Kindling's own version, not a Butane release's.
pub fn version_string() -> String {
    format!(
        "kindling butane {} (Butane-compatible)",
        env!("CARGO_PKG_VERSION")
    )
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
    if args.version {
        return match writeln!(stdout, "{}", version_string()) {
            Ok(()) => 0,
            Err(_) => 1,
        };
    }
    // `--raw` needs no handling: Kindling's variants never wrap in a MachineConfig.
    let (name, data) = match args.input.as_ref().or(args.input_flag.as_ref()) {
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
