//! `GET /components`, `GET /tools`, `POST /tools/{name}/invoke`.

use std::time::Instant;

use arw_policy::RequestContext;
use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;

use crate::middleware::Identity;
use crate::problem::{Problem, ProblemDocument};
use crate::state::{AppState, SharedState};
use crate::views::{ComponentView, ToolView};

/// The loaded components (active versions).
#[utoipa::path(get, path = "/components", tag = "tools", responses(
    (status = 200, description = "Loaded components", body = [ComponentView]),
))]
pub async fn components(State(state): State<SharedState>) -> Json<Vec<ComponentView>> {
    Json(state.host.components().iter().map(ComponentView::from_info).collect())
}

/// The callable tools with their schemas.
#[utoipa::path(get, path = "/tools", tag = "tools", responses(
    (status = 200, description = "Callable tools", body = [ToolView]),
))]
pub async fn tools(State(state): State<SharedState>) -> Json<Vec<ToolView>> {
    Json(state.host.tools().iter().map(ToolView::from_info).collect())
}

/// Call a tool. The input is checked against the tool's input schema
/// before the component runs; Cedar decides `tool.invoke` for the caller.
#[utoipa::path(post, path = "/tools/{name}/invoke", tag = "tools",
    params(("name" = String, Path, description = "The tool name, as listed by `GET /tools`")),
    request_body(content = Object, content_type = "application/json", description = "The tool's input (see its input schema)"),
    responses(
        (status = 200, description = "The tool's output", body = Object),
        (status = 400, description = "Malformed JSON or input that breaks the tool's schema", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Cedar does not permit this caller to invoke the tool", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such tool", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body over http.body-limit-bytes", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "The tool refused the input (its own error code)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 502, description = "The component trapped, hit its memory cap or returned invalid JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 504, description = "The component hit its deadline", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("admin_header" = [])),
)]
pub async fn invoke(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(name): Path<String>,
    client: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    pass: Option<Extension<crate::middleware::ToolPass>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let input = match crate::body::json_text(&headers, body, state.config.body_limit_bytes).await {
        Ok(text) => text,
        Err(problem) => return problem.into_response(),
    };
    let context = RequestContext {
        gating_key: Some(crate::gating::TOOLS_INVOKE.key),
        client_address: client.map(|c| c.0.0.ip()),
        chain: &[],
        ..Default::default()
    };
    let pass = pass.and_then(|p| p.take());
    match call_tool(&state, &identity, &name, &input, &context, pass).await {
        Ok(output) => Json(output).into_response(),
        Err(error) => Problem::from_call(&error).into_response(),
    }
}

/// One tool call, counted in the metrics: shared by HTTP and MCP.
/// `context` says where it came from (the route's gating key, the client);
/// `pass`, what the gates allowed for it already (the HTTP route's check).
pub async fn call_tool(
    state: &AppState,
    identity: &crate::auth::Identity,
    name: &str,
    input: &str,
    context: &RequestContext<'_>,
    pass: Option<arw_host::gating::GatePass>,
) -> Result<serde_json::Value, arw_host::CallError> {
    let started = Instant::now();
    let result = match pass {
        Some(pass) => state.host.call_passed(&identity.caller, name, input, context, pass).await,
        None => state.host.call_in(&identity.caller, name, input, context).await,
    };
    if let Some(component) = state.host.tool_owner(name) {
        let code = result.as_ref().err().map(|e| e.code().into_owned());
        state.metrics.record_call(&component, name, code.as_deref(), started.elapsed());
    }
    if let Err(error) = &result {
        tracing::debug!(caller = %identity.name, tool = name, code = %error.code(), "{error}");
    }
    result
}
