//! `arw:queue-jetstream`: the queue backend for several hosts
//! (`docs/queues.md`), on NATS JetStream through `arw:host/jetstream`.
//!
//! Per queue `q` (its name as one subject token `t`: `_` → `__`, `.` →
//! `_d`):
//!
//! - stream `ARW-TASKS-t`, work-queue retention, subjects
//!   `arw.tasks.t.ready.<band>` and `arw.tasks.t.sched.<id>`, with the
//!   server's de-duplication window (`Nats-Msg-Id` = the task's
//!   `idem-key`) and schedules (`not-before`: a `Nats-Schedule: @at`
//!   message that the server turns into a ready one at that time);
//! - one durable pull consumer per priority band (`<consumer>-high` for
//!   priority above 0, `-normal` for 0, `-low` below), explicit ack,
//!   `ack_wait` = the host's lease; a lease takes from the highest band
//!   first;
//! - stream `ARW-DEAD-t` (limits retention, at most `max-dead`), subject
//!   `arw.tasks.t.dead`: the dead-letter queue, each with its last error.
//!
//! A lease's token is the message's reply subject. Retries are
//! `Nak(delay)`, extensions `Progress`, the dead-letter queue a publish
//! and then `Term`. This instance remembers when each lease it gave
//! ends, and refuses an ack, nak or extension after that (less
//! `lease-margin-ms`, for the time the delivery took): the server would
//! take a late ack, and a late ack must never count as a success. Leases
//! pass to a successor at a swap (`snapshot`); after a restart they are
//! unknown, so their acks are refused and the tasks run again when the
//! server redelivers them.

wit_bindgen::generate!({ path: "../../wit", world: "arw:host/queue-backend" });

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use arw::host::{config, jetstream};
use exports::arw::host::queue_store::{
    DeadTask, Guest, Leased, NakOutcome, PushOutcome, QueueCounts, StoreError, Task,
};
use serde::{Deserialize, Serialize};

const BANDS: [&str; 3] = ["high", "normal", "low"];

#[derive(Debug, Clone)]
struct Settings {
    consumer: String,
    dedup_window_ms: u64,
    max_messages: u64,
    max_dead: u64,
    lease_margin_ms: u64,
}

impl Settings {
    fn read() -> Settings {
        let text = |key: &str| config::get(key).ok().flatten();
        let number = |key: &str, default: u64| text(key).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(default);
        Settings {
            consumer: text("consumer").unwrap_or_else(|| "workers".into()),
            dedup_window_ms: number("dedup-window-ms", 120_000),
            max_messages: number("max-messages", 1_000_000),
            max_dead: number("max-dead", 10_000),
            lease_margin_ms: number("lease-margin-ms", 250),
        }
    }
}

/// The host's task, as it travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct StoredTask {
    idem_key: Option<String>,
    priority: i32,
    not_before_ms: u64,
    max_attempts: u32,
    ticket: String,
    signature: String,
    enqueued_ms: u64,
}

impl From<Task> for StoredTask {
    fn from(t: Task) -> Self {
        StoredTask {
            idem_key: t.idem_key,
            priority: t.priority,
            not_before_ms: t.not_before_ms,
            max_attempts: t.max_attempts,
            ticket: t.ticket,
            signature: t.signature,
            enqueued_ms: t.enqueued_ms,
        }
    }
}

impl From<&StoredTask> for Task {
    fn from(t: &StoredTask) -> Self {
        Task {
            idem_key: t.idem_key.clone(),
            priority: t.priority,
            not_before_ms: t.not_before_ms,
            max_attempts: t.max_attempts,
            ticket: t.ticket.clone(),
            signature: t.signature.clone(),
            enqueued_ms: t.enqueued_ms,
        }
    }
}

/// A message of the work stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Envelope {
    id: String,
    task: StoredTask,
}

/// A message of the dead-letter stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Dead {
    id: String,
    attempts: u32,
    error: String,
    dead_ms: u64,
    task: StoredTask,
}

