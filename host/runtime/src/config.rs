//! The host's configuration. Every section has working defaults sized for
//! a small device; the CLI layers a TOML file and `ARW_*` environment
//! variables on top (see `docs/configuration.md`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::capabilities::bus::BusConfig;
pub use crate::capabilities::kv::KvConfig;

/// The host's configuration: the core's sections, then one per configured
/// capability, from [`crate::capabilities::for_each_capability`] (so a new
/// capability's section needs no line here).
macro_rules! define_host_config {
    (configured: [$($field:ident: $unit:ident::$ty:ident,)*], unconfigured: [$($plain:ident: $punit:ident::$pty:ident,)*],) => {
        #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
        #[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
        pub struct HostConfig {
            /// Where the host keeps durable state (the kv store). The CLI defaults it
            /// to `$XDG_STATE_HOME/arw`.
            pub state_dir: Option<PathBuf>,
            /// A directory of `*.cedar` policies; unset means the embedded defaults.
            pub policies_dir: Option<PathBuf>,
            /// A directory of unsigned component manifests (`*.toml`) and their
            /// `.wasm` files, for development; needs `allow-unsigned`. Unset means
            /// the installed components.
            pub components_dir: Option<PathBuf>,
            /// Load components that no trusted signer vouches for. Off by default;
            /// each such load logs a warning.
            pub allow_unsigned: bool,
            /// The local component registry. The CLI defaults it to
            /// `$XDG_DATA_HOME/arw/registry`.
            pub registry_dir: Option<PathBuf>,
            /// Signing keys (`NAME.key`, `NAME.pub`). Default `$XDG_CONFIG_HOME/arw/keys`.
            pub keys_dir: Option<PathBuf>,
            /// Trusted publisher keys (`NAME.pub`). Default `$XDG_CONFIG_HOME/arw/trust`.
            pub trust_dir: Option<PathBuf>,
            pub engine: EngineConfig,
            pub swap: SwapConfig,
            pub http: HttpConfig,
            pub limits: LimitsConfig,
            pub node: NodeConfig,
            pub gating: crate::gating::GatingConfig,
            pub resident: crate::roles::resident::ResidentConfig,
            /// How the feedback engine's signals are estimated (`docs/feedback.md`).
            pub signals: crate::signals::SignalsConfig,
            /// The feedback engine: its component, tick, modes, apply bounds (`docs/feedback.md`).
            pub feedback: crate::feedback::FeedbackConfig,
            /// Per-component overrides, keyed by component id (`arw:announce`).
            pub components: BTreeMap<String, ComponentOverrides>,
            $(
                /// A capability's section (`capabilities/<folder>/`).
                pub $field: <crate::capabilities::$unit::$ty as crate::capabilities::Capability>::Config,
            )*
        }
    };
}

crate::capabilities::for_each_capability!(define_host_config);

/// Sizing of the wasmtime engine and its pooling allocator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct EngineConfig {
    /// Component instances that can be live at once, across all components
    /// (each tool call and each subscriber delivery uses one).
    pub max_instances: u32,
    /// Upper bound on any component's linear memory, in MiB: the size of a
    /// pool slot. A manifest may ask for less, never more.
    pub max_memory_mib: u64,
    /// How often the epoch ticker fires, in milliseconds: the granularity of
    /// per-call deadlines.
    pub epoch_tick_ms: u64,
    /// Maximum wasm stack per call, in KiB.
    pub max_wasm_stack_kib: usize,
    /// How much of a freed instance's linear memory is zeroed in place and
    /// kept mapped for the next instance, in KiB (the rest is returned to
    /// the kernel). Costs up to this much resident memory per pool slot
    /// used; 0 returns everything at once (the least memory, the most
    /// system calls).
    pub memory_keep_resident_kib: usize,
    /// The same for tables, in KiB.
    pub table_keep_resident_kib: usize,
    /// How many freed slots are returned to the kernel in one batch (1: each
    /// at once). A slot waiting in a batch is reused only after its batch is
    /// flushed, which happens whenever the pool runs short.
    pub decommit_batch: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_instances: 64,
            max_memory_mib: 64,
            epoch_tick_ms: 5,
            max_wasm_stack_kib: 512,
            memory_keep_resident_kib: 2048,
            table_keep_resident_kib: 64,
            decommit_batch: 16,
        }
    }
}

/// `[limits]`: the most a signed manifest may ask for. A component asking
/// for more is refused at load, with the limit named.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitsConfig {
    /// Largest `limits.timeout-ms`.
    pub max_timeout_ms: u64,
    /// Largest `limits.concurrency` (it must also leave room in the
    /// instance pool: at most `engine.max-instances - 1`).
    pub max_concurrency: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig { max_timeout_ms: 60_000, max_concurrency: 32 }
    }
}

/// `[node]`: this host as policies (`context.node_id`, `node_role`,
/// `node_tags`) and, later, the cluster see it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeConfig {
    /// A name for this host, unique in its cluster.
    pub id: String,
    /// Its role ("edge", "gateway", ...).
    pub role: String,
    /// Free-form tags ("lab", "gpu", ...): at most [`NodeConfig::MAX_TAGS`].
    pub tags: Vec<String>,
}

