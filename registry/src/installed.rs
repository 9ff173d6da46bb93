//! The installed set: which version of each component the host runs, kept
//! in `<state-dir>/installed.json`, and the check every load of an entry
//! goes through ([`verify_installed`]).
//!
//! The index is rewritten atomically (temporary file, fsync, rename) under a
//! lock, so concurrent `arw install`s do not lose each other's updates and a
//! crash leaves either the old index or the new one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use arw_manifest::ComponentId;
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, io};
use crate::registry::{Package, Registry};
use crate::trust::TrustStore;
use crate::verify::Verified;

pub const INDEX_FORMAT: &str = "arw-installed/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct InstalledEntry {
    pub version: String,
    pub digest: String,
    /// The trusted signer at install time.
    pub publisher: String,
    /// The version that was active before this one, for rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    pub installed_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct InstalledIndex {
    pub format: String,
    /// Set once the first-party components were installed on first run, so
    /// a later uninstall of one of them sticks.
    #[serde(default)]
    pub bootstrapped: bool,
    pub components: BTreeMap<String, InstalledEntry>,
}

impl InstalledIndex {
    /// Parse and check the bytes of an `installed.json`. An entry whose id
    /// or version is malformed is refused when it is loaded (alone), not
    /// here, so one bad entry does not stop the others.
    pub fn parse(bytes: &[u8]) -> Result<InstalledIndex, String> {
        let index: InstalledIndex = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if index.format != INDEX_FORMAT {
            return Err(format!("unknown format `{}`", index.format.chars().take(64).collect::<String>()));
        }
        Ok(index)
    }
}

impl Default for InstalledIndex {
    fn default() -> Self {
        InstalledIndex { format: INDEX_FORMAT.into(), bootstrapped: false, components: BTreeMap::new() }
    }
}

/// `<state-dir>/installed.json` and its lock.
#[derive(Debug, Clone)]
pub struct InstalledSet {
    path: PathBuf,
}

impl InstalledSet {
    pub fn new(state_dir: &Path) -> Self {
        InstalledSet { path: state_dir.join("installed.json") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current index (empty if none was written yet).
    pub fn load(&self) -> Result<InstalledIndex, RegistryError> {
        let bytes = match arw_fs::read_bounded(&self.path, crate::error::MAX_INDEX_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => return Ok(InstalledIndex::default()),
            Err(e) => return Err(e.into()),
        };
        InstalledIndex::parse(&bytes).map_err(|reason| RegistryError::CorruptIndex { path: self.path.clone(), reason })
    }

    /// Read, change and atomically rewrite the index under the lock.
    pub fn update<T>(&self, change: impl FnOnce(&mut InstalledIndex) -> T) -> Result<T, RegistryError> {
        let _lock = crate::lock::exclusive(&self.path.with_extension("lock"))?;
        self.remove_stale_temporaries();
        let mut index = self.load()?;
        let result = change(&mut index);
        let mut bytes = serde_json::to_vec_pretty(&index).unwrap_or_default();
        bytes.push(b'\n');
        arw_fs::write_atomic(&self.path, &bytes).map_err(io(&self.path))?;
        Ok(result)
    }

    /// Temporary files of this index that a killed writer left behind (we
    /// hold the lock, so no writer is active).
    fn remove_stale_temporaries(&self) {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name().and_then(|n| n.to_str())) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let prefix = format!(".{name}.");
        for entry in entries.flatten() {
            let file = entry.file_name();
            if file.to_str().is_some_and(|f| f.starts_with(&prefix) && arw_fs::is_temporary(f)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Record `id@version` as the active version; returns the entry.
    pub fn record(
        &self,
        id: &ComponentId,
        version: &Version,
        digest: &str,
        publisher: &str,
    ) -> Result<InstalledEntry, RegistryError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        self.update(|index| {
            let previous = index.components.get(id.as_str()).map(|e| e.version.clone());
            let previous = previous.filter(|p| *p != version.to_string());
            let entry = InstalledEntry {
                version: version.to_string(),
                digest: digest.into(),
                publisher: publisher.into(),
                previous,
                installed_at_ms: now,
            };
            index.components.insert(id.to_string(), entry.clone());
            entry
        })
    }

    /// Remove `id`; returns the entry it had.
    pub fn remove(&self, id: &ComponentId) -> Result<Option<InstalledEntry>, RegistryError> {
        self.update(|index| index.components.remove(id.as_str()))
    }
}

/// Why an installed entry cannot be loaded: the check that failed and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{check} check failed: {message}")]
pub struct InstalledCheckError {
    /// `manifest`, `registry`, `signature`, `trust`, `digest` or `world`.
    pub check: &'static str,
    pub message: String,
}

/// Read and verify one installed entry: the registry's files for it, the
/// whole signature chain, the publisher recorded at install (a later
/// countersignature must not change who Cedar thinks published it), and
/// the digest recorded at install (the registry must not have changed under
/// the installed set).
pub fn verify_installed(
    registry: &Registry,
    trust: &TrustStore,
    id: &str,
    entry: &InstalledEntry,
) -> Result<(Package, Verified), InstalledCheckError> {
    let fail = |check: &'static str, message: String| InstalledCheckError { check, message };
    let id: ComponentId = id.parse().map_err(|e| fail("manifest", e))?;
    let version = Version::parse(&entry.version).map_err(|e| fail("manifest", e.to_string()))?;
    let package = registry.read(&id, &version).map_err(|e| fail("registry", e.to_string()))?;
    let verified = crate::verify::verify(&package, trust).map_err(|e| fail(e.check(), e.detail()))?;
    if !verified.vouched_by(&entry.publisher) {
        return Err(fail(
            "trust",
            format!(
                "`{}`, the publisher recorded at install, no longer has a valid trusted signature on it; \
                 reinstall to accept its current signers",
                entry.publisher
            ),
        ));
    }
    if verified.digest != entry.digest {
        return Err(fail(
            "digest",
            format!(
                "the registry now holds {} but {} was installed; the registry changed under the installed set",
                verified.digest, entry.digest
            ),
        ));
    }
    Ok((package, verified))
}
