//! slugify-rust: turn text into a URL slug, dropping the stop words of its
//! `stop-words` configuration, and count its calls in kv.
//!
//! Input `{"text": "..."}`; output `{"slug": "...", "calls": n}`.
//! Words are runs of ASCII letters and digits and of non-ASCII characters
//! (kept as they are); ASCII letters are lower-cased; words are joined
//! with `-`. No word left: the tool error `empty-slug`. A refused
//! capability: the tool error named after the refusal (`denied`, ...).

wit_bindgen::generate!({ path: "wit", world: "arw:host/tool" });

use arw::host::types::CapabilityError;
use arw::host::{config, kv};
use exports::arw::host::tool_handler::{Descriptor, Guest, ToolError};

const NAME: &str = "slugify-rust";

#[derive(serde::Deserialize)]
struct Input {
    text: String,
}

fn error(code: &str, message: impl Into<String>) -> ToolError {
    ToolError { code: code.into(), message: message.into() }
}

fn capability(e: CapabilityError) -> ToolError {
    match e {
        CapabilityError::Denied(m) => error("denied", m),
        CapabilityError::Invalid(m) => error("invalid", m),
        CapabilityError::TooLarge(m) => error("too-large", m),
        CapabilityError::Unavailable(m) => error("unavailable", m),
    }
}

/// The slug of `text` without `stop` words.
fn slugify(text: &str, stop: &[String]) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || !c.is_ascii() {
            word.push(c.to_ascii_lowercase());
        } else if !word.is_empty() {
            if !stop.contains(&word) {
                words.push(word.clone());
            }
            word.clear();
        }
    }
    words.join("-")
}

struct Slugify;

impl Guest for Slugify {
    fn describe() -> Descriptor {
        Descriptor {
            name: NAME.into(),
            version: "0.1.0".into(),
            summary: "Turn text into a URL slug, without the configured stop words".into(),
            input_schema: r#"{"type":"object","properties":{"text":{"type":"string"}},"required":["text"],"additionalProperties":false}"#.into(),
            output_schema: r#"{"type":"object","properties":{"slug":{"type":"string"},"calls":{"type":"integer"}},"required":["slug","calls"]}"#.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Input = serde_json::from_str(&input).map_err(|e| error("invalid-input", e.to_string()))?;
        let stop: Vec<String> = config::get("stop-words")
            .map_err(capability)?
            .unwrap_or_default()
            .split(',')
            .map(|w| w.trim_matches([' ', '\t', '\r', '\n']).to_ascii_lowercase())
            .filter(|w| !w.is_empty())
            .collect();
        let calls = match kv::get(NAME, "calls").map_err(capability)? {
            Some(bytes) => String::from_utf8_lossy(&bytes).parse::<u64>().unwrap_or(0) + 1,
            None => 1,
        };
        kv::set(NAME, "calls", calls.to_string().as_bytes()).map_err(capability)?;
        let slug = slugify(&input.text, &stop);
        if slug.is_empty() {
            return Err(error("empty-slug", "nothing to slugify: no letters or digits outside the stop words"));
        }
        Ok(serde_json::json!({ "slug": slug, "calls": calls }).to_string())
    }
}

export!(Slugify);
