//! The instance pool's budget.
//!
//! wasmtime's pooling allocator has `engine.max-instances` slots for the
//! whole host. Calls and event deliveries share all of them but one, which
//! is kept for health checks: a component that fills the pool makes other
//! calls wait (and, past their deadline, fail as `busy`, which is not a
//! fault), but it never makes another component's call trap or a new
//! version fail its health check.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::HostError;

/// Slots kept for health checks.
pub const RESERVED_FOR_HEALTH_CHECKS: u32 = 1;

#[derive(Debug)]
pub struct InstancePool {
    calls: Arc<Semaphore>,
    health: Arc<Semaphore>,
    size: u32,
    memory: Arc<MemoryUse>,
}

/// Linear memory held by the live instances, against the sum of their
/// caps (each store's manifest `limits.memory-mib`): the feedback engine's
/// `memory.in-use-bytes` gauge. Counted by each store's limiter as its
/// memories are made and grow, given back when the store is dropped.
#[derive(Debug, Default)]
pub struct MemoryUse {
    in_use: AtomicU64,
    capped: AtomicU64,
}

impl MemoryUse {
    /// Bytes of linear memory the live instances hold now.
    pub fn in_use(&self) -> u64 {
        self.in_use.load(Ordering::Relaxed)
    }

    /// The sum of the live instances' memory caps, in bytes.
    pub fn capped(&self) -> u64 {
        self.capped.load(Ordering::Relaxed)
    }

    pub(crate) fn add_store(&self, cap: usize) {
        self.capped.fetch_add(cap as u64, Ordering::Relaxed);
    }

    pub(crate) fn grow(&self, bytes: usize) {
        self.in_use.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Memory counted as grown that is not held after all.
    pub(crate) fn release(&self, bytes: usize) {
        self.in_use.fetch_sub(bytes as u64, Ordering::Relaxed);
    }

    /// A store is dropped: its cap and what its memories held go.
    pub(crate) fn drop_store(&self, cap: usize, held: usize) {
        self.capped.fetch_sub(cap as u64, Ordering::Relaxed);
        self.release(held);
    }
}

impl InstancePool {
    pub fn new(max_instances: u32) -> Result<Self, HostError> {
        if max_instances <= RESERVED_FOR_HEALTH_CHECKS {
            return Err(HostError::Engine(format!(
                "engine.max-instances must be at least {} ({RESERVED_FOR_HEALTH_CHECKS} is kept for health checks)",
                RESERVED_FOR_HEALTH_CHECKS + 1
            )));
        }
        let calls = max_instances - RESERVED_FOR_HEALTH_CHECKS;
        Ok(InstancePool {
            calls: Arc::new(Semaphore::new(calls as usize)),
            health: Arc::new(Semaphore::new(RESERVED_FOR_HEALTH_CHECKS as usize)),
            size: max_instances,
            memory: Arc::default(),
        })
    }

    /// Linear memory the live instances hold, against their caps.
    pub fn memory(&self) -> &Arc<MemoryUse> {
        &self.memory
    }

    /// How many instances calls and deliveries may hold at once.
    pub fn calls_budget(&self) -> u32 {
        self.size - RESERVED_FOR_HEALTH_CHECKS
    }

    /// Instances held by calls and deliveries now.
    pub fn calls_in_use(&self) -> u32 {
        self.calls_budget().saturating_sub(self.calls.available_permits() as u32)
    }

    /// A slot for one call or delivery (wait for it under a deadline).
    pub async fn for_call(&self) -> Option<OwnedSemaphorePermit> {
        self.calls.clone().acquire_owned().await.ok()
    }

    /// The slot kept for health checks.
    pub async fn for_health_check(&self) -> Option<OwnedSemaphorePermit> {
        self.health.clone().acquire_owned().await.ok()
    }
}
