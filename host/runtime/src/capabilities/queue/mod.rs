//! Work queues for components (`arw:host/queue`) and the host's
//! configuration of them (`[queues]`).
//!
//! This unit turns a guest's `enqueue` into a task of the host's queue
//! service ([`crate::queues`]) after the manifest, Cedar (`queue.enqueue`
//! on the queue, `tool.invoke` on the task's tool) and the gates
//! (`io:egress:queue.<queue>`) allow it; the service signs it, hands it to
//! the backend component and runs it on a worker later.

use arw_policy::Action;

use crate::capabilities::unit::Request;

mod host;

pub use host::QueueInstance;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::queues::Queues;

/// Putting a task on a queue (`Arw::Queue`).
pub const ENQUEUE: Action = Action::new("queue.enqueue");
/// Reading a queue's counts and dead-letter queue (callers only).
pub const READ: Action = Action::new("queue.read");

/// This capability, described (see [`crate::capabilities::unit`]).
pub const UNIT: crate::capabilities::Unit = crate::capabilities::Unit {
    name: "queue",
    wit: &["arw:host/queue"],
    actions: &[ENQUEUE, READ],
    requests: &[Request { action: ENQUEUE, check: check_queue_pattern }],
    schema: include_str!("schema.cedarschema"),
    config_section: Some("queues"),
    link,
};

/// A request's resource is a queue name pattern.
fn check_queue_pattern(_: &crate::manifest::Manifest, resource: &str) -> Result<(), String> {
    let pattern = resource.replace('*', "a");
    crate::queues::check_name(&pattern)
        .map_err(|why| format!("`queue.enqueue` resource `{resource}`: {why} (`*` may stand for any run of them)"))
}

/// This folder as a capability unit (see [`crate::capabilities::Capability`]).
#[derive(Debug)]
pub struct QueueCapability;

impl crate::capabilities::Capability for QueueCapability {
    const UNIT: crate::capabilities::Unit = UNIT;
    type Config = QueuesConfig;
    type State = Arc<Queues>;
    type Instance = QueueInstance;

    fn start(config: &QueuesConfig, env: &crate::capabilities::StartEnv<'_>) -> Result<Arc<Queues>, crate::HostError> {
        config.check().map_err(crate::HostError::Config)?;
        Ok(Arc::new(Queues::new(config.clone(), env.state_dir, &env.config.cluster.trusted_nodes)?))
    }

    fn instance(
        state: &Arc<Queues>,
        component: &crate::capabilities::ComponentCapabilities,
        chain: &crate::runtime::entry::Chain,
    ) -> QueueInstance {
        QueueInstance::new(state.clone(), component, chain.clone())
    }

    fn enter(instance: &mut QueueInstance, chain: &crate::runtime::entry::Chain) {
        instance.set_chain(chain.clone());
    }
}

/// `arw:host/queue` (0.2.0 only) on [`QueueInstance`].
fn link(linker: &mut wasmtime::component::Linker<crate::runtime::store::InstanceState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    type State = crate::runtime::store::InstanceState;
    crate::bindings::imports::arw::host::queue::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut State| {
        &mut s.capabilities.queues
    })
}

/// `[queues]`: the backend, which queues this host works on, and how.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct QueuesConfig {
    /// The `queue-backend` component that stores every queue's tasks
    /// (`arw:queue-local`: the host's kv; `arw:queue-jetstream`: NATS).
    pub backend: String,
    /// The queues this host's workers lease from (its worker group). A
    /// queue not listed still takes tasks; another host works on it.
    pub serve: Vec<String>,
    /// Tasks of one queue run at once on this host, at most.
    pub concurrency: u32,
    /// How long a worker holds a task before the backend may hand it to
    /// another; extended while the call runs (every third of it).
    pub lease_ms: u64,
    /// How often an idle worker asks for tasks (a push on this host wakes
    /// it at once).
    pub poll_ms: u64,
    /// Runs of a task at most, unless the task says otherwise (1 to 100).
    pub max_attempts: u32,
    /// The delay before the second run after a retryable failure; it
    /// doubles with each attempt up to `retry-max-ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// The largest task input, in bytes.
    pub max_input_bytes: usize,
    /// How long a push, lease or ack may wait for the backend's turn.
    pub backend_timeout_ms: u64,
    /// At shutdown, how long running tasks may finish; the rest are
    /// redelivered when their leases expire.
    pub drain_ms: u64,
}

impl Default for QueuesConfig {
    fn default() -> Self {
        QueuesConfig {
            backend: "arw:queue-local".into(),
            serve: vec!["default".into()],
            concurrency: 4,
            lease_ms: 30_000,
            poll_ms: 250,
            max_attempts: 5,
            retry_base_ms: 1_000,
            retry_max_ms: 60_000,
            max_input_bytes: 256 * 1024,
            backend_timeout_ms: 10_000,
            drain_ms: 5_000,
        }
    }
}

impl QueuesConfig {
    /// Refuse what cannot work, naming the key.
    pub fn check(&self) -> Result<(), String> {
        for queue in &self.serve {
            crate::queues::check_name(queue).map_err(|why| format!("queues.serve: {queue:?}: {why}"))?;
        }
        if self.serve.len() > 64 {
            return Err(format!("queues.serve lists {} queues; at most 64", self.serve.len()));
        }
        if !(1..=256).contains(&self.concurrency) {
            return Err(format!("queues.concurrency = {} must be 1 to 256", self.concurrency));
        }
        if !(1..=100).contains(&self.max_attempts) {
            return Err(format!("queues.max-attempts = {} must be 1 to 100", self.max_attempts));
        }
        if self.lease_ms < 100 || self.poll_ms == 0 || self.backend_timeout_ms == 0 {
            return Err("queues.lease-ms must be at least 100, queues.poll-ms and backend-timeout-ms above zero".into());
        }
        if self.retry_base_ms > self.retry_max_ms {
            return Err("queues.retry-base-ms must not be above queues.retry-max-ms".into());
        }
        if self.max_input_bytes == 0 || self.max_input_bytes > 16 << 20 {
            return Err("queues.max-input-bytes must be 1 to 16777216".into());
        }
        Ok(())
    }
}
