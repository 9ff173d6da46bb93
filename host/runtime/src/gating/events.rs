//! What the gates report: `gate.denied` (the first refusal of a gate,
//! contract and caller at once, repeats within [`COALESCE_WINDOW`] in one
//! event with their `count`), `gating.reloaded`, `gating.reload.failed`,
//! and the decision counters behind `arw_gate_decisions_total`.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::Instant;

use parking_lot::Mutex;

use crate::authz::audit::COALESCE_WINDOW;
use crate::capabilities::bus::{Bus, Payload};

pub const GATE_DENIED: &str = "gate.denied";
pub const GATING_RELOADED: &str = "gating.reloaded";
pub const GATING_RELOAD_FAILED: &str = "gating.reload.failed";
/// A gate was bypassed on the local operator's break-glass path.
pub const GATE_BYPASSED: &str = "gate.bypassed";

/// Open coalescing windows at most; past this every window is reported.
const MAX_OPEN_WINDOWS: usize = 1024;
/// Label sets of `arw_gate_decisions_total` at most; decisions of further
/// contracts are counted under the contract `_other`.
pub const MAX_SERIES: usize = 512;

/// One decision, for the counters: which gate, which contract (empty for
/// an allow or a failure), what verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Series {
    pub gate: String,
    pub contract: String,
    /// `allow`, `deny`, `retry-after` or `failed`.
    pub verdict: &'static str,
}

#[derive(Debug)]
struct Window {
    opened: Instant,
    suppressed: u64,
    last: serde_json::Value,
}

/// The reporter of one host's gates.
#[derive(Debug)]
pub struct GateEvents {
    bus: Weak<Bus>,
    windows: Mutex<HashMap<(String, String, String), Window>>,
    series: Mutex<HashMap<Series, u64>>,
}

impl GateEvents {
    pub(crate) fn new(bus: Weak<Bus>) -> Self {
        GateEvents { bus, windows: Mutex::new(HashMap::new()), series: Mutex::new(HashMap::new()) }
    }

    /// Count one decision. (Allows are counted by the caller without the
    /// map: they are every request's, and carry no contract.)
    pub(crate) fn count(&self, gate: &str, contract: &str, verdict: &'static str) {
        let mut series = self.series.lock();
        let key = Series { gate: gate.into(), contract: contract.into(), verdict };
        if let Some(n) = series.get_mut(&key) {
            *n += 1;
            return;
        }
        let key = if series.len() >= MAX_SERIES {
            Series { gate: gate.into(), contract: "_other".into(), verdict }
        } else {
            key
        };
        *series.entry(key).or_default() += 1;
    }

    /// Every refusal counted since start, sorted (allows are
    /// [`super::Gates::counts`]'s).
    pub(crate) fn refusals(&self) -> Vec<(Series, u64)> {
        let mut all: Vec<_> = self.series.lock().iter().map(|(k, v)| (k.clone(), *v)).collect();
        all.sort();
        all
    }

    /// Report a refusal (or count it inside an open window).
    pub(crate) fn denied(&self, denied: &super::GateDenied, caller: &str) {
        let (gate, contract, payload) = match denied {
            super::GateDenied::Denied { gate, key, code, contract, reason, retry_after_ms } => (
                gate,
                contract.as_str(),
                serde_json::json!({
                    "gate": gate, "key": key, "caller": caller, "contract": contract, "code": code,
                    "reason": reason, "retry-after-ms": retry_after_ms,
                }),
            ),
            super::GateDenied::Failed { gate, key, problem } => (
                gate,
                "",
                serde_json::json!({
                    "gate": gate, "key": key, "caller": caller, "contract": "", "code": "gate-failed",
                    "reason": problem, "retry-after-ms": null,
                }),
            ),
        };
        let now = Instant::now();
        let key = (gate.clone(), contract.to_string(), caller.to_string());
        let mut reports = Vec::new();
        {
            let mut windows = self.windows.lock();
            if let Some(window) = windows.get_mut(&key)
                && now.duration_since(window.opened) < COALESCE_WINDOW
            {
                window.suppressed += 1;
                window.last = payload;
                return;
            }
            reports.extend(windows.remove(&key).and_then(summary));
            if windows.len() >= MAX_OPEN_WINDOWS {
                reports.extend(windows.drain().filter_map(|(_, w)| summary(w)));
            }
            windows.insert(key, Window { opened: now, suppressed: 0, last: payload.clone() });
        }
        reports.push((payload, 1));
        for (payload, count) in reports {
            self.publish_denied(payload, count);
        }
    }

    /// Report the windows that have closed (all with `force`).
    pub(crate) fn flush(&self, force: bool) {
        let now = Instant::now();
        let reports: Vec<_> = {
            let mut windows = self.windows.lock();
            let closed: Vec<_> = windows
                .iter()
                .filter(|(_, w)| force || now.duration_since(w.opened) >= COALESCE_WINDOW)
                .map(|(k, _)| k.clone())
                .collect();
            closed.into_iter().filter_map(|k| windows.remove(&k).and_then(summary)).collect()
        };
        for (payload, count) in reports {
            self.publish_denied(payload, count);
        }
    }

    fn publish_denied(&self, mut payload: serde_json::Value, count: u64) {
        payload["count"] = count.into();
        tracing::warn!(target: "arw::gate", %payload, "denied");
        self.publish(GATE_DENIED, &payload);
    }

    /// Publish one of the host's gating events.
    pub(crate) fn publish(&self, topic: &str, payload: &serde_json::Value) {
        let published = match self.bus.upgrade() {
            Some(bus) => bus.publish_host(topic, Payload::Json(payload.to_string())).map_err(|e| e.to_string()),
            None => Err("the host is gone".into()),
        };
        if let Err(e) = published {
            tracing::error!(target: "arw::gate", topic, "a gating event could not be published: {e}");
        }
    }
}

fn summary(window: Window) -> Option<(serde_json::Value, u64)> {
    (window.suppressed > 0).then_some((window.last, window.suppressed))
}
