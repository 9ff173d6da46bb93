//! Hostile test guest: `invoke` never returns. The host must stop it at its
//! per-call deadline and keep serving other calls.

wit_bindgen::generate!({ path: "../../../wit", world: "arw:host/tool" });

use exports::arw::host::tool_handler::{Descriptor, Guest, ToolError};

struct Spinner;

impl Guest for Spinner {
    fn describe() -> Descriptor {
        Descriptor {
            name: "spinner".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Loops forever (test guest)".into(),
            input_schema: "{}".into(),
            output_schema: "{}".into(),
        }
    }

    fn invoke(_input: String) -> Result<String, ToolError> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

export!(Spinner);
