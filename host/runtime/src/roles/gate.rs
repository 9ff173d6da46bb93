//! The `gate` role (`wit/gate.wit`, export `arw:host/gate-handler`):
//! pooled. Instances are kept between checks (up to the manifest's
//! `limits.concurrency`), each configured with the gate's current
//! configuration text before its first check and again after the text
//! changes; a fault discards the instance. The host is a gate's only
//! caller, so an instance serves every request (it sees requests, and
//! answers only a verdict).
//!
//! Which gates are asked, in which order, and what their answers mean is
//! [`crate::gating`]'s.

use std::sync::Arc;

use wasmtime::component::InstancePre;

use crate::error::LoadError;
use crate::gating::Verdict;
use crate::runtime::Runtime;
use crate::runtime::component::{LoadedComponent, health_result};
use crate::runtime::entry::Entry;
use crate::runtime::outcome::classify;
use crate::runtime::store::InstanceState;
use crate::runtime::warm::{Warm, WarmPool};
use bindings::GatePre;
use bindings::exports::arw::host::gate_handler as wit;

/// The bindings of `arw:host/gate`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "arw:host/gate",
        imports: { default: async },
        exports: { default: async },
        with: { "arw:host": crate::bindings::imports::arw::host },
    });
}

/// The export that makes a component this role.
pub const EXPORT: &str = "arw:host/gate-handler@0.2.0";

/// This role, described (see [`crate::roles`]).
pub const UNIT: super::Role = super::Role {
    world: "gate",
    wit_world: "arw:host/gate",
    export: EXPORT,
    check: check_alone,
    lifecycles: &[super::Lifecycle::Pooled],
    worker: None,
};

/// A gate is only a gate: it decides for every caller, so it must not be
/// a tool or a subscriber as well (whose entries would be gated by
/// itself).
fn check_alone(manifest: &crate::Manifest) -> Result<(), String> {
    if manifest.names_world(UNIT.world) && manifest.worlds.len() > 1 {
        return Err("a gate's `worlds` must be [\"gate\"] alone: a gate decides for every caller".into());
    }
    Ok(())
}

/// The `gate` role as a unit (see [`super::RoleUnit`]).
#[derive(Debug)]
pub struct GateRole;

/// One kept instance, with the configuration generation it was given.
pub(crate) struct GateInstance {
    gate: bindings::Gate,
    configured: Option<u64>,
}

/// What the gate role keeps of a loaded component.
pub(crate) struct GatePrepared {
    pre: GatePre<InstanceState>,
    warm: WarmPool<GateInstance>,
}

impl std::fmt::Debug for GatePrepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatePrepared").field("idle", &self.warm.idle()).finish_non_exhaustive()
    }
}

/// The name the pool knows the host by: it is every gate's only caller.
/// Borrowed, not cloned: every check on every core would otherwise bump
/// one shared count.
fn host_caller() -> &'static Arc<str> {
    static HOST: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    HOST.get_or_init(|| Arc::from("host"))
}

impl super::RoleUnit for GateRole {
    const UNIT: super::Role = UNIT;
    type Prepared = GatePrepared;

    /// The health check: instantiate and `configure` with an empty text
    /// (a gate must accept having no configuration).
    async fn prepare(
        runtime: &Runtime,
        loaded: &LoadedComponent,
        pre: &InstancePre<InstanceState>,
        _exports: &[String],
    ) -> Result<GatePrepared, LoadError> {
        let pre = GatePre::new(pre.clone()).map_err(|e| loaded.link_error(e))?;
        let mut check = runtime.health_store(loaded).await?;
        let configured = health_result(loaded, &check.entry, async {
            let gate = pre.instantiate_async(&mut check.store).await?;
            gate.arw_host_gate_handler().call_configure(&mut check.store, "").await
        })
        .await?;
        if let Err(e) = configured {
            return Err(LoadError::Health {
                origin: loaded.origin.clone(),
                message: format!("the gate refused an empty configuration: {}", e.message),
            });
        }
        let size = loaded.manifest.limits.concurrency as usize;
        Ok(GatePrepared { pre, warm: WarmPool::new(size, true) })
    }
}

/// The configuration a gate's instances are given, and its generation.
#[derive(Debug, Clone)]
pub(crate) struct ConfigText {
    pub(crate) generation: u64,
    pub(crate) text: Arc<str>,
}

/// Why a gate entry gave no verdict.
#[derive(Debug)]
pub(crate) enum GateFault {
    /// Not the gate's fault: no slot came free, it is not a gate.
    Busy(String),
    /// It refused its configuration.
    Config { line: Option<u32>, message: String },
    /// It trapped, ran past its deadline, or hit its memory cap: counts
    /// against a new version's probation.
    Fault(String),
}

