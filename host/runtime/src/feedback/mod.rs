//! The feedback engine's host side (`docs/feedback.md`): **the host
//! measures, a component decides, the host applies under Cedar.**
//!
//! - [`crate::signals`] measures every route and tool on the request path;
//! - every `[feedback] tick-ms` the [`tick`] task hands the active engine
//!   (a `feedback` component, `[feedback] engine`, first-party
//!   `arw:feedback`) the signals and the [`knobs`], and takes its
//!   suggestions into the [`ledger`] (versions only ever increase);
//! - an apply (an operator's, or the host's in `canary`/`auto` mode) is
//!   checked against the knob's bounds, its cooldown, the host's apply
//!   budget and Cedar (`feedback.apply` on `Arw::Knob`, `context.apply`),
//!   then put in force and written down as an undo record; a rollback puts
//!   the recorded values back;
//! - the book is persisted to `<state-dir>/feedback.json`, debounced and
//!   atomic ([`persist`]), and reloaded at start (applied values are put
//!   in force again).
//!
//! One lock guards the book and it is never held across an `await`: the
//! engine is entered with no lock held, and Cedar is asked before the
//! lock is taken to commit.

pub mod knobs;
pub mod ledger;
mod persist;
mod tick;

pub(crate) use tick::spawn as spawn_ticks;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use arw_policy::{Action, ApplyContext, RequestContext, Resource};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

pub use knobs::{Knob, KnobKind};
pub use ledger::{Delta, Evidence, Ledger, Mode, Suggestion, UndoRecord, Updates};

use crate::capabilities::bus::{Bus, Payload};
use crate::host::{Caller, RouteTable};
use crate::roles::Worker;
use crate::runtime::Runtime;

pub const FEEDBACK_SUGGESTED: &str = "feedback.suggested";
pub const FEEDBACK_APPLIED: &str = "feedback.applied";
pub const FEEDBACK_REJECTED: &str = "feedback.rejected";
pub const FEEDBACK_ROLLED_BACK: &str = "feedback.rolled_back";
pub const FEEDBACK_DELTA: &str = "feedback.delta";

/// Knobs with a mode of their own set at run time, at most.
const MAX_MODES: usize = 4_096;

/// `[feedback]`: the engine, its tick, modes, and the bounds on applying.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FeedbackConfig {
    /// The feedback component asked each tick (empty: none; the signals
    /// are still measured).
    pub engine: String,
    /// Milliseconds between ticks, 100 to 5000.
    pub tick_ms: u64,
    /// The mode of every knob without one of its own.
    pub mode: Mode,
    /// Modes by knob name.
    pub modes: BTreeMap<String, Mode>,
    /// After a knob changed, how long before it may be applied again.
    pub cooldown_ms: u64,
    /// Applies at most in a burst (operator's and the host's alike) ...
    pub apply_budget: u32,
    /// ... and one more every this many milliseconds.
    pub apply_refill_ms: u64,
    /// How long a canary apply is watched before it stands.
    pub canary_window_ms: u64,
    /// A canary is reverted if its tool's p95 grew by more than this many
    /// percent, or its fault rate by more than `canary-fault-increase`.
    pub canary_p95_increase_pct: u64,
    pub canary_fault_increase: f64,
    /// Debounce of writes to `feedback.json`, in milliseconds.
    pub persist_ms: u64,
    /// Undo records kept (the oldest go first).
    pub max_undo: usize,
    /// Deltas kept for `updates?since=`.
    pub history: usize,
    /// Suggestions taken from one evaluate at most.
    pub max_suggestions: usize,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        FeedbackConfig {
            engine: "arw:feedback".into(),
            tick_ms: 500,
            mode: Mode::Manual,
            modes: BTreeMap::new(),
            cooldown_ms: 30_000,
            apply_budget: 10,
            apply_refill_ms: 60_000,
            canary_window_ms: 10_000,
            canary_p95_increase_pct: 20,
            canary_fault_increase: 0.05,
            persist_ms: 1_000,
            max_undo: 1_024,
            history: 256,
            max_suggestions: 64,
        }
    }
}

