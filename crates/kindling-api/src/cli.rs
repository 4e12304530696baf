//! `kindling group|profile|ignition|generic ls|get|put|rm`: the objects of a data
//! directory, through a running server's REST objects API (`--server`, with the admin
//! token) or, without `--server`, straight in the data directory (the same checks and
//! atomic writes; a running server picks the change up by its file watch).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use kindling_fetch::reqwest;
use kindling_model::store::{Expect, Kind, ObjectError, Objects};

/// The arguments shared by the four object commands.
#[derive(clap::Args, Debug, Clone)]
pub struct ObjectArgs {
    #[command(subcommand)]
    pub action: Action,
    /// A running server's admin listener (e.g. http://127.0.0.1:8082); without it the data
    /// directory is changed directly.
    #[arg(long, global = true, env = "KINDLING_SERVER")]
    pub server: Option<String>,
    #[command(flatten)]
    pub auth: kindling_fetch::AdminAuth,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Action {
    /// List the ids, one a line.
    Ls,
    /// Print the object as stored.
    Get { id: String },
    /// Write the object from FILE (default: standard input); prints its new tag.
    Put {
        id: String,
        file: Option<PathBuf>,
        /// Only when the object is still at this tag (from `get --tag` or an earlier put).
        #[arg(long, value_name = "TAG")]
        if_match: Option<String>,
        /// Only when there is no such object yet.
        #[arg(long, conflicts_with = "if_match")]
        create: bool,
    },
    /// Remove the object.
    Rm {
        id: String,
        /// Only when the object is still at this tag.
        #[arg(long, value_name = "TAG")]
        if_match: Option<String>,
    },
}

/// The path segment of a kind in the REST API.
fn segment(kind: Kind) -> &'static str {
    match kind {
        Kind::Group => "groups",
        Kind::Profile => "profiles",
        Kind::Ignition => "ignition",
        Kind::Generic => "generic",
    }
}

/// `objects`: where the objects are without `--server` (the data directory, or the
/// shared store), made only when needed.
pub fn run(kind: Kind, args: &ObjectArgs, objects: impl FnOnce() -> Objects) -> Result<ExitCode> {
    match &args.server {
        Some(server) => remote(kind, args, server),
        None => local(kind, &args.action, objects()),
    }
}

fn read_input(file: Option<&Path>) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match file {
        Some(p) if p != Path::new("-") => {
            bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?
        }
        _ => {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading standard input")?;
        }
    }
    Ok(bytes)
}

fn expect(if_match: &Option<String>, create: bool) -> Expect {
    match (if_match, create) {
        (Some(t), _) => Expect::Tag(t.trim_matches('"').to_string()),
        (None, true) => Expect::Absent,
        (None, false) => Expect::Anything,
    }
}

fn local(kind: Kind, action: &Action, objects: Objects) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match action {
        Action::Ls => {
            for id in objects.list(kind)? {
                writeln!(out, "{id}")?;
            }
        }
        Action::Get { id } => {
            let (bytes, tag) = objects.get_tagged(kind, id)?;
            eprintln!("tag {tag}");
            out.write_all(&bytes)?
        }
        Action::Put {
            id,
            file,
            if_match,
            create,
        } => {
            let bytes = read_input(file.as_deref())?;
            let (tag, created) =
                objects.put_expecting(kind, id, &bytes, &expect(if_match, *create))?;
            eprintln!(
                "{} {} {id}",
                if created { "created" } else { "replaced" },
                kind.what()
            );
            writeln!(out, "{tag}")?;
        }
        Action::Rm { id, if_match } => {
            if !objects.delete_expecting(kind, id, &expect(if_match, false))? {
                return Err(ObjectError::NotFound {
                    what: kind.what(),
                    id: id.clone(),
                }
                .into());
            }
            eprintln!("removed {} {id}", kind.what());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The request header that says `e` (none for [`Expect::Anything`]).
fn precondition(e: &Expect) -> Option<(&'static str, String)> {
    match e {
        Expect::Anything => None,
        Expect::Absent => Some(("If-None-Match", "*".into())),
        Expect::Present => Some(("If-Match", "*".into())),
        Expect::Tag(t) => Some(("If-Match", format!("\"{t}\""))),
    }
}

fn remote(kind: Kind, args: &ObjectArgs, server: &str) -> Result<ExitCode> {
    let seg = segment(kind);
    let enc = |id: &str| {
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let (method, path, body, expected) = match &args.action {
        Action::Ls => (reqwest::Method::GET, format!("/api/v1/{seg}"), None, None),
        Action::Get { id } => (
            reqwest::Method::GET,
            format!("/api/v1/{seg}/{}", enc(id)),
            None,
            None,
        ),
        Action::Put {
            id,
            file,
            if_match,
            create,
        } => (
            reqwest::Method::PUT,
            format!("/api/v1/{seg}/{}", enc(id)),
            Some(read_input(file.as_deref())?),
            Some(expect(if_match, *create)),
        ),
        Action::Rm { id, if_match } => (
            reqwest::Method::DELETE,
            format!("/api/v1/{seg}/{}", enc(id)),
            None,
            Some(expect(if_match, false)),
        ),
    };
    let headers: Vec<(&str, String)> = expected
        .as_ref()
        .and_then(precondition)
        .into_iter()
        .collect();
    let answer = kindling_fetch::admin_request(server, &args.auth, method, &path, &headers, body)?;
    let (status, tag, bytes) = (answer.status, answer.etag.clone(), &answer.body);
    if !answer.ok() {
        let hint = if status == 412 {
            " (changed since it was read: get it again)"
        } else {
            ""
        };
        bail!("{}{hint}", answer.refusal(server));
    }
    let mut out = std::io::stdout().lock();
    match &args.action {
        Action::Ls => {
            let ids: Vec<String> = serde_json::from_slice(bytes)
                .map_err(|e| anyhow!("{server} answered a list that is not JSON: {e}"))?;
            for id in ids {
                writeln!(out, "{id}")?;
            }
        }
        Action::Get { .. } => {
            if let Some(t) = &tag {
                eprintln!("tag {t}");
            }
            out.write_all(bytes)?
        }
        Action::Put { id, .. } => {
            let created = status == 201;
            eprintln!(
                "{} {} {id}",
                if created { "created" } else { "replaced" },
                kind.what()
            );
            writeln!(out, "{}", tag.unwrap_or_default())?;
        }
        Action::Rm { id, .. } => eprintln!("removed {} {id}", kind.what()),
    }
    Ok(ExitCode::SUCCESS)
}
