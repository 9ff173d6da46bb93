//! The actions a schema declares, read from the schema itself.
//!
//! No list of actions is kept in this crate: the core and each capability
//! declare theirs in Cedar schema text, and everything the host needs to
//! know about one (the resource type to build, whether a component or a
//! caller may ask, whether it belongs to a group) is read back from the
//! assembled schema here. The authorizer indexes its caches and counters by
//! position in this vocabulary.

use cedar_policy::{EntityTypeName, EntityUid};

use crate::Action;
use crate::error::PolicyError;

/// The most actions one schema may declare: the authorizer keeps one bit
/// per action in its state word (see `authorizer.rs`).
pub const MAX_ACTIONS: usize = 32;

/// One action of the schema.
#[derive(Debug, Clone)]
pub struct ActionInfo {
    /// The Cedar id, `"kv.read"`.
    pub name: String,
    /// The resource type it applies to (`Arw::KvNamespace`).
    pub resource_type: EntityTypeName,
    /// May a component be its principal (can a manifest request it)?
    pub for_components: bool,
    /// May a caller from outside (the CLI, HTTP, MCP) be its principal?
    pub for_callers: bool,
    /// Does it belong to an action group (`action in Arw::Action::"admin"`)?
    pub grouped: bool,
    pub(crate) uid: EntityUid,
}

/// Every action a schema declares that applies to something, by name.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    actions: Vec<ActionInfo>,
    /// Name → position: asked on every decision, cached ones too.
    positions: rustc_hash::FxHashMap<Box<str>, usize>,
}

impl Vocabulary {
    /// Read the actions of `schema`. Group actions that apply to nothing
    /// (`action "admin";`) are not asked about and are left out. Fails when
    /// an action applies to more than one resource type (the host builds
    /// one resource per request) or the schema has more than
    /// [`MAX_ACTIONS`].
    pub fn of(schema: &cedar_policy::Schema) -> Result<Self, PolicyError> {
        let fail = |message: String| PolicyError::Schema { message };
        let entities = schema.action_entities().map_err(|e| fail(format!("the schema's actions: {e}")))?;
        let component = type_name("Component");
        let caller = type_name("Caller");
        let mut actions = Vec::new();
        for uid in schema.actions() {
            let name = uid.id().unescaped().to_string();
            let resources: Vec<&EntityTypeName> = schema.resources_for_action(uid).into_iter().flatten().collect();
            let resource_type = match resources.as_slice() {
                [] => continue,
                [one] => (*one).clone(),
                _ => {
                    return Err(fail(format!(
                        "action `{name}` applies to {} resource types; an ARW action applies to exactly one",
                        resources.len()
                    )));
                }
            };
            let principals: Vec<&EntityTypeName> = schema.principals_for_action(uid).into_iter().flatten().collect();
            let grouped = entities.ancestors(uid).is_some_and(|mut a| a.next().is_some());
            actions.push(ActionInfo {
                name,
                resource_type,
                for_components: principals.iter().any(|p| Some(*p) == component.as_ref()),
                for_callers: principals.iter().any(|p| Some(*p) == caller.as_ref()),
                grouped,
                uid: uid.clone(),
            });
        }
        if actions.len() > MAX_ACTIONS {
            return Err(fail(format!(
                "the schema declares {} actions; the host supports at most {MAX_ACTIONS}",
                actions.len()
            )));
        }
        // Sorted, so the same schema always gives the same indices.
        actions.sort_by(|a, b| a.name.cmp(&b.name));
        let positions = actions.iter().enumerate().map(|(i, a)| (a.name.as_str().into(), i)).collect();
        Ok(Vocabulary { actions, positions })
    }

    /// No actions: every request is denied.
    pub fn empty() -> Self {
        Vocabulary { actions: Vec::new(), positions: Default::default() }
    }

    /// The position of `action`, if the schema declares it.
    pub fn index(&self, action: Action) -> Option<usize> {
        self.positions.get(action.as_str()).copied()
    }

    /// What the schema says about the action called `name`.
    pub fn get(&self, name: &str) -> Option<&ActionInfo> {
        self.actions.get(*self.positions.get(name)?)
    }

    pub(crate) fn at(&self, index: usize) -> Option<&ActionInfo> {
        self.actions.get(index)
    }

    /// Every action, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &ActionInfo> {
        self.actions.iter()
    }

    pub fn len(&self) -> usize {
        self.actions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

fn type_name(basename: &str) -> Option<EntityTypeName> {
    format!("Arw::{basename}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_is_read_back_from_the_schema() {
        let schema = crate::schema::parse(crate::schema::CORE).unwrap_or_else(|e| panic!("{e}"));
        let vocabulary = Vocabulary::of(&schema).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = vocabulary.iter().map(|a| a.name.as_str()).collect();
        let mut core: Vec<&str> = Action::CORE.iter().map(|a| a.as_str()).collect();
        core.sort();
        assert_eq!(names, core, "the group action `admin` applies to nothing and is left out");
        let tool = vocabulary.get("tool.invoke").unwrap_or_else(|| panic!("tool.invoke"));
        assert!(tool.for_components && tool.for_callers && !tool.grouped);
        assert_eq!(tool.resource_type.to_string(), "Arw::Tool");
        let install = vocabulary.get("admin.install").unwrap_or_else(|| panic!("admin.install"));
        assert!(!install.for_components && install.for_callers && install.grouped);
    }

    #[test]
    fn an_action_on_two_resource_types_is_refused() {
        let text = crate::schema::CORE.replace(
            r#"action "tool.invoke" appliesTo { principal: [Caller, Component], resource: [Tool]"#,
            r#"action "tool.invoke" appliesTo { principal: [Caller, Component], resource: [Tool, Operation]"#,
        );
        let schema = crate::schema::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        let err = Vocabulary::of(&schema).unwrap_err().to_string();
        assert!(err.contains("`tool.invoke` applies to 2 resource types"), "{err}");
    }
}
