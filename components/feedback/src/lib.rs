//! `arw:feedback`: the first-party feedback engine (`docs/feedback.md`).
//!
//! Each `evaluate` gets the host's signals and knobs and answers the whole
//! current list of suggestions. Four rules, each per knob:
//!
//! - `raise-timeout:<component>`: a tool's p95 latency close to its
//!   `timeout-ms` (or its calls timing out) suggests a longer timeout;
//! - `restore-concurrency:<component>`: a tool whose concurrency was
//!   lowered and whose calls are now refused for want of a slot suggests
//!   giving the slots back, towards the manifest's value;
//! - `raise-request-timeout:host`: an HTTP route whose p99 comes close to
//!   the server's `http.request-timeout-ms` suggests a longer one;
//! - `raise-subscriber-queue:host`: the bus dropping events for full
//!   subscriber queues (the decayed `bus.drop-rate`) suggests deeper
//!   queues (`bus.subscriber-queue`, doubled).
//!
//! Every rule has **hysteresis**: it enters only after its enter condition
//! held for `dwell-ticks` ticks in a row, and leaves only after its exit
//! condition (a separate, lower threshold) held as long, so a signal that
//! oscillates around one threshold gives one suggestion, not a stream. A
//! suggestion's value is fixed when it enters. After a knob changes (an
//! apply or a rollback) its rules wait `cooldown-ms` before they suggest
//! again. Confidence comes from the evidence: how many samples the signal
//! rests on, and how far past the threshold it is.
//!
//! The histories and cooldowns live in memory and pass to a successor at a
//! hot swap through `snapshot`/`restore`.

wit_bindgen::generate!({ path: "../../wit", world: "arw:host/feedback" });

use std::collections::BTreeMap;
use std::sync::Mutex;

use arw::host::config;
use exports::arw::host::feedback_engine::{Evidence, Features, Guest, Knob, Series, SeriesKind, Suggestion};

/// A rule: what it reads of one tick for one knob.
type Rule = fn(&Knob, &Features, &Settings) -> Option<Reading>;
use serde::{Deserialize, Serialize};

/// The engine's thresholds, from the manifest's `[config]` (read once per
/// instance).
#[derive(Debug, Clone, Copy)]
struct Settings {
    /// p95 / timeout at or above which `raise-timeout` enters.
    timeout_enter: f64,
    /// p95 / timeout under which it leaves.
    timeout_exit: f64,
    /// A fault rate at or above which timeouts count as evidence.
    fault_enter: f64,
    /// Busy rate at or above which `restore-concurrency` enters, and under
    /// which it leaves.
    busy_enter: f64,
    busy_exit: f64,
    /// `bus.drop-rate` at or above which `raise-subscriber-queue` enters,
    /// and under which it leaves.
    drop_enter: f64,
    drop_exit: f64,
    /// Ticks a condition must hold in a row.
    dwell_ticks: u32,
    /// After a knob changed, how long its rules wait.
    cooldown_ms: i64,
    /// Window samples for full confidence.
    full_samples: f64,
}

fn number(key: &str, default: f64) -> f64 {
    config::get(key).ok().flatten().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

fn settings() -> Settings {
    static READ: Mutex<Option<Settings>> = Mutex::new(None);
    let mut read = READ.lock().unwrap_or_else(|e| e.into_inner());
    *read.get_or_insert_with(|| Settings {
        timeout_enter: number("timeout-enter", 0.8),
        timeout_exit: number("timeout-exit", 0.6),
        fault_enter: number("fault-enter", 0.05),
        busy_enter: number("busy-enter", 0.1),
        busy_exit: number("busy-exit", 0.02),
        drop_enter: number("drop-enter", 0.01),
        drop_exit: number("drop-exit", 0.001),
        dwell_ticks: number("dwell-ticks", 3.0).max(1.0) as u32,
        cooldown_ms: number("cooldown-ms", 30_000.0).max(0.0) as i64,
        full_samples: number("full-samples", 100.0).max(1.0),
    })
}

/// One rule's history on one knob.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Track {
    /// Ticks in a row its enter (while inactive) or exit (while active)
    /// condition held.
    streak: u32,
    /// The value it suggests while active, and the knob's value then.
    active: Option<(i64, i64)>,
    /// The knob's `changed-ms` it last saw (a new one starts a cooldown).
    seen_change: Option<i64>,
    /// No entry before this time (a cooldown after a change).
    quiet_until: i64,
}

/// Everything the engine remembers between ticks, by suggestion id.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct State {
    tracks: BTreeMap<String, Track>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> T {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(State::default))
}

/// What one rule reads of a tick for one knob.
struct Reading {
    /// The enter and exit conditions now.
    enter: bool,
    exit: bool,
    /// The value it would suggest entering now.
    value: i64,
    rationale: String,
    confidence: f64,
    evidence: Vec<Evidence>,
}

