//! `GET /metrics`.

use axum::extract::State;
use axum::response::IntoResponse;
use http::header;

use crate::state::SharedState;

/// Prometheus text exposition (format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "observability", responses(
    (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
))]
pub async fn scrape(State(state): State<SharedState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], state.metrics.render())
}
