//! Component manifests: what a component is and what it asks for.
//!
//! ```toml
//! id = "arw:announce"
//! version = "0.1.0"
//! worlds = ["tool"]
//! description = "Publishes its input on a bus topic"
//!
//! [limits]
//! memory-mib = 16
//! timeout-ms = 1000
//! concurrency = 8
//!
//! [[capabilities]]
//! action = "bus.publish"
//! resource = "demo.*"
//!
//! [config]
//! topic = "demo.announce"
//! ```
//!
//! A manifest only *requests*: a capability is usable when it is requested
//! here **and** Cedar permits it. Patterns in `resource` use `*` for "any
//! run of characters".

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use arw_policy::Action;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod worlds;

/// The `arw:host` WIT package, embedded (`wit::CURRENT`: every file of `wit/`).
pub use worlds::files as wit;
pub use worlds::{World, WorldDef};

/// Longest bus topic, in bytes.
pub const MAX_TOPIC_BYTES: usize = 255;

/// Why a topic is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid topic `{topic}`: {reason}")]
pub struct InvalidTopic {
    /// The topic, cut to 64 characters.
    pub topic: String,
    pub reason: &'static str,
}

/// Check that `topic` is dot.case: segments of `[a-z0-9_-]` starting with a
/// letter or digit, separated by single dots, at most 255 bytes.
pub fn validate_topic(topic: &str) -> Result<(), InvalidTopic> {
    let fail = |reason| Err(InvalidTopic { topic: topic.chars().take(64).collect(), reason });
    if topic.is_empty() {
        return fail("it is empty");
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return fail("it is longer than 255 bytes");
    }
    for segment in topic.split('.') {
        let mut bytes = segment.bytes();
        match bytes.next() {
            None => return fail("it has an empty segment (`..`, or a leading or trailing dot)"),
            Some(b) if !(b.is_ascii_lowercase() || b.is_ascii_digit()) => {
                return fail("each segment must start with a-z or 0-9");
            }
            Some(_) => {}
        }
        if !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
            return fail("segments may only contain a-z, 0-9, `_` and `-`");
        }
    }
    Ok(())
}

/// The versions of `arw:host`: the one `wit/` defines and the older ones
/// the host still runs. What each world must export is read from the WIT
/// ([`World::required_exports`]).
pub mod exports {
    /// The version of `arw:host` that `wit/` defines (and `arw new` uses).
    pub const VERSION: &str = "0.2.0";
    /// Every version of `arw:host` the host links and calls: `0.1.0`
    /// components run unchanged (their interfaces are a subset of 0.2.0's).
    pub const VERSIONS: &[&str] = &["0.2.0", "0.1.0"];

    pub use crate::worlds::version_of;
}

/// A component id, `namespace:name`, both parts `[a-z0-9-]`, starting with
/// a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId {
    full: String,
    colon: usize,
}

impl ComponentId {
    pub fn as_str(&self) -> &str {
        &self.full
    }
    pub fn namespace(&self) -> &str {
        self.full.get(..self.colon).unwrap_or_default()
    }
    pub fn name(&self) -> &str {
        self.full.get(self.colon + 1..).unwrap_or_default()
    }
}

impl FromStr for ComponentId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid component id `{s}`: expected `namespace:name` using a-z, 0-9 and `-`");
        let (ns, name) = s.split_once(':').ok_or_else(bad)?;
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 64
                && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && p.bytes().next().is_some_and(|b| b != b'-')
        };
        if !part_ok(ns) || !part_ok(name) {
            return Err(bad());
        }
        Ok(ComponentId { full: s.to_string(), colon: ns.len() })
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl Serialize for ComponentId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.full)
    }
}

impl<'de> Deserialize<'de> for ComponentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// One requested capability: an action on resources matching a pattern.
///
/// The action is kept by name: which actions exist, and what each accepts
/// as a resource, is the host's to say (each capability checks the
/// requests for its actions when the component loads), so a registry can
/// hold components for hosts with capabilities it does not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityRequest {
    /// A Cedar action id, `"kv.read"`.
    pub action: String,
    /// A resource name, or a pattern where `*` matches any run of characters.
    pub resource: String,
}

impl CapabilityRequest {
    /// Does this request cover `action` on `resource`?
    pub fn covers(&self, action: Action, resource: &str) -> bool {
        self.action == action.as_str() && glob_match(&self.resource, resource)
    }
}

/// Is `name` shaped like an action id: dot-separated segments of a-z,
/// 0-9 and `-`, at least two (`"kv.read"`, `"admin.policy-reload"`)?
fn is_action_name(name: &str) -> bool {
    name.len() <= 64
        && name.split('.').count() >= 2
        && name.split('.').all(|seg| {
            seg.starts_with(|c: char| c.is_ascii_lowercase())
                && seg.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// `*` matches any run of characters (including none); everything else is
/// literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = rest.get(i + part.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Resource limits for each call of the component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Linear memory cap per instance, MiB.
    pub memory_mib: u64,
    /// Wall-clock deadline per call, milliseconds.
    pub timeout_ms: u64,
    /// Calls of this component that may run at once; more wait (up to the
    /// deadline) for a slot.
    pub concurrency: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_mib: 32, timeout_ms: 1000, concurrency: 8 }
    }
}

