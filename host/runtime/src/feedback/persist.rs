//! `<state-dir>/feedback.json`: the book, written whole, atomically
//! (a temporary file, fsync, rename, fsync of the directory), at most once
//! per `feedback.persist-ms` while it changes, and at a clean stop. A
//! crash at any point leaves the last complete write.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::Ledger;

/// Largest `feedback.json` read at start (a larger one is set aside).
const MAX_BYTES: u64 = 64 << 20;

#[derive(Debug)]
pub(super) struct Persist {
    path: PathBuf,
    debounce: Duration,
    dirty: AtomicBool,
    /// When the last write ended; held while writing, so writes are in
    /// order and a snapshot taken under it is never older than one
    /// already written.
    written: Mutex<Option<Instant>>,
}

impl Persist {
    pub(super) fn new(path: PathBuf, debounce_ms: u64) -> Self {
        Persist {
            path,
            debounce: Duration::from_millis(debounce_ms),
            dirty: AtomicBool::new(false),
            written: Mutex::new(None),
        }
    }

    /// The book as last written; an empty one if there is none. A file
    /// that cannot be read is moved aside to `feedback.json.bad` (and
    /// logged): the host starts with an empty book rather than not at all.
    pub(super) fn load(&self) -> Ledger {
        let read = match std::fs::metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ledger::default(),
            Err(e) => Err(e.to_string()),
            Ok(meta) if !meta.is_file() => Err("it is not a regular file".into()),
            Ok(meta) if meta.len() > MAX_BYTES => Err(format!("it is {} bytes, over {MAX_BYTES}", meta.len())),
            Ok(_) => std::fs::read(&self.path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| serde_json::from_slice::<Ledger>(&bytes).map_err(|e| e.to_string())),
        };
        read.unwrap_or_else(|why| {
            let aside = self.path.with_extension("json.bad");
            let moved = std::fs::rename(&self.path, &aside).is_ok();
            tracing::warn!(
                file = %self.path.display(),
                "the feedback engine's book cannot be read ({why}); starting with an empty one{}",
                if moved { format!(", the file is kept as {}", aside.display()) } else { String::new() }
            );
            Ledger::default()
        })
    }

    /// The book changed.
    pub(super) fn dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Write if the book changed and the debounce has passed.
    pub(super) fn write_if_due(&self, snapshot: impl FnOnce() -> Ledger) {
        let mut written = self.written.lock();
        if written.is_some_and(|at| at.elapsed() < self.debounce) || !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        self.write(&snapshot(), &mut written);
    }

    /// Write now if the book changed (a clean stop).
    pub(super) fn write_now(&self, ledger: &Ledger) {
        let mut written = self.written.lock();
        if self.dirty.swap(false, Ordering::AcqRel) {
            self.write(ledger, &mut written);
        }
    }

    fn write(&self, ledger: &Ledger, written: &mut Option<Instant>) {
        if let Err(e) = write_atomically(&self.path, ledger) {
            // Written at the next chance.
            self.dirty();
            tracing::warn!(file = %self.path.display(), "could not write the feedback engine's book: {e}");
        }
        *written = Some(Instant::now());
    }
}

fn write_atomically(path: &std::path::Path, ledger: &Ledger) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(ledger).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_read_back_and_a_bad_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let persist = Persist::new(dir.path().join("feedback.json"), 0);
        assert_eq!(persist.load(), Ledger::default(), "no file: an empty book");
        let mut ledger = Ledger::default();
        ledger.record_change("component.a.timeout-ms", Some(500), None, "op", "operator", None, 1, (8, 8));
        persist.dirty();
        persist.write_now(&ledger);
        let mut back = persist.load();
        back.deltas.clear();
        ledger.deltas.clear();
        assert_eq!(back, ledger);
        std::fs::write(dir.path().join("feedback.json"), b"{ not json").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(persist.load(), Ledger::default());
        assert!(dir.path().join("feedback.json.bad").exists(), "the unreadable file is kept aside");
    }

    #[test]
    fn writes_are_debounced() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let persist = Persist::new(dir.path().join("feedback.json"), 60_000);
        let mut snapshots = 0;
        for _ in 0..5 {
            persist.dirty();
            persist.write_if_due(|| {
                snapshots += 1;
                Ledger::default()
            });
        }
        assert_eq!(snapshots, 1, "five changes within the debounce: one write");
        assert!(persist.dirty.load(Ordering::Acquire), "the later changes are still to be written");
    }
}
