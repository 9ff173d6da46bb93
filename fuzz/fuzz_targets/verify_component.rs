//! `verify` over arbitrary component bytes: each input is signed properly
//! (a trusted key, a manifest whose digest matches), so the whole chain
//! runs and reaches the world check, which parses the bytes as a component.
#![no_main]

use std::sync::OnceLock;

use arw_registry::registry::Package;
use arw_registry::signature::{SignatureFile, SignedManifest};
use arw_registry::{PublicKey, TrustStore};
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

struct Fixture {
    _dir: tempfile::TempDir,
    trust: TrustStore,
    key: SigningKey,
    manifest: arw_manifest::Manifest,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let trust = TrustStore::new(dir.path().join("trust"));
        trust.add("fuzz", &PublicKey(key.verifying_key())).unwrap_or_else(|e| panic!("{e}"));
        let manifest = arw_manifest::Manifest::parse("id = \"fuzz:x\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n")
            .unwrap_or_else(|e| panic!("{e}"));
        Fixture { _dir: dir, trust, key, manifest }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let _ = arw_registry::inspect::component_exports(data);
    let signed = SignedManifest::new(f.manifest.clone(), data);
    let manifest_bytes = signed.to_bytes();
    let signature = SignatureFile::sign(&manifest_bytes, "fuzz", &f.key).to_bytes();
    let package = Package {
        id: f.manifest.id.clone(),
        version: f.manifest.version.clone(),
        wasm: data.to_vec(),
        manifest_bytes,
        signatures: vec![("1.0.0.fuzz.sig".into(), signature)],
        yanked: false,
        path: "fuzz".into(),
    };
    // Arbitrary bytes almost never export the tool world; either way the
    // answer is a value, never a panic.
    if let Ok(verified) = arw_registry::verify::verify(&package, &f.trust) {
        assert_eq!(verified.publisher, "fuzz");
    }
});
