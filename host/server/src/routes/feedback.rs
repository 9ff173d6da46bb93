//! `/feedback/*`: the feedback engine's state, suggestions and deltas,
//! applying and rolling back, and modes (docs/feedback.md).
//!
//! Reads are Cedar `feedback.read` on `Arw::Operation::"<key>"` (in the
//! guard); the routes that change something are rate-limited like the
//! admin routes (a dashboard polling `updates` is not). An apply and a
//! rollback are asked per knob, `feedback.apply` on `Arw::Knob::"<name>"`
//! with `context.apply`; a mode change is `feedback.mode` on the knob (`*`
//! for every knob).

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use arw_host::feedback::{Mode, Rejected, RollbackTarget, Updates};

use crate::middleware::Identity;
use crate::problem::{Problem, ProblemDocument};
use crate::state::SharedState;

/// `POST /feedback/apply`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// The suggestion's id (`GET /feedback/suggestions`).
    pub suggestion: String,
}

/// `POST /feedback/rollback`: exactly one of the two.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Undo this one apply.
    pub apply_id: Option<u64>,
    /// Undo every apply made after this version, newest first.
    pub to_version: Option<u64>,
}

/// `PUT /feedback/mode`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeRequest {
    /// `off`, `shadow`, `manual`, `canary` or `auto`.
    #[schema(value_type = String)]
    pub mode: Mode,
    /// The knob; without one, every knob that has no mode of its own.
    pub knob: Option<String>,
}

/// `GET /feedback/updates?since=N`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UpdatesQuery {
    /// The version the client has.
    #[param(minimum = 0, maximum = 9007199254740991_i64)]
    pub since: u64,
}

/// The largest `since` (2^53 - 1: what every JSON client reads exactly).
const MAX_SINCE: u64 = (1 << 53) - 1;

/// Rate limit (changes only), then Cedar for the route's action, if any.
pub async fn guard(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let limited = request.method() != http::Method::GET;
    super::admin::checked(&state, &identity, request, next, limited).await
}

/// The request of a route that changes something: it needs a token (Cedar
/// is asked per knob, and an anonymous caller is told so before anything
/// else), then a JSON body.
async fn change<T: serde::de::DeserializeOwned>(
    state: &SharedState,
    identity: &Identity,
    headers: &HeaderMap,
    body: Body,
    what: &str,
) -> Result<T, Problem> {
    if identity.anonymous {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("{what} needs a token (Authorization: Bearer <token>) for a caller Cedar permits `feedback.apply`"),
        ));
    }
    crate::body::json(headers, body, state.config.body_limit_bytes).await
}

fn problem(rejected: &Rejected) -> Problem {
    let status = match rejected {
        Rejected::UnknownSuggestion(_) | Rejected::UnknownKnob(_) | Rejected::UnknownApply(_) => StatusCode::NOT_FOUND,
        Rejected::Cedar(_) => StatusCode::FORBIDDEN,
        Rejected::Cooldown { .. } | Rejected::Budget => StatusCode::TOO_MANY_REQUESTS,
        Rejected::Bounds(_) | Rejected::Mode { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let mut problem = Problem::new(status, rejected.reason(), rejected.to_string());
    if let Rejected::Cooldown { left_ms, .. } = rejected {
        problem.retry_after = Some(left_ms.div_ceil(1000));
    }
    problem
}

/// The engine, its knobs with modes, the suggestions, the recent undo
/// records, the canaries and the signals the last tick read.
#[utoipa::path(get, path = "/feedback/state", tag = "feedback",
    responses((status = 200, description = "The whole state", body = serde_json::Value)),
    security(("bearer" = [])),
)]
pub async fn state(State(state): State<SharedState>) -> Response {
    Json(state.host.feedback().state()).into_response()
}

/// The current suggestions and their version.
#[utoipa::path(get, path = "/feedback/suggestions", tag = "feedback",
    responses((status = 200, description = "`{version, suggestions}`", body = serde_json::Value)),
    security(("bearer" = [])),
)]
pub async fn suggestions(State(state): State<SharedState>) -> Response {
    let (version, suggestions) = state.host.feedback().suggestions();
    Json(serde_json::json!({"version": version, "suggestions": suggestions})).into_response()
}

