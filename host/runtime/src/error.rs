//! The host's error types, one per operation.

use crate::authz::Denied;

/// Why a component was not loaded. Every variant names where the component
/// came from (`origin`: a file path or `embedded:<name>`) and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{origin}: invalid manifest: {message}")]
    Manifest { origin: String, message: String },
    #[error("{origin}: cannot read: {error}")]
    Io { origin: String, error: std::io::Error },
    #[error("{origin}: not a WebAssembly file (no `\\0asm` header)")]
    NotWasm { origin: String },
    #[error(
        "{origin}: this is a core WebAssembly module, not a component; build for `wasm32-wasip2` \
         or wrap it with `wasm-tools component new`"
    )]
    CoreModule { origin: String },
    #[error("{origin}: invalid component: {message}")]
    Compile { origin: String, message: String },
    #[error("{origin}: declares world `{world}` but does not export `{export}` (it exports: {found})")]
    WrongWorld { origin: String, world: String, export: String, found: String },
    #[error("{origin}: cannot be linked: {message}")]
    Link { origin: String, message: String },
    #[error("{origin}: {message}")]
    Limits { origin: String, message: String },
    #[error("{origin}: health check (`describe`) failed: {message}")]
    Health { origin: String, message: String },
    #[error("{origin}: {message}")]
    Conflict { origin: String, message: String },
    #[error(
        "{origin}: unsigned component refused; publish and install it (`arw publish`, `arw install`) \
         or, for development only, allow unsigned components (`--allow-unsigned`)"
    )]
    Unsigned { origin: String },
    #[error("{origin}: {check} check failed: {message}")]
    Verify { origin: String, check: &'static str, message: String },
}

impl LoadError {
    /// Where the component came from (a path, `registry:<id>@<version>`,
    /// `embedded:<name>`).
    pub fn origin(&self) -> &str {
        match self {
            LoadError::Manifest { origin, .. }
            | LoadError::Io { origin, .. }
            | LoadError::NotWasm { origin }
            | LoadError::CoreModule { origin }
            | LoadError::Compile { origin, .. }
            | LoadError::WrongWorld { origin, .. }
            | LoadError::Link { origin, .. }
            | LoadError::Limits { origin, .. }
            | LoadError::Health { origin, .. }
            | LoadError::Conflict { origin, .. }
            | LoadError::Unsigned { origin }
            | LoadError::Verify { origin, .. } => origin,
        }
    }
}

/// Why the host did not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("invalid engine configuration: {0}")]
    Engine(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("no state directory configured (set `state-dir` or pass --state-dir)")]
    NoStateDir,
    #[error(transparent)]
    Kv(#[from] crate::capabilities::kv::KvError),
    #[error(transparent)]
    Policy(#[from] arw_policy::PolicyError),
}

/// Why a tool call failed. The host keeps serving after any of these.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no tool named `{name}` (available: {available})")]
    UnknownTool { name: String, available: String },
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("input is not valid JSON: {0}")]
    InvalidInput(String),
    #[error("input does not match the input schema of `{tool}`: {}", violations.join("; "))]
    SchemaViolation { tool: String, violations: Vec<String> },
    #[error("tool `{tool}` failed with `{code}`: {message}")]
    Tool { tool: String, code: String, message: String },
    #[error("tool `{tool}` did not return valid JSON: {message}")]
    InvalidOutput { tool: String, message: String },
    #[error("tool `{tool}` was stopped at its deadline of {limit_ms} ms (limits.timeout-ms in its manifest)")]
    Timeout { tool: String, limit_ms: u64 },
    /// A component's call of another's tool ran out of the caller's time:
    /// the callee's deadline was the caller's (less a reserve), earlier
    /// than its own. Not the callee's fault.
    #[error(
        "tool `{tool}` was stopped at its caller's deadline: `{caller}` left it {budget_ms} ms (its own \
         limits.timeout-ms is {own_ms} ms); give the caller a longer limits.timeout-ms"
    )]
    CallerDeadline { tool: String, caller: String, budget_ms: u64, own_ms: u64 },
    #[error("tool `{tool}` was stopped at its memory cap of {limit_mib} MiB (limits.memory-mib in its manifest)")]
    MemoryLimit { tool: String, limit_mib: u64 },
    /// No slot came free before the deadline: the component's own
    /// (`limits.concurrency`) or the host's instance pool. Not a fault of
    /// the component.
    #[error("tool `{tool}` is busy: {reason}")]
    Busy { tool: String, reason: String },
    #[error("tool `{tool}` trapped: {message}")]
    Trap { tool: String, message: String },
    #[error(
        "tool `{tool}` was interrupted: version {version} was replaced and the call outlived the drain \
         grace period (swap.drain-grace-ms)"
    )]
    Interrupted { tool: String, version: String },
    #[error("the host is shutting down")]
    ShuttingDown,
    /// A gate refused the call, or could not decide (fail closed).
    #[error(transparent)]
    Gated(Box<crate::gating::GateDenied>),
}

impl From<crate::gating::GateDenied> for CallError {
    fn from(denied: crate::gating::GateDenied) -> Self {
        CallError::Gated(Box::new(denied))
    }
}

impl CallError {
    pub(crate) fn busy(tool: &str, reason: String) -> Self {
        CallError::Busy { tool: tool.into(), reason }
    }

    /// Does this failure count against a freshly activated version (for
    /// auto-rollback)? Traps, deadlines, memory caps and invalid output do;
    /// refusals and errors the tool reports on purpose do not.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            CallError::Trap { .. }
                | CallError::Timeout { .. }
                | CallError::MemoryLimit { .. }
                | CallError::InvalidOutput { .. }
        )
    }

    /// Did the tool run (as opposed to being refused, unknown, or given
    /// input it never saw)?
    pub fn ran(&self) -> bool {
        !matches!(
            self,
            CallError::UnknownTool { .. }
                | CallError::Denied(_)
                | CallError::InvalidInput(_)
                | CallError::SchemaViolation { .. }
                | CallError::ShuttingDown
                | CallError::Gated(_)
        )
    }

    /// A stable, machine-readable code for the error's kind. A tool's own
    /// codes are namespaced, `tool:<code>` (so no tool can answer with
    /// what looks like the host's `denied`); a code that is not 1-64
    /// characters of `a-z`, `0-9`, `-`, `_` and `.` is `tool:invalid-code`.
    pub fn code(&self) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        Cow::Borrowed(match self {
            CallError::UnknownTool { .. } => "unknown-tool",
            CallError::Denied(_) => "denied",
            CallError::InvalidInput(_) => "invalid-input",
            CallError::SchemaViolation { .. } => "schema-violation",
            CallError::Tool { code, .. } => return Cow::Owned(tool_code(code)),
            CallError::InvalidOutput { .. } => "invalid-output",
            CallError::Timeout { .. } | CallError::CallerDeadline { .. } => "timeout",
            CallError::MemoryLimit { .. } => "memory-limit",
            CallError::Busy { .. } => "busy",
            CallError::Trap { .. } => "trap",
            CallError::Interrupted { .. } => "interrupted",
            CallError::ShuttingDown => "shutting-down",
            CallError::Gated(denied) => denied.code(),
        })
    }
}

/// `tool:<code>` for a well-formed tool error code, else `tool:invalid-code`.
fn tool_code(code: &str) -> String {
    let well_formed = !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
    if well_formed { format!("tool:{code}") } else { "tool:invalid-code".into() }
}
