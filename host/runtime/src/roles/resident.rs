//! The `resident` role (`wit/resident.wit`, exports `arw:host/lifecycle`
//! and `arw:host/event-handler`): one long-lived instance per active
//! version, driven by one task per component.
//!
//! The driver task owns the instance and is the only one to enter it, one
//! entry at a time, from three sources: its mailbox (the bus events the
//! manifest and Cedar grant, as for a subscriber), its ticker (`tick-ms`),
//! and the control plane's commands. Because a hot swap is a command in the
//! same sequence, the old instance gets no entry after its `snapshot`, and
//! the new one gets its `restore` before its first tick or event: no event
//! is lost (the queue belongs to the component) or handled by two versions.
//!
//! Every entry re-arms the store's deadline (`limits.timeout-ms`); the
//! memory cap holds over the instance's life (its store's limiter). A trap
//! ends the instance: a later entry starts the active version again, cold,
//! after a back-off (100 ms, doubling to 30 s, reset by an entry that
//! returns), so a guest that faults at once never spins the host.
//! Traps, deadlines and memory caps count towards the version's probation
//! like a tool's faults; when they reach the limit the driver rolls the
//! slot back and the previous version takes over the state it handed over.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::Worker;
use crate::capabilities::bus::Event;
use crate::error::CallError;
use crate::host::control::Rollback;
use crate::runtime::Runtime;
use crate::runtime::component::LoadedComponent;
use crate::runtime::entry::DEADLINE_MARGIN;
use crate::runtime::outcome::classify;
use crate::runtime::store::InstanceState;
use crate::supervisor::Slot;
use bindings::exports::arw::host::{event_handler, lifecycle};

/// The bindings of `arw:host/resident`: the `lifecycle` and `event-handler` exports; the capability
/// interfaces are [`crate::bindings::imports`].
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "arw:host/resident",
        imports: { default: async },
        exports: { default: async },
        with: { "arw:host": crate::bindings::imports::arw::host },
    });
}

/// The export that makes a component this role, at the current `arw:host`.
pub const EXPORT: &str = "arw:host/lifecycle@0.2.0";

/// This role, described (see [`crate::roles`]).
pub const UNIT: super::Role = super::Role {
    world: "resident",
    wit_world: "arw:host/resident",
    export: EXPORT,
    check: check_resident,
    lifecycles: &[super::Lifecycle::Resident],
    worker: Some(spawn),
};

/// A resident component stands alone; `[resident]` belongs to one, and
/// its tick is above zero.
fn check_resident(manifest: &crate::Manifest) -> Result<(), String> {
    let resident = manifest.names_world(UNIT.world);
    if resident && manifest.worlds.len() > 1 {
        return Err("world \"resident\" cannot be combined with other worlds: a resident component has one \
                    long-lived instance, which would serve calls of every caller; make a separate tool component"
            .into());
    }
    let long_lived = super::ROLES
        .iter()
        .any(|role| manifest.names_world(role.world) && role.lifecycles.contains(&super::Lifecycle::Resident));
    if manifest.resident.is_some() && !long_lived {
        return Err("a `[resident]` section is given but `worlds` names no long-lived role (\"resident\", \"queue-backend\", ...)".into());
    }
    if let Some(arw_manifest::Resident { tick_ms: Some(0) }) = manifest.resident {
        return Err("`resident.tick-ms` must be greater than zero (leave it out for no ticks)".into());
    }
    Ok(())
}

/// The `resident` role as a unit (see [`super::RoleUnit`]).
#[derive(Debug)]
pub struct ResidentRole;

impl super::RoleUnit for ResidentRole {
    const UNIT: super::Role = UNIT;
    type Prepared = ResidentExport;

    /// The health check: the component instantiates, under its deadline (the
    /// driver starts the instance it keeps once the version is active).
    async fn prepare(
        runtime: &crate::runtime::Runtime,
        loaded: &crate::runtime::component::LoadedComponent,
        pre: &wasmtime::component::InstancePre<crate::runtime::store::InstanceState>,
        exports: &[String],
    ) -> Result<ResidentExport, crate::LoadError> {
        let _ = exports;
        let export = ResidentExport::new(pre.clone()).map_err(|e| loaded.link_error(e))?;
        let mut check = runtime.health_store(loaded).await?;
        crate::runtime::component::health_result(loaded, &check.entry, export.instantiate(&mut check.store)).await?;
        Ok(export)
    }
}

