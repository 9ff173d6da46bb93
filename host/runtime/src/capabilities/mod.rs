//! One unit per capability a component can import.
//!
//! Each unit is one folder, `capabilities/<name>/`, with the same inside
//! (in the spirit of Spin's factors, without their per-app runtime config):
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | its [`Unit`] (WIT, Cedar actions, manifest checks, config section, linker) and its [`Capability`] type: config, host-wide state, per-instance state |
//! | `host.rs` | the per-instance state that lives in the wasmtime store and implements the WIT `Host` traits |
//! | `schema.cedarschema` | its Cedar resource types and actions |
//!
//! Registering one is one line in [`for_each_capability`]; nothing else in
//! the host names a capability that no other part needs (a test checks it
//! for outgoing HTTP and config). The list of capabilities, with their WIT,
//! actions and sections, is in `docs/architecture.md`.
//!
//! Every host function first calls [`crate::authz::Grants::check`]; a
//! refusal becomes `capability-error::denied` (for `wasi:http`, the error
//! code `HTTP-request-denied`).

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use arw_policy::Action;

use crate::authz::{Denied, Grants};
use crate::bindings::CapabilityError;
use crate::bindings::imports::arw::host as wit;
use crate::manifest::Manifest;
use crate::runtime::entry::Chain;
use crate::runtime::store::InstanceState;

pub mod bus;
pub mod config;
pub mod http;
pub mod kv;
pub mod log;
pub mod nats;
pub mod queue;
pub mod quota;
pub mod tools;
pub mod unit;

pub use unit::{Request, Unit};

/// Every capability of the host, one line each: `field: folder::Type`,
/// where `Type` implements [`Capability`]. The list is expanded twice: here
/// into [`UNITS`], [`Capabilities`] and [`CapabilityInstances`], and in
/// `config.rs` into the sections of [`crate::HostConfig`] (the `configured`
/// ones, each `[field]` in kebab case).
macro_rules! for_each_capability {
    ($then:path) => {
        $then! {
            configured: [
                bus: bus::BusCapability,
                kv: kv::KvCapability,
                log: log::LogCapability,
                outgoing_http: http::OutgoingHttpCapability,
                tools: tools::ToolsCapability,
                quota: quota::QuotaCapability,
                cluster: nats::NatsCapability,
                queues: queue::QueueCapability,
            ],
            unconfigured: [
                config: config::ConfigCapability,
            ],
        }
    };
}
pub(crate) use for_each_capability;

/// What a capability folder implements, on a type of its own: its
/// description, config section, host-wide state and per-instance state.
pub trait Capability {
    /// Its name, WIT, Cedar actions and fragment, manifest checks, linker.
    const UNIT: Unit;
    /// Its section of the host configuration (`()` for an unconfigured
    /// one). Unknown keys in it are an error (`deny_unknown_fields`).
    type Config;
    /// Host-wide state, shared by every instance (cheap to clone).
    type State: std::fmt::Debug + Clone + Send + Sync + 'static;
    /// Per-instance state: a field of the store's data, which its WIT
    /// `Host` traits are implemented on.
    type Instance: std::fmt::Debug + Send + 'static;

    /// Build the host-wide state when the host starts.
    fn start(config: &Self::Config, env: &StartEnv<'_>) -> Result<Self::State, crate::HostError>;

    /// The state of one new instance of `component`; `chain` is the
    /// components the entry came through.
    fn instance(state: &Self::State, component: &ComponentCapabilities, chain: &Chain) -> Self::Instance;

    /// A new entry into a kept instance (pooled): `chain` is the
    /// components this entry came through. A capability that reports the
    /// chain (to gates, to Cedar) takes it here; the others keep nothing
    /// of it.
    fn enter(instance: &mut Self::Instance, chain: &Chain) {
        let _ = (instance, chain);
    }
}

/// What every capability may use to start.
#[derive(Debug, Clone, Copy)]
pub struct StartEnv<'a> {
    /// The host's durable state directory.
    pub state_dir: &'a std::path::Path,
    /// The whole configuration, for a capability that reads another's
    /// section (the queues read `cluster.trusted-nodes`).
    pub config: &'a crate::HostConfig,
}

