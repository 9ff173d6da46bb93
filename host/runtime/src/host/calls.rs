//! The data plane: calling tools and asking Cedar on behalf of callers.
//!
//! Nothing here takes a lock: a call loads the routing table (an
//! `ArcSwap`), then its component's active version (another), and keeps
//! that version to the end. Only a new version's probation takes the
//! slot's lock, to count its outcome.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use arw_policy::{Action, Principal, PrincipalHandle, RequestContext, Resource};

use super::control::Rollback;
use super::{Host, RouteTable};
use crate::authz::Denied;
use crate::capabilities::tools::{Answer, NestedCall, Router};
use crate::error::CallError;
use crate::runtime::Runtime;

/// Someone calling tools, prepared for repeated authorization.
#[derive(Debug)]
pub struct Caller(pub(crate) PrincipalHandle);

impl Host {
    /// Prepare a caller for tool calls (e.g. [`Principal::local_operator`]).
    pub fn caller(&self, principal: Principal) -> Caller {
        Caller(self.runtime.chokepoint.authorizer().principal(principal))
    }

    /// May `caller` do `action` on `resource`? A refusal is audited (an
    /// `audit.denied` event), like every other refusal.
    /// `context` is what the request brings to Cedar (its route's gating
    /// key, the client's address).
    pub fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        resource: &str,
        context: &RequestContext<'_>,
    ) -> Result<(), Denied> {
        self.runtime.chokepoint.authorize_in(&caller.0, None, action, Resource::named(resource), context)
    }

    /// The same question without the audit event, for filters where "no"
    /// is routine (which events an event-stream client sees).
    pub fn permits(&self, caller: &Caller, action: Action, resource: &str, context: &RequestContext<'_>) -> bool {
        self.runtime.chokepoint.allows(&caller.0, None, action, resource, context)
    }

    /// The component that provides tool `tool`, if any.
    pub fn tool_owner(&self, tool: &str) -> Option<String> {
        self.routes.load().tools.get(tool).map(|slot| slot.id.clone())
    }

    /// Call tool `tool` with JSON `input`. Runs on a fresh instance of the
    /// active version, under its deadline, memory cap and concurrency limit.
    pub async fn call(&self, caller: &Caller, tool: &str, input: &str) -> Result<serde_json::Value, CallError> {
        self.call_in(caller, tool, input, &RequestContext::default()).await
    }

    /// [`Host::call`] with what the request brings to Cedar's `context`
    /// for `tool.invoke` (the HTTP route's gating key, the client).
    pub async fn call_in(
        &self,
        caller: &Caller,
        tool: &str,
        input: &str,
        context: &RequestContext<'_>,
    ) -> Result<serde_json::Value, CallError> {
        // Counted first, then the flag checked (both SeqCst): either this
        // call sees the host stopping, or `stop` sees it in flight and
        // waits for it. Never a call that starts after `stop` counted zero.
        let _guard = self.in_flight.enter();
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(CallError::ShuttingDown);
        }
        let routes = self.routes.load();
        let Some(slot) = routes.tools.get(tool).cloned() else {
            return Err(CallError::UnknownTool {
                name: tool.chars().take(64).collect(),
                available: routes.tools.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        };
        drop(routes);
        let component = slot.active();
        let result = self.runtime.invoke(&caller.0, &component, input, context).await;
        let swap = &self.runtime.config.swap;
        if swap.auto_rollback {
            let fault = matches!(&result, Err(e) if e.is_fault());
            if slot.observe(&component, fault, swap.probation_calls, swap.rollback_after_faults) {
                self.auto_rollback(&slot, &component).await;
            }
        }
        result
    }
}

/// Runs the calls components make of each other's tools
/// (`arw:host/tools`): finds the tool, lets the runtime authorize and run
/// it, and counts the outcome towards the callee's probation.
#[derive(Debug)]
pub(crate) struct NestedRouter {
    /// Weak: the runtime owns the capabilities, which own this router.
    runtime: Weak<Runtime>,
    routes: Arc<RouteTable>,
    rollback: Rollback,
}

impl NestedRouter {
    pub(crate) fn new(runtime: &Arc<Runtime>, routes: &Arc<RouteTable>, rollback: &Rollback) -> Self {
        NestedRouter { runtime: Arc::downgrade(runtime), routes: routes.clone(), rollback: rollback.clone() }
    }
}

impl Router for NestedRouter {
    fn call(&self, call: NestedCall) -> Answer {
        let runtime = self.runtime.upgrade();
        let routes = self.routes.clone();
        let rollback = self.rollback.clone();
        Box::pin(async move {
            let runtime = runtime.ok_or(CallError::ShuttingDown)?;
            let slot = routes.load().tools.get(&call.tool).cloned();
            let Some(slot) = slot else {
                let error =
                    CallError::UnknownTool { name: call.tool.chars().take(64).collect(), available: String::new() };
                let result = Err(error);
                runtime.capabilities.tools.record(&runtime.capabilities.bus, &call, "", &result);
                return result;
            };
            let component = slot.active();
            let result = runtime.invoke_nested(&call, &component).await;
            rollback.observe(&slot, &component, matches!(&result, Err(e) if e.is_fault()));
            runtime.capabilities.tools.record(&runtime.capabilities.bus, &call, component.id(), &result);
            result
        })
    }
}
