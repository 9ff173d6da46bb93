//! What `arw up` runs with no configuration: the first-party components
//! (built from `components/` by `arw-artifacts`, manifests from
//! `manifests/`) and the policies of `policies/`, all compiled into the
//! binary.

use arw_host::source::EmbeddedSource;
use arw_policy::PolicySource;

/// The first-party components with their manifests.
pub fn first_party() -> EmbeddedSource {
    use arw_artifacts as a;
    EmbeddedSource::new()
        .with("text-stats", include_str!("../../../manifests/text-stats.toml"), a::TEXT_STATS.bytes)
        .with("kv-counter", include_str!("../../../manifests/kv-counter.toml"), a::KV_COUNTER.bytes)
        .with("announce", include_str!("../../../manifests/announce.toml"), a::ANNOUNCE.bytes)
        .with("event-log", include_str!("../../../manifests/event-log.toml"), a::EVENT_LOG.bytes)
        .with("gating", include_str!("../../../manifests/gating.toml"), a::GATING.bytes)
        .with("feedback", include_str!("../../../manifests/feedback.toml"), a::FEEDBACK.bytes)
        .with("queue-local", include_str!("../../../manifests/queue-local.toml"), a::QUEUE_LOCAL.bytes)
        .with("queue-jetstream", include_str!("../../../manifests/queue-jetstream.toml"), a::QUEUE_JETSTREAM.bytes)
}

/// The default policies (`policies/*.cedar`).
pub fn policies() -> Vec<PolicySource> {
    vec![PolicySource::new("embedded:policies/default.cedar", include_str!("../../../policies/default.cedar"))]
}

/// The `arw:gating` presets (`presets/gating/*.toml`), by name.
pub const GATING_PRESETS: &[(&str, &str)] = &[
    ("strict", include_str!("../../../presets/gating/strict.toml")),
    ("standard", include_str!("../../../presets/gating/standard.toml")),
    ("relaxed", include_str!("../../../presets/gating/relaxed.toml")),
];
