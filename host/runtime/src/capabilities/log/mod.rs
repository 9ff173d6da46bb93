//! Guest logging into the host's `tracing` output, tagged with the
//! component's identity (target `arw::guest`). Authorized per level as
//! `log.write` on `Arw::LogLevel::"<level>"`; a guest's stdout and stderr
//! are the levels `stdout` and `stderr` ([`guest_output`]).

use arw_policy::Action;

use crate::capabilities::unit::Request;

pub mod guest_output;
mod host;

pub use guest_output::{GuestOutput, GuestOutputSink, GuestOutputStats, LineBudget, LogConfig};
pub use host::LogInstance;

/// A component writing a log record, per level (`Arw::LogLevel`).
pub const WRITE: Action = Action::new("log.write");

/// This capability, described (see [`crate::capabilities::unit`]).
pub const UNIT: crate::capabilities::Unit = crate::capabilities::Unit {
    name: "log",
    wit: &["arw:host/log", "wasi:cli/stdout", "wasi:cli/stderr"],
    actions: &[WRITE],
    requests: &[Request::any(WRITE)],
    schema: include_str!("schema.cedarschema"),
    config_section: Some("log"),
    link,
};

/// This folder as a capability unit (see [`crate::capabilities::Capability`]).
#[derive(Debug)]
pub struct LogCapability;

impl crate::capabilities::Capability for LogCapability {
    const UNIT: crate::capabilities::Unit = UNIT;
    type Config = LogConfig;
    type State = GuestOutputSink;
    type Instance = LogInstance;

    fn start(config: &LogConfig, env: &crate::capabilities::StartEnv<'_>) -> Result<GuestOutputSink, crate::HostError> {
        let _ = env;
        config.check().map_err(crate::HostError::Config)?;
        GuestOutputSink::start(*config)
            .map_err(|e| crate::HostError::Engine(format!("cannot start the guest-output thread: {e}")))
    }

    fn instance(
        state: &GuestOutputSink,
        component: &crate::capabilities::ComponentCapabilities,
        chain: &crate::runtime::entry::Chain,
    ) -> LogInstance {
        let _ = (state, chain);
        LogInstance::new(component)
    }
}

/// `arw:host/log` (0.2.0 and 0.1.0) on [`LogInstance`]. (The guest's
/// stdout and stderr are WASI's, wired in the store.)
fn link(linker: &mut wasmtime::component::Linker<crate::runtime::store::InstanceState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    type State = crate::runtime::store::InstanceState;
    crate::bindings::imports::arw::host::log::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut State| {
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
