//! The knob registry: every setting the feedback engine may suggest a
//! value for, with its type, bounds, step and owner, read from what the
//! host runs now; and how a value is put in force.
//!
//! | knob | owner | bounds | step | in force |
//! |---|---|---|---|---|
//! | `component.<id>.timeout-ms` | the component | 10 ms to the host's `limits.max-timeout-ms` | 10 | the next entry's deadline |
//! | `component.<id>.concurrency` | the component | 1 to its manifest's `limits.concurrency` | 1 | slots added at once, or taken back as running calls end |
//! | `component.<id>.pool-size` | the component (a `[pooled]` tool) | 1 to its manifest's `limits.concurrency` | 1 | idle instances over it dropped at once; calls make the rest |
//! | `http.request-timeout-ms` | `host` | 1 s to 10 min (or the config's value, if higher) | 1000 | the next request |
//! | `http.admin-rate-per-minute` | `host` | 1 to 10 × the config's value (at least 600) | 1 | the next admin request (the rate buckets start full) |
//! | `bus.subscriber-queue` | `host` | 16 to 65 536 (or the config's value, if higher) | 16 | the next delivery, for every subscription |
//! | `quota.<namespace>.<budget>.limit` | `host` | 1 to 10 × the consumer's limit (at least 1000) | 1 | the next consume of any of its buckets (a gate's budget: its next check) |
//!
//! A component's knobs exist while it is loaded and is a tool (their calls
//! are what the signals measure); the host's always exist.

use std::sync::Arc;

use serde::Serialize;

use crate::capabilities::bus::MAX_SUBSCRIBER_QUEUE;
use crate::runtime::Runtime;
use crate::runtime::component::LoadedComponent;

/// What a knob tunes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KnobKind {
    /// A tool's per-entry deadline.
    TimeoutMs,
    /// A tool's calls at once.
    Concurrency,
    /// A `[pooled]` tool's idle instances kept.
    PoolSize,
    /// The HTTP server's time to a response's head.
    RequestTimeoutMs,
    /// Admin requests per minute, per token and per client address.
    AdminRatePerMinute,
    /// Events queued per bus subscriber.
    SubscriberQueue,
    /// The limit of a budget counted by the quota capability (a gate's
    /// budget: arw:gating's contract id is its name).
    BudgetLimit,
}

impl KnobKind {
    /// The knobs each component (tool) has, named `component.<id>.<suffix>`.
    const OF_COMPONENT: [KnobKind; 3] = [KnobKind::TimeoutMs, KnobKind::Concurrency, KnobKind::PoolSize];
    /// The host's own knobs, by their whole name.
    const OF_HOST: [KnobKind; 3] =
        [KnobKind::RequestTimeoutMs, KnobKind::AdminRatePerMinute, KnobKind::SubscriberQueue];

    /// A component knob's last segment, or a host knob's whole name.
    fn name(self) -> &'static str {
        match self {
            KnobKind::TimeoutMs => "timeout-ms",
            KnobKind::Concurrency => "concurrency",
            KnobKind::PoolSize => "pool-size",
            KnobKind::RequestTimeoutMs => "http.request-timeout-ms",
            KnobKind::AdminRatePerMinute => "http.admin-rate-per-minute",
            KnobKind::SubscriberQueue => "bus.subscriber-queue",
            KnobKind::BudgetLimit => "quota.<namespace>.<budget>.limit",
        }
    }
}

/// The owner of the host's own knobs.
pub const HOST: &str = "host";

/// One knob as it stands now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Knob {
    pub name: String,
    pub kind: KnobKind,
    /// The component it tunes, or `host`.
    pub owner: String,
    /// The signal series it acts on (`tool:<name>`), when it is one.
    pub series: Option<String>,
    pub value: i64,
    /// Its value with nothing applied (the manifest's, the config's).
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

/// What a knob name points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A component's knob: its id and kind.
    Component(&'a str, KnobKind),
    /// One of the host's own.
    Host(KnobKind),
    /// A budget's limit, by its whole knob name.
    Budget(&'a str),
}

impl<'a> Target<'a> {
    /// The knob's owner: the component id, or `host`.
    pub fn owner(&self) -> &'a str {
        match self {
            Target::Component(id, _) => id,
            Target::Host(_) | Target::Budget(_) => HOST,
        }
    }
}

