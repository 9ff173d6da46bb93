//! `event-log`: a subscriber that records every bus event it receives into
//! its `event-log` kv namespace, and a tool that reads them back.
//!
//! Records are keyed by zero-padded publication time then event id, so that
//! `list-keys` returns them in order and records from earlier host runs
//! (whose ids started again from 1) are kept. Tool input `{"limit": n}` (default 100), output
//! `{"events": [{"id", "topic", "source", "payload"}...]}`.

#[cfg(not(feature = "arw-host-0-1"))]
wit_bindgen::generate!({
    inline: r#"
        package arw:event-log;
        world event-log {
            include arw:host/tool@0.2.0;
            include arw:host/subscriber@0.2.0;
        }
    "#,
    path: "../../wit",
    world: "arw:event-log/event-log",
    generate_all,
});
// The same component against the frozen `arw:host@0.1.0`: the host's
// tests run it to show 0.1.0 components keep working (host/artifacts).
#[cfg(feature = "arw-host-0-1")]
wit_bindgen::generate!({
    inline: r#"
        package arw:event-log;
        world event-log {
            include arw:host/tool@0.1.0;
            include arw:host/subscriber@0.1.0;
        }
    "#,
    path: "../../wit/compat/arw-host-0.1.0",
    world: "arw:event-log/event-log",
    generate_all,
});

use arw::host::bus::{Event, Payload};
use arw::host::kv;
use arw::host::types::CapabilityError;
use exports::arw::host::event_handler::Guest as EventHandler;
use exports::arw::host::tool_handler::{Descriptor, Guest as ToolHandler, ToolError};
use serde::Deserialize;

const NAMESPACE: &str = "event-log";
const MAX_LIMIT: u32 = 1000;

fn describe_error(e: CapabilityError) -> String {
    match e {
        CapabilityError::Denied(m) => format!("denied: {m}"),
        CapabilityError::Invalid(m) => format!("invalid: {m}"),
        CapabilityError::TooLarge(m) => format!("too large: {m}"),
        CapabilityError::Unavailable(m) => format!("unavailable: {m}"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    limit: Option<u32>,
}

struct EventLog;

impl EventHandler for EventLog {
    fn handle(event: Event) -> Result<(), String> {
        let payload = match event.payload {
            Payload::Json(text) => serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
            Payload::Bytes(bytes) => serde_json::json!({ "bytes": bytes.len() }),
        };
        let record = serde_json::json!({
            "id": event.id,
            "topic": event.topic,
            "source": event.source,
            "payload": payload,
        });
        let key = format!("{:013}-{:020}", event.time_ms, event.id);
        kv::set(NAMESPACE, &key, record.to_string().as_bytes()).map_err(describe_error)
    }
}

impl ToolHandler for EventLog {
    fn describe() -> Descriptor {
        Descriptor {
            name: "event-log".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Read back the bus events this subscriber has recorded".into(),
            input_schema: r#"{"type":"object","properties":{"limit":{"type":"integer","minimum":1,"maximum":1000}},"additionalProperties":false}"#.into(),
            output_schema: r#"{"type":"object","properties":{"events":{"type":"array","items":{"type":"object"}}},"required":["events"]}"#.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Input = serde_json::from_str(&input).map_err(|e| ToolError {
            code: "invalid-input".into(),
            message: format!("expected {{\"limit\"?: integer}}: {e}"),
        })?;
        let limit = input.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
        let unavailable = |e| ToolError { code: "unavailable".into(), message: describe_error(e) };
        let keys = kv::list_keys(NAMESPACE, "", limit).map_err(unavailable)?;
        let mut events = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(bytes) = kv::get(NAMESPACE, &key).map_err(unavailable)? {
                if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                    events.push(value);
                }
            }
        }
        Ok(serde_json::json!({ "events": events }).to_string())
    }
}

export!(EventLog);
