//! Decayed counts: each count halves every half-life, so a rate made of
//! them says what is happening now, not since start. An error rate is
//! decayed errors over decayed requests, with the same half-life, and is
//! only reported once enough requests were seen for it to mean something.

/// What a count keeps of itself after `dt_ms` with half-life
/// `half_life_ms`: `2^(−dt/h)`.
fn halving(dt_ms: u64, half_life_ms: f64) -> f64 {
    (-(dt_ms as f64) / half_life_ms * std::f64::consts::LN_2).exp()
}

/// A count that halves every `half_life_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecayedCount {
    half_life_ms: f64,
    value: f64,
    last_ms: u64,
}

impl DecayedCount {
    /// `half_life_ms` must be positive (a zero is taken as 1).
    pub fn new(half_life_ms: u64) -> Self {
        DecayedCount { half_life_ms: half_life_ms.max(1) as f64, value: 0.0, last_ms: 0 }
    }

    /// Move the count to `at_ms` (a clock that goes backwards does not
    /// decay it).
    fn decay_to(&mut self, at_ms: u64) {
        if at_ms > self.last_ms {
            self.value *= halving(at_ms - self.last_ms, self.half_life_ms);
            self.last_ms = at_ms;
        }
    }

    /// Add `n` at `at_ms`.
    pub fn add(&mut self, n: f64, at_ms: u64) {
        self.decay_to(at_ms);
        self.value += n;
    }

    /// The count at `at_ms`.
    pub fn value_at(&self, at_ms: u64) -> f64 {
        let mut at = *self;
        at.decay_to(at_ms);
        at.value
    }
}

/// What one request came to, for the error rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered as asked (1xx–3xx, a tool's result).
    Ok,
    /// The caller's mistake (4xx, a refused input): counted apart, since
    /// no knob of the host's fixes it.
    ClientError,
    /// The host's or the component's failure (5xx, a trap, a timeout).
    Fault,
    /// Refused because every slot was taken (a tool's `limits.concurrency`,
    /// the instance pool): saturation, counted apart from faults.
    Busy,
}

impl Outcome {
    /// The outcome of an HTTP status.
    pub fn of_status(status: u16) -> Self {
        match status {
            500.. => Outcome::Fault,
            400..=499 => Outcome::ClientError,
            _ => Outcome::Ok,
        }
    }
}

/// Decayed fault, client-error and busy rates of one route or tool: four
/// counts with one half-life and one clock, so each observation decays
/// them by one factor (one `exp`, not four).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorRates {
    /// Requests, faults, client errors, busy refusals.
    counts: [f64; 4],
    half_life_ms: f64,
    last_ms: u64,
    /// Every request ever seen (not decayed): the rates are reported only
    /// once it reaches `min_samples`.
    seen: u64,
    min_samples: u64,
}

impl ErrorRates {
    pub fn new(half_life_ms: u64, min_samples: u64) -> Self {
        ErrorRates { counts: [0.0; 4], half_life_ms: half_life_ms.max(1) as f64, last_ms: 0, seen: 0, min_samples }
    }

    /// The decay factor from the last observation to `at_ms`.
    fn factor(&self, at_ms: u64) -> f64 {
        halving(at_ms.saturating_sub(self.last_ms), self.half_life_ms)
    }

    pub fn observe(&mut self, outcome: Outcome, at_ms: u64) {
        self.seen = self.seen.saturating_add(1);
        if at_ms > self.last_ms {
            let factor = self.factor(at_ms);
            self.counts.iter_mut().for_each(|c| *c *= factor);
            self.last_ms = at_ms;
        }
        self.counts[0] += 1.0;
        match outcome {
            Outcome::Fault => self.counts[1] += 1.0,
            Outcome::ClientError => self.counts[2] += 1.0,
            Outcome::Busy => self.counts[3] += 1.0,
            Outcome::Ok => {}
        }
    }

    /// Requests seen since start.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The decayed share of faults, once `min_samples` were seen.
    pub fn fault_rate(&self) -> Option<f64> {
        self.rate(1)
    }

