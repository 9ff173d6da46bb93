//! Core NATS for components (`arw:host/nats`): publish and request/reply
//! on the host's one connection to its cluster, `[cluster] nats-url`.
//!
//! The connection is made on first use, in the background
//! (`retry_on_initial_connect`): a host whose NATS server is down starts
//! and serves; calls wait for the connection until their deadline, and
//! publishes are buffered (`cluster.buffer` messages) while it is down.
//! Reconnects back off exponentially up to `cluster.reconnect-max-delay-ms`.
//! Without `nats-url` nothing connects and every call is `unavailable`.
//!
//! Subjects whose first token is `arw` or `_INBOX`, or starts with `$`,
//! are the host's and the server's own (cluster traffic, replies,
//! JetStream's API): refused before Cedar is asked, whatever the policies
//! say, so no grant can let a component speak for the host.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arw_policy::Action;
use serde::{Deserialize, Serialize};

use crate::capabilities::unit::Request;

mod host;
mod jetstream;
pub mod subject;

pub use host::NatsInstance;

/// A component publishing on a subject (`Arw::Subject`).
pub const PUBLISH: Action = Action::new("nats.publish");
/// A component sending a request on a subject and waiting for a reply.
pub const REQUEST: Action = Action::new("nats.request");
/// A component creating or updating a JetStream stream or its consumers
/// (`Arw::Stream`).
pub const JS_MANAGE: Action = Action::new("jetstream.manage");
/// A component publishing into a stream.
pub const JS_PUBLISH: Action = Action::new("jetstream.publish");
/// A component fetching and acknowledging a stream's messages, and reading
/// its state.
pub const JS_CONSUME: Action = Action::new("jetstream.consume");

/// A request's resource is a stream name pattern.
fn check_stream_pattern(_: &crate::manifest::Manifest, resource: &str) -> Result<(), String> {
    let ok = !resource.is_empty()
        && resource.len() <= 64
        && resource.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'*'));
    if !ok {
        return Err(format!(
            "stream pattern {resource:?}: 1 to 64 characters of A-Z, a-z, 0-9, `_`, `-`, and `*` for any run"
        ));
    }
    Ok(())
}

/// This capability, described (see [`crate::capabilities::unit`]).
pub const UNIT: crate::capabilities::Unit = crate::capabilities::Unit {
    name: "nats",
    wit: &["arw:host/nats", "arw:host/jetstream"],
    actions: &[PUBLISH, REQUEST, JS_MANAGE, JS_PUBLISH, JS_CONSUME],
    requests: &[
        Request { action: PUBLISH, check: subject::check_request },
        Request { action: REQUEST, check: subject::check_request },
        Request { action: JS_MANAGE, check: check_stream_pattern },
        Request { action: JS_PUBLISH, check: check_stream_pattern },
        Request { action: JS_CONSUME, check: check_stream_pattern },
    ],
    schema: include_str!("schema.cedarschema"),
    config_section: Some("cluster"),
    link,
};

/// This folder as a capability unit (see [`crate::capabilities::Capability`]).
#[derive(Debug)]
pub struct NatsCapability;

impl crate::capabilities::Capability for NatsCapability {
    const UNIT: crate::capabilities::Unit = UNIT;
    type Config = ClusterConfig;
    type State = Arc<Nats>;
    type Instance = NatsInstance;

    /// Everything that can be wrong with the configuration is found here,
    /// at start, with the key named: the connection itself is made later
    /// (and retried), so only the network may keep it from working.
    fn start(config: &ClusterConfig, _env: &crate::capabilities::StartEnv<'_>) -> Result<Arc<Nats>, crate::HostError> {
        config.check().map_err(crate::HostError::Config)?;
        let seed = config.nkey_seed().map_err(crate::HostError::Config)?;
        Ok(Arc::new(Nats {
            config: config.clone(),
            seed,
            consumers: Default::default(),
            client: tokio::sync::OnceCell::new(),
        }))
    }

