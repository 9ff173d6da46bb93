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

use crate::admin::{
    AdminOutcome, GateReloadView, GateView, GatingCheckOutcome, GatingCheckRequest, GatingKeyView, GatingView,
    InstallRequest, PolicyReloadOutcome, RollbackRequest, UninstallRequest,
};
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
    checked(&state, &identity, request, next, true).await
}

/// The rate limit (when `limited`), then Cedar for the action of the
/// route's gating key: what the admin and feedback routes go through.
pub(crate) async fn checked(
    state: &SharedState,
    identity: &Identity,
    request: Request,
    next: axum::middleware::Next,
    limited: bool,
) -> Response {
    let client = client_address(request.extensions());
    let per_minute = state.host.host_tuning().admin_rate_per_minute().unwrap_or(state.config.admin_rate_per_minute);
    if limited && let Err(seconds) = state.limits.check(per_minute, &identity.name, client) {
        let mut problem = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!("too many requests; retry in {seconds} s (http.admin-rate-per-minute, http.admin-burst)"),
        );
        problem.retry_after = Some(seconds);
        return problem.into_response();
    }
    let path = request.uri().path();
    let Some(key) = gating::KEYS.iter().find(|k| k.path == path) else {
        return Problem::not_found(format!("no operation at {path}")).into_response();
    };
    if let Err(problem) = authorize(state, identity, key, client) {
        return problem.into_response();
    }
    next.run(request).await
}

pub(crate) fn authorize(
    state: &SharedState,
    identity: &Identity,
    key: &GatingKey,
    client: Option<std::net::IpAddr>,
) -> Result<(), Problem> {
    let Some(action) = key.action else { return Ok(()) };
    let context =
        arw_policy::RequestContext { gating_key: Some(key.key), client_address: client, ..Default::default() };
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

/// The gates with their files, and every key with the contracts that cover it.
#[utoipa::path(get, path = "/admin/gating", tag = "admin",
    responses((status = 200, description = "The gates and the keys", body = GatingView)),
    security(("bearer" = []), ("admin_header" = [])),
)]
pub async fn gating(State(state): State<SharedState>) -> Json<GatingView> {
    let gates = state.host.gates();
    let mut keys: Vec<String> = gating::KEYS.iter().map(|k| k.key.to_string()).collect();
    keys.extend(state.host.tools().iter().map(|t| arw_host::gating::keys::TOOL_INGRESS.key(&t.descriptor.name)));
    keys.extend(arw_host::gating::keys::FAMILIES.iter().map(|f| f.pattern.to_string()));
    let mut views = Vec::with_capacity(keys.len());
    for key in keys {
        let mut view = GatingKeyView { key, contracts: Default::default(), errors: Default::default() };
        for (gate, answer) in gates.covering(&view.key).await {
            match answer {
                Ok(ids) => view.contracts.insert(gate, ids),
                Err(why) => view.errors.insert(gate, why).map(|_| Vec::new()),
            };
        }
        views.push(view);
    }
    let gates = gates
        .states()
        .into_iter()
        .map(|s| GateView {
            id: s.gate,
            file: s.file.map(|f| f.display().to_string()),
            in_force: s.refused.is_none(),
            refused: s.refused,
        })
        .collect();
    Json(GatingView { gates, keys: views })
}

/// What a request under a key would meet.
#[utoipa::path(post, path = "/admin/gating/check", tag = "admin",
    request_body = GatingCheckRequest,
    responses(
        (status = 200, description = "The verdict (a refusal is a 200 too: this only asks)", body = GatingCheckOutcome),
        (status = 400, description = "Not a gating key, an unknown caller, or a time that is not RFC 3339", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("admin_header" = [])),
)]
pub async fn gating_check(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request: GatingCheckRequest = match crate::body::json(&headers, body, state.config.body_limit_bytes).await {
        Ok(request) => request,
        Err(problem) => return problem.into_response(),
    };
    if !arw_host::gating::keys::is_well_formed(&request.key) {
        return Problem::bad_request(
            "invalid-request",
            format!("`{}` is not a gating key (docs/gating-keys.md)", request.key),
        )
        .into_response();
    }
    let who = match &request.caller {
        None => identity.clone(),
        Some(name) => match state.callers.named(name) {
            Some(found) => found,
            None => {
                return Problem::bad_request(
                    "invalid-request",
                    format!("no caller `{name}` (`[[http.tokens]]`, or `anonymous`)"),
                )
                .into_response();
            }
        },
    };
    let at = match request
        .at
        .as_deref()
        .map(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339))
    {
        None => None,
        Some(Ok(at)) => Some(std::time::SystemTime::from(at)),
        Some(Err(e)) => {
            return Problem::bad_request("invalid-request", format!("`at` is not an RFC 3339 time: {e}"))
                .into_response();
        }
    };
    let mut ask = arw_host::gating::GateRequest::new(request.key.clone(), who.caller.gate_caller().clone());
    ask.at = at;
    let decided = state.host.gate(&ask).await;
    use arw_host::gating::GateDenied;
    let (verdict, gate, contract) = match &decided {
        Ok(()) => ("allow", None, None),
        Err(GateDenied::Denied { gate, contract, retry_after_ms: Some(_), .. }) => {
            ("retry-after", Some(gate.clone()), Some(contract.clone()))
        }
        Err(GateDenied::Denied { gate, contract, .. }) => ("deny", Some(gate.clone()), Some(contract.clone())),
        Err(GateDenied::Failed { gate, .. }) => ("failed", Some(gate.clone()), None),
    };
    let outcome = GatingCheckOutcome {
        key: request.key,
        caller: who.name.clone(),
        verdict,
        gate,
        contract,
        retry_after_ms: decided.as_ref().err().and_then(GateDenied::retry_after_ms),
        detail: decided.err().map(|e| e.to_string()),
    };
    Json(outcome).into_response()
}

/// Read the gates' files again.
#[utoipa::path(post, path = "/admin/gating/reload", tag = "admin",
    responses((status = 200, description = "Each gate's outcome; a refused file keeps the one in force", body = [GateReloadView])),
    security(("bearer" = []), ("admin_header" = [])),
)]
pub async fn gating_reload(State(state): State<SharedState>) -> Json<Vec<GateReloadView>> {
    Json(
        state
            .host
            .reload_gates()
            .await
            .into_iter()
            .map(|r| GateReloadView {
                gate: r.gate,
                file: r.file.map(|f| f.display().to_string()),
                outcome: r.outcome,
                line: r.line,
                message: r.message,
            })
            .collect(),
    )
}
