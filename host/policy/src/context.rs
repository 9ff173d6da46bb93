//! The `context` record of every Cedar request (`Arw::RequestContext` in
//! the schema) and what the policy set reads of it.
//!
//! Two kinds of input go into it:
//! - fixed for the life of the host: the node's id, role and tags (from
//!   `[node]` in the configuration);
//! - different per request: the time (`now`, from the [`Clock`]), the HTTP
//!   route's gating key, the client's address and the chain of components
//!   the request came through.
//!
//! Only the attributes some policy reads are built (a `datetime` costs
//! Cedar microseconds to construct); an attribute no policy reads cannot
//! change a decision.
//!
//! The decision cache is correct with context by construction: a decision
//! is cached only for an action whose policies read none of the
//! per-request inputs ([`ContextReads`]); for the others every request is
//! evaluated. The fixed inputs never change while an [`crate::Authorizer`]
//! lives, so they cannot make a cached decision stale.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use cedar_policy::{Context, RestrictedExpression};

/// Where `context.now` comes from. Injected in tests to cross a
/// time-window boundary on demand.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// This host as policies see it: `context.node_id`, `context.node_role`,
/// `context.node_tags`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub role: String,
    pub tags: Vec<String>,
}

/// What one request adds to the context. Everything is optional: a
/// capability call inside a component has no HTTP route and no client.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestContext<'a> {
    /// The gating key of the HTTP route the request came in on
    /// (`tools:invoke`), `context.gating_key`.
    pub gating_key: Option<&'a str>,
    /// The client's IP address, `context.client_address` (an `ipaddr`).
    pub client_address: Option<IpAddr>,
    /// The components the request came through before its principal,
    /// outermost first: `context.chain` (a set) and `context.depth`.
    pub chain: &'a [Arc<str>],
    /// For `feedback.apply`: what the apply rests on, `context.apply`.
    pub apply: Option<&'a ApplyContext>,
}

/// What a `feedback.apply` request brings to Cedar (`context.apply`):
/// policies can require a confidence, a mode, a source, budget left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyContext {
    /// The suggestion's confidence in percent (0-100; Cedar has no
    /// floats), `context.apply.confidence`.
    pub confidence: i64,
    /// The knob's mode: `shadow`, `manual`, `canary`, `auto`.
    pub mode: String,
    /// Who applies: `operator` (a person, over HTTP or the CLI), `engine`
    /// (the host on the engine's suggestion, in `canary` or `auto`),
    /// `rollback`, `canary-revert`.
    pub source: String,
    /// Applies left in the host's apply budget, this one not counted.
    pub budget_left: i64,
}

/// Every attribute of `Arw::RequestContext`, in bit order.
pub(crate) const ATTRIBUTES: [&str; 9] =
    ["now", "gating_key", "client_address", "chain", "depth", "node_id", "node_role", "node_tags", "apply"];

/// The bits of the attributes that differ per request (the first five and
/// `apply`).
const PER_REQUEST_BITS: u16 = 0b1_0001_1111;

fn bit(attribute: &str) -> u16 {
    ATTRIBUTES.iter().position(|a| *a == attribute).map_or(0, |i| 1 << i)
}

/// Which context attributes the policies that can apply to each action
/// read: the host builds only those (building a `datetime` costs Cedar
/// microseconds), and caches only decisions that read none of the
/// per-request ones.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContextReads {
    /// Bits of [`ATTRIBUTES`], per action id.
    by_action: HashMap<String, u16>,
    /// Some policy could not be looked into: assume every action reads
    /// everything.
    everything: bool,
}

impl ContextReads {
    /// Does any policy that can apply to `action` read a per-request input?
    pub(crate) fn per_request(&self, action: &str) -> bool {
        self.read(action) & PER_REQUEST_BITS != 0
    }

    /// The attributes to build for `action`, as bits of [`ATTRIBUTES`].
    pub(crate) fn read(&self, action: &str) -> u16 {
        if self.everything { u16::MAX } else { self.by_action.get(action).copied().unwrap_or(0) }
    }

    /// The per-request attributes read for `action` (for diagnostics).
    pub(crate) fn attributes(&self, action: &str) -> Vec<&'static str> {
        let read = self.read(action) & PER_REQUEST_BITS;
        ATTRIBUTES.iter().enumerate().filter(|(i, _)| read & (1 << i) != 0).map(|(_, a)| *a).collect()
    }

    /// What the policies in `set` read, per action of `all_actions`;
    /// `members(group)` lists the actions in an action group.
    pub(crate) fn of(
        set: &cedar_policy::PolicySet,
        all_actions: &[String],
        members: impl Fn(&str) -> Vec<String>,
    ) -> Self {
        let mut by_action: HashMap<String, u16> = HashMap::new();
        let mut everything = false;
        for policy in set.policies() {
            let Ok(json) = policy.to_json() else {
                // Cannot look inside: assume the worst.
                everything = true;
                continue;
            };
            let mut attrs = Vec::new();
            let mut opaque = false;
            if let Some(conditions) = json.get("conditions") {
                visit(conditions, &mut attrs, &mut opaque);
            }
            if opaque {
                everything = true;
                continue;
            }
            let bits = attrs.iter().fold(0u16, |bits, a| bits | bit(a));
            if bits == 0 {
                continue;
            }
            let Some(actions) = scoped_actions(json.get("action"), all_actions, &members) else {
                everything = true;
                continue;
            };
            for action in actions {
                *by_action.entry(action).or_default() |= bits;
            }
        }
        ContextReads { by_action, everything }
    }
}

