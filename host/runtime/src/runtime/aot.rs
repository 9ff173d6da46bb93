//! The ahead-of-time compilation cache, authenticated.
//!
//! A compiled component (`.cwasm`) is native code that wasmtime loads with
//! `unsafe` deserialization: loading a forged one would run an attacker's
//! machine code past every signature check. So an artifact is loaded only
//! if it carries a valid MAC (HMAC-SHA256) under a secret only this host's
//! user can read:
//!
//! - the secret is 32 random bytes in `aot.secret` (mode 0600), beside the
//!   signing keys (`keys-dir`, a 0700 directory) or, without one, in the
//!   state directory; it is created on first use;
//! - each artifact `<digest>-<engine>.cwasm` has a sidecar
//!   `<digest>-<engine>.cwasm.mac` holding `HMAC(secret, name ‖ bytes)`,
//!   so an artifact cannot be renamed into another component's place;
//! - the cache directory must be owned by the host's user and not writable
//!   by group or others, or the cache is not used at all (every component
//!   is compiled at load, and a warning says how to fix the directory).
//!
//! An artifact whose MAC does not match (or has none) is ignored and
//! recompiled. The key also covers the engine (`precompile_compatibility_
//! hash()`), so a different wasmtime or engine configuration recompiles
//! instead of loading a stale artifact.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::config::HostConfig;

/// The most bytes read from a `.cwasm` (a compiled 18 MB Python component
/// is ~60 MB).
pub const MAX_ARTIFACT_BYTES: u64 = 512 << 20;
const SECRET_FILE: &str = "aot.secret";
const SECRET_BYTES: usize = 32;

/// How a component's code was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compilation {
    /// Loaded from the AOT cache.
    Cached,
    /// Compiled now (and stored in the cache when there is one).
    Compiled,
}

/// Why the cache cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AotError {
    #[error(
        "{path} is {problem}; the AOT cache holds native code, so only the host's user may write it \
         (fix it with `chmod go-w {path}` and, if needed, `chown`)"
    )]
    UnsafeDirectory { path: PathBuf, problem: String },
    #[error(
        "{path} is {problem}; it authenticates the AOT cache's native code, so only the host's user may \
         read it (fix it with `chmod 600 {path}` and, if needed, `chown`)"
    )]
    UnsafeSecret { path: PathBuf, problem: String },
    #[error("{path}: {message}")]
    Secret { path: PathBuf, message: String },
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("no state directory configured")]
    NoStateDir,
}

/// A directory of authenticated `.cwasm` artifacts.
#[derive(Clone)]
pub struct AotCache {
    dir: PathBuf,
    secret: [u8; SECRET_BYTES],
}

impl std::fmt::Debug for AotCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AotCache").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl AotCache {
    /// The cache a host configuration uses: `<state-dir>/aot`, with its
    /// secret in `keys-dir` (or the state directory).
    pub fn for_config(config: &HostConfig) -> Result<Self, AotError> {
        let state = config.state_dir.as_deref().ok_or(AotError::NoStateDir)?;
        let secret_dir = config.keys_dir.as_deref().unwrap_or(state);
        AotCache::open(state.join("aot"), &secret_dir.join(SECRET_FILE))
    }

    /// Open (creating if needed) the cache in `dir` with the secret at
    /// `secret_path` (created if missing). Refuses a directory others can
    /// write, and a secret others can read.
    pub fn open(dir: PathBuf, secret_path: &Path) -> Result<Self, AotError> {
        create_private_dir(&dir)?;
        check_private(&dir, true)?;
        let secret = load_or_create_secret(secret_path)?;
        Ok(AotCache { dir, secret })
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

    /// The MAC of the artifact called `name` with `bytes`, ready to
    /// finalize or to verify (in constant time).
    fn mac(&self, name: &str, bytes: &[u8]) -> Option<Hmac<Sha256>> {
        // HMAC accepts keys of any length; this one is 32 bytes.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).ok()?;
        mac.update(b"arw-aot/1\n");
        mac.update(name.as_bytes());
        mac.update(b"\n");
        mac.update(bytes);
        Some(mac)
    }

    fn load(&self, engine: &Engine, path: &Path) -> Option<Component> {
        let name = path.file_name()?.to_str()?;
        let recorded = arw_fs::read_text_bounded(&mac_path(path), 1024).ok()?;
        let recorded = hex::decode(recorded.trim()).ok()?;
        let bytes = match arw_fs::read_bounded(path, MAX_ARTIFACT_BYTES) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!("AOT artifact not loaded: {e}; recompiling");
                return None;
            }
        };
        if self.mac(name, &bytes)?.verify_slice(&recorded).is_err() {
            tracing::warn!(path = %path.display(), "AOT artifact is not authenticated by this host; recompiling");
            return None;
        }
        // SAFETY: the artifact carries a MAC under this host's secret, which
        // only this host's user can read, over its exact bytes and name: it
        // is one this host produced (see `store`). Its name carries this
        // engine's compatibility hash, and wasmtime checks its header too.
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
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let mac = self.mac(name, artifact).ok_or_else(|| std::io::Error::other("cannot compute the artifact's MAC"))?;
        let mac = hex::encode(mac.finalize().into_bytes());
        // The artifact first, its MAC last: a crash in between leaves an
        // artifact without a valid MAC, which is recompiled.
        arw_fs::write_atomic_with_mode(path, artifact, Some(0o600))?;
        arw_fs::write_atomic_with_mode(&mac_path(path), mac.as_bytes(), Some(0o600))
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

