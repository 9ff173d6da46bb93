//! The Cedar schema every ARW policy is validated against.

use crate::error::PolicyError;

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
}

/// The whole schema from [`CORE`] and `fragments`: each fragment is
/// parsed on its own (so a syntax error names it), then its body is
/// merged into the core's `namespace Arw { ... }` (one file may declare a
/// namespace once) and the whole is checked. Returns the schema and its
/// text (what `spec/arw.cedarschema` holds).
pub fn assemble(fragments: &[Fragment]) -> Result<(cedar_policy::Schema, String), PolicyError> {
    let fail = |name: &str, message: String| PolicyError::Schema {
        message: format!("in the schema fragment of `{name}`: {message}"),
    };
    let core_end = CORE.rfind('}').ok_or_else(|| fail("core", "no closing `}` of `namespace Arw`".into()))?;
    let mut text = CORE.get(..core_end).unwrap_or_default().to_string();
    for fragment in fragments {
        let (_fragment, _warnings) = cedar_policy::SchemaFragment::from_cedarschema_str(fragment.text)
            .map_err(|e| fail(fragment.name, crate::error::render_diagnostic(&e)))?;
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
    Ok((schema, text))
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
    #[test]
    fn embedded_schema_parses_and_names_every_action() {
        let schema = super::embedded().unwrap_or_else(|e| panic!("{e}"));
        let actions: Vec<String> = schema.actions().map(|a| a.id().unescaped().to_string()).collect();
        for action in crate::Action::ALL {
            assert!(actions.iter().any(|a| a == action.as_str()), "schema lacks action {action}");
        }
        // Plus the group action "admin", which is never asked about directly.
        assert_eq!(actions.len(), crate::Action::ALL.len() + 1, "schema has actions the host does not know");
        assert!(actions.iter().any(|a| a == "admin"));
    }
}
