//! The `tool` role (`wit/tool.wit`, export `arw:host/tool-handler`):
//! per call, on a fresh instance, or on a kept one for a `[pooled]`
//! manifest (`runtime/warm.rs`). Authorize `tool.invoke`, check the input
//! against the tool's schema, take a concurrency slot and a pool slot,
//! instantiate, invoke under the deadline, check the output.

use std::sync::Arc;

use arw_policy::{Action, Resource};
use serde::Serialize;
use wasmtime::Store;
use wasmtime::component::InstancePre;

use crate::bindings::v0_1;
use crate::capabilities::tools::NestedCall;
use crate::error::{CallError, LoadError};
use crate::runtime::Runtime;
use crate::runtime::component::{LoadedComponent, health_result};
use crate::runtime::entry::Entry;
use crate::runtime::outcome::{classify, pool_busy, timeout};
use crate::runtime::store::InstanceState;
use crate::runtime::warm::{Warm, WarmPool};
use bindings::ToolPre;
use bindings::exports::arw::host::tool_handler::{Descriptor, ToolError};

/// The bindings of `arw:host/tool`: the `tool-handler` export; the capability
/// interfaces are [`crate::bindings::imports`].
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "arw:host/tool",
        imports: { default: async },
        exports: { default: async },
        with: { "arw:host": crate::bindings::imports::arw::host },
    });
}

/// The export that makes a component this role, at the current `arw:host`.
pub const EXPORT: &str = "arw:host/tool-handler@0.2.0";

/// This role, described (see [`crate::roles`]).
pub const UNIT: super::Role = super::Role {
    world: "tool",
    wit_world: "arw:host/tool",
    export: EXPORT,
    check: check_pooled,
    lifecycles: &[super::Lifecycle::PerEntry, super::Lifecycle::Pooled],
    worker: None,
};

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

/// `[pooled]` belongs to a tool, and its size fits its concurrency.
fn check_pooled(manifest: &crate::Manifest) -> Result<(), String> {
    let Some(pooled) = &manifest.pooled else { return Ok(()) };
    if !manifest.names_world(UNIT.world) {
        return Err("a `[pooled]` section is given but `worlds` does not include \"tool\"".into());
    }
    if pooled.size == 0 || pooled.size > manifest.limits.concurrency {
        return Err(format!(
            "`pooled.size` = {} must be between 1 and `limits.concurrency` = {}",
            pooled.size, manifest.limits.concurrency
        ));
    }
    Ok(())
}

/// The `tool` role as a unit (see [`super::RoleUnit`]).
#[derive(Debug)]
pub struct ToolRole;

/// What the tool role keeps of a loaded component.
pub(crate) struct ToolPrepared {
    pub(crate) export: ToolExport,
    pub(crate) descriptor: ToolDescriptor,
    /// The input schema, compiled: every call's input is checked against
    /// it before the guest runs.
    pub(crate) validator: Arc<jsonschema::Validator>,
    /// Kept instances, for a `[pooled]` manifest.
    pub(crate) warm: Option<WarmPool<ToolInstance>>,
}

impl std::fmt::Debug for ToolPrepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolPrepared").field("descriptor", &self.descriptor).finish_non_exhaustive()
    }
}

impl super::RoleUnit for ToolRole {
    const UNIT: super::Role = UNIT;
    type Prepared = ToolPrepared;

