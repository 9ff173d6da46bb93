//! One error type for the workflows, classified so every front end (the
//! CLI's exit status, the HTTP API's status code) reads it the same way.

use arw_registry::{RegistryError, VerifyError};

/// Why a workflow did not happen. Nothing was changed when one is returned,
/// except where a variant says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Policy(#[from] arw_policy::PolicyError),
    #[error("invalid reference `{reference}`: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("`{version}` is not a version such as 1.2.3: {reason}")]
    InvalidVersion { version: String, reason: String },
    #[error(
        "{id}@{version} asks for a capability this host does not give: {message} (publish a manifest this host accepts, or use a host that has the capability)"
    )]
    Capabilities { id: String, version: String, message: String },
    #[error("{id} is not installed (see `arw list`)")]
    NotInstalled { id: String },
    #[error("{id} has no previous version recorded; name the version to go back to")]
    NoPrevious { id: String },
    #[error("precompiling {id}@{version}: {message}")]
    Precompile { id: String, version: String, message: String },
    /// The installed set changed, but the running host refused the new
    /// version; the installed set was put back as it was.
    #[error(transparent)]
    Activation(#[from] arw_host::ActivationError),
    #[error(
        "this host runs components from a directory (--components), not from the registry: it cannot install, \
         uninstall or roll back"
    )]
    NoRegistry,
    #[error("{0}")]
    Config(String),
}

/// How a front end should present an [`OpsError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed input: a reference or version that cannot be one.
    Invalid,
    /// Names something that is not there.
    NotFound,
    /// Well-formed, but refused (verification, activation, policy).
    Refused,
    /// Not available on this host.
    Unsupported,
    /// Storage or the engine failed.
    Internal,
}

impl OpsError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            OpsError::Registry(e) => match e {
                RegistryError::NotFound { .. } => ErrorKind::NotFound,
                RegistryError::InvalidReference { .. } | RegistryError::InvalidName { .. } => ErrorKind::Invalid,
                RegistryError::Io { .. } | RegistryError::CorruptIndex { .. } => ErrorKind::Internal,
                _ => ErrorKind::Refused,
            },
            OpsError::InvalidReference { .. } | OpsError::InvalidVersion { .. } => ErrorKind::Invalid,
            OpsError::NotInstalled { .. } => ErrorKind::NotFound,
            OpsError::NoRegistry => ErrorKind::Unsupported,
            OpsError::Precompile { .. } | OpsError::Config(_) => ErrorKind::Internal,
            OpsError::Verify(_)
            | OpsError::Policy(_)
            | OpsError::NoPrevious { .. }
            | OpsError::Activation(_)
            | OpsError::Capabilities { .. } => ErrorKind::Refused,
        }
    }

    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            OpsError::Registry(e) => match e {
                RegistryError::NotFound { .. } => "not-found",
                RegistryError::InvalidReference { .. } | RegistryError::InvalidName { .. } => "invalid-reference",
                RegistryError::Yanked { .. } => "yanked",
                RegistryError::Verify(_) | RegistryError::NotTrusted { .. } => "verify-failed",
                RegistryError::Io { .. } | RegistryError::CorruptIndex { .. } => "storage",
                RegistryError::Read(_) => "unreadable",
                _ => "refused",
            },
            OpsError::Verify(_) => "verify-failed",
            OpsError::Capabilities { .. } => "unsupported-capability",
            OpsError::Policy(_) => "invalid-policy",
            OpsError::InvalidReference { .. } => "invalid-reference",
            OpsError::InvalidVersion { .. } => "invalid-version",
            OpsError::NotInstalled { .. } => "not-installed",
            OpsError::NoPrevious { .. } => "no-previous-version",
            OpsError::Precompile { .. } => "precompile-failed",
            OpsError::Activation(_) => "activation-failed",
            OpsError::NoRegistry => "unsupported",
            OpsError::Config(_) => "config",
        }
    }
}
