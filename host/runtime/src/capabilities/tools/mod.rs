//! Calls from one component to another's tool (`arw:host/tools`).
//!
//! The guest's call becomes an entry into the callee like any tool call,
//! with three differences: the principal is the calling component (its
//! manifest must request `tool.invoke` on the tool, and Cedar sees the
//! chain of callers in `context.chain`), the callee's deadline is capped by
//! what remains of the caller's, and a chain longer than `tools.max-depth`
//! is refused before anything runs. The host side of the call (finding the
//! tool, authorizing, running it, counting it for probation) is the
//! host's [`Router`], set once the host is built; this unit only turns the
//! guest's call into a [`NestedCall`] and the answer back.

use arw_policy::Action;

use crate::capabilities::unit::Request;

mod host;

pub use host::ToolsInstance;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::authz::Grants;
use crate::error::CallError;
use crate::runtime::entry::Chain;

/// A request's resource is a tool name pattern.
fn check_tool_pattern(_: &crate::manifest::Manifest, resource: &str) -> Result<(), String> {
    if !resource.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'*') {
        return Err(format!(
            "`tool.invoke` resource `{resource}` must be a tool name pattern of a-z, 0-9, `-` and `*` (e.g. \"text-stats\")"
        ));
    }
    Ok(())
}

/// This capability, described (see [`crate::capabilities::unit`]).
pub const UNIT: crate::capabilities::Unit = crate::capabilities::Unit {
    name: "tools",
    wit: &["arw:host/tools"],
    // `tool.invoke` belongs to the core (callers use it too); a manifest
    // asks this unit for it.
    actions: &[],
    requests: &[Request { action: Action::TOOL_INVOKE, check: check_tool_pattern }],
    schema: include_str!("schema.cedarschema"),
    config_section: Some("tools"),
    link,
};

/// This folder as a capability unit (see [`crate::capabilities::Capability`]).
#[derive(Debug)]
pub struct ToolsCapability;

impl crate::capabilities::Capability for ToolsCapability {
    const UNIT: crate::capabilities::Unit = UNIT;
    type Config = ToolsConfig;
    type State = std::sync::Arc<Directory>;
    type Instance = ToolsInstance;

    fn start(
        config: &ToolsConfig,
        env: &crate::capabilities::StartEnv<'_>,
    ) -> Result<std::sync::Arc<Directory>, crate::HostError> {
        let _ = env;
        Ok(std::sync::Arc::new(Directory::new(*config)))
    }

    fn instance(
        state: &std::sync::Arc<Directory>,
        component: &crate::capabilities::ComponentCapabilities,
        chain: &crate::runtime::entry::Chain,
    ) -> ToolsInstance {
        ToolsInstance::new(state.clone(), component, chain.clone())
    }

    /// The chain gates and Cedar see is this entry's, also in a kept instance.
    fn enter(instance: &mut ToolsInstance, chain: &crate::runtime::entry::Chain) {
        instance.set_chain(chain.clone());
    }
}

/// `arw:host/tools` (0.2.0), on the whole instance state: a call needs
/// the entry's deadline.
fn link(linker: &mut wasmtime::component::Linker<crate::runtime::store::InstanceState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    type State = crate::runtime::store::InstanceState;
    crate::bindings::imports::arw::host::tools::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut State| s)
}

/// The host event published for every call between components.
pub const TOOL_CALLED_TOPIC: &str = "component.tool_called";

/// `[tools]`: calls between components.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ToolsConfig {
    /// How many components a chain of calls may pass through before the
    /// one it calls (A → B → C is 2 before C). A call past it is refused
    /// with `too-deep`, so a cycle ends there.
    pub max_depth: usize,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        ToolsConfig { max_depth: 4 }
    }
}

/// One component's call of another's tool, as the host gets it.
#[derive(Debug)]
pub(crate) struct NestedCall {
    /// The calling component's standing (principal and requests).
    pub caller: Arc<Grants>,
    /// The components the call comes through, the caller last.
    pub chain: Chain,
    /// The caller's deadline: the callee's may not be later.
    pub deadline: std::time::Instant,
    pub tool: String,
    pub input: String,
}

/// The future of a nested call.
pub(crate) type Answer = Pin<Box<dyn Future<Output = Result<serde_json::Value, CallError>> + Send>>;

/// What runs a nested call: the host (`host::calls`).
pub(crate) trait Router: Send + Sync + std::fmt::Debug {
    fn call(&self, call: NestedCall) -> Answer;
}

/// The host-wide state: the router, once the host has built one, the
/// bound on chains, and what calls between components came to.
#[derive(Debug, Default)]
pub struct Directory {
    router: OnceLock<Arc<dyn Router>>,
    config: ToolsConfig,
    ok: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
}

/// Calls between components so far, by outcome (`arw status`, metrics).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct ComponentCalls {
    /// The callee returned an output.
    pub ok: u64,
    /// The callee ran and failed (its own error, a trap, its deadline, ...).
    pub failed: u64,
    /// The call never ran: refused (manifest, Cedar, depth), unknown tool,
    /// invalid input.
    pub refused: u64,
}

impl Directory {
    pub fn new(config: ToolsConfig) -> Self {
        Directory { config, ..Directory::default() }
    }

    /// Set the router (once; later calls are ignored).
    pub(crate) fn route_with(&self, router: Arc<dyn Router>) {
        let _ = self.router.set(router);
    }

    fn router(&self) -> Option<&Arc<dyn Router>> {
        self.router.get()
    }

    pub fn calls(&self) -> ComponentCalls {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ComponentCalls { ok: n(&self.ok), failed: n(&self.failed), refused: n(&self.refused) }
    }

    /// Count a call's outcome, and publish it (with its chain) as
    /// [`TOOL_CALLED_TOPIC`].
    pub(crate) fn record(
        &self,
        bus: &crate::capabilities::bus::Bus,
        call: &NestedCall,
        callee: &str,
        result: &Result<serde_json::Value, CallError>,
    ) {
        let (counter, outcome) = match result {
            Ok(_) => (&self.ok, "ok".into()),
            Err(e) if e.ran() => (&self.failed, e.code()),
            Err(e) => (&self.refused, e.code()),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let chain: Vec<&str> = call.chain.iter().map(|c| &**c).collect();
        let caller = chain.last().copied().unwrap_or_default();
        tracing::debug!(caller, tool = %call.tool, callee, chain = ?chain, %outcome, "tool called by a component");
        let payload = serde_json::json!({
            "caller": caller,
            "tool": call.tool,
            "component": callee,
            "chain": chain,
            "outcome": outcome,
        });
        if let Err(e) =
            bus.publish_host(TOOL_CALLED_TOPIC, crate::capabilities::bus::Payload::Json(payload.to_string()))
        {
            tracing::warn!("the host event `{TOOL_CALLED_TOPIC}` could not be published: {e}");
        }
    }
}
