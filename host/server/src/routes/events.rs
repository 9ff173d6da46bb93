//! `GET /events`: the bus as Server-Sent Events.
//!
//! - `?replay=N` starts with the last N kept events (`bus.replay` are kept);
//! - `Last-Event-ID: <id>` (what browsers send on reconnect) starts after
//!   that event, so a client that reconnects misses nothing still kept;
//! - `?prefix=a.b` (repeatable) keeps topics equal to `a.b` or under `a.b.`;
//! - a client that reads too slowly gets a `bus.gap` event with the number
//!   of events it missed, then the stream goes on (the host never waits);
//! - each event is shown only if Cedar permits the caller
//!   `events.subscribe` on its topic;
//! - idle streams get a keep-alive comment every `http.events-keepalive-ms`;
//! - at most `http.max-event-streams` streams are open at once (503 past it).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use arw_host::capabilities::bus::{Event as BusEvent, Payload, ReplayFrom};
use axum::extract::{Extension, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use http::{HeaderMap, Uri};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use crate::middleware::Identity;
use crate::problem::{Problem, ProblemDocument};
use crate::state::SharedState;

/// The topic of the event a lagging client gets.
pub const GAP_TOPIC: &str = "bus.gap";

/// What an event's `data:` holds.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EventData {
    /// The bus id, also the SSE `id:`.
    pub id: u64,
    pub topic: String,
    /// A component id, or `host`.
    pub source: String,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The JSON payload (absent for binary payloads).
    #[schema(value_type = Object)]
    pub payload: Option<serde_json::Value>,
    /// A binary payload, hex-encoded.
    pub payload_hex: Option<String>,
    /// Set for an event another host published (the cluster's bus
    /// bridge): that host's `node.id`. Absent: published here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The event's id in the cluster, `<node>/<id there>` (remote events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// Live bus events.
#[utoipa::path(get, path = "/events", tag = "events",
    params(
        ("replay" = Option<u32>, Query, description = "Start with the last N kept events"),
        ("prefix" = Option<Vec<String>>, Query, description = "Only topics equal to or under this dot.case prefix (repeatable)"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "An SSE stream: `id:` the bus id, `event:` the topic, `data:` an EventData JSON object", content_type = "text/event-stream", body = String),
        (status = 400, description = "Invalid query", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "http.max-event-streams are open", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("admin_header" = [])),
)]
pub async fn stream(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    client: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = match arw_wire::events_query(uri.query().unwrap_or_default()) {
        Ok(query) => query,
        Err(error) => return Problem::from_wire(error).into_response(),
    };
    let last_id = match headers.get("last-event-id").map(|v| arw_wire::last_event_id(v.as_bytes())).transpose() {
        Ok(id) => id,
        Err(error) => return Problem::from_wire(error).into_response(),
    };
    let from = match (last_id, query.replay) {
        (Some(id), _) => ReplayFrom::After(id),
        (None, Some(n)) => ReplayFrom::Last(n),
        (None, None) => ReplayFrom::Now,
    };
    let Ok(permit) = state.event_streams.clone().try_acquire_owned() else {
        let mut problem = Problem::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "too-many-streams",
            format!(
                "{} event streams are open, the most this host allows (http.max-event-streams); retry later",
                state.config.max_event_streams
            ),
        );
        problem.retry_after = Some(5);
        return problem.into_response();
    };
    let observation = state.host.bus().observe_from(from);
    let cursor = Cursor {
        _permit: permit,
        client: client.map(|c| c.0.0.ip()),
        state: state.clone(),
        identity,
        prefixes: query.prefixes,
        replay: observation.replay.into(),
        pending_gap: (observation.missed > 0).then_some(observation.missed),
        live: observation.live,
    };
    let keepalive = Duration::from_millis(state.config.events_keepalive_ms.max(100));
    Sse::new(events(cursor)).keep_alive(KeepAlive::new().interval(keepalive)).into_response()
}

struct Cursor {
    /// Released when the stream ends.
    _permit: tokio::sync::OwnedSemaphorePermit,
    /// The client's address, for Cedar's `context.client_address`.
    client: Option<std::net::IpAddr>,
    state: SharedState,
    identity: Identity,
    prefixes: Vec<String>,
    replay: VecDeque<Arc<BusEvent>>,
    pending_gap: Option<u64>,
    live: Receiver<Arc<BusEvent>>,
}

impl Cursor {
    fn wants(&self, event: &BusEvent) -> bool {
        let topic = event.topic.as_str();
        let in_prefix = self.prefixes.is_empty()
            || self.prefixes.iter().any(|p| {
                topic == p
                    || (topic.len() > p.len() && topic.starts_with(p.as_str()) && topic.as_bytes()[p.len()] == b'.')
            });
        let context = arw_policy::RequestContext {
            gating_key: Some(crate::gating::EVENTS_SUBSCRIBE.key),
            client_address: self.client,
            chain: &[],
            ..Default::default()
        };
        in_prefix
            && self.state.host.permits(
                &self.identity.caller,
                arw_host::capabilities::bus::EVENTS_SUBSCRIBE,
                topic,
                &context,
            )
    }

    fn render(&self, event: &BusEvent) -> Event {
        let (payload, payload_hex) = match &event.payload {
            Payload::Json(text) => (serde_json::from_str(text).ok(), None),
            Payload::Bytes(bytes) => (None, Some(hex::encode(bytes))),
        };
        let data = EventData {
            id: event.id,
            topic: event.topic.clone(),
            source: event.source.to_string(),
            time_ms: event.time_ms,
            payload,
            payload_hex,
            origin: event.origin.as_ref().map(|o| o.node.to_string()),
            uid: event.origin.as_ref().map(|o| o.uid.to_string()),
        };
        self.state.host.bus().record_observed();
        Event::default()
            .id(event.id.to_string())
            .event(event.topic.as_str())
            .data(serde_json::to_string(&data).unwrap_or_default())
    }
}

fn gap(skipped: u64) -> Event {
    Event::default().event(GAP_TOPIC).data(serde_json::json!({ "skipped": skipped }).to_string())
}

fn events(cursor: Cursor) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(cursor, |mut cursor| async move {
        loop {
            if let Some(skipped) = cursor.pending_gap.take() {
                return Some((Ok(gap(skipped)), cursor));
            }
            if let Some(event) = cursor.replay.pop_front() {
                if cursor.wants(&event) {
                    let rendered = cursor.render(&event);
                    return Some((Ok(rendered), cursor));
                }
                continue;
            }
            let shutdown = cursor.state.shutdown.clone();
            let next = tokio::select! {
                _ = shutdown.cancelled() => return None,
                next = cursor.live.recv() => next,
            };
            match next {
                Ok(event) if cursor.wants(&event) => {
                    let rendered = cursor.render(&event);
                    return Some((Ok(rendered), cursor));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(skipped)) => {
                    cursor.state.host.bus().record_observer_lag(skipped);
                    tracing::debug!(caller = %cursor.identity.name, skipped, "event stream client lagged");
                    return Some((Ok(gap(skipped)), cursor));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}
