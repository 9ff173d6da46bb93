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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde::Serialize;

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

/// One component's versions.
pub struct Slot {
    pub id: String,
    active: ArcSwap<LoadedComponent>,
    /// The version before the active one, kept loaded only while the
    /// active one is on probation (for a quick auto-rollback); otherwise a
    /// replaced version is freed as soon as its last call ends.
    previous: Mutex<Option<Arc<LoadedComponent>>>,
    probation: Mutex<Option<Probation>>,
    /// Fast check for the call path: is a probation running at all?
    on_probation: AtomicBool,
    draining: Mutex<Vec<Draining>>,
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

impl Slot {
    pub(crate) fn new(component: Arc<LoadedComponent>) -> Arc<Slot> {
        Arc::new(Slot {
            id: component.id().to_string(),
            active: ArcSwap::new(component),
            previous: Mutex::new(None),
            probation: Mutex::new(None),
            on_probation: AtomicBool::new(false),
            draining: Mutex::new(Vec::new()),
            last: Mutex::new(None),
        })
    }

    /// The active version (the caller keeps it for the whole call).
    pub fn active(&self) -> Arc<LoadedComponent> {
        self.active.load_full()
    }

    pub fn previous_version(&self) -> Option<String> {
        self.previous.lock().as_ref().map(|p| p.version())
    }

    pub fn last_transition(&self) -> Option<Transition> {
        self.last.lock().clone()
    }

    /// Replaced versions that still exist, with their calls in flight.
    pub fn draining(&self) -> Vec<DrainingStatus> {
        let mut draining = self.draining.lock();
        draining.retain(|d| d.component.strong_count() > 0);
        draining
            .iter()
            .filter_map(|d| {
                d.component.upgrade().map(|c| DrainingStatus { version: d.version.clone(), in_flight: c.in_flight() })
            })
            .collect()
    }

    pub(crate) fn record(
        &self,
        bus: &Bus,
        event: &str,
        from: Option<String>,
        to: Option<String>,
        reason: Option<String>,
    ) {
        let transition = Transition { event: event.into(), from, to, reason, at_ms: now_ms() };
        let payload = serde_json::json!({
            "component": self.id,
            "from": transition.from,
            "to": transition.to,
            "reason": transition.reason,
        });
        tracing::info!(component = %self.id, from = ?transition.from, to = ?transition.to, reason = ?transition.reason, "{event}");
        let _ = bus.publish("host", event, Payload::Json(payload.to_string()));
        *self.last.lock() = Some(transition);
    }

    /// Make `next` the active version; returns the one it replaced, which
    /// starts draining.
    pub(crate) fn switch(&self, next: Arc<LoadedComponent>, probation: bool) -> Arc<LoadedComponent> {
        let old = self.active.swap(next);
        *self.probation.lock() = probation.then(Probation::default);
        self.on_probation.store(probation, Ordering::Release);
        self.draining.lock().push(Draining { version: old.version(), component: Arc::downgrade(&old) });
        *self.previous.lock() = probation.then(|| old.clone());
        old
    }

    /// Record the outcome of a call on `version` during probation. Returns
    /// true when the faults reached `limit` within the watched calls: the
    /// caller should roll back.
    pub(crate) fn observe(&self, version: &LoadedComponent, fault: bool, window: u32, limit: u32) -> bool {
        if !self.on_probation.load(Ordering::Acquire) || !std::ptr::eq(Arc::as_ptr(&self.active.load()), version) {
            return false;
        }
        let mut probation = self.probation.lock();
        let Some(p) = probation.as_mut() else { return false };
        p.calls += 1;
        if fault {
            p.faults += 1;
        }
        if p.faults >= limit {
            *probation = None;
            self.on_probation.store(false, Ordering::Release);
            return true;
        }
        if p.calls >= window {
            // Passed: the previous version is no longer needed.
            *probation = None;
            self.on_probation.store(false, Ordering::Release);
            *self.previous.lock() = None;
        }
        false
    }

    /// Swap back to the previous version (if still loaded).
    pub(crate) fn roll_back(&self) -> Option<(Arc<LoadedComponent>, Arc<LoadedComponent>)> {
        let previous = self.previous.lock().take()?;
        previous.retired.store(false, Ordering::Release);
        let failed = self.active.swap(previous.clone());
        *self.probation.lock() = None;
        self.on_probation.store(false, Ordering::Release);
        let mut draining = self.draining.lock();
        // The restored version is active again, not draining.
        draining.retain(|d| !std::ptr::eq(d.component.as_ptr(), Arc::as_ptr(&previous)));
        draining.push(Draining { version: failed.version(), component: Arc::downgrade(&failed) });
        drop(draining);
        Some((failed, previous))
    }
}

/// Wait for `old` to have no calls in flight, up to `grace`; then retire it
/// (interrupting what still runs) and report. Holds only a weak reference
/// after the grace period, so the version is freed when its calls end.
pub(crate) async fn drain(slot: Arc<Slot>, old: Arc<LoadedComponent>, grace: Duration, bus: Arc<Bus>) {
    let version = old.version();
    let deadline = Instant::now() + grace;
    while old.in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A version that became active again (an auto-rollback restored it) is
    // not drained at all: its calls are current ones. Nothing to retire or
    // report.
    if Arc::ptr_eq(&slot.active(), &old) {
        tracing::debug!(component = %slot.id, %version, "active again; drain cancelled");
        return;
    }
    let interrupted = old.in_flight();
    if interrupted > 0 {
        old.retired.store(true, Ordering::Release);
    }
    drop(old);
    let reason = if interrupted > 0 {
        format!("{interrupted} call(s) outlived the {} ms grace period and were interrupted", grace.as_millis())
    } else {
        "all calls finished".to_string()
    };
    slot.record(&bus, events::DRAINED, Some(version), None, Some(reason));
}
