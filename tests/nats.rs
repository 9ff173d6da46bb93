//! `arw:host/nats` on a real `nats-server`, with the real `async-nats`
//! client as the third party: what a granted component publishes and
//! requests arrives; what Cedar or the reserved namespaces refuse never
//! leaves the host (shown by order: the subscriber's first message is the
//! permitted one sent after the refused ones); without `[cluster]` every
//! call is `unavailable`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use arw_artifacts as artifacts;
use arw_host::{CallError, Host};
use arw_policy::Principal;
use arw_tests::nats::NatsServer;
use arw_tests::{Components, config, policies, probe_manifest};
use futures::StreamExt;
use serde_json::json;

/// The probe may publish on `orders.*` and on anything (`*`: reserved
/// subjects are still refused), and request on `svc.*`; Cedar permits
/// publishing on `orders.*` and reserved-looking subjects, and requests.
const POLICY: &str = r#"
    permit(principal in Arw::Role::"operator", action == Arw::Action::"tool.invoke", resource);
    permit(principal == Arw::Component::"test:nats", action == Arw::Action::"nats.publish", resource)
        when { resource.name like "orders.*" || resource.name like "arw.*" || resource.name like "$*" || resource.name like "_INBOX.*" };
    permit(principal == Arw::Component::"test:nats", action == Arw::Action::"nats.request", resource);
"#;

async fn host(nats_url: Option<String>) -> (Host, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let mut config = config(state.path());
    config.cluster.nats_url = nats_url;
    config.cluster.reconnect_max_delay_ms = 200;
    config.cluster.max_payload_bytes = 4096;
    let manifest = probe_manifest("test:nats", &[("nats.publish", "*"), ("nats.request", "svc.*")], &[]);
    let components = Components::new().with(&manifest, artifacts::PROBE.bytes);
    let (host, refused) = Host::start(config, policies(&[POLICY]), &components).await.unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    (host, state)
}

async fn probe(host: &Host, input: serde_json::Value) -> Result<serde_json::Value, CallError> {
    host.call(&host.caller(Principal::local_operator()), "probe", &input.to_string()).await
}

fn publish(subject: &str, payload: &str) -> serde_json::Value {
    json!({"op": "nats.publish", "subject": subject, "payload": payload, "headers": [["trace-id", "t-1"]]})
}

