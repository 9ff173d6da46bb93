//! `arw:host/queue` for guests.

use std::sync::Arc;

use crate::authz::Grants;
use crate::bindings::CapabilityError;
use crate::bindings::imports::arw::host::queue as wit;
use crate::capabilities::ComponentCapabilities;
use crate::queues::{NewTask, QueueError, Queues, TicketCaller};

/// The queues as one instance of one component sees them.
#[derive(Debug)]
pub struct QueueInstance {
    queues: Arc<Queues>,
    grants: Arc<Grants>,
    /// The components the entry came through (what gates see).
    chain: crate::runtime::entry::Chain,
}

impl QueueInstance {
    pub fn new(queues: Arc<Queues>, component: &ComponentCapabilities, chain: crate::runtime::entry::Chain) -> Self {
        QueueInstance { queues, grants: component.grants.clone(), chain }
    }

    pub(crate) fn set_chain(&mut self, chain: crate::runtime::entry::Chain) {
        self.chain = chain;
    }
}

impl From<QueueError> for CapabilityError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Invalid(_) | QueueError::UnknownTool(_) => CapabilityError::Invalid(e.to_string()),
            QueueError::Denied(_) => CapabilityError::Denied(e.to_string()),
            QueueError::TooLarge(_) => CapabilityError::TooLarge(e.to_string()),
            QueueError::Full { .. } | QueueError::Unavailable { .. } | QueueError::NoBackend { .. } => {
                CapabilityError::Unavailable(e.to_string())
            }
        }
    }
}

impl wit::Host for QueueInstance {
    /// Checked in this order: the arguments, the manifest and Cedar for
    /// the queue and for the tool, the gates; then signed and pushed.
    async fn enqueue(&mut self, queue: String, task: wit::NewTask) -> Result<wit::Enqueued, CapabilityError> {
        let task = NewTask {
            tool: task.tool,
            input: task.input,
            idem_key: task.idem_key,
            priority: task.priority,
            not_before_ms: task.not_before_ms,
            max_attempts: task.max_attempts,
        };
        self.queues.check(&queue, &task)?;
        self.grants.check(super::ENQUEUE, &queue).await?;
        self.grants.check(arw_policy::Action::TOOL_INVOKE, &task.tool).await?;
        let target = crate::gating::GateTarget {
            topic: Some(queue.clone()),
            tool: Some(task.tool.clone()),
            ..Default::default()
        };
        self.grants
            .gate(&crate::gating::keys::QUEUE_EGRESS, &queue, target, task.input.len(), &self.chain)
            .await
            .map_err(|denied| CapabilityError::Denied(denied.to_string()))?;
        let caller = TicketCaller::of(self.grants.principal().principal(), &[]);
        let enqueued = self.queues.push(&queue, caller, task).await?;
        Ok(wit::Enqueued { id: enqueued.id, duplicate: enqueued.duplicate })
    }
}
