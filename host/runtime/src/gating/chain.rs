//! [`Gates`]: the configured gates, asked in order before the effect at
//! every entry point.
//!
//! Fail closed, always: a gate that is not loaded, is not a gate, is busy
//! past its deadline, traps, runs past `gating.timeout-ms`, or has no
//! valid configuration refuses the request with a [`GateDenied::Failed`]
//! that names it. With no gates configured nothing is asked (Cedar alone
//! decides what is permitted; gates only take permissions away).
//!
//! Each gate's configuration text is held here, with a generation: an
//! instance is given the text before its first check and again when the
//! generation moves. A new text replaces the one in force only once the
//! gate's active version has accepted it on a fresh instance; a refused
//! text leaves the old one in force and is reported
//! (`gating.reload.failed`, with the file and line). At start there is no
//! old one: a refused text makes the gate fail closed until it is fixed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use super::events::{GATING_RELOAD_FAILED, GATING_RELOADED, GateEvents};
use super::{GateDenied, GatePass, GateRequest, GatingConfig, Verdict};
use crate::capabilities::bus::Bus;
use crate::host::RouteTable;
use crate::host::control::Rollback;
use crate::roles::gate::bindings::exports::arw::host::gate_handler as wit;
use crate::roles::gate::{ConfigText, GateFault};
use crate::runtime::Runtime;

/// A gate's configuration, as held by the host.
#[derive(Debug, Clone)]
enum Configured {
    /// In force (instances are given this text).
    Valid(ConfigText),
    /// Refused at start, with no earlier text to keep: the gate fails
    /// closed, saying why.
    Invalid(String),
}

/// One configured gate.
#[derive(Debug)]
struct GateEntry {
    id: String,
    file: Option<PathBuf>,
    config: ArcSwap<Configured>,
    /// Requests it allowed (refusals are counted by contract, in `events`).
    allowed: AtomicU64,
}

/// What the gates need of the running host, bound once it exists. All
/// weak: the gates live in the chokepoint, which every loaded component
/// holds, and the host holds the components.
#[derive(Debug)]
struct Bound {
    runtime: Weak<Runtime>,
    routes: Weak<RouteTable>,
    rollback: Weak<Rollback>,
}

/// [`Bound`], upgraded for one check.
struct Live {
    runtime: Arc<Runtime>,
    routes: Arc<RouteTable>,
    rollback: Arc<Rollback>,
}

/// The result of reading one gate's file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GateReload {
    pub gate: String,
    pub file: Option<PathBuf>,
    /// `reloaded`, `unchanged`, or `failed`.
    pub outcome: &'static str,
    pub line: Option<u32>,
    pub message: Option<String>,
}

/// One gate as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GateState {
    pub gate: String,
    pub file: Option<PathBuf>,
    /// Set when no configuration is in force (refused at start): the gate
    /// denies everything, and this says why.
    pub refused: Option<String>,
}

/// The host's gates.
#[derive(Debug)]
pub struct Gates {
    gates: Vec<GateEntry>,
    timeout: Duration,
    max_file_bytes: u64,
    node: wit::Node,
    bound: OnceLock<Bound>,
    generation: AtomicU64,
    pub events: GateEvents,
}

