//! A checker for the iPXE scripts Kindling generates: known commands only,
//! every `goto`/`item`/`choose --default` target defined, every label
//! referenced, no duplicate labels, balanced `${...}`.

use std::collections::{BTreeMap, BTreeSet};

/// iPXE commands (from iPXE's command reference).
pub const KNOWN_COMMANDS: &[&str] = &[
    "autoboot",
    "boot",
    "certfree",
    "certstat",
    "certstore",
    "chain",
    "choose",
    "clear",
    "colour",
    "console",
    "cpair",
    "cpuid",
    "dhcp",
    "echo",
    "exit",
    "fcstat",
    "gdbstub",
    "goto",
    "ifclose",
    "ifconf",
    "ifopen",
    "ifstat",
    "imgargs",
    "imgexec",
    "imgextract",
    "imgfetch",
    "imgfree",
    "imgload",
    "imgselect",
    "imgstat",
    "imgtrust",
    "imgverify",
    "inc",
    "initrd",
    "iseq",
    "isset",
    "item",
    "kernel",
    "login",
    "menu",
    "module",
    "nslookup",
    "ntp",
    "param",
    "params",
    "ping",
    "poweroff",
    "prompt",
    "read",
    "reboot",
    "route",
    "sanboot",
    "sanhook",
    "sanunhook",
    "set",
    "shell",
    "show",
    "sleep",
    "sync",
    "vcreate",
    "vdestroy",
];

/// One problem, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Splits a line into words (double quotes group words).
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn braces_balanced(s: &str) -> bool {
    let mut depth = 0i32;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && b.get(i + 1) == Some(&b'{') {
            depth += 1;
            i += 2;
            continue;
        }
        if b[i] == b'}' && depth > 0 {
            depth -= 1;
        }
        i += 1;
    }
    depth == 0
}

/// Options (`--x value` or `--x`) of commands we look into.
fn split_opts<'a>(
    args: &'a [String],
    with_value: &[&str],
) -> (BTreeMap<&'a str, Option<&'a str>>, Vec<&'a str>) {
    let mut opts = BTreeMap::new();
    let mut rest = Vec::new();
    let mut i = 0;
    let mut done = false;
    while i < args.len() {
        let a = args[i].as_str();
        if !done && a == "--" {
            done = true;
        } else if !done && a.starts_with("--") {
            let name = &a[2..];
            if let Some((n, v)) = name.split_once('=') {
                opts.insert(n, Some(v));
            } else if with_value.contains(&name) {
                opts.insert(name, args.get(i + 1).map(|s| s.as_str()));
                i += 1;
            } else {
                opts.insert(name, None);
            }
        } else if !done && a.starts_with('-') && a.len() == 2 {
            // Short options: the ones we use take a value.
            let name = &a[1..];
            opts.insert(name, args.get(i + 1).map(|s| s.as_str()));
            i += 1;
        } else {
            rest.push(a);
        }
        i += 1;
    }
    (opts, rest)
}

