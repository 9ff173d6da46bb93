//! Work queues across a crash: `arw up` with the default backend
//! (`arw:queue-local`, on the host's kv) is `kill -9`ed while it works
//! through tasks pushed over HTTP, then started again. Every task
//! completes; a task runs more than once only if it was running when the
//! process died (at most `queues.concurrency` of them); `idem-key` pushes
//! add nothing; no ack comes late. Counted with `arw:kv-counter`, whose
//! counters are in the same kv and so survive the crash with the tasks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

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

/// Write the host's configuration: which queues it works on.
fn configure(home: &Home, serve: &str) {
    let config_dir = home.root.join("config/arw");
    std::fs::create_dir_all(&config_dir).unwrap();
    let text = format!("[queues]\nserve = [{serve}]\nconcurrency = {CONCURRENCY}\nlease-ms = 1500\npoll-ms = 20\n");
    std::fs::write(config_dir.join("config.toml"), text).unwrap();
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

    // Runs per task: the counter's value less the one this read adds.
    let mut extra = 0;
    for i in 0..TASKS {
        let (status, body) =
            send(client().post(format!("{base}/tools/kv-counter/invoke")).json(&json!({"name": format!("t{i}")})));
        assert_eq!(status, 200, "{body}");
        let runs = body["value"].as_u64().unwrap() - 1;
        assert!(runs >= 1, "task t{i} never ran");
        extra += runs - 1;
    }
    eprintln!("killed at {before}; runs beyond one per task: {extra}");
    assert!(
        extra <= CONCURRENCY,
        "{extra} runs beyond one per task: more than the {CONCURRENCY} that were running at the kill"
    );
    assert_eq!(metric(&base, "arw_queue_tasks_total{outcome=\"late\"}"), 0.0);
    assert_eq!(metric(&base, "arw_queue_tasks_total{outcome=\"dead\"}"), 0.0);
    drop(up);
}
