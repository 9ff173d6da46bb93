//! Versions of components over time: one active version per component,
//! atomic switches, drains, and rollback.
//!
//! Each component has a [`Slot`] whose active version sits in an
//! `ArcSwap`. A call loads the current `Arc` and keeps it for its whole
//! run, so a switch never touches calls in flight: they finish on the
//! version they started on, and the old version is freed when the last of
//! them drops its `Arc`. A drain task watches each replaced version; if
//! calls are still running when the grace period ends, the version is
//! marked retired and those calls are interrupted at the next epoch tick.
//!
//! The decisions that race (an auto-rollback against a newer activation,
//! a drain's retire against a rollback that restores the same version) are
//! made under the slot's one lock, each checking which version is active
//! at that moment.
//!
//! Every transition is announced twice: on the control channel
//! ([`ControlEvent`], which only the host writes, so the control plane can
//! act on it) and on the bus (for observers; the host's topics are
//! reserved, so no component can forge one).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::capabilities::bus::{Bus, Payload};
use crate::runtime::component::LoadedComponent;

/// Transition events published on the bus (topic → meaning).
pub mod events {
    pub const ACTIVATING: &str = "component.activating";
    pub const ACTIVATED: &str = "component.activated";
    pub const ACTIVATION_FAILED: &str = "component.activation_failed";
    pub const ROLLED_BACK: &str = "component.rolled_back";
    pub const DRAINED: &str = "component.drained";
    pub const REMOVED: &str = "component.removed";
    pub const POLICY_RELOADED: &str = "policy.reloaded";
    pub const POLICY_RELOAD_FAILED: &str = "policy.reload.failed";
}

/// A change of the host's component set or policies, as the control plane
/// sees it: typed, and sent only by the host itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum ControlEvent {
    /// `version` of `component` became active (replacing `from`).
    Activated { component: String, from: Option<String>, version: String, digest: String },
    /// `version` was refused at `stage`; what was active stays.
    ActivationFailed { component: String, version: String, stage: String, reason: String },
    /// `from` kept faulting during probation; `version` is active again.
    RolledBack { component: String, from: String, version: String, digest: String, reason: String },
    /// A replaced `version` has no calls left (or they were interrupted).
    Drained { component: String, version: String, reason: String },
    /// `component` was taken away; `version` drains.
    Removed { component: String, version: String },
    /// A new policy set is in force.
    PoliciesReloaded { policies: usize },
    /// A policy reload was refused; the previous set stays.
    PolicyReloadFailed { message: String },
}

impl ControlEvent {
    /// The component this event is about, if any.
    pub fn component(&self) -> Option<&str> {
        match self {
            ControlEvent::Activated { component, .. }
            | ControlEvent::ActivationFailed { component, .. }
            | ControlEvent::RolledBack { component, .. }
            | ControlEvent::Drained { component, .. }
            | ControlEvent::Removed { component, .. } => Some(component),
            ControlEvent::PoliciesReloaded { .. } | ControlEvent::PolicyReloadFailed { .. } => None,
        }
    }

    /// Does it change which tools exist?
    pub fn changes_tools(&self) -> bool {
        matches!(self, ControlEvent::Activated { .. } | ControlEvent::RolledBack { .. } | ControlEvent::Removed { .. })
    }
}

/// How many control events a slow follower may fall behind before it is
/// told it lagged (`broadcast::error::RecvError::Lagged`).
pub const CONTROL_CHANNEL_CAPACITY: usize = 256;

/// Where transitions are announced: the control channel and the bus.
#[derive(Debug, Clone)]
pub struct Announcer {
    bus: Arc<Bus>,
    control: broadcast::Sender<ControlEvent>,
}

impl Announcer {
    pub(crate) fn new(bus: Arc<Bus>) -> Self {
        Announcer { bus, control: broadcast::channel(CONTROL_CHANNEL_CAPACITY).0 }
    }

    /// A receiver of every control event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ControlEvent> {
        self.control.subscribe()
    }

    /// Publish a host event on the bus (for observers), and log it.
    pub(crate) fn publish(&self, topic: &str, payload: serde_json::Value) {
        if let Err(e) = self.bus.publish_host(topic, Payload::Json(payload.to_string())) {
            tracing::error!("the host event `{topic}` could not be published: {e}");
        }
    }

    /// Tell the control plane.
    pub(crate) fn control(&self, event: ControlEvent) {
        // No follower is fine.
        let _ = self.control.send(event);
    }

    /// A component transition: logged, published on the bus with the
    /// classic payload, recorded as the slot's last transition, and (when
    /// `control` is given) sent on the control channel.
    pub(crate) fn transition(
        &self,
        slot: Option<&Slot>,
        component: &str,
        record: Transition,
        control: Option<ControlEvent>,
    ) {
        tracing::info!(component, from = ?record.from, to = ?record.to, reason = ?record.reason, "{}", record.event);
        self.publish(
            &record.event,
            serde_json::json!({"component": component, "from": record.from, "to": record.to, "reason": record.reason}),
        );
        if let Some(slot) = slot {
            *slot.last.lock() = Some(record);
        }
        if let Some(event) = control {
            self.control(event);
        }
    }
}

