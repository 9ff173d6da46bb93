//! [`Host`]: the host as a library. The CLI, the tests and (later) the HTTP
//! server all drive it through this type.
//!
//! A host starts from a [`ComponentSource`], then changes while it serves:
//! [`Host::activate`] installs or upgrades a component (load → link →
//! health check → atomic switch, the old version draining),
//! [`Host::remove`] takes one away, [`Host::reload_policies`] swaps the
//! Cedar policy set. None of these fails a call in flight.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use arw_policy::{Authorizer, PolicyError, PolicySet, PolicySource, Principal, PrincipalHandle};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::authz::{Denied, Gate};
use crate::capabilities::Capabilities;
use crate::capabilities::bus::{Bus, BusStats, Payload};
use crate::capabilities::kv::KvStore;
use crate::config::HostConfig;
use crate::error::{CallError, HostError, LoadError};
use crate::manifest::{Limits, World};
use crate::runtime::aot::{AotCache, Compilation};
use crate::runtime::component::{GrantDecision, LoadedComponent, ToolDescriptor};
use crate::runtime::subscriber::{self, SubscriberWorker};
use crate::runtime::{Runtime, engine};
use crate::source::{ComponentPackage, ComponentSource};
use crate::supervisor::{self, DrainingStatus, Slot, Transition, events};

/// Someone calling tools, prepared for repeated authorization.
#[derive(Debug)]
pub struct Caller(PrincipalHandle);

/// A loaded component as `arw components` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentInfo {
    pub id: String,
    pub version: String,
    pub worlds: Vec<World>,
    pub description: String,
    pub digest: String,
    pub origin: String,
    /// The trusted signer (Cedar's `principal.publisher`); none if unsigned.
    pub publisher: Option<String>,
    /// Whether its code came from the AOT cache.
    pub compilation: Compilation,
    /// The tool name, for components of the `tool` world.
    pub tool: Option<String>,
    pub limits: Limits,
    /// Each requested capability with Cedar's decision.
    pub grants: Vec<GrantInfo>,
}

pub type GrantInfo = GrantDecision;

/// A tool as callers see it.
#[derive(Debug, Clone, Serialize)]
pub struct ToolInfo {
    pub component: String,
    #[serde(flatten)]
    pub descriptor: ToolDescriptor,
}

/// One component's versions, for `arw status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ComponentStatus {
    pub id: String,
    pub active_version: String,
    pub digest: String,
    /// Calls running on the active version now.
    pub in_flight: usize,
    pub draining: Vec<DrainingStatus>,
    pub last_transition: Option<Transition>,
}

/// The host as `arw status` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HostStatus {
    pub components: Vec<ComponentStatus>,
    pub policies: usize,
    pub bus: BusStatsView,
}

#[derive(Debug, Clone, Serialize)]
pub struct BusStatsView {
    pub published: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub failed: u64,
}

/// Why an activation did not happen; the previous version stays active.
#[derive(Debug, Clone, thiserror::Error)]
#[error("activating {id}@{version} failed at the {stage} stage: {reason}")]
pub struct ActivationError {
    pub id: String,
    pub version: String,
    /// `verify`, `compile`, `link`, `health-check`, `limits` or `conflict`.
    pub stage: &'static str,
    pub reason: String,
}

/// What a policy reload changed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PolicyReload {
    pub policies: usize,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
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
        self.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self)
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A running host.
pub struct Host {
    runtime: Arc<Runtime>,
    slots: RwLock<BTreeMap<String, Arc<Slot>>>,
    /// Tool name → component id.
    tools: RwLock<BTreeMap<String, String>>,
    workers: Mutex<BTreeMap<String, SubscriberWorker>>,
    /// Serialises activations, removals and reloads.
    transitions: tokio::sync::Mutex<()>,
    shutdown: watch::Sender<bool>,
    shutting_down: AtomicBool,
    in_flight: InFlight,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("components", &self.slots.read().keys()).finish_non_exhaustive()
    }
}

