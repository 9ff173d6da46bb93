//! The per-instance side of outgoing HTTP: the hooks `wasmtime-wasi-http`
//! calls for every request.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpHooks};

use super::{OutgoingHttpConfig, address};
use crate::authz::Grants;
use crate::capabilities::ComponentCapabilities;

/// One instance's `wasi:http` state.
pub struct HttpInstance {
    pub(crate) ctx: WasiHttpCtx,
    pub(crate) hooks: ArwHttpHooks,
}

impl std::fmt::Debug for HttpInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpInstance").field("component", &self.hooks.component).finish_non_exhaustive()
    }
}

impl HttpInstance {
    pub fn new(
        config: OutgoingHttpConfig,
        component: &ComponentCapabilities,
        chain: crate::runtime::entry::Chain,
    ) -> Self {
        HttpInstance {
            ctx: WasiHttpCtx::new(),
            hooks: ArwHttpHooks {
                grants: component.grants.clone(),
                component: component.component.clone(),
                config,
                chain,
            },
        }
    }
}

impl HttpInstance {
    /// The chain of a new entry into a kept instance.
    pub(crate) fn set_chain(&mut self, chain: crate::runtime::entry::Chain) {
        self.hooks.chain = chain;
    }
}

pub(crate) struct ArwHttpHooks {
    grants: Arc<Grants>,
    component: Arc<str>,
    config: OutgoingHttpConfig,
    /// The components the entry came through (what gates see).
    chain: crate::runtime::entry::Chain,
}

/// Resolve `host` (unless it is an address already) and pick the first
/// address this component may reach: a public one, or a special one its
/// grants name literally (see [`super::address`]). The request is then sent
/// to exactly that address.
async fn resolve_and_check(
    grants: &Arc<Grants>,
    host: &str,
    port: u16,
    timeout: std::time::Duration,
) -> Result<std::net::SocketAddr, HttpError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<std::net::SocketAddr> = match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![std::net::SocketAddr::new(ip, port)],
        Err(_) => match tokio::time::timeout(timeout, tokio::net::lookup_host((bare, port))).await {
            Ok(Ok(found)) => found.collect(),
            Ok(Err(_)) => return Err(HttpError::DnsError { rcode: None, info_code: None }),
            Err(_) => return Err(HttpError::DnsTimeout),
        },
    };
    let mut refusals = Vec::new();
    for address in &addresses {
        let ip = address.ip();
        let Some(range) = address::special_range(ip) else { return Ok(*address) };
        let literal = address::literal_authority(ip, port);
        if !address::literally_requested(grants.requested(), ip, port) {
            refusals.push(format!(
                "`{host}` resolves to {literal}, {range}, which only a manifest request naming `{literal}` (or `{}:*`) literally may reach",
                address::literal_authority(ip, port).rsplit_once(':').map_or("", |(h, _)| h)
            ));
            continue;
        }
        match grants.check(crate::capabilities::http::REQUEST, &literal).await {
            Ok(()) => return Ok(*address),
            Err(denied) => refusals.push(denied.to_string()),
        }
    }
    let reason = if refusals.is_empty() { format!("`{host}` resolved to no address") } else { refusals.join("; ") };
    let denied = crate::authz::Denied {
        principal: grants.principal().principal().cedar_uid(),
        action: crate::capabilities::http::REQUEST,
        resource: crate::authz::shown(&format!("{host}:{port}"), crate::authz::SHOWN_RESOURCE_CHARS),
        reason,
    };
    tracing::warn!("outgoing HTTP request refused: {denied}");
    grants.chokepoint().audit().denied(&denied);
    Err(HttpError::HttpRequestDenied)
}

/// The smaller of the guest's timeout and the host's cap.
fn capped(asked: Option<std::time::Duration>, cap: std::time::Duration) -> Option<std::time::Duration> {
    Some(asked.map_or(cap, |asked| asked.min(cap)))
}

impl WasiHttpHooks for ArwHttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (http::Response<WasiBody>, Box<dyn Future<Output = Result<(), HttpError>> + Send>),
                    HttpError,
                >,
            > + Send,
    > {
        drop(fut);
        let grants = self.grants.clone();
        let component = self.component.clone();
        let config = self.config;
        let chain = self.chain.clone();
        Box::new(async move {
            let Some(authority) = super::authority(request.uri()) else {
                return Err(HttpError::HttpRequestUriInvalid);
            };
            let (Some(host), port) = (request.uri().host().map(str::to_string), super::port(request.uri())) else {
                return Err(HttpError::HttpRequestUriInvalid);
            };
            // The gates first: a denied request is never resolved or sent.
            let size = request
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
                .unwrap_or(0);
            let target = crate::gating::GateTarget { authority: Some(authority.clone()), ..Default::default() };
            if let Err(denied) = grants.gate(&crate::gating::keys::HTTP_EGRESS, &authority, target, size, &chain).await
            {
                tracing::warn!(component = %component, %authority, "outgoing HTTP request refused: {denied}");
                return Err(HttpError::HttpRequestDenied);
            }
            // This future runs on a tokio task, not on the guest's stack.
            if let Err(denied) = grants.check(crate::capabilities::http::REQUEST, &authority).await {
                tracing::warn!(component = %component, %authority, "outgoing HTTP request refused: {denied}");
                return Err(HttpError::HttpRequestDenied);
            }
            let cap = config.timeout();
            let options = RequestOptions {
                connect_timeout: capped(options.and_then(|o| o.connect_timeout), cap),
                first_byte_timeout: capped(options.and_then(|o| o.first_byte_timeout), cap),
                between_bytes_timeout: capped(options.and_then(|o| o.between_bytes_timeout), cap),
            };
            let address = resolve_and_check(&grants, &host, port, options.connect_timeout.unwrap_or(cap)).await?;
            tracing::debug!(component = %component, %authority, %address, method = %request.method(), "outgoing HTTP request");
            let (response, io) = super::send::send_to(address, &host, request, options).await?;
            let limit = config.max_response_bytes;
            let response = response.map(|body| {
                http_body_util::Limited::new(body, limit)
                    .map_err(move |e| match e.downcast::<HttpError>() {
                        Ok(inner) => *inner,
                        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                            HttpError::HttpResponseBodySize(Some(limit as u64))
                        }
                        Err(e) => HttpError::InternalError(Some(e.to_string())),
                    })
                    .map_frame(|frame| frame.map_data(Bytes::from))
                    .boxed_unsync()
            });
            Ok((response, Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>))
        })
    }
}

/// `wasi:http`'s view of an instance: this capability's context and hooks,
/// on the instance's resource table.
impl wasmtime_wasi_http::WasiHttpView for crate::runtime::store::InstanceState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        let (table, capabilities) = self.table_and_capabilities();
        let http = &mut capabilities.outgoing_http;
        wasmtime_wasi_http::WasiHttpCtxView { ctx: &mut http.ctx, table, hooks: &mut http.hooks }
    }
}
