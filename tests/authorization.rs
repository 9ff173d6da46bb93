//! Deny by default: nothing is usable unless requested in the manifest and
//! permitted by Cedar; a denial is a typed error (not a trap), is audited,
//! and leaves the host serving.

use arw_host::CallError;
use arw_host::authz::AUDIT_DENIED_TOPIC;
use arw_policy::Principal;
use arw_tests::{
    Components, DEFAULT_POLICIES, OPERATOR_INVOKES, TestHost, artifacts, drain, manifests, probe_manifest,
};
use serde_json::json;

fn denied_code(result: Result<serde_json::Value, CallError>) -> String {
    match result {
        Err(CallError::Tool { code, message, .. }) => {
            assert!(!message.is_empty());
            code
        }
        other => panic!("expected a tool error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ungranted_capability_is_denied_and_the_host_keeps_serving() {
    let probe = probe_manifest(
        "test:probe",
        &[("kv.read", "probe"), ("kv.write", "probe"), ("bus.publish", "probe.*"), ("config.read", "*")],
        &[("greeting", "hi")],
    );
    // Requested everything above, but Cedar grants only kv.read.
    let grant_read = r#"permit(principal == Arw::Component::"test:probe", action == Arw::Action::"kv.read", resource == Arw::KvNamespace::"probe");"#;
    let t = TestHost::start(
        Components::new().with(&probe, artifacts::PROBE.bytes).with(manifests::TEXT_STATS, artifacts::TEXT_STATS.bytes),
        &[OPERATOR_INVOKES, grant_read],
    )
    .await;
    let mut audit = t.host.bus().observe();

    // Granted: read works (nothing there yet).
    assert_eq!(t.ok("probe", json!({"op": "kv.get", "namespace": "probe", "key": "k"})).await, json!({"ok": null}));
    // Requested but not permitted: denied, as a typed error.
    for op in [
        json!({"op": "kv.set", "namespace": "probe", "key": "k", "value": "v"}),
        json!({"op": "bus.publish", "topic": "probe.x", "message": 1}),
        json!({"op": "config.get", "key": "greeting"}),
        json!({"op": "log", "message": "hello"}),
    ] {
        assert_eq!(denied_code(t.call("probe", op.clone()).await), "denied", "{op}");
    }
    // Not even requested: denied, and the reason says so.
    match t.call("probe", json!({"op": "kv.get", "namespace": "kv-counter", "key": "k"})).await {
        Err(CallError::Tool { code, message, .. }) => {
            assert_eq!(code, "denied");
            assert!(message.contains("not requested in its manifest"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // The next call and other components keep working.
    assert_eq!(t.ok("probe", json!({"op": "echo", "value": [1, 2]})).await, json!({"ok": [1, 2]}));
    assert_eq!(t.ok("text-stats", json!({"text": "a b"})).await["words"], 2);

    // Every denial was audited on the bus: each the first of its (principal,
    // action) at once, or counted into a summary (the probe's `describe`
    // was refused `config.read` at load, so the call's refusal of it falls
    // in that window and is reported at the flush).
    t.host.flush_audit();
    let audits: Vec<_> = drain(&mut audit).into_iter().filter(|e| e.topic == AUDIT_DENIED_TOPIC).collect();
    let mut actions: Vec<String> = audits
        .iter()
        .map(|e| e.json().unwrap_or_default()["action"].as_str().unwrap_or_default().to_string())
        .collect();
    actions.sort();
    assert_eq!(actions, ["bus.publish", "config.read", "kv.read", "kv.write", "log.write"], "{audits:?}");
    let first = audits[0].json().unwrap_or_default();
    assert_eq!(first["action"], "kv.write");
    assert_eq!(first["principal"], "Arw::Component::\"test:probe\"");
    assert_eq!(first["reason"], "no policy permits it");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_policies_grant_nothing() {
    let probe = probe_manifest("test:probe", &[("kv.read", "probe"), ("log.write", "*")], &[]);
    let t = TestHost::start(
        Components::first_party().with(&probe, artifacts::PROBE.bytes),
        &[], // no policies at all
    )
    .await;
    // Not even the operator may call a tool.
    for tool in ["text-stats", "kv-counter", "probe"] {
        let err = t.call(tool, json!({})).await.unwrap_err();
        assert!(matches!(err, CallError::Denied(_)), "{tool}: {err}");
    }
    // And every requested capability is shown as denied.
    for component in t.host.components() {
        for grant in component.grants {
            assert!(!grant.allowed, "{} has {} on {}", component.id, grant.action, grant.resource);
        }
    }
    // With only tool.invoke granted, the capabilities behind it stay denied.
    let t2 = TestHost::start(Components::first_party(), &[OPERATOR_INVOKES]).await;
    assert_eq!(denied_code(t2.call("kv-counter", json!({"name": "x"})).await), "denied");
    assert_eq!(t2.ok("text-stats", json!({"text": "ok"})).await["words"], 1);
    t.stop().await;
    t2.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn components_cannot_read_each_others_namespaces() {
    let a = probe_manifest(
        "test:a",
        &[("kv.read", "*"), ("kv.write", "*"), ("config.read", "tool-name")],
        &[("tool-name", "probe-a")],
    );
    let b = probe_manifest(
        "test:b",
        &[("kv.read", "*"), ("kv.write", "*"), ("config.read", "tool-name")],
        &[("tool-name", "probe-b")],
    );
    // Each may use the namespace named after itself, nothing else.
    let own_namespace = r#"
        permit(principal, action in [Arw::Action::"kv.read", Arw::Action::"kv.write"], resource)
        when { principal has name && resource.name == principal.name };
        permit(principal is Arw::Component, action == Arw::Action::"config.read", resource == Arw::ConfigKey::"tool-name");"#;
    let t = TestHost::start(
        Components::first_party().with(&a, artifacts::PROBE.bytes).with(&b, artifacts::PROBE.bytes),
        &[DEFAULT_POLICIES, own_namespace],
    )
    .await;
    assert!(t.refused.is_empty(), "{:?}", t.refused);
    t.ok("probe-a", json!({"op": "kv.set", "namespace": "a", "key": "secret", "value": "A"})).await;
    t.ok("probe-b", json!({"op": "kv.set", "namespace": "b", "key": "secret", "value": "B"})).await;
    t.ok("kv-counter", json!({"name": "c"})).await;

    assert_eq!(t.ok("probe-a", json!({"op": "kv.get", "namespace": "a", "key": "secret"})).await, json!({"ok": "A"}));
    for (tool, namespace) in [("probe-a", "b"), ("probe-b", "a"), ("probe-a", "kv-counter"), ("probe-b", "kv-counter")]
    {
        for input in [
            json!({"op": "kv.get", "namespace": namespace, "key": "secret"}),
            json!({"op": "kv.list", "namespace": namespace, "prefix": ""}),
        ] {
            assert_eq!(denied_code(t.call(tool, input.clone()).await), "denied", "{tool} {input}");
        }
        let write = json!({"op": "kv.set", "namespace": namespace, "key": "secret", "value": "x"});
        assert_eq!(denied_code(t.call(tool, write).await), "denied", "{tool} writes {namespace}");
    }
    // b's secret is untouched and still b's.
    assert_eq!(t.ok("probe-b", json!({"op": "kv.get", "namespace": "b", "key": "secret"})).await, json!({"ok": "B"}));
    assert_eq!(t.ok("kv-counter", json!({"name": "c"})).await, json!({"value": 2}));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn callers_are_principals() {
    let anonymous_text_stats = r#"
        permit(principal == Arw::Caller::"anonymous", action == Arw::Action::"tool.invoke", resource == Arw::Tool::"text-stats");"#;
    let t = TestHost::start(Components::first_party(), &[anonymous_text_stats]).await;
    let anonymous = t.host.caller(Principal::caller("anonymous", ["anonymous"]));
    assert!(t.host.call(&anonymous, "text-stats", r#"{"text":"x"}"#).await.is_ok());
    let err = t.host.call(&anonymous, "kv-counter", r#"{"name":"x"}"#).await.unwrap_err();
    assert!(err.to_string().contains("may not `tool.invoke` on `kv-counter`"), "{err}");
    // The operator was granted nothing here.
    assert!(matches!(t.call("text-stats", json!({"text": "x"})).await, Err(CallError::Denied(_))));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn grants_are_listed_per_component() {
    let t = TestHost::start(Components::first_party(), &[DEFAULT_POLICIES]).await;
    let components = t.host.components();
    let announce = components.iter().find(|c| c.id == "arw:announce").unwrap_or_else(|| panic!("no announce"));
    let grants: Vec<(String, String, bool)> =
        announce.grants.iter().map(|g| (g.action.to_string(), g.resource.clone(), g.allowed)).collect();
    assert_eq!(grants, [("bus.publish".into(), "demo.*".into(), true), ("config.read".into(), "topic".into(), true)]);
    t.stop().await;

    // Revoke announce's publish grant: the listing says so.
    let without_announce = DEFAULT_POLICIES.replace("announce-publishes-demo", "x").replace(
        "principal == Arw::Component::\"arw:announce\",\n    action == Arw::Action::\"bus.publish\"",
        "principal == Arw::Component::\"arw:nobody\",\n    action == Arw::Action::\"bus.publish\"",
    );
    let t = TestHost::start(Components::first_party(), &[&without_announce]).await;
    let components = t.host.components();
    let announce = components.iter().find(|c| c.id == "arw:announce").unwrap_or_else(|| panic!("no announce"));
    assert!(!announce.grants[0].allowed, "{:?}", announce.grants);
    assert_eq!(
        denied_code(t.call("announce", json!({"message": 1})).await),
        "denied",
        "the listing and the call path must agree"
    );
    t.stop().await;
}

/// Hardening #1: a decision is never reused for another provider of the
/// same tool name. The same caller handle, kept across the change (as the
/// HTTP server keeps one per caller), is asked afresh.
#[tokio::test(flavor = "multi_thread")]
async fn a_tool_name_taken_over_by_another_component_is_reauthorized() {
    let only_the_real_text_stats = r#"
        permit(principal in Arw::Role::"anonymous", action == Arw::Action::"tool.invoke", resource)
        when { resource.component == "arw:text-stats" };
        permit(principal == Arw::Component::"evil:stats", action == Arw::Action::"config.read", resource);"#;
    let t = TestHost::start(
        Components::new().with(manifests::TEXT_STATS, artifacts::TEXT_STATS.bytes),
        &[only_the_real_text_stats],
    )
    .await;
    let anonymous = t.host.caller(Principal::caller("anonymous", ["anonymous"]));
    assert!(t.host.call(&anonymous, "text-stats", r#"{"text":"x"}"#).await.is_ok(), "cached as allowed");

    assert!(t.host.remove("arw:text-stats").await);
    let impostor = probe_manifest("evil:stats", &[("config.read", "*")], &[("tool-name", "text-stats")]);
    let package = arw_host::source::ComponentPackage {
        manifest: arw_host::Manifest::parse(&impostor).unwrap_or_else(|e| panic!("{e}")),
        wasm: std::borrow::Cow::Borrowed(artifacts::PROBE.bytes),
        origin: "test".into(),
        publisher: Some("evil".into()),
    };
    t.host.activate(package).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.host.tool_owner("text-stats").as_deref(), Some("evil:stats"));
    match t.host.call(&anonymous, "text-stats", r#"{"op":"echo","value":1}"#).await {
        Err(CallError::Denied(denied)) => assert_eq!(denied.reason, "no policy permits it"),
        other => panic!("the same caller handle must be re-evaluated for the new provider, got {other:?}"),
    }
    t.stop().await;
}

/// Hardening #3: resource names are capped before the manifest check, so
/// a guest with no grants cannot make a denial carry megabytes into the
/// log and the bus; repeated denials are coalesced, and every one counted.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_resource_names_and_denial_floods_are_bounded() {
    let probe = probe_manifest("test:probe", &[], &[]);
    let t = TestHost::start(Components::new().with(&probe, artifacts::PROBE.bytes), &[OPERATOR_INVOKES]).await;
    let mut audit = t.host.bus().observe();
    let huge = "k".repeat(1 << 20);
    match t.call("probe", json!({"op": "config.get", "key": huge})).await {
        Err(CallError::Tool { code, message, .. }) => {
            assert_eq!(code, "denied");
            assert!(message.contains("over the host's limit of 512"), "{}", &message[..message.len().min(300)]);
            assert!(message.len() < 1024, "the refusal names a cut resource: {} bytes", message.len());
        }
        other => panic!("{other:?}"),
    }
    for i in 0..500 {
        let _ = t.call("probe", json!({"op": "config.get", "key": format!("k{i}")})).await;
    }
    t.host.flush_audit();
    let events: Vec<serde_json::Value> =
        drain(&mut audit).iter().filter(|e| e.topic == AUDIT_DENIED_TOPIC).filter_map(|e| e.json()).collect();
    let config_reads: Vec<&serde_json::Value> = events.iter().filter(|e| e["action"] == "config.read").collect();
    let counted: u64 = config_reads.iter().filter_map(|e| e["count"].as_u64()).sum();
    // 501 refusals (plus any at load inside the same windows), in a few
    // events: one per coalescing window (1 s) and action.
    assert!(counted >= 501, "every refusal is counted: {counted}");
    assert!(config_reads.len() <= 2 + 501 / 50, "coalesced into few events: {}", config_reads.len());
    for event in &events {
        assert!(event.to_string().len() < 2048, "an audit event stays small: {event}");
    }
    // The host's own books balance: every refusal was reported either as
    // an event of its own (count 1) or inside a summary (`coalesced`).
    let stats = t.host.status().audit;
    let summaries = events.iter().filter(|e| e["count"].as_u64().unwrap_or(0) > 1).count() as u64;
    assert_eq!(stats.undelivered, 0);
    assert_eq!(stats.denials, (stats.events - summaries) + stats.coalesced, "{stats:?}");
    t.stop().await;
}

/// Hardening #4: the host's topics are reserved: no component publishes
/// under `component.`, `policy.`, `audit.` or `bus.`, and no manifest may
/// ask to.
#[tokio::test(flavor = "multi_thread")]
async fn components_cannot_publish_under_the_hosts_topics() {
    let greedy = probe_manifest("test:probe", &[("bus.publish", "*")], &[]);
    let everything = r#"permit(principal, action == Arw::Action::"bus.publish", resource);"#;
    let t =
        TestHost::start(Components::new().with(&greedy, artifacts::PROBE.bytes), &[OPERATOR_INVOKES, everything]).await;
    let mut observer = t.host.bus().observe();
    for topic in ["component.rolled_back", "policy.reloaded", "audit.denied", "bus.gap"] {
        let forged =
            json!({"op": "bus.publish", "topic": topic, "message": {"component": "arw:text-stats", "to": "0.0.1"}});
        match t.call("probe", forged).await {
            Err(CallError::Tool { code, message, .. }) => {
                assert_eq!(code, "denied", "{topic}");
                assert!(message.contains("reserved for the host"), "{message}");
            }
            other => panic!("{topic}: {other:?}"),
        }
    }
    assert!(t.ok("probe", json!({"op": "bus.publish", "topic": "demo.fine", "message": 1})).await["ok"].is_u64());
    let sources: Vec<String> = drain(&mut observer)
        .iter()
        .filter(|e| ["component.", "policy.", "audit.", "bus."].iter().any(|p| e.topic.starts_with(p)))
        .map(|e| e.source.to_string())
        .collect();
    assert!(sources.iter().all(|s| s == "host"), "only the host publishes there: {sources:?}");
    t.stop().await;

    let asks = probe_manifest("test:asks", &[("bus.publish", "component.*")], &[]);
    let asks = arw_host::Manifest::parse(&asks).unwrap_or_else(|e| panic!("{e}"));
    let err = arw_host::capabilities::check_manifest(&asks).unwrap_err();
    assert!(err.contains("reserved for the host"), "{err}");
}
