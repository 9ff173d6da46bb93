//! `arw:host/bus` for guests.

use std::sync::Arc;

use super::{Bus, BusError, Event, Payload};
use crate::authz::Grants;
use crate::bindings::CapabilityError;
use crate::bindings::imports::arw::host::{bus as wit, types};
use crate::capabilities::ComponentCapabilities;

impl Event {
    /// This event as `arw:host/bus` gives it to a guest (a subscriber's
    /// delivery, a resident's mailbox).
    pub(crate) fn to_wit(&self) -> wit::Event {
        wit::Event {
            id: self.id,
            topic: self.topic.clone(),
            payload: match &self.payload {
                Payload::Json(text) => wit::Payload::Json(text.clone()),
                Payload::Bytes(bytes) => wit::Payload::Bytes(bytes.clone()),
            },
            source: self.source.to_string(),
            time_ms: self.time_ms,
        }
    }
}

/// The bus as one instance of one component sees it.
#[derive(Debug)]
pub struct BusInstance {
    bus: Arc<Bus>,
    component: Arc<str>,
    grants: Arc<Grants>,
    /// The components the entry came through (what gates see).
    chain: crate::runtime::entry::Chain,
}

impl BusInstance {
    pub fn new(bus: Arc<Bus>, component: &ComponentCapabilities, chain: crate::runtime::entry::Chain) -> Self {
        BusInstance { bus, component: component.component.clone(), grants: component.grants.clone(), chain }
    }

    /// The chain of a new entry into a kept instance.
    pub(crate) fn set_chain(&mut self, chain: crate::runtime::entry::Chain) {
        self.chain = chain;
    }
}

impl From<BusError> for CapabilityError {
    fn from(e: BusError) -> Self {
        match e {
            BusError::TooLarge { .. } => CapabilityError::TooLarge(e.to_string()),
            BusError::InvalidTopic { .. } | BusError::InvalidJson(_) => CapabilityError::Invalid(e.to_string()),
            BusError::Reserved { .. } => CapabilityError::Denied(e.to_string()),
        }
    }
}

impl types::Host for BusInstance {}

impl wit::Host for BusInstance {
    async fn publish(&mut self, topic: String, payload: wit::Payload) -> Result<u64, CapabilityError> {
        // Validate first so a malformed topic is `invalid`, not a denial;
        // a reserved one is denied before Cedar is asked.
        super::validate_topic(&topic)?;
        if let Some(prefix) = super::reserved_prefix(&topic) {
            return Err(BusError::Reserved { topic, prefix }.into());
        }
        let size = match &payload {
            wit::Payload::Json(text) => text.len(),
            wit::Payload::Bytes(bytes) => bytes.len(),
        };
        let target = crate::gating::GateTarget { topic: Some(topic.clone()), ..Default::default() };
        let family = &crate::gating::keys::BUS_EGRESS;
        self.grants
            .gate(family, &topic, target, size, &self.chain)
            .await
            .map_err(|d| CapabilityError::Denied(d.to_string()))?;
        self.grants.check(crate::capabilities::bus::PUBLISH, &topic).await?;
        let payload = match payload {
            wit::Payload::Json(text) => Payload::Json(text),
            wit::Payload::Bytes(bytes) => Payload::Bytes(bytes),
        };
        Ok(self.bus.publish(&self.component, &topic, payload)?)
    }
}

/// `arw:host/bus@0.1.0`: the same function (its types are 0.2.0's).
impl crate::bindings::v0_1::tool::arw::host::bus::Host for BusInstance {
    async fn publish(
        &mut self,
        topic: String,
        payload: crate::bindings::v0_1::tool::arw::host::bus::Payload,
    ) -> Result<u64, CapabilityError> {
        use crate::bindings::v0_1::tool::arw::host::bus::Payload as V1;
        let payload = match payload {
            V1::Json(text) => wit::Payload::Json(text),
            V1::Bytes(bytes) => wit::Payload::Bytes(bytes),
        };
        wit::Host::publish(self, topic, payload).await
    }
}
