//! Gates (`docs/gating.md`): a deny blocks at every entry point of the
//! catalogue, before the effect; contracts follow their time windows and
//! conditions; an invalid edit keeps what is in force; a gate that cannot
//! decide fails closed; the local operator's break-glass path stays open.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arw_host::gating::{GateCaller, GateDenied, GateRequest, keys};
use arw_policy::Principal;
use arw_tests::http::{ADMIN_TOKEN, TestServer, http_config, problem};
use arw_tests::{Components, DEFAULT_POLICIES, OPERATOR_INVOKES, artifacts, drain, manifests, probe_manifest};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The probe may reach the test's upstream, publish on `demo.gated` (on
/// the bus and on NATS) and call kv-counter.
const PROBE_GRANTS: &str = r#"
permit(principal == Arw::Component::"test:probe",
       action in [Arw::Action::"http.request", Arw::Action::"bus.publish", Arw::Action::"tool.invoke",
                  Arw::Action::"nats.publish", Arw::Action::"queue.enqueue"],
       resource);
"#;

/// A host served over HTTP with `gates` in front, the gates' files in a
/// directory of their own, an upstream HTTP server that counts the
/// requests it is sent, and a NATS server the host is connected to.
struct Rig {
    server: TestServer,
    file: PathBuf,
    _files: tempfile::TempDir,
    upstream: std::net::SocketAddr,
    hits: Arc<AtomicUsize>,
    nats: arw_tests::nats::NatsServer,
}

/// An HTTP server on loopback that answers `ok` and counts connections.
async fn upstream() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            });
        }
    });
    (address, hits)
}

impl Rig {
    /// The first-party components, kv-counter's caller the probe, and
    /// `gate_components` as the gates `gates` (the first one's file is
    /// `file`, holding `contracts` at start).
    async fn start(gates: &[&str], gate_components: Components, contracts: &str) -> Rig {
        let (upstream, hits) = upstream().await;
        let nats = arw_tests::nats::NatsServer::start().await;
        let nats_url = nats.url();
        let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = files.path().join("gating.toml");
        std::fs::write(&file, contracts).unwrap_or_else(|e| panic!("{e}"));
        let probe = probe_manifest(
            "test:probe",
            &[
                ("http.request", &format!("127.0.0.1:{}", upstream.port())),
                ("bus.publish", "demo.gated"),
                ("tool.invoke", "kv-counter"),
                ("nats.publish", "demo.gated"),
                ("queue.enqueue", "gated"),
            ],
            &[],
        );
        let mut components = Components::first_party()
            .with(&probe, artifacts::PROBE.bytes)
            .with(manifests::QUEUE_LOCAL, artifacts::QUEUE_LOCAL.bytes);
        components.0.extend(gate_components.0);
        let gates: Vec<String> = gates.iter().map(|g| g.to_string()).collect();
        let gate_file = file.clone();
        let server = TestServer::start_components(
            components,
            &[DEFAULT_POLICIES, OPERATOR_INVOKES, PROBE_GRANTS],
            http_config(),
            move |config| {
                // Room for every version's kept gate instances during the
                // swaps, and a gate deadline no loaded CI machine reaches
                // (the tests of deadlines set their own, shorter).
                config.engine.max_instances = 128;
                config.gating.timeout_ms = 5_000;
                config.node.tags = vec!["guest".into()];
                config.node.role = "edge".into();
                config.cluster.nats_url = Some(nats_url);
                if let Some(first) = gates.first() {
                    config.gating.files.insert(first.clone(), gate_file);
                }
                config.gating.gates = gates;
            },
        )
        .await;
        Rig { server, file, _files: files, upstream, hits, nats }
    }

    async fn gating(contracts: &str) -> Rig {
        let gate = Components::new().with(manifests::GATING, artifacts::GATING.bytes);
        Rig::start(&["arw:gating"], gate, contracts).await
    }

    /// test:gate-probe as the only gate (a 200 ms deadline), its file
    /// holding `mode` (see the probe's modes).
    async fn gate_probe(mode: &str) -> Rig {
        let probe = "id = \"test:gate-probe\"\nversion = \"1.0.0\"\nworlds = [\"gate\"]\n[limits]\ntimeout-ms = 200\n";
        let gate = Components::new().with(probe, artifacts::GATE_PROBE.bytes);
        Rig::start(&["test:gate-probe"], gate, mode).await
    }

    /// Put `contracts` in force (the file, then a reload that must take it).
    async fn contracts(&self, contracts: &str) {
        std::fs::write(&self.file, contracts).unwrap_or_else(|e| panic!("{e}"));
        let reloaded = self.server.host.reload_gates().await;
        assert!(reloaded.iter().all(|r| r.outcome != "failed"), "{reloaded:?}");
    }

    fn operator(&self) -> arw_host::Caller {
        self.server.host.caller(Principal::local_operator())
    }

    async fn probe(&self, input: serde_json::Value) -> Result<serde_json::Value, arw_host::CallError> {
        self.server.host.call(&self.operator(), "probe", &input.to_string()).await
    }

