//! The feedback engine end to end (`docs/feedback.md`): real signals from
//! real calls of a real guest, the real `arw:feedback` component deciding,
//! the host applying under Cedar, rolling back, refusing inside a
//! cooldown, reverting a canary, keeping one suggestion for a signal that
//! oscillates, and surviving applies, rollbacks and ticks racing.

use std::sync::Arc;
use std::time::Duration;

use arw_host::feedback::{Mode, Rejected, RollbackTarget};
use arw_host::signals::{Outcome, Series};
use arw_host::{Host, HostConfig};
use arw_policy::Principal;
use arw_tests::{Components, DEFAULT_POLICIES, artifacts, config, manifests, policies};

/// The slow tool: the probe as `test:slow`, with a 400 ms timeout.
const SLOW: &str = "id = \"test:slow\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n\
                    [limits]\ntimeout-ms = 400\nconcurrency = 8\n\
                    [[capabilities]]\naction = \"config.read\"\nresource = \"tool-name\"\n\
                    [config]\ntool-name = \"slow\"\n";
const SLOW_GRANTS: &str =
    r#"permit(principal == Arw::Component::"test:slow", action == Arw::Action::"config.read", resource);"#;
const TIMEOUT_KNOB: &str = "component.test:slow.timeout-ms";
const SUGGESTION: &str = "raise-timeout:test:slow";

/// A host with the slow tool and the engine; timed ticks far apart (the
/// tests tick by hand unless `tick_ms` says otherwise), the engine's
/// thresholds from `engine`.
async fn start(state: &std::path::Path, engine: &[(&str, &str)], adjust: impl FnOnce(&mut HostConfig)) -> Host {
    let mut config = config(state);
    config.feedback.tick_ms = 5_000;
    config.signals.min_samples = 10;
    let overrides = config.components.entry("arw:feedback".into()).or_default();
    overrides.config.insert("full-samples".into(), "20".into());
    for (key, value) in engine {
        overrides.config.insert(key.to_string(), value.to_string());
    }
    adjust(&mut config);
    let components =
        Components::new().with(SLOW, artifacts::PROBE.bytes).with(manifests::FEEDBACK, artifacts::FEEDBACK.bytes);
    let (host, refused) = Host::start(config, policies(&[DEFAULT_POLICIES, SLOW_GRANTS]), &components)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.is_empty(), "{refused:?}");
    host
}

/// `n` calls of the slow tool sleeping `ms`, 8 at a time.
async fn load(host: &Arc<Host>, n: usize, ms: u64) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let host = host.clone();
        tasks.spawn(async move {
            let operator = host.caller(Principal::local_operator());
            let _ = host.call(&operator, "slow", &format!(r#"{{"op":"sleep","ms":{ms}}}"#)).await;
        });
        while tasks.len() >= 8 {
            tasks.join_next().await;
        }
    }
    while tasks.join_next().await.is_some() {}
}

fn timeout_of(host: &Host, id: &str) -> u64 {
    let info = host.components().into_iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no {id}"));
    info.limits.timeout_ms
}

