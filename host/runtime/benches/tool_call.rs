//! One tool call, end to end, against a raw-wasmtime baseline in the same run.
//!
//! - `raw_wasmtime/text-stats`: what a minimal embedder does per call:
//!   `InstancePre` (made once) → fresh `Store` with an empty WASI context →
//!   instantiate → `invoke`. Same engine settings as ARW (pooling, epochs).
//! - `arw/text-stats`: `Host::call` — Cedar check of `tool.invoke` (cached),
//!   concurrency slot, fresh store with deny-by-default WASI, capabilities,
//!   memory limiter and deadline, instantiate, invoke, JSON check of input
//!   and output.
//! - `arw/probe-echo` and `arw/probe-kv-get`: the same test guest without and
//!   with one granted `kv.get` inside the call (cached Cedar decision plus
//!   a redb read).
//! - `arw/probe-echo-pooled`: the same echo on a `[pooled]` copy of the
//!   probe: the whole `Host::call` path on a kept instance (no store, no
//!   instantiation), against `arw/probe-echo` on a fresh one.
//! - `arw/probe-calls-pooled-echo`: the probe calling the pooled probe's
//!   echo through `arw:host/tools`: two entries, one Cedar decision for
//!   the component as caller, the callee on a task of its own.
//!
//! `cargo bench -p arw-host --bench tool_call`

use std::hint::black_box;

use arw_host::roles::tool::bindings::ToolPre;
use arw_host::source::EmbeddedSource;
use arw_host::{Host, HostConfig};
use arw_policy::{PolicySet, PolicySource, Principal};
use criterion::{Criterion, criterion_group, criterion_main};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

const TEXT_STATS_MANIFEST: &str = include_str!("../../../manifests/text-stats.toml");
const PROBE_MANIFEST: &str = "id = \"bench:probe\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n\
    [[capabilities]]\naction = \"kv.read\"\nresource = \"bench\"\n\
    [[capabilities]]\naction = \"tool.invoke\"\nresource = \"pooled\"\n";
const POOLED_MANIFEST: &str = "id = \"bench:pooled\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n\
    [pooled]\nsize = 2\n[[capabilities]]\naction = \"config.read\"\nresource = \"tool-name\"\n\
    [config]\ntool-name = \"pooled\"\n";
const POLICIES: &str = r#"
    permit(principal == Arw::Component::"bench:pooled", action == Arw::Action::"config.read", resource);
    permit(principal == Arw::Component::"bench:probe", action == Arw::Action::"tool.invoke", resource == Arw::Tool::"pooled");
    permit(principal in Arw::Role::"operator", action == Arw::Action::"tool.invoke", resource);
    permit(principal == Arw::Component::"bench:probe", action == Arw::Action::"kv.read", resource == Arw::KvNamespace::"bench");
"#;
const INPUT: &str = r#"{"text":"the quick brown fox\njumps over the lazy dog"}"#;

struct RawState {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for RawState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }
}

fn raw_pre(engine: &Engine) -> ToolPre<RawState> {
    let component = Component::new(engine, arw_artifacts::TEXT_STATS.bytes).unwrap_or_else(|e| panic!("{e}"));
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap_or_else(|e| panic!("{e}"));
    linker.define_unknown_imports_as_traps(&component).unwrap_or_else(|e| panic!("{e}"));
    let pre = linker.instantiate_pre(&component).unwrap_or_else(|e| panic!("{e}"));
    ToolPre::new(pre).unwrap_or_else(|e| panic!("{e}"))
}

async fn raw_call(engine: &Engine, pre: &ToolPre<RawState>) -> String {
    let mut store = Store::new(engine, RawState { ctx: WasiCtx::builder().build(), table: ResourceTable::new() });
    store.set_epoch_deadline(u64::MAX / 2);
    let tool = pre.instantiate_async(&mut store).await.unwrap_or_else(|e| panic!("{e}"));
    let out = tool.arw_host_tool_handler().call_invoke(&mut store, INPUT).await.unwrap_or_else(|e| panic!("{e}"));
    out.unwrap_or_else(|e| panic!("{}", e.message))
}

fn tool_calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Embedded components are unsigned; signatures are checked at load, not
    // per call, so allowing them here does not change what is measured.
    let config =
        HostConfig { state_dir: Some(state.path().to_path_buf()), allow_unsigned: true, ..HostConfig::default() };

    // The same engine configuration ARW uses, for a fair baseline.
    let engine = arw_host::runtime::engine::build(&config.engine).unwrap_or_else(|e| panic!("{e}"));
    let pre = raw_pre(&engine);

    let schema = arw_policy::schema::embedded().unwrap_or_else(|e| panic!("{e}"));
    let policies = PolicySet::from_sources(&schema, [PolicySource::new("bench.cedar", POLICIES)])
        .unwrap_or_else(|e| panic!("{e}"));
    let source = EmbeddedSource::new()
        .with("text-stats", TEXT_STATS_MANIFEST, arw_artifacts::TEXT_STATS.bytes)
        .with("probe", PROBE_MANIFEST, arw_artifacts::PROBE.bytes)
        .with("pooled", POOLED_MANIFEST, arw_artifacts::PROBE.bytes);
    let (host, refused) = rt.block_on(Host::start(config, policies, &source)).unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.is_empty(), "{refused:?}");
    let operator = host.caller(Principal::local_operator());

    // Same answer on both paths before timing anything.
    let raw = rt.block_on(raw_call(&engine, &pre));
    let arw = rt.block_on(host.call(&operator, "text-stats", INPUT)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&raw).ok(), Some(arw));
    let kv = rt
        .block_on(host.call(&operator, "probe", r#"{"op":"kv.get","namespace":"bench","key":"k"}"#))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kv, serde_json::json!({"ok": null}));

    let mut group = c.benchmark_group("tool_call");
    group.bench_function("raw_wasmtime/text-stats", |b| {
        b.to_async(&rt).iter(|| async { black_box(raw_call(&engine, &pre).await) })
    });
    group.bench_function("arw/text-stats", |b| {
        b.to_async(&rt).iter(|| async { black_box(host.call(&operator, "text-stats", INPUT).await) })
    });
    group.bench_function("arw/probe-echo", |b| {
        b.to_async(&rt).iter(|| async { black_box(host.call(&operator, "probe", r#"{"op":"echo","value":1}"#).await) })
    });
    group.bench_function("arw/probe-echo-pooled", |b| {
        b.to_async(&rt).iter(|| async { black_box(host.call(&operator, "pooled", r#"{"op":"echo","value":1}"#).await) })
    });
    let nested = r#"{"op":"tools.invoke","tool":"pooled","input":{"op":"echo","value":1}}"#;
    let answer = rt.block_on(host.call(&operator, "probe", nested)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer, serde_json::json!({"ok": {"ok": 1}}));
    group.bench_function("arw/probe-calls-pooled-echo", |b| {
        b.to_async(&rt).iter(|| async { black_box(host.call(&operator, "probe", nested).await) })
    });
    group.bench_function("arw/probe-kv-get", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(host.call(&operator, "probe", r#"{"op":"kv.get","namespace":"bench","key":"k"}"#).await)
        })
    });
    group.finish();
    rt.block_on(host.shutdown(std::time::Duration::from_secs(1)));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(4));
    targets = tool_calls
}
criterion_main!(benches);
