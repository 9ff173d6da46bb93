//! Reading a JSON request body with the server's limits, refusing with a
//! problem document rather than axum's plain-text rejections.

use axum::body::Body;
use http::{HeaderMap, StatusCode, header};

use crate::problem::Problem;

/// Is the content type JSON (`application/json`, `application/*+json`)?
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let mime = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// The body as UTF-8 JSON text, checked to parse. Refuses a non-JSON
/// content type (415), a body over `limit` bytes (413) and malformed JSON
/// (400).
pub async fn json_text(headers: &HeaderMap, body: Body, limit: usize) -> Result<String, Problem> {
    if !is_json(headers) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("the request body is over the limit of {limit} bytes (http.body-limit-bytes)"),
        )
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| too_large())?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| Problem::bad_request("malformed-json", "the request body is not UTF-8"))?;
    serde_json::from_str::<serde::de::IgnoredAny>(&text)
        .map_err(|e| Problem::bad_request("malformed-json", format!("the request body is not valid JSON: {e}")))?;
    Ok(text)
}

/// The body parsed as `T` (an admin request), with the same checks.
pub async fn json<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: Body, limit: usize) -> Result<T, Problem> {
    let text = json_text(headers, body, limit).await?;
    serde_json::from_str(&text).map_err(|e| Problem::bad_request("invalid-request", format!("{e}")))
}
