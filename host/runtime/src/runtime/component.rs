//! Loading one component: from bytes and a manifest to something callable.
//!
//! The steps, each with its own error: manifest checks against the host's
//! limits → "is this a component at all" → compile → does it export what
//! its worlds require → link (`InstancePre`) → each role's preparation and
//! health check (`roles::RoleUnit::prepare`: a tool's `describe`, an
//! instantiation for the others).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arw_policy::{Action, Principal};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, InstancePre};

use super::Runtime;
use super::aot::Compilation;
use super::entry::Entry;
use super::store::{InstanceState, StoreBounds, new_store};
use super::warm::WarmPool;
use crate::authz::Grants;
use crate::capabilities::{ComponentCapabilities, config};
use crate::error::LoadError;
use crate::manifest::Manifest;
use crate::source::ComponentPackage;

pub use crate::roles::tool::ToolDescriptor;

/// A component ready to be called: compiled, linked and health-checked.
pub struct LoadedComponent {
    pub manifest: Manifest,
    /// Where it came from, for messages (`embedded:text-stats`, a path).
    pub origin: String,
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
    /// What each role its manifest names keeps of it (`roles::Prepared`):
    /// its exports, a tool's descriptor, schema and pool.
    pub(crate) roles: crate::roles::Prepared,
    pub(crate) capabilities: ComponentCapabilities,
    /// One permit per concurrent call (`limits.concurrency`, or what the
    /// feedback engine applied below it: [`LoadedComponent::retune`]).
    pub(crate) slots: Arc<Semaphore>,
    /// The permits `slots` was given in all (taken ones included).
    granted: parking_lot::Mutex<u32>,
    /// What applies changed of its limits (shared by its versions).
    pub(crate) tuning: Arc<super::tuning::Tuning>,
    /// The trusted signer, if any (Cedar's `principal.publisher`).
    pub publisher: Option<String>,
    /// Whether the code came from the AOT cache.
    pub compilation: Compilation,
    /// Set when this version was replaced and its drain grace period ended:
    /// calls still running on it are interrupted at the next epoch tick.
    pub(crate) retired: Arc<AtomicBool>,
    /// Calls (and deliveries) running on this version now.
    pub(crate) in_flight: AtomicUsize,
}

/// Counts one call on a version for as long as it lives.
pub(crate) struct VersionCall<'a>(&'a LoadedComponent);