impl FeedbackConfig {
    /// Refuse what the engine cannot run with.
    pub fn check(&self) -> Result<(), String> {
        if !(100..=5_000).contains(&self.tick_ms) {
            return Err(format!("feedback.tick-ms = {} must be between 100 and 5000", self.tick_ms));
        }
        if self.apply_refill_ms == 0 || self.max_undo == 0 || self.history == 0 || self.max_suggestions == 0 {
            return Err("feedback.apply-refill-ms, max-undo, history and max-suggestions must be above zero".into());
        }
        if self.max_undo > 100_000 || self.history > 100_000 || self.max_suggestions > 4_096 {
            return Err("feedback.max-undo and history are at most 100000, max-suggestions at most 4096".into());
        }
        if !(0.0..=1.0).contains(&self.canary_fault_increase) {
            return Err("feedback.canary-fault-increase is a share, 0 to 1".into());
        }
        if let Some(knob) = self.modes.keys().find(|k| knobs::parse(k).is_none()) {
            return Err(format!(
                "feedback.modes names `{knob}`, which is no knob: knobs are {} (docs/feedback.md)",
                knobs::NAMES
            ));
        }
        Ok(())
    }
}

/// Why an apply, a rollback or a mode change was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejected {
    #[error("no suggestion `{0}` now (it was applied, withdrawn, or never made; see GET /feedback/suggestions)")]
    UnknownSuggestion(String),
    #[error("no knob `{0}` (its component is not loaded, or it is no knob; see GET /feedback/state)")]
    UnknownKnob(String),
    #[error("no apply {0} to roll back (see GET /feedback/state, `undo`)")]
    UnknownApply(u64),
    #[error("{0}")]
    Bounds(String),
    #[error("`{knob}` changed {ago_ms} ms ago; it may be applied again in {left_ms} ms (feedback.cooldown-ms)")]
    Cooldown { knob: String, ago_ms: u64, left_ms: u64 },
    #[error("the apply budget is spent (feedback.apply-budget, one more every feedback.apply-refill-ms)")]
    Budget,
    #[error("`{knob}` is in mode `{mode}`, where nothing is applied; set its mode (PUT /feedback/mode)")]
    Mode { knob: String, mode: &'static str },
    #[error("Cedar refused: {0}")]
    Cedar(String),
}

impl Rejected {
    /// The stable reason, in `feedback.rejected` events and problem codes.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejected::UnknownSuggestion(_) | Rejected::UnknownKnob(_) | Rejected::UnknownApply(_) => "unknown",
            Rejected::Bounds(_) => "bounds",
            Rejected::Cooldown { .. } => "cooldown",
            Rejected::Budget => "budget",
            Rejected::Mode { .. } => "mode",
            Rejected::Cedar(_) => "cedar",
        }
    }
}

/// What to roll back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackTarget {
    /// One apply, by its id.
    ApplyId(u64),
    /// Every apply made after this version, newest first.
    ToVersion(u64),
}

/// What the engine's driver has done, for `GET /feedback/state`.
#[derive(Debug, Default)]
struct Counters {
    ticks: AtomicU64,
    skipped: AtomicU64,
    engine_errors: AtomicU64,
    refused_suggestions: AtomicU64,
}

/// The counters as shown.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct FeedbackCounters {
    pub ticks: u64,
    /// Ticks not run because the previous one overran.
    pub ticks_skipped: u64,
    /// Ticks where the engine was missing, failed or faulted.
    pub engine_errors: u64,
    /// Suggestions dropped for naming no knob or a value out of bounds.
    pub refused_suggestions: u64,
}

/// A knob with its mode and when it last changed.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct KnobView {
    #[serde(flatten)]
    pub knob: Knob,
    pub mode: Mode,
    pub changed_ms: Option<i64>,
}

/// `GET /feedback/state`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct FeedbackState {
    pub version: u64,
    pub engine: String,
    pub tick_ms: u64,
    pub mode: Mode,
    pub counters: FeedbackCounters,
    pub apply_budget_left: u32,
    pub knobs: Vec<KnobView>,
    pub suggestions: Vec<Suggestion>,
    /// The most recent undo records, newest last.
    pub undo: Vec<UndoRecord>,
    /// Canary applies being watched: apply id and when the watch ends.
    pub canaries: Vec<(u64, i64)>,
    /// The signals as the last tick read them.
    pub signals: Vec<crate::signals::SeriesView>,
    /// The gauges as the last tick read them (the host's, then those
    /// other units report).
    pub gauges: Vec<crate::signals::Gauge>,
}

/// A canary apply being watched.
#[derive(Debug, Clone)]
struct Canary {
    apply_id: u64,
    series: Option<String>,
    /// The series' p95 and fault rate when it was applied.
    baseline: (Option<f64>, Option<f64>),
    until_ms: i64,
}