/// The last thing that happened to a component.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct Transition {
    pub event: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub reason: Option<String>,
    pub at_ms: u64,
}

impl Transition {
    pub(crate) fn new(event: &str, from: Option<String>, to: Option<String>, reason: Option<String>) -> Self {
        Transition { event: event.into(), from, to, reason, at_ms: now_ms() }
    }
}

/// Counts of a new version's first calls.
#[derive(Debug, Default, Clone, Copy)]
struct Probation {
    calls: u32,
    faults: u32,
}

/// A version that was replaced and still has calls running (or had, until
/// its drain ended).
#[derive(Debug, Clone)]
struct Draining {
    version: String,
    component: Weak<LoadedComponent>,
}

/// What the slot's lock guards.
#[derive(Debug, Default)]
struct SlotState {
    /// The version before the active one, kept loaded only while the
    /// active one is on probation (for a quick auto-rollback); otherwise a
    /// replaced version is freed as soon as its last call ends.
    previous: Option<Arc<LoadedComponent>>,
    probation: Option<Probation>,
    draining: Vec<Draining>,
}

/// One component's versions.
pub struct Slot {
    pub id: String,
    active: ArcSwap<LoadedComponent>,
    state: Mutex<SlotState>,
    /// Fast check for the call path: is a probation running at all?
    on_probation: AtomicBool,
    last: Mutex<Option<Transition>>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("id", &self.id).field("active", &self.active().version()).finish_non_exhaustive()
    }
}

/// A replaced version and how it drains.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DrainingStatus {
    pub version: String,
    pub in_flight: usize,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What a drain found when its grace period ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DrainEnd {
    /// The version is active again (a rollback restored it): nothing to do.
    ActiveAgain,
    /// It was retired with this many calls still running (maybe 0).
    Retired { interrupted: usize },
}

impl Slot {
    pub(crate) fn new(component: Arc<LoadedComponent>) -> Arc<Slot> {
        Arc::new(Slot {
            id: component.id().to_string(),
            active: ArcSwap::new(component),
            state: Mutex::new(SlotState::default()),
            on_probation: AtomicBool::new(false),
            last: Mutex::new(None),
        })
    }

    /// The active version (the caller keeps it for the whole call).
    pub fn active(&self) -> Arc<LoadedComponent> {
        self.active.load_full()
    }

    pub fn previous_version(&self) -> Option<String> {
        self.state.lock().previous.as_ref().map(|p| p.version())
    }

    pub fn last_transition(&self) -> Option<Transition> {
        self.last.lock().clone()
    }

    /// Replaced versions that still exist, with their calls in flight.
    pub fn draining(&self) -> Vec<DrainingStatus> {
        let mut state = self.state.lock();
        state.draining.retain(|d| d.component.strong_count() > 0);
        state
            .draining
            .iter()
            .filter_map(|d| {
                d.component.upgrade().map(|c| DrainingStatus { version: d.version.clone(), in_flight: c.in_flight() })
            })
            .collect()
    }

    /// Is the active version on probation?
    /// The version a version on probation replaced, while it is kept (for
    /// a gate: it decides what its faulting successor cannot).
    pub(crate) fn previous_on_probation(&self) -> Option<Arc<LoadedComponent>> {
        if !self.on_probation.load(Ordering::Acquire) {
            return None;
        }
        self.state.lock().previous.clone()
    }

    pub(crate) fn on_probation(&self) -> bool {
        self.on_probation.load(Ordering::Acquire)
    }

    /// Make `next` the active version; returns the one it replaced, which
    /// starts draining.
    pub(crate) fn switch(&self, next: Arc<LoadedComponent>, probation: bool) -> Arc<LoadedComponent> {
        let mut state = self.state.lock();
        // A feedback apply made after `next` was loaded (its slots and pool
        // were sized then) holds on it from now.
        next.retune();
        let old = self.active.swap(next);
        state.probation = probation.then(Probation::default);
        self.on_probation.store(probation, Ordering::Release);
        state.draining.push(Draining { version: old.version(), component: Arc::downgrade(&old) });
        state.previous = probation.then(|| old.clone());
        old
    }

