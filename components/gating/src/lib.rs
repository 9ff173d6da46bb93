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

use std::collections::HashMap;
use std::sync::Mutex;

use arw::host::quota;
use contracts::{Contract, Contracts, Effect};
use exports::arw::host::gate_handler::{ConfigError, Denial, Guest, Request, Verdict};

/// Where budgets are counted (`quota.consume` on it is granted to
/// arw:gating by the default policies).
const QUOTA_NAMESPACE: &str = "gating";

/// At most this many (key, caller, node) entries are memoized; past it
/// the memo starts again (outgoing-HTTP keys name arbitrary hosts).
const MAX_MEMO: usize = 4096;

/// The contracts in force in this instance, and a memo of which of them
/// apply to a key for a caller on a node whenever they are in force.
/// Patterns read only the key, and conditions only the caller's name,
/// roles and tags and the node's id, role and tags: those are the whole
/// memo key. What varies per request (the time, the budgets' counts) is
/// decided at every check.
struct InForce {
    contracts: Contracts,
    memo: HashMap<u64, Vec<Memoized>>,
    memoized: usize,
}

/// One memo entry: its key in full (a hash only finds it), and the
/// positions of the contracts that apply.
struct Memoized {
    key: String,
    caller: (String, Vec<String>, Vec<String>),
    node: (String, String, Vec<String>),
    applying: Box<[u16]>,
}

impl Memoized {
    fn is_for(&self, key: &str, s: &contracts::Subject<'_>) -> bool {
        self.key == key
            && (self.caller.0 == s.caller_name && self.caller.1 == s.caller_roles && self.caller.2 == s.caller_tags)
            && (self.node.0 == s.node_id && self.node.1 == s.node_role && self.node.2 == s.node_tags)
    }
}

impl InForce {
    fn new(contracts: Contracts) -> Self {
        InForce { contracts, memo: HashMap::new(), memoized: 0 }
    }

    /// The contracts that apply to `key` for `subject` when in force.
    fn applying(&mut self, key: &str, s: &contracts::Subject<'_>) -> &[u16] {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (key, s.caller_name, s.caller_roles, s.caller_tags, s.node_id, s.node_role, s.node_tags).hash(&mut hasher);
        let hash = hasher.finish();
        let found = self.memo.get(&hash).and_then(|entries| entries.iter().position(|m| m.is_for(key, s)));
        let at = match found {
            Some(at) => at,
            None => {
                if self.memoized >= MAX_MEMO {
                    self.memo.clear();
                    self.memoized = 0;
                }
                let entry = Memoized {
                    key: key.to_string(),
                    caller: (s.caller_name.to_string(), s.caller_roles.to_vec(), s.caller_tags.to_vec()),
                    node: (s.node_id.to_string(), s.node_role.to_string(), s.node_tags.to_vec()),
                    applying: self.contracts.applying(key, s),
                };
                let entries = self.memo.entry(hash).or_default();
                entries.push(entry);
                self.memoized += 1;
                entries.len() - 1
            }
        };
        self.memo.get(&hash).and_then(|entries| entries.get(at)).map_or(&[], |m| &m.applying)
    }
}

static IN_FORCE: Mutex<Option<InForce>> = Mutex::new(None);

struct Gating;

impl Guest for Gating {
    fn configure(text: String) -> Result<(), ConfigError> {
        let parsed = Contracts::parse(&text).map_err(|e| ConfigError { line: e.line, message: e.message })?;
        *IN_FORCE.lock().unwrap_or_else(|e| e.into_inner()) = Some(InForce::new(parsed));
        Ok(())
    }

    fn covering(key: String) -> Vec<String> {
        let guard = IN_FORCE.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|c| c.contracts.covering(&key)).unwrap_or_default()
    }

    fn check(request: Request) -> Verdict {
        let mut guard = IN_FORCE.lock().unwrap_or_else(|e| e.into_inner());
        // Never configured cannot happen (the host configures every
        // instance first); if it did, deny rather than guess.
        let Some(in_force) = guard.as_mut() else {
            return Verdict::Deny(Denial {
                key: request.keys.first().cloned().unwrap_or_default(),
                code: "not-configured".into(),
                contract: String::new(),
                reason: "arw:gating was asked before it was configured".into(),
            });
        };
        let subject = contracts::Subject {
            caller_name: &request.caller.name,
            caller_roles: &request.caller.roles,
            caller_tags: &request.caller.tags,
            node_id: &request.node.id,
            node_role: &request.node.role,
            node_tags: &request.node.tags,
        };
        // The contracts that apply to any of the keys, in file order, each
        // with the keys it covers (in the request's order).
        let mut applying: Vec<(u16, usize)> = Vec::new();
        for (k, key) in request.keys.iter().enumerate() {
            applying.extend(in_force.applying(key, &subject).iter().map(|&i| (i, k)));
        }
        if request.keys.len() > 1 {
            applying.sort_unstable();
        }
        let contracts = &in_force.contracts;
        let now = request.now_ms;
        let in_force_now = || {
            applying
                .iter()
                .filter_map(|&(i, k)| Some((contracts.get(i)?, i, &request.keys[k])))
                .filter(|(c, ..)| c.in_force(now))
        };
        let denial = |contract: &Contract, key: &str| Denial {
            key: key.to_string(),
            code: contract.code.clone(),
            contract: contract.id.clone(),
            reason: contract.reason.clone(),
        };
        // Deny over budget over allow; the first deny in file order names itself.
        if let Some((contract, _, key)) = in_force_now().find(|(c, ..)| matches!(c.effect, Effect::Deny)) {
            return Verdict::Deny(denial(contract, key));
        }
        // Each budget counts once per action when it is per caller, and
        // once per key it covers when it is per key.
        let mut counted: Option<u16> = None;
        for (contract, index, key) in in_force_now() {
            let Effect::Budget(budget) = &contract.effect else { continue };
            if budget.per == contracts::Per::Caller && counted == Some(index) {
                continue;
            }
            counted = Some(index);
            let bucket = contracts::bucket_key(&contract.id, budget, &request.caller.name, key);
            let window = quota::Window {
                limit: budget.limit,
                window_ms: budget.window_ms,
                kind: if budget.sliding { quota::WindowKind::Sliding } else { quota::WindowKind::Fixed },
            };
            match quota::consume(QUOTA_NAMESPACE, &bucket, 1, window, request.now_ms) {
                Ok(quota::Consumed::Granted(_)) => {}
                Ok(quota::Consumed::Refused(after)) => return Verdict::RetryAfter((denial(contract, key), after)),
                // A budget that cannot be counted is not granted.
                Err(e) => {
                    return Verdict::Deny(Denial {
                        key: key.clone(),
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
