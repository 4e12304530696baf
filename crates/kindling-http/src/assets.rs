//! `/assets/` (Go's `http.FileServer`, confined) and the trusted `/tftp/` boot files.

use std::path::Path;

use hyper::{HeaderMap, StatusCode, header};
use kindling_model::ReadError;
use kindling_model::store::{Opened, open_confined};

use crate::body::{self, Reply};
use crate::{content, paths};

/// At most this many asset opens (each with its content sniff) run at once off the async
/// threads; the rest wait their turn here. A boot storm's thousand simultaneous requests
/// otherwise grow tokio's blocking pool to hundreds of threads (213 at N = 1,000 in
/// bench/storm) for opens that take microseconds. 32: nginx's default thread pool.
pub(crate) const OPENS_AT_ONCE: usize = 32;
static OPENS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(OPENS_AT_ONCE);

/// Runs `f` (an open, a sniff, a directory read) on the blocking pool, at most
/// [`OPENS_AT_ONCE`] at a time.
pub(crate) async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    // Never closed: the permit is always granted, once one is free. It goes with the
    // call, so an abandoned request does not free it before the call ends.
    let permit = OPENS.acquire().await;
    tokio::task::spawn_blocking(move || {
        let _held = permit;
        f()
    })
    .await
}

pub(crate) async fn serve_trusted_file(path: &Path, headers: &HeaderMap) -> Reply {
    let p = path.to_path_buf();
    // Open, fstat and type in one trip off the async threads.
    let opened = off_thread(move || -> std::io::Result<_> {
        let file = std::fs::File::open(&p)?;
        let meta = file.metadata()?;
        let typ = meta.is_file().then(|| content::content_type_of(&file, &p));
        Ok((file, meta, typ))
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    match opened {
        Ok((file, meta, Some(typ))) => content::serve_open_file(headers, file, &meta, typ),
        Ok(_) => Reply::not_found(format!("{} is not a file", path.display())),
        Err(e) => Reply::not_found(format!("{}: {e}", path.display())),
    }
}

/// An asset opened below the assets directory and, when it is a regular
/// file, its content type.
struct Asset {
    opened: Opened,
    content_type: Option<&'static str>,
}

impl Asset {
    fn is_file(&self) -> bool {
        self.opened.meta.is_file()
    }

    fn serve(self, headers: &HeaderMap) -> Reply {
        let typ = self.content_type.unwrap_or("application/octet-stream");
        content::serve_open_file(headers, self.opened.file, &self.opened.meta, typ)
    }
}

/// Opens `name` below the assets directory, confined, and types it: one trip
/// off the async threads (the open and the content sniff may both read the disk).
async fn open_asset(dir: &Path, name: &str) -> Result<Asset, ReadError> {
    let (dir, name) = (dir.to_path_buf(), name.to_string());
    off_thread(move || {
        let opened = open_confined(&dir, "assets", &name)?;
        let content_type = opened
            .meta
            .is_file()
            .then(|| content::content_type_of(&opened.file, &opened.path));
        Ok(Asset {
            opened,
            content_type,
        })
    })
    .await
    .unwrap_or_else(|e| {
        Err(ReadError::Io {
            path: "assets".into(),
            source: std::io::Error::other(e.to_string()),
        })
    })
}

fn asset_error(rest: &str, dir: &Path, e: ReadError) -> Reply {
    match e {
        ReadError::Escapes(..) => Reply::not_found(format!(
            "asset {rest:?} resolves outside the assets directory (refused)"
        )),
        ReadError::NotFound(p) if Path::new(&p) == dir => {
            Reply::not_found(format!("assets directory {} is missing", dir.display()))
        }
        other => Reply::not_found(format!("asset {rest:?}: {other}")),
    }
}

/// `/assets/`: Go's `http.FileServer`, confined to the assets directory:
/// every name is opened below a handle of that directory with the kernel
/// refusing symlinks that leave it (unlike matchbox), and type, size and
/// modification time come from the opened file. Directory listings only when
/// `listings` is on.
pub(crate) async fn assets(
    dir: &Path,
    rest: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    listings: bool,
) -> Reply {
    if hidden_asset(rest) {
        return Reply::not_found(format!(
            "asset {rest:?} is internal (a dotfile or kindling fcos state): never served"
        ));
    }
    if raw_path.ends_with("/index.html") {
        return Reply::local_redirect("./", raw_query);
    }
    let name = rest.trim_end_matches('/');
    let asset = match open_asset(dir, name).await {
        Ok(a) => a,
        Err(e) => return asset_error(rest, dir, e),
    };
    let last = raw_path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("");
    if asset.opened.meta.is_dir() {
        if !raw_path.ends_with('/') {
            return Reply::local_redirect(&format!("{}/", paths::escape_path(last)), raw_query);
        }
        match open_asset(dir, &format!("{name}/index.html")).await {
            Ok(index) if index.is_file() => return index.serve(headers),
            Ok(_) | Err(ReadError::NotFound(_)) => {}
            Err(e) => return asset_error(&format!("{name}/index.html"), dir, e),
        }
        if !listings {
            return Reply::not_found(format!(
                "asset {rest:?} is a directory: directory listings are disabled"
            ));
        }
        let modified = asset.opened.meta.modified().ok();
        if content::not_modified_since(headers, modified) {
            return content::not_modified(modified);
        }
        let mut r = listing(asset.opened, name).await;
        if let Some(m) = modified
            && let Ok(v) = httpdate::fmt_http_date(m).parse()
        {
            r.headers.insert(header::LAST_MODIFIED, v);
        }
        return r;
    }
    if !asset.is_file() {
        return Reply::not_found(format!("asset {rest:?} is not a regular file"));
    }
    if raw_path.ends_with('/') {
        return Reply::local_redirect(&format!("../{}", paths::escape_path(last)), raw_query);
    }
    asset.serve(headers)
}

/// The directory `kindling fcos` keeps its streams in, under `assets/`.
const FCOS_DIR: &str = "fedora-coreos";

/// Whether `rest` (a clean path below `/assets/`) names something that is
/// never served nor listed, whatever is on disk: any path component that
/// starts with `.` (dotfiles and dot-directories; among them what `kindling
/// fcos` stages and locks: `.partial/`, `.lock`, and the `.<name>.<pid>.tmp`
/// files of its atomic writes), and the `state.json` of a stream below
/// `fedora-coreos/`. matchbox (Go's `http.FileServer`) serves both; see
/// docs/matchbox-compatibility.md. A release's `release.json` is served: it
/// holds only what was verified (names, sha256, sources, signing keys).
pub fn hidden_asset(rest: &str) -> bool {
    let comps: Vec<&str> = rest.split('/').filter(|c| !c.is_empty()).collect();
    comps.iter().any(|c| c.starts_with('.'))
        || (comps.first() == Some(&FCOS_DIR)
            && comps.len() > 1
            && comps.last() == Some(&"state.json"))
}

/// A directory listing of `name` (below `/assets/`), read through the opened
/// directory's handle; [`hidden_asset`]s are left out.
async fn listing(opened: Opened, name: &str) -> Reply {
    let dir_name = name.to_string();
    let shown = opened.path.display().to_string();
    let read = off_thread(move || -> std::io::Result<Vec<String>> {
        let dir = opened.into_dir();
        let mut names = Vec::new();
        for e in dir.entries()? {
            let Ok(e) = e else { break };
            let mut name = e.file_name().to_string_lossy().into_owned();
            if hidden_asset(&format!("{dir_name}/{name}")) {
                continue;
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                name.push('/');
            }
            names.push(name);
        }
        Ok(names)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    let mut names = match read {
        Ok(n) => n,
        Err(e) => {
            return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "Error reading directory")
                .with_reason(format!("{shown}: {e}"));
        }
    };
    names.sort();
    let mut s = String::from(
        "<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>\n",
    );
    for n in names {
        let mut href = paths::escape_path(&n);
        if n.split('/').next().is_some_and(|f| f.contains(':')) {
            href = format!("./{href}");
        }
        let text = body::html_escape(&n);
        s.push_str(&format!("<a href=\"{href}\">{text}</a>\n"));
    }
    s.push_str("</pre>\n");
    Reply::new(StatusCode::OK, "text/html; charset=utf-8", s)
}
