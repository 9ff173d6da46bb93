//! One entry into a guest — a tool call, an event delivery, a health
//! check — under one deadline, from the first wait for a slot to the
//! guest's return.
//!
//! Three things enforce it: waits for a concurrency slot or a pool slot
//! end at the deadline; the store's epoch callback traps guest code at the
//! deadline; and the whole entry is abandoned a little after the deadline
//! even when the guest waits in the host (on an HTTP response that
//! trickles in, say), which drops its store.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::Runtime;
use super::component::LoadedComponent;
use super::store::InstanceState;

/// How long after its deadline an entry that is waiting in the host (not
/// running guest code, where the epoch deadline applies) is abandoned.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

/// How long before its caller's deadline a component's call of another's
/// tool must end: the callee's entry may be abandoned up to
/// [`DEADLINE_MARGIN`] past its own deadline, and the caller needs time to
/// act on the answer (a failure, say) before its own.
pub const CALLER_RESERVE: Duration = Duration::from_millis(100);

/// The components a call came through before the one it enters,
/// outermost first (Cedar's `context.chain`).
pub(crate) type Chain = std::sync::Arc<[std::sync::Arc<str>]>;

/// The deadline of one entry into `component`, and the chain of
/// components that called it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) deadline: Instant,
    pub(crate) chain: Chain,
}

impl Entry {
    /// An entry starting now, with the component's `limits.timeout-ms`.
    pub(crate) fn start(component: &LoadedComponent) -> Self {
        Entry { deadline: Instant::now() + component.timeout(), chain: Chain::default() }
    }

    /// An entry made by another component's call (through `chain`): its
    /// own deadline or [`CALLER_RESERVE`] before the caller's, whichever
    /// comes first.
    pub(crate) fn nested(component: &LoadedComponent, caller_deadline: Instant, chain: Chain) -> Self {
        let cap = caller_deadline.checked_sub(CALLER_RESERVE).unwrap_or(caller_deadline);
        Entry { deadline: (Instant::now() + component.timeout()).min(cap), chain }
    }

    /// Wait for `future` (a slot), at most until the deadline.
    pub(crate) async fn wait<T>(&self, future: impl Future<Output = T>) -> Option<T> {
        tokio::time::timeout_at(self.deadline, future).await.ok()
    }

    /// A fresh store for this entry whose epoch deadline is this entry's.
    pub(crate) fn store(&self, runtime: &Runtime, component: &LoadedComponent) -> wasmtime::Store<InstanceState> {
        component.store(runtime, self.deadline.into_std(), self.chain.clone())
    }

    /// Run the guest part of the entry; `None` if it was still waiting in
    /// the host past the deadline (plus [`DEADLINE_MARGIN`]).
    pub(crate) async fn run<T>(&self, future: impl Future<Output = T>) -> Option<T> {
        tokio::time::timeout_at(self.deadline + DEADLINE_MARGIN, future).await.ok()
    }
}