/// Collect `context.<attr>` and `context has <attr>` in a policy's JSON
/// form; any other use of `context` (as a whole) makes it `opaque`.
fn visit(value: &serde_json::Value, attrs: &mut Vec<String>, opaque: &mut bool) {
    match value {
        serde_json::Value::Object(map) => {
            for key in [".", "has"] {
                if let Some(access) = map.get(key)
                    && access.get("left").is_some_and(is_context_var)
                {
                    if let Some(attr) = access.get("attr").and_then(serde_json::Value::as_str) {
                        attrs.push(attr.to_string());
                    } else {
                        *opaque = true;
                    }
                    return;
                }
            }
            if is_context_var(value) {
                *opaque = true;
                return;
            }
            map.values().for_each(|v| visit(v, attrs, opaque));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| visit(v, attrs, opaque)),
        _ => {}
    }
}

fn is_context_var(value: &serde_json::Value) -> bool {
    value.get("Var").and_then(serde_json::Value::as_str) == Some("context")
}

/// The action ids a policy's action scope covers; `None` when the scope
/// is not understood.
fn scoped_actions(
    scope: Option<&serde_json::Value>,
    all_actions: &[String],
    members: &impl Fn(&str) -> Vec<String>,
) -> Option<Vec<String>> {
    let scope = scope?;
    let id = |e: &serde_json::Value| e.get("id").and_then(serde_json::Value::as_str).map(str::to_string);
    let with_members = |ids: Vec<String>| -> Vec<String> {
        let mut out = ids.clone();
        for id in &ids {
            out.extend(members(id));
        }
        out
    };
    match scope.get("op").and_then(serde_json::Value::as_str)? {
        "All" => Some(all_actions.to_vec()),
        "==" => Some(vec![id(scope.get("entity")?)?]),
        "in" => match (scope.get("entity"), scope.get("entities")) {
            (Some(entity), _) => Some(with_members(vec![id(entity)?])),
            (None, Some(serde_json::Value::Array(entities))) => {
                Some(with_members(entities.iter().map(id).collect::<Option<Vec<_>>>()?))
            }
            _ => None,
        },
        _ => None,
    }
}

/// The fixed part of every request's context, built once per authorizer.
#[derive(Debug, Clone)]
pub(crate) struct FixedContext {
    node_id: RestrictedExpression,
    node_role: RestrictedExpression,
    node_tags: RestrictedExpression,
}

impl FixedContext {
    pub(crate) fn new(node: &Node) -> Self {
        FixedContext {
            node_id: RestrictedExpression::new_string(node.id.clone()),
            node_role: RestrictedExpression::new_string(node.role.clone()),
            node_tags: RestrictedExpression::new_set(node.tags.iter().cloned().map(RestrictedExpression::new_string)),
        }
    }

    /// The context of one request at `now`, with the attributes in `read`
    /// (bits of [`ATTRIBUTES`]; what no policy reads is left out, which
    /// no policy can tell).
    pub(crate) fn with(&self, request: &RequestContext<'_>, now: SystemTime, read: u16) -> Result<Context, String> {
        if read == 0 {
            return Ok(Context::empty());
        }
        let wanted = |name: &str| read & bit(name) != 0;
        let mut pairs = Vec::with_capacity(8);
        if wanted("now") {
            let now = chrono::DateTime::<chrono::Utc>::from(now).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            pairs.push(("now".to_string(), RestrictedExpression::new_datetime(now)));
        }
        if wanted("node_id") {
            pairs.push(("node_id".to_string(), self.node_id.clone()));
        }
        if wanted("node_role") {
            pairs.push(("node_role".to_string(), self.node_role.clone()));
        }
        if wanted("node_tags") {
            pairs.push(("node_tags".to_string(), self.node_tags.clone()));
        }
        if wanted("chain") {
            let chain = request.chain.iter().map(|c| RestrictedExpression::new_string(c.to_string()));
            pairs.push(("chain".to_string(), RestrictedExpression::new_set(chain)));
        }
        if wanted("depth") {
            let depth = i64::try_from(request.chain.len()).unwrap_or(i64::MAX);
            pairs.push(("depth".to_string(), RestrictedExpression::new_long(depth)));
        }
        if let Some(key) = request.gating_key.filter(|_| wanted("gating_key")) {
            pairs.push(("gating_key".to_string(), RestrictedExpression::new_string(key.to_string())));
        }
        if let Some(address) = request.client_address.filter(|_| wanted("client_address")) {
            pairs.push(("client_address".to_string(), RestrictedExpression::new_ip(address.to_string())));
        }
        if let Some(apply) = request.apply.filter(|_| wanted("apply")) {
            let record = RestrictedExpression::new_record([
                ("confidence".to_string(), RestrictedExpression::new_long(apply.confidence)),
                ("mode".to_string(), RestrictedExpression::new_string(apply.mode.clone())),
                ("source".to_string(), RestrictedExpression::new_string(apply.source.clone())),
                ("budget_left".to_string(), RestrictedExpression::new_long(apply.budget_left)),
            ])
            .map_err(|e| format!("cannot build context.apply: {e}"))?;
            pairs.push(("apply".to_string(), record));
        }
        Context::from_pairs(pairs).map_err(|e| format!("cannot build the request context: {e}"))
    }
}
