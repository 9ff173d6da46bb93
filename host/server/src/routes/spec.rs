//! `GET /spec/*`: the machine-readable descriptions, generated from code.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::header;

use crate::state::SharedState;

/// This API as OpenAPI 3.1.
#[utoipa::path(get, path = "/spec/openapi.json", tag = "spec", responses(
    (status = 200, description = "OpenAPI 3.1 document", body = Object),
))]
pub async fn openapi() -> impl IntoResponse {
    Json(crate::spec::openapi::document())
}

/// The event stream as AsyncAPI 3.1 (YAML).
#[utoipa::path(get, path = "/spec/asyncapi.yaml", tag = "spec", responses(
    (status = 200, description = "AsyncAPI 3.1 document", content_type = "application/yaml", body = Object),
))]
pub async fn asyncapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], crate::spec::asyncapi::yaml())
}

/// The installed tools as MCP `Tool` objects.
#[utoipa::path(get, path = "/spec/mcp-tools.json", tag = "spec", responses(
    (status = 200, description = "`{\"tools\": [Tool]}` as in MCP's `tools/list` result", body = Object),
))]
pub async fn mcp_tools(State(state): State<SharedState>) -> impl IntoResponse {
    Json(crate::spec::mcp_tools::document(&state.host.tools()))
}

/// The Cedar schema policies are validated against.
#[utoipa::path(get, path = "/spec/arw.cedarschema", tag = "spec", responses(
    (status = 200, description = "Cedar schema (human-readable syntax)", content_type = "text/plain", body = String),
))]
pub async fn cedar_schema() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], arw_policy::schema::TEXT)
}
