//! Work queues (`docs/queues.md`): tasks stored by a backend component,
//! run by the host's workers.
//!
//! A task is "call tool T (component and digest) with input J as caller
//! P". The flow is one way:
//!
//! 1. **enqueue** — a caller (`POST /queues/{name}/tasks`, `arw queue
//!    push`, [`crate::Host::enqueue`]) or a component (`arw:host/queue`)
//!    is authorized (`queue.enqueue` on the queue, `tool.invoke` on the
//!    tool); this service writes the [`ticket`] (what, as whom), signs it
//!    with the node key and pushes it to the backend;
//! 2. **store** — the backend (`[queues] backend`, a `queue-backend`
//!    component: `arw:queue-local` by default) keeps it durably, with
//!    priority, delayed visibility, `idem-key` de-duplication and leases;
//! 3. **work** — the [`worker`] of each served queue leases tasks, opens
//!    each ticket (signature, trusted signer, queue), runs the tool as the
//!    ticket's caller (Cedar and the gates decide again, on this host),
//!    extends the lease while it runs, and acks, naks with a delay, or
//!    terminates it to the dead-letter queue.
//!
//! Delivery is at least once: a crash or an expired lease runs a task
//! again; an ack after the lease expired is refused and counted
//! (`late`), never a second success.

pub mod ticket;
mod worker;

pub(crate) use worker::spawn as spawn_workers;

pub use crate::capabilities::queue::QueuesConfig;
pub use ticket::{Ticket, TicketCaller};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{Notify, oneshot};

use crate::authz::Denied;
use crate::cluster::node_key::NodeKey;
use crate::host::RouteTable;
use crate::host::control::Rollback;
use crate::roles::Worker;
use crate::roles::queue_backend::{Answered, Op, Reply, wit};
use crate::roles::resident::Command;
use crate::runtime::Runtime;

/// A task ran and was acked.
pub const TASK_DONE: &str = "queue.task.done";
/// A task failed and will run again after a delay.
pub const TASK_RETRY: &str = "queue.task.retry";
/// A task went to the dead-letter queue.
pub const TASK_DEAD: &str = "queue.task.dead";
/// A task's call finished after its lease expired: not acked (it runs
/// again, or ran again already).
pub const TASK_LATE: &str = "queue.task.late";

/// The longest queue name, tool name and `idem-key`, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
pub const MAX_IDEM_KEY_BYTES: usize = 256;
/// Dead tasks listed at most at once.
pub const MAX_DEAD_LISTED: u32 = 1_000;

/// Is `name` a queue name: `[a-z0-9_-]` segments separated by `.`?
pub fn check_name(name: &str) -> Result<(), String> {
    let segments_ok = name.split('.').all(|s| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    });
    if name.is_empty() || name.len() > MAX_NAME_BYTES || !segments_ok {
        return Err(format!(
            "a queue name is 1 to {MAX_NAME_BYTES} bytes of `a-z`, `0-9`, `-` and `_`, in segments separated by `.`"
        ));
    }
    Ok(())
}

/// A task to enqueue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTask {
    pub tool: String,
    /// JSON.
    pub input: String,
    pub idem_key: Option<String>,
    /// Higher runs sooner.
    pub priority: i32,
    /// Not before this time (Unix milliseconds).
    pub not_before_ms: Option<u64>,
    pub max_attempts: Option<u32>,
}

/// What an enqueue came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Enqueued {
    pub queue: String,
    /// The backend's id of the task.
    pub id: String,
    /// An earlier task with the same `idem-key` stands for this one.
    pub duplicate: bool,
}

/// Why a task was not enqueued (or a queue not read).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("{0}")]
    UnknownTool(String),
    #[error("queue `{queue}` is full: {message}")]
    Full { queue: String, message: String },
    #[error(
        "this host has no queue backend: `{backend}` (`[queues] backend`) is not loaded; install it (`arw install {backend}`) or name one that is"
    )]
    NoBackend { backend: String },
    #[error("the queue backend `{backend}` is not available: {message}")]
    Unavailable { backend: String, message: String },
}

