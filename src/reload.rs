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
/// The longest a reload waits for a file being written in place to be closed.
const WRITER_WAIT: Duration = Duration::from_secs(10);

/// The most a policy or certificate file may hold.
pub const MAX_FILE: u64 = 32 << 20;

/// Reads a policy or certificate file whole. It must be a regular file (a symlink to one
/// counts): a FIFO or a device would block the reader, a reload thread or startup, for good.
/// It is opened without blocking and checked as opened, so one swapped in after a look is
/// caught too; and it may hold at most [`MAX_FILE`] bytes.
pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let too_large = || Error::new(ErrorKind::InvalidInput, format!("larger than {} MiB", MAX_FILE >> 20));
    if meta.len() > MAX_FILE {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_FILE + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_FILE {
        return Err(too_large());
    }
    Ok(buf)
}

/// [`read`], as UTF-8 text.
pub fn read_to_string(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read(path)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
}

/// The directories a walk of policy paths has entered, by device and inode, so each is walked
/// once however it is reached: two symlinks to `.` would have a walk go 2^n ways.
#[derive(Default)]
pub struct Walked(std::collections::HashSet<(u64, u64)>);

impl Walked {
    /// Whether the directory of `meta` is entered for the first time.
    pub fn first(&mut self, meta: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.0.insert((meta.dev(), meta.ino()))
    }
}

/// A fingerprint of the files' contents (a directory: every file below it).
fn fingerprint(paths: &[PathBuf]) -> u64 {
    let mut h = DefaultHasher::new();
    let mut walked = Walked::default();
    for p in paths {
        hash_path(p, &mut h, &mut walked);
    }
    h.finish()
}

/// Hashes what `p` holds: a directory walked once however it is reached ([`Walked`]), as the
/// manifest readers walk it; a file read through [`read`], so a special file is hashed by its
/// error, never read.
fn hash_path(p: &Path, h: &mut DefaultHasher, walked: &mut Walked) {
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => {
            if !walked.first(&m) {
                return;
            }
            let mut entries: Vec<_> =
                std::fs::read_dir(p).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default();
            entries.sort();
            for e in entries {
                e.hash(h);
                hash_path(&e, h, walked);
            }
        }
        _ => read(p).map_err(|e| e.to_string()).hash(h),
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

/// The files written in place and not yet closed (inotify's MODIFY without its CLOSE_WRITE).
#[derive(Default)]
struct Writing(std::collections::HashSet<PathBuf>);

impl Writing {
    fn note(&mut self, ev: &notify::Event) {
        use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
        for p in &ev.paths {
            match ev.kind {
                EventKind::Modify(ModifyKind::Data(_)) if !scratch(p) => {
                    self.0.insert(p.clone());
                }
                EventKind::Access(AccessKind::Close(AccessMode::Write))
                | EventKind::Remove(_)
                | EventKind::Modify(ModifyKind::Name(_)) => {
                    self.0.remove(p);
                }
                _ => {}
            }
        }
    }

    fn any(&self) -> bool {
        !self.0.is_empty()
    }
}

/// An editor's scratch file beside a policy (vim's `.x.yaml.swp`, emacs' `#x.yaml#` and
/// `x.yaml~`): written for as long as the editor has the policy open, and read by no loader.
fn scratch(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with('.') || name.starts_with('#') || name.ends_with('~')
}

/// Waits, after an event, for the files to settle: the burst of events to end, and a file
/// written in place to be closed by its writer (up to [`WRITER_WAIT`]), so that a half-written
/// file (a generator's, `cat > file` from a pipe) is not taken for the policy: its first half
/// would revoke the rest until the second came.
fn settle(rx: &std::sync::mpsc::Receiver<()>, writing: &std::sync::Mutex<Writing>) {
    let deadline = std::time::Instant::now() + WRITER_WAIT;
    loop {
        std::thread::sleep(DEBOUNCE);
        let burst = rx.try_iter().count() > 0;
        let open = writing.lock().unwrap_or_else(|e| e.into_inner()).any();
        if !(burst || open) || std::time::Instant::now() >= deadline {
            return;
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
            // notify reports absolute paths: compare against both the absolute and the
            // resolved form of each watched path
            let cwd = std::env::current_dir().unwrap_or_default();
            let watched: Vec<PathBuf> = paths
                .iter()
                .flat_map(|p| [cwd.join(p), std::fs::canonicalize(p).unwrap_or_else(|_| cwd.join(p))])
                .collect();
            let writing = std::sync::Arc::new(std::sync::Mutex::new(Writing::default()));
            let seen = writing.clone();
            let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
                let relevant = match &ev {
                    Ok(ev) => ev.paths.iter().any(|changed| concerns(&watched, changed)),
                    Err(_) => true,
                };
                if let (true, Ok(ev)) = (relevant, &ev) {
                    seen.lock().unwrap_or_else(|e| e.into_inner()).note(ev);
                }
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
                    settle(&rx, &writing);
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

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, DataChange, EventKind, ModifyKind};

    /// A policy written in place counts as being written until its writer closes it; an
    /// editor's scratch files beside it never do (an open vim would stall every reload).
    #[test]
    fn a_file_is_written_until_closed_and_scratch_files_never() {
        let ev = |kind, path: &str| notify::Event::new(kind).add_path(PathBuf::from(path));
        let modify = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let mut w = Writing::default();
        for scratch in ["/p/.team.yaml.swp", "/p/#team.yaml#", "/p/team.yaml~"] {
            w.note(&ev(modify, scratch));
        }
        assert!(!w.any());
        w.note(&ev(modify, "/p/team.yaml"));
        assert!(w.any());
        w.note(&ev(EventKind::Access(AccessKind::Close(AccessMode::Write)), "/p/team.yaml"));
        assert!(!w.any());
    }
}
