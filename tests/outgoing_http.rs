//! `wasi:http` outgoing requests as a granted capability: Cedar decides
//! `http.request` per target `host:port` (and the manifest must ask for it),
//! with a timeout and a response-size cap. The target is a real HTTP server
//! on 127.0.0.1; the guest is the probe, using the `wasip2` crate's
//! `wasi:http` bindings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use arw_artifacts as artifacts;
use arw_host::{CallError, Host};
use arw_policy::Principal;
use arw_tests::{Components, config, policies, probe_manifest};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A tiny HTTP/1.1 server: `/hello` → "hi", `/big` → 64 KiB, `/slow` → an
/// answer after 3 s, `/trickle` → one byte every 100 ms for 10 s. Returns
/// its port.
async fn serve() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                if path == "/trickle" {
                    let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n").await;
                    for _ in 0..100 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        if socket.write_all(b".").await.is_err() {
                            return;
                        }
                    }
                    return;
                }
                let body = match path.as_str() {
                    "/hello" => "hi".to_string(),
                    "/big" => "x".repeat(64 << 10),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        "late".to_string()
                    }
                    _ => "not found".to_string(),
                };
                let response =
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

async fn host_with(capabilities: &[(&str, &str)], policy: &str) -> (Host, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let mut config = config(state.path());
    config.outgoing_http.timeout_ms = 500;
    config.outgoing_http.max_response_bytes = 16 << 10;
    let components = Components::new().with(&probe_manifest("test:fetch", capabilities, &[]), artifacts::PROBE.bytes);
    let (host, refused) = Host::start(config, policies(&[policy]), &components).await.unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    (host, state)
}

async fn get(host: &Host, url: &str) -> Result<serde_json::Value, CallError> {
    let operator = host.caller(Principal::local_operator());
    host.call(&operator, "probe", &json!({"op": "http.get", "url": url}).to_string()).await
}

fn tool_code(result: &Result<serde_json::Value, CallError>) -> String {
    match result {
        Err(CallError::Tool { code, .. }) => code.clone(),
        other => panic!("expected a tool error, got {other:?}"),
    }
}

