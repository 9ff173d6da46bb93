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

/// One question to the gates: one action, under one or more gating keys.
#[derive(Debug, Clone)]
pub struct GateRequest {
    /// The gating keys ([`keys`], or an HTTP route's), outermost first;
    /// never empty. An HTTP tool call has two (its route's and its
    /// tool's), asked in one entry of each gate.
    keys: Vec<String>,
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
            keys: vec![key.into()],
            caller,
            address: None,
            chain: Vec::new(),
            target: GateTarget::default(),
            size: 0,
            at: None,
        }
    }

    /// The same action is also guarded by `key` (asked in the same check).
    pub fn and_key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// The outermost key (the one a refusal names when no gate says which).
    pub fn key(&self) -> &str {
        self.keys.first().map_or("", String::as_str)
    }

    /// Every key, outermost first.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Ask under `key` instead of the keys so far.
    pub fn set_key(&mut self, key: impl Into<String>) {
        self.keys = vec![key.into()];
    }
}

/// What the gates allowed: an action's keys for a caller, to be spent
/// once. An entry point that asked the gates for what follows it (the
/// HTTP route of a tool call asks for the route and the tool in one check)
/// hands the pass on, and the next entry point does not ask again for a
/// key the pass covers. Made only by [`Gates::check_for_pass`].
#[derive(Debug)]
pub struct GatePass {
    keys: Vec<String>,
    caller: Arc<GateCaller>,
    /// The component the target was when asked (a tool's provider).
    component: Option<String>,
    /// The size the gates were told (an HTTP request's `Content-Length`;
    /// 0 when it had none, as with a chunked body).
    size: u64,
}

impl GatePass {
    /// Does this pass cover `key` asked by `caller` about `component`
    /// carrying `size` bytes? Only for the very caller it was made for (the
    /// same `Arc`), while the target is the component it was asked about,
    /// and for no more bytes than the gates were told of (a body sent
    /// without a `Content-Length` is asked about again, with its size).
    pub(crate) fn covers(&self, key: &str, caller: &Arc<GateCaller>, component: &str, size: u64) -> bool {
        Arc::ptr_eq(&self.caller, caller)
            && self.component.as_deref() == Some(component)
            && size <= self.size
            && self.keys.iter().any(|k| k == key)
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
    Deny { key: String, code: String, contract: String, reason: String, retry_after_ms: Option<u64> },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pass covers only its keys, for the very caller it was made for,
    /// while the target is the component it was asked about, for no more
    /// bytes than were asked about.
    #[test]
    fn a_pass_covers_only_its_keys_caller_and_component() {
        let caller = Arc::new(GateCaller { name: "ops".into(), ..Default::default() });
        let twin = Arc::new((*caller).clone());
        let pass = GatePass {
            keys: vec!["tools:invoke".into(), "io:ingress:tools.a".into()],
            caller: caller.clone(),
            component: Some("x:a".into()),
            size: 100,
        };
        assert!(pass.covers("io:ingress:tools.a", &caller, "x:a", 100));
        assert!(!pass.covers("io:ingress:tools.b", &caller, "x:a", 100), "another key");
        assert!(!pass.covers("io:ingress:tools.a", &twin, "x:a", 100), "an equal caller that is not the same one");
        assert!(!pass.covers("io:ingress:tools.a", &caller, "x:b", 100), "the tool moved to another component");
        assert!(!pass.covers("io:ingress:tools.a", &caller, "x:a", 101), "more bytes than the gates were told of");
    }
}
