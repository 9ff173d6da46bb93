//! The worlds a manifest may name, read from the `arw:host` WIT package
//! itself (`wit/`, embedded by `build.rs`): every world there that exports
//! something is one a component can target, and what it must export is
//! what the world exports. A new world needs no line here.
//!
//! The same scan gives, for each version of `arw:host` the host still
//! runs (`wit/compat/`), the interfaces it declares, so a component built
//! against an older version is matched against that version's interfaces.

use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::exports::{VERSION, VERSIONS};

/// The package's files, embedded by `build.rs`: `CURRENT` (every file of
/// `wit/`, by name, sorted) and `COMPAT` (each frozen older version).
pub mod files {
    include!(concat!(env!("OUT_DIR"), "/wit_files.rs"));
}

/// One world of the package, as declared.
#[derive(Debug)]
pub struct WorldDef {
    /// `"tool"`.
    pub name: String,
    /// What a component of it must export, qualified at [`VERSION`]
    /// (`"arw:host/tool-handler@0.2.0"`), in declaration order.
    pub exports: Vec<String>,
}

/// What the package declares, per version.
#[derive(Debug)]
struct Catalogue {
    /// The current version's worlds that export something.
    worlds: Vec<WorldDef>,
    /// Per version of [`VERSIONS`]: the interfaces it declares.
    interfaces: Vec<(&'static str, Vec<String>)>,
}

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let (worlds, current) = scan(files::CURRENT);
        let mut interfaces = vec![(VERSION, current)];
        for compat in files::COMPAT {
            let (_, declared) = scan(compat);
            let version = compat.iter().find_map(|(_, text)| package_version(text)).unwrap_or_default();
            if let Some(version) = VERSIONS.iter().find(|v| **v == version) {
                interfaces.push((version, declared));
            }
        }
        let worlds = worlds
            .into_iter()
            .filter(|(_, exports)| !exports.is_empty())
            .map(|(name, exports)| WorldDef {
                name,
                exports: exports.into_iter().map(|e| format!("arw:host/{e}@{VERSION}")).collect(),
            })
            .collect();
        Catalogue { worlds, interfaces }
    })
}

/// The version in a file's `package arw:host@X;` line.
fn package_version(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| l.starts_with("package "))?;
    Some(line.strip_prefix("package arw:host@")?.trim_end_matches(';').trim().to_string())
}

/// The worlds (with their `export`s) and the interfaces declared in
/// `files`. The package is ARW's own: one declaration per line, `world`
/// and `interface` blocks closed by a `}` at the start of a line.
fn scan(files: &[(&str, &str)]) -> (Vec<(String, Vec<String>)>, Vec<String>) {
    let mut worlds = Vec::new();
    let mut interfaces = Vec::new();
    for (_, text) in files {
        let mut world: Option<(String, Vec<String>)> = None;
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or_default().trim();
            if let Some(name) = code.strip_prefix("world ").and_then(|r| r.strip_suffix('{')) {
                world = Some((name.trim().to_string(), Vec::new()));
            } else if let Some(name) = code.strip_prefix("interface ").and_then(|r| r.strip_suffix('{')) {
                interfaces.push(name.trim().to_string());
            } else if let (Some((_, exports)), Some(export)) =
                (world.as_mut(), code.strip_prefix("export ").and_then(|r| r.strip_suffix(';')))
            {
                exports.push(export.trim().to_string());
            } else if line.starts_with('}')
                && let Some(done) = world.take()
            {
                worlds.push(done);
            }
        }
    }
    (worlds, interfaces)
}

/// The `arw:host` version of `export` if it names `interface` (given at
/// [`VERSION`]) at a version this host runs and that version declares the
/// interface (`lifecycle` exists from 0.2.0 only).
pub fn version_of(export: &str, interface: &str) -> Option<&'static str> {
    let unversioned = interface.split('@').next()?;
    let (name, version) = export.split_once('@')?;
    if name != unversioned {
        return None;
    }
    let short = unversioned.strip_prefix("arw:host/")?;
    catalogue()
        .interfaces
        .iter()
        .find(|(v, declared)| *v == version && declared.iter().any(|i| i == short))
        .map(|(v, _)| *v)
}

/// A world of `wit/` a component can target (`worlds = ["tool"]`).
#[derive(Clone, Copy)]
pub struct World(&'static WorldDef);

impl World {
    /// The world called `name`, if the package declares it.
    pub fn named(name: &str) -> Option<World> {
        catalogue().worlds.iter().find(|w| w.name == name).map(World)
    }

    /// Every world a component can target, in the package's file order.
    pub fn all() -> impl Iterator<Item = World> {
        catalogue().worlds.iter().map(World)
    }

    pub fn as_str(self) -> &'static str {
        &self.0.name
    }

    /// The exports a component of this world must have (named at
    /// [`VERSION`]; [`version_of`] accepts older ones).
    pub fn required_exports(self) -> &'static [String] {
        &self.0.exports
    }

    /// Does a component of this world get bus events (it exports
    /// `event-handler`)?
    pub fn receives_events(self) -> bool {
        self.0.exports.iter().any(|e| e.starts_with("arw:host/event-handler@"))
    }

    /// The first required export missing from `exported` (a component's
    /// export names), if any.
    pub fn missing_export<'a>(self, exported: impl IntoIterator<Item = &'a str> + Clone) -> Option<&'static str> {
        self.required_exports()
            .iter()
            .find(|required| !exported.clone().into_iter().any(|e| version_of(e, required).is_some()))
            .map(String::as_str)
    }
}

impl PartialEq for World {
    fn eq(&self, other: &World) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for World {}

impl std::hash::Hash for World {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl PartialEq<str> for World {
    fn eq(&self, other: &str) -> bool {
        self.0.name == other
    }
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "World({})", self.0.name)
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.name)
    }
}

impl std::str::FromStr for World {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        World::named(s).ok_or_else(|| {
            let known: Vec<String> = World::all().map(|w| format!("{:?}", w.as_str())).collect();
            format!("unknown world `{s}`: this host's worlds are {}", known.join(", "))
        })
    }
}

impl Serialize for World {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for World {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worlds_are_read_from_the_wit() {
        let names: Vec<&str> = World::all().map(World::as_str).collect();
        assert_eq!(
            names,
            ["feedback", "gate", "queue-backend", "resident", "subscriber", "tool"],
            "`imports` exports nothing and is no role"
        );
        let resident = World::named("resident").unwrap_or_else(|| panic!("resident"));
        assert_eq!(resident.required_exports(), ["arw:host/lifecycle@0.2.0", "arw:host/event-handler@0.2.0"]);
        assert!(resident.receives_events());
        let tool = World::named("tool").unwrap_or_else(|| panic!("tool"));
        assert!(!tool.receives_events());
        assert_eq!(tool.missing_export(["arw:host/tool-handler@0.1.0"]), None, "0.1.0 had tool-handler");
        assert_eq!(resident.missing_export(["arw:host/lifecycle@0.1.0"]), Some("arw:host/lifecycle@0.2.0"));
        assert!("gateway".parse::<World>().unwrap_err().contains("\"tool\""));
    }

    #[test]
    fn every_version_declares_its_package() {
        assert_eq!(catalogue().interfaces.len(), VERSIONS.len(), "a version in VERSIONS has no WIT in wit/compat/");
        for (_, text) in files::CURRENT {
            assert_eq!(package_version(text).as_deref(), Some(VERSION));
        }
    }
}
