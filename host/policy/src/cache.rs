//! Per-principal decision cache, invalidated by a generation number.
//!
//! Each principal (a loaded component, a caller) owns one cache, so a
//! lookup is one read lock and one hash of the resource name. The
//! [`crate::Authorizer`] bumps its generation whenever policies change; an
//! entry from an older generation is never returned.
//!
//! The key is the whole [`Resource`] Cedar is shown, not just its name: a
//! decision about the tool `text-stats` provided by `arw:text-stats` is
//! never returned for a `text-stats` provided by another component. The
//! principal's own attributes are fixed for the life of its handle, and
//! requests whose policies read per-request context are never cached (see
//! `context.rs`), so (action, resource) is every input a cached decision
//! reads.

use std::collections::HashMap;

use parking_lot::RwLock;

use crate::authorizer::Decision;
use crate::model::Resource;

/// Entries per action before the cache is cleared; bounds memory when a
/// guest asks about many distinct resources (e.g. generated topic names).
const MAX_ENTRIES_PER_ACTION: usize = 4096;

#[derive(Debug)]
pub(crate) struct DecisionCache {
    inner: RwLock<Inner>,
}

/// The decisions of one action: for resources known by name alone (every
/// capability a component uses: one lookup), and for tools, per providing
/// component (a tool name is shared by its providers over time).
#[derive(Debug, Default)]
struct ByAction {
    named: HashMap<Box<str>, Decision>,
    provided: HashMap<Box<str>, HashMap<Box<str>, Decision>>,
}

impl ByAction {
    fn len(&self) -> usize {
        self.named.len() + self.provided.values().map(HashMap::len).sum::<usize>()
    }

    fn clear(&mut self) {
        self.named.clear();
        self.provided.clear();
    }
}

#[derive(Debug)]
struct Inner {
    generation: u64,
    /// By the action's index in the authorizer's vocabulary.
    by_action: Vec<ByAction>,
}

impl DecisionCache {
    /// A cache for `actions` actions (the vocabulary's size).
    pub(crate) fn new(generation: u64, actions: usize) -> Self {
        let by_action = (0..actions).map(|_| ByAction::default()).collect();
        DecisionCache { inner: RwLock::new(Inner { generation, by_action }) }
    }

    pub(crate) fn get(&self, generation: u64, action: usize, resource: Resource<'_>) -> Option<Decision> {
        let inner = self.inner.read();
        if inner.generation != generation {
            return None;
        }
        let by_action = inner.by_action.get(action)?;
        match resource.component {
            None => by_action.named.get(resource.name).cloned(),
            Some(component) => by_action.provided.get(resource.name)?.get(component).cloned(),
        }
    }

    pub(crate) fn put(&self, generation: u64, action: usize, resource: Resource<'_>, decision: Decision) {
        let mut inner = self.inner.write();
        if inner.generation != generation {
            if inner.generation > generation {
                // Computed under policies that are already gone: drop it.
                return;
            }
            inner.generation = generation;
            inner.by_action.iter_mut().for_each(ByAction::clear);
        }
        let Some(by_action) = inner.by_action.get_mut(action) else { return };
        if by_action.len() >= MAX_ENTRIES_PER_ACTION {
            by_action.clear();
        }
        match resource.component {
            None => {
                by_action.named.insert(resource.name.into(), decision);
            }
            Some(component) => {
                by_action.provided.entry(resource.name.into()).or_default().insert(component.into(), decision);
            }
        }
    }

    /// Cached decisions (for tests of the bound).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.read().by_action.iter().map(ByAction::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_covers_the_providing_component() {
        const TOOL_INVOKE: usize = 0;
        let cache = DecisionCache::new(1, 1);
        let allow = Decision::allow("p");
        let tool = |component| Resource { name: "text-stats", component: Some(component) };
        cache.put(1, TOOL_INVOKE, tool("arw:text-stats"), allow.clone());
        assert_eq!(cache.get(1, TOOL_INVOKE, tool("arw:text-stats")), Some(allow));
        assert_eq!(cache.get(1, TOOL_INVOKE, tool("evil:text-stats")), None);
        assert_eq!(cache.get(1, TOOL_INVOKE, Resource::named("text-stats")), None);
        assert_eq!(cache.get(2, TOOL_INVOKE, tool("arw:text-stats")), None, "newer generation");
    }

    #[test]
    fn bounded_per_action() {
        let cache = DecisionCache::new(1, 1);
        for i in 0..(MAX_ENTRIES_PER_ACTION * 2) {
            cache.put(1, 0, Resource::named(&format!("t{i}")), Decision::allow("p"));
        }
        assert!(cache.len() <= MAX_ENTRIES_PER_ACTION, "{}", cache.len());
    }
}
