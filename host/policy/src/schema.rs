//! The Cedar schema every ARW policy is validated against.

use crate::error::PolicyError;

/// The text of `spec/arw.cedarschema`, compiled into the host so that the
/// schema the host enforces is the one in the repository.
pub const TEXT: &str = include_str!("../../../spec/arw.cedarschema");

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
