//! The host's own lifecycle, hardened: one deadline for every entry into a
//! guest, a shutdown that neither starts calls after it counted zero nor
//! waits once per subscriber, refusals that say what and why, and a host
//! dropped without `stop()` that lets go of everything.

// Test helpers: an unwrap that fails is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arw_host::capabilities::bus::Payload;
use arw_host::manifest::Manifest;
use arw_host::source::{ComponentPackage, ComponentSource};
use arw_host::{Host, LoadError};
use arw_policy::Principal;
use arw_tests::{Components, OPERATOR_INVOKES, artifacts, eventually, manifests, policies};

const LISTEN: &str = r#"permit(principal, action == Arw::Action::"bus.subscribe", resource);"#;
const READ_CONFIG: &str = r#"permit(principal, action == Arw::Action::"config.read", resource);"#;

fn package(manifest: &str, wasm: &'static [u8]) -> ComponentPackage {
    let manifest = Manifest::parse(manifest).unwrap();
    let publisher = Some(manifest.id.namespace().to_string());
    ComponentPackage { manifest, wasm: Cow::Borrowed(wasm), origin: "test".into(), publisher }
}

/// A `listener` subscriber `test:<name>` hearing `slow.*`, with `timeout-ms`.
fn listener(name: &str, timeout_ms: u64) -> String {
    format!(
        "id = \"test:{name}\"\nversion = \"1.0.0\"\nworlds = [\"subscriber\"]\n[limits]\ntimeout-ms = {timeout_ms}\n\
         [[capabilities]]\naction = \"bus.subscribe\"\nresource = \"slow.*\"\n"
    )
}

async fn start(components: &dyn ComponentSource, policy: &[&str]) -> (Host, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let (host, refused) = Host::start(arw_tests::config(state.path()), policies(policy), components).await.unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    (host, state)
}

/// Hardening #11: a health check that waits in the host (here `describe`
/// parked on a clock for 1.5 s, where no epoch deadline applies) ends at
/// the component's deadline; the activation is refused and says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_health_check_waiting_in_the_host_ends_at_the_deadline() {
    let components = Components::new().with(manifests::TEXT_STATS, artifacts::TEXT_STATS.bytes);
    let (host, _state) = start(&components, &[OPERATOR_INVOKES, READ_CONFIG]).await;
    let slow = "id = \"test:probe\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n[limits]\ntimeout-ms = 300\n\
                [[capabilities]]\naction = \"config.read\"\nresource = \"*\"\n[config]\ndescribe-delay-ms = \"1500\"\n";
    let started = Instant::now();
    let err = host.activate(package(slow, artifacts::PROBE.bytes)).await.unwrap_err();
    assert_eq!(err.stage, "health-check", "{err}");
    assert!(err.reason.contains("within its deadline of 300 ms"), "{err}");
    assert!(started.elapsed() < Duration::from_millis(1500), "it did not wait for the guest: {:?}", started.elapsed());
    host.shutdown(Duration::from_secs(1)).await;
}

