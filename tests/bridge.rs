//! The bus bridge across three hosts on one real `nats-server`: events on
//! `cluster.bridge-topics` published on one host reach the other two
//! exactly once, marked remote with their origin; nothing is sent on, so
//! there are no loops (each host sends only its own events: counted);
//! other topics stay home; a copy of an id already delivered, and a
//! message that is not a well-formed envelope, are dropped and counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use arw_host::Host;
use arw_host::capabilities::bus::{Event, Payload};
use arw_tests::nats::NatsServer;
use arw_tests::{Components, config, policies};
use tokio::sync::broadcast;

const NODES: [&str; 3] = ["alpha", "beta", "gamma"];

async fn host(node: &str, nats: &NatsServer) -> (Host, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let mut config = config(state.path());
    config.node.id = node.to_string();
    config.cluster.nats_url = Some(nats.url());
    config.cluster.bridge_topics = vec!["orders.*".into()];
    let (host, refused) = Host::start(config, policies(&[]), &Components::new()).await.unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    (host, state)
}

/// Events received so far on `observer` until `done` holds of them
/// (bounded: 20 s).
async fn until(
    observer: &mut broadcast::Receiver<Arc<Event>>,
    seen: &mut Vec<Arc<Event>>,
    done: impl Fn(&[Arc<Event>]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done(seen) {
        match tokio::time::timeout_at(deadline, observer.recv()).await {
            Ok(Ok(event)) => seen.push(event),
            Ok(Err(e)) => panic!("the observer failed: {e}"),
            Err(_) => panic!("timed out with {} events", seen.len()),
        }
    }
}

fn json(n: usize, from: &str) -> Payload {
    Payload::Json(format!("{{\"n\":{n},\"from\":\"{from}\"}}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_each_get_the_others_events_once_with_no_loops() {
    let server = NatsServer::start().await;
    let mut hosts = Vec::new();
    for node in NODES {
        hosts.push(host(node, &server).await);
    }
    let mut observers: Vec<_> = hosts.iter().map(|(h, _)| h.bus().observe()).collect();
    // Wait until every bridge is subscribed: a probe event from each host
    // reaches the two others.
    let mut seen: Vec<Vec<Arc<Event>>> = vec![Vec::new(); 3];
    let remote =
        |events: &[Arc<Event>], topic: &str| events.iter().filter(|e| e.topic == topic && e.origin.is_some()).count();
    for round in 0.. {
        for (h, _) in &hosts {
            h.bus().publish("test", "orders.ready", json(round, "x")).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        for (i, observer) in observers.iter_mut().enumerate() {
            while let Ok(event) = observer.try_recv() {
                seen[i].push(event);
            }
        }
        if seen.iter().all(|s| remote(s, "orders.ready") >= 2) {
            break;
        }
        assert!(round < 200, "the bridges never connected");
    }
    // The warm-up's last events may still be on the way: start counting
    // once no counter has moved for 200 ms.
    let counts = || hosts.iter().map(|(h, _)| h.bridge_counts().unwrap()).collect::<Vec<_>>();
    let mut before = counts();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = counts();
        if now == before {
            break;
        }
        before = now;
    }
    for observer in &mut observers {
        while observer.try_recv().is_ok() {}
    }
    seen.iter_mut().for_each(Vec::clear);

    // 200 events from each host, all at once; one that is not bridged.
    const N: usize = 200;
    for (i, (h, _)) in hosts.iter().enumerate() {
        h.bus().publish("test", "billing.paid", json(0, NODES[i])).unwrap();
        for n in 0..N {
            h.bus().publish("test", "orders.created", json(n, NODES[i])).unwrap();
        }
    }
    for (i, observer) in observers.iter_mut().enumerate() {
        until(observer, &mut seen[i], |s| remote(s, "orders.created") >= 2 * N).await;
    }
    // A sentinel from each host after everything: once each host has the
    // two others', anything sent before them has arrived (one connection
    // keeps its order).
    for (h, _) in &hosts {
        h.bus().publish("test", "orders.sentinel", json(0, "end")).unwrap();
    }
    for (i, observer) in observers.iter_mut().enumerate() {
        until(observer, &mut seen[i], |s| remote(s, "orders.sentinel") >= 2).await;
    }

    for (i, (h, _)) in hosts.iter().enumerate() {
        let events = &seen[i];
        // Exactly the others' N each, once (by origin and payload), none of its own back.
        for (j, other) in NODES.iter().enumerate() {
            let from: Vec<_> = events
                .iter()
                .filter(|e| e.topic == "orders.created" && e.origin.as_ref().is_some_and(|o| &*o.node == *other))
                .collect();
            let expected = if i == j { 0 } else { N };
            assert_eq!(from.len(), expected, "{} got {} events from {other}", NODES[i], from.len());
            let mut ns: Vec<u64> = from.iter().filter_map(|e| e.json()?["n"].as_u64()).collect();
            ns.sort_unstable();
            ns.dedup();
            assert_eq!(ns.len(), expected, "{} got a repeat from {other}", NODES[i]);
            for e in &from {
                let origin = e.origin.as_ref().unwrap();
                assert!(origin.uid.starts_with(&format!("{other}/")), "{}", origin.uid);
                assert_eq!(origin.hops, 1);
            }
        }
        assert_eq!(remote(events, "billing.paid"), 0, "{}: a topic outside bridge-topics crossed", NODES[i]);
        // It sent its own events only: N + the sentinel, none it received.
        // (The counters move just after the bus delivery the test saw:
        // wait for them, bounded, then compare exactly.)
        let expected = (N as u64 + 1, 2 * (N as u64 + 1));
        for _ in 0..500 {
            let counts = h.bridge_counts().unwrap();
            if (counts.exported - before[i].exported, counts.imported - before[i].imported) >= expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let counts = h.bridge_counts().unwrap();
        assert_eq!(counts.exported - before[i].exported, N as u64 + 1, "{}: {counts:?}", NODES[i]);
        assert_eq!(counts.imported - before[i].imported, 2 * (N as u64 + 1), "{}: {counts:?}", NODES[i]);
        assert_eq!((counts.duplicates, counts.refused, counts.export_failed), (0, 0, 0), "{}: {counts:?}", NODES[i]);
    }
    for (h, _) in hosts {
        h.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_copy_and_a_malformed_envelope_are_dropped_and_counted() {
    let server = NatsServer::start().await;
    let (host, _state) = host("beta", &server).await;
    let mut observer = host.bus().observe();
    let client = server.client().await;
    let envelope = |uid: &str, origin: &str| {
        let mut headers = async_nats::HeaderMap::new();
        for (name, value) in [
            ("Arw-Uid", uid),
            ("Arw-Origin", origin),
            ("Arw-Hops", "1"),
            ("Arw-Source", "acme:x"),
            ("Arw-Time-Ms", "5"),
            ("Arw-Payload", "json"),
        ] {
            headers.insert(name, value);
        }
        headers
    };
    // Until the bridge is subscribed, a first copy may be missed: send
    // copies of new ids until one arrives.
    let mut first = None;
    for n in 0..200 {
        let uid = format!("alpha/{n}");
        client
            .publish_with_headers("arw.events.alpha.orders.created", envelope(&uid, "alpha"), "{\"n\":1}".into())
            .await
            .unwrap();
        if let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(50), observer.recv()).await {
            first = Some(event);
            break;
        }
    }
    let event = first.expect("the bridge never received");
    let uid = event.origin.as_ref().map(|o| o.uid.to_string()).expect("a remote event");
    assert!(uid.starts_with("alpha/"), "{uid}");
    assert_eq!(&*event.source, "acme:x");
    // Count from when nothing moves any more (the counters move just
    // after the bus delivers, and later copies may still arrive).
    let mut base = host.bridge_counts().unwrap();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = host.bridge_counts().unwrap();
        if now == base {
            break;
        }
        base = now;
    }
    while observer.try_recv().is_ok() {}

    // The same id again, then broken envelopes, then a good new one.
    client.publish_with_headers("arw.events.alpha.orders.created", envelope(&uid, "alpha"), "{}".into()).await.unwrap();
    client.publish("arw.events.alpha.orders.created", "{}".into()).await.unwrap();
    client
        .publish_with_headers("arw.events.alpha.orders.created", envelope("gamma/1", "gamma"), "{}".into())
        .await
        .unwrap();
    client
        .publish_with_headers("arw.events.alpha.orders.created", envelope("alpha/100001", "alpha"), "not json".into())
        .await
        .unwrap();
    client
        .publish_with_headers("arw.events.alpha.audit.denied", envelope("alpha/100002", "alpha"), "{}".into())
        .await
        .unwrap();
    client
        .publish_with_headers("arw.events.alpha.orders.created", envelope("alpha/seven", "alpha"), "{}".into())
        .await
        .unwrap();
    client
        .publish_with_headers("arw.events.alpha.orders.created", envelope("alpha/100003", "alpha"), "{\"n\":2}".into())
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), observer.recv()).await.unwrap().unwrap();
    assert_eq!(next.origin.as_ref().map(|o| o.uid.to_string()).as_deref(), Some("alpha/100003"), "{next:?}");
    let settled = |c: &arw_host::cluster::bridge::BridgeCounts| {
        (c.imported - base.imported, c.duplicates - base.duplicates, c.refused - base.refused) >= (1, 1, 5)
    };
    for _ in 0..500 {
        if settled(&host.bridge_counts().unwrap()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let counts = host.bridge_counts().unwrap();
    assert_eq!(counts.duplicates - base.duplicates, 1, "{counts:?}");
    assert_eq!(counts.refused - base.refused, 5, "{counts:?}");
    assert_eq!(counts.imported - base.imported, 1, "{counts:?}");
    host.shutdown(Duration::from_secs(5)).await;
}

/// With `bridge-topics = ["*"]` the host's own events still stay home:
/// a subscriber on every bridged subject sees the component event
/// published after the host event, first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_own_events_never_leave_even_under_a_catch_all_pattern() {
    let server = NatsServer::start().await;
    let client = server.client().await;
    let mut everything = client.subscribe("arw.events.>").await.unwrap();
    client.flush().await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut config = config(state.path());
    config.node.id = "alpha".into();
    config.cluster.nats_url = Some(server.url());
    config.cluster.bridge_topics = vec!["*".into()];
    let (host, _) = Host::start(config, policies(&[]), &Components::new()).await.unwrap();
    // Until the exporter is connected, send pairs; the first bridged
    // message must be a component event, never the host's.
    let mut first = None;
    for n in 0..200 {
        host.bus().publish_host("component.activated", json(n, "host")).unwrap();
        host.bus().publish("test", "orders.created", json(n, "test")).unwrap();
        if let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(50), futures::StreamExt::next(&mut everything)).await
        {
            first = Some(message);
            break;
        }
    }
    let first = first.expect("the bridge never sent");
    assert_eq!(first.subject.as_str(), "arw.events.alpha.orders.created");
    // Now that it sends: a host event, then a last component event; all
    // that arrives up to the last one is component events.
    host.bus().publish_host("component.activated", json(0, "host")).unwrap();
    host.bus().publish("test", "orders.end", json(0, "test")).unwrap();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut everything))
            .await
            .unwrap()
            .unwrap();
        assert!(message.subject.as_str().starts_with("arw.events.alpha.orders."), "{}", message.subject);
        if message.subject.as_str() == "arw.events.alpha.orders.end" {
            break;
        }
    }
    host.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_node_id_that_is_not_one_token_or_a_reserved_topic_is_refused_at_start() {
    let state = tempfile::tempdir().unwrap();
    let mut bad_node = config(state.path());
    bad_node.node.id = "edge.1".into();
    bad_node.cluster.nats_url = Some("nats://127.0.0.1:1".into());
    bad_node.cluster.bridge_topics = vec!["orders.*".into()];
    let error = Host::start(bad_node, policies(&[]), &Components::new()).await.err().map(|e| e.to_string());
    assert!(error.as_deref().is_some_and(|e| e.contains("node.id")), "{error:?}");
    let mut reserved = config(state.path());
    reserved.node.id = "alpha".into();
    reserved.cluster.nats_url = Some("nats://127.0.0.1:1".into());
    reserved.cluster.bridge_topics = vec!["audit.*".into()];
    let error = Host::start(reserved, policies(&[]), &Components::new()).await.err().map(|e| e.to_string());
    assert!(error.as_deref().is_some_and(|e| e.contains("never cross hosts")), "{error:?}");
}