impl Drop for VersionCall<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("id", &self.manifest.id)
            .field("version", &self.manifest.version)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl LoadedComponent {
    pub fn id(&self) -> &str {
        self.manifest.id.as_str()
    }

    pub fn tool(&self) -> Option<&ToolDescriptor> {
        self.roles.tool.as_ref().map(|t| &t.descriptor)
    }

    /// Where `input` breaks the tool's input schema (empty if it does not):
    /// each violation as `<JSON pointer>: <what is wrong>`.
    pub fn schema_violations(&self, input: &serde_json::Value) -> Vec<String> {
        let Some(tool) = &self.roles.tool else { return Vec::new() };
        tool.validator
            .iter_errors(input)
            .take(32)
            .map(|e| {
                let path = e.instance_path().to_string();
                format!("{}: {e}", if path.is_empty() { "/" } else { path.as_str() })
            })
            .collect()
    }

    /// A link error of this component (an export that cannot be typed as
    /// its role's), for a role's `prepare`.
    pub(crate) fn link_error(&self, e: wasmtime::Error) -> LoadError {
        LoadError::Link { origin: self.origin.clone(), message: format!("{e:#}") }
    }

    pub fn grants(&self) -> &Arc<Grants> {
        &self.capabilities.grants
    }

    pub(crate) fn memory_limit(&self) -> usize {
        usize::try_from(self.manifest.limits.memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }

    /// Each entry's deadline: the manifest's `limits.timeout-ms`, or what
    /// the feedback engine applied (within the host's `limits.max-timeout-ms`,
    /// checked at apply).
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.tuning.timeout_ms().unwrap_or(self.manifest.limits.timeout_ms))
    }

    /// Calls it may run at once: the manifest's `limits.concurrency`, or
    /// what the feedback engine applied below it.
    pub fn concurrency(&self) -> u32 {
        let manifest = self.manifest.limits.concurrency;
        self.tuning.concurrency().map_or(manifest, |c| c.clamp(1, manifest.max(1)))
    }

    /// Idle instances a `[pooled]` tool keeps: the manifest's `pooled.size`,
    /// or what the feedback engine applied (1 to `limits.concurrency`).
    pub fn pool_size(&self) -> Option<u32> {
        let manifest = self.manifest.pooled.as_ref()?.size;
        Some(self.tuning.pool_size().map_or(manifest, |s| s.clamp(1, self.manifest.limits.concurrency.max(1))))
    }

    /// Its limits as in force: the manifest's, with what was applied.
    pub fn limits(&self) -> arw_manifest::Limits {
        let mut limits = self.manifest.limits.clone();
        limits.timeout_ms = u64::try_from(self.timeout().as_millis()).unwrap_or(u64::MAX);
        limits.concurrency = self.concurrency();
        limits
    }

    /// Make its slots match [`LoadedComponent::concurrency`]: permits are
    /// added at once, or taken away as running calls give theirs back (a
    /// call in flight is never cut short); and its kept instances match
    /// [`LoadedComponent::pool_size`] (idle ones over it are dropped).
    pub(crate) fn retune(&self) {
        if let (Some(size), Some(warm)) =
            (self.pool_size(), self.roles.tool.as_ref().and_then(|tool| tool.warm.as_ref()))
        {
            warm.resize(size as usize);
        }
        let target = self.concurrency();
        let mut granted = self.granted.lock();
        match target.cmp(&*granted) {
            std::cmp::Ordering::Greater => self.slots.add_permits((target - *granted) as usize),
            std::cmp::Ordering::Less => {
                let (slots, n) = (self.slots.clone(), *granted - target);
                // Taken back as running calls end (outside a runtime, which
                // only a test without one would be, they stay granted).
                let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
                runtime.spawn(async move {
                    if let Ok(permits) = slots.acquire_many_owned(n).await {
                        permits.forget();
                    }
                });
            }
            std::cmp::Ordering::Equal => {}
        }
        *granted = target;
    }

    pub(crate) fn enter(&self) -> VersionCall<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        VersionCall(self)
    }

    /// Calls running on this version now (including those waiting for a
    /// slot).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Calls holding one of its `limits.concurrency` slots now.
    pub fn running(&self) -> usize {
        (self.concurrency() as usize).saturating_sub(self.slots.available_permits())
    }

    /// Idle kept instances, for a `[pooled]` tool.
    pub fn pooled_idle(&self) -> Option<usize> {
        self.roles.tool.as_ref()?.warm.as_ref().map(WarmPool::idle)
    }

    pub fn version(&self) -> String {
        self.manifest.version.to_string()
    }

    /// A fresh store for one entry into this version, ending at `deadline`.
    pub(crate) fn store(
        &self,
        runtime: &Runtime,
        deadline: Instant,
        chain: super::entry::Chain,
    ) -> wasmtime::Store<InstanceState> {
        new_store(
            &runtime.engine,
            &runtime.capabilities,
            &self.capabilities,
            chain,
            StoreBounds {
                memory_limit: self.memory_limit(),
                memory: runtime.pool.memory().clone(),
                timeout: self.timeout(),
                deadline,
                retired: self.retired.clone(),
            },
        )
    }
}

