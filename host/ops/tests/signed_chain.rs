//! The signature chain end to end: publish → verify → install → load → call,
//! and every way a package can be tampered with, refused with its own check
//! and without touching the installed set.

// Test helpers: an unwrap that fails is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use arw_host::manifest::{ComponentId, Manifest};
use arw_host::{Host, HostConfig, LoadError};
use arw_ops::InstalledSource;
use arw_policy::{PolicySet, PolicySource, Principal};
use arw_registry::keys::KeyStore;
use arw_registry::reference::VersionSpec;
use arw_registry::{InstalledSet, PackageRef, PublicKey, Registry, RegistryError, TrustStore};
use semver::Version;

const TEXT_STATS: &str = include_str!("../../../manifests/text-stats.toml");
const KV_COUNTER: &str = include_str!("../../../manifests/kv-counter.toml");
const DEFAULT_POLICIES: &str = include_str!("../../../policies/default.cedar");

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    registry: Registry,
    keys: KeyStore,
    trust: TrustStore,
    installed: InstalledSet,
    state: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let env = Env {
        registry: Registry::new(root.join("registry")),
        keys: KeyStore::new(root.join("keys")),
        trust: TrustStore::new(root.join("trust")),
        installed: InstalledSet::new(&root.join("state")),
        state: root.join("state"),
        root,
        _dir: dir,
    };
    std::fs::create_dir_all(&env.state).unwrap();
    env
}

impl Env {
    /// Create key `name`, trusted unless `trusted` is false.
    fn key(&self, name: &str, trusted: bool) -> ed25519_dalek::SigningKey {
        let public = self.keys.generate(name).unwrap();
        if trusted {
            self.trust.add(name, &public).unwrap();
        }
        self.keys.load(name).unwrap().1
    }

    fn publish(&self, manifest: &str, wasm: &[u8], signer: &str, key: &ed25519_dalek::SigningKey) {
        self.registry.publish(wasm, Manifest::parse(manifest).unwrap(), signer, key).unwrap();
    }

    /// What `arw install` does, minus the prompt and precompilation.
    fn install(&self, reference: &str) -> Result<(), RegistryError> {
        let reference: PackageRef = reference.parse()?;
        let entry = self.registry.resolve(&reference)?;
        let version = Version::parse(&entry.version).unwrap();
        let package = self.registry.read(&reference.id, &version)?;
        let verified = arw_registry::verify::verify(&package, &self.trust)?;
        self.installed.record(&reference.id, &version, &verified.digest, &verified.publisher)?;
        Ok(())
    }

    fn file(&self, id: &str, version: &str, suffix: &str) -> PathBuf {
        let (ns, name) = id.split_once(':').unwrap();
        self.registry.root().join(ns).join(name).join(format!("{version}.{suffix}"))
    }

    fn verify(&self, id: &str, version: &str) -> Result<arw_registry::Verified, arw_registry::VerifyError> {
        let package = self.registry.read(&id.parse().unwrap(), &Version::parse(version).unwrap()).unwrap();
        arw_registry::verify::verify(&package, &self.trust)
    }

