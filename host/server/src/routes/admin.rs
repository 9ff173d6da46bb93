//! `/admin/*`: the CLI's operations over HTTP. Each request is
//! rate-limited (per caller and per client address), then authorized by
//! Cedar: the action of its gating key on `Arw::Operation::"<key>"`.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};

use arw_ops::{ErrorKind, Live, OpsError};

use crate::admin::{AdminOutcome, InstallRequest, PolicyReloadOutcome, RollbackRequest, UninstallRequest};
use crate::gating::{self, GatingKey};
use crate::middleware::{Identity, client_address};
use crate::problem::{Problem, ProblemDocument};
use crate::state::SharedState;
use crate::views::{ComponentGrants, GrantView};

/// Rate limit, then Cedar. Runs before every admin handler.
pub async fn guard(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    if let Err(seconds) = state.limits.check(&identity.name, client_address(request.extensions())) {
        let mut problem = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!("too many admin requests; retry in {seconds} s (http.admin-rate-per-minute, http.admin-burst)"),
        );
        problem.retry_after = Some(seconds);
        return problem.into_response();
    }
    let path = request.uri().path();
    let Some(key) = gating::KEYS.iter().find(|k| k.path == path) else {
        return Problem::not_found(format!("no admin operation at {path}")).into_response();
    };
    if let Err(problem) = authorize(&state, &identity, key, client_address(request.extensions())) {
        return problem.into_response();
    }
    next.run(request).await
}

fn authorize(
    state: &SharedState,
    identity: &Identity,
    key: &GatingKey,
    client: Option<std::net::IpAddr>,
) -> Result<(), Problem> {
    let Some(action) = key.action else { return Ok(()) };
    let context = arw_policy::RequestContext { gating_key: Some(key.key), client_address: client, chain: &[] };
    state.host.authorize(&identity.caller, action, key.key, &context).map_err(|denied| {
        if identity.anonymous {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!(
                    "`{}` needs a token (Authorization: Bearer <token>) for a caller Cedar permits `{action}`",
                    key.key
                ),
            )
        } else {
            Problem::new(StatusCode::FORBIDDEN, "denied", denied.to_string())
        }
    })
}

fn ops(state: &SharedState) -> Result<Arc<Live>, Problem> {
    state.admin.clone().ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_IMPLEMENTED,
            "unsupported",
            "this host was started without a registry, so it cannot install, uninstall or roll back",
        )
    })
}

fn problem(error: &OpsError) -> Problem {
    let status = match error.kind() {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Refused => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Problem::new(status, error.code(), error.to_string())
}

async fn prepare<T: serde::de::DeserializeOwned>(
    state: &SharedState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Arc<Live>, T), Problem> {
    let request = crate::body::json::<T>(headers, body, state.config.body_limit_bytes).await?;
    Ok((ops(state)?, request))
}

fn respond<T, R: serde::Serialize + From<T>>(outcome: Result<T, OpsError>) -> Response {
    match outcome {
        Ok(outcome) => Json(R::from(outcome)).into_response(),
        Err(error) => problem(&error).into_response(),
    }
}

/// Install a package from the local registry and activate it.
#[utoipa::path(post, path = "/admin/install", tag = "admin",
    request_body(content = InstallRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Installed and active", body = AdminOutcome),
        (status = 400, description = "Malformed request", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such package or version in the registry", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Verification or activation failed; the previous version stays", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("admin_header" = [])),
)]
pub async fn install(State(state): State<SharedState>, headers: HeaderMap, body: Body) -> Response {
    match prepare::<InstallRequest>(&state, &headers, body).await {
        Ok((ops, request)) => respond::<_, AdminOutcome>(ops.install(&request.package).await),
        Err(problem) => problem.into_response(),
    }
}

/// Uninstall a component.
#[utoipa::path(post, path = "/admin/uninstall", tag = "admin",
    request_body(content = UninstallRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Uninstalled; it drains and stops", body = AdminOutcome),
        (status = 400, description = "Malformed request", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "Not installed", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("admin_header" = [])),
)]
pub async fn uninstall(State(state): State<SharedState>, headers: HeaderMap, body: Body) -> Response {
    match prepare::<UninstallRequest>(&state, &headers, body).await {
        Ok((ops, request)) => respond::<_, AdminOutcome>(ops.uninstall(&request.id).await),
        Err(problem) => problem.into_response(),
    }
}

/// Go back to the previous (or a named) version.
#[utoipa::path(post, path = "/admin/rollback", tag = "admin",
    request_body(content = RollbackRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Rolled back and active", body = AdminOutcome),
        (status = 400, description = "Malformed request", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "Not installed, or no such version", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Nothing to roll back to, or activation failed", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("admin_header" = [])),
)]
pub async fn rollback(State(state): State<SharedState>, headers: HeaderMap, body: Body) -> Response {
    match prepare::<RollbackRequest>(&state, &headers, body).await {
        Ok((ops, request)) => respond::<_, AdminOutcome>(ops.rollback(&request.id, request.to).await),
        Err(problem) => problem.into_response(),
    }
}

/// Re-read the policies and hot-swap them if they validate.
#[utoipa::path(post, path = "/admin/policy/reload", tag = "admin",
    responses(
        (status = 200, description = "The new policies are in force", body = PolicyReloadOutcome),
        (status = 422, description = "Invalid policies (file and line in `detail`); the previous ones stay", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("admin_header" = [])),
)]
pub async fn reload_policies(State(state): State<SharedState>) -> Response {
    let ops = match ops(&state) {
        Ok(ops) => ops,
        Err(problem) => return problem.into_response(),
    };
    respond::<_, PolicyReloadOutcome>(ops.reload_policies().await)
}

/// Every component's requested capabilities with Cedar's decision.
#[utoipa::path(get, path = "/admin/grants", tag = "admin",
    responses((status = 200, description = "Grants per component", body = [ComponentGrants])),
    security(("bearer" = []), ("admin_header" = [])),
)]
pub async fn grants(State(state): State<SharedState>) -> Json<Vec<ComponentGrants>> {
    Json(
        state
            .host
            .components()
            .into_iter()
            .map(|c| ComponentGrants {
                id: c.id,
                version: c.version,
                grants: c
                    .grants
                    .into_iter()
                    .map(|g| GrantView {
                        action: g.action.as_str().to_string(),
                        resource: g.resource,
                        allowed: g.allowed,
                        reason: g.reason,
                    })
                    .collect(),
            })
            .collect(),
    )
}

/// Active and draining versions, last transitions, policies, bus counters.
#[utoipa::path(get, path = "/admin/status", tag = "admin",
    responses((status = 200, description = "Host status (the same as `arw status`)", body = Object)),
    security(("bearer" = []), ("admin_header" = [])),
)]
pub async fn status(State(state): State<SharedState>) -> Response {
    Json(state.host.status()).into_response()
}
