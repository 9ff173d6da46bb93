//! Shared set-up for the end-to-end tests: a host on a temporary state
//! directory, with chosen components (real guests from `arw-artifacts`) and
//! chosen Cedar policies.

pub mod http;
pub mod nats;

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arw_host::capabilities::bus::Event;
use arw_host::manifest::Manifest;
use arw_host::source::{ComponentPackage, ComponentSource};
use arw_host::{Caller, Host, HostConfig, LoadError};
use arw_policy::{PolicySet, PolicySource, Principal};
use tempfile::TempDir;

pub use arw_artifacts as artifacts;

/// The first-party manifests from `manifests/`.
pub mod manifests {
    pub const TEXT_STATS: &str = include_str!("../../manifests/text-stats.toml");
    pub const KV_COUNTER: &str = include_str!("../../manifests/kv-counter.toml");
    pub const ANNOUNCE: &str = include_str!("../../manifests/announce.toml");
    pub const EVENT_LOG: &str = include_str!("../../manifests/event-log.toml");
    pub const HEARTBEAT: &str = include_str!("../../manifests/heartbeat.toml");
    pub const GATING: &str = include_str!("../../manifests/gating.toml");
    pub const FEEDBACK: &str = include_str!("../../manifests/feedback.toml");
    pub const QUEUE_LOCAL: &str = include_str!("../../manifests/queue-local.toml");
    pub const QUEUE_JETSTREAM: &str = include_str!("../../manifests/queue-jetstream.toml");
}

/// The repository's default policies (`policies/default.cedar`).
pub const DEFAULT_POLICIES: &str = include_str!("../../policies/default.cedar");

/// A policy that lets the local operator call every tool.
pub const OPERATOR_INVOKES: &str =
    r#"permit(principal in Arw::Role::"operator", action == Arw::Action::"tool.invoke", resource);"#;

/// Components given as (manifest text, wasm bytes).
pub struct Components(pub Vec<(String, Vec<u8>)>);

impl Components {
    pub fn new() -> Self {
        Components(Vec::new())
    }

    pub fn with(mut self, manifest: &str, wasm: &[u8]) -> Self {
        self.0.push((manifest.to_string(), wasm.to_vec()));
        self
    }

    /// The four first-party components.
    pub fn first_party() -> Self {
        Components::new()
            .with(manifests::TEXT_STATS, artifacts::TEXT_STATS.bytes)
            .with(manifests::KV_COUNTER, artifacts::KV_COUNTER.bytes)
            .with(manifests::ANNOUNCE, artifacts::ANNOUNCE.bytes)
            .with(manifests::EVENT_LOG, artifacts::EVENT_LOG.bytes)
    }
}

impl Components {
    /// The same four, built against the frozen `arw:host@0.1.0`
    /// (`wit/compat/`): components made before 0.2.0.
    pub fn first_party_built_for_0_1() -> Self {
        let built = |name: &str| {
            artifacts::BUILT_FOR_0_1
                .iter()
                .find(|a| a.name == name)
                .unwrap_or_else(|| panic!("no 0.1.0 build of {name}"))
                .bytes
        };
        Components::new()
            .with(manifests::TEXT_STATS, built("text-stats"))
            .with(manifests::KV_COUNTER, built("kv-counter"))
            .with(manifests::ANNOUNCE, built("announce"))
            .with(manifests::EVENT_LOG, built("event-log"))
    }
}

impl Default for Components {
    fn default() -> Self {
        Self::new()
    }
}

impl ComponentSource for Components {
    fn describe(&self) -> String {
        format!("{} test components", self.0.len())
    }

    fn packages(&self) -> Vec<Result<ComponentPackage, LoadError>> {
        self.0
            .iter()
            .enumerate()
            .map(|(i, (manifest, wasm))| {
                let origin = format!("test:{i}");
                let manifest = Manifest::parse(manifest)
                    .map_err(|e| LoadError::Manifest { origin: origin.clone(), message: e.message })?;
                // This source stands in for the registry's verified source:
                // it vouches for each package as published by the id's
                // namespace (`arw` for the first-party manifests). The real
                // signature chain is tested in registry/tests.
                let publisher = Some(manifest.id.namespace().to_string());
                Ok(ComponentPackage { manifest, wasm: Cow::Owned(wasm.clone()), origin, publisher })
            })
            .collect()
    }
}