/// A lease this instance gave.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Lease {
    queue: String,
    id: String,
    attempt: u32,
    /// Acks are taken until then (the lease's end less the margin).
    until_ms: u64,
    task: StoredTask,
}

struct Backend {
    settings: Settings,
    /// Queues whose streams and consumers exist, with the lease they were
    /// made for.
    ready: HashMap<String, u64>,
    /// Reply subject → lease.
    leases: BTreeMap<String, Lease>,
    /// (until, reply), to forget old leases.
    by_end: BTreeSet<(u64, String)>,
    prefix: u64,
    counter: u64,
}

thread_local! {
    static BACKEND: RefCell<Option<Backend>> = const { RefCell::new(None) };
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn unavailable(e: arw::host::types::CapabilityError) -> StoreError {
    StoreError::Unavailable(format!("jetstream: {e:?}"))
}

/// `queue` as one subject token: `_` → `__`, `.` → `_d` (reversible, so
/// two queues never share one).
fn token(queue: &str) -> Result<String, StoreError> {
    let mut out = String::with_capacity(queue.len() + 4);
    for c in queue.chars() {
        match c {
            'a'..='z' | '0'..='9' | '-' => out.push(c),
            '_' => out.push_str("__"),
            '.' => out.push_str("_d"),
            _ => return Err(StoreError::Invalid(format!("`{queue}` is not a queue name"))),
        }
    }
    if out.is_empty() || out.len() > 54 {
        return Err(StoreError::Invalid(format!(
            "queue `{queue}` is too long for the JetStream backend (stream names are at most 64 characters)"
        )));
    }
    Ok(out)
}

struct Names {
    work: String,
    dead: String,
    token: String,
}

impl Names {
    fn of(queue: &str) -> Result<Names, StoreError> {
        let t = token(queue)?;
        Ok(Names { work: format!("ARW-TASKS-{t}"), dead: format!("ARW-DEAD-{t}"), token: t })
    }
    fn ready(&self, band: &str) -> String {
        format!("arw.tasks.{}.ready.{band}", self.token)
    }
    fn dead_subject(&self) -> String {
        format!("arw.tasks.{}.dead", self.token)
    }
}

fn band(priority: i32) -> &'static str {
    match priority {
        p if p > 0 => "high",
        0 => "normal",
        _ => "low",
    }
}

