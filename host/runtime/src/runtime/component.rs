//! Loading one component: from bytes and a manifest to something callable.
//!
//! The steps, each with its own error: manifest checks against the host's
//! limits → "is this a component at all" → compile → does it export what
//! its worlds require → link (`InstancePre`) → health check (`describe`
//! for tools).

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
use super::warm::{Warm, WarmPool};
use crate::authz::Grants;
use crate::capabilities::{ComponentCapabilities, config};
use crate::error::LoadError;
use crate::manifest::{Manifest, World};
use crate::roles::resident::ResidentExport;
use crate::roles::subscriber::EventExport;
use crate::roles::tool::{ToolExport, ToolInstance};
use crate::source::ComponentPackage;

/// What a tool says about itself (its `describe` export), schemas parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ToolDescriptor {
    pub name: String,
    pub version: String,
    pub summary: String,
    pub input_schema: serde_json::Value,
    pub output_schema: serde_json::Value,
}

/// A component ready to be called: compiled, linked and health-checked.
pub struct LoadedComponent {
    pub manifest: Manifest,
    /// Where it came from, for messages (`embedded:text-stats`, a path).
    pub origin: String,
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
    pub(crate) tool: Option<(ToolExport, ToolDescriptor)>,
    /// The tool's input schema, compiled: every call's input is checked
    /// against it before the guest runs.
    pub(crate) input_validator: Option<Arc<jsonschema::Validator>>,
    pub(crate) subscriber: Option<EventExport>,
    pub(crate) resident: Option<ResidentExport>,
    /// Kept instances of its tool, for a `[pooled]` manifest.
    pub(crate) warm: Option<WarmPool<ToolInstance>>,
    pub(crate) capabilities: ComponentCapabilities,
    /// One permit per concurrent call (`limits.concurrency`).
    pub(crate) slots: Arc<Semaphore>,
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
        self.tool.as_ref().map(|(_, d)| d)
    }

    /// Where `input` breaks the tool's input schema (empty if it does not):
    /// each violation as `<JSON pointer>: <what is wrong>`.
    pub fn schema_violations(&self, input: &serde_json::Value) -> Vec<String> {
        let Some(validator) = &self.input_validator else { return Vec::new() };
        validator
            .iter_errors(input)
            .take(32)
            .map(|e| {
                let path = e.instance_path().to_string();
                format!("{}: {e}", if path.is_empty() { "/" } else { path.as_str() })
            })
            .collect()
    }

    pub fn grants(&self) -> &Arc<Grants> {
        &self.capabilities.grants
    }

    pub(crate) fn memory_limit(&self) -> usize {
        usize::try_from(self.manifest.limits.memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.manifest.limits.timeout_ms)
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
        (self.manifest.limits.concurrency as usize).saturating_sub(self.slots.available_permits())
    }

    /// Idle kept instances, for a `[pooled]` tool.
    pub fn pooled_idle(&self) -> Option<usize> {
        self.warm.as_ref().map(WarmPool::idle)
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
        if let Err(message) = crate::capabilities::check_manifest(&manifest) {
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
        let link = |e: wasmtime::Error| LoadError::Link { origin: origin.clone(), message: format!("{e:#}") };

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

        let subscriber = if manifest.worlds.contains(&World::Subscriber) {
            Some(EventExport::new(pre.clone(), &exports).map_err(link)?)
        } else {
            None
        };
        let resident = if manifest.worlds.contains(&World::Resident) {
            Some(ResidentExport::new(pre.clone()).map_err(link)?)
        } else {
            None
        };
        let warm = manifest.pooled.as_ref().map(|p| WarmPool::new(p.size as usize, p.stateless));
        let mut loaded = LoadedComponent {
            slots: Arc::new(Semaphore::new(manifest.limits.concurrency as usize)),
            manifest,
            origin: origin.clone(),
            digest,
            tool: None,
            input_validator: None,
            subscriber,
            resident,
            warm,
            capabilities,
            publisher,
            compilation,
            retired: Arc::new(AtomicBool::new(false)),
            in_flight: AtomicUsize::new(0),
        };
        if loaded.manifest.worlds.contains(&World::Tool) {
            let tool_pre = ToolExport::new(pre, &exports).map_err(link)?;
            let descriptor = self.describe(&loaded, &tool_pre).await?;
            let validator = jsonschema::validator_for(&descriptor.input_schema).map_err(|e| LoadError::Health {
                origin: loaded.origin.clone(),
                message: format!("the input schema of `{}` is not a valid JSON Schema: {e}", descriptor.name),
            })?;
            loaded.input_validator = Some(Arc::new(validator));
            loaded.tool = Some((tool_pre, descriptor));
            self.pre_make(&loaded).await;
        } else if loaded.resident.is_some() || loaded.subscriber.is_some() {
            // Health check of a resident or subscriber-only component: it
            // instantiates, under the same deadline as any entry (a
            // resident's driver starts its own instance once it is active).
            let fail = |message: String| LoadError::Health { origin: loaded.origin.clone(), message };
            let entry = Entry::start(&loaded);
            let _slot = self.health_slot(&loaded, &entry).await?;
            let mut store = entry.store(self, &loaded);
            let instantiate = async {
                match (&loaded.resident, &loaded.subscriber) {
                    (Some(resident), _) => resident.instantiate(&mut store).await.map(drop),
                    (None, Some(subscriber)) => subscriber.instantiate(&mut store).await,
                    (None, None) => Ok(()),
                }
            };
            entry
                .run(instantiate)
                .await
                .ok_or_else(|| fail(deadline_message(&loaded)))?
                .map_err(|e| fail(format!("{e:#}")))?;
        }
        tracing::debug!(component = loaded.id(), digest = %loaded.digest, "loaded");
        Ok(loaded)
    }

    /// Make the idle instances of a `[pooled]` tool ahead of its first
    /// calls, as far as the instance pool has room (calls make the rest).
    async fn pre_make(&self, component: &LoadedComponent) {
        let (Some(warm), Some((pre, _))) = (&component.warm, &component.tool) else { return };
        let size = component.manifest.pooled.as_ref().map_or(0, |p| p.size);
        for _ in 0..size {
            let entry = Entry::start(component);
            let Some(Some(slot)) = entry.wait(self.pool.for_call()).await else { break };
            let mut store = entry.store(self, component);
            match entry.run(pre.instantiate(&mut store)).await {
                Some(Ok(instance)) => {
                    if !warm.add_fresh(Warm::new(store, instance, slot)) {
                        break;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(component = component.id(), "a pooled instance could not be made ahead: {e:#}");
                    break;
                }
                None => break,
            }
        }
    }

    /// The tool health check: instantiate, call `describe`, check the answer.
    async fn describe(&self, component: &LoadedComponent, pre: &ToolExport) -> Result<ToolDescriptor, LoadError> {
        let fail = |message: String| LoadError::Health { origin: component.origin.clone(), message };
        let entry = Entry::start(component);
        let _slot = self.health_slot(component, &entry).await?;
        let mut store = entry.store(self, component);
        let run = pre.describe(&mut store);
        let d = entry
            .run(run)
            .await
            .ok_or_else(|| fail(deadline_message(component)))?
            .map_err(|e| fail(format!("{e:#}")))?;
        let valid_name = !d.name.is_empty()
            && d.name.len() <= 64
            && d.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid_name {
            return Err(fail(format!("tool name `{}` must be 1-64 characters of a-z, 0-9 and `-`", d.name)));
        }
        let schema = |which: &str, text: &str| {
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| fail(format!("{which} schema of `{}` is not JSON: {e}", d.name)))
        };
        Ok(ToolDescriptor {
            input_schema: schema("input", &d.input_schema)?,
            output_schema: schema("output", &d.output_schema)?,
            name: d.name,
            version: d.version,
            summary: d.summary,
        })
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
