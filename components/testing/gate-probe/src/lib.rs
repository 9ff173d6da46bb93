//! Test guest: a gate whose behaviour is its configuration text (the
//! first word of it), so tests can make a gate misbehave on demand:
//!
//! - `allow` (or an empty text): allows everything;
//! - `deny`: denies everything, contract `probe`, code `probed`;
//! - `deny KEY`: denies the key `KEY` only (among a request's keys);
//! - `deny-over N`: denies a request that carries more than `N` bytes
//!   (its `size`);
//! - `deny-chain ID KEY`: denies a request for `KEY` whose caller's chain
//!   (the components a nested call came through) names the component `ID`;
//! - `retry MS`: answers retry-after `MS` milliseconds;
//! - `trap`: panics in `check`;
//! - `hang`: loops forever in `check` (until the host's deadline);
//! - `refuse`: refuses the configuration itself (line 1).
//!
//! Every check is counted; `allow` answers carry nothing, so the count is
//! observable only through the host (a deny's reason says `check #n` and
//! the keys asked, joined by ` + `).
//!
//! A `mode` key in its own `[config]` (read with `config.get`) overrides
//! the text: `mode = "trap"` makes a version that passes its health check
//! and traps at every check (a broken upgrade).

wit_bindgen::generate!({ path: "../../../wit", world: "arw:host/gate" });

use std::sync::Mutex;

use exports::arw::host::gate_handler::{ConfigError, Denial, Guest, Request, Verdict};

static MODE: Mutex<String> = Mutex::new(String::new());
static CHECKS: Mutex<u64> = Mutex::new(0);

struct GateProbe;

impl Guest for GateProbe {
    fn configure(text: String) -> Result<(), ConfigError> {
        let text = text.trim().to_string();
        if text.starts_with("refuse") {
            return Err(ConfigError { line: Some(1), message: "the probe refuses this configuration".into() });
        }
        *MODE.lock().unwrap_or_else(|e| e.into_inner()) = text;
        Ok(())
    }

    fn covering(_key: String) -> Vec<String> {
        vec!["probe".into()]
    }

    fn check(request: Request) -> Verdict {
        let n = {
            let mut checks = CHECKS.lock().unwrap_or_else(|e| e.into_inner());
            *checks += 1;
            *checks
        };
        let configured = arw::host::config::get("mode").ok().flatten();
        let mode = configured.unwrap_or_else(|| MODE.lock().unwrap_or_else(|e| e.into_inner()).clone());
        let mut words = mode.split_whitespace();
        let keys = request.keys.join(" + ");
        let first = request.keys.first().cloned().unwrap_or_default();
        let denial = |key: String| Denial {
            key,
            code: "probed".into(),
            contract: "probe".into(),
            reason: format!("check #{n} of `{keys}` by `{}`", request.caller.name),
        };
        match (words.next(), words.next()) {
            (Some("deny"), None) => Verdict::Deny(denial(first)),
            (Some("deny"), Some(key)) if request.keys.iter().any(|k| k == key) => Verdict::Deny(denial(key.into())),
            (Some("deny-over"), Some(n)) if request.size > n.parse().unwrap_or(u64::MAX) => {
                Verdict::Deny(denial(first))
            }
            (Some("deny-chain"), Some(id)) => match words.next() {
                Some(key) if request.keys.iter().any(|k| k == key) && request.caller.chain.iter().any(|c| c == id) => {
                    Verdict::Deny(denial(key.into()))
                }
                _ => Verdict::Allow,
            },
            (Some("retry"), Some(ms)) => Verdict::RetryAfter((denial(first), ms.parse().unwrap_or(1000))),
            (Some("trap"), _) => panic!("the probe traps on purpose"),
            (Some("hang"), _) => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            _ => Verdict::Allow,
        }
    }
}

export!(GateProbe);