macro_rules! define_capabilities {
    (configured: [$($field:ident: $unit:ident::$ty:ident,)*], unconfigured: [$($plain:ident: $punit:ident::$pty:ident,)*],) => {
        /// Every capability's description.
        pub const UNITS: &[Unit] = &[$(<$unit::$ty as Capability>::UNIT,)* $(<$punit::$pty as Capability>::UNIT,)*];

        /// Host-wide capability state, shared by every component.
        #[derive(Debug, Clone)]
        pub struct Capabilities {
            $(pub $field: <$unit::$ty as Capability>::State,)*
            $(pub $plain: <$punit::$pty as Capability>::State,)*
        }

        impl Capabilities {
            /// Start every capability, in list order, from its section of
            /// `config`.
            pub fn start(config: &crate::HostConfig, env: &StartEnv<'_>) -> Result<Self, crate::HostError> {
                Ok(Capabilities {
                    $($field: <$unit::$ty as Capability>::start(&config.$field, env)?,)*
                    $($plain: <$punit::$pty as Capability>::start(&(), env)?,)*
                })
            }
        }

        /// Per-instance state of every capability; a field of the store's data.
        #[derive(Debug)]
        pub struct CapabilityInstances {
            $(pub $field: <$unit::$ty as Capability>::Instance,)*
            $(pub $plain: <$punit::$pty as Capability>::Instance,)*
        }

        impl CapabilityInstances {
            /// `chain`: the components the entry came through.
            pub fn new(host: &Capabilities, component: &ComponentCapabilities, chain: Chain) -> Self {
                CapabilityInstances {
                    $($field: <$unit::$ty as Capability>::instance(&host.$field, component, &chain),)*
                    $($plain: <$punit::$pty as Capability>::instance(&host.$plain, component, &chain),)*
                }
            }

            /// A new entry into a kept instance, through `chain`: every
            /// capability sees this entry's chain, not the first one's.
            pub fn enter(&mut self, chain: &Chain) {
                $(<$unit::$ty as Capability>::enter(&mut self.$field, chain);)*
                $(<$punit::$pty as Capability>::enter(&mut self.$plain, chain);)*
            }
        }
    };
}

for_each_capability!(define_capabilities);

/// The host's Cedar schema, assembled from the core and every unit's
/// fragment, and its text (`spec/arw.cedarschema`, `arw spec export`).
pub fn schema() -> Result<(cedar_policy::Schema, String), arw_policy::PolicyError> {
    let fragments: Vec<_> = UNITS.iter().map(Unit::fragment).collect();
    arw_policy::schema::assemble(&fragments)
}

/// The action called `name`, if the core or a capability declares it.
pub fn action(name: &str) -> Option<Action> {
    Action::CORE.iter().chain(UNITS.iter().flat_map(|u| u.actions)).copied().find(|a| a.as_str() == name)
}

