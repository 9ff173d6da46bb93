//! `announce`: publishes its input on a bus topic.
//!
//! Input `{"topic": "demo.hello", "message": <any JSON>}`; the topic defaults
//! to the `topic` key of the component's config. Output `{"id": n}`, the
//! event id the bus assigned.

#[cfg(not(feature = "arw-host-0-1"))]
wit_bindgen::generate!({ path: "../../wit", world: "arw:host/tool" });
// The same component against the frozen `arw:host@0.1.0`: the host's
// tests run it to show 0.1.0 components keep working (host/artifacts).
#[cfg(feature = "arw-host-0-1")]
wit_bindgen::generate!({ path: "../../wit/compat/arw-host-0.1.0", world: "arw:host/tool@0.1.0" });

use arw::host::types::CapabilityError;
use arw::host::{bus, config};
use exports::arw::host::tool_handler::{Descriptor, Guest, ToolError};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    topic: Option<String>,
    message: serde_json::Value,
}

fn capability_error(e: CapabilityError) -> ToolError {
    let (code, message) = match e {
        CapabilityError::Denied(m) => ("denied", m),
        CapabilityError::Invalid(m) => ("invalid-input", m),
        CapabilityError::TooLarge(m) => ("too-large", m),
        CapabilityError::Unavailable(m) => ("unavailable", m),
    };
    ToolError { code: code.into(), message }
}

struct Announce;

impl Guest for Announce {
    fn describe() -> Descriptor {
        Descriptor {
            name: "announce".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Publish a JSON message on a bus topic".into(),
            input_schema: r#"{"type":"object","properties":{"topic":{"type":"string"},"message":{}},"required":["message"],"additionalProperties":false}"#.into(),
            output_schema: r#"{"type":"object","properties":{"id":{"type":"integer","minimum":0}},"required":["id"]}"#.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Input = serde_json::from_str(&input).map_err(|e| ToolError {
            code: "invalid-input".into(),
            message: format!("expected {{\"topic\"?: string, \"message\": any}}: {e}"),
        })?;
        let topic = match input.topic {
            Some(topic) => topic,
            None => config::get("topic").map_err(capability_error)?.ok_or_else(|| ToolError {
                code: "invalid-input".into(),
                message: "no `topic` in the input and none configured".into(),
            })?,
        };
        let id = bus::publish(&topic, &bus::Payload::Json(input.message.to_string())).map_err(capability_error)?;
        Ok(serde_json::json!({ "id": id }).to_string())
    }
}

export!(Announce);
