//! The workers: for each queue of `[queues] serve`, one task that leases
//! what this host has room for (`queues.concurrency`) and runs each leased
//! task on its own tokio task.
//!
//! A run opens the ticket (signature, trusted signer, queue), finds the
//! ticket's component with the ticket's digest, asks the gates (the
//! tool's ingress, as the ticket's caller) and calls the tool, where Cedar
//! decides `tool.invoke` for that caller again. While the call runs the
//! lease is extended every third of `queues.lease-ms`. Then:
//!
//! | outcome | to the backend |
//! |---|---|
//! | the call returned, lease still held | `ack` |
//! | the call returned after the lease expired | nothing: counted `late` (the task runs again) |
//! | refused (Cedar, a gate's deny), bad input, ticket does not open | `term`: dead-letter queue |
//! | anything else (the tool's error, a trap, a timeout, busy, the digest not active here, a gate that asks to retry later) | `nak` with a delay: `retry-base-ms` doubling per attempt up to `retry-max-ms` (or the gate's retry-after); dead after `max-attempts` |

use std::sync::Arc;
use std::time::Duration;

use arw_policy::RequestContext;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Queues, Ticket, bump, now_ms};
use crate::capabilities::bus::Payload;
use crate::error::CallError;
use crate::gating::{GateCaller, GateRequest, GateTarget, keys};
use crate::roles::queue_backend::{Op, Reply, wit};

/// Start one worker per served queue. They stop when `shutdown` flips,
/// after running tasks finish (at most `queues.drain-ms`).
pub(crate) fn spawn(queues: &Arc<Queues>, shutdown: &watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    queues
        .config
        .serve
        .iter()
        .map(|queue| tokio::spawn(serve(queues.clone(), queue.clone(), shutdown.clone())))
        .collect()
}

/// How a failed run ends.
enum Failure {
    /// For good: the dead-letter queue now.
    Terminal(String),
    /// May work later: retried after at least this delay (a gate's
    /// retry-after), or the backoff, whichever is longer.
    Retry(String, Option<u64>),
}

async fn serve(queues: Arc<Queues>, queue: String, mut shutdown: watch::Receiver<bool>) {
    let config = &queues.config;
    let slots = Arc::new(Semaphore::new(config.concurrency as usize));
    let mut running = JoinSet::new();
    let poll = Duration::from_millis(config.poll_ms);
    let mut last_warning: Option<Instant> = None;
    // After a failed lease (the backend is not loaded, not granted its
    // storage, restarting), the wait doubles up to a minute, so a
    // misconfigured backend costs a call (and an audit entry) now and
    // then, not every poll.
    let mut failing = Duration::ZERO;
    loop {
        if *shutdown.borrow() {
            break;
        }
        while running.try_join_next().is_some() {}
        let free = slots.available_permits();
        if free == 0 {
            tokio::select! {
                _ = running.join_next() => {}
                _ = shutdown.changed() => break,
            }
            continue;
        }
        // Listen before asking, so a push between an empty lease and the
        // wait is not missed.
        let wake = queues.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let lease = Op::Lease { queue: queue.clone(), max: free as u32, lease_ms: config.lease_ms };
        let failure = match queues.call(lease).await {
            Ok(Ok(Reply::Leased(list))) => {
                failing = Duration::ZERO;
                Ok(list)
            }
            Ok(Ok(_)) => Err("the backend answered a lease with something else".to_string()),
            Ok(Err(e)) => Err(format!("the backend refused a lease: {e:?}")),
            Err(e) => Err(e.to_string()),
        };
        let leased = match failure {
            Ok(list) => list,
            Err(why) => {
                warn_now_and_then(&mut last_warning, &queue, &why);
                failing = (failing * 2).clamp(poll, Duration::from_secs(60));
                Vec::new()
            }
        };
        if leased.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(poll.max(failing)) => {}
                _ = &mut wake => {}
                _ = shutdown.changed() => break,
            }
            continue;
        }
        for task in leased {
            let Ok(permit) = slots.clone().try_acquire_owned() else { break };
            running.spawn(run(queues.clone(), queue.clone(), task, permit));
        }
    }
    // Let what runs finish; what does not is redelivered when its lease
    // expires.
    let drain = Duration::from_millis(config.drain_ms);
    let _ = tokio::time::timeout(drain, async { while running.join_next().await.is_some() {} }).await;
    running.abort_all();
    tracing::debug!(queue, "queue worker stopped");
}

