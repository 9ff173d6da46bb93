//! `heartbeat`: a resident component. Every `tick-ms` it counts a beat and
//! publishes it on its `topic` (`host.heartbeat` by default):
//! `{"beat": n, "messages": m, "instance": "<hex>"}`. Each event in its
//! mailbox (the topics it is granted to hear, `heartbeat.ping` by default)
//! is counted and answered at once with the same record plus
//! `"answering": <event id>`.
//!
//! The counters live in the instance's memory, not in kv: at a hot swap the
//! old version's `snapshot` hands them to the new version's `restore`, so
//! `beat` keeps increasing across versions. `instance` is random per
//! instance, so an observer can tell which instance answered.

wit_bindgen::generate!({ path: "../../wit", world: "arw:host/resident" });

use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;

use arw::host::{bus, config};
use serde::{Deserialize, Serialize};

/// What is kept in memory and handed over.
#[derive(Default, Serialize, Deserialize)]
struct State {
    beat: u64,
    messages: u64,
}

static STATE: Mutex<Option<(State, u64)>> = Mutex::new(None);

/// The state and this instance's random id, made on first use.
fn with_state<T>(f: impl FnOnce(&mut State, u64) -> T) -> T {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let (state, instance) = guard.get_or_insert_with(|| {
        // `RandomState` is seeded from `wasi:random`.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u8(0);
        (State::default(), hasher.finish())
    });
    f(state, *instance)
}

fn topic() -> String {
    config::get("topic").ok().flatten().unwrap_or_else(|| "host.heartbeat".into())
}

fn publish(record: serde_json::Value) -> Result<(), String> {
    bus::publish(&topic(), &bus::Payload::Json(record.to_string())).map(drop).map_err(|e| format!("{e:?}"))
}

fn record(state: &State, instance: u64) -> serde_json::Value {
    serde_json::json!({"beat": state.beat, "messages": state.messages, "instance": format!("{instance:016x}")})
}

struct Heartbeat;

impl exports::arw::host::lifecycle::Guest for Heartbeat {
    fn tick() -> Result<(), String> {
        let beat = with_state(|state, instance| {
            state.beat += 1;
            record(state, instance)
        });
        publish(beat)
    }

    fn snapshot() -> Result<Vec<u8>, String> {
        with_state(|state, _| serde_json::to_vec(state).map_err(|e| e.to_string()))
    }

    fn restore(bytes: Vec<u8>) -> Result<(), String> {
        let restored: State = serde_json::from_slice(&bytes).map_err(|e| format!("not a heartbeat state: {e}"))?;
        with_state(|state, _| *state = restored);
        Ok(())
    }
}

impl exports::arw::host::event_handler::Guest for Heartbeat {
    fn handle(event: bus::Event) -> Result<(), String> {
        let mut answer = with_state(|state, instance| {
            state.messages += 1;
            record(state, instance)
        });
        answer["answering"] = event.id.into();
        publish(answer)
    }
}

export!(Heartbeat);
