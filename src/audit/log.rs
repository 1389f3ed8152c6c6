//! The log backend's writer: JSON lines to stdout (`-`) or to a file rotated as kube's
//! lumberjack logger does (size in MB, backups named `<name>-<UTC time>.<ext>`, pruned by
//! count and age).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// lumberjack's size when --audit-log-maxsize is 0.
const DEFAULT_MAX_MB: u64 = 100;
const BACKUP_TIME_FORMAT: &str = "%Y-%m-%dT%H-%M-%S%.3f";

pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    max_backups: usize,
    max_age: Option<Duration>,
    file: File,
    size: u64,
    /// Only a regular file rotates: renaming a device or pipe (`/dev/null`, a FIFO a log
    /// shipper reads) would move the node itself away and leave a regular file in its place.
    rotates: bool,
}

impl RotatingFile {
    pub fn open(path: &Path, max_mb: u64, max_backups: usize, max_age_days: u64) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let meta = file.metadata()?;
        Ok(RotatingFile {
            path: path.to_path_buf(),
            max_bytes: if max_mb == 0 { DEFAULT_MAX_MB } else { max_mb } * 1024 * 1024,
            max_backups,
            max_age: (max_age_days > 0).then(|| Duration::from_secs(max_age_days * 86400)),
            file,
            size: meta.len(),
            rotates: meta.is_file(),
        })
    }

    pub fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.rotates && self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }

    fn name_parts(&self) -> (String, String) {
        let stem = self.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let ext = self.path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
        (stem, ext)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let (stem, ext) = self.name_parts();
        let stamp = chrono::Utc::now().format(BACKUP_TIME_FORMAT);
        let backup = self.path.with_file_name(format!("{stem}-{stamp}{ext}"));
        std::fs::rename(&self.path, &backup)?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        self.prune();
        Ok(())
    }

    /// The backups of this log, newest first.
    pub fn backups(&self) -> Vec<(PathBuf, chrono::NaiveDateTime)> {
        let (stem, ext) = self.name_parts();
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut out: Vec<_> = std::fs::read_dir(dir)
            .map(|r| r.flatten().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let t = name.strip_prefix(&format!("{stem}-"))?.strip_suffix(ext.as_str())?.to_string();
                let t = chrono::NaiveDateTime::parse_from_str(&t, BACKUP_TIME_FORMAT).ok()?;
                Some((e.path(), t))
            })
            .collect();
        out.sort_by_key(|b| std::cmp::Reverse(b.1));
        out
    }

    fn prune(&self) {
        let now = chrono::Utc::now().naive_utc();
        for (i, (p, t)) in self.backups().into_iter().enumerate() {
            let too_many = self.max_backups > 0 && i >= self.max_backups;
            let too_old = self.max_age.is_some_and(|age| (now - t).to_std().unwrap_or_default() > age);
            if too_many || too_old {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Where the log backend writes.
pub enum LogWriter {
    Stdout,
    File(RotatingFile),
}

impl LogWriter {
    /// Writes whole JSON lines (each ending in a newline) in one write.
    pub fn write_lines(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            LogWriter::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(buf)?;
                out.flush()
            }
            LogWriter::File(f) => f.write_all(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_size_and_keeps_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut f = RotatingFile::open(&path, 1, 2, 0).unwrap();
        let chunk = vec![b'x'; 400 * 1024];
        for _ in 0..4 {
            f.write_all(&chunk).unwrap();
            std::thread::sleep(Duration::from_millis(5)); // distinct backup names (ms resolution)
        }
        assert_eq!(f.backups().len(), 1, "1 MiB holds two chunks; the third rotated");
        for _ in 0..6 {
            f.write_all(&chunk).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(f.backups().len(), 2, "pruned to --audit-log-maxbackup");
        assert!(std::fs::metadata(&path).unwrap().len() <= 1024 * 1024);
    }

    #[test]
    fn a_pipe_or_device_is_written_but_never_rotated() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.pipe");
        let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
        let reader = {
            let path = path.clone();
            std::thread::spawn(move || std::io::Read::bytes(File::open(path).unwrap()).count())
        };
        let mut f = RotatingFile::open(&path, 1, 2, 0).unwrap();
        let chunk = vec![b'x'; 400 * 1024];
        for _ in 0..4 {
            f.write_all(&chunk).unwrap();
        }
        drop(f);
        assert_eq!(reader.join().unwrap(), 4 * 400 * 1024, "everything reached the reader");
        assert!(std::fs::metadata(&path).unwrap().file_type().is_fifo(), "still the pipe");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no backup beside it");
    }
}
