//! Every `bindgen!` of the host, next to each other, generated from `wit/`.
//!
//! The `tool` world generates the capability interfaces (`arw:host/bus`,
//! `kv`, `log`, `config`, `types`); the `subscriber` world reuses them via
//! `with`, so a capability's host implementation is written once.

/// Bindings for `arw:host/tool`: capability imports plus the
/// `tool-handler` export.
pub mod tool {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "arw:host/tool",
        imports: { default: async },
        exports: { default: async },
    });
}

/// Bindings for `arw:host/subscriber`: the same imports plus the
/// `event-handler` export.
pub mod subscriber {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "arw:host/subscriber",
        imports: { default: async },
        exports: { default: async },
        with: {
            "arw:host/types": super::tool::arw::host::types,
            "arw:host/bus": super::tool::arw::host::bus,
            "arw:host/kv": super::tool::arw::host::kv,
            "arw:host/log": super::tool::arw::host::log,
            "arw:host/config": super::tool::arw::host::config,
        },
    });
}

pub use tool::arw::host::types::CapabilityError;

pub use arw_manifest::exports;
