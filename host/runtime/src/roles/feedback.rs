//! The `feedback` role (`wit/feedback.wit`, exports
//! `arw:host/feedback-engine` and `arw:host/lifecycle`): the resident
//! lifecycle, driven by [`super::resident`]'s driver, entered with
//! `evaluate` once per feedback tick (`crate::feedback` sends the
//! features; the driver answers the suggestions). Its state passes to a
//! successor at a hot swap through `snapshot`/`restore`, as a resident's
//! does, and a successor that faults on probation is rolled back.

use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre};

use super::resident::ResidentExport;
use crate::runtime::component::LoadedComponent;
use crate::runtime::store::InstanceState;
use bindings::exports::arw::host::feedback_engine;

/// The bindings of `arw:host/feedback`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "arw:host/feedback",
        imports: { default: async },
        exports: { default: async },
        with: { "arw:host": crate::bindings::imports::arw::host },
    });
}

/// The engine's types (`features`, `suggestion`, ...).
pub use bindings::exports::arw::host::feedback_engine as wit;

/// The export that makes a component this role.
pub const EXPORT: &str = "arw:host/feedback-engine@0.2.0";

/// This role, described (see [`crate::roles`]).
pub const UNIT: super::Role = super::Role {
    world: "feedback",
    wit_world: "arw:host/feedback",
    export: EXPORT,
    check: check_alone,
    lifecycles: &[super::Lifecycle::Resident],
    worker: Some(super::resident::spawn),
};

/// A feedback engine is only that: its one instance sees every route's
/// signals, so it serves no calls and hears no events.
fn check_alone(manifest: &crate::Manifest) -> Result<(), String> {
    if manifest.names_world(UNIT.world) && manifest.worlds.len() > 1 {
        return Err("a feedback engine's `worlds` must be [\"feedback\"] alone: its one long-lived instance \
                    sees every route's signals; make a separate component for the rest"
            .into());
    }
    Ok(())
}

/// What one `evaluate` came to: the version that answered and its
/// suggestions, or why there are none this tick.
pub(crate) type Evaluated = Result<(std::sync::Arc<LoadedComponent>, Vec<wit::Suggestion>), String>;

/// Where the engine's `evaluate` is in a component (found before
/// instantiation).
pub(crate) struct EngineIndices(feedback_engine::GuestIndices);

impl EngineIndices {
    pub(crate) fn new(pre: &InstancePre<InstanceState>) -> wasmtime::Result<Self> {
        Ok(EngineIndices(feedback_engine::GuestIndices::new(pre)?))
    }
}

/// A running engine's `evaluate`.
pub(crate) struct Engine(feedback_engine::Guest);

impl Engine {
    pub(crate) fn load(
        indices: &EngineIndices,
        store: &mut Store<InstanceState>,
        instance: &Instance,
    ) -> wasmtime::Result<Self> {
        Ok(Engine(indices.0.load(store, instance)?))
    }

    pub(crate) async fn evaluate(
        &self,
        store: &mut Store<InstanceState>,
        features: &wit::Features,
    ) -> wasmtime::Result<Result<Vec<wit::Suggestion>, String>> {
        self.0.call_evaluate(store, features).await
    }
}

/// The `feedback` role as a unit (see [`super::RoleUnit`]).
#[derive(Debug)]
pub struct FeedbackRole;

/// What the feedback role keeps of a loaded component: its long-lived
/// export, driven like a resident's.
pub(crate) struct FeedbackPrepared {
    pub(crate) export: ResidentExport,
}

impl super::RoleUnit for FeedbackRole {
    const UNIT: super::Role = UNIT;
    type Prepared = FeedbackPrepared;

    /// The health check: the component instantiates under its deadline.
    async fn prepare(
        runtime: &crate::runtime::Runtime,
        loaded: &LoadedComponent,
        pre: &InstancePre<InstanceState>,
        exports: &[String],
    ) -> Result<FeedbackPrepared, crate::LoadError> {
        let _ = exports;
        let export = ResidentExport::feedback(pre.clone()).map_err(|e| loaded.link_error(e))?;
        let mut check = runtime.health_store(loaded).await?;
        crate::runtime::component::health_result(loaded, &check.entry, export.instantiate(&mut check.store)).await?;
        Ok(FeedbackPrepared { export })
    }
}