    async fn host(&self, policies: &str) -> (Host, Vec<LoadError>) {
        let config = HostConfig { state_dir: Some(self.state.clone()), ..HostConfig::default() };
        let schema = arw_policy::schema::embedded().unwrap();
        let policies = PolicySet::from_sources(&schema, [PolicySource::new("p.cedar", policies)]).unwrap();
        let source = InstalledSource::new(self.registry.clone(), self.trust.clone(), self.installed.clone());
        Host::start(config, policies, &source).await.unwrap()
    }
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_verify_install_call_round_trip() {
    let env = env();
    let arw = env.key("arw", true);
    let acme = env.key("acme", true);
    env.publish(TEXT_STATS, arw_artifacts::TEXT_STATS.bytes, "arw", &arw);
    env.publish(KV_COUNTER, arw_artifacts::KV_COUNTER.bytes, "arw", &arw);
    // A third-party component with its own manifest and key.
    let custom = "id = \"acme:echo\"\nversion = \"2.1.0\"\nworlds = [\"tool\"]\n\
                  [[capabilities]]\naction = \"config.read\"\nresource = \"tool-name\"\n\
                  [config]\ntool-name = \"acme-echo\"\n";
    env.publish(custom, arw_artifacts::PROBE.bytes, "acme", &acme);

    let verified = env.verify("acme:echo", "2.1.0").unwrap();
    assert_eq!(verified.publisher, "acme");
    assert_eq!(verified.digest, arw_registry::signature::digest(arw_artifacts::PROBE.bytes));
    for reference in ["arw:text-stats", "arw:kv-counter@^0.1", "acme:echo@2.1.0"] {
        env.install(reference).unwrap();
    }

    // Grants depend on who signed: only acme-signed components get this.
    let policies = format!(
        "{DEFAULT_POLICIES}\npermit(principal, action == Arw::Action::\"config.read\", resource) when {{ principal.publisher == \"acme\" }};"
    );
    let (host, refused) = env.host(&policies).await;
    assert!(refused.is_empty(), "{refused:?}");
    let operator = host.caller(Principal::local_operator());
    let out = host.call(&operator, "text-stats", r#"{"text":"signed and sealed"}"#).await.unwrap();
    assert_eq!(out["words"], 3);
    assert_eq!(host.call(&operator, "kv-counter", r#"{"name":"x"}"#).await.unwrap()["value"], 1);
    assert_eq!(host.call(&operator, "acme-echo", r#"{"op":"echo","value":7}"#).await.unwrap()["ok"], 7);
    let publishers: Vec<(String, Option<String>)> =
        host.components().into_iter().map(|c| (c.id, c.publisher)).collect();
    assert!(publishers.contains(&("acme:echo".into(), Some("acme".into()))), "{publishers:?}");
    host.shutdown(Duration::from_secs(1)).await;

    // A second signature (a local approver) is allowed and shown.
    let approver = env.key("approver", true);
    env.registry.countersign(&"acme:echo".parse().unwrap(), &Version::new(2, 1, 0), "approver", &approver).unwrap();
    let verified = env.verify("acme:echo", "2.1.0").unwrap();
    assert_eq!(verified.signatures.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn tampering_is_refused_with_the_check_that_failed() {
    let cases: [(&str, &str); 6] = [
        ("wasm byte", "digest"),
        ("manifest byte", "signature"),
        ("signature byte", "signature"),
        ("capabilities edited", "signature"),
        ("untrusted signer", "trust"),
        ("signature removed", "signature"),
    ];
    for (case, check) in cases {
        let env = env();
        let arw = env.key("arw", true);
        let stranger = env.key("stranger", false);
        env.publish(KV_COUNTER, arw_artifacts::KV_COUNTER.bytes, "arw", &arw);
        env.install("arw:kv-counter").unwrap();
        let installed_before = std::fs::read(env.installed.path()).unwrap();

        match case {
            "wasm byte" => flip_byte(&env.file("arw:kv-counter", "0.1.0", "wasm"), 5000),
            "manifest byte" => flip_byte(&env.file("arw:kv-counter", "0.1.0", "manifest.json"), 40),
            "signature byte" => {
                // Flip a byte inside the base64 signature itself.
                let path = env.file("arw:kv-counter", "0.1.0", "arw.sig");
                let text = std::fs::read_to_string(&path).unwrap();
                let at = text.find("\"signature\": \"").unwrap() + 20;
                flip_byte(&path, at);
            }
            "capabilities edited" => {
                let path = env.file("arw:kv-counter", "0.1.0", "manifest.json");
                let text = std::fs::read_to_string(&path).unwrap();
                let widened = text.replace("\"resource\":\"kv-counter\"", "\"resource\":\"*\"");
                assert_ne!(text, widened);
                std::fs::write(&path, widened).unwrap();
            }
            "untrusted signer" => {
                // Re-sign the same manifest with a key the host does not trust.
                std::fs::remove_file(env.file("arw:kv-counter", "0.1.0", "arw.sig")).unwrap();
                env.registry
                    .countersign(&"arw:kv-counter".parse().unwrap(), &Version::new(0, 1, 0), "stranger", &stranger)
                    .unwrap();
            }
            "signature removed" => std::fs::remove_file(env.file("arw:kv-counter", "0.1.0", "arw.sig")).unwrap(),
            _ => unreachable!(),
        }

        let err = env.verify("arw:kv-counter", "0.1.0").unwrap_err();
        assert_eq!(err.check(), check, "{case}: {err}");
        assert!(err.to_string().contains(&format!("{check} check failed")), "{case}: {err}");
        // Installing again is refused and changes nothing.
        assert!(env.install("arw:kv-counter").is_err(), "{case}");
        assert_eq!(std::fs::read(env.installed.path()).unwrap(), installed_before, "{case}");
        // The host refuses to load it, naming the check.
        let (host, refused) = env.host(DEFAULT_POLICIES).await;
        assert_eq!(host.components().len(), 0, "{case}");
        let message = refused.first().map(ToString::to_string).unwrap_or_default();
        assert!(message.contains(&format!("{check} check failed")), "{case}: {message}");
        host.shutdown(Duration::from_secs(1)).await;
    }
}

#[test]
fn publish_refuses_what_is_not_a_component_of_its_world() {
    let env = env();
    let arw = env.key("arw", true);
    let core_module: &[u8] = b"\0asm\x01\0\0\0";
    let cases: [(&[u8], &str, &str); 3] = [
        (core_module, TEXT_STATS, "core WebAssembly module, not a component"),
        (
            arw_artifacts::TEXT_STATS.bytes,
            &TEXT_STATS.replace("[\"tool\"]", "[\"subscriber\"]"),
            "does not export `arw:host/event-handler@0.2.0`",
        ),
        (b"garbage", TEXT_STATS, "not a WebAssembly file"),
    ];
    for (wasm, manifest, expected) in cases {
        let err = env.registry.publish(wasm, Manifest::parse(manifest).unwrap(), "arw", &arw).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
    assert!(env.registry.list().unwrap().is_empty());
    // Versions are immutable.
    env.publish(TEXT_STATS, arw_artifacts::TEXT_STATS.bytes, "arw", &arw);
    let again = env.registry.publish(arw_artifacts::PROBE.bytes, Manifest::parse(TEXT_STATS).unwrap(), "arw", &arw);
    assert!(matches!(again, Err(RegistryError::AlreadyPublished { .. })));
    assert!(env.verify("arw:text-stats", "0.1.0").is_ok());
}

#[test]
fn hostile_names_versions_and_sizes_write_nothing_outside_the_registry() {
    let env = env();
    let arw = env.key("arw", true);
    for reference in ["../../etc:passwd", "/abs:x", "a:b@", "a:b@1.0.0/../../x", "a/b:c", "a:..", "a:b@🙂"] {
        assert!(reference.parse::<PackageRef>().is_err(), "{reference}");
    }
    for manifest in [
        "id = \"../x:y\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]",
        "id = \"a:b\"\nversion = \"\"\nworlds = [\"tool\"]",
        "id = \"a:b\"\nversion = \"1.0\"\nworlds = [\"tool\"]",
        "id = \"a:b/../../c\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]",
    ] {
        assert!(Manifest::parse(manifest).is_err(), "{manifest}");
    }
    for signer in ["../x", "", "a/b", "A"] {
        let err =
            env.registry.publish(arw_artifacts::TEXT_STATS.bytes, Manifest::parse(TEXT_STATS).unwrap(), signer, &arw);
        assert!(matches!(err, Err(RegistryError::InvalidName { .. })), "{signer}: {err:?}");
    }
    let small = env.registry.clone().with_max_component_bytes(1000);
    let err =
        small.publish(arw_artifacts::TEXT_STATS.bytes, Manifest::parse(TEXT_STATS).unwrap(), "arw", &arw).unwrap_err();
    assert!(err.to_string().contains("over the limit of 1000 bytes"), "{err}");
    // Nothing but the registry, keys, trust and state directories exists.
    let mut top: Vec<String> =
        std::fs::read_dir(&env.root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    top.sort();
    assert!(top.iter().all(|t| ["keys", "registry", "state", "trust"].contains(&t.as_str())), "{top:?}");
    assert!(env.registry.list().unwrap().is_empty());
}

#[test]
fn semver_resolution_and_yank() {
    let env = env();
    let arw = env.key("arw", true);
    for version in ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1"] {
        let manifest = TEXT_STATS.replace("arw:text-stats", "arw:tool").replace("0.1.0", version);
        env.publish(&manifest, arw_artifacts::TEXT_STATS.bytes, "arw", &arw);
    }
    let resolve = |r: &str| env.registry.resolve(&r.parse().unwrap()).map(|e| e.version);
    assert_eq!(resolve("arw:tool").unwrap(), "2.0.0-rc.1");
    assert_eq!(resolve("arw:tool@^1").unwrap(), "1.10.0");
    assert_eq!(resolve("arw:tool@~1.2").unwrap(), "1.2.0");
    env.registry.yank(&"arw:tool".parse().unwrap(), &Version::new(1, 10, 0)).unwrap();
    assert_eq!(resolve("arw:tool@^1").unwrap(), "1.2.0", "a yanked version is not picked");
    assert!(matches!(env.registry.resolve(&"arw:tool@1.10.0".parse().unwrap()), Err(RegistryError::Yanked { .. })));
    assert!(matches!(resolve("arw:tool@^3"), Err(RegistryError::NotFound { .. })));
    // A yanked version still verifies (it was published properly).
    assert!(env.verify("arw:tool", "1.10.0").is_ok());
    let reference = PackageRef { id: "arw:tool".parse::<ComponentId>().unwrap(), version: VersionSpec::Latest };
    assert_eq!(reference.to_string(), "arw:tool");
    let _ = PublicKey::to_string;
}

#[test]
fn an_interrupted_publish_leaves_no_version_and_can_be_redone() {
    let env = env();
    let arw = env.key("arw", true);
    let other = env.key("other", true);
    // Simulate a crash after the sidecars were written but before the
    // component (the commit point): stray sidecars from a different signer.
    let dir = env.registry.root().join("arw").join("text-stats");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("0.1.0.manifest.json"), b"{\"half\":").unwrap();
    std::fs::write(dir.join("0.1.0.other.sig"), b"{}").unwrap();
    std::fs::write(dir.join("0.1.0-rc.1.manifest.json"), b"unrelated").unwrap();
    assert!(env.registry.list().unwrap().is_empty(), "no .wasm, no version");
    env.publish(TEXT_STATS, arw_artifacts::TEXT_STATS.bytes, "arw", &arw);
    let verified = env.verify("arw:text-stats", "0.1.0").unwrap();
    assert_eq!(verified.signatures.len(), 1, "the stray signature was cleared");
    assert!(dir.join("0.1.0-rc.1.manifest.json").exists(), "another version's files are untouched");
    let _ = other;
}

/// A component that merely calls itself `arw:...` but is signed by another
/// trusted key gets none of the first-party grants (the default policies
/// grant to `principal.publisher == "arw"`, the signer's trust-store name,
/// not to the id). And a countersignature by `arw` afterwards never
/// changes the publisher recorded at install.
#[tokio::test(flavor = "multi_thread")]
async fn an_arw_id_signed_by_another_key_gets_no_first_party_grants() {
    let env = env();
    let arw = env.key("arw", true);
    let mallory = env.key("mallory", true);
    env.publish(KV_COUNTER, arw_artifacts::KV_COUNTER.bytes, "mallory", &mallory);
    env.install("arw:kv-counter").unwrap();
    let entry = env.installed.load().unwrap().components["arw:kv-counter"].clone();
    assert_eq!(entry.publisher, "mallory");

    let (host, refused) = env.host(DEFAULT_POLICIES).await;
    assert!(refused.is_empty(), "{refused:?}");
    let operator = host.caller(Principal::local_operator());
    match host.call(&operator, "kv-counter", r#"{"name":"x"}"#).await {
        Err(arw_host::CallError::Tool { code, message, .. }) => {
            assert_eq!(code, "denied");
            assert!(message.contains("kv.read") || message.contains("kv.write"), "{message}");
        }
        other => panic!("the impostor must not get arw's kv grant, got {other:?}"),
    }
    let publisher = host.components().into_iter().find(|c| c.id == "arw:kv-counter").and_then(|c| c.publisher);
    assert_eq!(publisher.as_deref(), Some("mallory"));
    host.shutdown(Duration::from_secs(1)).await;

    // `arw` countersigns the impostor's version later: the recorded
    // publisher stays `mallory`, so the grants stay withheld.
    env.registry.countersign(&"arw:kv-counter".parse().unwrap(), &Version::new(0, 1, 0), "arw", &arw).unwrap();
    let verified = env.verify("arw:kv-counter", "0.1.0").unwrap();
    assert_eq!(verified.signatures.len(), 2);
    let (host, refused) = env.host(DEFAULT_POLICIES).await;
    assert!(refused.is_empty(), "{refused:?}");
    let publisher = host.components().into_iter().find(|c| c.id == "arw:kv-counter").and_then(|c| c.publisher);
    assert_eq!(publisher.as_deref(), Some("mallory"), "a countersignature does not change the publisher");
    let operator = host.caller(Principal::local_operator());
    assert!(host.call(&operator, "kv-counter", r#"{"name":"x"}"#).await.is_err(), "still no first-party grant");
    host.shutdown(Duration::from_secs(1)).await;
}
