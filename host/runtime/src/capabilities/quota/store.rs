//! The buckets: in memory under one lock, written to redb by a flusher
//! thread every `flush-ms`, at drop, or at every consume with
//! `flush-ms = 0`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redb::{Database, ReadableTable, TableDefinition};

use super::QuotaConfig;

const TABLE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("quota");

/// Longest namespace and key, in bytes.
pub const MAX_NAMESPACE_BYTES: usize = 128;
pub const MAX_KEY_BYTES: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("cannot open the quota store `{path}`: {message}")]
    Open { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    /// Every bucket is in use and none has expired.
    #[error("{0}")]
    Full(String),
    #[error("quota store error: {0}")]
    Storage(String),
}

fn storage(e: impl std::fmt::Display) -> QuotaError {
    QuotaError::Storage(e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    Fixed,
    Sliding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: u64,
    pub window_ms: u64,
    pub kind: WindowKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    Granted { remaining: u64 },
    Refused { retry_after_ms: u64 },
}

/// One bucket: the fixed window it is in, its count there and in the one
/// before (for the sliding estimate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    window_ms: u64,
    kind: WindowKind,
    start_ms: i64,
    count: u64,
    previous: u64,
    dirty: bool,
    /// In memory only: the limit its consumer last asked, the limit it
    /// was counted against (its budget's applied one, if any), and the
    /// budgets' generation that was read at ([`super::budgets::Budgets`]).
    asked: u64,
    limit: u64,
    generation: u64,
}

const ENCODED: usize = 8 + 1 + 8 + 8 + 8;

