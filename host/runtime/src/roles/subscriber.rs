//! The `subscriber` role (`wit/subscriber.wit`, export
//! `arw:host/event-handler`): per delivery, on a fresh instance.
//!
//! Each subscriber component gets one bus subscription and one worker task.
//! The subscription's filter (run inside `publish`, possibly on a guest's
//! stack) lets through the topics the manifest requests; the worker then
//! asks Cedar whether the component may `bus.subscribe` to the topic (asked
//! silently: not hearing a topic is not a refusal) and calls the component
//! once per permitted event, in order, one at a time.

use std::sync::Arc;

use arw_policy::Action;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bindings::tool::arw::host::bus as wit_bus;
use crate::capabilities::bus::{Event, Payload};
use crate::error::CallError;
use crate::runtime::Runtime;
use crate::runtime::component::LoadedComponent;
use crate::runtime::entry::Entry;
use crate::runtime::outcome::{classify, pool_busy, timeout};
use crate::supervisor::Slot;

/// This role, described (see [`crate::roles`]).
pub const UNIT: super::Role = super::Role {
    world: arw_manifest::World::Subscriber,
    wit_world: "arw:host/subscriber",
    export: arw_manifest::exports::EVENT_HANDLER,
    lifecycle: super::Lifecycle::PerEntry,
};

/// A running subscriber: its subscription id and its worker.
#[derive(Debug)]
pub struct SubscriberWorker {
    pub subscription: u64,
    pub task: JoinHandle<()>,
}

/// Subscribe `component` to the bus and start its worker. When `shutdown`
/// flips to true the worker delivers what is already queued, then stops
/// (the host bounds this by its grace period); it also stops when the
/// subscription is removed and its queue is empty.
pub fn spawn(runtime: Arc<Runtime>, slot: Arc<Slot>, mut shutdown: watch::Receiver<bool>) -> SubscriberWorker {
    let bus = runtime.capabilities.bus.clone();
    // The slot, not a version: after a swap the same queue feeds the new
    // version, so no event is lost and order is kept.
    let filter_slot = slot.clone();
    let (subscription, mut events) =
        bus.subscribe(move |topic| filter_slot.active().grants().requests(Action::BusSubscribe, topic));
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
            if !component.grants().allows(Action::BusSubscribe, &event.topic) {
                continue;
            }
            match runtime.deliver(&component, &event).await {
                Ok(()) => bus.record_delivered(),
                Err(e) => {
                    bus.record_failed();
                    tracing::warn!(component = component.id(), event = event.id, topic = %event.topic, "delivery failed: {e}");
                }
            }
        }
    });
    SubscriberWorker { subscription, task }
}

impl Runtime {
    /// Deliver one bus event to a subscriber component, under the same
    /// deadline and pool budget as a tool call.
    pub async fn deliver(&self, component: &LoadedComponent, event: &Event) -> Result<(), CallError> {
        let Some(pre) = component.subscriber.as_ref() else {
            return Ok(());
        };
        let name = component.id();
        let entry = Entry::start(component);
        let _running = component.enter();
        let _instance = entry.wait(self.pool.for_call()).await.flatten().ok_or_else(|| pool_busy(self, name))?;
        let mut store = entry.store(self, component);
        let trap = |e: wasmtime::Error| classify(name, component, e);
        let event = wit_bus::Event {
            id: event.id,
            topic: event.topic.clone(),
            payload: match &event.payload {
                Payload::Json(text) => wit_bus::Payload::Json(text.clone()),
                Payload::Bytes(bytes) => wit_bus::Payload::Bytes(bytes.clone()),
            },
            source: event.source.to_string(),
            time_ms: event.time_ms,
        };
        let run = async {
            let instance = pre.instantiate_async(&mut store).await.map_err(trap)?;
            instance.arw_host_event_handler().call_handle(&mut store, &event).await.map_err(trap)
        };
        entry.run(run).await.ok_or_else(|| timeout(name, component))??.map_err(|message| CallError::Tool {
            tool: name.into(),
            code: "handler-error".into(),
            message,
        })
    }
}
