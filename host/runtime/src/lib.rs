//! The ARW host: runs WebAssembly components on wasmtime and hands them
//! capabilities, each use of which Cedar authorizes.
//!
//! The crate is laid out the way a call flows through it:
//!
//! | module | job |
//! |---|---|
//! | [`config`] | the host's configuration (engine pool, kv and bus caps, per-component overrides) |
//! | [`manifest`] | a component's manifest: id, version, worlds, requested capabilities, limits, config |
//! | [`source`] | where components come from ([`source::ComponentSource`]): a directory, embedded bytes |
//! | [`runtime`] | the wasmtime engine, linker, stores, loading, and what every entry into a guest shares |
//! | [`roles`] | one unit per world a component exports: how the host drives it (`tool`, `subscriber`) |
//! | [`gating`] | gates: signed components asked before the effect at every entry point, fail closed |
//! | [`authz`] | the one authorization chokepoint every capability call and tool call goes through |
//! | [`capabilities`] | one unit per capability: `bus`, `kv`, `log`, `config`, `http` |
//! | [`signals`] | what the host measures for feedback: time-aware EWMA, decayed error rates, P² quantiles |
//! | [`supervisor`] | versions over time: atomic switch, drain, rollback, transition events |
//! | [`host`] | [`Host`]: start, call tools, activate/remove components, reload policies, status, shut down |
//!
//! WIT bindings are generated in one place, [`bindings`].

pub mod authz;
pub mod bindings;
pub mod capabilities;
pub mod catalogue;
pub mod cluster;
pub mod config;
pub mod error;
pub mod feedback;
pub mod gating;
pub mod host;
pub mod queues;
pub mod roles;
pub mod runtime;
pub mod signals;
pub mod source;
#[cfg(test)]
mod source_scan;
pub mod supervisor;
pub mod wit;

pub use arw_fs as fsutil;
pub use arw_manifest as manifest;
pub use arw_policy as policy;
pub use config::HostConfig;
pub use error::{CallError, HostError, LoadError};
pub use host::{
    ActivationError, Caller, ComponentInfo, ComponentStatus, GrantInfo, Host, HostStatus, PolicyReload, Refusal,
    ToolInfo,
};
pub use manifest::Manifest;

/// Check a manifest against this host's units: each role's rules
/// ([`roles::check_manifest`]), then each capability request
/// ([`capabilities::check_manifest`]). Run wherever a manifest enters the
/// host: every load, `arw install`, `arw publish`, `arw build`.
pub fn check_manifest(manifest: &Manifest) -> Result<(), String> {
    roles::check_manifest(manifest)?;
    capabilities::check_manifest(manifest)
}
