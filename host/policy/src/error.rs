//! Errors of loading and validating policies.

use std::fmt;

/// One problem in one policy file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDiagnostic {
    /// The file, as given to [`crate::PolicySource::new`].
    pub file: String,
    /// 1-based line, when Cedar reported a position.
    pub line: Option<usize>,
    /// 1-based column, when Cedar reported a position.
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for PolicyDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(col)) => write!(f, "{}:{line}:{col}: {}", self.file, self.message),
            (Some(line), None) => write!(f, "{}:{line}: {}", self.file, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Why a policy set or the schema could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid Cedar schema: {message}")]
    Schema { message: String },
    #[error("cannot read policies from `{path}`: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("cannot read a policy file: {0}")]
    Read(#[from] arw_fs::ReadError),
    #[error("{}", render_list(.0))]
    Invalid(Vec<PolicyDiagnostic>),
}

impl PolicyError {
    /// The per-file diagnostics, if this is a policy error.
    pub fn diagnostics(&self) -> &[PolicyDiagnostic] {
        match self {
            PolicyError::Invalid(d) => d,
            _ => &[],
        }
    }
}

fn render_list(diagnostics: &[PolicyDiagnostic]) -> String {
    let mut out = format!("{} policy error(s)", diagnostics.len());
    for d in diagnostics {
        out.push_str("\n  ");
        out.push_str(&d.to_string());
    }
    out
}

/// A diagnostic's message plus its help, on one line.
pub(crate) fn render_diagnostic(d: &dyn miette::Diagnostic) -> String {
    let mut message = d.to_string();
    if let Some(help) = d.help() {
        message.push_str(" (");
        message.push_str(&help.to_string());
        message.push(')');
    }
    message
}

/// 1-based (line, column) of a byte offset in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(super::line_col("ab\ncd", 0), (1, 1));
        assert_eq!(super::line_col("ab\ncd", 4), (2, 2));
        assert_eq!(super::line_col("ab", 99), (1, 3));
    }
}
