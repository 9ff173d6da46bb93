//! What gates cost, against the same work without them, in the same run.
//!
//! - `gate/check-50-contracts`: `Host::gate` alone, arw:gating with 50
//!   deny contracts none of which matches (every one is tried): the WIT
//!   request built, a kept instance taken, `check`, given back.
//! - `gate/check-budget`: the same with one matching budget contract in
//!   front (its count kept by the quota capability: `quota.consume`, a
//!   cached Cedar decision, an in-memory bucket).
//! - `gate/check-no-contracts`: the same on arw:gating with no contracts:
//!   what asking a gate costs before it decides anything.
//! - `gate/check-route-and-tool`: the check an HTTP tool call makes, two
//!   keys (`tools:invoke`, `io:ingress:tools.text-stats`) in one entry.
//! - `tool_call/ungated` and `tool_call/gated`: `Host::call` of text-stats
//!   on a host without gates and on one with arw:gating and the 50
//!   contracts (the call asks `io:ingress:tools.text-stats`);
//!   `tool_call/gated-route-and-tool`: the HTTP path's shape, one check for
//!   both keys, then the call spending the pass.
//! - `gate/check-c-50-rules` (with `ARW_BENCH_C_GATE` naming a built
//!   `keyguard-c.wasm`, as `scripts/bench-gate-c.sh` does): the same check
//!   on the C gate of `arw new gate --lang c` with 50 rules, none matching
//!   (every one is tried).
//! - `quota/consume-in-memory` and `quota/consume-write-through`: one
//!   consume with `quota.flush-ms = 1000` (written by the flusher) and
//!   with `flush-ms = 0` (each consume committed to redb before it
//!   returns).
//!
//! `cargo bench -p arw-host --bench gate`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arw_host::capabilities::quota::{QuotaConfig, QuotaStore, Window, WindowKind};
use arw_host::gating::{GateCaller, GateRequest};
use arw_host::source::EmbeddedSource;
use arw_host::{Host, HostConfig};
use arw_policy::{PolicySet, PolicySource, Principal};
use criterion::{Criterion, criterion_group, criterion_main};

const TEXT_STATS_MANIFEST: &str = include_str!("../../../manifests/text-stats.toml");
const GATING_MANIFEST: &str = include_str!("../../../manifests/gating.toml");
const POLICIES: &str = r#"
    permit(principal in Arw::Role::"operator", action == Arw::Action::"tool.invoke", resource);
    permit(principal == Arw::Component::"arw:gating", action == Arw::Action::"quota.consume", resource);
"#;
const INPUT: &str = r#"{"text":"the quick brown fox\njumps over the lazy dog"}"#;

/// 50 deny contracts, none matching a call of text-stats by the local
/// operator: other keys, other callers, other nodes, windows in the past.
fn fifty_contracts() -> String {
    let mut text = String::new();
    for i in 0..50 {
        let condition = match i % 4 {
            0 => format!("patterns = [\"bench:key{i}\", \"io:egress:http.host{i}.example:*\"]"),
            1 => format!("patterns = [\"io:ingress:tools.*\"]\ncaller-names = [\"someone-{i}\"]"),
            2 => format!("patterns = [\"*\"]\nnode-tags = [\"tag-{i}\"]"),
            _ => "patterns = [\"tools:*\", \"io:*\"]\nvalid-from = \"2020-01-01T00:00:00Z\"\nvalid-to = \"2020-01-02T00:00:00Z\""
                .to_string(),
        };
        text.push_str(&format!("[[contract]]\nid = \"c{i}\"\n{condition}\ndeny = true\n\n"));
    }
    text
}

/// A gate for [`start`]: its id, manifest, component and configuration.
struct Gate<'a> {
    id: &'a str,
    manifest: &'static str,
    wasm: &'static [u8],
    config: &'a str,
}

fn arw_gating(contracts: &str) -> Gate<'_> {
    Gate { id: "arw:gating", manifest: GATING_MANIFEST, wasm: arw_artifacts::GATING.bytes, config: contracts }
}

