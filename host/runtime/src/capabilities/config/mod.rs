//! A component's own configuration: its manifest's `[config]` table with
//! the host's `[components."<id>".config]` merged over it. Authorized per
//! key as `config.read` on `Arw::ConfigKey::"<key>"`.

use arw_policy::Action;

use crate::capabilities::unit::Request;

mod host;

pub use host::ConfigInstance;

use std::collections::BTreeMap;

/// A component reading one of its config keys (`Arw::ConfigKey`).
pub const READ: Action = Action::new("config.read");

/// This capability, described (see [`crate::capabilities::unit`]).
pub const UNIT: crate::capabilities::Unit = crate::capabilities::Unit {
    name: "config",
    wit: &["arw:host/config"],
    actions: &[READ],
    requests: &[Request::any(READ)],
    schema: include_str!("schema.cedarschema"),
    config_section: None,
    link,
};

/// This folder as a capability unit (see [`crate::capabilities::Capability`]).
#[derive(Debug)]
pub struct ConfigCapability;

impl crate::capabilities::Capability for ConfigCapability {
    const UNIT: crate::capabilities::Unit = UNIT;
    type Config = ();
    type State = ();
    type Instance = ConfigInstance;

    fn start(config: &(), env: &crate::capabilities::StartEnv<'_>) -> Result<(), crate::HostError> {
        let _ = (config, env);
        Ok(())
    }

    fn instance(
        state: &(),
        component: &crate::capabilities::ComponentCapabilities,
        chain: &crate::runtime::entry::Chain,
    ) -> ConfigInstance {
        let _ = (state, chain);
        ConfigInstance::new(component)
    }
}

/// `arw:host/config` (0.2.0 and 0.1.0) on [`ConfigInstance`].
fn link(linker: &mut wasmtime::component::Linker<crate::runtime::store::InstanceState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    type State = crate::runtime::store::InstanceState;
    crate::bindings::imports::arw::host::config::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut State| {
        &mut s.capabilities.config
    })?;
    crate::bindings::v0_1::tool::arw::host::config::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut State| {
        &mut s.capabilities.config
    })
}

/// Merge the host's overrides over the manifest's values.
pub fn merge(
    manifest: &BTreeMap<String, String>,
    overrides: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut values = manifest.clone();
    if let Some(overrides) = overrides {
        values.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    values
}
