//! `arw:host/quota` for guests.

use std::sync::Arc;

use super::store::{Consumed, QuotaError, QuotaStore, Window, WindowKind};
use crate::authz::Grants;
use crate::bindings::CapabilityError;
use crate::bindings::imports::arw::host::quota as wit;
use crate::capabilities::ComponentCapabilities;

/// The quota store as one instance of one component sees it.
#[derive(Debug)]
pub struct QuotaInstance {
    store: Arc<QuotaStore>,
    grants: Arc<Grants>,
}

impl QuotaInstance {
    pub fn new(store: Arc<QuotaStore>, component: &ComponentCapabilities) -> Self {
        QuotaInstance { store, grants: component.grants.clone() }
    }
}

impl From<QuotaError> for CapabilityError {
    fn from(e: QuotaError) -> Self {
        match e {
            QuotaError::Invalid(_) => CapabilityError::Invalid(e.to_string()),
            QuotaError::Open { .. } | QuotaError::Full(_) | QuotaError::Storage(_) => {
                CapabilityError::Unavailable(e.to_string())
            }
        }
    }
}

impl wit::Host for QuotaInstance {
    async fn consume(
        &mut self,
        namespace: String,
        key: String,
        cost: u64,
        window: wit::Window,
        now_ms: i64,
    ) -> Result<wit::Consumed, CapabilityError> {
        let window = Window {
            limit: window.limit,
            window_ms: window.window_ms,
            kind: match window.kind {
                wit::WindowKind::Fixed => WindowKind::Fixed,
                wit::WindowKind::Sliding => WindowKind::Sliding,
            },
        };
        // Malformed input is `invalid` even where the namespace is not granted.
        QuotaStore::check_args(&namespace, &key, &window)?;
        self.grants.check(super::CONSUME, &namespace).await?;
        let consumed = if self.store.writes_through() {
            // Each consume is committed (a disk sync): off the executor.
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || store.consume(&namespace, &key, cost, window, now_ms))
                .await
                .map_err(|e| CapabilityError::Unavailable(format!("quota worker failed: {e}")))??
        } else {
            self.store.consume(&namespace, &key, cost, window, now_ms)?
        };
        Ok(match consumed {
            Consumed::Granted { remaining } => wit::Consumed::Granted(remaining),
            Consumed::Refused { retry_after_ms } => wit::Consumed::Refused(retry_after_ms),
        })
    }
}