    fn instance(
        state: &Arc<Nats>,
        component: &crate::capabilities::ComponentCapabilities,
        chain: &crate::runtime::entry::Chain,
    ) -> NatsInstance {
        NatsInstance::new(state.clone(), component, chain.clone())
    }

    fn enter(instance: &mut NatsInstance, chain: &crate::runtime::entry::Chain) {
        instance.set_chain(chain.clone());
    }
}

/// `arw:host/nats` and `arw:host/jetstream` (0.2.0 only) on [`NatsInstance`].
fn link(linker: &mut wasmtime::component::Linker<crate::runtime::store::InstanceState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    type State = crate::runtime::store::InstanceState;
    crate::bindings::imports::arw::host::nats::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut State| {
        &mut s.capabilities.cluster
    })?;
    crate::bindings::imports::arw::host::jetstream::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut State| {
        &mut s.capabilities.cluster
    })
}

/// `[cluster]`: the host's connection to its NATS cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClusterConfig {
    /// `nats://host:port` (several: comma-separated). Unset: no cluster,
    /// nothing connects, every `arw:host/nats` call is `unavailable`.
    pub nats_url: Option<String>,
    /// Authenticate with this token (`ARW_CLUSTER__TOKEN` keeps it out of
    /// the file).
    pub token: Option<String>,
    /// Or with the nkey whose seed (`SU...`) is in this file.
    pub nkey_file: Option<PathBuf>,
    /// Refuse a server that does not speak TLS.
    pub tls_required: bool,
    /// The CA (PEM) that signs the server's certificate, if not a public one.
    pub tls_ca_file: Option<PathBuf>,
    /// Messages buffered while the connection is down (then a publish waits).
    pub buffer: usize,
    /// The longest wait between two reconnect attempts.
    pub reconnect_max_delay_ms: u64,
    /// The longest a component's request may wait for its reply.
    pub max_request_timeout_ms: u64,
    /// The largest payload a component may publish or send.
    pub max_payload_bytes: usize,
    /// Bus topics bridged with the other hosts (`*` any run of
    /// characters): this host's events on them are sent to the cluster,
    /// and the others' events on them are delivered here, marked remote.
    /// Empty: no bridge.
    pub bridge_topics: Vec<String>,
    /// Remote event ids remembered to drop a second copy.
    pub bridge_dedup: usize,
    /// The node keys (ed25519 public keys, 64 hex digits: another host's
    /// `<state-dir>/node.key.pub`) whose signed tasks this host runs, besides
    /// its own.
    pub trusted_nodes: Vec<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nats_url: None,
            token: None,
            nkey_file: None,
            tls_required: false,
            tls_ca_file: None,
            buffer: 2048,
            reconnect_max_delay_ms: 5_000,
            max_request_timeout_ms: 30_000,
            max_payload_bytes: 1 << 20,
            bridge_topics: Vec::new(),
            bridge_dedup: 65_536,
            trusted_nodes: Vec::new(),
        }
    }
}

