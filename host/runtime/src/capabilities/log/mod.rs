//! Guest logging into the host's `tracing` output, tagged with the
//! component's identity (target `arw::guest`). Authorized per level as
//! `log.write` on `Arw::LogLevel::"<level>"`; a guest's stdout and stderr
//! are the levels `stdout` and `stderr` ([`guest_output`]).

pub mod guest_output;
mod host;

pub use guest_output::{GuestOutput, GuestOutputSink, GuestOutputStats, LineBudget, LogConfig};
pub use host::LogInstance;

/// This capability, described (see [`crate::capabilities::unit`]).
pub const UNIT: crate::capabilities::Unit = crate::capabilities::Unit {
    name: "log",
    wit: &["arw:host/log", "wasi:cli/stdout", "wasi:cli/stderr"],
    actions: &[arw_policy::Action::LogWrite],
    schema: include_str!("schema.cedarschema"),
    config_section: Some("log"),
    link,
};

/// `arw:host/log` (0.2.0 and 0.1.0) on [`LogInstance`]. (The guest's
/// stdout and stderr are WASI's, wired in the store.)
fn link(linker: &mut wasmtime::component::Linker<crate::runtime::store::InstanceState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    type State = crate::runtime::store::InstanceState;
    crate::bindings::tool::arw::host::log::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut State| {
        &mut s.capabilities.log
    })?;
    crate::bindings::v0_1::tool::arw::host::log::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut State| {
        &mut s.capabilities.log
    })
}

/// Longest message kept, in bytes; longer ones are truncated (and say so).
pub const MAX_MESSAGE_BYTES: usize = 8 << 10;
/// Most fields kept per record.
pub const MAX_FIELDS: usize = 32;
