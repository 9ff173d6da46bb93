//! Work queues on `arw:queue-jetstream`, a real component on a real
//! `nats-server` with JetStream, shared by two hosts: tasks survive a
//! worker host's stop and a server restart, are run exactly once each when
//! nothing fails, retry after their delay and go to the dead-letter stream
//! with their last error; priority bands and `idem-key` hold; the
//! component's JetStream is Cedar's and the host's namespaces hold.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use arw_artifacts as artifacts;
use arw_host::queues::NewTask;
use arw_host::{Host, HostConfig};
use arw_policy::Principal;
use arw_tests::nats::NatsServer;
use arw_tests::{Components, config, manifests, policies, probe_manifest};
use serde_json::{Value, json};

const POLICY: &str = r#"
    permit(principal == Arw::Component::"arw:queue-jetstream", action in [Arw::Action::"jetstream.manage", Arw::Action::"jetstream.publish", Arw::Action::"jetstream.consume", Arw::Action::"config.read"], resource);
    permit(principal == Arw::Component::"test:probe", action in [Arw::Action::"kv.read", Arw::Action::"kv.write"], resource);
    permit(principal == Arw::Component::"test:probe", action in [Arw::Action::"jetstream.publish", Arw::Action::"jetstream.manage"], resource == Arw::Stream::"PROBE");
    permit(principal in Arw::Role::"operator", action in [Arw::Action::"tool.invoke", Arw::Action::"queue.enqueue", Arw::Action::"queue.read"], resource);
"#;

fn components() -> Components {
    let probe = probe_manifest(
        "test:probe",
        &[("kv.read", "*"), ("kv.write", "*"), ("jetstream.publish", "*"), ("jetstream.manage", "*")],
        &[],
    );
    Components::new()
        .with(&probe, artifacts::PROBE.bytes)
        .with(manifests::QUEUE_JETSTREAM, artifacts::QUEUE_JETSTREAM.bytes)
}

async fn host(state: &std::path::Path, nats: &NatsServer, tune: impl FnOnce(&mut HostConfig)) -> Arc<Host> {
    let mut config = config(state);
    config.cluster.nats_url = Some(nats.url());
    config.cluster.reconnect_max_delay_ms = 200;
    config.queues.backend = "arw:queue-jetstream".into();
    config.queues.serve = vec!["jobs".into()];
    config.queues.poll_ms = 50;
    config.queues.retry_base_ms = 300;
    tune(&mut config);
    let (host, refused) = Host::start(config, policies(&[POLICY]), &components()).await.unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    Arc::new(host)
}

fn count(key: &str, fail_below: u64) -> NewTask {
    let input = json!({"op": "count", "namespace": "runs", "key": key, "fail-below": fail_below});
    NewTask { tool: "probe".into(), input: input.to_string(), ..NewTask::default() }
}

async fn runs(host: &Host, key: &str) -> u64 {
    let input = json!({"op": "kv.get", "namespace": "runs", "key": key});
    let out = host.call(&host.caller(Principal::local_operator()), "probe", &input.to_string()).await.unwrap();
    out["ok"].as_str().map_or(0, |v| v.parse().unwrap())
}

/// Wait (bounded: 60 s) until `check` holds.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// 300 tasks pushed on one host (which works on no queue) are stored in
/// JetStream; the server is killed and restarted; a second host works
/// them off. Each ran exactly once (nothing failed in between), and a
/// second push with the same idem-key added nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_pushed_on_one_host_survive_a_server_restart_and_run_once_on_another() {
    const TASKS: u64 = 300;
    let mut nats = NatsServer::start().await;
    let pusher_state = tempfile::tempdir().unwrap();
    let pusher = host(pusher_state.path(), &nats, |c| c.queues.serve = Vec::new()).await;
    let operator = pusher.caller(Principal::local_operator());
    for i in 0..TASKS {
        let mut task = count(&format!("t{i}"), 1);
        task.idem_key = Some(format!("t{i}"));
        let first = pusher.enqueue(&operator, "jobs", task.clone(), &Default::default()).await.unwrap();
        assert!(!first.duplicate);
        if i % 10 == 0 {
            let again = pusher.enqueue(&operator, "jobs", task, &Default::default()).await.unwrap();
            assert!(again.duplicate, "{again:?}");
            assert_eq!(again.id, first.id);
        }
    }
    let stats = pusher.queue_stats(&operator, "jobs").await.unwrap();
    assert_eq!(stats.ready, TASKS, "{stats:?}");
    let pusher_key = pusher.node_key().to_string();
    pusher.stop(Duration::from_secs(5)).await;

    nats.restart().await;

    let worker_state = tempfile::tempdir().unwrap();
    let worker = host(worker_state.path(), &nats, |c| {
        c.queues.concurrency = 8;
        c.cluster.trusted_nodes = vec![pusher_key];
    })
    .await;
    let operator = worker.caller(Principal::local_operator());
    until("every task done", async || worker.queue_counts().done == TASKS).await;
    let stats = worker.queue_stats(&operator, "jobs").await.unwrap();
    assert_eq!((stats.ready, stats.leased, stats.delayed, stats.dead), (0, 0, 0, 0), "{stats:?}");
    for i in 0..TASKS {
        assert_eq!(runs(&worker, &format!("t{i}")).await, 1, "task t{i}");
    }
    assert_eq!(worker.queue_counts().late, 0);
    worker.stop(Duration::from_secs(5)).await;
}