/// `v` rounded up onto the knob's grid (`min + k × step`) and clamped.
fn on_grid(knob: &Knob, v: f64) -> i64 {
    let step = knob.step.max(1);
    let k = ((v - knob.min as f64) / step as f64).ceil().max(0.0) as i64;
    knob.min.saturating_add(k.saturating_mul(step)).clamp(knob.min, knob.max)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The evidence's confidence: the share of a full sample, times how far
/// past the exit threshold towards certainty (`margin` in 0..1).
fn confidence(samples: u64, s: &Settings, margin: f64) -> f64 {
    let sampled = (samples as f64 / s.full_samples).min(1.0);
    round2((sampled * (0.5 + 0.5 * margin.clamp(0.0, 1.0))).clamp(0.0, 1.0))
}

fn raise_timeout(knob: &Knob, series: &Series, s: &Settings) -> Option<Reading> {
    let p95 = series.p95_ms?;
    let limit = knob.value.max(1) as f64;
    let ratio = p95 / limit;
    let p99 = series.p99_ms.unwrap_or(p95);
    let faults = series.fault_rate.unwrap_or(0.0);
    let timing_out = faults >= s.fault_enter && p99 / limit >= 0.95;
    let enter = ratio >= s.timeout_enter || timing_out;
    let exit = ratio < s.timeout_exit && faults < s.fault_enter / 5.0;
    let value = on_grid(knob, (limit * 1.5).max(p99 * 1.5));
    let margin = ((ratio - s.timeout_exit) / (1.0 - s.timeout_exit)).max(if timing_out { 1.0 } else { 0.0 });
    let rationale = format!(
        "tool `{}`: p95 latency {p95:.0} ms is {:.0}% of its timeout of {} ms (p99 {p99:.0} ms, {:.1}% faults); \
         raise timeout-ms to {value} before calls start timing out",
        series.name,
        ratio * 100.0,
        knob.value,
        faults * 100.0
    );
    let evidence = vec![
        Evidence {
            signal: format!("tool:{} p95-ms", series.name),
            value: round2(p95),
            threshold: round2(limit * s.timeout_enter),
        },
        Evidence {
            signal: format!("tool:{} fault-rate", series.name),
            value: round2(faults),
            threshold: s.fault_enter,
        },
    ];
    let confidence = confidence(series.window_samples, s, margin);
    Some(Reading { enter, exit, value, rationale, confidence, evidence })
}

fn restore_concurrency(knob: &Knob, series: &Series, s: &Settings) -> Option<Reading> {
    let busy = series.busy_rate?;
    let enter = busy >= s.busy_enter && knob.value < knob.default_value;
    let exit = busy < s.busy_exit || knob.value >= knob.default_value;
    let value = on_grid(knob, (knob.value.saturating_mul(2)).min(knob.default_value) as f64);
    let rationale = format!(
        "tool `{}`: {:.0}% of calls found all {} slots taken; give back slots towards the manifest's {}",
        series.name,
        busy * 100.0,
        knob.value,
        knob.default_value
    );
    let evidence = vec![Evidence {
        signal: format!("tool:{} busy-rate", series.name),
        value: round2(busy),
        threshold: s.busy_enter,
    }];
    let margin = (busy - s.busy_exit) / (1.0 - s.busy_exit);
    Some(Reading { enter, exit, value, rationale, confidence: confidence(series.samples, s, margin), evidence })
}

/// The series a component knob acts on (`tool:<name>`), in this tick.
fn series_of<'a>(knob: &Knob, features: &'a Features) -> Option<&'a Series> {
    let (kind, name) = match knob.series.as_deref()?.split_once(':')? {
        ("tool", name) => (SeriesKind::Tool, name),
        ("route", name) => (SeriesKind::Route, name),
        _ => return None,
    };
    features.series.iter().find(|x| x.kind == kind && x.name == name)
}