/// What the lock guards.
#[derive(Debug)]
struct Book {
    ledger: Ledger,
    budget: ledger::Budget,
    canaries: Vec<Canary>,
    /// The signals the last tick read (shared with the tick that read
    /// them, not copied).
    signals: Arc<Vec<crate::signals::SeriesView>>,
    /// The last refusal of each engine apply (reported once per reason).
    refusals: std::collections::HashMap<String, tick::Refusal>,
    /// The bus's drop and lag rates, decayed.
    bus: tick::BusRates,
    /// The gauges the last tick read.
    gauges: Vec<crate::signals::Gauge>,
}

/// The feedback engine's host side, one per host.
#[derive(Debug)]
pub struct Feedback {
    config: FeedbackConfig,
    runtime: Weak<Runtime>,
    routes: Weak<RouteTable>,
    workers: Weak<Mutex<BTreeMap<String, Worker>>>,
    book: Mutex<Book>,
    counters: Counters,
    persist: persist::Persist,
    epoch: std::time::Instant,
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// Who applies: a caller from outside, or the host on its engine's word.
pub(crate) enum Applier<'a> {
    Caller(&'a Caller),
    Engine(Arc<crate::runtime::component::LoadedComponent>),
    /// The host's own safety action: a canary's revert, which restores
    /// what was in force before an apply Cedar allowed (not asked again).
    Host,
}

impl Feedback {
    /// The engine of a host, with its book read from `state_dir` (a
    /// missing file is an empty book; an unreadable one is set aside as
    /// `feedback.json.bad` with a warning, never a reason not to start).
    pub(crate) fn new(
        config: FeedbackConfig,
        state_dir: &std::path::Path,
        runtime: &Arc<Runtime>,
        routes: &Arc<RouteTable>,
        workers: &Arc<Mutex<BTreeMap<String, Worker>>>,
    ) -> Arc<Self> {
        let persist = persist::Persist::new(state_dir.join("feedback.json"), config.persist_ms);
        let ledger = persist.load();
        // What was applied is in force again, before any component loads
        // (a version takes its tuning at load).
        for (knob, value) in &ledger.applied {
            match knobs::parse(knob) {
                Some(target) => knobs::set(runtime, target, None, Some(*value)),
                None => tracing::warn!(knob, "feedback.json names no knob; its applied value is ignored"),
            }
        }
        let budget = ledger::Budget::new(config.apply_budget, config.apply_refill_ms);
        Arc::new(Feedback {
            runtime: Arc::downgrade(runtime),
            routes: Arc::downgrade(routes),
            workers: Arc::downgrade(workers),
            book: Mutex::new(Book {
                ledger,
                budget,
                canaries: Vec::new(),
                signals: Arc::new(Vec::new()),
                refusals: Default::default(),
                bus: tick::BusRates::new(runtime.config.signals.half_life_ms),
                gauges: Vec::new(),
            }),
            counters: Counters::default(),
            persist,
            epoch: std::time::Instant::now(),
            config,
        })
    }

    fn clock_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Every knob of the components running now.
    pub fn knobs(&self) -> Vec<Knob> {
        let (Some(runtime), Some(routes)) = (self.runtime.upgrade(), self.routes.upgrade()) else { return Vec::new() };
        let mut knobs: Vec<Knob> =
            routes.slots().iter().flat_map(|slot| knobs::of_component(&runtime, &slot.active())).collect();
        knobs.extend(knobs::of_host(&runtime));
        knobs
    }

    fn knob(&self, name: &str) -> Option<Knob> {
        let (runtime, routes) = (self.runtime.upgrade()?, self.routes.upgrade()?);
        let knobs = match knobs::parse(name)? {
            knobs::Target::Component(component, _) => {
                knobs::of_component(&runtime, &routes.component(component)?.active())
            }
            knobs::Target::Host(_) | knobs::Target::Budget(_) => knobs::of_host(&runtime),
        };
        knobs.into_iter().find(|k| k.name == name)
    }

