//! ARW's authorization vocabulary and its mapping onto Cedar entities.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use cedar_policy::{Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};

/// An action the host asks Cedar about, by its Cedar id (`"kv.read"`).
///
/// The vocabulary is open: the core declares the actions of callers from
/// outside and of tools ([`Action::TOOL_INVOKE`], the admin actions), and
/// each capability declares its own next to its code (its schema fragment
/// and a constant such as `kv::READ`). What the host knows about an action
/// (its resource type, who may be its principal, whether it belongs to a
/// group) is read from the assembled schema ([`crate::Vocabulary`]); an
/// action the schema does not declare is always denied.
#[derive(Debug, Clone, Copy, Eq)]
pub struct Action(&'static str);

impl Action {
    /// The action with Cedar id `name`.
    pub const fn new(name: &'static str) -> Self {
        Action(name)
    }

    /// A caller (the CLI, HTTP or MCP) or a component invoking a tool.
    pub const TOOL_INVOKE: Action = Action::new("tool.invoke");
    pub const ADMIN_INSTALL: Action = Action::new("admin.install");
    pub const ADMIN_UNINSTALL: Action = Action::new("admin.uninstall");
    pub const ADMIN_ROLLBACK: Action = Action::new("admin.rollback");
    pub const ADMIN_POLICY_RELOAD: Action = Action::new("admin.policy-reload");
    pub const ADMIN_GRANTS: Action = Action::new("admin.grants");
    pub const ADMIN_STATUS: Action = Action::new("admin.status");
    pub const ADMIN_GATING: Action = Action::new("admin.gating");
    pub const ADMIN_GATING_CHECK: Action = Action::new("admin.gating-check");
    pub const ADMIN_GATING_RELOAD: Action = Action::new("admin.gating-reload");
    pub const FEEDBACK_READ: Action = Action::new("feedback.read");
    pub const FEEDBACK_MODE: Action = Action::new("feedback.mode");
    pub const FEEDBACK_APPLY: Action = Action::new("feedback.apply");

    /// The actions the core schema declares (`core.cedarschema`).
    pub const CORE: [Action; 13] = [
        Action::TOOL_INVOKE,
        Action::ADMIN_INSTALL,
        Action::ADMIN_UNINSTALL,
        Action::ADMIN_ROLLBACK,
        Action::ADMIN_POLICY_RELOAD,
        Action::ADMIN_GRANTS,
        Action::ADMIN_STATUS,
        Action::ADMIN_GATING,
        Action::ADMIN_GATING_CHECK,
        Action::ADMIN_GATING_RELOAD,
        Action::FEEDBACK_READ,
        Action::FEEDBACK_MODE,
        Action::FEEDBACK_APPLY,
    ];

    /// The Cedar action id, as written in policies and manifests.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl PartialEq for Action {
    fn eq(&self, other: &Action) -> bool {
        // Usually the same literal; the text decides either way.
        std::ptr::eq(self.0, other.0) || self.0 == other.0
    }
}

impl std::hash::Hash for Action {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq<str> for Action {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A component making a capability call (or calling a tool itself).
    Component { id: String, version: String, publisher: String, digest: String },
    /// Someone outside the host calling a tool: the local CLI, later HTTP and
    /// MCP clients. Roles become the caller's parents in Cedar.
    Caller { name: String, roles: Vec<String> },
}

impl Principal {
    pub fn component(
        id: impl Into<String>,
        version: impl Into<String>,
        publisher: impl Into<String>,
        digest: impl Into<String>,
    ) -> Self {
        Principal::Component {
            id: id.into(),
            version: version.into(),
            publisher: publisher.into(),
            digest: digest.into(),
        }
    }

    pub fn caller(name: impl Into<String>, roles: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Principal::Caller { name: name.into(), roles: roles.into_iter().map(Into::into).collect() }
    }

    /// The local operator: the `arw` CLI acting for the machine's user.
    pub fn local_operator() -> Self {
        Principal::caller("local", ["operator"])
    }

    /// How this principal is written in Cedar, e.g. `Arw::Component::"arw:kv-counter"`.
    pub fn cedar_uid(&self) -> String {
        match self {
            Principal::Component { id, .. } => format!("Arw::Component::{id:?}"),
            Principal::Caller { name, .. } => format!("Arw::Caller::{name:?}"),
        }
    }

    /// The principal's entity and its parents' entities.
    pub(crate) fn entities(&self) -> Result<Vec<Entity>, String> {
        match self {
            Principal::Component { id, version, publisher, digest } => {
                let (namespace, name) = id.split_once(':').unwrap_or(("", id.as_str()));
                let attrs = HashMap::from([
                    ("id".to_string(), RestrictedExpression::new_string(id.clone())),
                    ("namespace".to_string(), RestrictedExpression::new_string(namespace.to_string())),
                    ("name".to_string(), RestrictedExpression::new_string(name.to_string())),
                    ("version".to_string(), RestrictedExpression::new_string(version.clone())),
                    ("publisher".to_string(), RestrictedExpression::new_string(publisher.clone())),
                    ("digest".to_string(), RestrictedExpression::new_string(digest.clone())),
                ]);
                Ok(vec![entity(uid("Component", id), attrs, HashSet::new())?])
            }
            Principal::Caller { name, roles } => {
                let role_uids: HashSet<EntityUid> = roles.iter().map(|r| uid("Role", r)).collect();
                let attrs = HashMap::from([("name".to_string(), RestrictedExpression::new_string(name.clone()))]);
                let mut out = vec![entity(uid("Caller", name), attrs, role_uids.clone())?];
                out.extend(role_uids.into_iter().map(|r| Entity::new_no_attrs(r, HashSet::new())));
                Ok(out)
            }
        }
    }

    pub(crate) fn uid(&self) -> EntityUid {
        match self {
            Principal::Component { id, .. } => uid("Component", id),
            Principal::Caller { name, .. } => uid("Caller", name),
        }
    }
}

/// The resource a request is about: everything Cedar is shown of it. The
/// decision cache keys on the whole of it, so a new attribute here is a new
/// part of the key by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Resource<'a> {
    /// The resource's name (`Arw::<Kind>::"<name>"`, attribute `name`).
    pub name: &'a str,
    /// For tools: the id of the component that provides it (attribute
    /// `component`).
    pub component: Option<&'a str>,
}

impl<'a> Resource<'a> {
    /// A resource known by its name alone.
    pub fn named(name: &'a str) -> Self {
        Resource { name, component: None }
    }

    /// The tool `name` as provided by the component `component`.
    pub fn tool(name: &'a str, component: &'a str) -> Self {
        Resource { name, component: Some(component) }
    }
}

/// The resource entity of `resource`, of the Cedar type `type_name`
/// (`Arw::Topic`). Tools also carry the providing component (`""` when
/// none is given).
pub(crate) fn resource_entity(type_name: &EntityTypeName, resource: Resource<'_>) -> Result<Entity, String> {
    let mut attrs = HashMap::from([("name".to_string(), RestrictedExpression::new_string(resource.name.to_string()))]);
    let owner = || RestrictedExpression::new_string(resource.component.unwrap_or_default().to_string());
    match type_name.basename() {
        "Tool" => _ = attrs.insert("component".to_string(), owner()),
        "Knob" => _ = attrs.insert("owner".to_string(), owner()),
        _ => {}
    }
    entity(resource_uid(type_name, resource.name), attrs, HashSet::new())
}

pub(crate) fn resource_uid(type_name: &EntityTypeName, name: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name.clone(), EntityId::new(name))
}