/// Tick until the engine suggests `id` (bounded).
async fn suggested(host: &Host, id: &str, from_tick: u64) -> arw_host::feedback::Suggestion {
    for n in from_tick..from_tick + 20 {
        host.feedback().tick(n).await;
        if let Some(s) = host.feedback().suggestions().1.into_iter().find(|s| s.id == id) {
            return s;
        }
    }
    panic!("no suggestion `{id}`; state: {:#?}", host.feedback().state());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_tool_gets_a_suggestion_that_applies_rolls_back_and_cools_down() {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let host = Arc::new(start(state.path(), &[("dwell-ticks", "2"), ("cooldown-ms", "0")], |_| {}).await);
    let operator = host.caller(Principal::local_operator());
    let mut events = host.bus().observe();

    // p95 close to the 400 ms timeout.
    load(&host, 24, 350).await;
    let suggestion = suggested(&host, SUGGESTION, 1).await;
    assert_eq!(suggestion.knob, TIMEOUT_KNOB);
    assert_eq!(suggestion.value, 600, "1.5 × 400 ms on the knob's 10 ms grid: {suggestion:?}");
    assert!(
        suggestion.rationale.contains("p95") && suggestion.rationale.contains("400 ms"),
        "{}",
        suggestion.rationale
    );
    assert!(suggestion.confidence > 0.0 && suggestion.confidence <= 1.0, "{suggestion:?}");
    assert!(!suggestion.evidence.is_empty());
    assert!(suggestion.engine.starts_with("arw:feedback@"));

    // Before the apply, a 450 ms call times out.
    let slow_call = r#"{"op":"sleep","ms":450}"#;
    let before = host.call(&operator, "slow", slow_call).await;
    assert!(matches!(before, Err(arw_host::CallError::Timeout { .. })), "{before:?}");

    let record = host.feedback().apply(&operator, SUGGESTION).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((record.before, record.after), (None, Some(600)));
    assert_eq!(record.source, "operator");
    assert_eq!(timeout_of(&host, "test:slow"), 600, "the knob is in force and shown");
    host.call(&operator, "slow", slow_call).await.unwrap_or_else(|e| panic!("the longer timeout holds: {e}"));

    // Still slow against the new timeout: a new suggestion, refused inside
    // the host's cooldown (30 s by default).
    load(&host, 24, 560).await;
    let again = suggested(&host, SUGGESTION, 100).await;
    assert_eq!(again.value, 900);
    let refused = host.feedback().apply(&operator, SUGGESTION);
    assert!(matches!(refused, Err(Rejected::Cooldown { .. })), "{refused:?}");
    assert_eq!(timeout_of(&host, "test:slow"), 600, "a refused apply changes nothing");

    // Rollback restores the value exactly: no applied timeout at all.
    let undone = host.feedback().rollback(&operator, RollbackTarget::ApplyId(record.apply_id));
    let undone = undone.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(undone.len(), 1);
    assert_eq!((undone[0].before, undone[0].after, undone[0].undoes), (Some(600), None, Some(record.apply_id)));
    assert_eq!(timeout_of(&host, "test:slow"), 400);
    let after = host.call(&operator, "slow", slow_call).await;
    assert!(matches!(after, Err(arw_host::CallError::Timeout { .. })), "{after:?}");
    let again = host.feedback().rollback(&operator, RollbackTarget::ApplyId(record.apply_id));
    assert!(matches!(again, Err(Rejected::UnknownApply(_))), "an apply is rolled back once: {again:?}");

    let topics: Vec<String> = arw_tests::drain(&mut events).iter().map(|e| e.topic.clone()).collect();
    for topic in
        ["feedback.suggested", "feedback.delta", "feedback.applied", "feedback.rejected", "feedback.rolled_back"]
    {
        assert!(topics.iter().any(|t| t == topic), "no `{topic}` event in {topics:?}");
    }
    let state = host.feedback().state();
    let versions: Vec<u64> = state.undo.iter().map(|r| r.version).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "versions only increase: {versions:?}");
    host.stop(Duration::from_secs(5)).await;
}

