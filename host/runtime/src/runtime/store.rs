//! Store data and per-call store setup.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::pool::MemoryUse;
use crate::capabilities::{Capabilities, CapabilityInstances, ComponentCapabilities};

/// Everything one instance's host functions can reach.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    /// When the current entry must end: set once for a per-entry store,
    /// re-armed at every entry into a resident instance.
    pub(crate) deadline: Instant,
    pub(crate) capabilities: CapabilityInstances,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl InstanceState {
    /// The resource table and the capabilities' per-instance state, apart,
    /// for a capability whose bindings need both (WASI views).
    pub(crate) fn table_and_capabilities(&mut self) -> (&mut ResourceTable, &mut CapabilityInstances) {
        (&mut self.table, &mut self.capabilities)
    }
}

/// Raised (as a trap) when a guest tries to grow memory past its cap.
#[derive(Debug, thiserror::Error)]
#[error("memory cap of {limit} bytes exceeded (the guest asked for {desired} bytes)")]
pub struct MemoryCapExceeded {
    pub limit: usize,
    pub desired: usize,
}

/// Raised (as a trap) in a call still running on a replaced version when
/// its drain grace period ends.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: this version was replaced and its drain grace period ended")]
pub struct Retired;

/// Raised (as a trap) when a call runs past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("deadline of {0:?} exceeded")]
pub struct DeadlineExceeded(pub Duration);

/// Per-store limiter: caps linear memory at the manifest's limit and turns
/// an attempt to exceed it into a trap that says so; counts what the
/// store's memories hold into the host's [`MemoryUse`] (wasmtime asks the
/// limiter when a memory is made, from 0 bytes, and at every growth).
struct MemoryCap {
    limit: usize,
    /// Bytes counted for this store's memories.
    held: usize,
    /// The last growth allowed, taken back if the engine then fails it.
    last_growth: usize,
    memory: Arc<MemoryUse>,
}

impl MemoryCap {
    fn new(limit: usize, memory: Arc<MemoryUse>) -> Self {
        memory.add_store(limit);
        MemoryCap { limit, held: 0, last_growth: 0, memory }
    }
}

impl Drop for MemoryCap {
    fn drop(&mut self) {
        self.memory.drop_store(self.limit, self.held);
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            return Err(wasmtime::Error::new(MemoryCapExceeded { limit: self.limit, desired }));
        }
        let grown = desired.saturating_sub(current);
        self.held = self.held.saturating_add(grown);
        self.last_growth = grown;
        self.memory.grow(grown);
        Ok(true)
    }

    /// The engine could not give the growth just allowed (past the
    /// memory's own maximum, or the allocator refused): not held after all.
    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        let failed = std::mem::take(&mut self.last_growth);
        self.held = self.held.saturating_sub(failed);
        self.memory.release(failed);
        Ok(())
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The bounds of one store: its memory cap, its first entry's deadline
/// (`timeout` is what a deadline is reported as), and its version's
/// `retired` flag.
pub struct StoreBounds {
    pub memory_limit: usize,
    /// Where the host counts the memory its instances hold.
    pub memory: Arc<MemoryUse>,
    pub timeout: Duration,
    pub deadline: Instant,
    pub retired: Arc<AtomicBool>,
}

/// A fresh store for one entry into a component (or a resident
/// instance's life): deny-by-default WASI, the component's capabilities
/// (`chain`: the components the entry came through), and its bounds.
pub fn new_store(
    engine: &Engine,
    host: &Capabilities,
    component: &ComponentCapabilities,
    chain: super::entry::Chain,
    bounds: StoreBounds,
) -> Store<InstanceState> {
    let StoreBounds { memory_limit, memory, timeout, deadline, retired } = bounds;
    // WASI grants nothing: no preopened directories, no environment, no
    // arguments, no stdin, no network (the socket check denies every
    // address). Clocks and random are available. stdout/stderr go to the
    // log when `log.write` on `stdout`/`stderr` is granted, rate-limited
    // (see `capabilities::log::guest_output`).
    let wasi = WasiCtx::builder()
        .stdout(component.output(host, "stdout"))
        .stderr(component.output(host, "stderr"))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let state = InstanceState {
        wasi,
        table: ResourceTable::new(),
        limiter: MemoryCap::new(memory_limit, memory),
        deadline,
        capabilities: CapabilityInstances::new(host, component, chain),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    // Check at every epoch tick: yield to the executor (so a busy guest
    // never starves other calls) until the deadline, then trap; trap early
    // if the version was retired and its drain grace period ended.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |store| {
        if retired.load(Ordering::Acquire) {
            Err(wasmtime::Error::new(Retired))
        } else if Instant::now() >= store.data().deadline {
            Err(wasmtime::Error::new(DeadlineExceeded(timeout)))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store
}
