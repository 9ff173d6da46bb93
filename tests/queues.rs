//! Work queues on the default backend, `arw:queue-local` (a real
//! component on the host's kv), run by the host's workers: priority then
//! FIFO and `idem-key` uniqueness under concurrent pushes, retries after
//! their delay (the backend's own timestamps, no sleeps as assertions),
//! the dead-letter queue with the last error, Cedar deciding again when a
//! task runs, and forged tasks in the backend's storage never run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arw_artifacts as artifacts;
use arw_host::queues::{NewTask, QueueError};
use arw_host::{Caller, Host, HostConfig};
use arw_policy::Principal;
use arw_tests::{Components, config, manifests, policies, probe_manifest};
use serde_json::{Value, json};

/// The backend keeps its namespace; the probe counts runs in `runs` (and,
/// in the forgery test, writes where the backend keeps its tasks); the
/// operator may call, enqueue and read.
const POLICY: &str = r#"
    permit(principal == Arw::Component::"arw:queue-local", action in [Arw::Action::"kv.read", Arw::Action::"kv.write", Arw::Action::"config.read"], resource);
    permit(principal == Arw::Component::"test:probe", action in [Arw::Action::"kv.read", Arw::Action::"kv.write"], resource);
    permit(principal == Arw::Component::"test:probe", action in [Arw::Action::"queue.enqueue", Arw::Action::"tool.invoke"], resource);
    permit(principal in Arw::Role::"operator", action in [Arw::Action::"tool.invoke", Arw::Action::"queue.enqueue", Arw::Action::"queue.read"], resource);
"#;

fn components() -> Components {
    let probe = probe_manifest(
        "test:probe",
        &[("kv.read", "*"), ("kv.write", "*"), ("queue.enqueue", "*"), ("tool.invoke", "*")],
        &[],
    );
    Components::new().with(&probe, artifacts::PROBE.bytes).with(manifests::QUEUE_LOCAL, artifacts::QUEUE_LOCAL.bytes)
}

async fn host(state: &std::path::Path, tune: impl FnOnce(&mut HostConfig), policy: &str) -> Arc<Host> {
    let mut config = config(state);
    config.queues.serve = vec!["q".into()];
    config.queues.poll_ms = 50;
    config.queues.retry_base_ms = 200;
    tune(&mut config);
    let (host, refused) = Host::start(config, policies(&[policy]), &components()).await.unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    Arc::new(host)
}

fn task(input: Value) -> NewTask {
    NewTask { tool: "probe".into(), input: input.to_string(), ..NewTask::default() }
}

fn count(key: &str, fail_below: u64) -> Value {
    json!({"op": "count", "namespace": "runs", "key": key, "fail-below": fail_below})
}

/// The payloads of the events on `topic` seen so far.
fn payloads(events: &[Arc<arw_host::capabilities::bus::Event>], topic: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.topic == topic)
        .filter_map(|e| match &e.payload {
            arw_host::capabilities::bus::Payload::Json(text) => serde_json::from_str(text).ok(),
            arw_host::capabilities::bus::Payload::Bytes(_) => None,
        })
        .collect()
}

/// Collect bus events until `done` holds for them (bounded: 20 s).
async fn until(
    observer: &mut tokio::sync::broadcast::Receiver<Arc<arw_host::capabilities::bus::Event>>,
    seen: &mut Vec<Arc<arw_host::capabilities::bus::Event>>,
    what: &str,
    done: impl Fn(&[Arc<arw_host::capabilities::bus::Event>]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done(seen) {
        match tokio::time::timeout_at(deadline, observer.recv()).await {
            Ok(Ok(event)) => seen.push(event),
            Ok(Err(e)) => panic!("{what}: the observer lost events: {e}"),
            Err(_) => panic!(
                "{what}: not within 20 s; seen {:?}",
                seen.iter().map(|e| (&e.topic, &e.payload)).collect::<Vec<_>>()
            ),
        }
    }
}

fn id(event: &Value) -> u64 {
    event["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no id in {event}"))
}

