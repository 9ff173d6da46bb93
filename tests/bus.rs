//! announce → bus → event-log: the subscriber hears exactly the topics it
//! was granted, and the bus counts what it published, delivered and dropped.

use arw_tests::{
    Components, DEFAULT_POLICIES, OPERATOR_INVOKES, TestHost, artifacts, eventually, manifests, probe_manifest,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn event_log_receives_exactly_the_granted_topics() {
    // event-log requests demo.*; Cedar grants only demo.public.*. announce may
    // publish demo.*; a probe may publish other.*.
    let policies = DEFAULT_POLICIES.replace(
        "resource.name like \"demo.*\" };\n\n@id(\"event-log-namespace\")",
        "resource.name like \"demo.public.*\" };\n\n@id(\"event-log-namespace\")",
    );
    assert_ne!(policies, DEFAULT_POLICIES, "the test's policy edit must apply");
    let probe = probe_manifest("test:probe", &[("bus.publish", "other.*")], &[]);
    let grant_probe =
        r#"permit(principal == Arw::Component::"test:probe", action == Arw::Action::"bus.publish", resource);"#;
    let t = TestHost::start(
        Components::first_party().with(&probe, artifacts::PROBE.bytes),
        &[&policies, OPERATOR_INVOKES, grant_probe],
    )
    .await;
    assert!(t.refused.is_empty(), "{:?}", t.refused);

    let sends = [
        ("announce", json!({"topic": "demo.public.one", "message": {"n": 1}})),
        ("announce", json!({"topic": "demo.private", "message": {"n": 2}})),
        ("probe", json!({"op": "bus.publish", "topic": "other.thing", "message": {"n": 3}})),
        ("announce", json!({"topic": "demo.public.two", "message": {"n": 4}})),
    ];
    for (tool, input) in sends {
        t.ok(tool, input).await;
    }
    let host = &t.host;
    // demo.private passes the manifest filter but not Cedar: it is neither
    // delivered nor failed. Only the two demo.public events are delivered.
    eventually("two deliveries", || host.bus_stats().delivered >= 2).await;
    let events = t.ok("event-log", json!({})).await;
    let topics: Vec<&str> =
        events["events"].as_array().map_or(vec![], |a| a.iter().filter_map(|e| e["topic"].as_str()).collect());
    assert_eq!(topics, ["demo.public.one", "demo.public.two"], "{events}");
    assert_eq!(events["events"][0]["payload"], json!({"n": 1}));
    assert_eq!(events["events"][0]["source"], "arw:announce");

    // Published: the four above plus one `audit.denied` from loading the
    // probe (its `describe` asks for the `tool-name` config key, which it was
    // not granted).
    let stats = host.bus_stats();
    assert_eq!((stats.published, stats.delivered, stats.failed, stats.dropped), (5, 2, 0, 0), "{stats:?}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn full_subscriber_queue_drops_and_counts() {
    let mut components = Components::new()
        .with(manifests::ANNOUNCE, artifacts::ANNOUNCE.bytes)
        .with(manifests::EVENT_LOG, artifacts::EVENT_LOG.bytes);
    components.0.truncate(2);
    let state = std::sync::Arc::new(tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")));
    let mut config = arw_tests::config(state.path());
    config.bus.subscriber_queue = 1;
    let (host, refused) = arw_host::Host::start(config, arw_tests::policies(&[DEFAULT_POLICIES]), &components)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.is_empty(), "{refused:?}");
    // Publish a burst straight onto the bus, faster than event-log can
    // record: with a queue of one, some must be dropped, none lost silently.
    for n in 0..50 {
        host.bus()
            .publish("host", "demo.burst", arw_host::capabilities::bus::Payload::Json(n.to_string()))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    eventually("every event accounted for", || {
        let s = host.bus_stats();
        s.delivered + s.dropped + s.failed == 50
    })
    .await;
    let s = host.bus_stats();
    assert!(s.dropped > 0, "{s:?}");
    assert!(s.delivered >= 1, "{s:?}");
    host.shutdown(std::time::Duration::from_secs(5)).await;
}
