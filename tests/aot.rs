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
