//! Work queues across crashes: `arw up` is `kill -9`ed while it works
//! through tasks pushed over HTTP, then started again, with each backend:
//! `arw:queue-local` (the host's kv) and `arw:queue-jetstream` (a real
//! `nats-server`, itself killed and restarted once). Every task completes;
//! a task runs more than once only if it was running when the process died
//! (at most `queues.concurrency` of them); `idem-key` pushes add nothing;
//! no ack comes late. Counted with `arw:kv-counter`, whose counters are in
//! the host's kv and so survive the crash.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
// The harness the workspace's tests use; this file needs only part of it.
#[allow(dead_code)]
#[path = "../../../tests/support/nats.rs"]
mod nats;

use std::time::{Duration, Instant};

use common::Home;
use serde_json::{Value, json};

const POLICIES: &str = include_str!("../../../policies/default.cedar");
const TOKEN: &str = "cli-test-admin-token-0123456789";
const TASKS: u64 = 400;
const CONCURRENCY: u64 = 4;

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(30)).build().unwrap()
}

fn send(request: reqwest::blocking::RequestBuilder) -> (u16, Value) {
    let response = request.bearer_auth(TOKEN).send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or_default())
}

fn stats(base: &str) -> Value {
    let (status, body) = send(client().get(format!("{base}/queues/jobs")));
    assert_eq!(status, 200, "{body}");
    body
}

