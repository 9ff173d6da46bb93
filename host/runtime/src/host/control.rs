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

use super::{Host, MAX_REFUSALS, Refusal, RouteTable};
use crate::error::LoadError;
use crate::host::views::{ActivationError, PolicyReload};
use crate::roles::resident;
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

/// How a version on probation is rolled back: by a tool call that saw its
/// fault (under the transition lock, [`Host::auto_rollback`]), and by the
/// workers of the other roles, which count their own entries (a subscriber
/// delivery, a resident tick) and roll back without the lock (the resident
/// driver must not wait for it: the control plane holds it while it waits
/// for the driver's hand-over). `Slot::roll_back` is the atomic part.
#[derive(Debug, Clone)]
pub(crate) struct Rollback {
    routes: Arc<RouteTable>,
    announcer: crate::supervisor::Announcer,
    swap: crate::config::SwapConfig,
}

impl Rollback {
    pub(crate) fn new(
        routes: Arc<RouteTable>,
        announcer: crate::supervisor::Announcer,
        swap: crate::config::SwapConfig,
    ) -> Self {
        Rollback { routes, announcer, swap }
    }

    /// Count one entry's outcome on `version` towards its probation; when
    /// its faults reach `swap.rollback-after-faults`, roll the slot back.
    /// Returns the restored version if it did.
    pub(crate) fn observe(
        &self,
        slot: &Arc<Slot>,
        version: &Arc<LoadedComponent>,
        fault: bool,
    ) -> Option<Arc<LoadedComponent>> {
        let swap = &self.swap;
        if !swap.auto_rollback || !slot.observe(version, fault, swap.probation_calls, swap.rollback_after_faults) {
            return None;
        }
        self.roll_back(slot, version)
    }

    /// Roll `slot` back from `failed` to the version before it, if `failed`
    /// is still the active one (a newer activation wins over a pending
    /// rollback). Returns the restored version.
    pub(crate) fn roll_back(&self, slot: &Arc<Slot>, failed: &Arc<LoadedComponent>) -> Option<Arc<LoadedComponent>> {
        let (failed, restored) = slot.roll_back(failed)?;
        self.routes.reroute();
        supervisor::announce_rollback(&self.announcer, slot, &failed, &restored, &self.swap);
        let grace = Duration::from_millis(self.swap.drain_grace_ms);
        tokio::spawn(supervisor::drain(slot.clone(), failed, grace, self.announcer.clone()));
        Some(restored)
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
                let probation = self.runtime.config.swap.auto_rollback;
                let old = if resident::export_of(&slot.active()).is_some() || resident::export_of(&loaded).is_some() {
                    match self.hand_over(&slot, loaded.clone(), probation).await {
                        Ok(old) => old,
                        Err((stage, reason)) => {
                            self.refused(Some(&slot), &id, &to, from.clone(), stage, &reason);
                            return Err(ActivationError { id: id.clone(), version: to.clone(), stage, reason });
                        }
                    }
                } else {
                    slot.switch(loaded.clone(), probation)
                };
                self.routes.reroute();
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
        self.routes.update(|routes| routes.components.insert(id, slot.clone()));
        self.routes.reroute();
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

    /// Start the worker of `slot` (a subscriber's worker, a resident
    /// component's driver) if its active version needs one and none runs.
    fn ensure_worker(&self, slot: &Arc<Slot>) {
        let active = slot.active();
        let mut workers = self.workers.lock();
        if workers.contains_key(&slot.id) {
            return;
        }
        // A component has at most one role with a worker: `resident`
        // stands alone, and a tool has none.
        let spawn = crate::roles::ROLES
            .iter()
            .filter(|role| active.manifest.names_world(role.world))
            .find_map(|role| role.worker);
        let Some(spawn) = spawn else { return };
        let start = crate::roles::WorkerStart {
            runtime: self.runtime.clone(),
            slot: slot.clone(),
            rollback: self.rollback.clone(),
            shutdown: self.shutdown.subscribe(),
        };
        workers.insert(slot.id.clone(), spawn(start));
    }

    /// Swap a resident component: its driver snapshots the old instance,
    /// starts `next`, restores it and switches the slot, in that order
    /// between two entries. Returns the replaced version, or the stage and
    /// reason of the refusal (the old version stays).
    async fn hand_over(
        &self,
        slot: &Arc<Slot>,
        next: Arc<LoadedComponent>,
        probation: bool,
    ) -> Result<Arc<LoadedComponent>, (&'static str, String)> {
        let conflict = |message: &str| ("conflict", message.to_string());
        let (active, worlds_differ) = (slot.active(), slot.active().manifest.worlds != next.manifest.worlds);
        if resident::export_of(&active).is_none() || resident::export_of(&next).is_none() || worlds_differ {
            return Err(conflict(
                "a component cannot change between the `resident` or `feedback` world and another in place; \
                 uninstall it, then install the new version",
            ));
        }
        let commands = self.workers.lock().get(&slot.id).and_then(|w| w.commands.clone());
        let Some(commands) = commands else {
            return Err(("hand-over", "its resident driver is not running (the host is stopping)".into()));
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let gone = || ("hand-over", "its resident driver stopped (the host is stopping)".to_string());
        commands.send(resident::Command::HandOver { next, probation, reply }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?.map_err(|e| ("hand-over", e))
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
        let Some(slot) = self.routes.update(|routes| routes.components.remove(id)) else { return false };
        self.routes.reroute();
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
        self.rollback.roll_back(slot, failed);
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