    /// Record the outcome of a call on `version` during probation. Returns
    /// true when the faults reached `limit` within the watched calls: the
    /// caller should roll back (with [`Slot::roll_back`], naming `version`).
    pub(crate) fn observe(&self, version: &Arc<LoadedComponent>, fault: bool, window: u32, limit: u32) -> bool {
        if !self.on_probation.load(Ordering::Acquire) {
            return false;
        }
        let mut state = self.state.lock();
        if !Arc::ptr_eq(&self.active.load(), version) {
            return false;
        }
        let Some(p) = state.probation.as_mut() else { return false };
        p.calls += 1;
        if fault {
            p.faults += 1;
        }
        if p.faults >= limit {
            // Probation stays recorded as failed until the rollback (which
            // checks that `version` is still the active one) takes it.
            return true;
        }
        if p.calls >= window {
            // Passed: the previous version is no longer needed.
            state.probation = None;
            self.on_probation.store(false, Ordering::Release);
            state.previous = None;
        }
        false
    }

    /// Swap back to the previous version, but only if `failed` is still
    /// the active one: a newer version activated meanwhile (a fix) is never
    /// replaced by the version before the broken one. Returns (failed,
    /// restored).
    pub(crate) fn roll_back(
        &self,
        failed: &Arc<LoadedComponent>,
    ) -> Option<(Arc<LoadedComponent>, Arc<LoadedComponent>)> {
        let mut state = self.state.lock();
        if !Arc::ptr_eq(&self.active.load(), failed) {
            return None;
        }
        let previous = state.previous.take()?;
        // Under the same lock as a drain's retire (see `end_drain`), so a
        // restored version is never retired by its old drain.
        previous.retired.store(false, Ordering::Release);
        let failed = self.active.swap(previous.clone());
        state.probation = None;
        self.on_probation.store(false, Ordering::Release);
        // The restored version is active again, not draining.
        state.draining.retain(|d| !std::ptr::eq(d.component.as_ptr(), Arc::as_ptr(&previous)));
        state.draining.push(Draining { version: failed.version(), component: Arc::downgrade(&failed) });
        Some((failed, previous))
    }

    /// The end of `old`'s grace period: retire it (interrupting what still
    /// runs) unless it is active again. Atomic with [`Slot::roll_back`].
    pub(crate) fn end_drain(&self, old: &Arc<LoadedComponent>) -> DrainEnd {
        let _state = self.state.lock();
        if Arc::ptr_eq(&self.active.load(), old) {
            return DrainEnd::ActiveAgain;
        }
        let interrupted = old.in_flight();
        if interrupted > 0 {
            old.retired.store(true, Ordering::Release);
        }
        DrainEnd::Retired { interrupted }
    }
}

/// Wait for `old` to have no calls in flight, up to `grace`; then retire it
/// (interrupting what still runs) and report. Holds only a weak reference
/// after the grace period, so the version is freed when its calls end.
pub(crate) async fn drain(slot: Arc<Slot>, old: Arc<LoadedComponent>, grace: Duration, announcer: Announcer) {
    let version = old.version();
    let deadline = Instant::now() + grace;
    while old.in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let interrupted = match slot.end_drain(&old) {
        // Its calls are current ones: nothing to retire or report.
        DrainEnd::ActiveAgain => {
            tracing::debug!(component = %slot.id, %version, "active again; drain cancelled");
            return;
        }
        DrainEnd::Retired { interrupted } => interrupted,
    };
    drop(old);
    let reason = if interrupted > 0 {
        format!("{interrupted} call(s) outlived the {} ms grace period and were interrupted", grace.as_millis())
    } else {
        "all calls finished".to_string()
    };
    announcer.transition(
        Some(&slot),
        &slot.id,
        Transition::new(events::DRAINED, Some(version.clone()), None, Some(reason.clone())),
        Some(ControlEvent::Drained { component: slot.id.clone(), version, reason }),
    );
}

/// Announce that `slot` was rolled back from `failed` to `restored` after
/// its faults during probation.
pub(crate) fn announce_rollback(
    announcer: &Announcer,
    slot: &Arc<Slot>,
    failed: &LoadedComponent,
    restored: &LoadedComponent,
    swap: &crate::config::SwapConfig,
) {
    let reason = format!(
        "{} faults (traps, deadlines, memory caps or invalid output) within its first {} entries (calls, deliveries, ticks)",
        swap.rollback_after_faults, swap.probation_calls
    );
    announcer.transition(
        Some(slot),
        &slot.id,
        Transition::new(events::ROLLED_BACK, Some(failed.version()), Some(restored.version()), Some(reason.clone())),
        Some(ControlEvent::RolledBack {
            component: slot.id.clone(),
            from: failed.version(),
            version: restored.version(),
            digest: restored.digest.clone(),
            reason,
        }),
    );
}