/// The host's bounds on resident components (`[resident]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ResidentConfig {
    /// The shortest `tick-ms` a manifest may ask for, in milliseconds.
    pub min_tick_ms: u64,
    /// The largest state a `snapshot` may hand over, in KiB; a larger one
    /// refuses the swap (the old version stays).
    pub max_snapshot_kib: usize,
}

impl Default for ResidentConfig {
    fn default() -> Self {
        ResidentConfig { min_tick_ms: 50, max_snapshot_kib: 4096 }
    }
}

/// What a resident component's driver has done, for `arw status`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    ticks: AtomicU64,
    tick_errors: AtomicU64,
    deliveries: AtomicU64,
    faults: AtomicU64,
    starts: AtomicU64,
    cold_hand_overs: AtomicU64,
    last_fault: Mutex<Option<String>>,
}

/// A resident component's counters, as `arw status` shows them.
///
/// `ticks` and `deliveries` are not serialized: they change at every entry,
/// and `arw up` rewrites `status.json` only when what it says changes (they
/// are read with [`crate::Host::resident_status`]).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct ResidentStatus {
    /// `tick` entries that returned (ok or error).
    #[serde(skip_serializing)]
    pub ticks: u64,
    /// Of those, the ones that returned an error.
    pub tick_errors: u64,
    /// Mailbox events handled (ok or error).
    #[serde(skip_serializing)]
    pub deliveries: u64,
    /// Entries that trapped, ran past their deadline or hit the memory cap
    /// (each ended the instance).
    pub faults: u64,
    /// Instances started (the first, after faults, at swaps).
    pub starts: u64,
    /// Swaps where the new version could not take the old one's state and
    /// started cold.
    pub cold_hand_overs: u64,
    pub last_fault: Option<String>,
}