/// The name of a component's knob of `kind`.
pub fn name(component: &str, kind: KnobKind) -> String {
    format!("component.{component}.{}", kind.name())
}

/// What a knob name means, if it is one.
pub fn parse(knob: &str) -> Option<Target<'_>> {
    if let Some(kind) = KnobKind::OF_HOST.into_iter().find(|k| k.name() == knob) {
        return Some(Target::Host(kind));
    }
    if let Some(budget) = knob.strip_prefix("quota.").and_then(|rest| rest.strip_suffix(".limit")) {
        // `<namespace>.<budget>`, both non-empty.
        return budget.split_once('.').filter(|(ns, b)| !ns.is_empty() && !b.is_empty()).map(|_| Target::Budget(knob));
    }
    let rest = knob.strip_prefix("component.")?;
    let (component, suffix) = rest.rsplit_once('.')?;
    let kind = KnobKind::OF_COMPONENT.into_iter().find(|k| k.name() == suffix)?;
    Some(Target::Component(component, kind))
}

/// The knob names, for messages that list them.
pub const NAMES: &str = "`component.<id>.timeout-ms`, `component.<id>.concurrency`, `component.<id>.pool-size`, \
                         `http.request-timeout-ms`, `http.admin-rate-per-minute`, `bus.subscriber-queue` and \
                         `quota.<namespace>.<budget>.limit`";

fn int<T: TryInto<i64>>(value: T) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// A knob's bounds, its grid (`min + k × step`) and its unit.
struct Grid {
    min: i64,
    max: i64,
    step: i64,
    unit: &'static str,
}

const fn grid(min: i64, max: i64, step: i64, unit: &'static str) -> Grid {
    Grid { min, max, step, unit }
}

impl Knob {
    /// `(value, default_value)` on `grid` (a maximum under the minimum is
    /// raised to it).
    fn new(name: String, kind: KnobKind, owner: &str, series: Option<String>, values: (i64, i64), grid: Grid) -> Knob {
        let (value, default_value) = values;
        let Grid { min, max, step, unit } = grid;
        Knob { name, kind, owner: owner.to_string(), series, value, default_value, min, max: max.max(min), step, unit }
    }
}

/// The knobs of one loaded version (a tool's; none for other roles).
pub(crate) fn of_component(runtime: &Runtime, component: &LoadedComponent) -> Vec<Knob> {
    let Some(tool) = component.tool() else { return Vec::new() };
    let limits = &component.manifest.limits;
    let series = Some(format!("tool:{}", tool.name));
    let id = component.id();
    let knob = |kind, values, grid| Knob::new(name(id, kind), kind, id, series.clone(), values, grid);
    let concurrency = int(limits.concurrency.max(1));
    let mut knobs = vec![
        knob(
            KnobKind::TimeoutMs,
            (int(component.timeout().as_millis()), int(limits.timeout_ms)),
            grid(10, int(runtime.config.limits.max_timeout_ms), 10, "ms"),
        ),
        knob(
            KnobKind::Concurrency,
            (int(component.concurrency()), int(limits.concurrency)),
            grid(1, concurrency, 1, "calls"),
        ),
    ];
    if let (Some(size), Some(pooled)) = (component.pool_size(), &component.manifest.pooled) {
        knobs.push(knob(KnobKind::PoolSize, (int(size), int(pooled.size)), grid(1, concurrency, 1, "instances")));
    }
    knobs
}

