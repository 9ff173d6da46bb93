//! Calls between components (issue 11 #4): a component calls another's
//! tool through `arw:host/tools`, as itself (its manifest and Cedar), the
//! callee with its own grants only, within the caller's deadline, and never
//! deeper than `tools.max-depth`.

use arw_host::capabilities::bus::Event;
use arw_tests::{Components, TestHost, artifacts, manifests, probe_manifest};
use serde_json::{Value, json};

const POLICIES: &str = r#"
permit (principal in Arw::Role::"operator", action == Arw::Action::"tool.invoke", resource);
permit (principal is Arw::Component, action == Arw::Action::"config.read", resource);
// a and b may call tools; c may not (it requests it anyway).
permit (
    principal,
    action == Arw::Action::"tool.invoke",
    resource
) when { principal == Arw::Component::"test:a" || principal == Arw::Component::"test:b" };
// Nobody reaches c through another component (Cedar sees the chain).
forbid (principal, action == Arw::Action::"tool.invoke", resource == Arw::Tool::"c")
when { context.depth > 1 };
// Each probe's own kv namespace.
permit (
    principal == Arw::Component::"test:a",
    action in [Arw::Action::"kv.read", Arw::Action::"kv.write"],
    resource == Arw::KvNamespace::"a"
);
permit (
    principal == Arw::Component::"test:b",
    action in [Arw::Action::"kv.read", Arw::Action::"kv.write"],
    resource == Arw::KvNamespace::"b"
);
"#;

/// A probe `test:<name>` whose tool is `<name>`, calling the tools `calls`
/// and using kv namespace `<name>`, with `timeout_ms`.
fn probe(name: &str, calls: &str, timeout_ms: u64) -> String {
    let id = format!("test:{name}");
    let text = probe_manifest(
        &id,
        &[("config.read", "*"), ("tool.invoke", calls), ("kv.read", "*"), ("kv.write", "*")],
        &[("tool-name", name)],
    );
    text.replacen("worlds = [\"tool\"]\n", &format!("worlds = [\"tool\"]\n[limits]\ntimeout-ms = {timeout_ms}\n"), 1)
}

async fn host() -> TestHost {
    let components = Components::new()
        .with(&probe("a", "*", 1000), artifacts::PROBE.bytes)
        .with(&probe("b", "*", 5000), artifacts::PROBE.bytes)
        .with(&probe("c", "*", 1000), artifacts::PROBE.bytes)
        .with(&probe("d", "text-stats", 1000), artifacts::PROBE.bytes)
        .with(manifests::TEXT_STATS, artifacts::TEXT_STATS.bytes);
    let t = TestHost::start(components, &[POLICIES]).await;
    assert!(t.refused.is_empty(), "{:?}", t.refused);
    t
}

/// `{"op": "tools.invoke", ...}` for the probe: call `tool` with `input`.
fn invoke(tool: &str, input: Value) -> Value {
    json!({"op": "tools.invoke", "tool": tool, "input": input})
}

/// The error of a call that must fail: (code, message).
async fn fails(t: &TestHost, tool: &str, input: Value) -> (String, String) {
    match t.call(tool, input.clone()).await {
        Ok(out) => panic!("{tool}({input}) answered {out}"),
        Err(e) => (e.code().into_owned(), e.to_string()),
    }
}

