//! The wasmtime side of the host: one engine, one linker, a store per entry.
//!
//! - [`engine`]: the `Engine` (pooling allocator, epoch interruption) and
//!   its epoch ticker;
//! - [`pool`]: the instance pool's budget (one slot kept for health checks);
//! - [`store`]: what lives in a `Store` (WASI context, capability instances,
//!   memory limiter) and how a store is set up for one entry;
//! - [`entry`]: one entry into a guest under one deadline;
//! - [`component`]: loading a component: checks, compile, link, health check;
//! - [`outcome`]: how an entry's failures are told apart (the roles that
//!   drive entries are in [`crate::roles`]);
//! - [`aot`]: the authenticated cache of compiled components.

pub mod aot;
pub mod component;
pub mod engine;
pub mod entry;
pub mod outcome;
pub mod pool;
pub mod store;
pub mod tuning;
pub mod warm;

use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::Linker;

use crate::authz::Chokepoint;
use crate::capabilities::Capabilities;
use crate::config::HostConfig;
use store::InstanceState;

/// Build the linker every component is linked against: WASI p2 (with
/// nothing granted: see [`store::new_store`]) plus ARW's capabilities.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    crate::capabilities::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// What every load and every call needs: the engine, the linker, the
/// host-wide capability state and the chokepoint. One per host.
pub struct Runtime {
    pub engine: Engine,
    pub linker: Linker<InstanceState>,
    pub capabilities: Capabilities,
    pub chokepoint: Arc<Chokepoint>,
    pub config: HostConfig,
    /// Where compiled components are cached; `None` compiles every time.
    pub aot: Option<aot::AotCache>,
    pub pool: pool::InstancePool,
    /// What the entry points measure for the feedback engine.
    pub signals: crate::signals::Recorder,
    /// What the feedback engine's applies changed of each component's limits.
    pub tunings: tuning::Tunings,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("config", &self.config).finish_non_exhaustive()
    }
}