/// What changed since version `since`: the deltas, or the whole state
/// with `reset: true` when `since` is older than the deltas kept; 204
/// when `since` is current.
#[utoipa::path(get, path = "/feedback/updates", tag = "feedback", params(UpdatesQuery),
    responses(
        (status = 200, description = "`{version, reset: false, deltas}` or `{version, reset: true, state}`", body = serde_json::Value),
        (status = 204, description = "Nothing changed since `since`"),
    ),
    security(("bearer" = [])),
)]
pub async fn updates(State(state): State<SharedState>, query: Result<Query<UpdatesQuery>, QueryRejection>) -> Response {
    let query = match query {
        Ok(Query(query)) if query.since > MAX_SINCE => {
            return Problem::bad_request("invalid-request", format!("since = {} is over {MAX_SINCE}", query.since))
                .into_response();
        }
        Ok(Query(query)) => query,
        Err(e) => {
            return Problem::bad_request(
                "invalid-request",
                format!(
                    "{}; ask `/feedback/updates?since=N`, N the version you have (0 for everything)",
                    e.body_text()
                ),
            )
            .into_response();
        }
    };
    let feedback = state.host.feedback();
    match feedback.updates(query.since) {
        (_, Updates::Current) => StatusCode::NO_CONTENT.into_response(),
        (version, Updates::Deltas(deltas)) => {
            Json(serde_json::json!({"version": version, "reset": false, "deltas": deltas})).into_response()
        }
        (_, Updates::Reset) => {
            let whole = feedback.state();
            Json(serde_json::json!({"version": whole.version, "reset": true, "state": whole})).into_response()
        }
    }
}

/// Apply a suggestion: its knob's bounds, mode and cooldown, Cedar
/// `feedback.apply` on the knob, and the apply budget; answers the undo
/// record.
#[utoipa::path(post, path = "/feedback/apply", tag = "feedback",
    request_body(content = ApplyRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied: the undo record", body = serde_json::Value),
        (status = 403, description = "Cedar refused", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such suggestion now", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Out of bounds, or the knob's mode applies nothing", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "In its cooldown, or the apply budget is spent", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn apply(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request: ApplyRequest = match change(&state, &identity, &headers, body, "an apply").await {
        Ok(request) => request,
        Err(problem) => return problem.into_response(),
    };
    match state.host.feedback().apply(&identity.caller, &request.suggestion) {
        Ok(record) => Json(record).into_response(),
        Err(rejected) => problem(&rejected).into_response(),
    }
}

/// Roll back one apply (`apply_id`) or every apply after a version
/// (`to_version`): each knob gets back exactly the value it had.
#[utoipa::path(post, path = "/feedback/rollback", tag = "feedback",
    request_body(content = RollbackRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "`{undone: [undo records]}`", body = serde_json::Value),
        (status = 400, description = "Neither or both of `apply_id` and `to_version`", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Cedar refused", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such apply, or its knob is gone", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn rollback(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request: RollbackRequest = match change(&state, &identity, &headers, body, "a rollback").await {
        Ok(request) => request,
        Err(problem) => return problem.into_response(),
    };
    // Ids and versions are counters far below 2^63 (the API's integers).
    if request.apply_id.into_iter().chain(request.to_version).any(|n| n > i64::MAX as u64) {
        return Problem::bad_request("invalid-request", "`apply_id` and `to_version` are at most 2^63 - 1")
            .into_response();
    }
    let target = match (request.apply_id, request.to_version) {
        (Some(id), None) => RollbackTarget::ApplyId(id),
        (None, Some(version)) => RollbackTarget::ToVersion(version),
        _ => {
            return Problem::bad_request("invalid-request", "give exactly one of `apply_id` and `to_version`")
                .into_response();
        }
    };
    match state.host.feedback().rollback(&identity.caller, target) {
        Ok(undone) => Json(serde_json::json!({"undone": undone})).into_response(),
        Err(rejected) => problem(&rejected).into_response(),
    }
}

/// Set a knob's mode (or every knob's without one of its own).
#[utoipa::path(put, path = "/feedback/mode", tag = "feedback",
    request_body(content = ModeRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "`{version, mode, knob}`", body = serde_json::Value),
        (status = 403, description = "Cedar refused", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such knob", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn mode(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request: ModeRequest = match change(&state, &identity, &headers, body, "a mode change").await {
        Ok(request) => request,
        Err(problem) => return problem.into_response(),
    };
    match state.host.feedback().set_mode(&identity.caller, request.knob.as_deref(), request.mode) {
        Ok(version) => {
            Json(serde_json::json!({"version": version, "mode": request.mode, "knob": request.knob})).into_response()
        }
        Err(rejected) => problem(&rejected).into_response(),
    }
}
