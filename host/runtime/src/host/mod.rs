//! [`Host`]: the host as a library. The CLI, the tests and the HTTP server
//! all drive it through this type.
//!
//! It is split by the kind of work:
//!
//! - [`calls`]: the data plane — calling tools, asking Cedar for callers.
//!   It takes no lock: a call loads the routing table and its component's
//!   active version from `ArcSwap`s and goes.
//! - [`control`]: the control plane — activating, removing and rolling back
//!   versions, reloading policies, recording refusals. It takes the
//!   transition lock (one change at a time), but never while compiling or
//!   health-checking, and announces every change on the typed control
//!   channel ([`Host::control`]).
//! - [`views`]: the plain data the host shows of itself.
//!
//! This file holds the host's state, its start and its stop.

pub mod calls;
pub mod control;
pub mod views;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use arw_policy::{Authorizer, PolicySet};
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

pub use calls::Caller;
pub use views::{
    ActivationError, BusStatsView, ComponentInfo, ComponentStatus, GrantInfo, HostStatus, PolicyReload, Refusal,
    ToolInfo,
};

use crate::authz::Chokepoint;
use crate::capabilities::bus::{Bus, BusStats};
use crate::capabilities::{Capabilities, StartEnv};
use crate::config::HostConfig;
use crate::error::{HostError, LoadError};
use crate::roles::Worker;
use crate::runtime::aot::AotCache;
use crate::runtime::pool::InstancePool;
use crate::runtime::{Runtime, engine};
use crate::source::ComponentSource;
use crate::supervisor::{Announcer, Slot};

/// Which slot serves each component id and each tool name. Replaced as a
/// whole (copy on write) by the control plane; read lock-free by calls.
#[derive(Debug, Default, Clone)]
struct Routes {
    components: BTreeMap<String, Arc<Slot>>,
    tools: BTreeMap<String, Arc<Slot>>,
}

/// The routing table: read lock-free by calls, replaced as a whole (copy
/// on write) by the control plane and by workers that roll back, one
/// writer at a time so no update is lost.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    current: ArcSwap<Routes>,
    write: Mutex<()>,
}

impl RouteTable {
    fn load(&self) -> arc_swap::Guard<Arc<Routes>> {
        self.current.load()
    }

    /// Every component's slot, by id.
    pub(crate) fn slots(&self) -> Vec<Arc<Slot>> {
        self.current.load().components.values().cloned().collect()
    }

    /// The slot that provides tool `name`, if any.
    pub(crate) fn tool(&self, name: &str) -> Option<Arc<Slot>> {
        self.current.load().tools.get(name).cloned()
    }

    /// The slot of component `id`, if it is loaded.
    pub(crate) fn component(&self, id: &str) -> Option<Arc<Slot>> {
        self.current.load().components.get(id).cloned()
    }

    fn update<T>(&self, change: impl FnOnce(&mut Routes) -> T) -> T {
        let _writer = self.write.lock();
        let mut routes = Routes::clone(&self.current.load());
        let out = change(&mut routes);
        self.current.store(Arc::new(routes));
        out
    }

    /// Rebuild the tool table from each component's active version.
    pub(crate) fn reroute(&self) {
        self.update(|routes| {
            routes.tools = routes
                .components
                .values()
                .filter_map(|slot| slot.active().tool().map(|t| (t.name.clone(), slot.clone())))
                .collect();
        });
    }
}

/// Counts calls in flight so shutdown can wait for them.
#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

struct InFlightGuard<'a>(&'a InFlight);

impl InFlight {
    fn enter(&self) -> InFlightGuard<'_> {
        // SeqCst pairs with the shutdown flag (see `Host::call`).
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self)
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Most refusals kept for `arw status`; the oldest go first.
const MAX_REFUSALS: usize = 256;

