//! The authorization chokepoint.
//!
//! Every capability call a component makes and every tool invocation goes
//! through [`Chokepoint::authorize`]. It asks, in order:
//!
//! 0. is the resource name within [`MAX_RESOURCE_BYTES`]? (so no guest can
//!    make a denial carry megabytes into logs and events);
//! 1. did the component *request* this in its manifest? (callers of tools
//!    have no manifest and skip this);
//! 2. does Cedar *permit* it for this principal?
//!
//! A refusal is a [`Denied`] value (turned into the WIT error `denied` for
//! guests), never a trap, and is reported by the [`audit`] unit: a warn log
//! line and an `audit.denied` event, repeated refusals coalesced.
//!
//! Cedar must not evaluate on a guest's fiber stack (its stack-depth guard
//! cannot see the fiber's bounds and reports "recursion limit reached"), so
//! capability calls use [`Grants::check`], which answers cached decisions
//! inline and evaluates misses on a blocking thread.

pub mod audit;

use std::sync::Arc;

use arw_policy::{Action, Authorizer, PrincipalHandle, RequestContext, Resource};

pub use audit::{AUDIT_DENIED_TOPIC, Audit, AuditStats};

use crate::capabilities::bus::Bus;
use crate::manifest::CapabilityRequest;

/// The longest resource name the chokepoint considers, in bytes. Longer
/// names are refused before the manifest check. Every capability's own
/// names are shorter (topics 255, kv namespaces 128, `host:port` ~260).
pub const MAX_RESOURCE_BYTES: usize = 512;

/// How much of a resource name appears in a log line, an audit event or a
/// [`Denied`] message.
pub const SHOWN_RESOURCE_CHARS: usize = 128;

/// A refused call: who, what, on which resource, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{principal}` may not `{action}` on `{resource}`: {reason}")]
pub struct Denied {
    pub principal: String,
    pub action: Action,
    /// The resource name, truncated to [`SHOWN_RESOURCE_CHARS`].
    pub resource: String,
    pub reason: String,
}

/// `text` cut to at most `max` characters, marked when cut.
pub fn shown(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => format!("{}… ({} bytes)", text.get(..end).unwrap_or_default(), text.len()),
    }
}

/// Where authorization happens; shared by the whole host.
#[derive(Debug)]
pub struct Chokepoint {
    authorizer: Arc<Authorizer>,
    audit: Audit,
    /// The gates asked before Cedar at every entry point.
    gates: Arc<crate::gating::Gates>,
}

impl Chokepoint {
    /// The chokepoint of a host whose audit events go on `bus`. It holds
    /// the bus weakly: components hold the chokepoint, the bus holds
    /// subscribers' filters, and a strong reference back would keep a
    /// dropped host alive.
    pub fn new(authorizer: Arc<Authorizer>, bus: &Arc<Bus>, gates: Arc<crate::gating::Gates>) -> Self {
        Chokepoint { authorizer, audit: Audit::new(Arc::downgrade(bus)), gates }
    }

    pub fn gates(&self) -> &Arc<crate::gating::Gates> {
        &self.gates
    }

    pub fn authorizer(&self) -> &Arc<Authorizer> {
        &self.authorizer
    }

    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// The chokepoint. `requested` is the principal's manifest requests
    /// (`None` for callers, who have no manifest).
    pub fn authorize(
        &self,
        who: &PrincipalHandle,
        requested: Option<&[CapabilityRequest]>,
        action: Action,
        resource: Resource<'_>,
    ) -> Result<(), Denied> {
        self.authorize_in(who, requested, action, resource, &RequestContext::default())
    }

