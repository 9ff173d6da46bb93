//! The in-process event bus.
//!
//! Publishing assigns an id and fans the event out to every subscription
//! whose filter accepts the topic. Each subscription has a bounded queue: a
//! full queue drops the event for that subscriber and counts it, so a slow
//! subscriber never slows publishers. Host-side observers (audit, tests,
//! the SSE stream) get a broadcast copy of every event, and the last
//! `bus.replay` events are kept so an observer can start from the past.

use arw_policy::Action;

use crate::capabilities::unit::Request;
use crate::manifest::Manifest;

mod host;

pub use host::BusInstance;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

pub use crate::manifest::MAX_TOPIC_BYTES;

/// Topic prefixes only the host publishes under: its transitions
/// (`component.`), policy reloads (`policy.`), refusals (`audit.`) and the
/// event stream's own notices (`bus.`). No component may publish there (and
/// no manifest may ask to), so an event under them is the host's word.
pub const RESERVED_PREFIXES: &[&str] =
    &["component.", "policy.", "audit.", "bus.", "gate.", "gating.", "feedback.", "queue."];

/// A component publishing on a topic (`Arw::Topic`).
pub const PUBLISH: Action = Action::new("bus.publish");
/// A component receiving a topic's events (a subscriber or resident).
pub const SUBSCRIBE: Action = Action::new("bus.subscribe");
/// A caller watching a topic on the event stream (`GET /events`).
pub const EVENTS_SUBSCRIBE: Action = Action::new("events.subscribe");

fn check_publish(_: &Manifest, resource: &str) -> Result<(), String> {
    match reserved_prefix(resource) {
        Some(prefix) => Err(format!(
            "`bus.publish` on `{resource}`: topics under `{prefix}` are reserved for the host's own events"
        )),
        None => Ok(()),
    }
}

fn check_subscribe(manifest: &Manifest, _: &str) -> Result<(), String> {
    if !manifest.worlds.iter().any(|w| w.receives_events()) {
        return Err("`bus.subscribe` is requested but `worlds` includes neither \"subscriber\" nor \"resident\"".into());
    }
    Ok(())
}

/// This capability, described (see [`crate::capabilities::unit`]).
pub const UNIT: crate::capabilities::Unit = crate::capabilities::Unit {
    name: "bus",
    wit: &["arw:host/bus", "arw:host/types"],
    // `events.subscribe` is the callers' view of the same topics (the
    // HTTP event stream), decided by the server.
    actions: &[PUBLISH, SUBSCRIBE, EVENTS_SUBSCRIBE],
    requests: &[
        Request { action: PUBLISH, check: check_publish },
        Request { action: SUBSCRIBE, check: check_subscribe },
    ],
    schema: include_str!("schema.cedarschema"),
    config_section: Some("bus"),
    link,
};

/// This folder as a capability unit (see [`crate::capabilities::Capability`]).
#[derive(Debug)]
pub struct BusCapability;

impl crate::capabilities::Capability for BusCapability {
    const UNIT: crate::capabilities::Unit = UNIT;
    type Config = BusConfig;
    type State = std::sync::Arc<Bus>;
    type Instance = BusInstance;

    fn start(
        config: &BusConfig,
        env: &crate::capabilities::StartEnv<'_>,
    ) -> Result<std::sync::Arc<Bus>, crate::HostError> {
        let _ = env;
        Ok(std::sync::Arc::new(Bus::new(config.clone())))
    }

    fn instance(
        state: &std::sync::Arc<Bus>,
        component: &crate::capabilities::ComponentCapabilities,
        chain: &crate::runtime::entry::Chain,
    ) -> BusInstance {
        BusInstance::new(state.clone(), component, chain.clone())
    }

    /// The chain gates and Cedar see is this entry's, also in a kept instance.
    fn enter(instance: &mut BusInstance, chain: &crate::runtime::entry::Chain) {
        instance.set_chain(chain.clone());
    }
}

/// `arw:host/bus` (0.2.0 and 0.1.0) on [`BusInstance`].
fn link(linker: &mut wasmtime::component::Linker<crate::runtime::store::InstanceState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    type State = crate::runtime::store::InstanceState;
    crate::bindings::imports::arw::host::bus::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut State| {
        &mut s.capabilities.bus
    })?;
    crate::bindings::v0_1::tool::arw::host::bus::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut State| {
        &mut s.capabilities.bus
    })
}

