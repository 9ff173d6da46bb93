//! The resident lifecycle (issue 11 #2, #6): one long-lived instance per
//! version that ticks, handles its mailbox, keeps state in memory, hands it
//! to its successor at a hot swap, and is contained like any entry.
//!
//! `arw:heartbeat` is the first-party resident component; `resident-probe`
//! misbehaves on request (its `[config]`).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use arw_host::capabilities::bus::{Event, Payload};
use arw_host::source::ComponentPackage;
use arw_host::supervisor::ControlEvent;
use arw_host::{Host, HostConfig, Manifest};
use arw_tests::{Packages, artifacts, manifests};
use serde_json::Value;
use tokio::sync::broadcast;

/// Lets every component publish, subscribe and read its config, and the
/// operator call tools.
const GRANTS: &str = r#"
permit (
    principal is Arw::Component,
    action in [Arw::Action::"bus.publish", Arw::Action::"bus.subscribe", Arw::Action::"config.read"],
    resource
);
permit (principal in Arw::Role::"operator", action == Arw::Action::"tool.invoke", resource);
"#;

/// The heartbeat's manifest at `version`, ticking every `tick_ms`.
fn heartbeat(version: &str, tick_ms: u64) -> ComponentPackage {
    let text = manifests::HEARTBEAT
        .replace("version = \"0.1.0\"", &format!("version = \"{version}\""))
        .replace("tick-ms = 1000", &format!("tick-ms = {tick_ms}"));
    package(&text, artifacts::HEARTBEAT.bytes)
}

/// A `resident-probe` manifest: `id`, `version`, its `[config]`.
fn probe_text(id: &str, version: &str, tick_ms: u64, timeout_ms: u64, config: &[(&str, &str)]) -> String {
    let mut text = format!(
        "id = {id:?}\nversion = {version:?}\nworlds = [\"resident\"]\n\n[resident]\ntick-ms = {tick_ms}\n\n\
         [limits]\nmemory-mib = 16\ntimeout-ms = {timeout_ms}\n\n\
         [[capabilities]]\naction = \"bus.publish\"\nresource = \"*\"\n\n\
         [[capabilities]]\naction = \"config.read\"\nresource = \"*\"\n\n[config]\n"
    );
    for (key, value) in config {
        text.push_str(&format!("{key} = {value:?}\n"));
    }
    text
}

fn probe(version: &str, config: &[(&str, &str)]) -> ComponentPackage {
    package(&probe_text("test:resident", version, 20, 1000, config), artifacts::RESIDENT_PROBE.bytes)
}

fn package(manifest: &str, wasm: &'static [u8]) -> ComponentPackage {
    let manifest = Manifest::parse(manifest).unwrap_or_else(|e| panic!("{e}\n{manifest}"));
    let publisher = Some(manifest.id.namespace().to_string());
    ComponentPackage { manifest, wasm: Cow::Borrowed(wasm), origin: "test".into(), publisher }
}

async fn start(packages: Vec<ComponentPackage>, tweak: impl FnOnce(&mut HostConfig)) -> (Host, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = arw_tests::config(state.path());
    config.resident.min_tick_ms = 10;
    config.bus.subscriber_queue = 4096;
    tweak(&mut config);
    let (host, refused) = Host::start(config, arw_tests::policies(&[GRANTS]), &Packages(packages))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.is_empty(), "{refused:?}");
    (host, state)
}

/// One record a resident guest published.
#[derive(Debug, Clone)]
struct Record {
    body: Value,
}

impl Record {
    fn instance(&self) -> &str {
        self.body["instance"].as_str().unwrap_or_default()
    }
    fn beat(&self) -> u64 {
        self.body["beat"].as_u64().unwrap_or_else(|| panic!("no beat in {}", self.body))
    }
}

/// Collects what guests publish on one topic.
struct Watch {
    observer: broadcast::Receiver<Arc<Event>>,
    topic: &'static str,
    seen: Vec<Record>,
}

impl Watch {
    fn new(host: &Host, topic: &'static str) -> Self {
        Watch { observer: host.bus().observe(), topic, seen: Vec::new() }
    }

