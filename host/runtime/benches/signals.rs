//! What one observation costs the signal estimators, against a plain
//! counter increment in the same run (one core, no contention):
//!
//! - `signals/counter`: `u64 += 1` (through `black_box`), the floor;
//! - `signals/ewma`, `signals/error-rates`, `signals/p2-three-quantiles`:
//!   each estimator alone;
//! - `signals/one-route`: what a route's observation is: EWMA latency,
//!   decayed error rates, windowed p50/p95/p99.
//!
//! `cargo bench -p arw-host --bench signals`

use std::hint::black_box;
use std::time::Duration;

use arw_host::signals::{ErrorRates, Ewma, Outcome, Quantiles, WindowedQuantiles};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A latency-like stream, precomputed so the generator is not measured.
fn samples() -> Vec<(f64, u64, Outcome)> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..4096u64)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let latency = 1.0 + (state % 10_000) as f64 / 100.0;
            let outcome = if state.is_multiple_of(50) { Outcome::Fault } else { Outcome::Ok };
            (latency, i, outcome)
        })
        .collect()
}

fn observe(c: &mut Criterion) {
    let samples = samples();
    let mut group = c.benchmark_group("signals");
    group.throughput(Throughput::Elements(samples.len() as u64));
    group.bench_function("counter", |b| {
        let mut n = 0u64;
        b.iter(|| {
            for s in &samples {
                n = black_box(n + 1);
                black_box(s);
            }
        })
    });
    group.bench_function("ewma", |b| {
        let mut e = Ewma::new(1_000);
        let mut t = 0;
        b.iter(|| {
            for &(x, dt, _) in &samples {
                t += dt;
                e.observe(black_box(x), t);
            }
        })
    });
    group.bench_function("error-rates", |b| {
        let mut r = ErrorRates::new(30_000, 20);
        let mut t = 0;
        b.iter(|| {
            for &(_, dt, outcome) in &samples {
                t += dt;
                r.observe(black_box(outcome), t);
            }
        })
    });
    group.bench_function("p2-three-quantiles", |b| {
        let mut q = Quantiles::default();
        b.iter(|| {
            for &(x, ..) in &samples {
                q.observe(black_box(x));
            }
        })
    });
    group.bench_function("one-route", |b| {
        let (mut e, mut r, mut w) = (Ewma::new(1_000), ErrorRates::new(30_000, 20), WindowedQuantiles::new(10_000, 50));
        let mut t = 0;
        b.iter(|| {
            for &(x, dt, outcome) in &samples {
                t += dt;
                e.observe(black_box(x), t);
                r.observe(outcome, t);
                w.observe(x, t);
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(3));
    targets = observe
}
criterion_main!(benches);
