//! From the request path to the estimators without a lock: an entry point
//! records an [`Observation`] into a bounded lock-free queue (one
//! `try_send`, nothing allocated); whoever reads the signals collects the
//! queue into the per-series estimators first. A full queue drops the
//! observation and counts it: a request never waits for the measurements.
//!
//! The series are bounded too: past `max-series` distinct names, new ones
//! are counted in one overflow series (so a scan of random paths or tool
//! names cannot grow the map).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::{ErrorRates, Ewma, Outcome, WindowedQuantiles};

/// What the estimators are tuned by (`[signals]`, `docs/feedback.md`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SignalsConfig {
    /// Measure at all (off: nothing is recorded, the feedback engine sees
    /// no series).
    pub enabled: bool,
    /// The EWMA's time constant.
    pub tau_ms: u64,
    /// The error rates' half-life.
    pub half_life_ms: u64,
    /// Requests seen before an error rate is reported.
    pub min_samples: u64,
    /// The quantiles' window (they answer from the last complete one until
    /// the current one has `min_samples`).
    pub window_ms: u64,
    /// Distinct series kept; the rest share one overflow series.
    pub max_series: usize,
    /// Observations waiting to be collected; past it they are dropped
    /// (and counted).
    pub queue: usize,
}

impl SignalsConfig {
    /// Refuse values the estimators cannot work with.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("signals.tau-ms", self.tau_ms),
            ("signals.half-life-ms", self.half_life_ms),
            ("signals.window-ms", self.window_ms),
            ("signals.max-series", self.max_series as u64),
            ("signals.queue", self.queue as u64),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be greater than zero"));
        }
        if self.max_series > 100_000 || self.queue > 16 << 20 {
            return Err("signals.max-series is at most 100000 and signals.queue at most 16777216".into());
        }
        Ok(())
    }
}

impl Default for SignalsConfig {
    fn default() -> Self {
        SignalsConfig {
            enabled: true,
            tau_ms: 5_000,
            half_life_ms: 30_000,
            min_samples: 20,
            window_ms: 10_000,
            max_series: 1_024,
            queue: 65_536,
        }
    }
}

/// What is measured: an HTTP route (by its gating key, a template, never
/// the raw path) or a tool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Series {
    Route(&'static str),
    Tool(Arc<str>),
    /// Every series past `max-series`.
    Overflow,
}

/// One request's measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub series: Series,
    pub latency_us: u64,
    pub outcome: Outcome,
    /// On the recorder's clock (milliseconds since it was made, or any
    /// monotonic scale, as long as it is the same for every observation).
    pub at_ms: u64,
}

/// One series' estimators.
#[derive(Debug, Clone)]
struct SeriesSignals {
    latency_ms: Ewma,
    errors: ErrorRates,
    quantiles: WindowedQuantiles,
}

/// One series as read.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SeriesView {
    /// `route`, `tool` or `overflow`.
    pub kind: &'static str,
    pub name: String,
    pub samples: u64,
    pub ewma_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Samples the quantiles rest on (the answering window's).
    pub window_samples: u64,
    pub fault_rate: Option<f64>,
    pub client_error_rate: Option<f64>,
    pub busy_rate: Option<f64>,
}

/// The recorder: the queue and the estimators behind it.
#[derive(Debug)]
pub struct Recorder {
    config: SignalsConfig,
    tx: crossbeam_channel::Sender<Observation>,
    rx: crossbeam_channel::Receiver<Observation>,
    dropped: AtomicU64,
    /// The clock of [`Recorder::now_ms`].
    epoch: std::time::Instant,
    /// Only collection and reads take it, never the request path.
    series: Mutex<HashMap<Series, SeriesSignals>>,
    gauges: super::Gauges,
}

