//! Quantiles without keeping samples: the P² algorithm (R. Jain and
//! I. Chlamtac, "The P² algorithm for dynamic calculation of quantiles and
//! histograms without storing observations", CACM 28(10), 1985). Five
//! markers per quantile, adjusted by a piecewise-parabolic formula as
//! samples arrive: O(1) per sample, 5 numbers of memory.
//!
//! P² estimates the quantile of everything it has seen, so a level shift
//! takes ever longer to show. [`WindowedQuantiles`] rotates: it answers
//! from the window in progress once that has enough samples, and from the
//! last complete window until then; a shift is fully reflected once a
//! whole window has passed after it (within two windows of it).

/// One quantile `p` (0 < p < 1), estimated by P².
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct P2 {
    p: f64,
    /// Marker heights.
    q: [f64; 5],
    /// Marker positions (1-based, as in the paper).
    n: [f64; 5],
    /// Desired positions.
    want: [f64; 5],
    /// Desired position increments per sample.
    step: [f64; 5],
    count: u64,
}

impl P2 {
    pub fn new(p: f64) -> Self {
        let p = if p.is_finite() { p.clamp(0.001, 0.999) } else { 0.5 };
        P2 {
            p,
            q: [0.0; 5],
            n: [1.0, 2.0, 3.0, 4.0, 5.0],
            want: [1.0, 1.0 + 2.0 * p, 1.0 + 4.0 * p, 3.0 + 2.0 * p, 5.0],
            step: [0.0, p / 2.0, p, (1.0 + p) / 2.0, 1.0],
            count: 0,
        }
    }

    /// Samples seen.
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn observe(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.count < 5 {
            // The first five are kept, sorted: they are the markers.
            let at = self.count as usize;
            self.q[at] = x;
            self.count += 1;
            self.q[..=at].sort_by(f64::total_cmp);
            return;
        }
        self.count += 1;
        let q = &mut self.q;
        let k = if x < q[0] {
            q[0] = x;
            0
        } else if x >= q[4] {
            q[4] = x;
            3
        } else {
            // q[i] <= x < q[i+1]
            (0..4).find(|&i| x < q[i + 1]).unwrap_or(3)
        };
        for n in &mut self.n[k + 1..] {
            *n += 1.0;
        }
        for (want, step) in self.want.iter_mut().zip(self.step) {
            *want += step;
        }
        for i in 1..4 {
            let d = self.want[i] - self.n[i];
            let room_up = self.n[i + 1] - self.n[i] > 1.0;
            let room_down = self.n[i - 1] - self.n[i] < -1.0;
            if (d >= 1.0 && room_up) || (d <= -1.0 && room_down) {
                let d = d.signum();
                let parabolic = self.parabolic(i, d);
                self.q[i] =
                    if self.q[i - 1] < parabolic && parabolic < self.q[i + 1] { parabolic } else { self.linear(i, d) };
                self.n[i] += d;
            }
        }
    }

    fn parabolic(&self, i: usize, d: f64) -> f64 {
        let (q, n) = (&self.q, &self.n);
        q[i] + d / (n[i + 1] - n[i - 1])
            * ((n[i] - n[i - 1] + d) * (q[i + 1] - q[i]) / (n[i + 1] - n[i])
                + (n[i + 1] - n[i] - d) * (q[i] - q[i - 1]) / (n[i] - n[i - 1]))
    }

    fn linear(&self, i: usize, d: f64) -> f64 {
        let j = if d > 0.0 { i + 1 } else { i - 1 };
        self.q[i] + d * (self.q[j] - self.q[i]) / (self.n[j] - self.n[i])
    }

    /// The estimate, or `None` before the first sample. With fewer than
    /// five samples it is the nearest-rank quantile of those.
    pub fn estimate(&self) -> Option<f64> {
        match self.count {
            0 => None,
            c if c < 5 => {
                let rank = ((self.p * c as f64).ceil() as usize).clamp(1, c as usize);
                Some(self.q[rank - 1])
            }
            _ => Some(self.q[2]),
        }
    }
}