    /// The whole state, for `GET /feedback/state`.
    pub fn state(&self) -> FeedbackState {
        let knobs = self.knobs();
        let now = self.clock_ms();
        let mut book = self.book.lock();
        let budget_left = book.budget.left(now);
        let ledger = &book.ledger;
        let knobs = knobs
            .into_iter()
            .map(|knob| KnobView {
                mode: ledger.mode(&knob.name, &self.config.modes, self.config.mode),
                changed_ms: ledger.changed_ms.get(&knob.name).copied(),
                knob,
            })
            .collect();
        FeedbackState {
            version: ledger.version,
            engine: self.config.engine.clone(),
            tick_ms: self.config.tick_ms,
            mode: ledger.global_mode.unwrap_or(self.config.mode),
            counters: self.counters(),
            apply_budget_left: budget_left,
            knobs,
            suggestions: ledger.suggestions.values().cloned().collect(),
            undo: ledger.undo.iter().rev().take(64).rev().cloned().collect(),
            canaries: book.canaries.iter().map(|c| (c.apply_id, c.until_ms)).collect(),
            signals: book.signals.to_vec(),
            gauges: book.gauges.clone(),
        }
    }

    pub fn counters(&self) -> FeedbackCounters {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FeedbackCounters {
            ticks: n(&self.counters.ticks),
            ticks_skipped: n(&self.counters.skipped),
            engine_errors: n(&self.counters.engine_errors),
            refused_suggestions: n(&self.counters.refused_suggestions),
        }
    }

    /// The current suggestions and their version.
    pub fn suggestions(&self) -> (u64, Vec<Suggestion>) {
        let book = self.book.lock();
        (book.ledger.version, book.ledger.suggestions.values().cloned().collect())
    }

    /// What changed after version `since`.
    pub fn updates(&self, since: u64) -> (u64, Updates) {
        let book = self.book.lock();
        (book.ledger.version, book.ledger.updates(since))
    }

    /// Every undo record kept, oldest first.
    pub fn undo_records(&self) -> Vec<UndoRecord> {
        self.book.lock().ledger.undo.iter().cloned().collect()
    }

    /// An operator applies suggestion `id`.
    pub fn apply(&self, caller: &Caller, id: &str) -> Result<UndoRecord, Rejected> {
        let result = self.apply_as(&Applier::Caller(caller), id, "operator");
        self.report(&result, caller_name(caller), id);
        result
    }

    /// Apply suggestion `id` for `who` from `source` (`operator`,
    /// `engine`): bounds, mode, cooldown, Cedar, budget, in that order;
    /// the checks that read the book are made again when it commits.
    pub(crate) fn apply_as(&self, who: &Applier<'_>, id: &str, source: &str) -> Result<UndoRecord, Rejected> {
        let suggestion = self.book.lock().ledger.suggestions.get(id).cloned();
        let suggestion = suggestion.ok_or_else(|| Rejected::UnknownSuggestion(id.chars().take(128).collect()))?;
        let knob = self.knob(&suggestion.knob).ok_or_else(|| Rejected::UnknownKnob(suggestion.knob.clone()))?;
        if let Some(why) = knob.refuses(suggestion.value) {
            return Err(Rejected::Bounds(why));
        }
        let confidence = (suggestion.confidence * 100.0).round().clamp(0.0, 100.0) as i64;
        let mode = {
            let mut book = self.book.lock();
            let mode = book.ledger.mode(&knob.name, &self.config.modes, self.config.mode);
            self.check_ready(&mut book, &knob, mode)?;
            mode
        };
        let budget_left = i64::from(self.book.lock().budget.left(self.clock_ms()).saturating_sub(1));
        let context = ApplyContext { confidence, mode: mode.as_str().into(), source: source.into(), budget_left };
        self.authorize(who, &knob, &context)?;
        let mut book = self.book.lock();
        self.check_ready(&mut book, &knob, mode)?;
        if book.ledger.suggestions.get(id) != Some(&suggestion) {
            return Err(Rejected::UnknownSuggestion(id.into()));
        }
        if !book.budget.take(self.clock_ms()) {
            return Err(Rejected::Budget);
        }
        let record = self.commit(&mut book, &knob, Some(suggestion.value), Some(id), who, source, None);
        if mode == Mode::Canary && source == "engine" {
            let series = knob.series.clone();
            let baseline = series.as_deref().map_or((None, None), |s| baseline_of(&book.signals, s));
            let until_ms = unix_ms().saturating_add(i64::try_from(self.config.canary_window_ms).unwrap_or(i64::MAX));
            book.canaries.push(Canary { apply_id: record.apply_id, series, baseline, until_ms });
        }
        Ok(record)
    }

