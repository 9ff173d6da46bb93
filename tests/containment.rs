//! Hostile guests are stopped at their limits with a clear error while the
//! host keeps serving everyone else.

use arw_host::CallError;
use arw_tests::{Components, OPERATOR_INVOKES, TestHost, artifacts, manifests};
use serde_json::json;

const SPINNER: &str = "id = \"test:spinner\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n[limits]\ntimeout-ms = 300\n";
const HOG: &str = "id = \"test:memory-hog\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n[limits]\nmemory-mib = 8\n";

#[tokio::test(flavor = "multi_thread")]
async fn infinite_loop_is_stopped_at_its_deadline_while_others_are_served() {
    let t = TestHost::start(
        Components::new()
            .with(SPINNER, artifacts::SPINNER.bytes)
            .with(manifests::TEXT_STATS, artifacts::TEXT_STATS.bytes),
        &[OPERATOR_INVOKES],
    )
    .await;
    assert!(t.refused.is_empty(), "{:?}", t.refused);
    let (spin, served) = tokio::join!(t.call("spinner", json!({})), async {
        // While the spinner burns its CPU slot, other calls keep completing.
        let mut served = 0;
        while served < 20 {
            t.ok("text-stats", json!({"text": "still here"})).await;
            served += 1;
        }
        served
    });
    match spin {
        Err(CallError::Timeout { tool, limit_ms }) => assert_eq!((tool.as_str(), limit_ms), ("spinner", 300)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(served, 20);
    let err = t.call("spinner", json!({})).await.unwrap_err();
    assert!(err.to_string().contains("deadline of 300 ms"), "{err}");
    assert_eq!(t.ok("text-stats", json!({"text": "a"})).await["chars"], 1);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unbounded_memory_is_stopped_at_its_cap_while_others_are_served() {
    let t = TestHost::start(
        Components::new()
            .with(HOG, artifacts::MEMORY_HOG.bytes)
            .with(manifests::TEXT_STATS, artifacts::TEXT_STATS.bytes),
        &[OPERATOR_INVOKES],
    )
    .await;
    assert!(t.refused.is_empty(), "{:?}", t.refused);
    for _ in 0..3 {
        let (hog, ok) = tokio::join!(t.call("memory-hog", json!({})), t.call("text-stats", json!({"text": "x y"})));
        match hog {
            Err(CallError::MemoryLimit { tool, limit_mib }) => {
                assert_eq!((tool.as_str(), limit_mib), ("memory-hog", 8))
            }
            other => panic!("expected the memory cap, got {other:?}"),
        }
        assert_eq!(ok.unwrap_or_else(|e| panic!("{e}"))["words"], 2);
    }
    let err = t.call("memory-hog", json!({})).await.unwrap_err();
    assert!(err.to_string().contains("memory cap of 8 MiB"), "{err}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrency_limit_makes_extra_callers_wait_not_fail() {
    let one_at_a_time = manifests::TEXT_STATS.replace("concurrency = 16", "concurrency = 1");
    assert_ne!(one_at_a_time, manifests::TEXT_STATS);
    let t =
        TestHost::start(Components::new().with(&one_at_a_time, artifacts::TEXT_STATS.bytes), &[OPERATOR_INVOKES]).await;
    let calls = (0..16).map(|i| t.call("text-stats", json!({"text": "w ".repeat(i)})));
    let results = futures::future::join_all(calls).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap_or_else(|e| panic!("{e}"))["words"], i);
    }
    t.stop().await;
}
