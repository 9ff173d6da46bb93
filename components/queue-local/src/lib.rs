//! `arw:queue-local`: the default queue backend (`docs/queues.md`), on the
//! host's kv (redb, committed before each call returns).
//!
//! Each task is one kv value, `t/<queue>/<id>` in namespace `queue-local`,
//! holding everything about it (the host's task, its state, attempts,
//! lease, last error): every change is one atomic write, so a `kill -9`
//! at any point leaves each task either before or after the change, never
//! between. The indexes (priority order, delays, leases, idem keys) live
//! in memory and are rebuilt from the values the first time a queue is
//! used after a start, a restart after a fault, or a swap.
//!
//! - **Order:** highest priority first, then oldest id (ids grow with
//!   enqueue order, so equal priorities are FIFO; a retried task keeps its
//!   place).
//! - **Leases:** `lease` marks a task leased until now + `lease-ms`, with
//!   the token `<id>.<attempt>`; an expired lease makes it visible again
//!   (that attempt counted), or dead if it was the last. A token that is
//!   not the task's current one, or whose lease expired, is stale.
//! - **`idem-key`:** unique among the queue's queued, leased and done
//!   tasks; done ones are remembered `dedup-window-ms` (config), then
//!   forgotten.
//! - **Bounds:** `max-tasks` queued or leased per queue (then `full`),
//!   `max-dead` dead tasks per queue (the oldest go first).

wit_bindgen::generate!({ path: "../../wit", world: "arw:host/queue-backend" });

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use arw::host::{config, kv};
use exports::arw::host::queue_store::{
    DeadTask, Guest, Leased, NakOutcome, PushOutcome, QueueCounts, StoreError, Task,
};
use serde::{Deserialize, Serialize};

const NAMESPACE: &str = "queue-local";

/// Settings from the manifest's `[config]`, read once per instance.
#[derive(Debug, Clone, Copy)]
struct Settings {
    max_tasks: usize,
    max_dead: usize,
    dedup_window_ms: u64,
}