/// The reserved prefix `topic` falls under, if any.
pub fn reserved_prefix(topic: &str) -> Option<&'static str> {
    RESERVED_PREFIXES.iter().copied().find(|prefix| topic.starts_with(prefix) || topic == &prefix[..prefix.len() - 1])
}

/// An event body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Json(String),
    Bytes(Vec<u8>),
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Payload::Json(s) => s.len(),
            Payload::Bytes(b) => b.len(),
        }
    }
}

/// One published event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// This host's id for it: consecutive within a run, and each run
    /// starts above the last (see [`first_id`]).
    pub id: u64,
    pub topic: String,
    pub payload: Payload,
    /// A component id, or `host` (on the origin host, for a remote event).
    pub source: Arc<str>,
    pub time_ms: u64,
    /// Set for an event another host published (the cluster's bus
    /// bridge): where it comes from. `None`: published here.
    pub origin: Option<Arc<Origin>>,
}

/// Where a remote event comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The node that published it (`node.id` there).
    pub node: Arc<str>,
    /// Its id in the cluster: `<node>/<id there>`.
    pub uid: Arc<str>,
    /// Bridges it crossed.
    pub hops: u8,
}

/// The first event id of a run: the start time in milliseconds times
/// 1000, so a run's ids start above every id of an earlier run on this
/// host unless that run published over a million events per second on
/// average (a `Last-Event-ID` from before a restart never names a new
/// event), and stay under 2^53 (exact in JSON numbers) until the year
/// 2255.
pub fn first_id() -> u64 {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    ms.saturating_mul(1000).max(1)
}

impl Event {
    /// The payload as JSON, when it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        match &self.payload {
            Payload::Json(text) => serde_json::from_str(text).ok(),
            Payload::Bytes(_) => None,
        }
    }
}

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    #[error("invalid topic `{topic}`: {reason}")]
    InvalidTopic { topic: String, reason: &'static str },
    #[error("payload is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("payload of {size} bytes is over the bus limit of {limit} bytes (bus.max-payload-bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("topic `{topic}` is under `{prefix}`, which is reserved for the host's own events")]
    Reserved { topic: String, prefix: &'static str },
}

/// Check that `topic` is dot.case (see [`crate::manifest::validate_topic`]).
pub fn validate_topic(topic: &str) -> Result<(), BusError> {
    crate::manifest::validate_topic(topic).map_err(|e| BusError::InvalidTopic { topic: e.topic, reason: e.reason })
}

/// Bus counters since start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BusStats {
    pub published: u64,
    /// Events a subscriber handled successfully.
    pub delivered: u64,
    /// Events dropped because a subscriber's queue was full.
    pub dropped: u64,
    /// Events a subscriber's handler failed on.
    pub failed: u64,
    /// Events sent to observers outside the host (SSE clients).
    pub observed: u64,
    /// Events observers outside the host missed because they lagged.
    pub observer_lagged: u64,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    observed: AtomicU64,
    observer_lagged: AtomicU64,
}

type TopicFilter = Box<dyn Fn(&str) -> bool + Send + Sync>;

struct Subscription {
    id: u64,
    filter: TopicFilter,
    queue: mpsc::Sender<Arc<Event>>,
}

/// Where an observer wants to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// Only events published from now on.
    Now,
    /// The last `n` kept events, then live ones.
    Last(usize),
    /// Every kept event with an id greater than this, then live ones.
    After(u64),
}

/// Kept events to start from, and the live events after them.
#[derive(Debug)]
pub struct Observation {
    pub replay: Vec<Arc<Event>>,
    /// Events after the requested id that are no longer kept.
    pub missed: u64,
    pub live: broadcast::Receiver<Arc<Event>>,
}

