//! Keeps the served snapshot current: file watching (debounced), SIGHUP and
//! a periodic re-check. Each reload builds a new snapshot and swaps it in
//! atomically; requests in flight keep the one they started with.

use std::sync::Arc;
use std::time::Duration;

use kindling_model::{Area, Loader, Snapshot};
use notify::Watcher;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::ReloadConfig;

/// Logs a snapshot's size and every problem in it.
pub fn log_snapshot(s: &Snapshot, what: &str) {
    tracing::info!(
        groups = s.index.groups().len(),
        profiles = s.profiles.len(),
        problems = s.problems.len(),
        generation = s.generation,
        "data directory {what}"
    );
    for p in &s.problems {
        tracing::error!(file = %p.file, kept_previous = p.kept_previous, "{}", p.message);
    }
}

pub async fn run(
    mut loader: Loader,
    shared: Arc<kindling_http::Shared>,
    ops: Arc<kindling_ops::Ops>,
    cfg: ReloadConfig,
    watch: bool,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<()>(16);
    // Keep the watcher alive for the life of this task.
    let _watcher = if watch {
        let tx = tx.clone();
        let mut w = match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res
                && !matches!(ev.kind, notify::EventKind::Access(_))
            {
                let _ = tx.try_send(());
            }
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "file watching unavailable; relying on SIGHUP and periodic checks");
                None
            }
        };
        if let Some(w) = w.as_mut() {
            for area in [Area::Groups, Area::Profiles] {
                let dir = loader.data_dir().area(area);
                if let Err(e) = w.watch(&dir, notify::RecursiveMode::Recursive) {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory");
                }
            }
        }
        w
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
        };
        let (snap, l) = tokio::task::spawn_blocking(move || {
            let s = loader.load();
            (s, loader)
        })
        .await
        .map_err(std::io::Error::other)?;
        loader = l;
        if snap.changed_files > 0 || why == "SIGHUP" {
            log_snapshot(
                &snap,
                &format!("reloaded ({why}, {} file(s) changed)", snap.changed_files),
            );
        }
        if snap.changed_files > 0 {
            ops.note_snapshot(&snap);
            shared.snapshot.store(Arc::new(snap));
        }
    }
}