/// A client address as gates get it: an IPv4 one written by hand (the
/// formatter's padding support made it a visible part of a check).
fn address_text(address: std::net::IpAddr) -> String {
    let std::net::IpAddr::V4(v4) = address else { return address.to_string() };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

fn unix_ms(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

impl Gates {
    pub(crate) fn new(config: &GatingConfig, node: &crate::config::NodeConfig, bus: &Arc<Bus>) -> Self {
        let empty = Configured::Valid(ConfigText { generation: 0, text: Arc::from("") });
        Gates {
            gates: config
                .gates
                .iter()
                .map(|id| GateEntry {
                    id: id.clone(),
                    file: config.files.get(id).cloned(),
                    config: ArcSwap::from_pointee(empty.clone()),
                    allowed: AtomicU64::new(0),
                })
                .collect(),
            timeout: Duration::from_millis(config.timeout_ms),
            max_file_bytes: config.max_file_bytes,
            node: wit::Node { id: node.id.clone(), role: node.role.clone(), tags: node.tags.clone() },
            bound: OnceLock::new(),
            generation: AtomicU64::new(0),
            events: GateEvents::new(Arc::downgrade(bus)),
        }
    }

    pub(crate) fn bind(&self, runtime: &Arc<Runtime>, routes: &Arc<RouteTable>, rollback: &Arc<Rollback>) {
        let _ = self.bound.set(Bound {
            runtime: Arc::downgrade(runtime),
            routes: Arc::downgrade(routes),
            rollback: Arc::downgrade(rollback),
        });
    }

    /// Are any gates configured? (Entry points skip building a request
    /// when not.)
    pub fn active(&self) -> bool {
        !self.gates.is_empty()
    }

    /// The configured gates, in order.
    pub fn order(&self) -> impl Iterator<Item = &str> {
        self.gates.iter().map(|g| g.id.as_str())
    }

    /// Ask every gate, in order; the first deny decides.
    pub async fn check(&self, request: &GateRequest) -> Result<(), GateDenied> {
        if self.gates.is_empty() {
            return Ok(());
        }
        let wire = self.wire(request);
        // The host's parts, taken once for every gate asked.
        let live = self.live();
        for gate in &self.gates {
            let decided = match &live {
                Ok(live) => self.ask(gate, live, &wire).await,
                Err(why) => Err(GateDenied::Failed {
                    gate: gate.id.clone(),
                    key: wire.keys.first().cloned().unwrap_or_default(),
                    problem: (*why).into(),
                }),
            };
            let (contract, verdict) = match &decided {
                Ok(()) => {
                    gate.allowed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(GateDenied::Denied { contract, retry_after_ms: Some(_), .. }) => (contract.as_str(), "retry-after"),
                Err(GateDenied::Denied { contract, .. }) => (contract.as_str(), "deny"),
                Err(GateDenied::Failed { .. }) => ("", "failed"),
            };
            self.events.count(&gate.id, contract, verdict);
            if let Err(denied) = decided {
                self.events.denied(&denied, &request.caller.name);
                return Err(denied);
            }
        }
        Ok(())
    }

    /// The running host's parts, or why there are none.
    fn live(&self) -> Result<Live, &'static str> {
        let bound = self.bound.get().ok_or("the host has not started its gates")?;
        match (bound.runtime.upgrade(), bound.routes.upgrade(), bound.rollback.upgrade()) {
            (Some(runtime), Some(routes), Some(rollback)) => Ok(Live { runtime, routes, rollback }),
            _ => Err("the host is stopping"),
        }
    }

    /// [`Gates::check`], and a pass for the entry point that follows to
    /// spend instead of asking again for the same keys.
    pub async fn check_for_pass(&self, request: GateRequest) -> Result<GatePass, GateDenied> {
        self.check(&request).await?;
        Ok(GatePass {
            keys: request.keys,
            caller: request.caller,
            component: request.target.component,
            size: request.size,
        })
    }

    /// The request as gates get it.
    fn wire(&self, request: &GateRequest) -> wit::Request {
        let caller = &request.caller;
        wit::Request {
            keys: request.keys().to_vec(),
            caller: wit::Caller {
                name: caller.name.clone(),
                roles: caller.roles.clone(),
                tags: caller.tags.clone(),
                authenticated: caller.authenticated,
                address: request.address.map(address_text),
                chain: request.chain.iter().map(|c| c.to_string()).collect(),
            },
            target: wit::Target {
                tool: request.target.tool.clone(),
                component: request.target.component.clone(),
                authority: request.target.authority.clone(),
                topic: request.target.topic.clone(),
            },
            node: self.node.clone(),
            now_ms: unix_ms(request.at.unwrap_or_else(SystemTime::now)),
            size: request.size,
        }
    }

    /// One gate's answer.
    async fn ask(&self, gate: &GateEntry, live: &Live, request: &wit::Request) -> Result<(), GateDenied> {
        let Live { runtime, routes, rollback } = live;
        let first = || request.keys.first().cloned().unwrap_or_default();
        let failed = |problem: String| GateDenied::Failed { gate: gate.id.clone(), key: first(), problem };
        let config = match &**gate.config.load() {
            Configured::Valid(text) => text.clone(),
            Configured::Invalid(why) => return Err(failed(why.clone())),
        };
        let slot = routes.component(&gate.id);
        let Some(slot) = slot else {
            return Err(failed(format!(
                "it is not loaded (install it with `arw install {}`, or remove it from gating.gates)",
                gate.id
            )));
        };
        let component = slot.active();
        let started = tokio::time::Instant::now();
        let mut answer = runtime.run_gate(&component, &config, request, started, self.timeout).await;
        let fault = matches!(answer, Err(GateFault::Fault(_)) | Err(GateFault::Config { .. }));
        rollback.observe(&slot, &component, fault);
        // A new version on probation that cannot decide: the version it
        // replaced (kept until probation ends) decides instead, or, once the
        // faults rolled it back, the version active again; so a broken
        // upgrade refuses nothing it should not while it is rolled back.
        if fault {
            let instead = slot.previous_on_probation().or_else(|| {
                let now = slot.active();
                (!Arc::ptr_eq(&now, &component)).then_some(now)
            });
            if let Some(instead) = instead {
                tracing::warn!(target: "arw::gate", gate = %gate.id, version = %component.version(),
                    "version {} could not decide; version {} decides instead", component.version(), instead.version());
                answer = runtime.run_gate(&instead, &config, request, started, self.timeout).await;
            }
        }
        match answer {
            Ok(Verdict::Allow) => Ok(()),
            Ok(Verdict::Deny { key, code, contract, reason, retry_after_ms }) => Err(GateDenied::Denied {
                gate: gate.id.clone(),
                // The key the gate names, if it is one of the request's.
                key: if request.keys.contains(&key) { key } else { first() },
                code: crate::authz::shown(&code, 64),
                contract: crate::authz::shown(&contract, 128),
                reason: crate::authz::shown(&reason, 512),
                retry_after_ms,
            }),
            Err(GateFault::Busy(why)) => Err(failed(format!("it is busy: {why}"))),
            Err(GateFault::Fault(why)) => Err(failed(why)),
            Err(GateFault::Config { line, message }) => Err(failed(format!(
                "version {} refused the configuration in force{}: {message}",
                component.version(),
                line.map(|l| format!(" at line {l}")).unwrap_or_default()
            ))),
        }
    }

    /// Read every gate's file and put each changed text in force once the
    /// gate accepts it. A text a gate refuses keeps the previous one in
    /// force (reported as `gating.reload.failed` with the file and line);
    /// `at_start` there is no previous one, and the gate fails closed.
    pub async fn reload(&self, at_start: bool) -> Vec<GateReload> {
        let mut results = Vec::new();
        for gate in &self.gates {
            results.push(self.reload_one(gate, at_start).await);
        }
        results
    }

    async fn reload_one(&self, gate: &GateEntry, at_start: bool) -> GateReload {
        let result = |outcome, line, message| GateReload {
            gate: gate.id.clone(),
            file: gate.file.clone(),
            outcome,
            line,
            message,
        };
        let text = match &gate.file {
            None => String::new(),
            Some(path) => match read_bounded(path, self.max_file_bytes) {
                Ok(text) => text,
                Err(message) => return self.refuse(gate, at_start, result("failed", None, Some(message))),
            },
        };
        if let Configured::Valid(current) = &**gate.config.load()
            && *current.text == *text
            && !at_start
        {
            return result("unchanged", None, None);
        }
        let accepted = match self.bound.get().and_then(|b| Some((b.runtime.upgrade()?, b.routes.upgrade()?))) {
            None => Err(GateFault::Busy("the host has not started its gates".into())),
            Some((runtime, routes)) => match routes.component(&gate.id) {
                // Not loaded: nothing to ask; its first instance will be.
                None => Ok(()),
                Some(slot) => {
                    let deadline = tokio::time::Instant::now() + self.timeout.max(Duration::from_secs(1));
                    runtime.try_gate_config(&slot.active(), &text, deadline).await
                }
            },
        };
        match accepted {
            Ok(()) => {
                let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
                gate.config.store(Arc::new(Configured::Valid(ConfigText { generation, text: Arc::from(text) })));
                let done = result("reloaded", None, None);
                self.events.publish(GATING_RELOADED, &serde_json::json!({"gate": gate.id, "file": gate.file}));
                tracing::info!(target: "arw::gate", gate = %gate.id, file = ?gate.file, "gate configuration in force");
                done
            }
            Err(GateFault::Config { line, message }) => {
                self.refuse(gate, at_start, result("failed", line, Some(message)))
            }
            Err(GateFault::Busy(why) | GateFault::Fault(why)) => {
                self.refuse(gate, at_start, result("failed", None, Some(format!("the gate could not check it: {why}"))))
            }
        }
    }

    /// Report a refused text; at start, make the gate fail closed with it.
    fn refuse(&self, gate: &GateEntry, at_start: bool, mut refused: GateReload) -> GateReload {
        let file = gate.file.as_ref().map_or("(no file)".to_string(), |f| f.display().to_string());
        let message = refused.message.clone().unwrap_or_default();
        let at = refused.line.map(|l| format!(":{l}")).unwrap_or_default();
        let kept = if at_start || matches!(&**gate.config.load(), Configured::Invalid(_)) {
            gate.config.store(Arc::new(Configured::Invalid(format!(
                "its configuration {file}{at} is invalid ({message}); fix the file and it is read again"
            ))));
            "none: the gate denies everything until the file is fixed"
        } else {
            "the previous configuration"
        };
        tracing::error!(target: "arw::gate", gate = %gate.id, "the configuration {file}{at} was refused ({message}); in force: {kept}");
        self.events.publish(
            GATING_RELOAD_FAILED,
            &serde_json::json!({"gate": gate.id, "file": gate.file, "line": refused.line, "message": message, "kept": kept}),
        );
        refused.message = Some(format!("{message} (in force: {kept})"));
        refused
    }

    /// Each gate's rules that may apply to `key`, whoever asks and
    /// whenever (`arw gate list`): per gate in order, its rule ids, or why
    /// it could not say.
    pub async fn covering(&self, key: &str) -> Vec<(String, Result<Vec<String>, String>)> {
        let mut out = Vec::new();
        for gate in &self.gates {
            let answer = async {
                let bound = self.bound.get().ok_or("the host has not started its gates")?;
                let (Some(runtime), Some(routes)) = (bound.runtime.upgrade(), bound.routes.upgrade()) else {
                    return Err("the host is stopping".to_string());
                };
                let config = match &**gate.config.load() {
                    Configured::Valid(text) => text.clone(),
                    Configured::Invalid(why) => return Err(why.clone()),
                };
                let slot = routes.component(&gate.id).ok_or("it is not loaded")?;
                let deadline = tokio::time::Instant::now() + self.timeout.max(Duration::from_secs(1));
                runtime.gate_covering(&slot.active(), &config, key, deadline).await.map_err(|e| match e {
                    GateFault::Busy(why) | GateFault::Fault(why) => why,
                    GateFault::Config { message, .. } => message,
                })
            };
            out.push((gate.id.clone(), answer.await));
        }
        out
    }

    /// Each gate in order: its file, and why it denies everything when its
    /// configuration was refused at start (`None`: a configuration is in force).
    pub fn states(&self) -> Vec<GateState> {
        self.gates
            .iter()
            .map(|g| GateState {
                gate: g.id.clone(),
                file: g.file.clone(),
                refused: match &**g.config.load() {
                    Configured::Valid(_) => None,
                    Configured::Invalid(why) => Some(why.clone()),
                },
            })
            .collect()
    }

    /// Every decision counted since start: each gate's allows, then the
    /// refusals by gate, contract and verdict, sorted.
    pub fn counts(&self) -> Vec<(super::events::Series, u64)> {
        let allows = self.gates.iter().map(|g| {
            let series = super::events::Series { gate: g.id.clone(), contract: String::new(), verdict: "allow" };
            (series, g.allowed.load(Ordering::Relaxed))
        });
        allows.chain(self.events.refusals()).collect()
    }

    /// The files the gates read, for a watcher.
    pub fn files(&self) -> impl Iterator<Item = &std::path::Path> {
        self.gates.iter().filter_map(|g| g.file.as_deref())
    }
}

/// A gate's configuration file: a missing file is an empty configuration;
/// anything but a regular file, or one over `max` bytes, is an error.
fn read_bounded(path: &std::path::Path, max: u64) -> Result<String, String> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(format!("{} cannot be read: {e}", path.display())),
    };
    let meta = file.metadata().map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let mut text = String::new();
    file.take(max + 1).read_to_string(&mut text).map_err(|e| format!("{} is not UTF-8 text: {e}", path.display()))?;
    if text.len() as u64 > max {
        return Err(format!("{} is over {max} bytes (gating.max-file-bytes)", path.display()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::address_text;

    #[test]
    fn an_address_is_written_as_the_standard_formatter_writes_it() {
        for text in ["0.0.0.0", "255.255.255.255", "10.0.100.9", "127.0.0.1", "192.168.1.20", "::1", "fe80::1:2"] {
            let address: std::net::IpAddr = text.parse().expect("a test address");
            assert_eq!(address_text(address), address.to_string());
        }
        for octet in 0..=255u8 {
            let address = std::net::IpAddr::from([octet, octet, 0, 9]);
            assert_eq!(address_text(address), address.to_string());
        }
    }
}
