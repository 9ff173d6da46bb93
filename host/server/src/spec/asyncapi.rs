//! The AsyncAPI 3.1 document for `GET /events`, generated from the host's
//! event catalogue ([`arw_host::catalogue`]) plus the server's own
//! `bus.gap`. Each SSE event's `data:` is an envelope (id, topic, source,
//! time) around the payload whose schema the catalogue gives.

use serde_json::{Value, json};

use crate::routes::events::GAP_TOPIC;

fn envelope(topic_schema: Value, payload: Value) -> Value {
    json!({
        "type": "object",
        "required": ["id", "topic", "source", "time_ms"],
        "properties": {
            "id": {"type": "integer", "minimum": 1, "description": "The bus id; also the SSE `id:` (send it back as Last-Event-ID)."},
            "topic": topic_schema,
            "source": {"type": "string", "description": "The publishing component's id, or `host`."},
            "time_ms": {"type": "integer", "description": "Milliseconds since the Unix epoch."},
            "payload": payload,
            "payload_hex": {"type": ["string", "null"], "description": "A binary payload, hex-encoded."},
        },
    })
}

/// The document as a JSON value.
pub fn document() -> Value {
    let mut messages = serde_json::Map::new();
    let mut add = |key: &str, title: &str, summary: &str, payload: Value| {
        messages.insert(
            key.to_string(),
            json!({ "name": key, "title": title, "summary": summary, "contentType": "application/json", "payload": payload }),
        );
    };
    for kind in arw_host::catalogue::host_events() {
        add(kind.topic, kind.topic, kind.summary, envelope(json!({"const": kind.topic}), kind.payload));
    }
    add(
        "component-event",
        "component event",
        "An event a component published (topics are the component's, e.g. `demo.hello`; Cedar decides who may \
         publish and who may watch each topic).",
        envelope(
            json!({"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*(\\.[a-z0-9][a-z0-9_-]*)*$"}),
            json!({"description": "The component's JSON payload."}),
        ),
    );
    add(
        GAP_TOPIC,
        GAP_TOPIC,
        "This client read too slowly and missed events (or asked to resume from an event no longer kept). \
         Not a bus event: it has no id.",
        json!({
            "type": "object",
            "required": ["skipped"],
            "properties": {"skipped": {"type": "integer", "minimum": 1, "description": "How many events were missed."}},
        }),
    );

    let channel_messages: serde_json::Map<String, Value> =
        messages.keys().map(|key| (key.clone(), json!({"$ref": format!("#/components/messages/{key}")}))).collect();
    let operation_messages: Vec<Value> =
        messages.keys().map(|key| json!({"$ref": format!("#/channels/events/messages/{key}")})).collect();

    json!({
        "asyncapi": "3.1.0",
        "info": {
            "title": "ARW host events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The host's event bus as Server-Sent Events at `GET /events`. Query `replay=N` starts with \
                            the last N kept events, `prefix=a.b` (repeatable) filters topics, the `Last-Event-ID` \
                            header resumes after an event. Each event's SSE `event:` is its topic and `data:` the JSON \
                            envelope below. See docs/observability.md.",
            "license": {"name": "Apache-2.0"},
        },
        "servers": {
            "local": {
                "host": "127.0.0.1:8091",
                "protocol": "http",
                "description": "`arw up` (the default address); authenticate with `Authorization: Bearer <token>`.",
            },
        },
        "defaultContentType": "application/json",
        "channels": {
            "events": {
                "address": "/events",
                "title": "Event stream",
                "description": "Server-Sent Events; an event is shown only if Cedar permits the caller `events.subscribe` on its topic.",
                "messages": channel_messages,
            },
        },
        "operations": {
            "receiveEvents": {
                "action": "receive",
                "channel": {"$ref": "#/channels/events"},
                "summary": "Watch the bus.",
                "messages": operation_messages,
            },
        },
        "components": {"messages": messages},
    })
}

/// The document as YAML, as served at `/spec/asyncapi.yaml`.
pub fn yaml() -> String {
    serde_yaml_ng::to_string(&document()).unwrap_or_default()
}
