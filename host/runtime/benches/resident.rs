//! The resident lifecycle against the fresh-instance path, in one run.
//!
//! - `fresh_instance/probe-echo`: one tool call of the `probe` guest
//!   (`Host::call`: Cedar, slots, a fresh store and instance, invoke). The
//!   baseline: what every entry costs without a long-lived instance.
//! - `bus/publish-unheard`: one publish nobody hears (part of the next).
//! - `resident/mailbox-event`: one bus event handled by a resident
//!   component's one instance (`resident-probe`, `handle = "quiet"`):
//!   publish, the subscription's filter, the driver's `bus.subscribe`
//!   check, re-arming the deadline, `event-handler.handle` on the live
//!   instance. Events are published in bursts of 256 and the time is
//!   divided by the events handled, so what is measured is the cost of an
//!   entry, not of waking the driver.
//! - `resident/tick-cpu`: host CPU time (this process, all threads) per
//!   tick of a resident component ticking every 1 ms with an empty tick,
//!   and `idle-cpu-per-ms`: the same process's CPU per millisecond with
//!   nothing ticking, measured right before it (the baseline to subtract).
//! - `hand_over/8-bytes` and `hand_over/1-mib`: `Host::activate` of a new
//!   version of a resident component whose old version hands over 8 bytes
//!   or 1 MiB; the difference is the cost of snapshotting and restoring
//!   1 MiB (the rest, the same in both, is loading from the AOT cache).
//!
//! `cargo bench -p arw-host --bench resident`

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{Duration, Instant};

use arw_host::capabilities::bus::Payload;
use arw_host::manifest::Manifest;
use arw_host::source::{ComponentPackage, ComponentSource, EmbeddedSource};
use arw_host::{Host, HostConfig, LoadError};
use arw_policy::{PolicySet, PolicySource, Principal};
use criterion::{Criterion, criterion_group, criterion_main};

const POLICIES: &str = r#"
    permit(principal in Arw::Role::"operator", action == Arw::Action::"tool.invoke", resource);
    permit(principal is Arw::Component, action in [Arw::Action::"config.read", Arw::Action::"bus.subscribe"], resource);
"#;
const PROBE_MANIFEST: &str = "id = \"bench:probe\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n";

fn resident(id: &str, version: &str, tick_ms: Option<u64>, config: &[(&str, &str)]) -> ComponentPackage {
    let mut text = format!(
        "id = {id:?}\nversion = {version:?}\nworlds = [\"resident\"]\n\
         [limits]\nmemory-mib = 32\ntimeout-ms = 1000\n\
         [[capabilities]]\naction = \"config.read\"\nresource = \"*\"\n"
    );
    // Only the mailbox component hears the benchmark's events.
    if id == "bench:mailbox" {
        text.push_str("[[capabilities]]\naction = \"bus.subscribe\"\nresource = \"bench.*\"\n");
    }
    if let Some(ms) = tick_ms {
        text.push_str(&format!("[resident]\ntick-ms = {ms}\n"));
    }
    text.push_str("[config]\n");
    for (k, v) in config {
        text.push_str(&format!("{k} = {v:?}\n"));
    }
    let manifest = Manifest::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    ComponentPackage {
        manifest,
        wasm: Cow::Borrowed(arw_artifacts::RESIDENT_PROBE.bytes),
        origin: "bench".into(),
        publisher: None,
    }
}

struct Sources(EmbeddedSource, Vec<ComponentPackage>);

impl ComponentSource for Sources {
    fn describe(&self) -> String {
        "bench".into()
    }
    fn packages(&self) -> Vec<Result<ComponentPackage, LoadError>> {
        let mut all = self.0.packages();
        all.extend(self.1.iter().cloned().map(Ok));
        all
    }
}