    /// kv-counter's value for `name` after one more increment, called past
    /// the gates (the local operator's break-glass path).
    async fn counter(&self, name: &str) -> u64 {
        let output = self
            .server
            .host
            .call_break_glass(&self.operator(), "kv-counter", &json!({"name": name}).to_string())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        output["value"].as_u64().unwrap_or_else(|| panic!("{output}"))
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

fn deny(key: &str) -> String {
    format!("[[contract]]\nid = \"block\"\npatterns = [{key:?}]\ndeny = true\nreason = \"blocked by the test\"\n")
}

/// The text an MCP `tools/call` of `tool` answers with (initialize, then
/// the call, on one session).
async fn mcp_call(server: &TestServer, tool: &str, arguments: serde_json::Value) -> String {
    let post = |body: serde_json::Value, session: Option<String>| {
        let mut request = server
            .client
            .post(server.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(ADMIN_TOKEN)
            .body(body.to_string());
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        request.send()
    };
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let opened = post(initialize, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(opened.status(), 200);
    let session = opened.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let _ = opened.text().await;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let _ = post(initialized, session.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    let call =
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": arguments}});
    let answer = post(call, session).await.unwrap_or_else(|e| panic!("{e}"));
    answer.text().await.unwrap_or_else(|e| panic!("{e}"))
}

/// One entry point of the catalogue, denied by a contract on its key:
/// the attempt is refused and its effect does not happen; with the
/// contract gone, the same attempt goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_blocks_at_every_entry_point() {
    let rig = Rig::gating("").await;
    let server = &rig.server;
    let mut covered: Vec<String> = Vec::new();

    // Every HTTP and admin route: refused before its handler runs.
    for key in arw_server::gating::KEYS {
        rig.contracts(&deny(key.key)).await;
        let path = key.path.replace("{name}", "kv-counter");
        let body = if key.path == "/mcp" {
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        } else if key.path.starts_with("/tools/") {
            json!({"name": "via-route"})
        } else {
            json!({})
        };
        let response = match key.method {
            "GET" => server.get(&path, Some(ADMIN_TOKEN)).await,
            _ => server.post(&path, Some(ADMIN_TOKEN), &body.to_string()).await,
        };
        assert_eq!(response.status(), 403, "{} {path} was not refused by the gate", key.method);
        let problem = problem(response).await;
        assert_eq!(problem["code"], "gate-denied", "{} {path}: {problem}", key.method);
        assert!(problem["detail"].as_str().unwrap_or_default().contains("contract `block`"), "{problem}");
        covered.push(key.key.to_string());
    }
    // The tool route's effect did not happen: the counter starts at 1.
    rig.contracts("").await;
    assert_eq!(rig.counter("via-route").await, 1, "a denied POST /tools/kv-counter/invoke ran the tool");
    let allowed = server.get("/components", Some(ADMIN_TOKEN)).await;
    assert_eq!(allowed.status(), 200, "with no contract the route is served");

    // Tool ingress, from each kind of caller: HTTP, MCP, the CLI's
    // in-process call, and a component.
    let ingress = keys::TOOL_INGRESS.key("kv-counter");
    rig.contracts(&deny(&ingress)).await;
    let http =
        server.post("/tools/kv-counter/invoke", Some(ADMIN_TOKEN), &json!({"name": "ingress"}).to_string()).await;
    assert_eq!(http.status(), 403);
    assert_eq!(problem(http).await["code"], "gate-denied");
    let mcp = mcp_call(server, "kv-counter", json!({"name": "ingress"})).await;
    assert!(mcp.contains("gate-denied") && mcp.contains("\"isError\":true"), "MCP tools/call was not refused: {mcp}");
    let local = rig.server.host.call(&rig.operator(), "kv-counter", &json!({"name": "ingress"}).to_string()).await;
    assert_eq!(local.err().map(|e| e.code().to_string()).as_deref(), Some("gate-denied"));
    let nested = rig.probe(json!({"op": "tools.invoke", "tool": "kv-counter", "input": {"name": "ingress"}})).await;
    let nested = nested.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(nested.contains("gate-denied"), "a component's call was not refused: {nested}");
    let other = rig.server.host.call(&rig.operator(), "text-stats", &json!({"text": "a b"}).to_string()).await;
    assert!(other.is_ok(), "a contract on one tool's key blocks another: {other:?}");
    rig.contracts("").await;
    assert_eq!(rig.counter("ingress").await, 1, "a denied call reached kv-counter");
    covered.push(keys::TOOL_INGRESS.pattern.into());

    // A component's call of another's tool: its egress key.
    rig.contracts(&deny(&keys::TOOL_EGRESS.key("kv-counter"))).await;
    let nested = rig.probe(json!({"op": "tools.invoke", "tool": "kv-counter", "input": {"name": "egress"}})).await;
    assert!(nested.err().map(|e| e.to_string()).unwrap_or_default().contains("gate-denied"));
    assert_eq!(rig.counter("egress").await, 1, "a denied component call reached kv-counter");
    covered.push(keys::TOOL_EGRESS.pattern.into());

    // Outgoing HTTP: the upstream sees no request.
    let authority = format!("127.0.0.1:{}", rig.upstream.port());
    let url = format!("http://{authority}/");
    rig.contracts(&deny(&keys::HTTP_EGRESS.key(&authority))).await;
    let refused = rig.probe(json!({"op": "http.get", "url": url})).await;
    assert_eq!(refused.err().map(|e| e.code().to_string()).as_deref(), Some("tool:denied"));
    assert_eq!(rig.hits.load(Ordering::SeqCst), 0, "a denied request reached the upstream");
    rig.contracts("").await;
    let sent = rig.probe(json!({"op": "http.get", "url": url})).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sent["ok"]["status"], 200, "{sent}");
    assert_eq!(rig.hits.load(Ordering::SeqCst), 1);
    covered.push(keys::HTTP_EGRESS.pattern.into());

    // Bus publish: nothing reaches the bus.
    let mut observer = server.host.bus().observe();
    rig.contracts(&deny(&keys::BUS_EGRESS.key("demo.gated"))).await;
    let refused = rig.probe(json!({"op": "bus.publish", "topic": "demo.gated", "message": {"n": 1}})).await;
    assert_eq!(refused.err().map(|e| e.code().to_string()).as_deref(), Some("tool:denied"));
    rig.contracts("").await;
    rig.probe(json!({"op": "bus.publish", "topic": "demo.gated", "message": {"n": 2}}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let published: Vec<_> =
        drain(&mut observer).into_iter().filter(|e| e.topic == "demo.gated").filter_map(|e| e.json()).collect();
    assert_eq!(published, [json!({"n": 2})], "the denied event reached the bus");
    covered.push(keys::BUS_EGRESS.pattern.into());

    // NATS publish: nothing reaches the server. The subscriber's first
    // message is the one sent after the contract is gone.
    let client = rig.nats.client().await;
    let mut subscriber = client.subscribe("demo.gated").await.unwrap_or_else(|e| panic!("{e}"));
    client.flush().await.unwrap_or_else(|e| panic!("{e}"));
    let publish = |n: u32| json!({"op": "nats.publish", "subject": "demo.gated", "payload": format!("n={n}")});
    rig.contracts(&deny(&keys::NATS_EGRESS.key("demo.gated"))).await;
    let refused = rig.probe(publish(1)).await;
    assert_eq!(refused.err().map(|e| e.code().to_string()).as_deref(), Some("tool:denied"));
    rig.contracts("").await;
    rig.probe(publish(2)).await.unwrap_or_else(|e| panic!("{e}"));
    let first = tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut subscriber))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the subscription ended"));
    assert_eq!(&first.payload[..], b"n=2", "the denied message reached the server");
    covered.push(keys::NATS_EGRESS.pattern.into());

    // Enqueue: nothing is stored.
    let enqueue = json!({"op": "queue.enqueue", "queue": "gated", "tool": "kv-counter", "input": {"name": "queued"}});
    rig.contracts(&deny(&keys::QUEUE_EGRESS.key("gated"))).await;
    let refused = rig.probe(enqueue.clone()).await;
    assert_eq!(refused.err().map(|e| e.code().to_string()).as_deref(), Some("tool:denied"));
    let operator = rig.operator();
    let queued = server.host.queue_stats(&operator, "gated").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(queued.ready + queued.delayed, 0, "a denied enqueue stored a task: {queued:?}");
    rig.contracts("").await;
    rig.probe(enqueue).await.unwrap_or_else(|e| panic!("{e}"));
    let queued = server.host.queue_stats(&operator, "gated").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(queued.ready + queued.delayed, 1, "{queued:?}");
    covered.push(keys::QUEUE_EGRESS.pattern.into());

    // The whole catalogue was exercised: a new key needs a case here.
    let catalogue: Vec<String> = arw_server::gating::KEYS
        .iter()
        .map(|k| k.key.to_string())
        .chain(keys::FAMILIES.iter().map(|f| f.pattern.to_string()))
        .collect();
    assert_eq!(covered, catalogue, "every gating key of the catalogue has a case");

    // Each refusal was counted under the contract that decided.
    let metrics = server.get("/metrics", Some(ADMIN_TOKEN)).await.text().await.unwrap_or_default();
    let denials: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("arw_gate_decisions_total{") && l.contains("contract=\"block\""))
        .filter(|l| l.contains("verdict=\"deny\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let expected = arw_server::gating::KEYS.len() + 4 + 1 + 1 + 1 + 1 + 1;
    assert_eq!(denials, expected as f64, "one counted deny per refused attempt:\n{metrics}");
    rig.stop().await;
}

fn at(rfc3339: &str) -> SystemTime {
    let seconds = match rfc3339 {
        "2026-12-24T11:59:59Z" => 1_798_113_599,
        "2026-12-24T12:00:00Z" => 1_798_113_600,
        "2026-12-24T12:59:59Z" => 1_798_117_199,
        "2026-12-24T13:00:00Z" => 1_798_117_200,
        other => panic!("no fixture for {other}"),
    };
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn request(key: &str, caller: GateCaller, when: SystemTime) -> GateRequest {
    let mut request = GateRequest::new(key, Arc::new(caller));
    request.at = Some(when);
    request
}

fn admin() -> GateCaller {
    GateCaller { name: "ops".into(), roles: vec!["admin".into()], tags: vec![], authenticated: true }
}

/// A window of one hour: allowed before, denied inside (from its first
/// millisecond), allowed from its end; the time is the request's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_denies_inside_its_window_only() {
    let rig = Rig::gating(
        "[[contract]]\nid = \"maintenance\"\npatterns = [\"tools:*\"]\ndeny = true\ncode = \"maintenance\"\n\
         valid-from = \"2026-12-24T12:00:00Z\"\nvalid-to = \"2026-12-24T13:00:00Z\"\n",
    )
    .await;
    let host = &rig.server.host;
    let decide = |when| async move { host.gate(&request("tools:invoke", admin(), when)).await };
    assert_eq!(decide(at("2026-12-24T11:59:59Z")).await, Ok(()));
    let inside = decide(at("2026-12-24T12:00:00Z")).await.err();
    assert!(
        matches!(&inside, Some(GateDenied::Denied { contract, code, .. }) if contract == "maintenance" && code == "maintenance"),
        "{inside:?}"
    );
    assert!(decide(at("2026-12-24T12:59:59Z")).await.is_err());
    assert_eq!(decide(at("2026-12-24T13:00:00Z")).await, Ok(()), "the end is exclusive");
    // Segment-aware: `tools:*` covers `tools:list`, not a key that merely
    // starts with the same letters.
    assert!(host.gate(&request("tools:list", admin(), at("2026-12-24T12:00:00Z"))).await.is_err());
    assert_eq!(host.gate(&request("toolsx:list", admin(), at("2026-12-24T12:00:00Z"))).await, Ok(()));
    rig.stop().await;
}

/// Auto-renew moves the end on by whole periods while the contract is in
/// force, up to `max-renewals`; it never denies before `valid-from`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_renew_extends_while_in_force_and_never_denies_before_its_start() {
    let rig = Rig::gating(
        "[[contract]]\nid = \"until\"\npatterns = [\"spec:*\"]\ndeny = true\nvalid-from = \"2026-12-24T12:00:00Z\"\n\
         valid-to = \"2026-12-24T13:00:00Z\"\nauto-renew = \"30m\"\nrenew-until = \"2026-12-24T14:00:00Z\"\n\n\
         [[contract]]\nid = \"lease\"\npatterns = [\"*\"]\ndeny = true\nvalid-from = \"2026-12-24T12:00:00Z\"\n\
         valid-to = \"2026-12-24T13:00:00Z\"\nauto-renew = \"1h\"\nmax-renewals = 2\n",
    )
    .await;
    let host = &rig.server.host;
    let start = at("2026-12-24T12:00:00Z");
    let hours = |h: f64| start + Duration::from_secs_f64(h * 3600.0);
    let decide = |key: &'static str, when| async move { host.gate(&request(key, admin(), when)).await };
    let denied_by = |r: Result<(), GateDenied>| match r {
        Err(GateDenied::Denied { contract, .. }) => Some(contract),
        _ => None,
    };
    // Before its start: never, whatever renewal says.
    assert_eq!(denied_by(decide("health:live", start - Duration::from_millis(1)).await), None);
    assert_eq!(denied_by(decide("spec:openapi", start - Duration::from_millis(1)).await), None);
    assert_eq!(denied_by(decide("health:live", hours(0.5)).await).as_deref(), Some("lease"));
    assert_eq!(denied_by(decide("health:live", hours(1.5)).await).as_deref(), Some("lease"), "renewed once");
    assert_eq!(denied_by(decide("health:live", hours(2.9)).await).as_deref(), Some("lease"), "renewed twice");
    assert_eq!(denied_by(decide("health:live", hours(3.0)).await), None, "max-renewals = 2 ends it at 15:00");
    // `renew-until`: renewed at 13:00 and 13:30 (before 14:00), not at
    // 14:00, so it ends there and the next contract decides.
    assert_eq!(denied_by(decide("spec:openapi", hours(1.99)).await).as_deref(), Some("until"));
    assert_eq!(denied_by(decide("spec:openapi", hours(2.0)).await).as_deref(), Some("lease"));
    assert_eq!(denied_by(decide("spec:openapi", hours(3.5)).await), None);
    rig.stop().await;
}

/// `caller-*` conditions match the caller, `node-*` the host: a contract
/// on the caller role `guest` does not deny an admin on a node tagged
/// `guest`, and one on the node tag denies everyone there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_conditions_and_node_conditions_are_distinct() {
    let rig = Rig::gating(
        "[[contract]]\nid = \"no-guest-callers\"\npatterns = [\"tools:*\"]\ndeny = true\ncaller-roles = [\"guest\"]\n\n\
         [[contract]]\nid = \"tagged-callers\"\npatterns = [\"tools:*\"]\ndeny = true\ncaller-tags = [\"guest\"]\n\n\
         [[contract]]\nid = \"guest-nodes\"\npatterns = [\"spec:*\"]\ndeny = true\nnode-tags = [\"guest\"]\n\n\
         [[contract]]\nid = \"gateway-nodes\"\npatterns = [\"metrics:*\"]\ndeny = true\nnode-roles = [\"gateway\"]\n",
    )
    .await;
    let host = &rig.server.host;
    let now = SystemTime::now();
    let guest = GateCaller { name: "g".into(), roles: vec!["guest".into()], tags: vec![], authenticated: true };
    let decide = |key: &'static str, caller: GateCaller| async move { host.gate(&request(key, caller, now)).await };
    assert_eq!(decide("tools:invoke", admin()).await, Ok(()), "the node's tag is not the caller's role");
    assert!(decide("tools:invoke", guest.clone()).await.is_err());
    assert!(decide("spec:openapi", admin()).await.is_err(), "the node is tagged guest");
    assert_eq!(decide("metrics:scrape", admin()).await, Ok(()), "the node's role is edge, not gateway");
    // Over HTTP: `viewer` is tagged `guest` (`[[http.tokens]] tags`), ops is not.
    let viewer =
        rig.server.post("/tools/text-stats/invoke", Some(arw_tests::http::VIEWER_TOKEN), "{\"text\":\"a\"}").await;
    assert_eq!(problem(viewer).await["detail"].as_str().map(|d| d.contains("tagged-callers")), Some(true));
    let ops = rig.server.post("/tools/text-stats/invoke", Some(ADMIN_TOKEN), "{\"text\":\"a\"}").await;
    assert_eq!(ops.status(), 200);
    rig.stop().await;
}

/// An invalid edit keeps the contracts in force and says where it is
/// wrong; a file that is invalid from the start makes the gate deny
/// everything (fail closed), naming the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_keeps_the_contracts_in_force_and_names_the_line() {
    let rig = Rig::gating(&deny("metrics:scrape")).await;
    let host = &rig.server.host;
    let mut events = host.bus().observe();
    let cases = [
        ("[[contract]]\nid = \"a\"\npatterns = [\"x:*\"\ndeny = true\n", 4, "comma"),
        (
            "[[contract]]\nid = \"a\"\npatterns = [\"x:*\"]\ndeny = true\n\n[[contract]]\nid = \"b\"\npatterns = [\"tools*\"]\ndeny = true\n",
            6,
            "`tools:*`",
        ),
        ("[[contract]]\nid = \"a\"\npatterns = [\"x:*\"]\ndeny = true\nvalid-from = \"tomorrow\"\n", 1, "RFC 3339"),
        ("[[contract]]\nid = \"a\"\npatterns = [\"x:*\"]\ndeny = true\ncolour = \"red\"\n", 5, "colour"),
    ];
    for (text, line, says) in cases {
        std::fs::write(&rig.file, text).unwrap_or_else(|e| panic!("{e}"));
        let reload = host.reload_gates().await;
        assert_eq!(reload[0].outcome, "failed", "{text}");
        assert_eq!(reload[0].line, Some(line), "{text}: {reload:?}");
        assert!(reload[0].message.as_deref().unwrap_or_default().contains(says), "{reload:?}");
        let failed: Vec<_> = drain(&mut events).into_iter().filter(|e| e.topic == "gating.reload.failed").collect();
        assert_eq!(failed.len(), 1, "one gating.reload.failed per refused edit");
        let payload = failed[0].json().unwrap_or_default();
        assert_eq!(payload["line"], line);
        assert_eq!(payload["file"], rig.file.display().to_string());
        // The contract in force before the edit still denies.
        let still = rig.server.get("/metrics", Some(ADMIN_TOKEN)).await;
        assert_eq!(still.status(), 403, "an invalid edit emptied the contracts");
    }
    rig.stop().await;

    // Invalid from the start: nothing to keep, so everything is refused.
    let broken = Rig::gating("[[contract]\n").await;
    let response = broken.server.get("/healthz", None).await;
    assert_eq!(response.status(), 503);
    let problem = problem(response).await;
    assert_eq!(problem["code"], "gate-failed");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("gating.toml:1"), "{problem}");
    broken.contracts("").await;
    assert_eq!(broken.server.get("/healthz", None).await.status(), 200, "fixing the file opens the gate again");
    broken.stop().await;
}