/// A running host.
pub struct Host {
    pub(crate) runtime: Arc<Runtime>,
    routes: Arc<RouteTable>,
    /// How a version on probation is rolled back (by calls and by workers).
    rollback: control::Rollback,
    /// The same, for the gates and calls between components, which hold
    /// it weakly (see [`calls::NestedRouter`]).
    _shared_rollback: Arc<control::Rollback>,
    /// Shared with the feedback engine, which reaches its engine's driver
    /// through it.
    workers: Arc<Mutex<BTreeMap<String, Worker>>>,
    /// The feedback engine's host side ([`crate::feedback`]).
    feedback: Arc<crate::feedback::Feedback>,
    /// Serialises activations, removals, rollbacks and reloads.
    transitions: tokio::sync::Mutex<()>,
    announcer: Announcer,
    refusals: Mutex<BTreeMap<String, Refusal>>,
    shutdown: watch::Sender<bool>,
    /// The bus bridge's counts, when it runs.
    bridge: Option<Arc<crate::cluster::bridge::BridgeStats>>,
    /// Stops the queue workers, first at shutdown: they still need the
    /// backend to ack what they finish.
    queue_stop: watch::Sender<bool>,
    queue_workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    shutting_down: AtomicBool,
    in_flight: InFlight,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("components", &self.routes.load().components.keys()).finish_non_exhaustive()
    }
}

