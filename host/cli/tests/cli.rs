//! The `arw` binary end to end: real processes, real components, real Cedar.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const ARW: &str = env!("CARGO_BIN_EXE_arw");

fn arw(state: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(ARW);
    cmd.arg("--state-dir").arg(state).args(args);
    // Keep the developer's own configuration, keys and registry out of the tests.
    cmd.env("XDG_CONFIG_HOME", state.join("config"));
    cmd.env("XDG_DATA_HOME", state.join("data"));
    for (key, _) in std::env::vars() {
        if key.starts_with("ARW_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn run(mut cmd: impl std::borrow::BorrowMut<Command>) -> Output {
    cmd.borrow_mut().stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run arw: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_out(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "arw failed: {}\n{}", output.status, text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&output.stdout)))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn call_runs_each_first_party_tool() {
    let state = tempdir();
    let out = run(arw(state.path(), &["call", "text-stats", "--input", r#"{"text":"one two\nthree"}"#]));
    assert_eq!(json_out(&out), serde_json::json!({"chars": 13, "words": 3, "lines": 2}));

    let out = run(arw(state.path(), &["call", "announce", "--input", r#"{"message":"hi"}"#]));
    assert!(json_out(&out)["id"].is_u64());

    // The announce process's own event-log subscriber heard the event (it is
    // delivered before that process stops) and recorded it in kv, where
    // this next process reads it back: the content, not just a shape.
    let out = run(arw(state.path(), &["call", "event-log", "--input", "{}"]));
    let events = json_out(&out)["events"].as_array().cloned().unwrap_or_default();
    assert!(
        events.iter().any(|e| e["topic"] == "demo.announce" && e["payload"] == "hi" && e["source"] == "arw:announce"),
        "{events:?}"
    );
}

#[test]
fn kv_counter_keeps_counting_across_processes() {
    let state = tempdir();
    for expected in 1..=3 {
        let out = run(arw(state.path(), &["call", "kv-counter", "--input", r#"{"name":"runs"}"#]));
        assert_eq!(json_out(&out), serde_json::json!({"value": expected}));
    }
}

#[test]
fn failed_calls_exit_one_with_a_coded_error() {
    let state = tempdir();
    let out = run(arw(state.path(), &["call", "nope", "--input", "{}"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("error[unknown-tool]: no tool named `nope`"), "{}", text(&out.stderr));

    let out = run(arw(state.path(), &["call", "text-stats", "--input", "{not json"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("error[invalid-input]"), "{}", text(&out.stderr));

    let out = run(arw(state.path(), &["call", "announce", "--input", r#"{"topic":"billing.x","message":1}"#]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    // The tool reports the capability's refusal as its own code: namespaced,
    // so it cannot pass for the host's `denied`.
    assert!(stderr.contains("error[tool:denied]") && stderr.contains("`bus.publish` on `billing.x`"), "{stderr}");
}

#[test]
fn components_json_shows_requested_capabilities_and_decisions() {
    let state = tempdir();
    let out = run(arw(state.path(), &["components", "--json"]));
    let listing = json_out(&out);
    let components = listing["components"].as_array().cloned().unwrap_or_default();
    let ids: Vec<&str> = components.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(
        ids,
        [
            "arw:announce",
            "arw:event-log",
            "arw:feedback",
            "arw:gating",
            "arw:kv-counter",
            "arw:queue-jetstream",
            "arw:queue-local",
            "arw:text-stats"
        ]
    );
    let event_log = &components[1];
    assert_eq!(event_log["worlds"], serde_json::json!(["subscriber", "tool"]));
    assert_eq!(event_log["grants"][0]["action"], "bus.subscribe");
    assert_eq!(event_log["grants"][0]["allowed"], true);

    // With an empty policy directory, every request is shown denied.
    let empty = tempdir();
    let out = run(arw(state.path(), &["components", "--json"]).arg("--policies").arg(empty.path()));
    let listing = json_out(&out);
    for c in listing["components"].as_array().cloned().unwrap_or_default() {
        for g in c["grants"].as_array().cloned().unwrap_or_default() {
            assert_eq!(g["allowed"], false, "{c}");
        }
    }
}

#[test]
fn policy_check_reports_file_and_line() {
    let state = tempdir();
    let out = run(arw(state.path(), &["policy", "check"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("ok: 17 policies"), "{}", text(&out.stdout));

    let dir = tempdir();
    std::fs::write(dir.path().join("ok.cedar"), "permit(principal, action, resource);\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("bad.cedar"), "// fine\n\npermit(principal,, action, resource);\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = run(arw(state.path(), &["policy", "check"]).arg(dir.path()));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bad.cedar:3:"), "{stderr}");

    // And the host refuses to start on them.
    let out = run(arw(state.path(), &["call", "text-stats", "--input", "{}"]).arg("--policies").arg(dir.path()));
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("does not start on invalid policies") && stderr.contains("bad.cedar:3:"), "{stderr}");
}

/// The probe as an unsigned component in a directory, requesting `capabilities`.
fn probe_dir(capabilities: &str) -> tempfile::TempDir {
    let components = tempdir();
    std::fs::copy(arw_artifacts::PROBE.path, components.path().join("probe.wasm")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        components.path().join("probe.toml"),
        format!("id = \"test:probe\"\nversion = \"1.0.0\"\nworlds = [\"tool\"]\n{capabilities}"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    components
}

/// Run the probe's `print` (one line to stdout, one to stderr) under `policy`.
fn print_through(components: &Path, policy: &str) -> std::process::Output {
    let state = tempdir();
    let policies = tempdir();
    std::fs::write(policies.path().join("p.cedar"), policy).unwrap_or_else(|e| panic!("{e}"));
    run(arw(
        state.path(),
        &["call", "probe", "--input", r#"{"op":"print","message":"hello-from-guest"}"#, "--log", "info"],
    )
    .arg("--components")
    .arg(components)
    .arg("--allow-unsigned")
    .arg("--policies")
    .arg(policies.path()))
}

const OPERATOR_INVOKES: &str =
    "permit(principal in Arw::Role::\"operator\", action == Arw::Action::\"tool.invoke\", resource);";

#[test]
fn guest_stdout_goes_to_the_log_tagged_with_the_component_when_granted() {
    let components = probe_dir("[[capabilities]]\naction = \"log.write\"\nresource = \"std*\"\n");
    let grant = "permit(principal == Arw::Component::\"test:probe\", action == Arw::Action::\"log.write\", resource) \
                 when { resource.name == \"stdout\" || resource.name == \"stderr\" };";
    let out = print_through(components.path(), &format!("{OPERATOR_INVOKES}\n{grant}"));
    assert_eq!(json_out(&out), serde_json::json!({"ok": null}));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("hello-from-guest")).collect();
    assert_eq!(lines.len(), 2, "one stdout and one stderr line expected:\n{stderr}");
    for line in &lines {
        assert!(line.contains("test:probe"), "{line}");
    }
    let tagged = |stream: &str| {
        lines.iter().any(|l| l.contains(&format!("stream={stream}")) || l.contains(&format!("stream=\"{stream}\"")))
    };
    assert!(tagged("stdout") && tagged("stderr"), "{lines:?}");
    assert!(!text(&out.stdout).contains("hello-from-guest"), "guest output must not reach the host's stdout");
}

#[test]
fn guest_stdout_without_a_grant_never_reaches_the_log() {
    // Requested but not permitted, then permitted but not requested: the
    // call succeeds (writing is not an error for the guest), the lines are
    // dropped and the refusal is audited.
    let requested = probe_dir("[[capabilities]]\naction = \"log.write\"\nresource = \"*\"\n");
    let unrequested = probe_dir("");
    let everything = "permit(principal, action == Arw::Action::\"log.write\", resource);";
    for (components, policy) in [
        (requested.path(), OPERATOR_INVOKES.to_string()),
        (unrequested.path(), format!("{OPERATOR_INVOKES}\n{everything}")),
    ] {
        let out = print_through(components, &policy);
        assert_eq!(json_out(&out), serde_json::json!({"ok": null}));
        let stderr = text(&out.stderr);
        assert!(!stderr.lines().any(|l| l.contains("hello-from-guest") && !l.contains("arw::audit")), "{stderr}");
        assert!(stderr.contains("action=log.write resource=stdout"), "the refusal is audited:\n{stderr}");
    }
}

#[test]
fn configuration_layers_file_and_environment() {
    let state = tempdir();
    // Environment: shrink the memory pool below what the manifests ask for.
    let out = run(arw(state.path(), &["call", "text-stats", "--input", "{}"]).env("ARW_ENGINE__MAX_MEMORY_MIB", "8"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("limits.memory-mib = 16 is over the host's engine.max-memory-mib = 8"), "{stderr}");

    // File: an unknown key is an error that names it.
    let config = state.path().join("arw.toml");
    std::fs::write(&config, "[engine]\nmax-instancez = 3\n").unwrap_or_else(|e| panic!("{e}"));
    let out = run(arw(state.path(), &["tools"]).arg("--config").arg(&config));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("max-instancez"), "{}", text(&out.stderr));

    // File: per-component config overrides the manifest's.
    std::fs::write(&config, "[components.\"arw:announce\".config]\ntopic = \"demo.from-config\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = run(arw(state.path(), &["call", "announce", "--input", r#"{"message":1}"#]).arg("--config").arg(&config));
    assert!(json_out(&out)["id"].is_u64());
    // A malformed value in a known section is refused; unrelated ARW_*
    // variables are not ours and are ignored.
    let out = run(arw(state.path(), &["tools"]).env("ARW_ENGINE__MAX_INSTANCES", "many"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).to_lowercase().contains("max-instances"), "{}", text(&out.stderr));
    let out = run(arw(state.path(), &["tools"]).env("ARW_SWAP__PROBATION_CALLS", "0"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("swap.probation-calls"), "{}", text(&out.stderr));
    let out = run(arw(state.path(), &["tools"]).env("ARW_SOMETHING_ELSE", "1"));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn up_logs_ready_and_drains_on_sigterm() {
    let state = tempdir();
    let mut child = arw(state.path(), &["up", "--grace", "5", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    // Kill the host if an assertion below fails, so no process outlives the test.
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = Command::new("kill").args(["-KILL", &self.0.to_string()]).stderr(Stdio::null()).status();
        }
    }
    let _guard = KillOnDrop(child.id());
    let mut lines = BufReader::new(stderr).lines();
    let started = Instant::now();
    let ready = loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("ready") => break line,
            Some(Ok(_)) => {}
            other => panic!("arw up ended before ready: {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no ready line");
    };
    assert!(ready.contains("components=8"), "{ready}");

    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap_or_else(|e| panic!("{e}"));
    assert!(killed.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "{status}: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}

#[test]
fn help_documents_every_command() {
    let out = run(Command::new(ARW).arg("--help"));
    let help = text(&out.stdout);
    for command in ["up", "call", "components", "tools", "policy"] {
        assert!(help.contains(command), "{command} missing from --help:\n{help}");
    }
}
