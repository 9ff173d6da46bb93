//! One unit per capability a component can import.
//!
//! Each unit has the same inside (in the spirit of Spin's factors):
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the host-wide state (the bus, the kv store, ...), its Cedar actions and its config section |
//! | `host.rs` | the per-instance state that lives in the wasmtime store and implements the WIT `Host` trait |
//!
//! | capability | WIT | Cedar actions | config |
//! |---|---|---|---|
//! | [`bus`] | `wit/bus.wit` | `bus.publish`, `bus.subscribe` | `[bus]` |
//! | [`kv`] | `wit/kv.wit` | `kv.read`, `kv.write` | `[kv]` |
//! | [`log`] | `wit/log.wit`, and the guest's stdout/stderr | `log.write` | `[log]` |
//! | [`config`] | `wit/config.wit` | `config.read` | `[components."<id>".config]` |
//! | [`http`] | `wasi:http/outgoing-handler` (from `wasmtime-wasi-http`) | `http.request` | `[outgoing-http]` |
//!
//! Every host function first calls [`crate::authz::Grants::check`]; a
//! refusal becomes `capability-error::denied` (for `wasi:http`, the error
//! code `HTTP-request-denied`).

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::authz::{Denied, Grants};
use crate::bindings::CapabilityError;
use crate::bindings::tool::arw::host as wit;
use crate::runtime::store::InstanceState;

pub mod bus;
pub mod config;
pub mod http;
pub mod kv;
pub mod log;

/// Host-wide capability state, shared by every component.
#[derive(Debug, Clone)]
pub struct Capabilities {
    pub bus: Arc<bus::Bus>,
    pub kv: Arc<kv::KvStore>,
    pub outgoing_http: http::OutgoingHttpConfig,
    /// Where guests' stdout and stderr lines go.
    pub guest_output: log::GuestOutputSink,
}

/// What a loaded component brings to each of its instances.
#[derive(Debug, Clone)]
pub struct ComponentCapabilities {
    /// The component id, used to tag its events and logs.
    pub component: Arc<str>,
    pub grants: Arc<Grants>,
    /// The manifest's `[config]` merged with the host's overrides.
    pub config: Arc<BTreeMap<String, String>>,
    /// The rate limit on its stdout and stderr lines.
    pub output_budget: Arc<log::LineBudget>,
}

impl ComponentCapabilities {
    /// The component's stdout (`"stdout"`) or stderr (`"stderr"`).
    pub(crate) fn output(&self, host: &Capabilities, stream: &'static str) -> log::GuestOutput {
        log::GuestOutput {
            sink: host.guest_output.clone(),
            budget: self.output_budget.clone(),
            grants: self.grants.clone(),
            component: self.component.clone(),
            stream,
        }
    }
}

/// Per-instance state of every capability; a field of the store's data.
#[derive(Debug)]
pub struct CapabilityInstances {
    pub bus: bus::BusInstance,
    pub kv: kv::KvInstance,
    pub log: log::LogInstance,
    pub config: config::ConfigInstance,
    pub http: http::HttpInstance,
}

impl CapabilityInstances {
    pub fn new(host: &Capabilities, component: &ComponentCapabilities) -> Self {
        CapabilityInstances {
            bus: bus::BusInstance::new(host.bus.clone(), component),
            kv: kv::KvInstance::new(host.kv.clone(), component),
            log: log::LogInstance::new(component),
            config: config::ConfigInstance::new(component),
            http: http::HttpInstance::new(host.outgoing_http, component),
        }
    }
}

/// Link every capability interface into `linker`.
pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    wit::types::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut InstanceState| &mut s.capabilities.bus)?;
    wit::bus::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut InstanceState| &mut s.capabilities.bus)?;
    wit::kv::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut InstanceState| &mut s.capabilities.kv)?;
    wit::log::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut InstanceState| &mut s.capabilities.log)?;
    wit::config::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut InstanceState| &mut s.capabilities.config)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    Ok(())
}

impl From<Denied> for CapabilityError {
    fn from(d: Denied) -> Self {
        CapabilityError::Denied(d.to_string())
    }
}
