//! What a capability declares about itself, next to its code.
//!
//! Every capability folder exports one [`Unit`] named `UNIT`, and
//! [`super::UNITS`] lists them: the host assembles the Cedar schema from
//! their fragments (and validates the whole at start), `arw spec export`
//! writes it to `spec/arw.cedarschema`, and a test checks each unit is
//! complete (its actions in its fragment and in `docs/policy.md`, its
//! config section in `docs/configuration.md`, every component action owned
//! by exactly one unit). A manifest's requests are checked by the unit that
//! accepts their action ([`super::check_manifest`]).

use arw_policy::Action;
use wasmtime::component::Linker;

use crate::manifest::Manifest;
use crate::runtime::store::InstanceState;

/// One capability, described.
#[derive(Debug, Clone, Copy)]
pub struct Unit {
    /// The folder's name, `capabilities/<name>/`.
    pub name: &'static str,
    /// The WIT interfaces it gives components.
    pub wit: &'static [&'static str],
    /// The Cedar actions it asks about: exactly those its fragment
    /// declares (checked when the host assembles its schema).
    pub actions: &'static [Action],
    /// The actions a manifest may request of it (`[[capabilities]]`), each
    /// with how a request's resource pattern is checked. Usually its own
    /// component actions; `tools` checks `tool.invoke`, which the core
    /// declares because callers use it too.
    pub requests: &'static [Request],
    /// Its Cedar schema fragment (`schema.cedarschema` in its folder):
    /// its resource types and actions, in the `Arw` namespace.
    pub schema: &'static str,
    /// Its section of the host configuration (`[kv]`), if it has one.
    pub config_section: Option<&'static str>,
    /// Links its WIT interfaces (every `arw:host` version it serves) into
    /// the host's linker, each on its per-instance state.
    pub link: fn(&mut Linker<InstanceState>) -> wasmtime::Result<()>,
}

/// A manifest request a unit accepts, and its check.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub action: Action,
    /// Is `resource` (a pattern, `*` any run of characters) acceptable for
    /// this action in `manifest`? The error says what is wrong and how to
    /// write it.
    pub check: fn(manifest: &Manifest, resource: &str) -> Result<(), String>,
}

impl Request {
    /// A request whose resource may be any non-empty pattern.
    pub const fn any(action: Action) -> Self {
        Request { action, check: |_, _| Ok(()) }
    }
}

impl Unit {
    /// Its schema fragment, for [`arw_policy::schema::assemble`].
    pub fn fragment(&self) -> arw_policy::schema::Fragment {
        arw_policy::schema::Fragment { name: self.name, text: self.schema, actions: self.actions }
    }
}