    /// [`Chokepoint::authorize`] with what the request brings to Cedar's
    /// `context` (its HTTP route's gating key, the client, the chain).
    pub fn authorize_in(
        &self,
        who: &PrincipalHandle,
        requested: Option<&[CapabilityRequest]>,
        action: Action,
        resource: Resource<'_>,
        context: &RequestContext<'_>,
    ) -> Result<(), Denied> {
        let verdict = self.verdict(who, requested, action, resource, Evaluate::Always(context));
        self.conclude(who, action, resource.name, verdict.unwrap_or_else(|| Err("not evaluated".into())))
    }

    /// [`Chokepoint::authorize`] if the answer needs no Cedar evaluation
    /// (the manifest refuses it, or the decision is cached); `None`
    /// otherwise.
    fn authorize_without_evaluating(
        &self,
        who: &PrincipalHandle,
        requested: Option<&[CapabilityRequest]>,
        action: Action,
        resource: &str,
    ) -> Option<Result<(), Denied>> {
        let verdict = self.verdict(who, requested, action, Resource::named(resource), Evaluate::CachedOnly)?;
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
        let reason = match verdict {
            Ok(()) => return Ok(()),
            Err(reason) => reason,
        };
        let denied = Denied {
            principal: who.principal().cedar_uid(),
            action,
            resource: shown(resource, SHOWN_RESOURCE_CHARS),
            reason,
        };
        self.audit.denied(&denied);
        Err(denied)
    }

    /// [`Chokepoint::authorize_in`] if the answer needs no Cedar
    /// evaluation (the manifest refuses it, or the decision is cached, which
    /// it never is for an action whose policies read per-request context);
    /// `None` otherwise. For callers on a guest's stack, where Cedar must
    /// not run.
    pub(crate) fn authorize_cached(
        &self,
        who: &PrincipalHandle,
        requested: Option<&[CapabilityRequest]>,
        action: Action,
        resource: Resource<'_>,
    ) -> Option<Result<(), Denied>> {
        let verdict = self.verdict(who, requested, action, resource, Evaluate::CachedOnly)?;
        Some(self.conclude(who, action, resource.name, verdict))
    }

    /// The same question without the audit event: used to filter which bus
    /// events a subscriber hears, where "no" is routine rather than a refusal.
    pub fn allows(
        &self,
        who: &PrincipalHandle,
        requested: Option<&[CapabilityRequest]>,
        action: Action,
        resource: &str,
        context: &RequestContext<'_>,
    ) -> bool {
        matches!(
            self.verdict(who, requested, action, Resource::named(resource), Evaluate::Always(context)),
            Some(Ok(()))
        )
    }

    /// The verdict: `Err(reason)` for a refusal. `None` only with
    /// [`Evaluate::CachedOnly`] when Cedar would have to evaluate.
    fn verdict(
        &self,
        who: &PrincipalHandle,
        requested: Option<&[CapabilityRequest]>,
        action: Action,
        resource: Resource<'_>,
        mode: Evaluate<'_>,
    ) -> Option<Result<(), String>> {
        if resource.name.len() > MAX_RESOURCE_BYTES {
            return Some(Err(format!(
                "the resource name is {} bytes, over the host's limit of {MAX_RESOURCE_BYTES}",
                resource.name.len()
            )));
        }
        if let Some(requested) = requested
            && !requested.iter().any(|r| r.covers(action, resource.name))
        {
            return Some(Err("not requested in its manifest".into()));
        }
        let decision = match mode {
            Evaluate::CachedOnly => self.authorizer.cached(who, action, resource)?,
            Evaluate::Always(context) => self.authorizer.decide_in(who, action, resource, context),
        };
        Some(if decision.allowed() { Ok(()) } else { Err(decision.reason().to_string()) })
    }
}

#[derive(Debug, Clone, Copy)]
enum Evaluate<'a> {
    Always(&'a RequestContext<'a>),
    CachedOnly,
}

/// A component's standing with the chokepoint: its principal and its
/// requests. Capabilities hold one and call [`Grants::check`] on every call.
#[derive(Debug)]
pub struct Grants {
    principal: PrincipalHandle,
    requested: Vec<CapabilityRequest>,
    chokepoint: Arc<Chokepoint>,
    /// The component as gates see it.
    gate_caller: Arc<crate::gating::GateCaller>,
}

