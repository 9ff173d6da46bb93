//! Hot-swap figures for `docs/PERFORMANCE.md`.
//!
//! - `install_to_first_call/*`: `Host::activate` of a new version (load,
//!   link, health check, switch) plus the first call it serves, with its
//!   `.cwasm` already in the AOT cache and without (compiled on the spot).
//! - `throughput/*`: 800 calls on 8 concurrent tasks, in steady state and
//!   while another task swaps the component between two versions
//!   continuously (a swap storm); the ratio of the two is the cost of
//!   swapping to callers.
//!
//! `cargo bench -p arw-host --bench swap`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arw_host::manifest::Manifest;
use arw_host::source::{ComponentPackage, EmbeddedSource};
use arw_host::{Host, HostConfig};
use arw_policy::{PolicySet, PolicySource, Principal};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const POLICIES: &str = r#"permit(principal in Arw::Role::"operator", action == Arw::Action::"tool.invoke", resource);
permit(principal, action == Arw::Action::"config.read", resource);"#;
const CALL: &str = r#"{"op":"config.get","key":"generation"}"#;

fn probe(version: &str) -> ComponentPackage {
    let manifest = Manifest::parse(&format!(
        "id = \"bench:probe\"\nversion = \"{version}\"\nworlds = [\"tool\"]\n\
         [[capabilities]]\naction = \"config.read\"\nresource = \"*\"\n[config]\ngeneration = \"{version}\"\n"
    ))
    .unwrap();
    ComponentPackage {
        manifest,
        wasm: Cow::Borrowed(arw_artifacts::PROBE.bytes),
        origin: "bench".into(),
        publisher: Some("bench".into()),
    }
}

async fn start(state: &std::path::Path) -> Arc<Host> {
    let mut config = HostConfig { state_dir: Some(state.to_path_buf()), ..HostConfig::default() };
    config.swap.drain_grace_ms = 5_000;
    let schema = arw_policy::schema::embedded().unwrap();
    let policies = PolicySet::from_sources(&schema, [PolicySource::new("bench.cedar", POLICIES)]).unwrap();
    let (host, refused) = Host::start(config, policies, &EmbeddedSource::new()).await.unwrap();
    assert!(refused.is_empty());
    host.activate(probe("1.0.0")).await.unwrap();
    Arc::new(host)
}

fn install_to_first_call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let state = tempfile::tempdir().unwrap();
    let host = rt.block_on(start(state.path()));
    let caller = host.caller(Principal::local_operator());
    let aot = state.path().join("aot");
    let mut group = c.benchmark_group("install_to_first_call");
    group.sample_size(20);
    let mut next = 2u64;
    group.bench_function("aot_cached", |b| {
        b.to_async(&rt).iter(|| {
            next += 1;
            let version = format!("1.0.{next}");
            let (host, caller) = (&host, &caller);
            async move {
                host.activate(probe(&version)).await.unwrap();
                let out = host.call(caller, "probe", CALL).await.unwrap();
                assert_eq!(out["ok"], version.as_str());
            }
        })
    });
    group.bench_function("compile", |b| {
        b.to_async(&rt).iter_batched(
            || {
                // Empty the cache so the new version compiles.
                let _ = std::fs::remove_dir_all(&aot);
                next += 1;
                format!("1.0.{next}")
            },
            |version| {
                let (host, caller) = (&host, &caller);
                async move {
                    host.activate(probe(&version)).await.unwrap();
                    let out = host.call(caller, "probe", CALL).await.unwrap();
                    assert_eq!(out["ok"], version.as_str());
                }
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// 800 calls on 8 tasks; returns the elapsed time.
async fn calls(host: &Arc<Host>) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move {
                let caller = host.caller(Principal::local_operator());
                for _ in 0..100 {
                    host.call(&caller, "probe", CALL).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

fn throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let state = tempfile::tempdir().unwrap();
    let host = rt.block_on(start(state.path()));
    rt.block_on(host.activate(probe("2.0.0"))).unwrap(); // warm the cache for both
    let mut group = c.benchmark_group("throughput_800_calls");
    group.sample_size(10);
    group.bench_function("steady", |b| b.to_async(&rt).iter(|| calls(&host)));
    group.bench_function("swap_storm", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let host = host.clone();
            async move {
                let stop = Arc::new(AtomicBool::new(false));
                let swapper = {
                    let (host, stop) = (host.clone(), stop.clone());
                    tokio::spawn(async move {
                        let mut swaps = 0u64;
                        while !stop.load(Ordering::Acquire) {
                            let version = if swaps.is_multiple_of(2) { "1.0.0" } else { "2.0.0" };
                            host.activate(probe(version)).await.unwrap();
                            swaps += 1;
                        }
                        swaps
                    })
                };
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += calls(&host).await;
                }
                stop.store(true, Ordering::Release);
                let swaps = swapper.await.unwrap();
                assert!(swaps > 0);
                total
            }
        })
    });
    group.finish();
}

criterion_group!(benches, install_to_first_call, throughput);
criterion_main!(benches);
