//! `arw:gating`: the first-party gate. It reads deny contracts from its
//! configuration (the operator's `gating.toml`, given by the host through
//! `configure`) and denies the requests a contract in force matches; the
//! first matching contract, in file order, decides and names itself.
//!
//! The format is `docs/gating.md`'s; [`contracts`] parses and matches it.
//! An invalid text is refused with its line, and the host keeps the
//! contracts in force: this gate never ends up with an empty set because
//! of a typo.

wit_bindgen::generate!({ path: "../../wit", world: "arw:host/gate" });

pub mod contracts;

use std::sync::Mutex;

use arw::host::quota;
use exports::arw::host::gate_handler::{ConfigError, Denial, Guest, Request, Verdict};

/// Where budgets are counted (`quota.consume` on it is granted to
/// arw:gating by the default policies).
const QUOTA_NAMESPACE: &str = "gating";

/// The contracts in force in this instance.
static CONTRACTS: Mutex<Option<contracts::Contracts>> = Mutex::new(None);

struct Gating;

impl Guest for Gating {
    fn configure(text: String) -> Result<(), ConfigError> {
        let parsed =
            contracts::Contracts::parse(&text).map_err(|e| ConfigError { line: e.line, message: e.message })?;
        *CONTRACTS.lock().unwrap_or_else(|e| e.into_inner()) = Some(parsed);
        Ok(())
    }

    fn covering(key: String) -> Vec<String> {
        let guard = CONTRACTS.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|c| c.covering(&key)).unwrap_or_default()
    }

    fn check(request: Request) -> Verdict {
        let guard = CONTRACTS.lock().unwrap_or_else(|e| e.into_inner());
        // Never configured cannot happen (the host configures every
        // instance first); if it did, deny rather than guess.
        let Some(contracts) = guard.as_ref() else {
            return Verdict::Deny(Denial {
                code: "not-configured".into(),
                contract: String::new(),
                reason: "arw:gating was asked before it was configured".into(),
            });
        };
        let subject = contracts::Subject {
            key: &request.key,
            caller_name: &request.caller.name,
            caller_roles: &request.caller.roles,
            caller_tags: &request.caller.tags,
            node_id: &request.node.id,
            node_role: &request.node.role,
            node_tags: &request.node.tags,
            now_ms: request.now_ms,
        };
        let denial = |contract: &contracts::Contract| Denial {
            code: contract.code.clone(),
            contract: contract.id.clone(),
            reason: contract.reason.clone(),
        };
        // Deny over budget over allow.
        if let Some(contract) = contracts.denying(&subject) {
            return Verdict::Deny(denial(contract));
        }
        for (contract, budget) in contracts.budgets(&subject) {
            let bucket = contracts::bucket_key(&contract.id, budget, &request.caller.name, &request.key);
            let window = quota::Window {
                limit: budget.limit,
                window_ms: budget.window_ms,
                kind: if budget.sliding { quota::WindowKind::Sliding } else { quota::WindowKind::Fixed },
            };
            match quota::consume(QUOTA_NAMESPACE, &bucket, 1, window, request.now_ms) {
                Ok(quota::Consumed::Granted(_)) => {}
                Ok(quota::Consumed::Refused(after)) => return Verdict::RetryAfter((denial(contract), after)),
                // A budget that cannot be counted is not granted.
                Err(e) => {
                    return Verdict::Deny(Denial {
                        code: "budget-unavailable".into(),
                        contract: contract.id.clone(),
                        reason: format!("the budget of contract `{}` could not be counted: {e:?}", contract.id),
                    });
                }
            }
        }
        Verdict::Allow
    }
}

export!(Gating);
