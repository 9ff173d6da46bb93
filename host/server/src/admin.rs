//! The request and response documents of `/admin/*`. The operations
//! themselves are [`arw_ops::Live`]'s, the same code the CLI commands run,
//! so `POST /admin/install` and `arw install` do exactly the same thing.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// `ns:name`, `ns:name@1.2.3` or `ns:name@^1` (the newest matching,
    /// non-yanked version in the local registry).
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]*:[a-z0-9][a-z0-9-]*(@\S+)?$")]
    pub package: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UninstallRequest {
    /// The component id, `ns:name`.
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]*:[a-z0-9][a-z0-9-]*$")]
    pub id: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The component id, `ns:name`.
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]*:[a-z0-9][a-z0-9-]*$")]
    pub id: String,
    /// The version to go back to; default: the one installed before.
    #[serde(default)]
    pub to: Option<String>,
}

/// The outcome of install, uninstall and rollback.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdminOutcome {
    pub id: String,
    /// The version now active (none after an uninstall).
    pub version: Option<String>,
    /// The version that was active before, if any.
    pub previous: Option<String>,
    /// `sha256:<hex>` of the active version.
    pub digest: Option<String>,
    pub publisher: Option<String>,
}

/// What a policy reload changed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PolicyReloadOutcome {
    pub policies: usize,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl From<arw_ops::Outcome> for AdminOutcome {
    fn from(o: arw_ops::Outcome) -> Self {
        AdminOutcome { id: o.id, version: o.version, previous: o.previous, digest: o.digest, publisher: o.publisher }
    }
}

impl From<arw_host::PolicyReload> for PolicyReloadOutcome {
    fn from(r: arw_host::PolicyReload) -> Self {
        PolicyReloadOutcome { policies: r.policies, added: r.added, removed: r.removed, changed: r.changed }
    }
}

/// `GET /admin/gating`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GatingView {
    /// The gates, in the order they are asked.
    pub gates: Vec<GateView>,
    /// Every gating key of the catalogue (and each tool's ingress key).
    pub keys: Vec<GatingKeyView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GateView {
    pub id: String,
    /// Its configuration file, if it has one.
    pub file: Option<String>,
    /// Whether a configuration is in force (`false`: it was refused at
    /// start and the gate denies everything; `refused` says why).
    pub in_force: bool,
    pub refused: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GatingKeyView {
    pub key: String,
    /// Per gate: the ids of its contracts that cover the key, whoever asks
    /// and whenever.
    pub contracts: std::collections::BTreeMap<String, Vec<String>>,
    /// Per gate that could not say: why.
    pub errors: std::collections::BTreeMap<String, String>,
}

/// `POST /admin/gating/check`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatingCheckRequest {
    /// A gating key (docs/gating-keys.md).
    pub key: String,
    /// A configured caller's name (`[[http.tokens]]`) or `anonymous`;
    /// default: the caller making this request.
    #[serde(default, rename = "as")]
    pub caller: Option<String>,
    /// RFC 3339; default: now.
    #[serde(default)]
    pub at: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GatingCheckOutcome {
    pub key: String,
    pub caller: String,
    /// `allow`, `deny`, `retry-after` or `failed`.
    pub verdict: &'static str,
    pub gate: Option<String>,
    pub contract: Option<String>,
    pub retry_after_ms: Option<u64>,
    pub detail: Option<String>,
}

/// One gate's reload, `POST /admin/gating/reload`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GateReloadView {
    pub gate: String,
    pub file: Option<String>,
    /// `reloaded`, `unchanged` or `failed`.
    pub outcome: &'static str,
    pub line: Option<u32>,
    pub message: Option<String>,
}
