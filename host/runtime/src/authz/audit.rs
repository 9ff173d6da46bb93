//! Reporting refusals: a warn log line and an `audit.denied` event each,
//! with repeated refusals coalesced so a guest that keeps asking cannot
//! flood the log or the bus.
//!
//! The first refusal of a (principal, action) pair is reported at once.
//! Further refusals of the same pair within [`COALESCE_WINDOW`] are counted
//! and reported together, as one event with their `count`, when the window
//! closes ([`Audit::flush`], which the host runs every window). None is lost:
//! the counts add up to every refusal, and an event that cannot be
//! published is logged and counted ([`AuditStats::undelivered`]).

use std::collections::HashMap;
use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arw_policy::Action;
use parking_lot::Mutex;

use super::Denied;
use crate::capabilities::bus::{Bus, Payload};

/// The bus topic of audit events for refused calls.
pub const AUDIT_DENIED_TOPIC: &str = "audit.denied";

/// Refusals of one (principal, action) within this window after the first
/// are reported together.
pub const COALESCE_WINDOW: Duration = Duration::from_secs(1);

/// Pairs with an open window at once; past this, every open window is
/// reported and closed (bounded memory under a flood of distinct principals).
const MAX_OPEN_WINDOWS: usize = 1024;

/// How much of a refusal's reason is reported.
const SHOWN_REASON_CHARS: usize = 512;

#[derive(Debug)]
struct Window {
    opened: Instant,
    /// Refusals since the one that opened the window, not yet reported.
    suppressed: u64,
    last_resource: String,
    last_reason: String,
}

/// Counts since start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuditStats {
    /// Every refusal.
    pub denials: u64,
    /// `audit.denied` events published (each carries a count).
    pub events: u64,
    /// Refusals reported inside another event's count.
    pub coalesced: u64,
    /// Events that could not be published (logged as errors instead).
    pub undelivered: u64,
}

#[derive(Debug, Default)]
struct Counters {
    denials: AtomicU64,
    events: AtomicU64,
    coalesced: AtomicU64,
    undelivered: AtomicU64,
}

/// The refusal reporter of one host.
#[derive(Debug)]
pub struct Audit {
    bus: Weak<Bus>,
    windows: Mutex<HashMap<(String, Action), Window>>,
    counters: Counters,
}

/// One report: a refusal, or several of the same pair.
struct Report {
    principal: String,
    action: Action,
    resource: String,
    reason: String,
    count: u64,
}

impl Audit {
    pub(crate) fn new(bus: Weak<Bus>) -> Self {
        Audit { bus, windows: Mutex::new(HashMap::new()), counters: Counters::default() }
    }

    /// Report one refusal (or count it, inside an open window).
    pub fn denied(&self, denied: &Denied) {
        self.counters.denials.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let reason = super::shown(&denied.reason, SHOWN_REASON_CHARS);
        let key = (denied.principal.clone(), denied.action);
        let mut reports = Vec::new();
        {
            let mut windows = self.windows.lock();
            if let Some(window) = windows.get_mut(&key)
                && now.duration_since(window.opened) < COALESCE_WINDOW
            {
                window.suppressed += 1;
                window.last_resource.clone_from(&denied.resource);
                window.last_reason = reason;
                return;
            }
            if let Some(closed) = windows.remove(&key) {
                reports.extend(summary(&key, closed));
            }
            if windows.len() >= MAX_OPEN_WINDOWS {
                reports.extend(windows.drain().filter_map(|(key, window)| summary(&key, window)));
            }
            windows.insert(
                key,
                Window {
                    opened: now,
                    suppressed: 0,
                    last_resource: denied.resource.clone(),
                    last_reason: reason.clone(),
                },
            );
        }
        reports.push(Report {
            principal: denied.principal.clone(),
            action: denied.action,
            resource: denied.resource.clone(),
            reason,
            count: 1,
        });
        for report in reports {
            self.report(report);
        }
    }

    /// Report the refusals counted in windows that have closed (all of
    /// them with `force`, at shutdown).
    pub fn flush(&self, force: bool) {
        let now = Instant::now();
        let reports: Vec<Report> = {
            let mut windows = self.windows.lock();
            let closed: Vec<(String, Action)> = windows
                .iter()
                .filter(|(_, w)| force || now.duration_since(w.opened) >= COALESCE_WINDOW)
                .map(|(k, _)| k.clone())
                .collect();
            closed.into_iter().filter_map(|key| windows.remove(&key).and_then(|w| summary(&key, w))).collect()
        };
        for report in reports {
            self.report(report);
        }
    }