impl Settings {
    fn read() -> Settings {
        let number = |key: &str, default: u64| {
            config::get(key).ok().flatten().and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(default)
        };
        Settings {
            max_tasks: number("max-tasks", 100_000) as usize,
            max_dead: number("max-dead", 10_000) as usize,
            dedup_window_ms: number("dedup-window-ms", 120_000),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum State {
    Ready,
    Leased,
    Done,
    Dead,
}

/// The host's task, as stored.
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

/// One task with everything about it: one kv value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Record {
    id: u64,
    task: StoredTask,
    state: State,
    /// Runs started (leases given).
    attempts: u32,
    /// Visible from (ready), leased until (leased), done or dead at.
    at_ms: u64,
    /// When the current lease was given.
    leased_ms: u64,
    last_error: Option<String>,
}

impl Record {
    fn key(queue: &str, id: u64) -> String {
        format!("t/{queue}/{id:020}")
    }

    fn token(&self) -> String {
        format!("{}.{}", self.id, self.attempts)
    }
}

/// One queue's tasks and indexes.
#[derive(Debug, Default)]
struct Queue {
    records: HashMap<u64, Record>,
    /// Ready and visible: (priority high first, id).
    ready: BTreeSet<(Reverse<i32>, u64)>,
    /// Ready, not yet visible: (visible at, id).
    delayed: BTreeSet<(u64, u64)>,
    /// (lease until, id).
    leased: BTreeSet<(u64, u64)>,
    /// (done at, id).
    done: BTreeSet<(u64, u64)>,
    /// (dead at, id).
    dead: BTreeSet<(u64, u64)>,
    /// idem-key → id, for queued, leased and done tasks.
    idem: HashMap<String, u64>,
}

impl Queue {
    /// Put `record` in the indexes of its state.
    fn index(&mut self, record: Record) {
        let id = record.id;
        match record.state {
            State::Ready => {
                self.delayed.insert((record.at_ms, id));
            }
            State::Leased => {
                self.leased.insert((record.at_ms, id));
            }
            State::Done => {
                self.done.insert((record.at_ms, id));
            }
            State::Dead => {
                self.dead.insert((record.at_ms, id));
            }
        }
        if record.state != State::Dead
            && let Some(key) = &record.task.idem_key
        {
            self.idem.insert(key.clone(), id);
        }
        self.records.insert(id, record);
    }

    /// Take `id` out of the indexes of its state; the record itself.
    fn unindex(&mut self, id: u64) -> Option<Record> {
        let record = self.records.remove(&id)?;
        match record.state {
            State::Ready => {
                self.delayed.remove(&(record.at_ms, id));
                self.ready.remove(&(Reverse(record.task.priority), id));
            }
            State::Leased => {
                self.leased.remove(&(record.at_ms, id));
            }
            State::Done => {
                self.done.remove(&(record.at_ms, id));
            }
            State::Dead => {
                self.dead.remove(&(record.at_ms, id));
            }
        }
        if let Some(key) = &record.task.idem_key
            && self.idem.get(key) == Some(&id)
        {
            self.idem.remove(key);
        }
        Some(record)
    }

    fn open(&self) -> usize {
        self.ready.len() + self.delayed.len() + self.leased.len()
    }
}

struct Backend {
    settings: Settings,
    queues: BTreeMap<String, Queue>,
    next_id: u64,
}

thread_local! {
    static BACKEND: RefCell<Option<Backend>> = const { RefCell::new(None) };
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn unavailable(e: arw::host::types::CapabilityError) -> StoreError {
    StoreError::Unavailable(format!("kv: {e:?}"))
}

fn save(queue: &str, record: &Record) -> Result<(), StoreError> {
    let value = serde_json::to_vec(record).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    kv::set(NAMESPACE, &Record::key(queue, record.id), &value).map_err(unavailable)
}

fn remove(queue: &str, id: u64) -> Result<(), StoreError> {
    kv::delete(NAMESPACE, &Record::key(queue, id)).map(|_| ()).map_err(unavailable)
}

fn check_queue(queue: &str) -> Result<(), StoreError> {
    if queue.is_empty() || queue.len() > 128 || queue.contains('/') {
        return Err(StoreError::Invalid(format!("`{queue}` is not a queue name")));
    }
    Ok(())
}

impl Backend {
    fn new() -> Backend {
        // Ids grow from the time of the start, so one is never reused
        // for another task after a restart.
        Backend { settings: Settings::read(), queues: BTreeMap::new(), next_id: now_ms().saturating_mul(1_000) }
    }

    /// The queue, read from kv the first time.
    fn queue(&mut self, name: &str) -> Result<&mut Queue, StoreError> {
        check_queue(name)?;
        if !self.queues.contains_key(name) {
            let mut queue = Queue::default();
            let prefix = format!("t/{name}/");
            for key in kv::list_keys(NAMESPACE, &prefix, u32::MAX).map_err(unavailable)? {
                let Some(bytes) = kv::get(NAMESPACE, &key).map_err(unavailable)? else { continue };
                match serde_json::from_slice::<Record>(&bytes) {
                    Ok(record) => {
                        self.next_id = self.next_id.max(record.id + 1);
                        queue.index(record);
                    }
                    Err(e) => eprintln!("queue-local: `{key}` is unreadable and left alone: {e}"),
                }
            }
            self.queues.insert(name.to_string(), queue);
        }
        self.queues.get_mut(name).ok_or_else(|| StoreError::Unavailable("queue vanished".into()))
    }

    /// Bring `name` up to `now`: due delays become ready, expired leases
    /// ready again (or dead after the last attempt), done tasks past the
    /// de-duplication window are forgotten, dead ones beyond `max-dead`
    /// dropped.
    fn refresh(&mut self, name: &str, now: u64) -> Result<(), StoreError> {
        let settings = self.settings;
        let queue = self.queue(name)?;
        while let Some(&(at, id)) = queue.delayed.first() {
            if at > now {
                break;
            }
            queue.delayed.remove(&(at, id));
            if let Some(record) = queue.records.get(&id) {
                queue.ready.insert((Reverse(record.task.priority), id));
            }
        }
        while let Some(&(until, id)) = queue.leased.first() {
            if until > now {
                break;
            }
            let Some(mut record) = queue.unindex(id) else { continue };
            if record.attempts >= record.task.max_attempts {
                record.state = State::Dead;
                record.last_error = Some(format!(
                    "lease expired on attempt {} of {} (last error: {})",
                    record.attempts,
                    record.task.max_attempts,
                    record.last_error.as_deref().unwrap_or("none")
                ));
            } else {
                record.state = State::Ready;
            }
            record.at_ms = now;
            save(name, &record)?;
            let ready = record.state == State::Ready;
            queue.index(record);
            if ready {
                queue.delayed.remove(&(now, id));
                if let Some(r) = queue.records.get(&id) {
                    queue.ready.insert((Reverse(r.task.priority), id));
                }
            }
        }
        while let Some(&(at, id)) = queue.done.first() {
            if at.saturating_add(settings.dedup_window_ms) > now {
                break;
            }
            remove(name, id)?;
            queue.unindex(id);
        }
        while queue.dead.len() > settings.max_dead {
            let Some(&(_, id)) = queue.dead.first() else { break };
            remove(name, id)?;
            queue.unindex(id);
        }
        Ok(())
    }

    fn push(&mut self, name: &str, task: Task) -> Result<PushOutcome, StoreError> {
        let now = now_ms();
        self.refresh(name, now)?;
        let max_tasks = self.settings.max_tasks;
        let id = self.next_id;
        let queue = self.queue(name)?;
        if let Some(key) = &task.idem_key
            && let Some(&existing) = queue.idem.get(key)
        {
            return Ok(PushOutcome::Duplicate(existing.to_string()));
        }
        if queue.open() >= max_tasks {
            return Err(StoreError::Full(format!("{max_tasks} tasks are queued or running (max-tasks)")));
        }
        let record = Record {
            id,
            at_ms: task.not_before_ms,
            task: task.into(),
            state: State::Ready,
            attempts: 0,
            leased_ms: 0,
            last_error: None,
        };
        save(name, &record)?;
        queue.index(record);
        self.next_id += 1;
        // Visible at once if due.
        self.refresh(name, now)?;
        Ok(PushOutcome::Enqueued(id.to_string()))
    }

    fn lease(&mut self, name: &str, max: u32, lease_ms: u64) -> Result<Vec<Leased>, StoreError> {
        let now = now_ms();
        self.refresh(name, now)?;
        let queue = self.queue(name)?;
        let mut out = Vec::new();
        while out.len() < max as usize {
            let Some(&(priority, id)) = queue.ready.first() else { break };
            queue.ready.remove(&(priority, id));
            let Some(mut record) = queue.unindex(id) else { continue };
            record.state = State::Leased;
            record.attempts += 1;
            record.at_ms = now.saturating_add(lease_ms);
            record.leased_ms = now;
            if let Err(e) = save(name, &record) {
                // Not leased after all: back where it was.
                record.state = State::Ready;
                record.attempts -= 1;
                record.at_ms = now;
                queue.index(record);
                queue.delayed.remove(&(now, id));
                queue.ready.insert((priority, id));
                return if out.is_empty() { Err(e) } else { Ok(out) };
            }
            out.push(Leased {
                id: id.to_string(),
                lease: record.token(),
                attempt: record.attempts,
                leased_ms: now,
                task: (&record.task).into(),
                last_error: record.last_error.clone(),
            });
            queue.index(record);
        }
        Ok(out)
    }

    /// The leased record `token` names, if its lease is current.
    fn held(&mut self, name: &str, token: &str, now: u64) -> Result<u64, StoreError> {
        self.refresh(name, now)?;
        let queue = self.queue(name)?;
        let stale = || StoreError::StaleLease(format!("lease `{token}` is not current"));
        let id = token.split('.').next().and_then(|id| id.parse::<u64>().ok()).ok_or_else(stale)?;
        match queue.records.get(&id) {
            Some(r) if r.state == State::Leased && r.token() == token && r.at_ms > now => Ok(id),
            Some(r) if r.state == State::Leased && r.token() == token => {
                Err(StoreError::StaleLease(format!("lease `{token}` expired")))
            }
            _ => Err(stale()),
        }
    }

    fn ack(&mut self, name: &str, token: &str) -> Result<(), StoreError> {
        let now = now_ms();
        let id = self.held(name, token, now)?;
        let queue = self.queue(name)?;
        let Some(mut record) = queue.unindex(id) else { return Err(StoreError::StaleLease(token.into())) };
        record.state = State::Done;
        record.at_ms = now;
        match save(name, &record) {
            Ok(()) => {
                queue.index(record);
                Ok(())
            }
            Err(e) => {
                // Still leased, as stored.
                record.state = State::Leased;
                queue.index(record);
                Err(e)
            }
        }
    }

    fn fail(
        &mut self,
        name: &str,
        token: &str,
        delay_ms: Option<u64>,
        error: String,
    ) -> Result<NakOutcome, StoreError> {
        let now = now_ms();
        let id = self.held(name, token, now)?;
        let queue = self.queue(name)?;
        let Some(mut record) = queue.unindex(id) else { return Err(StoreError::StaleLease(token.into())) };
        let before = record.clone();
        record.last_error = Some(error);
        let outcome = match delay_ms {
            Some(delay) if record.attempts < record.task.max_attempts => {
                record.state = State::Ready;
                record.at_ms = now.saturating_add(delay);
                NakOutcome::RetryAt(record.at_ms)
            }
            _ => {
                record.state = State::Dead;
                record.at_ms = now;
                NakOutcome::Dead
            }
        };
        match save(name, &record) {
            Ok(()) => {
                queue.index(record);
                self.refresh(name, now)?;
                Ok(outcome)
            }
            Err(e) => {
                queue.index(before);
                Err(e)
            }
        }
    }

    fn extend(&mut self, name: &str, token: &str, lease_ms: u64) -> Result<(), StoreError> {
        let now = now_ms();
        let id = self.held(name, token, now)?;
        let queue = self.queue(name)?;
        let Some(mut record) = queue.unindex(id) else { return Err(StoreError::StaleLease(token.into())) };
        let before = record.clone();
        record.at_ms = now.saturating_add(lease_ms);
        match save(name, &record) {
            Ok(()) => {
                queue.index(record);
                Ok(())
            }
            Err(e) => {
                queue.index(before);
                Err(e)
            }
        }
    }

    fn stats(&mut self, name: &str) -> Result<QueueCounts, StoreError> {
        self.refresh(name, now_ms())?;
        let queue = self.queue(name)?;
        Ok(QueueCounts {
            ready: queue.ready.len() as u64,
            delayed: queue.delayed.len() as u64,
            leased: queue.leased.len() as u64,
            done: queue.done.len() as u64,
            dead: queue.dead.len() as u64,
        })
    }

    fn dead(&mut self, name: &str, limit: u32) -> Result<Vec<DeadTask>, StoreError> {
        self.refresh(name, now_ms())?;
        let queue = self.queue(name)?;
        Ok(queue
            .dead
            .iter()
            .rev()
            .take(limit as usize)
            .filter_map(|(at, id)| {
                let record = queue.records.get(id)?;
                Some(DeadTask {
                    id: id.to_string(),
                    attempts: record.attempts,
                    error: record.last_error.clone().unwrap_or_default(),
                    dead_ms: *at,
                    task: (&record.task).into(),
                })
            })
            .collect())
    }
}

fn with<T>(work: impl FnOnce(&mut Backend) -> Result<T, StoreError>) -> Result<T, StoreError> {
    BACKEND.with(|cell| {
        let mut backend = cell.borrow_mut();
        work(backend.get_or_insert_with(Backend::new))
    })
}

struct QueueLocal;

impl Guest for QueueLocal {
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

impl exports::arw::host::lifecycle::Guest for QueueLocal {
    /// Expire leases and forget old done tasks of the queues in use, so
    /// an idle queue's counts stay true.
    fn tick() -> Result<(), String> {
        let names: Vec<String> =
            BACKEND.with(|cell| cell.borrow().as_ref().map(|b| b.queues.keys().cloned().collect())).unwrap_or_default();
        let now = now_ms();
        for name in names {
            with(|b| b.refresh(&name, now)).map_err(|e| format!("{name}: {e:?}"))?;
        }
        Ok(())
    }

    /// Nothing to hand over: every task is in kv, and the successor reads
    /// it back.
    fn snapshot() -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }

    fn restore(_state: Vec<u8>) -> Result<(), String> {
        Ok(())
    }
}

export!(QueueLocal);
