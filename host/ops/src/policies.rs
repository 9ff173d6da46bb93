//! Where a host's policies come from: a directory of `.cedar` files, or a
//! fixed set (the policies built into the binary).

use std::path::PathBuf;

use arw_policy::{PolicyError, PolicySource};

#[derive(Debug, Clone)]
pub enum PolicyOrigin {
    /// `*.cedar` files, re-read at every reload.
    Directory(PathBuf),
    /// A fixed set, e.g. the embedded defaults.
    Fixed(Vec<PolicySource>),
}

impl PolicyOrigin {
    /// The sources as they are now.
    pub fn read(&self) -> Result<Vec<PolicySource>, PolicyError> {
        match self {
            PolicyOrigin::Directory(dir) => PolicySource::read_dir(dir),
            PolicyOrigin::Fixed(sources) => Ok(sources.clone()),
        }
    }
}