    /// The tool health check (instantiate, `describe`, check the answer),
    /// then a `[pooled]` tool's instances made ahead.
    async fn prepare(
        runtime: &Runtime,
        loaded: &LoadedComponent,
        pre: &InstancePre<InstanceState>,
        exports: &[String],
    ) -> Result<ToolPrepared, LoadError> {
        let export = ToolExport::new(pre.clone(), exports).map_err(|e| loaded.link_error(e))?;
        let mut check = runtime.health_store(loaded).await?;
        let described = health_result(loaded, &check.entry, export.describe(&mut check.store)).await?;
        drop(check);
        let descriptor = check_descriptor(loaded, described)?;
        let validator = jsonschema::validator_for(&descriptor.input_schema).map_err(|e| LoadError::Health {
            origin: loaded.origin.clone(),
            message: format!("the input schema of `{}` is not a valid JSON Schema: {e}", descriptor.name),
        })?;
        let warm = loaded.manifest.pooled.as_ref().map(|p| WarmPool::new(p.size as usize, p.stateless));
        if let (Some(warm), Some(size)) = (&warm, loaded.pool_size()) {
            warm.resize(size as usize);
            pre_make(runtime, loaded, &export, warm, size).await;
        }
        Ok(ToolPrepared { export, descriptor, validator: Arc::new(validator), warm })
    }
}