/// 8 pushers at once, 240 tasks over 60 idem keys and 3 priorities, all
/// visible at the same moment: exactly one task per key is stored (every
/// duplicate names it), and one worker at a time runs them highest
/// priority first, equal priorities in enqueue order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn priority_then_fifo_and_idem_keys_hold_under_concurrent_pushes() {
    let state = tempfile::tempdir().unwrap();
    let host = host(state.path(), |c| c.queues.concurrency = 1, POLICY).await;
    let mut observer = host.bus().observe();
    let visible_at = arw_tests::now_ms() + 2_000;
    let mut pushers = Vec::new();
    for p in 0..8u64 {
        let host = host.clone();
        pushers.push(tokio::spawn(async move {
            let operator = host.caller(Principal::local_operator());
            let mut out = Vec::new();
            for i in 0..30u64 {
                let n = p * 30 + i;
                let key = n % 60;
                let mut t = task(json!({"op": "echo", "value": key}));
                t.idem_key = Some(format!("k{key}"));
                t.priority = (key % 3) as i32;
                t.not_before_ms = Some(visible_at);
                let enqueued = host.enqueue(&operator, "q", t, &Default::default()).await.unwrap();
                out.push((key, enqueued));
            }
            out
        }));
    }
    let mut by_key: BTreeMap<u64, Vec<(String, bool)>> = BTreeMap::new();
    for pusher in pushers {
        for (key, enqueued) in pusher.await.unwrap() {
            by_key.entry(key).or_default().push((enqueued.id, enqueued.duplicate));
        }
    }
    assert!(arw_tests::now_ms() < visible_at, "the pushes took too long for this test's window");
    let mut priority_of = BTreeMap::new();
    for (key, pushes) in &by_key {
        assert_eq!(pushes.len(), 4, "{key}");
        let stored: Vec<_> = pushes.iter().filter(|(_, dup)| !dup).collect();
        assert_eq!(stored.len(), 1, "key k{key}: exactly one push stores a task: {pushes:?}");
        assert!(pushes.iter().all(|(id, _)| id == &stored[0].0), "key k{key}: duplicates name the stored task");
        priority_of.insert(stored[0].0.parse::<u64>().unwrap(), key % 3);
    }
    assert_eq!(host.queue_counts().enqueued, 60);
    assert_eq!(host.queue_counts().duplicates, 180);

    let mut seen = Vec::new();
    until(&mut observer, &mut seen, "60 tasks done", |s| payloads(s, "queue.task.done").len() == 60).await;
    let order: Vec<(u64, u64)> =
        payloads(&seen, "queue.task.done").iter().map(|d| (priority_of[&id(d)], id(d))).collect();
    let mut expected = order.clone();
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(order, expected, "run order: priority high first, then enqueue order");
    let stats = host.queue_stats(&host.caller(Principal::local_operator()), "q").await.unwrap();
    assert_eq!((stats.ready, stats.leased, stats.done, stats.dead), (0, 0, 60, 0), "{stats:?}");
    host.stop(Duration::from_secs(5)).await;
}

/// A task failing twice runs a third time, each run leased by the backend
/// no earlier than the retry time it set at the nak (its own clock), the
/// delay doubling; a task that keeps failing goes to the dead-letter queue
/// after `max-attempts` with its last error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_after_their_delay_then_go_to_the_dead_letter_queue() {
    let state = tempfile::tempdir().unwrap();
    let host = host(state.path(), |_| {}, POLICY).await;
    let operator = host.caller(Principal::local_operator());
    let mut observer = host.bus().observe();
    let flaky = host.enqueue(&operator, "q", task(count("flaky", 3)), &Default::default()).await.unwrap();
    let mut hopeless = task(count("hopeless", 1_000));
    hopeless.max_attempts = Some(2);
    let hopeless = host.enqueue(&operator, "q", hopeless, &Default::default()).await.unwrap();

    let mut seen = Vec::new();
    until(&mut observer, &mut seen, "done and dead", |s| {
        !payloads(s, "queue.task.done").is_empty() && !payloads(s, "queue.task.dead").is_empty()
    })
    .await;
    let of = |topic: &str, task: &str| -> Vec<Value> {
        payloads(&seen, topic).into_iter().filter(|p| p["id"] == json!(task)).collect()
    };
    let retries = of("queue.task.retry", &flaky.id);
    let done = of("queue.task.done", &flaky.id);
    assert_eq!(retries.len(), 2, "{retries:?}");
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(
        (retries[0]["attempt"].clone(), retries[1]["attempt"].clone(), done[0]["attempt"].clone()),
        (json!(1), json!(2), json!(3))
    );
    // Leased again no earlier than the retry time of the previous run.
    assert!(retries[1]["leased-ms"].as_u64() >= retries[0]["retry-at-ms"].as_u64(), "{retries:?}");
    assert!(done[0]["leased-ms"].as_u64() >= retries[1]["retry-at-ms"].as_u64(), "{retries:?} {done:?}");
    assert_eq!((retries[0]["delay-ms"].clone(), retries[1]["delay-ms"].clone()), (json!(200), json!(400)));
    assert!(retries[0]["error"].as_str().unwrap().contains("tool:not-yet"), "{retries:?}");

    let dead = of("queue.task.dead", &hopeless.id);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["attempt"], json!(2));
    let listed = host.queue_dead(&operator, "q", 10).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0].id.as_str(), listed[0].attempts), (hopeless.id.as_str(), 2));
    assert!(listed[0].error.contains("tool:not-yet") && listed[0].error.contains("run 2 of 1000"), "{listed:?}");
    assert_eq!((listed[0].tool.as_str(), listed[0].caller.as_str()), ("probe", "local"));
    host.stop(Duration::from_secs(5)).await;
}

