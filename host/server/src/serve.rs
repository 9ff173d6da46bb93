//! The listener: hyper HTTP/1.1 connections with bounded header buffers
//! and a read timeout, the axum router behind them, and a graceful stop
//! (stop accepting, end event streams, let requests in flight finish).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arw_host::Host;
use arw_host::config::HttpConfig;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::auth::Callers;
use crate::error::ServerError;
use crate::metrics::Metrics;
use crate::state::{AdminLimits, AppState};

/// A running server.
pub struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    accept: tokio::task::JoinHandle<GracefulShutdown>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish_non_exhaustive()
    }
}

pub(crate) async fn start(
    host: Arc<Host>,
    config: HttpConfig,
    admin: Option<Arc<arw_ops::Live>>,
) -> Result<Server, ServerError> {
    let callers = Callers::new(&host, &config)?;
    if !config.listen.ip().is_loopback() && !callers.has_tokens() {
        return Err(ServerError::PublicWithoutToken { addr: config.listen });
    }
    if config.body_limit_bytes == 0
        || config.max_header_bytes == 0
        || config.request_timeout_ms == 0
        || config.admin_rate_per_minute == 0
        || config.admin_burst == 0
        || config.max_connections == 0
        || config.max_event_streams == 0
        || config.max_mcp_sessions == 0
        || config.mcp_session_idle_ms == 0
    {
        return Err(ServerError::Config(
            "http.body-limit-bytes, http.max-header-bytes, http.request-timeout-ms, http.admin-rate-per-minute, \
             http.admin-burst, http.max-connections, http.max-event-streams, http.max-mcp-sessions and \
             http.mcp-session-idle-ms must be greater than zero"
                .into(),
        ));
    }
    let listener =
        TcpListener::bind(config.listen).await.map_err(|error| ServerError::Bind { addr: config.listen, error })?;
    let addr = listener.local_addr().map_err(|error| ServerError::Bind { addr: config.listen, error })?;

    let shutdown = CancellationToken::new();
    let state = Arc::new(AppState {
        metrics: Metrics::new(Arc::downgrade(&host)),
        limits: AdminLimits::new(&config),
        event_streams: Arc::new(tokio::sync::Semaphore::new(config.max_event_streams)),
        mcp_sessions: crate::mcp::session_manager(&config),
        host,
        callers,
        admin,
        config,
        shutdown: shutdown.clone(),
    });
    let sessions = crate::mcp::Sessions::default();
    let mcp = crate::mcp::service(state.clone(), sessions.clone());
    let router = crate::routes::router(state.clone(), mcp);

    let background = vec![crate::mcp::spawn_notifier(state.clone(), sessions), spawn_pruner(state.clone())];
    // hyper refuses heads over this with a bare 431; smaller oversized
    // heads reach the middleware, which answers with a problem document.
    let head_buffer = (state.config.max_header_bytes.saturating_mul(2)).max(2 << 20);
    let connections = Arc::new(tokio::sync::Semaphore::new(state.config.max_connections));
    let accept = tokio::spawn(accept_loop(listener, router, shutdown.clone(), head_buffer, connections));
    tracing::info!(%addr, "HTTP API listening");
    Ok(Server { addr, shutdown, accept, background })
}

/// What a connection past `http.max-connections` is told before it is
/// closed.
fn overloaded_response() -> Vec<u8> {
    let body = serde_json::json!({
        "type": "urn:arw:problem:too-many-connections",
        "title": "Service Unavailable",
        "status": 503,
        "code": "too-many-connections",
        "detail": "this host has as many connections open as it allows (http.max-connections); retry later",
        "retry_after": 1,
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answer a connection past `http.max-connections` with a 503 and close
/// it. What the client already sent is read and discarded first (for at
/// most 250 ms), so closing does not reset the connection and lose the
/// answer; the task lives no longer than that.
async fn refuse_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(Duration::from_millis(250), async {
        let _ = stream.write_all(&overloaded_response()).await;
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 4096];
        let mut read = 0;
        while read < 64 << 10 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    })
    .await;
}

async fn accept_loop(
    listener: TcpListener,
    router: axum::Router,
    shutdown: CancellationToken,
    head_buffer: usize,
    connections: Arc<tokio::sync::Semaphore>,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10)).max_buf_size(head_buffer);
    loop {
        let (stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%remote, "connection refused: http.max-connections are open");
            tokio::spawn(refuse_connection(stream));
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            router.clone().oneshot(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%remote, "connection ended: {e}");
            }
            drop(permit);
        });
    }
    graceful
}

/// Forget idle rate-limit keys every minute.
fn spawn_pruner(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(60)) => state.limits.prune(),
            }
        }
    })
}

impl Server {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting connections, end event streams and MCP sessions, and
    /// wait (up to `grace`) for requests in flight to finish.
    pub async fn shutdown(self, grace: Duration) {
        self.shutdown.cancel();
        for task in self.background {
            task.abort();
            let _ = task.await;
        }
        let graceful = match self.accept.await {
            Ok(graceful) => graceful,
            Err(e) => {
                tracing::warn!("the accept loop ended abnormally: {e}");
                return;
            }
        };
        if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
            tracing::warn!("HTTP connections still open after the grace period were closed");
        }
    }
}