impl Counters {
    pub(crate) fn status(&self) -> ResidentStatus {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ResidentStatus {
            ticks: n(&self.ticks),
            tick_errors: n(&self.tick_errors),
            deliveries: n(&self.deliveries),
            faults: n(&self.faults),
            starts: n(&self.starts),
            cold_hand_overs: n(&self.cold_hand_overs),
            last_fault: self.last_fault.lock().clone(),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A linked long-lived component: the `lifecycle` export every role
/// with the resident lifecycle has, and the entries of its world (a
/// resident's `event-handler`, a feedback engine's `evaluate`, a queue
/// backend's `queue-store`). The driver below serves all three roles.
pub(crate) struct ResidentExport {
    pre: InstancePre<InstanceState>,
    lifecycle: lifecycle::GuestIndices,
    events: Option<event_handler::GuestIndices>,
    engine: Option<super::feedback::EngineIndices>,
    queue: Option<super::queue_backend::StoreIndices>,
}

/// A running instance's entries.
pub(crate) struct Entries {
    lifecycle: lifecycle::Guest,
    events: Option<event_handler::Guest>,
    engine: Option<super::feedback::Engine>,
    queue: Option<super::queue_backend::QueueStore>,
}

impl ResidentExport {
    /// A `resident` component: `lifecycle` and `event-handler`.
    pub(crate) fn new(pre: InstancePre<InstanceState>) -> wasmtime::Result<Self> {
        let lifecycle = lifecycle::GuestIndices::new(&pre)?;
        let events = Some(event_handler::GuestIndices::new(&pre)?);
        Ok(ResidentExport { pre, lifecycle, events, engine: None, queue: None })
    }

    /// A `feedback` component: `lifecycle` and its engine.
    pub(crate) fn feedback(pre: InstancePre<InstanceState>) -> wasmtime::Result<Self> {
        let lifecycle = lifecycle::GuestIndices::new(&pre)?;
        let engine = Some(super::feedback::EngineIndices::new(&pre)?);
        Ok(ResidentExport { pre, lifecycle, events: None, engine, queue: None })
    }

    /// A `queue-backend` component: `lifecycle` and its `queue-store`.
    pub(crate) fn queue_backend(pre: InstancePre<InstanceState>) -> wasmtime::Result<Self> {
        let lifecycle = lifecycle::GuestIndices::new(&pre)?;
        let queue = Some(super::queue_backend::StoreIndices::new(&pre)?);
        Ok(ResidentExport { pre, lifecycle, events: None, engine: None, queue })
    }

    /// Instantiate in `store` (the health check, and every start).
    pub(crate) async fn instantiate(&self, store: &mut Store<InstanceState>) -> wasmtime::Result<Entries> {
        let instance = self.pre.instantiate_async(&mut *store).await?;
        Ok(Entries {
            lifecycle: self.lifecycle.load(&mut *store, &instance)?,
            events: self.events.as_ref().map(|e| e.load(&mut *store, &instance)).transpose()?,
            engine: self
                .engine
                .as_ref()
                .map(|e| super::feedback::Engine::load(e, &mut *store, &instance))
                .transpose()?,
            queue: self
                .queue
                .as_ref()
                .map(|q| super::queue_backend::QueueStore::load(q, &mut *store, &instance))
                .transpose()?,
        })
    }
}

/// The long-lived export of `version`: its `resident` role's, its
/// `feedback` role's or its `queue-backend` role's.
pub(crate) fn export_of(version: &LoadedComponent) -> Option<&ResidentExport> {
    let roles = &version.roles;
    roles
        .resident
        .as_ref()
        .or(roles.feedback.as_ref().map(|f| &f.export))
        .or(roles.queue_backend.as_ref().map(|q| &q.export))
}

/// What the control plane asks of a driver.
#[derive(Debug)]
pub(crate) enum Command {
    /// Make `next` the active version: snapshot the current instance,
    /// start `next`, restore it, switch the slot. Replies with the version
    /// it replaced, or why the swap was refused (the old version stays).
    HandOver {
        next: Arc<LoadedComponent>,
        probation: bool,
        reply: oneshot::Sender<Result<Arc<LoadedComponent>, String>>,
    },
    /// A feedback tick: enter the engine's `evaluate` once.
    Evaluate { features: Box<super::feedback::wit::Features>, reply: oneshot::Sender<super::feedback::Evaluated> },
    /// A queue backend's call: enter its `queue-store` once. The outer
    /// error says why the backend could not be entered.
    Queue { op: Box<super::queue_backend::Op>, reply: oneshot::Sender<Result<super::queue_backend::Answered, String>> },
}

/// After a fault ends the instance, how long the driver waits before it
/// starts the version again: doubling from the first to the last, back to
/// none after an entry that returns. Ticks that fall due meanwhile are
/// skipped; mailbox events are counted as failed deliveries.
const RESTART_FIRST: Duration = Duration::from_millis(100);
const RESTART_MAX: Duration = Duration::from_secs(30);

/// How many commands may wait for a driver (the control plane sends one
/// at a time, under its transition lock; a queue backend's callers wait
/// here for their turn, so a full mailbox holds them back).
const COMMAND_QUEUE: usize = 64;

/// Start the driver of `slot`'s resident component: subscribe it to the
/// bus, start its instance, tick it. It stops when the subscription is
/// removed (the component was removed) or, after delivering what is
/// queued, when `shutdown` flips to true.
pub(crate) fn spawn(start: super::WorkerStart) -> Worker {
    let super::WorkerStart { runtime, slot, rollback, mut shutdown } = start;
    let (subscription, mut events) = super::subscribe(&runtime, &slot);
    let (commands, mut inbox) = mpsc::channel(COMMAND_QUEUE);
    let counters = Arc::new(Counters::default());
    let mut driver = Driver {
        runtime,
        slot,
        rollback,
        live: None,
        handed_over: None,
        counters: counters.clone(),
        restart: Restart::default(),
    };
    let task = tokio::spawn(async move {
        let mut ticker = driver.ticker();
        if let Err(e) = driver.start_active().await {
            tracing::warn!(component = %driver.slot.id, "the resident instance did not start: {e}");
        }
        loop {
            tokio::select! {
                biased;
                command = inbox.recv() => match command {
                    Some(Command::HandOver { next, probation, reply }) => {
                        let result = driver.hand_over(next, probation).await;
                        if result.is_ok() {
                            ticker = driver.ticker();
                        }
                        let _ = reply.send(result);
                    }
                    Some(Command::Evaluate { features, reply }) => {
                        let _ = reply.send(driver.evaluate(&features).await);
                    }
                    Some(Command::Queue { op, reply }) => {
                        let _ = reply.send(driver.queue(&op).await);
                    }
                    None => break,
                },
                _ = shutdown.changed() => {
                    // Deliver what is queued, then stop.
                    while let Ok(event) = events.try_recv() {
                        driver.deliver(&event).await;
                    }
                    break;
                }
                event = events.recv() => match event {
                    Some(event) => driver.deliver(&event).await,
                    None => break,
                },
                _ = tick(&mut ticker) => {
                    if driver.tick().await {
                        ticker = driver.ticker();
                    }
                }
            }
        }
        tracing::debug!(component = %driver.slot.id, "resident driver stopped");
    });
    Worker { subscription, task, commands: Some(commands), counters: Some(counters) }
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The running instance of one version.
struct Live {
    version: Arc<LoadedComponent>,
    store: Store<InstanceState>,
    instance: Entries,
    /// Its instance-pool slot, held for its whole life.
    _pool: OwnedSemaphorePermit,
}

/// A fresh, cold instance of `version`.
async fn start(runtime: &Runtime, version: &Arc<LoadedComponent>) -> Result<Live, String> {
    let Some(export) = export_of(version) else {
        return Err(format!("`{}` {} is not a resident or feedback component", version.id(), version.version()));
    };
    let deadline = Instant::now() + version.timeout();
    let pool = tokio::time::timeout_at(deadline, runtime.pool.for_call())
        .await
        .ok()
        .flatten()
        .ok_or("no instance-pool slot came free before the deadline (engine.max-instances)")?;
    let mut store = version.store(runtime, deadline.into_std(), Default::default());
    let instance = tokio::time::timeout_at(deadline + DEADLINE_MARGIN, export.instantiate(&mut store))
        .await
        .map_err(|_| "instantiating did not finish within its deadline".to_string())?
        .map_err(|e| format!("instantiating failed: {e:#}"))?;
    Ok(Live { version: version.clone(), store, instance, _pool: pool })
}

struct Driver {
    runtime: Arc<Runtime>,
    slot: Arc<Slot>,
    rollback: Rollback,
    live: Option<Live>,
    /// The state the previous version handed over at the last swap, kept
    /// while the new version is on probation so a rollback can give it
    /// back.
    handed_over: Option<Vec<u8>>,
    counters: Arc<Counters>,
    restart: Restart,
}

/// When the instance may be started again after a fault.
#[derive(Debug, Default)]
struct Restart {
    backoff: Duration,
    not_before: Option<Instant>,
}

impl Restart {
    fn after_fault(&mut self) {
        self.backoff = if self.backoff.is_zero() { RESTART_FIRST } else { (self.backoff * 2).min(RESTART_MAX) };
        self.not_before = Some(Instant::now() + self.backoff);
    }

    fn clear(&mut self) {
        *self = Restart::default();
    }

    fn waiting(&self) -> bool {
        self.not_before.is_some_and(|t| Instant::now() < t)
    }
}

/// One entry into the instance.
enum Call<'a> {
    Tick,
    Handle(&'a crate::bindings::imports::arw::host::bus::Event),
    Snapshot,
    Restore(&'a [u8]),
    Evaluate(&'a super::feedback::wit::Features),
    Queue(&'a super::queue_backend::Op),
}

/// What the guest answered: `tick`, `handle` and `restore` give
/// `Unit`, `snapshot` gives `State`, `evaluate` gives `Suggestions`.
enum Answer {
    Unit(Result<(), String>),
    State(Result<Vec<u8>, String>),
    Suggestions(Result<Vec<super::feedback::wit::Suggestion>, String>),
    /// A backend's answer: its own errors (a stale lease) are answers,
    /// not failed entries.
    Queue(super::queue_backend::Answered),
}

impl Answer {
    /// The error a guest returned, whatever the entry.
    fn error(&self) -> Option<&str> {
        match self {
            Answer::Unit(Err(m)) | Answer::State(Err(m)) | Answer::Suggestions(Err(m)) => Some(m),
            Answer::Unit(Ok(_)) | Answer::State(Ok(_)) | Answer::Suggestions(Ok(_)) | Answer::Queue(_) => None,
        }
    }
}

impl Call<'_> {
    async fn run(self, instance: &Entries, store: &mut Store<InstanceState>) -> wasmtime::Result<Answer> {
        let lifecycle = &instance.lifecycle;
        Ok(match self {
            Call::Tick => Answer::Unit(lifecycle.call_tick(store).await?),
            Call::Handle(event) => match &instance.events {
                Some(events) => Answer::Unit(events.call_handle(store, event).await?),
                None => Answer::Unit(Err("this component handles no events".into())),
            },
            Call::Snapshot => Answer::State(lifecycle.call_snapshot(store).await?),
            Call::Restore(state) => Answer::Unit(lifecycle.call_restore(store, state).await?),
            Call::Evaluate(features) => match &instance.engine {
                Some(engine) => Answer::Suggestions(engine.evaluate(store, features).await?),
                None => Answer::Suggestions(Err("this component is not a feedback engine".into())),
            },
            Call::Queue(op) => match &instance.queue {
                Some(queue) => Answer::Queue(queue.run(store, op).await?),
                None => Answer::Queue(Err(super::queue_backend::wit::StoreError::Unavailable(
                    "this component is not a queue backend".into(),
                ))),
            },
        })
    }
}

/// What one entry into the instance came to.
enum Outcome<T> {
    Done(T),
    /// It trapped, ran past its deadline or its memory cap: the instance
    /// is gone.
    Fault(CallError),
}

impl Driver {
    /// The ticker for the active version's `tick-ms` (none without one).
    fn ticker(&self) -> Option<tokio::time::Interval> {
        let active = self.slot.active();
        let period = active.manifest.resident.as_ref()?.tick_ms?;
        let period = Duration::from_millis(period.max(self.runtime.config.resident.min_tick_ms));
        let mut interval = tokio::time::interval_at(Instant::now() + period, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Some(interval)
    }

    async fn start_active(&mut self) -> Result<(), String> {
        let active = self.slot.active();
        self.live = Some(start(&self.runtime, &active).await?);
        bump(&self.counters.starts);
        Ok(())
    }

    /// Enter the live instance (starting the active version cold if there
    /// is none) once, under a fresh deadline.
    async fn enter(&mut self, call: Call<'_>) -> Option<(Arc<LoadedComponent>, Outcome<Answer>)> {
        if self.live.is_none() {
            if self.restart.waiting() {
                return None;
            }
            match self.start_active().await {
                Ok(()) => tracing::info!(component = %self.slot.id, "resident instance started cold"),
                Err(e) => {
                    tracing::warn!(component = %self.slot.id, "the resident instance did not start: {e}");
                    self.restart.after_fault();
                    return None;
                }
            }
        }
        let live = self.live.as_mut()?;
        let version = live.version.clone();
        let deadline = Instant::now() + version.timeout();
        live.store.data_mut().deadline = deadline.into_std();
        let result =
            tokio::time::timeout_at(deadline + DEADLINE_MARGIN, call.run(&live.instance, &mut live.store)).await;
        let outcome = match result {
            Ok(Ok(value)) => Outcome::Done(value),
            Ok(Err(e)) => Outcome::Fault(classify(version.id(), &version, e)),
            Err(_) => Outcome::Fault(crate::runtime::outcome::timeout(version.id(), &version)),
        };
        match &outcome {
            Outcome::Fault(e) => {
                tracing::warn!(component = version.id(), version = %version.version(), "resident instance ended: {e}");
                bump(&self.counters.faults);
                *self.counters.last_fault.lock() = Some(e.to_string());
                self.live = None;
                self.restart.after_fault();
            }
            Outcome::Done(_) => self.restart.clear(),
        }
        Some((version, outcome))
    }

    /// One tick. Returns true when the active version changed (a rollback).
    async fn tick(&mut self) -> bool {
        let Some((version, outcome)) = self.enter(Call::Tick).await else {
            return false;
        };
        if let Outcome::Done(answer) = &outcome {
            bump(&self.counters.ticks);
            if let Some(message) = answer.error() {
                bump(&self.counters.tick_errors);
                tracing::warn!(component = version.id(), "tick failed: {message}");
            }
        }
        self.observe(&version, matches!(outcome, Outcome::Fault(_))).await
    }

    /// A feedback tick: the engine's `evaluate`, counted as a tick. A
    /// fault counts towards probation (and may roll the engine back).
    async fn evaluate(&mut self, features: &super::feedback::wit::Features) -> super::feedback::Evaluated {
        let Some((version, outcome)) = self.enter(Call::Evaluate(features)).await else {
            return Err("the engine is not running (it is restarting after a fault)".into());
        };
        let fault = matches!(outcome, Outcome::Fault(_));
        let result = match outcome {
            Outcome::Done(Answer::Suggestions(result)) => {
                bump(&self.counters.ticks);
                if result.is_err() {
                    bump(&self.counters.tick_errors);
                }
                result.map(|list| (version.clone(), list))
            }
            Outcome::Done(_) => Err("the engine answered something other than suggestions".into()),
            Outcome::Fault(ref e) => Err(format!("the engine faulted: {e}")),
        };
        self.observe(&version, fault).await;
        result
    }

    /// A queue backend's call. A fault counts towards probation (and may
    /// roll the backend back); the next call starts it again.
    async fn queue(&mut self, op: &super::queue_backend::Op) -> Result<super::queue_backend::Answered, String> {
        let Some((version, outcome)) = self.enter(Call::Queue(op)).await else {
            return Err("the backend is not running (it is restarting after a fault)".into());
        };
        let fault = matches!(outcome, Outcome::Fault(_));
        let result = match outcome {
            Outcome::Done(Answer::Queue(answered)) => {
                bump(&self.counters.deliveries);
                Ok(answered)
            }
            Outcome::Done(_) => Err("the backend answered something other than a queue reply".into()),
            Outcome::Fault(ref e) => Err(format!("the backend faulted: {e}")),
        };
        self.observe(&version, fault).await;
        result
    }

    /// One mailbox event, if the active version may still hear its topic.
    async fn deliver(&mut self, event: &Event) {
        if !self.slot.active().grants().allows(crate::capabilities::bus::SUBSCRIBE, &event.topic) {
            return;
        }
        let wit_event = event.to_wit();
        let entered = self.enter(Call::Handle(&wit_event)).await;
        let bus = &self.runtime.capabilities.bus;
        if let Some((_, Outcome::Done(_))) = &entered {
            bump(&self.counters.deliveries);
        }
        let Some((version, outcome)) = entered else {
            bus.record_failed();
            return;
        };
        match &outcome {
            Outcome::Done(Answer::Unit(Ok(()))) => bus.record_delivered(),
            Outcome::Done(answer) if answer.error().is_some() => {
                bus.record_failed();
                let message = answer.error().unwrap_or_default();
                tracing::warn!(component = version.id(), event = event.id, topic = %event.topic, "delivery failed: {message}");
            }
            Outcome::Done(_) | Outcome::Fault(_) => bus.record_failed(),
        }
        self.observe(&version, matches!(outcome, Outcome::Fault(_))).await;
    }

    /// Count an entry's outcome towards `version`'s probation; roll back
    /// when its faults reach the limit. Returns whether it rolled back.
    async fn observe(&mut self, version: &Arc<LoadedComponent>, fault: bool) -> bool {
        let Some(restored) = self.rollback.observe(&self.slot, version, fault) else {
            if !self.slot.on_probation() {
                self.handed_over = None;
            }
            return false;
        };
        // The failed version's state if it can still give it, else what
        // the restored version handed over.
        let state = match self.snapshot().await {
            Ok(state) => Some(state),
            Err(_) => self.handed_over.take(),
        };
        self.live = None;
        self.restart.clear();
        match start(&self.runtime, &restored).await {
            Ok(live) => {
                self.live = Some(live);
                bump(&self.counters.starts);
                if let Some(state) = state {
                    self.restore(state).await;
                }
            }
            Err(e) => tracing::warn!(component = %self.slot.id, "the restored version did not start: {e}"),
        }
        true
    }

    /// The live instance's state, at most `resident.max-snapshot-kib`.
    async fn snapshot(&mut self) -> Result<Vec<u8>, String> {
        if self.live.is_none() {
            return Err("the instance is not running (it ended with a fault)".into());
        }
        let max = self.runtime.config.resident.max_snapshot_kib.saturating_mul(1024);
        match self.enter(Call::Snapshot).await {
            Some((_, Outcome::Done(Answer::State(Ok(state))))) if state.len() <= max => Ok(state),
            Some((_, Outcome::Done(Answer::State(Ok(state))))) => Err(format!(
                "its snapshot is {} bytes, over the host's resident.max-snapshot-kib = {} KiB; \
                 make the state smaller or raise the limit",
                state.len(),
                max / 1024
            )),
            Some((_, Outcome::Done(answer))) if answer.error().is_some() => {
                Err(format!("its snapshot failed: {}", answer.error().unwrap_or_default()))
            }
            Some((_, Outcome::Done(_))) => Err("its snapshot gave no state".into()),
            Some((_, Outcome::Fault(e))) => Err(format!("its snapshot ended the instance: {e}")),
            None => Err("the instance is not running".into()),
        }
    }

    /// Give the live instance `state`; if it cannot take it, start it
    /// again cold (logged).
    async fn restore(&mut self, state: Vec<u8>) {
        let why = match self.enter(Call::Restore(&state)).await {
            Some((_, Outcome::Done(Answer::Unit(Ok(()))))) => return,
            Some((_, Outcome::Done(answer))) => answer.error().unwrap_or("it answered something else").to_string(),
            Some((_, Outcome::Fault(e))) => e.to_string(),
            None => "it is not running".into(),
        };
        tracing::warn!(component = %self.slot.id, "the new version could not take its predecessor's state, so it starts cold: {why}");
        bump(&self.counters.cold_hand_overs);
        let Some(version) = self.live.as_ref().map(|l| l.version.clone()) else { return };
        self.live = None;
        match start(&self.runtime, &version).await {
            Ok(live) => {
                self.live = Some(live);
                bump(&self.counters.starts);
            }
            Err(e) => tracing::warn!(component = %self.slot.id, "the resident instance did not start: {e}"),
        }
    }

    /// The hot swap: the old instance's last entry is its snapshot; the new
    /// one's first is its restore; the slot switches between the two.
    async fn hand_over(&mut self, next: Arc<LoadedComponent>, probation: bool) -> Result<Arc<LoadedComponent>, String> {
        let state = match self.live.is_some() {
            true => Some(self.snapshot().await?),
            // Nothing runs (it ended with a fault): the new version starts cold.
            false => None,
        };
        let live = start(&self.runtime, &next).await.map_err(|e| format!("the new version did not start: {e}"))?;
        let old = self.slot.switch(next, probation);
        self.live = Some(live);
        self.restart.clear();
        bump(&self.counters.starts);
        match state {
            Some(state) => {
                self.handed_over = probation.then(|| state.clone());
                self.restore(state).await;
            }
            None => {
                bump(&self.counters.cold_hand_overs);
                tracing::info!(component = %self.slot.id, "the new version starts cold: the old one was not running");
            }
        }
        Ok(old)
    }
}
