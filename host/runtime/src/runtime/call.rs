//! Running one tool call or one event delivery on a fresh instance.

use arw_policy::PrincipalHandle;

use super::Runtime;
use super::component::LoadedComponent;
use super::store::{DeadlineExceeded, MemoryCapExceeded, Retired};
use crate::bindings::tool::arw::host::bus as wit_bus;
use crate::capabilities::bus::{Event, Payload};
use crate::error::CallError;

/// How long after its deadline a call that is waiting in the host (not
/// running guest code, where the epoch deadline applies) is abandoned.
const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_millis(50);

impl Runtime {
    /// Call the tool of `component` with `input` on behalf of `caller`:
    /// authorize, wait for a slot, instantiate, invoke, check the output.
    pub async fn invoke(
        &self,
        caller: &PrincipalHandle,
        component: &LoadedComponent,
        input: &str,
    ) -> Result<serde_json::Value, CallError> {
        let Some((pre, descriptor)) = component.tool.as_ref() else {
            return Err(CallError::UnknownTool { name: component.id().into(), available: String::new() });
        };
        let tool = descriptor.name.as_str();
        self.gate.authorize(caller, None, arw_policy::Action::ToolInvoke, tool, Some(component.id()))?;
        let value: serde_json::Value =
            serde_json::from_str(input).map_err(|e| CallError::InvalidInput(e.to_string()))?;
        let violations = component.schema_violations(&value);
        if !violations.is_empty() {
            return Err(CallError::SchemaViolation { tool: tool.into(), violations });
        }

        let timeout = component.timeout();
        // Counted on this version from here: a call waiting for a slot is in
        // flight too (the drain must wait for it).
        let _running = component.enter();
        let _slot = tokio::time::timeout(timeout, component.slots.acquire())
            .await
            .map_err(|_| CallError::Busy { tool: tool.into(), concurrency: component.manifest.limits.concurrency })?
            .map_err(|_| CallError::ShuttingDown)?;

        let mut store = component.store(self);
        let trap = |e: wasmtime::Error| classify(tool, component, e);
        let run = async {
            let instance = pre.instantiate_async(&mut store).await.map_err(trap)?;
            instance.arw_host_tool_handler().call_invoke(&mut store, input).await.map_err(trap)
        };
        // The epoch deadline stops guest code; this also stops a guest that
        // waits in the host past its deadline (on an HTTP response that
        // trickles in, say). Dropping the call drops its store.
        let output = tokio::time::timeout(timeout + DEADLINE_MARGIN, run)
            .await
            .map_err(|_| CallError::Timeout { tool: tool.into(), limit_ms: component.manifest.limits.timeout_ms })??;
        match output {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| CallError::InvalidOutput { tool: tool.into(), message: e.to_string() }),
            Err(e) => Err(CallError::Tool { tool: tool.into(), code: e.code, message: e.message }),
        }
    }

    /// Deliver one bus event to a subscriber component.
    pub async fn deliver(&self, component: &LoadedComponent, event: &Event) -> Result<(), CallError> {
        let Some(pre) = component.subscriber.as_ref() else {
            return Ok(());
        };
        let name = component.id();
        let _running = component.enter();
        let mut store = component.store(self);
        let trap = |e: wasmtime::Error| classify(name, component, e);
        let instance = pre.instantiate_async(&mut store).await.map_err(trap)?;
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
        instance
            .arw_host_event_handler()
            .call_handle(&mut store, &event)
            .await
            .map_err(trap)?
            .map_err(|message| CallError::Tool { tool: name.into(), code: "handler-error".into(), message })
    }
}

/// Turn a wasmtime error into the call error that explains it.
fn classify(tool: &str, component: &LoadedComponent, error: wasmtime::Error) -> CallError {
    if error.downcast_ref::<DeadlineExceeded>().is_some()
        || error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt)
    {
        return CallError::Timeout { tool: tool.into(), limit_ms: component.manifest.limits.timeout_ms };
    }
    if error.downcast_ref::<Retired>().is_some() {
        return CallError::Interrupted { tool: tool.into(), version: component.version() };
    }
    if error.downcast_ref::<MemoryCapExceeded>().is_some() {
        return CallError::MemoryLimit { tool: tool.into(), limit_mib: component.manifest.limits.memory_mib };
    }
    CallError::Trap { tool: tool.into(), message: format!("{error:#}") }
}
