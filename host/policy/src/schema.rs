//! The Cedar schema every ARW policy is validated against.

use std::collections::BTreeSet;

use crate::Action;
use crate::error::PolicyError;
use crate::vocabulary::Vocabulary;

/// The text of `spec/arw.cedarschema`, compiled into the host so that the
/// schema the host enforces is the one in the repository.
pub const TEXT: &str = include_str!("../../../spec/arw.cedarschema");

/// The core of the schema: principals, the request context, tools, the
/// HTTP API's operations and the callers' actions. Each capability of the
/// host adds its fragment (see [`assemble`]).
pub const CORE: &str = include_str!("core.cedarschema");

/// One capability's part of the schema: its resource types and actions.
#[derive(Debug, Clone, Copy)]
pub struct Fragment {
    /// The capability, for diagnostics ("kv").
    pub name: &'static str,
    /// Cedar schema text, in the `Arw` namespace.
    pub text: &'static str,
    /// The actions the capability asks about: `text` must declare exactly
    /// these.
    pub actions: &'static [Action],
}

/// The whole schema from [`CORE`] and `fragments`: each fragment is
/// parsed on its own (so a syntax error names it), then its body is
/// merged into the core's `namespace Arw { ... }` (one file may declare a
/// namespace once) and the whole is checked. Returns the schema and its
/// text (what `spec/arw.cedarschema` holds).
///
/// Checked at start: each fragment declares exactly the actions its
/// capability says it asks about, no two declare the same action, and the
/// whole has a [`Vocabulary`] (each action on one resource type, at most
/// [`crate::MAX_ACTIONS`]).
pub fn assemble(fragments: &[Fragment]) -> Result<(cedar_policy::Schema, String), PolicyError> {
    let fail = |name: &str, message: String| PolicyError::Schema {
        message: format!("in the schema fragment of `{name}`: {message}"),
    };
    let core_end = CORE.rfind('}').ok_or_else(|| fail("core", "no closing `}` of `namespace Arw`".into()))?;
    let mut text = CORE.get(..core_end).unwrap_or_default().to_string();
    for fragment in fragments {
        let (parsed, _warnings) = cedar_policy::SchemaFragment::from_cedarschema_str(fragment.text)
            .map_err(|e| fail(fragment.name, crate::error::render_diagnostic(&e)))?;
        let declared = declared_actions(parsed).map_err(|e| fail(fragment.name, e))?;
        let listed: BTreeSet<String> = fragment.actions.iter().map(|a| a.as_str().to_string()).collect();
        if declared != listed {
            return Err(fail(
                fragment.name,
                format!(
                    "it declares the actions {declared:?} but the capability asks about {listed:?}: \
                     declare each action it asks about, and only those"
                ),
            ));
        }
        let (header, rest) = fragment
            .text
            .split_once("namespace Arw {")
            .ok_or_else(|| fail(fragment.name, "it must declare `namespace Arw { ... }`".into()))?;
        let body = rest.rfind('}').and_then(|end| rest.get(..end)).unwrap_or_default();
        text.push_str(&format!(
            "\n    // ---- The `{name}` capability (host/runtime/src/capabilities/{name}/schema.cedarschema)\n",
            name = fragment.name
        ));
        for line in header.lines().filter(|l| !l.trim().is_empty()) {
            text.push_str(&format!("    {}\n", line.trim()));
        }
        text.push_str(body.trim_start_matches('\n'));
    }
    text.push_str("}\n");
    let schema = parse(&text)?;
    Vocabulary::of(&schema)?;
    Ok((schema, text))
}

/// The action names a fragment declares (its JSON form's
/// `Arw.actions`).
fn declared_actions(fragment: cedar_policy::SchemaFragment) -> Result<BTreeSet<String>, String> {
    let json = fragment.to_json_value().map_err(|e| e.to_string())?;
    let actions = json.get("Arw").and_then(|ns| ns.get("actions")).and_then(serde_json::Value::as_object);
    Ok(actions.map(|a| a.keys().cloned().collect()).unwrap_or_default())
}

/// The schema file name used in diagnostics.
pub const FILE_NAME: &str = "arw.cedarschema";

/// Parse the embedded schema.
pub fn embedded() -> Result<cedar_policy::Schema, PolicyError> {
    parse(TEXT)
}

/// Parse a schema in Cedar's human-readable syntax.
pub fn parse(text: &str) -> Result<cedar_policy::Schema, PolicyError> {
    cedar_policy::Schema::from_cedarschema_str(text)
        .map(|(schema, _warnings)| schema)
        .map_err(|e| PolicyError::Schema { message: crate::error::render_diagnostic(&e) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPICS: &str = "namespace Arw {\n    entity Topic = { name: String };\n    action \"bus.publish\" appliesTo { principal: [Component], resource: [Topic], context: RequestContext };\n}\n";

    #[test]
    fn embedded_schema_parses_and_has_the_core_actions() {
        let schema = embedded().unwrap_or_else(|e| panic!("{e}"));
        let vocabulary = Vocabulary::of(&schema).unwrap_or_else(|e| panic!("{e}"));
        for action in Action::CORE {
            assert!(vocabulary.index(action).is_some(), "schema lacks action {action}");
        }
        assert!(schema.actions().any(|a| a.id().unescaped() == "admin"), "the group action `admin`");
    }

    #[test]
    fn a_fragment_declares_exactly_its_actions() {
        const PUBLISH: &[Action] = &[Action::new("bus.publish")];
        const TWO: &[Action] = &[Action::new("bus.publish"), Action::new("bus.subscribe")];
        let ok = Fragment { name: "bus", text: TOPICS, actions: PUBLISH };
        assert!(assemble(&[ok]).is_ok());
        let missing = Fragment { name: "bus", text: TOPICS, actions: &[] };
        let err = assemble(&[missing]).unwrap_err().to_string();
        assert!(err.contains("`bus`") && err.contains("bus.publish"), "{err}");
        let extra = Fragment { actions: TWO, ..ok };
        assert!(assemble(&[extra]).unwrap_err().to_string().contains("bus.subscribe"));
        assert!(assemble(&[ok, ok]).is_err(), "the same action declared twice");
    }
}
