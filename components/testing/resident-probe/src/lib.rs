//! `resident-probe`: a resident component that misbehaves on request, for
//! the host's tests of the resident lifecycle. Its `[config]` (read once
//! per instance, so a test can change it per version) says what each
//! export does:
//!
//! - `tick`: `count` (default: count and publish `probe.tick`
//!   `{"beat", "instance"}`), `idle` (count only), `trap`, `spin` (loop
//!   forever), `grow` (allocate until the memory cap stops it), `error`;
//! - `snapshot`: `ok` (default: the counter as 8 bytes), `pad:<n>` (the
//!   counter followed by `n` more bytes), `error`, `trap`;
//! - `restore`: `ok` (default), `refuse`;
//! - `handle`: `publish` (default: publish each mailbox event back on
//!   `probe.seen` `{"event", "beat", "instance"}`), `quiet` (nothing).

wit_bindgen::generate!({ path: "../../../wit", world: "arw:host/resident" });

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;

use arw::host::{bus, config};

static STATE: Mutex<Option<(u64, u64)>> = Mutex::new(None);
static HOARD: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

fn with_state<T>(f: impl FnOnce(&mut u64, u64) -> T) -> T {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let (beat, instance) = guard.get_or_insert_with(|| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u8(0);
        (0, hasher.finish())
    });
    f(beat, *instance)
}

/// A `[config]` value, read once per instance (a version's config does not
/// change while its instance lives).
fn setting(key: &str, default: &str) -> String {
    static READ: Mutex<BTreeMap<String, Option<String>>> = Mutex::new(BTreeMap::new());
    let mut read = READ.lock().unwrap_or_else(|e| e.into_inner());
    let value = read.entry(key.to_string()).or_insert_with(|| config::get(key).ok().flatten());
    value.clone().unwrap_or_else(|| default.into())
}

fn publish(topic: &str, record: serde_json::Value) -> Result<(), String> {
    bus::publish(topic, &bus::Payload::Json(record.to_string())).map(drop).map_err(|e| format!("{e:?}"))
}

struct Probe;

impl exports::arw::host::lifecycle::Guest for Probe {
    fn tick() -> Result<(), String> {
        match setting("tick", "count").as_str() {
            "trap" => panic!("resident-probe: told to trap in tick"),
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "grow" => loop {
                HOARD.lock().unwrap_or_else(|e| e.into_inner()).push(vec![1u8; 1 << 20]);
            },
            "error" => Err("resident-probe: told to fail in tick".into()),
            "idle" => {
                with_state(|beat, _| *beat += 1);
                Ok(())
            }
            _ => {
                let record = with_state(|beat, instance| {
                    *beat += 1;
                    serde_json::json!({"beat": *beat, "instance": format!("{instance:016x}")})
                });
                publish("probe.tick", record)
            }
        }
    }

    fn snapshot() -> Result<Vec<u8>, String> {
        let setting = setting("snapshot", "ok");
        let mut bytes = with_state(|beat, _| beat.to_le_bytes().to_vec());
        match setting.as_str() {
            "error" => return Err("resident-probe: told to refuse the snapshot".into()),
            "trap" => panic!("resident-probe: told to trap in snapshot"),
            _ => {}
        }
        if let Some(n) = setting.strip_prefix("pad:").and_then(|n| n.parse::<usize>().ok()) {
            bytes.resize(8 + n, 0xab);
        }
        Ok(bytes)
    }

    fn restore(state: Vec<u8>) -> Result<(), String> {
        if setting("restore", "ok") == "refuse" {
            return Err("resident-probe: told to refuse the state".into());
        }
        let head: [u8; 8] = state.get(..8).and_then(|b| b.try_into().ok()).ok_or("state shorter than 8 bytes")?;
        with_state(|beat, _| *beat = u64::from_le_bytes(head));
        Ok(())
    }
}

impl exports::arw::host::event_handler::Guest for Probe {
    fn handle(event: bus::Event) -> Result<(), String> {
        if setting("handle", "publish") == "quiet" {
            return Ok(());
        }
        let record = with_state(
            |beat, instance| serde_json::json!({"event": event.id, "beat": *beat, "instance": format!("{instance:016x}")}),
        );
        publish("probe.seen", record)
    }
}

export!(Probe);
