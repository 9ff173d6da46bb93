//! The `subscriber` role (`wit/subscriber.wit`, export
//! `arw:host/event-handler`): per delivery, on a fresh instance.
//!
//! Each subscriber component gets one bus subscription and one worker task.
//! The subscription's filter (run inside `publish`, possibly on a guest's
//! stack) lets through the topics the manifest requests; the worker then
//! asks Cedar whether the component may `bus.subscribe` to the topic (asked
//! silently: not hearing a topic is not a refusal) and calls the component
//! once per permitted event, in order, one at a time.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::Worker;
use crate::bindings::v0_1;
use crate::capabilities::bus::{Event, Payload};
use crate::error::CallError;
use crate::runtime::Runtime;
use crate::runtime::component::LoadedComponent;
use crate::runtime::entry::Entry;
use crate::runtime::outcome::{classify, pool_busy, timeout};
use crate::runtime::store::InstanceState;
use bindings::SubscriberPre;

/// The bindings of `arw:host/subscriber`: the `event-handler` export; the capability
/// interfaces are [`crate::bindings::imports`].
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "arw:host/subscriber",
        imports: { default: async },
        exports: { default: async },
        with: { "arw:host": crate::bindings::imports::arw::host },
    });
}

/// The export that makes a component this role, at the current `arw:host`.
pub const EXPORT: &str = "arw:host/event-handler@0.2.0";

/// This role, described (see [`crate::roles`]).
pub const UNIT: super::Role = super::Role {
    world: "subscriber",
    wit_world: "arw:host/subscriber",
    export: EXPORT,
    check: super::no_rules,
    lifecycles: &[super::Lifecycle::PerEntry],
    worker: Some(spawn),
};

/// The `subscriber` role as a unit (see [`super::RoleUnit`]).
#[derive(Debug)]
pub struct SubscriberRole;

impl super::RoleUnit for SubscriberRole {
    const UNIT: super::Role = UNIT;
    type Prepared = EventExport;

    /// The health check: the component instantiates, under its deadline.
    async fn prepare(
        runtime: &crate::runtime::Runtime,
        loaded: &crate::runtime::component::LoadedComponent,
        pre: &wasmtime::component::InstancePre<crate::runtime::store::InstanceState>,
        exports: &[String],
    ) -> Result<EventExport, crate::LoadError> {
        let export = EventExport::new(pre.clone(), exports).map_err(|e| loaded.link_error(e))?;
        let mut check = runtime.health_store(loaded).await?;
        crate::runtime::component::health_result(loaded, &check.entry, export.instantiate(&mut check.store)).await?;
        Ok(export)
    }
}

/// Subscribe `component` to the bus and start its worker. When `shutdown`
/// flips to true the worker delivers what is already queued, then stops
/// (the host bounds this by its grace period); it also stops when the
/// subscription is removed and its queue is empty.
pub(crate) fn spawn(start: super::WorkerStart) -> Worker {
    let super::WorkerStart { runtime, slot, rollback, mut shutdown } = start;
    let bus = runtime.capabilities.bus.clone();
    let (subscription, mut events) = super::subscribe(&runtime, &slot);
    let task = tokio::spawn(async move {
        loop {
            let event = if *shutdown.borrow() {
                // Draining: take only what is already queued.
                match events.try_recv() {
                    Ok(event) => event,
                    Err(_) => break,
                }
            } else {
                tokio::select! {
                    _ = shutdown.changed() => continue,
                    event = events.recv() => match event {
                        Some(event) => event,
                        None => break,
                    },
                }
            };
            let component = slot.active();
            if !component.grants().allows(crate::capabilities::bus::SUBSCRIBE, &event.topic) {
                continue;
            }
            let result = runtime.deliver(&component, &event).await;
            match &result {
                Ok(()) => bus.record_delivered(),
                Err(e) => {
                    bus.record_failed();
                    tracing::warn!(component = component.id(), event = event.id, topic = %event.topic, "delivery failed: {e}");
                }
            }
            // A delivery counts towards the version's probation like a call.
            rollback.observe(&slot, &component, matches!(&result, Err(e) if e.is_fault()));
        }
    });
    Worker { subscription, task, commands: None, counters: None }
}

impl Runtime {
    /// Deliver one bus event to a subscriber component, under the same
    /// deadline and pool budget as a tool call.
    pub async fn deliver(&self, component: &LoadedComponent, event: &Event) -> Result<(), CallError> {
        let Some(pre) = component.roles.subscriber.as_ref() else {
            return Ok(());
        };
        let name = component.id();
        let entry = Entry::start(component);
        let _running = component.enter();
        let _instance = entry.wait(self.pool.for_call()).await.flatten().ok_or_else(|| pool_busy(self, name))?;
        let mut store = entry.store(self, component);
        let trap = |e: wasmtime::Error| classify(name, component, e);
        let run = async { pre.handle(&mut store, event).await.map_err(trap) };
        entry.run(run).await.ok_or_else(|| timeout(name, component))??.map_err(|message| CallError::Tool {
            tool: name.into(),
            code: "handler-error".into(),
            message,
        })
    }
}

/// A linked subscriber, at the `arw:host` version it was built against.
pub(crate) enum EventExport {
    Current(SubscriberPre<InstanceState>),
    V0_1(v0_1::subscriber::SubscriberPre<InstanceState>),
}

impl EventExport {
    /// The event-handler export of `pre`, whose component exports `exports`.
    pub(crate) fn new(pre: InstancePre<InstanceState>, exports: &[String]) -> wasmtime::Result<Self> {
        if exports.iter().any(|e| e == EXPORT) {
            Ok(EventExport::Current(SubscriberPre::new(pre)?))
        } else {
            Ok(EventExport::V0_1(v0_1::subscriber::SubscriberPre::new(pre)?))
        }
    }

    /// Instantiate in `store` (the health check of a subscriber).
    pub(crate) async fn instantiate(&self, store: &mut Store<InstanceState>) -> wasmtime::Result<()> {
        match self {
            EventExport::Current(pre) => pre.instantiate_async(store).await.map(drop),
            EventExport::V0_1(pre) => pre.instantiate_async(store).await.map(drop),
        }
    }

    /// Instantiate in `store` and deliver `event`.
    pub(crate) async fn handle(
        &self,
        store: &mut Store<InstanceState>,
        event: &Event,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            EventExport::Current(pre) => {
                let event = event.to_wit();
                pre.instantiate_async(&mut *store).await?.arw_host_event_handler().call_handle(store, &event).await
            }
            EventExport::V0_1(pre) => {
                use v0_1::tool::arw::host::bus as v1;
                let event = v1::Event {
                    id: event.id,
                    topic: event.topic.clone(),
                    payload: match &event.payload {
                        Payload::Json(text) => v1::Payload::Json(text.clone()),
                        Payload::Bytes(bytes) => v1::Payload::Bytes(bytes.clone()),
                    },
                    source: event.source.to_string(),
                    time_ms: event.time_ms,
                };
                pre.instantiate_async(&mut *store).await?.arw_host_event_handler().call_handle(store, &event).await
            }
        }
    }
}
