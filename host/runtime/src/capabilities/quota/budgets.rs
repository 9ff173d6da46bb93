//! The budgets counted in the quota buckets, as the feedback engine's
//! knobs `quota.<namespace>.<budget>.limit` (`docs/feedback.md`).
//!
//! A consumer names its buckets `<budget>|<anything>` (arw:gating:
//! `<contract id>|c=<caller>`): the part before the first `|` (the whole
//! key without one) is the budget, shared by all its buckets. The host
//! remembers, per budget, the limit its consumer last asked for, and may
//! hold a limit applied in its place: a consume then counts against the
//! applied limit (the window and the counts stay the consumer's). Bounded:
//! at most [`MAX_BUDGETS`] budgets are remembered; a budget past that is
//! counted as asked and is no knob.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Budgets remembered (and tunable) at most.
pub const MAX_BUDGETS: usize = 256;

/// One budget: what its consumer asks, and what is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetLimit {
    /// The limit the consumer asked for at its last consume.
    pub asked: u64,
    /// The limit in force instead, if one was applied.
    pub applied: Option<u64>,
}

/// A budget as a knob sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetView {
    pub namespace: String,
    pub budget: String,
    pub limit: BudgetLimit,
}

impl BudgetView {
    /// Its knob's name.
    pub fn knob(&self) -> String {
        knob_name(&self.namespace, &self.budget)
    }
}

/// The knob name of `budget` in `namespace`.
pub fn knob_name(namespace: &str, budget: &str) -> String {
    format!("quota.{namespace}.{budget}.limit")
}

/// The budget a bucket key belongs to.
pub fn budget_of(key: &str) -> &str {
    key.split_once('|').map_or(key, |(budget, _)| budget)
}

#[derive(Debug, Default)]
struct Inner {
    /// By namespace, then budget (looked up without allocating).
    seen: HashMap<String, HashMap<String, BudgetLimit>>,
    count: usize,
    /// Applied limits of budgets not seen yet (put back at a start,
    /// before their consumer counts), by knob name.
    pending: HashMap<String, u64>,
}

/// The budgets of one quota store.
#[derive(Debug)]
pub struct Budgets {
    inner: Mutex<Inner>,
    /// Moves on at every apply: a bucket keeps the limit it was last
    /// counted against with the generation it read it at, and asks again
    /// only when this moved or its consumer asks another limit (so a
    /// consume does not take this lock).
    generation: AtomicU64,
}

impl Default for Budgets {
    fn default() -> Self {
        // Generation 0 is never current: a bucket read from disk asks.
        Budgets { inner: Mutex::default(), generation: AtomicU64::new(1) }
    }
}

impl Budgets {
    /// The current generation (see the field).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Note that `namespace`'s consumer asks `asked` for the budget of
    /// `key`; the limit in force for it.
    pub fn limit_for(&self, namespace: &str, key: &str, asked: u64) -> u64 {
        let budget = budget_of(key);
        let mut inner = self.inner.lock();
        if let Some(limit) = inner.seen.get_mut(namespace).and_then(|budgets| budgets.get_mut(budget)) {
            limit.asked = asked;
            return limit.applied.unwrap_or(asked);
        }
        if inner.count >= MAX_BUDGETS {
            return asked;
        }
        let applied = inner.pending.remove(&knob_name(namespace, budget));
        inner.count += 1;
        inner.seen.entry(namespace.to_string()).or_default().insert(budget.to_string(), BudgetLimit { asked, applied });
        applied.unwrap_or(asked)
    }

    /// Every budget remembered, by namespace and budget.
    pub fn list(&self) -> Vec<BudgetView> {
        let inner = self.inner.lock();
        let mut out: Vec<BudgetView> = inner
            .seen
            .iter()
            .flat_map(|(namespace, budgets)| {
                budgets.iter().map(|(budget, limit)| BudgetView {
                    namespace: namespace.clone(),
                    budget: budget.clone(),
                    limit: *limit,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.namespace, &a.budget).cmp(&(&b.namespace, &b.budget)));
        out
    }

    /// Apply `limit` (`None`: the consumer's own again) to the budget whose
    /// knob is `knob`; one not seen yet gets it when it is first counted.
    pub fn apply(&self, knob: &str, limit: Option<u64>) {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let found = inner.seen.iter_mut().find_map(|(namespace, budgets)| {
            budgets.iter_mut().find(|(budget, _)| knob_name(namespace, budget) == knob).map(|(_, limit)| limit)
        });
        match (found, limit) {
            (Some(found), limit) => found.applied = limit,
            (None, Some(limit)) if inner.pending.len() < MAX_BUDGETS => {
                inner.pending.insert(knob.to_string(), limit);
            }
            (None, _) => {
                inner.pending.remove(knob);
            }
        }
        drop(guard);
        self.generation.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_the_key_before_its_first_bar_and_its_applied_limit_wins() {
        let budgets = Budgets::default();
        assert_eq!(budgets.limit_for("gating", "five|c=ops", 5), 5);
        assert_eq!(budgets.limit_for("gating", "five|c=other", 5), 5, "one budget for both callers");
        assert_eq!(budgets.list().len(), 1);
        assert_eq!(budgets.list()[0].knob(), "quota.gating.five.limit");
        let generation = budgets.generation();
        budgets.apply("quota.gating.five.limit", Some(8));
        assert!(budgets.generation() > generation, "an apply moves the generation: buckets ask again");
        assert_eq!(budgets.limit_for("gating", "five|c=ops", 5), 8);
        budgets.apply("quota.gating.five.limit", None);
        assert_eq!(budgets.limit_for("gating", "five|c=ops", 6), 6, "the consumer's own, as it asks now");
        // Applied before its consumer counts (a restart): held until then.
        budgets.apply("quota.gating.later.limit", Some(2));
        assert_eq!(budgets.limit_for("gating", "later", 10), 2);
        // Bounded: past the cap, counted as asked and no knob.
        for i in 0..MAX_BUDGETS {
            budgets.limit_for("many", &format!("b{i}|x"), 1);
        }
        assert_eq!(budgets.list().len(), MAX_BUDGETS);
        budgets.apply("quota.many.b999.limit", Some(7));
        assert_eq!(budgets.limit_for("many", "b999|x", 1), 1, "not remembered: the asked limit");
    }
}
