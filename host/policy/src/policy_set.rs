//! Loading policy files into one validated Cedar policy set.

use std::path::Path;

use cedar_policy::{PolicyId, ValidationMode, Validator};
use miette::Diagnostic;

use crate::error::{PolicyDiagnostic, PolicyError, line_col, render_diagnostic};

/// One policy file's text and the name it is reported under.
#[derive(Debug, Clone)]
pub struct PolicySource {
    pub name: String,
    pub text: String,
}

impl PolicySource {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        PolicySource { name: name.into(), text: text.into() }
    }

    /// Every `*.cedar` file directly in `dir`, sorted by name. A missing
    /// directory is an error (so a typo in a path does not silently mean
    /// "no grants"); an empty one yields no sources.
    pub fn read_dir(dir: &Path) -> Result<Vec<PolicySource>, PolicyError> {
        let io = |error| PolicyError::Io { path: dir.display().to_string(), error };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|e| e == "cedar") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                // A policy directory is the operator's: a symlinked file is
                // followed, but it must lead to a regular file of sane size.
                let text = String::from_utf8(arw_fs::read_user_file(&path, MAX_POLICY_FILE_BYTES)?)
                    .map_err(|_| arw_fs::ReadError::NotUtf8 { path: path.clone() })?;
                Ok(PolicySource::new(path.display().to_string(), text))
            })
            .collect()
    }
}

/// The largest policy file read.
pub const MAX_POLICY_FILE_BYTES: u64 = 4 << 20;

/// A validated set of policies, with where each one came from.
#[derive(Debug, Clone)]
pub struct PolicySet {
    pub(crate) set: cedar_policy::PolicySet,
    /// (policy id, file, policy text as Cedar prints it), in load order.
    origins: Vec<(String, String, String)>,
    /// Which actions' policies read per-request context (and so are never
    /// cached).
    pub(crate) reads: crate::context::ContextReads,
    /// The authorizer's generation while this set is in force (set when it
    /// is installed; 0 before).
    pub(crate) generation: u64,
}

impl PolicySet {
    /// A set with no policies: every request is denied.
    pub fn empty() -> Self {
        PolicySet { set: cedar_policy::PolicySet::new(), origins: Vec::new(), reads: Default::default(), generation: 0 }
    }

    /// Parse every source and validate the whole set against `schema` in
    /// strict mode. All problems of all files are reported together.
    pub fn from_sources(
        schema: &cedar_policy::Schema,
        sources: impl IntoIterator<Item = PolicySource>,
    ) -> Result<Self, PolicyError> {
        let mut diagnostics = Vec::new();
        let mut set = cedar_policy::PolicySet::new();
        let mut origins = Vec::new();
        // policy id -> index of its source, to place validation errors.
        let mut texts: Vec<PolicySource> = Vec::new();
        let mut owner: std::collections::HashMap<String, usize> = std::collections::HashMap::new();

        for source in sources {
            let index = texts.len();
            match source.text.parse::<cedar_policy::PolicySet>() {
                Err(errors) => {
                    for error in errors.iter() {
                        diagnostics.push(diagnostic_at(&source, error));
                    }
                }
                Ok(parsed) => {
                    if parsed.templates().next().is_some() {
                        diagnostics.push(PolicyDiagnostic {
                            file: source.name.clone(),
                            line: None,
                            column: None,
                            message: "policy templates are not supported; write concrete policies".into(),
                        });
                    }
                    for (n, policy) in parsed.policies().enumerate() {
                        // Ids must be unique across files: prefer the
                        // author's `@id`, qualified by the file.
                        let local = policy.annotation("id").map_or_else(|| format!("policy{n}"), str::to_string);
                        let id = format!("{}#{local}", short_name(&source.name));
                        if owner.contains_key(&id) {
                            diagnostics.push(PolicyDiagnostic {
                                file: source.name.clone(),
                                line: None,
                                column: None,
                                message: format!("duplicate policy id `{local}` in this file"),
                            });
                            continue;
                        }
                        let renamed = policy.new_id(PolicyId::new(&id));
                        let text = renamed.to_string();
                        if let Err(e) = set.add(renamed) {
                            diagnostics.push(PolicyDiagnostic {
                                file: source.name.clone(),
                                line: None,
                                column: None,
                                message: e.to_string(),
                            });
                            continue;
                        }
                        owner.insert(id.clone(), index);
                        origins.push((id, source.name.clone(), text));
                    }
                }
            }
            texts.push(source);
        }

        if diagnostics.is_empty() {
            let validation = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
            for error in validation.validation_errors() {
                let id = error.policy_id().to_string();
                match owner.get(&id).and_then(|&i| texts.get(i)) {
                    Some(source) => diagnostics.push(diagnostic_at(source, error)),
                    None => diagnostics.push(PolicyDiagnostic {
                        file: id,
                        line: None,
                        column: None,
                        message: render_diagnostic(error),
                    }),
                }
            }
        }

        if !diagnostics.is_empty() {
            return Err(PolicyError::Invalid(diagnostics));
        }
        let reads = context_reads(schema, &set);
        Ok(PolicySet { set, origins, reads, generation: 0 })
    }

    /// Load and validate every `*.cedar` file of `dir`.
    pub fn from_dir(schema: &cedar_policy::Schema, dir: &Path) -> Result<Self, PolicyError> {
        Self::from_sources(schema, PolicySource::read_dir(dir)?)
    }

    pub fn len(&self) -> usize {
        self.origins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// The per-request context attributes (`now`, `client_address`, ...)
    /// that policies which can apply to `action` read. Non-empty means
    /// decisions about `action` are evaluated every time, never cached.
    pub fn context_reads(&self, action: crate::Action) -> Vec<&'static str> {
        self.reads.attributes(action.as_str())
    }

