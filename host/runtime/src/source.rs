//! Where components come from.
//!
//! The host loads through one interface, [`ComponentSource`]: today a
//! directory of manifests and `.wasm` files, or components embedded in the
//! binary; the signed registry plugs in here next.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::error::LoadError;
use crate::manifest::Manifest;

/// A component's bytes with its parsed manifest.
#[derive(Debug, Clone)]
pub struct ComponentPackage {
    pub manifest: Manifest,
    pub wasm: Cow<'static, [u8]>,
    /// Where it came from, for messages.
    pub origin: String,
    /// The trusted signer that vouches for this package (its key name in the
    /// trust store), as established by the source after verifying the
    /// signature. `None` for unsigned packages, which the host refuses unless
    /// `allow-unsigned` is set. Cedar sees it as `principal.publisher`.
    pub publisher: Option<String>,
}

/// A provider of component packages. Each package is returned separately
/// so that one bad component does not keep the others from loading.
pub trait ComponentSource: Send + Sync {
    /// Human-readable description of the source, for logs.
    fn describe(&self) -> String;
    /// Every package, or the reason each one could not be read.
    fn packages(&self) -> Vec<Result<ComponentPackage, LoadError>>;
}

/// Components built into the binary: (manifest text, wasm bytes) pairs.
/// Unsigned: the CLI publishes and installs them through the registry rather
/// than loading them from here.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedSource {
    entries: Vec<(String, &'static str, &'static [u8])>,
}

impl EmbeddedSource {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a component called `name` (for messages).
    pub fn with(mut self, name: &str, manifest: &'static str, wasm: &'static [u8]) -> Self {
        self.entries.push((format!("embedded:{name}"), manifest, wasm));
        self
    }
}

impl ComponentSource for EmbeddedSource {
    fn describe(&self) -> String {
        format!("{} embedded components", self.entries.len())
    }

    fn packages(&self) -> Vec<Result<ComponentPackage, LoadError>> {
        self.entries
            .iter()
            .map(|(origin, manifest, wasm)| {
                let manifest = Manifest::parse(manifest)
                    .map_err(|e| LoadError::Manifest { origin: origin.clone(), message: e.message })?;
                Ok(ComponentPackage { manifest, wasm: Cow::Borrowed(wasm), origin: origin.clone(), publisher: None })
            })
            .collect()
    }
}

/// Unsigned components from a directory (development only: the host refuses
/// them unless `allow-unsigned` is set).
///
/// A directory of `NAME.toml` manifests, each next to its component
/// (`NAME.wasm`, or the manifest's `component` path, relative to it).
#[derive(Debug, Clone)]
pub struct DirectorySource {
    dir: PathBuf,
    /// Refuse component files larger than this.
    max_component_bytes: u64,
}

/// Default cap on a component file: large enough for Python and
/// JavaScript components (~20 MB), small enough to refuse junk early.
pub const DEFAULT_MAX_COMPONENT_BYTES: u64 = 64 << 20;

impl DirectorySource {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirectorySource { dir: dir.into(), max_component_bytes: DEFAULT_MAX_COMPONENT_BYTES }
    }

    fn package(&self, manifest_path: &Path) -> Result<ComponentPackage, LoadError> {
        let origin = manifest_path.display().to_string();
        let text = arw_fs::read_user_file(manifest_path, 1 << 20)
            .map_err(|e| LoadError::Manifest { origin: origin.clone(), message: e.to_string() })?;
        let text = String::from_utf8(text)
            .map_err(|_| LoadError::Manifest { origin: origin.clone(), message: "not UTF-8 text".into() })?;
        let manifest =
            Manifest::parse(&text).map_err(|e| LoadError::Manifest { origin: origin.clone(), message: e.message })?;
        let wasm_path = match &manifest.component {
            Some(path) if path.is_absolute() || path.components().any(|c| c == std::path::Component::ParentDir) => {
                return Err(LoadError::Manifest {
                    origin,
                    message: format!(
                        "`component = {:?}` must be a relative path inside the manifest's directory",
                        path.display().to_string()
                    ),
                });
            }
            Some(path) => self.dir.join(path),
            None => manifest_path.with_extension("wasm"),
        };
        let wasm_origin = wasm_path.display().to_string();
        let wasm = arw_fs::read_user_file(&wasm_path, self.max_component_bytes).map_err(|e| match e {
            arw_fs::ReadError::Io { error, .. } => LoadError::Io { origin: wasm_origin.clone(), error },
            arw_fs::ReadError::NotFound { .. } => LoadError::Io {
                origin: wasm_origin.clone(),
                error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            },
            other => LoadError::Limits { origin: wasm_origin.clone(), message: other.to_string() },
        })?;
        Ok(ComponentPackage { manifest, wasm: Cow::Owned(wasm), origin: wasm_origin, publisher: None })
    }
}

impl ComponentSource for DirectorySource {
    fn describe(&self) -> String {
        format!("directory {}", self.dir.display())
    }

    fn packages(&self) -> Vec<Result<ComponentPackage, LoadError>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) => return vec![Err(LoadError::Io { origin: self.dir.display().to_string(), error })],
        };
        let mut manifests: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
            .collect();
        manifests.sort();
        manifests.iter().map(|m| self.package(m)).collect()
    }
}
