//! Test guest: performs exactly the capability call its input names and
//! reports the outcome, so tests can check what is granted and what is
//! denied without a new guest per case.
//!
//! Input is one of:
//! `{"op": "kv.get", "namespace": "...", "key": "..."}`,
//! `{"op": "kv.set", "namespace": "...", "key": "...", "value": "..."}`,
//! `{"op": "kv.list", "namespace": "...", "prefix": "..."}`,
//! `{"op": "bus.publish", "topic": "...", "message": <json>}`,
//! `{"op": "config.get", "key": "..."}`, `{"op": "log", "message": "..."}`,
//! `{"op": "print", "message": "..."}` (writes to stdout and stderr),
//! `{"op": "echo", "value": <json>}` (no capability at all).
//! The tool is called `probe`, or the value of its `tool-name` config key.
//! `config.get` of a key whose value is `"trap"` traps.
//! Output `{"ok": <result>}`; a capability error becomes a tool error whose
//! code is the error's case (`denied`, `invalid`, `too-large`, `unavailable`).

wit_bindgen::generate!({ path: "../../../wit", world: "arw:host/tool" });

use arw::host::types::CapabilityError;
use arw::host::{bus, config, kv, log};
use exports::arw::host::tool_handler::{Descriptor, Guest, ToolError};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(tag = "op", deny_unknown_fields)]
enum Op {
    #[serde(rename = "kv.get")]
    KvGet { namespace: String, key: String },
    #[serde(rename = "kv.set")]
    KvSet { namespace: String, key: String, value: String },
    #[serde(rename = "kv.list")]
    KvList { namespace: String, prefix: String },
    #[serde(rename = "bus.publish")]
    Publish { topic: String, message: Value },
    #[serde(rename = "config.get")]
    ConfigGet { key: String },
    #[serde(rename = "log")]
    Log { message: String },
    #[serde(rename = "print")]
    Print { message: String },
    #[serde(rename = "echo")]
    Echo { value: Value },
}

fn capability_error(e: CapabilityError) -> ToolError {
    let (code, message) = match e {
        CapabilityError::Denied(m) => ("denied", m),
        CapabilityError::Invalid(m) => ("invalid", m),
        CapabilityError::TooLarge(m) => ("too-large", m),
        CapabilityError::Unavailable(m) => ("unavailable", m),
    };
    ToolError { code: code.into(), message }
}

struct Probe;

impl Guest for Probe {
    fn describe() -> Descriptor {
        // Several probes can be loaded side by side when each is configured
        // with its own `tool-name` (and granted `config.read` on it).
        let name = config::get("tool-name").ok().flatten().unwrap_or_else(|| "probe".into());
        Descriptor {
            name,
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Performs one named capability call (test guest)".into(),
            input_schema: r#"{"type":"object","required":["op"]}"#.into(),
            output_schema: r#"{"type":"object","required":["ok"]}"#.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let op: Op = serde_json::from_str(&input)
            .map_err(|e| ToolError { code: "invalid-input".into(), message: e.to_string() })?;
        let result = match op {
            Op::KvGet { namespace, key } => {
                let value = kv::get(&namespace, &key).map_err(capability_error)?;
                json!(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
            }
            Op::KvSet { namespace, key, value } => {
                kv::set(&namespace, &key, value.as_bytes()).map_err(capability_error)?;
                Value::Null
            }
            Op::KvList { namespace, prefix } => {
                json!(kv::list_keys(&namespace, &prefix, 1000).map_err(capability_error)?)
            }
            Op::Publish { topic, message } => {
                let id = bus::publish(&topic, &bus::Payload::Json(message.to_string())).map_err(capability_error)?;
                json!(id)
            }
            Op::ConfigGet { key } => {
                let value = config::get(&key).map_err(capability_error)?;
                // A config value of "trap" makes reading it trap: a
                // deliberately broken release for the auto-rollback tests.
                if value.as_deref() == Some("trap") {
                    panic!("configured to fail");
                }
                json!(value)
            }
            Op::Log { message } => {
                log::write(log::Level::Info, &message, &[log::Field { key: "probe".into(), value: "yes".into() }])
                    .map_err(capability_error)?;
                Value::Null
            }
            Op::Print { message } => {
                println!("{message}");
                eprintln!("{message}");
                Value::Null
            }
            Op::Echo { value } => value,
        };
        Ok(json!({ "ok": result }).to_string())
    }
}

export!(Probe);
