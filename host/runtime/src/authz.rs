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
        let refusal = match self.evaluate(who, requested, action, resource, tool_component) {
            Ok(()) => return Ok(()),
            Err(reason) => reason,
        };
        let denied = Denied {
            principal: who.principal().cedar_uid(),
            action,
            resource: resource.to_string(),
            reason: refusal,
        };
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
        self.evaluate(who, requested, action, resource, None).is_ok()
    }

    fn evaluate(
        &self,
        who: &PrincipalHandle,
        requested: Option<&[CapabilityRequest]>,
        action: Action,
        resource: &str,
        tool_component: Option<&str>,
    ) -> Result<(), String> {
        if let Some(requested) = requested {
            if !requested.iter().any(|r| r.covers(action, resource)) {
                return Err("not requested in its manifest".into());
            }
        }
        let decision = match tool_component {
            Some(component) => self.authorizer.decide_tool(who, resource, component),
            None => self.authorizer.decide(who, action, resource),
        };
        if decision.allowed() { Ok(()) } else { Err(decision.reason().to_string()) }
    }
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

    /// Authorize one capability call (see [`Gate::authorize`]).
    pub fn check(&self, action: Action, resource: &str) -> Result<(), Denied> {
        self.gate.authorize(&self.principal, Some(&self.requested), action, resource, None)
    }

    /// Would `check` allow it? Silent: no audit event.
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