/// Check a manifest's `[[capabilities]]` against this host's units: each
/// action must be one a unit accepts from components, and that unit's check
/// of the resource pattern must pass. Run wherever a manifest enters the
/// host (every load, `arw install`, `arw publish`, `arw build`).
pub fn check_manifest(manifest: &Manifest) -> Result<(), String> {
    for request in &manifest.capabilities {
        let accepted = UNITS.iter().flat_map(|u| u.requests).find(|r| r.action.as_str() == request.action);
        match accepted {
            Some(accepted) => (accepted.check)(manifest, &request.resource)?,
            None if action(&request.action).is_some() => {
                return Err(format!(
                    "`{}` is an action of callers from outside (HTTP, MCP, the CLI), not of components",
                    request.action
                ));
            }
            None => {
                let known: Vec<&str> = UNITS.iter().flat_map(|u| u.requests).map(|r| r.action.as_str()).collect();
                return Err(format!(
                    "unknown action `{}`: this host's components may request {}",
                    request.action,
                    known.join(", ")
                ));
            }
        }
    }
    Ok(())
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
            sink: host.log.clone(),
            budget: self.output_budget.clone(),
            grants: self.grants.clone(),
            component: self.component.clone(),
            stream,
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
    /// every action a component can request is accepted by exactly one
    /// unit, and only those.
    #[test]
    fn every_capability_unit_is_complete() {
        let policy_doc = repo_file("docs/policy.md");
        let config_doc = repo_file("docs/configuration.md");
        let (schema, _) = super::schema().unwrap_or_else(|e| panic!("{e}"));
        let vocabulary = arw_policy::Vocabulary::of(&schema).unwrap_or_else(|e| panic!("{e}"));
        for unit in UNITS {
            // A fragment needs nothing but the core: capabilities are
            // independent of each other. (That it declares exactly the
            // unit's actions is checked by the assembly itself.)
            if let Err(e) = arw_policy::schema::assemble(&[unit.fragment()]) {
                panic!("the `{}` fragment with the core alone: {e}", unit.name);
            }
            for action in unit.actions {
                assert!(policy_doc.contains(&format!("`{action}`")), "`{action}` is not in docs/policy.md");
            }
            for request in unit.requests {
                let info = vocabulary.get(request.action.as_str());
                assert!(
                    info.is_some_and(|a| a.for_components),
                    "`{}` accepts `{}`, which is not a component action of the schema",
                    unit.name,
                    request.action
                );
            }
            if let Some(section) = unit.config_section {
                assert!(
                    config_doc.contains(&format!("### `[{section}]`")),
                    "`[{section}]` is not in docs/configuration.md"
                );
                // The section is the unit's field of HostConfig, and an
                // unknown key in it is an error.
                let empty = toml::from_str::<crate::HostConfig>(&format!("[{section}]\n"));
                assert!(empty.is_ok(), "`[{section}]` is not a section of HostConfig: {empty:?}");
                let unknown = toml::from_str::<crate::HostConfig>(&format!("[{section}]\nno-such-key = 1\n"));
                let err = unknown.err().map(|e| e.to_string()).unwrap_or_default();
                assert!(err.contains("no-such-key"), "`[{section}]` accepts an unknown key: {err:?}");
            }
            assert!(!unit.wit.is_empty(), "`{}` names no WIT interface", unit.name);
        }
        for info in vocabulary.iter() {
            assert!(super::action(&info.name).is_some(), "`{}` is in the schema but no unit declares it", info.name);
            let accepting = UNITS.iter().flat_map(|u| u.requests).filter(|r| r.action.as_str() == info.name).count();
            let expected = usize::from(info.for_components);
            assert_eq!(accepting, expected, "`{}` must be accepted by {expected} unit(s)", info.name);
        }
    }

    /// Outgoing HTTP and config are needed by nothing else in the host: no
    /// source file outside their folders names them, except the one
    /// registration line each. (The bus, kv, log and tools are used by
    /// name where the host publishes its events, reports its status or
    /// routes calls.)
    #[test]
    fn a_leaf_capability_is_its_folder_and_one_line() {
        let leaves: [(&str, &[&str]); 2] = [
            ("http", &["capabilities::http", "OutgoingHttp", "outgoing_http", "HttpInstance", "http::REQUEST"]),
            ("config", &["capabilities::config", "ConfigCapability", "ConfigInstance", "config::READ"]),
        ];
        for (folder, names) in leaves {
            let own = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/capabilities").join(folder);
            let mentions = crate::source_scan::mentions_outside(&own, names);
            assert_eq!(mentions.len(), 1, "`{folder}` is named outside its folder: {mentions:#?}");
            assert!(mentions[0].contains("capabilities/mod.rs"), "{mentions:?}");
        }
    }

    /// What a manifest may request is what the units accept, each checked
    /// by its unit; callers' actions and unknown ones are refused by name.
    #[test]
    fn manifest_requests_are_checked_by_their_unit() {
        let manifest = |worlds: &str, action: &str, resource: &str| {
            crate::Manifest::parse(&format!(
                "id = \"a:b\"\nversion = \"1.0.0\"\nworlds = [{worlds}]\n[[capabilities]]\naction = \"{action}\"\nresource = \"{resource}\""
            ))
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let check = |worlds, action, resource| super::check_manifest(&manifest(worlds, action, resource));
        assert!(check("\"tool\"", "kv.read", "ns").is_ok());
        assert!(check("\"tool\"", "http.request", "api.example.com:443").is_ok());
        let cases = [
            ("\"tool\"", "kv.delete", "x", "unknown action `kv.delete`"),
            ("\"tool\"", "events.subscribe", "x", "an action of callers"),
            ("\"tool\"", "admin.install", "x", "an action of callers"),
            ("\"tool\"", "bus.subscribe", "x", "neither \"subscriber\""),
            ("\"tool\"", "bus.publish", "component.x", "reserved"),
            ("\"tool\"", "http.request", "Example.com:443", "lower-case `host:port`"),
            ("\"tool\"", "http.request", "example.com", "lower-case `host:port`"),
            ("\"tool\"", "tool.invoke", "Text Stats", "tool name pattern"),
        ];
        for (worlds, action, resource, expected) in cases {
            let err = check(worlds, action, resource).err().unwrap_or_else(|| panic!("accepted {action} {resource}"));
            assert!(err.contains(expected), "{action} {resource}: {err}");
        }
        assert!(check("\"subscriber\"", "bus.subscribe", "x").is_ok());
    }
}
