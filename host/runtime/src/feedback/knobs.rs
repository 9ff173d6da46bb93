//! The knob registry: every setting the feedback engine may suggest a
//! value for, with its type, bounds, step and owner, read from what the
//! host runs now; and how a value is put in force.
//!
//! | knob | owner | bounds | step | in force |
//! |---|---|---|---|---|
//! | `component.<id>.timeout-ms` | the component | 10 ms to the host's `limits.max-timeout-ms` | 10 | the next entry's deadline |
//! | `component.<id>.concurrency` | the component | 1 to its manifest's `limits.concurrency` | 1 | slots added at once, or taken back as running calls end |
//!
//! Only tools have these knobs (their calls are what the signals measure).

use std::sync::Arc;

use serde::Serialize;

use crate::runtime::Runtime;
use crate::runtime::component::LoadedComponent;

/// What a knob tunes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KnobKind {
    TimeoutMs,
    Concurrency,
}

impl KnobKind {
    fn suffix(self) -> &'static str {
        match self {
            KnobKind::TimeoutMs => "timeout-ms",
            KnobKind::Concurrency => "concurrency",
        }
    }

    const ALL: [KnobKind; 2] = [KnobKind::TimeoutMs, KnobKind::Concurrency];
}

/// One knob as it stands now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Knob {
    pub name: String,
    pub kind: KnobKind,
    /// The component it tunes.
    pub owner: String,
    /// The signal series it acts on (`tool:<name>`).
    pub series: Option<String>,
    pub value: i64,
    /// Its value with nothing applied (the manifest's).
    pub default_value: i64,
    pub min: i64,
    pub max: i64,
    pub step: i64,
    pub unit: &'static str,
}

impl Knob {
    /// Why `value` cannot be put in force, if it cannot.
    pub fn refuses(&self, value: i64) -> Option<String> {
        if value < self.min || value > self.max {
            return Some(format!("{value} is outside `{}`'s bounds {}..={}", self.name, self.min, self.max));
        }
        if (value - self.min) % self.step.max(1) != 0 {
            return Some(format!("{value} is not on `{}`'s step of {} from {}", self.name, self.step, self.min));
        }
        None
    }
}

/// The name of a component's knob of `kind`.
pub fn name(component: &str, kind: KnobKind) -> String {
    format!("component.{component}.{}", kind.suffix())
}

/// The component and kind a knob name means.
pub fn parse(knob: &str) -> Option<(&str, KnobKind)> {
    let rest = knob.strip_prefix("component.")?;
    let (component, suffix) = rest.rsplit_once('.')?;
    let kind = KnobKind::ALL.into_iter().find(|k| k.suffix() == suffix)?;
    Some((component, kind))
}

/// The knobs of one loaded version (a tool's; none for other roles).
pub(crate) fn of_component(runtime: &Runtime, component: &LoadedComponent) -> Vec<Knob> {
    let Some(tool) = component.tool() else { return Vec::new() };
    let limits = &component.manifest.limits;
    let series = Some(format!("tool:{}", tool.name));
    let id = component.id();
    vec![
        Knob {
            name: name(id, KnobKind::TimeoutMs),
            kind: KnobKind::TimeoutMs,
            owner: id.to_string(),
            series: series.clone(),
            value: i64::try_from(component.timeout().as_millis()).unwrap_or(i64::MAX),
            default_value: i64::try_from(limits.timeout_ms).unwrap_or(i64::MAX),
            min: 10,
            max: i64::try_from(runtime.config.limits.max_timeout_ms).unwrap_or(i64::MAX).max(10),
            step: 10,
            unit: "ms",
        },
        Knob {
            name: name(id, KnobKind::Concurrency),
            kind: KnobKind::Concurrency,
            owner: id.to_string(),
            series,
            value: i64::from(component.concurrency()),
            default_value: i64::from(limits.concurrency),
            min: 1,
            max: i64::from(limits.concurrency.max(1)),
            step: 1,
            unit: "calls",
        },
    ]
}

/// Put `value` (`None`: the default) in force on `component`'s knob of
/// `kind`. The caller checked it against the knob's bounds.
pub(crate) fn set(
    runtime: &Runtime,
    component: &str,
    active: Option<&Arc<LoadedComponent>>,
    kind: KnobKind,
    value: Option<i64>,
) {
    let tuning = runtime.tunings.of(component);
    match kind {
        KnobKind::TimeoutMs => tuning.set_timeout_ms(value.and_then(|v| u64::try_from(v).ok())),
        KnobKind::Concurrency => {
            tuning.set_concurrency(value.and_then(|v| u32::try_from(v).ok()));
            if let Some(active) = active {
                active.retune();
            }
        }
    }
}
