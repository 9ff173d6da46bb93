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
    #[error("tool `{tool}` was stopped at its memory cap of {limit_mib} MiB (limits.memory-mib in its manifest)")]
    MemoryLimit { tool: String, limit_mib: u64 },
    #[error("tool `{tool}` is busy: all {concurrency} slots stayed taken until the deadline")]
    Busy { tool: String, concurrency: u32 },
    #[error("tool `{tool}` trapped: {message}")]
    Trap { tool: String, message: String },
    #[error(
        "tool `{tool}` was interrupted: version {version} was replaced and the call outlived the drain \
         grace period (swap.drain-grace-ms)"
    )]
    Interrupted { tool: String, version: String },
    #[error("the host is shutting down")]
    ShuttingDown,
}

impl CallError {
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

    /// A stable, machine-readable code for the error's kind.
    pub fn code(&self) -> &str {
        match self {
            CallError::UnknownTool { .. } => "unknown-tool",
            CallError::Denied(_) => "denied",
            CallError::InvalidInput(_) => "invalid-input",
            CallError::SchemaViolation { .. } => "schema-violation",
            CallError::Tool { code, .. } => code,
            CallError::InvalidOutput { .. } => "invalid-output",
            CallError::Timeout { .. } => "timeout",
            CallError::MemoryLimit { .. } => "memory-limit",
            CallError::Busy { .. } => "busy",
            CallError::Trap { .. } => "trap",
            CallError::Interrupted { .. } => "interrupted",
            CallError::ShuttingDown => "shutting-down",
        }
    }
}