impl ClusterConfig {
    /// Refuse what cannot work, saying which key and how to fix it.
    fn check(&self) -> Result<(), String> {
        if self.token.is_some() && self.nkey_file.is_some() {
            return Err("cluster: set `token` or `nkey-file`, not both".into());
        }
        if let Some(url) = &self.nats_url {
            for server in url.split(',').map(str::trim) {
                let parsed = match server.is_empty() {
                    true => Err("an empty entry".to_string()),
                    false => server.parse::<async_nats::ServerAddr>().map_err(|e| e.to_string()),
                };
                if let Err(e) = parsed {
                    return Err(format!(
                        "cluster.nats-url = {url:?}: `{server}`: {e}; write `nats://host:port`, several separated by commas"
                    ));
                }
            }
        }
        if let Some(ca) = &self.tls_ca_file
            && let Err(e) = std::fs::metadata(ca)
        {
            return Err(format!("cluster.tls-ca-file {}: {e}", ca.display()));
        }
        for pattern in &self.bridge_topics {
            if pattern.is_empty() || !pattern.chars().all(|c| c.is_ascii_graphic()) {
                return Err(format!("cluster.bridge-topics: {pattern:?} is not a topic pattern (`orders.*`)"));
            }
            if let Some(prefix) = crate::capabilities::bus::reserved_prefix(pattern) {
                return Err(format!(
                    "cluster.bridge-topics: {pattern:?} is under `{prefix}`, the host's own events, which never cross hosts"
                ));
            }
        }
        for key in &self.trusted_nodes {
            if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "cluster.trusted-nodes: {key:?} is not a node key (64 hex digits, another host's <state-dir>/node.key.pub)"
                ));
            }
        }
        if !self.bridge_topics.is_empty() && self.nats_url.is_none() {
            return Err("cluster.bridge-topics needs cluster.nats-url".into());
        }
        if self.buffer == 0 || self.max_payload_bytes == 0 || self.max_request_timeout_ms == 0 || self.bridge_dedup == 0
        {
            return Err("cluster.buffer, cluster.max-payload-bytes, cluster.max-request-timeout-ms and cluster.bridge-dedup must be greater than zero".into());
        }
        Ok(())
    }

    /// The nkey seed of `nkey-file`, read and checked.
    fn nkey_seed(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.nkey_file else { return Ok(None) };
        let seed = std::fs::read_to_string(path).map_err(|e| format!("cluster.nkey-file {}: {e}", path.display()))?;
        let seed = seed.trim().to_string();
        nkeys::KeyPair::from_seed(&seed).map_err(|e| {
            format!(
                "cluster.nkey-file {}: not an nkey seed ({e}); it holds one line starting `SU` (`nsc generate nkey --user`)",
                path.display()
            )
        })?;
        Ok(Some(seed))
    }
}

/// The host's NATS connection, made on first use.
pub struct Nats {
    config: ClusterConfig,
    /// The seed of `nkey-file`, read at start.
    seed: Option<String>,
    /// Pull consumers looked up already, by (stream, consumer): a fetch
    /// is then one request to the server instead of three (stream info,
    /// consumer info, fetch). Dropped when a fetch fails; bounded.
    pub(crate) consumers:
        parking_lot::Mutex<std::collections::HashMap<(String, String), async_nats::jetstream::consumer::PullConsumer>>,
    client: tokio::sync::OnceCell<Result<async_nats::Client, String>>,
}

impl std::fmt::Debug for Nats {
    /// Without the seed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nats").field("config", &self.config).field("connected", &self.client.initialized()).finish()
    }
}

impl Nats {
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The connection (connecting in the background the first time), or
    /// why there is none.
    pub async fn client(&self) -> Result<&async_nats::Client, String> {
        let Some(url) = self.config.nats_url.clone() else {
            return Err("this host is not in a cluster: set `[cluster] nats-url` to use NATS".into());
        };
        let made = self.client.get_or_init(|| async move { self.connect(&url).await.map_err(|e| e.to_string()) }).await;
        made.as_ref().map_err(Clone::clone)
    }

    async fn connect(&self, url: &str) -> Result<async_nats::Client, String> {
        let config = &self.config;
        let max_delay = Duration::from_millis(config.reconnect_max_delay_ms);
        let mut options = async_nats::ConnectOptions::new()
            .name("arw")
            .no_echo()
            .retry_on_initial_connect()
            .client_capacity(config.buffer)
            .require_tls(config.tls_required)
            .reconnect_delay_callback(move |attempts| {
                // 100 ms, doubling, capped; attempt 0 is immediate.
                let factor = 1u64 << attempts.min(16);
                Duration::from_millis(50u64.saturating_mul(factor)).min(max_delay)
            });
        if let Some(token) = &config.token {
            options = options.token(token.clone());
        }
        if let Some(seed) = &self.seed {
            options = options.nkey(seed.clone());
        }
        if let Some(ca) = &config.tls_ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        options.connect(url).await.map_err(|e| format!("cluster.nats-url {url}: {e}"))
    }
}
