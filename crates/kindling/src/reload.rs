//! Keeps the served snapshot current: file watching (debounced), SIGHUP and
//! a periodic re-check. Each reload builds a new snapshot and swaps it in
//! atomically; requests in flight keep the one they started with.
//!
//! A `groups/` or `profiles/` directory that vanishes (deleted, renamed,
//! replaced by a file) keeps what was loaded from it in force, with a warning
//! naming its path, until it is back; SIGHUP is an explicit reload that accepts
//! its absence (nothing is served from it, as matchbox would do). Watches follow
//! the directories: one that is recreated or renamed back is watched again.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use kindling_model::{Area, Loader, Snapshot};
use notify::Watcher;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::ReloadConfig;

/// Logs a snapshot's size and every problem in it. A vanished `groups/` or
/// `profiles/` directory is a warning (what was loaded from it is still served);
/// a broken file is an error.
pub fn log_snapshot(s: &Snapshot, what: &str) {
    tracing::info!(
        groups = s.index.groups().len(),
        profiles = s.profiles.len(),
        problems = s.problems.len(),
        generation = s.generation,
        "data directory {what}"
    );
    for p in &s.problems {
        if p.directory {
            tracing::warn!(file = %p.file, kept_previous = p.kept_previous, "{}", p.message);
        } else {
            tracing::error!(file = %p.file, kept_previous = p.kept_previous, "{}", p.message);
        }
    }
}

/// Directory identity: a directory replaced or renamed back is another one.
type DirId = (u64, u64);

fn dir_id(path: &std::path::Path) -> Option<DirId> {
    std::fs::metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_dir)
        .map(|m| (m.dev(), m.ino()))
}

/// The inotify watches: `groups/` and `profiles/` (recursive), and the data
/// directory itself (not recursive), so that a `groups/` deleted, recreated or
/// renamed back triggers a reload and is watched again.
struct Watches {
    watcher: notify::RecommendedWatcher,
    /// Each area's path, the directory watched there, and one that could not be.
    areas: Vec<(PathBuf, Option<DirId>, Option<DirId>)>,
}

impl Watches {
    fn start(loader: &Loader, tx: mpsc::Sender<()>) -> Option<Watches> {
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res
                && !matches!(ev.kind, notify::EventKind::Access(_))
            {
                let _ = tx.try_send(());
            }
        });
        let mut watcher = match watcher {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "file watching unavailable; relying on SIGHUP and periodic checks");
                return None;
            }
        };
        let root = loader.data_dir().root();
        if let Err(e) = watcher.watch(root, notify::RecursiveMode::NonRecursive) {
            tracing::debug!(dir = %root.display(), error = %e, "cannot watch the data directory itself");
        }
        let mut w = Watches {
            watcher,
            areas: [Area::Groups, Area::Profiles]
                .into_iter()
                .map(|a| (loader.data_dir().area(a), None, None))
                .collect(),
        };
        w.rearm();
        Some(w)
    }

    /// Watches each area's current directory, if it is not the one watched already.
    fn rearm(&mut self) {
        for (dir, watched, failed) in &mut self.areas {
            let now = dir_id(dir);
            if now == *watched {
                continue;
            }
            if watched.take().is_some() {
                // Gone, or another directory now: the old watch goes (errors mean the
                // kernel removed it already).
                let _ = self.watcher.unwatch(dir);
            }
            // Nothing there, or a directory that could not be watched (said once).
            if now.is_none() || now == *failed {
                continue;
            }
            match self.watcher.watch(dir, notify::RecursiveMode::Recursive) {
                Ok(()) => {
                    *watched = now;
                    *failed = None;
                }
                Err(e) => {
                    *failed = now;
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory")
                }
            }
        }
    }
}

/// Says which vanished directories are back, comparing the snapshot in service
/// with the new one.
fn log_dirs_back(before: &Snapshot, after: &Snapshot) {
    for p in before.problems.iter().filter(|p| p.directory) {
        if !after
            .problems
            .iter()
            .any(|q| q.directory && q.file == p.file)
        {
            tracing::info!(file = %p.file, "directory readable again; loaded from it");
        }
    }
}

pub async fn run(
    mut loader: Loader,
    publisher: crate::publish::Publisher,
    cfg: ReloadConfig,
    watch: bool,
    mut asked: mpsc::Receiver<kindling_api::ReloadRequest>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<()>(16);
    // API writes waiting for the snapshot that holds them.
    let mut waiting: Vec<kindling_api::ReloadRequest> = Vec::new();
    // Keep the watcher alive for the life of this task.
    let mut watches = if watch {
        Watches::start(&loader, tx.clone())
    } else {
        None
    };
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let interval = if cfg.interval_secs == 0 {
        Duration::from_secs(365 * 24 * 3600)
    } else {
        Duration::from_secs(cfg.interval_secs)
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let debounce = Duration::from_millis(cfg.debounce_ms);
    loop {
        let why = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            Some(()) = rx.recv() => {
                // Collect the burst of events an editor or `cp` produces.
                tokio::time::sleep(debounce).await;
                while rx.try_recv().is_ok() {}
                "change"
            }
            _ = hup.recv() => "SIGHUP",
            _ = tick.tick() => "interval",
            // An API write: reload now (no debounce), for every write asked so far.
            Some(first) = asked.recv() => {
                waiting.push(first);
                while let Ok(more) = asked.try_recv() {
                    waiting.push(more);
                }
                "API write"
            }
        };
        // SIGHUP is the operator's explicit reload: a vanished groups/ or profiles/ is
        // taken as gone. Other triggers keep what was loaded from it.
        let explicit = why == "SIGHUP";
        // Files the API wrote are re-read whatever their stamps say.
        let forget: Vec<_> = waiting.iter().filter_map(|w| w.forget.clone()).collect();
        let (snap, l) = tokio::task::spawn_blocking(move || {
            for (area, key) in &forget {
                loader.forget(*area, key);
            }
            (loader.reload(explicit), loader)
        })
        .await
        .map_err(std::io::Error::other)?;
        loader = l;
        if let Some(w) = watches.as_mut() {
            w.rearm();
        }
        // A snapshot only when something changed, or on SIGHUP (logged even unchanged),
        // logged once in force.
        if let Some(snap) = snap {
            let what = format!("reloaded ({why}, {} file(s) changed)", snap.changed_files);
            if snap.changed_files > 0 {
                log_dirs_back(&publisher.shared.snapshot.load(), &snap);
                log_snapshot(&publisher.publish(snap), &what);
                let _ = tokio::task::spawn_blocking(kindling_ops::give_back_freed_memory).await;
            } else {
                log_snapshot(&snap, &what);
            }
        }
        for w in waiting.drain(..) {
            let _ = w.done.send(());
        }
    }
}
