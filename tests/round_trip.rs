//! Each first-party tool returns the right output through the library API,
//! and kv-counter's value survives a restart of the host. The same checks
//! pass with the components built against `arw:host@0.1.0`: the host runs
//! them unchanged.

use arw_tests::{Components, DEFAULT_POLICIES, TestHost};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn first_party_tools_answer_correctly() {
    first_party_tools_answer_correctly_with(Components::first_party(), "0.2.0").await;
}

/// Issue 11 #3: components built before `arw:host@0.2.0` load and pass the
/// same checks, capabilities (bus, kv, log, config) and both exports
/// (tool, subscriber) included.
#[tokio::test(flavor = "multi_thread")]
async fn components_built_for_arw_host_0_1_answer_the_same() {
    first_party_tools_answer_correctly_with(Components::first_party_built_for_0_1(), "0.1.0").await;
}

async fn first_party_tools_answer_correctly_with(components: Components, wit_version: &str) {
    for (manifest, wasm) in &components.0 {
        let export = format!("arw:host/tool-handler@{wit_version}");
        assert!(
            wasm.windows(export.len()).any(|w| w == export.as_bytes()),
            "{} does not export {export}",
            manifest.lines().next().unwrap_or_default()
        );
    }
    let t = TestHost::start(components, &[DEFAULT_POLICIES]).await;
    assert!(t.refused.is_empty(), "{:?}", t.refused);

    assert_eq!(
        t.ok("text-stats", json!({"text": "héllo wörld\nsecond line\n"})).await,
        json!({"chars": 24, "words": 4, "lines": 2})
    );
    assert_eq!(t.ok("text-stats", json!({"text": ""})).await, json!({"chars": 0, "words": 0, "lines": 0}));
    // Input that breaks the tool's input schema is refused by the host
    // before the guest runs, with each violation.
    let Err(err) = t.call("text-stats", json!({"txt": 1})).await else {
        panic!("an input breaking the schema was taken")
    };
    assert_eq!(err.code(), "schema-violation", "{err}");
    match &err {
        arw_host::CallError::SchemaViolation { violations, .. } => {
            assert!(violations.iter().any(|v| v.contains("\"text\" is a required property")), "{violations:?}");
            assert!(violations.iter().any(|v| v.contains("'txt' was unexpected")), "{violations:?}");
        }
        other => panic!("{other}"),
    }

    assert_eq!(t.ok("kv-counter", json!({"name": "visits"})).await, json!({"value": 1}));
    assert_eq!(t.ok("kv-counter", json!({"name": "visits"})).await, json!({"value": 2}));
    assert_eq!(t.ok("kv-counter", json!({"name": "other"})).await, json!({"value": 1}));

    let announced = t.ok("announce", json!({"message": {"hello": "world"}})).await;
    let id = announced["id"].as_u64().unwrap_or_else(|| panic!("{announced}"));
    // The subscriber heard it (bus → event-handler → kv).
    let mut logged = false;
    for _ in 0..200 {
        let events = t.ok("event-log", json!({})).await;
        if events["events"].as_array().is_some_and(|e| e.iter().any(|e| e["id"] == id)) {
            logged = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(logged, "event-log never recorded event {id}");

    let tools: Vec<String> = t.host.tools().into_iter().map(|t| t.descriptor.name).collect();
    assert_eq!(tools, ["announce", "event-log", "kv-counter", "text-stats"]);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_counter_survives_a_restart() {
    let t = TestHost::start(Components::first_party(), &[DEFAULT_POLICIES]).await;
    for expected in 1..=3 {
        assert_eq!(t.ok("kv-counter", json!({"name": "n"})).await, json!({"value": expected}));
    }
    let state = t.stop().await;

    let t = TestHost::start_in(state, Components::first_party(), &[DEFAULT_POLICIES]).await;
    assert_eq!(t.ok("kv-counter", json!({"name": "n"})).await, json!({"value": 4}));
    t.stop().await;
}
