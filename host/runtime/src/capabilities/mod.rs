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
//! | [`tools`] | `wit/tools.wit` | `tool.invoke` (declared by the core: callers use it too) | `[tools]` |
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
pub mod tools;
pub mod unit;

pub use unit::Unit;

/// Every capability of the host, one line each.
pub const UNITS: &[Unit] = &[bus::UNIT, kv::UNIT, log::UNIT, config::UNIT, http::UNIT, tools::UNIT];

/// The host's Cedar schema, assembled from the core and every unit's
/// fragment, and its text (`spec/arw.cedarschema`, `arw spec export`).
pub fn schema() -> Result<(cedar_policy::Schema, String), arw_policy::PolicyError> {
    let fragments: Vec<_> = UNITS.iter().map(Unit::fragment).collect();
    arw_policy::schema::assemble(&fragments)
}

/// Host-wide capability state, shared by every component.
#[derive(Debug, Clone)]
pub struct Capabilities {
    pub bus: Arc<bus::Bus>,
    pub kv: Arc<kv::KvStore>,
    pub outgoing_http: http::OutgoingHttpConfig,
    /// Where guests' stdout and stderr lines go.
    pub guest_output: log::GuestOutputSink,
    /// How a component's call of another's tool reaches the host.
    pub tools: Arc<tools::Directory>,
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
    pub tools: tools::ToolsInstance,
}

impl CapabilityInstances {
    /// `chain`: the components the entry came through (for `tools`).
    pub fn new(host: &Capabilities, component: &ComponentCapabilities, chain: crate::runtime::entry::Chain) -> Self {
        CapabilityInstances {
            bus: bus::BusInstance::new(host.bus.clone(), component),
            kv: kv::KvInstance::new(host.kv.clone(), component),
            log: log::LogInstance::new(component),
            config: config::ConfigInstance::new(component),
            http: http::HttpInstance::new(host.outgoing_http, component),
            tools: tools::ToolsInstance::new(host.tools.clone(), component, chain),
        }
    }
}

/// Link every capability interface into `linker`: the shared `types`,
/// then each unit's own.
pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    wit::types::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut InstanceState| &mut s.capabilities.bus)?;
    for unit in UNITS {
        (unit.link)(linker)?;
    }
    Ok(())
}

impl From<Denied> for CapabilityError {
    fn from(d: Denied) -> Self {
        CapabilityError::Denied(d.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use arw_policy::Action;

    use super::UNITS;

    fn repo_file(path: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The committed spec is the assembly of the fragments (`arw spec
    /// export` regenerates it), and the host's schema is what policies are
    /// checked against everywhere else.
    #[test]
    fn the_spec_is_the_assembled_schema() {
        let (_, text) = super::schema().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, arw_policy::schema::TEXT, "spec/arw.cedarschema is stale: run `arw spec export spec`");
    }

    /// Each unit is complete: its fragment declares exactly its actions,
    /// each action is documented, its config section is documented, and
    /// every action a component can be granted belongs to exactly one unit.
    #[test]
    fn every_capability_unit_is_complete() {
        let policy_doc = repo_file("docs/policy.md");
        let config_doc = repo_file("docs/configuration.md");
        let mut owned = Vec::new();
        for unit in UNITS {
            // A fragment needs nothing but the core: capabilities are
            // independent of each other.
            if let Err(e) = arw_policy::schema::assemble(&[unit.fragment()]) {
                panic!("the `{}` fragment with the core alone: {e}", unit.name);
            }
            let declared: BTreeSet<String> = unit
                .schema
                .lines()
                .filter_map(|l| l.trim().strip_prefix("action \""))
                .filter_map(|l| l.split('"').next())
                .map(str::to_string)
                .collect();
            let listed: BTreeSet<String> = unit.actions.iter().map(|a| a.as_str().to_string()).collect();
            assert_eq!(declared, listed, "`{}`: the fragment's actions and the unit's differ", unit.name);
            for action in unit.actions {
                assert!(policy_doc.contains(&format!("`{action}`")), "`{action}` is not in docs/policy.md");
                owned.push(*action);
            }
            if let Some(section) = unit.config_section {
                assert!(
                    config_doc.contains(&format!("### `[{section}]`")),
                    "`[{section}]` is not in docs/configuration.md"
                );
            }
            assert!(!unit.wit.is_empty(), "`{}` names no WIT interface", unit.name);
        }
        let (schema, _) = super::schema().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(schema.actions().count(), Action::ALL.len() + 1, "the schema has actions the host does not know");
        for action in Action::ALL.into_iter().filter(|a| a.for_components() && *a != Action::ToolInvoke) {
            assert_eq!(owned.iter().filter(|a| **a == action).count(), 1, "`{action}` must belong to exactly one unit");
        }
    }
}
