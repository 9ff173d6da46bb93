//! The pooled lifecycle: instances of one version kept between entries.
//!
//! A version whose manifest has `[pooled]` keeps up to `size` idle
//! instances, each in its own store (its memory cap, its deadline re-armed
//! at every entry) and each holding its instance-pool slot while it lives.
//! An entry takes an idle instance or makes one, and gives it back after.
//! Two rules keep reuse safe:
//!
//! - **Reuse never crosses callers** unless the manifest says `stateless`:
//!   an instance serves only the caller (principal) it first served, so
//!   whatever a call leaves in its memory is seen only by the same caller.
//! - **A fault discards the instance**: after a trap, a deadline, the
//!   memory cap or invalid output, its state is not trusted; it is dropped
//!   and a later entry makes a fresh one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Store;

use super::store::InstanceState;

/// One idle (or taken) instance: its store, its instance, whom it served.
pub(crate) struct Warm<I> {
    pub(crate) store: Store<InstanceState>,
    pub(crate) instance: I,
    /// The caller it served first; `None` for one that served nobody yet.
    served: Option<Arc<str>>,
    _slot: OwnedSemaphorePermit,
}

impl<I> Warm<I> {
    pub(crate) fn new(store: Store<InstanceState>, instance: I, slot: OwnedSemaphorePermit) -> Self {
        Warm { store, instance, served: None, _slot: slot }
    }
}

/// The idle instances of one version.
pub(crate) struct WarmPool<I> {
    idle: Mutex<Vec<Warm<I>>>,
    /// Idle instances kept at most: the manifest's `pooled.size`, or the
    /// feedback knob `component.<id>.pool-size` applied to it.
    size: AtomicUsize,
    stateless: bool,
}

impl<I> std::fmt::Debug for WarmPool<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmPool").field("idle", &self.idle.lock().len()).field("size", &self.size()).finish()
    }
}

impl<I> WarmPool<I> {
    pub(crate) fn new(size: usize, stateless: bool) -> Self {
        WarmPool { idle: Mutex::new(Vec::with_capacity(size)), size: AtomicUsize::new(size), stateless }
    }

    fn size(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    /// Keep at most `size` idle instances from now on; those over it are
    /// dropped now (their pool slots freed), outside the lock.
    pub(crate) fn resize(&self, size: usize) {
        self.size.store(size, Ordering::Relaxed);
        let surplus: Vec<Warm<I>> = {
            let mut idle = self.idle.lock();
            let over = idle.len().saturating_sub(size);
            idle.drain(..over).collect()
        };
        drop(surplus);
    }

    /// An idle instance `caller` may use: for a stateless component any,
    /// else one that served `caller` before, else one that served nobody.
    pub(crate) fn take(&self, caller: &Arc<str>) -> Option<Warm<I>> {
        let mut idle = self.idle.lock();
        let position = if self.stateless {
            idle.len().checked_sub(1)
        } else {
            idle.iter()
                .rposition(|w| w.served.as_ref() == Some(caller))
                .or_else(|| idle.iter().rposition(|w| w.served.is_none()))
        }?;
        Some(idle.swap_remove(position))
    }

    /// Give back an instance after an entry of `caller` that did not
    /// fault. A full pool of a stateless component drops it; a full pool
    /// of a per-caller one drops another idle instance instead (the first
    /// in the list), so the callers seen most recently keep theirs and a
    /// new caller is not left with fresh instances only.
    pub(crate) fn give_back(&self, mut warm: Warm<I>, caller: &Arc<str>) {
        if !self.stateless && warm.served.is_none() {
            warm.served = Some(caller.clone());
        }
        let mut idle = self.idle.lock();
        if idle.len() >= self.size() {
            if self.stateless || idle.is_empty() {
                return;
            }
            idle.remove(0);
        }
        idle.push(warm);
    }

    /// Add a pre-made instance that served nobody.
    pub(crate) fn add_fresh(&self, warm: Warm<I>) -> bool {
        let mut idle = self.idle.lock();
        if idle.len() >= self.size() {
            return false;
        }
        idle.push(warm);
        true
    }

    pub(crate) fn idle(&self) -> usize {
        self.idle.lock().len()
    }
}
