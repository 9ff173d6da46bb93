//! The authorization chokepoint.
//!
//! Every capability call a component makes and every tool invocation goes
//! through [`Gate::authorize`]. It asks two questions, both of which must
//! be yes:
//!
//! 1. did the component *request* this in its manifest? (callers of tools
//!    have no manifest and skip this);
//! 2. does Cedar *permit* it for this principal?
//!
//! A refusal is a [`Denied`] value (turned into the WIT error `denied` for
//! guests), never a trap, and is published on the bus as an `audit.denied`
//! event.
//!
//! Cedar must not evaluate on a guest's fiber stack (its stack-depth guard
//! cannot see the fiber's bounds and reports "recursion limit reached"), so
//! capability calls use [`Grants::check`], which answers cached decisions
//! inline and evaluates misses on a blocking thread.

use std::sync::Arc;

use arw_policy::{Action, Authorizer, PrincipalHandle};

use crate::capabilities::bus::{Bus, Payload};
use crate::manifest::CapabilityRequest;

/// The bus topic of audit events for refused calls.
pub const AUDIT_DENIED_TOPIC: &str = "audit.denied";

/// A refused call: who, what, on which resource, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{principal}` may not `{action}` on `{resource}`: {reason}")]
pub struct Denied {
    pub principal: String,
    pub action: Action,
    pub resource: String,
    pub reason: String,
}

/// Where authorization happens; shared by the whole host.
#[derive(Debug)]
pub struct Gate {
    authorizer: Arc<Authorizer>,
    audit: Arc<Bus>,
}

impl Gate {
    pub fn new(authorizer: Arc<Authorizer>, audit: Arc<Bus>) -> Self {
        Gate { authorizer, audit }
    }

    pub fn authorizer(&self) -> &Arc<Authorizer> {
        &self.authorizer
    }

    /// The chokepoint. `requested` is the principal's manifest requests
    /// (`None` for callers, who have no manifest); `tool_component` is the
    /// component providing the tool for [`Action::ToolInvoke`].
    pub fn authorize(
        &self,
        who: &PrincipalHandle,
        requested: Option<&[CapabilityRequest]>,
        action: Action,
        resource: &str,
        tool_component: Option<&str>,
    ) -> Result<(), Denied> {
        let verdict = self.evaluate(who, requested, action, resource, tool_component, Evaluate::Always);
        self.conclude(who, action, resource, verdict.unwrap_or_else(|| Err("not evaluated".into())))
    }

    /// [`Gate::authorize`] if the answer needs no Cedar evaluation (the
    /// manifest refuses it, or the decision is cached); `None` otherwise.
    fn authorize_without_evaluating(
        &self,
        who: &PrincipalHandle,
        requested: Option<&[CapabilityRequest]>,
        action: Action,
        resource: &str,
    ) -> Option<Result<(), Denied>> {
        let verdict = self.evaluate(who, requested, action, resource, None, Evaluate::CachedOnly)?;
        Some(self.conclude(who, action, resource, verdict))
    }

    /// Turn a verdict into the result, auditing a refusal.
    fn conclude(
        &self,
        who: &PrincipalHandle,
        action: Action,
        resource: &str,
        verdict: Result<(), String>,
    ) -> Result<(), Denied> {
        let refusal = match verdict {
            Ok(()) => return Ok(()),
            Err(reason) => reason,
        };
        let denied =
            Denied { principal: who.principal().cedar_uid(), action, resource: resource.to_string(), reason: refusal };
        tracing::warn!(target: "arw::audit", principal = %denied.principal, action = %action, resource, reason = %denied.reason, "denied");
        let audit = serde_json::json!({
            "principal": denied.principal,
            "action": action.as_str(),
            "resource": resource,
            "reason": denied.reason,
        });
        // Audit events are the host's own; they bypass authorization.
        let _ = self.audit.publish("host", AUDIT_DENIED_TOPIC, Payload::Json(audit.to_string()));
        Err(denied)
    }

    /// The same question without the audit event: used to filter which bus
    /// events a subscriber hears, where "no" is routine rather than a refusal.
    pub fn allows(
        &self,
        who: &PrincipalHandle,
        requested: Option<&[CapabilityRequest]>,
        action: Action,
        resource: &str,
    ) -> bool {
        matches!(self.evaluate(who, requested, action, resource, None, Evaluate::Always), Some(Ok(())))
    }

    /// The verdict: `Err(reason)` for a refusal. `None` only with
    /// [`Evaluate::CachedOnly`] when Cedar would have to evaluate.
    fn evaluate(
        &self,
        who: &PrincipalHandle,
        requested: Option<&[CapabilityRequest]>,
        action: Action,
        resource: &str,
        tool_component: Option<&str>,
        mode: Evaluate,
    ) -> Option<Result<(), String>> {
        if let Some(requested) = requested
            && !requested.iter().any(|r| r.covers(action, resource))
        {
            return Some(Err("not requested in its manifest".into()));
        }
        let decision = match (mode, tool_component) {
            (Evaluate::CachedOnly, _) => self.authorizer.cached(who, action, resource)?,
            (Evaluate::Always, Some(component)) => self.authorizer.decide_tool(who, resource, component),
            (Evaluate::Always, None) => self.authorizer.decide(who, action, resource),
        };
        Some(if decision.allowed() { Ok(()) } else { Err(decision.reason().to_string()) })
    }
}

#[derive(Debug, Clone, Copy)]
enum Evaluate {
    Always,
    CachedOnly,
}

/// A component's standing with the gate: its principal and its requests.
/// Capabilities hold one and call [`Grants::check`] on every call.
#[derive(Debug)]
pub struct Grants {
    principal: PrincipalHandle,
    requested: Vec<CapabilityRequest>,
    gate: Arc<Gate>,
}

impl Grants {
    pub fn new(principal: PrincipalHandle, requested: Vec<CapabilityRequest>, gate: Arc<Gate>) -> Self {
        Grants { principal, requested, gate }
    }

    /// Authorize one capability call (see [`Gate::authorize`]). Safe to call
    /// from host functions running on a guest's stack: a cached decision is
    /// answered inline, a miss is evaluated on a blocking thread.
    pub async fn check(self: &Arc<Self>, action: Action, resource: &str) -> Result<(), Denied> {
        if let Some(result) =
            self.gate.authorize_without_evaluating(&self.principal, Some(&self.requested), action, resource)
        {
            return result;
        }
        let grants = self.clone();
        let owned = resource.to_string();
        tokio::task::spawn_blocking(move || {
            grants.gate.authorize(&grants.principal, Some(&grants.requested), action, &owned, None)
        })
        .await
        .unwrap_or_else(|e| {
            Err(Denied {
                principal: self.principal.principal().cedar_uid(),
                action,
                resource: resource.to_string(),
                reason: format!("authorization failed: {e}"),
            })
        })
    }

    /// Does the manifest request cover this? (No Cedar: cheap enough for
    /// the bus's publish path.)
    pub fn requests(&self, action: Action, resource: &str) -> bool {
        self.requested.iter().any(|r| r.covers(action, resource))
    }

    /// Would `check` allow it? Silent: no audit event. Evaluates inline:
    /// never call it from a host function (see the module docs).
    pub fn allows(&self, action: Action, resource: &str) -> bool {
        self.gate.allows(&self.principal, Some(&self.requested), action, resource)
    }

    pub fn principal(&self) -> &PrincipalHandle {
        &self.principal
    }

    pub fn requested(&self) -> &[CapabilityRequest] {
        &self.requested
    }

    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }
}
