//! Outgoing HTTP: `wasi:http/outgoing-handler` and `wasi:http/types`, as
//! provided by `wasmtime-wasi-http`, with ARW's rules on every request:
//!
//! - Cedar decides `http.request` on the target authority `host:port`
//!   (the manifest must request it too): deny by default, and a refusal is
//!   audited like every other;
//! - connect, first-byte and between-bytes timeouts are capped at
//!   `outgoing-http.timeout-ms` (a guest may ask for less, not more);
//! - a response body over `outgoing-http.max-response-bytes` fails: the
//!   guest's body stream reports an error saying so (wasmtime-wasi-http
//!   passes it as a stream error, not as the `HTTP-response-body-size`
//!   code);
//! - the component's deadline covers the wait: a call blocked on a slow
//!   response ends at `limits.timeout-ms` like any other;
//! - the host resolves the name itself and connects to the address it
//!   checked: loopback, private, link-local and other special addresses are
//!   reachable only through a grant that names the address literally, so a
//!   wildcard grant or a name that resolves there (DNS rebinding) cannot
//!   reach the host's own ports or its local network ([`address`]).
//!
//! A refused request fails with the `HTTP-request-denied` error code; the
//! reason is in the host log and the `audit.denied` event.

use arw_policy::Action;

use crate::capabilities::unit::Request;

pub mod address;
mod host;
mod send;

pub use host::HttpInstance;

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A component sending an HTTP request, per target authority `host:port`
/// (`Arw::HttpAuthority`).
pub const REQUEST: Action = Action::new("http.request");

/// A request's resource is a lower-case `host:port` pattern, as
/// [`address::authority`] writes the target.
fn check_authority_pattern(_: &crate::manifest::Manifest, resource: &str) -> Result<(), String> {
    if resource.bytes().any(|b| b.is_ascii_uppercase()) || !resource.contains(':') {
        return Err(format!(
            "`http.request` resource `{resource}` must be a lower-case `host:port` pattern (e.g. \"api.example.com:443\", \"127.0.0.1:*\")"
        ));
    }
    Ok(())
}

/// This capability, described (see [`crate::capabilities::unit`]).
pub const UNIT: crate::capabilities::Unit = crate::capabilities::Unit {
    name: "http",
    wit: &["wasi:http/outgoing-handler", "wasi:http/types"],
    actions: &[REQUEST],
    requests: &[Request { action: REQUEST, check: check_authority_pattern }],
    schema: include_str!("schema.cedarschema"),
    config_section: Some("outgoing-http"),
    link,
};

/// This folder as a capability unit (see [`crate::capabilities::Capability`]).
#[derive(Debug)]
pub struct OutgoingHttpCapability;

impl crate::capabilities::Capability for OutgoingHttpCapability {
    const UNIT: crate::capabilities::Unit = UNIT;
    type Config = OutgoingHttpConfig;
    type State = OutgoingHttpConfig;
    type Instance = HttpInstance;

    fn start(
        config: &OutgoingHttpConfig,
        env: &crate::capabilities::StartEnv<'_>,
    ) -> Result<OutgoingHttpConfig, crate::HostError> {
        let _ = env;
        Ok(*config)
    }

    fn instance(
        state: &OutgoingHttpConfig,
        component: &crate::capabilities::ComponentCapabilities,
        chain: &crate::runtime::entry::Chain,
    ) -> HttpInstance {
        HttpInstance::new(*state, component, chain.clone())
    }

    /// The chain gates and Cedar see is this entry's, also in a kept instance.
    fn enter(instance: &mut HttpInstance, chain: &crate::runtime::entry::Chain) {
        instance.set_chain(chain.clone());
    }
}

/// `wasi:http/outgoing-handler` (from `wasmtime-wasi-http`), whose hooks
/// authorize each request.
fn link(linker: &mut wasmtime::component::Linker<crate::runtime::store::InstanceState>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

/// `[outgoing-http]`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct OutgoingHttpConfig {
    /// The longest a request may wait to connect, for the first byte, and
    /// between bytes, in milliseconds.
    pub timeout_ms: u64,
    /// The largest response body a component may receive, in bytes.
    pub max_response_bytes: usize,
}

impl Default for OutgoingHttpConfig {
    fn default() -> Self {
        OutgoingHttpConfig { timeout_ms: 10_000, max_response_bytes: 4 << 20 }
    }
}

impl OutgoingHttpConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// The Cedar resource name of a request's target: `host:port`, with the
/// scheme's default port written out. `None` when the URI has no host.
pub fn authority(uri: &http::Uri) -> Option<String> {
    let host = uri.host()?;
    Some(format!("{}:{}", host.to_ascii_lowercase(), port(uri)))
}

/// The request's port, the scheme's default when none is written.
pub fn port(uri: &http::Uri) -> u16 {
    uri.port_u16().unwrap_or(if uri.scheme() == Some(&http::uri::Scheme::HTTPS) { 443 } else { 80 })
}

#[cfg(test)]
mod tests {
    #[test]
    fn authorities_always_carry_the_port() {
        let of = |uri: &str| super::authority(&uri.parse().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(of("http://127.0.0.1:8080/x").as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(of("https://Example.com/a?b").as_deref(), Some("example.com:443"));
        assert_eq!(of("http://example.com").as_deref(), Some("example.com:80"));
        assert_eq!(of("/relative").as_deref(), None);
    }
}
