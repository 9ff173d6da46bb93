//! The `queue-backend` role (`wit/queue-backend.wit`, exports
//! `arw:host/queue-store` and `arw:host/lifecycle`): durable storage of a
//! host's work queues, as a component.
//!
//! The resident lifecycle, driven by [`super::resident`]'s driver: one
//! long-lived instance, entered one call at a time, so every push, lease,
//! ack and nak arrives in one sequence and a backend needs no locks. The
//! host's queue service ([`crate::queues`]) sends each call as a command;
//! a fault counts towards the version's probation like a resident's, and a
//! swap hands the instance's state over with `snapshot`/`restore` (the
//! tasks themselves live in the backend's storage, so none is lost).

use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre};

use super::resident::ResidentExport;
use crate::runtime::component::LoadedComponent;
use crate::runtime::store::InstanceState;
use bindings::exports::arw::host::queue_store;

/// The bindings of `arw:host/queue-backend`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "arw:host/queue-backend",
        imports: { default: async },
        exports: { default: async },
        with: { "arw:host": crate::bindings::imports::arw::host },
    });
}

/// The backend's types (`task`, `leased`, `store-error`, ...).
pub use bindings::exports::arw::host::queue_store as wit;

/// The export that makes a component this role.
pub const EXPORT: &str = "arw:host/queue-store@0.2.0";

/// This role, described (see [`crate::roles`]).
pub const UNIT: super::Role = super::Role {
    world: "queue-backend",
    wit_world: "arw:host/queue-backend",
    export: EXPORT,
    check: check_alone,
    lifecycles: &[super::Lifecycle::Resident],
    worker: Some(super::resident::spawn),
};

/// A backend is only that: its one instance holds every caller's tasks.
fn check_alone(manifest: &crate::Manifest) -> Result<(), String> {
    if manifest.names_world(UNIT.world) && manifest.worlds.len() > 1 {
        return Err("a queue backend's `worlds` must be [\"queue-backend\"] alone: its one long-lived instance \
                    holds every caller's tasks; make a separate component for the rest"
            .into());
    }
    Ok(())
}

/// One call of the backend.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Push { queue: String, task: wit::Task },
    Lease { queue: String, max: u32, lease_ms: u64 },
    Ack { queue: String, lease: String },
    Nak { queue: String, lease: String, delay_ms: u64, error: String },
    Term { queue: String, lease: String, error: String },
    Extend { queue: String, lease: String, lease_ms: u64 },
    Stats { queue: String },
    Dead { queue: String, limit: u32 },
}

/// What the backend answered, by call.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    Pushed(wit::PushOutcome),
    Leased(Vec<wit::Leased>),
    Done,
    Naked(wit::NakOutcome),
    Stats(wit::QueueCounts),
    Dead(Vec<wit::DeadTask>),
}

/// The backend's answer, or its own error.
pub(crate) type Answered = Result<Reply, wit::StoreError>;

/// Where the backend's `queue-store` is in a component (found before
/// instantiation).
pub(crate) struct StoreIndices(queue_store::GuestIndices);

impl StoreIndices {
    pub(crate) fn new(pre: &InstancePre<InstanceState>) -> wasmtime::Result<Self> {
        Ok(StoreIndices(queue_store::GuestIndices::new(pre)?))
    }
}

/// A running backend's `queue-store`.
pub(crate) struct QueueStore(queue_store::Guest);

impl QueueStore {
    pub(crate) fn load(
        indices: &StoreIndices,
        store: &mut Store<InstanceState>,
        instance: &Instance,
    ) -> wasmtime::Result<Self> {
        Ok(QueueStore(indices.0.load(store, instance)?))
    }

    /// Enter the backend once with `op`.
    pub(crate) async fn run(&self, store: &mut Store<InstanceState>, op: &Op) -> wasmtime::Result<Answered> {
        let g = &self.0;
        Ok(match op {
            Op::Push { queue, task } => g.call_push(store, queue, task).await?.map(Reply::Pushed),
            Op::Lease { queue, max, lease_ms } => g.call_lease(store, queue, *max, *lease_ms).await?.map(Reply::Leased),
            Op::Ack { queue, lease } => g.call_ack(store, queue, lease).await?.map(|()| Reply::Done),
            Op::Nak { queue, lease, delay_ms, error } => {
                g.call_nak(store, queue, lease, *delay_ms, error).await?.map(Reply::Naked)
            }
            Op::Term { queue, lease, error } => g.call_term(store, queue, lease, error).await?.map(|()| Reply::Done),
            Op::Extend { queue, lease, lease_ms } => {
                g.call_extend(store, queue, lease, *lease_ms).await?.map(|()| Reply::Done)
            }
            Op::Stats { queue } => g.call_stats(store, queue).await?.map(Reply::Stats),
            Op::Dead { queue, limit } => g.call_dead(store, queue, *limit).await?.map(Reply::Dead),
        })
    }
}

/// The `queue-backend` role as a unit (see [`super::RoleUnit`]).
#[derive(Debug)]
pub struct QueueBackendRole;

/// What the role keeps of a loaded backend: its long-lived export, driven
/// like a resident's.
pub(crate) struct QueueBackendPrepared {
    pub(crate) export: ResidentExport,
}

impl super::RoleUnit for QueueBackendRole {
    const UNIT: super::Role = UNIT;
    type Prepared = QueueBackendPrepared;

    /// The health check: the component instantiates under its deadline.
    async fn prepare(
        runtime: &crate::runtime::Runtime,
        loaded: &LoadedComponent,
        pre: &InstancePre<InstanceState>,
        exports: &[String],
    ) -> Result<QueueBackendPrepared, crate::LoadError> {
        let _ = exports;
        let export = ResidentExport::queue_backend(pre.clone()).map_err(|e| loaded.link_error(e))?;
        let mut check = runtime.health_store(loaded).await?;
        crate::runtime::component::health_result(loaded, &check.entry, export.instantiate(&mut check.store)).await?;
        Ok(QueueBackendPrepared { export })
    }
}