const OPERATOR: &str = r#"permit(principal in Arw::Role::"operator", action == Arw::Action::"tool.invoke", resource);"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_host_succeeds_and_any_other_is_refused() {
    let allowed = serve().await;
    let other = serve().await;
    let policy = format!(
        "{OPERATOR}\n@id(\"fetch-local\") permit(principal == Arw::Component::\"test:fetch\", \
         action == Arw::Action::\"http.request\", resource == Arw::HttpAuthority::\"127.0.0.1:{allowed}\");"
    );
    // The manifest asks for any local port; Cedar grants one.
    let (host, _state) = host_with(&[("http.request", "127.0.0.1:*")], &policy).await;
    let mut audit = host.bus().observe();

    let answer = get(&host, &format!("http://127.0.0.1:{allowed}/hello")).await.unwrap();
    assert_eq!(answer["ok"], json!({"status": 200, "body": "hi"}));

    let refused = get(&host, &format!("http://127.0.0.1:{other}/hello")).await;
    assert_eq!(tool_code(&refused), "denied");
    let refused = get(&host, "http://example.com/").await;
    assert_eq!(tool_code(&refused), "denied", "no DNS lookup, no connection: refused first");

    // Each refusal is audited with the authority that was asked for (the
    // second within the coalescing window, so reported at the flush).
    host.flush_audit();
    let denied: Vec<serde_json::Value> =
        arw_tests::drain(&mut audit).iter().filter(|e| e.topic == "audit.denied").filter_map(|e| e.json()).collect();
    let resources: Vec<&str> = denied.iter().filter_map(|d| d["resource"].as_str()).collect();
    assert!(resources.contains(&format!("127.0.0.1:{other}").as_str()), "{denied:?}");
    assert!(resources.contains(&"example.com:80"), "{denied:?}");
    let http: Vec<&serde_json::Value> = denied.iter().filter(|d| d["action"] == "http.request").collect();
    assert_eq!(http.len(), 2, "one event per refused request: {denied:?}");
    host.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_by_default_without_a_policy_or_without_a_manifest_request() {
    let port = serve().await;
    let url = format!("http://127.0.0.1:{port}/hello");
    // Requested but not granted.
    let (host, _state) = host_with(&[("http.request", "127.0.0.1:*")], OPERATOR).await;
    assert_eq!(tool_code(&get(&host, &url).await), "denied");
    host.shutdown(Duration::from_secs(1)).await;

    // Granted by a (too broad) policy, but not requested in the manifest.
    let everything = format!("{OPERATOR}\npermit(principal, action == Arw::Action::\"http.request\", resource);");
    let (host, _state) = host_with(&[], &everything).await;
    assert_eq!(tool_code(&get(&host, &url).await), "denied");
    host.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_capped_in_size_and_time() {
    let port = serve().await;
    let policy = format!("{OPERATOR}\npermit(principal, action == Arw::Action::\"http.request\", resource);");
    let (host, _state) = host_with(&[("http.request", "127.0.0.1:*")], &policy).await;

    // 64 KiB against a 16 KiB cap: the body stream fails with the reason
    // (wasmtime-wasi-http reports it as a stream error, not an error code).
    let big = get(&host, &format!("http://127.0.0.1:{port}/big")).await;
    assert_eq!(tool_code(&big), "http-error", "{big:?}");
    assert!(format!("{big:?}").contains("body size exceeds limit: 16384 bytes"), "{big:?}");
    // 3 s against a 500 ms timeout.
    let started = std::time::Instant::now();
    let slow = get(&host, &format!("http://127.0.0.1:{port}/slow")).await;
    assert_eq!(tool_code(&slow), "http-error", "{slow:?}");
    assert!(format!("{slow:?}").contains("Timeout"), "{slow:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "the host did not wait for the slow server");
    // And the host still answers.
    assert_eq!(get(&host, &format!("http://127.0.0.1:{port}/hello")).await.unwrap()["ok"]["body"], "hi");
    host.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_on_a_trickling_response_ends_at_the_component_deadline() {
    let port = serve().await;
    let policy = format!("{OPERATOR}\npermit(principal, action == Arw::Action::\"http.request\", resource);");
    // Each byte arrives well within the 500 ms between-bytes timeout; only
    // the component's own 1 s deadline (the manifest default) can stop it.
    let (host, _state) = host_with(&[("http.request", "127.0.0.1:*")], &policy).await;
    let started = std::time::Instant::now();
    let result = get(&host, &format!("http://127.0.0.1:{port}/trickle")).await;
    assert!(matches!(result, Err(CallError::Timeout { limit_ms: 1000, .. })), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "stopped at the deadline, not when the server finished");
    assert_eq!(get(&host, &format!("http://127.0.0.1:{port}/hello")).await.unwrap()["ok"]["body"], "hi");
    host.shutdown(Duration::from_secs(1)).await;
}

/// Hardening #9: the host resolves the name and checks the address it will
/// connect to. `localhost` resolves to 127.0.0.1: a grant on the name (or
/// on everything) does not reach it; only a grant that names the address
/// literally does. A wildcard grant never reaches a special address even
/// when the guest writes the address itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_wildcards_do_not_reach_loopback_only_literal_grants_do() {
    let port = serve().await;
    let everything = format!("{OPERATOR}\npermit(principal, action == Arw::Action::\"http.request\", resource);");
    let by_name = format!("http://localhost:{port}/hello");
    let by_address = format!("http://127.0.0.1:{port}/hello");

    // Granted by name only: the name resolves to loopback, refused.
    let (host, _state) = host_with(&[("http.request", "localhost:*")], &everything).await;
    let mut audit = host.bus().observe();
    let refused = get(&host, &by_name).await;
    assert_eq!(tool_code(&refused), "denied", "{refused:?}");
    let denied: Vec<serde_json::Value> =
        arw_tests::drain(&mut audit).iter().filter(|e| e.topic == "audit.denied").filter_map(|e| e.json()).collect();
    assert!(
        denied.iter().any(|d| d["reason"].as_str().unwrap_or_default().contains("a loopback address")),
        "the refusal says where the name led: {denied:?}"
    );
    host.shutdown(Duration::from_secs(1)).await;

    // A wildcard grant, with the address written by the guest: refused.
    let (host, _state) = host_with(&[("http.request", "*:*")], &everything).await;
    assert_eq!(tool_code(&get(&host, &by_address).await), "denied");
    assert_eq!(tool_code(&get(&host, &by_name).await), "denied");
    host.shutdown(Duration::from_secs(1)).await;

    // The name and the literal address both requested and permitted: reached.
    let (host, _state) =
        host_with(&[("http.request", "localhost:*"), ("http.request", "127.0.0.1:*")], &everything).await;
    assert_eq!(get(&host, &by_name).await.unwrap()["ok"]["body"], "hi");
    assert_eq!(get(&host, &by_address).await.unwrap()["ok"]["body"], "hi");
    host.shutdown(Duration::from_secs(1)).await;

    // Requested literally, but Cedar permits only the name: refused.
    let name_only = format!(
        "{OPERATOR}\npermit(principal, action == Arw::Action::\"http.request\", resource) when {{ resource.name like \"localhost:*\" }};"
    );
    let (host, _state) =
        host_with(&[("http.request", "localhost:*"), ("http.request", "127.0.0.1:*")], &name_only).await;
    assert_eq!(tool_code(&get(&host, &by_name).await), "denied");
    host.shutdown(Duration::from_secs(1)).await;
}
