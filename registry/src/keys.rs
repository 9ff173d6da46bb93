//! ed25519 key pairs: `NAME.key` (the 32-byte secret, base64, mode 0600)
//! and `NAME.pub` (`ed25519:<base64 of the 32-byte public key>`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::error::{RegistryError, io, validate_name};

const SECRET_PREFIX: &str = "ed25519-secret:";
const PUBLIC_PREFIX: &str = "ed25519:";

/// A public key, written `ed25519:<base64>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub VerifyingKey);

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", B64.encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for PublicKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let b64 = text.strip_prefix(PUBLIC_PREFIX).ok_or("a public key starts with `ed25519:`")?;
        let bytes = B64.decode(b64).map_err(|e| format!("not base64: {e}"))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| "an ed25519 public key is 32 bytes".to_string())?;
        VerifyingKey::from_bytes(&bytes).map(PublicKey).map_err(|e| format!("not an ed25519 public key: {e}"))
    }
}

/// A fresh signing key from the operating system's randomness.
pub fn generate() -> Result<SigningKey, RegistryError> {
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret)
        .map_err(|e| RegistryError::Component(format!("no operating-system randomness: {e}")))?;
    Ok(SigningKey::from_bytes(&secret))
}

/// A directory of key pairs.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        KeyStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Create key pair `name`; refuses to overwrite. Returns its public key.
    pub fn generate(&self, name: &str) -> Result<PublicKey, RegistryError> {
        validate_name(name)?;
        let secret_path = self.dir.join(format!("{name}.key"));
        if secret_path.exists() {
            return Err(RegistryError::KeyExists { name: name.into(), path: secret_path });
        }
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700)).map_err(io(&self.dir))?;
        }
        let key = generate()?;
        write_secret(&secret_path, &format!("{SECRET_PREFIX}{}\n", B64.encode(key.to_bytes())))?;
        let public = PublicKey(key.verifying_key());
        arw_fs::write_atomic(&self.dir.join(format!("{name}.pub")), format!("{public}\n").as_bytes())
            .map_err(io(self.dir.join(format!("{name}.pub"))))?;
        Ok(public)
    }

    /// The signing key called `name` in this store, or the key file at the
    /// path `name_or_path`.
    pub fn load(&self, name_or_path: &str) -> Result<(String, SigningKey), RegistryError> {
        let as_path = Path::new(name_or_path);
        let path = if as_path.extension().is_some_and(|e| e == "key") || name_or_path.contains('/') {
            as_path.to_path_buf()
        } else {
            validate_name(name_or_path)?;
            let path = self.dir.join(format!("{name_or_path}.key"));
            if !path.exists() {
                return Err(RegistryError::NoSuchKey { name: name_or_path.into(), dir: self.dir.clone() });
            }
            path
        };
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("key").to_string();
        let bad = |reason: String| RegistryError::BadKey { path: path.clone(), reason };
        let text =
            arw_fs::read_text_bounded(&path, crate::error::MAX_SMALL_FILE_BYTES).map_err(|e| bad(e.to_string()))?;
        let b64 = text.trim().strip_prefix(SECRET_PREFIX).ok_or_else(|| bad("not an ARW key file".into()))?;
        let bytes = B64.decode(b64).map_err(|e| bad(format!("not base64: {e}")))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad("an ed25519 secret key is 32 bytes".into()))?;
        Ok((name, SigningKey::from_bytes(&bytes)))
    }

    /// Every key pair: (name, public key), sorted by name.
    pub fn list(&self) -> Result<Vec<(String, PublicKey)>, RegistryError> {
        read_public_keys(&self.dir)
    }
}

/// `NAME.pub` files of `dir`, parsed, sorted by name. A missing directory
/// has none.
pub(crate) fn read_public_keys(dir: &Path) -> Result<Vec<(String, PublicKey)>, RegistryError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RegistryError::Io { path: dir.into(), error: e }),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().is_none_or(|e| e != "pub") {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_string) else { continue };
        let text = arw_fs::read_text_bounded(&path, crate::error::MAX_SMALL_FILE_BYTES)?;
        let key = text.parse().map_err(|reason| RegistryError::BadKey { path: path.clone(), reason })?;
        keys.push((name, key));
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(keys)
}

/// Create a file readable only by its owner, then fill it.
fn write_secret(path: &Path, text: &str) -> Result<(), RegistryError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_load_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path().join("keys"));
        let public = store.generate("acme").unwrap();
        assert!(matches!(store.generate("acme"), Err(RegistryError::KeyExists { .. })));
        let (name, key) = store.load("acme").unwrap();
        assert_eq!((name.as_str(), PublicKey(key.verifying_key())), ("acme", public));
        assert_eq!(store.list().unwrap(), vec![("acme".to_string(), public)]);
        assert_eq!(public.to_string().parse::<PublicKey>().unwrap(), public);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("keys/acme.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(store.load("nope"), Err(RegistryError::NoSuchKey { .. })));
        assert!(store.generate("../evil").is_err());
        assert!("ed25519:AAAA".parse::<PublicKey>().is_err());
    }
}
