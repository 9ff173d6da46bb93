//! What every request goes through, in order: header-size check, caller
//! resolution (401 for a token that names nobody), the gates (asked with
//! the route's gating key before the handler runs), the per-request
//! timeout, and route metrics and signals labelled by gating key.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::gating::{self, KEYS};
use crate::problem::Problem;
use crate::state::SharedState;

/// The gating key of a matched route (`unmatched` for 404s).
fn route_key(method: &http::Method, path: Option<&str>) -> &'static str {
    let Some(path) = path else { return "unmatched" };
    if path == "/mcp" || path.starts_with("/mcp/") {
        return gating::MCP.key;
    }
    KEYS.iter()
        .find(|k| k.path == path && k.method == method.as_str())
        .or_else(|| KEYS.iter().find(|k| k.path == path))
        .map_or("unmatched", |k| k.key)
}

pub async fn front(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = route_key(request.method(), request.extensions().get::<MatchedPath>().map(|p| p.as_str()));
    let response = handle(&state, route, request, next).await;
    let (status, elapsed) = (response.status().as_u16(), started.elapsed());
    state.metrics.record_route(route, status, elapsed);
    // The feedback engine's signals, by route template (never the raw
    // path: one series per gating key, 404s in `unmatched`).
    let outcome = arw_host::signals::Outcome::of_status(status);
    state.host.signals().observe(arw_host::signals::Series::Route(route), elapsed, outcome);
    response
}

async fn handle(state: &SharedState, route: &'static str, mut request: Request, next: Next) -> Response {
    let header_bytes: usize = request.headers().iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if header_bytes > state.config.max_header_bytes {
        return Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            format!(
                "the request headers total {header_bytes} bytes, over the limit of {} (http.max-header-bytes)",
                state.config.max_header_bytes
            ),
        )
        .into_response();
    }
    let identity = match state.callers.resolve(request.headers()) {
        Ok(identity) => identity,
        Err(problem) => return problem.into_response(),
    };
    // The gates, before the handler does anything (an unmatched path has
    // no effect to guard: it is a 404 whatever the gates say).
    if route != "unmatched" && state.host.gates().active() {
        let mut ask = arw_host::gating::GateRequest::new(route, identity.caller.gate_caller().clone());
        ask.address = client_address(request.extensions());
        ask.size = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        // A tool call asks for its route and its tool in one check (one
        // entry of each gate), and hands the pass to the call.
        let tool = match route == gating::TOOLS_INVOKE.key {
            true => tool_of(&mut request).await.and_then(|tool| Some((state.host.tool_owner(&tool)?, tool))),
            false => None,
        };
        match tool {
            Some((owner, tool)) => {
                ask = ask.and_key(arw_host::gating::keys::TOOL_INGRESS.key(&tool));
                ask.target =
                    arw_host::gating::GateTarget { tool: Some(tool), component: Some(owner), ..Default::default() };
                match state.host.gate_pass(ask).await {
                    Ok(pass) => request.extensions_mut().insert(ToolPass::new(pass)),
                    Err(denied) => return Problem::from_gate(&denied).into_response(),
                };
            }
            None => {
                if let Err(denied) = state.host.gate(&ask).await {
                    return Problem::from_gate(&denied).into_response();
                }
            }
        }
    }
    request.extensions_mut().insert(identity);
    // The config's timeout, or the one the feedback engine applied.
    let timeout_ms = state.host.host_tuning().request_timeout_ms().unwrap_or(state.config.request_timeout_ms);
    let limit = Duration::from_millis(timeout_ms);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request-timeout",
            format!(
                "no response within {} ms (http.request-timeout-ms, or the feedback knob of that name)",
                limit.as_millis()
            ),
        )
        .into_response(),
    }
}

/// The tool a `tools:invoke` request names (its `{name}`, percent-decoded
/// as the handler sees it).
async fn tool_of(request: &mut Request) -> Option<String> {
    use axum::RequestExt;
    let params = request.extract_parts::<axum::extract::RawPathParams>().await.ok()?;
    params.iter().find(|(name, _)| *name == "name").map(|(_, value)| value.to_string())
}

/// What the gates allowed for a tool call's route and tool, for its
/// handler to spend once ([`arw_host::Host::call_passed`]). (Request
/// extensions are `Clone`; a pass is not, so it travels in a slot.)
#[derive(Debug, Clone)]
pub struct ToolPass(Arc<std::sync::Mutex<Option<arw_host::gating::GatePass>>>);

impl ToolPass {
    fn new(pass: arw_host::gating::GatePass) -> Self {
        ToolPass(Arc::new(std::sync::Mutex::new(Some(pass))))
    }

    /// The pass, the first time; `None` after.
    pub fn take(&self) -> Option<arw_host::gating::GatePass> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The client's address, when the server knows it.
pub fn client_address(request_extensions: &http::Extensions) -> Option<std::net::IpAddr> {
    request_extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

pub type Identity = Arc<crate::auth::Identity>;
