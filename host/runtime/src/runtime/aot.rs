//! The ahead-of-time compilation cache.
//!
//! A compiled component (`.cwasm`) is stored under a key made of the
//! component's digest and the engine's `precompile_compatibility_hash()`, so
//! a different wasmtime version or engine configuration looks for a
//! different file and recompiles instead of loading a stale artifact.
//!
//! Deserializing native code is `unsafe` in wasmtime for a reason: only
//! artifacts this host produced are loaded. Each artifact is written with a
//! sidecar holding its sha256; an artifact whose bytes do not match its
//! sidecar (or has none) is ignored and rebuilt. The cache directory must be
//! writable only by the host's user.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// How a component's code was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compilation {
    /// Loaded from the AOT cache.
    Cached,
    /// Compiled now (and stored in the cache when there is one).
    Compiled,
}

/// A directory of `.cwasm` artifacts.
#[derive(Debug, Clone)]
pub struct AotCache {
    dir: PathBuf,
}

impl AotCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        AotCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The artifact path for `digest` (`sha256:<hex>`) under `engine`.
    pub fn artifact_path(&self, engine: &Engine, digest: &str) -> PathBuf {
        let mut hasher = StableHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let digest = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
    }

    /// Load the component from the cache, or compile it and store it.
    /// Cache write failures are logged, not fatal: the component still runs.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, Compilation)> {
        let path = self.artifact_path(engine, digest);
        if let Some(component) = self.load(engine, &path) {
            return Ok((component, Compilation::Cached));
        }
        let artifact = engine.precompile_component(wasm)?;
        if let Err(e) = self.store(&path, &artifact) {
            tracing::warn!(path = %path.display(), "cannot write the AOT cache: {e}");
        }
        // SAFETY: `artifact` was produced just now, in this process, by
        // `precompile_component` on this very engine.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &artifact)? };
        Ok((component, Compilation::Compiled))
    }

    fn load(&self, engine: &Engine, path: &Path) -> Option<Component> {
        let recorded = std::fs::read_to_string(checksum_path(path)).ok()?;
        let bytes = std::fs::read(path).ok()?;
        if hex::encode(Sha256::digest(&bytes)) != recorded.trim() {
            tracing::warn!(path = %path.display(), "AOT artifact does not match its checksum; recompiling");
            return None;
        }
        // SAFETY: the file's sha256 matches the checksum this host wrote
        // when it produced the artifact (see `store`), and its name carries
        // this engine's compatibility hash; wasmtime also checks the
        // artifact's header against the engine.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize(engine, &bytes) };
        match loaded {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "AOT artifact rejected ({e}); recompiling");
                None
            }
        }
    }

    fn store(&self, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        crate::fsutil::write_atomic(path, artifact)?;
        crate::fsutil::write_atomic(&checksum_path(path), hex::encode(Sha256::digest(artifact)).as_bytes())
    }
}

/// A `Hasher` over sha256, so cache keys do not change when the standard
/// library's `DefaultHasher` does.
struct StableHasher(Sha256);

impl Hasher for StableHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        digest.iter().take(8).fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
    }
}

fn checksum_path(artifact: &Path) -> PathBuf {
    artifact.with_extension("cwasm.sha256")
}
