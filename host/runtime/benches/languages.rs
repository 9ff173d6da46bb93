//! What each authoring language costs at run time, through the ARW path:
//! component size, cold start (compile + link + health check, empty AOT
//! cache), warm start (`.cwasm` from the AOT cache + link + health check),
//! the first call after a warm start, and the steady per-call time
//! (`Host::call`: Cedar, schema check, fresh instance, run).
//!
//! The components are the `slugify` examples, built by
//! `scripts/bench-languages.sh`, which runs this with
//! `ARW_BENCH_LANGS_DIR` set; without it this bench does nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arw_host::source::DirectorySource;
use arw_host::{Host, HostConfig};
use arw_policy::{PolicySet, PolicySource, Principal};

const POLICIES: &str = r#"
    permit(principal in Arw::Role::"operator", action == Arw::Action::"tool.invoke", resource);
    permit(principal is Arw::Component, action in [Arw::Action::"config.read", Arw::Action::"kv.read", Arw::Action::"kv.write"], resource);
"#;
const INPUT: &str = r#"{"text":"Crème Brûlée, the Quick brown fox!"}"#;

fn policies() -> PolicySet {
    let schema = arw_policy::schema::embedded().unwrap_or_else(|e| panic!("{e}"));
    PolicySet::from_sources(&schema, [PolicySource::new("bench.cedar", POLICIES)]).unwrap_or_else(|e| panic!("{e}"))
}

fn config(state: &Path) -> HostConfig {
    let mut config = HostConfig { state_dir: Some(state.to_path_buf()), allow_unsigned: true, ..HostConfig::default() };
    config.engine.max_instances = 16;
    config
}

async fn start(dir: &Path, state: &Path) -> (Host, Duration) {
    let started = Instant::now();
    let (host, refused) =
        Host::start(config(state), policies(), &DirectorySource::new(dir)).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.is_empty(), "{refused:?}");
    (host, started.elapsed())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

async fn measure(lang: &str, dir: &Path) -> String {
    let wasm = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "wasm"))
        .unwrap_or_else(|| panic!("no .wasm in {}", dir.display()));
    let tool = wasm.file_stem().unwrap_or_default().to_string_lossy().to_string();
    let size = std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0);
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));

    let (host, cold) = start(dir, state.path()).await;
    host.shutdown(Duration::from_secs(5)).await;
    let (host, warm) = start(dir, state.path()).await;
    let operator = host.caller(Principal::local_operator());
    let started = Instant::now();
    host.call(&operator, &tool, INPUT).await.unwrap_or_else(|e| panic!("{lang}: {e}"));
    let first = started.elapsed();

    // Steady state: enough calls for a second or so.
    let mut samples = Vec::new();
    let budget = Instant::now();
    while samples.len() < 20 || (budget.elapsed() < Duration::from_secs(2) && samples.len() < 5000) {
        let started = Instant::now();
        host.call(&operator, &tool, INPUT).await.unwrap_or_else(|e| panic!("{lang}: {e}"));
        samples.push(started.elapsed());
    }
    samples.sort();
    let p50 = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];
    host.shutdown(Duration::from_secs(5)).await;
    format!(
        "| {lang} | {:.1} KB | {} | {} | {} | {} | {} | {} |",
        size as f64 / 1024.0,
        ms(cold),
        ms(warm),
        us(first),
        us(p50),
        us(p99),
        samples.len()
    )
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let Some(root) = std::env::var_os("ARW_BENCH_LANGS_DIR").map(PathBuf::from) else {
        eprintln!("ARW_BENCH_LANGS_DIR is not set: run scripts/bench-languages.sh");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    println!(
        "| language | size | cold start (compile) | warm start (AOT) | first call | per call p50 | per call p99 | calls |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for lang in ["rust", "c", "js", "python"] {
        let dir = root.join(lang);
        if dir.is_dir() {
            println!("{}", runtime.block_on(measure(lang, &dir)));
        }
    }
}
