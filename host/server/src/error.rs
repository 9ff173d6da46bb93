//! Why the server did not start.

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid HTTP configuration: {0}")]
    Config(String),
    #[error(
        "refusing to serve on {addr}, which is not a loopback address, without a token: set one with \
         `ARW_HTTP__ADMIN_TOKEN=$(openssl rand -hex 32)` (or `[http] admin-token`, or `[[http.tokens]]` in \
         the configuration file), or bind 127.0.0.1"
    )]
    PublicWithoutToken { addr: std::net::SocketAddr },
    #[error("cannot listen on {addr}: {error}")]
    Bind { addr: std::net::SocketAddr, error: std::io::Error },
}