/// The bus. Cheap to share behind an `Arc`.
pub struct Bus {
    /// Id assignment, the replay ring and the broadcast happen under this
    /// lock, so a replay followed by live events has no gap and no repeat.
    recent: Mutex<VecDeque<Arc<Event>>>,
    next_id: AtomicU64,
    /// This run's first event id.
    first_id: u64,
    next_subscription: AtomicU64,
    subscriptions: RwLock<Vec<Subscription>>,
    observers: broadcast::Sender<Arc<Event>>,
    counters: Counters,
    /// Events queued per subscriber at most, as applied by the feedback
    /// knob `bus.subscriber-queue` (0: `bus.subscriber-queue`'s value).
    /// Read at every delivery, so a change holds for every subscription
    /// at once; each queue is made [`Bus::queue_capacity`] deep.
    queue_limit: AtomicUsize,
    config: BusConfig,
}

/// The deepest a subscriber's queue may be set at run time (the knob
/// `bus.subscriber-queue`'s bound, unless the config asks for more). A
/// queue holds only what is queued: this is a bound, not an allocation.
pub const MAX_SUBSCRIBER_QUEUE: usize = 65_536;

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl Bus {
    pub fn new(config: BusConfig) -> Self {
        let (observers, _) = broadcast::channel(config.subscriber_queue.max(16));
        let first = first_id();
        Bus {
            first_id: first,
            recent: Mutex::new(VecDeque::with_capacity(config.replay.min(4096))),
            next_id: AtomicU64::new(first),
            next_subscription: AtomicU64::new(1),
            subscriptions: RwLock::new(Vec::new()),
            observers,
            counters: Counters::default(),
            queue_limit: AtomicUsize::new(0),
            config,
        }
    }

    /// This run's first event id ([`first_id`]).
    pub fn first_event_id(&self) -> u64 {
        self.first_id
    }

    /// The bus's section of the host configuration.
    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    /// Events queued per subscriber now: `bus.subscriber-queue`, or the
    /// value the feedback engine applied.
    pub fn subscriber_queue(&self) -> usize {
        match self.queue_limit.load(Ordering::Relaxed) {
            0 => self.config.subscriber_queue.max(1),
            applied => applied.min(self.queue_capacity()),
        }
    }

    /// Put an applied queue depth in force (`None`: the config's again).
    /// A lower one drops new events for a subscriber whose queue is over
    /// it; what is queued is delivered.
    pub fn set_subscriber_queue(&self, value: Option<usize>) {
        self.queue_limit.store(value.unwrap_or(0), Ordering::Relaxed);
    }

    /// How deep each subscriber's queue is made: room for any depth the
    /// knob may set.
    pub fn queue_capacity(&self) -> usize {
        self.config.subscriber_queue.max(MAX_SUBSCRIBER_QUEUE).max(1)
    }

    /// Publish an event from `source` (a component id, or a test). Topics
    /// under [`RESERVED_PREFIXES`] are refused: only [`Bus::publish_host`]
    /// publishes there. Authorization is the caller's job (see
    /// [`BusInstance`]); this checks the topic and payload only.
    pub fn publish(&self, source: &str, topic: &str, payload: Payload) -> Result<u64, BusError> {
        if let Some(prefix) = reserved_prefix(topic) {
            return Err(BusError::Reserved { topic: topic.chars().take(64).collect(), prefix });
        }
        self.publish_unchecked(source, topic, payload)
    }

    /// Publish one of the host's own events (source `host`), reserved
    /// topics included.
    pub fn publish_host(&self, topic: &str, payload: Payload) -> Result<u64, BusError> {
        self.publish_unchecked("host", topic, payload)
    }

    /// Publish an event another host published (the bus bridge), with its
    /// origin: delivered here like a local one, never under a reserved
    /// topic (a remote host cannot speak for this one).
    pub fn publish_remote(
        &self,
        origin: Origin,
        source: &str,
        topic: &str,
        payload: Payload,
        time_ms: u64,
    ) -> Result<u64, BusError> {
        if let Some(prefix) = reserved_prefix(topic) {
            return Err(BusError::Reserved { topic: topic.chars().take(64).collect(), prefix });
        }
        self.publish_with(source, topic, payload, time_ms, Some(Arc::new(origin)))
    }

    fn publish_unchecked(&self, source: &str, topic: &str, payload: Payload) -> Result<u64, BusError> {
        let time_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        self.publish_with(source, topic, payload, time_ms, None)
    }

    fn publish_with(
        &self,
        source: &str,
        topic: &str,
        payload: Payload,
        time_ms: u64,
        origin: Option<Arc<Origin>>,
    ) -> Result<u64, BusError> {
        validate_topic(topic)?;
        if payload.len() > self.config.max_payload_bytes {
            return Err(BusError::TooLarge { size: payload.len(), limit: self.config.max_payload_bytes });
        }
        if let Payload::Json(text) = &payload {
            serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| BusError::InvalidJson(e.to_string()))?;
        }
        let event = {
            let mut recent = self.recent.lock();
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let event =
                Arc::new(Event { id, topic: topic.to_string(), payload, source: source.into(), time_ms, origin });
            if self.config.replay > 0 {
                if recent.len() >= self.config.replay {
                    recent.pop_front();
                }
                recent.push_back(event.clone());
            }
            // No observers is fine.
            let _ = self.observers.send(event.clone());
            event
        };
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        let limit = self.subscriber_queue();
        for subscription in self.subscriptions.read().iter() {
            if !(subscription.filter)(topic) {
                continue;
            }
            let queued = subscription.queue.max_capacity() - subscription.queue.capacity();
            if queued >= limit || subscription.queue.try_send(event.clone()).is_err() {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic, subscription = subscription.id, "subscriber queue full, event dropped");
            }
        }
        Ok(event.id)
    }

    /// Register a subscription: events whose topic passes `filter` are
    /// queued (bounded by [`Bus::subscriber_queue`]) on the returned receiver.
    pub fn subscribe(
        &self,
        filter: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> (u64, mpsc::Receiver<Arc<Event>>) {
        let (queue, receiver) = mpsc::channel(self.queue_capacity());
        let id = self.next_subscription.fetch_add(1, Ordering::Relaxed);
        self.subscriptions.write().push(Subscription { id, filter: Box::new(filter), queue });
        (id, receiver)
    }

    /// Remove a subscription; its receiver then ends after the queued events.
    pub fn unsubscribe(&self, id: u64) {
        self.subscriptions.write().retain(|s| s.id != id);
    }

    /// A copy of every event published from now on (lagging observers miss
    /// events; see `tokio::sync::broadcast`).
    pub fn observe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.observers.subscribe()
    }

    /// Kept events from `from`, then every event published after them,
    /// with nothing missed or repeated in between.
    pub fn observe_from(&self, from: ReplayFrom) -> Observation {
        let recent = self.recent.lock();
        let live = self.observers.subscribe();
        let (replay, missed) = match from {
            ReplayFrom::Now => (Vec::new(), 0),
            ReplayFrom::Last(n) => (recent.iter().skip(recent.len().saturating_sub(n)).cloned().collect(), 0),
            ReplayFrom::After(after) => {
                let replay: Vec<Arc<Event>> = recent.iter().filter(|e| e.id > after).cloned().collect();
                // Ids are consecutive: whatever lies between `after` and the
                // oldest kept event fell out of the ring. An id of an
                // earlier run missed all of this run before the oldest
                // kept; one not yet given (another host's) missed nothing.
                let next = self.next_id.load(Ordering::Relaxed);
                let first_kept = replay.first().map_or(next, |e| e.id);
                let after = after.max(self.first_id.saturating_sub(1));
                (replay, first_kept.saturating_sub(after.saturating_add(1)))
            }
        };
        Observation { replay, missed, live }
    }

    /// Count an event an observer outside the host (an SSE client) took.
    pub fn record_observed(&self) {
        self.counters.observed.fetch_add(1, Ordering::Relaxed);
    }

    /// Count events an observer outside the host missed because it lagged.
    pub fn record_observer_lag(&self, missed: u64) {
        self.counters.observer_lagged.fetch_add(missed, Ordering::Relaxed);
    }

    pub fn record_delivered(&self) {
        self.counters.delivered.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_failed(&self) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> BusStats {
        BusStats {
            published: self.counters.published.load(Ordering::Relaxed),
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            observed: self.counters.observed.load(Ordering::Relaxed),
            observer_lagged: self.counters.observer_lagged.load(Ordering::Relaxed),
        }
    }
}

