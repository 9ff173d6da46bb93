//! Each first-party tool returns the right output through the library API,
//! and kv-counter's value survives a restart of the host.

use arw_tests::{Components, DEFAULT_POLICIES, TestHost};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn first_party_tools_answer_correctly() {
    let t = TestHost::start(Components::first_party(), &[DEFAULT_POLICIES]).await;
    assert!(t.refused.is_empty(), "{:?}", t.refused);

    assert_eq!(
        t.ok("text-stats", json!({"text": "héllo wörld\nsecond line\n"})).await,
        json!({"chars": 24, "words": 4, "lines": 2})
    );
    assert_eq!(t.ok("text-stats", json!({"text": ""})).await, json!({"chars": 0, "words": 0, "lines": 0}));
    // Input that breaks the tool's input schema is refused by the host
    // before the guest runs, with each violation.
    let err = t.call("text-stats", json!({"txt": 1})).await.unwrap_err();
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
    assert!(announced["id"].as_u64().is_some(), "{announced}");

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
