//! `arw gate ...` and arw:gating on a running `arw up`: presets, what a
//! request would meet, the contracts in force, the break-glass call, and
//! `gating.toml` edits picked up live (an invalid one keeps the old
//! contracts).

// Test helpers: an unwrap that fails is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

mod common;

use common::Home;

/// A home whose configuration puts arw:gating in front (its file is the
/// default, `$XDG_CONFIG_HOME/arw/gating.toml`).
fn gated_home() -> Home {
    let home = Home::new(
        "permit(principal in Arw::Role::\"operator\", action == Arw::Action::\"tool.invoke\", resource);\n\
         permit(principal == Arw::Caller::\"anonymous\", action == Arw::Action::\"tool.invoke\", resource);\n\
         permit(principal == Arw::Component::\"arw:gating\", action == Arw::Action::\"quota.consume\",\n\
                resource == Arw::QuotaNamespace::\"gating\");\n",
    );
    let config = home.root.join("config/arw");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.toml"), "[gating]\ngates = [\"arw:gating\"]\ntimeout-ms = 5000\n").unwrap();
    home
}

fn contracts_file(home: &Home) -> std::path::PathBuf {
    home.root.join("config/arw/gating.toml")
}

#[test]
fn presets_checks_listings_and_the_break_glass_call() {
    let home = gated_home();
    assert!(home.ok(&["gate", "preset", "standard"]).contains("wrote preset `standard`"));
    let written = std::fs::read_to_string(contracts_file(&home)).unwrap();
    assert!(written.contains("standard.no-anonymous-calls"));

    // What a request would meet, per caller.
    let (code, _) = home.fails(&["gate", "check", "tools:invoke", "--as", "anonymous"]);
    assert_eq!(code, Some(1));
    let out = home.run(&["gate", "check", "tools:invoke", "--as", "anonymous", "--json"]);
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdict["verdict"], "deny");
    assert_eq!(verdict["gate"], "arw:gating");
    assert_eq!(verdict["contract"], "standard.no-anonymous-calls");
    assert!(home.ok(&["gate", "check", "tools:invoke"]).starts_with("allow"), "the local operator is not anonymous");
    let (_, stderr) = home.fails(&["gate", "check", "tools:invoke", "--as", "nobody"]);
    assert!(stderr.contains("no caller `nobody`"), "{stderr}");
    let (_, stderr) = home.fails(&["gate", "check", "Not A Key"]);
    assert!(stderr.contains("not a gating key"), "{stderr}");

    // The keys with the contracts that cover them.
    let listing: serde_json::Value = serde_json::from_slice(&home.run(&["gate", "list", "--json"]).stdout).unwrap();
    let keys = listing["keys"].as_array().unwrap();
    let of = |key: &str| keys.iter().find(|k| k["key"] == key).unwrap()["gates"]["arw:gating"]["contracts"].clone();
    assert_eq!(of("tools:invoke"), serde_json::json!(["standard.no-anonymous-calls"]));
    assert_eq!(of("io:ingress:tools.text-stats"), serde_json::json!(["standard.no-anonymous-calls"]));
    assert_eq!(of("health:live"), serde_json::json!([]));

    // A time window, checked --at a time inside and outside it.
    std::fs::write(
        contracts_file(&home),
        "[[contract]]\nid = \"window\"\npatterns = [\"*\"]\ndeny = true\n\
         valid-from = \"2026-12-24T12:00:00Z\"\nvalid-to = \"2026-12-24T13:00:00Z\"\n",
    )
    .unwrap();
    home.fails(&["gate", "check", "tools:invoke", "--at", "2026-12-24T12:30:00Z"]);
    home.ok(&["gate", "check", "tools:invoke", "--at", "2026-12-24T13:00:00Z"]);
    let (_, stderr) = home.fails(&["gate", "check", "tools:invoke", "--at", "noon"]);
    assert!(stderr.contains("RFC 3339"), "{stderr}");

    // Everything denied: `arw call` is refused, `--break-glass` is not.
    std::fs::write(contracts_file(&home), "[[contract]]\nid = \"all\"\npatterns = [\"*\"]\ndeny = true\n").unwrap();
    let (code, stderr) = home.fails(&["call", "text-stats", "--input", "{\"text\":\"a b\"}"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("error[gate-denied]") && stderr.contains("contract `all`"), "{stderr}");
    let out = home.ok(&["call", "text-stats", "--break-glass", "--input", "{\"text\":\"a b\"}"]);
    assert!(out.contains("\"words\":2"), "{out}");

    // A broken file: `arw gate contracts` names the line.
    std::fs::write(contracts_file(&home), "[[contract]]\nid = \"x\"\npatterns = [\"tools*\"]\ndeny = true\n").unwrap();
    let out = home.run(&["gate", "contracts"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("gating.toml:1") && stdout.contains("REFUSED") && stdout.contains("tools:*"), "{stdout}");

    // The preset keeps what it replaces.
    home.ok(&["gate", "preset", "relaxed"]);
    let kept = std::fs::read_to_string(home.root.join("config/arw/gating.toml.previous")).unwrap();
    assert!(kept.contains("tools*"), "{kept}");
    let (_, stderr) = home.fails(&["gate", "preset", "paranoid"]);
    assert!(stderr.contains("strict, standard, relaxed"), "{stderr}");
}

/// Poll `url` until its status is `want` (bounded).
fn wait_status(url: &str, want: u16) {
    let client = reqwest::blocking::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let started = Instant::now();
    loop {
        let status = client.get(url).send().map(|r| r.status().as_u16()).unwrap_or(0);
        if status == want {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{url} stayed {status}, not {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_running_host_follows_edits_of_gating_toml() {
    let home = gated_home();
    let up = home.up(&[]);
    let health = format!("{}/healthz", up.base);
    wait_status(&health, 200);
    // An edit is put in force without a restart.
    let deny = "[[contract]]\nid = \"no-health\"\npatterns = [\"health:*\"]\ndeny = true\n";
    std::fs::write(contracts_file(&home), deny).unwrap();
    wait_status(&health, 403);
    // `arw status` shows the gate and counts the refusals (the status file
    // is written every few seconds: bounded wait).
    let started = std::time::Instant::now();
    loop {
        let status: serde_json::Value = serde_json::from_str(&home.ok(&["status", "--json"])).unwrap();
        let gate = &status["gates"][0];
        if gate["gate"] == "arw:gating" && gate["denied"].as_u64().unwrap_or(0) >= 1 {
            assert!(gate["allowed"].as_u64().unwrap_or(0) >= 1, "{gate}");
            assert!(gate["refused"].is_null(), "{gate}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "arw status never counted the refusal: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let human = home.ok(&["status"]);
    assert!(human.contains("gate arw:gating (") && human.contains(" denied, "), "{human}");
    // An invalid edit keeps it in force; the next valid one replaces it.
    std::fs::write(contracts_file(&home), "[[contract]]\nid = \"oops\"\npatterns = [\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    wait_status(&health, 403);
    // `arw gate preset` (an atomic replace) is picked up the same way.
    home.ok(&["gate", "preset", "relaxed"]);
    wait_status(&health, 200);
    drop(up);
}

/// With `quota.flush-ms = 0`, a budget's count survives `kill -9`: after
/// three of three requests, the host killed and started again refuses the
/// fourth with 429 and `Retry-After`.
#[test]
fn a_budget_survives_a_crash_when_every_consume_is_committed() {
    let home = gated_home();
    std::fs::write(
        home.root.join("config/arw/config.toml"),
        "[gating]\ngates = [\"arw:gating\"]\ntimeout-ms = 5000\n\n[quota]\nflush-ms = 0\n",
    )
    .unwrap();
    // A window of ten years: no window boundary falls inside the test.
    std::fs::write(
        contracts_file(&home),
        "[[contract]]\nid = \"three\"\npatterns = [\"health:live\"]\n\
         budget = { limit = 3, window = \"3650d\", kind = \"fixed\", per = \"caller\" }\n",
    )
    .unwrap();
    let client = reqwest::blocking::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let up = home.up(&[]);
    for _ in 0..3 {
        assert_eq!(client.get(format!("{}/healthz", up.base)).send().unwrap().status(), 200);
    }
    drop(up); // SIGKILL: no clean stop, no final flush.
    // The killed host's status file names its old address.
    std::fs::remove_file(home.root.join("state/status.json")).unwrap();
    let up = home.up(&[]);
    let refused = client.get(format!("{}/healthz", up.base)).send().unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_some());
    let problem: serde_json::Value = refused.json().unwrap();
    assert_eq!(problem["code"], "gate-retry-later");
    assert!(problem["detail"].as_str().unwrap().contains("contract `three`"), "{problem}");
}