fn uid(type_name: &str, id: &str) -> EntityUid {
    // `Arw::<Type>` is a constant, well-formed type name; the id is an
    // arbitrary string, which Cedar accepts as is.
    let type_name =
        EntityTypeName::from_str(&format!("Arw::{type_name}")).unwrap_or_else(|_| unreachable_type_name(type_name));
    EntityUid::from_type_name_and_id(type_name, EntityId::new(id))
}

#[cold]
fn unreachable_type_name(type_name: &str) -> EntityTypeName {
    // Only reachable if a constant above stops being a valid Cedar name,
    // which the unit tests would catch first.
    panic!("`Arw::{type_name}` is not a valid Cedar type name")
}

/// An entity with `attrs`. A failure is returned, never papered over: an
/// entity rebuilt without its attributes could make a `forbid` that tests
/// an attribute silently not apply.
fn entity(
    uid: EntityUid,
    attrs: HashMap<String, RestrictedExpression>,
    parents: HashSet<EntityUid>,
) -> Result<Entity, String> {
    Entity::new(uid.clone(), attrs, parents).map_err(|e| format!("cannot build the entity `{uid}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_compare_by_their_text() {
        let owned = String::from("kv.read");
        let leaked: &'static str = Box::leak(owned.into_boxed_str());
        assert_eq!(Action::new("kv.read"), Action::new(leaked));
        assert_ne!(Action::new("kv.read"), Action::new("kv.write"));
        assert!(Action::TOOL_INVOKE == *"tool.invoke");
    }
}