/// Hardening #11: a delivery that waits in the host past the subscriber's
/// deadline fails at the deadline (counted), and the next event is
/// delivered: one slow event does not stall the queue.
#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_waiting_in_the_host_ends_at_the_deadline() {
    let components = Components::new().with(&listener("listener", 300), artifacts::LISTENER.bytes);
    let (host, _state) = start(&components, &[LISTEN]).await;
    let started = Instant::now();
    host.bus().publish("test", "slow.one", Payload::Json(r#"{"wait-ms": 20000}"#.into())).unwrap();
    host.bus().publish("test", "slow.two", Payload::Json(r#"{"wait-ms": 1}"#.into())).unwrap();
    let h = Arc::new(host);
    let h2 = h.clone();
    eventually("both events handled", move || {
        let s = h2.bus_stats();
        s.failed + s.delivered == 2
    })
    .await;
    let stats = h.bus_stats();
    assert_eq!((stats.failed, stats.delivered), (1, 1), "{stats:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "the first delivery ended at its deadline");
}

/// Hardening #13: `stop` drains every subscriber within one grace period,
/// not one grace period per subscriber. Three subscribers each have an
/// event that needs 3 s; with a 1 s grace, the stop returns after about
/// 1 s (bound: under 2.5 s; one grace per subscriber would be 3 s).
#[tokio::test(flavor = "multi_thread")]
async fn stop_waits_one_grace_period_for_all_subscribers() {
    let components = Components::new()
        .with(&listener("a", 10_000), artifacts::LISTENER.bytes)
        .with(&listener("b", 10_000), artifacts::LISTENER.bytes)
        .with(&listener("c", 10_000), artifacts::LISTENER.bytes);
    let (host, _state) = start(&components, &[LISTEN]).await;
    host.bus().publish("test", "slow.all", Payload::Json(r#"{"wait-ms": 3000}"#.into())).unwrap();
    let h = Arc::new(host);
    let h2 = h.clone();
    eventually("all three deliveries running", move || {
        h2.status().components.iter().filter(|c| c.in_flight == 1).count() == 3
    })
    .await;
    let started = Instant::now();
    h.stop(Duration::from_secs(1)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "stop took {took:?}: one grace period for all, not one each");
}

/// Hardening #13: a call either sees the host stopping or is waited for:
/// once `stop` has returned with nothing left, no call is running and
/// every later call is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_call_runs_after_stop_counted_zero() {
    let components = Components::new().with(manifests::TEXT_STATS, artifacts::TEXT_STATS.bytes);
    let (host, _state) = start(&components, &[OPERATOR_INVOKES]).await;
    let host = Arc::new(host);
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move {
                let caller = host.caller(Principal::local_operator());
                let mut results = Vec::new();
                loop {
                    // When the call started: one that started after `stop`
                    // returned must be refused. (When it returned proves
                    // nothing: a task can be descheduled after a call that
                    // finished in time.)
                    let started = Instant::now();
                    let result = host.call(&caller, "text-stats", r#"{"text":"a b"}"#).await;
                    let refused = result.is_err();
                    results.push((started, result.map(|_| ()).map_err(|e| e.code().into_owned())));
                    if refused || results.len() > 100_000 {
                        return results;
                    }
                }
            })
        })
        .collect();
    let h = host.clone();
    eventually("calls under way", move || h.status().components[0].in_flight > 0).await;
    let left = host.stop(Duration::from_secs(5)).await;
    let stop_returned = Instant::now();
    assert_eq!(left, 0);
    assert_eq!(host.status().components[0].in_flight, 0, "nothing runs once stop counted zero");
    for caller in callers {
        let results = caller.await.unwrap();
        let after: Vec<_> = results.iter().filter(|(at, _)| *at > stop_returned).map(|(_, r)| r).collect();
        assert!(
            after.iter().all(|r| r.as_ref().err().is_some_and(|code| code == "shutting-down")),
            "every call that started after the stop returned was refused: {after:?}"
        );
        assert!(
            matches!(results.last(), Some((_, Err(code))) if code == "shutting-down"),
            "each caller was refused in the end"
        );
    }
}

/// Hardening #14: what the host refuses is kept with its stage and reason
/// (and logged as a warning): at start, and at an activation.
#[tokio::test(flavor = "multi_thread")]
async fn refusals_name_the_component_the_stage_and_the_reason() {
    let impostor = "id = \"evil:stats\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n\
                    [[capabilities]]\naction = \"config.read\"\nresource = \"*\"\n[config]\ntool-name = \"text-stats\"\n";
    let components = Components::new()
        .with(manifests::TEXT_STATS, artifacts::TEXT_STATS.bytes)
        .with(impostor, artifacts::PROBE.bytes);
    let state = tempfile::tempdir().unwrap();
    let (host, refused) =
        Host::start(arw_tests::config(state.path()), policies(&[OPERATOR_INVOKES, READ_CONFIG]), &components)
            .await
            .unwrap();
    assert!(matches!(refused.as_slice(), [LoadError::Conflict { .. }]), "{refused:?}");
    let refusals = host.refusals();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!((refusals[0].component.as_str(), refusals[0].stage.as_str()), ("evil:stats", "conflict"));
    assert!(refusals[0].reason.contains("`text-stats` is already provided by `arw:text-stats`"), "{refusals:?}");
    assert_eq!(host.status().refused, refusals);

    let huge = "id = \"test:huge\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n[limits]\ntimeout-ms = 999999999\n";
    let err = host.activate(package(huge, artifacts::PROBE.bytes)).await.unwrap_err();
    assert_eq!(err.stage, "limits");
    let refusals = host.refusals();
    let huge = refusals.iter().find(|r| r.component == "test:huge").unwrap();
    assert!(huge.reason.contains("limits.max-timeout-ms = 60000"), "{huge:?}");
    assert_eq!(huge.version.as_deref(), Some("1.0.0"));

    // Once the component that blocked it is gone, the impostor activates
    // and its refusal is cleared.
    host.remove("arw:text-stats").await;
    host.activate(package(impostor, artifacts::PROBE.bytes)).await.unwrap();
    assert!(host.refusals().iter().all(|r| r.component != "evil:stats"), "{:?}", host.refusals());
    host.shutdown(Duration::from_secs(1)).await;
}

/// Hardening #16: a host dropped without `stop()` frees its bus (and so its
/// engine, kv store and components): the subscriber's filter, which holds
/// its slot, no longer keeps the chain alive through the audit path.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_dropped_without_stop_frees_everything() {
    // A pooled tool keeps an instance (its store, its capabilities) in the
    // component between calls: that must not keep the host alive either.
    let pooled = format!("{}[pooled]\nsize = 2\n", arw_tests::probe_manifest("test:pooled", &[], &[]));
    let components = Components::first_party().with(&pooled, arw_tests::artifacts::PROBE.bytes);
    let (host, state) = start(&components, &[arw_tests::DEFAULT_POLICIES]).await;
    let caller = host.caller(Principal::local_operator());
    host.call(&caller, "announce", r#"{"message":1}"#).await.unwrap();
    host.call(&caller, "probe", r#"{"op":"echo","value":1}"#).await.unwrap();
    let bus = Arc::downgrade(host.bus());
    let component = Arc::downgrade(&host.active_component("arw:event-log").unwrap());
    let kept = Arc::downgrade(&host.active_component("test:pooled").unwrap());
    drop(caller);
    drop(host);
    eventually("the bus freed", move || bus.strong_count() == 0).await;
    eventually("the subscriber freed", move || component.strong_count() == 0).await;
    eventually("the pooled component freed", move || kept.strong_count() == 0).await;
    // The kv store was released too: a new host opens the same state.
    let (again, refused) = Host::start(
        arw_tests::config(state.path()),
        policies(&[arw_tests::DEFAULT_POLICIES]),
        &Components::first_party(),
    )
    .await
    .unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    again.shutdown(Duration::from_secs(1)).await;
}
