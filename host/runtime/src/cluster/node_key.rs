//! The host's node key: an ed25519 key pair made at first start and kept
//! in `<state-dir>/node.key` (mode 0600, written atomically). What this
//! host vouches for (the tasks it enqueues: who asked, what to run) it
//! signs with it, so a worker never acts on authority that anyone able to
//! write to a queue's storage could claim.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

/// The file, under the state directory.
pub const FILE: &str = "node.key";
/// Its public half (hex), for the other hosts' `cluster.trusted-nodes`.
pub const PUBLIC_FILE: &str = "node.key.pub";

/// Why the key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NodeKeyError {
    #[error(
        "the node key {path} cannot be read: {message}; it holds 64 hex digits (an ed25519 seed); \
         remove it to make a new one (tasks this host signed before are then refused)"
    )]
    Unreadable { path: PathBuf, message: String },
    #[error("the node key {path} cannot be written: {message}")]
    Unwritable { path: PathBuf, message: String },
}

/// This host's signing key.
pub struct NodeKey {
    signing: SigningKey,
    /// The public key, hex: how signatures name their signer.
    public: String,
}

impl std::fmt::Debug for NodeKey {
    /// The public half only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKey").field("public", &self.public).finish()
    }
}

impl NodeKey {
    /// The key in `state_dir`, made (and written) if there is none.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, NodeKeyError> {
        let path = state_dir.join(FILE);
        match arw_fs::read_text_bounded(&path, 1024) {
            Ok(text) => {
                let unreadable = |message: String| NodeKeyError::Unreadable { path: path.clone(), message };
                let bytes = hex::decode(text.trim()).map_err(|e| unreadable(e.to_string()))?;
                let seed: [u8; 32] =
                    bytes.try_into().map_err(|b: Vec<u8>| unreadable(format!("{} bytes, not 32", b.len())))?;
                Ok(Self::from_seed(&seed))
            }
            Err(e) if e.is_not_found() => {
                let mut seed = [0u8; 32];
                getrandom::getrandom(&mut seed)
                    .map_err(|e| NodeKeyError::Unwritable { path: path.clone(), message: e.to_string() })?;
                let unwritable =
                    |e: std::io::Error| NodeKeyError::Unwritable { path: path.clone(), message: e.to_string() };
                std::fs::create_dir_all(state_dir).map_err(unwritable)?;
                arw_fs::write_atomic_with_mode(&path, hex::encode(seed).as_bytes(), Some(0o600)).map_err(unwritable)?;
                let key = Self::from_seed(&seed);
                arw_fs::write_atomic(&state_dir.join(PUBLIC_FILE), format!("{}\n", key.public).as_bytes())
                    .map_err(unwritable)?;
                Ok(key)
            }
            Err(e) => Err(NodeKeyError::Unreadable { path, message: e.to_string() }),
        }
    }

    fn from_seed(seed: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let public = hex::encode(signing.verifying_key().as_bytes());
        NodeKey { signing, public }
    }

    /// The public key, hex.
    pub fn public(&self) -> &str {
        &self.public
    }

    /// The signature of `message`, hex.
    pub fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.signing.sign(message).to_bytes())
    }
}

/// Does `signature` (hex) by `public` (hex) hold for `message`?
pub fn verify(public: &str, message: &[u8], signature: &str) -> Result<(), String> {
    let key: [u8; 32] = hex::decode(public)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("the signer is not an ed25519 public key (64 hex digits)")?;
    let key = VerifyingKey::from_bytes(&key).map_err(|e| format!("the signer's key is invalid: {e}"))?;
    let signature: [u8; 64] =
        hex::decode(signature).ok().and_then(|b| b.try_into().ok()).ok_or("the signature is not 128 hex digits")?;
    key.verify(message, &Signature::from_bytes(&signature)).map_err(|_| "the signature does not match".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_kept_private_and_verifiable() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let key = NodeKey::load_or_create(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let again = NodeKey::load_or_create(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.public(), again.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE)).map(|m| m.permissions().mode() & 0o777).ok();
            assert_eq!(mode, Some(0o600));
        }
        let signature = key.sign(b"task");
        assert_eq!(verify(key.public(), b"task", &signature), Ok(()));
        assert!(verify(key.public(), b"tasK", &signature).is_err());
        let other = NodeKey::from_seed(&[7; 32]);
        assert!(verify(other.public(), b"task", &signature).is_err());
        std::fs::write(dir.path().join(FILE), "not hex").unwrap_or_else(|e| panic!("{e}"));
        let error = NodeKey::load_or_create(dir.path()).map(|_| ()).unwrap_err().to_string();
        assert!(error.contains("remove it to make a new one"), "{error}");
    }
}
