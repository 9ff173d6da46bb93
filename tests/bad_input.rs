//! Bad components and bad policies are refused with a message naming the
//! file and the reason; the host does not start on invalid policies and
//! keeps running the good components when one is bad.

use std::path::Path;

use arw_host::LoadError;
use arw_host::source::DirectorySource;
use arw_policy::{PolicySet, PolicySource};
use arw_tests::{Components, OPERATOR_INVOKES, TestHost, artifacts, manifests};
use serde_json::json;

/// A minimal core module: `\0asm` version 1, no sections.
const CORE_MODULE: &[u8] = b"\0asm\x01\0\0\0";

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{e}"));
}

fn manifest(id: &str, worlds: &str) -> String {
    format!("id = {id:?}\nversion = \"1.0.0\"\nworlds = {worlds}\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn each_bad_component_is_refused_with_its_file_and_reason() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    // One good component among the bad ones.
    write(d, "good.toml", manifests::TEXT_STATS.as_bytes());
    write(d, "good.wasm", artifacts::TEXT_STATS.bytes);
    // Malformed: not wasm at all.
    write(d, "garbage.toml", manifest("bad:garbage", "[\"tool\"]").as_bytes());
    write(d, "garbage.wasm", b"this is not wasm");
    // Truncated component: right header, broken body.
    write(d, "truncated.toml", manifest("bad:truncated", "[\"tool\"]").as_bytes());
    write(d, "truncated.wasm", &artifacts::TEXT_STATS.bytes[..artifacts::TEXT_STATS.bytes.len() / 2]);
    // A core module instead of a component.
    write(d, "core.toml", manifest("bad:core", "[\"tool\"]").as_bytes());
    write(d, "core.wasm", CORE_MODULE);
    // A tool declared as a subscriber: wrong world.
    write(d, "world.toml", manifest("bad:world", "[\"subscriber\"]").as_bytes());
    write(d, "world.wasm", artifacts::TEXT_STATS.bytes);
    // An invalid manifest.
    write(d, "invalid.toml", b"id = \"bad:invalid\"\nversion = \"not-semver\"\nworlds = [\"tool\"]\n");
    write(d, "invalid.wasm", artifacts::TEXT_STATS.bytes);
    // A request for an action no capability of this host gives.
    let unknown = format!(
        "{}[[capabilities]]\naction = \"kv.delete\"\nresource = \"x\"\n",
        manifest("bad:unknown", "[\"tool\"]")
    );
    write(d, "unknown.toml", unknown.as_bytes());
    write(d, "unknown.wasm", artifacts::TEXT_STATS.bytes);
    // A manifest whose component file is missing.
    write(d, "missing.toml", manifest("bad:missing", "[\"tool\"]").as_bytes());
    // A manifest pointing outside its directory.
    write(d, "escape.toml", format!("{}component = \"../x.wasm\"\n", manifest("bad:escape", "[\"tool\"]")).as_bytes());

    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = arw_tests::config(state.path());
    config.allow_unsigned = true; // a directory source is unsigned
    let (host, refused) =
        arw_host::Host::start(config, arw_tests::policies(&[OPERATOR_INVOKES]), &DirectorySource::new(d))
            .await
            .unwrap_or_else(|e| panic!("{e}"));

    let messages: Vec<String> = refused.iter().map(ToString::to_string).collect();
    let find = |file: &str| {
        messages
            .iter()
            .find(|m| m.contains(file))
            .cloned()
            .unwrap_or_else(|| panic!("nothing about {file} in {messages:#?}"))
    };
    assert!(find("garbage.wasm").contains("not a WebAssembly file"));
    assert!(find("truncated.wasm").contains("invalid component"));
    assert!(find("core.wasm").contains("core WebAssembly module, not a component"));
    let world = find("world.wasm");
    assert!(
        world.contains("declares world `subscriber` but does not export `arw:host/event-handler@0.2.0`"),
        "{world}"
    );
    assert!(find("invalid.toml").contains("invalid manifest"));
    assert!(find("missing.wasm").contains("cannot read"));
    assert!(find("escape.toml").contains("relative path inside"));
    let unknown = find("unknown.wasm");
    assert!(unknown.contains("unknown action `kv.delete`") && unknown.contains("kv.write"), "{unknown}");
    assert_eq!(refused.len(), 8, "{messages:#?}");
    assert!(refused.iter().any(|e| matches!(e, LoadError::WrongWorld { .. })));

    // The good one runs.
    let operator = host.caller(arw_policy::Principal::local_operator());
    let out = host.call(&operator, "text-stats", r#"{"text":"still fine"}"#).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out["words"], 2);
    assert_eq!(host.components().len(), 1);
    host.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_ids_and_tool_names_are_refused() {
    let renamed = manifests::TEXT_STATS.replace("arw:text-stats", "arw:text-stats-2");
    let t = TestHost::start(
        Components::new()
            .with(manifests::TEXT_STATS, artifacts::TEXT_STATS.bytes)
            .with(manifests::TEXT_STATS, artifacts::TEXT_STATS.bytes)
            .with(&renamed, artifacts::TEXT_STATS.bytes),
        &[OPERATOR_INVOKES],
    )
    .await;
    let messages: Vec<String> = t.refused.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].contains("component id `arw:text-stats` is already loaded"), "{messages:?}");
    assert!(messages[1].contains("tool name `text-stats` is already provided"), "{messages:?}");
    assert_eq!(t.ok("text-stats", json!({"text": "x"})).await["words"], 1);
    t.stop().await;
}

#[test]
fn invalid_policies_are_refused_with_file_and_line() {
    let schema = arw_policy::schema::embedded().unwrap_or_else(|e| panic!("{e}"));
    let good = PolicySource::new("policies/good.cedar", OPERATOR_INVOKES);
    let syntax = PolicySource::new("policies/syntax.cedar", "// a comment\n\npermit(principal, action resource);\n");
    let schema_error = PolicySource::new(
        "policies/schema.cedar",
        "permit(principal, action, resource);\npermit(principal, action == Arw::Action::\"kv.erase\", resource);\n",
    );
    let err = PolicySet::from_sources(&schema, [good.clone(), syntax, schema_error]).unwrap_err();
    let rendered: Vec<String> = err.diagnostics().iter().map(ToString::to_string).collect();
    assert!(rendered.iter().any(|d| d.starts_with("policies/syntax.cedar:3:")), "{rendered:#?}");
    // Syntax errors stop before validation; fix it and the schema error shows.
    let err = PolicySet::from_sources(
        &schema,
        [
            good,
            PolicySource::new(
                "policies/schema.cedar",
                "\npermit(principal, action == Arw::Action::\"kv.erase\", resource);\n",
            ),
        ],
    )
    .unwrap_err();
    let d = &err.diagnostics()[0];
    assert_eq!((d.file.as_str(), d.line), ("policies/schema.cedar", Some(2)), "{d}");
    assert!(d.message.contains("kv.erase"), "{d}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_components_are_refused_unless_allowed() {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let source =
        arw_host::source::EmbeddedSource::new().with("text-stats", manifests::TEXT_STATS, artifacts::TEXT_STATS.bytes);
    let (host, refused) =
        arw_host::Host::start(arw_tests::config(state.path()), arw_tests::policies(&[OPERATOR_INVOKES]), &source)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(refused.as_slice(), [LoadError::Unsigned { .. }]), "{refused:?}");
    assert!(refused[0].to_string().contains("--allow-unsigned"), "{}", refused[0]);
    assert!(host.components().is_empty());
    host.shutdown(std::time::Duration::from_secs(1)).await;

    let mut config = arw_tests::config(state.path());
    config.allow_unsigned = true;
    let (host, refused) = arw_host::Host::start(config, arw_tests::policies(&[OPERATOR_INVOKES]), &source)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(host.components()[0].publisher, None);
    host.shutdown(std::time::Duration::from_secs(1)).await;
}

/// Hardening #8: a signed manifest may not ask for more than the host
/// allows: each ceiling is named in the refusal, with the fix.
#[tokio::test(flavor = "multi_thread")]
async fn manifests_asking_past_the_hosts_ceilings_are_refused() {
    let probe =
        |limits: &str| format!("id = \"test:probe\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n[limits]\n{limits}\n");
    let cases = [
        ("timeout-ms = 86400000", "limits.timeout-ms = 86400000 is over the host's limits.max-timeout-ms = 60000"),
        ("concurrency = 1000", "limits.concurrency = 1000 is over the host's limits.max-concurrency = 32"),
        ("memory-mib = 4096", "limits.memory-mib = 4096 is over the host's engine.max-memory-mib = 64"),
    ];
    for (limits, expected) in cases {
        let t =
            TestHost::start(Components::new().with(&probe(limits), artifacts::PROBE.bytes), &[OPERATOR_INVOKES]).await;
        let messages: Vec<String> = t.refused.iter().map(ToString::to_string).collect();
        assert!(
            messages.iter().any(|m| m.contains(expected) && m.contains("raise the host's")),
            "{limits}: {messages:?}"
        );
        assert!(t.host.components().is_empty());
        t.stop().await;
    }
    // The pool: concurrency must leave room in engine.max-instances.
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = arw_tests::config(state.path());
    config.engine.max_instances = 4;
    let components = Components::new().with(&probe("concurrency = 8"), artifacts::PROBE.bytes);
    let (host, refused) = arw_host::Host::start(config, arw_tests::policies(&[OPERATOR_INVOKES]), &components)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let message = refused.first().map(ToString::to_string).unwrap_or_default();
    assert!(message.contains("over the 3 instance-pool slots"), "{message}");
    host.shutdown(std::time::Duration::from_secs(1)).await;
}
