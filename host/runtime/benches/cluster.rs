//! The bus and the bus bridge, each against its baseline in the same run.
//!
//! - `bus/publish-one-subscriber`: one event published on the local bus
//!   and taken by one subscriber (in process; time per event).
//! - `bridge/host-to-host` (with `ARW_NATS_URL`, as
//!   `scripts/bench-bridge.sh` gives it): events published on host
//!   alpha's bus until host beta's bus has them all, in bursts of 1024,
//!   through a real `nats-server`; `bridge/raw-async-nats`: the same
//!   messages (same body and headers, same bursts) from one async-nats
//!   client to a subscriber on another, on the same server.
//!
//! `scripts/bench-bridge.sh` (starts a nats-server), or
//! `ARW_NATS_URL=nats://127.0.0.1:4222 cargo bench -p arw-host --bench cluster`

use std::hint::black_box;
use std::time::{Duration, Instant};

use arw_host::capabilities::bus::{Bus, BusConfig, Payload};
use arw_host::source::EmbeddedSource;
use arw_host::{Host, HostConfig};
use arw_policy::PolicySet;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;

const BURST: u64 = 1024;
const BODY: &str = r#"{"order":7,"sku":"A1","qty":3}"#;

fn bus(c: &mut Criterion) {
    let bus = Bus::new(BusConfig { subscriber_queue: 4096, ..BusConfig::default() });
    let (_, mut events) = bus.subscribe(|topic| topic.starts_with("orders."));
    let mut group = c.benchmark_group("bus");
    group.throughput(Throughput::Elements(1));
    group.bench_function("publish-one-subscriber", |b| {
        b.iter(|| {
            bus.publish("bench", "orders.created", Payload::Json(BODY.into())).unwrap_or_else(|e| panic!("{e}"));
            black_box(events.try_recv().unwrap_or_else(|e| panic!("{e}")));
        })
    });
    group.finish();
}

fn start(rt: &tokio::runtime::Runtime, node: &str, url: &str, dir: &std::path::Path) -> Host {
    let mut config = HostConfig { state_dir: Some(dir.to_path_buf()), ..HostConfig::default() };
    config.node.id = node.into();
    config.cluster.nats_url = Some(url.into());
    config.cluster.bridge_topics = vec!["orders.*".into()];
    config.bus.subscriber_queue = 8192;
    let policies = PolicySet::empty();
    let (host, _) =
        rt.block_on(Host::start(config, policies, &EmbeddedSource::new())).unwrap_or_else(|e| panic!("{e}"));
    host
}

fn bridge(c: &mut Criterion) {
    let Some(url) = std::env::var("ARW_NATS_URL").ok() else {
        eprintln!("bridge: set ARW_NATS_URL (scripts/bench-bridge.sh starts a server) to measure the bridge");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let (dir_a, dir_b) =
        (tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")), tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")));
    let alpha = start(&rt, "alpha", &url, dir_a.path());
    let beta = start(&rt, "beta", &url, dir_b.path());
    let mut arrivals = beta.bus().observe();
    // Until both bridges are subscribed: one event that arrives.
    rt.block_on(async {
        for _ in 0..400 {
            alpha.bus().publish("bench", "orders.ready", Payload::Json("{}".into())).unwrap_or_else(|e| panic!("{e}"));
            if tokio::time::timeout(Duration::from_millis(50), arrivals.recv()).await.is_ok() {
                return;
            }
        }
        panic!("the bridge never delivered");
    });
    let (sender, receiver) = rt.block_on(async {
        let connect = || async { async_nats::connect(&url).await.unwrap_or_else(|e| panic!("{e}")) };
        (connect().await, connect().await)
    });
    let mut subscription = rt.block_on(receiver.subscribe("bench.raw.>")).unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(receiver.flush()).unwrap_or_else(|e| panic!("{e}"));
    let mut headers = async_nats::HeaderMap::new();
    for (name, value) in [
        ("Arw-Uid", "alpha/1"),
        ("Arw-Origin", "alpha"),
        ("Arw-Hops", "1"),
        ("Arw-Source", "bench"),
        ("Arw-Time-Ms", "1"),
        ("Arw-Payload", "json"),
    ] {
        headers.insert(name, value);
    }

    let mut group = c.benchmark_group("bridge");
    group.throughput(Throughput::Elements(1));
    group.bench_function("host-to-host", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                while arrivals.try_recv().is_ok() {}
                let started = Instant::now();
                let mut sent = 0;
                while sent < iters {
                    let burst = BURST.min(iters - sent);
                    for _ in 0..burst {
                        alpha
                            .bus()
                            .publish("bench", "orders.created", Payload::Json(BODY.into()))
                            .unwrap_or_else(|e| panic!("{e}"));
                    }
                    let mut got = 0;
                    while got < burst {
                        match tokio::time::timeout(Duration::from_secs(10), arrivals.recv()).await {
                            Ok(Ok(event)) if event.topic == "orders.created" => got += 1,
                            Ok(Ok(_)) => {}
                            other => panic!("the bridge lost events: {other:?}"),
                        }
                    }
                    sent += burst;
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("raw-async-nats", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                let mut sent = 0;
                while sent < iters {
                    let burst = BURST.min(iters - sent);
                    for _ in 0..burst {
                        sender
                            .publish_with_headers("bench.raw.orders.created", headers.clone(), BODY.into())
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                    }
                    sender.flush().await.unwrap_or_else(|e| panic!("{e}"));
                    for _ in 0..burst {
                        match tokio::time::timeout(Duration::from_secs(10), subscription.next()).await {
                            Ok(Some(message)) => _ = black_box(message),
                            other => panic!("the raw subscriber lost messages: {}", other.is_ok()),
                        }
                    }
                    sent += burst;
                }
                started.elapsed()
            })
        })
    });
    group.finish();
    let counts = (alpha.bridge_counts(), beta.bridge_counts());
    eprintln!("bridge counts: alpha {:?}, beta {:?}", counts.0, counts.1);
    rt.block_on(alpha.shutdown(Duration::from_secs(1)));
    rt.block_on(beta.shutdown(Duration::from_secs(1)));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = bus, bridge
}
criterion_main!(benches);