fn raise_request_timeout(knob: &Knob, features: &Features, s: &Settings) -> Option<Reading> {
    // The slowest route with enough samples for its quantiles.
    let slowest = features
        .series
        .iter()
        .filter(|x| x.kind == SeriesKind::Route)
        .filter_map(|x| Some((x, x.p99_ms?)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let (route, p99) = slowest;
    let limit = knob.value.max(1) as f64;
    let ratio = p99 / limit;
    let value = on_grid(knob, (limit * 1.5).max(p99 * 1.5));
    let rationale = format!(
        "route `{}`: p99 latency {p99:.0} ms is {:.0}% of the HTTP request timeout of {} ms; \
         raise http.request-timeout-ms to {value} before requests start timing out",
        route.name,
        ratio * 100.0,
        knob.value
    );
    let evidence = vec![Evidence {
        signal: format!("route:{} p99-ms", route.name),
        value: round2(p99),
        threshold: round2(limit * s.timeout_enter),
    }];
    let margin = (ratio - s.timeout_exit) / (1.0 - s.timeout_exit);
    Some(Reading {
        enter: ratio >= s.timeout_enter,
        exit: ratio < s.timeout_exit,
        value,
        rationale,
        confidence: confidence(route.window_samples, s, margin),
        evidence,
    })
}

fn raise_subscriber_queue(knob: &Knob, features: &Features, s: &Settings) -> Option<Reading> {
    let drops = features.gauges.iter().find(|g| g.name == "bus.drop-rate")?.value;
    let value = on_grid(knob, knob.value.saturating_mul(2) as f64);
    let rationale = format!(
        "the bus dropped {:.1}% of recent events for full subscriber queues of {} events; \
         deepen bus.subscriber-queue to {value}",
        drops * 100.0,
        knob.value
    );
    let evidence = vec![Evidence { signal: "bus.drop-rate".into(), value: round2(drops), threshold: s.drop_enter }];
    // A decayed share has no sample count: the confidence is the margin's.
    let margin = (drops - s.drop_exit) / (s.drop_enter * 10.0 - s.drop_exit).max(f64::EPSILON);
    Some(Reading {
        enter: drops >= s.drop_enter && knob.value < knob.max,
        exit: drops < s.drop_exit,
        value,
        rationale,
        confidence: confidence(u64::MAX, s, margin),
        evidence,
    })
}

/// The rules, by knob: its name's last segment for a component's, its
/// whole name for the host's.
fn rule_of(knob: &Knob) -> Option<(&'static str, Rule)> {
    if knob.owner == "host" {
        return match knob.name.as_str() {
            "http.request-timeout-ms" => Some(("raise-request-timeout", raise_request_timeout)),
            "bus.subscriber-queue" => Some(("raise-subscriber-queue", raise_subscriber_queue)),
            _ => None,
        };
    }
    match knob.name.rsplit('.').next()? {
        "timeout-ms" => Some(("raise-timeout", |k, f, s| raise_timeout(k, series_of(k, f)?, s))),
        "concurrency" => Some(("restore-concurrency", |k, f, s| restore_concurrency(k, series_of(k, f)?, s))),
        _ => None,
    }
}

/// One tick of one rule on one knob: move its history, and say what it
/// suggests now.
fn step(track: &mut Track, knob: &Knob, reading: Option<Reading>, now: i64, s: &Settings) -> Option<Reading> {
    if knob.changed_ms.is_some() && knob.changed_ms != track.seen_change {
        // The knob moved (an apply, a rollback): what was suggested is
        // spent; wait out the cooldown before suggesting again.
        track.seen_change = knob.changed_ms;
        track.quiet_until = knob.changed_ms.unwrap_or(now).saturating_add(s.cooldown_ms);
        track.active = None;
        track.streak = 0;
    }
    let reading = reading?;
    match track.active {
        None => {
            track.streak = if reading.enter && now >= track.quiet_until { track.streak + 1 } else { 0 };
            if track.streak < s.dwell_ticks || reading.value == knob.value {
                return None;
            }
            track.active = Some((reading.value, knob.value));
            track.streak = 0;
        }
        Some(_) => {
            track.streak = if reading.exit { track.streak + 1 } else { 0 };
            if track.streak >= s.dwell_ticks {
                track.active = None;
                track.streak = 0;
                return None;
            }
        }
    }
    let (value, _) = track.active?;
    Some(Reading { value, ..reading })
}

struct Engine;

impl Guest for Engine {
    fn evaluate(features: Features) -> Result<Vec<Suggestion>, String> {
        let s = settings();
        with_state(|state| {
            let mut out = Vec::new();
            let mut live = std::collections::BTreeSet::new();
            for knob in &features.knobs {
                if knob.mode == "off" {
                    continue;
                }
                let Some((rule, read)) = rule_of(knob) else { continue };
                let id = format!("{rule}:{}", knob.owner);
                live.insert(id.clone());
                let reading = read(knob, &features, &s);
                let track = state.tracks.entry(id.clone()).or_default();
                if let Some(r) = step(track, knob, reading, features.now_ms, &s) {
                    out.push(Suggestion {
                        id,
                        knob: knob.name.clone(),
                        value: r.value,
                        rationale: r.rationale,
                        confidence: r.confidence,
                        evidence: r.evidence,
                    });
                }
            }
            // Knobs that went away (a component removed) take their
            // histories with them: the state stays bounded by the knobs.
            state.tracks.retain(|id, _| live.contains(id));
            Ok(out)
        })
    }
}

impl exports::arw::host::lifecycle::Guest for Engine {
    /// Not called: each `evaluate` is the engine's tick.
    fn tick() -> Result<(), String> {
        Ok(())
    }

    fn snapshot() -> Result<Vec<u8>, String> {
        with_state(|state| serde_json::to_vec(state).map_err(|e| e.to_string()))
    }

    fn restore(bytes: Vec<u8>) -> Result<(), String> {
        let restored: State =
            serde_json::from_slice(&bytes).map_err(|e| format!("not an arw:feedback snapshot: {e}"))?;
        with_state(|state| *state = restored);
        Ok(())
    }
}

export!(Engine);
