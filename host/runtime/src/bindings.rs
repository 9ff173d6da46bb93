//! Every `bindgen!` of the host, next to each other, generated from `wit/`.
//!
//! [`imports`] generates the capability interfaces; each role generates
//! its world next to its code and maps `arw:host` onto these.
//!
//! [`v0_1`] are the bindings of `arw:host@0.1.0` (the frozen copy in
//! `wit/compat/arw-host-0.1.0/`), so components built against it keep
//! running: each capability unit implements its 0.1.0 interface by
//! forwarding to its 0.2.0 one, and each role calls a 0.1.0 export through
//! these.

/// Bindings for `arw:host/imports`: the capability interfaces (`bus`,
/// `kv`, `log`, `config`, `tools`, `types`), generated once. Each role's
/// world is generated in its own unit (`roles/<name>.rs`) with `with: {
/// "arw:host": crate::bindings::imports::arw::host }`, so a capability's
/// host implementation is written once and a new role or interface needs
/// no line here.
pub mod imports {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "arw:host/imports",
        imports: { default: async },
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
                "arw:host/types@0.1.0": crate::bindings::imports::arw::host::types,
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
                "arw:host/types@0.1.0": crate::bindings::imports::arw::host::types,
                "arw:host/bus@0.1.0": super::tool::arw::host::bus,
                "arw:host/kv@0.1.0": super::tool::arw::host::kv,
                "arw:host/log@0.1.0": super::tool::arw::host::log,
                "arw:host/config@0.1.0": super::tool::arw::host::config,
            },
        });
    }
}

pub use imports::arw::host::types::CapabilityError;

pub use arw_manifest::exports;
