//! The bus bridge: this host's events on `cluster.bridge-topics` are sent
//! to the cluster, and the other hosts' events on those topics are
//! delivered on this host's bus, marked remote.
//!
//! On the wire, an event is one core NATS message on
//! `arw.events.<node>.<topic>`: the payload as it is (the body), and the
//! envelope in headers (`Arw-Uid` `<node>/<id>`, `Arw-Origin`, `Arw-Hops`,
//! `Arw-Source`, `Arw-Time-Ms`, `Arw-Payload` `json` or `bytes`).
//!
//! - **No loops**: a remote event is never sent on (only events published
//!   here are), and a host drops its own messages when they come back.
//! - **Exactly once per host** as far as NATS delivers: a second copy of
//!   an id already delivered (`cluster.bridge-dedup` remembered) is
//!   dropped and counted.
//! - **At most once**: core NATS; an event published while the
//!   connection is down waits in the client's buffer; one a slow bridge
//!   cannot take is dropped by the bus (its subscriber queue) and counted.
//! - **Never a host event**: reserved topics (`component.`, `audit.`, ...)
//!   are refused at configuration and at import, so no host can speak for
//!   another. The origin is what the sender claims: until membership signs
//!   hosts' messages with node keys, any client allowed to publish on
//!   `arw.events.>` can claim any origin, so grant that subject on the
//!   server to the hosts only.

use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use tokio::sync::watch;

use async_nats::header::HeaderName;

use crate::capabilities::bus::{Bus, Event, Origin, Payload};

// The envelope's headers, made once (a name parsed per message was a
// visible part of the bridge's cost).
const UID: HeaderName = HeaderName::from_static("Arw-Uid");
const ORIGIN: HeaderName = HeaderName::from_static("Arw-Origin");
const HOPS: HeaderName = HeaderName::from_static("Arw-Hops");
const SOURCE: HeaderName = HeaderName::from_static("Arw-Source");
const TIME_MS: HeaderName = HeaderName::from_static("Arw-Time-Ms");
const PAYLOAD: HeaderName = HeaderName::from_static("Arw-Payload");

/// The subject prefix of bridged events.
pub const SUBJECT_PREFIX: &str = "arw.events.";

/// More hops than this is refused (today every event crosses one bridge:
/// none is sent on).
pub const MAX_HOPS: u8 = 8;

/// What the bridge has done since start.
#[derive(Debug, Default)]
pub struct BridgeStats {
    pub exported: AtomicU64,
    pub export_failed: AtomicU64,
    pub imported: AtomicU64,
    pub duplicates: AtomicU64,
    pub refused: AtomicU64,
}

/// A copy of [`BridgeStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BridgeCounts {
    pub exported: u64,
    pub export_failed: u64,
    pub imported: u64,
    pub duplicates: u64,
    pub refused: u64,
}

impl BridgeStats {
    pub fn counts(&self) -> BridgeCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BridgeCounts {
            exported: get(&self.exported),
            export_failed: get(&self.export_failed),
            imported: get(&self.imported),
            duplicates: get(&self.duplicates),
            refused: get(&self.refused),
        }
    }
}

/// Can `node` name this host in subjects (one NATS token)?
pub fn check_node(node: &str) -> Result<(), String> {
    if node.is_empty() {
        return Err("the bus bridge (cluster.bridge-topics) needs `node.id`: set a name unique in the cluster".into());
    }
    let token = !node.is_empty() && node.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '.' | '*' | '>' | '/'));
    if token {
        Ok(())
    } else {
        Err(format!(
            "node.id {node:?} cannot name this host in the bus bridge's subjects: use letters, digits, `-` or `_` (no `.`, `*`, `>`, `/` or spaces)"
        ))
    }
}

/// Start the bridge: one task sending this host's events, one taking the
/// others'. Both end when `shutdown` turns true.
pub fn spawn(
    nats: Arc<crate::capabilities::nats::Nats>,
    bus: Arc<Bus>,
    node: &str,
    shutdown: watch::Receiver<bool>,
) -> Arc<BridgeStats> {
    let stats = Arc::new(BridgeStats::default());
    let patterns: Arc<[String]> = nats.config().bridge_topics.clone().into();
    let ends = Ends { nats, bus, node: Arc::from(node), patterns, stats: stats.clone() };
    tokio::spawn(export(ends.clone(), shutdown.clone()));
    tokio::spawn(import(ends, shutdown));
    stats
}

