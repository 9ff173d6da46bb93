//! The Model Context Protocol server at `/mcp` (Streamable HTTP transport,
//! JSON-RPC 2.0), built on the official Rust SDK (`rmcp`).
//!
//! - `tools/list` lists the host's tools, with their JSON Schemas;
//! - `tools/call` goes through the same path as `POST /tools/{name}/invoke`:
//!   the caller is the one the request's token names, Cedar decides
//!   `tool.invoke`, the input is checked against the tool's schema. Any
//!   refusal or failure comes back as a tool error (`isError: true`) whose
//!   text starts with the stable code (`denied: ...`);
//! - every open session gets `notifications/tools/list_changed` when a
//!   component is activated, rolled back or removed (as the host's control
//!   channel says, never a bus event a component could publish);
//! - at most `http.max-mcp-sessions` sessions are open at once (a new one
//!   past that gets 503), and a session idle for `http.mcp-session-idle-ms`
//!   is closed.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use rmcp::ErrorData;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{NotificationContext, Peer, RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::middleware::Identity;
use crate::state::SharedState;

pub type McpService = StreamableHttpService<ArwMcp, LocalSessionManager>;

/// The sessions to tell when the tool list changes.
#[derive(Debug, Clone, Default)]
pub struct Sessions(Arc<Mutex<Vec<Peer<RoleServer>>>>);

impl Sessions {
    /// Tell every open session; forget the closed ones.
    pub async fn notify_tools_changed(&self) {
        let peers: Vec<Peer<RoleServer>> = {
            let mut peers = self.0.lock();
            peers.retain(|p| !p.is_transport_closed());
            peers.clone()
        };
        for peer in peers {
            if let Err(e) = peer.notify_tool_list_changed().await {
                tracing::debug!("cannot notify an MCP session: {e}");
            }
        }
    }
}

/// One MCP session's handler.
#[derive(Clone)]
pub struct ArwMcp {
    state: SharedState,
    sessions: Sessions,
}

/// The session manager, with the idle timeout from the configuration.
pub fn session_manager(config: &arw_host::config::HttpConfig) -> Arc<LocalSessionManager> {
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(std::time::Duration::from_millis(config.mcp_session_idle_ms));
    Arc::new(manager)
}

/// In front of `/mcp`: a request that would open a session (no
/// `Mcp-Session-Id`) is refused with 503 when `http.max-mcp-sessions` are
/// open.
pub async fn admit(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let opens_session = request.method() == http::Method::POST && !request.headers().contains_key("mcp-session-id");
    if opens_session {
        let open = state.mcp_sessions.sessions.read().await.len();
        if open >= state.config.max_mcp_sessions {
            let mut problem = crate::problem::Problem::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "too-many-sessions",
                format!(
                    "{open} MCP sessions are open, the most this host allows (http.max-mcp-sessions); close one \
                     (DELETE with its Mcp-Session-Id) or retry later"
                ),
            );
            problem.retry_after = Some(5);
            return problem.into_response();
        }
    }
    next.run(request).await
}

pub fn service(state: SharedState, sessions: Sessions) -> McpService {
    let mut allowed_hosts = state.config.mcp_allowed_hosts.clone();
    if allowed_hosts.is_empty() {
        allowed_hosts = vec!["localhost".into(), "127.0.0.1".into(), "::1".into(), "[::1]".into()];
    }
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts)
        .with_cancellation_token(state.shutdown.child_token())
        .with_max_request_body_bytes(state.config.body_limit_bytes)
        .with_sse_keep_alive(Some(std::time::Duration::from_millis(state.config.events_keepalive_ms.max(100))));
    let manager = state.mcp_sessions.clone();
    StreamableHttpService::new(move || Ok(ArwMcp { state: state.clone(), sessions: sessions.clone() }), manager, config)
}

