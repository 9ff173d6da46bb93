//! Advisory file locks serialising writers across processes.

use std::fs::File;
use std::path::Path;

use crate::error::{RegistryError, io};

/// Held while a writer changes a registry or an installed set. Dropping it
/// (or the process dying, even by `kill -9`) releases the lock.
pub(crate) struct Lock(#[allow(dead_code)] File);

pub(crate) fn exclusive(path: &Path) -> Result<Lock, RegistryError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(io(path))?;
    file.lock().map_err(io(path))?;
    Ok(Lock(file))
}
