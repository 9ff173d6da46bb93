//! The feedback engine's book: the current suggestions and their version,
//! the knobs' applied values, every apply's undo record, and the recent
//! deltas. Plain data behind one lock that is never held across an
//! `await` (so applies, rollbacks, ticks and persistence cannot deadlock
//! each other); persisted whole to `feedback.json`.
//!
//! The version only ever increases: it moves when the set of suggestions
//! changes (an id, its knob or its value; a new rationale or confidence
//! alone is no new version) and when a knob's value changes.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// How a knob's suggestions are acted on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// No suggestions for it.
    Off,
    /// Suggested, and logged as what would be applied; never applied.
    Shadow,
    /// Suggested; an operator applies (the default).
    #[default]
    Manual,
    /// Applied by the host, watched for `canary-window-ms`, and reverted
    /// (with the reason) if its signal regressed.
    Canary,
    /// Applied by the host within the apply budget.
    Auto,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Shadow => "shadow",
            Mode::Manual => "manual",
            Mode::Canary => "canary",
            Mode::Auto => "auto",
        }
    }
}

/// What a suggestion rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub signal: String,
    pub value: f64,
    pub threshold: f64,
}

/// One suggestion, as the host keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Suggestion {
    pub id: String,
    pub knob: String,
    pub value: i64,
    pub rationale: String,
    pub confidence: f64,
    pub evidence: Vec<Evidence>,
    /// The engine that made it, `id@version`.
    pub engine: String,
    /// The version at which it (with this knob and value) appeared.
    pub since_version: u64,
}

/// What one apply (or rollback) changed: enough to put it back exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct UndoRecord {
    pub apply_id: u64,
    pub knob: String,
    /// The applied value before and after (`None`: the knob's default,
    /// nothing applied).
    pub before: Option<i64>,
    pub after: Option<i64>,
    /// The suggestion applied, if it was one.
    pub suggestion: Option<String>,
    /// The version this apply made.
    pub version: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Who applied: a caller's name, or the engine's id.
    pub who: String,
    /// `operator`, `engine`, `rollback` or `canary-revert`.
    pub source: String,
    /// For a rollback or revert: the apply it undid.
    pub undoes: Option<u64>,
    /// The rollback that undid this apply, once one did.
    pub undone_by: Option<u64>,
}

/// What changed at one version, for `GET /feedback/updates?since=`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Delta {
    pub version: u64,
    /// Suggestions new or changed at this version.
    pub upserted: Vec<Suggestion>,
    /// Ids of suggestions withdrawn or spent.
    pub removed: Vec<String>,
    /// Knobs whose applied value changed: name and the new value (`None`:
    /// back to its default).
    pub knobs: Vec<(String, Option<i64>)>,
}

/// The persisted book (`feedback.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Ledger {
    pub version: u64,
    pub suggestions: BTreeMap<String, Suggestion>,
    /// Applied values by knob name (absent: its default).
    pub applied: BTreeMap<String, i64>,
    /// When each knob was last changed by an apply or a rollback.
    pub changed_ms: BTreeMap<String, i64>,
    /// Modes set at run time (`PUT /feedback/mode`), over the config's.
    pub modes: BTreeMap<String, Mode>,
    pub global_mode: Option<Mode>,
    /// Every apply, oldest first (at most `feedback.max-undo`; the oldest
    /// go first).
    pub undo: VecDeque<UndoRecord>,
    pub next_apply: u64,
    /// Recent deltas (not persisted: after a restart a client resyncs).
    #[serde(skip)]
    pub deltas: VecDeque<Delta>,
}

/// The answer to `updates?since=N`.
#[derive(Debug, Clone, PartialEq)]
pub enum Updates {
    /// N is the current version.
    Current,
    /// The deltas after N, oldest first.
    Deltas(Vec<Delta>),
    /// N is older than the deltas kept (or from another run): start over
    /// from the whole state.
    Reset,
}