/// The stage of activation a load error belongs to.
fn stage_of(error: &LoadError) -> &'static str {
    match error {
        LoadError::Verify { .. } | LoadError::Unsigned { .. } => "verify",
        LoadError::NotWasm { .. } | LoadError::CoreModule { .. } | LoadError::Compile { .. } => "compile",
        LoadError::WrongWorld { .. } | LoadError::Link { .. } => "link",
        LoadError::Health { .. } => "health-check",
        LoadError::Limits { .. } => "limits",
        LoadError::Conflict { .. } => "conflict",
        LoadError::Manifest { .. } | LoadError::Io { .. } => "verify",
    }
}

impl Host {
    /// Start a host: build the engine, open the kv store, load every
    /// component of `source`, start subscribers. Components that fail to
    /// load are returned (with why) and left out; the host runs the rest.
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
        let engine = engine::build(&config.engine)?;
        engine::start_ticker(&engine, Duration::from_millis(config.engine.epoch_tick_ms));
        let linker = crate::runtime::linker(&engine).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let bus = Arc::new(Bus::new(config.bus.clone()));
        let kv = Arc::new(KvStore::open(&state_dir, config.kv.clone())?);
        let authorizer = Arc::new(Authorizer::new(arw_policy::schema::embedded()?, policies));
        let gate = Arc::new(Gate::new(authorizer, bus.clone()));
        let aot = Some(AotCache::new(state_dir.join("aot")));
        let runtime = Arc::new(Runtime {
            engine,
            linker,
            capabilities: Capabilities { bus, kv, outgoing_http: config.outgoing_http },
            gate,
            config,
            aot,
        });

