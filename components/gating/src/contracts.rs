//! Deny contracts: their format, their checks, and how a request is
//! matched against them. Pure: the time is the request's (`now-ms`), so a
//! decision depends on nothing but the contracts and the request.

use serde::Deserialize;
use toml::Spanned;

/// At most this many contracts, patterns per contract, and entries per
/// condition list: a configuration is bounded like every input.
pub const MAX_CONTRACTS: usize = 1024;
pub const MAX_LIST: usize = 64;

/// A configuration error, with the 1-based line it is on.
#[derive(Debug)]
pub struct Error {
    pub line: Option<u32>,
    pub message: String,
}

/// The file: `[[contract]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    contract: Vec<Spanned<Spec>>,
}

/// One contract as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Spec {
    id: String,
    patterns: Vec<String>,
    /// `true`: requests it matches are denied.
    #[serde(default)]
    deny: bool,
    /// Or: requests it matches are allowed up to a budget.
    #[serde(default)]
    budget: Option<BudgetSpec>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    caller_roles: Vec<String>,
    #[serde(default)]
    caller_names: Vec<String>,
    #[serde(default)]
    caller_tags: Vec<String>,
    #[serde(default)]
    node_ids: Vec<String>,
    #[serde(default)]
    node_roles: Vec<String>,
    #[serde(default)]
    node_tags: Vec<String>,
    #[serde(default)]
    valid_from: Option<String>,
    #[serde(default)]
    valid_to: Option<String>,
    /// A period (`"90s"`, `"15m"`, `"24h"`, `"7d"`): while the contract is
    /// in force its end moves on by the period, for as long as
    /// `renew-until` and `max-renewals` allow.
    #[serde(default)]
    auto_renew: Option<String>,
    #[serde(default)]
    renew_until: Option<String>,
    #[serde(default)]
    max_renewals: Option<u32>,
}

/// A budget as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BudgetSpec {
    limit: u64,
    /// A period: `"60s"`, `"1h"`, ...
    window: String,
    /// `"fixed"` or `"sliding"`.
    kind: String,
    /// Whose count: `"caller"`, `"key"` or `"caller-and-key"`.
    per: String,
}

/// Which requests share a budget's count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    Caller,
    Key,
    CallerAndKey,
}

/// A budget, checked.
#[derive(Debug)]
pub struct Budget {
    pub limit: u64,
    pub window_ms: u64,
    pub sliding: bool,
    pub per: Per,
}

/// What a contract does to the requests it matches.
#[derive(Debug)]
pub enum Effect {
    Deny,
    Budget(Budget),
}

/// A gating-key pattern: exact, everything (`*`), or a prefix that ends
/// at a segment boundary (`tools:*`, `io:egress:http.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Prefix(String),
    Any,
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, String> {
        if text == "*" {
            return Ok(Pattern::Any);
        }
        if text.is_empty() || text.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_uppercase()) {
            return Err(format!("pattern `{text}` must be a lower-case gating key, `*` or `prefix:*`"));
        }
        match text.find('*') {
            None => Ok(Pattern::Exact(text.to_string())),
            Some(at) if at == text.len() - 1 => {
                let prefix = &text[..at];
                if !(prefix.ends_with(':') || prefix.ends_with('.')) {
                    return Err(format!(
                        "pattern `{text}`: a `*` must follow a `:` or a `.` (write `{prefix}:*` for the keys under `{prefix}`), so `tools:*` never matches `toolsX`"
                    ));
                }
                Ok(Pattern::Prefix(prefix.to_string()))
            }
            Some(_) => Err(format!("pattern `{text}`: `*` may only end a pattern")),
        }
    }

    fn matches(&self, key: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(exact) => exact == key,
            Pattern::Prefix(prefix) => key.len() > prefix.len() && key.starts_with(prefix.as_str()),
        }
    }
}

/// One contract, checked.
#[derive(Debug)]
pub struct Contract {
    pub id: String,
    pub code: String,
    pub reason: String,
    pub effect: Effect,
    patterns: Vec<Pattern>,
    caller_roles: Vec<String>,
    caller_names: Vec<String>,
    caller_tags: Vec<String>,
    node_ids: Vec<String>,
    node_roles: Vec<String>,
    node_tags: Vec<String>,
    /// In force from (inclusive), Unix ms.
    from_ms: Option<i64>,
    /// In force until (exclusive), Unix ms, before any renewal.
    to_ms: Option<i64>,
    renew: Option<Renewal>,
}

#[derive(Debug)]
struct Renewal {
    period_ms: i64,
    until_ms: Option<i64>,
    max: Option<u32>,
}

