//! Errors as RFC 9457 `application/problem+json`. Every error the API
//! returns is one of these, with a stable `type` (`urn:arw:problem:<code>`)
//! that clients can match on; `detail` is for humans and says what to fix.

use arw_host::CallError;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem document, as sent.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDocument<'a> {
    /// `urn:arw:problem:<code>`: stable, match on it.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: &'a str,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this case and how to fix it.
    pub detail: &'a str,
    /// The stable code alone (`unknown-tool`, `schema-violation`, ...).
    pub code: &'a str,
    /// Each JSON Schema violation, for `schema-violation`.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub violations: &'a [String],
    /// Seconds to wait, for `rate-limited`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// An error response.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: u16,
    pub code: String,
    pub detail: String,
    pub violations: Vec<String>,
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Problem {
            status: status.as_u16(),
            code: code.to_string(),
            detail: detail.into(),
            violations: Vec::new(),
            retry_after: None,
        }
    }

    /// The document as sent.
    pub fn document(&self) -> ProblemDocument<'_> {
        ProblemDocument {
            kind: format!("urn:arw:problem:{}", self.code),
            title: self.status().canonical_reason().unwrap_or("Error"),
            status: self.status,
            detail: &self.detail,
            code: &self.code,
            violations: &self.violations,
            retry_after: self.retry_after,
        }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn bad_request(code: &str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// The problem for a request `arw-wire` refused.
    pub fn from_wire(error: arw_wire::WireError) -> Self {
        let status = match error.refusal {
            arw_wire::Refusal::BadRequest => StatusCode::BAD_REQUEST,
            arw_wire::Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            arw_wire::Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            arw_wire::Refusal::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        };
        Problem::new(status, error.code, error.detail)
    }

    /// The problem for a request the gates refused: 403 for a deny, 429
    /// with `Retry-After` for "not now", 503 for a gate that could not
    /// decide (fail closed).
    pub fn from_gate(denied: &arw_host::gating::GateDenied) -> Self {
        let status = match denied {
            arw_host::gating::GateDenied::Denied { retry_after_ms: Some(_), .. } => StatusCode::TOO_MANY_REQUESTS,
            arw_host::gating::GateDenied::Denied { .. } => StatusCode::FORBIDDEN,
            arw_host::gating::GateDenied::Failed { .. } => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut problem = Problem::new(status, denied.code(), denied.to_string());
        problem.retry_after = denied.retry_after_ms().map(|ms| ms.div_ceil(1000).max(1));
        problem
    }

    /// The problem for a failed tool call.
    pub fn from_call(error: &CallError) -> Self {
        if let CallError::Gated(denied) = error {
            return Problem::from_gate(denied);
        }
        let status = match error {
            CallError::Gated(_) => StatusCode::FORBIDDEN,
            CallError::UnknownTool { .. } => StatusCode::NOT_FOUND,
            CallError::Denied(_) => StatusCode::FORBIDDEN,
            CallError::InvalidInput(_) | CallError::SchemaViolation { .. } => StatusCode::BAD_REQUEST,
            // The tool refused the input on purpose.
            CallError::Tool { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            CallError::Busy { .. } | CallError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            CallError::Timeout { .. } | CallError::CallerDeadline { .. } => StatusCode::GATEWAY_TIMEOUT,
            CallError::Interrupted { .. } => StatusCode::SERVICE_UNAVAILABLE,
            // The component misbehaved: a bad gateway, not a host fault.
            CallError::Trap { .. } | CallError::MemoryLimit { .. } | CallError::InvalidOutput { .. } => {
                StatusCode::BAD_GATEWAY
            }
        };
        let mut problem = Problem::new(status, &error.code(), error.to_string());
        if let CallError::SchemaViolation { violations, .. } = error {
            problem.violations = violations.clone();
        }
        problem
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = self.retry_after;
        let body = serde_json::to_vec(&self.document()).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"arw\""));
        }
        response
    }
}
