//! Every event the host itself publishes on the bus, with its payload's
//! JSON Schema: the source of the AsyncAPI document (`/spec/asyncapi.yaml`)
//! and of docs/observability.md. Components publish their own topics too;
//! those are described by the components, not here.

use serde_json::{Value, json};

use crate::authz::AUDIT_DENIED_TOPIC;
use crate::supervisor::events;

/// One kind of host event.
#[derive(Debug, Clone)]
pub struct EventKind {
    pub topic: &'static str,
    pub summary: &'static str,
    /// JSON Schema of the payload.
    pub payload: Value,
}

fn transition(summary: &'static str, topic: &'static str) -> EventKind {
    let optional_string = json!({"type": ["string", "null"]});
    EventKind {
        topic,
        summary,
        payload: json!({
            "type": "object",
            "required": ["component", "from", "to", "reason"],
            "properties": {
                "component": {"type": "string", "description": "The component id, `ns:name`."},
                "from": optional_string.clone(),
                "to": optional_string.clone(),
                "reason": optional_string,
            },
        }),
    }
}

/// The host's events, in a stable order.
pub fn host_events() -> Vec<EventKind> {
    vec![
        transition("A new version is being loaded, linked and health-checked.", events::ACTIVATING),
        transition("A version became active (`from` is the one it replaced).", events::ACTIVATED),
        transition(
            "A version was refused; `reason` names the stage. The previous one stays.",
            events::ACTIVATION_FAILED,
        ),
        transition("A new version kept faulting during probation and was replaced by `to`.", events::ROLLED_BACK),
        transition("A replaced version finished its calls (or was interrupted at the grace period).", events::DRAINED),
        transition("A component was uninstalled and is draining.", events::REMOVED),
        EventKind {
            topic: events::POLICY_RELOADED,
            summary: "A new Cedar policy set is in force.",
            payload: json!({
                "type": "object",
                "required": ["policies", "added", "removed", "changed"],
                "properties": {
                    "policies": {"type": "integer", "minimum": 0},
                    "added": {"type": "array", "items": {"type": "string"}},
                    "removed": {"type": "array", "items": {"type": "string"}},
                    "changed": {"type": "array", "items": {"type": "string"}},
                },
            }),
        },
        EventKind {
            topic: events::POLICY_RELOAD_FAILED,
            summary: "A policy reload was refused; the previous policies stay in force.",
            payload: json!({
                "type": "object",
                "required": ["errors", "message"],
                "properties": {
                    "message": {"type": "string"},
                    "errors": {"type": "array", "items": {
                        "type": "object",
                        "properties": {
                            "file": {"type": "string"},
                            "line": {"type": ["integer", "null"]},
                            "column": {"type": ["integer", "null"]},
                            "message": {"type": "string"},
                        },
                    }},
                },
            }),
        },
        EventKind {
            topic: crate::capabilities::tools::TOOL_CALLED_TOPIC,
            summary: "A component called another component's tool through `arw:host/tools` (refused calls too; a \
                      refusal by the manifest or Cedar is also an `audit.denied`).",
            payload: json!({
                "type": "object",
                "required": ["caller", "tool", "component", "chain", "outcome"],
                "properties": {
                    "caller": {"type": "string", "description": "The calling component's id."},
                    "tool": {"type": "string"},
                    "component": {"type": "string", "description": "The callee's id (empty for an unknown tool)."},
                    "chain": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "The components the call came through, outermost first, the caller last.",
                    },
                    "outcome": {"type": "string", "description": "`ok`, or the host's stable error code."},
                },
            }),
        },
        EventKind {
            topic: AUDIT_DENIED_TOPIC,
            summary: "Cedar (or the manifest, or a host limit) refused a capability call, a tool call or an admin \
                      action. Refusals of one principal and action within 1 s after the first are reported together, \
                      in one event with their `count`.",
            payload: json!({
                "type": "object",
                "required": ["principal", "action", "resource", "reason", "count"],
                "properties": {
                    "principal": {"type": "string", "description": "Cedar uid, e.g. `Arw::Component::\"arw:x\"`."},
                    "action": {"type": "string"},
                    "resource": {"type": "string", "description": "The resource name, cut to 128 characters."},
                    "reason": {"type": "string"},
                    "count": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "How many refusals this event reports (the last one's resource and reason).",
                    },
                },
            }),
        },
    ]
}
