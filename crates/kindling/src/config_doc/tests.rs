use std::fmt::Write as _;

use clap::CommandFactory;

use super::markdown::{FLAG_KEYS, flag_of, toml_value};
use super::schema::{names_only_the_table, sections};
use super::section::{DefaultValue, Section};
use super::*;
use crate::config::Config;

/// A configuration file with every key of every table the document lists (one element in
/// each array of tables, one name in each map of tables), at its default where it has one.
fn sample_toml(sections: &[Section]) -> String {
    let mut out = String::new();
    for s in sections {
        if !s.path.is_empty() {
            let _ = writeln!(out, "\n{}", s.sample_header());
        }
        for k in &s.keys {
            if let Some(v) = &k.sample {
                let _ = writeln!(out, "{} = {}", k.name, toml_value(v));
            }
        }
    }
    out
}

/// Every key the document lists, in every table, is accepted by the real
/// deserializer (which denies unknown keys): the document cannot list a key that does
/// not exist, nor put one in the wrong table.
#[test]
fn every_listed_key_is_accepted() {
    let sections = sections();
    let text = sample_toml(&sections);
    let parsed: Result<Config, _> = toml::from_str(&text);
    if let Err(e) = parsed {
        panic!("the sample file built from the document is refused: {e}\n{text}");
    }
    // Every table of the configuration is there.
    let headers: Vec<String> = sections.iter().map(Section::header).collect();
    for h in [
        "",
        "[http]",
        "[admin]",
        "[log]",
        "[reload]",
        "[dhcp]",
        "[dhcp.rate_limit]",
        "[[dhcp.rules]]",
        "[tftp]",
        "[fcos]",
        "[menu]",
        "[[menu.entries]]",
        "[menu.entries.arch.<arch>]",
        "[menu.entries.arch.<arch>.sums]",
        "[menu.entries.arch.<arch>.files.<name>]",
        "[[menu.machines]]",
        "[cache]",
        "[ops]",
    ] {
        assert!(
            headers.iter().any(|x| x == h),
            "{h} missing from {headers:?}"
        );
    }
    // And a key that does not exist is refused (the check above means something).
    let bad = text.replacen("\n[http]\n", "\n[http]\nlisen = 1\n", 1);
    assert!(toml::from_str::<Config>(&bad).is_err());
}

/// The defaults listed are the ones in force: a file that spells out every listed
/// default gives the same configuration as an empty file.
#[test]
fn listed_defaults_are_the_defaults() {
    let sections = sections();
    let mut text = String::new();
    for s in sections
        .iter()
        .filter(|s| !s.array && !s.path.iter().any(|p| p.starts_with('<')))
    {
        if !s.path.is_empty() {
            let _ = writeln!(text, "\n{}", s.header());
        }
        for k in &s.keys {
            if let DefaultValue::Value(v) = &k.default {
                let _ = writeln!(text, "{} = {}", k.name, toml_value(v));
            }
        }
    }
    let spelled: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        serde_json::to_value(&spelled).unwrap(),
        serde_json::to_value(Config::default()).unwrap(),
        "\n{text}"
    );
}

/// Every key has a doc comment, and every section says what it is.
#[test]
fn every_key_is_described() {
    let mut missing = Vec::new();
    for s in sections() {
        if s.text.is_empty() {
            missing.push(s.header());
        }
        for k in &s.keys {
            if k.doc.is_empty() {
                missing.push(s.key_path(&k.name));
            }
        }
    }
    assert!(missing.is_empty(), "no doc comment: {missing:?}");
}

/// The keys a flag is said to set exist, and so do the flags.
#[test]
fn flag_keys_exist() {
    let cli = Cli::command();
    let sections = sections();
    let keys: Vec<String> = sections
        .iter()
        .flat_map(|s| s.keys.iter().map(|k| s.key_path(&k.name)))
        .collect();
    for (id, ks) in FLAG_KEYS {
        assert!(flag_of(&cli, id).is_some(), "no flag {id}");
        for k in *ks {
            assert!(keys.iter().any(|x| x == k), "no key {k} (flag {id})");
        }
    }
}

/// Every TOML example in the prose is a valid configuration.
#[test]
fn template_examples_parse() {
    let mut n = 0;
    for block in TEMPLATE.split("```toml\n").skip(1) {
        let body = block.split("```").next().unwrap_or("");
        let cfg: Config = toml::from_str(body).unwrap_or_else(|e| panic!("{e}\n{body}"));
        let findings = cfg.check(&crate::config::Overrides::default());
        assert!(findings.errors.is_empty(), "{:?}\n{body}", findings.errors);
        n += 1;
    }
    assert!(n >= 1);
}

#[test]
fn table_names_are_recognised() {
    assert!(names_only_the_table("The raw `[dhcp]` table."));
    assert!(names_only_the_table("`[menu]`."));
    assert!(names_only_the_table(
        "The `[ops]` table of `kindling.toml`."
    ));
    assert!(names_only_the_table("Every key has a default."));
    assert!(!names_only_the_table("One `[[dhcp.rules]]` entry."));
    assert!(!names_only_the_table(
        "The `[admin]` table: where it listens."
    ));
}
