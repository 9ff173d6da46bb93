//! `kv-counter`: increments a named counter kept in the `kv-counter` kv
//! namespace, so it survives host restarts.
//!
//! Input `{"name": "..."}`, output `{"value": n}` (the value after the
//! increment).

#[cfg(not(feature = "arw-host-0-1"))]
wit_bindgen::generate!({ path: "../../wit", world: "arw:host/tool" });
// The same component against the frozen `arw:host@0.1.0`: the host's
// tests run it to show 0.1.0 components keep working (host/artifacts).
#[cfg(feature = "arw-host-0-1")]
wit_bindgen::generate!({ path: "../../wit/compat/arw-host-0.1.0", world: "arw:host/tool@0.1.0" });

use arw::host::kv;
use arw::host::types::CapabilityError;
use exports::arw::host::tool_handler::{Descriptor, Guest, ToolError};
use serde::Deserialize;

const NAMESPACE: &str = "kv-counter";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    name: String,
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

struct KvCounter;

impl Guest for KvCounter {
    fn describe() -> Descriptor {
        Descriptor {
            name: "kv-counter".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Increment a named counter that survives restarts".into(),
            input_schema: r#"{"type":"object","properties":{"name":{"type":"string","minLength":1,"maxLength":256}},"required":["name"],"additionalProperties":false}"#.into(),
            output_schema: r#"{"type":"object","properties":{"value":{"type":"integer","minimum":1}},"required":["value"]}"#.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Input = serde_json::from_str(&input).map_err(|e| ToolError {
            code: "invalid-input".into(),
            message: format!("expected {{\"name\": string}}: {e}"),
        })?;
        if input.name.is_empty() {
            return Err(ToolError { code: "invalid-input".into(), message: "`name` must not be empty".into() });
        }
        let current = match kv::get(NAMESPACE, &input.name).map_err(capability_error)? {
            Some(bytes) => {
                let text = String::from_utf8(bytes).unwrap_or_default();
                text.parse::<u64>().unwrap_or(0)
            }
            None => 0,
        };
        let next = current.saturating_add(1);
        kv::set(NAMESPACE, &input.name, next.to_string().as_bytes()).map_err(capability_error)?;
        Ok(serde_json::json!({ "value": next }).to_string())
    }
}

export!(KvCounter);
