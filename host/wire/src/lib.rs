//! What ARW accepts from HTTP clients, parsed and checked without I/O: the
//! caller's token, JSON request bodies, the event stream's query and its
//! resume header. The server reads the bytes (bounded); this crate decides
//! what they mean. It depends on nothing heavy, so each parser is fuzzed on
//! its own (`fuzz/fuzz_targets/http_input.rs`).

use serde::de::IgnoredAny;

/// How a refusal should be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400.
    BadRequest,
    /// 401.
    Unauthorized,
    /// 413.
    TooLarge,
    /// 415.
    UnsupportedMediaType,
}

/// Why a request was refused: its answer, a stable code and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct WireError {
    pub refusal: Refusal,
    pub code: &'static str,
    pub detail: String,
}

fn refuse(refusal: Refusal, code: &'static str, detail: impl Into<String>) -> WireError {
    WireError { refusal, code, detail: detail.into() }
}

/// The token a request presents: `Authorization: Bearer <token>` or
/// `X-ARW-Admin: <token>`; `None` when it presents none (the anonymous
/// caller). Any other `Authorization` scheme is refused rather than
/// ignored, so a typo never silently downgrades a client.
pub fn presented_token(authorization: Option<&[u8]>, admin_header: Option<&[u8]>) -> Result<Option<String>, WireError> {
    let text = |bytes: &[u8]| {
        std::str::from_utf8(bytes)
            .map(|s| s.trim().to_string())
            .map_err(|_| refuse(Refusal::Unauthorized, "unauthorized", "the token is not valid text"))
    };
    match (authorization, admin_header) {
        (None, None) => Ok(None),
        (Some(value), _) => {
            let value = text(value)?;
            match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim().to_string())),
                _ => Err(refuse(
                    Refusal::Unauthorized,
                    "unauthorized",
                    "the Authorization header must be `Bearer <token>`",
                )),
            }
        }
        (None, Some(value)) => text(value).map(Some),
    }
}

