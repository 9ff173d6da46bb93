//! What the feedback engine's applies change of a component's limits
//! (`docs/feedback.md`, knobs `component.<id>.timeout-ms` and
//! `component.<id>.concurrency`).
//!
//! One [`Tuning`] per component id, shared by every version of it (a new
//! version keeps what was applied), read lock-free by calls: the timeout
//! when an entry starts, the concurrency through the version's slots.
//! Zero means "the manifest's value".

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;

/// The applied values of one component's limits.
#[derive(Debug, Default)]
pub struct Tuning {
    timeout_ms: AtomicU64,
    concurrency: AtomicU32,
}

impl Tuning {
    /// The applied `timeout-ms`, if any.
    pub fn timeout_ms(&self) -> Option<u64> {
        Some(self.timeout_ms.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    /// The applied `concurrency`, if any.
    pub fn concurrency(&self) -> Option<u32> {
        Some(self.concurrency.load(Ordering::Relaxed)).filter(|c| *c > 0)
    }

    /// Set (or, with `None`, clear) the applied timeout.
    pub fn set_timeout_ms(&self, value: Option<u64>) {
        self.timeout_ms.store(value.unwrap_or(0), Ordering::Relaxed);
    }

    /// Set (or clear) the applied concurrency; the versions' slots follow
    /// at [`crate::runtime::component::LoadedComponent::retune`].
    pub fn set_concurrency(&self, value: Option<u32>) {
        self.concurrency.store(value.unwrap_or(0), Ordering::Relaxed);
    }
}

/// Every component's tuning, by id. Entries are made at load (or when a
/// persisted apply is restored before the component loads) and kept: at
/// most one per component id the host has seen, bounded by the
/// registry.
#[derive(Debug, Default)]
pub struct Tunings(Mutex<HashMap<String, Arc<Tuning>>>);

impl Tunings {
    /// The tuning of component `id`, made if new.
    pub fn of(&self, id: &str) -> Arc<Tuning> {
        self.0.lock().entry(id.to_string()).or_default().clone()
    }
}