    pub fn stats(&self) -> AuditStats {
        AuditStats {
            denials: self.counters.denials.load(Ordering::Relaxed),
            events: self.counters.events.load(Ordering::Relaxed),
            coalesced: self.counters.coalesced.load(Ordering::Relaxed),
            undelivered: self.counters.undelivered.load(Ordering::Relaxed),
        }
    }

    fn report(&self, report: Report) {
        let Report { principal, action, resource, reason, count } = report;
        if count > 1 {
            self.counters.coalesced.fetch_add(count, Ordering::Relaxed);
        }
        tracing::warn!(target: "arw::audit", %principal, %action, %resource, %reason, count, "denied");
        let payload = serde_json::json!({
            "principal": principal,
            "action": action.as_str(),
            "resource": resource,
            "reason": reason,
            "count": count,
        });
        let published = match self.bus.upgrade() {
            // Audit events are the host's own; they bypass authorization.
            Some(bus) => {
                bus.publish_host(AUDIT_DENIED_TOPIC, Payload::Json(payload.to_string())).map_err(|e| e.to_string())
            }
            None => Err("the host is gone".to_string()),
        };
        match published {
            Ok(_) => {
                self.counters.events.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters.undelivered.fetch_add(1, Ordering::Relaxed);
                tracing::error!(target: "arw::audit", %principal, %action, count, "an audit.denied event could not be published: {e}");
            }
        }
    }
}

/// The report of a closed window, if it counted anything.
fn summary(key: &(String, Action), window: Window) -> Option<Report> {
    (window.suppressed > 0).then(|| Report {
        principal: key.0.clone(),
        action: key.1,
        resource: window.last_resource,
        reason: window.last_reason,
        count: window.suppressed,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::BusConfig;

    fn denied(principal: &str, action: Action, resource: &str) -> Denied {
        Denied { principal: principal.into(), action, resource: resource.into(), reason: "no".into() }
    }

    #[test]
    fn a_flood_of_refusals_is_counted_in_few_events_and_none_is_lost() {
        let bus = Arc::new(Bus::new(BusConfig::default()));
        let mut events = bus.observe();
        let audit = Audit::new(Arc::downgrade(&bus));
        for i in 0..10_000 {
            audit.denied(&denied("Arw::Component::\"a:b\"", crate::capabilities::kv::WRITE, &format!("k{i}")));
        }
        audit.denied(&denied("Arw::Component::\"a:b\"", crate::capabilities::kv::READ, "ns"));
        audit.flush(true);
        let mut reported = Vec::new();
        while let Ok(event) = events.try_recv() {
            reported.push(event.json().unwrap_or_default());
        }
        // One event at the first refusal, one summary, one for the other action.
        assert_eq!(reported.len(), 3, "{reported:?}");
        let total: u64 =
            reported.iter().filter(|e| e["action"] == "kv.write").map(|e| e["count"].as_u64().unwrap_or(0)).sum();
        assert_eq!(total, 10_000, "every refusal is counted");
        let summary = reported.iter().find(|e| e["count"].as_u64() > Some(1)).cloned().unwrap_or_default();
        assert_eq!(summary["resource"], "k9999", "the summary names the last resource");
        assert_eq!(summary["count"], 9_999);
        let stats = audit.stats();
        assert_eq!((stats.denials, stats.events, stats.coalesced, stats.undelivered), (10_001, 3, 9_999, 0));
    }

    #[test]
    fn an_event_that_cannot_be_published_is_counted_not_dropped_silently() {
        // A bus whose payload cap is smaller than any audit event.
        let bus = Arc::new(Bus::new(BusConfig { max_payload_bytes: 8, ..BusConfig::default() }));
        let audit = Audit::new(Arc::downgrade(&bus));
        audit.denied(&denied("p", crate::capabilities::kv::READ, "ns"));
        assert_eq!(audit.stats().undelivered, 1);
        drop(bus);
        audit.denied(&denied("q", crate::capabilities::kv::READ, "ns"));
        assert_eq!(audit.stats().undelivered, 2);
    }

    #[test]
    fn open_windows_are_bounded() {
        let bus = Arc::new(Bus::new(BusConfig::default()));
        let audit = Audit::new(Arc::downgrade(&bus));
        for i in 0..(MAX_OPEN_WINDOWS * 3) {
            audit.denied(&denied(&format!("p{i}"), crate::capabilities::kv::READ, "ns"));
        }
        assert!(audit.windows.lock().len() <= MAX_OPEN_WINDOWS);
    }
}