/// Poll the queue's counts until `check` holds (bounded: 120 s).
fn wait_for(base: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let now = stats(base);
        if check(&now) {
            return now;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "timed out waiting for {what}; last: {now}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric(base: &str, line_start: &str) -> f64 {
    let text = client().get(format!("{base}/metrics")).bearer_auth(TOKEN).send().unwrap().text().unwrap();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no `{line_start}` in /metrics"))
}

/// Write the host's configuration: which queues it works on (and, for
/// `extra`, what else).
fn configure(home: &Home, serve: &str) {
    configure_with(home, serve, "");
}

fn configure_with(home: &Home, serve: &str, extra: &str) {
    let config_dir = home.root.join("config/arw");
    std::fs::create_dir_all(&config_dir).unwrap();
    let text =
        format!("[queues]\nserve = [{serve}]\nconcurrency = {CONCURRENCY}\nlease-ms = 1500\npoll-ms = 20\n{extra}");
    std::fs::write(config_dir.join("config.toml"), text).unwrap();
}

/// Runs per task `t0..t{tasks}`: each counter's value less the one this
/// read adds. Every task ran; returns the runs beyond one per task.
fn extra_runs(base: &str, tasks: u64) -> u64 {
    let mut extra = 0;
    for i in 0..tasks {
        let (status, body) =
            send(client().post(format!("{base}/tools/kv-counter/invoke")).json(&json!({"name": format!("t{i}")})));
        assert_eq!(status, 200, "{body}");
        let runs = body["value"].as_u64().unwrap() - 1;
        assert!(runs >= 1, "task t{i} never ran");
        extra += runs - 1;
    }
    extra
}

/// SIGKILL, and forget the address the dead process wrote last.
fn kill_9(home: &Home, mut up: common::Up) {
    up.child.kill().unwrap();
    up.child.wait().unwrap();
    drop(up);
    std::fs::remove_file(home.root.join("state/status.json")).unwrap();
}

#[test]
fn the_local_backend_loses_no_task_across_kill_9() {
    let home = Home::new(POLICIES);
    let env = [("ARW_HTTP__ADMIN_TOKEN", TOKEN)];

    // 1. A host that works on no queue takes the pushes, and is killed.
    configure(&home, "");
    let up = home.up(&env);
    let base = up.base.clone();
    // Each task counts its runs in its own counter; the second push of
    // every fifth task is a duplicate and adds nothing.
    let push = |i: u64| {
        let body = json!({"tool": "kv-counter", "input": {"name": format!("t{i}")}, "idem-key": format!("t{i}")});
        send(client().post(format!("{base}/queues/jobs/tasks")).json(&body))
    };
    for i in 0..TASKS {
        let (status, body) = push(i);
        assert_eq!((status, body["duplicate"].as_bool()), (202, Some(false)), "{body}");
        if i % 5 == 0 {
            let (status, again) = push(i);
            assert_eq!((status, again["duplicate"].as_bool()), (202, Some(true)), "{again}");
            assert_eq!(again["id"], body["id"]);
        }
    }
    assert_eq!(stats(&base)["ready"], json!(TASKS));
    kill_9(&home, up);

    // 2. A worker host: killed mid-way, some done, some running, some not
    // started.
    configure(&home, "\"jobs\"");
    let up = home.up(&env);
    let base = up.base.clone();
    let before = wait_for(&base, "a quarter done", |s| s["done"].as_u64() >= Some(TASKS / 4));
    kill_9(&home, up);
    assert!(before["done"].as_u64() < Some(TASKS * 3 / 4), "too late a kill to show anything: {before}");

    // 3. Started again: everything completes.
    let up = home.up(&env);
    let base = up.base.clone();
    let after = wait_for(&base, "every task done", |s| s["done"].as_u64() == Some(TASKS));
    let rest = ["ready", "delayed", "leased", "dead"].map(|k| after[k].clone());
    assert_eq!(rest, [json!(0), json!(0), json!(0), json!(0)], "{after}");

    let extra = extra_runs(&base, TASKS);
    eprintln!("killed at {before}; runs beyond one per task: {extra}");
    assert!(
        extra <= CONCURRENCY,
        "{extra} runs beyond one per task: more than the {CONCURRENCY} that were running at the kill"
    );
    assert_eq!(metric(&base, "arw_queue_tasks_total{outcome=\"late\"}"), 0.0);
    assert_eq!(metric(&base, "arw_queue_tasks_total{outcome=\"dead\"}"), 0.0);
    drop(up);
}

/// 1000 tasks on `arw:queue-jetstream`: the worker host is `kill -9`ed
/// mid-way, the server is killed and restarted (JetStream's file store
/// keeps the tasks), the host is started again: every task completes,
/// extra runs are at most the tasks that were running at the kill, no ack
/// is late, none is dead.
#[test]
fn the_jetstream_backend_loses_no_task_across_kill_9_of_the_host_and_a_server_restart() {
    const JS_TASKS: u64 = 1000;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut server = runtime.block_on(nats::NatsServer::start());
    let home = Home::new(POLICIES);
    let cluster = format!("backend = \"arw:queue-jetstream\"\n[cluster]\nnats-url = \"{}\"\n", server.url());
    // Pushed to a host that works on no queue, so the kill below comes
    // mid-way.
    configure_with(&home, "", &cluster);
    let env = [("ARW_HTTP__ADMIN_TOKEN", TOKEN)];
    let up = home.up(&env);
    let base = up.base.clone();
    for i in 0..JS_TASKS {
        let body = json!({"tool": "kv-counter", "input": {"name": format!("t{i}")}, "idem-key": format!("t{i}")});
        let (status, pushed) = send(client().post(format!("{base}/queues/jobs/tasks")).json(&body));
        assert_eq!((status, pushed["duplicate"].as_bool()), (202, Some(false)), "{pushed}");
        if i % 10 == 0 {
            let (status, again) = send(client().post(format!("{base}/queues/jobs/tasks")).json(&body));
            assert_eq!((status, again["duplicate"].as_bool(), &again["id"]), (202, Some(true), &pushed["id"]));
        }
    }
    assert_eq!(stats(&base)["ready"], json!(JS_TASKS));
    drop(up);
    std::fs::remove_file(home.root.join("state/status.json")).unwrap();
    configure_with(&home, "\"jobs\"", &cluster);
    let up = home.up(&env);
    let base = up.base.clone();
    let started = Instant::now();
    while metric(&base, "arw_queue_tasks_total{outcome=\"done\"}") < (JS_TASKS / 4) as f64 {
        assert!(started.elapsed() < Duration::from_secs(120), "a quarter never got done");
        std::thread::sleep(Duration::from_millis(50));
    }
    let done_before = metric(&base, "arw_queue_tasks_total{outcome=\"done\"}");
    kill_9(&home, up);
    assert!(done_before < (JS_TASKS * 3 / 4) as f64, "too late a kill to show anything: {done_before}");
    runtime.block_on(server.restart());

    let up = home.up(&env);
    let base = up.base.clone();
    let after = wait_for(&base, "the queue drained", |s| {
        s["ready"] == json!(0) && s["leased"] == json!(0) && s["delayed"] == json!(0)
    });
    assert_eq!(after["dead"], json!(0), "{after}");
    let extra = extra_runs(&base, JS_TASKS);
    eprintln!("killed after {done_before} done; runs beyond one per task: {extra}");
    assert!(extra <= CONCURRENCY, "{extra} runs beyond one per task: more than the {CONCURRENCY} running at the kill");
    assert_eq!(metric(&base, "arw_queue_tasks_total{outcome=\"late\"}"), 0.0);
    assert_eq!(metric(&base, "arw_queue_tasks_total{outcome=\"dead\"}"), 0.0);
    drop(up);
}