/// CPU time of this process so far (user + system, all threads).
// std has no process CPU clock; `getrusage` is the portable one.
#[allow(unsafe_code)]
fn process_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config =
        HostConfig { state_dir: Some(state.path().to_path_buf()), allow_unsigned: true, ..HostConfig::default() };
    config.resident.min_tick_ms = 1;
    config.bus.subscriber_queue = 4096;
    config.swap.auto_rollback = false;

    let schema = arw_policy::schema::embedded().unwrap_or_else(|e| panic!("{e}"));
    let policies = PolicySet::from_sources(&schema, [PolicySource::new("bench.cedar", POLICIES)])
        .unwrap_or_else(|e| panic!("{e}"));
    let source = Sources(
        EmbeddedSource::new().with("probe", PROBE_MANIFEST, arw_artifacts::PROBE.bytes),
        vec![
            resident("bench:mailbox", "1.0.0", None, &[("handle", "quiet")]),
            resident("bench:small", "1.0.0", None, &[("snapshot", "ok")]),
            resident("bench:large", "1.0.0", None, &[("snapshot", "pad:1048568")]),
        ],
    );
    let (host, refused) = rt.block_on(Host::start(config, policies, &source)).unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.is_empty(), "{refused:?}");
    let operator = host.caller(Principal::local_operator());
    let echo = r#"{"op":"echo","value":1}"#;
    rt.block_on(host.call(&operator, "probe", echo)).unwrap_or_else(|e| panic!("{e}"));

    let mut group = c.benchmark_group("resident");
    group.bench_function("fresh_instance/probe-echo", |b| {
        b.to_async(&rt).iter(|| async { black_box(host.call(&operator, "probe", echo).await) })
    });

    let bus = host.bus().clone();
    // What publishing costs with no one to deliver to (`nobody.hears` is
    // heard by no component): part of the mailbox figure below.
    group.bench_function("bus/publish-unheard", |b| {
        b.iter(|| black_box(bus.publish("bench", "nobody.hears", Payload::Json("{}".into()))))
    });
    let handled = || host.resident_status("bench:mailbox").map_or(0, |s| s.deliveries);
    group.bench_function("resident/mailbox-event", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let mut done = 0;
            while done < iters {
                let burst = (iters - done).min(256);
                let before = handled();
                for _ in 0..burst {
                    bus.publish("bench", "bench.event", Payload::Json("{}".into())).unwrap_or_else(|e| panic!("{e}"));
                }
                // Polled gently: on two cores a spinning poller would take
                // the driver's core.
                while handled() < before + burst {
                    std::thread::sleep(Duration::from_micros(50));
                }
                done += burst;
            }
            start.elapsed()
        })
    });
    group.finish();

    // Ticks: CPU per tick, with the idle host's CPU per millisecond as the
    // baseline measured just before.
    let mut group = c.benchmark_group("resident_tick");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.bench_function("idle-cpu-per-ms", |b| {
        b.iter_custom(|iters| {
            let cpu = process_cpu();
            std::thread::sleep(Duration::from_millis(iters));
            process_cpu() - cpu
        })
    });
    rt.block_on(host.activate(resident("bench:ticker", "1.0.0", Some(1), &[("tick", "idle")])))
        .unwrap_or_else(|e| panic!("{e}"));
    let ticks = || host.resident_status("bench:ticker").map_or(0, |s| s.ticks);
    group.bench_function("tick-cpu", |b| {
        b.iter_custom(|iters| {
            let before = ticks();
            let cpu = process_cpu();
            // One long sleep, as in the baseline, then the few ticks left.
            std::thread::sleep(Duration::from_millis(iters));
            while ticks() < before + iters {
                std::thread::sleep(Duration::from_millis(1));
            }
            process_cpu() - cpu
        })
    });
    rt.block_on(host.remove("bench:ticker"));
    group.finish();

    let mut group = c.benchmark_group("hand_over");
    group.sample_size(20);
    let mut version = 1u64;
    for (name, id, config) in
        [("8-bytes", "bench:small", ("snapshot", "ok")), ("1-mib", "bench:large", ("snapshot", "pad:1048568"))]
    {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                version += 1;
                let next = resident(id, &format!("1.0.{version}"), None, &[config]);
                let host = &host;
                async move { black_box(host.activate(next).await.unwrap_or_else(|e| panic!("{e}"))) }
            })
        });
    }
    group.finish();
    rt.block_on(host.shutdown(Duration::from_secs(1)));
}

criterion_group! {
    name = resident_benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(4));
    targets = benches
}
criterion_main!(resident_benches);
