//! `feedback-probe`: a feedback engine that misbehaves on request, for the
//! host's tests of the feedback role. Its `[config]` `evaluate` says what
//! `evaluate` does: `trap`, `error`, `spin` (loop forever), `junk` (answer
//! suggestions naming no knob, a value off the grid, a repeated id),
//! `suggest` (answer one suggestion `probe:<knob>` per `KNOB=VALUE` in the
//! `[config]` key `suggest`, `;`-separated), or `quiet` (default: no
//! suggestions). Its state is the number of evaluates
//! it ran, handed over at a swap.

wit_bindgen::generate!({ path: "../../../wit", world: "arw:host/feedback" });

use std::sync::Mutex;

use arw::host::config;
use exports::arw::host::feedback_engine::{Features, Guest, Suggestion};

static EVALUATES: Mutex<u64> = Mutex::new(0);

fn setting() -> String {
    config::get("evaluate").ok().flatten().unwrap_or_else(|| "quiet".into())
}

fn suggestion(id: &str, knob: &str, value: i64) -> Suggestion {
    Suggestion {
        id: id.into(),
        knob: knob.into(),
        value,
        rationale: "feedback-probe".into(),
        confidence: 0.5,
        evidence: Vec::new(),
    }
}

struct Probe;

impl Guest for Probe {
    fn evaluate(features: Features) -> Result<Vec<Suggestion>, String> {
        *EVALUATES.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        match setting().as_str() {
            "trap" => panic!("feedback-probe: told to trap in evaluate"),
            "error" => Err("feedback-probe: told to fail".into()),
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "junk" => {
                let knob = features.knobs.first().map(|k| (k.name.clone(), k.min, k.step)).unwrap_or_default();
                Ok(vec![
                    suggestion("no-knob", "component.nothing.timeout-ms", 100),
                    suggestion("off-grid", &knob.0, knob.1 + knob.2.max(2) / 2 + 1),
                    suggestion("twice", &knob.0, knob.1),
                    suggestion("twice", &knob.0, knob.1),
                    suggestion("", &knob.0, knob.1),
                ])
            }
            "suggest" => {
                let wanted = config::get("suggest").ok().flatten().unwrap_or_default();
                Ok(wanted
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(knob, value)| {
                        let knob = knob.trim();
                        suggestion(&format!("probe:{knob}"), knob, value.trim().parse().unwrap_or(-1))
                    })
                    .collect())
            }
            _ => Ok(Vec::new()),
        }
    }
}

impl exports::arw::host::lifecycle::Guest for Probe {
    fn tick() -> Result<(), String> {
        Ok(())
    }

    fn snapshot() -> Result<Vec<u8>, String> {
        Ok(EVALUATES.lock().unwrap_or_else(|e| e.into_inner()).to_le_bytes().to_vec())
    }

    fn restore(state: Vec<u8>) -> Result<(), String> {
        let head: [u8; 8] = state.get(..8).and_then(|b| b.try_into().ok()).ok_or("not a feedback-probe state")?;
        *EVALUATES.lock().unwrap_or_else(|e| e.into_inner()) = u64::from_le_bytes(head);
        Ok(())
    }
}

export!(Probe);