fn tool_called(events: &[std::sync::Arc<Event>]) -> Vec<Value> {
    events.iter().filter(|e| e.topic == "component.tool_called").filter_map(|e| e.json()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_granted_call_works_and_is_visible_with_its_chain() {
    let t = host().await;
    let mut observer = t.host.bus().observe();
    let out = t.ok("a", invoke("text-stats", json!({"text": "one two three"}))).await;
    assert_eq!(out, json!({"ok": {"chars": 13, "words": 3, "lines": 1}}));
    // Through two components: a → b → text-stats.
    let out = t.ok("a", invoke("b", invoke("text-stats", json!({"text": "x"})))).await;
    assert_eq!(out, json!({"ok": {"ok": {"chars": 1, "words": 1, "lines": 1}}}));

    let calls = t.host.status().component_calls;
    assert_eq!((calls.ok, calls.failed, calls.refused), (3, 0, 0), "{calls:?}");
    let mut called = Vec::new();
    arw_tests::eventually("three tool_called events", || {
        called.extend(tool_called(&arw_tests::drain(&mut observer)));
        called.len() >= 3
    })
    .await;
    assert_eq!(called.len(), 3, "{called:?}");
    assert_eq!(called[0]["chain"], json!(["test:a"]));
    assert_eq!(called[0]["component"], "arw:text-stats");
    // The inner call ends first: a → b → text-stats, then a → b.
    assert_eq!(called[1]["chain"], json!(["test:a", "test:b"]));
    assert_eq!(called[1]["caller"], "test:b");
    assert_eq!(called[2]["chain"], json!(["test:a"]));
    assert_eq!(called[2]["tool"], "b");
    assert!(called.iter().all(|c| c["outcome"] == "ok"), "{called:?}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ungranted_call_is_denied_with_the_typed_error() {
    let t = host().await;
    // Requested in the manifest, but no policy permits c.
    let (code, message) = fails(&t, "c", invoke("text-stats", json!({"text": "x"}))).await;
    assert_eq!(code, "tool:denied", "{message}");
    assert!(message.contains("`Arw::Component::\"test:c\"` may not `tool.invoke` on `text-stats`"), "{message}");
    // Permitted by no manifest request: d requests only text-stats.
    let (code, message) = fails(&t, "d", invoke("a", json!({"op": "echo", "value": 1}))).await;
    assert_eq!(code, "tool:denied", "{message}");
    assert!(message.contains("not requested in its manifest"), "{message}");
    // An unknown tool, and input that breaks the callee's schema.
    let (code, message) = fails(&t, "a", invoke("nope", json!({}))).await;
    assert_eq!(code, "tool:unknown-tool", "{message}");
    let (code, message) = fails(&t, "a", invoke("text-stats", json!({"txt": 1}))).await;
    assert_eq!(code, "tool:invalid-input", "{message}");
    // A policy on the chain: a may call c directly, not through b.
    assert_eq!(t.ok("a", invoke("c", json!({"op": "echo", "value": 1}))).await, json!({"ok": {"ok": 1}}));
    let (code, message) = fails(&t, "a", invoke("b", invoke("c", json!({"op": "echo", "value": 1})))).await;
    assert_eq!(code, "tool:failed", "{message}");
    assert!(
        message.contains("tool:denied")
            && message.contains("`Arw::Component::\"test:b\"` may not `tool.invoke` on `c`"),
        "{message}"
    );
    assert_eq!(t.host.status().component_calls.refused, 5);
    t.stop().await;
}

/// The callee's grants apply to the callee alone: b may write its own
/// namespace when a asks it to, and may not write a's, though a may.
#[tokio::test(flavor = "multi_thread")]
async fn the_callee_runs_with_its_own_grants_only() {
    let t = host().await;
    let set = |namespace: &str| json!({"op": "kv.set", "namespace": namespace, "key": "k", "value": "v"});
    assert_eq!(t.ok("a", set("a")).await, json!({"ok": null}), "a writes its own namespace");
    assert_eq!(t.ok("a", invoke("b", set("b"))).await, json!({"ok": {"ok": null}}), "b writes its own");
    let (code, message) = fails(&t, "a", invoke("b", set("a"))).await;
    assert_eq!(code, "tool:failed", "{message}");
    assert!(message.contains("tool:denied") && message.contains("test:b"), "b may not write a's: {message}");
    t.stop().await;
}

/// A cycle A → B → A → ... is refused at `tools.max-depth` (4): a callee
/// may have at most 4 components above it.
#[tokio::test(flavor = "multi_thread")]
async fn a_cycle_is_refused_at_the_depth_limit() {
    let t = host().await;
    // `n` nested calls alternating b, a, b, ..., ending in an echo.
    let nested = |n: usize| {
        let mut input = json!({"op": "echo", "value": "bottom"});
        for i in (0..n).rev() {
            input = invoke(if i % 2 == 0 { "b" } else { "a" }, input);
        }
        input
    };
    // a → b → a → b → a: the last callee has 4 above it.
    let mut out = t.ok("a", nested(4)).await;
    for _ in 0..4 {
        out = out["ok"].clone();
    }
    assert_eq!(out, json!({"ok": "bottom"}));
    // One more is refused before it runs; the refusal travels back out.
    let (code, message) = fails(&t, "a", nested(5)).await;
    assert_eq!(code, "tool:failed", "{message}");
    assert!(message.contains("too-deep") && message.contains("tools.max-depth = 4"), "{message}");
    assert!(message.contains("test:a → test:b → test:a → test:b"), "the chain is named: {message}");
    t.stop().await;
}

/// The callee's deadline is what remains of the caller's: b would sleep
/// 3 s within its own 5 s limit, but a has 1 s, so b is stopped and a gets
/// b's timeout as a value (had b run on, a itself would have timed out).
#[tokio::test(flavor = "multi_thread")]
async fn the_callee_cannot_outlive_the_callers_deadline() {
    let t = host().await;
    let (code, message) = fails(&t, "a", invoke("b", json!({"op": "sleep", "ms": 3000}))).await;
    assert_eq!(code, "tool:failed", "a returned b's failure, so a was still running: {message}");
    assert!(message.contains("timeout"), "{message}");
    assert!(message.contains("stopped at its caller's deadline: `test:a` left it"), "{message}");
    assert!(message.contains("its own limits.timeout-ms is 5000 ms"), "{message}");
    let calls = t.host.status().component_calls;
    assert_eq!(calls.failed, 1, "{calls:?}");
    // b on its own has its full 5 s.
    let out = t.ok("b", json!({"op": "sleep", "ms": 1200})).await;
    assert_eq!(out, json!({"ok": null}));
    t.stop().await;
}