/// A component's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    pub id: ComponentId,
    pub version: semver::Version,
    /// The worlds the component implements (at least one).
    pub worlds: Vec<World>,
    #[serde(default)]
    pub description: String,
    /// For components loaded from a directory: the `.wasm` file, relative to
    /// the manifest. Defaults to the manifest's file name with `.wasm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<PathBuf>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub capabilities: Vec<CapabilityRequest>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// How the host drives a `resident` component (only with that world).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident: Option<Resident>,
    /// Keep instances of a tool between calls (the pooled lifecycle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooled: Option<Pooled>,
}

/// The `[pooled]` section: the tool's instances are made ahead and reused
/// instead of made fresh for every call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Pooled {
    /// How many idle instances are kept (and made at activation). At most
    /// `limits.concurrency`.
    pub size: u32,
    /// The component keeps nothing of one call that another caller must
    /// not see, so an instance may serve any caller. Without it an
    /// instance serves only the caller it first served.
    #[serde(default)]
    pub stateless: bool,
}

/// The `[resident]` section: how the host drives the one long-lived
/// instance of a `resident` component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Resident {
    /// The period of `lifecycle.tick`, milliseconds; none means the
    /// component is not ticked (it only handles its mailbox). At least the
    /// host's `resident.min-tick-ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick_ms: Option<u64>,
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ManifestError {
    pub message: String,
}

impl Manifest {
    /// Parse and check a manifest.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError { message: e.to_string() })?;
        manifest.check()?;
        Ok(manifest)
    }

    /// The checks `parse` makes beyond the format (non-empty worlds, limits
    /// above zero, well-formed requests). Manifests that arrive by another
    /// route (a signed JSON manifest) must pass them too. What each action
    /// accepts, and each role's own sections (`[pooled]`, `[resident]`),
    /// are checked by the host's units, at load (`arw_host::check_manifest`).
    pub fn check(&self) -> Result<(), ManifestError> {
        let fail = |message: String| Err(ManifestError { message });
        if self.worlds.is_empty() {
            let known: Vec<String> = World::all().map(|w| format!("{:?}", w.as_str())).collect();
            return fail(format!("`worlds` is empty: list at least one of {}", known.join(", ")));
        }
        let Limits { memory_mib, timeout_ms, concurrency } = self.limits;
        if memory_mib == 0 || timeout_ms == 0 || concurrency == 0 {
            return fail("`limits` must all be greater than zero".into());
        }
        for request in &self.capabilities {
            if !is_action_name(&request.action) {
                return fail(format!(
                    "capability action `{}` is not an action id (dot-separated a-z, 0-9 and `-`, e.g. \"kv.read\")",
                    request.action
                ));
            }
            if request.resource.is_empty() {
                return fail(format!("capability `{}` has an empty `resource`", request.action));
            }
        }
        Ok(())
    }

    /// Does the manifest name the world called `name`?
    pub fn names_world(&self, name: &str) -> bool {
        self.worlds.iter().any(|w| *w == *name)
    }

    /// The requests for one action.
    pub fn requests(&self, action: Action) -> impl Iterator<Item = &CapabilityRequest> {
        self.capabilities.iter().filter(move |r| r.action == action.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match("demo.*", "demo.x"));
        assert!(glob_match("demo.*", "demo."));
        assert!(!glob_match("demo.*", "demox"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b*c", "aXbY"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exact2"));
        assert!(glob_match("*.log", "a.log"));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn ids() {
        let id: ComponentId = "arw:text-stats".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((id.namespace(), id.name()), ("arw", "text-stats"));
        for bad in ["", "arw", ":x", "x:", "A:b", "a:b:c", "a:-b", "../x:y", "a:b c"] {
            assert!(bad.parse::<ComponentId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn parse_full_manifest() {
        let m = Manifest::parse(
            r#"
            id = "arw:announce"
            version = "0.1.0"
            worlds = ["tool"]
            [limits]
            memory-mib = 8
            [[capabilities]]
            action = "bus.publish"
            resource = "demo.*"
            [config]
            topic = "demo.x"
            "#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.limits, Limits { memory_mib: 8, ..Limits::default() });
        assert!(m.capabilities[0].covers(Action::new("bus.publish"), "demo.a"));
        assert!(!m.capabilities[0].covers(Action::new("bus.subscribe"), "demo.a"));
    }

    #[test]
    fn bad_manifests_say_why() {
        let cases = [
            ("id = \"x\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]", "invalid component id"),
            ("id = \"a:b\"\nversion = \"one\"\nworlds = [\"tool\"]", "version"),
            ("id = \"a:b\"\nversion = \"1.0.0\"\nworlds = []", "`worlds` is empty"),
            ("id = \"a:b\"\nversion = \"1.0.0\"\nworlds = [\"gateway\"]", "unknown world `gateway`"),
            ("id = \"a:b\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\ncolour = 1", "unknown field"),
            (
                "id = \"a:b\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n[[capabilities]]\naction = \"KV read\"\nresource = \"x\"",
                "not an action id",
            ),
            (
                "id = \"a:b\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n[[capabilities]]\naction = \"kv.read\"\nresource = \"\"",
                "empty `resource`",
            ),
            ("id = \"a:b\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n[limits]\ntimeout-ms = 0", "greater than zero"),
        ];
        for (text, expected) in cases {
            let err = Manifest::parse(text).err().unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(err.message.contains(expected), "{text:?} gave {err}");
        }
    }
}
