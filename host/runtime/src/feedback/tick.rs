//! The feedback tick: every `[feedback] tick-ms`, read the signals and
//! the knobs, hand them to the engine, take its suggestions, act on them
//! as each knob's mode says, watch the canaries, persist.
//!
//! A tick that is due while the previous one still runs is skipped and
//! counted (`ticks-skipped`), never queued. The engine is entered through
//! its driver (the resident lifecycle), with no lock held.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::ledger::{Evidence, Mode, Suggestion};
use super::{Applier, Feedback, Knob, Rejected, unix_ms};
use crate::roles::feedback::wit;
use crate::roles::resident::Command;
use crate::runtime::Runtime;
use crate::runtime::component::LoadedComponent;
use crate::signals::{Gauge, SeriesView};

/// Longest id and rationale taken from an engine, and most evidence.
const MAX_ID: usize = 128;
const MAX_RATIONALE: usize = 2_048;
const MAX_EVIDENCE: usize = 16;

/// Run the ticks for as long as the host lives (the task holds the
/// engine weakly) or until `shutdown`.
pub(crate) fn spawn(feedback: &Arc<Feedback>, mut shutdown: watch::Receiver<bool>) {
    let weak = Arc::downgrade(feedback);
    let period = Duration::from_millis(feedback.config.tick_ms);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = interval.tick() => {}
            }
            let Some(feedback) = weak.upgrade() else { return };
            n += 1;
            let started = tokio::time::Instant::now();
            feedback.tick(n).await;
            let over = started.elapsed().as_millis() / period.as_millis().max(1);
            if over > 0 {
                let skipped = u64::try_from(over).unwrap_or(u64::MAX);
                feedback.counters.skipped.fetch_add(skipped, std::sync::atomic::Ordering::Relaxed);
                n = n.saturating_add(skipped);
            }
        }
    });
}

impl Feedback {
    /// One tick: the same work as a timed one (public so tests and
    /// benchmarks can tick on their own clock).
    pub async fn tick(&self, n: u64) {
        let Some(runtime) = self.runtime.upgrade() else { return };
        let signals = Arc::new(runtime.signals.snapshot());
        let knobs = self.knobs();
        let features = {
            let mut book = self.book.lock();
            book.signals = Arc::clone(&signals);
            let book = &mut *book;
            let ledger = &book.ledger;
            wit::Features {
                tick: n,
                now_ms: unix_ms(),
                series: signals.iter().map(series_of).collect(),
                knobs: knobs
                    .iter()
                    .map(|k| {
                        knob_of(
                            k,
                            ledger.mode(&k.name, &self.config.modes, self.config.mode),
                            ledger.changed_ms.get(&k.name).copied(),
                        )
                    })
                    .collect(),
                gauges: {
                    let gauges = gauges(&runtime, &mut book.bus);
                    let wit =
                        gauges.iter().map(|g| wit::Gauge { name: g.name.clone(), value: g.value, limit: g.limit });
                    let wit = wit.collect();
                    book.gauges = gauges;
                    wit
                },
            }
        };
        self.counters.ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.watch_canaries(&signals);
        match self.evaluate(&runtime, features).await {
            Ok((engine, list)) => self.take(&engine, list, &knobs),
            Err(why) => {
                self.counters.engine_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(engine = %self.config.engine, "no suggestions this tick: {why}");
            }
        }
        self.persist.write_if_due(|| self.book.lock().ledger.clone());
    }

    /// Enter the engine's `evaluate` through its driver.
    async fn evaluate(&self, runtime: &Runtime, features: wit::Features) -> crate::roles::feedback::Evaluated {
        if self.config.engine.is_empty() {
            return Err("no engine is configured ([feedback] engine)".into());
        }
        let workers = self.workers.upgrade().ok_or("the host is stopping")?;
        let commands = workers.lock().get(&self.config.engine).and_then(|w| w.commands.clone());
        let commands = commands.ok_or_else(|| format!("the engine `{}` is not loaded", self.config.engine))?;
        let (reply, answer) = oneshot::channel();
        commands
            .try_send(Command::Evaluate { features: Box::new(features), reply })
            .map_err(|_| "the engine's driver is busy (a hand-over or the previous evaluate)".to_string())?;
        // The driver bounds the entry by the engine's own deadline; this
        // bounds the wait for the driver.
        let limit = Duration::from_millis(runtime.config.limits.max_timeout_ms.saturating_add(1_000));
        tokio::time::timeout(limit, answer)
            .await
            .map_err(|_| "the engine did not answer in time".to_string())?
            .map_err(|_| "the engine's driver stopped".to_string())?
    }

