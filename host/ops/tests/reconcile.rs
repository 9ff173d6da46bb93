//! Keeping a running host in step with the installed set (what `arw up`'s
//! watcher runs on every change of `installed.json`), and recording
//! auto-rollbacks from the control channel only.

// Test helpers: an unwrap that fails is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use arw_host::{Host, HostConfig};
use arw_manifest::{ComponentId, Manifest};
use arw_ops::reconcile::{follow_rollbacks, reconcile};
use arw_ops::{InstalledSource, Stores};
use arw_policy::{PolicySet, PolicySource, Principal};
use arw_registry::PackageRef;

const TEXT_STATS: &str = include_str!("../../../manifests/text-stats.toml");
const POLICIES: &str = r#"
permit(principal in Arw::Role::"operator", action == Arw::Action::"tool.invoke", resource);
permit(principal, action == Arw::Action::"config.read", resource);"#;

struct Env {
    _dir: tempfile::TempDir,
    config: HostConfig,
    stores: Stores,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let config = HostConfig {
        state_dir: Some(root.join("state")),
        registry_dir: Some(root.join("registry")),
        keys_dir: Some(root.join("keys")),
        trust_dir: Some(root.join("trust")),
        ..HostConfig::default()
    };
    std::fs::create_dir_all(root.join("state")).unwrap();
    let stores = Stores::new(&config).unwrap();
    let public = stores.keys.generate("acme").unwrap();
    stores.trust.add("acme", &public).unwrap();
    Env { _dir: dir, config, stores }
}

impl Env {
    fn publish(&self, manifest: &str, wasm: &[u8]) {
        let (_, key) = self.stores.keys.load("acme").unwrap();
        self.stores.registry.publish(wasm, Manifest::parse(manifest).unwrap(), "acme", &key).unwrap();
    }

    fn install(&self, reference: &str) {
        let reference: PackageRef = reference.parse().unwrap();
        arw_ops::install::install(&self.config, &self.stores, &reference).unwrap();
    }

    fn uninstall(&self, id: &str) {
        arw_ops::rollback::uninstall(&self.stores, &id.parse::<ComponentId>().unwrap()).unwrap();
    }

    async fn host(&self) -> Host {
        let schema = arw_policy::schema::embedded().unwrap();
        let policies = PolicySet::from_sources(&schema, [PolicySource::new("p.cedar", POLICIES)]).unwrap();
        let (host, refused) = Host::start(self.config.clone(), policies, &self.source()).await.unwrap();
        assert!(refused.is_empty(), "{refused:?}");
        host
    }

    fn source(&self) -> InstalledSource {
        self.stores.source()
    }
}

/// A component other than `acme:text-stats` serving the tool `text-stats`.
fn impostor(version: &str) -> String {
    format!(
        "id = \"acme:stats\"\nversion = \"{version}\"\nworlds = [\"tool\"]\n\
         [[capabilities]]\naction = \"config.read\"\nresource = \"*\"\n[config]\ntool-name = \"text-stats\"\n"
    )
}

/// Hardening #17: the user uninstalls the component serving `text-stats`
/// and at once installs another serving the same tool name; one reconcile
/// sees both changes. Removals go first, so the new one activates.
#[tokio::test(flavor = "multi_thread")]
async fn a_removal_and_an_activation_in_one_change_apply_removals_first() {
    let env = env();
    env.publish(&TEXT_STATS.replace("arw:text-stats", "acme:text-stats"), arw_artifacts::TEXT_STATS.bytes);
    env.publish(&impostor("1.0.0"), arw_artifacts::PROBE.bytes);
    env.install("acme:text-stats");
    let host = env.host().await;
    env.uninstall("acme:text-stats");
    env.install("acme:stats");
    let outcome = reconcile(&host, &env.source()).await;
    assert_eq!(outcome.removed, ["acme:text-stats"]);
    assert_eq!(outcome.activated, ["acme:stats"]);
    assert!(outcome.refused.is_empty(), "{outcome:?}");
    assert_eq!(host.tool_owner("text-stats").as_deref(), Some("acme:stats"));
    assert!(host.refusals().is_empty(), "{:?}", host.refusals());
    host.shutdown(Duration::from_secs(1)).await;
}