/// A warning at most every ten seconds (a backend that is down would
/// otherwise log at every poll).
fn warn_now_and_then(last: &mut Option<Instant>, queue: &str, message: &str) {
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
        tracing::warn!(queue, "queue worker: {message}");
        *last = Some(Instant::now());
    }
}

/// Run one leased task to its end (ack, nak or term).
async fn run(queues: Arc<Queues>, queue: String, leased: wit::Leased, _slot: OwnedSemaphorePermit) {
    let lease_ms = queues.config.lease_ms;
    let mut expires = Instant::now() + Duration::from_millis(lease_ms);
    let ticket = match open(&queues, &queue, &leased) {
        Ok(ticket) => ticket,
        Err(why) => {
            bump(&queues.counters.rejected);
            tracing::warn!(queue, id = leased.id, "a task is refused without running: {why}");
            terminate(&queues, &queue, &leased, None, &why).await;
            return;
        }
    };
    let call = call(&queues, &ticket);
    tokio::pin!(call);
    let every = Duration::from_millis((lease_ms / 3).max(1));
    let mut extend = tokio::time::interval_at(Instant::now() + every, every);
    let mut lost = false;
    let result = loop {
        tokio::select! {
            result = &mut call => break result,
            _ = extend.tick(), if !lost => {
                let op = Op::Extend { queue: queue.clone(), lease: leased.lease.clone(), lease_ms };
                let asked = Instant::now();
                match queues.call(op).await {
                    Ok(Ok(_)) => expires = asked + Duration::from_millis(lease_ms),
                    Ok(Err(wit::StoreError::StaleLease(_))) => lost = true,
                    // The backend is busy or down: try again at the next tick.
                    _ => {}
                }
            }
        }
    };
    if lost || Instant::now() >= expires {
        late(&queues, &queue, &leased, &ticket, "the lease expired while the call ran").await;
        return;
    }
    match result {
        Ok(_) => {
            match queues.call(Op::Ack { queue: queue.clone(), lease: leased.lease.clone() }).await {
                Ok(Ok(_)) => {
                    bump(&queues.counters.done);
                    publish(&queues, super::TASK_DONE, &queue, &leased, &ticket, json!({}));
                }
                Ok(Err(wit::StoreError::StaleLease(why))) => late(&queues, &queue, &leased, &ticket, &why).await,
                // Not acked: the lease expires and the task runs again.
                Ok(Err(e)) => tracing::warn!(queue, id = leased.id, "the ack was not taken: {e:?}"),
                Err(e) => tracing::warn!(queue, id = leased.id, "the ack was not taken: {e}"),
            }
        }
        Err(Failure::Terminal(why)) => terminate(&queues, &queue, &leased, Some(&ticket), &why).await,
        Err(Failure::Retry(why, at_least)) => {
            let delay = backoff(&queues.config, leased.attempt).max(at_least.unwrap_or(0));
            let op = Op::Nak { queue: queue.clone(), lease: leased.lease.clone(), delay_ms: delay, error: why.clone() };
            match queues.call(op).await {
                Ok(Ok(Reply::Naked(wit::NakOutcome::RetryAt(at)))) => {
                    bump(&queues.counters.retried);
                    let extra = json!({"error": why, "retry-at-ms": at, "delay-ms": delay});
                    publish(&queues, super::TASK_RETRY, &queue, &leased, &ticket, extra);
                }
                Ok(Ok(_)) => {
                    bump(&queues.counters.dead);
                    publish(&queues, super::TASK_DEAD, &queue, &leased, &ticket, json!({"error": why}));
                }
                Ok(Err(wit::StoreError::StaleLease(stale))) => late(&queues, &queue, &leased, &ticket, &stale).await,
                Ok(Err(e)) => tracing::warn!(queue, id = leased.id, "the nak was not taken: {e:?}"),
                Err(e) => tracing::warn!(queue, id = leased.id, "the nak was not taken: {e}"),
            }
        }
    }
}

/// The delay before run `attempt + 1`: `retry-base-ms` doubled per
/// attempt, at most `retry-max-ms`.
fn backoff(config: &super::QueuesConfig, attempt: u32) -> u64 {
    let doublings = attempt.saturating_sub(1).min(32);
    config.retry_base_ms.saturating_mul(1u64 << doublings).min(config.retry_max_ms)
}

/// The ticket of `leased`, if it opens for `queue` with a key this host
/// trusts.
fn open(queues: &Queues, queue: &str, leased: &wit::Leased) -> Result<Ticket, String> {
    let trusted: Vec<&str> = queues.trusted.iter().map(String::as_str).collect();
    Ticket::open(&leased.task.ticket, &leased.task.signature, queue, &trusted)
}

