//! Hot swap and hot reload under load, checked by counts (never timings):
//! no call fails because of a swap, answers come from exactly one version,
//! broken versions are refused or rolled back, subscribers lose nothing,
//! revoked grants deny the very next call.

// Test helpers: an unwrap that fails is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arw_host::manifest::Manifest;
use arw_host::source::ComponentPackage;
use arw_host::supervisor::events;
use arw_host::{CallError, Host};
use arw_policy::{PolicySource, Principal};
use arw_tests::{DEFAULT_POLICIES, OPERATOR_INVOKES, Packages, artifacts, drain, eventually, manifests};

const PROBE_GRANTS: &str =
    r#"permit(principal == Arw::Component::"test:probe", action == Arw::Action::"config.read", resource);"#;

/// The probe guest as `test:probe@version`, answering `generation` from its config.
fn probe(version: &str, extra_config: &str) -> ComponentPackage {
    probe_answering(version, &format!("v{version}"), extra_config)
}

/// The probe with `generation = answer` ("trap" makes every call trap).
fn probe_answering(version: &str, answer: &str, extra_config: &str) -> ComponentPackage {
    let manifest = format!(
        "id = \"test:probe\"\nversion = \"{version}\"\nworlds = [\"tool\"]\n\
         [[capabilities]]\naction = \"config.read\"\nresource = \"*\"\n\
         [config]\ngeneration = \"{answer}\"\n{extra_config}"
    );
    package(&manifest, artifacts::PROBE.bytes)
}

fn package(manifest: &str, wasm: &'static [u8]) -> ComponentPackage {
    let manifest = Manifest::parse(manifest).unwrap();
    let publisher = Some(manifest.id.namespace().to_string());
    ComponentPackage { manifest, wasm: Cow::Borrowed(wasm), origin: "test".into(), publisher }
}

async fn host_with(
    packages: Vec<ComponentPackage>,
    policies: &[&str],
    tweak: impl FnOnce(&mut arw_host::HostConfig),
) -> (Host, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let mut config = arw_tests::config(state.path());
    tweak(&mut config);
    let (host, refused) = Host::start(config, arw_tests::policies(policies), &Packages(packages)).await.unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    (host, state)
}

/// Call `probe` for its generation in a loop on 8 tasks until `stop`;
/// returns every result.
fn load(host: &Arc<Host>, stop: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<Vec<Result<String, String>>>> {
    (0..8)
        .map(|_| {
            let host = host.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let caller = host.caller(Principal::local_operator());
                let mut results = Vec::new();
                while !stop.load(Ordering::Acquire) {
                    let r = host.call(&caller, "probe", r#"{"op":"config.get","key":"generation"}"#).await;
                    results.push(match r {
                        Ok(v) => Ok(v["ok"].as_str().unwrap_or_default().to_string()),
                        Err(e) => Err(format!("{}: {e}", e.code())),
                    });
                    tokio::task::yield_now().await;
                }
                results
            })
        })
        .collect()
}

