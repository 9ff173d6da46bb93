//! Reading a JSON request body with the server's limits, refusing with a
//! problem document rather than axum's plain-text rejections. What the
//! bytes mean is decided by `arw-wire`.

use axum::body::Body;
use http::{HeaderMap, header};
use http_body_util::BodyExt;

use crate::problem::Problem;

/// How much of a refused body is read and thrown away before the answer
/// goes out, and for how long at most (see [`drain`]).
const DRAIN_BYTES: usize = 1 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// The body as UTF-8 JSON text, checked to parse. Refuses a non-JSON
/// content type (415), a body over `limit` bytes (413) and malformed JSON
/// (400).
pub async fn json_text(headers: &HeaderMap, body: Body, limit: usize) -> Result<String, Problem> {
    let content_type = headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes());
    let declared = headers.get(header::CONTENT_LENGTH).map(|v| v.as_bytes());
    // Refuse what the head already shows cannot pass, before reading.
    if let Err(e) = arw_wire::check_json_head(content_type, declared, limit) {
        drain(body).await;
        return Err(Problem::from_wire(e));
    }
    let bytes = match read_limited(body, limit).await {
        Ok(bytes) => bytes,
        Err(rest) => {
            if let Some(rest) = rest {
                drain(rest).await;
            }
            return Err(Problem::from_wire(arw_wire::body_too_large(limit)));
        }
    };
    arw_wire::json_text(content_type, declared, &bytes, limit).map_err(Problem::from_wire)
}

/// Up to `limit` bytes of `body`; past that, the rest of the body (to be
/// drained), or `None` when reading failed.
async fn read_limited(mut body: Body, limit: usize) -> Result<Vec<u8>, Option<Body>> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return Err(None) };
        if let Some(data) = frame.data_ref() {
            if bytes.len() + data.len() > limit {
                return Err(Some(body));
            }
            bytes.extend_from_slice(data);
        }
    }
    Ok(bytes)
}

/// Read and discard what the client is still sending of a refused body,
/// at most [`DRAIN_BYTES`] for at most [`DRAIN_TIME`]: a client still
/// sending when the connection closes gets a reset, and may lose the
/// answer with it. A client that sends more, or slower, is cut off.
async fn drain(mut body: Body) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut read = 0;
        while read < DRAIN_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    })
    .await;
}

/// The body parsed as `T` (an admin request), with the same checks.
pub async fn json<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: Body, limit: usize) -> Result<T, Problem> {
    let text = json_text(headers, body, limit).await?;
    serde_json::from_str(&text).map_err(|e| Problem::bad_request("invalid-request", format!("{e}")))
}