impl QueueError {
    /// A stable code for problem documents and CLI errors.
    pub fn code(&self) -> &'static str {
        match self {
            QueueError::Invalid(_) => "invalid-task",
            QueueError::TooLarge(_) => "too-large",
            QueueError::Denied(_) => "denied",
            QueueError::UnknownTool(_) => "unknown-tool",
            QueueError::Full { .. } => "queue-full",
            QueueError::NoBackend { .. } => "no-queue-backend",
            QueueError::Unavailable { .. } => "queue-unavailable",
        }
    }
}

/// A queue's tasks by state, as its backend counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct QueueStats {
    pub ready: u64,
    pub delayed: u64,
    pub leased: u64,
    pub done: u64,
    pub dead: u64,
}

/// A task in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DeadTask {
    pub id: String,
    pub attempts: u32,
    /// What its last run failed with.
    pub error: String,
    pub dead_ms: u64,
    pub tool: String,
    pub caller: String,
    pub input: String,
    pub idem_key: Option<String>,
    pub enqueued_ms: u64,
}

/// What this host's queue service has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct QueueCounts {
    pub enqueued: u64,
    pub duplicates: u64,
    pub done: u64,
    pub retried: u64,
    pub dead: u64,
    /// Calls that finished after their lease expired (not acked).
    pub late: u64,
    /// Tasks whose ticket did not open (bad signature, untrusted signer,
    /// another queue's): terminated without running.
    pub rejected: u64,
}

#[derive(Debug, Default)]
struct Counters {
    enqueued: AtomicU64,
    duplicates: AtomicU64,
    done: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    late: AtomicU64,
    rejected: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What the service reaches once the host is built (all weak: the
/// runtime owns the capabilities, which own this service).
#[derive(Debug)]
struct Bound {
    runtime: Weak<Runtime>,
    routes: Weak<RouteTable>,
    rollback: Weak<Rollback>,
    workers: Weak<Mutex<BTreeMap<String, Worker>>>,
}

/// The host's queue service: the `queue` capability's shared state.
pub struct Queues {
    config: QueuesConfig,
    key: NodeKey,
    /// Public keys whose tickets workers open: this host's, and
    /// `cluster.trusted-nodes`.
    trusted: Vec<String>,
    bound: OnceLock<Bound>,
    counters: Counters,
    /// Wakes this host's idle workers when a task is pushed here.
    wake: Notify,
}

impl std::fmt::Debug for Queues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queues").field("backend", &self.config.backend).field("serve", &self.config.serve).finish()
    }
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Queues {
    /// The service of `config`, with the node key of `state_dir` (made if
    /// there is none).
    pub(crate) fn new(
        config: QueuesConfig,
        state_dir: &std::path::Path,
        trusted_nodes: &[String],
    ) -> Result<Self, crate::HostError> {
        let key = NodeKey::load_or_create(state_dir).map_err(|e| crate::HostError::Config(e.to_string()))?;
        let mut trusted = vec![key.public().to_string()];
        trusted.extend(trusted_nodes.iter().map(|k| k.to_ascii_lowercase()));
        Ok(Queues { config, key, trusted, bound: OnceLock::new(), counters: Counters::default(), wake: Notify::new() })
    }

    pub(crate) fn bind(
        &self,
        runtime: &Arc<Runtime>,
        routes: &Arc<RouteTable>,
        rollback: &Arc<Rollback>,
        workers: &Arc<Mutex<BTreeMap<String, Worker>>>,
    ) {
        let _ = self.bound.set(Bound {
            runtime: Arc::downgrade(runtime),
            routes: Arc::downgrade(routes),
            rollback: Arc::downgrade(rollback),
            workers: Arc::downgrade(workers),
        });
    }

    pub fn config(&self) -> &QueuesConfig {
        &self.config
    }

    /// This host's node key's public half (hex): what its tickets name.
    pub fn signer(&self) -> &str {
        self.key.public()
    }

    pub fn counts(&self) -> QueueCounts {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let c = &self.counters;
        QueueCounts {
            enqueued: n(&c.enqueued),
            duplicates: n(&c.duplicates),
            done: n(&c.done),
            retried: n(&c.retried),
            dead: n(&c.dead),
            late: n(&c.late),
            rejected: n(&c.rejected),
        }
    }

    fn unavailable(&self, message: impl Into<String>) -> QueueError {
        QueueError::Unavailable { backend: self.config.backend.clone(), message: message.into() }
    }

    /// Check a task before anything is asked: the queue's name, the tool's,
    /// the input (JSON, within `queues.max-input-bytes`), the key, the
    /// attempts.
    pub fn check(&self, queue: &str, task: &NewTask) -> Result<(), QueueError> {
        check_name(queue).map_err(|why| QueueError::Invalid(format!("queue `{}`: {why}", shown(queue))))?;
        if task.tool.is_empty() || task.tool.len() > MAX_NAME_BYTES {
            return Err(QueueError::Invalid(format!("the tool name must be 1 to {MAX_NAME_BYTES} bytes")));
        }
        let max = self.config.max_input_bytes;
        if task.input.len() > max {
            return Err(QueueError::TooLarge(format!(
                "the input is {} bytes, over queues.max-input-bytes ({max})",
                task.input.len()
            )));
        }
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&task.input) {
            return Err(QueueError::Invalid(format!("the input is not JSON: {e}")));
        }
        if let Some(key) = &task.idem_key
            && (key.is_empty() || key.len() > MAX_IDEM_KEY_BYTES || key.chars().any(char::is_control))
        {
            return Err(QueueError::Invalid(format!(
                "idem-key must be 1 to {MAX_IDEM_KEY_BYTES} bytes without control characters"
            )));
        }
        if let Some(attempts) = task.max_attempts
            && !(1..=100).contains(&attempts)
        {
            return Err(QueueError::Invalid(format!("max-attempts = {attempts} must be 1 to 100")));
        }
        Ok(())
    }

