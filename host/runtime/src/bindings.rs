//! Every `bindgen!` of the host, next to each other, generated from `wit/`.
//!
//! The `tool` world generates the capability interfaces (`arw:host/bus`,
//! `kv`, `log`, `config`, `tools`, `types`); the other worlds reuse them via `with`,
//! so a capability's host implementation is written once.
//!
//! [`v0_1`] are the bindings of `arw:host@0.1.0` (the frozen copy in
//! `wit/compat/arw-host-0.1.0/`), so components built against it keep
//! running: each capability unit implements its 0.1.0 interface by
//! forwarding to its 0.2.0 one, and each role calls a 0.1.0 export through
//! these.

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
            "arw:host/tools": super::tool::arw::host::tools,
        },
    });
}

/// Bindings for `arw:host/resident`: the same imports plus the `lifecycle`
/// and `event-handler` exports.
pub mod resident {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "arw:host/resident",
        imports: { default: async },
        exports: { default: async },
        with: {
            "arw:host/types": super::tool::arw::host::types,
            "arw:host/bus": super::tool::arw::host::bus,
            "arw:host/kv": super::tool::arw::host::kv,
            "arw:host/log": super::tool::arw::host::log,
            "arw:host/config": super::tool::arw::host::config,
            "arw:host/tools": super::tool::arw::host::tools,
        },
    });
}

/// `arw:host@0.1.0`, for components built against it.
pub mod v0_1 {
    /// The 0.1.0 `tool` world; `capability-error` is shared with 0.2.0
    /// (the two are the same type).
    pub mod tool {
        wasmtime::component::bindgen!({
            path: "../../wit/compat/arw-host-0.1.0",
            world: "arw:host/tool@0.1.0",
            imports: { default: async },
            exports: { default: async },
            with: {
                "arw:host/types@0.1.0": crate::bindings::tool::arw::host::types,
            },
        });
    }

    /// The 0.1.0 `subscriber` world, on the 0.1.0 capability bindings.
    pub mod subscriber {
        wasmtime::component::bindgen!({
            path: "../../wit/compat/arw-host-0.1.0",
            world: "arw:host/subscriber@0.1.0",
            imports: { default: async },
            exports: { default: async },
            with: {
                "arw:host/types@0.1.0": crate::bindings::tool::arw::host::types,
                "arw:host/bus@0.1.0": super::tool::arw::host::bus,
                "arw:host/kv@0.1.0": super::tool::arw::host::kv,
                "arw:host/log@0.1.0": super::tool::arw::host::log,
                "arw:host/config@0.1.0": super::tool::arw::host::config,
            },
        });
    }
}

pub use tool::arw::host::types::CapabilityError;

pub use arw_manifest::exports;