/// The host's own knobs, then one per budget the quota capability counts.
pub(crate) fn of_host(runtime: &Runtime) -> Vec<Knob> {
    let http = &runtime.config.http;
    let tuning = runtime.tunings.host();
    let bus = &runtime.capabilities.bus;
    let knob = |kind: KnobKind, values, grid| Knob::new(kind.name().to_string(), kind, HOST, None, values, grid);
    let timeout = int(http.request_timeout_ms);
    let rate = int(http.admin_rate_per_minute);
    let queue = int(bus.config().subscriber_queue);
    let mut knobs = vec![
        knob(
            KnobKind::RequestTimeoutMs,
            (tuning.request_timeout_ms().map_or(timeout, int), timeout),
            grid(1_000, timeout.max(600_000), 1_000, "ms"),
        ),
        knob(
            KnobKind::AdminRatePerMinute,
            (tuning.admin_rate_per_minute().map_or(rate, int), rate),
            grid(1, rate.saturating_mul(10).max(600), 1, "requests/min"),
        ),
        knob(
            KnobKind::SubscriberQueue,
            (int(bus.subscriber_queue()), queue),
            grid(16, queue.max(int(MAX_SUBSCRIBER_QUEUE)), 16, "events"),
        ),
    ];
    // Each budget by the limit its consumer asks.
    knobs.extend(runtime.capabilities.quota.budgets().list().into_iter().map(|budget| {
        let asked = int(budget.limit.asked);
        Knob::new(
            budget.knob(),
            KnobKind::BudgetLimit,
            HOST,
            None,
            (budget.limit.applied.map_or(asked, int), asked),
            grid(1, asked.saturating_mul(10).max(1_000), 1, "per window"),
        )
    }));
    knobs
}

/// Put `value` (`None`: the default) in force on the knob `target`
/// (`active`: its component's version now, if it is loaded). The caller
/// checked it against the knob's bounds.
pub(crate) fn set(runtime: &Runtime, target: Target<'_>, active: Option<&Arc<LoadedComponent>>, value: Option<i64>) {
    match target {
        Target::Component(component, kind) => {
            let tuning = runtime.tunings.of(component);
            let small = value.and_then(|v| u32::try_from(v).ok());
            match kind {
                KnobKind::TimeoutMs => tuning.set_timeout_ms(value.and_then(|v| u64::try_from(v).ok())),
                KnobKind::Concurrency => tuning.set_concurrency(small),
                KnobKind::PoolSize => tuning.set_pool_size(small),
                // Not a component's (`parse` never gives these).
                KnobKind::RequestTimeoutMs
                | KnobKind::AdminRatePerMinute
                | KnobKind::SubscriberQueue
                | KnobKind::BudgetLimit => return,
            }
            if let Some(active) = active {
                active.retune();
            }
        }
        Target::Host(kind) => {
            let tuning = runtime.tunings.host();
            match kind {
                KnobKind::RequestTimeoutMs => {
                    tuning.set_request_timeout_ms(value.and_then(|v| u64::try_from(v).ok()));
                }
                KnobKind::AdminRatePerMinute => {
                    tuning.set_admin_rate_per_minute(value.and_then(|v| u32::try_from(v).ok()));
                }
                KnobKind::SubscriberQueue => {
                    runtime.capabilities.bus.set_subscriber_queue(value.and_then(|v| usize::try_from(v).ok()));
                }
                KnobKind::TimeoutMs | KnobKind::Concurrency | KnobKind::PoolSize | KnobKind::BudgetLimit => {}
            }
        }
        Target::Budget(knob) => {
            runtime.capabilities.quota.budgets().apply(knob, value.and_then(|v| u64::try_from(v).ok()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_knob_name_parses_back_to_its_target() {
        for kind in KnobKind::OF_COMPONENT {
            let knob = name("arw:text-stats", kind);
            assert_eq!(parse(&knob), Some(Target::Component("arw:text-stats", kind)), "{knob}");
            assert!(NAMES.contains(&format!("component.<id>.{}", kind.name())), "{knob} is listed in NAMES");
        }
        for kind in KnobKind::OF_HOST {
            assert_eq!(parse(kind.name()), Some(Target::Host(kind)));
            assert!(NAMES.contains(kind.name()), "{} is listed in NAMES", kind.name());
        }
        // A component id with dots keeps them; unknown suffixes and bare
        // host-like names are no knobs.
        assert_eq!(parse("component.a.b.timeout-ms"), Some(Target::Component("a.b", KnobKind::TimeoutMs)));
        assert_eq!(parse("quota.gating.five.limit"), Some(Target::Budget("quota.gating.five.limit")));
        assert!(NAMES.contains(KnobKind::BudgetLimit.name()));
        for no in [
            "component.x.memory",
            "http.request-timeout",
            "bus.subscriber-queue.x",
            "component.timeout-ms",
            "quota.gating.limit",
            "quota..five.limit",
            "quota.gating..limit",
            "",
        ] {
            assert_eq!(parse(no), None, "{no}");
        }
    }
}
