//! `text-stats`: counts characters, words and lines of a text.
//!
//! Input `{"text": "..."}`, output `{"chars": n, "words": n, "lines": n}`.
//! Characters are Unicode scalar values; words are runs of non-whitespace;
//! lines are counted like `str::lines` (a trailing newline does not open a
//! new line).

#[cfg(not(feature = "arw-host-0-1"))]
wit_bindgen::generate!({ path: "../../wit", world: "arw:host/tool" });
// The same component against the frozen `arw:host@0.1.0`: the host's
// tests run it to show 0.1.0 components keep working (host/artifacts).
#[cfg(feature = "arw-host-0-1")]
wit_bindgen::generate!({ path: "../../wit/compat/arw-host-0.1.0", world: "arw:host/tool@0.1.0" });

use exports::arw::host::tool_handler::{Descriptor, Guest, ToolError};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    text: String,
}

struct TextStats;

impl Guest for TextStats {
    fn describe() -> Descriptor {
        Descriptor {
            name: "text-stats".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Count the characters, words and lines of a text".into(),
            input_schema: r#"{"type":"object","properties":{"text":{"type":"string"}},"required":["text"],"additionalProperties":false}"#.into(),
            output_schema: r#"{"type":"object","properties":{"chars":{"type":"integer","minimum":0},"words":{"type":"integer","minimum":0},"lines":{"type":"integer","minimum":0}},"required":["chars","words","lines"]}"#.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Input = serde_json::from_str(&input).map_err(|e| ToolError {
            code: "invalid-input".into(),
            message: format!("expected {{\"text\": string}}: {e}"),
        })?;
        let text = input.text;
        let out = serde_json::json!({
            "chars": text.chars().count(),
            "words": text.split_whitespace().count(),
            "lines": text.lines().count(),
        });
        Ok(out.to_string())
    }
}

export!(TextStats);