impl Host {
    /// Start a host: build the engine, open the kv store, load every
    /// component of `source`, start subscribers. Components that fail to
    /// load are returned (with why), logged, recorded as refusals (see
    /// [`Host::status`]) and left out; the host runs the rest.
    pub async fn start(
        config: HostConfig,
        policies: PolicySet,
        source: &dyn ComponentSource,
    ) -> Result<(Host, Vec<LoadError>), HostError> {
        let state_dir = config.state_dir.clone().ok_or(HostError::NoStateDir)?;
        let swap = &config.swap;
        if swap.auto_rollback && (swap.probation_calls == 0 || swap.rollback_after_faults == 0) {
            return Err(HostError::Config(
                "swap.probation-calls and swap.rollback-after-faults must be at least 1 when swap.auto-rollback is on"
                    .into(),
            ));
        }
        config.node.check().map_err(HostError::Config)?;
        config.gating.check().map_err(HostError::Config)?;
        config.signals.check().map_err(HostError::Config)?;
        config.feedback.check().map_err(HostError::Config)?;
        if !config.cluster.bridge_topics.is_empty() {
            crate::cluster::bridge::check_node(&config.node.id).map_err(HostError::Config)?;
        }
        let pool = InstancePool::new(config.engine.max_instances)?;
        let engine = engine::build(&config.engine)?;
        engine::start_ticker(&engine, Duration::from_millis(config.engine.epoch_tick_ms));
        let linker = crate::runtime::linker(&engine).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let capabilities = Capabilities::start(&config, &StartEnv { state_dir: &state_dir, config: &config })?;
        let bus = capabilities.bus.clone();
        let authorizer = Arc::new(
            Authorizer::new(crate::capabilities::schema()?.0, policies).with_node(&config.node.to_policy_node()),
        );
        let gates = Arc::new(crate::gating::Gates::new(&config.gating, &config.node, &bus));
        let chokepoint = Arc::new(Chokepoint::new(authorizer, &bus, gates));
        let aot = match AotCache::for_config(&config) {
            Ok(cache) => Some(cache),
            Err(e) => {
                tracing::warn!("the AOT cache is not used: {e}; every component is compiled at load");
                None
            }
        };
        let announcer = Announcer::new(bus.clone());
        let signals = crate::signals::Recorder::new(config.signals);
        let runtime = Arc::new(Runtime {
            engine,
            linker,
            capabilities,
            chokepoint,
            config,
            aot,
            pool,
            signals,
            tunings: Default::default(),
        });
        spawn_audit_flusher(&runtime.chokepoint);

        let (shutdown, _) = watch::channel(false);
        let bridge = (!runtime.config.cluster.bridge_topics.is_empty()).then(|| {
            let capabilities = &runtime.capabilities;
            crate::cluster::bridge::spawn(
                capabilities.cluster.clone(),
                capabilities.bus.clone(),
                &runtime.config.node.id,
                shutdown.subscribe(),
            )
        });
        let routes = Arc::new(RouteTable::default());
        let rollback = control::Rollback::new(routes.clone(), announcer.clone(), runtime.config.swap.clone());
        let shared_rollback = Arc::new(rollback.clone());
        runtime.capabilities.tools.route_with(Arc::new(calls::NestedRouter::new(&runtime, &routes, &shared_rollback)));
        runtime.chokepoint.gates().bind(&runtime, &routes, &shared_rollback);
        let workers = Arc::new(Mutex::new(BTreeMap::new()));
        runtime.capabilities.queues.bind(&runtime, &routes, &shared_rollback, &workers);
        // Before any component loads: what was applied is in force for
        // the versions about to load.
        let feedback =
            crate::feedback::Feedback::new(runtime.config.feedback.clone(), &state_dir, &runtime, &routes, &workers);
        let host = Host {
            runtime,
            routes,
            rollback,
            _shared_rollback: shared_rollback,
            workers,
            feedback,
            transitions: tokio::sync::Mutex::new(()),
            announcer,
            refusals: Mutex::new(BTreeMap::new()),
            shutdown,
            bridge,
            queue_stop: watch::channel(false).0,
            queue_workers: Mutex::new(Vec::new()),
            shutting_down: AtomicBool::new(false),
            in_flight: InFlight::default(),
        };
        let mut refused = Vec::new();
        for package in source.packages() {
            let (id, version) = match &package {
                Ok(p) => (Some(p.manifest.id.to_string()), Some(p.manifest.version.to_string())),
                Err(_) => (None, None),
            };
            let loaded = match package {
                Ok(package) => host.runtime.load(package).await,
                Err(e) => Err(e),
            };
            let admitted = match loaded {
                Ok(loaded) => host.admit_new(Arc::new(loaded)).map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = admitted {
                let component = id.unwrap_or_else(|| e.origin().to_string());
                host.record_refusal(&component, version, control::stage_of(&e), e.to_string());
                refused.push(e);
            }
        }
        // Every gate's configuration, checked by the gate itself; one it
        // refuses makes that gate deny everything until it is fixed.
        host.runtime.chokepoint.gates().reload(true).await;
        crate::feedback::spawn_ticks(&host.feedback, host.shutdown.subscribe());
        *host.queue_workers.lock() =
            crate::queues::spawn_workers(&host.runtime.capabilities.queues, &host.queue_stop.subscribe());
        Ok((host, refused))
    }

    /// What the bus bridge has sent and received (`None`: no
    /// `cluster.bridge-topics`).
    pub fn bridge_counts(&self) -> Option<crate::cluster::bridge::BridgeCounts> {
        self.bridge.as_ref().map(|b| b.counts())
    }

    /// The feedback engine's host side: its state, suggestions, applies
    /// and rollbacks ([`crate::feedback`]).
    pub fn feedback(&self) -> &Arc<crate::feedback::Feedback> {
        &self.feedback
    }

    /// What the feedback engine applied to the host's own settings: the
    /// HTTP server reads its request timeout and admin rate here per
    /// request (knobs `http.*`, `docs/feedback.md`).
    pub fn host_tuning(&self) -> &crate::runtime::tuning::HostTuning {
        self.runtime.tunings.host()
    }

    /// The host's gates ([`crate::gating`]).
    pub fn gates(&self) -> &Arc<crate::gating::Gates> {
        self.runtime.chokepoint.gates()
    }

    /// Ask the gates about `request` (an HTTP route's, or `arw gate check`).
    pub async fn gate(&self, request: &crate::gating::GateRequest) -> Result<(), crate::gating::GateDenied> {
        self.gates().check(request).await
    }

    /// [`Host::gate`], for an entry point that asks for what follows it
    /// too: the pass lets [`Host::call_passed`] skip asking again.
    pub async fn gate_pass(
        &self,
        request: crate::gating::GateRequest,
    ) -> Result<crate::gating::GatePass, crate::gating::GateDenied> {
        self.gates().check_for_pass(request).await
    }

    /// Read the gates' configuration files again; each changed text is put
    /// in force once its gate accepts it (see [`crate::gating::chain`]).
    pub async fn reload_gates(&self) -> Vec<crate::gating::chain::GateReload> {
        self.gates().reload(false).await
    }

    /// What the entry points measure (`docs/feedback.md`): the server
    /// records each route here, calls record each tool.
    pub fn signals(&self) -> &crate::signals::Recorder {
        &self.runtime.signals
    }

    pub fn bus(&self) -> &Arc<Bus> {
        &self.runtime.capabilities.bus
    }

    pub fn bus_stats(&self) -> BusStats {
        self.bus().stats()
    }

    pub fn authorizer(&self) -> &Arc<Authorizer> {
        self.runtime.chokepoint.authorizer()
    }

    /// Report every refusal counted in an open coalescing window now,
    /// instead of when the window closes (see [`crate::authz::audit`]).
    pub fn flush_audit(&self) {
        self.runtime.chokepoint.audit().flush(true);
        self.runtime.chokepoint.gates().events.flush(true);
    }

    /// Is the host stopping (no new calls taken)?
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Stop taking calls, let calls in flight finish and subscribers deliver
    /// what is already queued (all of it bounded by one `grace`), and release
    /// the state directory. Returns how many calls were still running when
    /// the grace period ended.
    pub async fn shutdown(self, grace: Duration) -> usize {
        self.stop(grace).await
    }

    /// [`Host::shutdown`] for a host that is still shared (an HTTP server's
    /// last connections may hold it a moment longer): the state directory
    /// is released when the last reference goes.
    pub async fn stop(&self, grace: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + grace;
        // Queue workers first: what they finish is acked while the backend
        // still runs; what they do not is redelivered after its lease.
        self.queue_stop.send_replace(true);
        let queue_workers = std::mem::take(&mut *self.queue_workers.lock());
        let queue_aborts: Vec<_> = queue_workers.iter().map(|t| t.abort_handle()).collect();
        if tokio::time::timeout_at(deadline, futures_join_all(queue_workers)).await.is_err() {
            queue_aborts.iter().for_each(tokio::task::AbortHandle::abort);
        }
        let workers = self.stop_taking_work();
        let drained = tokio::time::timeout_at(deadline, async {
            loop {
                let idle = self.in_flight.idle.notified();
                if self.in_flight.count.load(Ordering::SeqCst) == 0 {
                    break;
                }
                idle.await;
            }
        })
        .await;
        let left = if drained.is_ok() { 0 } else { self.in_flight.count.load(Ordering::SeqCst) };
        // Every subscriber drains its queue at the same time, within what is
        // left of the same grace period.
        let tasks: Vec<_> = workers.into_iter().map(|w| w.task).collect();
        let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
        if tokio::time::timeout_at(deadline, futures_join_all(tasks)).await.is_err() {
            tracing::warn!("subscribers did not finish their queued events within the grace period");
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
        }
        // What guests wrote to stdout and stderr reaches the log.
        let output = self.runtime.capabilities.log.clone();
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now()).max(Duration::from_millis(100));
        let _ = tokio::task::spawn_blocking(move || output.flush(remaining)).await;
        self.runtime.chokepoint.audit().flush(true);
        self.runtime.chokepoint.gates().events.flush(true);
        self.feedback.flush();
        left
    }