impl Ledger {
    /// Take the engine's whole list of suggestions for now; a new version
    /// if any id, knob or value differs. Returns the delta, if any.
    pub fn replace_suggestions(&mut self, next: Vec<Suggestion>, history: usize) -> Option<Delta> {
        let mut next: BTreeMap<String, Suggestion> = next.into_iter().map(|s| (s.id.clone(), s)).collect();
        let same = |a: &Suggestion, b: &Suggestion| a.knob == b.knob && a.value == b.value;
        let upserted: Vec<String> = next
            .iter()
            .filter(|(id, s)| self.suggestions.get(*id).is_none_or(|old| !same(old, s)))
            .map(|(id, _)| id.clone())
            .collect();
        let removed: Vec<String> = self.suggestions.keys().filter(|id| !next.contains_key(*id)).cloned().collect();
        let bump = !upserted.is_empty() || !removed.is_empty();
        let version = if bump { self.version + 1 } else { self.version };
        for (id, s) in next.iter_mut() {
            s.since_version = match self.suggestions.get(id) {
                Some(old) if same(old, s) => old.since_version,
                _ => version,
            };
        }
        self.suggestions = next;
        if !bump {
            return None;
        }
        self.version = version;
        let upserted = upserted.iter().filter_map(|id| self.suggestions.get(id).cloned()).collect();
        Some(self.push_delta(Delta { version, upserted, removed, knobs: Vec::new() }, history))
    }

    /// Record that `knob` now has `after` (by an apply or a rollback);
    /// spends the suggestion applied. Returns the new undo record.
    #[allow(clippy::too_many_arguments)]
    pub fn record_change(
        &mut self,
        knob: &str,
        after: Option<i64>,
        suggestion: Option<&str>,
        who: &str,
        source: &str,
        undoes: Option<u64>,
        now_ms: i64,
        limits: (usize, usize),
    ) -> UndoRecord {
        let (max_undo, history) = limits;
        let before = self.applied.get(knob).copied();
        match after {
            Some(v) => self.applied.insert(knob.to_string(), v),
            None => self.applied.remove(knob),
        };
        self.changed_ms.insert(knob.to_string(), now_ms);
        self.version += 1;
        let removed: Vec<String> =
            suggestion.and_then(|id| self.suggestions.remove(id)).map(|s| s.id).into_iter().collect();
        self.next_apply += 1;
        let record = UndoRecord {
            apply_id: self.next_apply,
            knob: knob.to_string(),
            before,
            after,
            suggestion: suggestion.map(str::to_string),
            version: self.version,
            at_ms: now_ms,
            who: who.to_string(),
            source: source.to_string(),
            undoes,
            undone_by: None,
        };
        if let Some(undone) = undoes.and_then(|id| self.undo.iter_mut().find(|r| r.apply_id == id)) {
            undone.undone_by = Some(record.apply_id);
        }
        self.undo.push_back(record.clone());
        while self.undo.len() > max_undo.max(1) {
            self.undo.pop_front();
        }
        let delta =
            Delta { version: self.version, upserted: Vec::new(), removed, knobs: vec![(knob.to_string(), after)] };
        self.push_delta(delta, history);
        record
    }

    fn push_delta(&mut self, delta: Delta, history: usize) -> Delta {
        self.deltas.push_back(delta.clone());
        while self.deltas.len() > history.max(1) {
            self.deltas.pop_front();
        }
        delta
    }

    /// What changed after version `since`.
    pub fn updates(&self, since: u64) -> Updates {
        if since == self.version {
            return Updates::Current;
        }
        // Every version after `since` must be in the ring, from the one right
        // after it on.
        match self.deltas.front() {
            Some(first) if since < self.version && first.version <= since + 1 => {
                Updates::Deltas(self.deltas.iter().filter(|d| d.version > since).cloned().collect())
            }
            _ => Updates::Reset,
        }
    }

    /// The applies a rollback to `version` undoes, newest first: those
    /// made after it and not undone yet.
    pub fn applies_after(&self, version: u64) -> Vec<UndoRecord> {
        self.undo
            .iter()
            .rev()
            .filter(|r| r.version > version && r.undone_by.is_none() && r.undoes.is_none())
            .cloned()
            .collect()
    }

    /// The mode in force for `knob`.
    pub fn mode(&self, knob: &str, configured: &BTreeMap<String, Mode>, default: Mode) -> Mode {
        self.modes.get(knob).or(configured.get(knob)).copied().or(self.global_mode).unwrap_or(default)
    }
}

/// The host's apply budget: a token bucket, one token per apply, refilled
/// one per `refill_ms` up to `capacity`.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    capacity: u32,
    refill_ms: u64,
    tokens: f64,
    at_ms: u64,
}

impl Budget {
    pub fn new(capacity: u32, refill_ms: u64) -> Self {
        Budget { capacity, refill_ms: refill_ms.max(1), tokens: f64::from(capacity), at_ms: 0 }
    }

    fn refill(&mut self, now_ms: u64) {
        if now_ms > self.at_ms {
            let gained = (now_ms - self.at_ms) as f64 / self.refill_ms as f64;
            self.tokens = (self.tokens + gained).min(f64::from(self.capacity));
            self.at_ms = now_ms;
        }
    }