/// What both directions of the bridge work with.
#[derive(Clone)]
struct Ends {
    nats: Arc<crate::capabilities::nats::Nats>,
    bus: Arc<Bus>,
    /// This host's `node.id`.
    node: Arc<str>,
    /// `cluster.bridge-topics`.
    patterns: Arc<[String]>,
    stats: Arc<BridgeStats>,
}

/// Does `topic` cross hosts? One of the patterns matches it, and it is
/// not one of the host's own (a pattern such as `*` matches those too).
fn bridged(patterns: &[String], topic: &str) -> bool {
    crate::capabilities::bus::reserved_prefix(topic).is_none()
        && patterns.iter().any(|p| arw_manifest::glob_match(p, topic))
}

async fn export(ends: Ends, mut shutdown: watch::Receiver<bool>) {
    let Ends { nats, bus, node, patterns, stats } = ends;
    let filter = patterns.clone();
    let (subscription, mut events) = bus.subscribe(move |topic| bridged(&filter, topic));
    let client = tokio::select! {
        client = nats.client() => client.cloned(),
        _ = shutdown.changed() => Err("stopping".into()),
    };
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(target: "arw::cluster", "the bus bridge does not send: {e}");
            bus.unsubscribe(subscription);
            return;
        }
    };
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = shutdown.changed() => None,
        };
        let Some(event) = event else { break };
        // Only what was published here: a remote event is never sent on.
        if event.origin.is_some() {
            continue;
        }
        let (subject, headers, body) = envelope(&node, &event);
        match client.publish_with_headers(subject, headers, body.into()).await {
            Ok(()) => stats.exported.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(target: "arw::cluster", topic = %event.topic, "the bus bridge could not send an event: {e}");
                stats.export_failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
    bus.unsubscribe(subscription);
}

/// An event as the bridge sends it.
fn envelope(node: &str, event: &Event) -> (String, async_nats::HeaderMap, Vec<u8>) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(UID, format!("{node}/{}", event.id).as_str());
    headers.insert(ORIGIN, node);
    headers.insert(HOPS, "1");
    headers.insert(SOURCE, event.source.as_ref());
    headers.insert(TIME_MS, event.time_ms.to_string().as_str());
    let (kind, body) = match &event.payload {
        Payload::Json(text) => ("json", text.as_bytes().to_vec()),
        Payload::Bytes(bytes) => ("bytes", bytes.clone()),
    };
    headers.insert(PAYLOAD, kind);
    (format!("{SUBJECT_PREFIX}{node}.{}", event.topic), headers, body)
}

/// Remembered ids, oldest dropped first. An id is its node's name hashed
/// (seeded per run, 64 bits: two nodes of one cluster do not collide)
/// beside its number there: no allocation per event.
struct Seen {
    ids: HashSet<u128, foldhash::fast::RandomState>,
    order: VecDeque<u128>,
    capacity: usize,
    nodes: foldhash::fast::RandomState,
}

impl Seen {
    fn new(capacity: usize) -> Self {
        // Made full size at once: no growth while events arrive.
        let room = capacity.min(1 << 20);
        Seen {
            ids: HashSet::with_capacity_and_hasher(room, Default::default()),
            order: VecDeque::with_capacity(room),
            capacity,
            nodes: Default::default(),
        }
    }

    /// Remember event `id` of `node`; false if it was already.
    fn first_time(&mut self, node: &str, id: u64) -> bool {
        let key = (u128::from(self.nodes.hash_one(node)) << 64) | u128::from(id);
        if self.ids.contains(&key) {
            return false;
        }
        if self.order.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.ids.insert(key);
        self.order.push_back(key);
        true
    }
}

