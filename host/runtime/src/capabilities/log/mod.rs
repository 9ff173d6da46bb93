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
};

/// Longest message kept, in bytes; longer ones are truncated (and say so).
pub const MAX_MESSAGE_BYTES: usize = 8 << 10;
/// Most fields kept per record.
pub const MAX_FIELDS: usize = 32;