/// Check what `describe` answered: a valid tool name and JSON schemas.
fn check_descriptor(loaded: &LoadedComponent, d: Descriptor) -> Result<ToolDescriptor, LoadError> {
    let fail = |message: String| LoadError::Health { origin: loaded.origin.clone(), message };
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

/// Make the idle instances of a `[pooled]` tool ahead of its first calls,
/// as far as the instance pool has room (calls make the rest).
async fn pre_make(
    runtime: &Runtime,
    component: &LoadedComponent,
    export: &ToolExport,
    warm: &WarmPool<ToolInstance>,
    size: u32,
) {
    for _ in 0..size {
        let entry = Entry::start(component);
        let Some(Some(slot)) = entry.wait(runtime.pool.for_call()).await else { break };
        let mut store = entry.store(runtime, component);
        match entry.run(export.instantiate(&mut store)).await {
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

impl Runtime {
    /// Call the tool of `component` with `input` on behalf of `caller`:
    /// authorize, wait for a slot, instantiate, invoke, check the output.
    pub async fn invoke(
        &self,
        caller: &arw_policy::PrincipalHandle,
        component: &LoadedComponent,
        input: &str,
        context: &arw_policy::RequestContext<'_>,
    ) -> Result<serde_json::Value, CallError> {
        let tool = tool_name(component)?;
        self.chokepoint.authorize_in(
            caller,
            None,
            Action::TOOL_INVOKE,
            Resource::tool(tool, component.id()),
            context,
        )?;
        self.run_tool(caller.key(), component, input, Entry::start(component)).await
    }

    /// A component's call of the tool of `component` (`arw:host/tools`):
    /// the calling component's manifest and Cedar decide, with the chain
    /// in the context; the callee's deadline is capped by the caller's.
    pub(crate) async fn invoke_nested(
        &self,
        call: &NestedCall,
        component: &LoadedComponent,
    ) -> Result<serde_json::Value, CallError> {
        let tool = tool_name(component)?;
        // This runs on the calling guest's stack, where Cedar must not
        // evaluate (its stack guard misreads a fiber's stack): a cached
        // decision is used here, anything else is asked on a blocking
        // thread.
        let caller = &call.caller;
        let resource = Resource::tool(tool, component.id());
        let verdict = match self.chokepoint.authorize_cached(
            caller.principal(),
            Some(caller.requested()),
            Action::TOOL_INVOKE,
            resource,
        ) {
            Some(verdict) => verdict,
            None => {
                let (chokepoint, grants, chain) = (self.chokepoint.clone(), caller.clone(), call.chain.clone());
                let (tool, provider) = (tool.to_string(), component.id().to_string());
                let ask = move || {
                    let context = arw_policy::RequestContext { chain: &chain, ..Default::default() };
                    let resource = Resource::tool(&tool, &provider);
                    chokepoint.authorize_in(
                        grants.principal(),
                        Some(grants.requested()),
                        Action::TOOL_INVOKE,
                        resource,
                        &context,
                    )
                };
                tokio::task::spawn_blocking(ask).await.unwrap_or_else(|e| {
                    Err(crate::authz::Denied {
                        principal: caller.principal().principal().cedar_uid(),
                        action: Action::TOOL_INVOKE,
                        resource: tool_name(component).unwrap_or_default().to_string(),
                        reason: format!("authorization failed: {e}"),
                    })
                })
            }
        };
        verdict?;
        let start = tokio::time::Instant::now();
        let entry = Entry::nested(component, tokio::time::Instant::from_std(call.deadline), call.chain.clone());
        let capped = entry.deadline < start + component.timeout();
        let budget = entry.deadline.saturating_duration_since(start);
        match self.run_tool(call.caller.principal().key(), component, &call.input, entry).await {
            // Stopped at a deadline that was the caller's, not its own.
            Err(CallError::Timeout { tool, limit_ms }) if capped => Err(CallError::CallerDeadline {
                tool,
                caller: call.chain.last().map(|c| c.to_string()).unwrap_or_default(),
                budget_ms: u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
                own_ms: limit_ms,
            }),
            result => result,
        }
    }

    /// An authorized call: check the input against the tool's schema, wait
    /// for a slot, instantiate, invoke, check the output.
    async fn run_tool(
        &self,
        caller: &Arc<str>,
        component: &LoadedComponent,
        input: &str,
        entry: Entry,
    ) -> Result<serde_json::Value, CallError> {
        let Some(ToolPrepared { export: pre, descriptor, warm, .. }) = component.roles.tool.as_ref() else {
            return Err(CallError::UnknownTool { name: component.id().into(), available: String::new() });
        };
        let tool = descriptor.name.as_str();
        let value: serde_json::Value =
            serde_json::from_str(input).map_err(|e| CallError::InvalidInput(e.to_string()))?;
        let violations = component.schema_violations(&value);
        if !violations.is_empty() {
            return Err(CallError::SchemaViolation { tool: tool.into(), violations });
        }

        // Counted on this version from here: a call waiting for a slot is in
        // flight too (the drain must wait for it).
        let _running = component.enter();
        let concurrency = component.concurrency();
        let _slot = entry
            .wait(component.slots.acquire())
            .await
            .ok_or_else(|| {
                CallError::busy(tool, format!("all {concurrency} of its slots stayed taken until the deadline"))
            })?
            .map_err(|_| CallError::ShuttingDown)?;
        let trap = |e: wasmtime::Error| classify(tool, component, e);
        if let Some(warm) = warm {
            return self.run_pooled(warm, caller, component, pre, input, &entry).await;
        }
        let _instance = entry.wait(self.pool.for_call()).await.flatten().ok_or_else(|| pool_busy(self, tool))?;
        let mut store = entry.store(self, component);
        let run = async { pre.invoke(&mut store, input).await.map_err(trap) };
        let output = entry.run(run).await.ok_or_else(|| timeout(tool, component))??;
        tool_output(tool, output)
    }

    /// One call on a kept instance (`[pooled]`): an idle one this caller
    /// may use, or a new one; given back unless the call faulted.
    async fn run_pooled(
        &self,
        warm: &WarmPool<ToolInstance>,
        caller: &Arc<str>,
        component: &LoadedComponent,
        pre: &ToolExport,
        input: &str,
        entry: &Entry,
    ) -> Result<serde_json::Value, CallError> {
        let tool = component.tool().map_or("", |d| d.name.as_str());
        let trap = |e: wasmtime::Error| classify(tool, component, e);
        let mut instance = match warm.take(caller) {
            Some(instance) => instance,
            None => {
                let slot = entry.wait(self.pool.for_call()).await.flatten().ok_or_else(|| pool_busy(self, tool))?;
                let mut store = entry.store(self, component);
                let made = entry.run(pre.instantiate(&mut store)).await.ok_or_else(|| timeout(tool, component))?;
                Warm::new(store, made.map_err(trap)?, slot)
            }
        };
        let state = instance.store.data_mut();
        state.deadline = entry.deadline.into_std();
        state.capabilities.enter(&entry.chain);
        let Warm { store, instance: tool_instance, .. } = &mut instance;
        let run = async { tool_instance.invoke(store, input).await.map_err(trap) };
        // A fault (a trap, the deadline, the memory cap, invalid output)
        // drops the instance here; anything else gives it back.
        let output = entry.run(run).await.ok_or_else(|| timeout(tool, component))??;
        let result = tool_output(tool, output);
        if !matches!(&result, Err(e) if e.is_fault()) {
            warm.give_back(instance, caller);
        }
        result
    }
}

/// A tool's answer: its JSON output, or its error.
fn tool_output(tool: &str, output: Result<String, ToolError>) -> Result<serde_json::Value, CallError> {
    match output {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| CallError::InvalidOutput { tool: tool.into(), message: e.to_string() }),
        Err(e) => Err(CallError::Tool { tool: tool.into(), code: e.code, message: e.message }),
    }
}

/// The name of `component`'s tool.
fn tool_name(component: &LoadedComponent) -> Result<&str, CallError> {
    component
        .tool()
        .map(|d| d.name.as_str())
        .ok_or_else(|| CallError::UnknownTool { name: component.id().into(), available: String::new() })
}

/// An instance of a tool, at the `arw:host` version it was built against.
pub(crate) enum ToolInstance {
    Current(bindings::Tool),
    V0_1(v0_1::tool::Tool),
}

impl ToolInstance {
    async fn invoke(
        &self,
        store: &mut Store<InstanceState>,
        input: &str,
    ) -> wasmtime::Result<Result<String, ToolError>> {
        match self {
            ToolInstance::Current(tool) => tool.arw_host_tool_handler().call_invoke(store, input).await,
            ToolInstance::V0_1(tool) => {
                let output = tool.arw_host_tool_handler().call_invoke(store, input).await?;
                Ok(output.map_err(|e| ToolError { code: e.code, message: e.message }))
            }
        }
    }
}

/// A linked tool, at the `arw:host` version it was built against.
pub(crate) enum ToolExport {
    Current(ToolPre<InstanceState>),
    V0_1(v0_1::tool::ToolPre<InstanceState>),
}

impl ToolExport {
    /// The tool export of `pre`, whose component exports `exports`.
    pub(crate) fn new(pre: InstancePre<InstanceState>, exports: &[String]) -> wasmtime::Result<Self> {
        if exports.iter().any(|e| e == EXPORT) {
            Ok(ToolExport::Current(ToolPre::new(pre)?))
        } else {
            Ok(ToolExport::V0_1(v0_1::tool::ToolPre::new(pre)?))
        }
    }

    /// Instantiate in `store` (an instance to keep, for the pooled lifecycle).
    pub(crate) async fn instantiate(&self, store: &mut Store<InstanceState>) -> wasmtime::Result<ToolInstance> {
        Ok(match self {
            ToolExport::Current(pre) => ToolInstance::Current(pre.instantiate_async(store).await?),
            ToolExport::V0_1(pre) => ToolInstance::V0_1(pre.instantiate_async(store).await?),
        })
    }

    /// Instantiate in `store` and call `describe`.
    pub(crate) async fn describe(&self, store: &mut Store<InstanceState>) -> wasmtime::Result<Descriptor> {
        match self {
            ToolExport::Current(pre) => {
                pre.instantiate_async(&mut *store).await?.arw_host_tool_handler().call_describe(store).await
            }
            ToolExport::V0_1(pre) => {
                let d = pre.instantiate_async(&mut *store).await?.arw_host_tool_handler().call_describe(store).await?;
                Ok(Descriptor {
                    name: d.name,
                    version: d.version,
                    summary: d.summary,
                    input_schema: d.input_schema,
                    output_schema: d.output_schema,
                })
            }
        }
    }

    /// Instantiate in `store` and call `invoke`.
    pub(crate) async fn invoke(
        &self,
        store: &mut Store<InstanceState>,
        input: &str,
    ) -> wasmtime::Result<Result<String, ToolError>> {
        self.instantiate(&mut *store).await?.invoke(store, input).await
    }
}