impl Grants {
    pub fn new(principal: PrincipalHandle, requested: Vec<CapabilityRequest>, chokepoint: Arc<Chokepoint>) -> Self {
        let gate_caller = Arc::new(crate::gating::GateCaller::of(principal.principal(), Vec::new()));
        Grants { principal, requested, chokepoint, gate_caller }
    }

    /// Ask the gates about an effect of this component's (an egress): key
    /// `family` + `name`, with `target` (its `component` is filled in) and
    /// `size`, the components the entry came through in `chain`.
    pub async fn gate(
        &self,
        family: &crate::gating::keys::KeyFamily,
        name: &str,
        mut target: crate::gating::GateTarget,
        size: usize,
        chain: &[Arc<str>],
    ) -> Result<(), crate::gating::GateDenied> {
        let gates = self.chokepoint.gates();
        if !gates.active() {
            return Ok(());
        }
        let mut request = crate::gating::GateRequest::new(family.key(name), self.gate_caller.clone());
        target.component = Some(self.gate_caller.name.clone());
        request.target = target;
        request.size = size as u64;
        request.chain = chain.to_vec();
        gates.check(&request).await
    }

    /// The component as gates see it.
    pub fn gate_caller(&self) -> &Arc<crate::gating::GateCaller> {
        &self.gate_caller
    }

    /// Authorize one capability call (see [`Chokepoint::authorize`]). Safe
    /// to call from host functions running on a guest's stack: a cached
    /// decision is answered inline, a miss is evaluated on a blocking thread.
    pub async fn check(self: &Arc<Self>, action: Action, resource: &str) -> Result<(), Denied> {
        if let Some(result) =
            self.chokepoint.authorize_without_evaluating(&self.principal, Some(&self.requested), action, resource)
        {
            return result;
        }
        let grants = self.clone();
        let owned = resource.to_string();
        tokio::task::spawn_blocking(move || grants.check_now(action, &owned)).await.unwrap_or_else(|e| {
            Err(Denied {
                principal: self.principal.principal().cedar_uid(),
                action,
                resource: shown(resource, SHOWN_RESOURCE_CHARS),
                reason: format!("authorization failed: {e}"),
            })
        })
    }

    /// [`Grants::check`] evaluated on the current thread. Never call it
    /// from a host function running on a guest's stack (see the module docs).
    pub fn check_now(&self, action: Action, resource: &str) -> Result<(), Denied> {
        self.chokepoint.authorize(&self.principal, Some(&self.requested), action, Resource::named(resource))
    }

    /// Does the manifest request cover this? (No Cedar: cheap enough for
    /// the bus's publish path.)
    pub fn requests(&self, action: Action, resource: &str) -> bool {
        self.requested.iter().any(|r| r.covers(action, resource))
    }

    /// Would `check` allow it? Silent: no audit event. Evaluates inline:
    /// never call it from a host function (see the module docs).
    pub fn allows(&self, action: Action, resource: &str) -> bool {
        self.chokepoint.allows(&self.principal, Some(&self.requested), action, resource, &RequestContext::default())
    }

    pub fn principal(&self) -> &PrincipalHandle {
        &self.principal
    }

    pub fn requested(&self) -> &[CapabilityRequest] {
        &self.requested
    }

    pub fn chokepoint(&self) -> &Arc<Chokepoint> {
        &self.chokepoint
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shown_cuts_long_names_and_says_how_long_they_were() {
        assert_eq!(super::shown("short", 10), "short");
        let long = "é".repeat(300);
        let cut = super::shown(&long, 4);
        assert!(cut.starts_with("éééé…"), "{cut}");
        assert!(cut.ends_with("(600 bytes)"), "{cut}");
    }
}
