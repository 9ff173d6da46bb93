//! Levels that other units report for the feedback engine: the hook for
//! gauges the host does not measure itself (the models unit's download
//! stalls, `download.stall-rate`, once it lands; a queue backend's
//! backlog).
//!
//! A unit sets its gauge whenever its level changes (a lock held for one
//! map write; never on a request's hot path) and each feedback tick reads
//! every gauge beside the host's own (`pool.slots`, `memory.in-use-bytes`,
//! `process.rss-bytes`, `bus.drop-rate`, `bus.lag-rate`,
//! `signals.dropped`). Bounded: at most [`MAX_GAUGES`] names, each a
//! dotted name of at most [`MAX_NAME`] bytes; the host's own names are
//! refused.

use std::collections::BTreeMap;

use parking_lot::Mutex;

/// Gauges reported by units at most.
pub const MAX_GAUGES: usize = 64;
/// Longest gauge name.
pub const MAX_NAME: usize = 64;

/// The names of the gauges the host measures itself.
pub const HOST_GAUGES: [&str; 6] =
    ["pool.slots", "memory.in-use-bytes", "process.rss-bytes", "bus.drop-rate", "bus.lag-rate", "signals.dropped"];

/// Why a gauge was not set.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GaugeRefused {
    #[error("gauge name `{0}` must be 1-64 bytes of a-z, 0-9, `.` and `-`, with a `.` between two words")]
    Name(String),
    #[error("gauge `{0}` is one the host measures itself")]
    Reserved(String),
    #[error("gauge `{name}` is not a finite number ({value})")]
    NotFinite { name: String, value: f64 },
    #[error("{MAX_GAUGES} gauges are set already; clear one first")]
    Full,
}

/// One gauge as read at a tick.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Gauge {
    pub name: String,
    pub value: f64,
    pub limit: Option<f64>,
}

/// The gauges units report (see the module doc).
#[derive(Debug, Default)]
pub struct Gauges(Mutex<BTreeMap<String, (f64, Option<f64>)>>);

impl Gauges {
    /// Set gauge `name` to `value` (against `limit`, if it has one).
    pub fn set(&self, name: &str, value: f64, limit: Option<f64>) -> Result<(), GaugeRefused> {
        let well_formed = !name.is_empty()
            && name.len() <= MAX_NAME
            && name.contains('.')
            && name.split('.').all(|word| {
                !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        if !well_formed {
            return Err(GaugeRefused::Name(name.chars().take(MAX_NAME).collect()));
        }
        if HOST_GAUGES.contains(&name) {
            return Err(GaugeRefused::Reserved(name.into()));
        }
        if let Some(bad) = [Some(value), limit].into_iter().flatten().find(|v| !v.is_finite()) {
            return Err(GaugeRefused::NotFinite { name: name.into(), value: bad });
        }
        let mut gauges = self.0.lock();
        if gauges.len() >= MAX_GAUGES && !gauges.contains_key(name) {
            return Err(GaugeRefused::Full);
        }
        gauges.insert(name.to_string(), (value, limit));
        Ok(())
    }

    /// Forget gauge `name` (its unit stopped).
    pub fn clear(&self, name: &str) {
        self.0.lock().remove(name);
    }

    /// Every gauge set now, by name.
    pub fn read(&self) -> Vec<Gauge> {
        self.0
            .lock()
            .iter()
            .map(|(name, (value, limit))| Gauge { name: name.clone(), value: *value, limit: *limit })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_named_bounded_and_never_shadow_the_hosts() {
        let gauges = Gauges::default();
        gauges.set("download.stall-rate", 0.25, Some(1.0)).unwrap_or_else(|e| panic!("{e}"));
        gauges.set("download.stall-rate", 0.5, Some(1.0)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            gauges.read(),
            vec![Gauge { name: "download.stall-rate".into(), value: 0.5, limit: Some(1.0) }],
            "a gauge set twice is one gauge with its last value"
        );
        for bad in ["", "nodot", "Upper.case", "a..b", ".a", "a.", "a b.c", &"a.".repeat(40)] {
            assert!(matches!(gauges.set(bad, 1.0, None), Err(GaugeRefused::Name(_))), "{bad:?}");
        }
        for host in HOST_GAUGES {
            assert_eq!(gauges.set(host, 1.0, None), Err(GaugeRefused::Reserved(host.into())));
        }
        assert!(matches!(gauges.set("x.nan", f64::NAN, None), Err(GaugeRefused::NotFinite { .. })));
        assert!(matches!(gauges.set("x.inf", 1.0, Some(f64::INFINITY)), Err(GaugeRefused::NotFinite { .. })));
        for n in 1..MAX_GAUGES {
            gauges.set(&format!("unit.g{n}"), n as f64, None).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(gauges.read().len(), MAX_GAUGES);
        assert_eq!(gauges.set("unit.one-more", 1.0, None), Err(GaugeRefused::Full), "bounded at {MAX_GAUGES}");
        gauges.set("unit.g1", 9.0, None).unwrap_or_else(|e| panic!("an existing gauge can still be set: {e}"));
        gauges.clear("unit.g2");
        gauges.set("unit.one-more", 1.0, None).unwrap_or_else(|e| panic!("room after a clear: {e}"));
    }
}
