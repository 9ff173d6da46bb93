//! What the host shows of itself: the plain data types `arw components`,
//! `arw status`, `/readyz` and the admin routes render.

use serde::Serialize;

use crate::authz::AuditStats;
use crate::capabilities::log::GuestOutputStats;
use crate::manifest::{Limits, World};
use crate::roles::resident::ResidentStatus;
use crate::runtime::aot::Compilation;
use crate::runtime::component::{GrantDecision, ToolDescriptor};
use crate::supervisor::{DrainingStatus, Transition};

/// A loaded component as `arw components` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentInfo {
    pub id: String,
    pub version: String,
    pub worlds: Vec<World>,
    pub description: String,
    pub digest: String,
    pub origin: String,
    /// The trusted signer (Cedar's `principal.publisher`); none if unsigned.
    pub publisher: Option<String>,
    /// Whether its code came from the AOT cache.
    pub compilation: Compilation,
    /// The tool name, for components of the `tool` world.
    pub tool: Option<String>,
    pub limits: Limits,
    /// Each requested capability with Cedar's decision.
    pub grants: Vec<GrantInfo>,
}

pub type GrantInfo = GrantDecision;

/// A tool as callers see it.
#[derive(Debug, Clone, Serialize)]
pub struct ToolInfo {
    pub component: String,
    #[serde(flatten)]
    pub descriptor: ToolDescriptor,
}

/// One component's versions, for `arw status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ComponentStatus {
    pub id: String,
    pub active_version: String,
    pub digest: String,
    /// Calls running on the active version now (including those waiting
    /// for a slot).
    pub in_flight: usize,
    /// Calls holding one of its `limits.concurrency` slots now.
    pub running: usize,
    pub draining: Vec<DrainingStatus>,
    pub last_transition: Option<Transition>,
    /// Idle kept instances of the active version, for a `[pooled]` tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooled_idle: Option<usize>,
    /// Idle instances it keeps at most, for a `[pooled]` tool (the
    /// manifest's `pooled.size`, or the applied `pool-size` knob).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<u32>,
    /// What its driver has done, for a `resident` component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resident: Option<ResidentStatus>,
}

/// A component (or a version of one) the host refused, and why. Kept until
/// the component activates or leaves the installed set.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct Refusal {
    /// The component id, or where the package came from when its manifest
    /// could not be read.
    pub component: String,
    pub version: Option<String>,
    /// `verify`, `compile`, `link`, `health-check`, `limits`, `conflict` or
    /// `hand-over` (a resident component's snapshot or its successor's start).
    pub stage: String,
    pub reason: String,
    pub at_ms: u64,
}

/// The host as `arw status` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HostStatus {
    pub components: Vec<ComponentStatus>,
    /// What was refused at start, by a watcher or an install.
    pub refused: Vec<Refusal>,
    pub policies: usize,
    pub bus: BusStatsView,
    pub audit: AuditStats,
    pub guest_output: GuestOutputStats,
    /// Instance-pool slots held by calls and deliveries now, of `pool-budget`.
    pub pool_in_use: u32,
    pub pool_budget: u32,
    /// Calls between components (`arw:host/tools`) by outcome.
    pub component_calls: crate::capabilities::tools::ComponentCalls,
    /// The gates (`[gating] gates`), in the order they are asked.
    pub gates: Vec<GateStatus>,
}

/// A gate as `arw status` shows it: its file, whether it denies
/// everything (a configuration refused at start), and its decisions since
/// the host started.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GateStatus {
    pub gate: String,
    pub file: Option<std::path::PathBuf>,
    /// Why it denies everything, when no configuration is in force.
    pub refused: Option<String>,
    pub allowed: u64,
    /// Denials, retry-afters included.
    pub denied: u64,
    /// Requests it could not decide (refused all the same).
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BusStatsView {
    pub published: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub failed: u64,
}

/// Why an activation did not happen; the previous version stays active.
#[derive(Debug, Clone, thiserror::Error)]
#[error("activating {id}@{version} failed at the {stage} stage: {reason}")]
pub struct ActivationError {
    pub id: String,
    pub version: String,
    /// `verify`, `compile`, `link`, `health-check`, `limits`, `conflict` or
    /// `hand-over` (a resident component's snapshot or its successor's start).
    pub stage: &'static str,
    pub reason: String,
}

/// What a policy reload changed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PolicyReload {
    pub policies: usize,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