    /// Take the engine's suggestions: drop those that name no knob or a
    /// value the knob refuses, version the rest, and act on them as their
    /// knob's mode says.
    fn take(&self, engine: &Arc<LoadedComponent>, list: Vec<wit::Suggestion>, knobs: &[Knob]) {
        let name = format!("{}@{}", engine.id(), engine.version());
        let mut seen = BTreeSet::new();
        let mut taken = Vec::new();
        for s in list.into_iter().take(self.config.max_suggestions) {
            let knob = knobs.iter().find(|k| k.name == s.knob);
            let refused = match knob {
                None => Some(format!("names no knob `{}`", s.knob.chars().take(MAX_ID).collect::<String>())),
                Some(_) if s.id.is_empty() || s.id.len() > MAX_ID => Some(format!("has an id of {} bytes", s.id.len())),
                Some(_) if !seen.insert(s.id.clone()) => Some(format!("repeats the id `{}`", s.id)),
                Some(_) if !s.confidence.is_finite() => Some("has a confidence that is not a number".into()),
                Some(knob) => knob.refuses(s.value),
            };
            if let Some(why) = refused {
                self.counters.refused_suggestions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(engine = %name, "a suggestion is dropped: it {why}");
                continue;
            }
            taken.push(Suggestion {
                id: s.id,
                knob: s.knob,
                value: s.value,
                rationale: s.rationale.chars().take(MAX_RATIONALE).collect(),
                confidence: s.confidence.clamp(0.0, 1.0),
                evidence: s
                    .evidence
                    .into_iter()
                    .take(MAX_EVIDENCE)
                    .map(|e| Evidence {
                        signal: e.signal.chars().take(MAX_ID).collect(),
                        value: e.value,
                        threshold: e.threshold,
                    })
                    .collect(),
                engine: name.clone(),
                since_version: 0,
            });
        }
        let (delta, modes) = {
            let mut book = self.book.lock();
            let ledger = &mut book.ledger;
            taken.retain(|s| ledger.mode(&s.knob, &self.config.modes, self.config.mode) != Mode::Off);
            let delta = ledger.replace_suggestions(taken, self.config.history);
            let modes: Vec<(String, Mode)> = ledger
                .suggestions
                .values()
                .map(|s| (s.id.clone(), ledger.mode(&s.knob, &self.config.modes, self.config.mode)))
                .collect();
            (delta, modes)
        };
        if let Some(delta) = &delta {
            self.persist.dirty();
            for s in &delta.upserted {
                let mode = modes.iter().find(|(id, _)| *id == s.id).map_or(Mode::Manual, |(_, m)| *m);
                if mode == Mode::Shadow {
                    tracing::info!(target: "arw::feedback", knob = %s.knob, value = s.value, confidence = s.confidence, "shadow: would apply: {}", s.rationale);
                }
                let mut event = serde_json::to_value(s).unwrap_or_default();
                event["mode"] = mode.as_str().into();
                event["version"] = delta.version.into();
                self.publish(super::FEEDBACK_SUGGESTED, event);
            }
            self.publish(super::FEEDBACK_DELTA, serde_json::to_value(delta).unwrap_or_default());
        }
        // The engine's own suggestions, inside the host: never anything
        // read from the bus.
        let now = unix_ms();
        for (id, mode) in modes {
            if matches!(mode, Mode::Auto | Mode::Canary) && !self.refused_lately(&id, now) {
                let result = self.apply_as(&Applier::Engine(engine.clone()), &id, "engine");
                self.report_engine_apply(&id, result, now);
            }
        }
    }

