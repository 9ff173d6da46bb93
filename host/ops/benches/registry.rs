//! Registry figures for `docs/PERFORMANCE.md`.
//!
//! - `host_start/*`: from nothing to a started host (kv store opened, every
//!   installed component read from the registry, verified, compiled or
//!   loaded from the AOT cache, linked and health-checked) with the four
//!   first-party components and ten more small ones: with a warm AOT cache,
//!   and with an empty one (the compile path).
//! - `verify/*`: `arw verify`'s work for one component (read, every
//!   signature, trust, manifest, sha256 digest, world check) for a 42 KB and
//!   an 18 MB component, next to the baseline of just hashing the bytes and
//!   checking one ed25519 signature.
//!
//! `cargo bench -p arw-registry --bench registry`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use arw_host::manifest::Manifest;
use arw_host::{Host, HostConfig};
use arw_ops::InstalledSource;
use arw_policy::{PolicySet, PolicySource};
use arw_registry::keys::KeyStore;
use arw_registry::signature::{SignatureFile, digest};
use arw_registry::{InstalledSet, Registry, TrustStore};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use semver::Version;

const FIRST_PARTY: [(&str, &str); 4] = [
    ("text-stats", include_str!("../../../manifests/text-stats.toml")),
    ("kv-counter", include_str!("../../../manifests/kv-counter.toml")),
    ("announce", include_str!("../../../manifests/announce.toml")),
    ("event-log", include_str!("../../../manifests/event-log.toml")),
];

struct Fixture {
    registry: Registry,
    trust: TrustStore,
    installed: InstalledSet,
    state: std::path::PathBuf,
}

/// A registry with 14 installed components signed by a trusted key.
fn fixture(root: &Path) -> Fixture {
    let keys = KeyStore::new(root.join("keys"));
    let trust = TrustStore::new(root.join("trust"));
    let registry = Registry::new(root.join("registry"));
    let state = root.join("state");
    let installed = InstalledSet::new(&state);
    trust.add("arw", &keys.generate("arw").unwrap()).unwrap();
    let (_, key) = keys.load("arw").unwrap();
    let mut packages: Vec<(Manifest, &[u8])> = FIRST_PARTY
        .iter()
        .map(|(name, manifest)| (Manifest::parse(manifest).unwrap(), arw_artifacts::by_name(name).unwrap().bytes))
        .collect();
    for n in 0..10 {
        let manifest = format!(
            "id = \"bench:probe-{n}\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n\
             [[capabilities]]\naction = \"config.read\"\nresource = \"tool-name\"\n[config]\ntool-name = \"probe-{n}\"\n"
        );
        packages.push((Manifest::parse(&manifest).unwrap(), arw_artifacts::PROBE.bytes));
    }
    for (manifest, wasm) in packages {
        let (id, version) = (manifest.id.clone(), manifest.version.clone());
        registry.publish(wasm, manifest, "arw", &key).unwrap();
        installed.record(&id, &version, &digest(wasm), "arw").unwrap();
    }
    Fixture { registry, trust, installed, state }
}

fn policies() -> PolicySet {
    let schema = arw_policy::schema::embedded().unwrap();
    let text = format!(
        "{}\npermit(principal, action == Arw::Action::\"config.read\", resource);",
        include_str!("../../../policies/default.cedar")
    );
    PolicySet::from_sources(&schema, [PolicySource::new("bench.cedar", text)]).unwrap()
}

async fn start(fixture: &Fixture, state: &Path) {
    let config = HostConfig { state_dir: Some(state.to_path_buf()), ..HostConfig::default() };
    let source = InstalledSource::new(fixture.registry.clone(), fixture.trust.clone(), fixture.installed.clone());
    let (host, refused) = Host::start(config, policies(), &source).await.unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(host.components().len(), 14);
    host.shutdown(Duration::from_secs(1)).await;
}

fn host_start(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture(dir.path());
    rt.block_on(start(&fixture, &fixture.state)); // warms the AOT cache

    let mut group = c.benchmark_group("host_start");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("14_components/aot_warm", |b| b.to_async(&rt).iter(|| start(&fixture, &fixture.state)));
    let fixture = &fixture;
    group.bench_function("14_components/compile", |b| {
        b.to_async(&rt).iter_batched(
            || {
                // A fresh state dir sharing only the installed set: no AOT cache.
                let state = tempfile::tempdir().unwrap();
                std::fs::copy(fixture.installed.path(), state.path().join("installed.json")).unwrap();
                state
            },
            |state| async move { start(fixture, state.path()).await },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// `wasm` with a custom section of `extra` bytes appended (still a valid
/// component), to get a large component without a large toolchain.
fn padded(wasm: &[u8], extra: usize) -> Vec<u8> {
    let name = b"bench-padding";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.resize(payload.len() + extra, 0xAB);
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    let mut size = payload.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&payload);
    out
}

fn verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let keys = KeyStore::new(dir.path().join("keys"));
    let trust = TrustStore::new(dir.path().join("trust"));
    let registry = Registry::new(dir.path().join("registry"));
    trust.add("arw", &keys.generate("arw").unwrap()).unwrap();
    let (_, key) = keys.load("arw").unwrap();
    let small = arw_artifacts::SPINNER.bytes.to_vec();
    let large = padded(&small, 18 << 20);
    let mut group = c.benchmark_group("verify");
    group.sample_size(20);
    for (label, wasm, version) in [("42KB", &small, "1.0.0"), ("18MB", &large, "2.0.0")] {
        let manifest = format!("id = \"bench:spinner\"\nversion = \"{version}\"\nworlds = [\"tool\"]\n");
        registry.publish(wasm, Manifest::parse(&manifest).unwrap(), "arw", &key).unwrap();
        let id = "bench:spinner".parse().unwrap();
        let version = Version::parse(version).unwrap();
        let package = registry.read(&id, &version).unwrap();
        assert!(arw_registry::verify::verify(&package, &trust).is_ok());
        group.bench_function(format!("{label}/arw_verify"), |b| {
            b.iter(|| {
                let package = registry.read(&id, &version).unwrap();
                black_box(arw_registry::verify::verify(&package, &trust).unwrap())
            })
        });
        let signature = SignatureFile::parse(&package.signatures[0].1).unwrap();
        group.bench_function(format!("{label}/baseline_sha256_plus_ed25519"), |b| {
            b.iter(|| {
                black_box(digest(black_box(&package.wasm)));
                black_box(signature.verify(&package.manifest_bytes).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, host_start, verify);
criterion_main!(benches);
