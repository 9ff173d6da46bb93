//! Hostile guests are stopped at their limits with a clear error while the
//! host keeps serving everyone else.

use arw_host::CallError;
use arw_tests::{Components, OPERATOR_INVOKES, TestHost, artifacts, manifests};
use serde_json::json;

const SPINNER: &str = "id = \"test:spinner\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n[limits]\ntimeout-ms = 300\n";
const HOG: &str = "id = \"test:memory-hog\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n[limits]\nmemory-mib = 8\n";

/// On a runtime with a single thread, other calls complete *while* the
/// spinner spins: if guests stopped yielding at epoch ticks, the spinner
/// would hold the only thread until its deadline, and nothing else could
/// see it running or run meanwhile. The deadline is long (10 s) so that a
/// loaded machine serves the calls well inside it: the property is that
/// they are served at all while the spinner runs, not how fast (20 calls
/// within a 3 s deadline failed once on a loaded 2-core CI run).
#[tokio::test(flavor = "current_thread")]
async fn infinite_loop_is_stopped_at_its_deadline_while_others_are_served() {
    let spinner = SPINNER.replace("timeout-ms = 300", "timeout-ms = 10000");
    let t = TestHost::start(
        Components::new()
            .with(&spinner, artifacts::SPINNER.bytes)
            .with(manifests::TEXT_STATS, artifacts::TEXT_STATS.bytes),
        &[OPERATOR_INVOKES],
    )
    .await;
    assert!(t.refused.is_empty(), "{:?}", t.refused);
    let t = std::sync::Arc::new(t);
    let spinning = {
        let t = t.clone();
        tokio::spawn(async move { t.call("spinner", json!({})).await })
    };
    let spinner_running = || t.host.status().components.iter().any(|c| c.id == "test:spinner" && c.running == 1);
    while !spinner_running() && !spinning.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert!(spinner_running(), "this task ran while the spinner was spinning");
    for _ in 0..5 {
        t.ok("text-stats", json!({"text": "still here"})).await;
    }
    assert!(!spinning.is_finished(), "5 calls were not all served while the spinner was still spinning");
    match spinning.await.unwrap_or_else(|e| panic!("{e}")) {
        Err(CallError::Timeout { tool, limit_ms }) => assert_eq!((tool.as_str(), limit_ms), ("spinner", 10000)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(t.ok("text-stats", json!({"text": "a"})).await["chars"], 1);
}

/// The deadline's error says which limit stopped the call.
#[tokio::test(flavor = "multi_thread")]
async fn the_deadline_error_names_the_limit() {
    let t = TestHost::start(Components::new().with(SPINNER, artifacts::SPINNER.bytes), &[OPERATOR_INVOKES]).await;
    let err = t.call("spinner", json!({})).await.unwrap_err();
    assert!(err.to_string().contains("deadline of 300 ms"), "{err}");
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

/// `limits.concurrency` is enforced: with 6 calls in flight and a limit of
/// 2, at most 2 ever hold a slot while the others wait (and then run).
#[tokio::test(flavor = "multi_thread")]
async fn the_concurrency_limit_holds_the_extra_calls_back() {
    let two =
        "id = \"test:probe\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n[limits]\nconcurrency = 2\ntimeout-ms = 5000\n";
    let t = std::sync::Arc::new(
        TestHost::start(Components::new().with(two, artifacts::PROBE.bytes), &[OPERATOR_INVOKES]).await,
    );
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Sample (in_flight, running) until the calls are done.
    let sampler = {
        let (t, done) = (t.clone(), done.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let c = &t.host.status().components[0];
                samples.push((c.in_flight, c.running));
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            samples
        })
    };
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move { t.call("probe", json!({"op": "sleep", "ms": 200})).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("extra callers wait, not fail: {e}"));
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let samples = sampler.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(samples.iter().all(|(_, running)| *running <= 2), "never more than 2 at once: {samples:?}");
    assert!(samples.iter().any(|(in_flight, running)| *running == 2 && *in_flight > 2), "some waited: {samples:?}");
}

/// Hardening #12: one component filling the instance pool makes another's
/// calls `busy`, which is not a fault, so an innocent new version on
/// probation is not rolled back; and its health check still runs on the
/// slot kept for health checks.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_instance_pool_is_busy_not_a_fault() {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = arw_tests::config(state.path());
    config.engine.max_instances = 3; // 2 for calls, 1 for health checks
    config.swap.rollback_after_faults = 2;
    let spinners = "id = \"test:spinner\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n[limits]\nconcurrency = 2\ntimeout-ms = 3000\n";
    let probe = |version: &str| {
        format!(
            "id = \"test:probe\"\nversion = \"{version}\"\nworlds = [\"tool\"]\n[limits]\nconcurrency = 2\ntimeout-ms = 200\n"
        )
    };
    let components =
        Components::new().with(spinners, artifacts::SPINNER.bytes).with(&probe("1.0.0"), artifacts::PROBE.bytes);
    let (host, refused) = arw_host::Host::start(config, arw_tests::policies(&[OPERATOR_INVOKES]), &components)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.is_empty(), "{refused:?}");
    let host = std::sync::Arc::new(host);
    let spinning: Vec<_> = (0..2)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move {
                let caller = host.caller(arw_policy::Principal::local_operator());
                host.call(&caller, "spinner", "{}").await
            })
        })
        .collect();
    let h = host.clone();
    arw_tests::eventually("the pool full of spinners", move || h.status().pool_in_use == 2).await;
    // A new version activates while the pool is full: the health check has its slot.
    let package = arw_host::source::ComponentPackage {
        manifest: arw_host::Manifest::parse(&probe("2.0.0")).unwrap_or_else(|e| panic!("{e}")),
        wasm: std::borrow::Cow::Borrowed(artifacts::PROBE.bytes),
        origin: "test".into(),
        publisher: Some("test".into()),
    };
    host.activate(package).await.unwrap_or_else(|e| panic!("{e}"));
    let caller = host.caller(arw_policy::Principal::local_operator());
    for _ in 0..3 {
        match host.call(&caller, "probe", r#"{"op":"echo","value":1}"#).await {
            Err(CallError::Busy { reason, .. }) => assert!(reason.contains("instance pool"), "{reason}"),
            other => panic!("expected busy while the pool is full, got {other:?}"),
        }
    }
    assert!(host.status().pool_in_use == 2, "the spinners still hold the pool");
    for spinner in spinning {
        assert!(matches!(spinner.await.unwrap_or_else(|e| panic!("{e}")), Err(CallError::Timeout { .. })));
    }
    // Three busy calls, two faults would have rolled it back: it stays.
    assert_eq!(host.active_version("test:probe").map(|v| v.0).as_deref(), Some("2.0.0"));
    assert_eq!(
        host.call(&caller, "probe", r#"{"op":"echo","value":1}"#).await.unwrap_or_else(|e| panic!("{e}"))["ok"],
        1
    );
}
