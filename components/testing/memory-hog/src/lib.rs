//! Hostile test guest: `invoke` allocates without bound. The host must stop
//! it at its memory cap and keep serving other calls.

wit_bindgen::generate!({ path: "../../../wit", world: "arw:host/tool" });

use exports::arw::host::tool_handler::{Descriptor, Guest, ToolError};

struct MemoryHog;

impl Guest for MemoryHog {
    fn describe() -> Descriptor {
        Descriptor {
            name: "memory-hog".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Grows memory without bound (test guest)".into(),
            input_schema: "{}".into(),
            output_schema: "{}".into(),
        }
    }

    fn invoke(_input: String) -> Result<String, ToolError> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // 1 MiB at a time, touched so it is really used.
            let chunk = vec![0xA5u8; 1 << 20];
            hoard.push(std::hint::black_box(chunk));
        }
    }
}

export!(MemoryHog);