    /// Mode and cooldown, checked against the book.
    fn check_ready(&self, book: &mut Book, knob: &Knob, mode: Mode) -> Result<(), Rejected> {
        if matches!(mode, Mode::Off | Mode::Shadow) {
            return Err(Rejected::Mode { knob: knob.name.clone(), mode: mode.as_str() });
        }
        if let Some(changed) = book.ledger.changed_ms.get(&knob.name) {
            let ago = u64::try_from(unix_ms().saturating_sub(*changed)).unwrap_or(0);
            if ago < self.config.cooldown_ms {
                return Err(Rejected::Cooldown {
                    knob: knob.name.clone(),
                    ago_ms: ago,
                    left_ms: self.config.cooldown_ms - ago,
                });
            }
        }
        Ok(())
    }

    /// Cedar: may `who` apply to `knob`, with what the apply rests on?
    fn authorize(&self, who: &Applier<'_>, knob: &Knob, context: &ApplyContext) -> Result<(), Rejected> {
        let runtime = self.runtime.upgrade().ok_or_else(|| Rejected::Cedar("the host is stopping".into()))?;
        let request = RequestContext { apply: Some(context), ..Default::default() };
        let resource = Resource::tool(&knob.name, &knob.owner);
        let chokepoint = &runtime.chokepoint;
        let verdict = match who {
            Applier::Caller(caller) => {
                chokepoint.authorize_in(&caller.0, None, Action::FEEDBACK_APPLY, resource, &request)
            }
            Applier::Engine(engine) => {
                let principal = chokepoint.authorizer().principal(engine_principal(engine.id()));
                chokepoint.authorize_in(&principal, None, Action::FEEDBACK_APPLY, resource, &request)
            }
            Applier::Host => Ok(()),
        };
        verdict.map_err(|denied| Rejected::Cedar(denied.to_string()))
    }

    /// Put `value` in force on `knob` and write it down. Under the lock.
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &self,
        book: &mut Book,
        knob: &Knob,
        value: Option<i64>,
        suggestion: Option<&str>,
        who: &Applier<'_>,
        source: &str,
        undoes: Option<u64>,
    ) -> UndoRecord {
        if let (Some(runtime), Some(routes), Some(target)) =
            (self.runtime.upgrade(), self.routes.upgrade(), knobs::parse(&knob.name))
        {
            let active = match target {
                knobs::Target::Component(id, _) => routes.component(id).map(|slot| slot.active()),
                knobs::Target::Host(_) | knobs::Target::Budget(_) => None,
            };
            knobs::set(&runtime, target, active.as_ref(), value);
        }
        let who = match who {
            Applier::Caller(caller) => caller_name(caller).to_string(),
            Applier::Engine(engine) => engine.id().to_string(),
            Applier::Host => "host".to_string(),
        };
        let limits = (self.config.max_undo, self.config.history);
        let record = book.ledger.record_change(&knob.name, value, suggestion, &who, source, undoes, unix_ms(), limits);
        self.persist.dirty();
        record
    }

    /// Roll back one apply, or every apply after a version: each knob gets
    /// the value it had before, exactly (no value applied, if none was).
    /// Cedar is asked for each knob (`context.apply.source` = `rollback`);
    /// neither the cooldown nor the budget holds a rollback back.
    pub fn rollback(&self, caller: &Caller, target: RollbackTarget) -> Result<Vec<UndoRecord>, Rejected> {
        let result = self.rollback_as(&Applier::Caller(caller), target, "rollback", None);
        if let Err(e) = &result {
            self.publish(FEEDBACK_REJECTED, serde_json::json!({"action": "rollback", "reason": e.reason(), "message": e.to_string(), "who": caller_name(caller)}));
        }
        result
    }

    pub(crate) fn rollback_as(
        &self,
        who: &Applier<'_>,
        target: RollbackTarget,
        source: &str,
        reason: Option<&str>,
    ) -> Result<Vec<UndoRecord>, Rejected> {
        let records = {
            let book = self.book.lock();
            match target {
                RollbackTarget::ApplyId(id) => {
                    let record = book.ledger.undo.iter().find(|r| r.apply_id == id && r.undone_by.is_none());
                    vec![record.cloned().ok_or(Rejected::UnknownApply(id))?]
                }
                RollbackTarget::ToVersion(version) => book.ledger.applies_after(version),
            }
        };
        let mut undone = Vec::new();
        for record in records {
            let knob = self.knob(&record.knob).ok_or_else(|| Rejected::UnknownKnob(record.knob.clone()))?;
            let context =
                ApplyContext { confidence: 100, mode: "manual".into(), source: source.into(), budget_left: 0 };
            self.authorize(who, &knob, &context)?;
            let mut book = self.book.lock();
            let still = book.ledger.undo.iter().any(|r| r.apply_id == record.apply_id && r.undone_by.is_none());
            if !still {
                continue;
            }
            book.canaries.retain(|c| c.apply_id != record.apply_id);
            let undo = self.commit(&mut book, &knob, record.before, None, who, source, Some(record.apply_id));
            drop(book);
            self.publish(
                FEEDBACK_ROLLED_BACK,
                serde_json::json!({
                    "apply-id": record.apply_id, "knob": record.knob, "restored": record.before, "undo": undo,
                    "source": source, "reason": reason,
                }),
            );
            undone.push(undo);
        }
        Ok(undone)
    }