/// Who a request is from and where it is decided: what a contract's
/// conditions read, besides the key and the time.
pub struct Subject<'a> {
    pub caller_name: &'a str,
    pub caller_roles: &'a [String],
    pub caller_tags: &'a [String],
    pub node_id: &'a str,
    pub node_role: &'a str,
    pub node_tags: &'a [String],
}

/// The contracts in force, in file order.
#[derive(Debug, Default)]
pub struct Contracts(Vec<Contract>);

fn line_of(text: &str, offset: usize) -> u32 {
    let before = text.get(..offset.min(text.len())).unwrap_or_default();
    u32::try_from(before.bytes().filter(|b| *b == b'\n').count() + 1).unwrap_or(u32::MAX)
}

fn rfc3339(field: &str, value: &str) -> Result<i64, String> {
    let at = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("`{field}` = \"{value}\" is not an RFC 3339 time (e.g. \"2026-12-24T12:00:00Z\"): {e}"))?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).map_err(|_| format!("`{field}` is out of range"))
}

/// `"90s"`, `"15m"`, `"24h"`, `"7d"`, `"500ms"` in milliseconds.
fn period(field: &str, value: &str) -> Result<i64, String> {
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = value.split_at(digits);
    let scale = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 0,
    };
    let n: i64 = number.parse().unwrap_or(0);
    match n.checked_mul(scale) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(format!("`{field}` = \"{value}\" is not a period such as \"90s\", \"15m\", \"24h\" or \"7d\"")),
    }
}

impl Contracts {
    /// Parse and check a configuration; an empty text has no contracts.
    pub fn parse(text: &str) -> Result<Contracts, Error> {
        let file: File = toml::from_str(text)
            .map_err(|e| Error { line: e.span().map(|s| line_of(text, s.start)), message: e.message().to_string() })?;
        if file.contract.len() > MAX_CONTRACTS {
            return Err(Error { line: None, message: format!("at most {MAX_CONTRACTS} contracts are allowed") });
        }
        let mut contracts = Vec::with_capacity(file.contract.len());
        for spanned in file.contract {
            let line = Some(line_of(text, spanned.span().start));
            let spec = spanned.into_inner();
            let fail = |message: String| Error { line, message: format!("contract `{}`: {message}", spec.id) };
            let contract = Contract::check(&spec).map_err(fail)?;
            if contracts.iter().any(|c: &Contract| c.id == contract.id) {
                return Err(Error { line, message: format!("contract id `{}` is used twice", contract.id) });
            }
            contracts.push(contract);
        }
        Ok(Contracts(contracts))
    }

    /// The ids of the contracts whose patterns cover `key`, in order.
    pub fn covering(&self, key: &str) -> Vec<String> {
        self.covering_indices(key).iter().map(|&i| self.0[usize::from(i)].id.clone()).collect()
    }

    /// The positions of the contracts whose patterns cover `key`, in file
    /// order. They depend on the key alone, so a gate may keep them per key.
    pub fn covering_indices(&self, key: &str) -> Box<[u16]> {
        // MAX_CONTRACTS fits a u16.
        (0u16..).zip(&self.0).filter(|(_, c)| c.covers(key)).map(|(i, _)| i).collect()
    }

    /// The positions of the contracts that apply to `key` for `subject`
    /// whenever they are in force: their patterns cover the key and their
    /// conditions on the caller and the node hold. They depend on nothing
    /// else, so a gate may keep them per key and subject.
    pub fn applying(&self, key: &str, subject: &Subject<'_>) -> Box<[u16]> {
        (0u16..).zip(&self.0).filter(|(_, c)| c.covers(key) && c.holds(subject)).map(|(i, _)| i).collect()
    }

    /// The contract at `index` (from [`Contracts::applying`]).
    pub fn get(&self, index: u16) -> Option<&Contract> {
        self.0.get(usize::from(index))
    }
}

impl Contract {
    /// Does one of its patterns match `key`?
    fn covers(&self, key: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(key))
    }
}

