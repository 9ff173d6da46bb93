//! A time-aware EWMA: samples that arrive irregularly weigh by the time
//! since the previous one, so a burst of samples does not wash out the
//! history faster than the same samples spread out would.
//!
//! After a sample `x` at time `t`, `Δt` after the previous one:
//! `value ← value + α (x − value)` with `α = 1 − exp(−Δt/τ)`. The first
//! sample seeds the value (no bias towards zero). Two samples at the same
//! instant: the second weighs nothing (`α = 0`), which is the limit of the
//! formula; a clock that goes backwards is treated as `Δt = 0`.

/// An exponentially weighted moving average with time constant `tau_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ewma {
    tau_ms: f64,
    value: f64,
    last_ms: Option<u64>,
}

impl Ewma {
    /// `tau_ms`: after `tau_ms` a step change has moved the average by
    /// `1 − 1/e` (63%) of the step. Must be positive (a zero is taken as 1).
    pub fn new(tau_ms: u64) -> Self {
        Ewma { tau_ms: tau_ms.max(1) as f64, value: 0.0, last_ms: None }
    }

    /// Add sample `x` taken at `at_ms`.
    pub fn observe(&mut self, x: f64, at_ms: u64) {
        if !x.is_finite() {
            return;
        }
        match self.last_ms {
            None => self.value = x,
            Some(last) => {
                let dt = at_ms.saturating_sub(last) as f64;
                let alpha = 1.0 - (-dt / self.tau_ms).exp();
                self.value += alpha * (x - self.value);
            }
        }
        self.last_ms = Some(self.last_ms.map_or(at_ms, |last| last.max(at_ms)));
    }

    /// The average, or `None` before the first sample.
    pub fn value(&self) -> Option<f64> {
        self.last_ms.map(|_| self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded by its first sample, then a step to `x1` sampled every `dt`:
    /// the closed form is `x1 + (x0 − x1) e^(−k·dt/τ)` after k samples.
    #[test]
    fn a_step_follows_the_closed_form() {
        let (tau, dt, x0, x1) = (1_000u64, 250u64, 10.0, 30.0);
        let mut e = Ewma::new(tau);
        assert_eq!(e.value(), None);
        e.observe(x0, 0);
        assert_eq!(e.value(), Some(x0), "the first sample seeds the value");
        for k in 1..=40u64 {
            e.observe(x1, k * dt);
            let expected = x1 + (x0 - x1) * (-((k * dt) as f64) / tau as f64).exp();
            let got = e.value().unwrap_or(f64::NAN);
            assert!((got - expected).abs() < 1e-9, "after {k} samples: {got} vs {expected}");
        }
    }

    /// Irregular spacing: one sample after 2τ weighs as much as many
    /// samples spread over the same 2τ.
    #[test]
    fn weight_follows_time_not_sample_count() {
        let mut sparse = Ewma::new(100);
        let mut dense = Ewma::new(100);
        sparse.observe(0.0, 0);
        dense.observe(0.0, 0);
        sparse.observe(1.0, 200);
        for t in (10..=200).step_by(10) {
            dense.observe(1.0, t);
        }
        let (s, d) = (sparse.value().unwrap_or(0.0), dense.value().unwrap_or(0.0));
        let expected = 1.0 - (-2.0f64).exp();
        assert!((s - expected).abs() < 1e-12, "{s} vs {expected}");
        assert!((d - expected).abs() < 1e-12, "{d} vs {expected}");
    }

    #[test]
    fn same_instant_and_backwards_clock_weigh_nothing_and_nan_is_ignored() {
        let mut e = Ewma::new(100);
        e.observe(5.0, 1_000);
        e.observe(50.0, 1_000);
        e.observe(50.0, 900);
        e.observe(f64::NAN, 2_000);
        assert_eq!(e.value(), Some(5.0));
    }
}
