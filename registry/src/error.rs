//! Registry errors. Messages name the file or reference and the fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("invalid name `{name}`: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("invalid reference `{reference}`: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("key `{name}` already exists at {path}; choose another name or remove the file")]
    KeyExists { name: String, path: PathBuf },
    #[error("cannot read key {path}: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("no key named `{name}` in {dir} (create one with `arw keys generate {name}`)")]
    NoSuchKey { name: String, dir: PathBuf },
    #[error("trust store already has a different key named `{name}`; remove it first (`arw trust remove {name}`)")]
    TrustConflict { name: String },
    #[error("no trusted key named `{name}`")]
    NotTrusted { name: String },
    #[error("{id}@{version} is already published; versions are immutable, publish a new version")]
    AlreadyPublished { id: String, version: String },
    #[error("{reference} is not in the registry at {root}{hint}")]
    NotFound { reference: String, root: PathBuf, hint: String },
    #[error("{id}@{version} is yanked: it may not be newly installed")]
    Yanked { id: String, version: String },
    #[error("component is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("{0}")]
    Component(String),
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
    #[error("{path}: corrupt installed-set index: {reason}")]
    CorruptIndex { path: PathBuf, reason: String },
    #[error(transparent)]
    Read(#[from] arw_fs::ReadError),
}

/// The most bytes read from a signed manifest (`<version>.manifest.json`).
pub const MAX_MANIFEST_BYTES: u64 = 256 << 10;
/// The most bytes read from a signature file, a public key or a key file.
pub const MAX_SMALL_FILE_BYTES: u64 = 16 << 10;
/// The most bytes read from `installed.json`.
pub const MAX_INDEX_BYTES: u64 = 16 << 20;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RegistryError {
    let path = path.into();
    move |error| RegistryError::Io { path, error }
}

/// Names of keys and trust entries: 1-64 of a-z, 0-9, `-`, `_`, starting
/// with a letter or digit (they become file names and Cedar attributes).
pub fn validate_name(name: &str) -> Result<(), RegistryError> {
    let bad = |reason| Err(RegistryError::InvalidName { name: name.chars().take(80).collect(), reason });
    if name.is_empty() || name.len() > 64 {
        return bad("must be 1 to 64 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
        return bad("may only contain a-z, 0-9, `-` and `_`");
    }
    if !name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric()) {
        return bad("must start with a letter or digit");
    }
    Ok(())
}