/// Hardening #17: a version refused because something was in its way is
/// retried when that goes away, and until then the refusal is visible on
/// the host (never a silent disagreement with the installed set).
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_activation_is_retried_when_its_blocker_goes() {
    let env = env();
    env.publish(&TEXT_STATS.replace("arw:text-stats", "acme:text-stats"), arw_artifacts::TEXT_STATS.bytes);
    env.publish(&impostor("1.0.0"), arw_artifacts::PROBE.bytes);
    env.install("acme:text-stats");
    let host = env.host().await;
    env.install("acme:stats");
    let outcome = reconcile(&host, &env.source()).await;
    assert_eq!(outcome.refused.len(), 1, "{outcome:?}");
    let refusals = host.refusals();
    assert_eq!((refusals[0].component.as_str(), refusals[0].stage.as_str()), ("acme:stats", "conflict"));

    env.uninstall("acme:text-stats");
    let outcome = reconcile(&host, &env.source()).await;
    assert_eq!(
        (outcome.removed.as_slice(), outcome.activated.as_slice()),
        (&["acme:text-stats".to_string()][..], &["acme:stats".to_string()][..])
    );
    assert!(host.refusals().is_empty(), "{:?}", host.refusals());
    let caller = host.caller(Principal::local_operator());
    assert_eq!(host.call(&caller, "text-stats", r#"{"op":"echo","value":1}"#).await.unwrap()["ok"], 1);
    host.shutdown(Duration::from_secs(1)).await;
}

/// Hardening #4: the rollback recorder acts on the host's typed control
/// channel, never on bus events: a forged `component.rolled_back` (which no
/// component may publish, and here the host's own bus carries) changes
/// nothing, while a real auto-rollback is recorded.
#[tokio::test(flavor = "multi_thread")]
async fn only_real_rollbacks_reach_the_installed_set() {
    let env = env();
    let probe = |version: &str, generation: &str| {
        format!(
            "id = \"acme:probe\"\nversion = \"{version}\"\nworlds = [\"tool\"]\n\
             [[capabilities]]\naction = \"config.read\"\nresource = \"*\"\n[config]\ngeneration = \"{generation}\"\n"
        )
    };
    env.publish(&probe("1.0.0", "v1"), arw_artifacts::PROBE.bytes);
    env.publish(&probe("2.0.0", "trap"), arw_artifacts::PROBE.bytes);
    env.install("acme:probe@1.0.0");
    let host = Arc::new(env.host().await);
    let recorder = tokio::spawn(follow_rollbacks(host.clone(), env.source()));

    let forged = serde_json::json!({"component": "acme:probe", "from": "1.0.0", "to": "0.0.1", "reason": null});
    host.bus()
        .publish_host("component.rolled_back", arw_host::capabilities::bus::Payload::Json(forged.to_string()))
        .unwrap();

    env.install("acme:probe@2.0.0");
    reconcile(&host, &env.source()).await;
    let caller = host.caller(Principal::local_operator());
    for _ in 0..3 {
        let _ = host.call(&caller, "probe", r#"{"op":"config.get","key":"generation"}"#).await;
    }
    assert_eq!(host.active_version("acme:probe").unwrap().0, "1.0.0", "rolled back");
    let installed = env.stores.installed.clone();
    for _ in 0..500 {
        if installed.load().unwrap().components["acme:probe"].version == "1.0.0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let entry = installed.load().unwrap().components["acme:probe"].clone();
    assert_eq!(entry.version, "1.0.0", "the real rollback is recorded; the forged 0.0.1 never was");
    recorder.abort();
}