/// Record `n` observations of `latency_ms` for the slow tool, in a fresh
/// quantile window.
async fn feed(host: &Host, n: usize, latency_ms: u64, window_ms: u64) {
    tokio::time::sleep(Duration::from_millis(window_ms + 20)).await;
    for _ in 0..n {
        host.signals().observe(Series::Tool("slow".into()), Duration::from_millis(latency_ms), Outcome::Ok);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_oscillating_around_the_threshold_gives_one_suggestion() {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let window = 100;
    let host = start(state.path(), &[("dwell-ticks", "1")], |c| c.signals.window_ms = window).await;
    // 0.85 and 0.7 of the timeout, in turn: around the enter threshold
    // (0.8), never under the exit one (0.6).
    for (n, ms) in [340, 280, 340, 280, 340, 280, 340, 280].into_iter().enumerate() {
        feed(&host, 30, ms, window).await;
        host.feedback().tick(n as u64 + 1).await;
        let (version, suggestions) = host.feedback().suggestions();
        assert_eq!(suggestions.len(), 1, "tick {n} ({ms} ms): {suggestions:?}");
        assert_eq!(version, 1, "tick {n}: one suggestion, not a stream of versions");
    }
    // Under the exit threshold: withdrawn, a new version.
    feed(&host, 30, 200, window).await;
    host.feedback().tick(100).await;
    let (version, suggestions) = host.feedback().suggestions();
    assert!(suggestions.is_empty() && version == 2, "{version} {suggestions:?}");
    host.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_regresses_is_reverted_with_the_reason() {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let window = 100;
    let engine_may_apply = r#"permit(principal in Arw::Role::"feedback-engine", action == Arw::Action::"feedback.apply", resource)
        when { context has apply && context.apply.source == "engine" && context.apply.confidence >= 10 };"#;
    let mut config = config(state.path());
    config.feedback.tick_ms = 5_000;
    config.feedback.mode = Mode::Canary;
    config.feedback.canary_window_ms = 60_000;
    config.signals.min_samples = 10;
    config.signals.window_ms = window;
    config.components.entry("arw:feedback".into()).or_default().config.insert("dwell-ticks".into(), "1".into());
    let components =
        Components::new().with(SLOW, artifacts::PROBE.bytes).with(manifests::FEEDBACK, artifacts::FEEDBACK.bytes);
    let (host, refused) =
        Host::start(config, policies(&[DEFAULT_POLICIES, SLOW_GRANTS, engine_may_apply]), &components)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.is_empty(), "{refused:?}");
    let mut events = host.bus().observe();

    feed(&host, 30, 340, window).await;
    host.feedback().tick(1).await;
    assert_eq!(timeout_of(&host, "test:slow"), 600, "in canary mode the host applied: {:#?}", host.feedback().state());
    let applied = host.feedback().undo_records();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].source, "engine");
    assert_eq!(applied[0].who, "arw:feedback");

    // The injected regression: p95 three times what it was.
    feed(&host, 30, 1_000, window).await;
    host.feedback().tick(2).await;
    assert_eq!(timeout_of(&host, "test:slow"), 400, "the canary was reverted");
    let records = host.feedback().undo_records();
    assert_eq!(
        records.last().map(|r| (r.source.as_str(), r.undoes)),
        Some(("canary-revert", Some(applied[0].apply_id)))
    );
    let reverted = arw_tests::drain(&mut events)
        .into_iter()
        .filter(|e| e.topic == "feedback.rolled_back")
        .filter_map(|e| e.json())
        .find(|payload| payload["source"] == "canary-revert")
        .unwrap_or_else(|| panic!("no canary-revert event"));
    assert!(reverted["reason"].as_str().is_some_and(|r| r.contains("p95")), "{reverted}");
    host.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn applies_rollbacks_modes_ticks_and_persistence_racing_never_deadlock() {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let window = 50;
    let host = Arc::new(
        start(state.path(), &[("dwell-ticks", "1"), ("cooldown-ms", "0")], |c| {
            c.signals.window_ms = window;
            c.feedback.cooldown_ms = 0;
            c.feedback.apply_budget = 1_000_000;
            c.feedback.persist_ms = 0;
            c.feedback.tick_ms = 100;
        })
        .await,
    );
    let race = async {
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..8u64 {
            let host = host.clone();
            tasks.spawn(async move {
                let operator = host.caller(Principal::local_operator());
                let (mut applied, mut rolled_back) = (0u64, 0u64);
                for i in 0..60u64 {
                    match (worker + i) % 5 {
                        0 => {
                            feed(&host, 20, 340, 0).await;
                            host.feedback().tick(worker * 1000 + i).await;
                        }
                        1 => applied += u64::from(host.feedback().apply(&operator, SUGGESTION).is_ok()),
                        2 => {
                            let version = host.feedback().state().version;
                            let target = RollbackTarget::ToVersion(version.saturating_sub(2));
                            rolled_back += host.feedback().rollback(&operator, target).map_or(0, |u| u.len() as u64);
                        }
                        3 => {
                            let mode = if i % 2 == 0 { Mode::Manual } else { Mode::Auto };
                            let _ = host.feedback().set_mode(&operator, Some(TIMEOUT_KNOB), mode);
                        }
                        _ => {
                            let _ = host.feedback().updates(i);
                            host.feedback().flush();
                        }
                    }
                }
                (applied, rolled_back)
            });
        }
        let mut totals = (0, 0);
        while let Some(result) = tasks.join_next().await {
            let (a, r) = result.unwrap_or_else(|e| panic!("{e}"));
            totals = (totals.0 + a, totals.1 + r);
        }
        totals
    };
    let (applied, rolled_back) = tokio::time::timeout(Duration::from_secs(120), race)
        .await
        .unwrap_or_else(|_| panic!("deadlock: the race did not finish in 120 s"));
    assert!(applied > 0, "the race applied nothing: it tested nothing");
    let records = host.feedback().undo_records();
    let operator_records = records.iter().filter(|r| r.source == "operator").count() as u64;
    let rollback_records = records.iter().filter(|r| r.source == "rollback").count() as u64;
    assert_eq!(rollback_records, rolled_back, "every rollback is one record");
    assert!(operator_records <= applied, "operator applies {operator_records} vs {applied}");
    // The knob's value in force is what the last record says.
    let last = records.iter().rev().find(|r| r.knob == TIMEOUT_KNOB).map(|r| r.after);
    let expected = last.flatten().map_or(400, |v| v as u64);
    assert_eq!(timeout_of(&host, "test:slow"), expected);
    let versions: Vec<u64> = records.iter().map(|r| r.version).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "versions only increase: {versions:?}");
    host.stop(Duration::from_secs(5)).await;
    // What was written is what the host had.
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.path().join("feedback.json")).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(written["undo"].as_array().map(Vec::len), Some(records.len()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_http_api_serves_state_deltas_apply_rollback_and_mode_under_cedar() {
    use arw_tests::http::{ADMIN_TOKEN, TestServer, VIEWER_TOKEN, http_config};
    let components =
        Components::new().with(SLOW, artifacts::PROBE.bytes).with(manifests::FEEDBACK, artifacts::FEEDBACK.bytes);
    let server = TestServer::start_components(components, &[DEFAULT_POLICIES, SLOW_GRANTS], http_config(), |c| {
        c.feedback.tick_ms = 5_000;
        c.signals.min_samples = 10;
        c.components.entry("arw:feedback".into()).or_default().config.insert("dwell-ticks".into(), "1".into());
    })
    .await;
    let admin = Some(ADMIN_TOKEN);
    let state = server.get("/feedback/state", admin).await;
    assert_eq!(state.status(), 200);
    let state: serde_json::Value = state.json().await.unwrap_or_else(|e| panic!("{e}"));
    let knobs: Vec<&str> = state["knobs"].as_array().into_iter().flatten().filter_map(|k| k["name"].as_str()).collect();
    assert!(knobs.contains(&TIMEOUT_KNOB), "{knobs:?}");
    assert_eq!(server.get("/feedback/state", Some(VIEWER_TOKEN)).await.status(), 403, "Cedar: viewers may not read it");
    assert_eq!(server.get("/feedback/updates?since=0", admin).await.status(), 204, "nothing yet");
    let bad = server.get("/feedback/updates", admin).await;
    assert_eq!(bad.status(), 400);
    assert!(arw_tests::http::problem(bad).await["detail"].as_str().is_some_and(|d| d.contains("since=N")));

    // A suggestion, from signals fed to the host.
    for _ in 0..30 {
        server.host.signals().observe(Series::Tool("slow".into()), Duration::from_millis(350), Outcome::Ok);
    }
    server.host.feedback().tick(1).await;
    let updates: serde_json::Value =
        server.get("/feedback/updates?since=0", admin).await.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(updates["reset"], false, "{updates}");
    assert_eq!(updates["deltas"][0]["upserted"][0]["id"], SUGGESTION, "{updates}");
    let version = updates["version"].as_u64().unwrap_or_default();

    let apply = format!(r#"{{"suggestion":"{SUGGESTION}"}}"#);
    assert_eq!(server.post("/feedback/apply", None, &apply).await.status(), 401, "anonymous: a token is needed");
    let denied = server.post("/feedback/apply", Some(VIEWER_TOKEN), &apply).await;
    assert_eq!(denied.status(), 403);
    assert_eq!(arw_tests::http::problem(denied).await["code"], "cedar");
    assert_eq!(timeout_of(&server.host, "test:slow"), 400, "a refused apply changes nothing");
    let applied = server.post("/feedback/apply", admin, &apply).await;
    assert_eq!(applied.status(), 200);
    let record: serde_json::Value = applied.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((record["after"].as_i64(), record["who"].as_str()), (Some(600), Some("ops")));
    let components: serde_json::Value =
        server.get("/components", None).await.json().await.unwrap_or_else(|e| panic!("{e}"));
    let slow =
        components.as_array().into_iter().flatten().find(|c| c["id"] == "test:slow").cloned().unwrap_or_default();
    assert_eq!(slow["limits"]["timeout-ms"], 600, "GET /components shows the applied value: {slow}");

    let rollback = format!(r#"{{"to_version":{version}}}"#);
    let undone: serde_json::Value =
        server.post("/feedback/rollback", admin, &rollback).await.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(undone["undone"][0]["after"], serde_json::Value::Null, "{undone}");
    assert_eq!(timeout_of(&server.host, "test:slow"), 400);
    let both = server.post("/feedback/rollback", admin, r#"{"apply_id":1,"to_version":1}"#).await;
    assert_eq!(both.status(), 400);

    let mode = server
        .client
        .put(server.url("/feedback/mode"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(format!(r#"{{"mode":"shadow","knob":"{TIMEOUT_KNOB}"}}"#))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mode.status(), 200);
    let state = server.host.feedback().state();
    let knob = state.knobs.iter().find(|k| k.knob.name == TIMEOUT_KNOB).map(|k| k.mode);
    assert_eq!(knob, Some(Mode::Shadow));
    // A knob name of the right shape whose component is not loaded: refused,
    // and nothing is kept of it (the modes are persisted).
    let made_up = server.host.feedback().set_mode(
        &server.host.caller(Principal::local_operator()),
        Some("component.no:such.timeout-ms"),
        Mode::Auto,
    );
    assert!(matches!(made_up, Err(Rejected::UnknownKnob(_))), "{made_up:?}");
    let unknown = server
        .client
        .put(server.url("/feedback/mode"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"mode":"auto","knob":"component.no:such.timeout-ms"}"#)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(unknown.status(), 404);
    server.stop().await;
}

/// An engine package: `wasm` as `arw:feedback@version`, its `[config]`
/// over the first-party manifest's.
fn engine(version: &str, wasm: &'static [u8], config: &str) -> arw_host::source::ComponentPackage {
    let text = manifests::FEEDBACK.replacen("version = \"0.1.0\"", &format!("version = \"{version}\""), 1);
    let text = format!("{text}{config}");
    let manifest = arw_host::manifest::Manifest::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    arw_host::source::ComponentPackage {
        manifest,
        wasm: std::borrow::Cow::Borrowed(wasm),
        origin: "test".into(),
        publisher: Some("arw".into()),
    }
}

fn engine_version(host: &Host) -> String {
    host.components().into_iter().find(|c| c.id == "arw:feedback").map(|c| c.version).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_keeps_its_state_across_a_hot_swap_and_a_broken_successor_is_rolled_back() {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let host = Arc::new(start(state.path(), &[("dwell-ticks", "3")], |c| c.swap.probation_calls = 50).await);
    // Under load: tool calls run throughout the swaps.
    let background = {
        let host = host.clone();
        tokio::spawn(async move { load(&host, 400, 350).await })
    };
    for _ in 0..30 {
        host.signals().observe(Series::Tool("slow".into()), Duration::from_millis(350), Outcome::Ok);
    }
    // Two of the three ticks the rule must see before it suggests.
    host.feedback().tick(1).await;
    host.feedback().tick(2).await;
    assert!(host.feedback().suggestions().1.is_empty(), "dwell: not yet");
    host.activate(engine("0.1.1", artifacts::FEEDBACK.bytes, "")).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(engine_version(&host), "0.1.1");
    // The third: the successor took over the history, so it suggests now
    // (a cold one would need three more ticks).
    host.feedback().tick(3).await;
    let (version, suggestions) = host.feedback().suggestions();
    assert_eq!(suggestions.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), [SUGGESTION]);
    assert!(suggestions[0].engine.ends_with("@0.1.1"), "{suggestions:?}");

    // A successor whose evaluate traps: rolled back after its probation
    // faults, and the suggestions (and their version) stay meanwhile.
    host.activate(engine("0.2.0", artifacts::FEEDBACK_PROBE.bytes, "evaluate = \"trap\"\n"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for n in 4..200 {
        host.feedback().tick(n).await;
        assert_eq!(host.feedback().suggestions().0, version, "an engine error keeps the previous list");
        if engine_version(&host) == "0.1.1" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(engine_version(&host), "0.1.1", "the broken successor was rolled back");
    assert!(host.feedback().counters().engine_errors >= 3, "{:?}", host.feedback().counters());
    // The restored version has its history: its suggestion is the same
    // one, at the same version.
    host.feedback().tick(500).await;
    let (after, suggestions) = host.feedback().suggestions();
    assert_eq!((after, suggestions.len()), (version, 1), "{suggestions:?}");
    background.abort();
    host.stop(Duration::from_secs(5)).await;
}

/// A host with the slow tool and the `feedback-probe` guest as its engine
/// (`manifest`: the engine's manifest text), ticking every `tick_ms`.
async fn start_probe_engine(state: &std::path::Path, manifest: &str, tick_ms: u64) -> Host {
    let mut config = config(state);
    config.feedback.tick_ms = tick_ms;
    let components =
        Components::new().with(SLOW, artifacts::PROBE.bytes).with(manifest, artifacts::FEEDBACK_PROBE.bytes);
    let (host, refused) = Host::start(config, policies(&[DEFAULT_POLICIES, SLOW_GRANTS]), &components)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.is_empty(), "{refused:?}");
    host
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestions_that_name_no_knob_or_leave_its_grid_are_dropped_and_counted() {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let junk = format!("{}evaluate = \"junk\"\n", manifests::FEEDBACK);
    let host = start_probe_engine(state.path(), &junk, 5_000).await;
    host.feedback().tick(1).await;
    let (version, suggestions) = host.feedback().suggestions();
    // Of the five, one is sound ("twice", first seen); the others name no
    // knob, leave the grid, repeat an id, or have no id.
    assert_eq!(suggestions.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["twice"], "{suggestions:?}");
    assert_eq!(version, 1);
    assert_eq!(host.feedback().counters().refused_suggestions, 4);
    host.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_that_overruns_is_skipped_and_counted() {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spinning =
        format!("{}evaluate = \"spin\"\n", manifests::FEEDBACK.replace("timeout-ms = 1000", "timeout-ms = 450"));
    let host = start_probe_engine(state.path(), &spinning, 100).await;
    // Each evaluate runs to its 450 ms deadline: four ticks of 100 ms are
    // due meanwhile, and are skipped, not queued.
    arw_tests::eventually("ticks counted as skipped", || host.feedback().counters().ticks_skipped >= 4).await;
    let counters = host.feedback().counters();
    assert!(counters.ticks < counters.ticks_skipped, "{counters:?}");
    host.stop(Duration::from_secs(5)).await;
}

/// The probe engine answering `suggest` (`KNOB=VALUE;...`), as the engine
/// `arw:feedback`.
fn suggesting(pairs: &str) -> String {
    format!("{}evaluate = \"suggest\"\nsuggest = \"{pairs}\"\n", manifests::FEEDBACK)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_queue_knob_holds_for_every_subscriber_and_rolls_back_exactly() {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let host = start(state.path(), &[("dwell-ticks", "1")], |_| {}).await;
    let operator = host.caller(Principal::local_operator());
    // A subscriber made before the apply, that reads nothing.
    let (_, mut queue) = host.bus().subscribe(|topic| topic.starts_with("demo."));
    let publish = |n: usize| {
        for _ in 0..n {
            let _ = host.bus().publish("test", "demo.flood", arw_host::capabilities::bus::Payload::Json("{}".into()));
        }
    };
    publish(3_000);
    assert_eq!(host.bus_stats().dropped, 3_000 - 1_024, "the config's queue of 1024 filled");

    let id = "raise-subscriber-queue:host";
    let suggestion = suggested(&host, id, 1).await;
    assert_eq!((suggestion.knob.as_str(), suggestion.value), ("bus.subscriber-queue", 2_048), "{suggestion:?}");
    assert!(suggestion.rationale.contains("dropped"), "{}", suggestion.rationale);
    let knob = |host: &Host| {
        let state = host.feedback().state();
        let knob = state.knobs.into_iter().find(|k| k.knob.name == "bus.subscriber-queue");
        knob.map(|k| (k.knob.owner, k.knob.value, k.knob.default_value)).unwrap_or_else(|| panic!("no bus knob"))
    };
    assert_eq!(knob(&host), ("host".to_string(), 1_024, 1_024));

    let record = host.feedback().apply(&operator, id).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((record.before, record.after), (None, Some(2_048)));
    assert_eq!(host.bus().subscriber_queue(), 2_048);
    assert_eq!(knob(&host).1, 2_048, "shown in force");
    // The subscriber made before the apply takes 1024 more, exactly.
    publish(3_000);
    assert_eq!(host.bus_stats().dropped, 2 * (3_000 - 1_024), "1024 more were queued, the rest dropped");
    let mut queued = 0;
    while queue.try_recv().is_ok() {
        queued += 1;
    }
    assert_eq!(queued, 2_048);

    let undone = host.feedback().rollback(&operator, RollbackTarget::ApplyId(record.apply_id));
    assert_eq!(undone.unwrap_or_else(|e| panic!("{e}"))[0].after, None);
    assert_eq!(host.bus().subscriber_queue(), 1_024, "the config's depth again");
    publish(1_500);
    assert_eq!(host.bus_stats().dropped, 2 * (3_000 - 1_024) + 1_500 - 1_024);
    host.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_near_the_http_request_timeout_gets_a_suggestion() {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let window = 100;
    let host = start(state.path(), &[("dwell-ticks", "1")], |c| {
        c.signals.window_ms = window;
        c.http.request_timeout_ms = 10_000;
    })
    .await;
    tokio::time::sleep(Duration::from_millis(window + 20)).await;
    for ms in [2_000, 9_000] {
        for _ in 0..30 {
            host.signals().observe(Series::Route("tools:invoke"), Duration::from_millis(ms), Outcome::Ok);
        }
    }
    let suggestion = suggested(&host, "raise-request-timeout:host", 1).await;
    // p99 ~9 s of a 10 s timeout: 1.5 × p99 on the 1 s grid.
    assert_eq!(suggestion.knob, "http.request-timeout-ms");
    assert!((14_000..=15_000).contains(&suggestion.value), "{suggestion:?}");
    assert!(suggestion.rationale.contains("tools:invoke"), "{}", suggestion.rationale);
    host.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_http_knobs_hold_at_the_next_request_and_roll_back() {
    use arw_tests::http::{ADMIN_TOKEN, TestServer, http_config};
    let slower = SLOW.replace("timeout-ms = 400", "timeout-ms = 5000");
    let engine = suggesting("http.request-timeout-ms=4000;http.admin-rate-per-minute=600");
    let components =
        Components::new().with(&slower, artifacts::PROBE.bytes).with(&engine, artifacts::FEEDBACK_PROBE.bytes);
    let mut http = http_config();
    http.request_timeout_ms = 1_000;
    http.admin_rate_per_minute = 1;
    http.admin_burst = 1;
    let server = TestServer::start_components(components, &[DEFAULT_POLICIES, SLOW_GRANTS], http, |c| {
        c.feedback.tick_ms = 5_000;
    })
    .await;
    let admin = Some(ADMIN_TOKEN);
    let slow_call = || server.post("/tools/slow/invoke", admin, r#"{"op":"sleep","ms":1500}"#);
    let timed_out = slow_call().await;
    assert_eq!(timed_out.status(), 503);
    assert_eq!(arw_tests::http::problem(timed_out).await["code"], "request-timeout");
    assert_eq!(server.get("/admin/status", admin).await.status(), 200);
    assert_eq!(server.get("/admin/status", admin).await.status(), 429, "one admin request a minute");

    server.host.feedback().tick(1).await;
    let operator = server.host.caller(Principal::local_operator());
    let mut applied = Vec::new();
    for id in ["probe:http.request-timeout-ms", "probe:http.admin-rate-per-minute"] {
        applied.push(server.host.feedback().apply(&operator, id).unwrap_or_else(|e| panic!("{id}: {e}")));
    }
    // In force at the next request: the server reads the knobs per request.
    assert_eq!(slow_call().await.status(), 200, "a 4 s request timeout");
    assert_eq!(server.get("/admin/status", admin).await.status(), 200, "600 a minute, with a full bucket");

    for record in applied {
        server
            .host
            .feedback()
            .rollback(&operator, RollbackTarget::ApplyId(record.apply_id))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(slow_call().await.status(), 503, "the config's 1 s again");
    let statuses =
        [server.get("/admin/status", admin).await.status(), server.get("/admin/status", admin).await.status()];
    assert_eq!(statuses.map(|s| s.as_u16()), [200, 429], "one a minute again");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_size_knob_drops_idle_instances_and_their_memory() {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pooled = "id = \"test:pooled\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n\
                  [limits]\nmemory-mib = 8\n[pooled]\nsize = 4\nstateless = true\n";
    let engine = suggesting("component.test:pooled.pool-size=1");
    let mut config = config(state.path());
    config.feedback.tick_ms = 5_000;
    let components =
        Components::new().with(pooled, artifacts::PROBE.bytes).with(&engine, artifacts::FEEDBACK_PROBE.bytes);
    let (host, refused) =
        Host::start(config, policies(&[DEFAULT_POLICIES]), &components).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.is_empty(), "{refused:?}");
    let pool = |host: &Host| {
        let status = host.status();
        let c = status.components.into_iter().find(|c| c.id == "test:pooled").unwrap_or_else(|| panic!("no tool"));
        (c.pooled_idle, c.pool_size)
    };
    let memory = |host: &Host| {
        let state = host.feedback().state();
        let gauge = state.gauges.into_iter().find(|g| g.name == "memory.in-use-bytes");
        gauge.map(|g| (g.value, g.limit.unwrap_or_default())).unwrap_or_else(|| panic!("no memory gauge"))
    };
    assert_eq!(pool(&host), (Some(4), Some(4)), "four made ahead");
    // Reported gauges reach the engine beside the host's own.
    host.signals().gauges().set("download.stall-rate", 0.25, Some(1.0)).unwrap_or_else(|e| panic!("{e}"));
    host.feedback().tick(1).await;
    let (before, capped) = memory(&host);
    assert!(before > 0.0 && before <= capped, "memory in use {before} within the live instances' caps {capped}");
    let reported = host.feedback().state().gauges.into_iter().find(|g| g.name == "download.stall-rate");
    assert_eq!(reported.map(|g| g.value), Some(0.25));

    let operator = host.caller(Principal::local_operator());
    let record =
        host.feedback().apply(&operator, "probe:component.test:pooled.pool-size").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((record.before, record.after), (None, Some(1)));
    assert_eq!(pool(&host), (Some(1), Some(1)), "three idle instances dropped at once");
    host.feedback().tick(2).await;
    let (after, capped_after) = memory(&host);
    assert!(after < before && capped_after < capped, "their memory and caps went with them: {before} -> {after}");
    // Each of the three held as much as the one kept.
    assert!((before - after) >= 3.0 * 65_536.0, "{before} -> {after}");

    host.feedback().rollback(&operator, RollbackTarget::ApplyId(record.apply_id)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pool(&host).1, Some(4), "the manifest's size again");
    // Four calls at once leave four idle instances again.
    let host = Arc::new(host);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let host = host.clone();
        calls.spawn(async move {
            let operator = host.caller(Principal::local_operator());
            host.call(&operator, "probe", r#"{"op":"sleep","ms":200}"#).await.map(|_| ())
        });
    }
    while let Some(done) = calls.join_next().await {
        done.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(pool(&host), (Some(4), Some(4)));
    let Ok(host) = Arc::try_unwrap(host) else { panic!("the host is still shared") };
    host.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_budget_is_a_knob_applied_at_the_next_check_and_rolled_back() {
    use arw_host::gating::{GateCaller, GateDenied, GateRequest};
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let contracts = state.path().join("gating.toml");
    std::fs::write(
        &contracts,
        "[[contract]]\nid = \"three\"\npatterns = [\"tools:invoke\"]\n\
         budget = { limit = 3, window = \"1h\", kind = \"fixed\", per = \"caller\" }\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut config = config(state.path());
    config.feedback.tick_ms = 5_000;
    config.gating.gates = vec!["arw:gating".into()];
    config.gating.timeout_ms = 5_000;
    config.gating.files.insert("arw:gating".into(), contracts);
    let knob = "quota.gating.three.limit";
    let engine = suggesting(&format!("{knob}=5"));
    let components = Components::new()
        .with(manifests::GATING, artifacts::GATING.bytes)
        .with(&engine, artifacts::FEEDBACK_PROBE.bytes);
    let (host, refused) =
        Host::start(config, policies(&[DEFAULT_POLICIES]), &components).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.is_empty(), "{refused:?}");
    let ops = Arc::new(GateCaller { name: "ops".into(), roles: vec![], tags: vec![], authenticated: true });
    let request = GateRequest::new("tools:invoke", ops);
    let ask = || host.gate(&request);
    let allowed = |n: usize| async move {
        for i in 0..n {
            assert_eq!(ask().await, Ok(()), "check {} of {n}", i + 1);
        }
        let over = ask().await;
        assert!(matches!(&over, Err(GateDenied::Denied { contract, .. }) if contract == "three"), "{over:?}");
    };
    allowed(3).await;
    let shown = |host: &Host| {
        let state = host.feedback().state();
        let k = state.knobs.into_iter().find(|k| k.knob.name == knob).unwrap_or_else(|| panic!("no knob {knob}"));
        (k.knob.value, k.knob.default_value)
    };
    assert_eq!(shown(&host), (3, 3), "the budget counted is a knob, at the gate's own limit");

    host.feedback().tick(1).await;
    let operator = host.caller(Principal::local_operator());
    let record = host.feedback().apply(&operator, &format!("probe:{knob}")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((record.before, record.after), (None, Some(5)));
    assert_eq!(shown(&host), (5, 3));
    // Five in the window now: two more.
    allowed(2).await;

    host.feedback().rollback(&operator, RollbackTarget::ApplyId(record.apply_id)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shown(&host), (3, 3));
    let over = ask().await;
    assert!(matches!(over, Err(GateDenied::Denied { .. })), "the gate's 3 again: {over:?}");
    host.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_apply_cedar_refuses_is_not_asked_again_every_tick() {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = config(state.path());
    config.feedback.tick_ms = 5_000;
    config.feedback.mode = Mode::Auto;
    let engine = suggesting(&format!("{TIMEOUT_KNOB}=600"));
    let components =
        Components::new().with(SLOW, artifacts::PROBE.bytes).with(&engine, artifacts::FEEDBACK_PROBE.bytes);
    // Nothing lets the engine apply (fail closed): Cedar refuses it.
    let (host, refused) = Host::start(config, policies(&[DEFAULT_POLICIES, SLOW_GRANTS]), &components)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.is_empty(), "{refused:?}");
    let mut events = host.bus().observe();
    let denials = |host: &Host| host.status().audit.denials;
    let before = denials(&host);
    for n in 1..=5 {
        host.feedback().tick(n).await;
    }
    assert_eq!(timeout_of(&host, "test:slow"), 400, "refused: nothing applied");
    assert_eq!(denials(&host) - before, 1, "Cedar was asked once in five ticks, not once a tick");
    let rejected: Vec<_> =
        arw_tests::drain(&mut events).into_iter().filter(|e| e.topic == "feedback.rejected").collect();
    assert_eq!(rejected.len(), 1, "reported once: {rejected:?}");
    assert_eq!(rejected[0].json().map(|p| p["reason"].clone()), Some(serde_json::json!("cedar")));
    host.stop(Duration::from_secs(5)).await;
}