/// Cedar decides at enqueue (a caller without `queue.enqueue` is refused)
/// and again on the worker: a task whose caller lost `tool.invoke` after
/// it was queued is not run; it is dead with the denial. A component's
/// enqueue runs as that component.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cedar_decides_at_enqueue_and_again_when_the_task_runs() {
    let state = tempfile::tempdir().unwrap();
    let host = host(state.path(), |_| {}, POLICY).await;
    let operator = host.caller(Principal::local_operator());
    let alice: Caller = host.caller(Principal::caller("alice", Vec::<String>::new()));
    match host.enqueue(&alice, "q", task(count("alice", 1)), &Default::default()).await {
        Err(QueueError::Denied(denied)) => assert!(denied.to_string().contains("queue.enqueue"), "{denied}"),
        other => panic!("alice may not enqueue: {other:?}"),
    }
    let mut bad = task(json!(null));
    bad.input = "{not json".into();
    match host.enqueue(&operator, "q", bad, &Default::default()).await {
        Err(QueueError::Invalid(why)) => assert!(why.contains("not JSON"), "{why}"),
        other => panic!("bad input must be refused at enqueue: {other:?}"),
    }
    // What would break the tool's input schema when it runs is refused now.
    match host.enqueue(&operator, "q", task(json!({"no-op": 1})), &Default::default()).await {
        Err(QueueError::Invalid(why)) => assert!(why.contains("input schema of `probe`"), "{why}"),
        other => panic!("input against the schema must be refused at enqueue: {other:?}"),
    }

    let mut observer = host.bus().observe();
    let mut seen = Vec::new();
    // A component's task runs as the component.
    let by_component = host
        .call(
            &operator,
            "probe",
            &json!({"op": "queue.enqueue", "queue": "q", "tool": "probe", "input": count("component", 1)}).to_string(),
        )
        .await
        .unwrap();
    let component_task = by_component["ok"]["id"].clone();
    until(&mut observer, &mut seen, "the component's task done", |s| {
        payloads(s, "queue.task.done").iter().any(|d| d["id"] == component_task)
    })
    .await;
    let done = payloads(&seen, "queue.task.done").into_iter().find(|d| d["id"] == component_task).unwrap();
    assert_eq!(done["caller"], json!("test:probe"), "{done}");

    let mut later = task(count("revoked", 1));
    later.not_before_ms = Some(arw_tests::now_ms() + 1_000);
    let queued = host.enqueue(&operator, "q", later, &Default::default()).await.unwrap();
    // The operator keeps queue.enqueue and queue.read but loses tool.invoke.
    let without_invoke = POLICY.replace(
        r#"action in [Arw::Action::"tool.invoke", Arw::Action::"queue.enqueue""#,
        r#"action in [Arw::Action::"queue.enqueue""#,
    );
    assert_ne!(without_invoke, POLICY);
    host.reload_policies(vec![arw_policy::PolicySource::new("p.cedar", without_invoke)]).await.unwrap();
    until(&mut observer, &mut seen, "the revoked task dead", |s| {
        payloads(s, "queue.task.dead").iter().any(|d| d["id"] == json!(queued.id))
    })
    .await;
    let dead = payloads(&seen, "queue.task.dead").into_iter().find(|d| d["id"] == json!(queued.id)).unwrap();
    assert_eq!(dead["attempt"], json!(1), "a denial is final: {dead}");
    assert!(dead["error"].as_str().unwrap().starts_with("denied"), "{dead}");
    // Never ran.
    assert!(!payloads(&seen, "queue.task.done").iter().any(|d| d["id"] == json!(queued.id)));
    host.stop(Duration::from_secs(5)).await;
}

