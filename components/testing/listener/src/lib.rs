//! Test guest: a subscriber whose handler waits in the host for as long as
//! the event's JSON payload says (`{"wait-ms": n}`), then succeeds; a
//! payload `{"fail": true}` makes it return an error. It proves that
//! deliveries end at the component's deadline and that shutdown drains
//! every subscriber within one grace period.

wit_bindgen::generate!({ path: "../../../wit", world: "arw:host/subscriber" });

use arw::host::bus::{Event, Payload};
use exports::arw::host::event_handler::Guest;

struct Listener;

impl Guest for Listener {
    fn handle(event: Event) -> Result<(), String> {
        let Payload::Json(text) = event.payload else { return Ok(()) };
        let payload: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        if payload["fail"] == serde_json::Value::Bool(true) {
            return Err("failed on request".into());
        }
        if let Some(ms) = payload["wait-ms"].as_u64() {
            wasip2::clocks::monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
        }
        Ok(())
    }
}

export!(Listener);