/// Call the ticket's tool as its caller, on the ticket's digest.
async fn call(queues: &Queues, ticket: &Ticket) -> Result<serde_json::Value, Failure> {
    let bound = queues.bound.get().ok_or_else(|| Failure::Retry("the host is starting".into(), None))?;
    let (Some(runtime), Some(routes), Some(rollback)) =
        (bound.runtime.upgrade(), bound.routes.upgrade(), bound.rollback.upgrade())
    else {
        return Err(Failure::Retry("the host is stopping".into(), None));
    };
    let slot = routes.component(&ticket.component).filter(|slot| {
        let active = slot.active();
        active.digest == ticket.digest && active.tool().is_some_and(|t| t.name == ticket.tool)
    });
    let Some(slot) = slot else {
        // Swapped, removed, or not on this host: another may have it, or
        // it comes back; after max-attempts the task is dead with this.
        return Err(Failure::Retry(
            format!(
                "tool `{}` of `{}` with digest {} is not active on this host",
                ticket.tool, ticket.component, ticket.digest
            ),
            None,
        ));
    };
    let (principal, tags) = ticket.caller.principal();
    let gates = runtime.chokepoint.gates();
    if gates.active() {
        let mut request =
            GateRequest::new(keys::TOOL_INGRESS.key(&ticket.tool), Arc::new(GateCaller::of(&principal, tags)));
        request.target =
            GateTarget { tool: Some(ticket.tool.clone()), component: Some(slot.id.clone()), ..Default::default() };
        request.size = ticket.input.len() as u64;
        if let Err(denied) = gates.check(&request).await {
            return Err(failure(CallError::from(denied)));
        }
    }
    let who = runtime.chokepoint.authorizer().principal(principal);
    let component = slot.active();
    let started = std::time::Instant::now();
    let result = runtime.invoke(&who, &component, &ticket.input, &RequestContext::default()).await;
    runtime.observe_tool(&ticket.tool, started, &result);
    rollback.observe(&slot, &component, matches!(&result, Err(e) if e.is_fault()));
    result.map_err(failure)
}

/// Which failures are for good.
fn failure(error: CallError) -> Failure {
    let why = format!("{}: {error}", error.code());
    match &error {
        CallError::Denied(_)
        | CallError::InvalidInput(_)
        | CallError::SchemaViolation { .. }
        | CallError::UnknownTool { .. } => Failure::Terminal(why),
        CallError::Gated(denied) => match (denied.code(), denied.retry_after_ms()) {
            ("gate-denied", _) => Failure::Terminal(why),
            (_, retry_after) => Failure::Retry(why, retry_after),
        },
        _ => Failure::Retry(why, None),
    }
}

async fn terminate(queues: &Queues, queue: &str, leased: &wit::Leased, ticket: Option<&Ticket>, why: &str) {
    let op = Op::Term { queue: queue.to_string(), lease: leased.lease.clone(), error: why.to_string() };
    match queues.call(op).await {
        Ok(Ok(_)) => {
            bump(&queues.counters.dead);
            let mut payload = json!({"queue": queue, "id": leased.id, "attempt": leased.attempt, "error": why});
            if let Some(ticket) = ticket {
                payload["tool"] = json!(ticket.tool);
                payload["caller"] = json!(ticket.caller.name());
            }
            host_event(queues, super::TASK_DEAD, &payload);
        }
        Ok(Err(wit::StoreError::StaleLease(_))) => bump(&queues.counters.late),
        Ok(Err(e)) => tracing::warn!(queue, id = leased.id, "the term was not taken: {e:?}"),
        Err(e) => tracing::warn!(queue, id = leased.id, "the term was not taken: {e}"),
    }
}

async fn late(queues: &Queues, queue: &str, leased: &wit::Leased, ticket: &Ticket, why: &str) {
    bump(&queues.counters.late);
    tracing::warn!(queue, id = leased.id, "a task's call finished after its lease: not acked ({why})");
    publish(queues, super::TASK_LATE, queue, leased, ticket, json!({"error": why}));
}

/// A host event about a task: queue, id, attempt, tool, caller, when the
/// backend leased it, this node, and `extra`.
fn publish(queues: &Queues, topic: &str, queue: &str, leased: &wit::Leased, ticket: &Ticket, extra: serde_json::Value) {
    let mut payload = json!({
        "queue": queue,
        "id": leased.id,
        "attempt": leased.attempt,
        "leased-ms": leased.leased_ms,
        "tool": ticket.tool,
        "caller": ticket.caller.name(),
        "at-ms": now_ms(),
    });
    if let (Some(map), serde_json::Value::Object(extra)) = (payload.as_object_mut(), extra) {
        map.extend(extra);
    }
    host_event(queues, topic, &payload);
}