    /// The ids of the policies, `file#id`, in load order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.origins.iter().map(|(id, _, _)| id.as_str())
    }

    /// The file policy `id` was defined in.
    pub fn origin(&self, id: &str) -> Option<&str> {
        self.origins.iter().find(|(i, _, _)| i == id).map(|(_, f, _)| f.as_str())
    }

    /// What changed from `before` to `self`: (added, removed, changed) ids.
    pub fn diff(&self, before: &PolicySet) -> (Vec<String>, Vec<String>, Vec<String>) {
        let text_of =
            |set: &PolicySet, id: &str| set.origins.iter().find(|(i, _, _)| i == id).map(|(_, _, t)| t.clone());
        let mut added = Vec::new();
        let mut changed = Vec::new();
        for (id, _, text) in &self.origins {
            match text_of(before, id) {
                None => added.push(id.clone()),
                Some(old) if old != *text => changed.push(id.clone()),
                Some(_) => {}
            }
        }
        let removed = before
            .origins
            .iter()
            .filter(|(id, _, _)| text_of(self, id).is_none())
            .map(|(id, _, _)| id.clone())
            .collect();
        (added, removed, changed)
    }
}

/// What `set` reads of the per-request context, per action of `schema`.
fn context_reads(schema: &cedar_policy::Schema, set: &cedar_policy::PolicySet) -> crate::context::ContextReads {
    let actions: Vec<String> = schema.actions().map(|a| a.id().unescaped().to_string()).collect();
    let entities = schema.action_entities().ok();
    let members = |group: &str| -> Vec<String> {
        let Some(entities) = &entities else { return Vec::new() };
        let group = schema.actions().find(|a| a.id().unescaped() == group);
        let Some(group) = group else { return Vec::new() };
        entities
            .iter()
            .filter(|e| e.uid() != *group && entities.is_ancestor_of(group, &e.uid()))
            .map(|e| e.uid().id().unescaped().to_string())
            .collect()
    };
    crate::context::ContextReads::of(set, &actions, members)
}

fn short_name(name: &str) -> &str {
    Path::new(name).file_name().and_then(|n| n.to_str()).unwrap_or(name)
}

fn diagnostic_at(source: &PolicySource, error: &dyn Diagnostic) -> PolicyDiagnostic {
    let offset = error.labels().and_then(|mut labels| labels.next()).map(|label| label.offset());
    let (line, column) = match offset {
        Some(offset) => {
            let (l, c) = line_col(&source.text, offset);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    PolicyDiagnostic { file: source.name.clone(), line, column, message: render_diagnostic(error) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> cedar_policy::Schema {
        crate::schema::embedded().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let src = PolicySource::new("bad.cedar", "// ok\npermit(principal, action, resource)\nwhen { principal. };");
        let err = PolicySet::from_sources(&schema(), [src]).unwrap_err();
        let d = &err.diagnostics()[0];
        assert_eq!(d.file, "bad.cedar");
        assert_eq!(d.line, Some(3), "{d}");
    }

    #[test]
    fn schema_error_names_file_and_line() {
        let src = PolicySource::new(
            "typo.cedar",
            "permit(principal, action, resource);\n\npermit(principal == Arw::Componnt::\"x\", action, resource);",
        );
        let err = PolicySet::from_sources(&schema(), [src]).unwrap_err();
        let d = &err.diagnostics()[0];
        assert_eq!((d.file.as_str(), d.line), ("typo.cedar", Some(3)), "{d}");
        assert!(d.message.contains("Componnt"), "{d}");
    }

    #[test]
    fn unknown_attribute_fails_strict_validation() {
        let src = PolicySource::new(
            "attr.cedar",
            "permit(principal is Arw::Component, action == Arw::Action::\"kv.read\", resource)\nwhen { principal.colour == \"red\" };",
        );
        let err = PolicySet::from_sources(&schema(), [src]).unwrap_err();
        assert!(err.to_string().contains("attr.cedar:"), "{err}");
    }

    #[test]
    fn ids_come_from_annotations_and_files() {
        let a = PolicySource::new("/x/a.cedar", "@id(\"one\")\npermit(principal, action, resource);");
        let b = PolicySource::new("/x/b.cedar", "@id(\"one\")\npermit(principal, action, resource);");
        let set = PolicySet::from_sources(&schema(), [a, b]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.ids().collect::<Vec<_>>(), ["a.cedar#one", "b.cedar#one"]);
        assert_eq!(set.origin("b.cedar#one"), Some("/x/b.cedar"));
    }

    #[test]
    fn repository_default_policies_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
        let set = PolicySet::from_dir(&schema(), &dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(!set.is_empty());
    }

    /// The examples in docs/policy.md's "Context" section validate.
    #[test]
    fn the_documented_context_policies_validate() {
        let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/policy.md"))
            .unwrap_or_else(|e| panic!("{e}"));
        let section = doc.split("\n## Context\n").nth(1).unwrap_or_else(|| panic!("no Context section"));
        let block = section.split("```cedar\n").nth(1).and_then(|b| b.split("```").next());
        let block = block.unwrap_or_else(|| panic!("no cedar block in the Context section"));
        let set = PolicySet::from_sources(&schema(), [PolicySource::new("policy.md", block)])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.len(), 3);
        assert_eq!(set.context_reads(crate::Action::TOOL_INVOKE), ["now", "client_address"]);
    }

    #[test]
    fn missing_directory_is_an_error() {
        let err = PolicySet::from_dir(&schema(), Path::new("/nonexistent/arw-policies")).unwrap_err();
        assert!(matches!(err, PolicyError::Io { .. }));
    }
}