impl Contract {
    fn check(spec: &Spec) -> Result<Contract, String> {
        let valid_id = !spec.id.is_empty()
            && spec.id.len() <= 64
            && spec.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if !valid_id {
            return Err("`id` must be 1-64 characters of a-z, 0-9, `-`, `_` and `.`".into());
        }
        let effect = match (&spec.budget, spec.deny) {
            (Some(_), true) => {
                return Err("a contract either denies (`deny = true`) or has a `budget`, not both".into());
            }
            (None, false) => {
                return Err("a contract does nothing without `deny = true` or a `budget = { ... }`".into());
            }
            (None, true) => Effect::Deny,
            (Some(b), false) => {
                let kind = match b.kind.as_str() {
                    "fixed" => false,
                    "sliding" => true,
                    other => return Err(format!("budget `kind` = \"{other}\": write \"fixed\" or \"sliding\"")),
                };
                let per = match b.per.as_str() {
                    "caller" => Per::Caller,
                    "key" => Per::Key,
                    "caller-and-key" => Per::CallerAndKey,
                    other => {
                        return Err(format!(
                            "budget `per` = \"{other}\": write \"caller\", \"key\" or \"caller-and-key\""
                        ));
                    }
                };
                let window_ms = period("budget window", &b.window)?;
                Effect::Budget(Budget { limit: b.limit, window_ms: window_ms as u64, sliding: kind, per })
            }
        };
        if spec.patterns.is_empty() {
            return Err("`patterns` is empty: name the gating keys it covers (`*` for all)".into());
        }
        let lists = [
            ("patterns", &spec.patterns),
            ("caller-roles", &spec.caller_roles),
            ("caller-names", &spec.caller_names),
            ("caller-tags", &spec.caller_tags),
            ("node-ids", &spec.node_ids),
            ("node-roles", &spec.node_roles),
            ("node-tags", &spec.node_tags),
        ];
        for (name, list) in lists {
            if list.len() > MAX_LIST {
                return Err(format!("`{name}` has {} entries; at most {MAX_LIST} are allowed", list.len()));
            }
        }
        let patterns = spec.patterns.iter().map(|p| Pattern::parse(p)).collect::<Result<Vec<_>, _>>()?;
        let from_ms = spec.valid_from.as_deref().map(|v| rfc3339("valid-from", v)).transpose()?;
        let to_ms = spec.valid_to.as_deref().map(|v| rfc3339("valid-to", v)).transpose()?;
        if let (Some(from), Some(to)) = (from_ms, to_ms)
            && to <= from
        {
            return Err("`valid-to` must be after `valid-from`".into());
        }
        let renew = match &spec.auto_renew {
            None => {
                if spec.renew_until.is_some() || spec.max_renewals.is_some() {
                    return Err("`renew-until` and `max-renewals` need `auto-renew`".into());
                }
                None
            }
            Some(text) => {
                if to_ms.is_none() {
                    return Err("`auto-renew` needs `valid-to`: the end it moves on".into());
                }
                Some(Renewal {
                    period_ms: period("auto-renew", text)?,
                    until_ms: spec.renew_until.as_deref().map(|v| rfc3339("renew-until", v)).transpose()?,
                    max: spec.max_renewals,
                })
            }
        };
        let default_code = if matches!(effect, Effect::Budget(_)) { "budget-exhausted" } else { "denied" };
        let code = spec.code.clone().unwrap_or_else(|| default_code.into());
        let valid_code = !code.is_empty()
            && code.len() <= 64
            && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if !valid_code {
            return Err("`code` must be 1-64 characters of a-z, 0-9, `-`, `_` and `.`".into());
        }
        let reason = match &effect {
            Effect::Deny => format!("denied by contract `{}`", spec.id),
            Effect::Budget(b) => format!(
                "over the budget of contract `{}` ({} per {})",
                spec.id,
                b.limit,
                spec.budget.as_ref().map_or("", |s| s.window.as_str())
            ),
        };
        Ok(Contract {
            id: spec.id.clone(),
            reason: spec.reason.clone().unwrap_or(reason),
            effect,
            code,
            patterns,
            caller_roles: spec.caller_roles.clone(),
            caller_names: spec.caller_names.clone(),
            caller_tags: spec.caller_tags.clone(),
            node_ids: spec.node_ids.clone(),
            node_roles: spec.node_roles.clone(),
            node_tags: spec.node_tags.clone(),
            from_ms,
            to_ms,
            renew,
        })
    }

    /// Is the contract in force at `now`? Never before `valid-from`; until
    /// `valid-to`, moved on by whole periods while it renews.
    pub fn in_force(&self, now: i64) -> bool {
        if self.from_ms.is_some_and(|from| now < from) {
            return false;
        }
        let Some(to) = self.to_ms else { return true };
        if now < to {
            return true;
        }
        let Some(renew) = &self.renew else { return false };
        // The end after k renewals is `to + k * period`; it renews while
        // in force, so at `now` it has renewed as often as needed to pass
        // `now`, unless a bound stops it first.
        let needed = (now - to) / renew.period_ms + 1;
        if renew.max.is_some_and(|max| needed > i64::from(max)) {
            return false;
        }
        // A renewal happens at the end it extends; none at or after
        // `renew-until`.
        let last_renewal_at = to + (needed - 1) * renew.period_ms;
        renew.until_ms.is_none_or(|until| last_renewal_at < until)
    }

