//! The wasmtime `Engine` and the epoch ticker that drives deadlines.

use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::EngineConfig;
use crate::error::HostError;

/// Core instances, memories and tables one component may have. Rust
/// components have one of each; components from other languages (Python,
/// JavaScript) have more, so leave room.
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;
const MEMORIES_PER_COMPONENT: u32 = 4;
const TABLES_PER_COMPONENT: u32 = 8;

/// Build the one engine of the host.
pub fn build(config: &EngineConfig) -> Result<Engine, HostError> {
    if config.max_instances == 0 || config.max_memory_mib == 0 || config.epoch_tick_ms == 0 {
        return Err(HostError::Engine(
            "engine.max-instances, engine.max-memory-mib and engine.epoch-tick-ms must be greater than zero".into(),
        ));
    }
    let max_memory = config
        .max_memory_mib
        .checked_mul(1 << 20)
        .ok_or_else(|| HostError::Engine(format!("engine.max-memory-mib = {} is too large", config.max_memory_mib)))?;

    if config.memory_keep_resident_kib as u64 > config.max_memory_mib.saturating_mul(1024) {
        return Err(HostError::Engine(format!(
            "engine.memory-keep-resident-kib = {} is more than engine.max-memory-mib ({} MiB); lower it",
            config.memory_keep_resident_kib, config.max_memory_mib
        )));
    }

    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(config.max_instances)
        .total_core_instances(config.max_instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_memories(config.max_instances.saturating_mul(MEMORIES_PER_COMPONENT))
        .total_tables(config.max_instances.saturating_mul(TABLES_PER_COMPONENT))
        .total_stacks(config.max_instances)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_memory_size(usize::try_from(max_memory).unwrap_or(usize::MAX))
        // Reset a freed slot's first pages with memset and keep them
        // mapped, and return the rest to the kernel in batches: each
        // `madvise` is a TLB shootdown on every core, which was most of an
        // HTTP request's cost (docs/PERFORMANCE.md, "Instance reuse").
        .linear_memory_keep_resident(kib(config.memory_keep_resident_kib))
        .table_keep_resident(kib(config.table_keep_resident_kib))
        .decommit_batch_size(config.decommit_batch.max(1));

    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(config.max_wasm_stack_kib.saturating_mul(1024))
        // Reserve only what a memory may grow to (not wasmtime's 4 GiB
        // default), so a pool of many slots fits a small device's address
        // space; bounds checks are explicit as a result.
        .memory_reservation(max_memory)
        .memory_guard_size(64 << 10)
        .memory_reservation_for_growth(0)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm).map_err(|e| HostError::Engine(format!("{e:#}")))
}

fn kib(n: usize) -> usize {
    n.saturating_mul(1024)
}

/// Increment the engine's epoch every `tick` on a background thread, for as
/// long as the engine lives.
pub fn start_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new().name("arw-epoch".into()).spawn(move || {
        loop {
            std::thread::sleep(tick);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        }
    });
    if let Err(e) = spawned {
        // Without a ticker deadlines never fire; refuse to run silently
        // without them.
        tracing::error!("cannot start the epoch ticker thread: {e}; per-call deadlines will not fire");
    }
}
