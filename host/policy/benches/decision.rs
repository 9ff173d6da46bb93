//! Cedar decision latency: cached (the per-principal cache hit every
//! repeated capability call takes) and uncached (a full Cedar evaluation,
//! entities built per request), against the repository's default policies.
//!
//! `cargo bench -p arw-policy --bench decision`

use std::hint::black_box;

use arw_policy::{Action, Authorizer, PolicySet, PolicySource, Principal};
use criterion::{Criterion, criterion_group, criterion_main};

fn authorizer() -> Authorizer {
    let schema = arw_policy::schema::embedded().unwrap_or_else(|e| panic!("{e}"));
    let policies = PolicySet::from_sources(
        &schema,
        [PolicySource::new("default.cedar", include_str!("../../../policies/default.cedar"))],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Authorizer::new(schema, policies)
}

fn decisions(c: &mut Criterion) {
    let authorizer = authorizer();
    let announce = authorizer.principal(Principal::component("arw:announce", "0.1.0", "arw", "sha256:00"));
    let operator = authorizer.principal(Principal::local_operator());
    assert!(authorizer.decide(&announce, Action::new("bus.publish"), "demo.hello").allowed());

    let mut group = c.benchmark_group("cedar_decision");
    group.bench_function("cached_allow", |b| {
        b.iter(|| black_box(authorizer.decide(&announce, Action::new("bus.publish"), black_box("demo.hello"))))
    });
    group.bench_function("cached_deny", |b| {
        b.iter(|| black_box(authorizer.decide(&announce, Action::new("kv.write"), black_box("kv-counter"))))
    });
    group.bench_function("uncached_allow_like_pattern", |b| {
        b.iter(|| black_box(authorizer.decide_uncached(&announce, Action::new("bus.publish"), black_box("demo.hello"))))
    });
    group.bench_function("uncached_deny", |b| {
        b.iter(|| black_box(authorizer.decide_uncached(&announce, Action::new("kv.write"), black_box("kv-counter"))))
    });
    group.bench_function("uncached_caller_role", |b| {
        b.iter(|| black_box(authorizer.decide_uncached(&operator, Action::TOOL_INVOKE, black_box("text-stats"))))
    });
    // The defaults plus a time window on `bus.publish`: every such
    // decision reads `context.now`, so it is evaluated (never cached) and
    // its context carries a `datetime`.
    let schema = arw_policy::schema::embedded().unwrap_or_else(|e| panic!("{e}"));
    let windowed = PolicySet::from_sources(
        &schema,
        [
            PolicySource::new("default.cedar", include_str!("../../../policies/default.cedar")),
            PolicySource::new(
                "window.cedar",
                r#"forbid(principal, action == Arw::Action::"bus.publish", resource)
                   when { context.now >= datetime("2000-01-01T00:00:00Z") && context.now < datetime("2000-01-02T00:00:00Z") };"#,
            ),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let windowed = Authorizer::new(schema, windowed);
    let announce_windowed = windowed.principal(Principal::component("arw:announce", "0.1.0", "arw", "sha256:00"));
    assert!(windowed.decide(&announce_windowed, Action::new("bus.publish"), "demo.hello").allowed());
    group.bench_function("time_window_every_call", |b| {
        b.iter(|| black_box(windowed.decide(&announce_windowed, Action::new("bus.publish"), black_box("demo.hello"))))
    });
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