    /// The first time after `now` at which [`Contract::in_force`] may
    /// differ from what it is at `now` (`i64::MAX`: never): its start, its
    /// end, or, while it renews, the end it has been moved on to (where
    /// it renews again or stops). A contract that stopped renewing is
    /// never in force again.
    pub fn next_change(&self, now: i64) -> i64 {
        if let Some(from) = self.from_ms
            && now < from
        {
            return from;
        }
        let Some(to) = self.to_ms else { return i64::MAX };
        if now < to {
            return to;
        }
        match &self.renew {
            Some(renew) if self.in_force(now) => {
                let renewals = (now - to) / renew.period_ms + 1;
                to.saturating_add(renewals.saturating_mul(renew.period_ms))
            }
            _ => i64::MAX,
        }
    }

    /// Do its conditions on the caller and the node hold for `s`? (Its
    /// patterns are matched per key, its time by [`Contract::in_force`].)
    fn holds(&self, s: &Subject<'_>) -> bool {
        let any_of = |wanted: &[String], have: &[String]| wanted.is_empty() || wanted.iter().any(|w| have.contains(w));
        let one_of = |wanted: &[String], have: &str| wanted.is_empty() || wanted.iter().any(|w| w == have);
        one_of(&self.caller_names, s.caller_name)
            && any_of(&self.caller_roles, s.caller_roles)
            && any_of(&self.caller_tags, s.caller_tags)
            && one_of(&self.node_ids, s.node_id)
            && one_of(&self.node_roles, s.node_role)
            && any_of(&self.node_tags, s.node_tags)
    }
}

/// The quota key of `budget` of contract `id` for a request: the
/// contract, then whose count it is. Long ones are shortened to a hash so
/// they fit the host's key limit.
pub fn bucket_key(id: &str, budget: &Budget, caller: &str, key: &str) -> String {
    let full = match budget.per {
        Per::Caller => format!("{id}|c={caller}"),
        Per::Key => format!("{id}|k={key}"),
        Per::CallerAndKey => format!("{id}|c={caller}|k={key}"),
    };
    if full.len() <= 256 {
        return full;
    }
    // FNV-1a 64: stable across builds, so counts survive an upgrade.
    let hash = full.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{id}|#{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn contract(extra: &str) -> Contract {
        let text = format!("[[contract]]\nid = \"c\"\npatterns = [\"*\"]\ndeny = true\n{extra}\n");
        let parsed = Contracts::parse(&text).unwrap_or_else(|e| panic!("{extra}: {}", e.message));
        parsed.0.into_iter().next().expect("one contract")
    }

    /// Whatever `next_change` says, `in_force` holds still until then, and
    /// it names a real change (or the end of a renewal) when it is not
    /// `i64::MAX`. Checked on a grid around every boundary of windows,
    /// renewals and their bounds.
    #[test]
    fn in_force_holds_still_until_the_next_change() {
        let from = "valid-from = \"2026-12-24T12:00:00Z\"";
        let to = "valid-to = \"2026-12-24T13:00:00Z\"";
        let cases = [
            String::new(),
            from.to_string(),
            to.to_string(),
            format!("{from}\n{to}"),
            format!("{from}\n{to}\nauto-renew = \"30m\""),
            format!("{from}\n{to}\nauto-renew = \"30m\"\nrenew-until = \"2026-12-24T14:00:00Z\""),
            format!("{from}\n{to}\nauto-renew = \"1h\"\nmax-renewals = 2"),
            format!("{to}\nauto-renew = \"7m\"\nmax-renewals = 5\nrenew-until = \"2026-12-24T13:20:00Z\""),
        ];
        let noon = rfc3339("t", "2026-12-24T12:00:00Z").expect("a time");
        for case in &cases {
            let c = contract(case);
            let mut now = noon - 2 * HOUR;
            while now < noon + 6 * HOUR {
                let next = c.next_change(now);
                assert!(next > now, "{case}: next change {next} at {now}");
                let here = c.in_force(now);
                // Every minute until the change, and its last millisecond.
                let end = next.min(noon + 8 * HOUR);
                let mut t = now;
                while t < end {
                    assert_eq!(c.in_force(t), here, "{case}: at {t} (from {now}, next change {next})");
                    t += 60_000;
                }
                assert_eq!(c.in_force(end - 1), here, "{case}: just before {end}");
                now += 97_000;
            }
        }
    }

    #[test]
    fn a_stopped_renewal_never_changes_again() {
        let c = contract(
            "valid-from = \"2026-12-24T12:00:00Z\"\nvalid-to = \"2026-12-24T13:00:00Z\"\nauto-renew = \"1h\"\nmax-renewals = 2",
        );
        let three = rfc3339("t", "2026-12-24T15:00:00Z").expect("a time");
        assert!(c.in_force(three - 1));
        assert_eq!(c.next_change(three - 1), three);
        assert!(!c.in_force(three));
        assert_eq!(c.next_change(three), i64::MAX);
    }
}