impl Bucket {
    fn encode(&self) -> [u8; ENCODED] {
        let mut out = [0u8; ENCODED];
        out[..8].copy_from_slice(&self.window_ms.to_le_bytes());
        out[8] = u8::from(self.kind == WindowKind::Sliding);
        out[9..17].copy_from_slice(&self.start_ms.to_le_bytes());
        out[17..25].copy_from_slice(&self.count.to_le_bytes());
        out[25..33].copy_from_slice(&self.previous.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Bucket> {
        let u64_at = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
        if bytes.len() != ENCODED {
            return None;
        }
        Some(Bucket {
            window_ms: u64_at(0)?,
            kind: if bytes[8] == 1 { WindowKind::Sliding } else { WindowKind::Fixed },
            start_ms: i64::from_le_bytes(bytes.get(9..17)?.try_into().ok()?),
            count: u64_at(17)?,
            previous: u64_at(25)?,
            dirty: false,
            asked: 0,
            limit: 0,
            generation: 0,
        })
    }

    fn fresh(window: &Window, start_ms: i64) -> Bucket {
        Bucket {
            window_ms: window.window_ms,
            kind: window.kind,
            start_ms,
            count: 0,
            previous: 0,
            dirty: true,
            asked: 0,
            limit: 0,
            generation: 0,
        }
    }

    /// Has its last window ended long enough ago that it counts nothing?
    fn expired(&self, now: i64) -> bool {
        let span = i64::try_from(self.window_ms).unwrap_or(i64::MAX).saturating_mul(2);
        now >= self.start_ms.saturating_add(span)
    }
}

fn window_start(now: i64, window_ms: i64) -> i64 {
    now.div_euclid(window_ms) * window_ms
}

type Key = (String, String);

#[derive(Debug)]
struct Shared {
    db: Database,
    buckets: Mutex<HashMap<Key, Bucket>>,
    config: QuotaConfig,
}

/// The host's quota buckets.
#[derive(Debug)]
pub struct QuotaStore {
    shared: Arc<Shared>,
    /// The budgets the buckets count, and the limits applied to them.
    budgets: super::budgets::Budgets,
    flusher: Mutex<Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
}

impl QuotaStore {
    /// Open (or create) `<state_dir>/quota.redb` and read its buckets.
    pub fn open(state_dir: &Path, config: QuotaConfig) -> Result<Self, QuotaError> {
        let path = state_dir.join("quota.redb");
        let open_error = |message: String| QuotaError::Open { path: path.clone(), message };
        std::fs::create_dir_all(state_dir).map_err(|e| open_error(e.to_string()))?;
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                open_error("it is in use by another arw process; stop it or pass a different --state-dir".into())
            }
            other => open_error(other.to_string()),
        })?;
        let tx = db.begin_write().map_err(storage)?;
        tx.open_table(TABLE).map_err(storage)?;
        tx.commit().map_err(storage)?;
        let mut buckets = HashMap::new();
        {
            let tx = db.begin_read().map_err(storage)?;
            let table = tx.open_table(TABLE).map_err(storage)?;
            for row in table.iter().map_err(storage)? {
                let (key, value) = row.map_err(storage)?;
                if buckets.len() >= config.max_buckets {
                    tracing::warn!("quota.redb holds more than quota.max-buckets buckets; the rest are not read");
                    break;
                }
                let (namespace, name) = key.value();
                if let Some(bucket) = Bucket::decode(value.value()) {
                    buckets.insert((namespace.to_string(), name.to_string()), bucket);
                }
            }
        }
        Ok(QuotaStore {
            shared: Arc::new(Shared { db, buckets: Mutex::new(buckets), config }),
            budgets: Default::default(),
            flusher: Mutex::new(None),
        })
    }

    /// Check the names and the window.
    pub fn check_args(namespace: &str, key: &str, window: &Window) -> Result<(), QuotaError> {
        if namespace.is_empty() || namespace.len() > MAX_NAMESPACE_BYTES {
            return Err(QuotaError::Invalid(format!("a quota namespace is 1-{MAX_NAMESPACE_BYTES} bytes")));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(QuotaError::Invalid(format!("a quota key is at most {MAX_KEY_BYTES} bytes")));
        }
        if window.window_ms == 0 || window.window_ms > i64::MAX as u64 / 4 {
            return Err(QuotaError::Invalid("`window-ms` must be at least 1".into()));
        }
        Ok(())
    }

    /// The budgets the buckets count (the knobs `quota.<namespace>.<budget>.limit`).
    pub fn budgets(&self) -> &super::budgets::Budgets {
        &self.budgets
    }

    /// Take `cost` from `namespace`/`key` against `window` at `now_ms`
    /// (its limit, or the one applied to the key's budget). A refusal
    /// consumes nothing.
    pub fn consume(
        &self,
        namespace: &str,
        key: &str,
        cost: u64,
        window: Window,
        now_ms: i64,
    ) -> Result<Consumed, QuotaError> {
        Self::check_args(namespace, key, &window)?;
        let generation = self.budgets.generation();
        let w = i64::try_from(window.window_ms).unwrap_or(i64::MAX);
        let current = window_start(now_ms, w);
        let mut buckets = self.shared.buckets.lock();
        let id = (namespace.to_string(), key.to_string());
        if !buckets.contains_key(&id) && buckets.len() >= self.shared.config.max_buckets {
            buckets.retain(|_, b| !b.expired(now_ms));
            if buckets.len() >= self.shared.config.max_buckets {
                return Err(QuotaError::Full(format!(
                    "all {} quota buckets are in use (quota.max-buckets)",
                    self.shared.config.max_buckets
                )));
            }
        }
        let bucket = buckets.entry(id.clone()).or_insert_with(|| Bucket::fresh(&window, current));
        if bucket.window_ms != window.window_ms || bucket.kind != window.kind {
            *bucket = Bucket::fresh(&window, current);
        }
        // The limit in force: the one the bucket was last counted against,
        // unless a limit was applied since or its consumer asks another.
        if bucket.generation != generation || bucket.asked != window.limit {
            bucket.limit = self.budgets.limit_for(namespace, key, window.limit);
            (bucket.asked, bucket.generation) = (window.limit, generation);
        }
        let window = Window { limit: bucket.limit, ..window };
        // Move to the window `now` is in; a clock that went back stays in
        // the bucket's window.
        if current > bucket.start_ms {
            bucket.previous = if current == bucket.start_ms + w { bucket.count } else { 0 };
            bucket.count = 0;
            bucket.start_ms = current;
            bucket.dirty = true;
        }
        let into = (now_ms - bucket.start_ms).clamp(0, w);
        let used = match window.kind {
            WindowKind::Fixed => bucket.count,
            // The previous window's count, weighted by how much of it is
            // still within the last `w` ms (rounded up: never under-count).
            WindowKind::Sliding => {
                let weighted = (u128::from(bucket.previous) * (w - into) as u128).div_ceil(w as u128);
                bucket.count.saturating_add(u64::try_from(weighted).unwrap_or(u64::MAX))
            }
        };
        if used.saturating_add(cost) > window.limit {
            let retry = retry_after(bucket, &window, cost, into, w);
            return Ok(Consumed::Refused { retry_after_ms: retry.max(1) });
        }
        bucket.count += cost;
        bucket.dirty = true;
        let remaining = window.limit - (used + cost);
        if self.shared.config.flush_ms == 0 {
            let snapshot = *bucket;
            drop(buckets);
            self.shared.write(&[(id, snapshot)])?;
            if let Some(b) = self.shared.buckets.lock().get_mut(&(namespace.to_string(), key.to_string()))
                && *b == snapshot
            {
                b.dirty = false;
            }
        }
        Ok(Consumed::Granted { remaining })
    }

    /// Write every changed bucket now.
    pub fn flush(&self) -> Result<(), QuotaError> {
        self.shared.flush()
    }

    /// Whether a consume must be committed before it returns (a disk sync:
    /// run it off the executor).
    pub fn writes_through(&self) -> bool {
        self.shared.config.flush_ms == 0
    }
}