/// RFC 3339 (UTC, seconds) of Unix milliseconds, for `Nats-Schedule: @at`.
fn rfc3339(ms: u64) -> String {
    let secs = ms.div_ceil(1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// FNV-1a, for ids derived from an idem-key (so a duplicate names the
/// same id without asking the server).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl Backend {
    fn new() -> Backend {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u8(0);
        Backend {
            settings: Settings::read(),
            ready: HashMap::new(),
            leases: BTreeMap::new(),
            by_end: BTreeSet::new(),
            prefix: hasher.finish(),
            counter: 0,
        }
    }

    /// The queue's streams and consumers, made (or brought to this
    /// lease) once per instance.
    fn ensure(&mut self, queue: &str, lease_ms: Option<u64>) -> Result<Names, StoreError> {
        let names = Names::of(queue)?;
        let known = self.ready.get(queue).copied();
        let wanted = lease_ms.or(known).unwrap_or(30_000);
        if known == Some(wanted) {
            return Ok(names);
        }
        let s = &self.settings;
        jetstream::ensure_stream(&jetstream::StreamConfig {
            name: names.work.clone(),
            subjects: vec![format!("arw.tasks.{}.ready.*", names.token), format!("arw.tasks.{}.sched.*", names.token)],
            work_queue: true,
            max_messages: s.max_messages,
            duplicate_window_ms: s.dedup_window_ms,
            allow_schedules: true,
        })
        .map_err(unavailable)?;
        jetstream::ensure_stream(&jetstream::StreamConfig {
            name: names.dead.clone(),
            subjects: vec![names.dead_subject()],
            work_queue: false,
            max_messages: s.max_dead,
            duplicate_window_ms: s.dedup_window_ms,
            allow_schedules: false,
        })
        .map_err(unavailable)?;
        for b in BANDS {
            jetstream::ensure_consumer(&jetstream::ConsumerConfig {
                stream: names.work.clone(),
                name: format!("{}-{b}", s.consumer),
                filter_subject: names.ready(b),
                ack_wait_ms: wanted,
                max_deliver: 0,
                max_ack_pending: 0,
            })
            .map_err(unavailable)?;
        }
        self.ready.insert(queue.to_string(), wanted);
        Ok(names)
    }

    fn next_id(&mut self, queue: &str, task: &Task) -> String {
        match &task.idem_key {
            Some(key) => format!("k{:016x}", fnv(&format!("{queue}\n{key}"))),
            None => {
                self.counter += 1;
                format!("{:016x}{:08x}", self.prefix, self.counter)
            }
        }
    }

    fn push(&mut self, queue: &str, task: Task) -> Result<PushOutcome, StoreError> {
        let names = self.ensure(queue, None)?;
        let id = self.next_id(queue, &task);
        let now = now_ms();
        let target = names.ready(band(task.priority));
        let mut headers = Vec::new();
        if let Some(key) = &task.idem_key {
            headers.push(("Nats-Msg-Id".to_string(), key.clone()));
        }
        let subject = if task.not_before_ms > now + 1_000 {
            headers.push(("Nats-Schedule".to_string(), format!("@at {}", rfc3339(task.not_before_ms))));
            headers.push(("Nats-Schedule-Target".to_string(), target));
            format!("arw.tasks.{}.sched.{id}", names.token)
        } else {
            target
        };
        let payload = serde_json::to_vec(&Envelope { id: id.clone(), task: task.into() })
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let ack = jetstream::publish(&names.work, &subject, &payload, &headers).map_err(|e| match e {
            arw::host::types::CapabilityError::Unavailable(m) if m.contains("maximum messages") => StoreError::Full(m),
            other => unavailable(other),
        })?;
        Ok(if ack.duplicate { PushOutcome::Duplicate(id) } else { PushOutcome::Enqueued(id) })
    }

    fn bury(&self, names: &Names, id: &str, attempts: u32, error: &str, task: &StoredTask) -> Result<(), StoreError> {
        let dead =
            Dead { id: id.to_string(), attempts, error: error.to_string(), dead_ms: now_ms(), task: task.clone() };
        let payload = serde_json::to_vec(&dead).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let headers = vec![("Nats-Msg-Id".to_string(), format!("dead-{id}-{attempts}"))];
        jetstream::publish(&names.dead, &names.dead_subject(), &payload, &headers).map_err(unavailable)?;
        Ok(())
    }

    fn lease(&mut self, queue: &str, max: u32, lease_ms: u64) -> Result<Vec<Leased>, StoreError> {
        let names = self.ensure(queue, Some(lease_ms))?;
        let now = now_ms();
        self.forget(now);
        let mut out = Vec::new();
        for b in BANDS {
            let want = max.saturating_sub(out.len() as u32);
            if want == 0 {
                break;
            }
            let consumer = format!("{}-{b}", self.settings.consumer);
            let messages = jetstream::fetch(&names.work, &consumer, want, 0).map_err(unavailable)?;
            for message in messages {
                let Ok(envelope) = serde_json::from_slice::<Envelope>(&message.payload) else {
                    // Not ours: never delivered again.
                    let _ = jetstream::ack(&message.reply, jetstream::AckKind::Term);
                    continue;
                };
                let attempt = u32::try_from(message.delivered).unwrap_or(u32::MAX);
                if attempt > envelope.task.max_attempts {
                    let error =
                        format!("its lease expired on attempt {} of {}", attempt - 1, envelope.task.max_attempts);
                    self.bury(&names, &envelope.id, attempt - 1, &error, &envelope.task)?;
                    jetstream::ack(&message.reply, jetstream::AckKind::Term).map_err(unavailable)?;
                    continue;
                }
                let until = now.saturating_add(lease_ms).saturating_sub(self.settings.lease_margin_ms);
                out.push(Leased {
                    id: envelope.id.clone(),
                    lease: message.reply.clone(),
                    attempt,
                    leased_ms: now,
                    task: (&envelope.task).into(),
                    last_error: None,
                });
                self.hold(
                    message.reply,
                    Lease { queue: queue.to_string(), id: envelope.id, attempt, until_ms: until, task: envelope.task },
                );
            }
        }
        Ok(out)
    }

    fn hold(&mut self, reply: String, lease: Lease) {
        self.by_end.insert((lease.until_ms, reply.clone()));
        if let Some(old) = self.leases.insert(reply.clone(), lease) {
            self.by_end.remove(&(old.until_ms, reply));
        }
    }

    /// The lease `reply` names, if this instance gave it and it has not
    /// ended; taken out of the book.
    fn take(&mut self, queue: &str, reply: &str) -> Result<Lease, StoreError> {
        let now = now_ms();
        match self.leases.remove(reply) {
            Some(lease) if lease.queue == queue && lease.until_ms > now => {
                self.by_end.remove(&(lease.until_ms, reply.to_string()));
                Ok(lease)
            }
            Some(lease) => {
                self.by_end.remove(&(lease.until_ms, reply.to_string()));
                Err(StoreError::StaleLease(format!("the lease of task {} ended", lease.id)))
            }
            None => Err(StoreError::StaleLease("this backend gave no such lease (or it ended)".into())),
        }
    }

    /// Forget leases that ended a minute ago (their acks are refused
    /// either way).
    fn forget(&mut self, now: u64) {
        while let Some((until, reply)) = self.by_end.first().cloned() {
            if until.saturating_add(60_000) > now {
                break;
            }
            self.by_end.remove(&(until, reply.clone()));
            self.leases.remove(&reply);
        }
    }

    fn ack(&mut self, queue: &str, reply: &str) -> Result<(), StoreError> {
        let lease = self.take(queue, reply)?;
        jetstream::ack(reply, jetstream::AckKind::Ack).map_err(|e| {
            // Not confirmed: the server redelivers after ack-wait.
            let _ = lease;
            unavailable(e)
        })
    }

    fn fail(
        &mut self,
        queue: &str,
        reply: &str,
        delay_ms: Option<u64>,
        error: String,
    ) -> Result<NakOutcome, StoreError> {
        let lease = self.take(queue, reply)?;
        match delay_ms {
            Some(delay) if lease.attempt < lease.task.max_attempts => {
                jetstream::ack(reply, jetstream::AckKind::Nak(delay)).map_err(unavailable)?;
                Ok(NakOutcome::RetryAt(now_ms().saturating_add(delay)))
            }
            _ => {
                let names = Names::of(queue)?;
                self.bury(&names, &lease.id, lease.attempt, &error, &lease.task)?;
                jetstream::ack(reply, jetstream::AckKind::Term).map_err(unavailable)?;
                Ok(NakOutcome::Dead)
            }
        }
    }

    fn extend(&mut self, queue: &str, reply: &str, lease_ms: u64) -> Result<(), StoreError> {
        let mut lease = self.take(queue, reply)?;
        jetstream::ack(reply, jetstream::AckKind::Progress).map_err(unavailable)?;
        lease.until_ms = now_ms().saturating_add(lease_ms).saturating_sub(self.settings.lease_margin_ms);
        self.hold(reply.to_string(), lease);
        Ok(())
    }

    fn stats(&mut self, queue: &str) -> Result<QueueCounts, StoreError> {
        let names = self.ensure(queue, None)?;
        let (mut ready, mut leased) = (0, 0);
        for b in BANDS {
            let state = jetstream::consumer_info(&names.work, &format!("{}-{b}", self.settings.consumer))
                .map_err(unavailable)?;
            ready += state.pending;
            leased += state.ack_pending;
        }
        let stored = jetstream::stream_info(&names.work).map_err(unavailable)?.messages;
        let dead = jetstream::stream_info(&names.dead).map_err(unavailable)?.messages;
        Ok(QueueCounts { ready, delayed: stored.saturating_sub(ready + leased), leased, done: 0, dead })
    }

    fn dead(&mut self, queue: &str, limit: u32) -> Result<Vec<DeadTask>, StoreError> {
        let names = self.ensure(queue, None)?;
        let state = jetstream::stream_info(&names.dead).map_err(unavailable)?;
        let mut out = Vec::new();
        let mut sequence = state.last_sequence;
        while sequence >= state.first_sequence.max(1) && out.len() < limit as usize {
            if let Some(message) = jetstream::get_message(&names.dead, sequence).map_err(unavailable)?
                && let Ok(dead) = serde_json::from_slice::<Dead>(&message.payload)
            {
                out.push(DeadTask {
                    id: dead.id,
                    attempts: dead.attempts,
                    error: dead.error,
                    dead_ms: dead.dead_ms,
                    task: (&dead.task).into(),
                });
            }
            sequence -= 1;
        }
        Ok(out)
    }
}

fn with<T>(work: impl FnOnce(&mut Backend) -> Result<T, StoreError>) -> Result<T, StoreError> {
    BACKEND.with(|cell| {
        let mut backend = cell.borrow_mut();
        work(backend.get_or_insert_with(Backend::new))
    })
}

struct QueueJetstream;

impl Guest for QueueJetstream {
    fn push(queue: String, task: Task) -> Result<PushOutcome, StoreError> {
        with(|b| b.push(&queue, task))
    }

    fn lease(queue: String, max: u32, lease_ms: u64) -> Result<Vec<Leased>, StoreError> {
        with(|b| b.lease(&queue, max, lease_ms))
    }

    fn ack(queue: String, lease: String) -> Result<(), StoreError> {
        with(|b| b.ack(&queue, &lease))
    }

    fn nak(queue: String, lease: String, delay_ms: u64, error: String) -> Result<NakOutcome, StoreError> {
        with(|b| b.fail(&queue, &lease, Some(delay_ms), error))
    }

    fn term(queue: String, lease: String, error: String) -> Result<(), StoreError> {
        with(|b| b.fail(&queue, &lease, None, error)).map(|_| ())
    }

    fn extend(queue: String, lease: String, lease_ms: u64) -> Result<(), StoreError> {
        with(|b| b.extend(&queue, &lease, lease_ms))
    }

    fn stats(queue: String) -> Result<QueueCounts, StoreError> {
        with(|b| b.stats(&queue))
    }

    fn dead(queue: String, limit: u32) -> Result<Vec<DeadTask>, StoreError> {
        with(|b| b.dead(&queue, limit))
    }
}

impl exports::arw::host::lifecycle::Guest for QueueJetstream {
    fn tick() -> Result<(), String> {
        with(|b| {
            b.forget(now_ms());
            Ok(())
        })
        .map_err(|e| format!("{e:?}"))
    }

    /// The leases this instance gave, so their acks stay valid after a swap.
    fn snapshot() -> Result<Vec<u8>, String> {
        BACKEND.with(|cell| match cell.borrow().as_ref() {
            Some(b) => serde_json::to_vec(&b.leases).map_err(|e| e.to_string()),
            None => Ok(Vec::new()),
        })
    }

    fn restore(state: Vec<u8>) -> Result<(), String> {
        if state.is_empty() {
            return Ok(());
        }
        let leases: BTreeMap<String, Lease> = serde_json::from_slice(&state).map_err(|e| e.to_string())?;
        with(|b| {
            for (reply, lease) in leases {
                b.hold(reply, lease);
            }
            Ok(())
        })
        .map_err(|e| format!("{e:?}"))
    }
}

export!(QueueJetstream);