impl Recorder {
    pub fn new(config: SignalsConfig) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(config.queue.max(1));
        Recorder {
            config,
            tx,
            rx,
            dropped: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            series: Mutex::new(HashMap::new()),
            gauges: super::Gauges::default(),
        }
    }

    /// The gauges other units report ([`super::gauges`]).
    pub fn gauges(&self) -> &super::Gauges {
        &self.gauges
    }

    /// Milliseconds since the recorder was made: the clock the entry points
    /// record on.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Record what one request to `series` came to, now.
    pub fn observe(&self, series: Series, latency: std::time::Duration, outcome: Outcome) {
        if !self.config.enabled {
            return;
        }
        let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.record(Observation { series, latency_us, outcome, at_ms: self.now_ms() });
    }

    /// The estimators' settings.
    pub fn config(&self) -> &SignalsConfig {
        &self.config
    }

    /// Record one observation: lock-free, never blocks; dropped (and
    /// counted) when the queue is full.
    pub fn record(&self, observation: Observation) {
        if self.tx.try_send(observation).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Observations dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Move every queued observation into the estimators; how many.
    pub fn collect(&self) -> usize {
        let mut series = self.series.lock();
        let mut n = 0;
        while let Ok(o) = self.rx.try_recv() {
            n += 1;
            let key = if series.contains_key(&o.series) || series.len() + 1 < self.config.max_series.max(1) {
                o.series
            } else {
                Series::Overflow
            };
            let c = &self.config;
            let signals = series.entry(key).or_insert_with(|| SeriesSignals {
                latency_ms: Ewma::new(c.tau_ms),
                errors: ErrorRates::new(c.half_life_ms, c.min_samples),
                quantiles: WindowedQuantiles::new(c.window_ms, c.min_samples),
            });
            let ms = o.latency_us as f64 / 1_000.0;
            signals.latency_ms.observe(ms, o.at_ms);
            signals.errors.observe(o.outcome, o.at_ms);
            signals.quantiles.observe(ms, o.at_ms);
        }
        n
    }

    /// Every series, after collecting, sorted by kind and name.
    pub fn snapshot(&self) -> Vec<SeriesView> {
        self.collect();
        let series = self.series.lock();
        let mut views: Vec<SeriesView> = series
            .iter()
            .map(|(key, s)| {
                let (kind, name) = match key {
                    Series::Route(r) => ("route", r.to_string()),
                    Series::Tool(t) => ("tool", t.to_string()),
                    Series::Overflow => ("overflow", String::new()),
                };
                let quantiles = s.quantiles.estimate();
                SeriesView {
                    kind,
                    name,
                    samples: s.errors.seen(),
                    ewma_ms: s.latency_ms.value(),
                    p50_ms: quantiles.map(|q| q.0),
                    p95_ms: quantiles.map(|q| q.1),
                    p99_ms: quantiles.map(|q| q.2),
                    window_samples: quantiles.map_or(0, |q| q.3),
                    fault_rate: s.errors.fault_rate(),
                    client_error_rate: s.errors.client_error_rate(),
                    busy_rate: s.errors.busy_rate(),
                }
            })
            .collect();
        views.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        views
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, latency_us: u64, outcome: Outcome, at_ms: u64) -> Observation {
        Observation { series: Series::Tool(Arc::from(name)), latency_us, outcome, at_ms }
    }

    /// 8 threads record 5 000 observations each on 4 series while another
    /// collects: every observation is counted exactly once, in its series.
    #[test]
    fn concurrent_records_are_each_counted_once() {
        let recorder = Arc::new(Recorder::new(SignalsConfig { queue: 1 << 16, ..SignalsConfig::default() }));
        let writers: Vec<_> = (0..8u64)
            .map(|w| {
                let recorder = recorder.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000u64 {
                        let name = ["a", "b", "c", "d"][(i % 4) as usize];
                        let outcome = if i % 10 == 0 { Outcome::Fault } else { Outcome::Ok };
                        recorder.record(tool(name, 1_000 + w, outcome, i));
                    }
                })
            })
            .collect();
        let collector = {
            let recorder = recorder.clone();
            std::thread::spawn(move || (0..200).map(|_| recorder.collect()).sum::<usize>())
        };
        for w in writers {
            w.join().unwrap_or_else(|_| panic!("a writer panicked"));
        }
        let collected = collector.join().unwrap_or_else(|_| panic!("the collector panicked")) + recorder.collect();
        assert_eq!(recorder.dropped(), 0);
        assert_eq!(collected, 40_000);
        let views = recorder.snapshot();
        assert_eq!(
            views.iter().map(|v| (v.name.as_str(), v.samples)).collect::<Vec<_>>(),
            [("a", 10_000), ("b", 10_000), ("c", 10_000), ("d", 10_000)]
        );
        for v in &views {
            let faults = v.fault_rate.unwrap_or(f64::NAN);
            // Series a and c get every 10th (i ≡ 0, 20, ... hits a; i ≡ 10, 30 hits c).
            let expected = if v.name == "a" || v.name == "c" { 0.2 } else { 0.0 };
            assert!((faults - expected).abs() < 0.05, "{}: {faults}", v.name);
            let p50 = v.p50_ms.unwrap_or(f64::NAN);
            assert!((1.0..=1.008).contains(&p50), "{}: p50 {p50} ms", v.name);
        }
    }

    /// A full queue drops, counts what it dropped, and never blocks.
    #[test]
    fn a_full_queue_drops_and_counts() {
        let recorder = Recorder::new(SignalsConfig { queue: 100, ..SignalsConfig::default() });
        for i in 0..250 {
            recorder.record(tool("t", 10, Outcome::Ok, i));
        }
        assert_eq!(recorder.dropped(), 150);
        assert_eq!(recorder.collect(), 100);
        recorder.record(tool("t", 10, Outcome::Ok, 300));
        assert_eq!((recorder.collect(), recorder.dropped()), (1, 150));
    }

    /// Past `max-series` names, new ones share the overflow series; the
    /// counts still add up.
    #[test]
    fn series_are_capped_with_one_overflow_bucket() {
        let recorder = Recorder::new(SignalsConfig { max_series: 10, ..SignalsConfig::default() });
        for i in 0..500u64 {
            recorder.record(tool(&format!("random-{i}"), 10, Outcome::ClientError, i));
        }
        recorder.record(Observation {
            series: Series::Route("tools:invoke"),
            latency_us: 5,
            outcome: Outcome::Ok,
            at_ms: 1,
        });
        let views = recorder.snapshot();
        assert_eq!(views.len(), 10, "{views:?}");
        let overflow = views.iter().find(|v| v.kind == "overflow").map_or(0, |v| v.samples);
        assert_eq!(views.iter().map(|v| v.samples).sum::<u64>(), 501);
        assert_eq!(overflow, 501 - 9);
    }
}
