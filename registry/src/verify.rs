//! Verifying a package: the whole chain, each check with its own error.
//!
//! 1. `signature` — there is a signed manifest and at least one signature,
//!    and every signature file verifies against the manifest's exact bytes
//!    (checked before the manifest is even parsed);
//! 2. `trust` — at least one signature is by a key in the trust store;
//! 3. `manifest` — the signed manifest is well-formed and names the id and
//!    version its path says;
//! 4. `digest` — sha256 and size of the component bytes match the manifest;
//! 5. `world` — the component's real exports provide the manifest's worlds.

use std::path::PathBuf;

use arw_manifest::Manifest;
use serde::Serialize;

use crate::registry::Package;
use crate::signature::{SignatureFile, SignedManifest, digest};
use crate::trust::TrustStore;

/// A package that passed every check.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub manifest: Manifest,
    pub digest: String,
    /// The trusted signer that counts as the publisher (what Cedar sees as
    /// `principal.publisher`): the one whose trust-store name is the
    /// component's namespace if it signed, else the first trusted
    /// signature by file name. `arw install` records it, and later loads
    /// keep it as long as that signer still vouches (see
    /// [`Verified::vouched_by`]).
    pub publisher: String,
    pub signatures: Vec<SignatureInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignatureInfo {
    pub file: String,
    /// The name the signature file gives itself (a hint).
    pub signer: String,
    pub public_key: String,
    /// The trust-store name of the key, if trusted.
    pub trusted_as: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum VerifyError {
    #[error("{path}: manifest check failed: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error(
        "{path}: digest check failed: the component is {actual} but the signed manifest says {expected}; the component bytes changed after signing"
    )]
    Digest { path: PathBuf, expected: String, actual: String },
    #[error("{path}: signature check failed: unsigned (no `<version>.<signer>.sig` file)")]
    Unsigned { path: PathBuf },
    #[error("{path}: signature check failed: {file}: {message}")]
    Signature { path: PathBuf, file: String, message: String },
    #[error(
        "{path}: trust check failed: signed only by untrusted keys ({signers}); trust the publisher with `arw trust add NAME KEY` if you mean to"
    )]
    Untrusted { path: PathBuf, signers: String },
    #[error("{path}: world check failed: {message}")]
    World { path: PathBuf, message: String },
}

impl VerifyError {
    /// Which check failed: `manifest`, `digest`, `signature`, `trust` or `world`.
    pub fn check(&self) -> &'static str {
        match self {
            VerifyError::Manifest { .. } => "manifest",
            VerifyError::Digest { .. } => "digest",
            VerifyError::Unsigned { .. } | VerifyError::Signature { .. } => "signature",
            VerifyError::Untrusted { .. } => "trust",
            VerifyError::World { .. } => "world",
        }
    }
}

/// Run every check on `package` against `trust`.
pub fn verify(package: &Package, trust: &TrustStore) -> Result<Verified, VerifyError> {
    let path = package.path.clone();
    if package.manifest_bytes.is_empty() {
        return Err(VerifyError::Manifest { path, message: "no signed manifest (`<version>.manifest.json`)".into() });
    }
    if package.signatures.is_empty() {
        return Err(VerifyError::Unsigned { path });
    }
    let trusted = trust.list().map_err(|e| VerifyError::Signature {
        path: path.clone(),
        file: trust.dir().display().to_string(),
        message: format!("cannot read the trust store: {e}"),
    })?;
    let mut signatures = Vec::new();
    for (file, bytes) in &package.signatures {
        let fail = |message: String| VerifyError::Signature { path: path.clone(), file: file.clone(), message };
        let signature = SignatureFile::parse(bytes).map_err(|e| fail(format!("malformed signature file: {e}")))?;
        let key = signature.verify(&package.manifest_bytes).map_err(fail)?;
        let trusted_as = trusted.iter().find(|(_, k)| *k == key).map(|(n, _)| n.clone());
        signatures.push(SignatureInfo {
            file: file.clone(),
            signer: signature.signer,
            public_key: key.to_string(),
            trusted_as,
        });
    }
    let Some(first_trusted) = signatures.iter().find_map(|s| s.trusted_as.clone()) else {
        let signers: Vec<String> = signatures.iter().map(|s| format!("`{}` {}", s.signer, s.public_key)).collect();
        return Err(VerifyError::Untrusted { path, signers: signers.join(", ") });
    };

    let signed = SignedManifest::parse(&package.manifest_bytes)
        .map_err(|message| VerifyError::Manifest { path: path.clone(), message })?;
    if signed.manifest.id != package.id || signed.manifest.version != package.version {
        return Err(VerifyError::Manifest {
            path,
            message: format!(
                "the manifest is for {}@{} but the registry path is {}@{}",
                signed.manifest.id, signed.manifest.version, package.id, package.version
            ),
        });
    }
    let actual = digest(&package.wasm);
    if signed.digest != actual || signed.size != package.wasm.len() as u64 {
        return Err(VerifyError::Digest { path, expected: signed.digest, actual });
    }
    crate::inspect::check_worlds(&package.wasm, &signed.manifest.worlds)
        .map_err(|message| VerifyError::World { path: path.clone(), message })?;
    let namespace = package.id.namespace();
    let publisher =
        signatures.iter().find_map(|s| s.trusted_as.clone().filter(|n| n == namespace)).unwrap_or(first_trusted);
    Ok(Verified { manifest: signed.manifest, digest: actual, publisher, signatures })
}

impl Verified {
    /// Does `name` (a trust-store name) have a valid signature on this package?
    pub fn vouched_by(&self, name: &str) -> bool {
        self.signatures.iter().any(|s| s.trusted_as.as_deref() == Some(name))
    }
}

impl VerifyError {
    /// The message without the path and check prefix (for callers that
    /// print those themselves).
    pub fn detail(&self) -> String {
        match self {
            VerifyError::Manifest { message, .. } | VerifyError::World { message, .. } => message.clone(),
            VerifyError::Digest { expected, actual, .. } => {
                format!(
                    "the component is {actual} but the signed manifest says {expected}; the component bytes changed after signing"
                )
            }
            VerifyError::Unsigned { .. } => "unsigned (no `<version>.<signer>.sig` file)".into(),
            VerifyError::Signature { file, message, .. } => format!("{file}: {message}"),
            VerifyError::Untrusted { signers, .. } => format!(
                "signed only by untrusted keys ({signers}); trust the publisher with `arw trust add NAME KEY` if you mean to"
            ),
        }
    }
}
