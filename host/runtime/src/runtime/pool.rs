//! The instance pool's budget.
//!
//! wasmtime's pooling allocator has `engine.max-instances` slots for the
//! whole host. Calls and event deliveries share all of them but one, which
//! is kept for health checks: a component that fills the pool makes other
//! calls wait (and, past their deadline, fail as `busy`, which is not a
//! fault), but it never makes another component's call trap or a new
//! version fail its health check.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::HostError;

/// Slots kept for health checks.
pub const RESERVED_FOR_HEALTH_CHECKS: u32 = 1;

#[derive(Debug)]
pub struct InstancePool {
    calls: Arc<Semaphore>,
    health: Arc<Semaphore>,
    size: u32,
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
        })
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
