//! ARW's authorization vocabulary and its mapping onto Cedar entities.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use cedar_policy::{Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};

/// Every action the host asks Cedar about. The Cedar schema declares exactly
/// these (a unit test keeps the two in step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    BusPublish,
    BusSubscribe,
    KvRead,
    KvWrite,
    LogWrite,
    ConfigRead,
    ToolInvoke,
    /// A component sending an HTTP request (`wasi:http/outgoing-handler`),
    /// per target authority `host:port`.
    HttpRequest,
    /// A caller watching the event stream (`GET /events`), per topic.
    EventsSubscribe,
    AdminInstall,
    AdminUninstall,
    AdminRollback,
    AdminPolicyReload,
    AdminGrants,
    AdminStatus,
}

impl Action {
    pub const ALL: [Action; 15] = [
        Action::BusPublish,
        Action::BusSubscribe,
        Action::KvRead,
        Action::KvWrite,
        Action::LogWrite,
        Action::ConfigRead,
        Action::ToolInvoke,
        Action::HttpRequest,
        Action::EventsSubscribe,
        Action::AdminInstall,
        Action::AdminUninstall,
        Action::AdminRollback,
        Action::AdminPolicyReload,
        Action::AdminGrants,
        Action::AdminStatus,
    ];

    /// Can a component ask for this action in its manifest? The events and
    /// admin actions belong to callers from outside (HTTP, MCP, the CLI).
    pub fn for_components(self) -> bool {
        !matches!(self.resource_kind(), ResourceKind::Operation) && self != Action::EventsSubscribe
    }

    /// The Cedar action id, as written in policies and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::BusPublish => "bus.publish",
            Action::BusSubscribe => "bus.subscribe",
            Action::KvRead => "kv.read",
            Action::KvWrite => "kv.write",
            Action::LogWrite => "log.write",
            Action::ConfigRead => "config.read",
            Action::ToolInvoke => "tool.invoke",
            Action::HttpRequest => "http.request",
            Action::EventsSubscribe => "events.subscribe",
            Action::AdminInstall => "admin.install",
            Action::AdminUninstall => "admin.uninstall",
            Action::AdminRollback => "admin.rollback",
            Action::AdminPolicyReload => "admin.policy-reload",
            Action::AdminGrants => "admin.grants",
            Action::AdminStatus => "admin.status",
        }
    }

    /// The kind of resource this action applies to.
    pub fn resource_kind(self) -> ResourceKind {
        match self {
            Action::BusPublish | Action::BusSubscribe | Action::EventsSubscribe => ResourceKind::Topic,
            Action::KvRead | Action::KvWrite => ResourceKind::KvNamespace,
            Action::LogWrite => ResourceKind::LogLevel,
            Action::ConfigRead => ResourceKind::ConfigKey,
            Action::ToolInvoke => ResourceKind::Tool,
            Action::HttpRequest => ResourceKind::HttpAuthority,
            Action::AdminInstall
            | Action::AdminUninstall
            | Action::AdminRollback
            | Action::AdminPolicyReload
            | Action::AdminGrants
            | Action::AdminStatus => ResourceKind::Operation,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn uid(self) -> EntityUid {
        uid("Action", self.as_str())
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

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL.into_iter().find(|a| a.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
            format!("unknown action `{s}` (known actions: {})", known.join(", "))
        })
    }
}

/// The Cedar entity types of resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    Topic,
    KvNamespace,
    LogLevel,
    ConfigKey,
    Tool,
    /// The target of an outgoing HTTP request, `host:port`.
    HttpAuthority,
    /// An operation of the HTTP API, named by its gating key (`admin:install`).
    Operation,
}

impl ResourceKind {
    /// The entity type name inside the `Arw` namespace.
    pub fn type_name(self) -> &'static str {
        match self {
            ResourceKind::Topic => "Topic",
            ResourceKind::KvNamespace => "KvNamespace",
            ResourceKind::LogLevel => "LogLevel",
            ResourceKind::ConfigKey => "ConfigKey",
            ResourceKind::Tool => "Tool",
            ResourceKind::HttpAuthority => "HttpAuthority",
            ResourceKind::Operation => "Operation",
        }
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

/// The resource entity of `resource`, of `kind`. Tools also carry the
/// providing component (`""` when none is given).
pub(crate) fn resource_entity(kind: ResourceKind, resource: Resource<'_>) -> Result<Entity, String> {
    let mut attrs = HashMap::from([("name".to_string(), RestrictedExpression::new_string(resource.name.to_string()))]);
    if kind == ResourceKind::Tool {
        attrs.insert(
            "component".to_string(),
            RestrictedExpression::new_string(resource.component.unwrap_or_default().to_string()),
        );
    }
    entity(uid(kind.type_name(), resource.name), attrs, HashSet::new())
}

pub(crate) fn resource_uid(kind: ResourceKind, name: &str) -> EntityUid {
    uid(kind.type_name(), name)
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
    fn actions_round_trip_through_their_names() {
        for action in Action::ALL {
            assert_eq!(action.as_str().parse::<Action>(), Ok(action));
        }
        assert!("kv.delete".parse::<Action>().unwrap_err().contains("known actions"));
    }

    #[test]
    fn every_resource_type_name_is_valid_cedar() {
        for kind in [
            ResourceKind::Topic,
            ResourceKind::KvNamespace,
            ResourceKind::LogLevel,
            ResourceKind::ConfigKey,
            ResourceKind::Tool,
            ResourceKind::HttpAuthority,
            ResourceKind::Operation,
        ] {
            assert!(EntityTypeName::from_str(&format!("Arw::{}", kind.type_name())).is_ok());
        }
    }
}