/// Is `content_type` JSON (`application/json`, `application/*+json`)?
pub fn is_json(content_type: Option<&[u8]>) -> bool {
    let Some(value) = content_type.and_then(|v| std::str::from_utf8(v).ok()) else { return false };
    let mime = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// A request body as UTF-8 JSON text, checked to parse. `declared` is the
/// `Content-Length`, refused before reading when over `limit`; `body` is
/// what was read (at most `limit` bytes, or it is refused too).
pub fn json_text(
    content_type: Option<&[u8]>,
    declared: Option<&[u8]>,
    body: &[u8],
    limit: usize,
) -> Result<String, WireError> {
    check_json_head(content_type, declared, limit)?;
    if body.len() > limit {
        return Err(body_too_large(limit));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| refuse(Refusal::BadRequest, "malformed-json", "the request body is not UTF-8"))?;
    serde_json::from_str::<IgnoredAny>(text).map_err(|e| {
        refuse(Refusal::BadRequest, "malformed-json", format!("the request body is not valid JSON: {e}"))
    })?;
    Ok(text.to_string())
}

/// What can be refused from the head alone, before reading the body: a
/// content type that is not JSON, a declared length over `limit`.
pub fn check_json_head(content_type: Option<&[u8]>, declared: Option<&[u8]>, limit: usize) -> Result<(), WireError> {
    if !is_json(content_type) {
        return Err(refuse(
            Refusal::UnsupportedMediaType,
            "unsupported-media-type",
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    if declared_length(declared).is_some_and(|n| n > limit as u64) {
        return Err(body_too_large(limit));
    }
    Ok(())
}

/// The refusal of a body over `limit` bytes.
pub fn body_too_large(limit: usize) -> WireError {
    refuse(
        Refusal::TooLarge,
        "body-too-large",
        format!("the request body is over the limit of {limit} bytes (http.body-limit-bytes)"),
    )
}

/// A `Content-Length` value, if it is a number.
pub fn declared_length(value: Option<&[u8]>) -> Option<u64> {
    std::str::from_utf8(value?).ok()?.trim().parse().ok()
}

/// A JSON document of type `T` (an admin request), with [`json_text`]'s checks.
pub fn json_document<T: serde::de::DeserializeOwned>(
    content_type: Option<&[u8]>,
    declared: Option<&[u8]>,
    body: &[u8],
    limit: usize,
) -> Result<T, WireError> {
    let text = json_text(content_type, declared, body, limit)?;
    serde_json::from_str(&text).map_err(|e| refuse(Refusal::BadRequest, "invalid-request", e.to_string()))
}

/// Most `prefix` parameters one event stream may ask for.
pub const MAX_PREFIXES: usize = 32;

/// The query of `GET /events`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsQuery {
    /// Start with the last N kept events.
    pub replay: Option<usize>,
    /// Topics equal to or under these dot.case prefixes.
    pub prefixes: Vec<String>,
}

/// Parse the query string of `GET /events`.
pub fn events_query(query: &str) -> Result<EventsQuery, WireError> {
    let bad = |detail: String| refuse(Refusal::BadRequest, "invalid-query", detail);
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|e| bad(format!("cannot read the query string: {e}")))?;
    let mut parsed = EventsQuery::default();
    for (key, value) in pairs {
        match key.as_str() {
            "replay" => {
                let n = value.parse::<usize>().map_err(|_| {
                    bad(format!(
                        "`replay` must be a whole number, not `{}`",
                        value.chars().take(32).collect::<String>()
                    ))
                })?;
                parsed.replay = Some(n);
            }
            "prefix" => {
                arw_manifest::validate_topic(&value).map_err(|e| bad(format!("`prefix`: {e}")))?;
                if parsed.prefixes.len() >= MAX_PREFIXES {
                    return Err(bad(format!("at most {MAX_PREFIXES} `prefix` parameters")));
                }
                parsed.prefixes.push(value);
            }
            other => {
                return Err(bad(format!(
                    "unknown query parameter `{}` (known: replay, prefix)",
                    other.chars().take(32).collect::<String>()
                )));
            }
        }
    }
    Ok(parsed)
}

/// A `Last-Event-ID` header: the id of the last event the client saw.
pub fn last_event_id(value: &[u8]) -> Result<u64, WireError> {
    std::str::from_utf8(value).ok().and_then(|v| v.trim().parse::<u64>().ok()).ok_or_else(|| {
        refuse(Refusal::BadRequest, "invalid-header", "`Last-Event-ID` must be an event id (a whole number)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert_eq!(presented_token(None, None), Ok(None));
        assert_eq!(presented_token(Some(b"Bearer abc "), None), Ok(Some("abc".into())));
        assert_eq!(presented_token(Some(b"bearer abc"), Some(b"other")), Ok(Some("abc".into())));
        assert_eq!(presented_token(None, Some(b" t ")), Ok(Some("t".into())));
        assert!(presented_token(Some(b"Basic abc"), None).is_err());
        assert!(presented_token(Some(b"\xff\xfe"), None).is_err());
    }

    #[test]
    fn bodies() {
        let json = Some(&b"application/json; charset=utf-8"[..]);
        assert_eq!(json_text(json, None, b"{\"a\":1}", 100), Ok("{\"a\":1}".into()));
        assert_eq!(json_text(Some(b"text/plain"), None, b"{}", 100).map_err(|e| e.code), Err("unsupported-media-type"));
        assert_eq!(json_text(json, Some(b"1000"), b"{}", 100).map_err(|e| e.code), Err("body-too-large"));
        assert_eq!(json_text(json, None, b"{", 100).map_err(|e| e.code), Err("malformed-json"));
        assert_eq!(json_text(json, None, b"\xff", 100).map_err(|e| e.code), Err("malformed-json"));
        assert!(is_json(Some(b"application/problem+json")));
    }

    #[test]
    fn event_queries() {
        let q = events_query("replay=5&prefix=demo&prefix=a.b").unwrap_or_default();
        assert_eq!(q, EventsQuery { replay: Some(5), prefixes: vec!["demo".into(), "a.b".into()] });
        assert!(events_query("replay=x").is_err());
        assert!(events_query("prefix=A").is_err());
        assert!(events_query("what=1").is_err());
        let many = (0..40).map(|i| format!("prefix=p{i}")).collect::<Vec<_>>().join("&");
        assert!(events_query(&many).is_err(), "the prefix list is bounded");
        assert_eq!(last_event_id(b" 42 "), Ok(42));
        assert!(last_event_id(b"-1").is_err());
    }
}
