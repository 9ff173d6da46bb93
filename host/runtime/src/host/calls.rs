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
use crate::gating::{GateCaller, GateDenied, GatePass, GateRequest, GateTarget, keys};
use crate::runtime::Runtime;

/// Someone calling tools, prepared for repeated authorization: its Cedar
/// principal, and what gates see of it.
#[derive(Debug)]
pub struct Caller(pub(crate) PrincipalHandle, Arc<GateCaller>);

impl Caller {
    /// The caller as gates see it.
    pub fn gate_caller(&self) -> &Arc<GateCaller> {
        &self.1
    }
}

impl Host {
    /// Prepare a caller for tool calls (e.g. [`Principal::local_operator`]).
    pub fn caller(&self, principal: Principal) -> Caller {
        self.caller_tagged(principal, Vec::new())
    }

    /// [`Host::caller`] with the tags gates see (`[[http.tokens]] tags`).
    pub fn caller_tagged(&self, principal: Principal, tags: Vec<String>) -> Caller {
        let gate = Arc::new(GateCaller::of(&principal, tags));
        Caller(self.runtime.chokepoint.authorizer().principal(principal), gate)
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

    /// Put a task on `queue` for `caller` ([`crate::queues`]): Cedar
    /// `queue.enqueue` on the queue and `tool.invoke` on the task's tool
    /// (asked again when a worker runs it), then signed and stored by the
    /// backend. `context` is what the request brings to Cedar.
    pub async fn enqueue(
        &self,
        caller: &Caller,
        queue: &str,
        task: crate::queues::NewTask,
        context: &RequestContext<'_>,
    ) -> Result<crate::queues::Enqueued, crate::queues::QueueError> {
        let queues = &self.runtime.capabilities.queues;
        queues.check(queue, &task)?;
        let chokepoint = &self.runtime.chokepoint;
        chokepoint.authorize_in(
            &caller.0,
            None,
            crate::capabilities::queue::ENQUEUE,
            Resource::named(queue),
            context,
        )?;
        let provider = self.tool_owner(&task.tool).unwrap_or_default();
        chokepoint.authorize_in(
            &caller.0,
            None,
            Action::TOOL_INVOKE,
            Resource::tool(&task.tool, &provider),
            context,
        )?;
        let who = crate::queues::TicketCaller::of(caller.0.principal(), &caller.1.tags);
        queues.push(queue, who, task).await
    }

    /// May `caller` read `queue`'s counts and dead tasks (`queue.read`)?
    fn may_read_queue(&self, caller: &Caller, queue: &str) -> Result<(), crate::queues::QueueError> {
        crate::queues::check_name(queue).map_err(crate::queues::QueueError::Invalid)?;
        let read = crate::capabilities::queue::READ;
        let context = RequestContext::default();
        Ok(self.runtime.chokepoint.authorize_in(&caller.0, None, read, Resource::named(queue), &context)?)
    }

    /// `queue`'s tasks by state, as its backend counts them.
    pub async fn queue_stats(
        &self,
        caller: &Caller,
        queue: &str,
    ) -> Result<crate::queues::QueueStats, crate::queues::QueueError> {
        self.may_read_queue(caller, queue)?;
        self.runtime.capabilities.queues.stats(queue).await
    }

    /// `queue`'s dead-letter queue, newest first, at most `limit`.
    pub async fn queue_dead(
        &self,
        caller: &Caller,
        queue: &str,
        limit: u32,
    ) -> Result<Vec<crate::queues::DeadTask>, crate::queues::QueueError> {
        self.may_read_queue(caller, queue)?;
        self.runtime.capabilities.queues.dead(queue, limit).await
    }

    /// This host's node key (public, hex): what its tasks are signed with,
    /// for the other hosts' `cluster.trusted-nodes`.
    pub fn node_key(&self) -> &str {
        self.runtime.capabilities.queues.signer()
    }

    /// What this host's queue service has done since it started.
    pub fn queue_counts(&self) -> crate::queues::QueueCounts {
        self.runtime.capabilities.queues.counts()
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
        self.call_gated(caller, tool, input, context, Gating::Ask).await
    }

    /// [`Host::call_in`] after the gates were asked for this call already
    /// (an HTTP route that asked for itself and the tool in one check,
    /// [`Host::gate_pass`]): the tool's ingress is not asked again if
    /// `pass` covers it for this caller and the tool's current provider;
    /// otherwise it is.
    pub async fn call_passed(
        &self,
        caller: &Caller,
        tool: &str,
        input: &str,
        context: &RequestContext<'_>,
        pass: GatePass,
    ) -> Result<serde_json::Value, CallError> {
        self.call_gated(caller, tool, input, context, Gating::Pass(pass)).await
    }

    /// The local operator's break-glass path: call `tool` without asking
    /// the gates (Cedar still decides). For the in-process CLI only
    /// (`arw call --break-glass`): refused for any other caller, and each
    /// use is logged and published as `gate.bypassed`.
    pub async fn call_break_glass(
        &self,
        caller: &Caller,
        tool: &str,
        input: &str,
    ) -> Result<serde_json::Value, CallError> {
        if caller.0.principal() != &Principal::local_operator() {
            return Err(CallError::from(GateDenied::Failed {
                gate: "break-glass".into(),
                key: keys::TOOL_INGRESS.key(tool),
                problem: "only the local operator (the in-process CLI) may bypass the gates".into(),
            }));
        }
        let gates: Vec<&str> = self.gates().order().collect();
        tracing::warn!(target: "arw::gate", tool, ?gates, "break-glass: the local operator calls a tool without asking the gates");
        self.gates().events.publish(
            crate::gating::events::GATE_BYPASSED,
            &serde_json::json!({"caller": caller.1.name, "key": keys::TOOL_INGRESS.key(tool), "gates": gates}),
        );
        self.call_gated(caller, tool, input, &RequestContext::default(), Gating::BreakGlass).await
    }

    async fn call_gated(
        &self,
        caller: &Caller,
        tool: &str,
        input: &str,
        context: &RequestContext<'_>,
        gating: Gating,
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
        let gates = self.gates();
        let key = keys::TOOL_INGRESS.key(tool);
        let ask = match &gating {
            Gating::Ask => true,
            Gating::Pass(pass) => !pass.covers(&key, &caller.1, &slot.id, input.len() as u64),
            Gating::BreakGlass => false,
        };
        if ask && gates.active() {
            let mut request = GateRequest::new(key, caller.1.clone());
            request.address = context.client_address;
            request.chain = context.chain.to_vec();
            request.target =
                GateTarget { tool: Some(tool.into()), component: Some(slot.id.clone()), ..Default::default() };
            request.size = input.len() as u64;
            gates.check(&request).await?;
        }
        let component = slot.active();
        let started = std::time::Instant::now();
        let result = self.runtime.invoke(&caller.0, &component, input, context).await;
        self.runtime.observe_tool(tool, started, &result);
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

impl Runtime {
    /// Record a tool call's latency and outcome for the feedback engine:
    /// a fault (trap, timeout, memory cap, bad output) apart from the
    /// caller's mistakes (bad input, a refusal, the tool's own error) and
    /// from saturation (no slot came free).
    pub(crate) fn observe_tool(
        &self,
        tool: &str,
        started: std::time::Instant,
        result: &Result<serde_json::Value, CallError>,
    ) {
        use crate::signals::{Outcome, Series};
        if !self.signals.config().enabled {
            return;
        }
        let outcome = match result {
            Ok(_) => Outcome::Ok,
            Err(e) if e.is_fault() => Outcome::Fault,
            Err(CallError::Busy { .. }) => Outcome::Busy,
            Err(CallError::ShuttingDown | CallError::Interrupted { .. }) => return,
            Err(_) => Outcome::ClientError,
        };
        self.signals.observe(Series::Tool(Arc::from(tool)), started.elapsed(), outcome);
    }
}

/// How a tool call meets the gates.
enum Gating {
    /// Asked for the tool's ingress.
    Ask,
    /// Asked already, unless the pass does not cover it.
    Pass(GatePass),
    /// The local operator's break-glass path: not asked.
    BreakGlass,
}

/// Runs the calls components make of each other's tools
/// (`arw:host/tools`): finds the tool, lets the runtime authorize and run
/// it, and counts the outcome towards the callee's probation.
#[derive(Debug)]
pub(crate) struct NestedRouter {
    /// All weak: the runtime owns the capabilities, which own this router,
    /// and a kept (pooled) instance holds its capabilities, in a component
    /// the routes hold: a strong reference back would keep a stopped host
    /// alive.
    runtime: Weak<Runtime>,
    routes: Weak<RouteTable>,
    rollback: Weak<Rollback>,
}

impl NestedRouter {
    pub(crate) fn new(runtime: &Arc<Runtime>, routes: &Arc<RouteTable>, rollback: &Arc<Rollback>) -> Self {
        NestedRouter {
            runtime: Arc::downgrade(runtime),
            routes: Arc::downgrade(routes),
            rollback: Arc::downgrade(rollback),
        }
    }
}

impl Router for NestedRouter {
    fn call(&self, call: NestedCall) -> Answer {
        let (runtime, routes, rollback) = (self.runtime.upgrade(), self.routes.upgrade(), self.rollback.upgrade());
        Box::pin(async move {
            let (Some(runtime), Some(routes), Some(rollback)) = (runtime, routes, rollback) else {
                return Err(CallError::ShuttingDown);
            };
            let gated = gate_nested(&runtime, &routes, &call).await;
            if let Err(denied) = gated {
                let result = Err(CallError::from(denied));
                runtime.capabilities.tools.record(&runtime.capabilities.bus, &call, "", &result);
                return result;
            }
            let slot = routes.load().tools.get(&call.tool).cloned();
            let Some(slot) = slot else {
                let error =
                    CallError::UnknownTool { name: call.tool.chars().take(64).collect(), available: String::new() };
                let result = Err(error);
                runtime.capabilities.tools.record(&runtime.capabilities.bus, &call, "", &result);
                return result;
            };
            let component = slot.active();
            let started = std::time::Instant::now();
            let result = runtime.invoke_nested(&call, &component).await;
            runtime.observe_tool(&call.tool, started, &result);
            rollback.observe(&slot, &component, matches!(&result, Err(e) if e.is_fault()));
            runtime.capabilities.tools.record(&runtime.capabilities.bus, &call, component.id(), &result);
            result
        })
    }
}

/// A component's call of another's tool, asked of the gates twice: as the
/// caller's egress (`io:egress:tools.<tool>`), then as the tool's ingress
/// (`io:ingress:tools.<tool>`), both with the calling component as caller.
async fn gate_nested(runtime: &Runtime, routes: &RouteTable, call: &NestedCall) -> Result<(), GateDenied> {
    let gates = runtime.chokepoint.gates();
    if !gates.active() {
        return Ok(());
    }
    let caller = call.caller.gate_caller();
    let provider = routes.load().tools.get(&call.tool).map(|slot| slot.id.clone());
    let mut request = GateRequest::new(keys::TOOL_EGRESS.key(&call.tool), caller.clone());
    request.chain = call.chain.to_vec();
    request.target =
        GateTarget { tool: Some(call.tool.clone()), component: Some(caller.name.clone()), ..Default::default() };
    request.size = call.input.len() as u64;
    gates.check(&request).await?;
    request.set_key(keys::TOOL_INGRESS.key(&call.tool));
    request.target.component = provider;
    gates.check(&request).await
}
