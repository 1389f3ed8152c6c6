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
        let mut entries: Vec<_> = std::fs::read_dir(p).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default();
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
    match result {
        Ok(()) => {
            tracing::info!(policy, "reloaded");
            crate::metrics::POLICY_RELOAD_TOTAL.with_label_values(&[policy, "success"]).inc();
        }
        Err(e) => {
            tracing::error!(policy, error = %format!("{e:#}"), "reload failed; keeping the previous version");
            crate::metrics::POLICY_RELOAD_TOTAL.with_label_values(&[policy, "failure"]).inc();
        }
    }
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
            let mut watcher = notify::recommended_watcher(move |_ev| {
                let _ = tx.send(());
            })
            .ok();
            if let Some(w) = watcher.as_mut() {
                for p in &paths {
                    // watch the parent so atomic renames and symlink swaps are seen
                    let target = if p.is_dir() { p.clone() } else { p.parent().map(Path::to_path_buf).unwrap_or_else(|| p.clone()) };
                    let target = if target.as_os_str().is_empty() { PathBuf::from(".") } else { target };
                    let _ = w.watch(&target, RecursiveMode::Recursive);
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
