//! A task's ticket: what to run and as whom, signed by the node that
//! enqueued it.
//!
//! Backends store tasks where others may write (the host's kv, a NATS
//! stream), so a worker acts on a task's authority only if the ticket's
//! signature holds for a node key this host trusts (today its own; the
//! cluster's members later) and the ticket names the queue it came from.
//! The signature is over the ticket's exact bytes, as stored: nothing is
//! re-serialised before it is checked.

use serde::{Deserialize, Serialize};

use crate::cluster::node_key::{self, NodeKey};

/// The format of [`Ticket`].
pub const VERSION: u32 = 1;

/// Who a task runs as: the caller's Cedar principal at enqueue (and, for
/// a caller, the tags gates see).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TicketCaller {
    Caller { name: String, roles: Vec<String>, tags: Vec<String> },
    Component { id: String, version: String, publisher: String, digest: String },
}

impl TicketCaller {
    /// `principal`, with the tags its gates see.
    pub fn of(principal: &arw_policy::Principal, tags: &[String]) -> Self {
        match principal {
            arw_policy::Principal::Caller { name, roles } => {
                TicketCaller::Caller { name: name.clone(), roles: roles.clone(), tags: tags.to_vec() }
            }
            arw_policy::Principal::Component { id, version, publisher, digest } => TicketCaller::Component {
                id: id.clone(),
                version: version.clone(),
                publisher: publisher.clone(),
                digest: digest.clone(),
            },
        }
    }

    /// The Cedar principal and the gates' tags.
    pub fn principal(&self) -> (arw_policy::Principal, Vec<String>) {
        match self.clone() {
            TicketCaller::Caller { name, roles, tags } => (arw_policy::Principal::Caller { name, roles }, tags),
            TicketCaller::Component { id, version, publisher, digest } => {
                (arw_policy::Principal::Component { id, version, publisher, digest }, Vec::new())
            }
        }
    }

    /// The name, for events and logs.
    pub fn name(&self) -> &str {
        match self {
            TicketCaller::Caller { name, .. } => name,
            TicketCaller::Component { id, .. } => id,
        }
    }
}

/// What to run, as whom, from which node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Ticket {
    pub v: u32,
    /// The enqueuing node's id (`[node] id`) ...
    pub node: String,
    /// ... and its public key (hex), which the signature is checked with.
    pub signer: String,
    pub queue: String,
    pub tool: String,
    /// The component that provided the tool at enqueue, and its digest:
    /// the task runs only on that digest.
    pub component: String,
    pub digest: String,
    /// The tool's JSON input.
    pub input: String,
    pub caller: TicketCaller,
    /// When it was signed (Unix milliseconds).
    pub iat_ms: u64,
}

impl Ticket {
    /// The ticket's text and its signature (hex).
    pub fn sign(&self, key: &NodeKey) -> Result<(String, String), String> {
        let text = serde_json::to_string(self).map_err(|e| format!("the ticket cannot be written: {e}"))?;
        let signature = key.sign(text.as_bytes());
        Ok((text, signature))
    }

    /// Read `text` and check it: a format this host knows, signed by a
    /// trusted key (`trusted` holds public keys, hex), for `queue`.
    pub fn open(text: &str, signature: &str, queue: &str, trusted: &[&str]) -> Result<Ticket, String> {
        let ticket: Ticket = serde_json::from_str(text).map_err(|e| format!("the ticket is not readable: {e}"))?;
        if ticket.v != VERSION {
            return Err(format!("ticket format {} is not one this host reads ({VERSION})", ticket.v));
        }
        if !trusted.contains(&ticket.signer.as_str()) {
            return Err(format!(
                "the ticket is signed by node `{}` with a key this host does not trust ({})",
                ticket.node,
                short(&ticket.signer)
            ));
        }
        node_key::verify(&ticket.signer, text.as_bytes(), signature)
            .map_err(|why| format!("the ticket's signature does not hold: {why}"))?;
        if ticket.queue != queue {
            return Err(format!("the ticket was signed for queue `{}`, not `{queue}`", ticket.queue));
        }
        Ok(ticket)
    }
}

fn short(key: &str) -> String {
    key.chars().take(16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(key: &NodeKey) -> Ticket {
        Ticket {
            v: VERSION,
            node: "n1".into(),
            signer: key.public().into(),
            queue: "default".into(),
            tool: "probe".into(),
            component: "test:probe".into(),
            digest: "sha256:00".into(),
            input: "{}".into(),
            caller: TicketCaller::Caller { name: "local".into(), roles: vec!["operator".into()], tags: vec![] },
            iat_ms: 1,
        }
    }

    #[test]
    fn only_a_trusted_untouched_ticket_for_its_queue_opens() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let key = NodeKey::load_or_create(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let (text, signature) = ticket(&key).sign(&key).unwrap_or_else(|e| panic!("{e}"));
        let trusted = [key.public()];
        assert_eq!(Ticket::open(&text, &signature, "default", &trusted), Ok(ticket(&key)));
        // Another caller, written in by whoever can write the storage.
        let forged = text.replace("\"local\"", "\"root\"");
        assert!(Ticket::open(&forged, &signature, "default", &trusted).unwrap_err().contains("does not hold"));
        assert!(Ticket::open(&text, &signature, "other", &trusted).unwrap_err().contains("not `other`"));
        assert!(Ticket::open(&text, &signature, "default", &[]).unwrap_err().contains("does not trust"));
        assert!(Ticket::open("{}", &signature, "default", &trusted).is_err());
    }
}
