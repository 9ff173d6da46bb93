//! `arw:host/kv` for guests.

use std::sync::Arc;

use arw_policy::Action;

use super::{KvError, KvStore};
use crate::authz::Grants;
use crate::bindings::CapabilityError;
use crate::bindings::imports::arw::host::kv as wit;
use crate::capabilities::ComponentCapabilities;

/// The kv store as one instance of one component sees it.
#[derive(Debug)]
pub struct KvInstance {
    store: Arc<KvStore>,
    grants: Arc<Grants>,
}

impl KvInstance {
    pub fn new(store: Arc<KvStore>, component: &ComponentCapabilities) -> Self {
        KvInstance { store, grants: component.grants.clone() }
    }

    /// Validate, then authorize: malformed input is `invalid` even where the
    /// namespace is not granted.
    async fn admit(&self, action: Action, namespace: &str, key: &str) -> Result<(), CapabilityError> {
        self.store.check_args(namespace, key)?;
        self.grants.check(action, namespace).await?;
        Ok(())
    }

    /// Run a write off the async executor: a commit waits for fsync.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&KvStore) -> Result<T, KvError> + Send + 'static,
    ) -> Result<T, CapabilityError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| CapabilityError::Unavailable(format!("kv worker failed: {e}")))?
            .map_err(Into::into)
    }
}

impl From<KvError> for CapabilityError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Invalid(_) => CapabilityError::Invalid(e.to_string()),
            KvError::TooLarge { .. } => CapabilityError::TooLarge(e.to_string()),
            KvError::Open { .. } | KvError::Storage(_) => CapabilityError::Unavailable(e.to_string()),
        }
    }
}

impl wit::Host for KvInstance {
    async fn get(&mut self, namespace: String, key: String) -> Result<Option<Vec<u8>>, CapabilityError> {
        self.admit(crate::capabilities::kv::READ, &namespace, &key).await?;
        Ok(self.store.get(&namespace, &key)?)
    }

    async fn set(&mut self, namespace: String, key: String, value: Vec<u8>) -> Result<(), CapabilityError> {
        self.admit(crate::capabilities::kv::WRITE, &namespace, &key).await?;
        self.blocking(move |s| s.set(&namespace, &key, &value)).await
    }

    async fn delete(&mut self, namespace: String, key: String) -> Result<bool, CapabilityError> {
        self.admit(crate::capabilities::kv::WRITE, &namespace, &key).await?;
        self.blocking(move |s| s.delete(&namespace, &key)).await
    }

    async fn list_keys(
        &mut self,
        namespace: String,
        prefix: String,
        limit: u32,
    ) -> Result<Vec<String>, CapabilityError> {
        self.admit(crate::capabilities::kv::READ, &namespace, &prefix).await?;
        Ok(self.store.list_keys(&namespace, &prefix, limit)?)
    }
}

/// `arw:host/kv@0.1.0`: the same functions.
impl crate::bindings::v0_1::tool::arw::host::kv::Host for KvInstance {
    async fn get(&mut self, namespace: String, key: String) -> Result<Option<Vec<u8>>, CapabilityError> {
        wit::Host::get(self, namespace, key).await
    }

    async fn set(&mut self, namespace: String, key: String, value: Vec<u8>) -> Result<(), CapabilityError> {
        wit::Host::set(self, namespace, key, value).await
    }

    async fn delete(&mut self, namespace: String, key: String) -> Result<bool, CapabilityError> {
        wit::Host::delete(self, namespace, key).await
    }

    async fn list_keys(
        &mut self,
        namespace: String,
        prefix: String,
        limit: u32,
    ) -> Result<Vec<String>, CapabilityError> {
        wit::Host::list_keys(self, namespace, prefix, limit).await
    }
}
