//! The registry directory: publish, sign, list, resolve, read, yank.
//!
//! Layout (readable by `wkg`'s `local` backend, which looks only at the
//! semver-named `.wasm` files and ignores the sidecars):
//!
//! ```text
//! <root>/<namespace>/<name>/<version>.wasm            the component
//! <root>/<namespace>/<name>/<version>.manifest.json   the signed manifest
//! <root>/<namespace>/<name>/<version>.<signer>.sig    one file per signature
//! <root>/<namespace>/<name>/<version>.yanked          present when yanked
//! ```
//!
//! Crash safety: every file is written to a temporary file, fsynced and
//! renamed into place, and the `.wasm` is written **last**. A version exists
//! exactly when its `.wasm` does, so a crash at any moment leaves each
//! version either complete (and verifiable) or absent. Writers hold a lock
//! on `<root>/.lock`.

use std::path::{Path, PathBuf};

use arw_fs::write_atomic;
use arw_manifest::{ComponentId, Manifest};
use ed25519_dalek::SigningKey;
use semver::Version;
use serde::Serialize;

use crate::error::{RegistryError, io, validate_name};
use crate::reference::{PackageRef, VersionSpec};
use crate::signature::{SignatureFile, SignedManifest, digest};

/// Default cap on a published component (Python and JavaScript components
/// are ~20 MB).
pub const DEFAULT_MAX_COMPONENT_BYTES: u64 = 64 << 20;

/// One published version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionEntry {
    pub id: String,
    pub version: String,
    pub yanked: bool,
    #[serde(skip)]
    pub(crate) dir: PathBuf,
}

/// A version's files, read from disk.
#[derive(Debug, Clone)]
pub struct Package {
    pub id: ComponentId,
    pub version: Version,
    pub wasm: Vec<u8>,
    pub manifest_bytes: Vec<u8>,
    /// (file name, contents) of each signature file.
    pub signatures: Vec<(String, Vec<u8>)>,
    pub yanked: bool,
    /// `<root>/<ns>/<name>/<version>.wasm`, for messages.
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
    max_component_bytes: u64,
}