/// A component with a grant on the backend's namespace writes tasks in
/// there itself: one with another caller spliced into a genuine ticket,
/// one a genuine ticket of another queue. After a restart (the backend
/// reads its storage afresh) neither runs; both are dead with why, and
/// counted as rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_task_in_the_backends_storage_is_never_run() {
    let state = tempfile::tempdir().unwrap();
    let first = host(state.path(), |_| {}, POLICY).await;
    let operator = first.caller(Principal::local_operator());
    let mut genuine = task(count("forged-run", 1));
    genuine.not_before_ms = Some(arw_tests::now_ms() + 600_000);
    let genuine = first.enqueue(&operator, "q", genuine, &Default::default()).await.unwrap();
    let key = format!("t/q/{:020}", genuine.id.parse::<u64>().unwrap());
    let probe = |host: &Arc<Host>, input: Value| {
        let host = host.clone();
        async move { host.call(&host.caller(Principal::local_operator()), "probe", &input.to_string()).await.unwrap() }
    };
    let stored = probe(&first, json!({"op": "kv.get", "namespace": "queue-local", "key": key})).await;
    let record: Value = serde_json::from_str(stored["ok"].as_str().unwrap()).unwrap();
    let ticket = record["task"]["ticket"].as_str().unwrap().to_string();
    assert!(ticket.contains("\"name\":\"local\""), "{ticket}");
    let mut forged = record.clone();
    forged["task"]["not-before-ms"] = json!(0);
    forged["at-ms"] = json!(0);
    forged["id"] = json!(1);
    forged["task"]["ticket"] = json!(ticket.replace("\"name\":\"local\"", "\"name\":\"root\""));
    let mut moved = record.clone();
    moved["task"]["not-before-ms"] = json!(0);
    moved["at-ms"] = json!(0);
    moved["id"] = json!(2);
    for (id, value) in [(1, &forged), (2, &moved)] {
        let set = json!({"op": "kv.set", "namespace": "queue-local", "key": format!("t/forged/{id:020}"), "value": value.to_string()});
        probe(&first, set).await;
    }
    first.stop(Duration::from_secs(5)).await;
    drop(first);

    let second = host(state.path(), |c| c.queues.serve = vec!["forged".into()], POLICY).await;
    // Counted rather than observed: the workers start with the host.
    arw_tests::eventually("both forged tasks rejected", || second.queue_counts().rejected == 2).await;
    let operator = second.caller(Principal::local_operator());
    let dead = second.queue_dead(&operator, "forged", 10).await.unwrap();
    let errors: Vec<&str> = dead.iter().map(|d| d.error.as_str()).collect();
    assert_eq!(errors.len(), 2, "{dead:?}");
    assert!(errors.iter().any(|e| e.contains("signature does not hold")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("signed for queue `q`, not `forged`")), "{errors:?}");
    let runs = probe(&second, json!({"op": "kv.get", "namespace": "runs", "key": "forged-run"})).await;
    assert_eq!(runs["ok"], Value::Null, "a forged task ran");
    second.stop(Duration::from_secs(5)).await;
}

/// The backend is hot-swapped (a new version of `arw:queue-local`) while
/// tasks are queued, leased and running: every task runs once and is
/// acked; none is lost, dead or late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_the_backend_with_tasks_in_flight_loses_none() {
    const TASKS: u64 = 40;
    let state = tempfile::tempdir().unwrap();
    let host = host(state.path(), |c| c.queues.concurrency = 4, POLICY).await;
    let operator = host.caller(Principal::local_operator());
    for i in 0..TASKS {
        let input = json!({"op": "count", "namespace": "runs", "key": format!("s{i}"), "sleep-ms": 100});
        host.enqueue(&operator, "q", task(input), &Default::default()).await.unwrap();
    }
    arw_tests::eventually("some tasks done", || host.queue_counts().done >= 4).await;
    let stats = host.queue_stats(&operator, "q").await.unwrap();
    assert!(stats.leased > 0 && stats.ready > 0, "tasks running and waiting at the swap: {stats:?}");
    let next = manifests::QUEUE_LOCAL.replace("version = \"0.1.0\"", "version = \"0.1.1\"");
    let manifest = arw_host::Manifest::parse(&next).unwrap();
    let package = arw_host::source::ComponentPackage {
        manifest,
        wasm: std::borrow::Cow::Borrowed(artifacts::QUEUE_LOCAL.bytes),
        origin: "test".into(),
        publisher: Some("arw".into()),
    };
    host.activate(package).await.unwrap();
    assert_eq!(host.active_version("arw:queue-local").map(|v| v.0).as_deref(), Some("0.1.1"));
    for _ in 0..600 {
        if host.queue_counts().done == TASKS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counts = host.queue_counts();
    assert_eq!((counts.done, counts.dead, counts.late), (TASKS, 0, 0), "{counts:?}");
    for i in 0..TASKS {
        let input = json!({"op": "kv.get", "namespace": "runs", "key": format!("s{i}")});
        let runs = host.call(&operator, "probe", &input.to_string()).await.unwrap();
        assert_eq!(runs["ok"], json!("1"), "task s{i}");
    }
    host.stop(Duration::from_secs(5)).await;
}