/// A core module's preamble is `\0asm` then version 1 (`01 00 00 00`); a
/// component's is `\0asm` then `0d 00 01 00` (version 13, layer 1).
fn is_core_module(wasm: &[u8]) -> bool {
    wasm.get(4..8) == Some(&[1, 0, 0, 0])
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Runtime {
    /// Load one component package. Nothing about the host changes if this
    /// fails.
    pub async fn load(&self, package: ComponentPackage) -> Result<LoadedComponent, LoadError> {
        let digest = digest(&package.wasm);
        self.load_digested(package, digest).await
    }

    /// [`Runtime::load`] of a package whose `sha256:` digest is known.
    pub async fn load_digested(&self, package: ComponentPackage, digest: String) -> Result<LoadedComponent, LoadError> {
        let ComponentPackage { manifest, wasm, origin, publisher } = package;
        if publisher.is_none() {
            if !self.config.allow_unsigned {
                return Err(LoadError::Unsigned { origin });
            }
            tracing::warn!(%origin, "loading an UNSIGNED component (allow-unsigned is on; development only)");
        }
        if let Err(message) = crate::check_manifest(&manifest) {
            return Err(LoadError::Manifest { origin, message });
        }
        if let Err(message) = self
            .check_limits(&manifest.limits)
            .and_then(|()| self.check_pool(&manifest.limits))
            .and_then(|()| self.check_resident(&manifest))
        {
            return Err(LoadError::Limits { origin, message });
        }
        if !wasm.starts_with(b"\0asm") {
            return Err(LoadError::NotWasm { origin });
        }
        if is_core_module(&wasm) {
            return Err(LoadError::CoreModule { origin });
        }

        // Compiling takes milliseconds to seconds: keep it off the executor.
        let engine = self.engine.clone();
        let aot = self.aot.clone();
        let key = digest.clone();
        let (component, compilation) = tokio::task::spawn_blocking(move || match aot {
            Some(cache) => cache.load_or_compile(&engine, &key, &wasm),
            None => Component::new(&engine, &wasm).map(|c| (c, Compilation::Compiled)),
        })
        .await
        .map_err(|e| LoadError::Compile { origin: origin.clone(), message: e.to_string() })?
        .map_err(|e| LoadError::Compile { origin: origin.clone(), message: format!("{e:#}") })?;

        let exports: Vec<String> =
            component.component_type().exports(&self.engine).map(|(name, _)| name.to_string()).collect();
        for world in &manifest.worlds {
            if let Some(export) = world.missing_export(exports.iter().map(String::as_str)) {
                return Err(LoadError::WrongWorld {
                    origin,
                    world: world.to_string(),
                    export: export.into(),
                    found: if exports.is_empty() { "nothing".into() } else { exports.join(", ") },
                });
            }
        }

        let pre: InstancePre<InstanceState> = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link { origin: origin.clone(), message: format!("{e:#}") })?;

        let authorizer = self.chokepoint.authorizer();
        let principal = authorizer.principal(Principal::component(
            manifest.id.as_str(),
            manifest.version.to_string(),
            publisher.clone().unwrap_or_default(),
            digest.clone(),
        ));
        let grants = Arc::new(Grants::new(principal, manifest.capabilities.clone(), self.chokepoint.clone()));
        let capabilities = ComponentCapabilities {
            component: manifest.id.as_str().into(),
            grants,
            config: Arc::new(config::merge(
                &manifest.config,
                self.config.components.get(manifest.id.as_str()).map(|o| &o.config),
            )),
            output_budget: self.capabilities.log.budget(),
        };

        let tuning = self.tunings.of(manifest.id.as_str());
        let concurrency =
            tuning.concurrency().map_or(manifest.limits.concurrency, |c| c.min(manifest.limits.concurrency));
        let mut loaded = LoadedComponent {
            slots: Arc::new(Semaphore::new(concurrency as usize)),
            granted: parking_lot::Mutex::new(concurrency),
            tuning,
            manifest,
            origin: origin.clone(),
            digest,
            roles: crate::roles::Prepared::default(),
            capabilities,
            publisher,
            compilation,
            retired: Arc::new(AtomicBool::new(false)),
            in_flight: AtomicUsize::new(0),
        };
        crate::roles::prepare(self, &mut loaded, &pre, &exports).await?;
        tracing::debug!(component = loaded.id(), digest = %loaded.digest, "loaded");
        Ok(loaded)
    }
}

impl Runtime {
    /// The host's ceilings on what a manifest may ask for.
    fn check_limits(&self, limits: &crate::manifest::Limits) -> Result<(), String> {
        let host = &self.config.limits;
        let over = |what: &str, asked: u64, setting: &str, max: u64| {
            Err(format!(
                "{what} = {asked} is over the host's {setting} = {max}; lower the manifest's limit or raise the host's"
            ))
        };
        if limits.memory_mib > self.config.engine.max_memory_mib {
            return over(
                "limits.memory-mib",
                limits.memory_mib,
                "engine.max-memory-mib",
                self.config.engine.max_memory_mib,
            );
        }
        if limits.timeout_ms > host.max_timeout_ms {
            return over("limits.timeout-ms", limits.timeout_ms, "limits.max-timeout-ms", host.max_timeout_ms);
        }
        if limits.concurrency > host.max_concurrency {
            return over(
                "limits.concurrency",
                u64::from(limits.concurrency),
                "limits.max-concurrency",
                u64::from(host.max_concurrency),
            );
        }
        Ok(())
    }