    /// Wait (at most 10 s) until `done` holds for what was seen.
    async fn until(&mut self, what: &str, mut done: impl FnMut(&[Record]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done(&self.seen) {
            let event = tokio::time::timeout_at(deadline, self.observer.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}; saw {:?}", self.seen.last()))
                .unwrap_or_else(|e| panic!("observer: {e}"));
            if event.topic == self.topic {
                let body = event.json().unwrap_or_else(|| panic!("not JSON: {event:?}"));
                self.seen.push(Record { body });
            }
        }
    }

    fn ticks(&self) -> Vec<&Record> {
        self.seen.iter().filter(|r| r.body.get("answering").is_none()).collect()
    }
}

/// Issue 11: in-memory state survives 20 hot swaps under a stream of ticks
/// and mailbox messages: every ping is answered exactly once, by exactly
/// one instance, the message count goes 1, 2, ... N without a gap or a
/// repeat, and the beat strictly increases across all 21 versions.
#[tokio::test(flavor = "multi_thread")]
async fn state_survives_twenty_hot_swaps_under_ticks_and_messages() {
    let (host, _state) = start(vec![heartbeat("1.0.0", 10)], |_| {}).await;
    let mut watch = Watch::new(&host, "host.heartbeat");
    watch.until("the first beat", |seen| !seen.is_empty()).await;

    // Pings published as fast as the bus takes them, from another task.
    let bus = host.bus().clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pinger = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut sent = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id =
                    bus.publish("test", "heartbeat.ping", Payload::Json("{}".into())).unwrap_or_else(|e| panic!("{e}"));
                sent.push(id);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            sent
        })
    };
    for n in 1..=20 {
        let version = format!("1.0.{n}");
        host.activate(heartbeat(&version, 10)).await.unwrap_or_else(|e| panic!("{e}"));
        // The new version ticks before the next swap.
        let before: BTreeSet<String> = watch.seen.iter().map(|r| r.instance().to_string()).collect();
        watch
            .until(&format!("a beat of {version}"), |seen| {
                seen.iter().any(|r| r.body.get("answering").is_none() && !before.contains(r.instance()))
            })
            .await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = pinger.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(sent.len() >= 20, "only {} pings were sent", sent.len());
    let last = sent.len() as u64;
    watch.until("every ping answered", |seen| seen.iter().any(|r| r.body["messages"] == last)).await;

    let answers: Vec<&Record> = watch.seen.iter().filter(|r| r.body.get("answering").is_some()).collect();
    let answered: Vec<u64> = answers.iter().map(|r| r.body["answering"].as_u64().unwrap_or_default()).collect();
    assert_eq!(answered, sent, "every ping answered once, in order");
    let counts: Vec<u64> = answers.iter().map(|r| r.body["messages"].as_u64().unwrap_or_default()).collect();
    assert_eq!(counts, (1..=last).collect::<Vec<_>>(), "no message lost or counted twice across versions");

    let beats: Vec<u64> = watch.ticks().iter().map(|r| r.beat()).collect();
    assert!(beats.windows(2).all(|w| w[0] < w[1]), "the beat went back: {beats:?}");
    // One instance per version, each one's records in one run: no record
    // of an old instance after its successor's first.
    let mut runs: Vec<&str> = Vec::new();
    for record in &watch.seen {
        if runs.last() != Some(&record.instance()) {
            runs.push(record.instance());
        }
    }
    let distinct: BTreeSet<&str> = runs.iter().copied().collect();
    assert_eq!(distinct.len(), 21, "21 versions, 21 instances: {runs:?}");
    assert_eq!(runs.len(), 21, "an instance came back after its successor started: {runs:?}");
    let status = host.resident_status("arw:heartbeat").unwrap_or_else(|| panic!("no resident status"));
    assert_eq!(status.faults, 0, "{status:?}");
    assert_eq!(status.cold_hand_overs, 0, "{status:?}");
    host.shutdown(Duration::from_secs(5)).await;
}

/// A successor that cannot take the state (its `restore` refuses it)
/// starts cold: the swap goes ahead, counted, and its beat starts over.
#[tokio::test(flavor = "multi_thread")]
async fn a_successor_that_cannot_restore_starts_cold() {
    let (host, _state) = start(vec![probe("1.0.0", &[])], |_| {}).await;
    let mut watch = Watch::new(&host, "probe.tick");
    watch.until("three beats", |seen| seen.iter().any(|r| r.beat() >= 3)).await;
    host.activate(probe("2.0.0", &[("restore", "refuse")])).await.unwrap_or_else(|e| panic!("{e}"));
    let old = watch.seen[0].instance().to_string();
    watch.until("a beat of the new version", |seen| seen.iter().any(|r| r.instance() != old)).await;
    let first_new = watch.seen.iter().find(|r| r.instance() != old).map(Record::beat);
    assert_eq!(first_new, Some(1), "the new version started cold: {:?}", watch.seen);
    assert_eq!(host.active_version("test:resident").map(|v| v.0).as_deref(), Some("2.0.0"));
    let status = host.resident_status("test:resident").unwrap_or_else(|| panic!("no resident status"));
    assert_eq!(status.cold_hand_overs, 1, "{status:?}");
    host.shutdown(Duration::from_secs(5)).await;
}

