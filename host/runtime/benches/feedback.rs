//! The feedback engine's costs, each against a baseline in the same run:
//!
//! - `feedback/request-path`: `Host::call` of text-stats with the signals
//!   off (`[signals] enabled = false`) and on, on two hosts alternately;
//!   the difference is what measuring adds to a tool call. An HTTP call
//!   adds one route observation more: `route-observation` is that, alone.
//! - `feedback/tick`: one tick with 1,000 route series (each with one new
//!   observation since the last tick): `signals-snapshot` is the host's
//!   part alone (collect + read every estimator), `tick` the whole (the
//!   snapshot, the knobs, the engine's `evaluate` in `arw:feedback` with
//!   1,000 series lowered into it, the ledger); `tick-without-engine` the
//!   same on a host with no engine; `record-only` what the bench itself
//!   spends recording the 1,000 observations each iteration (in every
//!   figure above it).
//!
//! `cargo bench -p arw-host --bench feedback`

use std::hint::black_box;
use std::time::Duration;

use arw_host::signals::{Outcome, Series};
use arw_host::source::EmbeddedSource;
use arw_host::{Host, HostConfig};
use arw_policy::{PolicySet, PolicySource, Principal};
use criterion::{Criterion, criterion_group, criterion_main};

const TEXT_STATS_MANIFEST: &str = include_str!("../../../manifests/text-stats.toml");
const FEEDBACK_MANIFEST: &str = include_str!("../../../manifests/feedback.toml");
const POLICIES: &str = r#"
    permit(principal in Arw::Role::"operator", action == Arw::Action::"tool.invoke", resource);
    permit(principal, action == Arw::Action::"config.read", resource);
"#;
const INPUT: &str = r#"{"text":"the quick brown fox\njumps over the lazy dog"}"#;

fn host(rt: &tokio::runtime::Runtime, state: &std::path::Path, signals: bool, engine: bool) -> Host {
    let mut config = HostConfig { state_dir: Some(state.to_path_buf()), allow_unsigned: true, ..HostConfig::default() };
    config.signals.enabled = signals;
    config.signals.max_series = 2_048;
    // Ticks by hand only.
    config.feedback.tick_ms = 5_000;
    if !engine {
        config.feedback.engine = String::new();
    }
    let schema = arw_policy::schema::embedded().unwrap_or_else(|e| panic!("{e}"));
    let policies = PolicySet::from_sources(&schema, [PolicySource::new("bench.cedar", POLICIES)])
        .unwrap_or_else(|e| panic!("{e}"));
    let source = EmbeddedSource::new().with("text-stats", TEXT_STATS_MANIFEST, arw_artifacts::TEXT_STATS.bytes).with(
        "feedback",
        FEEDBACK_MANIFEST,
        arw_artifacts::FEEDBACK.bytes,
    );
    let (host, refused) = rt.block_on(Host::start(config, policies, &source)).unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.is_empty(), "{refused:?}");
    host
}

fn feedback(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    let (off_dir, on_dir) = (tempfile::tempdir(), tempfile::tempdir());
    let (off_dir, on_dir) = (off_dir.unwrap_or_else(|e| panic!("{e}")), on_dir.unwrap_or_else(|e| panic!("{e}")));
    let off = host(&rt, off_dir.path(), false, true);
    let on = host(&rt, on_dir.path(), true, true);
    let (off_caller, on_caller) = (off.caller(Principal::local_operator()), on.caller(Principal::local_operator()));

    let mut group = c.benchmark_group("feedback/request-path");
    // Two rounds, alternating, so drift on a busy machine shows.
    for round in ["a", "b"] {
        group.bench_function(format!("text-stats/signals-off/{round}"), |b| {
            b.to_async(&rt).iter(|| async { black_box(off.call(&off_caller, "text-stats", INPUT).await) })
        });
        group.bench_function(format!("text-stats/signals-on/{round}"), |b| {
            b.to_async(&rt).iter(|| async { black_box(on.call(&on_caller, "text-stats", INPUT).await) })
        });
    }
    group.bench_function("route-observation", |b| {
        b.iter(|| on.signals().observe(Series::Route("tools:invoke"), Duration::from_micros(40), Outcome::Ok));
        // Keep the queue from filling (a full queue drops, which is cheaper).
        on.signals().collect();
    });
    group.finish();

    // 1,000 route series, as if 1,000 routes were served.
    let routes: Vec<&'static str> =
        (0..1_000).map(|i| &*Box::leak(format!("bench:route-{i:04}").into_boxed_str())).collect();
    let record = |host: &Host| {
        for (i, route) in routes.iter().enumerate() {
            host.signals().observe(Series::Route(route), Duration::from_micros(100 + i as u64), Outcome::Ok);
        }
    };
    record(&on);
    rt.block_on(on.feedback().tick(1));
    assert!(on.feedback().state().signals.len() >= 1_000, "the engine sees the 1,000 series");
    assert_eq!(on.feedback().counters().engine_errors, 0, "the engine answered");
    let mut group = c.benchmark_group("feedback/tick");
    group.bench_function("1000-routes/signals-snapshot", |b| {
        b.iter(|| {
            record(&on);
            black_box(on.signals().snapshot())
        })
    });
    let mut n = 1;
    group.bench_function("1000-routes/tick", |b| {
        b.to_async(&rt).iter(|| {
            record(&on);
            n += 1;
            on.feedback().tick(n)
        })
    });
    let bare_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bare = host(&rt, bare_dir.path(), true, false);
    group.bench_function("1000-routes/tick-without-engine", |b| {
        b.to_async(&rt).iter(|| {
            record(&bare);
            n += 1;
            bare.feedback().tick(n)
        })
    });
    group.bench_function("1000-routes/record-only", |b| {
        b.iter(|| {
            record(&on);
            on.signals().collect()
        })
    });
    group.finish();
    rt.block_on(off.shutdown(Duration::from_secs(1)));
    rt.block_on(on.shutdown(Duration::from_secs(1)));
    rt.block_on(bare.shutdown(Duration::from_secs(1)));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(40).measurement_time(Duration::from_secs(3));
    targets = feedback
}
criterion_main!(benches);