    /// Sign and push `task` for `caller` (authorized already). The task
    /// names the tool's current provider and digest.
    pub(crate) async fn push(&self, queue: &str, caller: TicketCaller, task: NewTask) -> Result<Enqueued, QueueError> {
        self.check(queue, &task)?;
        let bound = self.bound.get().ok_or_else(|| self.unavailable("the host is starting"))?;
        let (runtime, routes) = match (bound.runtime.upgrade(), bound.routes.upgrade()) {
            (Some(runtime), Some(routes)) => (runtime, routes),
            _ => return Err(self.unavailable("the host is stopping")),
        };
        let provider = routes.tool(&task.tool).ok_or_else(|| {
            QueueError::UnknownTool(format!(
                "no tool named `{}` on this host (a task names the component and digest that provide it)",
                shown(&task.tool)
            ))
        })?;
        let version = provider.active();
        // What would be refused when it runs is refused now.
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&task.input) {
            let violations = version.schema_violations(&value);
            if !violations.is_empty() {
                return Err(QueueError::Invalid(format!(
                    "the input does not match the input schema of `{}`: {}",
                    shown(&task.tool),
                    violations.join("; ")
                )));
            }
        }
        let now = now_ms();
        let ticket = Ticket {
            v: ticket::VERSION,
            node: runtime.config.node.id.clone(),
            signer: self.key.public().to_string(),
            queue: queue.to_string(),
            tool: task.tool,
            component: version.id().to_string(),
            digest: version.digest.clone(),
            input: task.input,
            caller,
            iat_ms: now,
        };
        let (text, signature) = ticket.sign(&self.key).map_err(QueueError::Invalid)?;
        let stored = wit::Task {
            idem_key: task.idem_key,
            priority: task.priority,
            not_before_ms: task.not_before_ms.unwrap_or(now),
            max_attempts: task.max_attempts.unwrap_or(self.config.max_attempts),
            ticket: text,
            signature,
            enqueued_ms: now,
        };
        let reply = self.backend(queue, Op::Push { queue: queue.to_string(), task: stored }).await?;
        let (id, duplicate) = match reply {
            Reply::Pushed(wit::PushOutcome::Enqueued(id)) => (id, false),
            Reply::Pushed(wit::PushOutcome::Duplicate(id)) => (id, true),
            _ => return Err(self.unavailable("the backend answered a push with something else")),
        };
        bump(if duplicate { &self.counters.duplicates } else { &self.counters.enqueued });
        if !duplicate && self.config.serve.iter().any(|q| q == queue) {
            self.wake.notify_waiters();
        }
        Ok(Enqueued { queue: queue.to_string(), id, duplicate })
    }

    /// A queue's counts.
    pub async fn stats(&self, queue: &str) -> Result<QueueStats, QueueError> {
        check_name(queue).map_err(|why| QueueError::Invalid(format!("queue `{}`: {why}", shown(queue))))?;
        match self.backend(queue, Op::Stats { queue: queue.to_string() }).await? {
            Reply::Stats(s) => {
                Ok(QueueStats { ready: s.ready, delayed: s.delayed, leased: s.leased, done: s.done, dead: s.dead })
            }
            _ => Err(self.unavailable("the backend answered stats with something else")),
        }
    }

    /// A queue's dead tasks, newest first, at most `limit` (at most
    /// [`MAX_DEAD_LISTED`]).
    pub async fn dead(&self, queue: &str, limit: u32) -> Result<Vec<DeadTask>, QueueError> {
        check_name(queue).map_err(|why| QueueError::Invalid(format!("queue `{}`: {why}", shown(queue))))?;
        let limit = limit.min(MAX_DEAD_LISTED);
        let list = match self.backend(queue, Op::Dead { queue: queue.to_string(), limit }).await? {
            Reply::Dead(list) => list,
            _ => return Err(self.unavailable("the backend answered dead with something else")),
        };
        Ok(list
            .into_iter()
            .take(limit as usize)
            .map(|d| {
                // Shown as stored: an unreadable ticket is shown as such.
                let ticket: Option<Ticket> = serde_json::from_str(&d.task.ticket).ok();
                DeadTask {
                    id: d.id,
                    attempts: d.attempts,
                    error: d.error,
                    dead_ms: d.dead_ms,
                    tool: ticket.as_ref().map_or_else(|| "(unreadable ticket)".into(), |t| t.tool.clone()),
                    caller: ticket.as_ref().map_or_else(String::new, |t| t.caller.name().to_string()),
                    input: ticket.map_or_else(String::new, |t| t.input),
                    idem_key: d.task.idem_key,
                    enqueued_ms: d.task.enqueued_ms,
                }
            })
            .collect())
    }

    /// One call of the backend, in its turn (waiting at most
    /// `queues.backend-timeout-ms` for it). Its own errors are mapped;
    /// a stale lease is the caller's to read ([`Queues::lease_call`]).
    async fn backend(&self, queue: &str, op: Op) -> Result<Reply, QueueError> {
        match self.call(op).await? {
            Ok(reply) => Ok(reply),
            Err(wit::StoreError::Invalid(m)) => Err(QueueError::Invalid(m)),
            Err(wit::StoreError::Full(m)) => Err(QueueError::Full { queue: queue.to_string(), message: m }),
            Err(wit::StoreError::StaleLease(m) | wit::StoreError::Unavailable(m)) => Err(self.unavailable(m)),
        }
    }

    /// Enter the backend once with `op`.
    pub(crate) async fn call(&self, op: Op) -> Result<Answered, QueueError> {
        let workers = self
            .bound
            .get()
            .and_then(|b| b.workers.upgrade())
            .ok_or_else(|| self.unavailable("the host is stopping"))?;
        let commands = workers.lock().get(&self.config.backend).and_then(|w| w.commands.clone());
        drop(workers);
        let commands = commands.ok_or_else(|| QueueError::NoBackend { backend: self.config.backend.clone() })?;
        let (reply, answer) = oneshot::channel();
        let wait = Duration::from_millis(self.config.backend_timeout_ms);
        match tokio::time::timeout(wait, commands.send(Command::Queue { op: Box::new(op), reply })).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(self.unavailable("it stopped")),
            Err(_) => {
                return Err(self.unavailable(format!(
                    "it did not take the call within queues.backend-timeout-ms ({} ms)",
                    self.config.backend_timeout_ms
                )));
            }
        }
        match answer.await {
            Ok(Ok(answered)) => Ok(answered),
            Ok(Err(why)) => Err(self.unavailable(why)),
            Err(_) => Err(self.unavailable("it stopped before it answered")),
        }
    }
}

/// `text` cut for a message.
fn shown(text: &str) -> String {
    crate::authz::shown(text, 64)
}