/// A snapshot over `resident.max-snapshot-kib` refuses the swap: the old
/// version stays active, and its instance (the same one) ticks on with its
/// state.
#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_over_the_cap_refuses_the_swap() {
    let (host, _state) = start(vec![probe("1.0.0", &[("snapshot", "pad:2048")])], |c| {
        c.resident.max_snapshot_kib = 1;
    })
    .await;
    let mut watch = Watch::new(&host, "probe.tick");
    watch.until("two beats", |seen| seen.iter().any(|r| r.beat() >= 2)).await;
    let err = host.activate(probe("2.0.0", &[])).await.expect_err("the swap must be refused");
    assert_eq!(err.stage, "hand-over", "{err}");
    assert!(err.reason.contains("2056 bytes") && err.reason.contains("resident.max-snapshot-kib = 1"), "{err}");
    assert_eq!(host.active_version("test:resident").map(|v| v.0).as_deref(), Some("1.0.0"));
    let instance = watch.seen[0].instance().to_string();
    let beat = watch.seen.last().map(Record::beat).unwrap_or_default();
    watch.until("more beats", |seen| seen.last().is_some_and(|r| r.beat() >= beat + 2)).await;
    assert!(watch.seen.iter().all(|r| r.instance() == instance), "the old instance kept running: {:?}", watch.seen);
    let beats: Vec<u64> = watch.seen.iter().map(Record::beat).collect();
    assert!(beats.windows(2).all(|w| w[0] < w[1]), "{beats:?}");
    let refusal = host.refusals().into_iter().find(|r| r.component == "test:resident");
    assert_eq!(refusal.map(|r| r.stage).as_deref(), Some("hand-over"));
    host.shutdown(Duration::from_secs(5)).await;
}