fn mac_path(artifact: &Path) -> PathBuf {
    artifact.with_extension("cwasm.mac")
}

fn create_private_dir(dir: &Path) -> Result<(), AotError> {
    if std::fs::symlink_metadata(dir).is_ok() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|error| AotError::Io { path: dir.into(), error })
}

/// Refuse `path` unless it is owned by this process's user and not
/// writable (`dir`) or readable (a secret file) by group or others.
fn check_private(path: &Path, dir: bool) -> Result<(), AotError> {
    let meta = std::fs::symlink_metadata(path).map_err(|error| AotError::Io { path: path.into(), error })?;
    let unsafe_path = |problem: String| {
        if dir {
            AotError::UnsafeDirectory { path: path.into(), problem }
        } else {
            AotError::UnsafeSecret { path: path.into(), problem }
        }
    };
    if meta.file_type().is_symlink() {
        return Err(unsafe_path("a symbolic link".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: `geteuid` has no preconditions and cannot fail.
        #[allow(unsafe_code)]
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(unsafe_path(format!("owned by uid {}, not by the host's user (uid {me})", meta.uid())));
        }
        let mode = meta.mode() & 0o777;
        let forbidden = if dir { 0o022 } else { 0o077 };
        if mode & forbidden != 0 {
            let what = if dir { "writable" } else { "readable or writable" };
            return Err(unsafe_path(format!("{what} by group or others (mode {mode:o})")));
        }
    }
    Ok(())
}

fn load_or_create_secret(path: &Path) -> Result<[u8; SECRET_BYTES], AotError> {
    let fail = |message: String| AotError::Secret { path: path.into(), message };
    match arw_fs::read_bounded(path, 1024) {
        Ok(bytes) => {
            check_private(path, false)?;
            let text = String::from_utf8(bytes).map_err(|_| fail("not hex text".into()))?;
            let decoded = hex::decode(text.trim()).map_err(|_| fail("not hex text".into()))?;
            decoded.try_into().map_err(|_| fail(format!("not {SECRET_BYTES} bytes; delete it to make a new one")))
        }
        Err(e) if e.is_not_found() => {
            let mut secret = [0u8; SECRET_BYTES];
            getrandom::getrandom(&mut secret).map_err(|e| fail(format!("no operating-system randomness: {e}")))?;
            if let Some(parent) = path.parent() {
                create_private_dir(parent)?;
            }
            arw_fs::write_atomic_with_mode(path, hex::encode(secret).as_bytes(), Some(0o600))
                .map_err(|error| AotError::Io { path: path.into(), error })?;
            Ok(secret)
        }
        Err(e) => Err(fail(e.to_string())),
    }
}