fn host_event(queues: &Queues, topic: &str, payload: &serde_json::Value) {
    let Some(runtime) = queues.bound.get().and_then(|b| b.runtime.upgrade()) else { return };
    let _ = runtime.capabilities.bus.publish_host(topic, Payload::Json(payload.to_string()));
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;

    use super::*;
    use crate::source::{ComponentPackage, ComponentSource};
    use crate::{Host, HostConfig, LoadError};

    #[test]
    fn backoff_doubles_from_the_base_to_the_cap() {
        let config = super::super::QueuesConfig { retry_base_ms: 100, retry_max_ms: 1_000, ..Default::default() };
        let delays: Vec<u64> = (1..=6).map(|a| super::backoff(&config, a)).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(super::backoff(&config, u32::MAX), 1_000);
    }

    struct Packages(Vec<ComponentPackage>);

    impl ComponentSource for Packages {
        fn describe(&self) -> String {
            "test".into()
        }
        fn packages(&self) -> Vec<Result<ComponentPackage, LoadError>> {
            self.0.iter().cloned().map(Ok).collect()
        }
    }

    fn package(manifest: &str, wasm: &'static [u8]) -> ComponentPackage {
        ComponentPackage {
            manifest: crate::Manifest::parse(manifest).unwrap_or_else(|e| panic!("{e}")),
            wasm: Cow::Borrowed(wasm),
            origin: "test".into(),
            publisher: Some("test".into()),
        }
    }

    /// A call that outlives its lease (here: the backend's lease is 50 ms,
    /// the worker never extends it) is not a success: the ack is refused
    /// as stale, counted `late`, and the task is handed out again.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_ack_after_the_lease_expired_is_refused_and_counted() {
        let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut config = HostConfig { state_dir: Some(state.path().to_path_buf()), ..HostConfig::default() };
        config.queues.serve = Vec::new();
        let schema = arw_policy::schema::embedded().unwrap_or_else(|e| panic!("{e}"));
        let policy = r#"
            permit(principal == Arw::Component::"arw:queue-local", action in [Arw::Action::"kv.read", Arw::Action::"kv.write", Arw::Action::"config.read"], resource);
            permit(principal in Arw::Role::"operator", action == Arw::Action::"tool.invoke", resource);
        "#;
        let policies = arw_policy::PolicySet::from_sources(&schema, [arw_policy::PolicySource::new("p.cedar", policy)])
            .unwrap_or_else(|e| panic!("{e}"));
        let source = Packages(vec![
            package("id = \"test:probe\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n", arw_artifacts::PROBE.bytes),
            package(include_str!("../../../../manifests/queue-local.toml"), arw_artifacts::QUEUE_LOCAL.bytes),
        ]);
        let (host, refused) = Host::start(config, policies, &source).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(refused.is_empty(), "{refused:?}");
        let queues: Arc<Queues> = host.runtime.capabilities.queues.clone();
        let operator = super::super::TicketCaller::of(&arw_policy::Principal::local_operator(), &[]);
        let task = super::super::NewTask {
            tool: "probe".into(),
            input: r#"{"op": "sleep", "ms": 300}"#.into(),
            ..Default::default()
        };
        let pushed = queues.push("q", operator, task).await.unwrap_or_else(|e| panic!("{e}"));
        let lease = |lease_ms| Op::Lease { queue: "q".into(), max: 1, lease_ms };
        let leased = match queues.call(lease(50)).await {
            Ok(Ok(Reply::Leased(mut list))) if list.len() == 1 => list.remove(0),
            other => panic!("one task leased: {other:?}"),
        };
        assert_eq!((leased.id.as_str(), leased.attempt), (pushed.id.as_str(), 1));
        let slot = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap_or_else(|e| panic!("{e}"));
        run(queues.clone(), "q".into(), leased, slot).await;
        let counts = queues.counts();
        assert_eq!((counts.done, counts.late), (0, 1), "{counts:?}");
        // Handed out again: its second run.
        match queues.call(lease(10_000)).await {
            Ok(Ok(Reply::Leased(list))) => {
                assert_eq!(
                    list.iter().map(|l| (l.id.as_str(), l.attempt)).collect::<Vec<_>>(),
                    [(pushed.id.as_str(), 2)]
                );
            }
            other => panic!("leased again: {other:?}"),
        }
        host.shutdown(std::time::Duration::from_secs(5)).await;
    }
}