/// A resident guest looping forever in `tick` is interrupted at its
/// deadline each time (the instance ends and the next tick starts it
/// again), and the host serves calls meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn a_resident_guest_spinning_in_tick_is_interrupted_and_the_host_serves_on() {
    let spinner =
        package(&probe_text("test:resident", "1.0.0", 20, 100, &[("tick", "spin")]), artifacts::RESIDENT_PROBE.bytes);
    let stats = package(manifests::TEXT_STATS, artifacts::TEXT_STATS.bytes);
    let (host, _state) = start(vec![spinner, stats], |_| {}).await;
    let operator = host.caller(arw_policy::Principal::local_operator());
    let mut calls = 0;
    for _ in 0..1000 {
        let out = host.call(&operator, "text-stats", r#"{"text":"a b"}"#).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out["words"], 2);
        calls += 1;
        let status = host.resident_status("test:resident").unwrap_or_default();
        if status.faults >= 3 {
            assert!(status.starts >= 3, "restarted after each fault: {status:?}");
            let fault = status.last_fault.clone().unwrap_or_default();
            assert!(fault.contains("100 ms"), "a deadline: {fault}");
            assert_eq!(status.ticks, 0, "no tick returned: {status:?}");
            host.shutdown(Duration::from_secs(5)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("three interrupted ticks never came in {calls} calls");
}

/// A resident guest that grows its memory in `tick` is stopped at its cap.
#[tokio::test(flavor = "multi_thread")]
async fn a_resident_guest_growing_memory_is_stopped_at_its_cap() {
    let (host, _state) = start(vec![probe("1.0.0", &[("tick", "grow")])], |_| {}).await;
    let mut status = Default::default();
    for _ in 0..1000 {
        status = host.resident_status("test:resident").unwrap_or_default();
        if status.faults >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(status.faults >= 2, "{status:?}");
    let fault = status.last_fault.clone().unwrap_or_default();
    assert!(fault.contains("16 MiB"), "the memory cap: {fault}");
    host.shutdown(Duration::from_secs(5)).await;
}

/// Issue 11 #6: a broken successor of the heartbeat that traps in `tick`
/// is rolled back automatically after `swap.rollback-after-faults` traps,
/// and the restored version carries on from the state it handed over.
#[tokio::test(flavor = "multi_thread")]
async fn a_successor_trapping_in_tick_is_rolled_back_and_the_beat_carries_on() {
    let (host, _state) = start(vec![heartbeat("1.0.0", 10)], |_| {}).await;
    let mut control = host.control();
    let mut watch = Watch::new(&host, "host.heartbeat");
    watch.until("three beats", |seen| seen.iter().any(|r| r.beat() >= 3)).await;

    let broken = probe_text("arw:heartbeat", "2.0.0", 10, 1000, &[("tick", "trap")]);
    host.activate(package(&broken, artifacts::RESIDENT_PROBE.bytes)).await.unwrap_or_else(|e| panic!("{e}"));
    let rolled_back = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match control.recv().await {
                Ok(ControlEvent::RolledBack { from, version, .. }) => return (from, version),
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no rollback"));
    assert_eq!(rolled_back, ("2.0.0".to_string(), "1.0.0".to_string()));
    assert_eq!(host.active_version("arw:heartbeat").map(|v| v.0).as_deref(), Some("1.0.0"));

    let before = watch.seen.iter().map(Record::beat).max().unwrap_or_default();
    let old: BTreeSet<String> = watch.seen.iter().map(|r| r.instance().to_string()).collect();
    watch.until("a beat after the rollback", |seen| seen.iter().any(|r| !old.contains(r.instance()))).await;
    let after: Vec<u64> = watch.seen.iter().filter(|r| !old.contains(r.instance())).map(Record::beat).collect();
    assert!(after.iter().all(|b| *b > before), "the beat carried on from {before}: {after:?}");
    let status = host.resident_status("arw:heartbeat").unwrap_or_default();
    assert!(status.faults >= 3, "{status:?}");
    host.shutdown(Duration::from_secs(5)).await;
}

/// The manifest's `[resident]` is checked against the host's bounds, and
/// a resident world stands alone.
#[tokio::test(flavor = "multi_thread")]
async fn resident_manifests_are_checked() {
    let too_fast = package(&probe_text("test:fast", "1.0.0", 5, 1000, &[]), artifacts::RESIDENT_PROBE.bytes);
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (host, refused) =
        Host::start(arw_tests::config(state.path()), arw_tests::policies(&[GRANTS]), &Packages(vec![too_fast]))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    let message = refused.first().map(ToString::to_string).unwrap_or_default();
    assert!(message.contains("resident.tick-ms = 5 is under the host's resident.min-tick-ms = 50"), "{message}");
    host.shutdown(Duration::from_secs(1)).await;

    let mixed = probe_text("test:mixed", "1.0.0", 20, 1000, &[]).replace("[\"resident\"]", "[\"resident\", \"tool\"]");
    let check = |text: &str| arw_host::check_manifest(&Manifest::parse(text).unwrap_or_else(|e| panic!("{e}")));
    let err = check(&mixed).expect_err("resident with tool");
    assert!(err.contains("cannot be combined"), "{err}");
    let stray = manifests::TEXT_STATS.to_string() + "\n[resident]\ntick-ms = 100\n";
    let err = check(&stray).expect_err("[resident] without the world");
    assert!(err.contains("names no long-lived role"), "{err}");
    let err = check(&probe_text("test:zero", "1.0.0", 0, 1000, &[])).expect_err("a zero tick");
    assert!(err.contains("greater than zero"), "{err}");
}

/// A resident guest that traps at every tick does not spin the host: the
/// driver backs off between restarts (100 ms, doubling), so over a second
/// of 10 ms ticks it restarts a handful of times, not a hundred.
#[tokio::test(flavor = "multi_thread")]
async fn a_resident_guest_that_keeps_trapping_is_restarted_with_a_back_off() {
    let trapping =
        package(&probe_text("test:resident", "1.0.0", 10, 1000, &[("tick", "trap")]), artifacts::RESIDENT_PROBE.bytes);
    let (host, _state) = start(vec![trapping], |_| {}).await;
    let mut status = Default::default();
    for _ in 0..1000 {
        status = host.resident_status("test:resident").unwrap_or_default();
        if status.faults >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(status.faults >= 2, "it trapped and was restarted: {status:?}");
    let faults = status.faults;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = host.resident_status("test:resident").unwrap_or_default();
    // 100 ticks fell due; the back-off (at least 200 + 400 ms from here)
    // allows at most 3 more restarts in the second.
    assert!(after.faults - faults <= 3, "restarted {} times in a second: {after:?}", after.faults - faults);
    host.shutdown(Duration::from_secs(5)).await;
}