/// When a refused consume could be granted.
fn retry_after(bucket: &Bucket, window: &Window, cost: u64, into: i64, w: i64) -> u64 {
    let w_u = w as u64;
    let to_next = (w - into) as u64;
    if cost > window.limit {
        return w_u.saturating_mul(2);
    }
    match window.kind {
        WindowKind::Fixed => to_next,
        WindowKind::Sliding => {
            let free = window.limit - cost;
            if bucket.count > free {
                // Only once this window is the previous one, weighted down
                // far enough: count * (w - t) / w <= free.
                let t = w_u - (u128::from(free) * u128::from(w_u) / u128::from(bucket.count.max(1))) as u64;
                to_next + t
            } else {
                // previous * (w - t) / w <= free - count, for t past `into`.
                let room = free - bucket.count;
                let t = w_u - (u128::from(room) * u128::from(w_u) / u128::from(bucket.previous.max(1))) as u64;
                t.saturating_sub(into as u64)
            }
        }
    }
}

impl Shared {
    fn write(&self, rows: &[(Key, Bucket)]) -> Result<(), QuotaError> {
        if rows.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(storage)?;
        {
            let mut table = tx.open_table(TABLE).map_err(storage)?;
            for ((namespace, key), bucket) in rows {
                table.insert((namespace.as_str(), key.as_str()), bucket.encode().as_slice()).map_err(storage)?;
            }
        }
        tx.commit().map_err(storage)
    }

    fn flush(&self) -> Result<(), QuotaError> {
        let dirty: Vec<(Key, Bucket)> = {
            let mut buckets = self.buckets.lock();
            buckets
                .iter_mut()
                .filter(|(_, b)| b.dirty)
                .map(|(k, b)| {
                    b.dirty = false;
                    (k.clone(), *b)
                })
                .collect()
        };
        let written = self.write(&dirty);
        if written.is_err() {
            // Not written: mark them again, for the next flush.
            let mut buckets = self.buckets.lock();
            for (key, _) in &dirty {
                if let Some(b) = buckets.get_mut(key) {
                    b.dirty = true;
                }
            }
        }
        written
    }
}

/// Start the thread that writes changed buckets every `flush-ms` (none
/// with `flush-ms = 0`, where each consume writes itself).
pub(super) fn spawn_flusher(store: &Arc<QuotaStore>) {
    let every = Duration::from_millis(store.shared.config.flush_ms);
    if every.is_zero() {
        return;
    }
    let shared = store.shared.clone();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new().name("arw-quota-flush".into()).spawn(move || {
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
            if let Err(e) = shared.flush() {
                tracing::error!("quota counts could not be written (retried at the next flush): {e}");
            }
        }
    });
    match thread {
        Ok(thread) => *store.flusher.lock() = Some((stop, thread)),
        Err(e) => tracing::error!("the quota flusher did not start ({e}); counts are written at stop only"),
    }
}

