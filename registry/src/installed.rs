//! The installed set: which version of each component the host runs, kept
//! in `<state-dir>/installed.json`, and the source the host loads it from.
//!
//! The index is rewritten atomically (temporary file, fsync, rename) under a
//! lock, so concurrent `arw install`s do not lose each other's updates and a
//! crash leaves either the old index or the new one.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use arw_host::LoadError;
use arw_host::manifest::ComponentId;
use arw_host::source::{ComponentPackage, ComponentSource};
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, io};
use crate::registry::Registry;
use crate::trust::TrustStore;

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
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(InstalledIndex::default()),
            Err(e) => return Err(RegistryError::Io { path: self.path.clone(), error: e }),
        };
        let index: InstalledIndex = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::CorruptIndex { path: self.path.clone(), reason: e.to_string() })?;
        if index.format != INDEX_FORMAT {
            return Err(RegistryError::CorruptIndex {
                path: self.path.clone(),
                reason: format!("unknown format `{}`", index.format),
            });
        }
        Ok(index)
    }

    /// Read, change and atomically rewrite the index under the lock.
    pub fn update<T>(&self, change: impl FnOnce(&mut InstalledIndex) -> T) -> Result<T, RegistryError> {
        let _lock = crate::lock::exclusive(&self.path.with_extension("lock"))?;
        let mut index = self.load()?;
        let result = change(&mut index);
        let mut bytes = serde_json::to_vec_pretty(&index).unwrap_or_default();
        bytes.push(b'\n');
        arw_host::fsutil::write_atomic(&self.path, &bytes).map_err(io(&self.path))?;
        Ok(result)
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

/// The host's source of components: the installed set, each version read
/// from the registry and verified (digest, signatures, trusted signer,
/// world) at every load. A package that fails is refused with the check
/// that failed; the others load.
#[derive(Debug, Clone)]
pub struct InstalledSource {
    registry: Registry,
    trust: TrustStore,
    installed: InstalledSet,
}

impl InstalledSource {
    pub fn installed(&self) -> &InstalledSet {
        &self.installed
    }

    pub fn new(registry: Registry, trust: TrustStore, installed: InstalledSet) -> Self {
        InstalledSource { registry, trust, installed }
    }

    /// Read and verify one installed entry (what a running host does when
    /// the installed set changes).
    pub fn package(&self, id: &str, entry: &InstalledEntry) -> Result<ComponentPackage, LoadError> {
        let origin = format!("registry:{id}@{}", entry.version);
        let fail = |check: &'static str, message: String| LoadError::Verify { origin: origin.clone(), check, message };
        let id: ComponentId = id.parse().map_err(|e| fail("manifest", e))?;
        let version = Version::parse(&entry.version).map_err(|e| fail("manifest", e.to_string()))?;
        let package = self.registry.read(&id, &version).map_err(|e| fail("registry", e.to_string()))?;
        let verified = crate::verify::verify(&package, &self.trust).map_err(|e| fail(e.check(), e.detail()))?;
        // The publisher recorded at install stays the publisher (a later
        // countersignature must not change who Cedar thinks published it).
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
        Ok(ComponentPackage {
            manifest: verified.manifest,
            wasm: Cow::Owned(package.wasm),
            origin: format!("registry:{id}@{version}"),
            publisher: Some(entry.publisher.clone()),
        })
    }
}

impl ComponentSource for InstalledSource {
    fn describe(&self) -> String {
        format!("installed components ({}) from {}", self.installed.path().display(), self.registry.root().display())
    }

    fn packages(&self) -> Vec<Result<ComponentPackage, LoadError>> {
        let index = match self.installed.load() {
            Ok(index) => index,
            Err(e) => {
                return vec![Err(LoadError::Verify {
                    origin: self.installed.path().display().to_string(),
                    check: "installed-set",
                    message: e.to_string(),
                })];
            }
        };
        index.components.iter().map(|(id, entry)| self.package(id, entry)).collect()
    }
}
