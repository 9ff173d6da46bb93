//! `POST /queues/{name}/tasks`, `GET /queues/{name}`,
//! `GET /queues/{name}/dead`: work queues (docs/queues.md).
//!
//! A push is Cedar `queue.enqueue` on the queue and `tool.invoke` on the
//! task's tool for the caller (asked again when a worker runs the task,
//! as this caller); reads are `queue.read`.

use arw_host::queues::{NewTask, QueueError};
use arw_policy::RequestContext;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use crate::middleware::Identity;
use crate::problem::{Problem, ProblemDocument};
use crate::state::SharedState;

/// `POST /queues/{name}/tasks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PushRequest {
    /// The tool to call, by name (`GET /tools`).
    pub tool: String,
    /// Its input: any JSON value.
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// A second push with the same key, while the first task is queued,
    /// running or recently done, is not added (`duplicate: true`).
    #[schema(max_length = 256)]
    pub idem_key: Option<String>,
    /// Higher runs sooner; equal priorities in push order.
    #[serde(default)]
    pub priority: i32,
    /// Not before this time (Unix milliseconds).
    pub not_before_ms: Option<u64>,
    /// Runs at most (1 to 100; default `queues.max-attempts`).
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<u32>,
}

/// What a push came to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct PushOutcome {
    pub queue: String,
    /// The backend's id of the task.
    pub id: String,
    /// An earlier task with the same `idem-key` stands for this one.
    pub duplicate: bool,
}

/// A queue's tasks by state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct QueueView {
    pub queue: String,
    pub ready: u64,
    pub delayed: u64,
    pub leased: u64,
    pub done: u64,
    pub dead: u64,
}

/// A task in the dead-letter queue.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct DeadTaskView {
    pub id: String,
    pub attempts: u32,
    pub error: String,
    pub dead_ms: u64,
    pub tool: String,
    pub caller: String,
    /// The task's input, as JSON text.
    pub input: String,
    pub idem_key: Option<String>,
    pub enqueued_ms: u64,
}

/// `GET /queues/{name}/dead?limit=N`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadQuery {
    /// At most this many, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

fn problem(error: &QueueError) -> Response {
    let status = match error {
        QueueError::Invalid(_) => StatusCode::BAD_REQUEST,
        QueueError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        QueueError::Denied(_) => StatusCode::FORBIDDEN,
        QueueError::UnknownTool(_) | QueueError::NoBackend { .. } => StatusCode::NOT_FOUND,
        QueueError::Full { .. } | QueueError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
    };
    Problem::new(status, error.code(), error.to_string()).into_response()
}

/// Put a task on a queue: call `tool` with `input`, later, as this caller.
#[utoipa::path(post, path = "/queues/{name}/tasks", tag = "queues",
    params(("name" = String, Path, description = "The queue: `[a-z0-9_-]` segments separated by `.`")),
    request_body(content = PushRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Stored (or a duplicate of a stored task)", body = PushOutcome),
        (status = 400, description = "Malformed body, queue name or task", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Cedar does not permit `queue.enqueue` on the queue or `tool.invoke` on the tool", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such tool on this host, or no queue backend loaded (`no-queue-backend`)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body over http.body-limit-bytes, or input over queues.max-input-bytes", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The backend is full, not loaded or not answering", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("admin_header" = [])),
)]
pub async fn push(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(name): Path<String>,
    client: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let text = match crate::body::json_text(&headers, body, state.config.body_limit_bytes).await {
        Ok(text) => text,
        Err(problem) => return problem.into_response(),
    };
    let request: PushRequest = match serde_json::from_str(&text) {
        Ok(request) => request,
        Err(e) => {
            return Problem::bad_request(
                "invalid-request",
                format!("{e}; send {{\"tool\": \"<name>\", \"input\": <json>}} (see docs/queues.md)"),
            )
            .into_response();
        }
    };
    let task = NewTask {
        tool: request.tool,
        input: request.input.to_string(),
        idem_key: request.idem_key,
        priority: request.priority,
        not_before_ms: request.not_before_ms,
        max_attempts: request.max_attempts,
    };
    let context = RequestContext {
        gating_key: Some(crate::gating::QUEUES_PUSH.key),
        client_address: client.map(|c| c.0.0.ip()),
        ..Default::default()
    };
    match state.host.enqueue(&identity.caller, &name, task, &context).await {
        Ok(done) => {
            let outcome = PushOutcome { queue: done.queue, id: done.id, duplicate: done.duplicate };
            (StatusCode::ACCEPTED, Json(outcome)).into_response()
        }
        Err(error) => problem(&error),
    }
}

/// A queue's tasks by state, as its backend counts them.
#[utoipa::path(get, path = "/queues/{name}", tag = "queues",
    params(("name" = String, Path, description = "The queue")),
    responses(
        (status = 200, description = "Counts by state", body = QueueView),
        (status = 400, description = "Not a queue name", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Cedar does not permit `queue.read` on the queue", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No queue backend loaded (`no-queue-backend`)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The backend is not answering", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("admin_header" = [])),
)]
pub async fn stats(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(name): Path<String>,
) -> Response {
    match state.host.queue_stats(&identity.caller, &name).await {
        Ok(s) => Json(QueueView {
            queue: name,
            ready: s.ready,
            delayed: s.delayed,
            leased: s.leased,
            done: s.done,
            dead: s.dead,
        })
        .into_response(),
        Err(error) => problem(&error),
    }
}

/// A queue's dead-letter queue, newest first.
#[utoipa::path(get, path = "/queues/{name}/dead", tag = "queues",
    params(("name" = String, Path, description = "The queue"), DeadQuery),
    responses(
        (status = 200, description = "Dead tasks with their last error", body = [DeadTaskView]),
        (status = 400, description = "Not a queue name, or a bad `limit`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Cedar does not permit `queue.read` on the queue", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No queue backend loaded (`no-queue-backend`)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The backend is not answering", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("admin_header" = [])),
)]
pub async fn dead(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(name): Path<String>,
    query: Result<Query<DeadQuery>, QueryRejection>,
) -> Response {
    let limit = match query {
        Ok(Query(DeadQuery { limit: Some(limit) })) if !(1..=1000).contains(&limit) => {
            return Problem::bad_request("invalid-request", format!("limit = {limit}: ask for 1 to 1000"))
                .into_response();
        }
        Ok(Query(q)) => q.limit.unwrap_or(100),
        Err(e) => {
            return Problem::bad_request("invalid-request", format!("{}; ask `?limit=N`", e.body_text()))
                .into_response();
        }
    };
    match state.host.queue_dead(&identity.caller, &name, limit).await {
        Ok(list) => Json(
            list.into_iter()
                .map(|d| DeadTaskView {
                    id: d.id,
                    attempts: d.attempts,
                    error: d.error,
                    dead_ms: d.dead_ms,
                    tool: d.tool,
                    caller: d.caller,
                    input: d.input,
                    idem_key: d.idem_key,
                    enqueued_ms: d.enqueued_ms,
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(error) => problem(&error),
    }
}