fn start(rt: &tokio::runtime::Runtime, dir: &std::path::Path, gated: Option<Gate<'_>>) -> Host {
    let mut config = HostConfig { state_dir: Some(dir.join("state")), allow_unsigned: true, ..HostConfig::default() };
    let mut source = EmbeddedSource::new().with("text-stats", TEXT_STATS_MANIFEST, arw_artifacts::TEXT_STATS.bytes);
    if let Some(gate) = gated {
        let file = dir.join("gate.conf");
        std::fs::write(&file, gate.config).unwrap_or_else(|e| panic!("{e}"));
        config.gating.gates = vec![gate.id.into()];
        config.gating.files.insert(gate.id.into(), file);
        source = source.with(gate.id, gate.manifest, gate.wasm);
    }
    let schema = arw_policy::schema::embedded().unwrap_or_else(|e| panic!("{e}"));
    let policies = PolicySet::from_sources(&schema, [PolicySource::new("bench.cedar", POLICIES)])
        .unwrap_or_else(|e| panic!("{e}"));
    let (host, refused) = rt.block_on(Host::start(config, policies, &source)).unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.is_empty(), "{refused:?}");
    host
}

fn gates(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    let (plain_dir, gated_dir, budget_dir) = (tempdir(), tempdir(), tempdir());
    let plain = start(&rt, plain_dir.path(), None);
    let contracts = fifty_contracts();
    let gated = start(&rt, gated_dir.path(), Some(arw_gating(&contracts)));
    let budget = format!(
        "[[contract]]\nid = \"budget\"\npatterns = [\"tools:*\"]\nbudget = {{ limit = 1000000000, window = \"1d\", kind = \"sliding\", per = \"caller\" }}\n\n{}",
        fifty_contracts()
    );
    let budgeted = start(&rt, budget_dir.path(), Some(arw_gating(&budget)));
    let empty_dir = tempdir();
    let empty = start(&rt, empty_dir.path(), Some(arw_gating("")));
    // The C gate, when built: 50 rules on other keys (every one tried).
    let c_dir = tempdir();
    let c_gate = std::env::var_os("ARW_BENCH_C_GATE").map(|path| {
        let wasm = std::fs::read(&path).unwrap_or_else(|e| panic!("ARW_BENCH_C_GATE: {e}"));
        let manifest = std::fs::read_to_string(std::path::Path::new(&path).with_file_name("manifest.toml"))
            .unwrap_or_else(|e| panic!("the manifest beside ARW_BENCH_C_GATE: {e}"));
        let rules: String = (0..50)
            .map(|i| match i % 2 {
                0 => format!("deny bench:key{i}\n"),
                _ => format!("deny-anonymous io:egress:http.h{i}*\n"),
            })
            .collect();
        let id = arw_host::manifest::Manifest::parse(&manifest).unwrap_or_else(|e| panic!("{e}")).id.to_string();
        let wasm: &'static [u8] = Box::leak(wasm.into_boxed_slice());
        let manifest: &'static str = Box::leak(manifest.into_boxed_str());
        start(&rt, c_dir.path(), Some(Gate { id: &id, manifest, wasm, config: &rules }))
    });
    let operator = |host: &Host| host.caller(Principal::local_operator());
    let (plain_caller, gated_caller) = (operator(&plain), operator(&gated));

    // Same answers before timing anything: the gate allows, the budget counts.
    let a = rt.block_on(plain.call(&plain_caller, "text-stats", INPUT)).unwrap_or_else(|e| panic!("{e}"));
    let b = rt.block_on(gated.call(&gated_caller, "text-stats", INPUT)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a, b);
    let caller = Arc::new(GateCaller::of(&Principal::local_operator(), Vec::new()));
    let request = GateRequest::new("tools:invoke", caller.clone());
    assert_eq!(rt.block_on(gated.gate(&request)), Ok(()));
    assert_eq!(rt.block_on(budgeted.gate(&request)), Ok(()));
    let ingress = GateRequest::new("io:ingress:tools.text-stats", caller.clone());
    // What the HTTP route of a tool call asks: its route and its tool, in one check.
    let mut route_and_tool =
        GateRequest::new("tools:invoke", gated_caller.gate_caller().clone()).and_key("io:ingress:tools.text-stats");
    route_and_tool.target.tool = Some("text-stats".into());
    route_and_tool.target.component = gated.tool_owner("text-stats");
    // As the server does from `Content-Length`: a pass covers no more bytes
    // than its check was told of.
    route_and_tool.size = INPUT.len() as u64;
    let allows = || gated.gates().counts().iter().filter(|(s, _)| s.verdict == "allow").map(|(_, n)| n).sum::<u64>();
    let before = allows();
    let pass = rt.block_on(gated.gate_pass(route_and_tool.clone())).unwrap_or_else(|e| panic!("{e}"));
    let context = arw_policy::RequestContext::default();
    let passed = rt.block_on(gated.call_passed(&gated_caller, "text-stats", INPUT, &context, pass));
    assert_eq!(passed.unwrap_or_else(|e| panic!("{e}")), a);
    assert_eq!(allows() - before, 1, "the call spent the pass instead of asking again");

    let mut group = c.benchmark_group("gate");
    group.bench_function("check-50-contracts", |b| {
        b.to_async(&rt).iter(|| async { black_box(gated.gate(&ingress).await) })
    });
    group.bench_function("check-no-contracts", |b| {
        b.to_async(&rt).iter(|| async { black_box(empty.gate(&ingress).await) })
    });
    group.bench_function("check-route-and-tool", |b| {
        b.to_async(&rt).iter(|| async { black_box(gated.gate(&route_and_tool).await) })
    });
    group.bench_function("check-budget", |b| {
        b.to_async(&rt).iter(|| async { black_box(budgeted.gate(&request).await) })
    });
    if let Some(c_gate) = &c_gate {
        assert_eq!(rt.block_on(c_gate.gate(&ingress)), Ok(()), "the C gate allows what no rule names");
        let named = GateRequest::new("bench:key8", caller.clone());
        assert!(rt.block_on(c_gate.gate(&named)).is_err(), "the C gate refuses what a rule names");
        group.bench_function("check-c-50-rules", |b| {
            b.to_async(&rt).iter(|| async { black_box(c_gate.gate(&ingress).await) })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("tool_call");
    group.bench_function("ungated", |b| {
        b.to_async(&rt).iter(|| async { black_box(plain.call(&plain_caller, "text-stats", INPUT).await) })
    });
    group.bench_function("gated", |b| {
        b.to_async(&rt).iter(|| async { black_box(gated.call(&gated_caller, "text-stats", INPUT).await) })
    });
    // As over HTTP: one check for the route and the tool, then the call
    // spends the pass instead of asking again.
    group.bench_function("gated-route-and-tool", |b| {
        b.to_async(&rt).iter(|| async {
            let pass = gated.gate_pass(route_and_tool.clone()).await.unwrap_or_else(|e| panic!("{e}"));
            let context = arw_policy::RequestContext::default();
            black_box(gated.call_passed(&gated_caller, "text-stats", INPUT, &context, pass).await)
        })
    });
    group.finish();

    let window = Window { limit: u64::MAX, window_ms: 86_400_000, kind: WindowKind::Sliding };
    let now = || SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let mut group = c.benchmark_group("quota");
    for (name, flush_ms) in [("consume-in-memory", 1000), ("consume-write-through", 0)] {
        let dir = tempdir();
        let store = QuotaStore::open(dir.path(), QuotaConfig { flush_ms, ..QuotaConfig::default() })
            .unwrap_or_else(|e| panic!("{e}"));
        group.bench_function(name, |b| b.iter(|| black_box(store.consume("bench", "caller", 1, window, now()))));
    }
    group.finish();

    for host in [plain, gated, budgeted, empty].into_iter().chain(c_gate) {
        rt.block_on(host.shutdown(Duration::from_secs(1)));
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(4));
    targets = gates
}
criterion_main!(benches);
