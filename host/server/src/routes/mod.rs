//! The router: every route, its gating key (see [`crate::gating`]) and the
//! middleware in front of it.

pub mod admin;
pub mod events;
pub mod feedback;
pub mod health;
pub mod metrics;
pub mod queues;
pub mod spec;
pub mod tools;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use http::{Method, StatusCode, Uri};

use crate::gating;
use crate::problem::Problem;
use crate::state::SharedState;

pub fn router(state: SharedState, mcp: crate::mcp::McpService) -> Router {
    let admin = Router::new()
        .route(gating::ADMIN_INSTALL.path, post(admin::install))
        .route(gating::ADMIN_UNINSTALL.path, post(admin::uninstall))
        .route(gating::ADMIN_ROLLBACK.path, post(admin::rollback))
        .route(gating::ADMIN_POLICY_RELOAD.path, post(admin::reload_policies))
        .route(gating::ADMIN_GRANTS.path, get(admin::grants))
        .route(gating::ADMIN_STATUS.path, get(admin::status))
        .route(gating::ADMIN_GATING.path, get(admin::gating))
        .route(gating::ADMIN_GATING_CHECK.path, post(admin::gating_check))
        .route(gating::ADMIN_GATING_RELOAD.path, post(admin::gating_reload))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), admin::guard));
    // Reads authorized by Cedar, changes rate-limited (`feedback::guard`).
    let feedback = Router::new()
        .route(gating::FEEDBACK_STATE.path, get(feedback::state))
        .route(gating::FEEDBACK_SUGGESTIONS.path, get(feedback::suggestions))
        .route(gating::FEEDBACK_UPDATES.path, get(feedback::updates))
        .route(gating::FEEDBACK_APPLY.path, post(feedback::apply))
        .route(gating::FEEDBACK_ROLLBACK.path, post(feedback::rollback))
        .route(gating::FEEDBACK_MODE.path, put(feedback::mode))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), feedback::guard));

    Router::new()
        .route(gating::HEALTH.path, get(health::live))
        .route(gating::READY.path, get(health::ready))
        .route(gating::COMPONENTS_LIST.path, get(tools::components))
        .route(gating::TOOLS_LIST.path, get(tools::tools))
        .route(gating::TOOLS_INVOKE.path, post(tools::invoke))
        .route(gating::QUEUES_PUSH.path, post(queues::push))
        .route(gating::QUEUES_STATS.path, get(queues::stats))
        .route(gating::QUEUES_DEAD.path, get(queues::dead))
        .route(gating::EVENTS_SUBSCRIBE.path, get(events::stream))
        .route(gating::METRICS.path, get(metrics::scrape))
        .route(gating::SPEC_OPENAPI.path, get(spec::openapi))
        .route(gating::SPEC_ASYNCAPI.path, get(spec::asyncapi))
        .route(gating::SPEC_MCP_TOOLS.path, get(spec::mcp_tools))
        .route(gating::SPEC_CEDAR.path, get(spec::cedar_schema))
        .merge(admin)
        .merge(feedback)
        .route_service(
            gating::MCP.path,
            tower::ServiceBuilder::new()
                .layer(axum::middleware::from_fn_with_state(state.clone(), crate::mcp::admit))
                .service(mcp),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::middleware::front))
        .with_state(state)
}

async fn not_found(uri: Uri) -> impl IntoResponse {
    Problem::not_found(format!("no route {} (see /spec/openapi.json)", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> impl IntoResponse {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("{} does not accept {method} (see /spec/openapi.json)", uri.path()),
    )
}