/// A gate that traps, hangs, refuses its configuration, is not loaded or
/// is uninstalled while serving refuses the request (503 `gate-failed`,
/// naming the gate), never lets it through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_that_cannot_decide_fails_closed() {
    let rig = Rig::gate_probe("allow").await;
    let server = &rig.server;
    assert_eq!(server.get("/healthz", None).await.status(), 200);
    for (mode, says) in [("trap", "trapped"), ("hang", "deadline"), ("deny", "check #")] {
        std::fs::write(&rig.file, mode).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(server.host.reload_gates().await[0].outcome, "reloaded");
        let response = server.get("/healthz", None).await;
        let status = response.status();
        let problem = problem(response).await;
        let detail = problem["detail"].as_str().unwrap_or_default().to_string();
        assert!(detail.contains("test:gate-probe") && detail.contains(says), "{mode}: {problem}");
        assert_eq!(status, if mode == "deny" { 403 } else { 503 }, "{mode}: {problem}");
        let tool = server.host.call(&rig.operator(), "text-stats", "{\"text\":\"a\"}").await;
        assert!(matches!(tool, Err(arw_host::CallError::Gated(_))), "{mode}: a tool call went through: {tool:?}");
    }
    // A configuration it refuses is not put in force (the hang stays).
    std::fs::write(&rig.file, "refuse").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(server.host.reload_gates().await[0].outcome, "failed");
    std::fs::write(&rig.file, "allow").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(server.host.reload_gates().await[0].outcome, "reloaded");
    assert_eq!(server.get("/healthz", None).await.status(), 200);

    // Uninstalled while clients keep asking: every answer is 200 (decided
    // by the gate) or 503 (no gate to decide), never one let through
    // undecided; after the removal, all are refused.
    let client = server.client.clone();
    let url = server.url("/healthz");
    let asking = tokio::spawn(async move {
        let mut statuses = Vec::new();
        for _ in 0..200 {
            statuses.push(client.get(&url).send().await.map(|r| r.status().as_u16()).unwrap_or(0));
        }
        statuses
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(server.host.remove("test:gate-probe").await);
    let statuses = asking.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    let response = server.get("/healthz", None).await;
    assert_eq!(response.status(), 503);
    let detail = problem(response).await["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("not loaded") && detail.contains("arw install test:gate-probe"), "{detail}");
    rig.stop().await;

    // Named in the configuration but never installed: the same.
    let missing = Rig::start(&["test:missing"], Components::new(), "").await;
    assert_eq!(missing.server.get("/healthz", None).await.status(), 503);
    missing.stop().await;
}

/// With every route denied, the local operator still gets through on the
/// break-glass path (audited as `gate.bypassed`); nobody else may use it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_break_glass_path_works_when_every_route_is_denied() {
    let rig = Rig::gating(&deny("*")).await;
    let host = &rig.server.host;
    for key in arw_server::gating::KEYS.iter().filter(|k| k.method == "GET") {
        assert_eq!(rig.server.get(key.path, Some(ADMIN_TOKEN)).await.status(), 403, "{}", key.path);
    }
    let mut events = host.bus().observe();
    let gated = host.call(&rig.operator(), "text-stats", "{\"text\":\"a b\"}").await;
    assert!(matches!(gated, Err(arw_host::CallError::Gated(_))));
    let output = host.call_break_glass(&rig.operator(), "text-stats", "{\"text\":\"a b\"}").await;
    assert_eq!(output.unwrap_or_else(|e| panic!("{e}"))["words"], 2);
    let bypassed: Vec<_> = drain(&mut events).into_iter().filter(|e| e.topic == "gate.bypassed").collect();
    assert_eq!(bypassed.len(), 1, "each break-glass call is audited");
    assert_eq!(bypassed[0].json().unwrap_or_default()["caller"], "local");
    // Refusals of one caller under one contract are coalesced, none lost.
    let mut events = host.bus().observe();
    for _ in 0..5 {
        assert_eq!(rig.server.get("/healthz", None).await.status(), 403);
    }
    host.flush_audit();
    let reported: Vec<_> = drain(&mut events)
        .into_iter()
        .filter(|e| e.topic == "gate.denied")
        .filter_map(|e| e.json())
        .filter(|p| p["caller"] == "anonymous" && p["key"] == "health:live")
        .collect();
    assert_eq!(reported.iter().map(|p| p["count"].as_u64().unwrap_or(0)).sum::<u64>(), 5, "{reported:?}");
    assert!(reported.len() <= 2, "five refusals in a second make at most two events: {reported:?}");
    assert_eq!(reported[0]["contract"], "block");
    let someone = host.caller(Principal::caller("ops", ["admin"]));
    let refused = host.call_break_glass(&someone, "text-stats", "{\"text\":\"a\"}").await;
    assert!(refused.err().map(|e| e.to_string()).unwrap_or_default().contains("only the local operator"));
    rig.stop().await;
}

/// The presets `arw gate preset` writes are taken by arw:gating and do
/// what docs/gating.md says of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_presets_are_valid_and_do_what_they_say() {
    let anonymous =
        || GateCaller { name: "anonymous".into(), roles: vec!["anonymous".into()], tags: vec![], authenticated: false };
    let presets = [
        ("relaxed", include_str!("../presets/gating/relaxed.toml")),
        ("standard", include_str!("../presets/gating/standard.toml")),
        ("strict", include_str!("../presets/gating/strict.toml")),
    ];
    let rig = Rig::gating("").await;
    let host = &rig.server.host;
    let now = SystemTime::now();
    for (name, text) in presets {
        rig.contracts(text).await;
        let decide = |key: &'static str, caller: GateCaller| async move { host.gate(&request(key, caller, now)).await };
        assert!(decide("admin:install", anonymous()).await.is_err(), "{name}: anonymous administers");
        assert_eq!(decide("admin:install", admin()).await, Ok(()), "{name}: an admin is refused");
        assert_eq!(decide("health:live", anonymous()).await, Ok(()), "{name}: health is refused");
        let anonymous_calls = decide("tools:invoke", anonymous()).await.is_err();
        assert_eq!(anonymous_calls, name != "relaxed", "{name}: anonymous tool calls");
        let specs = decide("spec:openapi", anonymous()).await.is_err();
        assert_eq!(specs, name == "strict", "{name}: anonymous specs");
        let egress = decide("io:egress:http.api.example.com:443", admin()).await.is_err();
        assert_eq!(egress, name == "strict", "{name}: outgoing HTTP");
    }
    rig.stop().await;
}

