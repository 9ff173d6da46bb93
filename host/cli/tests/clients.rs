//! Third-party clients against a real `arw up`:
//!
//! - the official Python MCP SDK connects to `/mcp`, lists and calls tools,
//!   sees a refusal as a tool error and hears `tools/list_changed`;
//! - `schemathesis` fuzzes every route of `/spec/openapi.json` against the
//!   live server: no 5xx, status codes, content types and bodies as
//!   documented;
//! - `@asyncapi/parser` parses and validates the AsyncAPI document, as
//!   served and as committed in `spec/`.
//!
//! The clients live in `$ARW_TOOLS_DIR` (default `~/.cache/arw/tools`),
//! where `scripts/test.sh` installs them (`py/` venv, `node/` modules). CI
//! sets `ARW_REQUIRE_CLIENTS=1` so a missing client fails there instead of
//! skipping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::Home;

const POLICIES: &str = include_str!("../../../policies/default.cedar");
const TOKEN: &str = "clients-test-admin-token-0123456789";

fn tools_dir() -> PathBuf {
    std::env::var_os("ARW_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/arw/tools")))
        .unwrap()
}

/// The path of a client, or None (skip) when it is not installed and not
/// required.
fn client(relative: &str) -> Option<PathBuf> {
    let path = tools_dir().join(relative);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("ARW_REQUIRE_CLIENTS").is_none(),
        "ARW_REQUIRE_CLIENTS is set but {} is missing (scripts/test.sh installs it)",
        path.display()
    );
    eprintln!("skipping: {} is not installed (run scripts/test.sh)", path.display());
    None
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients").join(name)
}

#[test]
fn the_python_mcp_sdk_lists_calls_and_hears_list_changes() {
    let Some(python) = client("py/bin/python") else { return };
    let home = Home::new(POLICIES);
    let up = home.up(&[]);
    let mut mcp = Command::new(python)
        .arg(script("mcp_client.py"))
        .arg(format!("{}/mcp", up.base))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(mcp.stdout.take().unwrap()).lines();
    let mut transcript = Vec::new();
    loop {
        let line =
            lines.next().unwrap_or_else(|| panic!("the client ended early:\n{}", transcript.join("\n"))).unwrap();
        transcript.push(line.clone());
        if line == "READY" {
            break;
        }
    }
    let transcript_text = transcript.join("\n");
    assert!(transcript_text.contains("text-stats: {'chars': 27"), "{transcript_text}");
    assert!(transcript_text.contains("kv-counter: tool error: denied"), "{transcript_text}");
    assert!(transcript_text.contains("feedback tools: denied to anonymous"), "{transcript_text}");

    // Uninstalling a component changes the tool list: the session hears it.
    home.ok(&["uninstall", "arw:event-log"]);
    transcript.extend(lines.map_while(Result::ok));
    let status = mcp.wait().unwrap();
    let transcript = transcript.join("\n");
    assert!(status.success(), "{transcript}");
    let changed = transcript.lines().find(|l| l.starts_with("changed:")).unwrap_or_else(|| panic!("{transcript}"));
    assert!(!changed.contains("event-log") && changed.contains("text-stats"), "{changed}");
}

#[test]
fn schemathesis_finds_the_live_api_as_documented() {
    let Some(schemathesis) = client("py/bin/schemathesis") else { return };
    let home = Home::new(POLICIES);
    home.setup_acme();
    assert!(home.publish("1.0.0", "description = \"echo\"\n").status.success());
    // A high admin rate limit, so the admin routes are exercised rather than
    // refused with 429 (which is documented, and tested elsewhere).
    let up = home.up(&[
        ("ARW_HTTP__ADMIN_TOKEN", TOKEN),
        ("ARW_HTTP__ADMIN_RATE_PER_MINUTE", "1000000"),
        ("ARW_HTTP__ADMIN_BURST", "100000"),
    ]);
    let out = Command::new(schemathesis)
        .args(["run", &format!("{}/spec/openapi.json", up.base)])
        // Every check but positive_data_acceptance: an invoke body is valid
        // for the generic route's schema (any object) yet refused by the
        // tool's own input schema, which is per tool (see GET /tools).
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        // An event stream never ends; tests/http_events.rs covers it.
        .args(["--exclude-path", "/events"])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--max-examples", "40", "--seed", "1", "--workers", "1"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "schemathesis found problems:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("passed"), "{stdout}");
    // The host is still up and healthy after the fuzzing.
    let health = reqwest::blocking::get(format!("{}/healthz", up.base)).unwrap();
    assert_eq!(health.status(), 200);
}

#[test]
fn the_asyncapi_parser_validates_the_served_and_the_committed_document() {
    let Some(modules) = client("node/node_modules/@asyncapi/parser") else { return };
    let node_modules = modules.parent().and_then(|p| p.parent()).unwrap().to_path_buf();
    let home = Home::new(POLICIES);
    let up = home.up(&[]);
    let served = reqwest::blocking::get(format!("{}/spec/asyncapi.yaml", up.base)).unwrap().text().unwrap();
    let served_path = home.root.join("asyncapi.yaml");
    std::fs::write(&served_path, &served).unwrap();
    let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spec/asyncapi.yaml");
    for document in [served_path, committed] {
        let out = Command::new("node")
            .arg(script("asyncapi_validate.mjs"))
            .arg(&document)
            .env("ARW_NODE_MODULES", &node_modules)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}:\n{stdout}\n{}", document.display(), String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("VALID: AsyncAPI 3.1.0"), "{stdout}");
        assert!(stdout.contains("bus.gap") && stdout.contains("audit.denied"), "{stdout}");
    }
}
