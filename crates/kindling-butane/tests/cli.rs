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
