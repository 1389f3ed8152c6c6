//! Hot reload of policy and certificate files: watch, recompile, swap. A file that fails to
//! load leaves the previous state in force; every attempt is counted in
//! `frontdoor_policy_reload_total{policy,result}` and a failure is logged with its reason.

use notify::{RecursiveMode, Watcher};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often files are re-read even without a filesystem event (covers filesystems where
/// inotify misses changes, e.g. some volume mounts).
const POLL: Duration = Duration::from_secs(2);
/// Settling time after an event, so an editor's write-then-rename is read once, whole.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// A fingerprint of the files' contents (a directory: every file below it).
fn fingerprint(paths: &[PathBuf]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in paths {
        hash_path(p, &mut h);
    }
    h.finish()
}

fn hash_path(p: &Path, h: &mut DefaultHasher) {
    if p.is_dir() {
        let mut entries: Vec<_> =
            std::fs::read_dir(p).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        entries.sort();
        for e in entries {
            e.hash(h);
            hash_path(&e, h);
        }
    } else {
        std::fs::read(p).ok().hash(h);
    }
}

/// Records a reload attempt's result in the log and metrics.
pub fn report(policy: &str, result: &anyhow::Result<()>) {
    report_at(policy, result, tracing::Level::INFO);
}

/// `report` for a policy the store feeds (every RBAC or APIService write reloads it): a
/// success is a debug line, a failure as loud as a file's.
pub fn report_store(policy: &str, result: &anyhow::Result<()>) {
    report_at(policy, result, tracing::Level::DEBUG);
}

fn report_at(policy: &str, result: &anyhow::Result<()>, success: tracing::Level) {
    match result {
        Ok(()) => {
            if success == tracing::Level::INFO {
                tracing::info!(policy, "reloaded");
            } else {
                tracing::debug!(policy, "reloaded");
            }
            crate::metrics::POLICY_RELOAD_TOTAL.with_label_values(&[policy, "success"]).inc();
        }
        Err(e) => {
            tracing::error!(policy, error = %format!("{e:#}"), "reload failed; keeping the previous version");
            crate::metrics::POLICY_RELOAD_TOTAL.with_label_values(&[policy, "failure"]).inc();
        }
    }
}

/// Whether a changed path concerns the watched ones: the file itself, anything under a
/// watched directory, or a sibling `..data`-style entry (Kubernetes volume symlink swaps).
fn concerns(watched: &[PathBuf], changed: &Path) -> bool {
    watched.iter().any(|w| {
        changed.starts_with(w)
            || changed.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".."))
                && changed.parent() == w.parent()
    })
}

/// Calls `apply` whenever the contents of `paths` change, on a background thread, for the
/// life of the process. `apply` must build the new state whole and swap it in, or fail
/// and leave the old one.
pub fn watch<F>(policy: &'static str, paths: Vec<PathBuf>, apply: F)
where
    F: Fn() -> anyhow::Result<()> + Send + 'static,
{
    if paths.is_empty() {
        return;
    }
    std::thread::Builder::new()
        .name(format!("reload-{policy}"))
        .spawn(move || {
            let (tx, rx) = std::sync::mpsc::channel();
            // notify reports absolute paths: compare against both the absolute and the
            // resolved form of each watched path
            let cwd = std::env::current_dir().unwrap_or_default();
            let watched: Vec<PathBuf> = paths
                .iter()
                .flat_map(|p| [cwd.join(p), std::fs::canonicalize(p).unwrap_or_else(|_| cwd.join(p))])
                .collect();
            let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
                let relevant = match &ev {
                    Ok(ev) => ev.paths.iter().any(|changed| concerns(&watched, changed)),
                    Err(_) => true,
                };
                if relevant {
                    let _ = tx.send(());
                }
            })
            .ok();
            if let Some(w) = watcher.as_mut() {
                for p in &paths {
                    // a directory of policies: everything below it; a file: its parent, without
                    // descending, so atomic renames and symlink swaps are seen but busy
                    // neighbours (an audit log) in subdirectories are not
                    let (target, mode) = if p.is_dir() {
                        (p.clone(), RecursiveMode::Recursive)
                    } else {
                        let parent = p.parent().map(Path::to_path_buf).unwrap_or_else(|| p.clone());
                        (parent, RecursiveMode::NonRecursive)
                    };
                    let target = if target.as_os_str().is_empty() { PathBuf::from(".") } else { target };
                    let _ = w.watch(&target, mode);
                }
            }
            let mut last = fingerprint(&paths);
            loop {
                if rx.recv_timeout(POLL).is_ok() {
                    std::thread::sleep(DEBOUNCE);
                    while rx.try_recv().is_ok() {}
                }
                let now = fingerprint(&paths);
                if now != last {
                    last = now;
                    report(policy, &apply());
                }
            }
        })
        .expect("spawn reload thread");
}
