//! What the HTTP API parses from a request: the first byte picks the
//! parser, the rest is its input. Tokens from `Authorization` and
//! `X-ARW-Admin`, JSON bodies with their content type and length, the event
//! stream's query and `Last-Event-ID`, package references and component ids
//! from admin bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let (a, b) = rest.split_at(rest.len() / 2);
    match selector % 6 {
        0 => {
            if let Ok(Some(token)) = arw_wire::presented_token(Some(a), Some(b)) {
                assert!(!token.starts_with(' ') && !token.ends_with(' '));
            }
        }
        1 => {
            if let Ok(text) = arw_wire::json_text(Some(a), None, b, 1 << 16) {
                assert!(text.len() <= 1 << 16);
            }
        }
        2 => {
            if let Ok(query) = arw_wire::events_query(&String::from_utf8_lossy(rest)) {
                assert!(query.prefixes.len() <= arw_wire::MAX_PREFIXES);
            }
        }
        3 => {
            let _ = arw_wire::last_event_id(rest);
        }
        4 => {
            let _ = String::from_utf8_lossy(rest).parse::<arw_registry::PackageRef>();
        }
        _ => {
            let _ = String::from_utf8_lossy(rest).parse::<arw_manifest::ComponentId>();
        }
    }
});
