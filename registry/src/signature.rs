//! The signed manifest and the detached signature files.
//!
//! `<version>.manifest.json` is the signed manifest: JSON
//! `{"format": "arw-signed-manifest/1", "digest": "sha256:<hex>", "size": n,
//! "manifest": {...}}`, where `manifest` is the component manifest (id,
//! version, worlds, description, limits, capabilities, config). It binds the
//! exact component bytes (by digest and size) to everything the component
//! asks for.
//!
//! `<version>.<signer>.sig` is one signature: JSON `{"format":
//! "arw-signature/1", "signer": "<name>", "public-key": "ed25519:<base64>",
//! "signature": "<base64>"}`, where `signature` is the 64-byte ed25519
//! signature of the exact bytes of `<version>.manifest.json`. The `signer`
//! and `public-key` fields are hints: trust comes only from the verifier's
//! trust store.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use arw_manifest::Manifest;

use crate::keys::PublicKey;

pub const MANIFEST_FORMAT: &str = "arw-signed-manifest/1";
pub const SIGNATURE_FORMAT: &str = "arw-signature/1";

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedManifest {
    pub format: String,
    pub digest: String,
    pub size: u64,
    pub manifest: Manifest,
}

impl SignedManifest {
    /// The signed manifest of `wasm` described by `manifest`. The manifest's
    /// `component` path (a local detail of where the file was) is dropped.
    pub fn new(mut manifest: Manifest, wasm: &[u8]) -> Self {
        manifest.component = None;
        SignedManifest { format: MANIFEST_FORMAT.into(), digest: digest(wasm), size: wasm.len() as u64, manifest }
    }

    /// The bytes that get signed (compact JSON, fields in declaration order).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let parsed: SignedManifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if parsed.format != MANIFEST_FORMAT {
            return Err(format!("unknown format `{}` (expected `{MANIFEST_FORMAT}`)", parsed.format));
        }
        parsed.manifest.check().map_err(|e| e.message)?;
        Ok(parsed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SignatureFile {
    pub format: String,
    pub signer: String,
    pub public_key: String,
    pub signature: String,
}

impl SignatureFile {
    /// Sign `manifest_bytes` as `signer`.
    pub fn sign(manifest_bytes: &[u8], signer: &str, key: &SigningKey) -> Self {
        let signature = key.sign(manifest_bytes);
        SignatureFile {
            format: SIGNATURE_FORMAT.into(),
            signer: signer.into(),
            public_key: PublicKey(key.verifying_key()).to_string(),
            signature: B64.encode(signature.to_bytes()),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let parsed: SignatureFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if parsed.format != SIGNATURE_FORMAT {
            return Err(format!("unknown format `{}` (expected `{SIGNATURE_FORMAT}`)", parsed.format));
        }
        Ok(parsed)
    }

    /// Check the signature over `manifest_bytes`; returns the key that made it.
    pub fn verify(&self, manifest_bytes: &[u8]) -> Result<PublicKey, String> {
        let key: PublicKey = self.public_key.parse()?;
        let bytes = B64.decode(&self.signature).map_err(|e| format!("signature is not base64: {e}"))?;
        let bytes: [u8; 64] = bytes.try_into().map_err(|_| "an ed25519 signature is 64 bytes".to_string())?;
        key.0
            .verify(manifest_bytes, &Signature::from_bytes(&bytes))
            .map_err(|_| "the signature does not match the manifest".to_string())?;
        Ok(key)
    }
}
