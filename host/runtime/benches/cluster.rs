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
//! - `queues/jetstream-host` (with `ARW_NATS_URL`): tasks pushed with
//!   `Host::enqueue` to a host whose backend is `arw:queue-jetstream`,
//!   until its workers ran (text-stats) and acked them all;
//!   `queues/raw-async-nats-jetstream`: the same number of messages
//!   published to a work-queue stream, pulled and double-acked by one
//!   async-nats client, on the same server.
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

/// Tasks per measured batch.
const TASKS: u64 = 200;

const QUEUE_POLICY: &str = r#"
    permit(principal == Arw::Component::"arw:queue-jetstream", action, resource);
    permit(principal in Arw::Role::"operator", action in [Arw::Action::"tool.invoke", Arw::Action::"queue.enqueue"], resource);
"#;

fn queues(c: &mut Criterion) {
    let Some(url) = std::env::var("ARW_NATS_URL").ok() else {
        eprintln!("queues: set ARW_NATS_URL (scripts/bench-bridge.sh starts a server) to measure JetStream queues");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = HostConfig { state_dir: Some(dir.path().to_path_buf()), ..HostConfig::default() };
    config.allow_unsigned = true;
    config.cluster.nats_url = Some(url.clone());
    config.queues.backend = "arw:queue-jetstream".into();
    config.queues.serve = vec!["bench".into()];
    config.queues.concurrency = 16;
    config.queues.poll_ms = 5;
    let schema = arw_policy::schema::embedded().unwrap_or_else(|e| panic!("{e}"));
    let policies = PolicySet::from_sources(&schema, [arw_policy::PolicySource::new("bench.cedar", QUEUE_POLICY)])
        .unwrap_or_else(|e| panic!("{e}"));
    let source = EmbeddedSource::new()
        .with("text-stats", include_str!("../../../manifests/text-stats.toml"), arw_artifacts::TEXT_STATS.bytes)
        .with(
            "queue-jetstream",
            include_str!("../../../manifests/queue-jetstream.toml"),
            arw_artifacts::QUEUE_JETSTREAM.bytes,
        );
    let (host, refused) = rt.block_on(Host::start(config, policies, &source)).unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.is_empty(), "{refused:?}");
    let operator = host.caller(arw_policy::Principal::local_operator());
    let task = || arw_host::queues::NewTask {
        tool: "text-stats".into(),
        input: r#"{"text":"one two three"}"#.into(),
        ..Default::default()
    };

    // The baseline's stream and consumer.
    let js = rt.block_on(async {
        let client = async_nats::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
        async_nats::jetstream::new(client)
    });
    let consumer: async_nats::jetstream::consumer::PullConsumer = rt.block_on(async {
        let stream = js
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: "RAW-BENCH".into(),
                subjects: vec!["rawbench.>".into()],
                retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        stream
            .get_or_create_consumer(
                "workers",
                async_nats::jetstream::consumer::pull::Config {
                    durable_name: Some("workers".into()),
                    ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    });

    let mut group = c.benchmark_group("queues");
    group.throughput(Throughput::Elements(TASKS));
    group.bench_function("jetstream-host", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let before = host.queue_counts().done;
                    for _ in 0..TASKS {
                        host.enqueue(&operator, "bench", task(), &Default::default())
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                    }
                    let waited = Instant::now();
                    while host.queue_counts().done < before + TASKS {
                        assert!(waited.elapsed() < Duration::from_secs(60), "tasks were not done");
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("raw-async-nats-jetstream", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    for _ in 0..TASKS {
                        js.publish("rawbench.task", BODY.into())
                            .await
                            .unwrap_or_else(|e| panic!("{e}"))
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                    }
                    let mut got = 0;
                    while got < TASKS {
                        let mut batch =
                            consumer.fetch().max_messages(16).messages().await.unwrap_or_else(|e| panic!("{e}"));
                        while let Some(message) = batch.next().await {
                            let message = message.unwrap_or_else(|e| panic!("{e}"));
                            message.double_ack().await.unwrap_or_else(|e| panic!("{e}"));
                            got += 1;
                        }
                    }
                }
                started.elapsed()
            })
        })
    });
    group.finish();
    eprintln!("queue counts: {:?}", host.queue_counts());
    rt.block_on(host.shutdown(Duration::from_secs(1)));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = bus, bridge, queues
}
criterion_main!(benches);