/// Retries come after their delay (the backend's clock at the nak and at
/// the next lease); a hopeless task goes to the dead-letter stream after
/// `max-attempts` with its last error; a higher priority band is leased
/// first; `not-before` is a server-side schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_wait_their_delay_dead_letters_keep_the_error_and_bands_go_first() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let host = host(state.path(), &nats, |c| c.queues.concurrency = 1).await;
    let operator = host.caller(Principal::local_operator());
    let mut observer = host.bus().observe();

    let flaky = host.enqueue(&operator, "jobs", count("flaky", 3), &Default::default()).await.unwrap();
    let mut hopeless = count("hopeless", 1_000);
    hopeless.max_attempts = Some(2);
    let hopeless = host.enqueue(&operator, "jobs", hopeless, &Default::default()).await.unwrap();
    let mut later = count("later", 1);
    let not_before = arw_tests::now_ms() + 3_000;
    later.not_before_ms = Some(not_before);
    let later = host.enqueue(&operator, "jobs", later, &Default::default()).await.unwrap();

    let mut seen: Vec<Value> = Vec::new();
    let mut topics: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let done = |seen: &[Value], topics: &[String], id: &str| {
        seen.iter().zip(topics).any(|(p, t)| t == "queue.task.done" && p["id"] == json!(id))
    };
    while !(done(&seen, &topics, &flaky.id)
        && done(&seen, &topics, &later.id)
        && seen.iter().zip(&topics).any(|(p, t)| t == "queue.task.dead" && p["id"] == json!(hopeless.id)))
    {
        let event = tokio::time::timeout_at(deadline, observer.recv()).await.expect("events within 60 s").unwrap();
        if let Some(payload) = event.json() {
            topics.push(event.topic.clone());
            seen.push(payload);
        }
    }
    let of = |topic: &str, id: &str| -> Vec<Value> {
        seen.iter().zip(&topics).filter(|(p, t)| *t == topic && p["id"] == json!(id)).map(|(p, _)| p.clone()).collect()
    };
    let retries = of("queue.task.retry", &flaky.id);
    let finished = of("queue.task.done", &flaky.id);
    assert_eq!(retries.len(), 2, "{retries:?}");
    assert_eq!(finished[0]["attempt"], json!(3), "{finished:?}");
    assert!(retries[1]["leased-ms"].as_u64() >= retries[0]["retry-at-ms"].as_u64(), "{retries:?}");
    assert!(finished[0]["leased-ms"].as_u64() >= retries[1]["retry-at-ms"].as_u64(), "{retries:?} {finished:?}");
    // Not before its time: the schedule fired then.
    let later_done = of("queue.task.done", &later.id);
    assert!(later_done[0]["leased-ms"].as_u64() >= Some(not_before - 1_000), "{later_done:?} vs {not_before}");
    let dead = host.queue_dead(&operator, "jobs", 10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].id.as_str(), dead[0].attempts), (hopeless.id.as_str(), 2));
    assert!(dead[0].error.contains("tool:not-yet"), "{dead:?}");
    assert_eq!(host.queue_stats(&operator, "jobs").await.unwrap().dead, 1);

    // Bands: with the worker busy on a slow task, a low, a normal and a
    // high task queue up; the high one runs first, the low one last.
    let slow =
        NewTask { tool: "probe".into(), input: json!({"op": "sleep", "ms": 1500}).to_string(), ..Default::default() };
    host.enqueue(&operator, "jobs", slow, &Default::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ids = Vec::new();
    for priority in [-1, 0, 1] {
        let mut task = count(&format!("band{priority}"), 1);
        task.priority = priority;
        ids.push(host.enqueue(&operator, "jobs", task, &Default::default()).await.unwrap().id);
    }
    let mut order = Vec::new();
    while order.len() < 3 {
        let event = tokio::time::timeout_at(deadline, observer.recv()).await.expect("bands within 60 s").unwrap();
        if event.topic == "queue.task.done"
            && let Some(id) = event.json().and_then(|p| p["id"].as_str().map(String::from))
            && ids.contains(&id)
        {
            order.push(id);
        }
    }
    assert_eq!(order, [ids[2].clone(), ids[1].clone(), ids[0].clone()], "high, normal, low");
    host.stop(Duration::from_secs(5)).await;
}