/// A budget of 5 per 60 s: the 6th call in the window is refused with the
/// time left; the count survives a restart inside the window; the next
/// window allows again; counts are per caller; a deny contract wins over a
/// budget that matches first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_is_counted_durably_and_refuses_with_retry_after() {
    let state = Arc::new(tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")));
    let file = state.path().join("gating.toml");
    std::fs::write(
        &file,
        "[[contract]]\nid = \"five\"\npatterns = [\"tools:invoke\"]\nbudget = { limit = 5, window = \"60s\", kind = \"fixed\", per = \"caller\" }\n\n\
         [[contract]]\nid = \"blocked\"\npatterns = [\"tools:*\"]\ndeny = true\ncaller-names = [\"blocked\"]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let start = || async {
        let mut config = arw_tests::config(state.path());
        config.gating.gates = vec!["arw:gating".into()];
        config.gating.timeout_ms = 5_000;
        config.gating.files.insert("arw:gating".into(), file.clone());
        let gate = Components::new().with(manifests::GATING, artifacts::GATING.bytes);
        let (host, refused) = arw_host::Host::start(config, arw_tests::policies(&[DEFAULT_POLICIES]), &gate)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(refused.is_empty(), "{refused:?}");
        host
    };
    // A window start: a multiple of 60 000 ms.
    let t0 = UNIX_EPOCH + Duration::from_millis(1_800_000_000_000);
    let after = |ms: u64| t0 + Duration::from_millis(ms);
    let caller = |name: &str| GateCaller { name: name.into(), roles: vec![], tags: vec![], authenticated: true };
    let host = start().await;
    for i in 0..5 {
        assert_eq!(host.gate(&request("tools:invoke", caller("ops"), after(i))).await, Ok(()), "call {}", i + 1);
    }
    let sixth = host.gate(&request("tools:invoke", caller("ops"), after(10_000))).await;
    let Err(GateDenied::Denied { contract, code, retry_after_ms, .. }) = sixth else { panic!("{sixth:?}") };
    assert_eq!((contract.as_str(), code.as_str(), retry_after_ms), ("five", "budget-exhausted", Some(50_000)));
    // Deny over budget, although the budget comes first in the file.
    let blocked = host.gate(&request("tools:invoke", caller("blocked"), after(10_000))).await;
    assert!(
        matches!(&blocked, Err(GateDenied::Denied { contract, retry_after_ms: None, .. }) if contract == "blocked"),
        "{blocked:?}"
    );
    host.shutdown(Duration::from_secs(5)).await;

    // Restarted inside the window: the five are remembered.
    let host = start().await;
    let still = host.gate(&request("tools:invoke", caller("ops"), after(20_000))).await;
    assert!(matches!(still, Err(GateDenied::Denied { retry_after_ms: Some(40_000), .. })), "{still:?}");
    assert_eq!(host.gate(&request("tools:invoke", caller("other"), after(20_000))).await, Ok(()), "per caller");
    assert_eq!(host.gate(&request("tools:invoke", caller("ops"), after(60_000))).await, Ok(()), "a new window");
    host.shutdown(Duration::from_secs(5)).await;
}

