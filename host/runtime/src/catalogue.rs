//! Every event the host itself publishes on the bus, with its payload's
//! JSON Schema: the source of the AsyncAPI document (`/spec/asyncapi.yaml`)
//! and of docs/observability.md. Components publish their own topics too;
//! those are described by the components, not here.

use serde_json::{Value, json};

use crate::authz::AUDIT_DENIED_TOPIC;
use crate::feedback as fb;
use crate::gating::events as gating;
use crate::queues;
use crate::supervisor::events;

/// One kind of host event.
#[derive(Debug, Clone)]
pub struct EventKind {
    pub topic: &'static str,
    pub summary: &'static str,
    /// JSON Schema of the payload.
    pub payload: Value,
}

/// A queue task's event: `extra` are its own properties.
fn task(topic: &'static str, summary: &'static str, extra: Value) -> EventKind {
    let mut properties = json!({
        "queue": {"type": "string"},
        "id": {"type": "string", "description": "The backend's id of the task."},
        "attempt": {"type": "integer", "minimum": 1, "description": "Which run (1 for the first)."},
        "leased-ms": {"type": "integer", "description": "When the backend leased it for this run (its clock, Unix ms)."},
        "tool": {"type": "string"},
        "caller": {"type": "string", "description": "Who the task runs as: a caller's name or a component id."},
        "at-ms": {"type": "integer"},
    });
    if let (Some(map), Value::Object(extra)) = (properties.as_object_mut(), extra) {
        map.extend(extra);
    }
    EventKind {
        topic,
        summary,
        payload: json!({"type": "object", "required": ["queue", "id", "attempt"], "properties": properties}),
    }
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
        EventKind {
            topic: gating::GATE_DENIED,
            summary: "A gate refused a request (or could not decide, code `gate-failed`). Refusals of one gate, \
                      contract and caller within 1 s after the first are reported together, in one event with \
                      their `count`.",
            payload: json!({
                "type": "object",
                "required": ["gate", "key", "caller", "contract", "code", "reason", "count"],
                "properties": {
                    "gate": {"type": "string", "description": "The gate's component id."},
                    "key": {"type": "string", "description": "The gating key (docs/gating-keys.md)."},
                    "caller": {"type": "string"},
                    "contract": {"type": "string", "description": "The contract that decided; empty for `gate-failed`."},
                    "code": {"type": "string"},
                    "reason": {"type": "string"},
                    "retry-after-ms": {"type": ["integer", "null"], "minimum": 0},
                    "count": {"type": "integer", "minimum": 1},
                },
            }),
        },
        EventKind {
            topic: gating::GATING_RELOADED,
            summary: "A gate accepted a new configuration (its file changed) and it is in force.",
            payload: json!({
                "type": "object",
                "required": ["gate", "file"],
                "properties": {
                    "gate": {"type": "string"},
                    "file": {"type": ["string", "null"]},
                },
            }),
        },
        EventKind {
            topic: gating::GATING_RELOAD_FAILED,
            summary: "A gate refused its configuration file; the previous configuration stays in force (at start, \
                      when there is none, the gate denies everything until the file is fixed).",
            payload: json!({
                "type": "object",
                "required": ["gate", "file", "line", "message", "kept"],
                "properties": {
                    "gate": {"type": "string"},
                    "file": {"type": ["string", "null"]},
                    "line": {"type": ["integer", "null"], "minimum": 1, "description": "1-based line of the error."},
                    "message": {"type": "string"},
                    "kept": {"type": "string", "description": "What is in force instead."},
                },
            }),
        },
        EventKind {
            topic: gating::GATE_BYPASSED,
            summary: "The local operator called a tool on the break-glass path, without asking the gates.",
            payload: json!({
                "type": "object",
                "required": ["caller", "key", "gates"],
                "properties": {
                    "caller": {"type": "string"},
                    "key": {"type": "string"},
                    "gates": {"type": "array", "items": {"type": "string"}},
                },
            }),
        },
        EventKind {
            topic: fb::FEEDBACK_SUGGESTED,
            summary: "The feedback engine made a new suggestion (or changed one's value), with its rationale, \
                      confidence and evidence; `mode` is its knob's (in `shadow` it is only logged as what would \
                      be applied).",
            payload: json!({
                "type": "object",
                "required": ["id", "knob", "value", "rationale", "confidence", "evidence", "engine", "mode", "version"],
                "properties": {
                    "id": {"type": "string"},
                    "knob": {"type": "string"},
                    "value": {"type": "integer"},
                    "rationale": {"type": "string"},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "evidence": {"type": "array", "items": {"type": "object"}},
                    "engine": {"type": "string", "description": "`id@version` of the engine."},
                    "mode": {"type": "string"},
                    "version": {"type": "integer"},
                },
            }),
        },
        EventKind {
            topic: fb::FEEDBACK_APPLIED,
            summary: "A suggestion was applied: its undo record (knob, before, after, version, who, source).",
            payload: json!({
                "type": "object",
                "required": ["apply-id", "knob", "before", "after", "version", "at-ms", "who", "source"],
                "properties": {
                    "apply-id": {"type": "integer"},
                    "knob": {"type": "string"},
                    "before": {"type": ["integer", "null"], "description": "null: the knob's default."},
                    "after": {"type": ["integer", "null"]},
                    "suggestion": {"type": ["string", "null"]},
                    "version": {"type": "integer"},
                    "at-ms": {"type": "integer"},
                    "who": {"type": "string"},
                    "source": {"type": "string", "description": "`operator` or `engine`."},
                },
            }),
        },
        EventKind {
            topic: fb::FEEDBACK_REJECTED,
            summary: "An apply or a rollback was refused; `reason` is `cooldown`, `budget`, `cedar`, `bounds`, \
                      `mode` or `unknown`. An engine's apply refused for the same reason is reported once.",
            payload: json!({
                "type": "object",
                "required": ["action", "reason", "message", "who"],
                "properties": {
                    "action": {"type": "string", "description": "`apply` or `rollback`."},
                    "suggestion": {"type": "string"},
                    "reason": {"type": "string"},
                    "message": {"type": "string"},
                    "who": {"type": "string"},
                },
            }),
        },
        EventKind {
            topic: fb::FEEDBACK_ROLLED_BACK,
            summary: "An apply was undone: by a rollback, or by the host when a canary regressed (`source` \
                      `canary-revert`, with the `reason`).",
            payload: json!({
                "type": "object",
                "required": ["apply-id", "source"],
                "properties": {
                    "apply-id": {"type": "integer"},
                    "knob": {"type": "string"},
                    "restored": {"type": ["integer", "null"]},
                    "source": {"type": "string"},
                    "reason": {"type": "string"},
                },
            }),
        },
        EventKind {
            topic: fb::FEEDBACK_DELTA,
            summary: "The suggestions changed: the new version, what was added or changed, what was removed.",
            payload: json!({
                "type": "object",
                "required": ["version", "upserted", "removed", "knobs"],
                "properties": {
                    "version": {"type": "integer"},
                    "upserted": {"type": "array", "items": {"type": "object"}},
                    "removed": {"type": "array", "items": {"type": "string"}},
                    "knobs": {"type": "array", "items": {"type": "array"}},
                },
            }),
        },
        task(queues::TASK_DONE, "A queued task ran and was acked.", json!({})),
        task(
            queues::TASK_RETRY,
            "A queued task failed and runs again, not before `retry-at-ms` (the backend's clock).",
            json!({
                "error": {"type": "string"},
                "retry-at-ms": {"type": "integer"},
                "delay-ms": {"type": "integer"},
            }),
        ),
        task(
            queues::TASK_DEAD,
            "A queued task went to the dead-letter queue: refused, its ticket did not open, or its last attempt failed.",
            json!({"error": {"type": "string"}}),
        ),
        task(
            queues::TASK_LATE,
            "A queued task's call finished after its lease expired: not acked, so it runs again (at least once).",
            json!({"error": {"type": "string"}}),
        ),
    ]
}