/// Through `arw:host/jetstream` a component reaches only the streams
/// Cedar grants it, never the host's subjects, and a publish lands only in
/// the stream it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_components_jetstream_is_cedars_and_the_hosts_subjects_stay_closed() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let host = host(state.path(), &nats, |c| c.queues.serve = Vec::new()).await;
    let operator = host.caller(Principal::local_operator());
    // The backend's stream for `jobs` exists once something is pushed.
    host.enqueue(&operator, "jobs", count("x", 1), &Default::default()).await.unwrap();
    let call = |input: Value| {
        let host = host.clone();
        async move { host.call(&host.caller(Principal::local_operator()), "probe", &input.to_string()).await }
    };
    let refusal = |result: Result<Value, arw_host::CallError>| match result {
        Err(arw_host::CallError::Tool { code, message, .. }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    };
    // Its own stream, with a subject of its own: fine.
    call(json!({"op": "js.stream", "name": "PROBE", "subjects": ["probe.>"]})).await.unwrap();
    call(json!({"op": "js.publish", "stream": "PROBE", "subject": "probe.a", "payload": "1"})).await.unwrap();
    // The host's namespaces, in a stream or a publish: denied.
    let (code, message) =
        refusal(call(json!({"op": "js.stream", "name": "PROBE", "subjects": ["arw.events.>"]})).await);
    assert_eq!(code, "denied", "{message}");
    let (code, message) =
        refusal(call(json!({"op": "js.publish", "stream": "PROBE", "subject": "$JS.API.INFO", "payload": "1"})).await);
    assert_eq!(code, "denied", "{message}");
    // Another stream: Cedar says no.
    let (code, message) = refusal(call(json!({"op": "js.publish", "stream": "ARW-TASKS-jobs", "subject": "arw.tasks.jobs.ready.high", "payload": "forged"})).await);
    assert_eq!(code, "denied", "{message}");
    assert!(message.contains("jetstream.publish"), "{message}");
    // Its own stream named, another's subject: the server refuses it.
    let (code, message) = refusal(
        call(
            json!({"op": "js.publish", "stream": "PROBE", "subject": "arw.tasks.jobs.ready.high", "payload": "forged"}),
        )
        .await,
    );
    assert_eq!(code, "unavailable", "{message}");
    let stats = host.queue_stats(&operator, "jobs").await.unwrap();
    assert_eq!(stats.ready, 1, "only the pushed task is in the queue: {stats:?}");
    // A server header: denied.
    let (code, _) = refusal(call(json!({"op": "js.publish", "stream": "PROBE", "subject": "probe.b", "payload": "1", "headers": [["Nats-Rollup", "all"]]})).await);
    assert_eq!(code, "denied");
    host.stop(Duration::from_secs(5)).await;
}

/// `arw:queue-jetstream` is hot-swapped while tasks are leased and
/// running: the leases it gave pass to the new version (`snapshot`), so
/// every task is acked once; none is lost, dead or late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_the_jetstream_backend_with_tasks_in_flight_loses_none() {
    const TASKS: u64 = 40;
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let host = host(state.path(), &nats, |c| c.queues.concurrency = 4).await;
    let operator = host.caller(Principal::local_operator());
    for i in 0..TASKS {
        let input = json!({"op": "count", "namespace": "runs", "key": format!("s{i}"), "sleep-ms": 100});
        let task = NewTask { tool: "probe".into(), input: input.to_string(), ..NewTask::default() };
        host.enqueue(&operator, "jobs", task, &Default::default()).await.unwrap();
    }
    until("some tasks done", async || host.queue_counts().done >= 4).await;
    let stats = host.queue_stats(&operator, "jobs").await.unwrap();
    assert!(stats.leased > 0 && stats.ready > 0, "tasks running and waiting at the swap: {stats:?}");
    let next = manifests::QUEUE_JETSTREAM.replace("version = \"0.1.0\"", "version = \"0.1.1\"");
    let package = arw_host::source::ComponentPackage {
        manifest: arw_host::Manifest::parse(&next).unwrap(),
        wasm: std::borrow::Cow::Borrowed(artifacts::QUEUE_JETSTREAM.bytes),
        origin: "test".into(),
        publisher: Some("arw".into()),
    };
    host.activate(package).await.unwrap();
    until("every task done", async || host.queue_counts().done == TASKS).await;
    let counts = host.queue_counts();
    assert_eq!((counts.done, counts.dead, counts.late), (TASKS, 0, 0), "{counts:?}");
    for i in 0..TASKS {
        assert_eq!(runs(&host, &format!("s{i}")).await, 1, "task s{i}");
    }
    host.stop(Duration::from_secs(5)).await;
}
