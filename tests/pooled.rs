//! The pooled lifecycle (issue 11 #2): a `[pooled]` tool keeps instances
//! between calls; an instance serves one caller only unless the manifest
//! declares the component stateless, and a trap discards it.

use std::collections::BTreeSet;
use std::sync::Arc;

use arw_policy::Principal;
use arw_tests::{Components, OPERATOR_INVOKES, TestHost, artifacts};
use serde_json::{Value, json};

fn pooled_probe(size: u32, stateless: bool) -> String {
    format!(
        "id = \"test:pooled\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n\
         [pooled]\nsize = {size}\nstateless = {stateless}\n"
    )
}

async fn host(size: u32, stateless: bool) -> TestHost {
    let components = Components::new().with(&pooled_probe(size, stateless), artifacts::PROBE.bytes);
    let t = TestHost::start(components, &[OPERATOR_INVOKES]).await;
    assert!(t.refused.is_empty(), "{:?}", t.refused);
    t
}

/// (instance id, calls it has served) of one call by `caller`.
async fn which(t: &TestHost, caller: &arw_host::Caller) -> (String, u64) {
    let out: Value = t.host.call(caller, "probe", r#"{"op":"instance"}"#).await.unwrap_or_else(|e| panic!("{e}"));
    let ok = &out["ok"];
    (ok["instance"].as_str().unwrap_or_default().to_string(), ok["calls"].as_u64().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pooled_instance_serves_one_caller_only() {
    let t = Arc::new(host(2, false).await);
    assert_eq!(t.host.status().components[0].pooled_idle, Some(2), "made ahead");
    // Reused: the same instance, its memory kept between calls.
    let (first, calls) = which(&t, &t.operator).await;
    assert_eq!(calls, 1);
    let (again, calls) = which(&t, &t.operator).await;
    assert_eq!((again.as_str(), calls), (first.as_str(), 2), "the operator's instance is reused");

    // Two callers at once, 20 calls each: no instance serves both.
    let alice = Arc::new(t.host.caller(Principal::caller("alice", ["operator"])));
    let run = |caller: Option<Arc<arw_host::Caller>>| {
        let t = t.clone();
        tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            for _ in 0..20 {
                let caller = caller.as_deref().unwrap_or(&t.operator);
                seen.insert(which(&t, caller).await.0);
            }
            seen
        })
    };
    let (operator, alice_seen) = (run(None), run(Some(alice.clone())));
    let operator = operator.await.unwrap_or_else(|e| panic!("{e}"));
    let alice_seen = alice_seen.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(operator.is_disjoint(&alice_seen), "an instance served two callers: {operator:?} / {alice_seen:?}");
    assert!(operator.contains(&first), "{operator:?}");
    // Kept instances were reused, not made fresh every time.
    assert!(operator.len() + alice_seen.len() < 40, "{operator:?} {alice_seen:?}");
    let Ok(t) = Arc::try_unwrap(t) else { panic!("the host is still shared") };
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stateless_pooled_instance_may_serve_any_caller() {
    let t = host(1, true).await;
    let alice = t.host.caller(Principal::caller("alice", ["operator"]));
    let (first, _) = which(&t, &t.operator).await;
    let (second, calls) = which(&t, &alice).await;
    assert_eq!((second.as_str(), calls), (first.as_str(), 2), "declared stateless: one instance for both");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_discards_the_pooled_instance() {
    let t = host(1, false).await;
    let (first, _) = which(&t, &t.operator).await;
    let (same, calls) = which(&t, &t.operator).await;
    assert_eq!((same.as_str(), calls), (first.as_str(), 2));
    let err = t.call("probe", json!({"op": "trap"})).await.expect_err("it traps");
    assert_eq!(err.code(), "trap", "{err}");
    let (next, calls) = which(&t, &t.operator).await;
    assert_ne!(next, first, "the trapped instance was not reused");
    assert_eq!(calls, 1, "a fresh instance");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pooled_manifests_are_checked() {
    // The format is the manifest crate's; the rules are the tool role's,
    // checked wherever a manifest enters the host.
    let check = |text: &str| {
        let manifest = arw_host::Manifest::parse(text).unwrap_or_else(|e| panic!("{e}"));
        arw_host::check_manifest(&manifest)
    };
    let err = check(&pooled_probe(0, false)).expect_err("size 0");
    assert!(err.contains("`pooled.size` = 0 must be between 1 and `limits.concurrency` = 8"), "{err}");
    let err = check(&pooled_probe(9, false)).expect_err("over concurrency");
    assert!(err.contains("`pooled.size` = 9"), "{err}");
    let subscriber = "id = \"a:b\"\nversion = \"1.0.0\"\nworlds = [\"subscriber\"]\n[pooled]\nsize = 1\n";
    let err = check(subscriber).expect_err("not a tool");
    assert!(err.contains("does not include \"tool\""), "{err}");
    assert!(check(&pooled_probe(2, false)).is_ok());
}

/// A kept instance reports each entry's chain (the components a nested call
/// came through) to the gates and Cedar, not the chain of the entry it was
/// made for: a gate that refuses bus publishes made on behalf of
/// `test:front` refuses them from the one kept instance that also served,
/// and serves, direct calls.
#[tokio::test(flavor = "multi_thread")]
async fn a_kept_instance_reports_each_entrys_chain_to_the_gates() {
    use arw_tests::{DEFAULT_POLICIES, config, policies, probe_manifest};
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = state.path().join("gate.conf");
    std::fs::write(&file, "deny-chain test:front io:egress:bus.demo.chain").unwrap_or_else(|e| panic!("{e}"));
    let mut config = config(state.path());
    config.gating.gates = vec!["test:gate-probe".into()];
    config.gating.timeout_ms = 5_000;
    config.gating.files.insert("test:gate-probe".into(), file);
    let pooled = format!(
        "{}[pooled]\nsize = 1\nstateless = true\n",
        probe_manifest("test:pooled", &[("bus.publish", "demo.chain")], &[])
    );
    let front = probe_manifest(
        "test:front",
        &[("tool.invoke", "probe"), ("config.read", "tool-name")],
        &[("tool-name", "front")],
    );
    let gate = "id = \"test:gate-probe\"\nversion = \"1.0.0\"\nworlds = [\"gate\"]\n[limits]\ntimeout-ms = 1000\n";
    let components = Components::new()
        .with(&pooled, artifacts::PROBE.bytes)
        .with(&front, artifacts::PROBE.bytes)
        .with(gate, artifacts::GATE_PROBE.bytes);
    let grants = r#"
        permit(principal == Arw::Component::"test:pooled", action == Arw::Action::"bus.publish", resource);
        permit(principal == Arw::Component::"test:front",
               action in [Arw::Action::"tool.invoke", Arw::Action::"config.read"], resource);"#;
    let (host, refused) =
        arw_host::Host::start(config, policies(&[DEFAULT_POLICIES, OPERATOR_INVOKES, grants]), &components)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.is_empty(), "{refused:?}");
    let operator = host.caller(Principal::local_operator());
    let mut events = host.bus().observe();
    let published = |events: &mut tokio::sync::broadcast::Receiver<_>| {
        arw_tests::drain(events)
            .iter()
            .filter(|e: &&std::sync::Arc<arw_host::capabilities::bus::Event>| e.topic == "demo.chain")
            .count()
    };
    let publish = json!({"op": "bus.publish", "topic": "demo.chain", "message": 1});
    let instance = |out: &Value| out["ok"]["instance"].as_str().map(str::to_string);

    // Direct: allowed, on the one kept instance.
    let first: Value = host.call(&operator, "probe", r#"{"op":"instance"}"#).await.unwrap_or_else(|e| panic!("{e}"));
    host.call(&operator, "probe", &publish.to_string()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(published(&mut events), 1);
    // Through test:front, on the same instance: the gate sees test:front in
    // the chain and refuses the publish.
    let nested = json!({"op": "tools.invoke", "tool": "probe", "input": publish});
    let through_front = host.call(&operator, "front", &nested.to_string()).await;
    assert_eq!(published(&mut events), 0, "published on behalf of test:front: {through_front:?}");
    // It was that same kept instance (all calls here run one at a time on
    // a pool of one; a refusal is no fault, so the instance is kept).
    let nested_instance = json!({"op": "tools.invoke", "tool": "probe", "input": {"op": "instance"}});
    let seen = host.call(&operator, "front", &nested_instance.to_string()).await.unwrap_or_else(|e| panic!("{e}"));
    let id = instance(&first).unwrap_or_default();
    assert!(!id.is_empty() && seen.to_string().contains(&id), "{seen} is not {first}");
    // Direct again: allowed (the chain is this entry's again).
    host.call(&operator, "probe", &publish.to_string()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(published(&mut events), 1);
    let last: Value = host.call(&operator, "probe", r#"{"op":"instance"}"#).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(instance(&last), instance(&first), "one kept instance served every call");
    assert_eq!(last["ok"]["calls"].as_u64(), Some(3), "{last}");
    host.stop(std::time::Duration::from_secs(5)).await;
}
