//! Hot reload: watches the plugins directory and rescans it when it
//! changes, then tells connected clients their tool list changed.
//!
//! Events come in bursts (a copy is a create and several writes), so a
//! rescan waits for the directory to be quiet for [`QUIET`] first. A file
//! caught half-written fails to load and is retried at its next event.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::catalog::Catalog;
use super::clients::Clients;

/// How long the directory must be still before a rescan.
const QUIET: Duration = Duration::from_millis(200);

/// Starts watching `dir`; the returned task rescans on changes until
/// `stop`. Fails if the directory cannot be watched.
pub fn spawn(
    dir: &Path,
    catalog: Arc<Catalog>,
    clients: Arc<Clients>,
    stop: CancellationToken,
) -> notify::Result<tokio::task::JoinHandle<()>> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            // Reads do not change anything.
            Ok(e) if e.kind.is_access() => {}
            Ok(_) => {
                let _ = tx.send(());
            }
            Err(error) => tracing::warn!(%error, "watching the plugins directory"),
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(tokio::spawn(async move {
        // Owned by the task: watching stops when the task ends.
        let _watcher = watcher;
        loop {
            tokio::select! {
                event = rx.recv() => if event.is_none() { return },
                () = stop.cancelled() => return,
            }
            // Wait for quiet: every new event restarts the wait.
            loop {
                match tokio::time::timeout(QUIET, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_quiet) => break,
                }
            }
            let rescan = {
                let catalog = catalog.clone();
                tokio::task::spawn_blocking(move || catalog.rescan())
            };
            match rescan.await {
                Ok(Ok(changes)) if changes.changed_tools() => {
                    let told = clients.tool_list_changed().await;
                    tracing::info!(
                        added = ?changes.added,
                        replaced = ?changes.replaced,
                        removed = ?changes.removed,
                        clients = told,
                        "tool list changed"
                    );
                }
                Ok(Ok(_unchanged)) => {}
                Ok(Err(error)) => tracing::error!(%error, "cannot rescan the plugins directory"),
                Err(error) => tracing::error!(%error, "plugin rescan stopped unexpectedly"),
            }
        }
    }))
}