/// The tool error's code and message.
fn refusal(result: Result<serde_json::Value, CallError>) -> (String, String) {
    match result {
        Err(CallError::Tool { code, message, .. }) => (code, message),
        other => panic!("expected a tool error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_publish_arrives_and_a_refused_one_never_leaves_the_host() {
    let server = NatsServer::start().await;
    let client = server.client().await;
    let mut everything = client.subscribe(">").await.unwrap();
    client.flush().await.unwrap();
    let (host, _state) = host(Some(server.url())).await;

    // Refused: not permitted by Cedar, reserved (even though Cedar permits
    // them), malformed, too large.
    let (code, message) = refusal(probe(&host, publish("billing.paid", "x")).await);
    assert_eq!(code, "denied", "{message}");
    assert!(message.contains("nats.publish"), "{message}");
    for reserved in ["arw.cluster.hello", "$JS.API.INFO", "_INBOX.abc"] {
        let (code, message) = refusal(probe(&host, publish(reserved, "x")).await);
        assert_eq!(code, "denied", "{reserved}: {message}");
        assert!(message.contains("reserved"), "{reserved}: {message}");
    }
    for malformed in ["orders..x", "orders.*", "orders x"] {
        let (code, message) = refusal(probe(&host, publish(malformed, "x")).await);
        assert_eq!(code, "invalid", "{malformed}: {message}");
    }
    let (code, message) = refusal(probe(&host, publish("orders.big", &"x".repeat(5000))).await);
    assert_eq!(code, "too-large", "{message}");
    assert!(message.contains("cluster.max-payload-bytes"), "{message}");

    // Permitted: arrives with its header, and it is the first message the
    // subscriber on every subject sees (NATS keeps one connection's order),
    // so none of the refused ones was sent.
    assert_eq!(probe(&host, publish("orders.created", "order 7")).await.unwrap(), json!({"ok": null}));
    let first = tokio::time::timeout(Duration::from_secs(10), everything.next()).await.unwrap().unwrap();
    assert_eq!(first.subject.as_str(), "orders.created");
    assert_eq!(&first.payload[..], b"order 7");
    let header = first.headers.as_ref().and_then(|h| h.get("trace-id")).map(|v| v.as_str().to_string());
    assert_eq!(header.as_deref(), Some("t-1"));
    host.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_gets_its_reply_and_no_responder_or_a_silent_one_is_unavailable() {
    let server = NatsServer::start().await;
    let client = server.client().await;
    let mut echo = client.subscribe("svc.echo").await.unwrap();
    let responder = client.clone();
    tokio::spawn(async move {
        while let Some(message) = echo.next().await {
            if let Some(reply) = message.reply {
                let answer = format!("re: {}", String::from_utf8_lossy(&message.payload));
                responder.publish(reply, answer.into()).await.unwrap();
            }
        }
    });
    // Subscribed, never answers.
    let _silent = client.subscribe("svc.silent").await.unwrap();
    client.flush().await.unwrap();
    let (host, _state) = host(Some(server.url())).await;

    let request = |subject: &str, timeout_ms: u32| json!({"op": "nats.request", "subject": subject, "payload": "ping", "timeout-ms": timeout_ms});
    assert_eq!(probe(&host, request("svc.echo", 5000)).await.unwrap(), json!({"ok": "re: ping"}));
    let (code, message) = refusal(probe(&host, request("svc.nobody", 5000)).await);
    assert_eq!((code.as_str(), message.contains("no responder")), ("unavailable", true), "{message}");
    let (code, message) = refusal(probe(&host, request("svc.silent", 300)).await);
    assert_eq!((code.as_str(), message.contains("within 300 ms")), ("unavailable", true), "{message}");
    // Not in the manifest's request (`svc.*`): refused, though Cedar permits it.
    let (code, message) = refusal(probe(&host, request("other.echo", 300)).await);
    assert_eq!(code, "denied", "{message}");
    host.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cluster_every_call_is_unavailable_and_says_how_to_join_one() {
    let (host, _state) = host(None).await;
    let (code, message) = refusal(probe(&host, publish("orders.created", "x")).await);
    assert_eq!(code, "unavailable", "{message}");
    assert!(message.contains("[cluster] nats-url"), "{message}");
    host.shutdown(Duration::from_secs(5)).await;
}

/// What cannot work whatever the network does is refused at start with
/// the key named, not found at the first call (and then kept as the
/// connection's error for the host's life).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_url_or_nkey_file_is_refused_at_start_with_the_key_named() {
    let state = tempfile::tempdir().unwrap();
    let not_a_seed = state.path().join("user.nk");
    std::fs::write(&not_a_seed, "SUNOTASEED\n").unwrap();
    type Tweak<'a> = Box<dyn Fn(&mut arw_host::HostConfig) + 'a>;
    let cases: Vec<(&str, Tweak)> = vec![
        ("cluster.nats-url", Box::new(|c| c.cluster.nats_url = Some("nats://127.0.0.1:4222,nats://[::1".into()))),
        ("cluster.nats-url", Box::new(|c| c.cluster.nats_url = Some("nats://127.0.0.1:4222,".into()))),
        ("cluster.nkey-file", Box::new(|c| c.cluster.nkey_file = Some(state.path().join("missing.nk")))),
        ("cluster.nkey-file", Box::new(move |c| c.cluster.nkey_file = Some(not_a_seed.clone()))),
        ("cluster.tls-ca-file", Box::new(|c| c.cluster.tls_ca_file = Some(state.path().join("missing.pem")))),
    ];
    for (key, set) in cases {
        let mut config = config(state.path());
        config.cluster.nats_url = Some("nats://127.0.0.1:4222".into());
        set(&mut config);
        let error = match Host::start(config, policies(&[POLICY]), &Components::new()).await {
            Ok(_) => panic!("{key}: started"),
            Err(e) => e.to_string(),
        };
        assert!(error.contains(key), "{key}: {error}");
    }
}

/// A host whose server is down starts and serves; its publishes are
/// buffered; once the server is up it connects (backing off in between)
/// and what it publishes arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_starts_without_its_server_and_connects_when_it_comes_up() {
    let port = arw_tests::nats::free_port();
    let (host, _state) = host(Some(format!("nats://127.0.0.1:{port}"))).await;
    assert_eq!(probe(&host, json!({"op": "echo", "value": 1})).await.unwrap(), json!({"ok": 1}));
    // Buffered while down: the call succeeds without a server.
    assert_eq!(probe(&host, publish("orders.early", "while down")).await.unwrap(), json!({"ok": null}));
    let (code, message) = refusal(
        probe(&host, json!({"op": "nats.request", "subject": "svc.echo", "payload": "x", "timeout-ms": 200})).await,
    );
    assert_eq!(code, "unavailable", "{message}");

    let server = NatsServer::start_on(port).await;
    let client = server.client().await;
    let mut orders = client.subscribe("orders.>").await.unwrap();
    client.flush().await.unwrap();
    // Publish until one arrives (the early one may have been flushed before
    // the subscription existed); bounded.
    let mut arrived = None;
    for n in 0..100 {
        probe(&host, publish(&format!("orders.late{n}"), "after")).await.unwrap();
        if let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(100), orders.next()).await {
            arrived = Some(message);
            break;
        }
    }
    let arrived = arrived.expect("the host never connected to the server that came up");
    assert!(arrived.subject.as_str().starts_with("orders."), "{}", arrived.subject);
    host.shutdown(Duration::from_secs(5)).await;
}

/// A manifest cannot ask for the host's own subjects.
#[tokio::test]
async fn a_manifest_that_asks_for_a_reserved_subject_is_refused_with_the_fix() {
    let state = tempfile::tempdir().unwrap();
    let manifest = probe_manifest("test:nats", &[("nats.publish", "arw.tasks.*")], &[]);
    let components = Components::new().with(&manifest, artifacts::PROBE.bytes);
    let (host, refused) = Host::start(config(state.path()), policies(&[POLICY]), &components).await.unwrap();
    let message = refused.first().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("belongs to the host or the server"), "{message}");
    host.shutdown(Duration::from_secs(5)).await;
}