    /// The host's bounds on a resident component's `[resident]` section.
    fn check_resident(&self, manifest: &Manifest) -> Result<(), String> {
        let min = self.config.resident.min_tick_ms;
        if let Some(tick_ms) = manifest.resident.as_ref().and_then(|r| r.tick_ms)
            && tick_ms < min
        {
            return Err(format!(
                "resident.tick-ms = {tick_ms} is under the host's resident.min-tick-ms = {min}; \
                 raise the manifest's period or lower the host's bound"
            ));
        }
        Ok(())
    }

    fn check_pool(&self, limits: &crate::manifest::Limits) -> Result<(), String> {
        let pool = self.pool.calls_budget();
        if limits.concurrency > pool {
            return Err(format!(
                "limits.concurrency = {} is over the {pool} instance-pool slots calls may use \
                 (engine.max-instances - 1); lower the manifest's limit or raise engine.max-instances",
                limits.concurrency
            ));
        }
        Ok(())
    }

    /// A fresh store of `loaded` for a role's health check at load, with
    /// its deadline and the pool slot kept for health checks; run the check
    /// with [`health_result`].
    pub(crate) async fn health_store(&self, loaded: &LoadedComponent) -> Result<HealthStore, LoadError> {
        let entry = Entry::start(loaded);
        let slot = self.health_slot(loaded, &entry).await?;
        let store = entry.store(self, loaded);
        Ok(HealthStore { entry, store, _slot: slot })
    }

    /// The pool slot kept for health checks, waited for under `entry`.
    async fn health_slot(
        &self,
        component: &LoadedComponent,
        entry: &Entry,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, LoadError> {
        entry.wait(self.pool.for_health_check()).await.flatten().ok_or_else(|| LoadError::Health {
            origin: component.origin.clone(),
            message: "no instance-pool slot for the health check came free before the deadline".into(),
        })
    }
}

/// Where a role's health check runs (see [`Runtime::health_store`]).
pub(crate) struct HealthStore {
    pub(crate) entry: Entry,
    pub(crate) store: wasmtime::Store<InstanceState>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// Run a health check under `entry`'s deadline: a trap, an error or the
/// deadline refuses the component, with why.
pub(crate) async fn health_result<T>(
    loaded: &LoadedComponent,
    entry: &Entry,
    check: impl std::future::Future<Output = wasmtime::Result<T>>,
) -> Result<T, LoadError> {
    let fail = |message: String| LoadError::Health { origin: loaded.origin.clone(), message };
    entry.run(check).await.ok_or_else(|| fail(deadline_message(loaded)))?.map_err(|e| fail(format!("{e:#}")))
}

fn deadline_message(component: &LoadedComponent) -> String {
    format!(
        "did not finish within its deadline of {} ms (limits.timeout-ms in its manifest)",
        component.manifest.limits.timeout_ms
    )
}

/// One requested capability of a component and Cedar's answer for it.
#[derive(Debug, Clone, Serialize)]
pub struct GrantDecision {
    pub action: Action,
    pub resource: String,
    pub allowed: bool,
    pub reason: String,
}

impl LoadedComponent {
    /// Cedar's decision for each requested capability. A pattern is asked
    /// about literally (a resource named `demo.*`), which a policy using
    /// `like "demo.*"` permits.
    pub fn grant_decisions(&self) -> Vec<GrantDecision> {
        let grants = self.grants();
        let authorizer = self.capabilities.grants.chokepoint().authorizer();
        grants
            .requested()
            .iter()
            .filter_map(|r| {
                // Every request's action is known: the load checked them.
                let action = crate::capabilities::action(&r.action)?;
                let d = authorizer.decide(grants.principal(), action, &r.resource);
                Some(GrantDecision {
                    action,
                    resource: r.resource.clone(),
                    allowed: d.allowed(),
                    reason: d.reason().to_string(),
                })
            })
            .collect()
    }
}
