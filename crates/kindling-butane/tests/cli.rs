//! The `butane`-compatible CLI: flags, streams and exit codes.

use clap::Parser;
use kindling_butane::cli::{ButaneArgs, run_with};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: ButaneArgs,
}

fn run(argv: &[&str], stdin: &str) -> (i32, String, String) {
    let cli = Cli::try_parse_from(std::iter::once("butane").chain(argv.iter().copied()))
        .expect("flags parse");
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = run_with(cli.args, &mut stdin.as_bytes(), &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

const OK: &str = "variant: fcos\nversion: 1.4.0\npasswd:\n  users:\n    - name: core\n";
const WARN: &str =
    "variant: fcos\nversion: 1.4.0\npasswd:\n  users:\n    - name: core\n      pasword_hash: x\n";

#[test]
fn stdin_to_stdout_compact_with_newline() {
    let (code, out, err) = run(&[], OK);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "{\"ignition\":{\"version\":\"3.3.0\"},\"passwd\":{\"users\":[{\"name\":\"core\"}]}}\n"
    );
    assert_eq!(err, "");
}

#[test]
fn pretty_uses_two_spaces() {
    let (code, out, _) = run(&["--pretty"], OK);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "{\n  \"ignition\": {\n    \"version\": \"3.3.0\"\n  },\n  \"passwd\": {\n    \"users\": [\n      {\n        \"name\": \"core\"\n      }\n    ]\n  }\n}\n"
    );
    let (_, short, _) = run(&["-p"], OK);
    assert_eq!(short, out);
}

#[test]
fn input_file_output_file_and_files_dir() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("motd"), "hello").unwrap();
    let input = d.path().join("config.bu");
    std::fs::write(&input, "variant: fcos\nversion: 1.1.0\nstorage:\n  files:\n    - path: /etc/motd\n      contents:\n        local: motd\n").unwrap();
    let output = d.path().join("config.ign");
    let dir = d.path().to_str().unwrap();
    let (code, out, err) = run(
        &[
            "-d",
            dir,
            "-o",
            output.to_str().unwrap(),
            input.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "");
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "{\"ignition\":{\"version\":\"3.1.0\"},\"storage\":{\"files\":[{\"path\":\"/etc/motd\",\"contents\":{\"compression\":\"\",\"source\":\"data:,hello\"}}]}}\n"
    );
    // Without --files-dir the same input fails, exit 1.
    let (code, _, err) = run(&[input.to_str().unwrap()], "");
    assert_eq!(code, 1);
    assert!(err.contains("line 7, column 9 (storage.files.0.contents.local): local file paths are relative to a files directory"), "{err}");
    assert!(
        err.ends_with("Error translating config: source config is invalid\n"),
        "{err}"
    );
}

#[test]
fn warnings_and_strict() {
    let (code, out, err) = run(&[], WARN);
    assert_eq!(code, 0);
    assert!(!out.is_empty());
    assert_eq!(
        err,
        "<stdin>: warning at line 6, column 7 (passwd.users.0.pasword_hash): unused key pasword_hash\n"
    );
    let (code, out, err) = run(&["--strict"], WARN);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert!(
        err.ends_with("Config produced warnings and --strict was specified\n"),
        "{err}"
    );
    let (code, _, _) = run(&["-s"], OK);
    assert_eq!(code, 0);
}

#[test]
fn errors_exit_1_and_missing_input() {
    let (code, out, err) = run(&[], "variant: fcos\nversion: 1.7.0-experimental\n");
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert!(err.contains("line 2, column 10 (version): No translator exists for variant fcos with version 1.7.0-experimental"), "{err}");
    let (code, _, err) = run(&["/nonexistent/x.bu"], "");
    assert_eq!(code, 1);
    assert!(err.starts_with("failed to open /nonexistent/x.bu"), "{err}");
    let (code, out, _) = run(&["--check"], OK);
    assert_eq!((code, out.as_str()), (0, ""));
}

/// Issue 15: `--version`/`-V` print an honest version and exit 0 without reading input.
#[test]
fn version_flag() {
    for flag in ["--version", "-V"] {
        let (code, out, err) = run(&[flag], "not: [butane");
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            out,
            format!(
                "kindling butane {} (Butane-compatible)\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(err, "");
    }
}

/// `--raw`/`-r` never wraps in a MachineConfig: for the variants Kindling supports
/// (`fcos`, `flatcar`) the output is plain Ignition with or without it, as with `butane`.
#[test]
fn raw_flag_gives_the_same_plain_ignition() {
    let flatcar = "variant: flatcar\nversion: 1.0.0\npasswd:\n  users:\n    - name: core\n";
    for (input, ign) in [(OK, "3.3.0"), (flatcar, "3.3.0")] {
        let (code, plain, err) = run(&[], input);
        assert_eq!(code, 0, "{err}");
        assert!(
            plain.starts_with(&format!("{{\"ignition\":{{\"version\":\"{ign}\"}}")),
            "{plain}"
        );
        for flag in ["--raw", "-r"] {
            let (code, raw, err) = run(&[flag], input);
            assert_eq!(code, 0, "{err}");
            assert_eq!(raw, plain);
            assert!(!raw.contains("MachineConfig"));
        }
        let (_, pretty_raw, _) = run(&["-r", "-p"], input);
        assert_eq!(pretty_raw, run(&["-p"], input).1);
    }
    // The one variant butane wraps is not supported, with or without --raw.
    let openshift = "variant: openshift\nversion: 4.14.0\nmetadata:\n  name: x\n  labels:\n    machineconfiguration.openshift.io/role: worker\n";
    for argv in [&[][..], &["--raw"][..]] {
        let (code, out, err) = run(argv, openshift);
        assert_eq!(code, 1, "{err}");
        assert_eq!(out, "");
        assert!(err.contains("variant openshift"), "{err}");
    }
}

/// Butane's other flags are accepted: `--raw-errors` and `--color[=WHEN]` (Kindling's
/// diagnostics are always plain and uncoloured) and the deprecated `--input FILE`.
#[test]
fn raw_errors_color_and_input_flags() {
    let (code, out, err) = run(&[], WARN);
    assert_eq!(code, 0);
    assert!(!err.is_empty());
    for argv in [
        &["--raw-errors"][..],
        &["--color"][..],
        &["--color=never"][..],
        &["--color=always"][..],
        &["--colour=auto"][..],
    ] {
        let (c, o, e) = run(argv, WARN);
        assert_eq!((c, &o, &e), (code, &out, &err), "{argv:?}");
        assert!(!e.contains('\u{1b}'), "{argv:?}: {e}");
    }
    // `--color` does not swallow the input file name.
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("config.bu");
    std::fs::write(&input, OK).unwrap();
    let path = input.to_str().unwrap();
    let (code, from_file, err) = run(&["--color", path], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(from_file, run(&[], OK).1);
    let (code, via_flag, err) = run(&["--input", path], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(via_flag, from_file);
    // Both forms at once is a usage error (exit 2 in butane and clap).
    let e = match Cli::try_parse_from(["butane", "--input", path, path]) {
        Ok(_) => panic!("--input with a positional input parsed"),
        Err(e) => e,
    };
    assert_eq!(e.exit_code(), 2);
    assert!(
        Cli::try_parse_from(["butane", "--color=sometimes"]).is_err(),
        "bad --color value accepted"
    );
}
