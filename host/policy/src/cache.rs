//! Per-principal decision cache, invalidated by a generation number.
//!
//! Each principal (a loaded component, a caller) owns one cache, so a
//! lookup is one read lock and one hash of the resource name. The
//! [`crate::Authorizer`] bumps its generation whenever policies change; an
//! entry from an older generation is never returned.

use std::collections::HashMap;

use parking_lot::RwLock;

use crate::Action;
use crate::authorizer::Decision;

/// Entries per action before the cache is cleared; bounds memory when a
/// guest asks about many distinct resources (e.g. generated topic names).
const MAX_ENTRIES_PER_ACTION: usize = 4096;

#[derive(Debug)]
pub(crate) struct DecisionCache {
    inner: RwLock<Inner>,
}

#[derive(Debug)]
struct Inner {
    generation: u64,
    by_action: [HashMap<Box<str>, Decision>; Action::ALL.len()],
}

impl DecisionCache {
    pub(crate) fn new(generation: u64) -> Self {
        DecisionCache { inner: RwLock::new(Inner { generation, by_action: Default::default() }) }
    }

    pub(crate) fn get(&self, generation: u64, action: Action, resource: &str) -> Option<Decision> {
        let inner = self.inner.read();
        if inner.generation != generation {
            return None;
        }
        inner.by_action.get(action.index())?.get(resource).cloned()
    }

    pub(crate) fn put(&self, generation: u64, action: Action, resource: &str, decision: Decision) {
        let mut inner = self.inner.write();
        if inner.generation != generation {
            if inner.generation > generation {
                // Computed under policies that are already gone: drop it.
                return;
            }
            inner.generation = generation;
            inner.by_action.iter_mut().for_each(HashMap::clear);
        }
        if let Some(map) = inner.by_action.get_mut(action.index()) {
            if map.len() >= MAX_ENTRIES_PER_ACTION {
                map.clear();
            }
            map.insert(resource.into(), decision);
        }
    }
}
