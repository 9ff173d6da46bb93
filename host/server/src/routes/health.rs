//! `GET /healthz` and `GET /readyz`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::problem::{Problem, ProblemDocument};
use crate::state::SharedState;
use crate::views::Health;

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health", responses(
    (status = 200, description = "The server is up", body = Health),
))]
pub async fn live(State(state): State<SharedState>) -> Json<Health> {
    Json(Health::of(&state.host, "ok"))
}

/// Readiness: components are loaded (the server starts after they are)
/// and the host is not shutting down. `refused` lists what the host would
/// not run, and why.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready to take calls", body = Health),
    (status = 503, description = "Shutting down", body = ProblemDocument, content_type = "application/problem+json"),
))]
pub async fn ready(State(state): State<SharedState>) -> Response {
    if state.host.is_shutting_down() || state.shutdown.is_cancelled() {
        return Problem::new(StatusCode::SERVICE_UNAVAILABLE, "shutting-down", "the host is shutting down")
            .into_response();
    }
    Json(Health::of(&state.host, "ready")).into_response()
}