    /// Whether Cedar refused this very suggestion (same knob and value)
    /// less than a cooldown ago: it is not asked again until then, or
    /// until the suggestion changes (a refusal for the budget or a
    /// cooldown is asked again at the next tick: those pass by themselves).
    fn refused_lately(&self, id: &str, now: i64) -> bool {
        let book = self.book.lock();
        let (Some(refusal), Some(suggestion)) = (book.refusals.get(id), book.ledger.suggestions.get(id)) else {
            return false;
        };
        refusal.reason == "cedar"
            && refusal.knob == suggestion.knob
            && refusal.value == suggestion.value
            && now < refusal.until_ms
    }

    /// Report an engine apply; a refusal once per suggestion and reason.
    fn report_engine_apply(&self, id: &str, result: Result<super::UndoRecord, Rejected>, now: i64) {
        let mut book = self.book.lock();
        match &result {
            Ok(_) => _ = book.refusals.remove(id),
            Err(e) => {
                let Some(suggestion) = book.ledger.suggestions.get(id) else { return };
                let refusal = Refusal {
                    reason: e.reason(),
                    knob: suggestion.knob.clone(),
                    value: suggestion.value,
                    until_ms: now.saturating_add(i64::try_from(self.config.cooldown_ms).unwrap_or(i64::MAX)),
                };
                let repeated = book.refusals.get(id).is_some_and(|r| r.reason == refusal.reason);
                if book.refusals.len() >= self.config.max_suggestions && !book.refusals.contains_key(id) {
                    book.refusals.clear();
                }
                book.refusals.insert(id.to_string(), refusal);
                if repeated {
                    return;
                }
            }
        }
        drop(book);
        self.report(&result, &self.config.engine, id);
    }

    /// Revert a canary whose signal regressed; let one stand whose window
    /// passed without.
    fn watch_canaries(&self, signals: &[SeriesView]) {
        let now = unix_ms();
        let canaries = self.book.lock().canaries.clone();
        for canary in canaries {
            let current = canary.series.as_deref().map_or((None, None), |s| super::baseline_of(signals, s));
            let regression = regression(&canary.baseline, &current, &self.config);
            match regression {
                Some(why) => {
                    tracing::warn!(target: "arw::feedback", apply = canary.apply_id, "canary reverted: {why}");
                    let target = super::RollbackTarget::ApplyId(canary.apply_id);
                    if let Err(e) = self.rollback_as(&Applier::Host, target, "canary-revert", Some(&why)) {
                        tracing::warn!(target: "arw::feedback", apply = canary.apply_id, "the canary could not be reverted: {e}");
                        self.book.lock().canaries.retain(|c| c.apply_id != canary.apply_id);
                    }
                }
                None if now >= canary.until_ms => {
                    self.book.lock().canaries.retain(|c| c.apply_id != canary.apply_id);
                    tracing::info!(target: "arw::feedback", apply = canary.apply_id, "canary stands: no regression in its window");
                }
                None => {}
            }
        }
    }
}

/// The last refusal of an engine apply: its reason, what it was for, and
/// (for Cedar's) until when it is not asked again.
#[derive(Debug, Clone)]
pub(super) struct Refusal {
    reason: &'static str,
    knob: String,
    value: i64,
    until_ms: i64,
}

/// Why `current` is a regression from `baseline`, if it is.
fn regression(
    baseline: &(Option<f64>, Option<f64>),
    current: &(Option<f64>, Option<f64>),
    config: &super::FeedbackConfig,
) -> Option<String> {
    if let (Some(before), Some(now)) = (baseline.0, current.0) {
        let limit = before * (1.0 + config.canary_p95_increase_pct as f64 / 100.0);
        if now > limit {
            return Some(format!(
                "p95 latency rose from {before:.1} ms to {now:.1} ms, over {}% more (feedback.canary-p95-increase-pct)",
                config.canary_p95_increase_pct
            ));
        }
    }
    let (before, now) = (baseline.1.unwrap_or(0.0), current.1.unwrap_or(0.0));
    if now > before + config.canary_fault_increase {
        return Some(format!(
            "the fault rate rose from {:.1}% to {:.1}% (feedback.canary-fault-increase = {})",
            before * 100.0,
            now * 100.0,
            config.canary_fault_increase
        ));
    }
    None
}