/// p50, p95 and p99 of one stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantiles {
    pub p50: P2,
    pub p95: P2,
    pub p99: P2,
}

impl Default for Quantiles {
    fn default() -> Self {
        Quantiles { p50: P2::new(0.50), p95: P2::new(0.95), p99: P2::new(0.99) }
    }
}

impl Quantiles {
    pub fn observe(&mut self, x: f64) {
        self.p50.observe(x);
        self.p95.observe(x);
        self.p99.observe(x);
    }

    pub fn count(&self) -> u64 {
        self.p50.count()
    }
}

/// [`Quantiles`] over rotating windows of `window_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowedQuantiles {
    window_ms: u64,
    /// A window answers once it has this many samples.
    min_samples: u64,
    current: Quantiles,
    started_ms: Option<u64>,
    previous: Option<Quantiles>,
}

impl WindowedQuantiles {
    pub fn new(window_ms: u64, min_samples: u64) -> Self {
        WindowedQuantiles {
            window_ms: window_ms.max(1),
            min_samples: min_samples.max(1),
            current: Quantiles::default(),
            started_ms: None,
            previous: None,
        }
    }

    /// Close the window in progress if `at_ms` is past its end; a window
    /// with no samples at all leaves no "previous" (stale data is not
    /// carried over an idle window).
    pub fn rotate(&mut self, at_ms: u64) {
        let Some(started) = self.started_ms else {
            self.started_ms = Some(at_ms);
            return;
        };
        if at_ms < started.saturating_add(self.window_ms) {
            return;
        }
        let elapsed = (at_ms - started) / self.window_ms;
        let closed = std::mem::take(&mut self.current);
        // More than one window went by: the one just closed is older than
        // the last complete window, which saw nothing.
        self.previous = (elapsed == 1 && closed.count() > 0).then_some(closed);
        self.started_ms = Some(started + elapsed * self.window_ms);
    }

    pub fn observe(&mut self, x: f64, at_ms: u64) {
        self.rotate(at_ms);
        self.current.observe(x);
    }

    /// The window that answers: the one in progress once it has
    /// `min_samples`, else the last complete one, else the one in progress.
    fn answering(&self) -> Option<&Quantiles> {
        if self.current.count() >= self.min_samples {
            return Some(&self.current);
        }
        self.previous.as_ref().or((self.current.count() > 0).then_some(&self.current))
    }

