//! ARW's HTTP API: the service `arw up` runs in front of the [`Host`].
//!
//! - [`routes`]: every route, mounted under its gating key ([`gating`]);
//! - [`auth`]: tokens → Cedar principals; [`problem`]: RFC 9457 errors;
//! - [`routes::events`]: the bus as Server-Sent Events;
//! - [`metrics`]: Prometheus exposition; [`spec`]: OpenAPI, AsyncAPI and
//!   MCP documents generated from code; [`mcp`]: the MCP server;
//! - [`admin`]: the documents of install, uninstall, rollback and policy
//!   reload, which [`arw_ops::Live`] performs.

pub mod admin;
pub mod auth;
mod body;
pub mod error;
pub mod gating;
pub mod mcp;
pub mod metrics;
mod middleware;
pub mod problem;
pub mod routes;
mod serve;
pub mod spec;
mod state;
pub mod views;

use std::sync::Arc;

use arw_host::Host;
use arw_host::config::HttpConfig;

pub use error::ServerError;
pub use serve::Server;

/// Bind `config.listen` and serve the API for `host` until
/// [`Server::shutdown`]. Refuses a non-loopback address when no token is
/// configured.
pub async fn start(
    host: Arc<Host>,
    config: HttpConfig,
    admin: Option<Arc<arw_ops::Live>>,
) -> Result<Server, ServerError> {
    serve::start(host, config, admin).await
}
