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
/// apply to a request's keys for a caller on a node whenever they are in
/// force. Patterns read only the keys, and conditions only the caller's
/// name, roles and tags and the node's id, role and tags: those are the
/// whole memo key. What varies per request (the time, the budgets'
/// counts) is decided at every check.
struct InForce {
    contracts: Contracts,
    memo: HashMap<u64, Vec<Memoized>, NoRehash>,
    memoized: usize,
    /// Seeded per instance, so no caller can choose keys that collide.
    hasher: foldhash::fast::RandomState,
}

/// One memo entry: its keys and subject in full (a hash only finds it),
/// and the contracts that apply, in file order, each with the position of
/// a key it covers (a contract covering two keys is there twice, in the
/// keys' order).
struct Memoized {
    keys: Vec<String>,
    caller: (String, Vec<String>, Vec<String>),
    node: (String, String, Vec<String>),
    applying: Box<[(u16, usize)]>,
    /// What they decide over a span of time, kept until a request falls
    /// outside it.
    decided: Option<Decided>,
}

/// What a memo entry's contracts decide from `from_ms` until `until_ms`
/// (exclusive): no contract's being in force changes inside the span, so
/// a check inside it reads no contract that does not decide.
struct Decided {
    from_ms: i64,
    until_ms: i64,
    /// The first deny in force, in file order (with its key).
    first_deny: Option<(u16, usize)>,
    /// The budgets in force, in file order, each with a key it covers.
    budgets: Box<[(u16, usize)]>,
}

impl Decided {
    fn at(contracts: &Contracts, applying: &[(u16, usize)], now: i64) -> Decided {
        let mut decided = Decided { from_ms: now, until_ms: i64::MAX, first_deny: None, budgets: Box::default() };
        let mut budgets = Vec::new();
        for &(index, key) in applying {
            let Some(contract) = contracts.get(index) else { continue };
            decided.until_ms = decided.until_ms.min(contract.next_change(now));
            if !contract.in_force(now) {
                continue;
            }
            match contract.effect {
                Effect::Deny => {
                    decided.first_deny.get_or_insert((index, key));
                }
                Effect::Budget(_) => budgets.push((index, key)),
            }
        }
        decided.budgets = budgets.into_boxed_slice();
        decided
    }

    fn holds_at(&self, now: i64) -> bool {
        self.from_ms <= now && now < self.until_ms
    }
}

impl Memoized {
    fn is_for(&self, keys: &[String], s: &contracts::Subject<'_>) -> bool {
        self.keys == keys
            && (self.caller.0 == s.caller_name && self.caller.1 == s.caller_roles && self.caller.2 == s.caller_tags)
            && (self.node.0 == s.node_id && self.node.1 == s.node_role && self.node.2 == s.node_tags)
    }
}

/// The memo's keys are hashes already: used as they are.
#[derive(Default, Clone, Copy)]
struct NoRehash;

impl std::hash::BuildHasher for NoRehash {
    type Hasher = Passed;
    fn build_hasher(&self) -> Passed {
        Passed(0)
    }
}

#[derive(Default)]
struct Passed(u64);

impl std::hash::Hasher for Passed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the map's keys are u64); fold anything
        // else in rather than ignore it.
        self.0 = bytes.iter().fold(self.0, |h, &b| h.rotate_left(8) ^ u64::from(b));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl InForce {
    fn new(contracts: Contracts) -> Self {
        InForce { contracts, memo: HashMap::default(), memoized: 0, hasher: foldhash::fast::RandomState::default() }
    }

    /// The contracts, and what those that apply to `keys` for `subject`
    /// decide at `now`. A check's one lookup: a request's keys are few and
    /// repeat (a route's and a tool's), so what applies to them is kept
    /// (see [`Memoized`]), and what that decides is kept for as long as
    /// no contract's time window changes it (see [`Decided`]).
    fn decide(&mut self, keys: &[String], s: &contracts::Subject<'_>, now: i64) -> (&Contracts, Option<&Decided>) {
        use std::hash::BuildHasher;
        let hash = self.hasher.hash_one((
            keys,
            s.caller_name,
            s.caller_roles,
            s.caller_tags,
            s.node_id,
            s.node_role,
            s.node_tags,
        ));
        let found = self.memo.get(&hash).and_then(|entries| entries.iter().position(|m| m.is_for(keys, s)));
        let at = match found {
            Some(at) => at,
            None => {
                if self.memoized >= MAX_MEMO {
                    self.memo.clear();
                    self.memoized = 0;
                }
                let mut applying: Vec<(u16, usize)> = Vec::new();
                for (k, key) in keys.iter().enumerate() {
                    applying.extend(self.contracts.applying(key, s).iter().map(|&i| (i, k)));
                }
                // File order; for one contract, the keys' order.
                applying.sort_unstable();
                let entry = Memoized {
                    keys: keys.to_vec(),
                    caller: (s.caller_name.to_string(), s.caller_roles.to_vec(), s.caller_tags.to_vec()),
                    node: (s.node_id.to_string(), s.node_role.to_string(), s.node_tags.to_vec()),
                    applying: applying.into_boxed_slice(),
                    decided: None,
                };
                let entries = self.memo.entry(hash).or_default();
                entries.push(entry);
                self.memoized += 1;
                entries.len() - 1
            }
        };
        let Some(entry) = self.memo.get_mut(&hash).and_then(|entries| entries.get_mut(at)) else {
            return (&self.contracts, None);
        };
        if !entry.decided.as_ref().is_some_and(|d| d.holds_at(now)) {
            entry.decided = Some(Decided::at(&self.contracts, &entry.applying, now));
        }
        (&self.contracts, entry.decided.as_ref())
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
        let (contracts, decided) = in_force.decide(&request.keys, &subject, request.now_ms);
        let denial = |contract: &Contract, key: &str| Denial {
            key: key.to_string(),
            code: contract.code.clone(),
            contract: contract.id.clone(),
            reason: contract.reason.clone(),
        };
        // What cannot be looked up is not allowed.
        let lost = || {
            Verdict::Deny(Denial {
                key: request.keys.first().cloned().unwrap_or_default(),
                code: "internal".into(),
                contract: String::new(),
                reason: "arw:gating lost track of its contracts; it denies rather than guess".into(),
            })
        };
        let Some(decided) = decided else { return lost() };
        let find = |(index, key): (u16, usize)| Some((contracts.get(index)?, request.keys.get(key)?));
        // Deny over budget over allow; the first deny in file order names itself.
        if let Some(first) = decided.first_deny {
            return match find(first) {
                Some((contract, key)) => Verdict::Deny(denial(contract, key)),
                None => lost(),
            };
        }
        // Each budget counts once per action when it is per caller, and
        // once per key it covers when it is per key.
        let mut counted: Option<u16> = None;
        for &(index, k) in &decided.budgets {
            let Some((contract, key)) = find((index, k)) else { return lost() };
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