async fn import(ends: Ends, mut shutdown: watch::Receiver<bool>) {
    let Ends { nats, bus, node, patterns, stats } = ends;
    let subscribed = tokio::select! {
        client = nats.client() => match client {
            Ok(client) => client.subscribe(format!("{SUBJECT_PREFIX}*.>")).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        },
        _ = shutdown.changed() => return,
    };
    let mut messages = match subscribed {
        Ok(subscriber) => subscriber,
        Err(e) => {
            tracing::error!(target: "arw::cluster", "the bus bridge does not receive: {e}");
            return;
        }
    };
    let mut seen = Seen::new(nats.config().bridge_dedup);
    loop {
        let message = tokio::select! {
            message = messages.next() => message,
            _ = shutdown.changed() => None,
        };
        let Some(message) = message else { break };
        match received(&node, &patterns, &message) {
            Received::Own => {}
            Received::Refused(why) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: "arw::cluster", subject = %message.subject, "bridged event refused: {why}");
            }
            Received::Event { origin, id, source, topic, payload, time_ms } => {
                if !seen.first_time(&origin.node, id) {
                    stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                match bus.publish_remote(origin, &source, &topic, payload, time_ms) {
                    Ok(_) => stats.imported.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        tracing::debug!(target: "arw::cluster", topic, "bridged event refused by the bus: {e}");
                        stats.refused.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }
    }
}

/// What a bridged message is to this host.
enum Received {
    /// Its own, back from the server.
    Own,
    Refused(String),
    /// `id`: its number on its origin host.
    Event {
        origin: Origin,
        id: u64,
        source: String,
        topic: String,
        payload: Payload,
        time_ms: u64,
    },
}

fn received(node: &str, patterns: &[String], message: &async_nats::Message) -> Received {
    let Some(rest) = message.subject.as_str().strip_prefix(SUBJECT_PREFIX) else {
        return Received::Refused("not a bridge subject".into());
    };
    let Some((from, topic)) = rest.split_once('.') else { return Received::Refused("no topic".into()) };
    if from == node {
        return Received::Own;
    }
    if !bridged(patterns, topic) {
        return Received::Refused(format!("topic {topic} is not in cluster.bridge-topics"));
    }
    // One pass over the headers (each lookup by name hashed it again).
    let mut found: [Option<&str>; 6] = [None; 6];
    for (name, values) in message.headers.iter().flat_map(|h| h.iter()) {
        let slot = [&UID, &ORIGIN, &HOPS, &SOURCE, &TIME_MS, &PAYLOAD].iter().position(|h| *h == name);
        if let (Some(slot), Some(value)) = (slot, values.first()) {
            found[slot] = Some(value.as_str());
        }
    }
    let [Some(uid), Some(origin), Some(hops), Some(source), Some(time_ms), Some(kind)] = found else {
        return Received::Refused("an Arw-* header is missing".into());
    };
    let id = uid.strip_prefix(from).and_then(|rest| rest.strip_prefix('/')).and_then(|n| n.parse::<u64>().ok());
    let (Some(id), true) = (id, origin == from) else {
        return Received::Refused(format!(
            "origin {origin} and uid {uid}: not `<node>/<number>` of the subject's node {from}"
        ));
    };
    let Some(hops) = hops.parse::<u8>().ok().filter(|h| (1..=MAX_HOPS).contains(h)) else {
        return Received::Refused(format!("hops {hops}: 1 to {MAX_HOPS}"));
    };
    let (Ok(time_ms), true) = (time_ms.parse::<u64>(), source.len() <= 256) else {
        return Received::Refused("Arw-Time-Ms or Arw-Source is malformed".into());
    };
    let payload = match kind {
        "json" => match String::from_utf8(message.payload.to_vec()) {
            Ok(text) => Payload::Json(text),
            Err(_) => return Received::Refused("a json payload that is not UTF-8".into()),
        },
        "bytes" => Payload::Bytes(message.payload.to_vec()),
        other => return Received::Refused(format!("Arw-Payload {other}: json or bytes")),
    };
    let origin = Origin { node: Arc::from(from), uid: Arc::from(uid), hops };
    Received::Event { origin, id, source: source.to_string(), topic: topic.to_string(), payload, time_ms }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_id_must_be_one_token() {
        assert!(check_node("edge-1").is_ok());
        for bad in ["", "a.b", "a*", "a>", "a b", "a/b"] {
            assert!(check_node(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seen_ids_are_bounded_and_the_oldest_forgotten_first() {
        let mut seen = Seen::new(2);
        assert!(seen.first_time("n", 1) && seen.first_time("n", 2));
        assert!(!seen.first_time("n", 1));
        assert!(seen.first_time("m", 1), "another node's id 1 is another event");
        assert_eq!((seen.ids.len(), seen.order.len()), (2, 2));
        assert!(seen.first_time("n", 1), "the oldest was forgotten");
    }
}
