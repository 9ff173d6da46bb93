//! The control plane: what changes the set of components and policies
//! while the host serves.
//!
//! Every change runs under the transition lock, one at a time, and none
//! holds it while compiling or health-checking (that can take seconds for
//! a Python or JavaScript component): a version is loaded first, then the
//! lock is taken only to check it still fits and to switch. Each change is
//! announced on the typed control channel ([`Host::control`]) and, for
//! observers, on the bus under the host's reserved topics.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arw_policy::{PolicyError, PolicySet, PolicySource};
use tokio::sync::broadcast;

use super::{Host, MAX_REFUSALS, Refusal, Routes};
use crate::error::LoadError;
use crate::host::views::{ActivationError, PolicyReload};
use crate::roles::subscriber;
use crate::runtime::component::LoadedComponent;
use crate::source::ComponentPackage;
use crate::supervisor::{self, ControlEvent, Slot, Transition, events};

/// The stage of activation a load error belongs to.
pub(crate) fn stage_of(error: &LoadError) -> &'static str {
    match error {
        LoadError::Verify { .. } | LoadError::Unsigned { .. } => "verify",
        LoadError::NotWasm { .. } | LoadError::CoreModule { .. } | LoadError::Compile { .. } => "compile",
        LoadError::WrongWorld { .. } | LoadError::Link { .. } => "link",
        LoadError::Health { .. } => "health-check",
        LoadError::Limits { .. } => "limits",
        LoadError::Conflict { .. } => "conflict",
        LoadError::Manifest { .. } | LoadError::Io { .. } => "verify",
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Host {
    /// Every change of the component set and the policies, from now on:
    /// typed, and sent only by the host (unlike bus events, which the
    /// control plane must never act on).
    pub fn control(&self) -> broadcast::Receiver<ControlEvent> {
        self.announcer.subscribe()
    }

    /// Install or upgrade a component while the host serves. The new
    /// version is loaded, linked and health-checked first, outside the
    /// transition lock; only then does it become active (atomically). On
    /// any failure the previous version stays active, and the stage and
    /// reason are returned, logged, published and kept as a refusal.
    pub async fn activate(&self, package: ComponentPackage) -> Result<String, ActivationError> {
        let id = package.manifest.id.to_string();
        let to = package.manifest.version.to_string();
        let digest = crate::runtime::component::digest(&package.wasm);
        // Asked twice for the version already active (an HTTP install and
        // the installed-set watcher both reacting to one change): done.
        if self.is_active(&id, &to, &digest) {
            return Ok(to);
        }
        let from = self.slot(&id).map(|s| s.active().version());
        self.announcer
            .publish(events::ACTIVATING, serde_json::json!({"component": id, "from": from, "to": to, "reason": null}));
        let loaded = self.runtime.load_digested(package, digest.clone()).await;
        let _serial = self.transitions.lock().await;
        if self.is_active(&id, &to, &digest) {
            return Ok(to);
        }
        let existing = self.slot(&id);
        let from = existing.as_ref().map(|s| s.active().version());
        let fail = |stage: &'static str, reason: String| {
            self.refused(existing.as_deref(), &id, &to, from.clone(), stage, &reason);
            ActivationError { id: id.clone(), version: to.clone(), stage, reason }
        };
        let loaded = match loaded {
            Ok(loaded) => Arc::new(loaded),
            Err(e) => return Err(fail(stage_of(&e), e.to_string())),
        };
        if let Err(e) = self.check_tool_name(&loaded) {
            return Err(fail("conflict", e.to_string()));
        }
        let slot = match existing {
            None => self.admit_new(loaded.clone()).map_err(|e| fail(stage_of(&e), e.to_string()))?,
            Some(slot) => {
                let old = slot.switch(loaded.clone(), self.runtime.config.swap.auto_rollback);
                self.reroute();
                self.ensure_worker(&slot);
                self.spawn_drain(slot.clone(), old);
                slot
            }
        };
        self.refusals.lock().remove(&id);
        self.announcer.transition(
            Some(&slot),
            &id,
            Transition::new(events::ACTIVATED, from.clone(), Some(to.clone()), None),
            Some(ControlEvent::Activated {
                component: id.clone(),
                from,
                version: to.clone(),
                digest: loaded.digest.clone(),
            }),
        );
        Ok(to)
    }

    fn is_active(&self, id: &str, version: &str, digest: &str) -> bool {
        self.slot(id).is_some_and(|slot| {
            let active = slot.active();
            active.version() == version && active.digest == digest
        })
    }

    /// Report and keep a refused activation.
    fn refused(
        &self,
        slot: Option<&Slot>,
        id: &str,
        to: &str,
        from: Option<String>,
        stage: &'static str,
        reason: &str,
    ) {
        self.record_refusal(id, Some(to.to_string()), stage, reason.to_string());
        let why = format!("{stage}: {reason}");
        let record = Transition::new(events::ACTIVATION_FAILED, from, Some(to.to_string()), Some(why));
        let control = ControlEvent::ActivationFailed {
            component: id.to_string(),
            version: to.to_string(),
            stage: stage.to_string(),
            reason: reason.to_string(),
        };
        self.announcer.transition(slot, id, record, Some(control));
    }

    /// Keep `component`'s refusal (the newest per component) for
    /// [`Host::status`]; a front end that refused a version before it
    /// reached the host (the registry's checks) records it here too.
    pub fn record_refusal(&self, component: &str, version: Option<String>, stage: &str, reason: String) {
        tracing::warn!(component, version = ?version, stage, "component refused: {reason}");
        let mut refusals = self.refusals.lock();
        if refusals.len() >= MAX_REFUSALS && !refusals.contains_key(component) {
            let oldest = refusals.iter().min_by_key(|(_, r)| r.at_ms).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                refusals.remove(&oldest);
            }
        }
        refusals.insert(
            component.to_string(),
            Refusal { component: component.to_string(), version, stage: stage.to_string(), reason, at_ms: now_ms() },
        );
    }

    /// Forget `component`'s refusal (it left the installed set).
    pub fn clear_refusal(&self, component: &str) {
        self.refusals.lock().remove(component);
    }

    /// Add a component that has no slot yet.
    pub(super) fn admit_new(&self, loaded: Arc<LoadedComponent>) -> Result<Arc<Slot>, LoadError> {
        let id = loaded.id().to_string();
        if let Some(existing) = self.slot(&id) {
            return Err(LoadError::Conflict {
                origin: loaded.origin.clone(),
                message: format!("component id `{id}` is already loaded from {}", existing.active().origin),
            });
        }
        self.check_tool_name(&loaded)?;
        let slot = Slot::new(loaded);
        let mut routes = Routes::clone(&self.routes.load());
        routes.components.insert(id, slot.clone());
        self.routes.store(Arc::new(routes));
        self.reroute();
        self.ensure_worker(&slot);
        Ok(slot)
    }

    /// Refuse a version whose tool name another component already provides.
    fn check_tool_name(&self, loaded: &LoadedComponent) -> Result<(), LoadError> {
        if let Some(tool) = loaded.tool()
            && let Some(owner) = self.routes.load().tools.get(&tool.name)
            && owner.id != loaded.id()
        {
            return Err(LoadError::Conflict {
                origin: loaded.origin.clone(),
                message: format!(
                    "tool name `{}` is already provided by `{}`; uninstall that one first or rename the tool",
                    tool.name, owner.id
                ),
            });
        }
        Ok(())
    }

    /// Rebuild the tool table from each component's active version.
    fn reroute(&self) {
        let mut routes = Routes::clone(&self.routes.load());
        routes.tools = routes
            .components
            .values()
            .filter_map(|slot| slot.active().tool().map(|t| (t.name.clone(), slot.clone())))
            .collect();
        self.routes.store(Arc::new(routes));
    }

    /// Start the subscriber worker of `slot` if its active version
    /// subscribes and none runs yet.
    fn ensure_worker(&self, slot: &Arc<Slot>) {
        if slot.active().subscriber.is_none() {
            return;
        }
        let mut workers = self.workers.lock();
        if !workers.contains_key(&slot.id) {
            let worker = subscriber::spawn(self.runtime.clone(), slot.clone(), self.shutdown.subscribe());
            workers.insert(slot.id.clone(), worker);
        }
    }

    pub(super) fn slot(&self, id: &str) -> Option<Arc<Slot>> {
        self.routes.load().components.get(id).cloned()
    }

    fn spawn_drain(&self, slot: Arc<Slot>, old: Arc<LoadedComponent>) {
        let grace = Duration::from_millis(self.runtime.config.swap.drain_grace_ms);
        tokio::spawn(supervisor::drain(slot, old, grace, self.announcer.clone()));
    }

    /// Take a component away while the host serves; calls in flight finish
    /// (within the drain grace period). Returns whether it was loaded.
    pub async fn remove(&self, id: &str) -> bool {
        let _serial = self.transitions.lock().await;
        self.refusals.lock().remove(id);
        let mut routes = Routes::clone(&self.routes.load());
        let Some(slot) = routes.components.remove(id) else { return false };
        self.routes.store(Arc::new(routes));
        self.reroute();
        if let Some(worker) = self.workers.lock().remove(id) {
            self.bus().unsubscribe(worker.subscription);
        }
        let active = slot.active();
        let version = active.version();
        self.announcer.transition(
            Some(&slot),
            id,
            Transition::new(events::REMOVED, Some(version.clone()), None, None),
            Some(ControlEvent::Removed { component: id.to_string(), version }),
        );
        self.spawn_drain(slot, active);
        true
    }

    /// Roll `slot` back from `failed` to the version before it, if `failed`
    /// is still the active one (a newer activation wins over a pending
    /// rollback).
    pub(super) async fn auto_rollback(&self, slot: &Arc<Slot>, failed: &Arc<LoadedComponent>) {
        let _serial = self.transitions.lock().await;
        let Some((failed, restored)) = slot.roll_back(failed) else { return };
        self.reroute();
        let swap = &self.runtime.config.swap;
        let reason = format!(
            "{} faults (traps, deadlines, memory caps or invalid output) within its first {} calls",
            swap.rollback_after_faults, swap.probation_calls
        );
        self.announcer.transition(
            Some(slot),
            &slot.id,
            Transition::new(
                events::ROLLED_BACK,
                Some(failed.version()),
                Some(restored.version()),
                Some(reason.clone()),
            ),
            Some(ControlEvent::RolledBack {
                component: slot.id.clone(),
                from: failed.version(),
                version: restored.version(),
                digest: restored.digest.clone(),
                reason,
            }),
        );
        self.spawn_drain(slot.clone(), failed);
    }

    /// Validate `sources` as a whole and, if valid, make them the policy set
    /// (every cached decision is dropped, so the very next capability call
    /// is decided by the new set). If invalid, the current set stays and a
    /// `policy.reload.failed` event names each file and line.
    pub async fn reload_policies(&self, sources: Vec<PolicySource>) -> Result<PolicyReload, PolicyError> {
        let authorizer = self.authorizer().clone();
        // Validate outside the lock: it is the slow part.
        let parsed = PolicySet::from_sources(authorizer.schema(), sources);
        let _serial = self.transitions.lock().await;
        match parsed {
            Ok(next) => {
                let (added, removed, changed) = next.diff(&authorizer.policies());
                let summary = PolicyReload { policies: next.len(), added, removed, changed };
                authorizer.replace_policies(next);
                tracing::info!(policies = summary.policies, added = ?summary.added, removed = ?summary.removed, changed = ?summary.changed, "{}", events::POLICY_RELOADED);
                self.announcer.publish(events::POLICY_RELOADED, serde_json::to_value(&summary).unwrap_or_default());
                self.announcer.control(ControlEvent::PoliciesReloaded { policies: summary.policies });
                Ok(summary)
            }
            Err(error) => {
                let diagnostics: Vec<serde_json::Value> = error
                    .diagnostics()
                    .iter()
                    .map(|d| serde_json::json!({"file": d.file, "line": d.line, "column": d.column, "message": d.message}))
                    .collect();
                tracing::error!("{}: {error}; the previous policies stay in force", events::POLICY_RELOAD_FAILED);
                self.announcer.publish(
                    events::POLICY_RELOAD_FAILED,
                    serde_json::json!({"errors": diagnostics, "message": error.to_string()}),
                );
                self.announcer.control(ControlEvent::PolicyReloadFailed { message: error.to_string() });
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::HostConfig;
    use crate::source::ComponentSource;

    struct Packages(Vec<ComponentPackage>);

    impl ComponentSource for Packages {
        fn describe(&self) -> String {
            "test".into()
        }
        fn packages(&self) -> Vec<Result<ComponentPackage, LoadError>> {
            self.0.iter().cloned().map(Ok).collect()
        }
    }

    fn probe(version: &str) -> ComponentPackage {
        let text = format!("id = \"test:probe\"\nversion = \"{version}\"\nworlds = [\"tool\"]\n");
        ComponentPackage {
            manifest: crate::Manifest::parse(&text).unwrap_or_else(|e| panic!("{e}")),
            wasm: Cow::Borrowed(arw_artifacts::PROBE.bytes),
            origin: "test".into(),
            publisher: Some("test".into()),
        }
    }

    /// Hardening #10: an auto-rollback decided for a faulting version
    /// never lands on a newer one. v2 faults, the operator activates the
    /// fix v3 before the rollback runs: the rollback for v2 is a no-op.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_pending_rollback_never_replaces_a_newer_fix() {
        let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = HostConfig { state_dir: Some(state.path().to_path_buf()), ..HostConfig::default() };
        let (host, refused) = Host::start(config, PolicySet::empty(), &Packages(vec![probe("1.0.0")]))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(refused.is_empty(), "{refused:?}");
        host.activate(probe("2.0.0")).await.unwrap_or_else(|e| panic!("{e}"));
        let broken = host.active_component("test:probe").unwrap_or_else(|| panic!("no probe"));
        let slot = host.slot("test:probe").unwrap_or_else(|| panic!("no slot"));
        host.activate(probe("3.0.0")).await.unwrap_or_else(|e| panic!("{e}"));
        // The rollback that v2's faults asked for arrives now.
        host.auto_rollback(&slot, &broken).await;
        assert_eq!(host.active_version("test:probe").map(|v| v.0).as_deref(), Some("3.0.0"));
        // It still works for the version that is active and faulting.
        let fix = host.active_component("test:probe").unwrap_or_else(|| panic!("no probe"));
        host.auto_rollback(&slot, &fix).await;
        assert_eq!(host.active_version("test:probe").map(|v| v.0).as_deref(), Some("2.0.0"));
        host.shutdown(Duration::from_secs(1)).await;
    }

    /// Hardening #10: a drain's retire and a rollback's restore are one
    /// decision under the slot's lock: a version restored after its drain
    /// retired it is serving again, not retired.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_restored_version_is_never_left_retired() {
        let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = HostConfig { state_dir: Some(state.path().to_path_buf()), ..HostConfig::default() };
        let (host, _) = Host::start(config, PolicySet::empty(), &Packages(vec![probe("1.0.0")]))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let v1 = host.active_component("test:probe").unwrap_or_else(|| panic!("no probe"));
        let slot = host.slot("test:probe").unwrap_or_else(|| panic!("no slot"));
        let _call = v1.enter(); // a call in flight on v1
        host.activate(probe("2.0.0")).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(slot.end_drain(&v1), supervisor::DrainEnd::Retired { interrupted: 1 });
        assert!(v1.retired.load(std::sync::atomic::Ordering::Acquire));
        let v2 = host.active_component("test:probe").unwrap_or_else(|| panic!("no probe"));
        host.auto_rollback(&slot, &v2).await;
        assert!(Arc::ptr_eq(&host.active_component("test:probe").unwrap_or_else(|| panic!("no probe")), &v1));
        assert!(!v1.retired.load(std::sync::atomic::Ordering::Acquire), "restored and serving, not retired");
        assert_eq!(slot.end_drain(&v1), supervisor::DrainEnd::ActiveAgain);
        host.shutdown(Duration::from_secs(1)).await;
    }
}
