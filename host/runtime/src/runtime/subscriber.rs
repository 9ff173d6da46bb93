//! Feeding bus events to subscriber components.
//!
//! Each subscriber component gets one bus subscription and one worker task.
//! The subscription's filter lets through the topics the component may
//! `bus.subscribe` to (requested in its manifest and permitted by Cedar,
//! asked silently: not hearing a topic is not a refusal). The worker calls
//! the component once per event, in order, one at a time.

use std::sync::Arc;

use arw_policy::Action;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Runtime;
use super::component::LoadedComponent;

/// A running subscriber: its subscription id and its worker.
#[derive(Debug)]
pub struct SubscriberWorker {
    pub subscription: u64,
    pub task: JoinHandle<()>,
}

/// Subscribe `component` to the bus and start its worker. The worker stops
/// when `shutdown` flips to true (after the event in hand) or when the
/// subscription is removed.
pub fn spawn(
    runtime: Arc<Runtime>,
    component: Arc<LoadedComponent>,
    mut shutdown: watch::Receiver<bool>,
) -> SubscriberWorker {
    let grants = component.grants().clone();
    let bus = runtime.capabilities.bus.clone();
    let (subscription, mut events) = bus.subscribe(move |topic| grants.allows(Action::BusSubscribe, topic));
    let task = tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                event = events.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
            };
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
