//! `arw:host/config` for guests.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::authz::Grants;
use crate::bindings::CapabilityError;
use crate::bindings::imports::arw::host::config as wit;
use crate::capabilities::ComponentCapabilities;

#[derive(Debug)]
pub struct ConfigInstance {
    values: Arc<BTreeMap<String, String>>,
    grants: Arc<Grants>,
}

impl ConfigInstance {
    pub fn new(component: &ComponentCapabilities) -> Self {
        ConfigInstance { values: component.config.clone(), grants: component.grants.clone() }
    }
}

impl wit::Host for ConfigInstance {
    async fn get(&mut self, key: String) -> Result<Option<String>, CapabilityError> {
        self.grants.check(crate::capabilities::config::READ, &key).await?;
        Ok(self.values.get(&key).cloned())
    }
}

/// `arw:host/config@0.1.0`: the same function.
impl crate::bindings::v0_1::tool::arw::host::config::Host for ConfigInstance {
    async fn get(&mut self, key: String) -> Result<Option<String>, CapabilityError> {
        wit::Host::get(self, key).await
    }
}