        let (shutdown, _) = watch::channel(false);
        let host = Host {
            runtime,
            slots: RwLock::new(BTreeMap::new()),
            tools: RwLock::new(BTreeMap::new()),
            workers: Mutex::new(BTreeMap::new()),
            transitions: tokio::sync::Mutex::new(()),
            shutdown,
            shutting_down: AtomicBool::new(false),
            in_flight: InFlight::default(),
        };
        let mut refused = Vec::new();
        for package in source.packages() {
            let loaded = match package {
                Ok(package) => host.runtime.load(package).await,
                Err(e) => Err(e),
            };
            match loaded {
                Ok(loaded) => {
                    if let Err(e) = host.admit_new(Arc::new(loaded)) {
                        refused.push(e);
                    }
                }
                Err(e) => {
                    tracing::error!("component refused: {e}");
                    refused.push(e);
                }
            }
        }
        Ok((host, refused))
    }

    /// Add a component that has no slot yet.
    fn admit_new(&self, loaded: Arc<LoadedComponent>) -> Result<Arc<Slot>, LoadError> {
        let id = loaded.id().to_string();
        if let Some(existing) = self.slots.read().get(&id) {
            return Err(LoadError::Conflict {
                origin: loaded.origin.clone(),
                message: format!("component id `{id}` is already loaded from {}", existing.active().origin),
            });
        }
        self.check_tool_name(&loaded)?;
        let slot = Slot::new(loaded.clone());
        if let Some(tool) = loaded.tool() {
            self.tools.write().insert(tool.name.clone(), id.clone());
        }
        self.slots.write().insert(id.clone(), slot.clone());
        self.ensure_worker(&slot);
        Ok(slot)
    }

    /// Refuse a version whose tool name another component already provides.
    fn check_tool_name(&self, loaded: &LoadedComponent) -> Result<(), LoadError> {
        if let Some(tool) = loaded.tool()
            && let Some(owner) = self.tools.read().get(&tool.name)
            && owner != loaded.id()
        {
            return Err(LoadError::Conflict {
                origin: loaded.origin.clone(),
                message: format!("tool name `{}` is already provided by `{owner}`", tool.name),
            });
        }
        Ok(())
    }

    /// Start the subscriber worker of `slot` if its active version
    /// subscribes and none runs yet.
    fn ensure_worker(&self, slot: &Arc<Slot>) {
        if slot.active().subscriber.is_none() {
            return;
        }
        let mut workers = self.workers.lock();
        if !workers.contains_key(&slot.id) {
            let worker = subscriber::spawn(self.runtime.clone(), slot.clone(), self.shutdown.subscribe());
            workers.insert(slot.id.clone(), worker);
        }
    }

    fn slot(&self, id: &str) -> Option<Arc<Slot>> {
        self.slots.read().get(id).cloned()
    }

    fn publish(&self, topic: &str, payload: serde_json::Value) {
        let _ = self.runtime.capabilities.bus.publish("host", topic, Payload::Json(payload.to_string()));
    }

    /// Install or upgrade a component while the host serves. The new
    /// version is loaded, linked and health-checked first; only then does
    /// it become active (atomically). On any failure the previous version
    /// stays active and the stage and reason are returned and published.
    pub async fn activate(&self, package: ComponentPackage) -> Result<String, ActivationError> {
        let _serial = self.transitions.lock().await;
        let id = package.manifest.id.to_string();
        let to = package.manifest.version.to_string();
        let existing = self.slot(&id);
        // Asked twice for the version already active (an HTTP install and
        // the installed-set watcher both reacting to one change): done.
        if let Some(slot) = &existing {
            let active = slot.active();
            if active.version() == to && active.digest == crate::runtime::component::digest(&package.wasm) {
                return Ok(to);
            }
        }
        let from = existing.as_ref().map(|s| s.active().version());
        let transition = |event: &str, reason: Option<String>| match &existing {
            Some(slot) => slot.record(&self.runtime.capabilities.bus, event, from.clone(), Some(to.clone()), reason),
            None => self.publish(event, serde_json::json!({"component": id, "from": from, "to": to, "reason": reason})),
        };
        transition(events::ACTIVATING, None);
        let fail = |stage: &'static str, reason: String| {
            transition(events::ACTIVATION_FAILED, Some(format!("{stage}: {reason}")));
            ActivationError { id: id.clone(), version: to.clone(), stage, reason }
        };
        let loaded = match self.runtime.load(package).await {
            Ok(loaded) => Arc::new(loaded),
            Err(e) => return Err(fail(stage_of(&e), e.to_string())),
        };
        if let Err(e) = self.check_tool_name(&loaded) {
            return Err(fail("conflict", e.to_string()));
        }
        match existing {
            None => {
                let slot = self.admit_new(loaded).map_err(|e| fail(stage_of(&e), e.to_string()))?;
                slot.record(&self.runtime.capabilities.bus, events::ACTIVATED, from, Some(to.clone()), None);
            }
            Some(slot) => {
                let swap = &self.runtime.config.swap;
                let new_tool = loaded.tool().map(|t| t.name.clone());
                let old = slot.switch(loaded, swap.auto_rollback);
                self.retarget_tool(&id, old.tool().map(|t| t.name.clone()), new_tool);
                self.ensure_worker(&slot);
                slot.record(&self.runtime.capabilities.bus, events::ACTIVATED, from, Some(to.clone()), None);
                self.spawn_drain(slot, old);
            }
        }
        Ok(to)
    }

    /// Point the tool map at the component's current tool name.
    fn retarget_tool(&self, id: &str, old: Option<String>, new: Option<String>) {
        let mut tools = self.tools.write();
        if let Some(old) = old
            && tools.get(&old).is_some_and(|owner| owner == id)
        {
            tools.remove(&old);
        }
        if let Some(new) = new {
            tools.insert(new, id.to_string());
        }
    }

    fn spawn_drain(&self, slot: Arc<Slot>, old: Arc<LoadedComponent>) {
        let grace = Duration::from_millis(self.runtime.config.swap.drain_grace_ms);
        tokio::spawn(supervisor::drain(slot, old, grace, self.runtime.capabilities.bus.clone()));
    }

    /// Take a component away while the host serves; calls in flight finish
    /// (within the drain grace period). Returns whether it was loaded.
    pub async fn remove(&self, id: &str) -> bool {
        let _serial = self.transitions.lock().await;
        let Some(slot) = self.slots.write().remove(id) else { return false };
        let active = slot.active();
        self.retarget_tool(id, active.tool().map(|t| t.name.clone()), None);
        if let Some(worker) = self.workers.lock().remove(id) {
            self.runtime.capabilities.bus.unsubscribe(worker.subscription);
        }
        slot.record(&self.runtime.capabilities.bus, events::REMOVED, Some(active.version()), None, None);
        self.spawn_drain(slot, active);
        true
    }

    /// Validate `sources` as a whole and, if valid, make them the policy set
    /// (every cached decision is dropped, so the very next capability call
    /// is decided by the new set). If invalid, the current set stays and a
    /// `policy.reload.failed` event names each file and line.
    pub async fn reload_policies(&self, sources: Vec<PolicySource>) -> Result<PolicyReload, PolicyError> {
        let _serial = self.transitions.lock().await;
        let authorizer = self.authorizer();
        match PolicySet::from_sources(authorizer.schema(), sources) {
            Ok(next) => {
                let (added, removed, changed) = next.diff(&authorizer.policies());
                let summary = PolicyReload { policies: next.len(), added, removed, changed };
                authorizer.replace_policies(next);
                tracing::info!(policies = summary.policies, added = ?summary.added, removed = ?summary.removed, changed = ?summary.changed, "{}", events::POLICY_RELOADED);
                self.publish(events::POLICY_RELOADED, serde_json::to_value(&summary).unwrap_or_default());
                Ok(summary)
            }
            Err(error) => {
                let diagnostics: Vec<serde_json::Value> = error
                    .diagnostics()
                    .iter()
                    .map(|d| serde_json::json!({"file": d.file, "line": d.line, "column": d.column, "message": d.message}))
                    .collect();
                tracing::error!("{}: {error}; the previous policies stay in force", events::POLICY_RELOAD_FAILED);
                self.publish(
                    events::POLICY_RELOAD_FAILED,
                    serde_json::json!({"errors": diagnostics, "message": error.to_string()}),
                );
                Err(error)
            }
        }
    }

    /// Prepare a caller for tool calls (e.g. [`Principal::local_operator`]).
    pub fn caller(&self, principal: Principal) -> Caller {
        Caller(self.runtime.gate.authorizer().principal(principal))
    }

    /// May `caller` do `action` on `resource`? A refusal is audited (an
    /// `audit.denied` event), like every other refusal.
    pub fn authorize(&self, caller: &Caller, action: arw_policy::Action, resource: &str) -> Result<(), Denied> {
        self.runtime.gate.authorize(&caller.0, None, action, resource, None)
    }

    /// The same question without the audit event, for filters where "no"
    /// is routine (which events an event-stream client sees).
    pub fn permits(&self, caller: &Caller, action: arw_policy::Action, resource: &str) -> bool {
        self.runtime.gate.allows(&caller.0, None, action, resource)
    }

    /// The component that provides tool `tool`, if any.
    pub fn tool_owner(&self, tool: &str) -> Option<String> {
        self.tools.read().get(tool).cloned()
    }

    /// Is the host stopping (no new calls taken)?
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Call tool `tool` with JSON `input`. Runs on a fresh instance of the
    /// active version, under its deadline, memory cap and concurrency limit.
    pub async fn call(&self, caller: &Caller, tool: &str, input: &str) -> Result<serde_json::Value, CallError> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(CallError::ShuttingDown);
        }
        let _guard = self.in_flight.enter();
        let id = self.tools.read().get(tool).cloned();
        let slot = id.and_then(|id| self.slot(&id)).ok_or_else(|| CallError::UnknownTool {
            name: tool.into(),
            available: self.tools.read().keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
        let component = slot.active();
        let result = self.runtime.invoke(&caller.0, &component, input).await;
        let swap = &self.runtime.config.swap;
        if swap.auto_rollback {
            let fault = matches!(&result, Err(e) if e.is_fault());
            if slot.observe(&component, fault, swap.probation_calls, swap.rollback_after_faults) {
                self.auto_rollback(&slot).await;
            }
        }
        result
    }

    async fn auto_rollback(&self, slot: &Arc<Slot>) {
        let _serial = self.transitions.lock().await;
        let Some((failed, restored)) = slot.roll_back() else { return };
        let swap = &self.runtime.config.swap;
        self.retarget_tool(&slot.id, failed.tool().map(|t| t.name.clone()), restored.tool().map(|t| t.name.clone()));
        let reason = format!(
            "{} faults (traps, deadlines, memory caps or invalid output) within its first {} calls",
            swap.rollback_after_faults, swap.probation_calls
        );
        slot.record(
            &self.runtime.capabilities.bus,
            events::ROLLED_BACK,
            Some(failed.version()),
            Some(restored.version()),
            Some(reason),
        );
        self.spawn_drain(slot.clone(), failed);
    }

    fn active_components(&self) -> Vec<Arc<LoadedComponent>> {
        self.slots.read().values().map(|s| s.active()).collect()
    }

    /// Every active component with its grants.
    pub fn components(&self) -> Vec<ComponentInfo> {
        self.active_components()
            .iter()
            .map(|c| ComponentInfo {
                id: c.id().into(),
                version: c.manifest.version.to_string(),
                worlds: c.manifest.worlds.clone(),
                description: c.manifest.description.clone(),
                digest: c.digest.clone(),
                origin: c.origin.clone(),
                publisher: c.publisher.clone(),
                compilation: c.compilation,
                tool: c.tool().map(|t| t.name.clone()),
                limits: c.manifest.limits.clone(),
                grants: c.grant_decisions(),
            })
            .collect()
    }

    /// Every tool, by name.
    pub fn tools(&self) -> Vec<ToolInfo> {
        let mut tools: Vec<ToolInfo> = self
            .active_components()
            .iter()
            .filter_map(|c| c.tool().map(|d| ToolInfo { component: c.id().into(), descriptor: d.clone() }))
            .collect();
        tools.sort_by(|a, b| a.descriptor.name.cmp(&b.descriptor.name));
        tools
    }

    /// Active and draining versions, last transitions, policies, bus counters.
    pub fn status(&self) -> HostStatus {
        let slots: Vec<Arc<Slot>> = self.slots.read().values().cloned().collect();
        let BusStats { published, delivered, dropped, failed, .. } = self.bus_stats();
        HostStatus {
            components: slots
                .iter()
                .map(|slot| {
                    let active = slot.active();
                    ComponentStatus {
                        id: slot.id.clone(),
                        active_version: active.version(),
                        digest: active.digest.clone(),
                        in_flight: active.in_flight(),
                        draining: slot.draining(),
                        last_transition: slot.last_transition(),
                    }
                })
                .collect(),
            policies: self.authorizer().policies().len(),
            bus: BusStatsView { published, delivered, dropped, failed },
        }
    }

    /// The active version of `id`, if loaded.
    pub fn active_version(&self, id: &str) -> Option<(String, String)> {
        self.slot(id).map(|s| {
            let active = s.active();
            (active.version(), active.digest.clone())
        })
    }

    pub fn bus(&self) -> &Arc<Bus> {
        &self.runtime.capabilities.bus
    }

    pub fn bus_stats(&self) -> BusStats {
        self.bus().stats()
    }

    pub fn authorizer(&self) -> &Arc<Authorizer> {
        self.runtime.gate.authorizer()
    }

    /// Stop taking calls, let calls in flight finish and subscribers deliver
    /// what is already queued (each bounded by `grace`), and release the
    /// state directory. Returns how many calls were still running when the
    /// grace period ended.
    pub async fn shutdown(self, grace: Duration) -> usize {
        self.stop(grace).await
    }

    /// [`Host::shutdown`] for a host that is still shared (an HTTP server's
    /// last connections may hold it a moment longer): the state directory
    /// is released when the last reference goes.
    pub async fn stop(&self, grace: Duration) -> usize {
        self.shutting_down.store(true, Ordering::Release);
        let workers: Vec<SubscriberWorker> = std::mem::take(&mut *self.workers.lock()).into_values().collect();
        for worker in &workers {
            self.runtime.capabilities.bus.unsubscribe(worker.subscription);
        }
        let _ = self.shutdown.send(true);
        let drained = tokio::time::timeout(grace, async {
            loop {
                let idle = self.in_flight.idle.notified();
                if self.in_flight.count.load(Ordering::Acquire) == 0 {
                    break;
                }
                idle.await;
            }
        })
        .await;
        let left = if drained.is_ok() { 0 } else { self.in_flight.count.load(Ordering::Acquire) };
        for worker in workers {
            if tokio::time::timeout(grace, worker.task).await.is_err() {
                tracing::warn!("a subscriber did not finish its queued events within the grace period");
            }
        }
        left
    }
}