    /// Set the mode of `knob` (or, with `None`, of every knob without its
    /// own), asked of Cedar as `feedback.mode` on the knob (`*` for all).
    pub fn set_mode(&self, caller: &Caller, knob: Option<&str>, mode: Mode) -> Result<u64, Rejected> {
        // Only a knob that exists now: the modes are persisted, so a name
        // anyone could make up must not grow them.
        if let Some(name) = knob
            && self.knob(name).is_none()
        {
            return Err(Rejected::UnknownKnob(name.chars().take(128).collect()));
        }
        let runtime = self.runtime.upgrade().ok_or_else(|| Rejected::Cedar("the host is stopping".into()))?;
        let (name, owner) = match knob {
            Some(name) => (name, knobs::parse(name).map_or("", |target| target.owner())),
            None => ("*", "host"),
        };
        runtime
            .chokepoint
            .authorize_in(
                &caller.0,
                None,
                Action::FEEDBACK_MODE,
                Resource::tool(name, owner),
                &RequestContext::default(),
            )
            .map_err(|denied| Rejected::Cedar(denied.to_string()))?;
        let mut book = self.book.lock();
        match knob {
            Some(name) => {
                // Modes of knobs whose component is gone make room first.
                if book.ledger.modes.len() >= MAX_MODES && !book.ledger.modes.contains_key(name) {
                    let live: std::collections::BTreeSet<String> = self.knobs().into_iter().map(|k| k.name).collect();
                    book.ledger.modes.retain(|k, _| live.contains(k));
                }
                if book.ledger.modes.len() >= MAX_MODES && !book.ledger.modes.contains_key(name) {
                    return Err(Rejected::Bounds(format!(
                        "{MAX_MODES} knobs have a mode of their own already; set the mode for every knob instead"
                    )));
                }
                book.ledger.modes.insert(name.to_string(), mode);
            }
            None => book.ledger.global_mode = Some(mode),
        }
        self.persist.dirty();
        Ok(book.ledger.version)
    }

    fn report(&self, result: &Result<UndoRecord, Rejected>, who: &str, id: &str) {
        match result {
            Ok(record) => self.publish(FEEDBACK_APPLIED, serde_json::to_value(record).unwrap_or_default()),
            Err(e) => self.publish(
                FEEDBACK_REJECTED,
                serde_json::json!({"action": "apply", "suggestion": id, "reason": e.reason(), "message": e.to_string(), "who": who}),
            ),
        }
    }

    fn publish(&self, topic: &str, payload: serde_json::Value) {
        if let Some(runtime) = self.runtime.upgrade() {
            let bus: &Arc<Bus> = &runtime.capabilities.bus;
            let _ = bus.publish_host(topic, Payload::Json(payload.to_string()));
        }
    }

    /// Write the book now if it changed (at a clean stop).
    pub fn flush(&self) {
        let ledger = self.book.lock().ledger.clone();
        self.persist.write_now(&ledger);
    }
}

/// Who the engine is to Cedar when it applies: the caller named by its
/// component id, in the role `feedback-engine`. (The host takes
/// suggestions only from the component `[feedback] engine` names, loaded
/// and verified like any other.)
pub fn engine_principal(id: &str) -> arw_policy::Principal {
    arw_policy::Principal::caller(id, [ENGINE_ROLE])
}

/// The role the engine applies in.
pub const ENGINE_ROLE: &str = "feedback-engine";

fn caller_name(caller: &Caller) -> &str {
    &caller.gate_caller().name
}

/// A series' p95 and fault rate in `signals` (`tool:<name>`).
fn baseline_of(signals: &[crate::signals::SeriesView], series: &str) -> (Option<f64>, Option<f64>) {
    let Some((kind, name)) = series.split_once(':') else { return (None, None) };
    signals.iter().find(|s| s.kind == kind && s.name == name).map_or((None, None), |s| (s.p95_ms, s.fault_rate))
}
