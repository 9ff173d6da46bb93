//! The AOT cache: the second start loads `.cwasm` artifacts instead of
//! compiling; a changed engine configuration, or an artifact that is not
//! byte-for-byte what the host wrote, triggers recompilation.

// Test helpers: an unwrap that fails is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use arw_host::Host;
use arw_host::runtime::aot::Compilation;
use arw_tests::{Components, OPERATOR_INVOKES, artifacts, manifests, policies};

async fn start(state: &std::path::Path, max_memory_mib: u64) -> Vec<(String, Compilation)> {
    let mut config = arw_tests::config(state);
    config.engine.max_memory_mib = max_memory_mib;
    let components = Components::new()
        .with(manifests::TEXT_STATS, artifacts::TEXT_STATS.bytes)
        .with(manifests::KV_COUNTER, artifacts::KV_COUNTER.bytes);
    let (host, refused) = Host::start(config, policies(&[OPERATOR_INVOKES]), &components).await.unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    let caller = host.caller(arw_policy::Principal::local_operator());
    assert_eq!(host.call(&caller, "text-stats", r#"{"text":"x"}"#).await.unwrap()["chars"], 1);
    let compiled = host.components().into_iter().map(|c| (c.id, c.compilation)).collect();
    host.shutdown(Duration::from_secs(1)).await;
    compiled
}

fn all(list: &[(String, Compilation)], how: Compilation) -> bool {
    !list.is_empty() && list.iter().all(|(_, c)| *c == how)
}

#[tokio::test(flavor = "multi_thread")]
async fn second_start_loads_artifacts_and_config_changes_recompile() {
    let state = Arc::new(tempfile::tempdir().unwrap());
    let first = start(state.path(), 64).await;
    assert!(all(&first, Compilation::Compiled), "{first:?}");
    let artifacts: Vec<_> = std::fs::read_dir(state.path().join("aot"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 2, "{artifacts:?}");

    let second = start(state.path(), 64).await;
    assert!(all(&second, Compilation::Cached), "{second:?}");

    // A different engine configuration has a different compatibility hash:
    // the old artifacts are not loaded.
    let changed = start(state.path(), 32).await;
    assert!(all(&changed, Compilation::Compiled), "{changed:?}");
    let again = start(state.path(), 32).await;
    assert!(all(&again, Compilation::Cached), "{again:?}");

    // An artifact that is not what the host wrote is never deserialized.
    for path in &artifacts {
        let mut bytes = std::fs::read(path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(path, bytes).unwrap();
    }
    let tampered = start(state.path(), 64).await;
    assert!(all(&tampered, Compilation::Compiled), "{tampered:?}");
}

fn artifacts_in(state: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(state.join("aot"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    found.sort();
    found
}

/// Hardening #5: a forged artifact is never deserialized, even with a
/// matching plain checksum beside it: artifacts carry a MAC under a
/// per-host secret. Swapping two genuine artifacts (each with its own MAC)
/// is caught too, because the MAC covers the artifact's name.
#[tokio::test(flavor = "multi_thread")]
async fn forged_or_swapped_artifacts_are_recompiled() {
    use sha2::Digest;
    let state = tempfile::tempdir().unwrap();
    assert!(all(&start(state.path(), 64).await, Compilation::Compiled));
    let secret = state.path().join("aot.secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let found = artifacts_in(state.path());
    assert_eq!(found.len(), 2);

    // Forge: replace an artifact and write what the old cache trusted, a
    // plain sha256 sidecar, plus a MAC made without the secret.
    let forged = b"not native code a host produced".to_vec();
    for path in &found {
        std::fs::write(path, &forged).unwrap();
        std::fs::write(path.with_extension("cwasm.sha256"), hex::encode(sha2::Sha256::digest(&forged))).unwrap();
        std::fs::write(path.with_extension("cwasm.mac"), hex::encode(sha2::Sha256::digest(&forged))).unwrap();
    }
    assert!(all(&start(state.path(), 64).await, Compilation::Compiled), "forged artifacts are recompiled");
    assert!(all(&start(state.path(), 64).await, Compilation::Cached), "and the recompiled ones load again");

    // Swap two genuine artifacts, each with its own (valid) MAC.
    let (a, b) = (&found[0], &found[1]);
    let (a_bytes, a_mac) = (std::fs::read(a).unwrap(), std::fs::read(a.with_extension("cwasm.mac")).unwrap());
    std::fs::copy(b, a).unwrap();
    std::fs::copy(b.with_extension("cwasm.mac"), a.with_extension("cwasm.mac")).unwrap();
    std::fs::write(b, a_bytes).unwrap();
    std::fs::write(b.with_extension("cwasm.mac"), a_mac).unwrap();
    assert!(all(&start(state.path(), 64).await, Compilation::Compiled), "swapped artifacts are recompiled");
}

/// Hardening #5: a cache directory others may write is not used at all:
/// every component is compiled (and the host says why in its log).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_cache_directory_others_can_write_is_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let state = tempfile::tempdir().unwrap();
    assert!(all(&start(state.path(), 64).await, Compilation::Compiled));
    assert!(all(&start(state.path(), 64).await, Compilation::Cached));
    std::fs::set_permissions(state.path().join("aot"), std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(all(&start(state.path(), 64).await, Compilation::Compiled), "a world-writable cache is ignored");
    std::fs::set_permissions(state.path().join("aot"), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(all(&start(state.path(), 64).await, Compilation::Cached));
    // A secret others can read is refused the same way.
    std::fs::set_permissions(state.path().join("aot.secret"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(all(&start(state.path(), 64).await, Compilation::Compiled), "a readable secret is not trusted");
}