/// `[bus]`: this capability's section of the host configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct BusConfig {
    /// Events queued per subscriber before new ones are dropped (and counted).
    pub subscriber_queue: usize,
    /// Largest event payload, in bytes.
    pub max_payload_bytes: usize,
    /// How many recent events are kept for replay (`GET /events?replay=N`,
    /// `Last-Event-ID`).
    pub replay: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig { subscriber_queue: 1024, max_payload_bytes: 256 << 10, replay: 1024 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        for ok in ["a", "demo.hello", "a1.b_c.d-e", "0.x"] {
            assert_eq!(validate_topic(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".a", "a.", "a..b", "A.b", "a b", "-a", "a.*", "é"] {
            assert!(validate_topic(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_topic(&"a".repeat(256)).is_err());
    }

    #[test]
    fn bounded_queues_drop_and_count() {
        let bus = Bus::new(BusConfig { subscriber_queue: 2, max_payload_bytes: 100, replay: 8 });
        let (_, mut demo) = bus.subscribe(|t| t.starts_with("demo."));
        for _ in 0..3 {
            bus.publish("t", "demo.x", Payload::Json("1".into())).unwrap_or_else(|e| panic!("{e}"));
        }
        bus.publish("t", "other.x", Payload::Bytes(vec![1])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bus.stats(), BusStats { published: 4, dropped: 1, ..BusStats::default() });
        let first = bus.first_event_id();
        assert_eq!(demo.try_recv().map(|e| e.id).ok(), Some(first));
        assert_eq!(demo.try_recv().map(|e| e.id).ok(), Some(first + 1));
        assert!(demo.try_recv().is_err());
    }

    #[test]
    fn reserved_topics_are_the_hosts_alone() {
        let bus = Bus::new(BusConfig::default());
        for topic in ["component.rolled_back", "policy.reloaded", "audit.denied", "bus.gap", "component"] {
            assert!(
                matches!(bus.publish("arw:evil", topic, Payload::Json("{}".into())), Err(BusError::Reserved { .. })),
                "{topic}"
            );
            assert!(bus.publish_host(topic, Payload::Json("{}".into())).is_ok(), "{topic}");
        }
        assert!(bus.publish("arw:ok", "components.x", Payload::Json("{}".into())).is_ok());
    }

    #[test]
    fn refuses_bad_payloads() {
        let bus = Bus::new(BusConfig { subscriber_queue: 2, max_payload_bytes: 4, replay: 8 });
        assert!(matches!(bus.publish("t", "a", Payload::Json("{".into())), Err(BusError::InvalidJson(_))));
        assert!(matches!(bus.publish("t", "a", Payload::Bytes(vec![0; 5])), Err(BusError::TooLarge { .. })));
        assert_eq!(bus.stats().published, 0);
    }

    #[test]
    fn replay_then_live_without_gap_or_repeat() {
        let bus = Bus::new(BusConfig { subscriber_queue: 16, max_payload_bytes: 100, replay: 3 });
        for _ in 0..5 {
            bus.publish("t", "demo.a", Payload::Json("1".into())).unwrap();
        }
        // The run's ids, 1-based as the test reads them.
        let b = bus.first_event_id() - 1;
        let ids = |o: &Observation| o.replay.iter().map(|e| e.id - b).collect::<Vec<_>>();
        let last = bus.observe_from(ReplayFrom::Last(2));
        assert_eq!(ids(&last), [4, 5]);
        let after = bus.observe_from(ReplayFrom::After(b + 3));
        assert_eq!((ids(&after), after.missed), (vec![4, 5], 0));
        // Ids 2..=2 fell out of the 3-event ring.
        let old = bus.observe_from(ReplayFrom::After(b + 1));
        assert_eq!((ids(&old), old.missed), (vec![3, 4, 5], 1));
        // An id of an earlier run: this run's events before the ring missed.
        let earlier = bus.observe_from(ReplayFrom::After(7));
        assert_eq!((ids(&earlier), earlier.missed), (vec![3, 4, 5], 2));
        let mut live = bus.observe_from(ReplayFrom::Now).live;
        bus.publish("t", "demo.a", Payload::Json("1".into())).unwrap();
        assert_eq!(live.try_recv().unwrap().id, b + 6);
        let future = bus.observe_from(ReplayFrom::After(b + 99));
        assert_eq!((future.replay.len(), future.missed), (0, 0));
        // A later run starts above every id of this one.
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(Bus::new(BusConfig::default()).first_event_id() > b + 6);
    }
}
