//! `GET /events`: the bus as Server-Sent Events, read by a real HTTP client
//! over a real socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use arw_host::capabilities::bus::Payload;
use arw_tests::DEFAULT_POLICIES;
use arw_tests::http::{ADMIN_TOKEN, TestServer, http_config};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One SSE message (an event or a comment).
#[derive(Debug, Default, Clone)]
struct Message {
    id: Option<String>,
    event: Option<String>,
    data: String,
    comment: bool,
}

impl Message {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {}", self.data))
    }
}

fn parse(block: &str) -> Message {
    let mut message = Message::default();
    for line in block.lines() {
        if let Some(rest) = line.strip_prefix(':') {
            message.comment = true;
            let _ = rest;
        } else if let Some(v) = line.strip_prefix("id:") {
            message.id = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("event:") {
            message.event = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("data:") {
            message.data.push_str(v.trim_start());
        }
    }
    message
}

struct Sse {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl Sse {
    async fn open(server: &TestServer, query: &str, token: Option<&str>, last_id: Option<&str>) -> Sse {
        let mut request = server.client.get(server.url(&format!("/events{query}")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = last_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        Sse { body: response.bytes_stream().boxed(), buffer: String::new() }
    }

    /// The next message (comments included), or None after `wait`.
    async fn next_message(&mut self, wait: Duration) -> Option<Message> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return Some(parse(&block));
            }
            let chunk = tokio::time::timeout(wait, self.body.next()).await.ok()??.ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next event (skipping comments).
    async fn next_event(&mut self) -> Message {
        loop {
            let message = self.next_message(Duration::from_secs(10)).await.expect("an event within 10 s");
            if !message.comment {
                return message;
            }
        }
    }

    /// Whether any event arrives within `wait`.
    async fn quiet_for(&mut self, wait: Duration) -> bool {
        loop {
            match self.next_message(wait).await {
                None => return true,
                Some(m) if m.comment => continue,
                Some(_) => return false,
            }
        }
    }
}

async fn announce(server: &TestServer, topic: &str, message: serde_json::Value) -> u64 {
    let body = serde_json::json!({"topic": topic, "message": message}).to_string();
    let response = server.post("/tools/announce/invoke", Some(ADMIN_TOKEN), &body).await;
    assert_eq!(response.status(), 200);
    response.json::<serde_json::Value>().await.unwrap()["id"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_receives_what_announce_publishes_and_only_what_cedar_lets_it_see() {
    let server = TestServer::start(&[DEFAULT_POLICIES], http_config()).await;
    // Anonymous callers may watch demo.* (default policies), nothing else.
    let mut anonymous = Sse::open(&server, "", None, None).await;
    let mut admin = Sse::open(&server, "?prefix=demo.hello&prefix=audit", Some(ADMIN_TOKEN), None).await;

    let id = announce(&server, "demo.hello", serde_json::json!({"n": 1})).await;
    // A refusal: an audit.denied event, which anonymous callers may not see.
    assert_eq!(server.post("/tools/kv-counter/invoke", None, "{}").await.status(), 403);
    announce(&server, "demo.other", serde_json::json!({"n": 2})).await;

    let first = anonymous.next_event().await;
    assert_eq!(first.event.as_deref(), Some("demo.hello"));
    assert_eq!(first.id, Some(id.to_string()));
    let data = first.json();
    assert_eq!((data["source"].as_str(), data["payload"].clone()), (Some("arw:announce"), serde_json::json!({"n": 1})));
    assert_eq!(anonymous.next_event().await.event.as_deref(), Some("demo.other"), "audit.denied is filtered out");

    // The admin stream: demo.hello and audit.denied, not demo.other (prefixes).
    assert_eq!(admin.next_event().await.event.as_deref(), Some("demo.hello"));
    let audit = admin.next_event().await;
    assert_eq!(audit.event.as_deref(), Some("audit.denied"));
    assert_eq!(audit.json()["payload"]["action"], "tool.invoke");
    assert!(admin.quiet_for(Duration::from_millis(300)).await, "demo.other is not under the prefixes");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_returns_the_last_n_and_last_event_id_resumes_without_loss() {
    let server = TestServer::start(&[DEFAULT_POLICIES], http_config()).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(announce(&server, "demo.replay", serde_json::json!(n)).await);
    }
    let mut replay = Sse::open(&server, "?replay=3", Some(ADMIN_TOKEN), None).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(replay.next_event().await.json()["payload"].clone());
    }
    assert_eq!(seen, [2, 3, 4]);

    // Read two live events, drop the connection, miss three, resume.
    let mut live = Sse::open(&server, "?prefix=demo", Some(ADMIN_TOKEN), None).await;
    announce(&server, "demo.resume", serde_json::json!("a")).await;
    announce(&server, "demo.resume", serde_json::json!("b")).await;
    live.next_event().await;
    let last = live.next_event().await.id.unwrap();
    drop(live);
    for payload in ["c", "d", "e"] {
        announce(&server, "demo.resume", serde_json::json!(payload)).await;
    }
    let mut resumed = Sse::open(&server, "?prefix=demo", Some(ADMIN_TOKEN), Some(&last)).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(resumed.next_event().await.json()["payload"].clone());
    }
    assert_eq!(got, ["c", "d", "e"], "nothing missed, nothing repeated");
    announce(&server, "demo.resume", serde_json::json!("f")).await;
    assert_eq!(resumed.next_event().await.json()["payload"], "f", "then live events follow");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_an_event_no_longer_kept_says_how_many_were_lost() {
    let server = TestServer::start_with(&[DEFAULT_POLICIES], http_config(), |config| config.bus.replay = 4).await;
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(server.host.bus().publish("test", "demo.old", Payload::Json(n.to_string())).unwrap());
    }
    // After ids[1]: ids[2..6] fell out of the 4-event ring, ids[6..] are kept.
    let mut resumed = Sse::open(&server, "", Some(ADMIN_TOKEN), Some(&ids[1].to_string())).await;
    let gap = resumed.next_event().await;
    assert_eq!(gap.event.as_deref(), Some("bus.gap"));
    assert_eq!(gap.json()["skipped"], 4);
    for n in 6..10 {
        assert_eq!(resumed.next_event().await.json()["payload"], n);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_gets_a_gap_event_and_the_host_stays_healthy() {
    let server = TestServer::start_with(&[DEFAULT_POLICIES], http_config(), |config| {
        // A small per-observer buffer and ring, so a stalled reader lags soon.
        config.bus.subscriber_queue = 16;
        config.bus.replay = 16;
    })
    .await;
    // A raw socket that sends the request, then does not read.
    let address = server.base.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!("GET /events HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n");
    slow.write_all(request.as_bytes()).await.unwrap();
    // Let the server start the stream before the flood.
    let mut head = [0u8; 64];
    let n = slow.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));

    // Far more than the socket buffers hold: 400 events of 64 KiB.
    let payload = serde_json::json!({"pad": "x".repeat(64 << 10)}).to_string();
    for _ in 0..400 {
        server.host.bus().publish("test", "demo.flood", Payload::Json(payload.clone())).unwrap();
    }
    server.host.bus().publish("test", "demo.after", Payload::Json("1".into())).unwrap();

    // The host is healthy and serves others meanwhile.
    assert_eq!(server.get("/healthz", None).await.status(), 200);
    assert_eq!(server.post("/tools/text-stats/invoke", None, r#"{"text":"ok"}"#).await.status(), 200);

    // Now read: somewhere in the stream there is a bus.gap with a count.
    let mut seen = Vec::new();
    let mut buffer = vec![0u8; 1 << 20];
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let n = slow.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the stream ended");
            seen.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&seen);
            if let Some(at) = text.find("event: bus.gap\ndata: ") {
                let line = text[at..].lines().nth(1).unwrap_or_default().to_string();
                if line.ends_with('}') {
                    return line;
                }
            }
            if seen.len() > (64 << 20) {
                panic!("no bus.gap in 64 MiB of stream");
            }
        }
    })
    .await
    .expect("a bus.gap event within 30 s");
    let gap: serde_json::Value = serde_json::from_str(found.trim_start_matches("data: ")).unwrap();
    assert!(gap["skipped"].as_u64().unwrap() > 0, "{gap}");
    let stats = server.host.bus_stats();
    assert!(stats.observer_lagged > 0, "{stats:?}");

    // A well-behaved client still gets new events.
    let mut fresh = Sse::open(&server, "?prefix=demo.fresh", Some(ADMIN_TOKEN), None).await;
    server.host.bus().publish("test", "demo.fresh", Payload::Json("2".into())).unwrap();
    assert_eq!(fresh.next_event().await.event.as_deref(), Some("demo.fresh"));
    drop(slow);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_get_keep_alive_comments_and_end_at_shutdown() {
    let mut http = http_config();
    http.events_keepalive_ms = 100;
    let server = TestServer::start(&[DEFAULT_POLICIES], http).await;
    let mut idle = Sse::open(&server, "?prefix=demo.none", None, None).await;
    let message = idle.next_message(Duration::from_secs(5)).await.expect("a keep-alive within 5 s");
    assert!(message.comment, "{message:?}");
    // Shutdown ends the stream (it does not hold the server open).
    let stopping = tokio::spawn(server.stop());
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while idle.next_message(Duration::from_secs(10)).await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ended at shutdown");
    stopping.await.unwrap();
}

/// An event another host published (the cluster's bus bridge, here a
/// third-party NATS client sending its envelope) is shown with its
/// origin and cluster id; a local one has neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_event_is_shown_with_its_origin() {
    let nats = arw_tests::nats::NatsServer::start().await;
    let url = nats.url();
    let server = TestServer::start_with(&[DEFAULT_POLICIES], http_config(), move |config| {
        config.node.id = "beta".into();
        config.cluster.nats_url = Some(url);
        config.cluster.bridge_topics = vec!["demo.*".into()];
    })
    .await;
    let mut stream = Sse::open(&server, "?prefix=demo", None, None).await;
    let client = nats.client().await;
    let mut headers = async_nats::HeaderMap::new();
    for (name, value) in [
        ("Arw-Uid", "alpha/7"),
        ("Arw-Origin", "alpha"),
        ("Arw-Hops", "1"),
        ("Arw-Source", "acme:orders"),
        ("Arw-Time-Ms", "1700000000000"),
        ("Arw-Payload", "json"),
    ] {
        headers.insert(name, value);
    }
    // Until the bridge has subscribed, a message may find no one: send
    // again until the stream shows it (the host drops the repeats by id).
    let mut shown = None;
    for _ in 0..200 {
        client.publish_with_headers("arw.events.alpha.demo.remote", headers.clone(), "{\"n\":7}".into()).await.unwrap();
        if let Some(message) = stream.next_message(Duration::from_millis(50)).await.filter(|m| !m.comment) {
            shown = Some(message);
            break;
        }
    }
    let remote = shown.expect("the remote event was never shown").json();
    assert_eq!(
        (remote["origin"].as_str(), remote["uid"].as_str(), remote["source"].as_str()),
        (Some("alpha"), Some("alpha/7"), Some("acme:orders"))
    );
    assert_eq!(remote["payload"], serde_json::json!({"n": 7}));
    announce(&server, "demo.local", serde_json::json!({"n": 1})).await;
    let local = stream.next_event().await.json();
    assert_eq!(local["topic"], "demo.local", "a repeat of the remote event was shown: {local}");
    assert!(local.get("origin").is_none() && local.get("uid").is_none(), "{local}");
    // Counted on /metrics (just after the delivery: polled, bounded).
    let delivered = "arw_bridge_events_total{direction=\"in\",outcome=\"delivered\"} 1";
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = server.get("/metrics", Some(ADMIN_TOKEN)).await.text().await.unwrap();
        if metrics.lines().any(|l| l == delivered) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metrics.lines().any(|l| l == delivered), "{metrics}");
    server.stop().await;
}
