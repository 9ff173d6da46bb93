//! Reading a JSON request body with the server's limits, refusing with a
//! problem document rather than axum's plain-text rejections. What the
//! bytes mean is decided by `arw-wire`.

use axum::body::Body;
use http::{HeaderMap, header};

use crate::problem::Problem;

/// The body as UTF-8 JSON text, checked to parse. Refuses a non-JSON
/// content type (415), a body over `limit` bytes (413) and malformed JSON
/// (400).
pub async fn json_text(headers: &HeaderMap, body: Body, limit: usize) -> Result<String, Problem> {
    let content_type = headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes());
    let declared = headers.get(header::CONTENT_LENGTH).map(|v| v.as_bytes());
    // Refuse what the head already shows cannot pass, before reading.
    arw_wire::check_json_head(content_type, declared, limit).map_err(Problem::from_wire)?;
    let bytes =
        axum::body::to_bytes(body, limit).await.map_err(|_| Problem::from_wire(arw_wire::body_too_large(limit)))?;
    arw_wire::json_text(content_type, declared, &bytes, limit).map_err(Problem::from_wire)
}

/// The body parsed as `T` (an admin request), with the same checks.
pub async fn json<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: Body, limit: usize) -> Result<T, Problem> {
    let text = json_text(headers, body, limit).await?;
    serde_json::from_str(&text).map_err(|e| Problem::bad_request("invalid-request", format!("{e}")))
}