/// Checks a script; an empty list means it parses.
pub fn check_script(script: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut p = |line: usize, m: String| problems.push(Problem { line, message: m });
    let mut lines = script.lines().enumerate();
    match lines.next() {
        Some((_, first)) if first.trim_end() == "#!ipxe" => {}
        _ => p(1, "script must start with #!ipxe".into()),
    }
    let mut defined: BTreeMap<String, usize> = BTreeMap::new();
    let mut referenced: Vec<(usize, String)> = Vec::new();
    let mut item_labels: BTreeSet<String> = BTreeSet::new();
    let mut choose_vars: BTreeSet<String> = BTreeSet::new();
    let mut dynamic_gotos: Vec<(usize, String)> = Vec::new();
    let mut in_menu = false;
    for (i, raw) in lines {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !braces_balanced(line) {
            p(n, "unbalanced ${...}".into());
        }
        if let Some(label) = line.strip_prefix(':') {
            if !valid_label(label) {
                p(n, format!("bad label {label:?}"));
            } else if let Some(prev) = defined.insert(label.to_string(), n) {
                p(n, format!("label {label:?} already defined on line {prev}"));
            }
            continue;
        }
        let ws = match words(line) {
            Ok(w) => w,
            Err(e) => {
                p(n, e);
                continue;
            }
        };
        // Commands joined by || and &&.
        let mut cmds: Vec<Vec<String>> = vec![Vec::new()];
        for w in ws {
            if w == "||" || w == "&&" {
                cmds.push(Vec::new());
            } else if let Some(last) = cmds.last_mut() {
                last.push(w);
            }
        }
        let count = cmds.len();
        for (ci, cmd) in cmds.into_iter().enumerate() {
            let Some((name, args)) = cmd.split_first() else {
                // `command ||` (ignore failure) is fine; other empties are not.
                if ci + 1 != count || count == 1 {
                    p(n, "empty command next to || or &&".into());
                }
                continue;
            };
            if !KNOWN_COMMANDS.contains(&name.as_str()) {
                p(n, format!("unknown command {name:?}"));
                continue;
            }
            match name.as_str() {
                "goto" => match args {
                    [t] if t.contains("${") => dynamic_gotos.push((n, t.clone())),
                    [t] => referenced.push((n, t.clone())),
                    _ => p(n, "goto takes exactly one label".into()),
                },
                "menu" => in_menu = true,
                "item" => {
                    if !in_menu {
                        p(n, "item before any menu".into());
                    }
                    let (opts, rest) = split_opts(args, &["key", "menu"]);
                    if !opts.contains_key("gap") {
                        match rest.first() {
                            Some(l) if valid_label(l) => {
                                referenced.push((n, l.to_string()));
                                item_labels.insert(l.to_string());
                            }
                            Some(l) => p(n, format!("bad item label {l:?}")),
                            None => p(n, "item without a label".into()),
                        }
                        if rest.len() < 2 {
                            p(n, "item without text".into());
                        }
                    }
                }
                "choose" => {
                    if !in_menu {
                        p(n, "choose before any menu".into());
                    }
                    let (opts, rest) = split_opts(args, &["default", "timeout", "menu"]);
                    if let Some(d) = opts.get("default") {
                        match d {
                            Some(d) => referenced.push((n, d.to_string())),
                            None => p(n, "choose --default without a label".into()),
                        }
                    }
                    if let Some(t) = opts.get("timeout")
                        && !t.is_some_and(|t| t.parse::<u64>().is_ok())
                    {
                        p(n, "choose --timeout needs milliseconds".into());
                    }
                    match rest.as_slice() {
                        [v] => {
                            choose_vars.insert(v.to_string());
                        }
                        _ => p(n, "choose takes one variable name".into()),
                    }
                    in_menu = false;
                }
                "kernel" | "initrd" | "imgfetch" | "chain" | "module" | "imgexec" => {
                    let (_, rest) = split_opts(args, &["name", "timeout"]);
                    if rest.is_empty() {
                        p(n, format!("{name} without an image URI"));
                    }
                }
                "set" | "iseq" if args.is_empty() => p(n, format!("{name} without arguments")),
                _ => {}
            }
        }
    }
    for (n, t) in &dynamic_gotos {
        let var = t.trim_start_matches("${").trim_end_matches('}');
        if !choose_vars.contains(var) {
            p(*n, format!("goto {t}: no choose sets {var}"));
        }
    }
    for (n, l) in &referenced {
        if !defined.contains_key(l) {
            p(*n, format!("label {l:?} is not defined"));
        }
    }
    let dynamic = !dynamic_gotos.is_empty();
    for (l, n) in &defined {
        let used = referenced.iter().any(|(_, r)| r == l) || (dynamic && item_labels.contains(l));
        if !used {
            p(*n, format!("label {l:?} is never referenced"));
        }
    }
    problems.sort_by_key(|p| p.line);
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(s: &str) -> Vec<String> {
        check_script(s).into_iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn good_script_passes() {
        let s = "#!ipxe\n:start\nmenu Hi\nitem --gap -- Tools\nitem a A thing\nitem b \"B thing\"\nchoose --default a --timeout 5000 sel || goto start\ngoto ${sel}\n:a\nkernel http://x/k initrd=i quiet || goto start\ninitrd --name i http://x/i\nboot\n:b\nshell\n";
        assert_eq!(msgs(s), Vec::<String>::new());
    }

    #[test]
    fn each_mistake_is_caught() {
        let cases: &[(&str, &str)] = &[
            ("menu\nitem a A\nchoose s\ngoto ${s}\n", "#!ipxe"),
            ("#!ipxe\ngoto nowhere\n", "\"nowhere\" is not defined"),
            (
                "#!ipxe\n:lonely\necho hi\n",
                "\"lonely\" is never referenced",
            ),
            ("#!ipxe\n:a\n:a\ngoto a\n", "already defined"),
            ("#!ipxe\nfrobnicate now\n", "unknown command \"frobnicate\""),
            (
                "#!ipxe\nmenu M\nitem x X\nchoose --default y s\ngoto ${s}\n:x\n",
                "\"y\" is not defined",
            ),
            (
                "#!ipxe\nmenu M\nitem x X\nchoose s\ngoto ${t}\n:x\n",
                "no choose sets t",
            ),
            ("#!ipxe\nkernel\n", "kernel without an image URI"),
            ("#!ipxe\necho ${oops\n", "unbalanced"),
            ("#!ipxe\nitem x X\n:x\n", "item before any menu"),
            ("#!ipxe\n|| boot\n", "empty command"),
            ("#!ipxe\necho \"open\n", "unterminated quote"),
        ];
        for (s, want) in cases {
            let m = msgs(s);
            assert!(
                m.iter().any(|x| x.contains(want)),
                "{s:?}: wanted {want:?} in {m:?}"
            );
        }
    }
}