/// An HTTP tool call is one action under two keys (its route's and its
/// tool's), asked in one entry of the gate: a per-caller budget covering
/// both counts it once, a per-key budget once per key, the allow counter
/// moves by one per call, and a deny on either key still refuses it,
/// naming that key. A component's own call is asked again (no pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_tool_call_asks_each_gate_once_for_its_route_and_tool() {
    let budgets = |per: &str| {
        format!(
            "[[contract]]\nid = \"three\"\npatterns = [\"tools:invoke\", \"io:ingress:tools.*\"]\n\
             budget = {{ limit = 3, window = \"1h\", kind = \"fixed\", per = \"{per}\" }}\n"
        )
    };
    let rig = Rig::gating(&budgets("caller")).await;
    let server = &rig.server;
    let allows = || async {
        let metrics = server.get("/metrics", Some(ADMIN_TOKEN)).await.text().await.unwrap_or_default();
        metrics
            .lines()
            .filter(|l| l.starts_with("arw_gate_decisions_total{") && l.contains("verdict=\"allow\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let call = |name: &'static str| async move {
        server.post("/tools/kv-counter/invoke", Some(ADMIN_TOKEN), &json!({"name": name}).to_string()).await
    };
    let before = allows().await;
    for i in 1..=3 {
        assert_eq!(call("once").await.status(), 200, "call {i} of 3 within the budget");
    }
    // Three calls, and this scrape's own route: one entry each.
    assert_eq!(allows().await - before, 4.0, "each HTTP tool call entered the gate once");
    let fourth = call("once").await;
    assert_eq!(fourth.status(), 429, "the budget counts a call once, not once per key");
    assert_eq!(problem(fourth).await["code"], "gate-retry-later");

    // Per key: the route's and the tool's count apart, so a call costs one
    // of each, and the fourth is refused.
    rig.contracts(&budgets("key").replace("three", "per-key")).await;
    for i in 1..=3 {
        assert_eq!(call("per-key").await.status(), 200, "call {i} of 3 within the per-key budget");
    }
    assert_eq!(call("per-key").await.status(), 429);

    // A deny on the tool's key refuses the HTTP call, naming that key.
    let ingress = keys::TOOL_INGRESS.key("kv-counter");
    rig.contracts(&deny(&ingress)).await;
    let denied = call("denied").await;
    assert_eq!(denied.status(), 403);
    let detail = problem(denied).await["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains(&format!("`{ingress}`")), "the refusal names the tool's key: {detail}");
    // A component's call of the tool has no pass: asked again, refused.
    let nested = rig.probe(json!({"op": "tools.invoke", "tool": "kv-counter", "input": {"name": "denied"}})).await;
    assert!(nested.err().map(|e| e.to_string()).unwrap_or_default().contains("gate-denied"));
    rig.contracts("").await;
    assert_eq!(rig.counter("denied").await, 1, "a refused call reached kv-counter");
    assert_eq!(rig.counter("once").await, 4, "exactly the three calls in the budget ran");
    rig.stop().await;
}

/// A gate that decides on a request's size gets the real size of an HTTP
/// tool call's input even when the body comes chunked, without a
/// `Content-Length` (the route's check saw 0 bytes, so the call does not
/// spend its pass: it asks again with the input's size).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_is_gated_by_its_real_size() {
    let rig = Rig::gate_probe("deny-over 64").await;
    let server = &rig.server;
    let big = json!({"name": "x".repeat(100)}).to_string();
    // With a Content-Length, the route's check sees the size and refuses.
    let sized = server.post("/tools/kv-counter/invoke", Some(ADMIN_TOKEN), &big).await;
    assert_eq!(sized.status(), 403);
    // Chunked, by hand: the route's check sees 0 bytes; the call must not
    // take that for the input's size.
    let answer = post_chunked(server, "/tools/kv-counter/invoke", &big).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "a chunked body past the gate's size limit: {answer}");
    assert!(answer.contains("gate-denied"), "{answer}");
    // A small one, chunked, goes through (the second ask allows it).
    let answer = post_chunked(server, "/tools/kv-counter/invoke", &json!({"name": "ok"}).to_string()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    rig.stop().await;
}

/// POST `body` to `path` as one chunk (`Transfer-Encoding: chunked`, no
/// `Content-Length`) over a raw connection; the whole response as text.
async fn post_chunked(server: &TestServer, path: &str, body: &str) -> String {
    let address = server.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap_or_else(|e| panic!("{e}"));
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
         {:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    answer
}

fn gate_package(manifest: &str, wasm: &'static [u8]) -> arw_host::source::ComponentPackage {
    let manifest = arw_host::manifest::Manifest::parse(manifest).unwrap_or_else(|e| panic!("{e}"));
    let publisher = Some(manifest.id.namespace().to_string());
    arw_host::source::ComponentPackage {
        manifest,
        wasm: std::borrow::Cow::Borrowed(wasm),
        origin: "test".into(),
        publisher,
    }
}

/// arw:gating swapped ten times, then upgraded to a broken version (it
/// traps at every check), under 8 clients calling as a caller a contract
/// denies and as one it allows: no denied request is ever let through,
/// and no allowed one ever fails for lack of a gate. The broken version
/// is rolled back; until then the version it replaced decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_is_hot_swapped_under_load_without_a_wrong_answer() {
    let rig = Rig::gating(
        "[[contract]]\nid = \"no-viewers\"\npatterns = [\"tools:invoke\"]\ndeny = true\ncaller-names = [\"viewer\"]\n",
    )
    .await;
    let server = &rig.server;
    let mut control = server.host.control();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for n in 0..8 {
        let (client, url, stop) = (server.client.clone(), server.url("/tools/text-stats/invoke"), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut seen: Vec<(bool, u16)> = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) || i < 20 {
                let viewer = (i + n).is_multiple_of(2);
                let token = if viewer { arw_tests::http::VIEWER_TOKEN } else { ADMIN_TOKEN };
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .bearer_auth(token)
                    .body("{\"text\":\"a b\"}")
                    .send()
                    .await;
                let status = match response {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        if status != if viewer { 403 } else { 200 } {
                            eprintln!("{status}: {}", r.text().await.unwrap_or_default());
                        }
                        status
                    }
                    Err(_) => 0,
                };
                seen.push((viewer, status));
                i += 1;
            }
            seen
        }));
    }
    let gating = |version: &str| {
        gate_package(
            &manifests::GATING.replace("version = \"0.1.0\"", &format!("version = \"{version}\"")),
            artifacts::GATING.bytes,
        )
    };
    for k in 1..=10 {
        let activated = server.host.activate(gating(&format!("0.1.{k}"))).await;
        assert!(activated.is_ok(), "{activated:?}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // A broken upgrade: it passes its health check and traps at every check.
    let broken = "id = \"arw:gating\"\nversion = \"0.2.0\"\nworlds = [\"gate\"]\n\
                  [[capabilities]]\naction = \"config.read\"\nresource = \"mode\"\n[config]\nmode = \"trap\"\n";
    let grant_mode = server.host.reload_policies(vec![
        arw_policy::PolicySource::new("default.cedar", DEFAULT_POLICIES),
        arw_policy::PolicySource::new("operator.cedar", OPERATOR_INVOKES),
        arw_policy::PolicySource::new("probe.cedar", PROBE_GRANTS),
        arw_policy::PolicySource::new(
            "mode.cedar",
            "permit(principal == Arw::Component::\"arw:gating\", action == Arw::Action::\"config.read\", resource);",
        ),
    ]);
    assert!(grant_mode.await.is_ok());
    let activated = server.host.activate(gate_package(broken, artifacts::GATE_PROBE.bytes)).await;
    assert!(activated.is_ok(), "{activated:?}");
    // It is rolled back to 0.1.10 by its faults.
    let rolled_back = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match control.recv().await {
                Ok(arw_host::supervisor::ControlEvent::RolledBack { component, version, .. })
                    if component == "arw:gating" =>
                {
                    return Some(version);
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the broken gate was never rolled back"));
    assert_eq!(rolled_back.as_deref(), Some("0.1.10"));
    stop.store(true, Ordering::SeqCst);
    let mut viewers = 0;
    let mut admins = 0;
    for client in clients {
        for (viewer, status) in client.await.unwrap_or_else(|e| panic!("{e}")) {
            if viewer {
                viewers += 1;
                assert_eq!(status, 403, "a request the contract denies got {status}");
            } else {
                admins += 1;
                assert_eq!(status, 200, "an allowed request got {status} (decided by no gate?)");
            }
        }
    }
    assert!(viewers >= 80 && admins >= 80, "{viewers} denied and {admins} allowed requests");
    rig.stop().await;
}

/// `/admin/gating/*`: the gates and the keys with their contracts, what a
/// request would meet, and a reload that reports a refused file's line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_routes_show_check_and_reload_the_gates() {
    let rig = Rig::gating(&deny("spec:openapi")).await;
    let server = &rig.server;
    let view: serde_json::Value = server.get("/admin/gating", Some(ADMIN_TOKEN)).await.json().await.unwrap_or_default();
    assert_eq!(view["gates"][0]["id"], "arw:gating");
    assert_eq!(view["gates"][0]["in_force"], true);
    let keys = view["keys"].as_array().cloned().unwrap_or_default();
    let covering = |key: &str| {
        keys.iter().find(|k| k["key"] == key).map(|k| k["contracts"]["arw:gating"].clone()).unwrap_or_default()
    };
    assert_eq!(covering("spec:openapi"), json!(["block"]));
    assert_eq!(covering("spec:asyncapi"), json!([]));
    assert_eq!(covering("io:ingress:tools.kv-counter"), json!([]), "each tool's ingress key is listed");

    let check = |body: serde_json::Value| async move {
        let response = server.post("/admin/gating/check", Some(ADMIN_TOKEN), &body.to_string()).await;
        (response.status().as_u16(), response.json::<serde_json::Value>().await.unwrap_or_default())
    };
    let (status, denied) = check(json!({"key": "spec:openapi", "as": "viewer"})).await;
    assert_eq!((status, denied["verdict"].clone(), denied["contract"].clone()), (200, json!("deny"), json!("block")));
    assert_eq!(denied["caller"], "viewer");
    let (_, allowed) = check(json!({"key": "spec:asyncapi"})).await;
    assert_eq!((allowed["verdict"].clone(), allowed["caller"].clone()), (json!("allow"), json!("ops")));
    assert_eq!(check(json!({"key": "Not A Key"})).await.0, 400);
    assert_eq!(check(json!({"key": "spec:openapi", "as": "nobody"})).await.0, 400);
    assert_eq!(check(json!({"key": "spec:openapi", "at": "noon"})).await.0, 400);

    std::fs::write(&rig.file, "[[contract]]\nid = \"x\"\n").unwrap_or_else(|e| panic!("{e}"));
    let reload: serde_json::Value =
        server.post("/admin/gating/reload", Some(ADMIN_TOKEN), "null").await.json().await.unwrap_or_default();
    assert_eq!(reload[0]["outcome"], "failed", "{reload}");
    assert_eq!(reload[0]["line"], 1, "{reload}");
    assert_eq!(server.get("/spec/openapi.json", None).await.status(), 403, "the old contracts stay");
    std::fs::write(&rig.file, "").unwrap_or_else(|e| panic!("{e}"));
    let reload: serde_json::Value =
        server.post("/admin/gating/reload", Some(ADMIN_TOKEN), "null").await.json().await.unwrap_or_default();
    assert_eq!(reload[0]["outcome"], "reloaded", "{reload}");
    assert_eq!(server.get("/spec/openapi.json", None).await.status(), 200);
    // Cedar decides who may use them: the viewer may not.
    let viewer = server.get("/admin/gating", Some(arw_tests::http::VIEWER_TOKEN)).await;
    assert_eq!(viewer.status(), 403);
    rig.stop().await;
}