    /// Whole applies left now.
    pub fn left(&mut self, now_ms: u64) -> u32 {
        self.refill(now_ms);
        self.tokens.floor() as u32
    }

    /// Spend one apply, if one is left.
    pub fn take(&mut self, now_ms: u64) -> bool {
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suggestion(id: &str, knob: &str, value: i64, rationale: &str) -> Suggestion {
        Suggestion {
            id: id.into(),
            knob: knob.into(),
            value,
            rationale: rationale.into(),
            confidence: 0.5,
            evidence: Vec::new(),
            engine: "arw:feedback@0.1.0".into(),
            since_version: 0,
        }
    }

    #[test]
    fn a_new_rationale_alone_is_no_new_version() {
        let mut ledger = Ledger::default();
        assert!(ledger.replace_suggestions(vec![suggestion("a", "k", 1, "first")], 8).is_some());
        assert_eq!(ledger.version, 1);
        assert!(ledger.replace_suggestions(vec![suggestion("a", "k", 1, "reworded")], 8).is_none());
        assert_eq!(ledger.version, 1, "a rationale change must not bump the version");
        assert_eq!(ledger.suggestions["a"].rationale, "reworded", "but the text is current");
        let delta = ledger.replace_suggestions(vec![suggestion("a", "k", 2, "reworded")], 8);
        assert_eq!(ledger.version, 2);
        assert_eq!(delta.map(|d| d.upserted[0].value), Some(2));
        let delta = ledger.replace_suggestions(Vec::new(), 8);
        assert_eq!(delta.map(|d| d.removed), Some(vec!["a".to_string()]));
        assert_eq!(ledger.version, 3);
    }

    #[test]
    fn updates_give_the_deltas_after_a_version_or_a_reset() {
        let mut ledger = Ledger::default();
        for v in 1..=5 {
            ledger.replace_suggestions(vec![suggestion("a", "k", v, "")], 3);
        }
        assert_eq!(ledger.version, 5);
        assert_eq!(ledger.updates(5), Updates::Current);
        let Updates::Deltas(deltas) = ledger.updates(3) else { panic!("{:?}", ledger.updates(3)) };
        assert_eq!(deltas.iter().map(|d| d.version).collect::<Vec<_>>(), [4, 5]);
        let Updates::Deltas(deltas) = ledger.updates(2) else { panic!("2 is the ring's first - 1") };
        assert_eq!(deltas.len(), 3);
        assert_eq!(ledger.updates(1), Updates::Reset, "version 2 fell out of the ring of 3");
        assert_eq!(ledger.updates(9), Updates::Reset, "a version from another run");
    }

    #[test]
    fn an_apply_records_what_puts_it_back() {
        let mut ledger = Ledger::default();
        ledger.replace_suggestions(vec![suggestion("s", "k", 7, "")], 8);
        let first = ledger.record_change("k", Some(7), Some("s"), "op", "operator", None, 10, (8, 8));
        assert_eq!((first.before, first.after, first.version), (None, Some(7), 2));
        assert!(ledger.suggestions.is_empty(), "an applied suggestion is spent");
        let second = ledger.record_change("k", Some(9), None, "op", "operator", None, 20, (8, 8));
        assert_eq!(second.before, Some(7));
        assert_eq!(ledger.applies_after(1).iter().map(|r| r.apply_id).collect::<Vec<_>>(), [2, 1], "newest first");
        let undo = ledger.record_change("k", second.before, None, "op", "rollback", Some(2), 30, (8, 8));
        assert_eq!(ledger.applied.get("k"), Some(&7));
        assert_eq!(ledger.undo[1].undone_by, Some(undo.apply_id));
        assert_eq!(ledger.applies_after(1).iter().map(|r| r.apply_id).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn the_undo_records_are_bounded() {
        let mut ledger = Ledger::default();
        for i in 0..10 {
            ledger.record_change("k", Some(i), None, "op", "operator", None, i, (4, 4));
        }
        assert_eq!(ledger.undo.len(), 4);
        assert_eq!(ledger.undo.front().map(|r| r.apply_id), Some(7));
        assert_eq!(ledger.deltas.len(), 4);
    }

    #[test]
    fn the_budget_refills_one_per_period() {
        let mut budget = Budget::new(2, 1000);
        assert!(budget.take(0) && budget.take(0));
        assert!(!budget.take(500), "none left before a period passed");
        assert!(budget.take(1000));
        assert_eq!(budget.left(10_000), 2, "never above its capacity");
    }
}
