//! The trust store: a directory of `NAME.pub` files. A signature counts only
//! if its key is in here; the entry's name is what Cedar sees as
//! `principal.publisher`.

use std::path::{Path, PathBuf};

use crate::error::{RegistryError, io, validate_name};
use crate::keys::{PublicKey, read_public_keys};

#[derive(Debug, Clone)]
pub struct TrustStore {
    dir: PathBuf,
}

impl TrustStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        TrustStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Trust `key` under `name`. Adding the same key under the same name
    /// again is a no-op; a different key under an existing name is refused.
    pub fn add(&self, name: &str, key: &PublicKey) -> Result<(), RegistryError> {
        validate_name(name)?;
        match self.get(name)? {
            Some(existing) if existing == *key => return Ok(()),
            Some(_) => return Err(RegistryError::TrustConflict { name: name.into() }),
            None => {}
        }
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let path = self.dir.join(format!("{name}.pub"));
        arw_fs::write_atomic(&path, format!("{key}\n").as_bytes()).map_err(io(path))
    }

    pub fn remove(&self, name: &str) -> Result<(), RegistryError> {
        validate_name(name)?;
        let path = self.dir.join(format!("{name}.pub"));
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(RegistryError::NotTrusted { name: name.into() }),
            Err(e) => Err(RegistryError::Io { path, error: e }),
        }
    }

    pub fn get(&self, name: &str) -> Result<Option<PublicKey>, RegistryError> {
        Ok(self.list()?.into_iter().find(|(n, _)| n == name).map(|(_, k)| k))
    }

    /// Every trusted key, sorted by name.
    pub fn list(&self) -> Result<Vec<(String, PublicKey)>, RegistryError> {
        read_public_keys(&self.dir)
    }

    /// The name under which `key` is trusted, if it is.
    pub fn name_of(&self, key: &PublicKey) -> Result<Option<String>, RegistryError> {
        Ok(self.list()?.into_iter().find(|(_, k)| k == key).map(|(n, _)| n))
    }
}
