//! Feeding bus events to subscriber components.
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

use super::Runtime;
use crate::supervisor::Slot;

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
