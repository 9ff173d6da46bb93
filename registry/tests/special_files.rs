//! Hardening #6: the registry, the installed set and the trust store read
//! only regular files, each through a size bound. A `<version>.wasm` that
//! is a symlink to `/dev/zero` (which once made `arw verify` read 23 GB), a
//! FIFO (which would hang a reader with no writer) or an oversized sidecar
//! is refused with a message that names the file, at once.

#![cfg(unix)]
// Test helpers: an unwrap that fails is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use arw_manifest::Manifest;
use arw_registry::keys::KeyStore;
use arw_registry::{InstalledSet, Registry, RegistryError, TrustStore};
use semver::Version;

const MANIFEST: &str = "id = \"acme:echo\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n";

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    registry: Registry,
    trust: TrustStore,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let keys = KeyStore::new(root.join("keys"));
    let public = keys.generate("acme").unwrap();
    let trust = TrustStore::new(root.join("trust"));
    trust.add("acme", &public).unwrap();
    let registry = Registry::new(root.join("registry"));
    let (_, key) = keys.load("acme").unwrap();
    registry.publish(arw_artifacts::PROBE.bytes, Manifest::parse(MANIFEST).unwrap(), "acme", &key).unwrap();
    Env { _dir: dir, root, registry, trust }
}

impl Env {
    fn file(&self, suffix: &str) -> PathBuf {
        self.registry.root().join("acme/echo").join(format!("1.0.0.{suffix}"))
    }

    fn read(&self) -> Result<arw_registry::registry::Package, RegistryError> {
        self.registry.read(&"acme:echo".parse().unwrap(), &Version::new(1, 0, 0))
    }
}

/// Run `work` on another thread and fail the test if it takes over 10 s
/// (a read that hangs on a FIFO would never return).
fn within_10s<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    rx.recv_timeout(Duration::from_secs(10)).expect("the read hung instead of refusing a special file")
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

fn replace_with_symlink(path: &Path, target: &str) {
    std::fs::remove_file(path).unwrap();
    std::os::unix::fs::symlink(target, path).unwrap();
}

#[test]
fn a_component_that_is_a_symlink_to_dev_zero_is_refused_naming_the_file() {
    let env = env();
    assert!(env.read().is_ok());
    replace_with_symlink(&env.file("wasm"), "/dev/zero");
    let err = within_10s(move || env.read().map(|_| ()).unwrap_err().to_string());
    assert!(err.contains("1.0.0.wasm") && err.contains("symbolic link"), "{err}");
    assert!(err.contains("replace it with the file itself"), "the message says the fix: {err}");
}

#[test]
fn fifos_and_oversized_sidecars_are_refused_without_hanging() {
    let env = env();
    std::fs::remove_file(env.file("manifest.json")).unwrap();
    mkfifo(&env.file("manifest.json"));
    let err = within_10s(move || env.read().map(|_| ()).unwrap_err().to_string());
    assert!(err.contains("manifest.json") && err.contains("a FIFO"), "{err}");

    let env = self::env();
    std::fs::write(env.file("acme.sig"), vec![b' '; 1 << 20]).unwrap();
    let err = env.read().map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("acme.sig") && err.contains("over the limit"), "{err}");

    // The yanked marker is a symlink: refused too, not followed.
    let env = self::env();
    std::os::unix::fs::symlink("/dev/zero", env.file("yanked")).unwrap();
    let err = env.read().map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("1.0.0.yanked") && err.contains("symbolic link"), "{err}");
}

#[test]
fn the_installed_set_and_the_trust_store_read_only_regular_files() {
    let env = env();
    let state = env.root.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let installed = InstalledSet::new(&state);
    std::os::unix::fs::symlink("/dev/zero", installed.path()).unwrap();
    let err = within_10s(move || installed.load().map(|_| ()).unwrap_err().to_string());
    assert!(err.contains("installed.json") && err.contains("symbolic link"), "{err}");

    mkfifo(&env.root.join("trust/mallory.pub"));
    let trust = env.trust.clone();
    let err = within_10s(move || trust.list().map(|_| ()).unwrap_err().to_string());
    assert!(err.contains("mallory.pub") && err.contains("a FIFO"), "{err}");
}
