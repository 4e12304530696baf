//! `kindling config-doc` (hidden): prints docs/configuration.md, generated so that it
//! cannot drift from the code. Every table and key comes from the JSON Schema of
//! [`Config`](crate::config::Config) (schemars: the serde attributes, the doc comments, the `Default` values),
//! the flags and environment variables from the clap definitions in main.rs, and the
//! prose around them from the template `src/config_doc.md`.
//!
//! `tests/config_doc.rs` fails when docs/configuration.md differs from this output; the
//! unit tests (`tests.rs`) build a TOML file with every key of every table the document lists and
//! parse it with the real deserializer.
//!
//! [`schema`] walks the schema into [`section::Section`]s; [`markdown`] writes the tables.

mod markdown;
mod schema;
mod section;
#[cfg(test)]
mod tests;

use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;

use crate::Cli;
use markdown::{flags_md, keys_md, other_env_md};
use schema::sections;

/// The prose around the generated parts: `{{flags}}`, `{{other_env}}` and `{{keys}}` are
/// replaced.
const TEMPLATE: &str = include_str!("../config_doc.md");

/// The command that writes docs/configuration.md.
pub const REGENERATE: &str = "cargo run -q -p kindling -- config-doc > docs/configuration.md";

pub fn run() -> Result<ExitCode> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(render().as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The whole of docs/configuration.md.
pub fn render() -> String {
    let cli = Cli::command();
    let sections = sections();
    TEMPLATE
        .replace("{{regenerate}}", REGENERATE)
        .replace("{{flags}}", &flags_md(&cli))
        .replace("{{other_env}}", &other_env_md(&cli))
        .replace("{{keys}}", &keys_md(&sections, &cli))
}
