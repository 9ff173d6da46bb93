//! What every entry into a guest shares: how its failures are told
//! apart (a trap, the deadline, the memory cap, a replaced version, a full
//! pool), whatever role the entry is for.

use super::Runtime;
use super::component::LoadedComponent;
use super::store::{DeadlineExceeded, MemoryCapExceeded, Retired};
use crate::error::CallError;

pub(crate) fn timeout(tool: &str, component: &LoadedComponent) -> CallError {
    CallError::Timeout { tool: tool.into(), limit_ms: component.manifest.limits.timeout_ms }
}

pub(crate) fn pool_busy(runtime: &Runtime, tool: &str) -> CallError {
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
