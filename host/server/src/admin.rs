//! The admin operations that need more than the [`Host`](arw_host::Host):
//! the registry, the installed set and the policy directory. The `arw` CLI
//! implements [`AdminOps`] with the same code its own commands run, so
//! `POST /admin/install` and `arw install` do exactly the same thing.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What went wrong in an admin operation, classified for the HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AdminError {
    pub kind: AdminErrorKind,
    /// A stable code (`verify-failed`, `activation-failed`, ...).
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminErrorKind {
    /// The request is malformed: a reference or id that cannot be one (400).
    Invalid,
    /// The request names something that is not there (404).
    NotFound,
    /// The request is well-formed but cannot be done (422).
    Refused,
    /// Not available on this host (501): e.g. no registry configured.
    Unsupported,
    /// Storage failed (500).
    Internal,
}

impl AdminError {
    pub fn new(kind: AdminErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        AdminError { kind, code, message: message.into() }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// `ns:name`, `ns:name@1.2.3` or `ns:name@^1` (the newest matching,
    /// non-yanked version in the local registry).
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]*:[a-z0-9][a-z0-9-]*(@\S+)?$")]
    pub package: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UninstallRequest {
    /// The component id, `ns:name`.
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]*:[a-z0-9][a-z0-9-]*$")]
    pub id: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The component id, `ns:name`.
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]*:[a-z0-9][a-z0-9-]*$")]
    pub id: String,
    /// The version to go back to; default: the one installed before.
    #[serde(default)]
    pub to: Option<String>,
}

/// The outcome of install, uninstall and rollback.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdminOutcome {
    pub id: String,
    /// The version now active (none after an uninstall).
    pub version: Option<String>,
    /// The version that was active before, if any.
    pub previous: Option<String>,
    /// `sha256:<hex>` of the active version.
    pub digest: Option<String>,
    pub publisher: Option<String>,
}

/// What a policy reload changed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PolicyReloadOutcome {
    pub policies: usize,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

#[async_trait::async_trait]
pub trait AdminOps: Send + Sync {
    async fn install(&self, request: InstallRequest) -> Result<AdminOutcome, AdminError>;
    async fn uninstall(&self, request: UninstallRequest) -> Result<AdminOutcome, AdminError>;
    async fn rollback(&self, request: RollbackRequest) -> Result<AdminOutcome, AdminError>;
    async fn reload_policies(&self) -> Result<PolicyReloadOutcome, AdminError>;
}