    /// The decayed share of client errors, once `min_samples` were seen.
    pub fn client_error_rate(&self) -> Option<f64> {
        self.rate(2)
    }

    /// The decayed share of refusals for saturation, once `min_samples`
    /// were seen.
    pub fn busy_rate(&self) -> Option<f64> {
        self.rate(3)
    }

    /// A ratio of two counts decayed alike: the same at any later instant
    /// until the next observation, so it needs no time.
    fn rate(&self, of: usize) -> Option<f64> {
        if self.seen < self.min_samples || self.counts[0] <= 0.0 {
            return None;
        }
        Some((self.counts[of] / self.counts[0]).clamp(0.0, 1.0))
    }

    /// The decayed number of requests at `at_ms` (how much the rates rest on).
    pub fn weight_at(&self, at_ms: u64) -> f64 {
        self.counts[0] * self.factor(at_ms.max(self.last_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_halves_every_half_life() {
        let mut c = DecayedCount::new(1_000);
        c.add(8.0, 0);
        for (t, expected) in [(0, 8.0), (1_000, 4.0), (2_000, 2.0), (3_000, 1.0), (500, 8.0 / 2f64.sqrt())] {
            let got = c.value_at(t);
            assert!((got - expected).abs() < 1e-12, "at {t} ms: {got} vs {expected}");
        }
        // Adding later: the old part decays, the new part does not.
        c.add(1.0, 2_000);
        assert!((c.value_at(3_000) - (1.0 + 0.5)).abs() < 1e-12);
    }

    /// A steady stream of one request per `dt`, every 4th a fault: the
    /// decayed rate is the ratio of two geometric sums (each sample weighs
    /// `2^(−age/h)`), near 1/4; with no requests it stays put (both counts
    /// halve alike); good requests after it bring it down.
    #[test]
    fn the_fault_rate_follows_the_closed_form() {
        let (h, dt) = (1_000u64, 10u64);
        let mut r = ErrorRates::new(h, 1);
        let mut t = 0;
        for i in 0..2_000u64 {
            t = i * dt;
            r.observe(if i % 4 == 0 { Outcome::Fault } else { Outcome::Ok }, t);
        }
        // The weighted sums, term by term.
        let q = (-(dt as f64) / h as f64 * std::f64::consts::LN_2).exp();
        let (mut req, mut faults) = (0.0, 0.0);
        for i in 0..2_000u64 {
            let w = q.powi((1_999 - i) as i32);
            req += w;
            if i % 4 == 0 {
                faults += w;
            }
        }
        let got = r.fault_rate().unwrap_or(f64::NAN);
        assert!((got - faults / req).abs() < 1e-9, "{got} vs {}", faults / req);
        assert!((got - 0.25).abs() < 0.01, "a steady 1-in-4 stream is near 25%: {got}");
        // No request for one half-life: the rate does not move (both
        // halve), the weight it rests on does.
        assert!((r.weight_at(t + h) - r.weight_at(t) / 2.0).abs() < 1e-9);
        // Then good requests only: faults decay, the rate falls.
        for i in 1..=100u64 {
            r.observe(Outcome::Ok, t + h + i * dt);
        }
        let later = r.fault_rate().unwrap_or(f64::NAN);
        assert!(later < got * 0.75, "{later} did not fall from {got}");
    }

    #[test]
    fn client_errors_are_counted_apart_and_rates_wait_for_enough_samples() {
        let mut r = ErrorRates::new(60_000, 10);
        for i in 0..9 {
            r.observe(Outcome::ClientError, i);
        }
        assert_eq!(r.fault_rate(), None, "9 of the 10 samples required");
        r.observe(Outcome::Ok, 9);
        assert_eq!(r.seen(), 10);
        assert_eq!(r.fault_rate(), Some(0.0), "4xx are not faults");
        let client = r.client_error_rate().unwrap_or(0.0);
        assert!((client - 0.9).abs() < 0.01, "{client}");
        assert_eq!(Outcome::of_status(503), Outcome::Fault);
        assert_eq!(Outcome::of_status(404), Outcome::ClientError);
        assert_eq!(Outcome::of_status(204), Outcome::Ok);
    }
}
