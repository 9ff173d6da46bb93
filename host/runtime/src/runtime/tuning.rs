//! What the feedback engine's applies change of a component's limits
//! (`docs/feedback.md`, knobs `component.<id>.timeout-ms`,
//! `component.<id>.concurrency` and `component.<id>.pool-size`) and of
//! the host's HTTP server (`http.request-timeout-ms`,
//! `http.admin-rate-per-minute`).
//!
//! One [`Tuning`] per component id, shared by every version of it (a new
//! version keeps what was applied), read lock-free by calls: the timeout
//! when an entry starts, the concurrency through the version's slots, the
//! pool size when an instance is given back. One [`HostTuning`] for the
//! server, read per request. Zero means "the manifest's (or the config's)
//! value".

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;

/// The applied values of one component's limits.
#[derive(Debug, Default)]
pub struct Tuning {
    timeout_ms: AtomicU64,
    concurrency: AtomicU32,
    pool_size: AtomicU32,
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

    /// The applied `pool-size` of a `[pooled]` tool, if any.
    pub fn pool_size(&self) -> Option<u32> {
        Some(self.pool_size.load(Ordering::Relaxed)).filter(|s| *s > 0)
    }

    /// Set (or clear) the applied pool size; the versions' kept instances
    /// follow at [`crate::runtime::component::LoadedComponent::retune`].
    pub fn set_pool_size(&self, value: Option<u32>) {
        self.pool_size.store(value.unwrap_or(0), Ordering::Relaxed);
    }
}

/// The applied values of the host's own settings that the HTTP server
/// reads per request (`[http]`'s value when nothing is applied).
#[derive(Debug, Default)]
pub struct HostTuning {
    request_timeout_ms: AtomicU64,
    admin_rate_per_minute: AtomicU32,
}

impl HostTuning {
    /// The applied `http.request-timeout-ms`, if any.
    pub fn request_timeout_ms(&self) -> Option<u64> {
        Some(self.request_timeout_ms.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    pub fn set_request_timeout_ms(&self, value: Option<u64>) {
        self.request_timeout_ms.store(value.unwrap_or(0), Ordering::Relaxed);
    }

    /// The applied `http.admin-rate-per-minute`, if any.
    pub fn admin_rate_per_minute(&self) -> Option<u32> {
        Some(self.admin_rate_per_minute.load(Ordering::Relaxed)).filter(|r| *r > 0)
    }

    pub fn set_admin_rate_per_minute(&self, value: Option<u32>) {
        self.admin_rate_per_minute.store(value.unwrap_or(0), Ordering::Relaxed);
    }
}

/// Every component's tuning, by id. Entries are made at load (or when a
/// persisted apply is restored before the component loads) and kept: at
/// most one per component id the host has seen, bounded by the
/// registry.
#[derive(Debug, Default)]
pub struct Tunings {
    components: Mutex<HashMap<String, Arc<Tuning>>>,
    host: HostTuning,
}

impl Tunings {
    /// The host's own settings' tuning.
    pub fn host(&self) -> &HostTuning {
        &self.host
    }

    /// The tuning of component `id`, made if new.
    pub fn of(&self, id: &str) -> Arc<Tuning> {
        self.components.lock().entry(id.to_string()).or_default().clone()
    }
}
