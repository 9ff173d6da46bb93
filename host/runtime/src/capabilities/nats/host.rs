//! `arw:host/nats` for guests.

use std::sync::Arc;
use std::time::Duration;

use super::Nats;
use crate::authz::Grants;
use crate::bindings::CapabilityError;
use crate::bindings::imports::arw::host::nats as wit;
use crate::capabilities::ComponentCapabilities;

/// NATS as one instance of one component sees it.
#[derive(Debug)]
pub struct NatsInstance {
    pub(super) nats: Arc<Nats>,
    pub(super) grants: Arc<Grants>,
    /// The components the entry came through (what gates see).
    chain: crate::runtime::entry::Chain,
}

impl NatsInstance {
    pub fn new(nats: Arc<Nats>, component: &ComponentCapabilities, chain: crate::runtime::entry::Chain) -> Self {
        NatsInstance { nats, grants: component.grants.clone(), chain }
    }

    /// The chain of a new entry into a kept instance.
    pub(crate) fn set_chain(&mut self, chain: crate::runtime::entry::Chain) {
        self.chain = chain;
    }

    /// Everything a message must pass before it leaves: a well-formed,
    /// unreserved subject (else `invalid`, or `denied` for a reserved
    /// one), then [`NatsInstance::admit_message`], then Cedar `action` on
    /// the subject.
    async fn admit(
        &self,
        action: arw_policy::Action,
        subject: &str,
        payload: &[u8],
        headers: &[wit::Header],
    ) -> Result<async_nats::HeaderMap, CapabilityError> {
        if let Err(why) = super::subject::validate(subject) {
            return Err(match super::subject::reserved(subject) {
                Some(_) => CapabilityError::Denied(why),
                None => CapabilityError::Invalid(why),
            });
        }
        let map = self.admit_message(subject, payload, headers).await?;
        self.grants.check(action, subject).await?;
        Ok(map)
    }

    /// The size cap, the headers, the gates (`io:egress:nats.<subject>`):
    /// what every message a component sends passes, core or JetStream.
    pub(super) async fn admit_message(
        &self,
        subject: &str,
        payload: &[u8],
        headers: &[wit::Header],
    ) -> Result<async_nats::HeaderMap, CapabilityError> {
        let size = payload.len() + headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>();
        let max = self.nats.config().max_payload_bytes;
        if size > max {
            return Err(CapabilityError::TooLarge(format!(
                "{size} bytes of payload and headers, over cluster.max-payload-bytes ({max})"
            )));
        }
        let mut map = async_nats::HeaderMap::new();
        for (name, value) in headers {
            let valid_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
            if !valid_name || value.bytes().any(|b| b == b'\r' || b == b'\n') {
                return Err(CapabilityError::Invalid(format!(
                    "header {name:?}: a name of printable ASCII without `:`, a value without line breaks"
                )));
            }
            map.append(name.as_str(), value.as_str());
        }
        let target = crate::gating::GateTarget { topic: Some(subject.to_string()), ..Default::default() };
        self.grants
            .gate(&crate::gating::keys::NATS_EGRESS, subject, target, size, &self.chain)
            .await
            .map_err(|d| CapabilityError::Denied(d.to_string()))?;
        Ok(map)
    }

    async fn client(&self) -> Result<&async_nats::Client, CapabilityError> {
        self.nats.client().await.map_err(CapabilityError::Unavailable)
    }
}

impl wit::Host for NatsInstance {
    async fn publish(
        &mut self,
        subject: String,
        payload: Vec<u8>,
        headers: Vec<wit::Header>,
    ) -> Result<(), CapabilityError> {
        let map = self.admit(super::PUBLISH, &subject, &payload, &headers).await?;
        let client = self.client().await?;
        client
            .publish_with_headers(subject, map, payload.into())
            .await
            .map_err(|e| CapabilityError::Unavailable(format!("publish: {e}")))
    }

    async fn request(
        &mut self,
        subject: String,
        payload: Vec<u8>,
        headers: Vec<wit::Header>,
        timeout_ms: u32,
    ) -> Result<Vec<u8>, CapabilityError> {
        let map = self.admit(super::REQUEST, &subject, &payload, &headers).await?;
        let client = self.client().await?;
        let limit = Duration::from_millis(u64::from(timeout_ms).min(self.nats.config().max_request_timeout_ms));
        let request = async_nats::Request::new().payload(payload.into()).headers(map).timeout(Some(limit));
        match client.send_request(subject.clone(), request).await {
            Ok(reply) => Ok(reply.payload.to_vec()),
            Err(e) => Err(CapabilityError::Unavailable(match e.kind() {
                async_nats::RequestErrorKind::NoResponders => format!("no responder on {subject}"),
                async_nats::RequestErrorKind::TimedOut => {
                    format!("no reply on {subject} within {} ms", limit.as_millis())
                }
                _ => format!("request on {subject}: {e}"),
            })),
        }
    }
}