use std::sync::Arc;

use super::Host;
use crate::capabilities::bus::BusStats;
use crate::runtime::component::LoadedComponent;

impl Host {
    fn active_components(&self) -> Vec<Arc<LoadedComponent>> {
        self.routes.load().components.values().map(|s| s.active()).collect()
    }

    /// The active version of component `id`, if it is loaded (for tests
    /// and diagnostics: e.g. a `Weak` to check a version is freed).
    pub fn active_component(&self, id: &str) -> Option<Arc<LoadedComponent>> {
        self.slot(id).map(|s| s.active())
    }

    /// Every active component with its grants.
    pub fn components(&self) -> Vec<ComponentInfo> {
        self.active_components()
            .iter()
            .map(|c| ComponentInfo {
                id: c.id().into(),
                version: c.manifest.version.to_string(),
                worlds: c.manifest.worlds.clone(),
                description: c.manifest.description.clone(),
                digest: c.digest.clone(),
                origin: c.origin.clone(),
                publisher: c.publisher.clone(),
                compilation: c.compilation,
                tool: c.tool().map(|t| t.name.clone()),
                limits: c.limits(),
                grants: c.grant_decisions(),
            })
            .collect()
    }

    /// Every tool, by name.
    pub fn tools(&self) -> Vec<ToolInfo> {
        let mut tools: Vec<ToolInfo> = self
            .active_components()
            .iter()
            .filter_map(|c| c.tool().map(|d| ToolInfo { component: c.id().into(), descriptor: d.clone() }))
            .collect();
        tools.sort_by(|a, b| a.descriptor.name.cmp(&b.descriptor.name));
        tools
    }

    /// What was refused (at start, by a watcher, by an install), newest
    /// refusal per component.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.refusals.lock().values().cloned().collect()
    }

    /// Active and draining versions, refusals, last transitions, policies,
    /// bus, audit and guest-output counters, pool use.
    pub fn status(&self) -> HostStatus {
        let slots: Vec<_> = self.routes.load().components.values().cloned().collect();
        let BusStats { published, delivered, dropped, failed, .. } = self.bus_stats();
        HostStatus {
            components: slots
                .iter()
                .map(|slot| {
                    let active = slot.active();
                    ComponentStatus {
                        id: slot.id.clone(),
                        active_version: active.version(),
                        digest: active.digest.clone(),
                        in_flight: active.in_flight(),
                        running: active.running(),
                        draining: slot.draining(),
                        last_transition: slot.last_transition(),
                        pooled_idle: active.pooled_idle(),
                        pool_size: active.pool_size(),
                        resident: self.resident_status(&slot.id),
                    }
                })
                .collect(),
            refused: self.refusals(),
            policies: self.authorizer().policies().len(),
            bus: BusStatsView { published, delivered, dropped, failed },
            audit: self.runtime.chokepoint.audit().stats(),
            guest_output: self.runtime.capabilities.log.stats(),
            pool_in_use: self.runtime.pool.calls_in_use(),
            pool_budget: self.runtime.pool.calls_budget(),
            component_calls: self.runtime.capabilities.tools.calls(),
            gates: self.gate_status(),
        }
    }

    fn gate_status(&self) -> Vec<GateStatus> {
        let gates = self.gates();
        let counts = gates.counts();
        gates
            .states()
            .into_iter()
            .map(|state| {
                let sum = |verdicts: &[&str]| {
                    counts
                        .iter()
                        .filter(|(s, _)| s.gate == state.gate && verdicts.contains(&s.verdict))
                        .map(|(_, n)| n)
                        .sum()
                };
                GateStatus {
                    allowed: sum(&["allow"]),
                    denied: sum(&["deny", "retry-after"]),
                    failed: sum(&["failed"]),
                    gate: state.gate,
                    file: state.file,
                    refused: state.refused,
                }
            })
            .collect()
    }

    /// What the driver of the resident component `id` has done.
    pub fn resident_status(&self, id: &str) -> Option<ResidentStatus> {
        self.workers.lock().get(id).and_then(|w| w.counters.as_ref()).map(|c| c.status())
    }

    /// The active version of `id`, if loaded: (version, digest).
    pub fn active_version(&self, id: &str) -> Option<(String, String)> {
        self.slot(id).map(|s| {
            let active = s.active();
            (active.version(), active.digest.clone())
        })
    }
}
