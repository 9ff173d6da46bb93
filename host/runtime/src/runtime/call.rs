//! Running one tool call or one event delivery on a fresh instance, each
//! one [`Entry`] under the component's deadline.

use arw_policy::{Action, PrincipalHandle, Resource};

use super::Runtime;
use super::component::LoadedComponent;
use super::entry::Entry;
use super::store::{DeadlineExceeded, MemoryCapExceeded, Retired};
use crate::bindings::tool::arw::host::bus as wit_bus;
use crate::capabilities::bus::{Event, Payload};
use crate::error::CallError;

impl Runtime {
    /// Call the tool of `component` with `input` on behalf of `caller`:
    /// authorize, wait for a slot, instantiate, invoke, check the output.
    pub async fn invoke(
        &self,
        caller: &PrincipalHandle,
        component: &LoadedComponent,
        input: &str,
        context: &arw_policy::RequestContext<'_>,
    ) -> Result<serde_json::Value, CallError> {
        let Some((pre, descriptor)) = component.tool.as_ref() else {
            return Err(CallError::UnknownTool { name: component.id().into(), available: String::new() });
        };
        let tool = descriptor.name.as_str();
        self.chokepoint.authorize_in(
            caller,
            None,
            Action::ToolInvoke,
            Resource::tool(tool, component.id()),
            context,
        )?;
        let value: serde_json::Value =
            serde_json::from_str(input).map_err(|e| CallError::InvalidInput(e.to_string()))?;
        let violations = component.schema_violations(&value);
        if !violations.is_empty() {
            return Err(CallError::SchemaViolation { tool: tool.into(), violations });
        }

        let entry = Entry::start(component);
        // Counted on this version from here: a call waiting for a slot is in
        // flight too (the drain must wait for it).
        let _running = component.enter();
        let concurrency = component.manifest.limits.concurrency;
        let _slot = entry
            .wait(component.slots.acquire())
            .await
            .ok_or_else(|| {
                CallError::busy(tool, format!("all {concurrency} of its slots stayed taken until the deadline"))
            })?
            .map_err(|_| CallError::ShuttingDown)?;
        let _instance = entry.wait(self.pool.for_call()).await.flatten().ok_or_else(|| pool_busy(self, tool))?;

        let mut store = entry.store(self, component);
        let trap = |e: wasmtime::Error| classify(tool, component, e);
        let run = async {
            let instance = pre.instantiate_async(&mut store).await.map_err(trap)?;
            instance.arw_host_tool_handler().call_invoke(&mut store, input).await.map_err(trap)
        };
        let output = entry.run(run).await.ok_or_else(|| timeout(tool, component))??;
        match output {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| CallError::InvalidOutput { tool: tool.into(), message: e.to_string() }),
            Err(e) => Err(CallError::Tool { tool: tool.into(), code: e.code, message: e.message }),
        }
    }

    /// Deliver one bus event to a subscriber component, under the same
    /// deadline and pool budget as a tool call.
    pub async fn deliver(&self, component: &LoadedComponent, event: &Event) -> Result<(), CallError> {
        let Some(pre) = component.subscriber.as_ref() else {
            return Ok(());
        };
        let name = component.id();
        let entry = Entry::start(component);
        let _running = component.enter();
        let _instance = entry.wait(self.pool.for_call()).await.flatten().ok_or_else(|| pool_busy(self, name))?;
        let mut store = entry.store(self, component);
        let trap = |e: wasmtime::Error| classify(name, component, e);
        let event = wit_bus::Event {
            id: event.id,
            topic: event.topic.clone(),
            payload: match &event.payload {
                Payload::Json(text) => wit_bus::Payload::Json(text.clone()),
                Payload::Bytes(bytes) => wit_bus::Payload::Bytes(bytes.clone()),
            },
            source: event.source.to_string(),
            time_ms: event.time_ms,
        };
        let run = async {
            let instance = pre.instantiate_async(&mut store).await.map_err(trap)?;
            instance.arw_host_event_handler().call_handle(&mut store, &event).await.map_err(trap)
        };
        entry.run(run).await.ok_or_else(|| timeout(name, component))??.map_err(|message| CallError::Tool {
            tool: name.into(),
            code: "handler-error".into(),
            message,
        })
    }
}

fn timeout(tool: &str, component: &LoadedComponent) -> CallError {
    CallError::Timeout { tool: tool.into(), limit_ms: component.manifest.limits.timeout_ms }
}

fn pool_busy(runtime: &Runtime, tool: &str) -> CallError {
    CallError::busy(
        tool,
        format!(
            "the host's instance pool ({} slots for calls, engine.max-instances) stayed full until the deadline",
            runtime.pool.calls_budget()
        ),
    )
}

/// Turn a wasmtime error into the call error that explains it.
pub(crate) fn classify(tool: &str, component: &LoadedComponent, error: wasmtime::Error) -> CallError {
    if error.downcast_ref::<DeadlineExceeded>().is_some()
        || error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt)
    {
        return timeout(tool, component);
    }
    if error.downcast_ref::<Retired>().is_some() {
        return CallError::Interrupted { tool: tool.into(), version: component.version() };
    }
    if error.downcast_ref::<MemoryCapExceeded>().is_some() {
        return CallError::MemoryLimit { tool: tool.into(), limit_mib: component.manifest.limits.memory_mib };
    }
    // The pooling allocator ran out of a resource (instances, memories,
    // tables, stacks): the host is full, the guest did nothing wrong.
    if error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
        return CallError::busy(tool, format!("the host's instance pool is exhausted: {error:#}"));
    }
    CallError::Trap { tool: tool.into(), message: format!("{error:#}") }
}