/// Follow the host's control channel and tell the sessions when the tool
/// list changes.
pub fn spawn_notifier(state: SharedState, sessions: Sessions) -> tokio::task::JoinHandle<()> {
    let mut control = state.host.control();
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                event = control.recv() => event,
            };
            match event {
                Ok(event) if event.changes_tools() => sessions.notify_tools_changed().await,
                Ok(_) => {}
                // Missed events might have been changes: tell anyway.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => sessions.notify_tools_changed().await,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

fn object(value: &serde_json::Value) -> Option<Arc<serde_json::Map<String, serde_json::Value>>> {
    value.as_object().filter(|o| o.get("type").and_then(|t| t.as_str()) == Some("object")).cloned().map(Arc::new)
}

/// The host's own MCP tools: the feedback engine's `evaluate` and `apply`
/// (docs/feedback.md), so MCP clients can use them; Cedar decides who, as
/// over HTTP. They come before the components' tools, and are what a call
/// of their name reaches.
const FEEDBACK_EVALUATE: &str = "feedback-evaluate";
const FEEDBACK_APPLY: &str = "feedback-apply";

fn feedback_tools() -> Vec<Tool> {
    let schema = |value: serde_json::Value| object(&value).unwrap_or_default();
    vec![
        Tool::new(
            FEEDBACK_EVALUATE,
            "The feedback engine's current suggestions, each with its knob, value, rationale, confidence and \
             evidence, and their version (Cedar `feedback.read`).",
            schema(serde_json::json!({"type": "object", "properties": {}, "additionalProperties": false})),
        )
        .with_title(FEEDBACK_EVALUATE),
        Tool::new(
            FEEDBACK_APPLY,
            "Apply one of the feedback engine's suggestions by its id; answers the undo record (Cedar \
             `feedback.apply` on its knob, with its bounds, cooldown and the apply budget).",
            schema(serde_json::json!({
                "type": "object",
                "properties": {"suggestion": {"type": "string", "description": "The suggestion's id."}},
                "required": ["suggestion"],
                "additionalProperties": false,
            })),
        )
        .with_title(FEEDBACK_APPLY),
    ]
}

/// A call of one of [`feedback_tools`], if `name` is one.
fn call_feedback(
    state: &SharedState,
    identity: &Identity,
    name: &str,
    arguments: &serde_json::Map<String, serde_json::Value>,
    origin: &arw_policy::RequestContext<'_>,
) -> Option<CallToolResult> {
    let error =
        |code: &str, message: String| CallToolResult::error(vec![ContentBlock::text(format!("{code}: {message}"))]);
    let feedback = state.host.feedback();
    Some(match name {
        FEEDBACK_EVALUATE => {
            let read = arw_policy::Action::FEEDBACK_READ;
            match state.host.authorize(&identity.caller, read, crate::gating::FEEDBACK_SUGGESTIONS.key, origin) {
                Ok(()) => {
                    let (version, suggestions) = feedback.suggestions();
                    CallToolResult::structured(serde_json::json!({"version": version, "suggestions": suggestions}))
                }
                Err(denied) => error("denied", denied.to_string()),
            }
        }
        FEEDBACK_APPLY if identity.anonymous => {
            error("unauthorized", "an apply needs a token for a caller Cedar permits `feedback.apply`".into())
        }
        FEEDBACK_APPLY => match arguments.get("suggestion").and_then(|v| v.as_str()) {
            Some(id) => match feedback.apply(&identity.caller, id) {
                Ok(record) => CallToolResult::structured(serde_json::to_value(record).unwrap_or_default()),
                Err(rejected) => error(rejected.reason(), rejected.to_string()),
            },
            None => error("invalid-input", "give the suggestion's id: {\"suggestion\": \"...\"}".into()),
        },
        _ => return None,
    })
}

/// The host's tools as MCP `Tool` objects: its own (the feedback
/// engine's), then the components'.
pub fn tools(infos: &[arw_host::ToolInfo]) -> Vec<Tool> {
    let own = feedback_tools();
    let components = infos.iter().filter(|info| own.iter().all(|t| t.name != info.descriptor.name)).map(|info| {
        let d = &info.descriptor;
        let input = object(&d.input_schema).unwrap_or_else(|| {
            // MCP requires an object schema; a tool that takes anything
            // else is described as taking any object.
            Arc::new(serde_json::Map::from_iter([("type".to_string(), serde_json::json!("object"))]))
        });
        let tool = Tool::new(d.name.clone(), d.summary.clone(), input).with_title(d.name.clone());
        match object(&d.output_schema) {
            Some(output) => tool.with_raw_output_schema(output),
            None => tool,
        }
    });
    let components: Vec<Tool> = components.collect();
    own.into_iter().chain(components).collect()
}

impl ServerHandler for ArwMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build())
            .with_server_info(Implementation::new("arw", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "ARW host: each tool is a signed WebAssembly component; calls are authorized by Cedar for the \
                 caller your token names.",
            )
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.sessions.0.lock().push(context.peer);
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools(&self.state.host.tools())))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let parts = context.extensions.get::<http::request::Parts>();
        let identity = parts
            .and_then(|parts| parts.extensions.get::<Identity>())
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("the request carries no caller", None))?;
        let origin = arw_policy::RequestContext {
            gating_key: Some(crate::gating::MCP.key),
            client_address: parts.and_then(|parts| crate::middleware::client_address(&parts.extensions)),
            chain: &[],
            ..Default::default()
        };
        let arguments = request.arguments.unwrap_or_default();
        if let Some(result) = call_feedback(&self.state, &identity, &request.name, &arguments, &origin) {
            return Ok(result.into());
        }
        let input = serde_json::Value::Object(arguments).to_string();
        let result =
            match crate::routes::tools::call_tool(&self.state, &identity, &request.name, &input, &origin, None).await {
                Ok(output) if output.is_object() => CallToolResult::structured(output),
                Ok(output) => CallToolResult::success(vec![ContentBlock::text(output.to_string())]),
                Err(error) => CallToolResult::error(vec![ContentBlock::text(format!("{}: {error}", error.code()))]),
            };
        Ok(result.into())
    }
}