impl Runtime {
    /// Ask `component`'s gate about `request`, on a kept instance
    /// configured with `config`, within `limit` of `started` (or the
    /// component's own timeout, if shorter). The caller reads the clock
    /// once for every gate it asks: a check is a few microseconds, and
    /// each read was a visible part of it.
    pub(crate) async fn run_gate(
        &self,
        component: &LoadedComponent,
        config: &ConfigText,
        request: &wit::Request,
        started: tokio::time::Instant,
        limit: std::time::Duration,
    ) -> Result<Verdict, GateFault> {
        let Some(prepared) = component.roles.gate.as_ref() else {
            return Err(GateFault::Busy(format!("`{}` does not export {EXPORT}", component.id())));
        };
        let limit = limit.min(component.timeout());
        let entry = Entry { deadline: started + limit, chain: Default::default() };
        let limit_ms = limit.as_millis();
        let _running = component.enter();
        // A free slot is taken at once; only a wait needs its deadline.
        let _slot = match component.slots.try_acquire() {
            Ok(slot) => slot,
            Err(_) => match entry.wait(component.slots.acquire()).await {
                Some(Ok(slot)) => slot,
                _ => {
                    let concurrency = component.manifest.limits.concurrency;
                    return Err(GateFault::Busy(format!(
                        "all {concurrency} of its slots stayed taken until its deadline"
                    )));
                }
            },
        };
        let fault = |e: wasmtime::Error| GateFault::Fault(classify(component.id(), component, e).to_string());
        let caller = host_caller();
        let mut instance = match prepared.warm.take(caller) {
            Some(instance) => instance,
            None => {
                let Some(Some(slot)) = entry.wait(self.pool.for_call()).await else {
                    return Err(GateFault::Busy("the host's instance pool stayed full until its deadline".into()));
                };
                let mut store = entry.store(self, component);
                let made = entry.run(prepared.pre.instantiate_async(&mut store)).await;
                let gate = made.ok_or_else(|| GateFault::Fault("instantiation ran past the deadline".into()))?;
                Warm::new(store, GateInstance { gate: gate.map_err(fault)?, configured: None }, slot)
            }
        };
        instance.store.data_mut().deadline = entry.deadline.into_std();
        let Warm { store, instance: gate, .. } = &mut instance;
        let outcome = entry
            .run(async {
                if gate.configured != Some(config.generation) {
                    let handler = gate.gate.arw_host_gate_handler();
                    if let Err(e) = handler.call_configure(&mut *store, &config.text).await? {
                        return Ok(Err(GateFault::Config { line: e.line, message: e.message }));
                    }
                    gate.configured = Some(config.generation);
                }
                let verdict = gate.gate.arw_host_gate_handler().call_check(&mut *store, request).await?;
                Ok::<_, wasmtime::Error>(Ok(verdict))
            })
            .await;
        let verdict = match outcome {
            None => return Err(GateFault::Fault(format!("it ran past its deadline of {} ms", limit_ms))),
            Some(Err(e)) => return Err(fault(e)),
            // Refused its configuration: the instance keeps no half-made
            // state; it is dropped.
            Some(Ok(Err(refused))) => return Err(refused),
            Some(Ok(Ok(verdict))) => verdict,
        };
        prepared.warm.give_back(instance, caller);
        Ok(match verdict {
            wit::Verdict::Allow => Verdict::Allow,
            wit::Verdict::Deny(d) => {
                Verdict::Deny { key: d.key, code: d.code, contract: d.contract, reason: d.reason, retry_after_ms: None }
            }
            wit::Verdict::RetryAfter((d, after)) => Verdict::Deny {
                key: d.key,
                code: d.code,
                contract: d.contract,
                reason: d.reason,
                retry_after_ms: Some(after),
            },
        })
    }

    /// The rules of `component`'s gate that may apply to `key` (its
    /// `covering`), on a fresh instance configured with `config`.
    pub(crate) async fn gate_covering(
        &self,
        component: &LoadedComponent,
        config: &ConfigText,
        key: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<String>, GateFault> {
        self.on_fresh_gate(component, &config.text, Some(key), deadline).await
    }

    /// Would `component`'s gate take `text`? Asked on a fresh instance,
    /// before a new configuration replaces the one in force.
    pub(crate) async fn try_gate_config(
        &self,
        component: &LoadedComponent,
        text: &str,
        deadline: tokio::time::Instant,
    ) -> Result<(), GateFault> {
        self.on_fresh_gate(component, text, None, deadline).await.map(drop)
    }

    /// A fresh instance of `component`'s gate (not one of its kept ones),
    /// given `text` to `configure`, then asked `covering(key)` if a key is
    /// given (an empty list otherwise).
    async fn on_fresh_gate(
        &self,
        component: &LoadedComponent,
        text: &str,
        covering: Option<&str>,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<String>, GateFault> {
        let Some(prepared) = component.roles.gate.as_ref() else {
            return Err(GateFault::Busy(format!("`{}` does not export {EXPORT}", component.id())));
        };
        let entry = Entry { deadline: deadline.min(Entry::start(component).deadline), chain: Default::default() };
        let limit_ms = entry.deadline.saturating_duration_since(tokio::time::Instant::now()).as_millis();
        let Some(Some(_slot)) = entry.wait(self.pool.for_call()).await else {
            return Err(GateFault::Busy("the host's instance pool stayed full until its deadline".into()));
        };
        let mut store = entry.store(self, component);
        let fault = |e: wasmtime::Error| GateFault::Fault(classify(component.id(), component, e).to_string());
        let run = async {
            let gate = prepared.pre.instantiate_async(&mut store).await?;
            let handler = gate.arw_host_gate_handler();
            if let Err(e) = handler.call_configure(&mut store, text).await? {
                return Ok(Err(GateFault::Config { line: e.line, message: e.message }));
            }
            let rules = match covering {
                Some(key) => handler.call_covering(&mut store, key).await?,
                None => Vec::new(),
            };
            Ok::<_, wasmtime::Error>(Ok(rules))
        };
        match entry.run(run).await {
            None => Err(GateFault::Fault(format!("the gate ran past its deadline of {limit_ms} ms"))),
            Some(Err(e)) => Err(fault(e)),
            Some(Ok(answer)) => answer,
        }
    }
}