fn series_of(s: &SeriesView) -> wit::Series {
    wit::Series {
        kind: match s.kind {
            "route" => wit::SeriesKind::Route,
            "tool" => wit::SeriesKind::Tool,
            _ => wit::SeriesKind::Overflow,
        },
        name: s.name.clone(),
        samples: s.samples,
        latency_ewma_ms: s.ewma_ms,
        p50_ms: s.p50_ms,
        p95_ms: s.p95_ms,
        p99_ms: s.p99_ms,
        window_samples: s.window_samples,
        fault_rate: s.fault_rate,
        client_error_rate: s.client_error_rate,
        busy_rate: s.busy_rate,
    }
}

fn knob_of(k: &Knob, mode: Mode, changed_ms: Option<i64>) -> wit::Knob {
    wit::Knob {
        name: k.name.clone(),
        owner: k.owner.clone(),
        series: k.series.clone(),
        value: k.value,
        default_value: k.default_value,
        min: k.min,
        max: k.max,
        step: k.step,
        mode: mode.as_str().into(),
        changed_ms,
    }
}

/// The bus's drop and lag rates: decayed counts of what each tick saw
/// happen since the last (rates of now, not totals since start).
#[derive(Debug)]
pub(super) struct BusRates {
    last: crate::capabilities::bus::BusStats,
    published: crate::signals::DecayedCount,
    dropped: crate::signals::DecayedCount,
    lagged: crate::signals::DecayedCount,
    epoch: std::time::Instant,
}

impl BusRates {
    pub(super) fn new(half_life_ms: u64) -> Self {
        let count = || crate::signals::DecayedCount::new(half_life_ms);
        BusRates {
            last: Default::default(),
            published: count(),
            dropped: count(),
            lagged: count(),
            epoch: std::time::Instant::now(),
        }
    }

    /// Take the bus's totals now; the decayed drop and lag shares.
    fn observe(&mut self, now: &crate::capabilities::bus::BusStats) -> (f64, f64) {
        let at = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let delta = |now: u64, last: u64| now.saturating_sub(last) as f64;
        self.published.add(delta(now.published, self.last.published), at);
        self.dropped.add(delta(now.dropped, self.last.dropped), at);
        self.lagged.add(delta(now.observer_lagged, self.last.observer_lagged), at);
        self.last = *now;
        let published = self.published.value_at(at);
        let share = |c: &crate::signals::DecayedCount| {
            if published > 0.0 { (c.value_at(at) / published).min(1.0) } else { 0.0 }
        };
        (share(&self.dropped), share(&self.lagged))
    }
}

/// The host's levels against their limits, then those other units report.
fn gauges(runtime: &Runtime, bus_rates: &mut BusRates) -> Vec<Gauge> {
    let gauge = |name: &str, value: f64, limit: Option<f64>| Gauge { name: name.into(), value, limit };
    let pool = &runtime.pool;
    let memory = pool.memory();
    let (dropped, lagged) = bus_rates.observe(&runtime.capabilities.bus.stats());
    let mut gauges = vec![
        gauge("pool.slots", f64::from(pool.calls_in_use()), Some(f64::from(pool.calls_budget()))),
        // Linear memory the live instances hold, against the sum of their caps.
        gauge("memory.in-use-bytes", memory.in_use() as f64, Some(memory.capped() as f64)),
        gauge("signals.dropped", runtime.signals.dropped() as f64, None),
        gauge("bus.drop-rate", dropped, Some(1.0)),
        gauge("bus.lag-rate", lagged, Some(1.0)),
    ];
    if let Some(rss) = rss_bytes() {
        gauges.push(gauge("process.rss-bytes", rss as f64, None));
    }
    // The hook: gauges other units report (download stalls, ...).
    gauges.extend(runtime.signals.gauges().read());
    gauges
}

/// This process's resident set, from `/proc/self/statm` (Linux).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(4096))
}