    /// Refuse new calls and stop feeding subscribers; returns the workers
    /// (which now deliver only what is already queued).
    fn stop_taking_work(&self) -> Vec<Worker> {
        self.shutting_down.store(true, Ordering::SeqCst);
        let workers: Vec<Worker> = std::mem::take(&mut *self.workers.lock()).into_values().collect();
        for worker in &workers {
            self.bus().unsubscribe(worker.subscription);
        }
        let _ = self.shutdown.send(true);
        workers
    }
}

impl Drop for Host {
    /// A host dropped without [`Host::stop`] still lets go of everything:
    /// its subscribers are unsubscribed and their workers aborted (a worker
    /// holds the runtime, and the bus holds its queue), so nothing keeps the
    /// engine, the bus or the kv store alive.
    fn drop(&mut self) {
        for worker in self.stop_taking_work() {
            worker.task.abort();
        }
    }
}

/// Wait for every task (a small `join_all` without another dependency).
async fn futures_join_all(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// Report coalesced refusals once their window closes, for as long as the
/// host lives.
fn spawn_audit_flusher(chokepoint: &Arc<Chokepoint>) {
    let weak = Arc::downgrade(chokepoint);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(crate::authz::audit::COALESCE_WINDOW).await;
            match weak.upgrade() {
                Some(chokepoint) => {
                    chokepoint.audit().flush(false);
                    chokepoint.gates().events.flush(false);
                }
                None => return,
            }
        }
    });
}
