//! Signals: what the host measures for the feedback engine
//! (`docs/feedback.md`, issue 13). The host measures, a feedback
//! component decides, the host applies under Cedar.
//!
//! This module holds the estimators, each O(1) per observation with a
//! fixed amount of memory, driven by an explicit clock (milliseconds on a
//! monotonic scale the caller chooses) so tests need no sleeps:
//!
//! - [`ewma`]: a time-aware exponentially weighted moving average
//!   (`α = 1 − exp(−Δt/τ)`), seeded by its first sample;
//! - [`decay`]: counts that halve every half-life, and the error rates
//!   made of them (faults and 5xx apart from 4xx), usable only after a
//!   minimum number of samples;
//! - [`quantile`]: the P² algorithm (Jain & Chlamtac, 1985) for p50, p95
//!   and p99 without storing samples, in rotating windows so an estimate
//!   follows a change;
//! - [`recorder`]: how entry points hand observations over without a lock
//!   (a bounded lock-free queue, drained into bounded per-series state);
//! - [`gauges`]: levels other units report (the hook for download stalls
//!   and other gauges the host does not measure itself).

pub mod decay;
pub mod ewma;
pub mod gauges;
pub mod quantile;
pub mod recorder;

pub use decay::{DecayedCount, ErrorRates, Outcome};
pub use ewma::Ewma;
pub use gauges::{Gauge, GaugeRefused, Gauges};
pub use quantile::{P2, Quantiles, WindowedQuantiles};
pub use recorder::{Observation, Recorder, Series, SeriesView, SignalsConfig};
