//! Durable windowed counters (`arw:host/quota`): "at most `limit` per
//! `window-ms`", consumed atomically, kept across restarts in
//! `<state-dir>/quota.redb`. Gates count budgets with it.
//!
//! Buckets live in memory (a map under one lock: a consume is a lookup and
//! an add) and are written to redb every `quota.flush-ms` by a flusher
//! thread, and at a clean stop; a crash loses at most that interval's
//! consumes. `flush-ms = 0` commits each consume before it returns (about
//! a disk sync per consume: see docs/PERFORMANCE.md). Buckets are bounded
//! (`quota.max-buckets`): past it, expired buckets are dropped first, and a
//! consume that needs a new bucket when none can be dropped is
//! `unavailable` (never a silent reset).

use arw_policy::Action;

use crate::capabilities::unit::Request;

pub mod budgets;
mod host;
pub mod store;

pub use host::QuotaInstance;
pub use store::{Consumed, QuotaError, QuotaStore, Window, WindowKind};

use serde::{Deserialize, Serialize};

/// A component consuming from a bucket of a namespace (`Arw::QuotaNamespace`).
pub const CONSUME: Action = Action::new("quota.consume");

/// This capability, described (see [`crate::capabilities::unit`]).
pub const UNIT: crate::capabilities::Unit = crate::capabilities::Unit {
    name: "quota",
    wit: &["arw:host/quota"],
    actions: &[CONSUME],
    requests: &[Request::any(CONSUME)],
    schema: include_str!("schema.cedarschema"),
    config_section: Some("quota"),
    link,
};

/// This folder as a capability unit (see [`crate::capabilities::Capability`]).
#[derive(Debug)]
pub struct QuotaCapability;

impl crate::capabilities::Capability for QuotaCapability {
    const UNIT: crate::capabilities::Unit = UNIT;
    type Config = QuotaConfig;
    type State = std::sync::Arc<QuotaStore>;
    type Instance = QuotaInstance;

    fn start(
        config: &QuotaConfig,
        env: &crate::capabilities::StartEnv<'_>,
    ) -> Result<std::sync::Arc<QuotaStore>, crate::HostError> {
        let store =
            QuotaStore::open(env.state_dir, config.clone()).map_err(|e| crate::HostError::Config(e.to_string()))?;
        let store = std::sync::Arc::new(store);
        store::spawn_flusher(&store);
        Ok(store)
    }

    fn instance(
        state: &std::sync::Arc<QuotaStore>,
        component: &crate::capabilities::ComponentCapabilities,
        chain: &crate::runtime::entry::Chain,
    ) -> QuotaInstance {
        let _ = chain;
        QuotaInstance::new(state.clone(), component)
    }
}

/// `arw:host/quota` (0.2.0 only) on [`QuotaInstance`].
fn link(linker: &mut wasmtime::component::Linker<crate::runtime::store::InstanceState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    type State = crate::runtime::store::InstanceState;
    crate::bindings::imports::arw::host::quota::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut State| {
        &mut s.capabilities.quota
    })
}

/// `[quota]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct QuotaConfig {
    /// How often counts are written to disk, in milliseconds: what a crash
    /// can lose. 0 writes every consume before it returns.
    pub flush_ms: u64,
    /// Buckets kept at most (all namespaces together).
    pub max_buckets: usize,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig { flush_ms: 1000, max_buckets: 65_536 }
    }
}