impl Drop for QuotaStore {
    /// Stop the flusher (so nothing else holds the database), then write
    /// what is left: a clean stop loses nothing.
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.flusher.lock().take() {
            drop(stop);
            let _ = thread.join();
        }
        if let Err(e) = self.shared.flush() {
            tracing::error!("quota counts could not be written at stop: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, flush_ms: u64) -> QuotaStore {
        QuotaStore::open(dir, QuotaConfig { flush_ms, max_buckets: 4 }).unwrap_or_else(|e| panic!("{e}"))
    }

    const MINUTE: Window = Window { limit: 5, window_ms: 60_000, kind: WindowKind::Fixed };

    #[test]
    fn a_fixed_window_grants_its_limit_then_refuses_until_it_ends() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let quota = store(dir.path(), 1000);
        let t0 = 1_800_000_000_000; // a window start (a multiple of 60 000)
        for i in 0..5 {
            assert_eq!(
                quota.consume("g", "k", 1, MINUTE, t0 + i).ok(),
                Some(Consumed::Granted { remaining: 4 - i as u64 })
            );
        }
        assert_eq!(
            quota.consume("g", "k", 1, MINUTE, t0 + 10_000).ok(),
            Some(Consumed::Refused { retry_after_ms: 50_000 })
        );
        assert_eq!(quota.consume("g", "other", 1, MINUTE, t0 + 10_000).ok(), Some(Consumed::Granted { remaining: 4 }));
        assert_eq!(quota.consume("g", "k", 1, MINUTE, t0 + 60_000).ok(), Some(Consumed::Granted { remaining: 4 }));
    }

    #[test]
    fn a_sliding_window_counts_the_overlap_of_the_previous_one() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let quota = store(dir.path(), 1000);
        let sliding = Window { kind: WindowKind::Sliding, ..MINUTE };
        let t0 = 1_800_000_000_000;
        for _ in 0..5 {
            assert!(matches!(quota.consume("g", "k", 1, sliding, t0 + 59_000), Ok(Consumed::Granted { .. })));
        }
        // 15 s into the next window, 3/4 of the previous 5 still count
        // (rounded up to 4): one more fits, then none.
        let granted = quota.consume("g", "k", 1, sliding, t0 + 75_000).ok();
        assert_eq!(granted, Some(Consumed::Granted { remaining: 0 }));
        let Ok(Consumed::Refused { retry_after_ms }) = quota.consume("g", "k", 1, sliding, t0 + 75_000) else {
            panic!("the sliding window let a 7th through");
        };
        // Granted again once the estimate leaves room: check it is.
        let later = t0 + 75_000 + retry_after_ms as i64;
        assert!(matches!(quota.consume("g", "k", 1, sliding, later), Ok(Consumed::Granted { .. })), "{retry_after_ms}");
    }

    #[test]
    fn counts_survive_a_reopen_and_buckets_are_bounded() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let t0 = 1_800_000_000_000;
        {
            let quota = store(dir.path(), 60_000);
            for _ in 0..3 {
                assert!(quota.consume("g", "k", 1, MINUTE, t0).is_ok());
            }
        }
        let quota = store(dir.path(), 0);
        assert_eq!(quota.consume("g", "k", 1, MINUTE, t0 + 1).ok(), Some(Consumed::Granted { remaining: 1 }));
        for key in ["a", "b", "c"] {
            assert!(quota.consume("g", key, 1, MINUTE, t0).is_ok());
        }
        let full = quota.consume("g", "d", 1, MINUTE, t0);
        assert!(matches!(full, Err(QuotaError::Full(_))), "{full:?}");
        // Once the others have expired, a new bucket has room.
        assert!(quota.consume("g", "d", 1, MINUTE, t0 + 180_000).is_ok());
        let bad = quota.consume("", "k", 1, MINUTE, t0);
        assert!(matches!(bad, Err(QuotaError::Invalid(_))));
    }
}
