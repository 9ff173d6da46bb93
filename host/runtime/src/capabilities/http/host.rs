//! The per-instance side of outgoing HTTP: the hooks `wasmtime-wasi-http`
//! calls for every request.

use std::sync::Arc;

use arw_policy::Action;
use bytes::Bytes;
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpHooks};

use super::OutgoingHttpConfig;
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
    pub fn new(config: OutgoingHttpConfig, component: &ComponentCapabilities) -> Self {
        HttpInstance {
            ctx: WasiHttpCtx::new(),
            hooks: ArwHttpHooks { grants: component.grants.clone(), component: component.component.clone(), config },
        }
    }
}

pub(crate) struct ArwHttpHooks {
    grants: Arc<Grants>,
    component: Arc<str>,
    config: OutgoingHttpConfig,
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
        Box::new(async move {
            let Some(authority) = super::authority(request.uri()) else {
                return Err(HttpError::HttpRequestUriInvalid);
            };
            // This future runs on a tokio task, not on the guest's stack.
            if let Err(denied) = grants.check(Action::HttpRequest, &authority).await {
                tracing::warn!(component = %component, %authority, "outgoing HTTP request refused: {denied}");
                return Err(HttpError::HttpRequestDenied);
            }
            let cap = config.timeout();
            let options = RequestOptions {
                connect_timeout: capped(options.and_then(|o| o.connect_timeout), cap),
                first_byte_timeout: capped(options.and_then(|o| o.first_byte_timeout), cap),
                between_bytes_timeout: capped(options.and_then(|o| o.between_bytes_timeout), cap),
            };
            tracing::debug!(component = %component, %authority, method = %request.method(), "outgoing HTTP request");
            let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
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