impl NodeConfig {
    pub const MAX_TAGS: usize = 64;
    pub const MAX_BYTES: usize = 128;

    /// Refuse sizes a policy's context should never carry.
    pub fn check(&self) -> Result<(), String> {
        if self.tags.len() > Self::MAX_TAGS {
            return Err(format!("node.tags has {} tags; at most {} are allowed", self.tags.len(), Self::MAX_TAGS));
        }
        for (what, value) in [("node.id", &self.id), ("node.role", &self.role)]
            .into_iter()
            .chain(self.tags.iter().map(|t| ("a node.tags entry", t)))
        {
            if value.len() > Self::MAX_BYTES {
                return Err(format!("{what} is {} bytes; at most {} are allowed", value.len(), Self::MAX_BYTES));
            }
        }
        Ok(())
    }

    /// The node as Cedar's context shows it.
    pub fn to_policy_node(&self) -> arw_policy::Node {
        arw_policy::Node { id: self.id.clone(), role: self.role.clone(), tags: self.tags.clone() }
    }
}

/// Hot swap of component versions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SwapConfig {
    /// How long calls already running on a replaced version may continue
    /// before they are interrupted, in milliseconds.
    pub drain_grace_ms: u64,
    /// Roll back to the previous version when a new one keeps failing.
    pub auto_rollback: bool,
    /// How many first calls of a new version are watched.
    pub probation_calls: u32,
    /// Faults (traps, deadlines, memory caps, invalid output) among those
    /// calls that trigger the rollback.
    pub rollback_after_faults: u32,
}

impl Default for SwapConfig {
    fn default() -> Self {
        SwapConfig { drain_grace_ms: 30_000, auto_rollback: true, probation_calls: 20, rollback_after_faults: 3 }
    }
}

/// The HTTP API that `arw up` serves (docs/api.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpConfig {
    /// Serve the HTTP API at all.
    pub enabled: bool,
    /// Address and port to bind. A non-loopback address needs a token
    /// (`admin-token` or `tokens`).
    pub listen: SocketAddr,
    /// A token for the caller `admin` in the role `admin`: the quick way to
    /// reach `/admin/*` (`ARW_HTTP__ADMIN_TOKEN`).
    pub admin_token: Option<Secret>,
    /// Named callers and their roles, one per token.
    pub tokens: Vec<TokenConfig>,
    /// Largest request body, in bytes.
    pub body_limit_bytes: usize,
    /// Largest total size of a request's headers, in bytes.
    pub max_header_bytes: usize,
    /// Longest time to produce a response's head, in milliseconds (an
    /// event stream's body goes on after it).
    pub request_timeout_ms: u64,
    /// How often an idle event stream gets a keep-alive comment, in ms.
    pub events_keepalive_ms: u64,
    /// Admin requests allowed per minute, per token and per client address.
    pub admin_rate_per_minute: u32,
    /// Admin requests allowed at once before the rate applies (the bucket size).
    pub admin_burst: u32,
    /// Host names the MCP endpoint accepts in `Host` (against DNS
    /// rebinding); empty means the loopback names.
    pub mcp_allowed_hosts: Vec<String>,
    /// Open TCP connections at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Open event streams (`GET /events`) at once; more get 503.
    pub max_event_streams: usize,
    /// Open MCP sessions at once; a new one past this gets 503.
    pub max_mcp_sessions: usize,
    /// An MCP session idle this long (milliseconds) is closed.
    pub mcp_session_idle_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8091)),
            admin_token: None,
            tokens: Vec::new(),
            body_limit_bytes: 1 << 20,
            max_header_bytes: 64 << 10,
            request_timeout_ms: 30_000,
            events_keepalive_ms: 15_000,
            admin_rate_per_minute: 60,
            admin_burst: 10,
            mcp_allowed_hosts: Vec::new(),
            max_connections: 1024,
            max_event_streams: 256,
            max_mcp_sessions: 64,
            mcp_session_idle_ms: 300_000,
        }
    }
}

/// One caller of the HTTP API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TokenConfig {
    /// The caller's name: `principal == Arw::Caller::"<name>"` in Cedar.
    pub name: String,
    /// The token itself. Prefer `token-sha256` in files others can read.
    #[serde(default)]
    pub token: Option<Secret>,
    /// The token's SHA-256, in hex (`printf %s TOKEN | sha256sum`).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// The caller's roles: `principal in Arw::Role::"<role>"` in Cedar.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Free-form tags gates see (`caller-tags` in a contract).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A string that is never printed by `Debug`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// What the host operator overrides for one component.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ComponentOverrides {
    /// Merged over the manifest's `[config]`; these win.
    pub config: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::NodeConfig;

    #[test]
    fn node_sizes_are_bounded_with_the_limit_named() {
        assert!(NodeConfig { id: "n1".into(), role: "edge".into(), tags: vec!["lab".into()] }.check().is_ok());
        let many = NodeConfig { tags: vec!["t".into(); NodeConfig::MAX_TAGS + 1], ..NodeConfig::default() };
        assert!(many.check().unwrap_err().contains("at most 64"));
        let long = NodeConfig { role: "r".repeat(NodeConfig::MAX_BYTES + 1), ..NodeConfig::default() };
        assert!(long.check().unwrap_err().contains("node.role"));
    }
}