    /// (p50, p95, p99) and the samples they rest on.
    pub fn estimate(&self) -> Option<(f64, f64, f64, u64)> {
        let w = self.answering()?;
        Some((w.p50.estimate()?, w.p95.estimate()?, w.p99.estimate()?, w.count()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64: a fixed-seed stream, the same on every machine.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in (0, 1).
        fn uniform(&mut self) -> f64 {
            ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        /// Lognormal with μ = 0, σ = `sigma` (Box–Muller).
        fn lognormal(&mut self, sigma: f64) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            let normal = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
            (sigma * normal).exp()
        }
    }

    /// The exact quantile (nearest rank) of `samples`.
    fn exact(samples: &[f64], p: f64) -> f64 {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    /// Against the exact quantiles of 20 000 samples, over five seeds:
    /// for a uniform stream P² is within 0.5% of the range at p50, p95 and
    /// p99 (measured: at most 0.08%); for a heavy-tailed lognormal one
    /// (σ = 1; latencies look like this) within 2% at p50 and p95
    /// (measured: 0.7%) and 10% at p99 (measured: 5.4%: P²'s known weak
    /// spot, few samples out in the tail).
    #[test]
    fn p2_is_close_to_the_exact_quantiles() {
        for seed in 1..=5u64 {
            let mut rng = Rng(seed);
            let uniform: Vec<f64> = (0..20_000).map(|_| rng.uniform()).collect();
            let lognormal: Vec<f64> = (0..20_000).map(|_| rng.lognormal(1.0)).collect();
            for (name, samples, relative, bounds) in
                [("uniform", &uniform, false, [0.005; 3]), ("lognormal", &lognormal, true, [0.02, 0.02, 0.10])]
            {
                let mut q = Quantiles::default();
                for &x in samples.iter() {
                    q.observe(x);
                }
                for ((p, estimator), bound) in [(0.50, q.p50), (0.95, q.p95), (0.99, q.p99)].into_iter().zip(bounds) {
                    let (got, want) = (estimator.estimate().unwrap_or(f64::NAN), exact(samples, p));
                    let error = if relative { (got - want).abs() / want } else { (got - want).abs() };
                    assert!(error < bound, "seed {seed}, {name} p{}: P² {got}, exact {want}", p * 100.0);
                }
            }
        }
    }

    #[test]
    fn few_samples_are_exact_and_bad_ones_are_ignored() {
        let mut q = P2::new(0.95);
        assert_eq!(q.estimate(), None);
        for x in [3.0, 1.0, f64::NAN, 2.0] {
            q.observe(x);
        }
        assert_eq!(q.count(), 3);
        assert_eq!(q.estimate(), Some(3.0));
        let mut median = P2::new(0.5);
        for x in [5.0, 1.0, 4.0, 2.0] {
            median.observe(x);
        }
        assert_eq!(median.estimate(), Some(2.0), "nearest rank of 4 samples");
    }

    /// Latencies of ~10 ms, then from t = 25 s ~100 ms, windows of 10 s
    /// with 100 samples per second: the estimate follows the shift within
    /// two windows (by t = 45 s, p50 and p95 are those of the new level),
    /// while a P² over everything is still far from it.
    #[test]
    fn the_rotating_window_follows_a_level_shift_within_two_windows() {
        let mut rng = Rng(7);
        let mut windowed = WindowedQuantiles::new(10_000, 200);
        let mut everything = Quantiles::default();
        let mut new_level = Vec::new();
        for i in 0..4_500u64 {
            let t = i * 10;
            let level = if t < 25_000 { 10.0 } else { 100.0 };
            let x = level * rng.lognormal(0.25);
            windowed.observe(x, t);
            everything.observe(x);
            if t >= 25_000 {
                new_level.push(x);
            }
        }
        let (p50, p95, _, n) = windowed.estimate().unwrap_or((f64::NAN, f64::NAN, f64::NAN, 0));
        assert!(n >= 200, "answered from a window with enough samples: {n}");
        let (want50, want95) = (exact(&new_level, 0.5), exact(&new_level, 0.95));
        assert!((p50 - want50).abs() / want50 < 0.05, "windowed p50 {p50} vs the new level's {want50}");
        assert!((p95 - want95).abs() / want95 < 0.05, "windowed p95 {p95} vs the new level's {want95}");
        let stale = everything.p50.estimate().unwrap_or(f64::NAN);
        assert!((stale - want50).abs() / want50 > 0.3, "an unwindowed P² would have followed too: {stale}");
    }

    #[test]
    fn an_idle_window_carries_nothing_over_and_a_young_window_defers_to_the_last() {
        let mut w = WindowedQuantiles::new(1_000, 10);
        for i in 0..100 {
            w.observe(50.0, i * 10);
        }
        // Into the next window, with 3 samples: the complete one answers.
        for i in 0..3 {
            w.observe(500.0, 1_000 + i);
        }
        assert_eq!(w.estimate().map(|e| (e.0, e.3)), Some((50.0, 100)));
        // Three windows later, after silence: only what is new counts.
        w.observe(7.0, 4_500);
        assert_eq!(w.estimate().map(|e| (e.0, e.3)), Some((7.0, 1)));
    }
}
