//! Gates: signed components the host asks before the effect at every
//! entry point (`wit/gate.wit`).
//!
//! - [`keys`]: the gating keys of the entry points inside the host (tool
//!   ingress, outgoing HTTP, bus publish, calls between components); the
//!   HTTP routes' keys are the server's (`arw_server::gating`), and the two
//!   together are the catalogue (`docs/gating-keys.md`);
//! - [`chain`]: [`Gates`], the configured gates asked in order, fail
//!   closed, with their configuration files;
//! - [`events`]: `gate.denied` (coalesced), `gating.reloaded`,
//!   `gating.reload.failed`, and the counters behind the metrics.
//!
//! The role that enters a gate component (pooled instances, `configure`
//! before the first check) is [`crate::roles::gate`].

pub mod chain;
pub mod events;
pub mod keys;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use chain::Gates;

/// `[gating]`: which gates decide, in which order, and their files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct GatingConfig {
    /// Gate component ids, asked in this order at every entry point; the
    /// first deny decides. Empty: no gates (Cedar alone decides). A gate
    /// named here that is not loaded denies everything (fail closed).
    pub gates: Vec<String>,
    /// The longest one gate's check may take, in milliseconds (its
    /// manifest's `limits.timeout-ms` applies too, whichever is shorter).
    /// A gate past it denies.
    pub timeout_ms: u64,
    /// Each gate's configuration file, by component id: its text is given
    /// to the gate's `configure` at start and again whenever it changes.
    /// The CLI defaults `arw:gating` to `$XDG_CONFIG_HOME/arw/gating.toml`.
    pub files: BTreeMap<String, PathBuf>,
    /// The largest configuration file read, in bytes.
    pub max_file_bytes: u64,
}

impl Default for GatingConfig {
    fn default() -> Self {
        GatingConfig { gates: Vec::new(), timeout_ms: 100, files: BTreeMap::new(), max_file_bytes: 1 << 20 }
    }
}

impl GatingConfig {
    /// At most this many gates.
    pub const MAX_GATES: usize = 16;

    /// Refuse what cannot work: too many gates, one named twice, a zero
    /// timeout, a file for a gate that is not in `gates`.
    pub fn check(&self) -> Result<(), String> {
        if self.gates.len() > Self::MAX_GATES {
            return Err(format!(
                "gating.gates names {} gates; at most {} are allowed",
                self.gates.len(),
                Self::MAX_GATES
            ));
        }
        for (i, gate) in self.gates.iter().enumerate() {
            gate.parse::<arw_manifest::ComponentId>()
                .map_err(|e| format!("gating.gates: `{gate}` is not a component id: {e}"))?;
            if self.gates[..i].contains(gate) {
                return Err(format!("gating.gates names `{gate}` twice"));
            }
        }
        if self.timeout_ms == 0 {
            return Err("gating.timeout-ms must be at least 1".into());
        }
        if let Some(stray) = self.files.keys().find(|id| !self.gates.contains(id)) {
            return Err(format!(
                "gating.files has a file for `{stray}`, which is not in gating.gates (add it there, or remove the file)"
            ));
        }
        Ok(())
    }
}

/// Who is asking, as gates see them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateCaller {
    /// `anonymous`, a configured caller, `local`, or a component id.
    pub name: String,
    pub roles: Vec<String>,
    pub tags: Vec<String>,
    pub authenticated: bool,
}

impl GateCaller {
    /// A caller from its Cedar principal: a named caller proved who it is
    /// unless it is `anonymous`; a component is its id, with no roles.
    pub fn of(principal: &arw_policy::Principal, tags: Vec<String>) -> Self {
        match principal {
            arw_policy::Principal::Caller { name, roles } => {
                GateCaller { authenticated: name != "anonymous", name: name.clone(), roles: roles.clone(), tags }
            }
            arw_policy::Principal::Component { id, .. } => {
                GateCaller { name: id.clone(), roles: Vec::new(), tags, authenticated: true }
            }
        }
    }
}

/// What an entry point asks about, as far as it knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateTarget {
    pub tool: Option<String>,
    pub component: Option<String>,
    pub authority: Option<String>,
    pub topic: Option<String>,
}

/// One question to the gates.
#[derive(Debug, Clone)]
pub struct GateRequest {
    /// The gating key ([`keys`], or an HTTP route's).
    pub key: String,
    pub caller: Arc<GateCaller>,
    /// The client's address, for a request over the network.
    pub address: Option<IpAddr>,
    /// The components a nested call came through, outermost first.
    pub chain: Vec<Arc<str>>,
    pub target: GateTarget,
    /// The size of what the request carries, in bytes (0 when unknown).
    pub size: u64,
    /// When the request is decided; `None` is now. `arw gate check --at`
    /// and the tests set it.
    pub at: Option<SystemTime>,
}

impl GateRequest {
    pub fn new(key: impl Into<String>, caller: Arc<GateCaller>) -> Self {
        GateRequest {
            key: key.into(),
            caller,
            address: None,
            chain: Vec::new(),
            target: GateTarget::default(),
            size: 0,
            at: None,
        }
    }
}

/// Why the gates refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateDenied {
    /// A gate decided: deny (with its contract and code), or not now.
    #[error("gate `{gate}` denied `{key}`: {reason} (contract `{contract}`, code `{code}`{})",
        retry_after_ms.map(|ms| format!(", retry after {ms} ms")).unwrap_or_default())]
    Denied {
        gate: String,
        key: String,
        code: String,
        contract: String,
        reason: String,
        /// Set when asking again later may succeed (a budget).
        retry_after_ms: Option<u64>,
    },
    /// A gate could not decide (it trapped, ran past its deadline, was
    /// busy, is not loaded, or has no valid configuration): the request is
    /// refused all the same.
    #[error("gate `{gate}` could not decide `{key}`, so it is refused (gates fail closed): {problem}")]
    Failed { gate: String, key: String, problem: String },
}

impl GateDenied {
    /// A stable code: `gate-denied`, `gate-retry-later`, `gate-failed`.
    pub fn code(&self) -> &'static str {
        match self {
            GateDenied::Denied { retry_after_ms: Some(_), .. } => "gate-retry-later",
            GateDenied::Denied { .. } => "gate-denied",
            GateDenied::Failed { .. } => "gate-failed",
        }
    }

    /// The gate that decided.
    pub fn gate(&self) -> &str {
        match self {
            GateDenied::Denied { gate, .. } | GateDenied::Failed { gate, .. } => gate,
        }
    }

    /// Milliseconds after which asking again may succeed.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            GateDenied::Denied { retry_after_ms, .. } => *retry_after_ms,
            GateDenied::Failed { .. } => None,
        }
    }
}

/// A gate's answer, in the host's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny { code: String, contract: String, reason: String, retry_after_ms: Option<u64> },
}
