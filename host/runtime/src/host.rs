//! [`Host`]: the host as a library. The CLI, the tests and (later) the HTTP
//! server all drive it through this type.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use arw_policy::{Authorizer, PolicySet, Principal, PrincipalHandle};
use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::authz::Gate;
use crate::capabilities::Capabilities;
use crate::capabilities::bus::{Bus, BusStats};
use crate::capabilities::kv::KvStore;
use crate::config::HostConfig;
use crate::error::{CallError, HostError, LoadError};
use crate::manifest::{Limits, World};
use crate::runtime::aot::{AotCache, Compilation};
use crate::runtime::component::{GrantDecision, LoadedComponent, ToolDescriptor};
use crate::runtime::subscriber::{self, SubscriberWorker};
use crate::runtime::{Runtime, engine};
use crate::source::ComponentSource;

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
    /// Whether its code came from the AOT cache this start.
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
    components: BTreeMap<String, Arc<LoadedComponent>>,
    tools: BTreeMap<String, Arc<LoadedComponent>>,
    workers: Vec<SubscriberWorker>,
    shutdown: watch::Sender<bool>,
    shutting_down: AtomicBool,
    in_flight: InFlight,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("components", &self.components.keys()).finish_non_exhaustive()
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
        let engine = engine::build(&config.engine)?;
        engine::start_ticker(&engine, Duration::from_millis(config.engine.epoch_tick_ms));
        let linker = crate::runtime::linker(&engine).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let bus = Arc::new(Bus::new(config.bus.clone()));
        let kv = Arc::new(KvStore::open(&state_dir, config.kv.clone())?);
        let authorizer = Arc::new(Authorizer::new(arw_policy::schema::embedded()?, policies));
        let gate = Arc::new(Gate::new(authorizer, bus.clone()));
        let aot = Some(AotCache::new(state_dir.join("aot")));
        let runtime = Arc::new(Runtime { engine, linker, capabilities: Capabilities { bus, kv }, gate, config, aot });

        let mut refused = Vec::new();
        let mut components: BTreeMap<String, Arc<LoadedComponent>> = BTreeMap::new();
        let mut tools: BTreeMap<String, Arc<LoadedComponent>> = BTreeMap::new();
        for package in source.packages() {
            let loaded = match package {
                Ok(package) => runtime.load(package).await,
                Err(e) => Err(e),
            };
            let loaded = match loaded {
                Ok(loaded) => Arc::new(loaded),
                Err(e) => {
                    tracing::error!("component refused: {e}");
                    refused.push(e);
                    continue;
                }
            };
            if let Some(existing) = components.get(loaded.id()) {
                refused.push(LoadError::Conflict {
                    origin: loaded.origin.clone(),
                    message: format!("component id `{}` is already loaded from {}", loaded.id(), existing.origin),
                });
                continue;
            }
            if let Some(tool) = loaded.tool() {
                if let Some(existing) = tools.get(&tool.name) {
                    refused.push(LoadError::Conflict {
                        origin: loaded.origin.clone(),
                        message: format!("tool name `{}` is already provided by `{}`", tool.name, existing.id()),
                    });
                    continue;
                }
                tools.insert(tool.name.clone(), loaded.clone());
            }
            components.insert(loaded.id().to_string(), loaded);
        }

        let (shutdown, shutdown_rx) = watch::channel(false);
        let workers = components
            .values()
            .filter(|c| c.subscriber.is_some())
            .map(|c| subscriber::spawn(runtime.clone(), c.clone(), shutdown_rx.clone()))
            .collect();
        let host = Host {
            runtime,
            components,
            tools,
            workers,
            shutdown,
            shutting_down: AtomicBool::new(false),
            in_flight: InFlight::default(),
        };
        Ok((host, refused))
    }

    /// Prepare a caller for tool calls (e.g. [`Principal::local_operator`]).
    pub fn caller(&self, principal: Principal) -> Caller {
        Caller(self.runtime.gate.authorizer().principal(principal))
    }

    /// Call tool `tool` with JSON `input`. Runs on a fresh instance, under
    /// the component's deadline, memory cap and concurrency limit.
    pub async fn call(&self, caller: &Caller, tool: &str, input: &str) -> Result<serde_json::Value, CallError> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(CallError::ShuttingDown);
        }
        let _guard = self.in_flight.enter();
        let component = self.tools.get(tool).ok_or_else(|| CallError::UnknownTool {
            name: tool.into(),
            available: self.tools.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
        self.runtime.invoke(&caller.0, component, input).await
    }

    /// Every loaded component with its grants.
    pub fn components(&self) -> Vec<ComponentInfo> {
        self.components
            .values()
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
        self.tools
            .values()
            .filter_map(|c| c.tool().map(|d| ToolInfo { component: c.id().into(), descriptor: d.clone() }))
            .collect()
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
        self.shutting_down.store(true, Ordering::Release);
        for worker in &self.workers {
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
        for worker in self.workers {
            if tokio::time::timeout(grace, worker.task).await.is_err() {
                tracing::warn!("a subscriber did not finish its queued events within the grace period");
            }
        }
        left
    }
}