impl Registry {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Registry { root: root.into(), max_component_bytes: DEFAULT_MAX_COMPONENT_BYTES }
    }

    pub fn with_max_component_bytes(mut self, limit: u64) -> Self {
        self.max_component_bytes = limit;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn package_dir(&self, id: &ComponentId) -> PathBuf {
        // Both parts are validated `[a-z0-9-]` (see `ComponentId`).
        self.root.join(id.namespace()).join(id.name())
    }

    fn file(&self, id: &ComponentId, version: &Version, suffix: &str) -> PathBuf {
        self.package_dir(id).join(format!("{version}.{suffix}"))
    }

    /// Publish `wasm` described by `manifest`, signed by `signer`. Checks
    /// the bytes are a component exporting the manifest's worlds.
    pub fn publish(
        &self,
        wasm: &[u8],
        manifest: Manifest,
        signer: &str,
        key: &SigningKey,
    ) -> Result<VersionEntry, RegistryError> {
        validate_name(signer)?;
        let size = wasm.len() as u64;
        if size > self.max_component_bytes {
            return Err(RegistryError::TooLarge { size, limit: self.max_component_bytes });
        }
        crate::inspect::check_worlds(wasm, &manifest.worlds).map_err(RegistryError::Component)?;
        let id = manifest.id.clone();
        let version = manifest.version.clone();
        let signed = SignedManifest::new(manifest, wasm);
        let manifest_bytes = signed.to_bytes();
        let signature = SignatureFile::sign(&manifest_bytes, signer, key);

        let _lock = crate::lock::exclusive(&self.root.join(".lock"))?;
        let wasm_path = self.file(&id, &version, "wasm");
        if std::fs::symlink_metadata(&wasm_path).is_ok() {
            return Err(RegistryError::AlreadyPublished { id: id.to_string(), version: version.to_string() });
        }
        let dir = self.package_dir(&id);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        // Leftovers of an interrupted publish of this version would mix with
        // the new files: clear them (the version does not exist yet), and
        // any temporary file a killed writer left (we hold the lock, so no
        // writer is active).
        remove_sidecars(&dir, &version)?;
        remove_stale_temporaries(&dir)?;
        let manifest_path = self.file(&id, &version, "manifest.json");
        write_atomic(&manifest_path, &manifest_bytes).map_err(io(&manifest_path))?;
        arw_fs::fault_point("publish:manifest", id.as_str());
        let sig_path = self.file(&id, &version, &format!("{signer}.sig"));
        write_atomic(&sig_path, &signature.to_bytes()).map_err(io(&sig_path))?;
        arw_fs::fault_point("publish:signature", id.as_str());
        // The commit point.
        write_atomic(&wasm_path, wasm).map_err(io(&wasm_path))?;
        arw_fs::fault_point("publish:committed", id.as_str());
        Ok(VersionEntry { id: id.to_string(), version: version.to_string(), yanked: false, dir })
    }

    /// Add a signature by `signer` to a published version (e.g. a local
    /// approver countersigning a publisher's component). The version must
    /// verify its digest first; the signature covers the same manifest bytes.
    pub fn countersign(
        &self,
        id: &ComponentId,
        version: &Version,
        signer: &str,
        key: &SigningKey,
    ) -> Result<PathBuf, RegistryError> {
        validate_name(signer)?;
        let _lock = crate::lock::exclusive(&self.root.join(".lock"))?;
        let package = self.read(id, version)?;
        let signed = SignedManifest::parse(&package.manifest_bytes)
            .map_err(|m| crate::verify::VerifyError::Manifest { path: package.path.clone(), message: m })?;
        if signed.digest != digest(&package.wasm) {
            return Err(crate::verify::VerifyError::Digest {
                path: package.path.clone(),
                expected: signed.digest,
                actual: digest(&package.wasm),
            }
            .into());
        }
        let sig_path = self.file(id, version, &format!("{signer}.sig"));
        let signature = SignatureFile::sign(&package.manifest_bytes, signer, key);
        write_atomic(&sig_path, &signature.to_bytes()).map_err(io(&sig_path))?;
        Ok(sig_path)
    }

    /// Mark a version as not to be newly installed.
    pub fn yank(&self, id: &ComponentId, version: &Version) -> Result<(), RegistryError> {
        let _lock = crate::lock::exclusive(&self.root.join(".lock"))?;
        if std::fs::symlink_metadata(self.file(id, version, "wasm")).is_err() {
            return Err(self.not_found(&format!("{id}@{version}")));
        }
        let path = self.file(id, version, "yanked");
        write_atomic(&path, b"yanked\n").map_err(io(&path))
    }

    /// The published versions of `id`, oldest first.
    pub fn versions(&self, id: &ComponentId) -> Result<Vec<VersionEntry>, RegistryError> {
        let dir = self.package_dir(id);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RegistryError::Io { path: dir, error: e }),
        };
        let mut versions = Vec::new();
        for entry in entries {
            let name = entry.map_err(io(&dir))?.file_name();
            let Some(version) = name.to_str().and_then(|n| n.strip_suffix(".wasm")) else { continue };
            let Ok(version) = Version::parse(version) else { continue };
            let yanked = arw_fs::regular_file_exists(&dir.join(format!("{version}.yanked"))).unwrap_or(true);
            versions.push((version, yanked));
        }
        versions.sort();
        Ok(versions
            .into_iter()
            .map(|(v, yanked)| VersionEntry { id: id.to_string(), version: v.to_string(), yanked, dir: dir.clone() })
            .collect())
    }

    /// Every published version of every component.
    pub fn list(&self) -> Result<Vec<VersionEntry>, RegistryError> {
        let mut all = Vec::new();
        for namespace in read_dir_names(&self.root)? {
            for name in read_dir_names(&self.root.join(&namespace))? {
                if let Ok(id) = format!("{namespace}:{name}").parse::<ComponentId>() {
                    all.extend(self.versions(&id)?);
                }
            }
        }
        Ok(all)
    }

    /// The version `reference` selects. Yanked versions are never selected
    /// by `Latest` or a requirement; an exact yanked version is refused.
    pub fn resolve(&self, reference: &PackageRef) -> Result<VersionEntry, RegistryError> {
        let versions = self.versions(&reference.id)?;
        let pick = match &reference.version {
            VersionSpec::Exact(v) => {
                let entry = versions.into_iter().find(|e| e.version == v.to_string());
                if let Some(e) = &entry
                    && e.yanked
                {
                    return Err(RegistryError::Yanked { id: e.id.clone(), version: e.version.clone() });
                }
                entry
            }
            VersionSpec::Latest => versions.into_iter().rev().find(|e| !e.yanked),
            VersionSpec::Req(req) => versions
                .into_iter()
                .rev()
                .find(|e| !e.yanked && Version::parse(&e.version).is_ok_and(|v| req.matches(&v))),
        };
        pick.ok_or_else(|| self.not_found(&reference.to_string()))
    }

    /// Read a version's files.
    pub fn read(&self, id: &ComponentId, version: &Version) -> Result<Package, RegistryError> {
        // Every file is read only if it is a regular file (no symlink, FIFO
        // or device) and through a size bound: a hostile registry cannot
        // make a read hang or exhaust memory.
        let path = self.file(id, version, "wasm");
        let wasm = match arw_fs::read_bounded(&path, self.max_component_bytes) {
            Ok(wasm) => wasm,
            Err(e) if e.is_not_found() => return Err(self.not_found(&format!("{id}@{version}"))),
            Err(e) => return Err(e.into()),
        };
        let manifest_path = self.file(id, version, "manifest.json");
        let manifest_bytes = match arw_fs::read_bounded(&manifest_path, crate::error::MAX_MANIFEST_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let dir = self.package_dir(id);
        let mut signatures = Vec::new();
        for name in read_dir_names(&dir)? {
            if sidecar_of(&name, version) == Some(Sidecar::Signature) {
                let sig_path = dir.join(&name);
                signatures.push((name, arw_fs::read_bounded(&sig_path, crate::error::MAX_SMALL_FILE_BYTES)?));
            }
        }
        signatures.sort();
        let yanked = arw_fs::regular_file_exists(&self.file(id, version, "yanked"))?;
        Ok(Package { id: id.clone(), version: version.clone(), wasm, manifest_bytes, signatures, yanked, path })
    }

    /// The published version whose component bytes have `digest`.
    pub fn find_by_digest(&self, wanted: &str) -> Result<Option<VersionEntry>, RegistryError> {
        for entry in self.list()? {
            let path = entry.dir.join(format!("{}.manifest.json", entry.version));
            let Ok(bytes) = arw_fs::read_bounded(&path, crate::error::MAX_MANIFEST_BYTES) else { continue };
            if SignedManifest::parse(&bytes).is_ok_and(|m| m.digest == wanted) {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }

    fn not_found(&self, reference: &str) -> RegistryError {
        RegistryError::NotFound {
            reference: reference.into(),
            root: self.root.clone(),
            hint: " (see `arw list --available`)".into(),
        }
    }
}

/// Remove the `.NAME.<pid>.<n>.tmp` files `write_atomic` leaves behind
/// when a writer is killed.
fn remove_stale_temporaries(dir: &Path) -> Result<(), RegistryError> {
    let entries = std::fs::read_dir(dir).map_err(io(dir))?;
    for entry in entries {
        let path = entry.map_err(io(dir))?.path();
        let stale = path.file_name().and_then(|n| n.to_str()).is_some_and(arw_fs::is_temporary);
        if stale {
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// Remove every `<version>.*` file of `dir` (used before a publish of a
/// version that does not exist, to clear an interrupted attempt).
fn remove_sidecars(dir: &Path, version: &Version) -> Result<(), RegistryError> {
    for name in read_dir_names(dir)? {
        if sidecar_of(&name, version).is_some() {
            let path = dir.join(&name);
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sidecar {
    Manifest,
    Signature,
    Yanked,
}

/// Which sidecar of `version` the file `name` is, if any. Exact matching
/// matters: `1.0.0-rc.1.manifest.json` is not a sidecar of `1.0.0-rc`.
fn sidecar_of(name: &str, version: &Version) -> Option<Sidecar> {
    let rest = name.strip_prefix(&version.to_string())?.strip_prefix('.')?;
    match rest {
        "manifest.json" => Some(Sidecar::Manifest),
        "yanked" => Some(Sidecar::Yanked),
        _ => {
            let signer = rest.strip_suffix(".sig")?;
            validate_name(signer).is_ok().then_some(Sidecar::Signature)
        }
    }
}

/// Names of the entries of `dir` (none if it does not exist), skipping
/// hidden ones (locks, temporary files).
fn read_dir_names(dir: &Path) -> Result<Vec<String>, RegistryError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RegistryError::Io { path: dir.into(), error: e }),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        if let Some(name) = entry.file_name().to_str()
            && !name.starts_with('.')
        {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}