async fn finish(tasks: Vec<tokio::task::JoinHandle<Vec<Result<String, String>>>>) -> Vec<Result<String, String>> {
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_swaps_under_load_fail_no_call() {
    let (host, _state) = host_with(vec![probe("1.0.0", "")], &[OPERATOR_INVOKES, PROBE_GRANTS], |_| {}).await;
    let host = Arc::new(host);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&host, &stop);
    let mut versions = vec![Arc::downgrade(&host.active_component("test:probe").unwrap())];
    for swap in 0..100 {
        let version = if swap % 2 == 0 { "2.0.0" } else { "1.0.0" };
        assert_eq!(host.activate(probe(version, "")).await.unwrap(), version);
        versions.push(Arc::downgrade(&host.active_component("test:probe").unwrap()));
    }
    stop.store(true, Ordering::Release);
    let results = finish(tasks).await;
    // Every replaced version is freed once its calls have ended: the last
    // one's probation keeps its predecessor loaded, so end it first.
    let caller = host.caller(Principal::local_operator());
    for _ in 0..20 {
        host.call(&caller, "probe", r#"{"op":"echo","value":1}"#).await.unwrap();
    }
    let (current, replaced) = versions.split_last().unwrap();
    assert!(current.upgrade().is_some(), "the active version is alive");
    let replaced: Vec<_> = replaced.to_vec();
    eventually("all 100 replaced versions freed (Weak counts 0)", move || {
        replaced.iter().all(|v| v.strong_count() == 0)
    })
    .await;
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "{} failed calls, e.g. {:?}", failures.len(), failures.first());
    let v1 = results.iter().filter(|r| r.as_deref() == Ok("v1.0.0")).count();
    let v2 = results.iter().filter(|r| r.as_deref() == Ok("v2.0.0")).count();
    assert_eq!(v1 + v2, results.len(), "every answer comes from exactly v1 or v2");
    assert!(v1 > 0 && v2 > 0, "both versions served ({v1}, {v2})");
    assert_eq!(host.active_version("test:probe").unwrap().0, "1.0.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broken_versions_are_refused_or_rolled_back() {
    let (host, _state) = host_with(vec![probe("2.0.0", "")], &[OPERATOR_INVOKES, PROBE_GRANTS], |_| {}).await;
    let host = Arc::new(host);
    let mut observer = host.bus().observe();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&host, &stop);

    // v3 fails its health check (an invalid tool name from `describe`).
    let err = host.activate(probe("3.0.0", "tool-name = \"NOT A NAME\"\n")).await.unwrap_err();
    assert_eq!(err.stage, "health-check", "{err}");
    assert!(err.reason.contains("NOT A NAME"), "{err}");
    assert_eq!(host.active_version("test:probe").unwrap().0, "2.0.0");

    // v3.1 passes the health check but traps on every call: rolled back.
    host.activate(probe_answering("3.1.0", "trap", "")).await.unwrap();
    let h = host.clone();
    eventually("the rollback to 2.0.0", move || h.active_version("test:probe").unwrap().0 == "2.0.0").await;
    // Let the load run on the restored version a little.
    let h = host.clone();
    let before = h.bus_stats().published;
    eventually("more calls", move || h.bus_stats().published >= before).await;
    stop.store(true, Ordering::Release);
    let results = finish(tasks).await;

    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.iter().all(|f| f.starts_with("trap:")), "only the broken version's own traps: {failures:?}");
    // How many calls hit v3.1 before the rollback depends on scheduling;
    // that they were v3.1's own traps (and nothing else) does not.
    assert!(!failures.is_empty(), "v3.1 was called and failed before the rollback");
    let answers: Vec<&str> = results.iter().filter_map(|r| r.as_deref().ok()).collect();
    assert!(answers.iter().all(|a| *a == "v2.0.0"), "nothing answered from v3: {answers:?}");

    let transitions: Vec<(String, serde_json::Value)> = drain(&mut observer)
        .iter()
        .filter(|e| e.topic.starts_with("component."))
        .map(|e| (e.topic.clone(), e.json().unwrap()))
        .collect();
    let failed = transitions.iter().find(|(t, _)| t == events::ACTIVATION_FAILED).unwrap();
    assert_eq!(failed.1["to"], "3.0.0");
    assert!(failed.1["reason"].as_str().unwrap().starts_with("health-check:"), "{failed:?}");
    let rolled = transitions.iter().find(|(t, _)| t == events::ROLLED_BACK).unwrap();
    assert_eq!((rolled.1["from"].as_str(), rolled.1["to"].as_str()), (Some("3.1.0"), Some("2.0.0")));
    assert!(rolled.1["reason"].as_str().unwrap().contains("3 faults"), "{rolled:?}");
    let status = host.status();
    let last = status.components[0].last_transition.clone().unwrap();
    assert!(
        last.event == events::ROLLED_BACK || (last.event == events::DRAINED && last.from.as_deref() == Some("3.1.0")),
        "{last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stateful_subscriber_upgraded_under_a_stream_loses_nothing() {
    let event_log =
        |version: &str| package(&manifests::EVENT_LOG.replace("0.1.0", version), artifacts::EVENT_LOG.bytes);
    let (host, _state) = host_with(vec![event_log("0.1.0")], &[DEFAULT_POLICIES], |_| {}).await;
    let host = Arc::new(host);
    let publisher = {
        let host = host.clone();
        tokio::spawn(async move {
            for n in 0..300 {
                host.bus()
                    .publish("host", "demo.stream", arw_host::capabilities::bus::Payload::Json(n.to_string()))
                    .unwrap();
                if n % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    for version in ["0.2.0", "0.3.0", "0.4.0"] {
        host.activate(event_log(version)).await.unwrap();
    }
    publisher.await.unwrap();
    let h = host.clone();
    eventually("300 events handled", move || {
        let s = h.bus_stats();
        s.delivered + s.failed + s.dropped >= 300
    })
    .await;
    let stats = host.bus_stats();
    assert_eq!((stats.delivered, stats.failed, stats.dropped), (300, 0, 0), "{stats:?}");
    // The state (records in kv) survived three upgrades: all 300, in order.
    let caller = host.caller(Principal::local_operator());
    let out = host.call(&caller, "event-log", r#"{"limit":1000}"#).await.unwrap();
    let payloads: Vec<i64> = out["events"].as_array().unwrap().iter().map(|e| e["payload"].as_i64().unwrap()).collect();
    assert_eq!(payloads, (0..300).collect::<Vec<i64>>());
    assert_eq!(host.active_version("arw:event-log").unwrap().0, "0.4.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn policy_reload_under_load_revokes_and_restores_at_once() {
    let kv_probe = "id = \"test:probe\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n\
                    [[capabilities]]\naction = \"kv.read\"\nresource = \"ns\"\n";
    let grant = r#"@id("probe-reads-ns")
permit(principal == Arw::Component::"test:probe", action == Arw::Action::"kv.read", resource == Arw::KvNamespace::"ns");"#;
    let (host, _state) = host_with(
        vec![package(kv_probe, artifacts::PROBE.bytes), package(manifests::TEXT_STATS, artifacts::TEXT_STATS.bytes)],
        &[OPERATOR_INVOKES, grant],
        |_| {},
    )
    .await;
    let host = Arc::new(host);
    let mut observer = host.bus().observe();
    // Background load on another tool throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (host, stop) = (host.clone(), stop.clone());
        tokio::spawn(async move {
            let caller = host.caller(Principal::local_operator());
            let mut failures = 0;
            let mut calls = 0;
            while !stop.load(Ordering::Acquire) {
                calls += 1;
                if host.call(&caller, "text-stats", r#"{"text":"a b"}"#).await.is_err() {
                    failures += 1;
                }
                tokio::task::yield_now().await;
            }
            (calls, failures)
        })
    };
    let caller = host.caller(Principal::local_operator());
    let read = || host.call(&caller, "probe", r#"{"op":"kv.get","namespace":"ns","key":"k"}"#);
    let operator = PolicySource::new("operator.cedar", OPERATOR_INVOKES);
    let granted = PolicySource::new("grant.cedar", grant);
    // Same policies under the file names used below.
    host.reload_policies(vec![operator.clone(), granted.clone()]).await.unwrap();

    for round in 0..5 {
        assert!(read().await.is_ok(), "round {round}: granted");
        let summary = host.reload_policies(vec![operator.clone()]).await.unwrap();
        assert_eq!(summary.removed, ["grant.cedar#probe-reads-ns"], "{summary:?}");
        match read().await {
            Err(CallError::Tool { code, .. }) => assert_eq!(code, "denied", "round {round}"),
            other => panic!("round {round}: the very next call must be denied, got {other:?}"),
        }
        let summary = host.reload_policies(vec![operator.clone(), granted.clone()]).await.unwrap();
        assert_eq!(summary.added, ["grant.cedar#probe-reads-ns"]);
        assert!(read().await.is_ok(), "round {round}: restored");
    }

    // An invalid file: the old policies stay, the failure names file and line.
    let broken =
        PolicySource::new("policies/broken.cedar", "// fine\npermit(principal, action, resource)\nwhen { nope };\n");
    let err = host.reload_policies(vec![operator.clone(), granted.clone(), broken]).await.unwrap_err();
    assert_eq!(err.diagnostics()[0].file, "policies/broken.cedar");
    assert!(read().await.is_ok(), "old policies keep working");
    stop.store(true, Ordering::Release);
    let (calls, failures) = background.await.unwrap();
    assert!(calls > 0);
    assert_eq!(failures, 0, "no call on other tools failed during reloads");

    let events = drain(&mut observer);
    let reloads = events.iter().filter(|e| e.topic == events::POLICY_RELOADED).count();
    assert_eq!(reloads, 11);
    let failed = events.iter().find(|e| e.topic == events::POLICY_RELOAD_FAILED).unwrap().json().unwrap();
    assert_eq!(failed["errors"][0]["file"], "policies/broken.cedar");
    assert_eq!(failed["errors"][0]["line"], 3, "{failed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_outliving_the_drain_grace_is_interrupted_and_the_old_version_freed() {
    let spinner = |version: &str| {
        package(
            &format!(
                "id = \"test:spinner\"\nversion = \"{version}\"\nworlds = [\"tool\"]\n[limits]\ntimeout-ms = 20000\n"
            ),
            artifacts::SPINNER.bytes,
        )
    };
    let (host, _state) = host_with(vec![spinner("1.0.0")], &[OPERATOR_INVOKES], |config| {
        config.swap.drain_grace_ms = 300;
        config.swap.auto_rollback = false;
    })
    .await;
    let host = Arc::new(host);
    let mut observer = host.bus().observe();
    let running = {
        let host = host.clone();
        tokio::spawn(async move {
            let caller = host.caller(Principal::local_operator());
            host.call(&caller, "spinner", "{}").await
        })
    };
    let h = host.clone();
    eventually("the call to be running on 1.0.0", move || h.status().components[0].in_flight == 1).await;
    host.activate(spinner("2.0.0")).await.unwrap();
    let status = host.status();
    assert_eq!(status.components[0].draining.len(), 1, "{status:?}");
    assert_eq!(status.components[0].draining[0].in_flight, 1);

    match running.await.unwrap() {
        Err(CallError::Interrupted { tool, version }) => {
            assert_eq!((tool.as_str(), version.as_str()), ("spinner", "1.0.0"))
        }
        other => panic!("expected the drain to interrupt the call, got {other:?}"),
    }
    let h = host.clone();
    eventually("1.0.0 freed", move || h.status().components[0].draining.is_empty()).await;
    let drained = drain(&mut observer).into_iter().find(|e| e.topic == events::DRAINED).unwrap().json().unwrap();
    assert!(drained["reason"].as_str().unwrap().contains("1 call(s) outlived the 300 ms grace period"), "{drained}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_passed_probation_frees_the_previous_version() {
    let (host, _state) = host_with(vec![probe("1.0.0", "")], &[OPERATOR_INVOKES, PROBE_GRANTS], |config| {
        config.swap.probation_calls = 5;
    })
    .await;
    host.activate(probe("2.0.0", "")).await.unwrap();
    // During probation the previous version is kept for a quick rollback.
    assert_eq!(host.status().components[0].draining.len(), 1);
    let caller = host.caller(Principal::local_operator());
    for _ in 0..5 {
        let out = host.call(&caller, "probe", r#"{"op":"config.get","key":"generation"}"#).await.unwrap();
        assert_eq!(out["ok"], "v2.0.0");
    }
    // Probation passed: nothing holds 1.0.0 any more, so it is freed.
    let host = Arc::new(host);
    let h = host.clone();
    eventually("1.0.0 freed after probation", move || h.status().components[0].draining.is_empty()).await;
}

/// Hardening #10: a version is loaded, linked and health-checked outside
/// the transition lock, so a policy reload does not wait behind a slow
/// activation (a Python or JavaScript compile takes seconds; here, a health
/// check that waits 1.5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_activation_does_not_hold_up_a_policy_reload() {
    let (host, _state) = host_with(vec![probe("1.0.0", "")], &[OPERATOR_INVOKES, PROBE_GRANTS], |_| {}).await;
    let host = Arc::new(host);
    let mut observer = host.bus().observe();
    let activation = {
        let host = host.clone();
        let slow = "describe-delay-ms = \"1500\"\n[limits]\ntimeout-ms = 5000\n";
        tokio::spawn(async move { host.activate(probe("2.0.0", slow)).await })
    };
    // The activation has begun (its load runs)...
    loop {
        let event = observer.recv().await.unwrap();
        if event.topic == events::ACTIVATING {
            break;
        }
    }
    // ...and a reload goes through while it is still health-checking.
    let summary = host
        .reload_policies(vec![
            PolicySource::new("a.cedar", OPERATOR_INVOKES),
            PolicySource::new("b.cedar", PROBE_GRANTS),
        ])
        .await
        .unwrap();
    assert_eq!(summary.policies, 2);
    assert!(!activation.is_finished(), "the reload finished first: it did not wait for the activation");
    assert_eq!(activation.await.unwrap().unwrap(), "2.0.0");
}

/// Issue 11: probation counts a subscriber's deliveries like tool calls. A
/// new version whose deliveries run past its deadline is rolled back after
/// `swap.rollback-after-faults` of them, by the subscriber's own worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_faulting_in_its_deliveries_is_rolled_back() {
    let listener = |version: &str, timeout_ms: u64| {
        let manifest = format!(
            "id = \"test:listener\"\nversion = \"{version}\"\nworlds = [\"subscriber\"]\n\
             [limits]\ntimeout-ms = {timeout_ms}\n\
             [[capabilities]]\naction = \"bus.subscribe\"\nresource = \"slow.*\"\n"
        );
        package(&manifest, artifacts::LISTENER.bytes)
    };
    let hears =
        r#"permit(principal == Arw::Component::"test:listener", action == Arw::Action::"bus.subscribe", resource);"#;
    let (host, _state) = host_with(vec![listener("1.0.0", 5000)], &[hears], |_| {}).await;
    let mut control = host.control();
    host.activate(listener("2.0.0", 50)).await.unwrap();
    for _ in 0..3 {
        host.bus()
            .publish("test", "slow.x", arw_host::capabilities::bus::Payload::Json(r#"{"wait-ms": 400}"#.into()))
            .unwrap();
    }
    let rolled_back = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            if let arw_host::supervisor::ControlEvent::RolledBack { from, version, .. } = control.recv().await.unwrap()
            {
                return (from, version);
            }
        }
    })
    .await
    .expect("no rollback after three deliveries past the deadline");
    assert_eq!(rolled_back, ("2.0.0".to_string(), "1.0.0".to_string()));
    assert_eq!(host.active_version("test:listener").map(|v| v.0).as_deref(), Some("1.0.0"));
    host.shutdown(std::time::Duration::from_secs(5)).await;
}