/// Packages given as they are (a test that builds its own manifests).
pub struct Packages(pub Vec<ComponentPackage>);

impl ComponentSource for Packages {
    fn describe(&self) -> String {
        format!("{} test packages", self.0.len())
    }

    fn packages(&self) -> Vec<Result<ComponentPackage, LoadError>> {
        self.0.iter().cloned().map(Ok).collect()
    }
}

/// Parse and validate `policies` (one file per string).
pub fn policies(policies: &[&str]) -> PolicySet {
    let schema = arw_policy::schema::embedded().unwrap_or_else(|e| panic!("{e}"));
    let sources = policies.iter().enumerate().map(|(i, text)| PolicySource::new(format!("test{i}.cedar"), *text));
    PolicySet::from_sources(&schema, sources).unwrap_or_else(|e| panic!("{e}"))
}

/// A started host and the temporary directory holding its state.
pub struct TestHost {
    pub host: Host,
    pub refused: Vec<LoadError>,
    pub operator: Caller,
    pub state: Arc<TempDir>,
}

impl TestHost {
    /// Start a host with `components` and `policies` on a fresh state dir.
    pub async fn start(components: Components, policy_texts: &[&str]) -> TestHost {
        let state = Arc::new(tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")));
        Self::start_in(state, components, policy_texts).await
    }

    /// Start a host on an existing state dir (to test restarts).
    pub async fn start_in(state: Arc<TempDir>, components: Components, policy_texts: &[&str]) -> TestHost {
        let config = config(state.path());
        let (host, refused) =
            Host::start(config, policies(policy_texts), &components).await.unwrap_or_else(|e| panic!("{e}"));
        let operator = host.caller(Principal::local_operator());
        TestHost { host, refused, operator, state }
    }

    /// Call `tool` as the local operator.
    pub async fn call(&self, tool: &str, input: serde_json::Value) -> Result<serde_json::Value, arw_host::CallError> {
        self.host.call(&self.operator, tool, &input.to_string()).await
    }

    /// Like [`TestHost::call`], failing the test on an error.
    pub async fn ok(&self, tool: &str, input: serde_json::Value) -> serde_json::Value {
        self.call(tool, input.clone()).await.unwrap_or_else(|e| panic!("{tool}({input}) failed: {e}"))
    }

    pub async fn stop(self) -> Arc<TempDir> {
        self.host.shutdown(Duration::from_secs(5)).await;
        self.state
    }
}

/// A host configuration with a small pool, on `state_dir`.
pub fn config(state_dir: &Path) -> HostConfig {
    let mut config = HostConfig { state_dir: Some(state_dir.to_path_buf()), ..HostConfig::default() };
    config.engine.max_instances = 32;
    config
}

/// Wait (bounded) until `condition` holds, polling; panics with `what` if it
/// never does. Used instead of sleeps: it returns as soon as the host is
/// done, and fails loudly if it never is.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Collect the events already received by an observer.
pub fn drain(observer: &mut tokio::sync::broadcast::Receiver<Arc<Event>>) -> Vec<Arc<Event>> {
    let mut events = Vec::new();
    while let Ok(event) = observer.try_recv() {
        events.push(event);
    }
    events
}

/// A manifest for the `probe` test guest with id `id` requesting `capabilities`
/// (TOML array-of-tables text) and `config`.
pub fn probe_manifest(id: &str, capabilities: &[(&str, &str)], config: &[(&str, &str)]) -> String {
    let mut text = format!("id = {id:?}\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n");
    for (action, resource) in capabilities {
        text.push_str(&format!("[[capabilities]]\naction = {action:?}\nresource = {resource:?}\n"));
    }
    if !config.is_empty() {
        text.push_str("[config]\n");
        for (k, v) in config {
            text.push_str(&format!("{k} = {v:?}\n"));
        }
    }
    text
}
