//! Keeping a running host in step with the installed set.
//!
//! [`reconcile`] brings the host to what `installed.json` says, removals
//! first (so a tool name an uninstalled component gave up is free for the
//! component that takes it over in the same change), then activations,
//! repeated while any succeeds (so a version refused only because another
//! pending one was in its way gets its turn). Whatever is still refused is
//! recorded on the host ([`arw_host::Host::refusals`]): the running host
//! and the installed set never disagree silently.
//!
//! [`follow_rollbacks`] records the host's auto-rollbacks in the installed
//! set, so a restart runs the version the host rolled back to. It acts
//! only on the host's typed control channel, never on bus events, which a
//! component could publish.

use std::collections::BTreeMap;
use std::sync::Arc;

use arw_host::Host;
use arw_host::supervisor::ControlEvent;
use arw_manifest::ComponentId;
use arw_registry::installed::InstalledEntry;
use tokio::sync::broadcast::error::RecvError;

use crate::source::InstalledSource;

/// What one reconcile did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    pub activated: Vec<String>,
    pub removed: Vec<String>,
    /// Components whose installed version is not the active one, with why.
    pub refused: Vec<(String, String)>,
}

/// Bring the running host to the installed set.
pub async fn reconcile(host: &Host, source: &InstalledSource) -> Reconciled {
    let mut outcome = Reconciled::default();
    let index = match source.installed().load() {
        Ok(index) => index,
        Err(e) => {
            tracing::error!("cannot read the installed set: {e}; keeping the running components");
            return outcome;
        }
    };
    let running: Vec<String> = host.status().components.into_iter().map(|c| c.id).collect();
    for id in running {
        if !index.components.contains_key(&id) && host.remove(&id).await {
            tracing::info!(component = %id, "removed");
            outcome.removed.push(id);
        }
    }
    // Refusals of components that left the installed set are stale.
    for refusal in host.refusals() {
        if !index.components.contains_key(&refusal.component) && refusal.component.parse::<ComponentId>().is_ok() {
            host.clear_refusal(&refusal.component);
        }
    }
    let is_active = |id: &str, entry: &InstalledEntry| {
        host.active_version(id).is_some_and(|(v, d)| v == entry.version && d == entry.digest)
    };
    // What runs is what is installed: an older refusal of it (a newer
    // version that was refused, then rolled back from) no longer applies.
    for (id, entry) in &index.components {
        if is_active(id, entry) {
            host.clear_refusal(id);
        }
    }
    let mut pending: BTreeMap<&String, &InstalledEntry> =
        index.components.iter().filter(|(id, entry)| !is_active(id, entry)).collect();
    loop {
        let mut progress = false;
        let mut failures = Vec::new();
        for (id, entry) in std::mem::take(&mut pending) {
            let activated = match source.package(id, entry) {
                Ok(package) => host.activate(package).await.map_err(|e| e.to_string()),
                Err(e) => {
                    // Refused before it reached the host: say so there too.
                    host.record_refusal(id, Some(entry.version.clone()), "verify", e.to_string());
                    Err(e.to_string())
                }
            };
            match activated {
                Ok(version) => {
                    tracing::info!(component = %id, %version, "active");
                    outcome.activated.push(id.clone());
                    progress = true;
                }
                Err(reason) => {
                    pending.insert(id, entry);
                    failures.push((id.clone(), reason));
                }
            }
        }
        if pending.is_empty() || !progress {
            outcome.refused = failures;
            break;
        }
    }
    for (id, reason) in &outcome.refused {
        tracing::error!(component = %id, "the installed version is not running: {reason}");
    }
    outcome
}

/// Record every auto-rollback of `host` in the installed set until the
/// host's control channel closes.
pub async fn follow_rollbacks(host: Arc<Host>, source: InstalledSource) {
    let mut control = host.control();
    loop {
        let event = match control.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "the rollback recorder fell behind the control channel");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let ControlEvent::RolledBack { component, version, digest, .. } = event else { continue };
        record_rollback(&source, &component, &version, &digest);
    }
}

fn record_rollback(source: &InstalledSource, component: &str, version: &str, digest: &str) {
    let (Ok(id), Ok(parsed)) = (component.parse::<ComponentId>(), semver::Version::parse(version)) else {
        tracing::error!(component, version, "a rollback named an invalid component or version; not recorded");
        return;
    };
    let publisher = source
        .installed()
        .load()
        .ok()
        .and_then(|index| index.components.get(id.as_str()).map(|e| e.publisher.clone()))
        .unwrap_or_default();
    if let Err(e) = source.installed().record(&id, &parsed, digest, &publisher) {
        tracing::error!("cannot record the rollback of {id} in the installed set: {e}");
    }
}
